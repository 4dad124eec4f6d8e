//! Agent instances as rows. The in-memory registry (`crate::instances`) is the read path; these
//! functions persist its changes.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

/// An instance as stored, with its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub intent: String,
    pub stack: String,
    pub capabilities: Vec<String>,
    pub status: String,
    pub token_hash: String,
    pub registered_at: String,
    pub last_seen: String,
}

const COLUMNS: &str = "id, name, workspace, intent, stack, capabilities, status, token_hash, registered_at, last_seen";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let caps: String = r.get(5)?;
    Ok(Row {
        id: r.get(0)?,
        name: r.get(1)?,
        workspace: r.get(2)?,
        intent: r.get(3)?,
        stack: r.get(4)?,
        capabilities: serde_json::from_str(&caps).unwrap_or_default(),
        status: r.get(6)?,
        token_hash: r.get(7)?,
        registered_at: r.get(8)?,
        last_seen: r.get(9)?,
    })
}

pub fn load_all(conn: &Connection) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM instances ORDER BY rowid"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One row as the current transaction sees it (the writer's source of truth: memory is only
/// updated after commit).
pub fn get(conn: &Connection, id: &str) -> Result<Option<Row>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// Inserts or replaces the whole row.
pub fn upsert(conn: &Connection, row: &Row) -> Result<()> {
    let caps = serde_json::to_string(&row.capabilities).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO instances (id, name, workspace, intent, stack, capabilities, status, token_hash, registered_at, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, workspace = excluded.workspace,
           intent = excluded.intent, stack = excluded.stack, capabilities = excluded.capabilities,
           status = excluded.status, last_seen = excluded.last_seen",
    )?
    .execute(params![
        row.id,
        row.name,
        row.workspace,
        row.intent,
        row.stack,
        caps,
        row.status,
        row.token_hash,
        row.registered_at,
        row.last_seen
    ])?;
    Ok(())
}

/// Records the last contact of many instances at once (heartbeats are batched).
pub fn touch_many(conn: &Connection, seen: &[(String, String)]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("UPDATE instances SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2")?;
    for (id, at) in seen {
        stmt.execute(params![id, at])?;
    }
    Ok(())
}

/// Returns whether a row was deleted.
pub fn delete(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM instances WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// (id, name) of every registered instance named `name`, in registration order.
pub fn named(conn: &Connection, name: &str) -> Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name FROM instances WHERE name = ?1 ORDER BY rowid")?;
    let rows = stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
