//! Webhooks: where to POST matching events, and how far each one has got.
//!
//! `cursor` is the id of the newest event a webhook has dealt with (delivered, or skipped because
//! its topic did not match). It only moves forward after a delivery succeeded, so a server that
//! stops mid-delivery resumes from the first event not yet acknowledged by the receiver.

use koor_shared::ops::{CreateWebhook, Webhook};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{Result, StoreError, Tx, events};

/// A webhook row as the delivery workers need it (with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub hook: Webhook,
    pub secret: String,
    /// Changes whenever the webhook is (re)configured; workers of an older one stop.
    pub updated_at: String,
}

const COLUMNS: &str = "id, url, patterns, secret, active, created_at, updated_at, cursor, delivered, \
                       fail_count, last_fired, last_attempt_at, last_status, last_error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let patterns: String = r.get(2)?;
    let secret: String = r.get(3)?;
    Ok(Row {
        hook: Webhook {
            id: r.get(0)?,
            url: r.get(1)?,
            patterns: serde_json::from_str(&patterns).unwrap_or_default(),
            active: r.get::<_, i64>(4)? != 0,
            created_at: r.get(5)?,
            last_event_id: r.get(7)?,
            delivered: r.get(8)?,
            fail_count: r.get(9)?,
            last_fired: r.get(10)?,
            last_attempt_at: r.get(11)?,
            last_status: r.get(12)?,
            last_error: r.get(13)?,
            has_secret: !secret.is_empty(),
        },
        secret,
        updated_at: r.get(6)?,
    })
}

pub fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook not found: {id}"))
}

/// Every webhook, oldest first.
pub fn list(conn: &Connection) -> Result<Vec<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn get(conn: &Connection, id: &str) -> Result<Row> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1");
    conn.prepare_cached(&sql)?
        .query_row([id], row)
        .optional()?
        .ok_or_else(|| not_found(id))
}

/// Creates a webhook, or reconfigures (and re-enables) an existing one with the same id. A new
/// webhook starts after the newest event; a reconfigured one keeps its cursor, so events that
/// arrived while it was disabled are still delivered.
pub fn upsert(tx: &mut Tx<'_>, req: &CreateWebhook) -> Result<Row> {
    let now = tx.now().to_owned();
    let patterns = serde_json::to_string(&req.patterns).unwrap_or_else(|_| "[]".into());
    let existed = get(tx.conn(), &req.id).is_ok();
    if existed {
        tx.conn()
            .prepare_cached(
                "UPDATE webhooks SET url = ?2, patterns = ?3, secret = ?4, active = 1, updated_at = ?5, \
                 fail_count = 0, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![req.id, req.url, patterns, req.secret, now])?;
    } else {
        let cursor = events::last_id(tx.conn())?;
        tx.conn()
            .prepare_cached(
                "INSERT INTO webhooks (id, url, patterns, secret, active, created_at, updated_at, cursor) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?6)",
            )?
            .execute(params![req.id, req.url, patterns, req.secret, now, cursor])?;
    }
    let stored = get(tx.conn(), &req.id)?;
    let topic = if existed {
        "koor.webhook.updated"
    } else {
        "koor.webhook.created"
    };
    tx.emit(
        topic,
        json!({"id": stored.hook.id, "url": stored.hook.url, "patterns": stored.hook.patterns}),
        "koor",
    )?;
    Ok(stored)
}

pub fn delete(tx: &mut Tx<'_>, id: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
        .execute([id])?;
    if n == 0 {
        return Err(not_found(id));
    }
    tx.emit("koor.webhook.deleted", json!({"id": id}), "koor")?;
    Ok(())
}

/// Moves the cursor past events that did not match (no delivery), when nothing else changed the
/// webhook meanwhile.
pub fn advance(conn: &Connection, id: &str, generation: &str, cursor: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE webhooks SET cursor = MAX(cursor, ?3) WHERE id = ?1 AND updated_at = ?2",
    )?
    .execute(params![id, generation, cursor])?;
    Ok(())
}

/// Records a delivery the receiver acknowledged.
pub fn delivered(
    tx: &mut Tx<'_>,
    id: &str,
    generation: &str,
    event_id: i64,
    status: u16,
) -> Result<()> {
    let now = tx.now().to_owned();
    let failures: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT fail_count FROM webhooks WHERE id = ?1 AND updated_at = ?2",
            params![id, generation],
            |r| r.get(0),
        )
        .optional()?;
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE webhooks SET cursor = MAX(cursor, ?3), delivered = delivered + 1, fail_count = 0, \
             last_fired = ?4, last_attempt_at = ?4, last_status = ?5, last_error = NULL \
             WHERE id = ?1 AND updated_at = ?2",
        )?
        .execute(params![id, generation, event_id, now, status])?;
    if n > 0 && failures.unwrap_or(0) > 0 {
        tx.emit(
            "koor.webhook.recovered",
            json!({"id": id, "status": status, "event_id": event_id}),
            "koor",
        )?;
    }
    Ok(())
}

/// Records a failed attempt. Returns the number of consecutive failures so far.
pub fn failed(
    tx: &mut Tx<'_>,
    id: &str,
    generation: &str,
    status: Option<u16>,
    error: &str,
) -> Result<i64> {
    let now = tx.now().to_owned();
    tx.conn()
        .prepare_cached(
            "UPDATE webhooks SET fail_count = fail_count + 1, last_attempt_at = ?3, last_status = ?4, \
             last_error = ?5 WHERE id = ?1 AND updated_at = ?2",
        )?
        .execute(params![id, generation, now, status, error])?;
    let count: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT fail_count FROM webhooks WHERE id = ?1 AND updated_at = ?2",
            params![id, generation],
            |r| r.get(0),
        )
        .optional()?;
    let count = count.unwrap_or(0);
    if count == 1 {
        tx.emit(
            "koor.webhook.failing",
            json!({"id": id, "status": status, "error": error}),
            "koor",
        )?;
    }
    Ok(count)
}

/// Turns a webhook off after too many failures and says so on the bus.
pub fn disable(tx: &mut Tx<'_>, id: &str, generation: &str, error: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("UPDATE webhooks SET active = 0 WHERE id = ?1 AND updated_at = ?2")?
        .execute(params![id, generation])?;
    if n > 0 {
        let row = get(tx.conn(), id)?;
        tx.emit(
            "koor.webhook.disabled",
            json!({
                "id": id,
                "url": row.hook.url,
                "fail_count": row.hook.fail_count,
                "last_error": error,
                "last_event_id": row.hook.last_event_id,
            }),
            "koor",
        )?;
    }
    Ok(())
}

/// Webhooks by health, for the metrics: (ok, failing, disabled).
pub fn health_counts(conn: &Connection) -> Result<(i64, i64, i64)> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(active = 1 AND fail_count = 0), 0), \
                COALESCE(SUM(active = 1 AND fail_count > 0), 0), \
                COALESCE(SUM(active = 0), 0) FROM webhooks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}
