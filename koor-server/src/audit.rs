//! Audit capture: every mutating request, whatever route serves it, becomes one audit entry.
//!
//! [`capture`] wraps the whole API route tree, so routes added later are audited without edits.
//! After the reply is built it classifies the request (method and path into an action and a
//! resource), takes the status as the outcome, and notes the actor: the instance named by an
//! `X-Koor-Instance-Token` header or an `instance_id`/`from` query parameter, else the remote
//! address. Whether the server's bearer token was presented is recorded; the token never is.
//!
//! Entries are buffered in memory and appended by [`run`] in one write job every
//! [`FLUSH_EVERY`] (or sooner when many are waiting), inside the writer's group commit: a request
//! never waits for its audit entry, and no request pays an extra commit. The buffer is flushed
//! once more on shutdown.
//!
//! A handler that knows more than its path (the id in a created webhook's body, a published
//! topic) can insert an [`AuditResource`] into the response's extensions.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use koor_shared::time::now_rfc3339;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use warp::Filter;
use warp::http::{HeaderValue, Method};
use warp::path::FullPath;
use warp::reply::Response;

use crate::App;
use crate::store::audit::{self as log, NewEntry};

/// How often buffered entries are appended.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered entries that trigger an early flush.
const FLUSH_AT: usize = 256;
/// Entries pruned per write job.
const PRUNE_BATCH: usize = 2000;
/// The header an agent names itself with (its registration token).
pub const INSTANCE_TOKEN_HEADER: &str = "x-koor-instance-token";

/// The remote address of a connection, put into each request's extensions by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A resource name a handler sets on its response when the path alone does not say it.
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// The in-memory buffer of entries not yet appended.
#[derive(Debug, Default)]
pub struct Recorder {
    pending: Mutex<Vec<NewEntry>>,
    wake: Notify,
}

