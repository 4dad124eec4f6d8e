//! WebSocket upgrades for the subscription routes.
//!
//! warp's `ws()` gives every connection tungstenite's default 128 KiB read buffer (and no way to
//! change it), which is 128 MB for a thousand idle subscribers. Subscribers send us almost nothing,
//! so we do the (small) RFC 6455 handshake here and size the buffers ourselves.

use std::future::Future;

use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::hyper::upgrade::OnUpgrade;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, method_not_allowed};

/// An upgraded connection.
pub type Socket = WebSocketStream<hyper_util::rt::TokioIo<warp::hyper::upgrade::Upgraded>>;

/// Largest message a client may send us.
const MAX_INCOMING: usize = 64 * 1024;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        // A subscriber whose unsent frames pile up past this is not reading: it is dropped.
        .max_write_buffer_size(8 * 1024 * 1024)
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
}

/// A valid upgrade request, ready to be answered with 101.
pub struct Upgrade {
    key: String,
    on_upgrade: OnUpgrade,
}

fn bad_handshake(what: &str) -> Rejection {
    warp::reject::custom(ApiError::BadRequest(format!(
        "websocket: bad handshake ({what}): this route needs a WebSocket client (websocat, wscat), not plain HTTP"
    )))
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Checks the handshake headers of a WebSocket upgrade on `path`.
pub fn upgrade(path: &'static str) -> impl Filter<Extract = (Upgrade,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and_then(
            move |method: Method, headers: HeaderMap, on_upgrade: Option<OnUpgrade>| async move {
                if method != Method::GET {
                    return Err(warp::reject::custom(method_not_allowed(
                        &method, path, "GET",
                    )));
                }
                if !has_token(&headers, header::CONNECTION, "upgrade") {
                    return Err(bad_handshake("connection header"));
                }
                if !has_token(&headers, header::UPGRADE, "websocket") {
                    return Err(bad_handshake("upgrade header"));
                }
                if headers
                    .get(header::SEC_WEBSOCKET_VERSION)
                    .and_then(|v| v.to_str().ok())
                    != Some("13")
                {
                    return Err(bad_handshake("sec-websocket-version must be 13"));
                }
                let key = headers
                    .get(header::SEC_WEBSOCKET_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| bad_handshake("sec-websocket-key header"))?;
                let on_upgrade = on_upgrade
                    .ok_or_else(|| bad_handshake("this connection cannot be upgraded"))?;
                Ok(Upgrade { key, on_upgrade })
            },
        )
}

impl Upgrade {
    /// Answers 101 and runs `session` on the connection once the upgrade completes.
    pub fn reply<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = hyper_util::rt::TokioIo::new(upgraded);
                    let socket =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
                    session(socket).await;
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}
