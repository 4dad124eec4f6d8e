//! Messages as rows: one row per message, one per recipient with its receipts. The rows keep
//! the names of sender and recipients beside their ids, so a message stays readable after the
//! instances it names are deregistered. The rules (who may send, resolving names) live in
//! `crate::messages`.

use koor_shared::types::{Holder, InboxMessage, Message, Recipient};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::Result;

/// A new message before it has an id.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// `None`: the message starts its own thread.
    pub thread_id: Option<i64>,
    pub from: &'a Holder,
    pub to: &'a [Holder],
    pub subject: &'a str,
    /// The body's JSON text; `None` when no body was sent.
    pub body: Option<&'a str>,
    pub ack_required: bool,
    pub created_at: &'a str,
}

/// Stores a message and its recipients; returns (id, thread_id).
pub fn insert(conn: &Connection, m: &NewMessage<'_>) -> Result<(i64, i64)> {
    conn.prepare_cached(
        "INSERT INTO messages (thread_id, from_id, from_name, subject, body, ack_required, created_at)
         VALUES (COALESCE(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.thread_id,
        m.from.id,
        m.from.name,
        m.subject,
        m.body,
        m.ack_required,
        m.created_at
    ])?;
    let id = conn.last_insert_rowid();
    let thread_id = match m.thread_id {
        Some(t) => t,
        None => {
            conn.prepare_cached("UPDATE messages SET thread_id = ?1 WHERE id = ?1")?
                .execute([id])?;
            id
        }
    };
    let mut add = conn.prepare_cached(
        "INSERT INTO message_recipients (message_id, pos, instance_id, instance_name) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (pos, r) in m.to.iter().enumerate() {
        add.execute(params![id, pos as i64, r.id, r.name])?;
    }
    Ok((id, thread_id))
}

/// The thread a message belongs to, if the message exists.
pub fn thread_of(conn: &Connection, id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT thread_id FROM messages WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

const COLUMNS: &str =
    "m.id, m.thread_id, m.from_id, m.from_name, m.subject, m.body, m.ack_required, m.created_at";

/// A message row without its recipients (filled by [`with_recipients`]).
fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let body: Option<String> = r.get(5)?;
    Ok(Message {
        id: r.get(0)?,
        thread_id: r.get(1)?,
        from: Holder {
            id: r.get(2)?,
            name: r.get(3)?,
        },
        to: Vec::new(),
        subject: r.get(4)?,
        body: body
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null),
        ack_required: r.get(6)?,
        created_at: r.get(7)?,
    })
}

fn with_recipients(conn: &Connection, mut m: Message) -> Result<Message> {
    let mut stmt = conn.prepare_cached(
        "SELECT instance_id, instance_name, read_at, acked_at FROM message_recipients
         WHERE message_id = ?1 ORDER BY pos",
    )?;
    let rows = stmt.query_map([m.id], |r| {
        Ok(Recipient {
            id: r.get(0)?,
            name: r.get(1)?,
            read_at: r.get(2)?,
            acked_at: r.get(3)?,
        })
    })?;
    m.to = rows.collect::<rusqlite::Result<_>>()?;
    Ok(m)
}

/// One message with every recipient's receipts.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Message>> {
    let m = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM messages m WHERE m.id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    m.map(|m| with_recipients(conn, m)).transpose()
}

/// Every message of a thread, oldest first (at most `limit`).
pub fn thread(conn: &Connection, thread_id: i64, limit: usize) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.thread_id = ?1 ORDER BY m.id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![thread_id, limit as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|m| with_recipients(conn, m)).collect()
}

/// The newest `last` messages with id > `since`, listed oldest first (the console's snapshot).
pub fn recent(conn: &Connection, since: i64, last: usize) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages m WHERE m.id > ?1 ORDER BY m.id DESC LIMIT ?2"
    ))?;
    let mut rows = stmt
        .query_map(params![since, last as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.reverse();
    rows.into_iter().map(|m| with_recipients(conn, m)).collect()
}

/// Filters of an inbox listing.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub unread: bool,
    /// Sent with `ack_required` and not yet acked.
    pub unacked: bool,
    /// Only messages with id > since.
    pub since: i64,
    pub thread_id: Option<i64>,
    /// The newest `last` matching (still listed oldest first); else the oldest `limit`.
    pub last: Option<usize>,
    pub limit: usize,
}

/// The messages of `instance`'s inbox that match, oldest first.
pub fn inbox(conn: &Connection, instance: &str, f: &InboxFilter) -> Result<Vec<InboxMessage>> {
    let (order, limit) = match f.last {
        Some(n) => ("DESC", n),
        None => ("ASC", f.limit),
    };
    // Only the filters asked for are in the SQL (one cached statement per combination): a
    // `(?N = 0 OR ...)` form makes SQLite plan the statement again whenever a bound value
    // changes, which is every call.
    let mut sql = format!(
        "SELECT {COLUMNS}, r.read_at, r.acked_at FROM message_recipients r
         JOIN messages m ON m.id = r.message_id
         WHERE r.instance_id = ?1 AND r.message_id > ?2"
    );
    if f.unread {
        sql.push_str(" AND r.read_at IS NULL");
    }
    if f.unacked {
        sql.push_str(" AND m.ack_required AND r.acked_at IS NULL");
    }
    if f.thread_id.is_some() {
        sql.push_str(" AND m.thread_id = ?3");
    }
    sql.push_str(&format!(" ORDER BY r.message_id {order} LIMIT ?4"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(params![instance, f.since, f.thread_id, limit as i64], |r| {
            Ok((from_row(r)?, r.get(8)?, r.get(9)?))
        })?
        .collect::<rusqlite::Result<Vec<(Message, Option<String>, Option<String>)>>>()?;
    if f.last.is_some() {
        rows.reverse();
    }
    rows.into_iter()
        .map(|(m, read_at, acked_at)| {
            Ok(InboxMessage {
                message: with_recipients(conn, m)?,
                read_at,
                acked_at,
            })
        })
        .collect()
}

/// How many messages of `instance`'s inbox are unread.
pub fn unread_count(conn: &Connection, instance: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT unread FROM inbox_unread WHERE instance_id = ?1")?
        .query_row([instance], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Unread counts of every inbox that has unread messages: (instance id, count).
pub fn unread_counts(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT instance_id, unread FROM inbox_unread WHERE unread > 0 ORDER BY instance_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A recipient's receipts for one message: (read_at, acked_at); `None` when the message is not
/// in that inbox.
pub type Receipts = (Option<String>, Option<String>);

pub fn receipts(conn: &Connection, message: i64, instance: &str) -> Result<Option<Receipts>> {
    Ok(conn
        .prepare_cached(
            "SELECT read_at, acked_at FROM message_recipients WHERE message_id = ?1 AND instance_id = ?2",
        )?
        .query_row(params![message, instance], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Sets `read_at` (and `acked_at` when `ack`) where not yet set; returns the receipts after.
pub fn mark(
    conn: &Connection,
    message: i64,
    instance: &str,
    ack: bool,
    now: &str,
) -> Result<Receipts> {
    conn.prepare_cached(
        "UPDATE message_recipients SET read_at = COALESCE(read_at, ?3),
           acked_at = CASE WHEN ?4 THEN COALESCE(acked_at, ?3) ELSE acked_at END
         WHERE message_id = ?1 AND instance_id = ?2",
    )?
    .execute(params![message, instance, now, ack])?;
    Ok(receipts(conn, message, instance)?.unwrap_or_default())
}
