//! Tasks: a board per project where two agents never get the same task (COORDINATION.md,
//! "Tasks").
//!
//! The task itself (title, status, priority, labels, dependencies, attempts, result, version) is a
//! row of `tasks`; the claim on it is a hold of kind [`KIND`] (project = the board, resource = the
//! task id), so TTL, heartbeat renewal, expiry, deregistration and fences are the hold model's.
//! The claim shown on a task is always looked up from its live hold, never copied.
//!
//! Every change is one write job. A claim (of a given id, or of the best ready task) first ends
//! the holds that are due, then picks and grants inside the same job: the writer runs jobs one at
//! a time, so no two callers ever get one task. When a claim ends without its holder finishing
//! (expiry, deregistration, an operator's forced release), [`ended`] puts the task back to `open`
//! with `attempts` + 1 and publishes `koor.task.reclaimed`; when the holder completes, releases
//! or fails it, that call changes the status itself and [`ended`] does nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use koor_shared::types::{Holder, Task, TaskBoard, TaskClaim};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::{End, Grant, Holds, holder, holder_json, now_ms};
use crate::store::holds::{self as hold_rows, Hold};
use crate::store::tasks::{self as rows, CANCELLED, CLAIMED, DONE, FAILED, OPEN, TaskRow};
use crate::store::{Result, Store, StoreError, Tx};

pub const KIND: &str = "task";
/// Most tasks one create call may add.
pub const MAX_BATCH: usize = 1000;
const MAX_TITLE: usize = 512;
const MAX_DESCRIPTION: usize = 64 * 1024;
const MAX_LABELS: usize = 32;
const MAX_LABEL: usize = 64;
const MAX_DEPS: usize = 256;
const MAX_PROJECT: usize = 128;
const MAX_REASON: usize = 4096;

/// A task to create, as the API parsed it.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub description: String,
    pub priority: i64,
    pub labels: Vec<String>,
    /// Ids of existing tasks (`T-3`), or `#N` for item N of the same create call.
    pub depends_on: Vec<String>,
    /// The creating instance's id, or empty.
    pub created_by: String,
}

/// A change to a task (`PATCH`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub depends_on: Option<Vec<String>>,
    pub status: Option<String>,
    /// `If-Match`: the version the caller last saw.
    pub if_version: Option<i64>,
}

/// Filters of `GET /api/tasks/{project}`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<String>,
    pub ready: bool,
    pub label: Option<String>,
    /// An instance id (or name) holding the claim.
    pub claimed_by: Option<String>,
}

/// How a claim's holder finishes with it.
#[derive(Debug, Clone)]
pub enum Finish {
    /// `done`, with an optional result.
    Complete(Option<Value>),
    /// Back to `open`, with an optional reason.
    Release(String),
    /// `failed`, with a reason.
    Fail(String),
}

/// `T-<n>`.
pub fn task_id(num: i64) -> String {
    format!("T-{num}")
}

/// The number of a task id (`T-12`, case-insensitive).
pub fn parse_id(id: &str) -> Option<i64> {
    let rest = id.trim().strip_prefix(['T', 't'])?.strip_prefix('-')?;
    rest.parse::<i64>().ok().filter(|n| *n > 0)
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn not_found(project: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("task not found: {project}/{id}"))
}

fn conflict(message: String, details: Value) -> StoreError {
    StoreError::Conflict { message, details }
}

