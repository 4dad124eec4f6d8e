//! Holds: the one model behind locks, file reservations and task claims (COORDINATION.md, "One
//! model for every hold").
//!
//! A hold is owned by an instance, has a TTL and an `expires_at`, and carries a fence (the id of
//! the event that granted it, so fences strictly increase over the server's life, restarts
//! included). The truth is the `holds` table, written only through the store's one writer:
//!
//! - **Lazy expiry.** Every read filters on `expires_ms > now`, and every write that touches holds
//!   first ends the ones whose time is up ([`Holds::expire_due`]) in its own transaction, so an
//!   expired hold is free at once and its expiry event always comes before the event of whatever
//!   takes it over.
//! - **Sweep.** [`Holds::run_sweeper`] wakes at the next expiry (at least once a second) and ends
//!   due holds, so their `...expired` events go out even when nobody writes.
//! - **Keepalive.** A heartbeat renews every hold of its instance ([`Holds::keepalive`]).
//! - **Liveness.** A deregistration ends the instance's holds in the same transaction
//!   ([`Holds::release_holder`]).
//!
//! Each kind is a thin module over this one ([`locks`], [`tasks`]); what happens when a hold of a kind ends
//! (an event, a lock handed to its next waiter, a task put back to open) is [`Holds::end`]'s
//! dispatch on the kind.
//!
//! The in-memory index (hold id -> holder, expiry) only tells the sweeper when to wake and a
//! heartbeat whether there is anything to renew; it is rebuilt from the rows at startup and kept
//! in commit order by post-commit hooks.

pub mod locks;
pub mod reservations;
pub mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koor_shared::types::Holder;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::store::holds::{self as rows, Hold};
use crate::store::{Result, Store, StoreError, Tx};

/// Shortest TTL a hold may ask for.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// Longest TTL a hold may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The sweeper looks at least this often.
const SWEEP_AT_LEAST: Duration = Duration::from_secs(1);

/// Why a hold ended; `released` events carry it as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its holder let it go.
    Released,
    /// An operator force-released it.
    Forced,
    /// Its holder was deregistered.
    Deregistered,
    /// Its time ran out.
    Expired,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Released => "released",
            End::Forced => "forced",
            End::Deregistered => "deregistered",
            End::Expired => "expired",
        }
    }
}

/// What a new hold is on.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub kind: &'static str,
    pub project: String,
    pub resource: String,
    pub exclusive: bool,
    pub reason: String,
    pub ttl: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    /// hold id -> (holder id, expires_ms), as committed.
    index: Mutex<HashMap<String, (String, i64)>>,
    /// Wakes the sweeper when a hold with an earlier expiry appears.
    wake: Notify,
    locks: locks::Waiters,
    default_ttl: Duration,
}

/// Handle to the hold model; cheap to clone.
#[derive(Debug, Clone)]
pub struct Holds {
    inner: Arc<Inner>,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A duration from a JSON body field: `"90s"`, `"5m"`, `"1h"` (humantime), or a number of seconds.
pub fn parse_duration_value(name: &str, v: &Value) -> Result<Duration> {
    let bad = |why: String| StoreError::Invalid(format!("invalid {name}: {why}"));
    match v {
        Value::String(s) => {
            crate::config::parse_duration(s).map_err(|e| bad(format!("{s:?}: {e}")))
        }
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| bad(format!("{n} is not a number of seconds"))),
        other => Err(bad(format!(
            "{other} (use a duration such as \"90s\", \"5m\" or \"1h\")"
        ))),
    }
}

/// A duration field as the caller typed it, for messages: `"25h"` stays `25h` (not `1day 1h`), a
/// number of seconds gets its unit.
pub fn as_typed(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => format!("{n}s"),
        other => other.to_string(),
    }
}

/// A hold's TTL from an optional body field: the default when absent, else between [`MIN_TTL`]
/// and [`MAX_TTL`].
pub fn parse_ttl(v: Option<&Value>, default: Duration) -> Result<Duration> {
    let ttl = match v {
        None | Some(Value::Null) => return Ok(default.clamp(MIN_TTL, MAX_TTL)),
        Some(v) => parse_duration_value("ttl", v)?,
    };
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err(StoreError::Invalid(format!(
            "invalid ttl: {} is out of range (at least 5s, at most 24h)",
            v.map(as_typed).unwrap_or_default()
        )));
    }
    Ok(ttl)
}

/// `{"id","name"}` of a holder, as events and bodies show it.
pub fn holder_json(h: &Holder) -> Value {
    json!({"id": h.id, "name": h.name})
}

