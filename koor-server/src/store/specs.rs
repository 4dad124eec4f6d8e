//! Per-project specs: one current document per (project, name).

use koor_shared::ContentHash;
use koor_shared::types::{SpecSummary, SpecWrite};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::state::Condition;
use super::{Result, StoreError, Tx};

#[derive(Debug, Clone)]
pub struct Spec {
    pub version: i64,
    pub hash: ContentHash,
    pub data: Vec<u8>,
}

pub fn not_found(project: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!("spec not found: {project}/{name}"))
}

pub fn list(conn: &Connection, project: &str) -> Result<Vec<SpecSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, version, updated_at FROM specs WHERE project = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([project], |r| {
        Ok(SpecSummary {
            name: r.get(0)?,
            version: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every project with specs: `{"project","specs","updated_at"}`, sorted by project.
pub fn projects(conn: &Connection) -> Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT project, COUNT(*), MAX(updated_at) FROM specs GROUP BY project ORDER BY project",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(json!({
            "project": r.get::<_, String>(0)?,
            "specs": r.get::<_, i64>(1)?,
            "updated_at": r.get::<_, String>(2)?,
        }))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM specs", [], |r| r.get(0))?)
}

pub fn get(conn: &Connection, project: &str, name: &str) -> Result<Spec> {
    conn.prepare_cached("SELECT version, hash, data FROM specs WHERE project = ?1 AND name = ?2")?
        .query_row(params![project, name], |r| {
            Ok(Spec {
                version: r.get(0)?,
                hash: ContentHash::from_hex(r.get::<_, String>(1)?),
                data: r.get(2)?,
            })
        })
        .optional()?
        .ok_or_else(|| not_found(project, name))
}

fn current(conn: &Connection, project: &str, name: &str) -> Result<Option<(i64, ContentHash)>> {
    Ok(conn
        .prepare_cached("SELECT version, hash FROM specs WHERE project = ?1 AND name = ?2")?
        .query_row(params![project, name], |r| {
            Ok((r.get(0)?, ContentHash::from_hex(r.get::<_, String>(1)?)))
        })
        .optional()?)
}

pub fn put(
    tx: &mut Tx<'_>,
    project: &str,
    name: &str,
    data: &[u8],
    hash: &ContentHash,
    cond: &Condition,
) -> Result<SpecWrite> {
    let cur = current(tx.conn(), project, name)?;
    cond.check(
        &format!("spec {project}/{name}"),
        cur.as_ref().map(|(v, h)| (*v, h)),
    )?;
    let version = cur.map_or(1, |(v, _)| v + 1);
    let now = tx.now().to_owned();
    tx.conn()
        .prepare_cached(
            "INSERT INTO specs (project, name, version, hash, data, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (project, name) DO UPDATE SET version = excluded.version,
               hash = excluded.hash, data = excluded.data, updated_at = excluded.updated_at",
        )?
        .execute(params![project, name, version, hash.as_str(), data, now])?;
    tx.emit(
        "koor.spec.updated",
        json!({"project": project, "name": name, "version": version, "hash": hash.as_str()}),
        "koor",
    )?;
    Ok(SpecWrite {
        project: project.to_owned(),
        name: name.to_owned(),
        version,
        hash: hash.as_str().to_owned(),
        updated_at: now,
    })
}

pub fn delete(tx: &mut Tx<'_>, project: &str, name: &str, cond: &Condition) -> Result<()> {
    let (version, hash) =
        current(tx.conn(), project, name)?.ok_or_else(|| not_found(project, name))?;
    cond.check(&format!("spec {project}/{name}"), Some((version, &hash)))?;
    tx.conn()
        .prepare_cached("DELETE FROM specs WHERE project = ?1 AND name = ?2")?
        .execute(params![project, name])?;
    tx.emit(
        "koor.spec.deleted",
        json!({"project": project, "name": name, "version": version}),
        "koor",
    )?;
    Ok(())
}