/// A project name as a board key: non-empty, at most 128 bytes, no `/` or control characters.
pub fn check_project(project: &str) -> Result<()> {
    if project.trim().is_empty() {
        return Err(invalid("a project is required: /api/tasks/{project}"));
    }
    if project.len() > MAX_PROJECT {
        return Err(invalid("project name too long (at most 128 bytes)"));
    }
    if project.contains('/') || project.chars().any(char::is_control) {
        return Err(invalid(format!(
            "invalid project {project:?}: it may not contain '/' or control characters"
        )));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(invalid("title is required"));
    }
    if title.len() > MAX_TITLE {
        return Err(invalid("title too long (at most 512 bytes)"));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.len() > MAX_DESCRIPTION {
        return Err(invalid("description too long (at most 64 KiB)"));
    }
    Ok(())
}

fn check_labels(labels: &[String]) -> Result<String> {
    if labels.len() > MAX_LABELS {
        return Err(invalid("too many labels (at most 32)"));
    }
    let mut seen = Vec::new();
    for l in labels {
        let l = l.trim();
        if l.is_empty() || l.len() > MAX_LABEL {
            return Err(invalid(format!(
                "invalid label {l:?}: 1 to 64 bytes, not blank"
            )));
        }
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    Ok(serde_json::to_string(&seen).unwrap_or_else(|_| "[]".into()))
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.len() > MAX_REASON {
        return Err(invalid("reason too long (at most 4096 bytes)"));
    }
    Ok(())
}

/// The task as the wire shows it, from its row, its dependencies, whether they are all done, and
/// its live claim. A row still `claimed` whose hold has lapsed (the sweep has not run yet) reads
/// as what the sweep will make of it: open again, one more attempt.
fn build(row: TaskRow, deps: &[i64], deps_done: bool, claim: Option<&Hold>) -> Task {
    let (mut status, mut attempts, mut version, mut reason) =
        (row.status, row.attempts, row.version, row.reason);
    if status == CLAIMED && claim.is_none() {
        status = OPEN.to_owned();
        attempts += 1;
        version += 1;
        reason = End::Expired.as_str().to_owned();
    }
    Task {
        id: task_id(row.num),
        ready: status == OPEN && deps_done,
        project: row.project,
        title: row.title,
        description: row.description,
        status,
        priority: row.priority,
        labels: serde_json::from_str(&row.labels).unwrap_or_default(),
        depends_on: deps.iter().copied().map(task_id).collect(),
        claim: claim.map(|h| TaskClaim {
            holder: h.holder.clone(),
            fence: h.fence,
            expires_at: h.expires_at(),
        }),
        attempts,
        result: row.result.and_then(|r| serde_json::from_str(&r).ok()),
        reason,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version,
    }
}

/// The live claim on task `num`.
fn claim_of(conn: &Connection, project: &str, num: i64) -> Result<Option<Hold>> {
    Ok(
        hold_rows::on_resource(conn, KIND, project, &task_id(num), now_ms())?
            .into_iter()
            .next(),
    )
}

/// The dependencies of `num` that are not done yet.
fn waiting_for(conn: &Connection, project: &str, deps: &[i64]) -> Result<Vec<i64>> {
    let mut waiting = Vec::new();
    for &d in deps {
        if rows::status(conn, project, d)?.as_deref() != Some(DONE) {
            waiting.push(d);
        }
    }
    Ok(waiting)
}

fn row_of(conn: &Connection, project: &str, id: &str) -> Result<TaskRow> {
    let num = parse_id(id).ok_or_else(|| not_found(project, id))?;
    rows::get(conn, project, num)?.ok_or_else(|| not_found(project, id))
}

/// One task as the wire shows it.
fn load(conn: &Connection, project: &str, num: i64) -> Result<Task> {
    let row = rows::get(conn, project, num)?.ok_or_else(|| not_found(project, &task_id(num)))?;
    let deps = rows::deps(conn, project, num)?;
    let done = waiting_for(conn, project, &deps)?.is_empty();
    let claim = claim_of(conn, project, num)?;
    Ok(build(row, &deps, done, claim.as_ref()))
}

/// `{"project","id","title","status","holder"}` of a task event.
fn event_data(row: &TaskRow, holder: Option<&Holder>) -> Value {
    json!({"project": row.project, "id": task_id(row.num), "title": row.title,
           "status": row.status, "holder": holder.map(holder_json)})
}

fn ids(nums: &[i64]) -> Vec<String> {
    nums.iter().copied().map(task_id).collect()
}

/// Resolves dependency references to task numbers: `T-n` must exist in the project; `#k` (only
/// in a create call, `batch = Some((first number, index of this item))`) names an earlier item.
fn resolve_deps(
    conn: &Connection,
    project: &str,
    deps: &[String],
    batch: Option<(i64, usize)>,
) -> Result<Vec<i64>> {
    if deps.len() > MAX_DEPS {
        return Err(invalid("too many dependencies (at most 256)"));
    }
    let mut out = Vec::new();
    for d in deps {
        let d = d.trim();
        let num = if let Some(k) = d.strip_prefix('#') {
            let Some((first, index)) = batch else {
                return Err(invalid(format!(
                    "invalid dependency {d:?}: \"#N\" references only work inside an array of new tasks"
                )));
            };
            let k: usize = k
                .parse()
                .map_err(|_| invalid(format!("invalid dependency {d:?}: expected \"#N\"")))?;
            if k == index {
                return Err(invalid(format!(
                    "dependency cycle: item #{index} depends on itself"
                )));
            }
            if k > index {
                return Err(invalid(format!(
                    "invalid dependency {d:?} of item #{index}: an item may only depend on earlier items of the array (a later one could close a cycle)"
                )));
            }
            first + i64::try_from(k).unwrap_or(i64::MAX)
        } else {
            let num =
                parse_id(d).ok_or_else(|| invalid(format!("unknown dependency: {project}/{d}")))?;
            if rows::status(conn, project, num)?.is_none() {
                return Err(invalid(format!("unknown dependency: {project}/{d}")));
            }
            num
        };
        if !out.contains(&num) {
            out.push(num);
        }
    }
    Ok(out)
}

/// A 400 when making `num` depend on `deps` would close a cycle.
fn check_acyclic(conn: &Connection, project: &str, num: i64, deps: &[i64]) -> Result<()> {
    let mut seen = HashSet::new();
    // (task, the path that reached it)
    let mut stack: Vec<(i64, Vec<i64>)> = deps.iter().map(|&d| (d, vec![num, d])).collect();
    while let Some((at, path)) = stack.pop() {
        if at == num {
            let chain: Vec<String> = ids(&path);
            return Err(invalid(format!("dependency cycle: {}", chain.join(" -> "))));
        }
        if !seen.insert(at) {
            continue;
        }
        for next in rows::deps(conn, project, at)? {
            let mut p = path.clone();
            p.push(next);
            stack.push((next, p));
        }
    }
    Ok(())
}

/// Creates tasks together (one write): 400 on a bad field, an unknown dependency or a cycle,
/// and then nothing is created.
pub async fn create(
    holds: &Holds,
    store: &Store,
    project: &str,
    items: Vec<NewTask>,
) -> Result<Vec<Task>> {
    check_project(project)?;
    if items.is_empty() {
        return Err(invalid(
            "no tasks given: send one task or a non-empty array",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(invalid("too many tasks in one call (at most 1000)"));
    }
    let mut checked = Vec::with_capacity(items.len());
    for (i, mut t) in items.into_iter().enumerate() {
        let at = |e: StoreError| match e {
            StoreError::Invalid(m) => invalid(format!("task #{i}: {m}")),
            e => e,
        };
        check_title(&t.title).map_err(at)?;
        check_description(&t.description).map_err(at)?;
        let labels = check_labels(&t.labels).map_err(at)?;
        t.title = t.title.trim().to_owned();
        checked.push((t, labels));
    }
    let (holds, project) = (holds.clone(), project.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let mut creators = HashMap::new();
            for (t, _) in &checked {
                if !t.created_by.is_empty() && !creators.contains_key(&t.created_by) {
                    let who = holder(tx, &t.created_by)?;
                    creators.insert(t.created_by.clone(), who);
                }
            }
            let first = rows::next_num(tx.conn(), &project)?;
            let mut nums = Vec::with_capacity(checked.len());
            for (i, (t, labels)) in checked.into_iter().enumerate() {
                let num = first + i64::try_from(i).unwrap_or(i64::MAX);
                let deps = resolve_deps(tx.conn(), &project, &t.depends_on, Some((first, i)))
                    .map_err(|e| match e {
                        StoreError::Invalid(m) => invalid(format!("task #{i}: {m}")),
                        e => e,
                    })?;
                let row = TaskRow {
                    project: project.clone(),
                    num,
                    title: t.title,
                    description: t.description,
                    status: OPEN.to_owned(),
                    priority: t.priority,
                    labels,
                    attempts: 0,
                    result: None,
                    reason: String::new(),
                    created_by: t.created_by,
                    created_at: tx.now().to_owned(),
                    updated_at: tx.now().to_owned(),
                    version: 1,
                };
                rows::insert(tx.conn(), &row)?;
                rows::set_deps(tx.conn(), &project, num, &deps)?;
                let mut data = event_data(&row, None);
                data["depends_on"] = json!(ids(&deps));
                data["priority"] = json!(row.priority);
                tx.emit("koor.task.created", data, "koor")?;
                nums.push(num);
            }
            nums.into_iter()
                .map(|n| load(tx.conn(), &project, n))
                .collect()
        })
        .await
}

/// One task; 404 when the project has no such task.
pub async fn get(store: &Store, project: &str, id: &str) -> Result<Task> {
    check_project(project)?;
    let (project, id) = (project.to_owned(), id.to_owned());
    store
        .read(move |c| {
            let num = parse_id(&id).ok_or_else(|| not_found(&project, &id))?;
            load(c, &project, num)
        })
        .await
}

/// The board of a project, filtered, by priority (high first) then age.
pub async fn list(store: &Store, project: &str, filter: ListFilter) -> Result<Vec<Task>> {
    check_project(project)?;
    for s in &filter.statuses {
        if !rows::STATUSES.contains(&s.as_str()) {
            return Err(invalid(format!(
                "invalid status {s:?}: one of {}",
                rows::STATUSES.join(", ")
            )));
        }
    }
    let project = project.to_owned();
    store
        .read(move |c| {
            let now = now_ms();
            let all = rows::of_project(c, &project)?;
            let mut deps: HashMap<i64, Vec<i64>> = HashMap::new();
            for (task, dep) in rows::deps_of_project(c, &project)? {
                deps.entry(task).or_default().push(dep);
            }
            let claims: HashMap<String, Hold> =
                hold_rows::list(c, KIND, Some(&project), None, now)?
                    .into_iter()
                    .map(|h| (h.resource.clone(), h))
                    .collect();
            let done: HashSet<i64> = all
                .iter()
                .filter(|t| t.status == DONE)
                .map(|t| t.num)
                .collect();
            let mut tasks: Vec<Task> = all
                .into_iter()
                .map(|row| {
                    let d = deps.get(&row.num).map(Vec::as_slice).unwrap_or_default();
                    let deps_done = d.iter().all(|n| done.contains(n));
                    let claim = claims.get(&task_id(row.num));
                    build(row, d, deps_done, claim)
                })
                .filter(|t| filter.statuses.is_empty() || filter.statuses.contains(&t.status))
                .filter(|t| !filter.ready || t.ready)
                .filter(|t| filter.label.as_ref().is_none_or(|l| t.labels.contains(l)))
                .filter(|t| {
                    filter.claimed_by.as_ref().is_none_or(|who| {
                        t.claim
                            .as_ref()
                            .is_some_and(|c| &c.holder.id == who || &c.holder.name == who)
                    })
                })
                .collect();
            tasks.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then_with(|| parse_id(&a.id).cmp(&parse_id(&b.id)))
            });
            Ok(tasks)
        })
        .await
}

/// Every project with tasks, with counts by status.
pub async fn boards(store: &Store) -> Result<Vec<TaskBoard>> {
    store
        .read(|c| {
            let mut boards: Vec<TaskBoard> = Vec::new();
            for (project, status, n) in rows::boards(c)? {
                if boards.last().is_none_or(|b| b.project != project) {
                    boards.push(TaskBoard {
                        project: project.clone(),
                        ..TaskBoard::default()
                    });
                }
                if let Some(b) = boards.last_mut() {
                    b.counts.insert(status, n);
                }
            }
            Ok(boards)
        })
        .await
}

/// Changes a task's fields, or reopens a failed or cancelled one (`"status":"open"`). With
/// `if_version`, a task that has moved on is a 412.
pub async fn update(
    holds: &Holds,
    store: &Store,
    project: &str,
    id: &str,
    patch: Patch,
) -> Result<Task> {
    check_project(project)?;
    if let Some(t) = &patch.title {
        check_title(t)?;
    }
    if let Some(d) = &patch.description {
        check_description(d)?;
    }
    let labels = patch.labels.as_deref().map(check_labels).transpose()?;
    if let Some(s) = &patch.status
        && s != OPEN
    {
        return Err(invalid(format!(
            "invalid status {s:?}: PATCH only reopens a task (\"status\":\"open\"); claim, complete, release, fail and cancel have their own routes"
        )));
    }
    if patch.title.is_none()
        && patch.description.is_none()
        && patch.priority.is_none()
        && labels.is_none()
        && patch.depends_on.is_none()
        && patch.status.is_none()
    {
        return Err(invalid(
            "nothing to change: give title, description, priority, labels, depends_on or \"status\":\"open\"",
        ));
    }
    let (holds, project, id) = (holds.clone(), project.to_owned(), id.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let mut row = row_of(tx.conn(), &project, &id)?;
            let id = task_id(row.num);
            if let Some(v) = patch.if_version
                && v != row.version
            {
                return Err(StoreError::Precondition {
                    message: format!(
                        "precondition failed: task {id} is at version {}, not {v}",
                        row.version
                    ),
                    current_version: Some(row.version),
                });
            }
            if let Some(deps) = &patch.depends_on {
                let deps = resolve_deps(tx.conn(), &project, deps, None)?;
                check_acyclic(tx.conn(), &project, row.num, &deps)?;
                rows::set_deps(tx.conn(), &project, row.num, &deps)?;
            }
            if patch.status.is_some() && row.status != OPEN {
                if row.status != FAILED && row.status != CANCELLED {
                    return Err(conflict(
                        format!(
                            "task {id} is {}: only a failed or cancelled task can be reopened",
                            row.status
                        ),
                        json!({"status": row.status}),
                    ));
                }
                row.status = OPEN.to_owned();
            }
            if let Some(t) = patch.title {
                row.title = t.trim().to_owned();
            }
            if let Some(d) = patch.description {
                row.description = d;
            }
            if let Some(p) = patch.priority {
                row.priority = p;
            }
            if let Some(l) = labels {
                row.labels = l;
            }
            row.version += 1;
            row.updated_at = tx.now().to_owned();
            rows::update(tx.conn(), &row)?;
            let claim = claim_of(tx.conn(), &project, row.num)?;
            tx.emit(
                "koor.task.updated",
                event_data(&row, claim.as_ref().map(|h| &h.holder)),
                "koor",
            )?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// Claims task `id` when it is ready, else (no `id`) the best ready task (with `label`, only
/// those carrying it). The caller claiming a task it already holds renews the claim.
pub async fn claim(
    holds: &Holds,
    store: &Store,
    project: &str,
    instance: &str,
    id: Option<&str>,
    label: Option<&str>,
    ttl: Duration,
) -> Result<Task> {
    check_project(project)?;
    let (holds, project) = (holds.clone(), project.to_owned());
    let (instance, id, label) = (
        instance.to_owned(),
        id.map(str::to_owned),
        label.map(str::to_owned),
    );
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let who = holder(tx, &instance)?;
            let row = match &id {
                Some(id) => {
                    let row = row_of(tx.conn(), &project, id)?;
                    let id = task_id(row.num);
                    match row.status.as_str() {
                        OPEN => {
                            let deps = rows::deps(tx.conn(), &project, row.num)?;
                            let waiting = waiting_for(tx.conn(), &project, &deps)?;
                            if !waiting.is_empty() {
                                return Err(conflict(
                                    format!(
                                        "task {id} is not ready: it waits for {}",
                                        ids(&waiting).join(", ")
                                    ),
                                    json!({"status": row.status, "waits_for": ids(&waiting)}),
                                ));
                            }
                        }
                        CLAIMED => {
                            if let Some(h) = claim_of(tx.conn(), &project, row.num)? {
                                if h.holder.id == who.id {
                                    holds.renew(tx, &h, ttl)?;
                                    return load(tx.conn(), &project, row.num);
                                }
                                return Err(super::held_by(&format!("task {id}"), &h));
                            }
                        }
                        other => {
                            return Err(conflict(
                                format!("task {id} is not ready: it is {other}"),
                                json!({"status": other}),
                            ));
                        }
                    }
                    row
                }
                None => {
                    let num = rows::best_ready(tx.conn(), &project, label.as_deref())?.ok_or_else(
                        || {
                            StoreError::NotFound(match &label {
                                Some(l) => format!("no ready task in {project} with label {l}"),
                                None => format!("no ready task in {project}"),
                            })
                        },
                    )?;
                    rows::get(tx.conn(), &project, num)?
                        .ok_or_else(|| not_found(&project, &task_id(num)))?
                }
            };
            let mut row = row;
            row.status = CLAIMED.to_owned();
            row.version += 1;
            row.updated_at = tx.now().to_owned();
            holds.grant(
                tx,
                &who,
                Grant {
                    kind: KIND,
                    project: project.clone(),
                    resource: task_id(row.num),
                    exclusive: true,
                    ttl,
                    ..Grant::default()
                },
                "koor.task.claimed",
                |h| {
                    let mut data = event_data(&row, Some(&h.holder));
                    data["fence"] = json!(h.fence);
                    data["expires_at"] = json!(h.expires_at());
                    data
                },
            )?;
            rows::update(tx.conn(), &row)?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// The claim on task `id` held by `instance`: 404 for no task, 409 when it is not claimed or
/// another instance holds it.
fn holders_claim(tx: &Tx<'_>, project: &str, id: &str, who: &Holder) -> Result<(TaskRow, Hold)> {
    let row = row_of(tx.conn(), project, id)?;
    let id = task_id(row.num);
    let Some(h) = claim_of(tx.conn(), project, row.num)? else {
        return Err(conflict(
            format!(
                "task {id} is not claimed (it is {}): claim it first",
                row.status
            ),
            json!({"status": row.status}),
        ));
    };
    if h.holder.id != who.id {
        return Err(conflict(
            format!(
                "task {id} is held by {} ({}) until {}, not by {} ({})",
                h.holder.name,
                h.holder.id,
                h.expires_at(),
                who.name,
                who.id
            ),
            json!({"holder": holder_json(&h.holder), "expires_at": h.expires_at()}),
        ));
    }
    Ok((row, h))
}

/// Renews the claim of `instance` on task `id` to now + `ttl` (same fence).
pub async fn renew(
    holds: &Holds,
    store: &Store,
    project: &str,
    id: &str,
    instance: &str,
    ttl: Duration,
) -> Result<Task> {
    check_project(project)?;
    let (holds, project, id, instance) = (
        holds.clone(),
        project.to_owned(),
        id.to_owned(),
        instance.to_owned(),
    );
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let who = holder(tx, &instance)?;
            let (row, h) = holders_claim(tx, &project, &id, &who)?;
            holds.renew(tx, &h, ttl)?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// The holder finishes with its claim: complete, release or fail (one write).
pub async fn finish(
    holds: &Holds,
    store: &Store,
    project: &str,
    id: &str,
    instance: &str,
    how: Finish,
) -> Result<Task> {
    check_project(project)?;
    if let Finish::Release(r) | Finish::Fail(r) = &how {
        check_reason(r)?;
    }
    if let Finish::Fail(r) = &how
        && r.trim().is_empty()
    {
        return Err(invalid("reason is required: say why the task failed"));
    }
    let result = match &how {
        Finish::Complete(Some(v)) if !v.is_null() => {
            let text = serde_json::to_string(v).map_err(|e| invalid(e.to_string()))?;
            if text.len() > MAX_DESCRIPTION {
                return Err(invalid("result too large (at most 64 KiB as JSON)"));
            }
            Some(text)
        }
        _ => None,
    };
    let (holds, project, id, instance) = (
        holds.clone(),
        project.to_owned(),
        id.to_owned(),
        instance.to_owned(),
    );
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let who = holder(tx, &instance)?;
            let (mut row, h) = holders_claim(tx, &project, &id, &who)?;
            // The status change is made here; `ended` does nothing for a release by the holder.
            holds.end(tx, h.clone(), End::Released)?;
            let topic = match how {
                Finish::Complete(_) => {
                    row.status = DONE.to_owned();
                    row.result = result;
                    row.reason = String::new();
                    "koor.task.completed"
                }
                Finish::Release(reason) => {
                    row.status = OPEN.to_owned();
                    row.reason = reason;
                    "koor.task.released"
                }
                Finish::Fail(reason) => {
                    row.status = FAILED.to_owned();
                    row.reason = reason;
                    "koor.task.failed"
                }
            };
            row.version += 1;
            row.updated_at = tx.now().to_owned();
            rows::update(tx.conn(), &row)?;
            let mut data = event_data(&row, Some(&h.holder));
            data["fence"] = json!(h.fence);
            if row.status == DONE {
                // Tasks this one was the last open dependency of are ready now.
                let mut unblocked = Vec::new();
                for n in rows::dependents(tx.conn(), &project, row.num)? {
                    if rows::status(tx.conn(), &project, n)?.as_deref() == Some(OPEN) {
                        let deps = rows::deps(tx.conn(), &project, n)?;
                        if waiting_for(tx.conn(), &project, &deps)?.is_empty() {
                            unblocked.push(n);
                        }
                    }
                }
                data["unblocked"] = json!(ids(&unblocked));
            } else if !row.reason.is_empty() {
                data["reason"] = json!(row.reason);
            }
            tx.emit(topic, data, "koor")?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// An operator puts a claimed task back to open whoever holds it (the forced end of its hold:
/// `koor.task.reclaimed`, attempts + 1).
pub async fn force_release(holds: &Holds, store: &Store, project: &str, id: &str) -> Result<Task> {
    check_project(project)?;
    let (holds, project, id) = (holds.clone(), project.to_owned(), id.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let row = row_of(tx.conn(), &project, &id)?;
            let Some(h) = claim_of(tx.conn(), &project, row.num)? else {
                return Err(conflict(
                    format!(
                        "task {} is not claimed (it is {})",
                        task_id(row.num),
                        row.status
                    ),
                    json!({"status": row.status}),
                ));
            };
            holds.end(tx, h, End::Forced)?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// Cancels a task (kept on the board as `cancelled`); a claim on it ends. A done task stays
/// done (409); cancelling a cancelled task changes nothing.
pub async fn cancel(holds: &Holds, store: &Store, project: &str, id: &str) -> Result<Task> {
    check_project(project)?;
    let (holds, project, id) = (holds.clone(), project.to_owned(), id.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let mut row = row_of(tx.conn(), &project, &id)?;
            match row.status.as_str() {
                CANCELLED => return load(tx.conn(), &project, row.num),
                DONE => {
                    return Err(conflict(
                        format!(
                            "task {} is done: a done task cannot be cancelled",
                            task_id(row.num)
                        ),
                        json!({"status": row.status}),
                    ));
                }
                _ => {}
            }
            let claim = claim_of(tx.conn(), &project, row.num)?;
            if let Some(h) = &claim {
                holds.end(tx, h.clone(), End::Released)?;
            }
            row.status = CANCELLED.to_owned();
            row.version += 1;
            row.updated_at = tx.now().to_owned();
            rows::update(tx.conn(), &row)?;
            tx.emit(
                "koor.task.cancelled",
                event_data(&row, claim.as_ref().map(|h| &h.holder)),
                "koor",
            )?;
            load(tx.conn(), &project, row.num)
        })
        .await
}

/// A claim ended. Its holder's own complete, release or fail ([`End::Released`]) has already
/// changed the task; any other end (expiry, deregistration, an operator's force) puts a task
/// that is still claimed back to `open` with one more attempt and publishes
/// `koor.task.reclaimed`.
pub(super) fn ended(_holds: &Holds, tx: &mut Tx<'_>, hold: &Hold, end: End) -> Result<()> {
    if end == End::Released {
        return Ok(());
    }
    let Some(num) = parse_id(&hold.resource) else {
        return Ok(());
    };
    let Some(mut row) = rows::get(tx.conn(), &hold.project, num)? else {
        return Ok(());
    };
    if row.status != CLAIMED {
        return Ok(());
    }
    row.status = OPEN.to_owned();
    row.attempts += 1;
    row.reason = end.as_str().to_owned();
    row.version += 1;
    row.updated_at = tx.now().to_owned();
    rows::update(tx.conn(), &row)?;
    let mut data = event_data(&row, Some(&hold.holder));
    data["reason"] = json!(end.as_str());
    data["attempts"] = json!(row.attempts);
    data["fence"] = json!(hold.fence);
    tx.emit("koor.task.reclaimed", data, "koor")?;
    Ok(())
}
