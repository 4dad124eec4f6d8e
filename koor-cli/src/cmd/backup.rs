//! `backup -o FILE`: download a consistent snapshot of the server's whole store. `restore` says
//! how to put one back (offline, with `koor-server restore`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::done;
use crate::Ctx;
use crate::exit::usage;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the SQLite file ('-' for stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

impl BackupArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        let mut resp = client
            .send(client.request(Method::GET, "/api/backup"))
            .await?;
        if self.output.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = resp.chunk().await.context("reading the backup")? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            return done();
        }
        // Written beside the target and renamed at the end: a failed download leaves no
        // half-written backup under the asked name.
        let mut partial = self.output.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut bytes = 0u64;
        let copied: Result<()> = async {
            while let Some(chunk) = resp.chunk().await.context("reading the backup")? {
                file.write_all(&chunk)?;
                bytes += chunk.len() as u64;
            }
            file.sync_all()?;
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        std::fs::rename(&partial, &self.output)
            .with_context(|| format!("cannot write {}", self.output.display()))?;
        ctx.out
            .json(&json!({"file": self.output.display().to_string(), "bytes": bytes}))?;
        done()
    }
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

impl RestoreArgs {
    /// The original restored over the API; ours restores offline, so this only says how.
    pub fn run(self) -> Result<ExitCode> {
        let file = self
            .file
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "FILE".into());
        Err(usage(format!(
            "restore runs on the server machine while the server is stopped: koor-server restore {file} --data-dir DIR"
        )))
    }
}
