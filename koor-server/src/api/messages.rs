//! `/api/messages...` and `/api/instances/{id}/inbox...` (ext): directed messages, threads,
//! inboxes with receipts, and the inbox long-poll.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::wait::{self, Ended};
use super::{
    ApiError, Query, body, identity, json_body, method_not_allowed, ok, path_segments, query,
    with_app,
};
use crate::App;
use crate::messages::{self, MAX_BODY_BYTES, MAX_LIST, Outgoing};
use crate::store::messages::InboxFilter;
use crate::waiters::Interest;

/// Largest request body: a 1 MiB message body plus its envelope.
const MAX_REQUEST: usize = MAX_BODY_BYTES + 64 * 1024;
/// Messages listed by `GET /api/messages` and an inbox when `last` is not given.
const DEFAULT_RECENT: usize = 50;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let messages =
        warp::path("api")
            .and(warp::path("messages"))
            .and(warp::path::tail())
            .and(warp::method())
            .and(warp::header::headers_cloned())
            .and(query())
            .and(body::limited(MAX_REQUEST))
            .and(with_app(app.clone()))
            .then(
                |tail: Tail,
                 method: Method,
                 headers: HeaderMap,
                 q: Query,
                 body: Bytes,
                 app: App| async move {
                    respond(route(tail, method, headers, q, body, app).await)
                },
            );
    // Only `{id}/inbox...` under /api/instances: everything else falls through to the
    // instance routes.
    let inbox = warp::path("api")
        .and(warp::path("instances"))
        .and(warp::path::param::<String>())
        .and(warp::path("inbox"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(query())
        .and(with_app(app))
        .then(
            |id: String, tail: Tail, method: Method, headers: HeaderMap, q: Query, app: App| async move {
                respond(inbox_route(id, tail, method, headers, q, app).await)
            },
        );
    messages.or(inbox).unify().boxed()
}

/// `POST /api/messages` body.
#[derive(Deserialize)]
struct SendBody {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: Addressees,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    thread_id: Option<Value>,
    #[serde(default)]
    ack_required: bool,
}

/// `to`: a list of ids or names, or one of them as a string.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Addressees {
    Many(Vec<String>),
    One(String),
    #[default]
    None,
}

/// A message or thread id from a path segment, query value or body field.
fn message_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| {
            ApiError::bad_request(format!("invalid {what}: {raw:?} is not a message id"))
        })
}

async fn route(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let segments = path_segments(&tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([], Method::POST) => send(app, headers, body).await,
        ([], Method::GET | Method::HEAD) => {
            let since = q.int("since")?.unwrap_or(0);
            let last = list_limit(&q)?.unwrap_or(DEFAULT_RECENT);
            let list = messages::recent(&app.store, since, last).await?;
            Ok(ok(&json!({"messages": list})))
        }
        ([], m) => Err(method_not_allowed(&m, "/api/messages", "GET, POST")),
        (["unread"], Method::GET | Method::HEAD) => {
            let counts = messages::unread_counts(&app.store).await?;
            let map: serde_json::Map<String, Value> =
                counts.into_iter().map(|(id, n)| (id, json!(n))).collect();
            Ok(ok(&json!({"unread": map})))
        }
        (["threads", thread], Method::GET | Method::HEAD) => {
            let thread = message_id("thread_id", thread)?;
            Ok(ok(&messages::thread(&app.store, thread).await?))
        }
        (["unread"] | ["threads", _], m) => Err(method_not_allowed(&m, "/api/messages/...", "GET")),
        ([id], Method::GET | Method::HEAD) => {
            let id = message_id("message id", id)?;
            Ok(ok(&messages::get(&app.store, id).await?))
        }
        ([_], m) => Err(method_not_allowed(&m, "/api/messages/{id}", "GET")),
        _ => Err(ApiError::NotFound("not found".into())),
    }
}

/// `last=N` of a listing: 1 to [`MAX_LIST`].
fn list_limit(q: &Query) -> Result<Option<usize>, ApiError> {
    match q.int("last")? {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some((n as usize).min(MAX_LIST))),
        Some(_) => Err(ApiError::bad_request("invalid last: must be at least 1")),
    }
}

