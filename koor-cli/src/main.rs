//! koor-cli: the command line for agents, CI and people.
//!
//! # Layout
//!
//! - `main.rs`: the top-level parser, `main` and `run`.
//! - [`exit`]: the exit-code table and the one-line error messages (with their hints).
//! - [`output`]: JSON and raw output on stdout (`--pretty`, broken pipes).
//! - [`input`]: values from `--data`, `--file` or stdin.
//! - [`cmd`]: one module per command group, each a clap `Subcommand` with its `run`.

mod cmd;
mod exit;
mod input;
mod output;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use koor_shared::client::Client;
use koor_shared::config::{self, ClientConfig, Inputs};
use koor_shared::identity;

use crate::cmd::Command;
use crate::output::Output;

const ROOT_HELP: &str = "\
Examples:
  koor-cli status
  koor-cli state set api-contract --data '{\"endpoint\":\"/users\"}'
  koor-cli state get api-contract
  koor-cli events subscribe 'api.*'
  KOOR_SERVER=http://build-host:9800 KOOR_TOKEN=T koor-cli instances list --pretty

Configuration (highest first): --server/--token, KOOR_SERVER/KOOR_TOKEN, the server recorded in
.koor/instance.json (the one this workspace's instance registered with), ./settings.json,
the user file (koor-cli config path), then http://localhost:9800 without a token.

Exit codes: 0 ok, 1 other failure, 2 usage error, 3 cannot connect to the server,
4 unauthorized (401), 5 not found (404), 6 precondition failed (412),
7 other error answered by the server (4xx/5xx), 8 `validate` found error-severity violations,
9 conflict (409): a lock, task or file reservation held by another instance, or a task not ready,
10 `wait` / `inbox --wait` ended with nothing.
`guard pre-commit` exits 1 when a staged file is reserved by another instance.";

/// Koor command line: shared state, specs, events and agent instances on a Koor server.
///
/// JSON goes to stdout (compact; --pretty indents it), errors go to stderr as one line, and the
/// exit code says what went wrong. It never prompts.
#[derive(Debug, Parser)]
#[command(name = "koor-cli", version, after_help = ROOT_HELP)]
pub struct Cli {
    /// Pretty-print JSON output (accepted anywhere on the line).
    #[arg(long, global = true, help_heading = "Global options")]
    pretty: bool,

    /// Server URL, e.g. http://localhost:9800 (overrides KOOR_SERVER and the config files).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    server: Option<String>,

    /// Bearer token (overrides KOOR_TOKEN and the config files; KOOR_TOKEN keeps it out of `ps`).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        help_heading = "Global options"
    )]
    token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

/// What every command needs: output settings and the way to reach the server.
pub struct Ctx {
    pub out: Output,
    flag_server: Option<String>,
    flag_token: Option<String>,
}

impl Ctx {
    /// Resolves the client configuration (flags > env > the server of .koor/instance.json >
    /// ./settings.json > user file > default).
    pub fn config(&self) -> Result<ClientConfig> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
        self.config_at(&cwd)
    }

    /// [`Ctx::config`] for a workspace in `dir` (a hook's event names its own directory): the
    /// identity file is looked for from there.
    pub fn config_at(&self, dir: &std::path::Path) -> Result<ClientConfig> {
        let mut inputs = Inputs::from_env(self.flag_server.clone(), self.flag_token.clone());
        // The server the instance acting here registered with; an unreadable identity file
        // leaves the choice to the other sources (the command that needs the id says why).
        let me = identity::resolve(
            dir,
            std::env::var(identity::ENV_INSTANCE).ok(),
            std::env::var(identity::ENV_INSTANCE_TOKEN).ok(),
        );
        if let Ok(Some(me)) = me
            && let (Some(saved), Some((path, _))) = (me.saved(), me.file.as_ref())
        {
            inputs.identity = Some((saved.server.clone(), path.clone()));
        }
        Ok(config::resolve(&inputs)?)
    }

    /// A client for the resolved server.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.config()?))
    }

    /// A client for the server of the workspace in `dir`.
    pub fn client_at(&self, dir: &std::path::Path) -> Result<Client> {
        Ok(Client::new(&self.config_at(dir)?))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}

fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return Ok(if err.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    let ctx = Ctx {
        out: Output::new(cli.pretty),
        flag_server: cli.server,
        flag_token: cli.token,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli.command.run(&ctx))
}

/// The clap command tree (for completions and the help tests).
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_valid() {
        command().debug_assert();
    }

    /// Every command an agent can call says what it does in one line and shows an example.
    #[test]
    fn every_command_has_a_description_and_an_example() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut usize) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{path} {}", sub.get_name());
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                assert!(!about.is_empty(), "{name}: no description");
                assert!(!about.contains('\n'), "{name}: description is not one line");
                let example = sub
                    .get_after_help()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let shows = example.lines().any(|line| {
                    line.split_once(&name)
                        .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(' '))
                });
                assert!(
                    example.starts_with("Example:") && shows,
                    "{name}: no example in {example:?}"
                );
                *seen += 1;
                walk(sub, &name, seen);
            }
        }
        let mut seen = 0;
        walk(&command(), "koor-cli", &mut seen);
        assert!(seen > 30, "only {seen} commands");
    }
}
