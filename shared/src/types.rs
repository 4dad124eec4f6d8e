//! JSON bodies of the API (see `API.md`). Field names are the wire names.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub uptime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `GET /api/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub uptime: String,
    pub state_keys: i64,
    pub instances: i64,
    pub last_event_id: i64,
    pub api_bind: String,
    pub dashboard_bind: String,
    /// (ext) Specs stored, all projects.
    #[serde(default)]
    pub specs: i64,
    /// (ext) Events currently retained in history.
    #[serde(default)]
    pub events_retained: i64,
    /// (ext) Instances currently stale.
    #[serde(default)]
    pub stale_instances: i64,
    /// (ext) Open event WebSocket subscribers.
    #[serde(default)]
    pub subscribers: i64,
    /// (ext) Open log WebSocket subscribers.
    #[serde(default)]
    pub log_subscribers: i64,
    /// (ext) Requests waiting now: long-polls (events, inbox, state) and lock waits.
    #[serde(default)]
    pub waiters: i64,
    /// (ext) Server version.
    #[serde(default)]
    pub version: String,
}

/// One row of `GET /api/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSummary {
    pub key: String,
    pub version: i64,
    pub content_type: String,
    pub updated_at: String,
    /// (ext) Size of the current value in bytes.
    #[serde(default)]
    pub size: i64,
}

/// The answer to `PUT /api/state/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateWrite {
    pub key: String,
    pub version: i64,
    pub hash: String,
    pub content_type: String,
    pub updated_at: String,
}

/// One version in a key's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: i64,
    pub hash: String,
    pub updated_at: String,
    /// (ext) Content type of that version.
    #[serde(default)]
    pub content_type: String,
    /// (ext) Size of that version in bytes.
    #[serde(default)]
    pub size: i64,
}

/// `GET /api/state/{key}?history=1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHistory {
    pub key: String,
    pub versions: Vec<VersionInfo>,
}

/// One difference between two JSON documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffOp {
    /// `add`, `remove` or `replace`.
    pub operation: String,
    /// JSON pointer of the changed value.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<Value>,
}

/// `GET /api/state/{key}?diff=A,B`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDiff {
    pub key: String,
    pub v1: i64,
    pub v2: i64,
    pub diffs: Vec<DiffOp>,
}

/// `POST /api/state/{key}?rollback=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub key: String,
    pub version: i64,
    pub hash: String,
    pub rolled_back: i64,
    pub updated_at: String,
}

/// `{"deleted": "<what>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
}

/// One spec in a project's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecSummary {
    pub name: String,
    pub version: i64,
    pub updated_at: String,
}

/// `GET /api/specs/{project}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecList {
    pub project: String,
    pub specs: Vec<SpecSummary>,
}

/// `PUT /api/specs/{project}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecWrite {
    pub project: String,
    pub name: String,
    pub version: i64,
    pub hash: String,
    pub updated_at: String,
}

/// A JSON value kept as the exact text it arrived as: numbers keep every digit (no rounding
/// through `f64`, integers beyond 64 bits stay integers), object keys keep their order. It
/// serializes as that text, so a server passes event data through byte for byte.
///
/// For reading fields it dereferences to the parsed [`Value`] (parsed once, on first use), so
/// `event.data["key"]` and `event.data.get("key")` work as on a `Value`. Deserialize it with
/// `serde_json::from_str`/`from_slice`/`from_reader` (not `from_value`, which has no text to keep).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson {
    raw: Box<serde_json::value::RawValue>,
    #[serde(skip)]
    parsed: std::sync::OnceLock<Value>,
}

impl RawJson {
    /// Checks that `text` is one JSON document and keeps it as is.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(|raw| Self {
            raw,
            parsed: std::sync::OnceLock::new(),
        })
    }

    /// The JSON text of `value`.
    pub fn from_value(value: &Value) -> Self {
        Self::of(value)
    }

    /// The JSON text of anything serializable (written once, not parsed back).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        serde_json::value::to_raw_value(value).map_or_else(
            |_| Self::default(),
            |raw| Self {
                raw,
                parsed: std::sync::OnceLock::new(),
            },
        )
    }

    /// The exact JSON text.
    pub fn text(&self) -> &str {
        self.raw.get()
    }

    /// The value parsed (numbers then go through `f64`/`i64` as usual).
    pub fn value(&self) -> Value {
        (**self).clone()
    }
}

impl std::ops::Deref for RawJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_str(self.text()).unwrap_or(Value::Null))
    }
}

