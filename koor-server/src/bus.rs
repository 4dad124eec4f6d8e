//! The in-process event bus: committed events fan out to WebSocket subscribers.
//!
//! Publishing never waits: events go into a bounded broadcast ring. A subscriber that falls further
//! behind than the ring holds learns so from its receiver (`Lagged`) and is closed with a resume
//! point instead of being silently starved.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use koor_shared::types::Event;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it is closed.
pub const DEFAULT_CAPACITY: usize = 4096;

/// An event with its JSON text, serialized once for every subscriber (and not at all when no
/// subscriber sends it anywhere).
#[derive(Debug)]
pub struct BusEvent {
    pub event: Event,
    json: std::sync::OnceLock<String>,
}

impl BusEvent {
    pub fn new(event: Event) -> Self {
        Self {
            event,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event as JSON text, as subscribers receive it.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).unwrap_or_default())
    }
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Arc<BusEvent>>,
    last_id: AtomicI64,
    subscribers: AtomicI64,
}

/// Handle to the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            inner: Arc::new(Inner {
                tx,
                last_id: AtomicI64::new(0),
                subscribers: AtomicI64::new(0),
            }),
        }
    }

    /// Called by the writer after a commit, in id order.
    pub fn publish(&self, event: Arc<BusEvent>) {
        self.inner
            .last_id
            .fetch_max(event.event.id, Ordering::SeqCst);
        let _ = self.inner.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.inner.tx.subscribe()
    }

    /// Id of the newest committed event.
    pub fn last_id(&self) -> i64 {
        self.inner.last_id.load(Ordering::SeqCst)
    }

    pub(crate) fn set_last_id(&self, id: i64) {
        self.inner.last_id.fetch_max(id, Ordering::SeqCst);
    }

    /// Counts an open WebSocket subscriber for as long as the guard lives.
    pub fn subscriber_guard(&self) -> SubscriberGuard {
        self.inner.subscribers.fetch_add(1, Ordering::SeqCst);
        SubscriberGuard(self.inner.clone())
    }

    pub fn subscriber_count(&self) -> i64 {
        self.inner.subscribers.load(Ordering::SeqCst)
    }
}

/// See [`Bus::subscriber_guard`].
pub struct SubscriberGuard(Arc<Inner>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}
