//! Locks: named mutexes over the hold model (COORDINATION.md, "Locks").
//!
//! Waiting is a queue per lock name in memory, in arrival order. A waiter is queued by the same
//! write job that found the lock held, and a lock that ends (release, expiry, deregistration,
//! force) is handed to the head of its queue in the very transaction that ended it; the waiter is
//! told after the commit through a oneshot channel. So no waiter polls, none costs a thread, a
//! freed lock always goes to the longest waiter, and a caller that does not wait gets 409 while
//! others wait (the lock is never free in between).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use koor_shared::types::{Holder, Lock};
use serde_json::json;
use tokio::sync::oneshot;

use super::{End, Grant, Holds, holder, holder_json, now_ms};
use crate::store::holds::{self as rows, Hold};
use crate::store::{Result, Store, StoreError, Tx};

pub const KIND: &str = "lock";
/// Longest `wait` an acquire may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

struct Waiter {
    seq: u64,
    instance: String,
    ttl: Duration,
    reply: oneshot::Sender<Lock>,
}

/// The queues of callers waiting for a lock, by lock name.
#[derive(Default)]
pub struct Waiters {
    queues: Mutex<HashMap<String, VecDeque<Waiter>>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("waiting", &self.count())
            .finish()
    }
}

impl Waiters {
    fn push(&self, name: &str, instance: &str, ttl: Duration) -> (u64, oneshot::Receiver<Lock>) {
        let (reply, rx) = oneshot::channel();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut q) = self.queues.lock() {
            q.entry(name.to_owned()).or_default().push_back(Waiter {
                seq,
                instance: instance.to_owned(),
                ttl,
                reply,
            });
        }
        (seq, rx)
    }

    /// Takes waiter `seq` out of the queue; false when it was already handed the lock.
    fn remove(&self, name: &str, seq: u64) -> bool {
        let Ok(mut q) = self.queues.lock() else {
            return false;
        };
        let Some(queue) = q.get_mut(name) else {
            return false;
        };
        let before = queue.len();
        queue.retain(|w| w.seq != seq);
        let removed = queue.len() != before;
        if queue.is_empty() {
            q.remove(name);
        }
        removed
    }

    /// The longest waiter for `name` that is still waiting.
    fn pop(&self, name: &str) -> Option<Waiter> {
        let mut q = self.queues.lock().ok()?;
        let queue = q.get_mut(name)?;
        let mut next = None;
        while let Some(w) = queue.pop_front() {
            if !w.reply.is_closed() {
                next = Some(w);
                break;
            }
        }
        if queue.is_empty() {
            q.remove(name);
        }
        next
    }

    /// Callers waiting for any lock (for metrics).
    pub fn count(&self) -> usize {
        self.queues
            .lock()
            .map(|q| q.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }
}

pub fn to_lock(h: &Hold) -> Lock {
    Lock {
        name: h.resource.clone(),
        holder: h.holder.clone(),
        fence: h.fence,
        acquired_at: h.acquired_at.clone(),
        expires_at: h.expires_at(),
    }
}

fn event_data(h: &Hold) -> serde_json::Value {
    json!({"name": h.resource, "holder": holder_json(&h.holder), "fence": h.fence})
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::Invalid(
            "a lock name is required: /api/locks/{name}".into(),
        ));
    }
    if name.len() > 512 {
        return Err(StoreError::Invalid(
            "lock name too long (at most 512 bytes)".into(),
        ));
    }
    Ok(())
}

/// The live lock `name`, if held.
fn current(tx: &Tx<'_>, name: &str) -> Result<Option<Hold>> {
    Ok(rows::on_resource(tx.conn(), KIND, "", name, now_ms())?
        .into_iter()
        .next())
}

fn grant(holds: &Holds, tx: &mut Tx<'_>, who: &Holder, name: &str, ttl: Duration) -> Result<Hold> {
    holds.grant(
        tx,
        who,
        Grant {
            kind: KIND,
            resource: name.to_owned(),
            exclusive: true,
            ttl,
            ..Grant::default()
        },
        "koor.lock.acquired",
        event_data,
    )
}

enum Attempt {
    Granted(Lock),
    Queued(u64, oneshot::Receiver<Lock>),
}

/// One acquire attempt, as a write job: renew when the caller holds it, grant when free, else
/// queue the caller (when it waits) or fail with 409.
fn try_acquire(
    holds: &Holds,
    tx: &mut Tx<'_>,
    name: &str,
    instance: &str,
    ttl: Duration,
    wait: bool,
) -> Result<Attempt> {
    holds.expire_due(tx)?;
    let who = holder(tx, instance)?;
    match current(tx, name)? {
        Some(h) if h.holder.id == who.id => {
            Ok(Attempt::Granted(to_lock(&holds.renew(tx, &h, ttl)?)))
        }
        Some(h) if wait => {
            let (seq, rx) = holds.lock_waiters().push(name, &who.id, ttl);
            let _ = h;
            Ok(Attempt::Queued(seq, rx))
        }
        Some(h) => Err(super::held_by(&format!("lock {name}"), &h)),
        None => Ok(Attempt::Granted(to_lock(&grant(
            holds, tx, &who, name, ttl,
        )?))),
    }
}

