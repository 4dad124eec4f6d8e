//! (ext) `wait PATTERN... [--since ID] [--timeout 10m]`: sleep until matching events are published,
//! print them (one JSON line each) and exit 0; exit [`crate::exit::WAIT_TIMEOUT`] when the timeout
//! ends first.
//!
//! Each request asks the server to wait at most 120 s; a longer timeout is a loop of waits that
//! resume from the same event id, so no event published between two requests is missed.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::messages::{SERVER_MAX_WAIT, Typed, parse_typed, wire};
use crate::Ctx;
use crate::exit;

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Topic patterns (several = any of them): '*' one segment, '**' any number, 'koor.**' the
    /// server's own events.
    #[arg(value_name = "PATTERN", required = true)]
    patterns: Vec<String>,
    /// Events with an id greater than ID count too (default: only events published after the
    /// command starts).
    #[arg(long, value_name = "ID")]
    since: Option<i64>,
    /// How long to wait in all (e.g. 30s, 10m; default 30s); exit 10 when it ends first.
    #[arg(long, value_name = "DURATION", value_parser = parse_typed, default_value = "30s")]
    timeout: Typed,
    /// Print at most N events (the oldest first; default 100).
    #[arg(long, value_name = "N")]
    last: Option<u32>,
}

impl WaitArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        let deadline = tokio::time::Instant::now() + self.timeout.duration;
        // One starting point for every request of the loop.
        let since = match self.since {
            Some(id) => id,
            None => client.metrics().await?.last_event_id,
        };
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let events = client
                .events_wait(
                    &self.patterns,
                    Some(since),
                    &wire(left.min(SERVER_MAX_WAIT)),
                    self.last,
                )
                .await?;
            if !events.is_empty() {
                for event in &events {
                    ctx.out.json(event)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            if left <= SERVER_MAX_WAIT {
                eprintln!("koor-cli: no matching event within {}", self.timeout);
                return Ok(ExitCode::from(exit::WAIT_TIMEOUT));
            }
        }
    }
}
