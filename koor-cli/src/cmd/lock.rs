//! (ext) `lock ...`: named locks held by an instance, with a TTL renewed by its heartbeat.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::done;
use crate::Ctx;

#[derive(Debug, Subcommand)]
pub enum LockCmd {
    /// Take a lock (or renew it when this instance holds it); exits 9 when another holds it.
    #[command(
        after_help = "Example:\n  koor-cli lock acquire deploy/prod --ttl 5m\n  koor-cli lock acquire db-migrations --wait 30s"
    )]
    Acquire {
        /// The lock's name (may contain /).
        name: String,
        /// How long the lock lasts without a heartbeat (5s to 24h; default: the server's
        /// --stale-after).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Wait up to this long (at most 60s) for the holder to let go, then exit 9.
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
    },

    /// Let go of a lock this instance holds (--force: whoever holds it).
    #[command(
        after_help = "Example:\n  koor-cli lock release deploy/prod\n  koor-cli lock release deploy/prod --force"
    )]
    Release {
        /// The lock's name.
        name: String,
        /// Release it whoever holds it (an operator's action).
        #[arg(long)]
        force: bool,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID", conflicts_with = "force")]
        instance: Option<String>,
    },

    /// List the locks held now, with holder, fence and expiry.
    #[command(after_help = "Example:\n  koor-cli lock list --pretty")]
    List,

    /// Show one lock; exits 5 when nobody holds it.
    #[command(after_help = "Example:\n  koor-cli lock get deploy/prod")]
    Get {
        /// The lock's name.
        name: String,
    },
}

impl LockCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        match self {
            LockCmd::Acquire {
                name,
                ttl,
                wait,
                instance,
            } => {
                let (id, token) = ctx.acting_for(instance)?;
                let lock = client
                    .lock_acquire(
                        &name,
                        &id,
                        ttl.as_deref(),
                        wait.as_deref(),
                        token.as_deref(),
                    )
                    .await?;
                ctx.out.json(&lock)?;
            }
            LockCmd::Release {
                name,
                force,
                instance,
            } => {
                let answer = if force {
                    client.lock_release(&name, None, true, None).await?
                } else {
                    let (id, token) = ctx.acting_for(instance)?;
                    client
                        .lock_release(&name, Some(&id), false, token.as_deref())
                        .await?
                };
                ctx.out.json(&answer)?;
            }
            LockCmd::List => ctx.out.json(&client.locks().await?)?,
            LockCmd::Get { name } => ctx.out.json(&client.lock(&name).await?)?,
        }
        done()
    }
}
