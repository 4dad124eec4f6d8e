//! The HTTP API: the route tree, auth, and helpers shared by the resource modules.
//!
//! Each resource matches its path first and dispatches on the method inside its handler, so an
//! unknown path is always a 404 and a known path with the wrong method a 405 with `Allow`.

mod audit;
mod backup;
pub mod body;
mod dashboard;
pub mod error;
pub mod events;
mod health;
mod host;
mod identity;
mod instances;
mod locks;
mod logs;
mod mcp;
mod messages;
mod prometheus;
mod reservations;
mod rules;
mod specs;
mod state;
mod tasks;
mod wait;
mod webhooks;
mod ws;

use std::convert::Infallible;

use koor_shared::ContentHash;
use percent_encoding::percent_decode_str;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::App;
pub use error::ApiError;

/// The full route tree of the API listener.
pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let api = health::routes(app.clone())
        .or(state::routes(app.clone()))
        .unify()
        .or(specs::routes(app.clone()))
        .unify()
        .or(messages::routes(app.clone())
            .or(wait::routes(app.clone()))
            .unify())
        .unify()
        .or(instances::routes(app.clone()))
        .unify()
        .or(events::routes(app.clone()))
        .unify()
        .or(logs::routes(app.clone()))
        .unify()
        .or(mcp::routes(app.clone()))
        .unify()
        .or(rules::routes(app.clone()))
        .unify()
        .or(locks::routes(app.clone()))
        .unify()
        .or(reservations::routes(app.clone()))
        .unify()
        .or(webhooks::routes(app.clone()))
        .unify()
        .or(audit::routes(app.clone()))
        .unify()
        .or(backup::routes(app.clone()))
        .unify()
        .or(prometheus::routes(app.clone()))
        .unify()
        .or(tasks::routes(app.clone()))
        .unify()
        .boxed();
    let served = host::guard(app.clone())
        .and(auth_guard(app.clone()))
        .and(cross_site_guard(app.clone()))
        .and(api)
        .recover(error::handle_rejection)
        .unify();
    // Every reply, whatever route built it, is counted and (for a mutation) audited here.
    crate::audit::seen(app.clone())
        .and(served)
        .map(move |seen, reply| {
            let mut resp = Reply::into_response(reply);
            crate::audit::observe(&app, seen, &mut resp);
            resp
        })
        .with(warp::log::custom(log_request))
        .map(Reply::into_response)
        .boxed()
}

/// The dashboard listener: the embedded page at `/` (see [`dashboard`]), then `/health` and the
/// same `/api/*` handlers (auth included), so the page needs no CORS. The API listener does not
/// serve the page.
pub fn dashboard_routes(app: App) -> BoxedFilter<(Response,)> {
    host::guard(app.clone())
        .and(dashboard::routes())
        .with(warp::log::custom(log_request))
        .map(Reply::into_response)
        .or(routes(app))
        .unify()
        .boxed()
}

fn log_request(info: warp::log::Info<'_>) {
    tracing::debug!(
        method = %info.method(),
        path = info.path(),
        status = info.status().as_u16(),
        micros = info.elapsed().as_micros() as u64,
        "request"
    );
}

/// Routes that need the bearer token when auth is on: everything but `/health` (and the unknown
/// paths, which stay JSON 404s so IDE probes are not mistaken for an auth challenge).
fn needs_auth(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path == "/mcp"
        || path.starts_with("/mcp/")
        || path == "/metrics"
}

fn auth_guard(app: App) -> BoxedFilter<()> {
    let Some(token) = app.config.auth_token.as_ref() else {
        return warp::any().boxed();
    };
    let want: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    warp::path::full()
        .and(warp::header::optional::<String>("authorization"))
        .and(query())
        .and_then(
            move |path: FullPath, header: Option<String>, q: Query| async move {
                if !needs_auth(path.as_str()) {
                    return Ok(());
                }
                // Browsers cannot set headers on a WebSocket: those routes also take `?token=`.
                let websocket = matches!(
                    path.as_str(),
                    "/api/events/subscribe" | "/api/logs/subscribe"
                );
                let query_token =
                    websocket && q.get("token").is_some_and(|t| token_matches(t, &want));
                if query_token || header.as_deref().is_some_and(|h| bearer_matches(h, &want)) {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            },
        )
        .untuple_one()
        .boxed()
}

/// Compares an `Authorization` header's bearer token with the expected digest in constant time.
fn bearer_matches(value: &str, want: &[u8]) -> bool {
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return false;
    }
    token_matches(token, want)
}

fn token_matches(token: &str, want: &[u8]) -> bool {
    let got = Sha256::digest(token.as_bytes());
    got.as_slice().ct_eq(want).into()
}

/// Whether an `Origin` is a loopback page (`http://localhost:…`, `http://127.0.0.1:…`,
/// `http://[::1]:…`) or one configured with `--allowed-origins`.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Origins never carry user info: `http://localhost:80@evil.example` is evil.example.
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    // Only real loopback names: `127.0.0.1.evil.example` is a foreign page.
    host::is_loopback_host(host)
}

/// Refuses (403) a request to `/api/*` or `/mcp` that a foreign web page sent (its `Origin` is
/// neither loopback nor allowed): without it, any site open in a browser on this machine could
/// publish, write state or deregister agents through simple cross-site requests.
fn cross_site_guard(app: App) -> BoxedFilter<()> {
    warp::path::full()
        .and(warp::header::optional::<String>("origin"))
        .and_then(move |path: FullPath, origin: Option<String>| {
            let allowed = app.config.allowed_origins.clone();
            async move {
                match origin {
                    Some(o) if needs_auth(path.as_str()) && !origin_allowed(&o, &allowed) => {
                        Err(warp::reject::custom(ApiError::Forbidden(format!(
                            "origin {o} is not allowed (only loopback pages, or those given with --allowed-origins)"
                        ))))
                    }
                    _ => Ok(()),
                }
            }
        })
        .untuple_one()
        .boxed()
}

