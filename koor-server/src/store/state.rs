//! Flat, versioned key/value state. The current row of each key lives in `state`; every version's
//! bytes live once in `state_versions`.

use koor_shared::ContentHash;
use koor_shared::types::{RawJson, StateSummary, StateWrite, VersionInfo};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{Result, StoreError, Tx};

/// A stored value with its metadata.
#[derive(Debug, Clone)]
pub struct Stored {
    pub version: i64,
    pub hash: ContentHash,
    pub content_type: String,
    pub value: Vec<u8>,
}

/// Preconditions of a conditional write (ext).
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// Raw `If-Match` header.
    pub if_match: Option<String>,
    /// `X-Koor-If-Version`; 0 means "the key must not exist".
    pub if_version: Option<i64>,
    /// `If-None-Match: *`.
    pub create_only: bool,
}

impl Condition {
    /// Checks the condition against the current (version, hash) of `what`, if it exists.
    pub fn check(&self, what: &str, current: Option<(i64, &ContentHash)>) -> Result<()> {
        let fail = |message: String| StoreError::Precondition {
            message,
            current_version: current.map(|(v, _)| v),
        };
        if self.create_only
            && let Some((v, _)) = current
        {
            return Err(fail(format!(
                "precondition failed: {what} already exists (version {v})"
            )));
        }
        if let Some(want) = self.if_version {
            let have = current.map_or(0, |(v, _)| v);
            if want != have {
                return Err(fail(format!(
                    "precondition failed: {what} is at version {have}, not {want}"
                )));
            }
        }
        if let Some(tag) = &self.if_match {
            match current {
                Some((_, hash)) if hash.matches_if_match(tag) => {}
                Some((v, _)) => {
                    return Err(fail(format!(
                        "precondition failed: {what} has changed (current version {v})"
                    )));
                }
                None => return Err(fail(format!("precondition failed: {what} does not exist"))),
            }
        }
        Ok(())
    }
}

pub fn not_found(key: &str) -> StoreError {
    StoreError::NotFound(format!("key not found: {key}"))
}

pub fn list(conn: &Connection) -> Result<Vec<StateSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, version, content_type, updated_at, size FROM state ORDER BY key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StateSummary {
            key: r.get(0)?,
            version: r.get(1)?,
            content_type: r.get(2)?,
            updated_at: r.get(3)?,
            size: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM state", [], |r| r.get(0))?)
}

/// The current (version, hash) of a key.
fn current(conn: &Connection, key: &str) -> Result<Option<(i64, ContentHash)>> {
    let mut stmt = conn.prepare_cached("SELECT version, hash FROM state WHERE key = ?1")?;
    Ok(stmt
        .query_row([key], |r| {
            Ok((r.get(0)?, ContentHash::from_hex(r.get::<_, String>(1)?)))
        })
        .optional()?)
}

/// The current value, or version `version` of it.
pub fn get(conn: &Connection, key: &str, version: Option<i64>) -> Result<Stored> {
    let row = match version {
        // The newest version is the current one (a delete removes every version): one descent
        // of the (key, version) index instead of a lookup in both tables.
        None => conn
            .prepare_cached(
                "SELECT version, hash, content_type, value FROM state_versions
                 WHERE key = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row([key], stored_row)
            .optional()?,
        Some(n) => conn
            .prepare_cached(
                "SELECT version, hash, content_type, value FROM state_versions
                 WHERE key = ?1 AND version = ?2",
            )?
            .query_row(params![key, n], stored_row)
            .optional()?,
    };
    match (row, version) {
        (Some(stored), _) => Ok(stored),
        (None, Some(n)) if current(conn, key)?.is_some() => Err(StoreError::NotFound(format!(
            "version {n} not found for key: {key}"
        ))),
        (None, _) => Err(not_found(key)),
    }
}

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        version: r.get(0)?,
        hash: ContentHash::from_hex(r.get::<_, String>(1)?),
        content_type: r.get(2)?,
        value: r.get(3)?,
    })
}

