//! `logs`: the server's own log records, recent or live.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use koor_shared::client::{ClientError, Frame};
use koor_shared::types::LogRecord;

use super::done;
use crate::Ctx;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// How many recent records to print (default 50; with --follow, none unless given).
    #[arg(long, value_name = "N")]
    last: Option<u32>,
    /// Lowest level shown: debug, info, warn or error.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    level: String,
    /// Keep printing new records as they are logged, one JSON line each, until Ctrl-C.
    /// Reconnects on its own; records logged while disconnected are not replayed.
    #[arg(long, short = 'f')]
    follow: bool,
}

impl LogsArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        if !self.follow {
            let records = client.logs(self.last.unwrap_or(50), &self.level).await?;
            ctx.out.json(&records)?;
            return done();
        }
        if let Some(last) = self.last {
            for record in client.logs(last, &self.level).await? {
                ctx.out.json(&record)?;
            }
        }
        let follow = async {
            let mut backoff = FIRST_BACKOFF;
            let mut connected_before = false;
            loop {
                match client.subscribe_logs(&self.level).await {
                    Ok(mut sub) => {
                        connected_before = true;
                        backoff = FIRST_BACKOFF;
                        let why = loop {
                            match sub.next::<LogRecord>().await {
                                Some(Ok(Frame::Item(record))) => ctx.out.json(&record)?,
                                Some(Ok(Frame::Closed { reason, .. })) => {
                                    break format!("server closed the log stream ({reason})");
                                }
                                Some(Err(e)) => break format!("log stream lost: {e}"),
                                None => break "log stream lost".to_owned(),
                            }
                        };
                        note(&format!("{why}; reconnecting"));
                    }
                    Err(e @ ClientError::Api { .. }) => return Err(e.into()),
                    Err(e) if !connected_before => return Err(e.into()),
                    Err(e) => note(&format!("{e}; retrying")),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        };
        tokio::select! {
            result = follow => result,
            _ = tokio::signal::ctrl_c() => done(),
        }
    }
}

fn note(message: &str) {
    let _ = writeln!(io::stderr().lock(), "koor-cli: {message}");
}
