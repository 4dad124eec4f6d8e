//! Messages between instances (COORDINATION.md, "Messages"): directed, threaded, with read and
//! ack receipts per recipient. Reading never makes mail vanish: listing marks nothing, and a
//! receipt only adds a time to the recipient's row.
//!
//! Messages are not holds (they have no TTL); a message outlives its sender and recipients,
//! whose names are stored beside their ids. Every send is one write transaction that resolves
//! the recipients as that transaction sees the registry and emits `koor.message.sent` (never the
//! body); a first read or ack emits `koor.message.read` / `koor.message.acked`.

use koor_shared::types::{Holder, Inbox, Message, Sent, Thread};
use serde_json::{Value, json};

use crate::holds::holder_json;
use crate::store::messages::{self as rows, InboxFilter, NewMessage};
use crate::store::{Result, Store, StoreError, Tx};

/// Largest message body, as its JSON text.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest subject.
pub const MAX_SUBJECT_BYTES: usize = 1024;
/// Most addressees one message may name.
pub const MAX_TO: usize = 256;
/// Most messages one thread or inbox listing returns.
pub const MAX_LIST: usize = 1000;

/// A message to send; `body` is its JSON text (`None`: no body).
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: Option<String>,
    pub thread_id: Option<i64>,
    pub ack_required: bool,
}

/// `to` resolved as this transaction sees the registry: an id is that instance, a name every
/// instance registered under it. Duplicates collapse; one that matches nobody is a 400 naming it.
fn resolve(tx: &Tx<'_>, to: &[String]) -> Result<Vec<Holder>> {
    let mut out: Vec<Holder> = Vec::new();
    let mut unknown = Vec::new();
    for raw in to {
        let who = raw.trim();
        let found = match crate::store::instances::get(tx.conn(), who)? {
            Some(row) => vec![(row.id, row.name)],
            None => crate::store::instances::named(tx.conn(), who)?,
        };
        if found.is_empty() {
            unknown.push(format!("{who:?}"));
        }
        for (id, name) in found {
            if !out.iter().any(|h| h.id == id) {
                out.push(Holder { id, name });
            }
        }
    }
    if !unknown.is_empty() {
        return Err(StoreError::Invalid(format!(
            "no registered instance has the id or name {}",
            unknown.join(", ")
        )));
    }
    Ok(out)
}

