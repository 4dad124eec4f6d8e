//! File reservations over the hold model (COORDINATION.md, "File reservations").
//!
//! A reservation is a hold of kind `reservation` on `(project, path)`, where `path` is a file or a
//! glob relative to the project root, normalised by [`koor_shared::paths`] (the one place that
//! decides what a path means and which paths overlap; the CLI's guard and hook use it too).
//!
//! Rules:
//! - A request conflicts with a hold of *another* instance in the same project when their paths
//!   overlap and either side is exclusive. An instance's own holds never conflict.
//! - Reserving is all or nothing: every conflict of every path is reported in one 409 and
//!   nothing is granted.
//! - Reserving a path the instance already holds (the same normalised string) renews it: same
//!   id and fence, new expiry, and the new mode and reason.
//! - `check` is read-only: what the git guard and the Claude Code hook ask before an edit.

use std::time::Duration;

use koor_shared::paths;
use koor_shared::types::{Holder, Reservation, ReservationCheck, ReservationConflict};
use serde_json::{Value, json};

use super::{End, Grant, Holds, holder, holder_json, now_ms};
use crate::store::holds::{self as rows, Hold};
use crate::store::{Result, Store, StoreError, Tx};

pub const KIND: &str = "reservation";
/// Most paths one request may name.
pub const MAX_PATHS: usize = 256;
/// Longest project name and reason.
const MAX_PROJECT_BYTES: usize = 256;
const MAX_REASON_BYTES: usize = 1024;

/// What a reserve asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub instance: String,
    pub project: String,
    pub paths: Vec<String>,
    pub exclusive: bool,
    pub ttl: Duration,
    pub reason: String,
}

pub fn to_reservation(h: &Hold) -> Reservation {
    Reservation {
        id: h.id.clone(),
        project: h.project.clone(),
        path: h.resource.clone(),
        exclusive: h.exclusive,
        holder: h.holder.clone(),
        fence: h.fence,
        reason: h.reason.clone(),
        created_at: h.acquired_at.clone(),
        expires_at: h.expires_at(),
    }
}

fn event_data(h: &Hold) -> Value {
    json!({"id": h.id, "project": h.project, "path": h.resource, "holder": holder_json(&h.holder),
           "exclusive": h.exclusive, "fence": h.fence})
}

fn conflict(path: &str, h: &Hold) -> ReservationConflict {
    ReservationConflict {
        path: path.to_owned(),
        held_path: h.resource.clone(),
        id: h.id.clone(),
        holder: h.holder.clone(),
        exclusive: h.exclusive,
        expires_at: h.expires_at(),
        reason: h.reason.clone(),
    }
}

/// A project name: required, short, no control characters.
pub fn check_project(project: &str) -> Result<String> {
    let p = project.trim();
    if p.is_empty() {
        return Err(StoreError::Invalid("project is required".into()));
    }
    if p.len() > MAX_PROJECT_BYTES || p.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "invalid project {p:?}: at most {MAX_PROJECT_BYTES} bytes, no control characters"
        )));
    }
    Ok(p.to_owned())
}