/// Refuses (403) a request whose `Origin` header is a foreign page: DNS-rebinding protection for
/// `/mcp` and the WebSockets. Requests without `Origin` (CLIs, IDEs) pass.
pub fn origin_guard(app: App) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("origin")
        .and_then(move |origin: Option<String>| {
            let allowed = app.config.allowed_origins.clone();
            async move {
                match origin {
                    Some(o) if !origin_allowed(&o, &allowed) => Err(warp::reject::custom(ApiError::Forbidden(
                        format!("origin {o} is not allowed (only loopback pages, or those given with --allowed-origins)"),
                    ))),
                    _ => Ok(()),
                }
            }
        })
        .untuple_one()
}

/// Passes the app into a handler.
pub fn with_app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The query string as name/value pairs (empty when there is none).
pub fn query() -> impl Filter<Extract = (Query,), Error = Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|raw: String| Query(url_pairs(&raw).into_iter().collect()))
}

fn url_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode_str(&s).decode_utf8_lossy().into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

/// Parsed query parameters.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `name` as an integer; a present but malformed value is a 400.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid {name}: {v:?} is not a number"))
            }),
        }
    }
}

/// The `/`-separated segments of a path tail, each percent-decoded once (a trailing `/` ignored).
pub fn path_segments(tail: &warp::path::Tail) -> Result<Vec<String>, ApiError> {
    let raw = tail.as_str().trim_end_matches('/');
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split('/').map(decode_path).collect()
}

/// Parses a JSON request body; a blank body reads as `empty` when given, else is a 400.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    empty: Option<&str>,
) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        empty
            .ok_or_else(|| ApiError::bad_request("empty body: send a JSON document"))?
            .as_bytes()
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Decodes a raw path tail once (percent-decoding) into a key or name.
pub fn decode_path(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("the path is not valid UTF-8 after percent-decoding"))
}

/// A JSON response with a status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// A JSON 200.
pub fn ok<T: Serialize>(body: &T) -> Response {
    json(StatusCode::OK, body)
}

/// A stored value as its raw bytes with `Content-Type`, `ETag` and `X-Koor-Version`.
pub fn raw_value(
    bytes: bytes::Bytes,
    content_type: &str,
    hash: &ContentHash,
    version: i64,
) -> Response {
    let mut resp = warp::http::Response::new(bytes.into());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    set_version_headers(headers, hash, version);
    resp
}

/// `X-Koor-Version` as a header name known at compile time (inserting by `&str` parses it).
const VERSION: warp::http::HeaderName =
    warp::http::HeaderName::from_static(koor_shared::VERSION_HEADER);

/// A cached current value, with the headers it carries ready-made.
pub fn current_value(current: &crate::store::Current) -> Response {
    let mut resp = warp::http::Response::new(current.value.clone().into());
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, current.content_type.clone());
    headers.insert(header::ETAG, current.etag.clone());
    headers.insert(VERSION, HeaderValue::from(current.version));
    resp
}

/// A 304 for a cached current value the client already has.
pub fn current_not_modified(current: &crate::store::Current) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, current.etag.clone());
    headers.insert(VERSION, HeaderValue::from(current.version));
    resp
}

/// `ETag` and `X-Koor-Version` for a stored value.
pub fn set_version_headers(headers: &mut HeaderMap, hash: &ContentHash, version: i64) {
    if let Ok(v) = HeaderValue::from_str(&hash.etag()) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(VERSION, HeaderValue::from(version));
}

/// A 304 for a value the client already has.
pub fn not_modified(hash: &ContentHash, version: i64) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    set_version_headers(resp.headers_mut(), hash, version);
    resp
}

/// Whether the request's `If-None-Match` names this value.
pub fn client_has(headers: &HeaderMap, hash: &ContentHash) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| hash.matches_if_none_match(v))
}

/// The write preconditions of a request (ext): `If-Match`, `X-Koor-If-Version`, `If-None-Match: *`.
pub fn condition(headers: &HeaderMap) -> Result<crate::store::state::Condition, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::bad_request(format!("invalid header: {name}")))
            })
            .transpose()
    };
    let if_version = match text(koor_shared::IF_VERSION_HEADER)? {
        None => None,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            // A version that can never exist is a mistake in the request, not a lost race.
            Ok(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid X-Koor-If-Version: {v:?} (versions start at 1; 0 means \"must not exist\")"
                )));
            }
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid X-Koor-If-Version: {v:?} is not a number"
                )));
            }
        },
    };
    Ok(crate::store::state::Condition {
        if_match: text("if-match")?,
        if_version,
        create_only: text("if-none-match")?.is_some_and(|v| koor_shared::etag::is_wildcard(&v)),
    })
}

/// Hashes a body; large ones on the blocking pool so the runtime keeps serving.
pub async fn hash_body(body: bytes::Bytes) -> Result<(bytes::Bytes, ContentHash), ApiError> {
    if body.len() < 64 * 1024 {
        let hash = ContentHash::of(&body);
        return Ok((body, hash));
    }
    tokio::task::spawn_blocking(move || {
        let hash = ContentHash::of(&body);
        (body, hash)
    })
    .await
    .map_err(|_| ApiError::Unavailable)
}

/// A 405 for `method` on `path`.
pub fn method_not_allowed(
    method: &warp::http::Method,
    path: &str,
    allow: &'static str,
) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_owned(),
        allow,
    }
}
