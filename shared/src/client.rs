//! An async client for the Koor API: REST over reqwest, WebSocket subscriptions over
//! tokio-tungstenite. Used by `koor-cli` and `koor-tui`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::config::ClientConfig;
use crate::error::ErrorBody;
use crate::rules::{Rule, RuleList, RuleStatus, RulesSet, ValidateRequest, Validation};
use crate::types::{
    Deleted, Event, Health, Inbox, Instance, Lock, LockList, LogRecord, Metrics, PublishRequest,
    RegisterRequest, Registered, Reservation, ReservationCheck, ReservationList, Rollback,
    SendMessage, Sent, SpecList, SpecWrite, StateDiff, StateHistory, StateSummary, StateWrite,
    Task, TaskBoards, TaskList, Thread,
};

/// Characters escaped in a key: everything but unreserved characters and `/`.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Characters escaped in a query value.
const QUERY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Escapes a key or spec name for a URL path, keeping its slashes.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_ESCAPE).to_string()
}

/// Escapes a query parameter value.
pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY_ESCAPE).to_string()
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached at all.
    #[error("connection refused: cannot reach the Koor server at {server} ({reason})")]
    Connect { server: String, reason: String },
    /// The server answered with an error status.
    #[error("{}", .body.error)]
    Api { status: u16, body: ErrorBody },
    /// The request failed in flight or the answer was not what the API promises.
    #[error("{0}")]
    Protocol(String),
}

impl ClientError {
    /// The HTTP status, for errors the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn transport_error(server: &str, e: reqwest::Error) -> ClientError {
    if e.is_connect() {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        ClientError::Connect {
            server: server.to_owned(),
            reason,
        }
    } else if e.is_timeout() {
        ClientError::Protocol(format!("request to {server} timed out"))
    } else {
        ClientError::Protocol(format!("request to {server} failed: {e}"))
    }
}

/// A stored value as returned by a GET on a state key or spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub version: Option<i64>,
    pub etag: Option<String>,
}

/// Preconditions for a write (ext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the current ETag (hash, quoted or not).
    pub if_match: Option<String>,
    /// `X-Koor-If-Version`: the current version.
    pub if_version: Option<i64>,
    /// `If-None-Match: *`: only create.
    pub create_only: bool,
}

/// Filters of `GET /api/events/history`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub last: Option<u32>,
    pub topic: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub source: Option<String>,
    pub since: Option<i64>,
}

impl HistoryQuery {
    fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.last {
            parts.push(format!("last={v}"));
        }
        for (name, value) in [
            ("topic", &self.topic),
            ("from", &self.from),
            ("to", &self.to),
            ("source", &self.source),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={}", encode_query(v)));
            }
        }
        if let Some(v) = self.since {
            parts.push(format!("since={v}"));
        }
        join_query(&parts)
    }
}

/// (ext) `POST /api/reservations` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReserveRequest {
    pub instance_id: String,
    pub project: String,
    pub paths: Vec<String>,
    pub exclusive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Filters of `GET /api/instances`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    pub name: Option<String>,
    pub workspace: Option<String>,
    pub stack: Option<String>,
    pub capability: Option<String>,
    pub status: Option<String>,
}

impl InstanceFilter {
    fn to_query(&self) -> String {
        let parts: Vec<String> = [
            ("name", &self.name),
            ("workspace", &self.workspace),
            ("stack", &self.stack),
            ("capability", &self.capability),
            ("status", &self.status),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name}={}", encode_query(v))))
        .collect();
        join_query(&parts)
    }
}

/// (ext) Filters of `GET /api/tasks/{project}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// One status or several, comma-separated.
    pub status: Option<String>,
    pub ready: bool,
    pub label: Option<String>,
    pub claimed_by: Option<String>,
}

impl TaskFilter {
    fn to_query(&self) -> String {
        let mut parts: Vec<String> = [
            ("status", &self.status),
            ("label", &self.label),
            ("claimed_by", &self.claimed_by),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name}={}", encode_query(v))))
        .collect();
        if self.ready {
            parts.push("ready=1".to_owned());
        }
        join_query(&parts)
    }
}

