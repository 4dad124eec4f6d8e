//! Holds as rows: one table for every kind (locks, file reservations, task claims). The model
//! (expiry, keepalive, fences, who may act) lives in `crate::holds`; these functions only read and
//! write rows. Expiry is `expires_ms` (Unix milliseconds) compared with now: a row past it is free
//! for every read here, whether or not the sweep has removed it yet.

use koor_shared::types::Holder;
use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: String,
    /// `lock`, `reservation`, `task`.
    pub kind: String,
    /// Empty for locks.
    pub project: String,
    /// The lock name, the reserved path or glob, the task id.
    pub resource: String,
    pub holder: Holder,
    pub fence: i64,
    pub ttl_ms: i64,
    pub exclusive: bool,
    pub reason: String,
    pub acquired_at: String,
    pub expires_ms: i64,
}

impl Hold {
    /// `expires_ms` on the wire.
    pub fn expires_at(&self) -> String {
        rfc3339_ms(self.expires_ms)
    }

    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_ms > now_ms
    }
}

/// Unix milliseconds as RFC 3339 with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(koor_shared::time::format_rfc3339)
        .unwrap_or_default()
}

const COLUMNS: &str = "id, kind, project, resource, holder, holder_name, fence, ttl_ms, exclusive, reason, acquired_at, expires_ms";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hold> {
    Ok(Hold {
        id: r.get(0)?,
        kind: r.get(1)?,
        project: r.get(2)?,
        resource: r.get(3)?,
        holder: Holder {
            id: r.get(4)?,
            name: r.get(5)?,
        },
        fence: r.get(6)?,
        ttl_ms: r.get(7)?,
        exclusive: r.get(8)?,
        reason: r.get(9)?,
        acquired_at: r.get(10)?,
        expires_ms: r.get(11)?,
    })
}

fn query(conn: &Connection, where_: &str, args: impl rusqlite::Params) -> Result<Vec<Hold>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM holds WHERE {where_}"))?;
    let rows = stmt.query_map(args, from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert(conn: &Connection, h: &Hold) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO holds ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        h.id,
        h.kind,
        h.project,
        h.resource,
        h.holder.id,
        h.holder.name,
        h.fence,
        h.ttl_ms,
        h.exclusive,
        h.reason,
        h.acquired_at,
        h.expires_ms
    ])?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Hold>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM holds WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// Live holds of one kind on one resource (at most one for a lock or a task; reservations may
/// share a path).
pub fn on_resource(
    conn: &Connection,
    kind: &str,
    project: &str,
    resource: &str,
    now_ms: i64,
) -> Result<Vec<Hold>> {
    query(
        conn,
        "kind = ?1 AND project = ?2 AND resource = ?3 AND expires_ms > ?4 ORDER BY fence",
        params![kind, project, resource, now_ms],
    )
}

/// Live holds of a kind, optionally of one project and one holder, in grant order.
pub fn list(
    conn: &Connection,
    kind: &str,
    project: Option<&str>,
    holder: Option<&str>,
    now_ms: i64,
) -> Result<Vec<Hold>> {
    query(
        conn,
        "kind = ?1 AND expires_ms > ?2 AND (?3 IS NULL OR project = ?3) AND (?4 IS NULL OR holder = ?4)
         ORDER BY project, resource, fence",
        params![kind, now_ms, project, holder],
    )
}

/// Every hold of an instance, live or not.
pub fn of_holder(conn: &Connection, holder: &str) -> Result<Vec<Hold>> {
    query(conn, "holder = ?1 ORDER BY fence", [holder])
}

/// Holds whose time is up, oldest expiry first.
pub fn due(conn: &Connection, now_ms: i64) -> Result<Vec<Hold>> {
    query(
        conn,
        "expires_ms <= ?1 ORDER BY expires_ms, fence",
        [now_ms],
    )
}

/// Every hold: (id, holder, expires_ms), for the in-memory expiry index at startup.
pub fn index(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare("SELECT id, holder, expires_ms FROM holds")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// New expiry (and ttl) for one hold.
pub fn set_expiry(conn: &Connection, id: &str, ttl_ms: i64, expires_ms: i64) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE holds SET ttl_ms = ?2, expires_ms = ?3 WHERE id = ?1")?
        .execute(params![id, ttl_ms, expires_ms])?;
    Ok(n > 0)
}

/// Renews every live hold of `holder` to `now + its ttl`; returns (id, new expiry) of each.
pub fn renew_holder(conn: &Connection, holder: &str, now_ms: i64) -> Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE holds SET expires_ms = ?2 + ttl_ms WHERE holder = ?1 AND expires_ms > ?2
         RETURNING id, expires_ms",
    )?;
    let rows = stmt.query_map(params![holder, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete(conn: &Connection, id: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM holds WHERE id = ?1")?
        .execute([id])?;
    Ok(n > 0)
}

/// New mode and reason for one hold (a reservation renewed with other terms).
pub fn set_terms(conn: &Connection, id: &str, exclusive: bool, reason: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE holds SET exclusive = ?2, reason = ?3 WHERE id = ?1")?
        .execute(params![id, exclusive, reason])?;
    Ok(n > 0)
}
