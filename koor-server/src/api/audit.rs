//! `GET /api/audit` and `GET /api/audit/summary`: the audit log (capture is [`crate::audit`]).

use chrono::Utc;
use koor_shared::time::{format_rfc3339, parse_rfc3339};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{ApiError, Query, method_not_allowed, ok, path_segments, query, with_app};
use crate::App;
use crate::store::audit::{self as log, Filter as AuditFilter};

/// Entries answered when `last` (or the original's `limit`) is not given.
const DEFAULT_LAST: usize = 50;
/// Most entries one query answers.
const MAX_LAST: usize = 10_000;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("audit"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(query())
        .and(with_app(app))
        .then(
            |tail: Tail, method: Method, q: Query, app: App| async move {
                respond(route(tail, method, q, app).await)
            },
        )
        .boxed()
}

async fn route(tail: Tail, method: Method, q: Query, app: App) -> Result<Response, ApiError> {
    let segments = path_segments(&tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let read = matches!(method, Method::GET | Method::HEAD);
    match segs.as_slice() {
        [] if read => {
            let filter = filter(&q)?;
            let last = match q.int("last")?.or(q.int("limit")?) {
                None => DEFAULT_LAST,
                Some(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_LAST).min(MAX_LAST),
                Some(n) => {
                    return Err(ApiError::bad_request(format!(
                        "invalid last: {n} (must be positive)"
                    )));
                }
            };
            let entries = app
                .store
                .read(move |c| log::query(c, &filter, last))
                .await?;
            Ok(ok(&entries))
        }
        [] => Err(method_not_allowed(&method, "/api/audit", "GET")),
        ["summary"] if read => {
            let filter = filter(&q)?;
            let summary = app.store.read(move |c| log::summary(c, &filter)).await?;
            Ok(ok(&summary))
        }
        ["summary"] => Err(method_not_allowed(&method, "/api/audit/summary", "GET")),
        _ => Err(ApiError::NotFound(format!(
            "not found: /api/audit/{}",
            tail.as_str()
        ))),
    }
}

/// `since` (an RFC 3339 time or a duration back from now: `10m`, `2h`), the original's
/// `from`/`to`, `actor`, `action` (a topic-style pattern: `state.*`) and `resource` (exact, or a
/// prefix ending in `*`).
fn filter(q: &Query) -> Result<AuditFilter, ApiError> {
    let time = |name: &str| -> Result<Option<String>, ApiError> {
        match q.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => {
                if let Some(t) = parse_rfc3339(v) {
                    return Ok(Some(format_rfc3339(t)));
                }
                if name == "since"
                    && let Ok(d) = crate::config::parse_duration(v)
                    && let Ok(d) = chrono::Duration::from_std(d)
                {
                    return Ok(Some(format_rfc3339(Utc::now() - d)));
                }
                Err(ApiError::bad_request(format!(
                    "invalid {name}: {v:?} (use an RFC 3339 time{})",
                    if name == "since" {
                        " or a duration such as 10m"
                    } else {
                        ""
                    }
                )))
            }
        }
    };
    let since = time("since")?;
    let from = time("from")?;
    let text = |name: &str| {
        q.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(AuditFilter {
        from: match (since, from) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        to: time("to")?,
        actor: text("actor"),
        action: text("action").map(|a| koor_shared::topic::PatternSet::new(a.split(','))),
        resource: text("resource"),
    })
}
