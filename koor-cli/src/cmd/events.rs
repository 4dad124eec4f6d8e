//! `events ...`: publish, history, and a live WebSocket subscription that survives reconnects.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use koor_shared::client::{Client, ClientError, Frame, HistoryQuery, resume_id_from_reason};
use koor_shared::types::{Event, PublishRequest};

use super::done;
use crate::Ctx;
use crate::input::ValueArgs;

/// First wait before reconnecting; doubled after each failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Publish an event; prints the stored event with its id.
    #[command(
        after_help = "Example:\n  koor-cli events publish api.change.contract --data '{\"version\":\"2.0\",\"breaking\":true}' --source backend"
    )]
    Publish {
        /// Dot-separated topic, e.g. api.change.contract (the koor.* topics are the server's).
        topic: String,
        /// Event data as JSON (default null).
        #[arg(long, short = 'd', value_name = "JSON", conflicts_with = "file")]
        data: Option<String>,
        /// Read the event data (JSON) from a file ('-' reads stdin).
        #[arg(long, short = 'f', value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// Who is publishing, e.g. the agent's name.
        #[arg(long, value_name = "S")]
        source: Option<String>,
    },

    /// Print stored events (the server's order: newest first; oldest first with --since).
    #[command(
        after_help = "Example:\n  koor-cli events history --last 10 --topic 'api.*'\n  koor-cli events history --since 42"
    )]
    History {
        /// At most this many events (server default 50).
        #[arg(long, value_name = "N")]
        last: Option<u32>,
        /// Topic pattern: '*' one segment, '**' any number (e.g. 'api.*', 'koor.**').
        #[arg(long, value_name = "PATTERN")]
        topic: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Only events at or before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only events from this source.
        #[arg(long, value_name = "S")]
        source: Option<String>,
        /// Only events with an id greater than ID, oldest first.
        #[arg(long, value_name = "ID")]
        since: Option<i64>,
    },

    /// Stream events live over a WebSocket, one JSON line each, until Ctrl-C.
    ///
    /// Reconnects on its own (waiting 0.1 s, doubling up to 5 s) when the connection drops or the
    /// server closes a lagging subscriber, and resumes after the last event printed, so no event is
    /// lost or printed twice. Notes about the connection go to stderr. Without --since it starts
    /// with the events published after it subscribes.
    #[command(
        after_help = "Example:\n  koor-cli events subscribe 'api.*' 'deploy.**'\n  koor-cli events subscribe --since 0 --count 5\n  koor-cli events subscribe 'koor.state.*'   # the server's own change events"
    )]
    Subscribe(SubscribeArgs),
}

/// What `events subscribe` (and its top-level alias `subscribe`) takes.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Topic patterns (several = any of them; default every non-system topic).
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
    /// First replay the stored events with an id greater than ID (0 = all retained).
    #[arg(long, value_name = "ID")]
    since: Option<i64>,
    /// Exit 0 after printing this many events.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// No notes on stderr about connecting and reconnecting.
    #[arg(long, short = 'q')]
    quiet: bool,
}

impl EventsCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            EventsCmd::Publish {
                topic,
                data,
                file,
                source,
            } => {
                let data = if data.is_none() && file.is_none() {
                    serde_json::Value::Null
                } else {
                    ValueArgs { data, file }.read_json()?
                };
                let req = PublishRequest {
                    topic,
                    data,
                    source: source.unwrap_or_default(),
                };
                ctx.out.json(&ctx.client()?.publish(&req).await?)?;
                done()
            }
            EventsCmd::History {
                last,
                topic,
                from,
                to,
                source,
                since,
            } => {
                let query = HistoryQuery {
                    last,
                    topic,
                    from,
                    to,
                    source,
                    since,
                };
                ctx.out.json(&ctx.client()?.history(&query).await?)?;
                done()
            }
            EventsCmd::Subscribe(SubscribeArgs {
                patterns,
                since,
                count,
                quiet,
            }) => {
                let sub = Subscriber {
                    client: ctx.client()?,
                    patterns,
                    count,
                    quiet,
                    out: ctx.out,
                };
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::select! {
                    result = sub.run(since) => result,
                    _ = ctrl_c => Ok(ExitCode::SUCCESS),
                }
            }
        }
    }
}

/// The state of one `events subscribe`.
struct Subscriber {
    client: Client,
    patterns: Vec<String>,
    count: Option<u64>,
    quiet: bool,
    out: crate::output::Output,
}

/// Why one connection ended.
enum Ended {
    /// `--count` reached.
    Done,
    /// Dropped or closed by the server: reconnect.
    Lost(String),
}

