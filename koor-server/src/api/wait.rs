//! Long-polls (COORDINATION.md, "Waiting instead of polling"): `GET /api/events/wait`, the
//! blocking state read `GET /api/state/{key}?wait=&after=N`, and the helpers the inbox wait
//! shares.
//!
//! Every wait registers with [`crate::waiters`] first, then reads what is already there, then
//! sleeps until the dispatcher wakes it, its deadline passes (at most [`MAX_WAIT`]) or the server
//! stops (503). A sleeping request costs no thread and reads nothing.

use std::time::Duration;

use koor_shared::topic::PatternSet;
use koor_shared::types::Event;
use tokio::time::Instant;
use warp::Filter;
use warp::Reply;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, Query, current_not_modified, current_value, method_not_allowed, ok, query, with_app,
};
use crate::App;
use crate::store::StoreError;
use crate::store::events::{self, HistoryFilter};
use crate::waiters::{Interest, Waiting};

/// Longest wait of an events, inbox or state long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// `timeout` of an events wait that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Events one wait answers when `last` is not given.
const DEFAULT_LAST: usize = 100;
/// Most events one wait answers.
const MAX_LAST: usize = 10_000;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "events" / "wait")
        .and(warp::method())
        .and(query())
        .and(with_app(app))
        .then(|method: Method, q: Query, app: App| async move {
            respond(if method == Method::GET || method == Method::HEAD {
                events_wait(app, q).await
            } else {
                Err(method_not_allowed(&method, "/api/events/wait", "GET"))
            })
        })
        .boxed()
}

/// A wait duration from query parameter `name` (`30s`, `2m`, or seconds): `None` when absent; a
/// 400 when malformed or longer than `max` (never silently shortened).
pub fn duration_param(q: &Query, name: &str, max: Duration) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = q.get(name).map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let d = crate::config::parse_duration(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid {name}: {raw:?}: {e}")))?;
    if d > max {
        return Err(ApiError::bad_request(format!(
            "invalid {name}: {raw} is longer than the longest wait ({})",
            humantime::format_duration(max)
        )));
    }
    Ok(Some(d))
}

/// How a sleep ended.
pub enum Ended {
    /// Something the waiter registered for happened: look again.
    Woken,
    /// The deadline passed.
    Deadline,
    /// The server is shutting down.
    Stopping,
}

/// Sleeps until `waiting` is woken, `deadline` passes or the server stops.
pub async fn sleep(waiting: &Waiting, deadline: Instant, app: &App) -> Ended {
    if app.is_stopping() {
        return Ended::Stopping;
    }
    tokio::select! {
        () = waiting.woken() => Ended::Woken,
        () = tokio::time::sleep_until(deadline) => Ended::Deadline,
        () = app.stopping() => Ended::Stopping,
    }
}

/// `GET /api/events/wait?pattern=P&since=ID&timeout=30s&last=N`: the matching events after
/// `since` (oldest first, at most `last`) as soon as there is one, else `[]` at the timeout.
/// Without `since`, only events newer than the request.
pub(crate) async fn events_wait(app: App, q: Query) -> Result<Response, ApiError> {
    let timeout = duration_param(&q, "timeout", MAX_WAIT)?.unwrap_or(DEFAULT_TIMEOUT);
    let last = match q.int("last")? {
        None => DEFAULT_LAST,
        Some(n) if n >= 1 => (n as usize).min(MAX_LAST),
        Some(_) => return Err(ApiError::bad_request("invalid last: must be at least 1")),
    };
    let since = q.int("since")?;
    if since.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request(
            "invalid since: event ids start at 1 (use since=0 for all)",
        ));
    }
    let newest = app.bus.last_id();
    if let Some(s) = since.filter(|s| *s > newest) {
        return Err(ApiError::bad_request(format!(
            "since={s} is ahead of the newest event; newest_id={newest} (history started over?)"
        )));
    }
    let patterns = PatternSet::new(q.all("pattern").filter(|p| !p.trim().is_empty()));
    let deadline = Instant::now() + timeout;

    let waiting = app.waiters.register(Interest::Events {
        patterns: patterns.clone(),
        limit: last,
    });
    // Every matching event with id <= cursor is either answered or not wanted.
    let cursor = since.unwrap_or_else(|| app.bus.last_id());
    let filter = HistoryFilter {
        patterns: Some(patterns),
        ..HistoryFilter::default()
    };
    // With `since`, what is stored already comes first; without it nothing older is wanted.
    let mut read_history = since.is_some();
    loop {
        if read_history || waiting.lagged() {
            let f = filter.clone();
            let stored = app
                .store
                .read(move |c| events::after(c, &f, cursor, last))
                .await?;
            if !stored.is_empty() {
                return Ok(ok(&stored));
            }
        }
        let handed = waiting.take_events();
        // The dispatcher keeps at most `last`: when it had to leave some out, history has them.
        read_history = handed.len() >= last;
        let fresh: Vec<&str> = handed
            .iter()
            .filter(|e| e.event.id > cursor)
            .map(|e| e.json())
            .collect();
        if !fresh.is_empty() {
            return Ok(json_array(&fresh));
        }
        if read_history {
            continue;
        }
        match sleep(&waiting, deadline, &app).await {
            Ended::Woken => {}
            Ended::Deadline => return Ok(ok::<[Event; 0]>(&[])),
            Ended::Stopping => return Err(ApiError::Unavailable),
        }
    }
}

/// A JSON array of already-serialized events.
fn json_array(items: &[&str]) -> Response {
    let mut body = String::with_capacity(items.iter().map(|s| s.len() + 1).sum::<usize>() + 2);
    body.push('[');
    body.push_str(&items.join(","));
    body.push(']');
    let mut resp = warp::http::Response::new(body.into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /api/state/{key}?wait=30s&after=N` (Consul-style blocking read): the value as a plain
/// GET answers it as soon as the key's version is greater than N; 404 when the key is gone (or
/// deleted during the wait); 304 when the wait ends first. `after=0` waits for a key to appear.
pub async fn state(app: App, key: String, q: &Query) -> Result<Response, ApiError> {
    let wait = duration_param(q, "wait", MAX_WAIT)?.unwrap_or_default();
    let after = q.int("after")?.ok_or_else(|| {
        ApiError::bad_request(
            "after=N is required with wait: the version you have (0 for a key that does not exist yet)",
        )
    })?;
    if after < 0 {
        return Err(ApiError::bad_request(
            "invalid after: versions start at 1 (0 waits for the key to appear)",
        ));
    }
    let deadline = Instant::now() + wait;
    let waiting = app.waiters.register(Interest::State(key.clone()));
    loop {
        let seen = match app.store.current_state(&key).await {
            Ok(cur) if cur.version > after => return Ok(current_value(&cur)),
            Ok(cur) => Some(cur),
            Err(StoreError::NotFound(m)) if after > 0 => return Err(ApiError::NotFound(m)),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if waiting.deleted() {
            return Err(ApiError::NotFound(format!(
                "key not found: {key} (deleted while waiting)"
            )));
        }
        match sleep(&waiting, deadline, &app).await {
            Ended::Woken => {}
            Ended::Deadline => {
                return Ok(match seen {
                    Some(cur) => current_not_modified(&cur),
                    None => warp::reply::with_status(warp::reply(), StatusCode::NOT_MODIFIED)
                        .into_response(),
                });
            }
            Ended::Stopping => return Err(ApiError::Unavailable),
        }
    }
}
