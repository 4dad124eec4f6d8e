//! `completions SHELL`: a completion script generated from the command tree.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

use super::done;
use crate::Ctx;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

impl CompletionsArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut crate::command(), "koor-cli", &mut script);
        ctx.out.text(&script)?;
        done()
    }
}