pub(crate) async fn send(app: App, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let req: SendBody = json_body(&body, None)?;
    if req.from.trim().is_empty() {
        return Err(ApiError::bad_request(
            "from is required: the sending instance's id",
        ));
    }
    identity::act_for(&app, &headers, req.from.trim())?;
    let text = if req.body.is_null() {
        None
    } else {
        let text = serde_json::to_string(&req.body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
        if text.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        Some(text)
    };
    let thread_id = match &req.thread_id {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(message_id("thread_id", &n.to_string())?),
        Some(Value::String(s)) => Some(message_id("thread_id", s)?),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid thread_id: {other} is not a message id"
            )));
        }
    };
    let to = match req.to {
        Addressees::Many(v) => v,
        Addressees::One(s) => vec![s],
        Addressees::None => Vec::new(),
    };
    let sent = messages::send(
        &app.store,
        Outgoing {
            from: req.from,
            to,
            subject: req.subject,
            body: text,
            thread_id,
            ack_required: req.ack_required,
        },
    )
    .await?;
    tracing::debug!(
        id = sent.id,
        thread_id = sent.thread_id,
        to = sent.to.len(),
        "message sent"
    );
    Ok(ok(&sent))
}

async fn inbox_route(
    id: String,
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    q: Query,
    app: App,
) -> Result<Response, ApiError> {
    let id = super::decode_path(&id)?;
    let segments = path_segments(&tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([], Method::GET | Method::HEAD) => {
            identity::act_for(&app, &headers, &id)?;
            inbox(app, id, q).await
        }
        ([], m) => Err(method_not_allowed(&m, "/api/instances/{id}/inbox", "GET")),
        ([msg, action @ ("read" | "ack")], Method::POST) => {
            let msg = message_id("message id", msg)?;
            identity::act_for(&app, &headers, &id)?;
            let ack = *action == "ack";
            let receipts = messages::mark(&app.store, &id, msg, ack).await?;
            tracing::debug!(id = msg, instance = %id, ack, "message marked");
            Ok(ok(&receipts))
        }
        ([_, "read" | "ack"], m) => Err(method_not_allowed(
            &m,
            "/api/instances/{id}/inbox/{msg_id}/...",
            "POST",
        )),
        _ => Err(ApiError::NotFound("not found".into())),
    }
}

/// `GET /api/instances/{id}/inbox`: oldest first, with filters; `wait=` blocks until at least one
/// message matches (or the wait ends: then the empty listing). Never marks anything read.
pub(crate) async fn inbox(app: App, id: String, q: Query) -> Result<Response, ApiError> {
    let flag = |name: &str| matches!(q.get(name), Some("1" | "true" | "yes"));
    let since = q.int("since")?.unwrap_or(0);
    let thread_id = match q.get("thread_id").filter(|t| !t.trim().is_empty()) {
        None => None,
        Some(t) => Some(message_id("thread_id", t)?),
    };
    let filter = InboxFilter {
        unread: flag("unread"),
        unacked: flag("unacked"),
        since,
        thread_id,
        last: list_limit(&q)?,
        limit: MAX_LIST,
    };
    let wait = wait::duration_param(&q, "wait", wait::MAX_WAIT)?.filter(|w| !w.is_zero());
    app.instances.get(&id)?;
    let Some(wait) = wait else {
        return Ok(ok(&messages::inbox(&app.store, &id, filter).await?));
    };
    let deadline = Instant::now() + wait;
    // Registered before the first read, so a message sent meanwhile wakes it.
    let waiting = app.waiters.register(Interest::Inbox(id.clone()));
    loop {
        let found = messages::inbox(&app.store, &id, filter.clone()).await?;
        if !found.messages.is_empty() {
            return Ok(ok(&found));
        }
        match wait::sleep(&waiting, deadline, &app).await {
            Ended::Woken => {
                // Deregistered while it waited: its inbox is gone for it.
                app.instances.get(&id)?;
            }
            Ended::Deadline => return Ok(ok(&found)),
            Ended::Stopping => return Err(ApiError::Unavailable),
        }
    }
}
