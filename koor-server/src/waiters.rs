//! Long-poll waiters (COORDINATION.md, "Waiting instead of polling"): requests that sleep until a
//! committed event concerns them.
//!
//! One dispatcher task follows the bus for every waiter, so a waiter costs a table entry, a
//! `Notify` and its request's future: no thread, no receiver of its own, and no SQLite read while
//! nothing happens. The dispatcher looks each event up by what it is about (an inbox by instance
//! id, a state key) and only scans the pattern waiters linearly, so an event wakes exactly the
//! waiters it concerns.
//!
//! A waiter registers *before* it reads what is already there ([`Waiters::register`], then the
//! read, then [`Waiting::woken`]): whatever commits after the read is published after it, and
//! the dispatcher then finds the registration, so nothing falls between the two. A wake only
//! says "look again"; [`Notify`] keeps one permit, so a wake that comes before the waiter sleeps
//! is not lost.
//!
//! Event waiters are handed the matching events themselves, so waking a thousand of them on one
//! event costs no read at all. When the dispatcher falls behind the bus (`Lagged`), it cannot know
//! what it missed: it wakes every waiter with [`Waiting::lagged`] set, and event waiters fall back
//! to reading history.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use koor_shared::topic::PatternSet;
use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::bus::BusEvent;

/// What a waiter waits for.
#[derive(Debug, Clone)]
pub enum Interest {
    /// A message to this instance (or its deregistration).
    Inbox(String),
    /// A new version (or the deletion) of this state key.
    State(String),
    /// Events whose topic matches; at most `limit` of them are kept for the waiter.
    Events { patterns: PatternSet, limit: usize },
}

/// The shared half of one waiter: how the dispatcher wakes it.
#[derive(Debug, Default)]
struct Wake {
    notify: Notify,
    /// A `koor.state.deleted` for the key came.
    deleted: AtomicBool,
    /// The dispatcher lagged behind the bus: anything may have been missed.
    lagged: AtomicBool,
    /// Matching events handed over (event waiters only), oldest first.
    events: Mutex<Vec<Arc<BusEvent>>>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Table {
    inbox: HashMap<String, HashMap<u64, Arc<Wake>>>,
    state: HashMap<String, HashMap<u64, Arc<Wake>>>,
    events: HashMap<u64, (PatternSet, Arc<Wake>)>,
}

#[derive(Debug, Default)]
struct Inner {
    table: Mutex<Table>,
    next: AtomicU64,
    count: AtomicUsize,
}

/// Handle to the waiter table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Waiters {
    inner: Arc<Inner>,
}

/// One registered waiter; it leaves the table when dropped (answered, timed out, or the client
/// went away and its request was dropped).
#[derive(Debug)]
pub struct Waiting {
    inner: Arc<Inner>,
    id: u64,
    key: Key,
    wake: Arc<Wake>,
}

#[derive(Debug)]
enum Key {
    Inbox(String),
    State(String),
    Events,
}

impl Waiters {
    /// Registers a waiter. Register first, then read what is there, then wait.
    pub fn register(&self, interest: Interest) -> Waiting {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let limit = match &interest {
            Interest::Events { limit, .. } => (*limit).max(1),
            _ => 0,
        };
        let wake = Arc::new(Wake {
            limit,
            ..Wake::default()
        });
        let key = {
            let mut table = lock(&self.inner.table);
            match interest {
                Interest::Inbox(instance) => {
                    table
                        .inbox
                        .entry(instance.clone())
                        .or_default()
                        .insert(id, wake.clone());
                    Key::Inbox(instance)
                }
                Interest::State(k) => {
                    table
                        .state
                        .entry(k.clone())
                        .or_default()
                        .insert(id, wake.clone());
                    Key::State(k)
                }
                Interest::Events { patterns, .. } => {
                    table.events.insert(id, (patterns, wake.clone()));
                    Key::Events
                }
            }
        };
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        Waiting {
            inner: self.inner.clone(),
            id,
            key,
            wake,
        }
    }