/// Normalises each path (400 naming the first bad one), dropping repeats but keeping order.
pub fn normalize_all(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(StoreError::Invalid(
            "paths is required: a list of files or globs relative to the project root".into(),
        ));
    }
    if raw.len() > MAX_PATHS {
        return Err(StoreError::Invalid(format!(
            "too many paths: {} (at most {MAX_PATHS} in one request)",
            raw.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for p in raw {
        let n = paths::normalize(p).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Normalises one path for a filter or a check.
pub fn normalize_one(raw: &str) -> Result<String> {
    paths::normalize(raw).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn check_reason(reason: &str) -> Result<()> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(StoreError::Invalid(format!(
            "reason too long (at most {MAX_REASON_BYTES} bytes)"
        )));
    }
    Ok(())
}

/// The 409 of a reserve that meets others' holds.
fn conflicts_error(conflicts: Vec<ReservationConflict>) -> StoreError {
    let first = &conflicts[0];
    let more = if conflicts.len() > 1 {
        format!(" (and {} more conflicts)", conflicts.len() - 1)
    } else {
        String::new()
    };
    let why = if first.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", first.reason)
    };
    StoreError::Conflict {
        message: format!(
            "{} is reserved{} by {} ({}) as {} until {}{why}{more}",
            first.path,
            if first.held_path == first.path {
                String::new()
            } else {
                format!(" through {}", first.held_path)
            },
            first.holder.name,
            first.holder.id,
            if first.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            first.expires_at,
        ),
        details: json!({"conflicts": conflicts}),
    }
}

/// Reserves every path of `req` for its instance, or none (409 listing every conflict).
pub async fn reserve(holds: &Holds, store: &Store, req: Request) -> Result<Vec<Reservation>> {
    let project = check_project(&req.project)?;
    let wanted = normalize_all(&req.paths)?;
    check_reason(&req.reason)?;
    let holds = holds.clone();
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let who = holder(tx, &req.instance)?;
            let live = rows::list(tx.conn(), KIND, Some(&project), None, now_ms())?;
            let conflicts: Vec<ReservationConflict> = wanted
                .iter()
                .flat_map(|path| {
                    live.iter()
                        .filter(|h| h.holder.id != who.id)
                        .filter(|h| h.exclusive || req.exclusive)
                        .filter(|h| paths::overlap(path, &h.resource))
                        .map(|h| conflict(path, h))
                })
                .collect();
            if !conflicts.is_empty() {
                return Err(conflicts_error(conflicts));
            }
            let mut granted = Vec::with_capacity(wanted.len());
            for path in &wanted {
                let mine = live
                    .iter()
                    .find(|h| h.holder.id == who.id && &h.resource == path);
                let hold = match mine {
                    Some(h) => {
                        renew_with_terms(&holds, tx, h, req.ttl, req.exclusive, &req.reason)?
                    }
                    None => grant(&holds, tx, &who, &project, path, &req)?,
                };
                granted.push(to_reservation(&hold));
            }
            Ok(granted)
        })
        .await
}

fn grant(
    holds: &Holds,
    tx: &mut Tx<'_>,
    who: &Holder,
    project: &str,
    path: &str,
    req: &Request,
) -> Result<Hold> {
    holds.grant(
        tx,
        who,
        Grant {
            kind: KIND,
            project: project.to_owned(),
            resource: path.to_owned(),
            exclusive: req.exclusive,
            reason: req.reason.clone(),
            ttl: req.ttl,
        },
        "koor.reservation.granted",
        event_data,
    )
}

fn renew_with_terms(
    holds: &Holds,
    tx: &mut Tx<'_>,
    h: &Hold,
    ttl: Duration,
    exclusive: bool,
    reason: &str,
) -> Result<Hold> {
    let mut renewed = holds.renew(tx, h, ttl)?;
    if renewed.exclusive != exclusive || renewed.reason != reason {
        rows::set_terms(tx.conn(), &h.id, exclusive, reason)?;
        renewed.exclusive = exclusive;
        renewed.reason = reason.to_owned();
    }
    Ok(renewed)
}

/// Filters of a list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub project: Option<String>,
    pub instance: Option<String>,
    /// A file: only the reservations that cover it.
    pub path: Option<String>,
}

/// The live reservations, by project, path and grant.
pub async fn list(store: &Store, filter: Filter) -> Result<Vec<Reservation>> {
    let path = filter.path.as_deref().map(normalize_one).transpose()?;
    store
        .read(move |c| {
            Ok(rows::list(
                c,
                KIND,
                filter.project.as_deref(),
                filter.instance.as_deref(),
                now_ms(),
            )?
            .iter()
            .filter(|h| {
                path.as_deref()
                    .is_none_or(|f| paths::covers(&h.resource, f))
            })
            .map(to_reservation)
            .collect())
        })
        .await
}

/// The live reservation `id`; 404 when there is none.
pub async fn get(store: &Store, id: &str) -> Result<Reservation> {
    let id = id.to_owned();
    store
        .read(move |c| live(c, &id).map(|h| to_reservation(&h)))
        .await
}

fn live(c: &rusqlite::Connection, id: &str) -> Result<Hold> {
    rows::get(c, id)?
        .filter(|h| h.kind == KIND && h.is_live(now_ms()))
        .ok_or_else(|| StoreError::NotFound(format!("reservation not found: {id}")))
}