impl Recorder {
    pub fn push(&self, entry: NewEntry) {
        let len = match self.pending.lock() {
            Ok(mut p) => {
                p.push(entry);
                p.len()
            }
            Err(_) => return,
        };
        if len >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Vec<NewEntry> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// What the capture filter learns about a request before it is served.
pub struct Seen {
    start: Instant,
    method: Method,
    path: FullPath,
    query: String,
    remote: Option<SocketAddr>,
    bearer: bool,
    instance_token: Option<HeaderValue>,
    /// The instance the request's `X-Koor-Instance-Token` belongs to.
    instance: Option<String>,
}

/// Extracts what the audit and the request metrics need, before the request is served. A
/// mutating request that names its instance by token has it looked up now (so a request that
/// deregisters the instance is still attributed to it).
pub fn seen(app: App) -> impl Filter<Extract = (Seen,), Error = std::convert::Infallible> + Clone {
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<Peer>())
        .and(header("authorization"))
        .and(header(INSTANCE_TOKEN_HEADER))
        .map(
            |start,
             method,
             path,
             query: String,
             peer: Option<Peer>,
             auth: Option<HeaderValue>,
             instance_token| {
                let bearer = auth.is_some_and(|v| {
                    v.as_bytes()
                        .get(..7)
                        .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer "))
                }) || query.split('&').any(|p| p.starts_with("token="));
                Seen {
                    start,
                    method,
                    path,
                    query,
                    remote: peer.map(|p| p.0),
                    bearer,
                    instance_token,
                    instance: None,
                }
            },
        )
        .and(crate::api::with_app(app))
        .then(|mut seen: Seen, app: App| async move {
            let mutating = !matches!(seen.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if let Some(token) = seen.instance_token.as_ref().filter(|_| mutating) {
                let hash = format!("{:x}", Sha256::digest(token.as_bytes()));
                seen.instance = app
                    .store
                    .read(move |c| log::instance_for_token(c, &hash))
                    .await
                    .ok()
                    .flatten();
            }
            seen
        })
}

/// A header's value, or `None` when it is absent or unreadable (a malformed header is the route's
/// business, not the audit's: this filter never rejects).
fn header(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<HeaderValue>(name)
        .or(warp::any().map(|| None))
        .unify()
}

/// Called with every reply: counts it in the metrics and, for a mutation, buffers its entry.
pub fn observe(app: &App, seen: Seen, resp: &mut Response) {
    let status = resp.status().as_u16();
    let path = seen.path.as_str();
    app.metrics
        .observe_request(path, seen.method.as_str(), status, seen.start.elapsed());
    if matches!(seen.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return;
    }
    let Some((action, mut resource)) = classify(&seen.method, path, &seen.query) else {
        return;
    };
    if let Some(AuditResource(r)) = resp.extensions_mut().remove::<AuditResource>() {
        resource = r;
    }
    let detail = if seen.query.is_empty() {
        "{}".to_owned()
    } else {
        serde_json::json!({ "query": strip_secrets(&seen.query) }).to_string()
    };
    let outcome = match status {
        401 | 403 => "denied",
        s if s < 400 => "success",
        _ => "error",
    };
    let actor = seen
        .instance
        .or_else(|| query_param(&seen.query, "instance_id"))
        .or_else(|| query_param(&seen.query, "from"))
        .unwrap_or_default();
    app.audit.push(NewEntry {
        timestamp: now_rfc3339(),
        actor,
        action,
        resource,
        detail,
        outcome: outcome.to_owned(),
        status,
        method: seen.method.as_str().to_owned(),
        path: path.to_owned(),
        remote: seen.remote.map(|r| r.to_string()).unwrap_or_default(),
        token_used: seen.bearer,
    });
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name && !v.is_empty()).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The query string without any parameter that may carry a credential.
fn strip_secrets(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default().to_ascii_lowercase();
            !(name.contains("token") || name.contains("secret") || name.contains("password"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The action and resource of a mutating request, or `None` for requests not audited
/// (heartbeats, validation runs: they change nothing an operator audits).
pub fn classify(method: &Method, path: &str, query: &str) -> Option<(String, String)> {
    // Segments are decoded one by one (an escaped `/` stays inside its segment), borrowed when
    // they hold no escape.
    let decoded: Vec<std::borrow::Cow<'_, str>> = path
        .trim_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segs: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    let verb = match *method {
        Method::PUT => "put",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        _ => "post",
    };
    let pair = |a: &str, r: &str| Some((a.to_owned(), r.to_owned()));
    match segs.as_slice() {
        ["mcp", ..] => pair("mcp.call", "mcp"),
        ["api", "state", key @ ..] if !key.is_empty() => {
            let key = key.join("/");
            if *method == Method::POST && query_param(query, "rollback").is_some() {
                pair("state.rollback", &key)
            } else {
                pair(&format!("state.{verb}"), &key)
            }
        }
        ["api", "specs", rest @ ..] => pair(&format!("spec.{verb}"), &rest.join("/")),
        ["api", "events", "publish"] => pair("event.publish", "events"),
        ["api", "instances", "register"] => pair("instance.register", ""),
        ["api", "instances", _, "heartbeat"] => None,
        ["api", "instances", id] if *method == Method::DELETE => pair("instance.deregister", id),
        ["api", "instances", id, action] => pair(&format!("instance.{action}"), id),
        ["api", "validate", project, "rules"] => pair(&format!("rules.{verb}"), project),
        ["api", "validate", ..] => None,
        ["api", "rules", "propose"] => pair("rule.propose", ""),
        ["api", "rules", "import"] => pair("rules.import", "bulk"),
        ["api", "rules", project, rule, action] => {
            pair(&format!("rule.{action}"), &format!("{project}/{rule}"))
        }
        ["api", "webhooks"] if *method == Method::POST => pair("webhook.create", ""),
        // Any other resource, today's or one added later: `<kind>.<verb>` on the rest of the path.
        ["api", kind, rest @ ..] => {
            let kind = kind.strip_suffix('s').unwrap_or(kind);
            let word =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            match (rest, verb) {
                ([], "post") => pair(&format!("{kind}.create"), ""),
                ([.., last], "post") if rest.len() >= 2 || word(last) => {
                    let resource = rest[..rest.len() - 1].join("/");
                    pair(&format!("{kind}.{last}"), &resource)
                }
                _ => pair(&format!("{kind}.{verb}"), &rest.join("/")),
            }
        }
        _ => pair(&format!("http.{verb}"), path),
    }
}

/// Appends buffered entries every [`FLUSH_EVERY`] and prunes to the retention until the server
/// stops (the last entries are written by [`flush`] after the listeners closed).
pub async fn run(app: App) {
    let mut prune = tokio::time::interval(app.config.prune_every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => return,
            _ = tick.tick() => flush(&app).await,
            () = app.audit.wake.notified() => flush(&app).await,
            _ = prune.tick() => {
                let keep = app.config.audit_retention;
                loop {
                    match app.store.write(move |tx| log::prune(tx.conn(), keep, PRUNE_BATCH)).await {
                        Ok(n) if n == PRUNE_BATCH => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "audit pruning failed");
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Appends every buffered entry now.
pub async fn flush(app: &App) {
    let entries = app.audit.take();
    if entries.is_empty() {
        return;
    }
    let n = entries.len();
    if let Err(e) = app
        .store
        .write(move |tx| log::append(tx.conn(), &entries))
        .await
    {
        tracing::warn!(error = %e, entries = n, "could not append audit entries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(method: Method, path: &str, query: &str) -> Option<(String, String)> {
        classify(&method, path, query)
    }

    #[test]
    fn classifies_known_and_future_routes() {
        let p = |a: &str, r: &str| Some((a.to_owned(), r.to_owned()));
        assert_eq!(c(Method::PUT, "/api/state/a/b", ""), p("state.put", "a/b"));
        assert_eq!(
            c(Method::POST, "/api/state/k", "rollback=2"),
            p("state.rollback", "k")
        );
        assert_eq!(
            c(Method::DELETE, "/api/specs/p/n", ""),
            p("spec.delete", "p/n")
        );
        assert_eq!(
            c(Method::DELETE, "/api/instances/i1", ""),
            p("instance.deregister", "i1")
        );
        assert_eq!(c(Method::POST, "/api/instances/i1/heartbeat", ""), None);
        assert_eq!(
            c(Method::POST, "/api/rules/p/r/accept", ""),
            p("rule.accept", "p/r")
        );
        assert_eq!(
            c(Method::DELETE, "/api/webhooks/w", ""),
            p("webhook.delete", "w")
        );
        assert_eq!(
            c(Method::POST, "/api/webhooks/w/test", ""),
            p("webhook.test", "w")
        );
        assert_eq!(
            c(Method::POST, "/api/locks/src%2Fmain.rs/acquire", ""),
            p("lock.acquire", "src/main.rs")
        );
        assert_eq!(c(Method::POST, "/api/tasks", ""), p("task.create", ""));
        assert_eq!(c(Method::POST, "/api/tasks/claim", ""), p("task.claim", ""));
        assert_eq!(
            c(Method::DELETE, "/api/reservations/r9", ""),
            p("reservation.delete", "r9")
        );
    }

    #[test]
    fn credentials_never_reach_the_detail() {
        assert_eq!(strip_secrets("token=abc&x=1&auth_token=z"), "x=1");
    }
}
