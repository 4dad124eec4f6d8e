//! Network I/O, in background tasks that report to the model as [`Net`] messages.
//!
//! - [`watch_events`]: list-then-watch. On every (re)connect it reads `last_event_id` from
//!   `/api/metrics` first, then the state, instance and lock listings (so the snapshot reflects at
//!   least every event up to that id), then opens `/api/events/subscribe?pattern=*&pattern=koor.**` with
//!   `since` = the last event it delivered (on the first connect: the snapshot's id). The server
//!   replays what was missed, so no event is lost or shown twice. When the connection drops it
//!   retries with capped exponential backoff and says so.
//! - [`watch_logs`]: the server's log stream at one level, with a snapshot of recent records.
//! - [`run_command`]: one-shot requests the update function asks for.
//! - [`Operator`]: the console's own `operator` instance, registered on the first message the
//!   operator sends, heartbeated while the console runs, deregistered when it quits.
//!
//! Tasks, reservations and messages are read with the client's generic JSON call and parsed
//! into the Work view's own rows; a server without those routes answers 404 and the sections
//! stay empty.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use koor_shared::client::{Client, ClientError, Frame, HistoryQuery, InstanceFilter, encode_query};
use koor_shared::types::{Event, LogRecord, RegisterRequest};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::sync::mpsc::Sender;

use crate::format;
use crate::msg::{Command, Conn, Detail, Level, Msg, Net, Snapshot};
use crate::views::work::messages::MessageRow;
use crate::views::work::reservations::ReservationRow;
use crate::views::work::tasks::TaskRow;

/// The patterns the console follows: every user topic and every system topic.
pub const PATTERNS: [&str; 2] = ["*", "koor.**"];
/// Recent events loaded on the first connect, per pattern.
const RECENT: u32 = 200;
/// Log records loaded with each log snapshot.
const RECENT_LOGS: u32 = 300;
/// Longest wait between reconnection attempts: short, so the console is back within a second or
/// so of the server (an attempt is one small request to a server that is usually on loopback).
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The first wait.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Recent messages the Work view reads.
const RECENT_MESSAGES: usize = crate::views::work::messages::KEEP;
/// The name the console registers under to send messages.
pub const OPERATOR_NAME: &str = "operator";

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The wait before attempt `attempt` (1-based): 0.25 s, 0.5 s, then [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    (FIRST_BACKOFF * (1u32 << attempt.saturating_sub(1).min(6))).min(MAX_BACKOFF)
}

/// Why a session ended.
enum End {
    /// The console is gone (the channel closed): stop.
    Stopped,
    Failed {
        reason: String,
        auth: bool,
    },
}

impl From<ClientError> for End {
    fn from(e: ClientError) -> Self {
        End::Failed {
            auth: e.status() == Some(401),
            reason: describe(&e),
        }
    }
}

/// A client error for the status line, with the HTTP status when there is one.
pub fn describe(e: &ClientError) -> String {
    match e.status() {
        Some(code) => format!("{e} ({code})"),
        None => e.to_string(),
    }
}

async fn send(tx: &Sender<Msg>, net: Net) -> Result<(), End> {
    tx.send(Msg::Net(net)).await.map_err(|_| End::Stopped)
}