impl Subscriber {
    fn note(&self, message: &str) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "koor-cli: {message}");
        }
    }

    /// Subscribes and keeps the stream going until `--count` is reached (or the caller is cancelled).
    async fn run(mut self, since: Option<i64>) -> Result<ExitCode> {
        // Without --since, start from the newest event id at subscription time: a reconnect before
        // the first event then still resumes from there.
        let mut last = match since {
            Some(id) => id,
            None => self.client.metrics().await?.last_event_id,
        };
        let mut printed = 0u64;
        let mut backoff = FIRST_BACKOFF;
        let mut connected_before = false;
        if self.count == Some(0) {
            return Ok(ExitCode::SUCCESS);
        }
        loop {
            match self
                .client
                .subscribe_events(&self.patterns, Some(last))
                .await
            {
                Ok(mut sub) => {
                    let pattern_text = if self.patterns.is_empty() {
                        "*".to_owned()
                    } else {
                        self.patterns.join(" ")
                    };
                    self.note(&format!(
                        "{} {} (patterns: {pattern_text}; after event {last})",
                        if connected_before {
                            "resubscribed to"
                        } else {
                            "subscribed to"
                        },
                        self.client.base()
                    ));
                    connected_before = true;
                    let before = printed;
                    let ended = self.pump(&mut sub, &mut last, &mut printed).await?;
                    if printed > before {
                        backoff = FIRST_BACKOFF;
                    }
                    match ended {
                        Ended::Done => {
                            sub.close().await;
                            return Ok(ExitCode::SUCCESS);
                        }
                        Ended::Lost(why) => {
                            self.note(&format!("{why}; reconnecting after event {last}"))
                        }
                    }
                }
                // Reachable but refusing (401, 404, ...), or never reached at all: give up.
                Err(e @ ClientError::Api { .. }) => return Err(e.into()),
                Err(e) if !connected_before => return Err(e.into()),
                Err(e) => self.note(&format!("{e}; retrying in {}", seconds(backoff))),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Prints events from one connection until it ends.
    async fn pump(
        &mut self,
        sub: &mut koor_shared::client::Subscription,
        last: &mut i64,
        printed: &mut u64,
    ) -> Result<Ended> {
        loop {
            match sub.next_event().await {
                Some(Ok(Frame::Item(event))) => {
                    // A replay never repeats what was printed; skip it if a server ever did.
                    if event.id <= *last {
                        continue;
                    }
                    self.print(&event)?;
                    *last = event.id;
                    *printed += 1;
                    if self.count.is_some_and(|n| *printed >= n) {
                        return Ok(Ended::Done);
                    }
                }
                Some(Ok(Frame::Closed { code, reason })) => {
                    return Ok(Ended::Lost(self.closed(code, &reason, last)));
                }
                Some(Err(e)) => return Ok(Ended::Lost(format!("connection lost: {e}"))),
                None => return Ok(Ended::Lost("connection lost".to_owned())),
            }
        }
    }

    /// Handles a close frame: moves `last` forward when the server says it may, and says why.
    fn closed(&self, code: u16, reason: &str, last: &mut i64) -> String {
        if let Some(id) = resume_id_from_reason(reason) {
            // Lag close: every matching event up to `id` was sent, and all of them were printed.
            *last = (*last).max(id);
            return format!("server closed the stream ({reason})");
        }
        if let Some(oldest) = id_from_reason(reason, "oldest_id") {
            // The events after `last` are partly gone from the server's history: say so loudly,
            // then go on with the oldest retained one.
            if oldest - 1 > *last {
                let _ = writeln!(
                    io::stderr().lock(),
                    "koor-cli: warning: events {}..={} were pruned from the server's history before they could be printed",
                    *last + 1,
                    oldest - 1
                );
                *last = oldest - 1;
            }
            return format!("server closed the stream ({reason})");
        }
        if let Some(newest) = id_from_reason(reason, "newest_id")
            && newest < *last
        {
            // A server with a new history (fresh data dir): its ids start over.
            let _ = writeln!(
                io::stderr().lock(),
                "koor-cli: warning: the server's event history started over (newest id {newest}, we had printed up to {}); following it from its first event",
                *last
            );
            *last = 0;
            return format!("server closed the stream ({reason})");
        }
        if reason.is_empty() {
            format!("server closed the stream (code {code})")
        } else {
            format!("server closed the stream ({reason})")
        }
    }

    fn print(&self, event: &Event) -> io::Result<()> {
        // The server passes event data through as it was sent, maybe indented: keep one event
        // per line.
        let text = serde_json::to_vec(event).map_err(io::Error::other)?;
        let line = crate::output::compact_json(&text).unwrap_or(text);
        self.out.json_text(&line)
    }
}

/// The number after `name=` in a close reason such as `...; oldest_id=42`.
fn id_from_reason(reason: &str, name: &str) -> Option<i64> {
    reason
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_ids() {
        let gone = "since=3 is older than retained history; oldest_id=42";
        assert_eq!(id_from_reason(gone, "oldest_id"), Some(42));
        assert_eq!(id_from_reason(gone, "last_id"), None);
        assert_eq!(
            resume_id_from_reason("lagged: subscriber fell behind; resume with since; last_id=7"),
            Some(7)
        );
    }
}