fn join_query(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// (ext) Filters of `GET /api/instances/{id}/inbox`; `wait` (`30s`, at most `120s`) blocks until
/// at least one message matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxQuery {
    pub unread: bool,
    pub unacked: bool,
    pub since: Option<i64>,
    pub thread_id: Option<i64>,
    pub last: Option<u32>,
    pub wait: Option<String>,
}

impl InboxQuery {
    fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if self.unread {
            parts.push("unread=1".to_owned());
        }
        if self.unacked {
            parts.push("unacked=1".to_owned());
        }
        for (name, v) in [
            ("since", self.since),
            ("thread_id", self.thread_id),
            ("last", self.last.map(i64::from)),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        }
        if let Some(w) = &self.wait {
            parts.push(format!("wait={}", encode_query(w)));
        }
        join_query(&parts)
    }
}

/// A client bound to one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(config: &ClientConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("koor/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: config.server.clone(),
            token: config.token.clone(),
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`), with the bearer token when one is set.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Sends a request; a non-2xx/304 answer becomes [`ClientError::Api`].
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, ClientError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| transport_error(&self.base, e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let code = status.as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let text = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            ErrorBody::new(code, text)
        });
        Err(ClientError::Api { status: code, body })
    }

    async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, ClientError> {
        let resp = self.send(rb).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&self.base, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("unexpected answer from the server: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(self.request(Method::GET, path)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// Any JSON route this client has no typed call for: `method` on `path` (which starts with
    /// `/` and carries its own query), with an optional JSON body and instance token; the answer
    /// as a [`serde_json::Value`].
    pub async fn send_value(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let rb = self.request(method, path);
        let rb = match body {
            Some(b) => rb.json(b),
            None => rb,
        };
        self.json(with_instance_token(rb, instance_token)).await
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/health").await
    }

    pub async fn metrics(&self) -> Result<Metrics, ClientError> {
        self.get("/api/metrics").await
    }

    /// `GET /api/webhooks`: every webhook with its delivery health.
    pub async fn webhooks(&self) -> Result<Vec<crate::ops::Webhook>, ClientError> {
        self.get("/api/webhooks").await
    }

    // ----- state -----

    pub async fn state_list(&self) -> Result<Vec<StateSummary>, ClientError> {
        self.get("/api/state").await
    }

    async fn raw(&self, rb: RequestBuilder) -> Result<RawValue, ClientError> {
        let resp = self.send(rb).await?;
        self.raw_answer(resp).await
    }

    async fn raw_answer(&self, resp: Response) -> Result<RawValue, ClientError> {
        let headers = resp.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&self.base, e))?;
        Ok(RawValue {
            bytes: bytes.to_vec(),
            content_type: header("content-type").unwrap_or_default(),
            version: header(crate::VERSION_HEADER).and_then(|v| v.parse().ok()),
            etag: header("etag"),
        })
    }

    /// The current value of a key (or version `version`).
    pub async fn state_get(
        &self,
        key: &str,
        version: Option<i64>,
    ) -> Result<RawValue, ClientError> {
        let mut path = format!("/api/state/{}", encode_key(key));
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        self.raw(self.request(Method::GET, &path)).await
    }

    pub async fn state_set(
        &self,
        key: &str,
        value: Vec<u8>,
        content_type: &str,
        cond: &WriteCondition,
    ) -> Result<StateWrite, ClientError> {
        let rb = self
            .request(Method::PUT, &format!("/api/state/{}", encode_key(key)))
            .header("content-type", content_type)
            .body(value);
        self.json(with_condition(rb, cond)).await
    }

    pub async fn state_delete(
        &self,
        key: &str,
        cond: &WriteCondition,
    ) -> Result<Deleted, ClientError> {
        let rb = self.request(Method::DELETE, &format!("/api/state/{}", encode_key(key)));
        self.json(with_condition(rb, cond)).await
    }

    pub async fn state_history(
        &self,
        key: &str,
        limit: Option<u32>,
    ) -> Result<StateHistory, ClientError> {
        let mut path = format!("/api/state/{}?history=1", encode_key(key));
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        self.get(&path).await
    }

    pub async fn state_diff(&self, key: &str, v1: i64, v2: i64) -> Result<StateDiff, ClientError> {
        self.get(&format!("/api/state/{}?diff={v1},{v2}", encode_key(key)))
            .await
    }

    pub async fn state_rollback(&self, key: &str, version: i64) -> Result<Rollback, ClientError> {
        let rb = self.request(
            Method::POST,
            &format!("/api/state/{}?rollback={version}", encode_key(key)),
        );
        self.json(rb).await
    }

    // ----- specs -----

    pub async fn specs_list(&self, project: &str) -> Result<SpecList, ClientError> {
        self.get(&format!("/api/specs/{}", encode_key(project)))
            .await
    }

    /// (ext) The projects that have specs.
    pub async fn spec_projects(&self) -> Result<Vec<String>, ClientError> {
        let v: serde_json::Value = self.get("/api/specs").await?;
        Ok(v["projects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["project"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn spec_get(&self, project: &str, name: &str) -> Result<RawValue, ClientError> {
        let path = format!("/api/specs/{}/{}", encode_key(project), encode_key(name));
        self.raw(self.request(Method::GET, &path)).await
    }

    pub async fn spec_set(
        &self,
        project: &str,
        name: &str,
        data: Vec<u8>,
    ) -> Result<SpecWrite, ClientError> {
        let path = format!("/api/specs/{}/{}", encode_key(project), encode_key(name));
        let rb = self
            .request(Method::PUT, &path)
            .header("content-type", "application/json")
            .body(data);
        self.json(rb).await
    }

    pub async fn spec_delete(&self, project: &str, name: &str) -> Result<Deleted, ClientError> {
        let path = format!("/api/specs/{}/{}", encode_key(project), encode_key(name));
        self.json(self.request(Method::DELETE, &path)).await
    }

    /// [`Client::spec_set`] with write preconditions (ext).
    pub async fn spec_set_if(
        &self,
        project: &str,
        name: &str,
        data: Vec<u8>,
        cond: &WriteCondition,
    ) -> Result<SpecWrite, ClientError> {
        let path = format!("/api/specs/{}/{}", encode_key(project), encode_key(name));
        let rb = self
            .request(Method::PUT, &path)
            .header("content-type", "application/json")
            .body(data);
        self.json(with_condition(rb, cond)).await
    }

    /// [`Client::spec_delete`] with write preconditions (ext).
    pub async fn spec_delete_if(
        &self,
        project: &str,
        name: &str,
        cond: &WriteCondition,
    ) -> Result<Deleted, ClientError> {
        let path = format!("/api/specs/{}/{}", encode_key(project), encode_key(name));
        let rb = self.request(Method::DELETE, &path);
        self.json(with_condition(rb, cond)).await
    }

    // ----- events -----

    pub async fn publish(&self, req: &PublishRequest) -> Result<Event, ClientError> {
        self.post("/api/events/publish", req).await
    }

    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<Event>, ClientError> {
        self.get(&format!("/api/events/history{}", query.to_query()))
            .await
    }

    // ----- instances -----

    pub async fn register(&self, req: &RegisterRequest) -> Result<Registered, ClientError> {
        self.post("/api/instances/register", req).await
    }

    pub async fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, ClientError> {
        self.get(&format!("/api/instances{}", filter.to_query()))
            .await
    }

    pub async fn instance(&self, id: &str) -> Result<Instance, ClientError> {
        self.get(&format!("/api/instances/{}", encode_query(id)))
            .await
    }

    pub async fn stale_instances(&self) -> Result<Vec<Instance>, ClientError> {
        self.get("/api/instances/stale").await
    }

    /// `POST /api/instances/{id}/{action}` for `heartbeat` and `activate`.
    pub async fn instance_action(
        &self,
        id: &str,
        action: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.instance_action_as(id, action, None).await
    }

    /// [`Client::instance_action`] on behalf of the instance, proving it with its token
    /// (`X-Koor-Instance-Token`) when one is given (ext).
    pub async fn instance_action_as(
        &self,
        id: &str,
        action: &str,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let rb = self
            .request(
                Method::POST,
                &format!("/api/instances/{}/{action}", encode_query(id)),
            )
            .json(&serde_json::json!({}));
        self.json(with_instance_token(rb, instance_token)).await
    }

    pub async fn set_capabilities(
        &self,
        id: &str,
        capabilities: &[String],
    ) -> Result<serde_json::Value, ClientError> {
        self.post(
            &format!("/api/instances/{}/capabilities", encode_query(id)),
            &serde_json::json!({ "capabilities": capabilities }),
        )
        .await
    }

    pub async fn deregister(&self, id: &str) -> Result<Deleted, ClientError> {
        self.deregister_as(id, None).await
    }

    /// [`Client::deregister`] by the instance itself, with its token when given (ext).
    pub async fn deregister_as(
        &self,
        id: &str,
        instance_token: Option<&str>,
    ) -> Result<Deleted, ClientError> {
        let rb = self.request(
            Method::DELETE,
            &format!("/api/instances/{}", encode_query(id)),
        );
        self.json(with_instance_token(rb, instance_token)).await
    }

    // ----- locks (ext) -----

    /// `GET /api/locks`: every current lock, sorted by name.
    pub async fn locks(&self) -> Result<LockList, ClientError> {
        self.get("/api/locks").await
    }

    /// `GET /api/locks/{name}`; 404 when nobody holds it.
    pub async fn lock(&self, name: &str) -> Result<Lock, ClientError> {
        self.get(&format!("/api/locks/{}", encode_key(name))).await
    }

    /// `POST /api/locks/{name}`: acquires (or renews) the lock for `instance_id`. `ttl` and `wait`
    /// are durations as the server reads them (`90s`, `5m`); with `wait` the call blocks until
    /// the lock is granted or the wait ends (409).
    pub async fn lock_acquire(
        &self,
        name: &str,
        instance_id: &str,
        ttl: Option<&str>,
        wait: Option<&str>,
        instance_token: Option<&str>,
    ) -> Result<Lock, ClientError> {
        let mut body = serde_json::json!({ "instance_id": instance_id });
        if let Some(t) = ttl {
            body["ttl"] = t.into();
        }
        if let Some(w) = wait {
            body["wait"] = w.into();
        }
        let rb = self
            .request(Method::POST, &format!("/api/locks/{}", encode_key(name)))
            .json(&body);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `DELETE /api/locks/{name}`: released by its holder `instance_id`, or with `force`
    /// whoever holds it. Answers `{"released":"<name>"}`.
    pub async fn lock_release(
        &self,
        name: &str,
        instance_id: Option<&str>,
        force: bool,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut parts = Vec::new();
        if let Some(id) = instance_id {
            parts.push(format!("instance_id={}", encode_query(id)));
        }
        if force {
            parts.push("force=1".to_owned());
        }
        let path = format!("/api/locks/{}{}", encode_key(name), join_query(&parts));
        let rb = self.request(Method::DELETE, &path);
        self.json(with_instance_token(rb, instance_token)).await
    }

    // ----- file reservations (ext) -----

    /// `GET /api/reservations`: the live ones, filtered by `project`, `instance_id`, and `path`
    /// (a file: the reservations that cover it).
    pub async fn reservations(
        &self,
        project: Option<&str>,
        instance_id: Option<&str>,
        path: Option<&str>,
    ) -> Result<ReservationList, ClientError> {
        let parts: Vec<String> = [
            ("project", project),
            ("instance_id", instance_id),
            ("path", path),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name}={}", encode_query(v))))
        .collect();
        self.get(&format!("/api/reservations{}", join_query(&parts)))
            .await
    }

    /// `POST /api/reservations`: reserves every path or none (409 listing the conflicts).
    /// Reserving a path again renews it.
    pub async fn reserve(
        &self,
        req: &ReserveRequest,
        instance_token: Option<&str>,
    ) -> Result<ReservationList, ClientError> {
        let rb = self.request(Method::POST, "/api/reservations").json(req);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `POST /api/reservations/check`: which of `files` another instance holds (exclusively,
    /// or at all with `exclusive`). Read-only.
    pub async fn reservation_check(
        &self,
        project: &str,
        files: &[String],
        instance_id: Option<&str>,
        exclusive: bool,
    ) -> Result<ReservationCheck, ClientError> {
        let mut body = serde_json::json!({"project": project, "paths": files});
        if let Some(id) = instance_id {
            body["instance_id"] = id.into();
        }
        if exclusive {
            body["exclusive"] = true.into();
        }
        self.post("/api/reservations/check", &body).await
    }

    /// `POST /api/reservations/{id}/renew`: a new expiry (now + `ttl`, else its own TTL).
    pub async fn reservation_renew(
        &self,
        id: &str,
        instance_id: &str,
        ttl: Option<&str>,
        instance_token: Option<&str>,
    ) -> Result<Reservation, ClientError> {
        let mut body = serde_json::json!({ "instance_id": instance_id });
        if let Some(t) = ttl {
            body["ttl"] = t.into();
        }
        let rb = self
            .request(
                Method::POST,
                &format!("/api/reservations/{}/renew", encode_query(id)),
            )
            .json(&body);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `DELETE /api/reservations/{id}`: by its holder `instance_id`, or with `force`. Answers
    /// `{"released":[reservation]}`.
    pub async fn reservation_release(
        &self,
        id: &str,
        instance_id: Option<&str>,
        force: bool,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut parts = Vec::new();
        if let Some(i) = instance_id {
            parts.push(format!("instance_id={}", encode_query(i)));
        }
        if force {
            parts.push("force=1".to_owned());
        }
        let path = format!(
            "/api/reservations/{}{}",
            encode_query(id),
            join_query(&parts)
        );
        let rb = self.request(Method::DELETE, &path);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `DELETE /api/reservations?instance_id=ID[&project=P][&path=F...]`: releases the
    /// instance's reservations (only those on `paths` when any). Answers `{"released":[..]}`.
    pub async fn reservations_release(
        &self,
        instance_id: &str,
        project: Option<&str>,
        paths: &[String],
        instance_token: Option<&str>,
    ) -> Result<ReservationList, ClientError> {
        let mut parts = vec![format!("instance_id={}", encode_query(instance_id))];
        if let Some(p) = project {
            parts.push(format!("project={}", encode_query(p)));
        }
        for p in paths {
            parts.push(format!("path={}", encode_query(p)));
        }
        let rb = self.request(
            Method::DELETE,
            &format!("/api/reservations{}", join_query(&parts)),
        );
        let answer: serde_json::Value = self.json(with_instance_token(rb, instance_token)).await?;
        serde_json::from_value(serde_json::json!({"reservations": answer["released"]}))
            .map_err(|e| ClientError::Protocol(format!("unexpected answer from the server: {e}")))
    }

    // ----- messages (ext) -----

    /// `POST /api/messages`: sends a message from `msg.from` (proved with its token when given).
    pub async fn send_message(
        &self,
        msg: &SendMessage,
        instance_token: Option<&str>,
    ) -> Result<Sent, ClientError> {
        let rb = self.request(Method::POST, "/api/messages").json(msg);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `GET /api/instances/{id}/inbox`: never marks anything read. With `query.wait` the call
    /// blocks until a message matches or the wait ends (then `messages` is empty).
    pub async fn inbox(
        &self,
        instance_id: &str,
        query: &InboxQuery,
        instance_token: Option<&str>,
    ) -> Result<Inbox, ClientError> {
        let path = format!(
            "/api/instances/{}/inbox{}",
            encode_query(instance_id),
            query.to_query()
        );
        let rb = self.request(Method::GET, &path);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `GET /api/messages/{id}`: the message with every recipient's receipts.
    pub async fn message(&self, id: i64) -> Result<crate::types::Message, ClientError> {
        self.get(&format!("/api/messages/{id}")).await
    }

    /// `GET /api/messages/threads/{thread_id}`: the thread, oldest first.
    pub async fn thread(&self, thread_id: i64) -> Result<Thread, ClientError> {
        self.get(&format!("/api/messages/threads/{thread_id}"))
            .await
    }

    /// `POST /api/instances/{id}/inbox/{msg}/read` (or `/ack` when `ack`): answers
    /// `{"id","instance_id","read_at","acked_at"}`.
    pub async fn mark_message(
        &self,
        instance_id: &str,
        id: i64,
        ack: bool,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let action = if ack { "ack" } else { "read" };
        let path = format!(
            "/api/instances/{}/inbox/{id}/{action}",
            encode_query(instance_id)
        );
        let rb = self
            .request(Method::POST, &path)
            .json(&serde_json::json!({}));
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `GET /api/events/wait`: the events after `since` matching `patterns` (oldest first, at
    /// most `last`) as soon as there is one, else `[]` when `timeout` (at most `120s`) ends.
    pub async fn events_wait(
        &self,
        patterns: &[String],
        since: Option<i64>,
        timeout: &str,
        last: Option<u32>,
    ) -> Result<Vec<Event>, ClientError> {
        let mut parts: Vec<String> = patterns
            .iter()
            .map(|p| format!("pattern={}", encode_query(p)))
            .collect();
        if let Some(id) = since {
            parts.push(format!("since={id}"));
        }
        parts.push(format!("timeout={}", encode_query(timeout)));
        if let Some(n) = last {
            parts.push(format!("last={n}"));
        }
        self.get(&format!("/api/events/wait{}", join_query(&parts)))
            .await
    }

    /// `GET /api/state/{key}?wait=..&after=N`: the value once its version is above `after`;
    /// `None` when the wait ended first (304).
    pub async fn state_wait(
        &self,
        key: &str,
        after: i64,
        wait: &str,
    ) -> Result<Option<RawValue>, ClientError> {
        let path = format!(
            "/api/state/{}?after={after}&wait={}",
            encode_key(key),
            encode_query(wait)
        );
        let resp = self.send(self.request(Method::GET, &path)).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        self.raw_answer(resp).await.map(Some)
    }

    // ----- tasks (ext) -----

    fn task_path(project: &str, rest: &str) -> String {
        format!("/api/tasks/{}{rest}", encode_query(project))
    }

    /// `GET /api/tasks`: the projects that have tasks, with counts by status.
    pub async fn task_boards(&self) -> Result<TaskBoards, ClientError> {
        self.get("/api/tasks").await
    }

    /// `GET /api/tasks/{project}`: the board, by priority then age.
    pub async fn tasks(&self, project: &str, filter: &TaskFilter) -> Result<TaskList, ClientError> {
        self.get(&Self::task_path(project, &filter.to_query()))
            .await
    }

    /// `GET /api/tasks/{project}/{id}`.
    pub async fn task(&self, project: &str, id: &str) -> Result<Task, ClientError> {
        self.get(&Self::task_path(project, &format!("/{}", encode_query(id))))
            .await
    }

    /// `POST /api/tasks/{project}`: `body` is one task or an array of them; answers the task, or
    /// `{"project","tasks":[..]}` for an array.
    pub async fn tasks_add(
        &self,
        project: &str,
        body: &serde_json::Value,
        instance_token: Option<&str>,
    ) -> Result<serde_json::Value, ClientError> {
        let rb = self
            .request(Method::POST, &Self::task_path(project, ""))
            .json(body);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `POST /api/tasks/{project}/claim`: task `id` when given, else the best ready one (with
    /// `label`, only those carrying it).
    pub async fn task_claim(
        &self,
        project: &str,
        instance_id: &str,
        id: Option<&str>,
        label: Option<&str>,
        ttl: Option<&str>,
        instance_token: Option<&str>,
    ) -> Result<Task, ClientError> {
        let mut body = serde_json::json!({ "instance_id": instance_id });
        for (name, v) in [("id", id), ("label", label), ("ttl", ttl)] {
            if let Some(v) = v {
                body[name] = v.into();
            }
        }
        let rb = self
            .request(Method::POST, &Self::task_path(project, "/claim"))
            .json(&body);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `POST /api/tasks/{project}/{id}/{action}` for the claim's holder: `renew` (`ttl`),
    /// `complete` (`result`), `release` (`reason`), `fail` (`reason`). `body` gets `instance_id`.
    pub async fn task_call(
        &self,
        project: &str,
        id: &str,
        action: &str,
        instance_id: &str,
        mut body: serde_json::Value,
        instance_token: Option<&str>,
    ) -> Result<Task, ClientError> {
        if !body.is_object() {
            body = serde_json::json!({});
        }
        body["instance_id"] = instance_id.into();
        let path = Self::task_path(project, &format!("/{}/{action}", encode_query(id)));
        let rb = self.request(Method::POST, &path).json(&body);
        self.json(with_instance_token(rb, instance_token)).await
    }

    /// `POST /api/tasks/{project}/{id}/release?force=1`: an operator puts a claimed task back to
    /// open, whoever holds it.
    pub async fn task_force_release(&self, project: &str, id: &str) -> Result<Task, ClientError> {
        let path = Self::task_path(project, &format!("/{}/release?force=1", encode_query(id)));
        self.json(self.request(Method::POST, &path)).await
    }

    /// `PATCH /api/tasks/{project}/{id}`, with `If-Match: "<version>"` when given.
    pub async fn task_update(
        &self,
        project: &str,
        id: &str,
        patch: &serde_json::Value,
        if_version: Option<i64>,
    ) -> Result<Task, ClientError> {
        let path = Self::task_path(project, &format!("/{}", encode_query(id)));
        let mut rb = self.request(Method::PATCH, &path).json(patch);
        if let Some(v) = if_version {
            rb = rb.header("if-match", format!("\"{v}\""));
        }
        self.json(rb).await
    }

    /// `DELETE /api/tasks/{project}/{id}`: cancelled (kept on the board).
    pub async fn task_cancel(&self, project: &str, id: &str) -> Result<Task, ClientError> {
        let path = Self::task_path(project, &format!("/{}", encode_query(id)));
        self.json(self.request(Method::DELETE, &path)).await
    }

    // ----- validation rules -----

    /// `GET /api/rules/{project}[?status=S]`: the project's rules (every status unless `status`
    /// is `proposed`, `accepted` or `rejected`).
    pub async fn rules_list(
        &self,
        project: &str,
        status: Option<&str>,
    ) -> Result<RuleList, ClientError> {
        let mut path = format!("/api/rules/{}", encode_query(project));
        if let Some(s) = status {
            path.push_str(&format!("?status={}", encode_query(s)));
        }
        self.get(&path).await
    }

    /// `PUT /api/validate/{project}/rules`: replaces the project's accepted rules with `rules`
    /// (a JSON array, sent as is).
    pub async fn rules_set(&self, project: &str, rules: Vec<u8>) -> Result<RulesSet, ClientError> {
        let rb = self
            .request(
                Method::PUT,
                &format!("/api/validate/{}/rules", encode_query(project)),
            )
            .header("content-type", "application/json")
            .body(rules);
        self.json(rb).await
    }

    /// `POST /api/rules/propose`: stores `rule` as `proposed`.
    pub async fn rule_propose(&self, rule: &Rule) -> Result<RuleStatus, ClientError> {
        self.post("/api/rules/propose", rule).await
    }

    /// `POST /api/rules/{project}/{rule_id}/{decision}` for `accept` and `reject`.
    pub async fn rule_decide(
        &self,
        project: &str,
        rule_id: &str,
        decision: &str,
    ) -> Result<RuleStatus, ClientError> {
        let path = format!(
            "/api/rules/{}/{}/{decision}",
            encode_query(project),
            encode_query(rule_id)
        );
        self.json(self.request(Method::POST, &path)).await
    }

    /// `POST /api/validate/{project}`: runs the project's accepted rules over the content.
    pub async fn validate(
        &self,
        project: &str,
        request: &ValidateRequest,
    ) -> Result<Validation, ClientError> {
        self.post(&format!("/api/validate/{}", encode_query(project)), request)
            .await
    }

    // ----- logs -----

    pub async fn logs(&self, last: u32, level: &str) -> Result<Vec<LogRecord>, ClientError> {
        self.get(&format!(
            "/api/logs?last={last}&level={}",
            encode_query(level)
        ))
        .await
    }

    // ----- WebSockets -----

    /// Opens the event stream for `patterns`, replaying events after `since` first.
    pub async fn subscribe_events(
        &self,
        patterns: &[String],
        since: Option<i64>,
    ) -> Result<Subscription, ClientError> {
        let mut parts: Vec<String> = patterns
            .iter()
            .map(|p| format!("pattern={}", encode_query(p)))
            .collect();
        if let Some(id) = since {
            parts.push(format!("since={id}"));
        }
        self.websocket(&format!("/api/events/subscribe{}", join_query(&parts)))
            .await
    }

    /// Opens the server's log stream at `level` and above.
    pub async fn subscribe_logs(&self, level: &str) -> Result<Subscription, ClientError> {
        self.websocket(&format!(
            "/api/logs/subscribe?level={}",
            encode_query(level)
        ))
        .await
    }

    async fn websocket(&self, path: &str) -> Result<Subscription, ClientError> {
        let url = format!("{}{path}", self.base.replacen("http", "ws", 1));
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Protocol(format!("bad WebSocket URL {url}: {e}")))?;
        if let Some(t) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                ClientError::Protocol("the token is not a valid header value".into())
            })?;
            request.headers_mut().insert("authorization", value);
        }
        use tokio_tungstenite::tungstenite::Error as WsError;
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => Ok(Subscription { stream }),
            Err(WsError::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
                    .unwrap_or_else(|| {
                        ErrorBody::new(status, format!("WebSocket refused with HTTP {status}"))
                    });
                Err(ClientError::Api { status, body })
            }
            Err(WsError::Io(e)) => Err(ClientError::Connect {
                server: self.base.clone(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ClientError::Protocol(format!(
                "WebSocket to {url} failed: {e}"
            ))),
        }
    }
}

fn with_instance_token(rb: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => rb.header(crate::INSTANCE_TOKEN_HEADER, t),
        None => rb,
    }
}

fn with_condition(mut rb: RequestBuilder, cond: &WriteCondition) -> RequestBuilder {
    if let Some(tag) = &cond.if_match {
        let tag = if tag.starts_with('"') || tag.starts_with("W/") {
            tag.clone()
        } else {
            format!("\"{tag}\"")
        };
        rb = rb.header("if-match", tag);
    }
    if let Some(v) = cond.if_version {
        rb = rb.header(crate::IF_VERSION_HEADER, v.to_string());
    }
    if cond.create_only {
        rb = rb.header("if-none-match", "*");
    }
    rb
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<T> {
    /// One item (an event or a log record).
    Item(T),
    /// The server closed the stream; `reason` says why (for a lag close it names the last id sent).
    Closed { code: u16, reason: String },
}

/// An open WebSocket subscription.
pub struct Subscription {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    /// The next item, `Closed` when the server closed, or `None` when the connection dropped.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<Frame<T>, ClientError>> {
        loop {
            let msg = match self.stream.next().await? {
                Ok(msg) => msg,
                Err(e) => return Some(Err(ClientError::Protocol(format!("WebSocket error: {e}")))),
            };
            match msg {
                Message::Text(text) => {
                    return Some(
                        serde_json::from_str(text.as_str())
                            .map(Frame::Item)
                            .map_err(|e| {
                                ClientError::Protocol(format!("bad frame from the server: {e}"))
                            }),
                    );
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Some(Ok(Frame::Closed { code, reason }));
                }
                _ => continue,
            }
        }
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Option<Result<Frame<Event>, ClientError>> {
        self.next().await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = self.stream.flush().await;
    }
}

/// Parses the resume id out of a lag close reason such as `lagged: last_id=42`.
pub fn resume_id_from_reason(reason: &str) -> Option<i64> {
    reason
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find_map(|part| part.strip_prefix("last_id="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_escape_the_rest() {
        assert_eq!(encode_key("a/b c?d"), "a/b%20c%3Fd");
        assert_eq!(encode_key("api-contract.v1"), "api-contract.v1");
        assert_eq!(encode_query("api.*"), "api.%2A");
    }

    #[test]
    fn resume_reason() {
        assert_eq!(
            resume_id_from_reason("subscriber lagged; last_id=42"),
            Some(42)
        );
        assert_eq!(resume_id_from_reason("bye"), None);
    }
}
