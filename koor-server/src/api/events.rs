//! `/api/events/publish`, `/api/events/history` and the WebSocket `/api/events/subscribe`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use koor_shared::time::{format_rfc3339, parse_rfc3339};
use koor_shared::topic::{PatternSet, TopicError, validate_publish_topic};
use koor_shared::types::RawJson;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use warp::Filter;
use warp::Reply;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;

use super::error::respond;
use super::ws::{self, Socket};
use super::{ApiError, Query, body, method_not_allowed, ok, origin_guard, query, with_app};
use crate::App;
use crate::bus::BusEvent;
use crate::store::events::{self, HistoryFilter};

/// Events listed by `history` when `last` is not given.
const DEFAULT_LAST: usize = 50;
/// Most events one history request returns.
const MAX_LAST: usize = 10_000;
/// Largest publish body.
const MAX_PUBLISH_BYTES: usize = 1024 * 1024;
/// Events read per page while replaying `since`.
const REPLAY_PAGE: usize = 500;
/// How often the server pings a subscriber.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// A send that takes longer than this means the subscriber has stopped reading.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Close code: the subscriber fell behind its buffer (reason names `last_id`).
pub const CLOSE_LAGGED: u16 = 4001;
/// Close code: `since` asks for events retention already removed (reason names `oldest_id`).
pub const CLOSE_GONE: u16 = 4002;
/// Close code: `since` is newer than any event (reason names `newest_id`).
pub const CLOSE_AHEAD: u16 = 4003;
/// Close code: server shutting down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let publish = warp::path!("api" / "events" / "publish")
        .and(warp::method())
        .and(body::limited(MAX_PUBLISH_BYTES))
        .and(with_app(app.clone()))
        .then(|method: Method, body: Bytes, app: App| async move {
            respond(if method == Method::POST {
                publish(app, body).await
            } else {
                Err(method_not_allowed(&method, "/api/events/publish", "POST"))
            })
        });
    let history = warp::path!("api" / "events" / "history")
        .and(warp::method())
        .and(query())
        .and(with_app(app.clone()))
        .then(|method: Method, q: Query, app: App| async move {
            respond(if method == Method::GET || method == Method::HEAD {
                history(app, q).await
            } else {
                Err(method_not_allowed(&method, "/api/events/history", "GET"))
            })
        });
    let subscribe = warp::path!("api" / "events" / "subscribe")
        .and(origin_guard(app.clone()))
        .and(ws::upgrade("/api/events/subscribe"))
        .and(query())
        .and(with_app(app))
        .map(|upgrade: ws::Upgrade, q: Query, app: App| {
            let patterns =
                match PatternSet::parse(q.all("pattern").filter(|p| !p.trim().is_empty())) {
                    Ok(p) => p,
                    Err(e) => {
                        return ApiError::bad_request(format!("invalid pattern: {e}"))
                            .into_response();
                    }
                };
            let since = match q.int("since") {
                Ok(Some(s)) if s < 0 => {
                    return ApiError::bad_request(
                        "invalid since: event ids start at 1 (use since=0 for all)",
                    )
                    .into_response();
                }
                Ok(s) => s,
                Err(e) => return e.into_response(),
            };
            // Subscribe before answering 101: whatever is published once the client has its
            // answer reaches it, even before the session task first runs.
            let live = app.bus.subscribe();
            let start = app.bus.last_id();
            upgrade.reply(move |socket| subscriber(socket, app, patterns, since, live, start))
        });
    publish.or(history).unify().or(subscribe).unify().boxed()
}

/// A publish body as the server reads it (the shared `PublishRequest` with `data` kept as text).
#[derive(serde::Deserialize)]
struct Publish {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    data: RawJson,
    #[serde(default)]
    source: String,
}

async fn publish(app: App, body: Bytes) -> Result<Response, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Reported as the JSON parser would, or as "not an object" for valid non-objects.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        return Err(ApiError::bad_request(
            "invalid JSON body: expected an object {\"topic\", \"data\", \"source\"}",
        ));
    }
    // `data` is kept as the exact text sent (validated JSON): no digit of a number changes.
    let req: Publish = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let topic = req.topic.trim().to_owned();
    validate_publish_topic(&topic).map_err(|e| match e {
        TopicError::Empty => ApiError::bad_request("topic is required"),
        other => ApiError::bad_request(other.to_string()),
    })?;
    let source = req.source;
    let data = req.data;
    let published = app
        .store
        .write_no_savepoint(move |tx| tx.emit(&topic, data, &source))
        .await?;
    let event = &published.event;
    tracing::debug!(topic = %event.topic, id = event.id, "event published");
    let mut resp = ok(event);
    resp.extensions_mut()
        .insert(crate::audit::AuditResource(event.topic.clone()));
    Ok(resp)
}

