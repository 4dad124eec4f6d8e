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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use koor_shared::client::{Client, ClientError, Frame, HistoryQuery, InstanceFilter};
use koor_shared::types::{Event, LogRecord};
use tokio::sync::mpsc::Sender;

use crate::format;
use crate::msg::{Command, Conn, Detail, Level, Msg, Net, Snapshot};

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

/// Runs one request for the model; `None` when there is nothing to report.
pub async fn run_command(client: &Client, cmd: Command) -> Option<Net> {
    match cmd {
        Command::Quit | Command::SetLogLevel(_) => None,
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
    }
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