/// The registered instance `id` as the current transaction sees it: a 400 when unknown.
pub fn holder(tx: &Tx<'_>, id: &str) -> Result<Holder> {
    if id.trim().is_empty() {
        return Err(StoreError::Invalid("instance_id is required".into()));
    }
    match crate::store::instances::get(tx.conn(), id)? {
        Some(row) => Ok(Holder {
            id: row.id,
            name: row.name,
        }),
        None => Err(StoreError::Invalid(format!("instance not found: {id}"))),
    }
}

/// The 409 for a resource another instance holds.
pub fn held_by(what: &str, hold: &Hold) -> StoreError {
    held_until(what, &hold.holder, &hold.expires_at())
}

/// The 409 for a resource `holder` holds until `expires_at`.
pub fn held_until(what: &str, holder: &Holder, expires_at: &str) -> StoreError {
    StoreError::Conflict {
        message: format!(
            "{what} is held by {} ({}) until {expires_at}",
            holder.name, holder.id
        ),
        details: json!({"holder": holder_json(holder), "expires_at": expires_at}),
    }
}

impl Holds {
    /// Loads the expiry index from the stored holds. `default_ttl` is the server's `--stale-after`.
    pub fn load(store: &Store, default_ttl: Duration) -> Result<Holds> {
        let index = store
            .read_now(rows::index)?
            .into_iter()
            .map(|(id, holder, expires)| (id, (holder, expires)))
            .collect();
        Ok(Holds {
            inner: Arc::new(Inner {
                index: Mutex::new(index),
                default_ttl,
                ..Inner::default()
            }),
        })
    }

    /// The TTL of a hold that names none.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// Holds currently held (for metrics).
    pub fn count(&self) -> usize {
        self.inner.index.lock().map(|i| i.len()).unwrap_or(0)
    }

    /// Inserts a new hold for `holder` and emits its grant event (`topic`, with `data` built from
    /// the hold): the fence is that event's id.
    pub fn grant(
        &self,
        tx: &mut Tx<'_>,
        holder: &Holder,
        grant: Grant,
        topic: &str,
        data: impl FnOnce(&Hold) -> Value,
    ) -> Result<Hold> {
        let now = now_ms();
        let ttl_ms = millis(grant.ttl);
        let hold = Hold {
            id: uuid::Uuid::new_v4().to_string(),
            kind: grant.kind.to_owned(),
            project: grant.project,
            resource: grant.resource,
            holder: holder.clone(),
            fence: tx.next_event_id()?,
            ttl_ms,
            exclusive: grant.exclusive,
            reason: grant.reason,
            acquired_at: tx.now().to_owned(),
            expires_ms: now.saturating_add(ttl_ms),
        };
        rows::insert(tx.conn(), &hold)?;
        let event = tx.emit(topic, data(&hold), "koor")?;
        debug_assert_eq!(
            event.event.id, hold.fence,
            "a grant's fence is its event's id"
        );
        self.indexed(tx, &hold);
        Ok(hold)
    }

    /// Renews `hold` to now + `ttl` (same id and fence).
    pub fn renew(&self, tx: &mut Tx<'_>, hold: &Hold, ttl: Duration) -> Result<Hold> {
        let ttl_ms = millis(ttl);
        let renewed = Hold {
            ttl_ms,
            expires_ms: now_ms().saturating_add(ttl_ms),
            ..hold.clone()
        };
        if !rows::set_expiry(tx.conn(), &hold.id, renewed.ttl_ms, renewed.expires_ms)? {
            return Err(StoreError::NotFound(format!("hold not found: {}", hold.id)));
        }
        self.indexed(tx, &renewed);
        Ok(renewed)
    }

    /// Ends a hold: removes it and does what its kind does when a hold ends (events, hand-over).
    pub fn end(&self, tx: &mut Tx<'_>, hold: Hold, end: End) -> Result<()> {
        if !rows::delete(tx.conn(), &hold.id)? {
            return Ok(());
        }
        self.unindexed(tx, &hold.id);
        match hold.kind.as_str() {
            tasks::KIND => tasks::ended(self, tx, &hold, end),
            locks::KIND => locks::ended(self, tx, &hold, end),
            reservations::KIND => reservations::ended(tx, &hold, end),
            kind => {
                let what = if end == End::Expired {
                    "expired"
                } else {
                    "released"
                };
                tx.emit(
                    &format!("koor.{kind}.{what}"),
                    json!({"id": hold.id, "project": hold.project, "resource": hold.resource,
                           "holder": holder_json(&hold.holder), "fence": hold.fence,
                           "reason": end.as_str()}),
                    "koor",
                )?;
                Ok(())
            }
        }
    }

