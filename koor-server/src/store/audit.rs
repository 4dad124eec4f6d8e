//! The audit log: one append-only row per mutating request. Rows are only ever inserted, and
//! deleted oldest-first by retention pruning.

use koor_shared::ops::{AuditEntry, AuditSummary};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::Result;

/// An entry to append (the id and, when unknown yet, the actor are filled in on insert).
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    pub timestamp: String,
    /// The instance when the request named it, else empty (the remote address is used).
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub detail: String,
    pub outcome: String,
    pub status: u16,
    pub method: String,
    pub path: String,
    pub remote: String,
    pub token_used: bool,
}

/// The instance whose token hashes to `token_hash` (hex SHA-256), if one is registered.
pub fn instance_for_token(conn: &Connection, token_hash: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT id FROM instances WHERE token_hash = ?1")?
        .query_row([token_hash], |r| r.get(0))
        .optional()?)
}

/// Rows one `INSERT` writes at most: entries go in as few statements as the powers of two
/// up to this need (each row costs its b-tree work; each statement its own setup).
const ROWS_PER_INSERT: usize = 32;
const AUDIT_COLUMNS: usize = 11;

/// Appends entries.
pub fn append(conn: &Connection, entries: &[NewEntry]) -> Result<()> {
    let mut rest = entries;
    while !rest.is_empty() {
        let rows = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(rows);
        let mut insert = conn.prepare_cached(insert_sql(rows))?;
        for (i, e) in chunk.iter().enumerate() {
            let actor = if e.actor.is_empty() {
                remote_host(&e.remote)
            } else {
                e.actor.as_str()
            };
            let at = i * AUDIT_COLUMNS;
            insert.raw_bind_parameter(at + 1, &e.timestamp)?;
            insert.raw_bind_parameter(at + 2, actor)?;
            insert.raw_bind_parameter(at + 3, &e.action)?;
            insert.raw_bind_parameter(at + 4, &e.resource)?;
            insert.raw_bind_parameter(at + 5, &e.detail)?;
            insert.raw_bind_parameter(at + 6, &e.outcome)?;
            insert.raw_bind_parameter(at + 7, e.status)?;
            insert.raw_bind_parameter(at + 8, &e.method)?;
            insert.raw_bind_parameter(at + 9, &e.path)?;
            insert.raw_bind_parameter(at + 10, &e.remote)?;
            insert.raw_bind_parameter(at + 11, e.token_used)?;
        }
        insert.raw_execute()?;
        rest = tail;
    }
    Ok(())
}

/// `INSERT INTO audit_log (...) VALUES (?1, ...), (...)` for `rows` rows (a power of two up to
/// [`ROWS_PER_INSERT`]), built once.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..=ROWS_PER_INSERT.ilog2())
            .map(|p| build_insert_sql(1 << p))
            .collect()
    });
    &all[rows.ilog2() as usize]
}

fn build_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_log (timestamp, actor, action, resource, detail, outcome, status, \
         method, path, remote, token_used) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..AUDIT_COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(row * AUDIT_COLUMNS + col + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `127.0.0.1` of `127.0.0.1:53211`, `::1` of `[::1]:53211`.
fn remote_host(remote: &str) -> &str {
    match remote.parse::<std::net::SocketAddr>() {
        Ok(_) => remote
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(remote),
        Err(_) => remote,
    }
}

/// Filters of `GET /api/audit`. Times are already in the stored format.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    /// A topic-style pattern over actions (`state.*`, `webhook.create`).
    pub action: Option<koor_shared::topic::PatternSet>,
    /// A resource, or a prefix of one when it ends with `*`.
    pub resource: Option<String>,
}

impl Filter {
    fn sql(&self) -> (String, Vec<SqlValue>) {
        let mut clauses = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(f) = &self.from {
            args.push(f.clone().into());
            clauses.push(format!("timestamp >= ?{}", args.len()));
        }
        if let Some(t) = &self.to {
            args.push(t.clone().into());
            clauses.push(format!("timestamp <= ?{}", args.len()));
        }
        if let Some(a) = &self.actor {
            args.push(a.clone().into());
            clauses.push(format!("actor = ?{}", args.len()));
        }
        if let Some(r) = &self.resource {
            match r.strip_suffix('*') {
                Some(prefix) => {
                    args.push(prefix.to_owned().into());
                    clauses.push(format!(
                        "substr(resource, 1, length(?{n})) = ?{n}",
                        n = args.len()
                    ));
                }
                None => {
                    args.push(r.clone().into());
                    clauses.push(format!("resource = ?{}", args.len()));
                }
            }
        }
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (sql, args)
    }
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        resource: r.get(4)?,
        detail: r.get(5)?,
        outcome: r.get(6)?,
        status: r.get(7)?,
        method: r.get(8)?,
        path: r.get(9)?,
        remote: r.get(10)?,
        token_used: r.get(11)?,
    })
}

/// The newest `last` matching entries, newest first.
pub fn query(conn: &Connection, filter: &Filter, last: usize) -> Result<Vec<AuditEntry>> {
    let (clause, args) = filter.sql();
    let sql = format!(
        "SELECT id, timestamp, actor, action, resource, detail, outcome, status, method, path, remote, \
         token_used FROM audit_log {clause} ORDER BY id DESC"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let e = entry(row)?;
        if filter.action.as_ref().is_none_or(|p| p.matches(&e.action)) {
            out.push(e);
            if out.len() >= last {
                break;
            }
        }
    }
    Ok(out)
}

/// Counts by action and outcome over the matching entries.
pub fn summary(conn: &Connection, filter: &Filter) -> Result<AuditSummary> {
    let (clause, args) = filter.sql();
    let sql = format!("SELECT actor, action, resource, outcome FROM audit_log {clause}");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut s = AuditSummary::default();
    let mut actors = std::collections::HashSet::new();
    let mut resources = std::collections::HashSet::new();
    while let Some(row) = rows.next()? {
        let action: String = row.get(1)?;
        if !filter.action.as_ref().is_none_or(|p| p.matches(&action)) {
            continue;
        }
        s.total_entries += 1;
        actors.insert(row.get::<_, String>(0)?);
        resources.insert(row.get::<_, String>(2)?);
        *s.outcome_counts.entry(row.get(3)?).or_default() += 1;
        *s.action_counts.entry(action).or_default() += 1;
    }
    s.unique_actors = actors.len() as i64;
    s.unique_resources = resources.len() as i64;
    Ok(s)
}

/// Deletes the oldest entries beyond the newest `keep`, at most `batch` rows. Returns how many.
pub fn prune(conn: &Connection, keep: u64, batch: usize) -> Result<usize> {
    let Some(max): Option<i64> =
        conn.query_row("SELECT MAX(id) FROM audit_log", [], |r| r.get(0))?
    else {
        return Ok(0);
    };
    let cutoff = max - i64::try_from(keep).unwrap_or(i64::MAX);
    if cutoff <= 0 {
        return Ok(0);
    }
    let n = conn
        .prepare_cached(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE id <= ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![cutoff, batch as i64])?;
    Ok(n)
}
