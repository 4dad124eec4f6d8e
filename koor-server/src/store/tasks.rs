//! Task boards as rows: the `tasks` table (one row per task, keyed by project and a number that
//! reads `T-<n>` on the wire) and `task_deps` (one row per dependency, so "what waits for this
//! task" is an index lookup). The claim on a task is a hold of kind `task` in the `holds` table;
//! these rows never copy its expiry. The rules (who may claim, what a claim ending does) live in
//! `crate::holds::tasks`.

use rusqlite::{Connection, OptionalExtension, params};

use super::Result;

pub const OPEN: &str = "open";
pub const CLAIMED: &str = "claimed";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
/// Every status, for filters.
pub const STATUSES: &[&str] = &[OPEN, CLAIMED, DONE, FAILED, CANCELLED];

/// A task as stored (dependencies apart, in `task_deps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub project: String,
    pub num: i64,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: i64,
    /// JSON array of strings.
    pub labels: String,
    pub attempts: i64,
    /// JSON text, or `None` before the task is done.
    pub result: Option<String>,
    /// Why it was last released, failed or reclaimed.
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

const COLUMNS: &str = "project, num, title, description, status, priority, labels, attempts, result, reason, created_by, created_at, updated_at, version";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        project: r.get(0)?,
        num: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        status: r.get(4)?,
        priority: r.get(5)?,
        labels: r.get(6)?,
        attempts: r.get(7)?,
        result: r.get(8)?,
        reason: r.get(9)?,
        created_by: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        version: r.get(13)?,
    })
}

/// The number the next task of `project` gets (numbers are never reused: tasks are never deleted).
pub fn next_num(conn: &Connection, project: &str) -> Result<i64> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT MAX(num) FROM tasks WHERE project = ?1")?
        .query_row([project], |r| r.get(0))?;
    Ok(n.unwrap_or(0) + 1)
}

pub fn insert(conn: &Connection, t: &TaskRow) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO tasks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?
    .execute(params![
        t.project,
        t.num,
        t.title,
        t.description,
        t.status,
        t.priority,
        t.labels,
        t.attempts,
        t.result,
        t.reason,
        t.created_by,
        t.created_at,
        t.updated_at,
        t.version
    ])?;
    Ok(())
}

/// Writes every field of `t` back (the caller has bumped `version`).
pub fn update(conn: &Connection, t: &TaskRow) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET title = ?3, description = ?4, status = ?5, priority = ?6, labels = ?7,
         attempts = ?8, result = ?9, reason = ?10, updated_at = ?11, version = ?12
         WHERE project = ?1 AND num = ?2",
    )?
    .execute(params![
        t.project,
        t.num,
        t.title,
        t.description,
        t.status,
        t.priority,
        t.labels,
        t.attempts,
        t.result,
        t.reason,
        t.updated_at,
        t.version
    ])?;
    Ok(())
}

pub fn get(conn: &Connection, project: &str, num: i64) -> Result<Option<TaskRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE project = ?1 AND num = ?2"
        ))?
        .query_row(params![project, num], from_row)
        .optional()?)
}

/// Every task of a project, by number.
pub fn of_project(conn: &Connection, project: &str) -> Result<Vec<TaskRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE project = ?1 ORDER BY num"
    ))?;
    let rows = stmt.query_map([project], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The status of task `num`, if it exists.
pub fn status(conn: &Connection, project: &str, num: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT status FROM tasks WHERE project = ?1 AND num = ?2")?
        .query_row(params![project, num], |r| r.get(0))
        .optional()?)
}

/// The best ready task: open, every dependency done, highest priority first, then oldest; with
/// `label`, only tasks carrying it. Call inside a write job after expiring due holds, so that
/// `claimed` rows are the live claims. `CROSS JOIN` keeps SQLite walking from this task's few
/// dependency rows to their tasks (left to itself it scanned the whole board per candidate).
pub fn best_ready(conn: &Connection, project: &str, label: Option<&str>) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT t.num FROM tasks t
             WHERE t.project = ?1 AND t.status = 'open'
               AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(t.labels) l WHERE l.value = ?2))
               AND NOT EXISTS (
                   SELECT 1 FROM task_deps d CROSS JOIN tasks u
                   WHERE d.project = t.project AND d.task = t.num
                     AND u.project = d.project AND u.num = d.dep AND u.status != 'done')
             ORDER BY t.priority DESC, t.num
             LIMIT 1",
        )?
        .query_row(params![project, label], |r| r.get(0))
        .optional()?)
}

/// The dependencies of task `num`, by number.
pub fn deps(conn: &Connection, project: &str, num: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT dep FROM task_deps WHERE project = ?1 AND task = ?2 ORDER BY dep",
    )?;
    let rows = stmt.query_map(params![project, num], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every dependency of a project: (task, dep), by task then dep.
pub fn deps_of_project(conn: &Connection, project: &str) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT task, dep FROM task_deps WHERE project = ?1 ORDER BY task, dep")?;
    let rows = stmt.query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The tasks that depend on task `num`.
pub fn dependents(conn: &Connection, project: &str, num: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT task FROM task_deps WHERE project = ?1 AND dep = ?2 ORDER BY task",
    )?;
    let rows = stmt.query_map(params![project, num], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Replaces the dependencies of task `num`.
pub fn set_deps(conn: &Connection, project: &str, num: i64, deps: &[i64]) -> Result<()> {
    conn.prepare_cached("DELETE FROM task_deps WHERE project = ?1 AND task = ?2")?
        .execute(params![project, num])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO task_deps (project, task, dep) VALUES (?1, ?2, ?3)",
    )?;
    for dep in deps {
        insert.execute(params![project, num, dep])?;
    }
    Ok(())
}

/// The projects that have tasks, with how many tasks each has in each status.
pub fn boards(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT project, status, COUNT(*) FROM tasks GROUP BY project, status ORDER BY project",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