fn time_param(q: &Query, name: &str) -> Result<Option<String>, ApiError> {
    match q.get(name).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_rfc3339(v)
            .map(|t| Some(format_rfc3339(t)))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid {name}: {v:?} is not an RFC 3339 time (e.g. 2026-02-09T14:30:00Z)"
                ))
            }),
    }
}

async fn history(app: App, q: Query) -> Result<Response, ApiError> {
    let last = match q.int("last")? {
        None => None,
        Some(n) if n >= 1 => Some((n as usize).min(MAX_LAST)),
        Some(_) => return Err(ApiError::bad_request("invalid last: must be at least 1")),
    };
    let since = q.int("since")?;
    let topics: Vec<&str> = q.all("topic").filter(|t| !t.trim().is_empty()).collect();
    let filter = HistoryFilter {
        // No topic means `*`, which leaves out system topics as the original's clients expect.
        patterns: Some(
            PatternSet::parse(topics)
                .map_err(|e| ApiError::bad_request(format!("invalid topic pattern: {e}")))?,
        ),
        from: time_param(&q, "from")?,
        to: time_param(&q, "to")?,
        source: q.get("source").filter(|s| !s.is_empty()).map(str::to_owned),
    };
    let events = match since {
        // (ext) Resuming: oldest first.
        Some(since) => {
            let limit = last.unwrap_or(MAX_LAST);
            app.store
                .read(move |c| events::after(c, &filter, since, limit))
                .await?
        }
        // As the original: the most recent `last`, newest first.
        None => {
            let limit = last.unwrap_or(DEFAULT_LAST);
            app.store
                .read(move |c| events::recent(c, &filter, limit))
                .await?
        }
    };
    Ok(ok(&events))
}

/// One WebSocket subscriber: replay after `since`, then live events, in id order, no gap, no
/// duplicate.
async fn subscriber(
    socket: Socket,
    app: App,
    patterns: PatternSet,
    since: Option<i64>,
    mut live: broadcast::Receiver<Arc<BusEvent>>,
    start: i64,
) {
    let _guard = app.bus.subscriber_guard();
    // `live` was subscribed before history is read, so nothing published meanwhile is missed.
    let (mut tx, mut rx) = socket.split();
    let pattern_text: Vec<&str> = patterns.patterns().iter().map(|p| p.as_str()).collect();
    tracing::info!(pattern = %pattern_text.join(","), since = since.unwrap_or(-1), "websocket subscriber connected");

    // `cursor`: every matching event with id <= cursor has been sent.
    let mut cursor = since.unwrap_or(start);
    if let Some(since) = since.filter(|s| *s > start) {
        // An id this server never handed out: its history started over (a new data dir). Say
        // so rather than wait silently for an id that may be far away.
        let reason = format!(
            "since={since} is ahead of the newest event; newest_id={start} (history started over?)"
        );
        let _ = send_close(&mut tx, (CLOSE_AHEAD, reason)).await;
        return;
    }
    if let Some(since) = since {
        match replay(&app, &patterns, since, &mut tx).await {
            Ok(Some(last)) => cursor = last,
            Ok(None) => {}
            Err(close) => {
                let _ = send_close(&mut tx, close).await;
                return;
            }
        }
    }

    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    let close = loop {
        tokio::select! {
            () = &mut stopping => break Some((CLOSE_GOING_AWAY, "server shutting down".to_owned())),
            msg = rx.next() => match msg {
                Some(Ok(m)) if m.is_close() => break None,
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
                Some(Err(_)) | None => break None,
            },
            _ = ping.tick() => {
                if heard.elapsed() > PING_EVERY * 2 + SEND_TIMEOUT {
                    tracing::debug!("websocket subscriber unresponsive; dropping");
                    break None;
                }
                if !send(&mut tx, Message::Ping(Bytes::new())).await {
                    break None;
                }
            }
            first = live.recv() => {
                // Take whatever else is already waiting too, and flush once for all of it.
                let mut lagged = None;
                let mut batch = Vec::new();
                match first {
                    Ok(e) => batch.push(e),
                    Err(RecvError::Lagged(n)) => lagged = Some(n),
                    Err(RecvError::Closed) => break Some((CLOSE_GOING_AWAY, "server shutting down".to_owned())),
                }
                while lagged.is_none() && batch.len() < MAX_BATCH {
                    match live.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(TryRecvError::Lagged(n)) => lagged = Some(n),
                        Err(_) => break,
                    }
                }
                let mut queued = false;
                let mut failed = false;
                for event in batch {
                    if event.event.id <= cursor {
                        continue;
                    }
                    if patterns.matches(&event.event.topic) {
                        if !feed(&mut tx, Message::text(event.json())).await {
                            failed = true;
                            break;
                        }
                        queued = true;
                    }
                    cursor = event.event.id;
                }
                if failed || (queued && !flush(&mut tx).await) {
                    break None;
                }
                if let Some(skipped) = lagged {
                    tracing::warn!(last_id = cursor, skipped, "websocket subscriber fell behind; closing it");
                    break Some((CLOSE_LAGGED, format!("lagged: subscriber fell behind; resume with since; last_id={cursor}")));
                }
            }
        }
    };
    if let Some(close) = close {
        let _ = send_close(&mut tx, close).await;
    }
    tracing::info!(last_id = cursor, "websocket subscriber disconnected");
}