/// Parses `name=N` out of a close reason (`oldest_id=42`).
fn id_in_reason(reason: &str, name: &str) -> Option<i64> {
    reason
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Follows the event bus until the console closes, reconnecting as needed.
pub async fn watch_events(client: Client, tx: Sender<Msg>) {
    let mut watch = EventWatch::default();
    let mut attempt = 0u32;
    loop {
        let (reason, auth) = match watch.session(&client, &tx, &mut attempt).await {
            End::Stopped => return,
            End::Failed { reason, auth } => (reason, auth),
        };
        attempt = attempt.saturating_add(1);
        let delay = backoff(attempt);
        let retry_at_ms = now_ms() + delay.as_millis() as i64;
        let conn = if auth {
            Conn::AuthError {
                message: reason,
                retry_at_ms,
            }
        } else {
            Conn::Reconnecting {
                retry_at_ms,
                attempt,
                reason,
            }
        };
        if send(&tx, Net::Conn(conn)).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}

#[derive(Debug, Default)]
struct EventWatch {
    /// The last event id delivered to the console: the next stream resumes after it.
    resume: Option<i64>,
}

impl EventWatch {
    async fn session(&mut self, client: &Client, tx: &Sender<Msg>, attempt: &mut u32) -> End {
        match self.run(client, tx, attempt).await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    async fn run(
        &mut self,
        client: &Client,
        tx: &Sender<Msg>,
        attempt: &mut u32,
    ) -> Result<std::convert::Infallible, End> {
        // 1. the id first, then the listings: they reflect at least every event up to it
        let metrics = client.metrics().await?;
        let snapshot_id = metrics.last_event_id;
        // a server on a fresh data dir numbers events from 1 again: start over
        let reset = self.resume.is_some_and(|r| snapshot_id < r);
        if reset {
            self.resume = None;
        }
        let all = InstanceFilter::default();
        let (state, instances, projects, locks) = tokio::join!(
            client.state_list(),
            client.instances(&all),
            client.spec_projects(),
            client.locks()
        );
        let (state, instances) = (state?, instances?);
        let projects = projects.unwrap_or_default();
        let recent = match self.resume {
            None => recent_events(client, snapshot_id).await,
            Some(_) => Vec::new(),
        };
        let since = self.resume.unwrap_or(snapshot_id);
        send(
            tx,
            Net::Snapshot(Box::new(Snapshot {
                metrics,
                state,
                instances,
                recent,
                since,
                reset,
                projects,
            })),
        )
        .await?;
        // (a server without locks answers 404: nothing to show)
        if let Ok(list) = locks {
            send(
                tx,
                Net::Locks {
                    locks: list.locks,
                    as_of: snapshot_id,
                },
            )
            .await?;
        }
        // the rest of the Work view, read after the same id (each may be missing: 404)
        let (boards, reservations, messages) =
            tokio::join!(boards(client), reservations(client), messages(client));
        if let Some(projects) = boards {
            send(tx, Net::Boards(projects)).await?;
        }
        if let Some(list) = reservations {
            send(
                tx,
                Net::Reservations {
                    list,
                    as_of: snapshot_id,
                },
            )
            .await?;
        }
        if let Some(net) = messages {
            send(tx, net).await?;
        }
        // 2. then the stream from there
        let patterns: Vec<String> = PATTERNS.iter().map(|p| (*p).to_owned()).collect();
        let mut sub = client.subscribe_events(&patterns, Some(since)).await?;
        self.resume = Some(since);
        *attempt = 0;
        send(tx, Net::Conn(Conn::Connected)).await?;
        loop {
            match sub.next_event().await {
                Some(Ok(Frame::Item(ev))) => {
                    if self.resume.is_some_and(|r| ev.id <= r) {
                        continue;
                    }
                    self.resume = Some(ev.id);
                    send(tx, Net::Events(vec![ev])).await?;
                }
                Some(Ok(Frame::Closed { code, reason })) => {
                    let last = self.resume.unwrap_or(since);
                    if let Some(oldest) = id_in_reason(&reason, "oldest_id")
                        && oldest > last + 1
                    {
                        send(
                            tx,
                            Net::Gap {
                                from: last + 1,
                                to: oldest - 1,
                            },
                        )
                        .await?;
                        self.resume = Some(oldest - 1);
                    }
                    let why = if reason.is_empty() {
                        format!("the server closed the stream ({code})")
                    } else {
                        format!("the server closed the stream ({code}: {reason})")
                    };
                    return Err(End::Failed {
                        reason: why,
                        auth: false,
                    });
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(End::Failed {
                        reason: "connection to the server lost".into(),
                        auth: false,
                    });
                }
            }
        }
    }
}

/// The newest events up to `upto`, user and system topics merged, oldest first. Best effort: an
/// error leaves the list empty (the live stream still works).
async fn recent_events(client: &Client, upto: i64) -> Vec<Event> {
    let user = HistoryQuery {
        last: Some(RECENT),
        ..HistoryQuery::default()
    };
    let system = HistoryQuery {
        last: Some(RECENT),
        topic: Some("koor.**".into()),
        ..HistoryQuery::default()
    };
    let (a, b) = tokio::join!(client.history(&user), client.history(&system));
    let mut all: Vec<Event> = a
        .unwrap_or_default()
        .into_iter()
        .chain(b.unwrap_or_default())
        .filter(|e| e.id <= upto)
        .collect();
    all.sort_by_key(|e| e.id);
    all.dedup_by_key(|e| e.id);
    let skip = all.len().saturating_sub(RECENT as usize);
    all.split_off(skip)
}

/// Follows the server's log stream at `level` until the console closes (the runtime aborts it to
/// change level).
pub async fn watch_logs(client: Client, level: Level, tx: Sender<Msg>) {
    let mut attempt = 0u32;
    loop {
        match logs_session(&client, level, &tx, &mut attempt).await {
            End::Stopped => return,
            End::Failed { reason, .. } => {
                if send(&tx, Net::LogsDown(reason)).await.is_err() {
                    return;
                }
            }
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff(attempt)).await;
    }
}

async fn logs_session(client: &Client, level: Level, tx: &Sender<Msg>, attempt: &mut u32) -> End {
    let run = async {
        // subscribe first, then read the recent records, so nothing falls between the two
        let mut sub = client.subscribe_logs(level.as_str()).await?;
        let snapshot = client.logs(RECENT_LOGS, level.as_str()).await?;
        let tail: Vec<LogRecord> = snapshot.iter().rev().take(50).cloned().collect();
        send(tx, Net::LogSnapshot(snapshot)).await?;
        *attempt = 0;
        let mut skipping = true;
        loop {
            match sub.next::<LogRecord>().await {
                Some(Ok(Frame::Item(r))) => {
                    // records already in the snapshot come first; skip those
                    if skipping && tail.contains(&r) {
                        continue;
                    }
                    skipping = false;
                    send(tx, Net::Logs(vec![r])).await?;
                }
                Some(Ok(Frame::Closed { code, reason })) => {
                    return Err(End::Failed {
                        reason: format!("log stream closed ({code} {reason})"),
                        auth: false,
                    });
                }
                Some(Err(e)) => return Err(End::from(e)),
                None => {
                    return Err(End::Failed {
                        reason: "log stream lost".into(),
                        auth: false,
                    });
                }
            }
        }
    };
    let result: Result<std::convert::Infallible, End> = run.await;
    match result {
        Ok(never) => match never {},
        Err(end) => end,
    }
}

async fn get_value(client: &Client, path: &str) -> Result<Value, ClientError> {
    client.send_value(Method::GET, path, None, None).await
}

/// `GET /api/tasks`: the projects that have a board.
async fn boards(client: &Client) -> Option<Vec<String>> {
    let v = get_value(client, "/api/tasks").await.ok()?;
    Some(
        v.get("boards")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.get("project").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// `GET /api/reservations`.
async fn reservations(client: &Client) -> Option<Vec<ReservationRow>> {
    let v = get_value(client, "/api/reservations").await.ok()?;
    Some(ReservationRow::list(&v))
}

/// `GET /api/messages?last=N` and `GET /api/messages/unread`.
async fn messages(client: &Client) -> Option<Net> {
    let path = format!("/api/messages?last={RECENT_MESSAGES}");
    let (list, unread) = tokio::join!(
        get_value(client, &path),
        get_value(client, "/api/messages/unread")
    );
    let list = list.ok()?;
    let unread = unread.ok().map(|v| {
        v.get("unread")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(id, n)| Some((id.clone(), n.as_i64()?)))
                    .collect::<BTreeMap<String, i64>>()
            })
            .unwrap_or_default()
    });
    Some(Net::Messages {
        messages: MessageRow::list(&list),
        unread,
    })
}

/// The console's own instance, for sending messages: registered as [`OPERATOR_NAME`] the first
/// time the operator sends one (a console that only watches registers nothing), heartbeated by
/// the app's tick while the console runs, and deregistered when it quits. Its token stays here,
/// out of the model.
#[derive(Debug, Clone, Default)]
pub struct Operator {
    me: Arc<Mutex<Option<(String, String)>>>,
}

impl Operator {
    /// The instance's id and token, registering it first when needed.
    async fn get(&self, client: &Client) -> Result<(String, String), ClientError> {
        let mut me = self.me.lock().await;
        if let Some(me) = me.as_ref() {
            return Ok(me.clone());
        }
        let req = RegisterRequest {
            name: OPERATOR_NAME.into(),
            intent: "operator console (koor-tui)".into(),
            ..RegisterRequest::default()
        };
        let reg = client.register(&req).await?;
        let pair = (reg.instance.id, reg.token);
        *me = Some(pair.clone());
        Ok(pair)
    }

    /// `POST /api/messages` from the operator. When the server no longer knows the operator
    /// (it was deregistered, or the server started on a fresh data dir) it registers again and
    /// sends once more.
    pub async fn send_message(
        &self,
        client: &Client,
        to_id: &str,
        subject: &str,
        body: &str,
        thread_id: Option<i64>,
    ) -> (Option<String>, Result<(), ClientError>) {
        for attempt in 0..2 {
            let (id, token) = match self.get(client).await {
                Ok(me) => me,
                Err(e) => return (None, Err(e)),
            };
            let mut req = json!({"from": id, "to": [to_id], "subject": subject});
            if !body.is_empty() {
                req["body"] = json!(body);
            }
            if let Some(t) = thread_id {
                req["thread_id"] = json!(t);
            }
            let sent = client
                .send_value(Method::POST, "/api/messages", Some(&req), Some(&token))
                .await;
            match sent {
                Err(e)
                    if attempt == 0
                        && matches!(e.status(), Some(400 | 403 | 404))
                        && e.to_string().contains(&id) =>
                {
                    // the server does not know us any more: register again
                    *self.me.lock().await = None;
                }
                other => return (Some(id), other.map(|_| ())),
            }
        }
        (None, Ok(()))
    }

    /// A heartbeat, when registered (errors are left to the next send).
    pub async fn heartbeat(&self, client: &Client) {
        let me = self.me.lock().await.clone();
        if let Some((id, token)) = me {
            let _ = client
                .instance_action_as(&id, "heartbeat", Some(&token))
                .await;
        }
    }

    /// Deregisters the instance, when registered (on quit).
    pub async fn leave(&self, client: &Client) {
        let me = self.me.lock().await.take();
        if let Some((id, token)) = me {
            let _ = client.deregister_as(&id, Some(&token)).await;
        }
    }
}

/// Runs one request for the model; `None` when there is nothing to report.
pub async fn run_command(client: &Client, cmd: Command) -> Option<Net> {
    match cmd {
        // (the runtime runs these itself, with the operator identity)
        Command::Quit
        | Command::SetLogLevel(_)
        | Command::SendMessage { .. }
        | Command::HeartbeatOperator => None,
        Command::Deregister(list) => {
            let mut results = Vec::new();
            for (id, name) in list {
                let err = client.deregister(&id).await.err().map(|e| describe(&e));
                results.push((name, id, err));
            }
            Some(Net::Deregistered(results))
        }
        Command::LoadState(key) => {
            let (value, history) = tokio::join!(
                client.state_get(&key, None),
                client.state_history(&key, Some(50))
            );
            Some(Net::Detail(match value {
                Ok(raw) => Ok(Box::new(Detail {
                    title: key,
                    version: raw.version,
                    content_type: raw.content_type,
                    size: raw.bytes.len(),
                    body: format::pretty_value(&raw.bytes),
                    history: history.ok(),
                })),
                Err(e) => Err(format!("{key}: {}", describe(&e))),
            }))
        }
        Command::LoadSpec { project, name } => {
            let title = format!("{project}/{name}");
            Some(Net::Detail(match client.spec_get(&project, &name).await {
                Ok(raw) => Ok(Box::new(Detail {
                    title,
                    version: raw.version,
                    content_type: raw.content_type,
                    size: raw.bytes.len(),
                    body: format::pretty_value(&raw.bytes),
                    history: None,
                })),
                Err(e) => Err(format!("{title}: {}", describe(&e))),
            }))
        }
        Command::FetchInstance(id) => client
            .instance(&id)
            .await
            .ok()
            .map(|i| Net::Instance(Box::new(i))),
        Command::RefreshInstances => client
            .instances(&InstanceFilter::default())
            .await
            .ok()
            .map(Net::Instances),
        Command::FetchSpecs(project) => client.specs_list(&project).await.ok().map(Net::Specs),
        Command::FetchLock(name) => client
            .lock(&name)
            .await
            .ok()
            .map(|l| Net::Lock(Box::new(l))),
        Command::RefreshLocks => {
            // the id first, then the listing: it reflects at least every event up to that id
            let as_of = client.metrics().await.ok()?.last_event_id;
            let list = client.locks().await.ok()?;
            Some(Net::Locks {
                locks: list.locks,
                as_of,
            })
        }
        Command::ForceReleaseLock { name, fence } => {
            let error = client
                .lock_release(&name, None, true, None)
                .await
                .err()
                .map(|e| describe(&e));
            Some(Net::LockReleased { name, fence, error })
        }
        Command::RefreshTasks(project) => {
            let as_of = client.metrics().await.ok()?.last_event_id;
            let path = format!("/api/tasks/{}", encode_query(&project));
            let board = get_value(client, &path).await.ok()?;
            Some(Net::Tasks {
                project,
                tasks: TaskRow::list(&board),
                as_of,
            })
        }
        Command::ForceReleaseTask { project, id } => {
            let path = format!(
                "/api/tasks/{}/{}/release?force=1",
                encode_query(&project),
                encode_query(&id)
            );
            let error = client
                .send_value(Method::POST, &path, Some(&json!({})), None)
                .await
                .err()
                .map(|e| describe(&e));
            Some(Net::TaskReleased { project, id, error })
        }
        Command::RefreshReservations => {
            let as_of = client.metrics().await.ok()?.last_event_id;
            Some(Net::Reservations {
                list: reservations(client).await?,
                as_of,
            })
        }
        Command::ForceReleaseReservation { id, fence, path } => {
            let route = format!("/api/reservations/{}?force=1", encode_query(&id));
            let error = client
                .send_value(Method::DELETE, &route, None, None)
                .await
                .err()
                .map(|e| describe(&e));
            Some(Net::ReservationReleased {
                id,
                fence,
                path,
                error,
            })
        }
        Command::RefreshMessages => messages(client).await,
        Command::FetchWebhooks => client.webhooks().await.ok().map(Net::Webhooks),
    }
}

/// Sends a message as the operator and says how it went.
pub async fn send_as_operator(client: &Client, operator: &Operator, cmd: Command) -> Option<Net> {
    let Command::SendMessage {
        to_id,
        to_name,
        subject,
        body,
        thread_id,
    } = cmd
    else {
        return None;
    };
    let (me, sent) = operator
        .send_message(client, &to_id, &subject, &body, thread_id)
        .await;
    Some(Net::MessageSent {
        to_name,
        operator: me,
        error: sent.err().map(|e| describe(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), MAX_BACKOFF);
        assert_eq!(backoff(500), MAX_BACKOFF);
    }

    #[test]
    fn reasons() {
        assert_eq!(id_in_reason("gone; oldest_id=42", "oldest_id"), Some(42));
        assert_eq!(id_in_reason("lagged last_id=7", "oldest_id"), None);
    }
}