impl Default for RawJson {
    fn default() -> Self {
        Self {
            raw: serde_json::value::RawValue::NULL.to_owned(),
            parsed: std::sync::OnceLock::new(),
        }
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for RawJson {}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        **self == *other
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::fmt::Display for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// An event on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub topic: String,
    /// The data exactly as published (see [`RawJson`]).
    #[serde(default)]
    pub data: RawJson,
    #[serde(default)]
    pub source: String,
    pub created_at: String,
}

/// `POST /api/events/publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishRequest {
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub source: String,
}

/// A registered agent instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub workspace: String,
    #[serde(default)]
    pub intent: String,
    #[serde(default)]
    pub stack: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub status: String,
    pub registered_at: String,
    pub last_seen: String,
}

/// `POST /api/instances/register` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub workspace: String,
    #[serde(default)]
    pub intent: String,
    #[serde(default)]
    pub stack: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// `POST /api/instances/register` answer: the instance plus its token, shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    #[serde(flatten)]
    pub instance: Instance,
    pub token: String,
}

/// A record of the server's own log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub time: String,
    pub level: String,
    pub target: String,
    pub message: String,
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
}

/// (ext) Who holds a hold: the instance's id and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub id: String,
    pub name: String,
}

/// (ext) A named lock: `POST/GET /api/locks/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub name: String,
    pub holder: Holder,
    pub fence: i64,
    pub acquired_at: String,
    pub expires_at: String,
}

/// (ext) `GET /api/locks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockList {
    pub locks: Vec<Lock>,
}

/// (ext) A file reservation: `POST/GET /api/reservations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub project: String,
    /// The reserved file or glob, relative to the project root and normalised.
    pub path: String,
    pub exclusive: bool,
    pub holder: Holder,
    pub fence: i64,
    #[serde(default)]
    pub reason: String,
    pub created_at: String,
    pub expires_at: String,
}

/// (ext) `GET /api/reservations`, and the answer of a reserve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationList {
    pub reservations: Vec<Reservation>,
}

/// (ext) A requested path that meets another instance's reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationConflict {
    /// The path asked about (normalised).
    pub path: String,
    /// The reservation it meets: its path, id, holder, mode, expiry and reason.
    pub held_path: String,
    #[serde(default)]
    pub id: String,
    pub holder: Holder,
    pub exclusive: bool,
    pub expires_at: String,
    #[serde(default)]
    pub reason: String,
}

/// (ext) `POST /api/reservations/check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationCheck {
    pub ok: bool,
    pub conflicts: Vec<ReservationConflict>,
}

/// (ext) One addressee of a message, with that recipient's receipts (`null` until read/acked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub read_at: Option<String>,
    #[serde(default)]
    pub acked_at: Option<String>,
}

/// (ext) A directed message between instances: `GET /api/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub thread_id: i64,
    pub from: Holder,
    pub to: Vec<Recipient>,
    pub subject: String,
    /// Any JSON; `null` when none was sent.
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub ack_required: bool,
    pub created_at: String,
}

/// (ext) A message as one recipient's inbox shows it: with that recipient's receipts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxMessage {
    #[serde(flatten)]
    pub message: Message,
    #[serde(default)]
    pub read_at: Option<String>,
    #[serde(default)]
    pub acked_at: Option<String>,
}

/// (ext) `GET /api/instances/{id}/inbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbox {
    pub instance_id: String,
    pub messages: Vec<InboxMessage>,
    /// Messages of this inbox not yet read (all of them, not only those listed).
    #[serde(default)]
    pub unread: i64,
}

/// (ext) `GET /api/messages/threads/{thread_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub thread_id: i64,
    pub messages: Vec<Message>,
}

/// (ext) `POST /api/messages` body. `to` holds instance ids or names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ack_required: bool,
}

/// (ext) `POST /api/messages` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: i64,
    pub thread_id: i64,
    pub to: Vec<Holder>,
}

/// (ext) The live claim on a task: a hold of kind `task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClaim {
    pub holder: Holder,
    pub fence: i64,
    pub expires_at: String,
}

/// (ext) A task of a project's board: `GET /api/tasks/{project}/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Short and stable within the project: `T-1`, `T-2`, ...
    pub id: String,
    pub project: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `open`, `claimed`, `done`, `failed`, `cancelled`.
    pub status: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Open and every dependency done.
    pub ready: bool,
    pub claim: Option<TaskClaim>,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub result: Option<Value>,
    /// Why it was last released, failed or reclaimed (empty when never).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default)]
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
}

/// (ext) `GET /api/tasks/{project}` and the answer to creating an array of tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskList {
    #[serde(default)]
    pub project: String,
    pub tasks: Vec<Task>,
}

/// (ext) One board in `GET /api/tasks`: a project and how many tasks it has in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBoard {
    pub project: String,
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// (ext) `GET /api/tasks`: every project that has tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBoards {
    pub boards: Vec<TaskBoard>,
}
