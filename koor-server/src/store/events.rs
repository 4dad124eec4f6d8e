//! Event history: every published event (system ones too) is stored with a strictly increasing id.

use koor_shared::types::Event;
use rusqlite::{Connection, params};
use serde_json::Value;

use super::Result;

/// Stores one event and returns it with its id.
pub fn insert(
    conn: &Connection,
    topic: &str,
    data: &Value,
    source: &str,
    now: &str,
) -> Result<Event> {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    conn.prepare_cached(
        "INSERT INTO events (topic, data, source, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![topic, text, source, now])?;
    Ok(Event {
        id: conn.last_insert_rowid(),
        topic: topic.to_owned(),
        data: data.clone(),
        source: source.to_owned(),
        created_at: now.to_owned(),
    })
}

/// The highest id ever handed out (ids are never reused, even after pruning).
pub fn last_id(conn: &Connection) -> Result<i64> {
    let from_seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .ok();
    let from_rows: Option<i64> = conn.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
    Ok(from_seq.unwrap_or(0).max(from_rows.unwrap_or(0)))
}

pub fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let data: String = r.get(2)?;
    Ok(Event {
        id: r.get(0)?,
        topic: r.get(1)?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        source: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Events currently retained.
pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}