/// Versions of a key, newest first.
pub fn history(conn: &Connection, key: &str, limit: i64) -> Result<Vec<VersionInfo>> {
    if current(conn, key)?.is_none() {
        return Err(not_found(key));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT version, hash, updated_at, content_type, length(value) FROM state_versions
         WHERE key = ?1 ORDER BY version DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![key, limit], |r| {
        Ok(VersionInfo {
            version: r.get(0)?,
            hash: r.get(1)?,
            updated_at: r.get(2)?,
            content_type: r.get(3)?,
            size: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The current (version, hash) of a key, for a write: from what the batch and the cache know,
/// else from SQLite.
fn current_for_write(tx: &Tx<'_>, key: &str) -> Result<Option<(i64, ContentHash)>> {
    match tx.known_state(key) {
        Some(known) => Ok(known),
        None => current(tx.conn(), key),
    }
}

/// Writes a new version of `key`. Checks everything before it changes a row, so it may run
/// without a savepoint ([`super::Store::write_no_savepoint`]).
pub fn put(
    tx: &mut Tx<'_>,
    key: &str,
    value: &[u8],
    content_type: &str,
    hash: &ContentHash,
    cond: &Condition,
) -> Result<StateWrite> {
    let cur = current_for_write(tx, key)?;
    cond.check(&format!("key {key}"), cur.as_ref().map(|(v, h)| (*v, h)))?;
    let version = cur.map_or(1, |(v, _)| v + 1);
    write_version(tx, key, version, value, content_type, hash)
}

fn write_version(
    tx: &mut Tx<'_>,
    key: &str,
    version: i64,
    value: &[u8],
    content_type: &str,
    hash: &ContentHash,
) -> Result<StateWrite> {
    let now = tx.now().to_owned();
    let size = value.len() as i64;
    tx.conn()
        .prepare_cached(
            "INSERT INTO state_versions (key, version, hash, content_type, value, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            key,
            version,
            hash.as_str(),
            content_type,
            value,
            now
        ])?;
    tx.conn()
        .prepare_cached(
            "INSERT INTO state (key, version, hash, content_type, size, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (key) DO UPDATE SET version = excluded.version, hash = excluded.hash,
               content_type = excluded.content_type, size = excluded.size,
               updated_at = excluded.updated_at",
        )?
        .execute(params![
            key,
            version,
            hash.as_str(),
            content_type,
            size,
            now
        ])?;
    let cache = tx.cache();
    let (k, current) = (
        key.to_owned(),
        super::Current::new(
            version,
            hash,
            content_type,
            bytes::Bytes::copy_from_slice(value),
        ),
    );
    tx.after_commit(move || cache.put(&k, current));
    tx.wrote_state(key, Some((version, hash.clone())));
    tx.emit(
        "koor.state.updated",
        RawJson::of(&Updated {
            key,
            version,
            hash: hash.as_str(),
            content_type,
            size,
        }),
        "koor",
    )?;
    Ok(StateWrite {
        key: key.to_owned(),
        version,
        hash: hash.as_str().to_owned(),
        content_type: content_type.to_owned(),
        updated_at: now,
    })
}

/// The data of `koor.state.updated`.
#[derive(serde::Serialize)]
struct Updated<'a> {
    key: &'a str,
    version: i64,
    hash: &'a str,
    content_type: &'a str,
    size: i64,
}

/// Writes version `target`'s value again as a new version. Returns the write and the target.
/// Checks before it changes a row, like [`put`].
pub fn rollback(tx: &mut Tx<'_>, key: &str, target: i64) -> Result<StateWrite> {
    let cur = current_for_write(tx, key)?.ok_or_else(|| not_found(key))?;
    let old = get(tx.conn(), key, Some(target))?;
    write_version(tx, key, cur.0 + 1, &old.value, &old.content_type, &old.hash)
}

/// Deletes a key and all its versions. Checks before it changes a row, like [`put`].
pub fn delete(tx: &mut Tx<'_>, key: &str, cond: &Condition) -> Result<()> {
    let cur = current_for_write(tx, key)?;
    let Some((version, hash)) = cur else {
        return Err(not_found(key));
    };
    cond.check(&format!("key {key}"), Some((version, &hash)))?;
    tx.conn()
        .prepare_cached("DELETE FROM state WHERE key = ?1")?
        .execute([key])?;
    tx.conn()
        .prepare_cached("DELETE FROM state_versions WHERE key = ?1")?
        .execute([key])?;
    let cache = tx.cache();
    let k = key.to_owned();
    tx.after_commit(move || cache.remove(&k));
    tx.wrote_state(key, None);
    tx.emit(
        "koor.state.deleted",
        json!({"key": key, "version": version}),
        "koor",
    )?;
    Ok(())
}