/// Acquires (or renews) lock `name` for `instance`. With `wait`, blocks in arrival order until the
/// lock is handed over or the wait ends (409 then); `stopping` ends the wait with a 503.
pub async fn acquire(
    holds: &Holds,
    store: &Store,
    name: &str,
    instance: &str,
    ttl: Duration,
    wait: Option<Duration>,
    stopping: impl Future<Output = ()>,
) -> Result<Lock> {
    check_name(name)?;
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        let (h, n, i) = (holds.clone(), name.to_owned(), instance.to_owned());
        let waiting = wait.is_some() && tokio::time::Instant::now() < deadline;
        let attempt = store
            .write(move |tx| try_acquire(&h, tx, &n, &i, ttl, waiting))
            .await?;
        let (seq, mut rx) = match attempt {
            Attempt::Granted(lock) => return Ok(lock),
            Attempt::Queued(seq, rx) => (seq, rx),
        };
        tokio::select! {
            handed = &mut rx => match handed {
                Ok(lock) => return Ok(lock),
                // The transaction that handed it over did not commit: try again.
                Err(_) => continue,
            },
            () = tokio::time::sleep_until(deadline) => {}
            () = &mut stopping => {
                holds.lock_waiters().remove(name, seq);
                return Err(StoreError::Closed);
            }
        }
        if holds.lock_waiters().remove(name, seq) {
            // Timed out while still queued: answer with whoever holds it now.
            return match get(holds, store, name).await {
                Ok(h) => Err(super::held_until(
                    &format!("lock {name}"),
                    &h.holder,
                    &h.expires_at,
                )),
                // Freed in the meantime without being handed to us: one more plain try.
                Err(StoreError::NotFound(_)) => {
                    let (h, n, i) = (holds.clone(), name.to_owned(), instance.to_owned());
                    match store
                        .write(move |tx| try_acquire(&h, tx, &n, &i, ttl, false))
                        .await?
                    {
                        Attempt::Granted(lock) => Ok(lock),
                        Attempt::Queued(..) => Err(StoreError::Closed),
                    }
                }
                Err(e) => Err(e),
            };
        }
        // Already handed to us by a transaction that is committing: its answer is moments away.
        return match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(lock)) => Ok(lock),
            _ => Err(StoreError::Conflict {
                message: format!("lock {name}: the wait ended before it was acquired"),
                details: json!({}),
            }),
        };
    }
}

/// Releases lock `name`: by its holder `instance`, or by anyone with `force`.
pub async fn release(
    holds: &Holds,
    store: &Store,
    name: &str,
    instance: Option<&str>,
    force: bool,
) -> Result<()> {
    check_name(name)?;
    let (holds, name, instance) = (holds.clone(), name.to_owned(), instance.map(str::to_owned));
    store
        .write(move |tx| {
            holds.expire_due(tx)?;
            let Some(h) = current(tx, &name)? else {
                return Err(StoreError::NotFound(format!("lock not held: {name}")));
            };
            if !force {
                let instance = instance.unwrap_or_default();
                let who = holder(tx, &instance)?;
                if h.holder.id != who.id {
                    return Err(StoreError::Conflict {
                        message: format!(
                            "lock {name} is held by {} ({}), not by {} ({})",
                            h.holder.name, h.holder.id, who.name, who.id
                        ),
                        details: json!({"holder": holder_json(&h.holder), "expires_at": h.expires_at()}),
                    });
                }
            }
            holds.end(tx, h, if force { End::Forced } else { End::Released })
        })
        .await
}

/// The live lock `name`; 404 when nobody holds it.
pub async fn get(_holds: &Holds, store: &Store, name: &str) -> Result<Lock> {
    check_name(name)?;
    let name = name.to_owned();
    store
        .read(move |c| {
            rows::on_resource(c, KIND, "", &name, now_ms())?
                .first()
                .map(to_lock)
                .ok_or_else(|| StoreError::NotFound(format!("lock not held: {name}")))
        })
        .await
}

/// Every live lock, by name.
pub async fn list(store: &Store) -> Result<Vec<Lock>> {
    store
        .read(|c| {
            Ok(rows::list(c, KIND, None, None, now_ms())?
                .iter()
                .map(to_lock)
                .collect())
        })
        .await
}

/// A lock ended: publishes `koor.lock.released` (with the reason) or `koor.lock.expired`, then hands
/// it to the longest waiter that is still registered, in the same transaction.
pub(super) fn ended(holds: &Holds, tx: &mut Tx<'_>, hold: &Hold, end: End) -> Result<()> {
    let mut data = event_data(hold);
    let topic = if end == End::Expired {
        "koor.lock.expired"
    } else {
        data["reason"] = json!(end.as_str());
        "koor.lock.released"
    };
    tx.emit(topic, data, "koor")?;
    while let Some(next) = holds.lock_waiters().pop(&hold.resource) {
        let Ok(who) = holder(tx, &next.instance) else {
            continue; // deregistered while it waited
        };
        let granted = grant(holds, tx, &who, &hold.resource, next.ttl)?;
        let lock = to_lock(&granted);
        tx.after_commit(move || {
            let _ = next.reply.send(lock);
        });
        break;
    }
    Ok(())
}