    /// Requests waiting now.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// The dispatcher: follows `live` (subscribed before the server accepts its first request)
    /// and wakes the waiters each event concerns, until `stopping` or the bus closes.
    pub async fn run(
        self,
        mut live: broadcast::Receiver<Arc<BusEvent>>,
        stopping: impl Future<Output = ()>,
    ) {
        let mut stopping = std::pin::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                got = live.recv() => match got {
                    Ok(event) => self.dispatch(&event),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "waiter dispatcher fell behind the bus; waking every waiter to look again");
                        self.wake_all();
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Wakes the waiters `event` concerns.
    pub fn dispatch(&self, event: &Arc<BusEvent>) {
        let e = &event.event;
        let table = lock(&self.inner.table);
        let wake_all = |waiters: Option<&HashMap<u64, Arc<Wake>>>, deleted: bool| {
            for w in waiters.into_iter().flat_map(HashMap::values) {
                if deleted {
                    w.deleted.store(true, Ordering::SeqCst);
                }
                w.notify.notify_one();
            }
        };
        // Reading an event's data parses its JSON: only done when some waiter may care.
        match e.topic.as_str() {
            "koor.message.sent" | "koor.instance.deregistered" if table.inbox.is_empty() => {}
            "koor.state.updated" | "koor.state.deleted" if table.state.is_empty() => {}
            "koor.message.sent" => {
                let to = e.data["to"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                for id in to.iter().filter_map(|r| r["id"].as_str()) {
                    wake_all(table.inbox.get(id), false);
                }
            }
            "koor.instance.deregistered" => {
                if let Some(id) = e.data["id"].as_str() {
                    wake_all(table.inbox.get(id), false);
                }
            }
            "koor.state.updated" | "koor.state.deleted" => {
                if let Some(key) = e.data["key"].as_str() {
                    wake_all(table.state.get(key), e.topic == "koor.state.deleted");
                }
            }
            _ => {}
        }
        for (patterns, w) in table.events.values() {
            if patterns.matches(&e.topic) {
                let mut held = lock(&w.events);
                if held.len() < w.limit {
                    held.push(event.clone());
                }
                drop(held);
                w.notify.notify_one();
            }
        }
    }

    /// Wakes every waiter with `lagged` set.
    fn wake_all(&self) {
        let table = lock(&self.inner.table);
        let all = table
            .inbox
            .values()
            .chain(table.state.values())
            .flat_map(HashMap::values)
            .chain(table.events.values().map(|(_, w)| w));
        for w in all {
            w.lagged.store(true, Ordering::SeqCst);
            w.notify.notify_one();
        }
    }
}

impl Waiting {
    /// Resolves at the next wake after registration (at once if one came already).
    pub async fn woken(&self) {
        self.wake.notify.notified().await;
    }

    /// Whether the state key was deleted since registration.
    pub fn deleted(&self) -> bool {
        self.wake.deleted.load(Ordering::SeqCst)
    }

    /// Whether the dispatcher lagged since the last call (then look again at the store); clears it.
    pub fn lagged(&self) -> bool {
        self.wake.lagged.swap(false, Ordering::SeqCst)
    }

    /// The matching events handed over since the last call, oldest first (event waiters).
    pub fn take_events(&self) -> Vec<Arc<BusEvent>> {
        std::mem::take(&mut *lock(&self.wake.events))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut table = lock(&self.inner.table);
        let remove = |map: &mut HashMap<String, HashMap<u64, Arc<Wake>>>, k: &str, id: u64| {
            if let Some(entry) = map.get_mut(k) {
                entry.remove(&id);
                if entry.is_empty() {
                    map.remove(k);
                }
            }
        };
        match &self.key {
            Key::Inbox(k) => remove(&mut table.inbox, k, self.id),
            Key::State(k) => remove(&mut table.state, k, self.id),
            Key::Events => {
                table.events.remove(&self.id);
            }
        }
        drop(table);
        self.inner.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Locks a mutex, recovering it if a panic poisoned it (the table stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use koor_shared::types::Event;
    use serde_json::json;

    use super::*;

    fn event(id: i64, topic: &str, data: serde_json::Value) -> Arc<BusEvent> {
        Arc::new(BusEvent::new(Event {
            id,
            topic: topic.into(),
            data: data.into(),
            source: "koor".into(),
            created_at: String::new(),
        }))
    }

    #[tokio::test]
    async fn an_event_wakes_only_the_waiters_it_concerns() {
        let hub = Waiters::default();
        let inbox = hub.register(Interest::Inbox("a".into()));
        let other = hub.register(Interest::Inbox("b".into()));
        let key = hub.register(Interest::State("k".into()));
        let events = hub.register(Interest::Events {
            patterns: PatternSet::new(["api.*"]),
            limit: 1,
        });
        assert_eq!(hub.count(), 4);

        hub.dispatch(&event(1, "koor.message.sent", json!({"to": [{"id": "a"}]})));
        hub.dispatch(&event(2, "koor.state.deleted", json!({"key": "k"})));
        hub.dispatch(&event(3, "api.change", json!({})));
        hub.dispatch(&event(4, "api.other", json!({})));
        // Each wake was kept as a permit: these return at once.
        inbox.woken().await;
        key.woken().await;
        assert!(key.deleted());
        events.woken().await;
        let got: Vec<i64> = events.take_events().iter().map(|e| e.event.id).collect();
        assert_eq!(got, vec![3], "at most `limit` events are kept");
        // `b` was not addressed.
        assert!(other.woken().now_or_never().is_none());

        drop((inbox, other, key, events));
        assert_eq!(hub.count(), 0);
        assert!(lock(&hub.inner.table).inbox.is_empty());
    }
}
