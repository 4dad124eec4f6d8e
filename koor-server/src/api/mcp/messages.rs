//! `messages`: send, read the inbox (unread first, optionally waiting), mark read/ack, a thread;
//! `wait_events`: sleep until events matching a pattern are published. Both run the same code as
//! their REST routes, so limits, checks and wake-ups are the same.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use warp::http::HeaderMap;
use warp::reply::Response;

use super::args::{Args, flag, int, list, one_of, schema, text};
use super::{acting_for, store_message};
use crate::App;
use crate::api::{ApiError, Query};
use crate::messages as mail;

/// How long a waiting tool call sleeps when it names no time: IDE tool calls time out after
/// about 30 s.
pub const DEFAULT_WAIT_S: i64 = 25;
/// The longest wait a tool call may ask for (the REST maximum).
const MAX_WAIT_S: i64 = 120;

pub fn messages_spec() -> Value {
    json!({
        "name": "messages",
        "description": "Direct messages: send (to ids or names), inbox (unread first; wait_s sleeps until one comes), read, ack, thread.",
        "inputSchema": schema(json!({
            "action": one_of(&["send", "inbox", "read", "ack", "thread"], "What to do"),
            "instance_id": text("Your instance_id"),
            "to": list("send: instance ids or names"),
            "subject": text("send: subject"),
            "body": text("send: text (JSON is kept as JSON)"),
            "thread_id": int("send: reply in this thread; thread: which"),
            "ack": flag("send: ask for an acknowledgement"),
            "message_id": int("read/ack: which message"),
            "unread": flag("inbox: only unread"),
            "wait_s": int("inbox: wait up to this many seconds (0-120)"),
            "token": text("Your token (if required)"),
        }), &["action"]),
    })
}

pub fn wait_spec() -> Value {
    json!({
        "name": "wait_events",
        "description": "Sleep until events matching a pattern are published (default 25 s); returns them, or [] at the timeout.",
        "inputSchema": schema(json!({
            "pattern": text("Topic pattern, e.g. build.* or koor.task.**"),
            "since": int("Only events after this id (default: from now)"),
            "timeout_s": int("Seconds, 1-120 (default 25)"),
        }), &["pattern"]),
        "annotations": {"readOnlyHint": true},
    })
}

fn seconds(args: &Args, name: &str, default: i64) -> Result<i64, String> {
    match args.int(name).unwrap_or(default) {
        s if (0..=MAX_WAIT_S).contains(&s) => Ok(s),
        s => Err(format!("{name} {s} is out of range (0 to {MAX_WAIT_S})")),
    }
}

/// A REST handler's answer as JSON; an error status becomes the tool's error message.
async fn answer(result: Result<Response, ApiError>) -> Result<Value, String> {
    let resp = result.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(value["error"]
            .as_str()
            .map_or_else(|| format!("failed with status {status}"), str::to_owned))
    }
}

pub async fn messages(app: &App, headers: &HeaderMap, args: Args) -> Result<Value, String> {
    let (me, headers) = acting_for(app, headers, &args)?;
    match args.action().as_str() {
        "send" => {
            let to = args.list("to");
            if to.is_empty() {
                return Err("messages send: to is required (instance ids or names)".into());
            }
            let body = args
                .opt("body")
                .map(|b| serde_json::from_str::<Value>(&b).unwrap_or(Value::String(b)));
            let req = json!({"from": me, "to": to, "subject": args.text("subject"),
                             "body": body, "thread_id": args.int("thread_id"),
                             "ack_required": args.flag("ack").unwrap_or(false)});
            let bytes = Bytes::from(req.to_string());
            answer(crate::api::messages::send(app.clone(), headers, bytes).await).await
        }
        "inbox" => {
            let wait = seconds(&args, "wait_s", 0)?;
            let mut q = Vec::new();
            if wait > 0 {
                q.push(("wait".to_owned(), format!("{wait}s")));
            }
            if args.flag("unread").unwrap_or(false) {
                q.push(("unread".into(), "1".into()));
            }
            let mut inbox =
                answer(crate::api::messages::inbox(app.clone(), me, Query(q)).await).await?;
            // Unread first (each group oldest first): what the agent has not seen yet leads.
            if let Some(list) = inbox["messages"].as_array_mut() {
                list.sort_by_key(|m| !m["read_at"].is_null());
            }
            Ok(inbox)
        }
        action @ ("read" | "ack") => {
            let id = args
                .int("message_id")
                .ok_or_else(|| format!("messages {action}: message_id is required"))?;
            mail::mark(&app.store, &me, id, action == "ack")
                .await
                .map_err(store_message)
        }
        "thread" => {
            let id = args
                .int("thread_id")
                .ok_or("messages thread: thread_id is required")?;
            let thread = mail::thread(&app.store, id).await.map_err(store_message)?;
            Ok(serde_json::to_value(thread).unwrap_or_default())
        }
        other => Err(format!(
            "messages: unknown action {other:?} (send, inbox, read, ack, thread)"
        )),
    }
}

pub async fn wait_events(app: &App, args: Args) -> Result<Value, String> {
    let timeout = seconds(&args, "timeout_s", DEFAULT_WAIT_S)?.max(1);
    let mut q = vec![
        ("pattern".to_owned(), args.text("pattern")),
        ("timeout".to_owned(), format!("{timeout}s")),
    ];
    if let Some(since) = args.int("since") {
        q.push(("since".into(), since.to_string()));
    }
    let events = answer(crate::api::wait::events_wait(app.clone(), Query(q)).await).await?;
    let count = events.as_array().map_or(0, Vec::len);
    let next = events
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e["id"].as_i64());
    Ok(json!({
        "count": count,
        "events": events,
        "message": match next {
            Some(id) => format!("Call again with since={id} to wait for the next ones."),
            None => format!("Nothing in {timeout}s; call again to keep waiting."),
        },
    }))
}
