//! The agent registry: registration, liveness and deregistration.
//!
//! All instances live in memory (a few hundred at most), so listings and lookups never touch
//! SQLite. Every change of substance (register, status, intent, capabilities, deregister) goes
//! through the writer and updates the memory copy in commit order. Heartbeats from an instance
//! that is already active only touch memory and are flushed to SQLite in one batch every
//! [`FLUSH_EVERY`] (and at shutdown), so a hundred agents heartbeating every few seconds cost the
//! writer one small transaction per interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use koor_shared::time::{format_rfc3339, parse_rfc3339};
use koor_shared::types::{Instance, RegisterRequest, Registered};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::store::instances::{self as rows, Row};
use crate::store::{Result, Store, StoreError, Tx};

/// How often batched heartbeats are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

pub const PENDING: &str = "pending";
pub const ACTIVE: &str = "active";
pub const STALE: &str = "stale";

/// Filters of `GET /api/instances`; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub name: Option<String>,
    pub workspace: Option<String>,
    pub stack: Option<String>,
    pub capability: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    row: Row,
    seen: DateTime<Utc>,
    /// Registration order (listings keep it even within one millisecond).
    seq: u64,
}

#[derive(Debug)]
struct Inner {
    entries: RwLock<HashMap<String, Entry>>,
    /// Heartbeats not yet written: id -> time.
    dirty: Mutex<HashMap<String, DateTime<Utc>>>,
    stale_after: Duration,
    next_seq: std::sync::atomic::AtomicU64,
}

/// Handle to the registry; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

pub fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("instance not found: {id}"))
}

impl Registry {
    /// Loads every stored instance.
    pub fn load(store: &Store, stale_after: Duration) -> Result<Registry> {
        let loaded = store.read_now(rows::load_all)?;
        let count = loaded.len() as u64;
        // No agent could heartbeat while the server was down: each one that was not already
        // stale gets one full stale-after period from startup (its contact counts from now).
        let started = Utc::now();
        let entries = loaded
            .into_iter()
            .enumerate()
            .map(|(seq, row)| {
                let stored = parse_rfc3339(&row.last_seen).unwrap_or(started);
                let seen = if row.status == STALE {
                    stored
                } else {
                    stored.max(started)
                };
                let seq = seq as u64;
                (row.id.clone(), Entry { row, seen, seq })
            })
            .collect();
        Ok(Registry {
            inner: Arc::new(Inner {
                entries: RwLock::new(entries),
                dirty: Mutex::new(HashMap::new()),
                stale_after,
                next_seq: std::sync::atomic::AtomicU64::new(count),
            }),
        })
    }

    pub fn stale_after(&self) -> Duration {
        self.inner.stale_after
    }

    /// How often the liveness monitor looks: often enough for short thresholds in tests,
    /// at most every 30 s.
    pub fn check_interval(&self) -> Duration {
        (self.inner.stale_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    fn to_instance(&self, e: &Entry, now: DateTime<Utc>) -> Instance {
        Instance {
            id: e.row.id.clone(),
            name: e.row.name.clone(),
            workspace: e.row.workspace.clone(),
            intent: e.row.intent.clone(),
            stack: e.row.stack.clone(),
            capabilities: e.row.capabilities.clone(),
            status: self.effective_status(e, now).to_owned(),
            registered_at: e.row.registered_at.clone(),
            last_seen: format_rfc3339(e.seen),
        }
    }

    /// The stored status, or `stale` as soon as the threshold has passed (before the monitor has
    /// marked it), so a listing is never out of date.
    fn effective_status<'a>(&self, e: &'a Entry, now: DateTime<Utc>) -> &'a str {
        if e.row.status != STALE && self.is_overdue(e.seen, now) {
            STALE
        } else {
            &e.row.status
        }
    }

