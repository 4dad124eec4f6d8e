//! (ext) `lock ...`: named locks held by an instance, with a TTL renewed by its heartbeat.
//!
//! `acquire --wait` follows the rule of every wait of the CLI (`inbox --wait`, `wait --timeout`):
//! a wait longer than the server's longest for one request (60 s for a lock) is a loop of waits
//! until the whole wait has passed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use super::done;
use super::messages::{Typed, parse_typed, wire};
use crate::Ctx;

/// The longest wait one lock request may ask the server for.
const SERVER_MAX_LOCK_WAIT: Duration = Duration::from_secs(60);

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
        /// Wait up to this long for the holder to let go (e.g. 30s, 10m; longer than the server's
        /// 60 s is a loop of waits), then exit 9.
        #[arg(long, value_name = "DURATION", value_parser = parse_typed)]
        wait: Option<Typed>,
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
                let wait = wait.map(|w| w.duration).filter(|w| !w.is_zero());
                let deadline = wait.map(|w| tokio::time::Instant::now() + w);
                let lock = loop {
                    let left =
                        deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
                    let chunk = left.map(|l| wire(l.min(SERVER_MAX_LOCK_WAIT)));
                    match client
                        .lock_acquire(
                            &name,
                            &id,
                            ttl.as_deref(),
                            chunk.as_deref(),
                            token.as_deref(),
                        )
                        .await
                    {
                        Ok(lock) => break lock,
                        // Still held after one request's longest wait: wait again.
                        Err(e)
                            if e.status() == Some(409)
                                && left.is_some_and(|l| l > SERVER_MAX_LOCK_WAIT) => {}
                        Err(e) => return Err(e.into()),
                    }
                };
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