/// Which of `files` another instance holds: exclusive holds always, shared ones too when
/// `exclusive` (could I take these exclusively?). Read-only.
pub async fn check(
    store: &Store,
    project: &str,
    files: &[String],
    instance: Option<&str>,
    exclusive: bool,
) -> Result<ReservationCheck> {
    let project = check_project(project)?;
    let files = normalize_all(files)?;
    let instance = instance.map(str::to_owned);
    store
        .read(move |c| {
            let live = rows::list(c, KIND, Some(&project), None, now_ms())?;
            let conflicts: Vec<ReservationConflict> = files
                .iter()
                .flat_map(|file| {
                    live.iter()
                        .filter(|h| instance.as_deref() != Some(h.holder.id.as_str()))
                        .filter(|h| h.exclusive || exclusive)
                        .filter(|h| paths::covers(&h.resource, file))
                        .map(|h| conflict(file, h))
                })
                .collect();
            Ok(ReservationCheck {
                ok: conflicts.is_empty(),
                conflicts,
            })
        })
        .await
}

/// The 409 when `who` is not the holder of `h`.
fn not_holder(h: &Hold, who: &Holder) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "reservation {} ({}) is held by {} ({}), not by {} ({})",
            h.id, h.resource, h.holder.name, h.holder.id, who.name, who.id
        ),
        details: json!({"holder": holder_json(&h.holder), "expires_at": h.expires_at()}),
    }
}

/// Renews reservation `id` for its holder `instance`, to now + `ttl` (else its own TTL).
pub async fn renew(
    holds: &Holds,
    store: &Store,
    id: &str,
    instance: &str,
    ttl: Option<Duration>,
) -> Result<Reservation> {
    let (holds, id, instance) = (holds.clone(), id.to_owned(), instance.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let h = live(tx.conn(), &id)?;
            let who = holder(tx, &instance)?;
            if h.holder.id != who.id {
                return Err(not_holder(&h, &who));
            }
            let ttl = ttl.unwrap_or(Duration::from_millis(u64::try_from(h.ttl_ms).unwrap_or(0)));
            Ok(to_reservation(&holds.renew(tx, &h, ttl)?))
        })
        .await
}

/// Releases reservation `id`: by its holder `instance`, or by anyone with `force`.
pub async fn release(
    holds: &Holds,
    store: &Store,
    id: &str,
    instance: Option<&str>,
    force: bool,
) -> Result<Reservation> {
    let (holds, id, instance) = (holds.clone(), id.to_owned(), instance.map(str::to_owned));
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let h = live(tx.conn(), &id)?;
            if !force {
                let who = holder(tx, &instance.unwrap_or_default())?;
                if h.holder.id != who.id {
                    return Err(not_holder(&h, &who));
                }
            }
            let gone = to_reservation(&h);
            holds.end(tx, h, if force { End::Forced } else { End::Released })?;
            Ok(gone)
        })
        .await
}

/// Releases the reservations of `instance` (in `project` when given; only those on the given
/// `paths` when any, compared after normalisation). Returns what was released.
pub async fn release_all(
    holds: &Holds,
    store: &Store,
    instance: &str,
    project: Option<&str>,
    only: &[String],
) -> Result<Vec<Reservation>> {
    let project = project.map(check_project).transpose()?;
    let only = if only.is_empty() {
        Vec::new()
    } else {
        normalize_all(only)?
    };
    let (holds, instance) = (holds.clone(), instance.to_owned());
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let who = holder(tx, &instance)?;
            let mine = rows::list(tx.conn(), KIND, project.as_deref(), Some(&who.id), now_ms())?;
            let mut released = Vec::new();
            for h in mine {
                if !only.is_empty() && !only.contains(&h.resource) {
                    continue;
                }
                released.push(to_reservation(&h));
                holds.end(tx, h, End::Released)?;
            }
            Ok(released)
        })
        .await
}

/// A reservation ended: `koor.reservation.released` (with the reason) or
/// `koor.reservation.expired`.
pub(super) fn ended(tx: &mut Tx<'_>, hold: &Hold, end: End) -> Result<()> {
    let mut data = event_data(hold);
    let topic = if end == End::Expired {
        "koor.reservation.expired"
    } else {
        data["reason"] = json!(end.as_str());
        "koor.reservation.released"
    };
    tx.emit(topic, data, "koor")?;
    Ok(())
}