    fn is_overdue(&self, seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - seen)
            .to_std()
            .is_ok_and(|age| age > self.inner.stale_after)
    }

    pub fn list(&self, filter: &Filter) -> Vec<Instance> {
        let now = Utc::now();
        let Ok(entries) = self.inner.entries.read() else {
            return Vec::new();
        };
        let want =
            |f: &Option<String>, v: &str| f.as_deref().is_none_or(|f| f.is_empty() || f == v);
        let mut matching: Vec<&Entry> = entries.values().collect();
        matching.sort_by_key(|e| e.seq);
        matching
            .into_iter()
            .map(|e| self.to_instance(e, now))
            .filter(|i| {
                want(&filter.name, &i.name)
                    && want(&filter.workspace, &i.workspace)
                    && want(&filter.stack, &i.stack)
                    && want(&filter.status, &i.status)
                    && filter
                        .capability
                        .as_deref()
                        .is_none_or(|c| c.is_empty() || i.capabilities.iter().any(|have| have == c))
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Instance> {
        let entries = self.inner.entries.read().map_err(|_| StoreError::Closed)?;
        entries
            .get(id)
            .map(|e| self.to_instance(e, Utc::now()))
            .ok_or_else(|| not_found(id))
    }

    /// Whether `token` is the one `id` was registered with (constant time); `None` when `id` is
    /// not registered.
    pub fn token_matches(&self, id: &str, token: &str) -> Option<bool> {
        use subtle::ConstantTimeEq;
        let entries = self.inner.entries.read().ok()?;
        let entry = entries.get(id)?;
        let got = format!("{:x}", Sha256::digest(token.as_bytes()));
        Some(got.as_bytes().ct_eq(entry.row.token_hash.as_bytes()).into())
    }

    /// Counts: (all, stale).
    pub fn counts(&self) -> (i64, i64) {
        let now = Utc::now();
        let Ok(entries) = self.inner.entries.read() else {
            return (0, 0);
        };
        let stale = entries
            .values()
            .filter(|e| self.effective_status(e, now) == STALE)
            .count();
        (entries.len() as i64, stale as i64)
    }

    pub async fn register(&self, store: &Store, req: RegisterRequest) -> Result<Registered> {
        let name = req.name.trim().to_owned();
        if name.is_empty() {
            return Err(StoreError::Invalid("name is required".into()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let token = format!("koor_{}", uuid::Uuid::new_v4().simple());
        let token_hash = format!("{:x}", Sha256::digest(token.as_bytes()));
        let capabilities = clean_capabilities(req.capabilities);
        let reg = self.clone();
        let instance = store
            .write(move |tx| {
                let now = tx.now().to_owned();
                let row = Row {
                    id,
                    name,
                    workspace: req.workspace,
                    intent: req.intent,
                    stack: req.stack,
                    capabilities,
                    status: PENDING.into(),
                    token_hash,
                    registered_at: now.clone(),
                    last_seen: now,
                };
                rows::upsert(tx.conn(), &row)?;
                emit(tx, "koor.instance.registered", &row, json!({}))?;
                Ok(reg.commit_row(tx, row))
            })
            .await?;
        Ok(Registered { instance, token })
    }

    /// Puts `row` into memory after commit and returns it as an instance.
    fn commit_row(&self, tx: &mut Tx<'_>, row: Row) -> Instance {
        let seen = parse_rfc3339(&row.last_seen).unwrap_or_else(Utc::now);
        let entry = Entry { row, seen, seq: 0 };
        let instance = self.to_instance(&entry, seen);
        let inner = self.inner.clone();
        tx.after_commit(move || {
            if let Ok(mut entries) = inner.entries.write() {
                let seq = match entries.get(&entry.row.id) {
                    Some(old) => old.seq,
                    None => inner
                        .next_seq
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
                entries.insert(entry.row.id.clone(), Entry { seq, ..entry });
            }
        });
        instance
    }

    /// Last contact: the newer of memory (batched heartbeats) and the stored row.
    fn seen(&self, id: &str, row: &Row) -> DateTime<Utc> {
        let stored = parse_rfc3339(&row.last_seen).unwrap_or_else(Utc::now);
        let in_memory = self
            .inner
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(id).map(|e| e.seen));
        in_memory.map_or(stored, |m| m.max(stored))
    }

    fn entry(&self, id: &str) -> Result<Entry> {
        let entries = self.inner.entries.read().map_err(|_| StoreError::Closed)?;
        entries.get(id).cloned().ok_or_else(|| not_found(id))
    }

    /// Marks contact. An active instance only has its time refreshed (batched); a pending or
    /// stale one becomes active (written now, with a `koor.instance.updated` event).
    pub async fn heartbeat(&self, store: &Store, id: &str) -> Result<Instance> {
        let now = Utc::now();
        {
            let mut entries = self.inner.entries.write().map_err(|_| StoreError::Closed)?;
            let e = entries.get_mut(id).ok_or_else(|| not_found(id))?;
            if e.row.status == ACTIVE && !self.is_overdue(e.seen, now) {
                e.seen = now;
                if let Ok(mut dirty) = self.inner.dirty.lock() {
                    dirty.insert(id.to_owned(), now);
                }
                return Ok(self.to_instance(e, now));
            }
        }
        self.update(store, id, |row| row.status = ACTIVE.into())
            .await
    }

    pub async fn activate(&self, store: &Store, id: &str) -> Result<Instance> {
        self.update(store, id, |row| row.status = ACTIVE.into())
            .await
    }

    /// Sets the intent (the MCP `set_intent` tool): also a heartbeat that activates.
    pub async fn set_intent(&self, store: &Store, id: &str, intent: String) -> Result<Instance> {
        self.update(store, id, move |row| {
            row.intent = intent;
            row.status = ACTIVE.into();
        })
        .await
    }

    pub async fn set_capabilities(
        &self,
        store: &Store,
        id: &str,
        caps: Vec<String>,
    ) -> Result<Instance> {
        let caps = clean_capabilities(caps);
        self.update(store, id, move |row| {
            row.capabilities = caps;
            if row.status == STALE {
                row.status = ACTIVE.into();
            }
        })
        .await
    }

    /// Applies `change` to the row, refreshes its contact time, writes it and publishes
    /// `koor.instance.updated`.
    async fn update(
        &self,
        store: &Store,
        id: &str,
        change: impl FnOnce(&mut Row) + Send + 'static,
    ) -> Result<Instance> {
        self.entry(id)?;
        let reg = self.clone();
        let id = id.to_owned();
        store
            .write(move |tx| {
                // Read the row inside the writer's transaction: earlier jobs of the same batch
                // (a deregister, another update) are visible there, not yet in memory.
                let mut row = rows::get(tx.conn(), &id)?.ok_or_else(|| not_found(&id))?;
                let seen = reg.seen(&id, &row);
                let mut before = row.clone();
                // An overdue instance the monitor has not marked yet counts as stale.
                let entry = Entry {
                    row: row.clone(),
                    seen,
                    seq: 0,
                };
                before.status = reg.effective_status(&entry, Utc::now()).to_owned();
                change(&mut row);
                row.last_seen = tx.now().to_owned();
                rows::upsert(tx.conn(), &row)?;
                let mut changed = Vec::new();
                if row.status != before.status {
                    changed.push("status");
                }
                if row.intent != before.intent {
                    changed.push("intent");
                }
                if row.capabilities != before.capabilities {
                    changed.push("capabilities");
                }
                if !changed.is_empty() {
                    emit(
                        tx,
                        "koor.instance.updated",
                        &row,
                        json!({"changed": changed, "previous_status": before.status}),
                    )?;
                }
                if let Ok(mut dirty) = reg.inner.dirty.lock() {
                    dirty.remove(&row.id);
                }
                Ok(reg.commit_row(tx, row))
            })
            .await
    }

    /// Deregisters `id`; `release` runs in the same transaction after the row is gone (it ends the
    /// instance's holds), so a dead agent's work is freed atomically with its departure.
    pub async fn deregister(
        &self,
        store: &Store,
        id: &str,
        release: impl FnOnce(&mut Tx<'_>, &str) -> Result<()> + Send + 'static,
    ) -> Result<Instance> {
        self.entry(id)?;
        let reg = self.clone();
        let id = id.to_owned();
        store
            .write(move |tx| {
                let row = rows::get(tx.conn(), &id)?.ok_or_else(|| not_found(&id))?;
                let entry = Entry {
                    seen: reg.seen(&id, &row),
                    row,
                    seq: 0,
                };
                if !rows::delete(tx.conn(), &id)? {
                    return Err(not_found(&id));
                }
                release(tx, &id)?;
                let mut gone = reg.to_instance(&entry, Utc::now());
                emit(
                    tx,
                    "koor.instance.deregistered",
                    &entry.row,
                    json!({"status": gone.status}),
                )?;
                gone.status = "deregistered".into();
                let inner = reg.inner.clone();
                tx.after_commit(move || {
                    if let Ok(mut entries) = inner.entries.write() {
                        entries.remove(&id);
                    }
                    if let Ok(mut dirty) = inner.dirty.lock() {
                        dirty.remove(&id);
                    }
                });
                Ok(gone)
            })
            .await
    }

    /// Marks every overdue instance stale (persisted, with a `koor.instance.stale` event each)
    /// and returns the ones that just became stale.
    pub async fn check_liveness(&self, store: &Store) -> Result<Vec<Instance>> {
        let now = Utc::now();
        let overdue: Vec<String> = {
            let entries = self.inner.entries.read().map_err(|_| StoreError::Closed)?;
            entries
                .values()
                .filter(|e| e.row.status != STALE && self.is_overdue(e.seen, now))
                .map(|e| e.row.id.clone())
                .collect()
        };
        if overdue.is_empty() {
            return Ok(Vec::new());
        }
        let reg = self.clone();
        store
            .write(move |tx| {
                let now = Utc::now();
                let mut marked = Vec::new();
                for id in overdue {
                    // Deregistered or changed by an earlier job of this batch: read it here.
                    let Some(row) = rows::get(tx.conn(), &id)? else {
                        continue;
                    };
                    // A heartbeat may have arrived since the scan.
                    let mut entry = Entry {
                        seen: reg.seen(&id, &row),
                        row,
                        seq: 0,
                    };
                    if entry.row.status == STALE || !reg.is_overdue(entry.seen, now) {
                        continue;
                    }
                    entry.row.status = STALE.into();
                    entry.row.last_seen = format_rfc3339(entry.seen);
                    rows::upsert(tx.conn(), &entry.row)?;
                    emit(
                        tx,
                        "koor.instance.stale",
                        &entry.row,
                        json!({"last_seen": entry.row.last_seen}),
                    )?;
                    marked.push(reg.commit_row(tx, entry.row));
                }
                Ok(marked)
            })
            .await
    }

    /// Writes batched heartbeat times.
    pub async fn flush(&self, store: &Store) -> Result<()> {
        let pending: Vec<(String, String)> = match self.inner.dirty.lock() {
            Ok(mut dirty) => dirty
                .drain()
                .map(|(id, t)| (id, format_rfc3339(t)))
                .collect(),
            Err(_) => return Ok(()),
        };
        if pending.is_empty() {
            return Ok(());
        }
        store
            .write(move |tx| rows::touch_many(tx.conn(), &pending))
            .await
    }
}

fn emit(tx: &mut Tx<'_>, topic: &str, row: &Row, extra: serde_json::Value) -> Result<()> {
    let mut data = json!({"id": row.id, "name": row.name, "status": row.status});
    if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    tx.emit(topic, data, "koor")?;
    Ok(())
}

fn clean_capabilities(caps: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in caps {
        let c = c.trim().to_owned();
        if !c.is_empty() && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;

    #[tokio::test]
    async fn updates_committed_in_the_same_batch_as_a_deregister_do_not_bring_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Bus::default()).expect("store");
        let reg = Registry::load(&store, Duration::from_secs(60)).expect("registry");
        let req = RegisterRequest {
            name: "racer".into(),
            ..RegisterRequest::default()
        };
        let id = reg
            .register(&store, req)
            .await
            .expect("register")
            .instance
            .id;

        // A slow job holds the writer, so the two that queue behind it share one batch.
        let sleep = |ms| tokio::time::sleep(Duration::from_millis(ms));
        let (held, gone, updated) = tokio::join!(
            store.write(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            }),
            async {
                sleep(50).await;
                reg.deregister(&store, &id, |_, _| Ok(())).await
            },
            async {
                sleep(150).await;
                reg.set_capabilities(&store, &id, vec!["late".into()]).await
            },
        );
        held.expect("slow job");
        gone.expect("deregistered");
        assert!(
            matches!(updated, Err(StoreError::NotFound(_))),
            "the update sees the deregistration: {updated:?}"
        );
        assert!(reg.get(&id).is_err(), "not back in memory");
        let stored = store.read_now(rows::load_all).expect("rows");
        assert!(stored.is_empty(), "not back in the database: {stored:?}");
        store.close().await;
    }
}
