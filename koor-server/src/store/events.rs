//! Event history: every published event (system ones too) is stored with a strictly increasing id.

use koor_shared::types::{Event, RawJson};
use rusqlite::{Connection, params};

use super::Result;

/// Stores one event and returns it with its id. The data is stored as its exact JSON text.
pub fn insert(
    conn: &Connection,
    topic: &str,
    data: RawJson,
    source: &str,
    now: &str,
) -> Result<Event> {
    conn.prepare_cached(
        "INSERT INTO events (topic, data, source, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![topic, data.text(), source, now])?;
    Ok(Event {
        id: conn.last_insert_rowid(),
        topic: topic.to_owned(),
        data,
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
        data: RawJson::parse(data).unwrap_or_default(),
        source: r.get(3)?,
        created_at: r.get(4)?,
    })
}

/// Events currently retained.
pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}

/// Filters of a history query. Times are already normalized to the stored format.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub patterns: Option<koor_shared::topic::PatternSet>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub source: Option<String>,
}

impl HistoryFilter {
    fn matches_parts(&self, topic: &str, source: &str, created_at: &str) -> bool {
        self.patterns.as_ref().is_none_or(|p| p.matches(topic))
            && self.source.as_deref().is_none_or(|s| s == source)
            && self.from.as_deref().is_none_or(|f| created_at >= f)
            && self.to.as_deref().is_none_or(|t| created_at <= t)
    }

    /// The one literal topic the patterns name, if that is all they name.
    fn exact_topic(&self) -> Option<&str> {
        match self.patterns.as_ref()?.patterns() {
            [one] => {
                let p = one.as_str();
                (!p.contains(['*', '?', '[', '\\'])).then_some(p)
            }
            _ => None,
        }
    }

    /// A SQL range that every topic matching the patterns falls in, when the patterns share a
    /// literal first segment (`api.*` -> topics `api` and `api.…`). `None` = no narrowing.
    fn topic_range(&self) -> Option<(String, String)> {
        let set = self.patterns.as_ref()?;
        let mut first: Option<&str> = None;
        for p in set.patterns() {
            let seg = p.as_str().split('.').next().unwrap_or("");
            if seg.is_empty() || seg.contains(['*', '?', '[', '\\']) {
                return None;
            }
            match first {
                None => first = Some(seg),
                Some(f) if f == seg => {}
                Some(_) => return None,
            }
        }
        // Topics equal to `seg` or starting with `seg.`: `seg` <= topic < `seg/` ('/' follows '.').
        first.map(|seg| (seg.to_owned(), format!("{seg}/")))
    }
}

/// The newest `last` matching events, newest first.
pub fn recent(conn: &Connection, filter: &HistoryFilter, last: usize) -> Result<Vec<Event>> {
    scan(conn, filter, last, None)
}

/// Matching events with id > `since`, oldest first, at most `limit`.
pub fn after(
    conn: &Connection,
    filter: &HistoryFilter,
    since: i64,
    limit: usize,
) -> Result<Vec<Event>> {
    scan(conn, filter, limit, Some(since))
}

/// Rows of a PK-ordered scan looked at before a narrowed query falls back to the topic index.
const SCAN_BUDGET: usize = 4000;

fn scan(
    conn: &Connection,
    filter: &HistoryFilter,
    limit: usize,
    since: Option<i64>,
) -> Result<Vec<Event>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let dir = if since.is_some() { "ASC" } else { "DESC" };
    let after = since.unwrap_or(0);
    let by_id = format!("WHERE id > ?1 ORDER BY id {dir}");
    // One literal topic: the (topic, id) index yields exactly its events, already in order.
    if let Some(topic) = filter.exact_topic() {
        let sql = format!("WHERE id > ?1 AND topic = ?2 ORDER BY id {dir}");
        return Ok(run(conn, &sql, params![after, topic], filter, limit, None)?.0);
    }
    match filter.topic_range() {
        // A literal first segment: common topics are found fastest walking ids from the end;
        // rare ones through the index range (which then needs a sort), so try the first briefly.
        Some((lo, hi)) => {
            let (found, exhausted) = run(
                conn,
                &by_id,
                params![after],
                filter,
                limit,
                Some(SCAN_BUDGET),
            )?;
            if found.len() >= limit || exhausted {
                return Ok(found);
            }
            let sql = format!("WHERE id > ?1 AND topic >= ?2 AND topic < ?3 ORDER BY id {dir}");
            Ok(run(conn, &sql, params![after, lo, hi], filter, limit, None)?.0)
        }
        None => Ok(run(conn, &by_id, params![after], filter, limit, None)?.0),
    }
}

/// Runs `SELECT … FROM events <tail>` and keeps matching events until `limit`. With a `budget`,
/// stops after that many rows. Returns the events and whether the rows ran out.
fn run(
    conn: &Connection,
    tail: &str,
    args: impl rusqlite::Params,
    filter: &HistoryFilter,
    limit: usize,
    budget: Option<usize>,
) -> Result<(Vec<Event>, bool)> {
    let sql = format!("SELECT id, topic, data, source, created_at FROM events {tail}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(row) = rows.next()? {
        seen += 1;
        // Filter on the cheap columns before parsing the data.
        let topic: String = row.get(1)?;
        let source: String = row.get(3)?;
        let created_at: String = row.get(4)?;
        if filter.matches_parts(&topic, &source, &created_at) {
            out.push(row_to_event(row)?);
            if out.len() >= limit {
                return Ok((out, false));
            }
        }
        if budget.is_some_and(|b| seen >= b) {
            return Ok((out, false));
        }
    }
    Ok((out, true))
}

/// The oldest retained id, if any event is retained.
pub fn oldest_id(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row("SELECT MIN(id) FROM events", [], |r| r.get(0))?)
}

/// Deletes the oldest events beyond the newest `keep`, at most `batch` rows. Returns how many.
pub fn prune(conn: &Connection, keep: u64, batch: usize) -> Result<usize> {
    let Some(max): Option<i64> = conn.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?
    else {
        return Ok(0);
    };
    let cutoff = max - i64::try_from(keep).unwrap_or(i64::MAX);
    if cutoff <= 0 {
        return Ok(0);
    }
    let n = conn
        .prepare_cached("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ?1 ORDER BY id LIMIT ?2)")?
        .execute(params![cutoff, batch as i64])?;
    Ok(n)
}
