//! The one message type that drives the model ([`Msg`]), what the network tasks report ([`Net`]),
//! and the side effects the update function asks the runtime for ([`Command`]).

use std::collections::BTreeMap;

use crossterm::event::KeyEvent;
use koor_shared::types::{
    Event, Instance, Lock, LogRecord, Metrics, SpecList, StateHistory, StateSummary,
};

use crate::views::work::messages::MessageRow;
use crate::views::work::reservations::ReservationRow;
use crate::views::work::tasks::TaskRow;

/// Everything that can change the model.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// The 1 s clock, with the wall-clock time in milliseconds since the epoch.
    Tick(i64),
    /// A report from a network task.
    Net(Net),
    /// SIGTERM / SIGINT from outside.
    Quit,
}

/// The event connection's state, as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    /// First attempt under way.
    Connecting,
    /// Snapshot loaded, live stream open.
    Connected,
    /// Waiting to try again: at `retry_at_ms`, for the `attempt`th time, after `reason`.
    Reconnecting {
        retry_at_ms: i64,
        attempt: u32,
        reason: String,
    },
    /// The server refused our token (401); retried slowly, since a restarted server may accept it.
    AuthError { message: String, retry_at_ms: i64 },
}

/// The snapshot taken on every (re)connect, before the live stream opens.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub metrics: Metrics,
    pub state: Vec<StateSummary>,
    pub instances: Vec<Instance>,
    /// Recent history (only on the first connect; later the stream resumes with `since`).
    pub recent: Vec<Event>,
    /// `since` the stream resumes from.
    pub since: i64,
    /// The server's event ids went backwards (a new data dir): drop the events shown so far.
    pub reset: bool,
    /// Projects that have specs (`GET /api/specs`; empty from a server without that route).
    pub projects: Vec<String>,
}

/// A state key's or spec's details, loaded on Enter.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// `key` or `project/name`.
    pub title: String,
    pub version: Option<i64>,
    pub content_type: String,
    pub size: usize,
    /// The value for reading (pretty JSON when it is JSON).
    pub body: String,
    /// The version history, newest first (state keys only).
    pub history: Option<StateHistory>,
}

/// What the network tasks send in.
#[derive(Debug, Clone)]
pub enum Net {
    Conn(Conn),
    Snapshot(Box<Snapshot>),
    /// Events from the live stream, in id order.
    Events(Vec<Event>),
    /// The stream resumed after a gap it could not fill (retention removed events
    /// `from..=to` before we got back).
    Gap {
        from: i64,
        to: i64,
    },
    /// A fresh listing of instances.
    Instances(Vec<Instance>),
    /// One instance, fetched after a `koor.instance.*` event.
    Instance(Box<Instance>),
    /// The specs of one project.
    Specs(SpecList),
    /// The webhooks with their delivery health.
    Webhooks(Vec<koor_shared::ops::Webhook>),
    /// Log stream: a snapshot at the chosen level (replaces what is shown) ...
    LogSnapshot(Vec<LogRecord>),
    /// ... then live records.
    Logs(Vec<LogRecord>),
    /// The log stream is unavailable (with the reason).
    LogsDown(String),
    /// Details for the detail pane, or the error loading them.
    Detail(Result<Box<Detail>, String>),
    /// Outcome of a deregistration: per instance `(name, id, error)`.
    Deregistered(Vec<(String, String, Option<String>)>),
    /// (ext) The current locks, reflecting at least every event up to `as_of` (sent after each
    /// snapshot, and on refresh).
    Locks {
        locks: Vec<Lock>,
        as_of: i64,
    },
    /// (ext) One lock, fetched after a `koor.lock.acquired` event.
    Lock(Box<Lock>),
    /// (ext) Outcome of a force-release of the grant `fence` of lock `name`.
    LockReleased {
        name: String,
        fence: i64,
        error: Option<String>,
    },
    /// (ext) The projects that have a task board (`GET /api/tasks`).
    Boards(Vec<String>),
    /// (ext) The board of `project`, reflecting at least every event up to `as_of`.
    Tasks {
        project: String,
        tasks: Vec<TaskRow>,
        as_of: i64,
    },
    /// (ext) Outcome of putting a claimed task back to open.
    TaskReleased {
        project: String,
        id: String,
        error: Option<String>,
    },
    /// (ext) The current reservations, reflecting at least every event up to `as_of`.
    Reservations {
        list: Vec<ReservationRow>,
        as_of: i64,
    },
    /// (ext) Outcome of a force-release of reservation `id` (grant `fence`, on `path`).
    ReservationReleased {
        id: String,
        fence: i64,
        path: String,
        error: Option<String>,
    },
    /// (ext) Recent messages with their receipts, and (when the server could say) the unread
    /// count of every inbox that has unread messages.
    Messages {
        messages: Vec<MessageRow>,
        unread: Option<BTreeMap<String, i64>>,
    },
    /// (ext) Outcome of a message sent from the console; `operator` is the console's own
    /// instance id once it is registered.
    MessageSent {
        to_name: String,
        operator: Option<String>,
        error: Option<String>,
    },
}

