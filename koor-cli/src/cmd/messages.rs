//! (ext) Messages between agents: `send`, `inbox [--wait]`, `read`, `ack`, `thread`.
//!
//! They act for the instance this directory is registered as (`--instance`, `KOOR_INSTANCE`, or
//! `.koor/instance.json`) and prove it with its token. `inbox --wait` is how an agent in a shell
//! sleeps until it is spoken to: it waits for something new (unread messages, or with `--since`
//! those after the last id seen), never for what was already read, so a script looping on it
//! sleeps instead of spinning. A wait longer than the server's longest (120 s) is a loop of
//! waits, and a wait that ends with nothing exits [`crate::exit::WAIT_TIMEOUT`].

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use koor_shared::client::InboxQuery;
use koor_shared::types::SendMessage;
use serde_json::Value;

use super::done;
use crate::Ctx;
use crate::exit;

/// The longest wait one request may ask the server for.
pub const SERVER_MAX_WAIT: Duration = Duration::from_secs(120);

/// A duration flag: `90s`, `5m`, `1h`, or seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 30s, 5m, 1h)"))
}

/// A duration flag kept as typed, so messages echo `25h` rather than `1day 1h`.
#[derive(Debug, Clone)]
pub struct Typed {
    pub typed: String,
    pub duration: Duration,
}

impl std::fmt::Display for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.typed)
    }
}

/// [`parse_duration`] for clap, keeping the text as typed.
pub fn parse_typed(s: &str) -> Result<Typed, String> {
    Ok(Typed {
        typed: s.trim().to_owned(),
        duration: parse_duration(s)?,
    })
}

/// A duration as the server reads it (whole milliseconds; `0` for none).
pub fn wire(d: Duration) -> String {
    match d.as_millis() {
        0 => "0".to_owned(),
        ms => format!("{ms}ms"),
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Instance ids or names (a name reaches every instance registered under it).
    #[arg(value_name = "TO", required = true)]
    to: Vec<String>,
    /// What the message is about (one line).
    #[arg(long, short = 's', value_name = "S")]
    subject: String,
    /// The body: JSON when it parses as JSON, else sent as a string; '-' reads stdin.
    #[arg(long, short = 'b', value_name = "BODY")]
    body: Option<String>,
    /// Reply in this thread (the id of any message of it).
    #[arg(long, value_name = "ID")]
    thread: Option<i64>,
    /// Ask the recipients to acknowledge it (`koor-cli ack ID`).
    #[arg(long)]
    ack: bool,
    /// Send as this instance (default: KOOR_INSTANCE, else .koor/instance.json).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
}

impl SendArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let (from, token) = ctx.acting_for(self.instance)?;
        let body = match self.body.as_deref() {
            None => Value::Null,
            Some("-") => {
                if std::io::stdin().is_terminal() {
                    return Err(exit::usage(
                        "--body - reads the body from stdin, but stdin is a terminal",
                    ));
                }
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read stdin")?;
                as_json(&text)
            }
            Some(text) => as_json(text),
        };
        let msg = SendMessage {
            from,
            to: self.to,
            subject: self.subject,
            body,
            thread_id: self.thread,
            ack_required: self.ack,
        };
        let sent = ctx.client()?.send_message(&msg, token.as_deref()).await?;
        ctx.out.json(&sent)?;
        done()
    }
}

/// `text` as JSON when it is JSON, else as a JSON string.
fn as_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.trim_end_matches('\n').into()))
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Only messages not yet read.
    #[arg(long)]
    unread: bool,
    /// Only messages that ask for an ack and have none yet.
    #[arg(long)]
    unacked: bool,
    /// Only messages with an id greater than ID.
    #[arg(long, value_name = "ID")]
    since: Option<i64>,
    /// Only messages of this thread.
    #[arg(long, value_name = "ID")]
    thread: Option<i64>,
    /// Only the newest N (still listed oldest first).
    #[arg(long, value_name = "N")]
    last: Option<u32>,
    /// Sleep until something new comes, up to this long (e.g. 30s, 5m; longer than the server's
    /// 120 s is a loop of waits); exits 10 when nothing came. New means unread (--wait implies
    /// --unread), or with --since, after that id: messages already read never end the wait.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Whose inbox (default: KOOR_INSTANCE, else .koor/instance.json).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
}

impl InboxArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let (id, token) = ctx.acting_for(self.instance)?;
        let client = ctx.client()?;
        // A wait is for something new: unread unless the caller said what to wait for, so a
        // message already read (or acked) never ends it and a loop on `inbox --wait` sleeps.
        let implied_unread =
            self.wait.is_some() && !self.unread && !self.unacked && self.since.is_none();
        let mut query = InboxQuery {
            unread: self.unread || implied_unread,
            unacked: self.unacked,
            since: self.since,
            thread_id: self.thread,
            last: self.last,
            wait: None,
        };
        let Some(wait) = self.wait else {
            ctx.out
                .json(&client.inbox(&id, &query, token.as_deref()).await?)?;
            return done();
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            query.wait = Some(wire(left.min(SERVER_MAX_WAIT)));
            let inbox = client.inbox(&id, &query, token.as_deref()).await?;
            if !inbox.messages.is_empty() || left <= SERVER_MAX_WAIT {
                ctx.out.json(&inbox)?;
                return Ok(if inbox.messages.is_empty() {
                    ExitCode::from(exit::WAIT_TIMEOUT)
                } else {
                    ExitCode::SUCCESS
                });
            }
        }
    }
}

/// `read ID` and `ack ID`.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The message id.
    id: i64,
    /// Whose inbox (default: KOOR_INSTANCE, else .koor/instance.json).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
}

impl MarkArgs {
    /// Marks the message read (or acked, which also marks it read) and prints the message with
    /// this recipient's receipts.
    pub async fn run(self, ctx: &Ctx, ack: bool) -> Result<ExitCode> {
        let (me, token) = ctx.acting_for(self.instance)?;
        let client = ctx.client()?;
        let receipts = client
            .mark_message(&me, self.id, ack, token.as_deref())
            .await?;
        let message = client.message(self.id).await?;
        let mut shown = serde_json::to_value(&message)?;
        shown["read_at"] = receipts["read_at"].clone();
        shown["acked_at"] = receipts["acked_at"].clone();
        ctx.out.json(&shown)?;
        done()
    }
}

/// `thread ID`.
#[derive(Debug, Args)]
pub struct ThreadArgs {
    /// The thread id, or the id of any message in it.
    id: i64,
}

impl ThreadArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        let thread_id = client.message(self.id).await?.thread_id;
        ctx.out.json(&client.thread(thread_id).await?)?;
        done()
    }
}