fn check(m: &Outgoing) -> Result<()> {
    if m.from.trim().is_empty() {
        return Err(StoreError::Invalid(
            "from is required: the sending instance's id".into(),
        ));
    }
    if m.to.iter().all(|t| t.trim().is_empty()) {
        return Err(StoreError::Invalid(
            "to is required: instance ids or names".into(),
        ));
    }
    if m.to.len() > MAX_TO {
        return Err(StoreError::Invalid(format!(
            "too many addressees: at most {MAX_TO}"
        )));
    }
    if m.subject.trim().is_empty() {
        return Err(StoreError::Invalid("subject is required".into()));
    }
    if m.subject.len() > MAX_SUBJECT_BYTES {
        return Err(StoreError::Invalid(format!(
            "subject too long: at most {MAX_SUBJECT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Sends a message: one transaction that checks the sender, resolves the addressees, stores the
/// message and emits `koor.message.sent`.
pub async fn send(store: &Store, m: Outgoing) -> Result<Sent> {
    check(&m)?;
    store
        .write(move |tx| {
            let from = crate::holds::holder(tx, m.from.trim())?;
            let to: Vec<String> =
                m.to.iter()
                    .filter(|t| !t.trim().is_empty())
                    .cloned()
                    .collect();
            let to = resolve(tx, &to)?;
            let thread_id = match m.thread_id {
                None => None,
                Some(t) => Some(rows::thread_of(tx.conn(), t)?.ok_or_else(|| {
                    StoreError::Invalid(format!("thread not found: {t} (no message has that id)"))
                })?),
            };
            let now = tx.now().to_owned();
            let (id, thread_id) = rows::insert(
                tx.conn(),
                &NewMessage {
                    thread_id,
                    from: &from,
                    to: &to,
                    subject: m.subject.trim(),
                    body: m.body.as_deref(),
                    ack_required: m.ack_required,
                    created_at: &now,
                },
            )?;
            tx.emit(
                "koor.message.sent",
                json!({
                    "id": id,
                    "thread_id": thread_id,
                    "from": holder_json(&from),
                    "to": to.iter().map(holder_json).collect::<Vec<_>>(),
                    "subject": m.subject.trim(),
                    "ack_required": m.ack_required,
                }),
                "koor",
            )?;
            Ok(Sent { id, thread_id, to })
        })
        .await
}

/// One message with every recipient's receipts; 404 when there is none with that id.
pub async fn get(store: &Store, id: i64) -> Result<Message> {
    store
        .read(move |c| rows::get(c, id)?.ok_or_else(|| not_found(id)))
        .await
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("message not found: {id}"))
}

/// Every message of a thread, oldest first; 404 when the thread has none.
pub async fn thread(store: &Store, thread_id: i64) -> Result<Thread> {
    let messages = store
        .read(move |c| rows::thread(c, thread_id, MAX_LIST))
        .await?;
    if messages.is_empty() {
        return Err(StoreError::NotFound(format!(
            "thread not found: {thread_id}"
        )));
    }
    Ok(Thread {
        thread_id,
        messages,
    })
}

/// The newest `last` messages after `since`, oldest first.
pub async fn recent(store: &Store, since: i64, last: usize) -> Result<Vec<Message>> {
    store.read(move |c| rows::recent(c, since, last)).await
}

/// Unread counts per instance (only inboxes with unread messages).
pub async fn unread_counts(store: &Store) -> Result<Vec<(String, i64)>> {
    store.read(rows::unread_counts).await
}

/// `instance`'s inbox as the filter selects it (marks nothing).
pub async fn inbox(store: &Store, instance: &str, filter: InboxFilter) -> Result<Inbox> {
    let instance = instance.to_owned();
    store
        .read(move |c| {
            Ok(Inbox {
                messages: rows::inbox(c, &instance, &filter)?,
                unread: rows::unread_count(c, &instance)?,
                instance_id: instance,
            })
        })
        .await
}

/// Marks message `id` read (or acked, which also marks it read) for `instance`. Idempotent: a
/// receipt keeps its first time, and only the first emits an event. Answers the receipts.
pub async fn mark(store: &Store, instance: &str, id: i64, ack: bool) -> Result<Value> {
    let instance = instance.to_owned();
    store
        .write(move |tx| {
            let row = crate::store::instances::get(tx.conn(), &instance)?
                .ok_or_else(|| crate::instances::not_found(&instance))?;
            let Some((read_before, acked_before)) = rows::receipts(tx.conn(), id, &instance)?
            else {
                return Err(match rows::thread_of(tx.conn(), id)? {
                    None => not_found(id),
                    Some(_) => StoreError::NotFound(format!(
                        "message {id} is not in the inbox of {} ({instance})",
                        row.name
                    )),
                });
            };
            let now = tx.now().to_owned();
            let (read_at, acked_at) = rows::mark(tx.conn(), id, &instance, ack, &now)?;
            let topic = if ack && acked_before.is_none() {
                Some("koor.message.acked")
            } else if read_before.is_none() {
                Some("koor.message.read")
            } else {
                None
            };
            if let Some(topic) = topic {
                let thread_id = rows::thread_of(tx.conn(), id)?.unwrap_or(id);
                tx.emit(
                    topic,
                    json!({"id": id, "thread_id": thread_id,
                           "instance": {"id": row.id, "name": row.name}}),
                    "koor",
                )?;
            }
            Ok(json!({"id": id, "instance_id": instance, "read_at": read_at, "acked_at": acked_at}))
        })
        .await
}
