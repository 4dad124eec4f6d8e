//! (ext) The server's own logs: `GET /api/logs` and the WebSocket `/api/logs/subscribe`.

use futures_util::{SinkExt, StreamExt};
use koor_shared::types::LogRecord;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::error::respond;
use super::ws::{self, Socket};
use super::{ApiError, Query, method_not_allowed, ok, origin_guard, query, with_app};
use crate::App;
use crate::logging::{level_rank, parse_level};

const DEFAULT_LAST: usize = 200;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let recent = warp::path!("api" / "logs")
        .and(warp::method())
        .and(query())
        .and(with_app(app.clone()))
        .map(|method: Method, q: Query, app: App| {
            respond(if method == Method::GET || method == Method::HEAD {
                recent(&app, &q)
            } else {
                Err(method_not_allowed(&method, "/api/logs", "GET"))
            })
        });
    let subscribe = warp::path!("api" / "logs" / "subscribe")
        .and(origin_guard(app.clone()))
        .and(ws::upgrade("/api/logs/subscribe"))
        .and(query())
        .and(with_app(app))
        .map(|upgrade: ws::Upgrade, q: Query, app: App| match level(&q) {
            Ok(level) => upgrade.reply(move |socket| subscriber(socket, app, level)),
            Err(e) => e.into_response(),
        });
    recent.or(subscribe).unify().boxed()
}

fn level(q: &Query) -> Result<String, ApiError> {
    match q.get("level").map(str::trim).filter(|l| !l.is_empty()) {
        None => Ok("debug".into()),
        Some(l) => parse_level(l)
            .map(|_| l.to_ascii_lowercase())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid level {l:?}: use debug, info, warn or error"
                ))
            }),
    }
}

fn recent(app: &App, q: &Query) -> Result<Response, ApiError> {
    let last = match q.int("last")? {
        None => DEFAULT_LAST,
        Some(n) if n >= 1 => n as usize,
        Some(_) => return Err(ApiError::bad_request("invalid last: must be at least 1")),
    };
    Ok(ok(&app.logs.recent(last, &level(q)?)))
}

async fn subscriber(socket: Socket, app: App, level: String) {
    let _guard = app.logs.subscriber_guard();
    let mut live = app.logs.subscribe();
    let (mut tx, mut rx) = socket.split();
    let min = level_rank(&level);
    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + super::events::PING_EVERY,
        super::events::PING_EVERY,
    );
    loop {
        let outgoing = tokio::select! {
            () = &mut stopping => {
                let frame = CloseFrame {
                    code: 1001.into(),
                    reason: "server shutting down".into(),
                };
                let _ = tx.send(Message::Close(Some(frame))).await;
                break;
            }
            msg = rx.next() => match msg {
                Some(Ok(m)) if !m.is_close() => continue,
                _ => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            record = live.recv() => match record {
                Ok(r) if level_rank(&r.level) >= min => Message::text(serde_json::to_string(&*r).unwrap_or_default()),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let note = LogRecord {
                        time: koor_shared::time::now_rfc3339(),
                        level: "WARN".into(),
                        target: "koor_server::logs".into(),
                        message: format!("log stream fell behind: {n} records skipped"),
                        fields: Default::default(),
                    };
                    Message::text(serde_json::to_string(&note).unwrap_or_default())
                }
                Err(RecvError::Closed) => break,
            },
        };
        match tokio::time::timeout(super::events::SEND_TIMEOUT, tx.send(outgoing)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
}