    /// Ends every hold whose time is up, oldest expiry first. Every write that touches holds calls
    /// this first, so each expiry is published once and before anything takes the hold over.
    pub fn expire_due(&self, tx: &mut Tx<'_>) -> Result<usize> {
        let due = rows::due(tx.conn(), now_ms())?;
        let n = due.len();
        for hold in due {
            self.end(tx, hold, End::Expired)?;
        }
        Ok(n)
    }

    /// Ends every hold of `holder` (in a deregistration's transaction).
    pub fn release_holder(&self, tx: &mut Tx<'_>, holder: &str) -> Result<usize> {
        self.expire_due(tx)?;
        let held = rows::of_holder(tx.conn(), holder)?;
        let n = held.len();
        for hold in held {
            self.end(tx, hold, End::Deregistered)?;
        }
        Ok(n)
    }

    /// Whether `holder` has any hold (from the index; no SQLite).
    pub fn has_holds(&self, holder: &str) -> bool {
        self.inner
            .index
            .lock()
            .is_ok_and(|i| i.values().any(|(h, _)| h == holder))
    }

    /// A heartbeat of `holder`: renews all its live holds to now + their TTL. Costs no write when
    /// it holds nothing. Returns how many were renewed.
    pub async fn keepalive(&self, store: &Store, holder: &str) -> Result<usize> {
        if !self.has_holds(holder) {
            return Ok(0);
        }
        let holds = self.clone();
        let holder = holder.to_owned();
        store
            .write(move |tx| {
                holds.expire_due(tx)?;
                let renewed = rows::renew_holder(tx.conn(), &holder, now_ms())?;
                let n = renewed.len();
                let inner = holds.inner.clone();
                tx.after_commit(move || {
                    if let Ok(mut index) = inner.index.lock() {
                        for (id, expires) in renewed {
                            if let Some(entry) = index.get_mut(&id) {
                                entry.1 = expires;
                            }
                        }
                    }
                });
                Ok(n)
            })
            .await
    }

    /// Ends every due hold now (the sweep's write). Returns how many ended.
    pub async fn sweep(&self, store: &Store) -> Result<usize> {
        let holds = self.clone();
        store.write(move |tx| holds.expire_due(tx)).await
    }

    /// How long until the earliest hold expires, at most a second.
    fn until_next_due(&self) -> Duration {
        let next = self
            .inner
            .index
            .lock()
            .ok()
            .and_then(|i| i.values().map(|(_, e)| *e).min());
        match next {
            Some(at) => {
                Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(SWEEP_AT_LEAST)
            }
            None => SWEEP_AT_LEAST,
        }
    }

    fn any_due(&self) -> bool {
        let now = now_ms();
        self.inner
            .index
            .lock()
            .is_ok_and(|i| i.values().any(|(_, e)| *e <= now))
    }

    /// Ends due holds as their time comes (and looks at least once a second) until `stopping`.
    pub async fn run_sweeper(self, store: Store, stopping: impl Future<Output = ()>) {
        let mut stopping = std::pin::pin!(stopping);
        loop {
            let wait = self.until_next_due();
            tokio::select! {
                () = &mut stopping => return,
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => continue,
            }
            if self.any_due()
                && let Err(e) = self.sweep(&store).await
            {
                tracing::warn!(error = %e, "hold sweep failed");
            }
        }
    }

    /// After commit: `hold` is in the index with its expiry; wakes the sweeper if it is due sooner.
    fn indexed(&self, tx: &mut Tx<'_>, hold: &Hold) {
        let inner = self.inner.clone();
        let (id, holder, expires) = (hold.id.clone(), hold.holder.id.clone(), hold.expires_ms);
        tx.after_commit(move || {
            if let Ok(mut index) = inner.index.lock() {
                index.insert(id, (holder, expires));
            }
            inner.wake.notify_one();
        });
    }

    fn unindexed(&self, tx: &mut Tx<'_>, id: &str) {
        let inner = self.inner.clone();
        let id = id.to_owned();
        tx.after_commit(move || {
            if let Ok(mut index) = inner.index.lock() {
                index.remove(&id);
            }
        });
    }

    pub fn lock_waiters(&self) -> &locks::Waiters {
        &self.inner.locks
    }
}