type Sink = futures_util::stream::SplitSink<Socket, Message>;

/// Most events written before one flush.
const MAX_BATCH: usize = 256;

/// Queues one frame without flushing; false when the subscriber is gone or stopped reading.
async fn feed(tx: &mut Sink, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.feed(msg)).await,
        Ok(Ok(()))
    )
}

async fn flush(tx: &mut Sink) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.flush()).await,
        Ok(Ok(()))
    )
}

/// Sends one frame; false when the subscriber is gone or stopped reading.
async fn send(tx: &mut Sink, msg: Message) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(msg)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket write failed");
            false
        }
        Err(_) => {
            tracing::debug!("websocket write timed out; dropping subscriber");
            false
        }
    }
}

async fn send_close(tx: &mut Sink, (code, reason): (u16, String)) -> bool {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.into(),
    };
    let sent = send(tx, Message::Close(Some(frame))).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), tx.close()).await;
    sent
}

/// Sends the stored events after `since`. Returns the last id replayed (`None` when none), or
/// the close frame to send when the subscriber cannot be served.
async fn replay(
    app: &App,
    patterns: &PatternSet,
    since: i64,
    tx: &mut Sink,
) -> Result<Option<i64>, (u16, String)> {
    let oldest = app.store.read(events::oldest_id).await.map_err(internal)?;
    let first_needed = since + 1;
    if since < app.bus.last_id() && oldest.is_none_or(|o| o > first_needed) {
        let oldest = oldest.unwrap_or(app.bus.last_id() + 1);
        return Err((
            CLOSE_GONE,
            format!("since={since} is older than retained history; oldest_id={oldest}"),
        ));
    }
    let mut cursor = since;
    let mut last = None;
    let filter = HistoryFilter::default();
    loop {
        let f = filter.clone();
        let page = app
            .store
            .read(move |c| events::after(c, &f, cursor, REPLAY_PAGE))
            .await
            .map_err(internal)?;
        // Ids are contiguous, so a jump means pruning removed events while we replayed.
        if let Some(first) = page.first()
            && first.id > cursor + 1
        {
            return Err((
                CLOSE_GONE,
                format!(
                    "since={cursor} is older than retained history; oldest_id={}",
                    first.id
                ),
            ));
        }
        let done = page.len() < REPLAY_PAGE;
        for event in page {
            cursor = event.id;
            last = Some(event.id);
            if patterns.matches(&event.topic) {
                let text = serde_json::to_string(&event).unwrap_or_default();
                if !send(tx, Message::text(text)).await {
                    return Err((1011, "write failed".into()));
                }
            }
        }
        if done {
            return Ok(last);
        }
    }
}

fn internal(e: crate::store::StoreError) -> (u16, String) {
    tracing::error!(error = %e, "replay failed");
    (1011, format!("server error: {e}"))
}