/// A log level the log view can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The next level in the cycle debug → info → warn → error → debug.
    pub fn next(self) -> Level {
        match self {
            Level::Debug => Level::Info,
            Level::Info => Level::Warn,
            Level::Warn => Level::Error,
            Level::Error => Level::Debug,
        }
    }
}

/// A side effect the update function asks for; the runtime runs it and reports back with [`Net`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// `DELETE /api/instances/{id}` for each `(id, name)`.
    Deregister(Vec<(String, String)>),
    /// Value and history of a state key.
    LoadState(String),
    /// Value of a spec.
    LoadSpec {
        project: String,
        name: String,
    },
    /// `GET /api/instances/{id}` (after a registered/updated event, whose data is small).
    FetchInstance(String),
    /// `GET /api/instances` (heartbeats of active agents are batched and publish nothing, so their
    /// last-seen time is refreshed this way, every few seconds, while connected).
    RefreshInstances,
    /// `GET /api/specs/{project}`.
    FetchSpecs(String),
    /// `GET /api/webhooks` (on connect, and after a `koor.webhook.*` event).
    FetchWebhooks,
    /// Restart the log stream at this level.
    SetLogLevel(Level),
    /// (ext) `GET /api/locks/{name}` (a `koor.lock.acquired` event carries no expiry).
    FetchLock(String),
    /// (ext) `GET /api/metrics` then `GET /api/locks` (heartbeats renew locks without an event,
    /// so their expiry is re-read every few seconds while any are shown).
    RefreshLocks,
    /// (ext) `DELETE /api/locks/{name}?force=1`, the grant `fence` being the one shown.
    ForceReleaseLock {
        name: String,
        fence: i64,
    },
    /// (ext) `GET /api/metrics`, `GET /api/tasks` and `GET /api/tasks/{project}`.
    RefreshTasks(String),
    /// (ext) `POST /api/tasks/{project}/{id}/release?force=1`: the claim ends, the task is open.
    ForceReleaseTask {
        project: String,
        id: String,
    },
    /// (ext) `GET /api/metrics` then `GET /api/reservations`.
    RefreshReservations,
    /// (ext) `DELETE /api/reservations/{id}?force=1`.
    ForceReleaseReservation {
        id: String,
        fence: i64,
        path: String,
    },
    /// (ext) `GET /api/messages?last=N` and `GET /api/messages/unread` (receipts change without an
    /// event, so they are re-read every few seconds).
    RefreshMessages,
    /// (ext) `POST /api/messages` from the console's `operator` instance (registered on first
    /// use).
    SendMessage {
        to_id: String,
        to_name: String,
        subject: String,
        body: String,
        thread_id: Option<i64>,
    },
    /// (ext) Heartbeat of the console's `operator` instance, while the console runs.
    HeartbeatOperator,
}

impl Command {
    /// What the status line says while a confirmed command runs.
    pub fn pending_text(&self) -> &'static str {
        match self {
            Command::ForceReleaseLock { .. } | Command::ForceReleaseReservation { .. } => {
                "releasing…"
            }
            Command::ForceReleaseTask { .. } => "putting the task back to open…",
            Command::SendMessage { .. } => "sending…",
            _ => "deregistering…",
        }
    }
}
