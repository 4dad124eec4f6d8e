//! Storage: one SQLite file in WAL mode, one writer thread with group commit, a pool of readers.
//!
//! Every mutation is a closure sent to the writer thread. The writer takes every job waiting in its
//! queue (up to [`MAX_BATCH`]), runs each inside its own savepoint of one transaction and commits
//! once, so many concurrent writes share one commit. A job that fails rolls back to its savepoint
//! without disturbing the others. Only after the commit succeeds are the batch's events published on
//! the bus (in id order) and the callers answered: nothing is acknowledged before it is durable, and
//! subscribers never see an event whose change was not committed.
//!
//! Reads run on the blocking thread pool with read-only connections, which WAL lets proceed while
//! the writer works. Nothing here runs SQLite on an async worker thread.

pub mod audit;
pub mod backup;
pub mod cache;
pub mod events;
pub mod holds;
pub mod instances;
mod lock;
pub mod messages;
pub mod rules;
mod schema;
pub mod specs;
pub mod state;
pub mod tasks;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use koor_shared::time::now_rfc3339;
use koor_shared::types::RawJson;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::bus::{Bus, BusEvent};
pub use cache::{Current, StateCache};
pub use lock::DirLock;

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 512;
/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 16;
/// How long SQLite waits on a lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors at the storage boundary. The API maps each to one HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A conditional write's precondition does not hold (412).
    #[error("{message}")]
    Precondition {
        message: String,
        current_version: Option<i64>,
    },
    /// Someone else holds it, or the caller is not its holder (409); `details` are extra fields
    /// of the error body (`holder`, `expires_at`, `conflicts`).
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// The request is well-formed but not acceptable (400).
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed (500).
    #[error("database error: {0}")]
    Sqlite(String),
    /// The disk (or the database's size cap) is full (507). Nothing of the failed write was
    /// kept; reads go on, and writes succeed again once space is freed.
    #[error(
        "the disk holding the database is full: this write was not stored (reads still work; writes resume once space is freed)"
    )]
    Full,
    /// The store is shutting down (503).
    #[error("the server is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full;
        }
        StoreError::Sqlite(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("failed to open database {path}: {reason}")]
    Database { path: PathBuf, reason: String },
    #[error(
        "another koor-server is already using data dir {dir}{holder}: only one server may use a data directory at a time (stop it, or start this one with another --data-dir)"
    )]
    Locked { dir: PathBuf, holder: String },
}

/// The context a write job runs in: the writer's connection inside the batch transaction, and
/// the events the job emits (published after commit).
pub struct Tx<'a> {
    conn: &'a Connection,
    cache: &'a Arc<StateCache>,
    events: &'a mut Vec<Arc<BusEvent>>,
    hooks: &'a mut Vec<Hook>,
    /// State keys this batch has written so far, newest last, with what they hold now (`None`:
    /// deleted): the cache only learns of them after the commit.
    written: &'a mut Vec<(String, Option<(i64, koor_shared::ContentHash)>)>,
    now: &'a str,
}

/// Work to do on the writer thread once the batch has committed (e.g. update an in-memory cache
/// in commit order).
pub type Hook = Box<dyn FnOnce() + Send>;

impl Tx<'_> {
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// The state cache, for post-commit updates.
    pub fn cache(&self) -> Arc<StateCache> {
        self.cache.clone()
    }

    /// The batch's timestamp: every row its jobs write shares it (they commit together).
    pub fn now(&self) -> &str {
        self.now
    }

    /// The id the next [`Tx::emit`] of this job will get: ids come from one writer in commit
    /// order and are never reused, so a grant can carry its own event's id as its fence.
    pub fn next_event_id(&self) -> Result<i64> {
        Ok(events::last_id(self.conn)? + 1)
    }

    /// Stores an event in history; it is published on the bus once the batch commits.
    pub fn emit(
        &mut self,
        topic: &str,
        data: impl Into<RawJson>,
        source: &str,
    ) -> Result<Arc<BusEvent>> {
        let event = events::insert(self.conn, topic, data.into(), source, self.now)?;
        let event = Arc::new(BusEvent::new(event));
        self.events.push(event.clone());
        Ok(event)
    }

    /// What a state key holds as far as this batch knows: a write earlier in the batch, else the
    /// cache (which every earlier commit has updated), else `None` (ask SQLite).
    pub fn known_state(&self, key: &str) -> Option<Option<(i64, koor_shared::ContentHash)>> {
        if let Some((_, now)) = self.written.iter().rev().find(|(k, _)| k == key) {
            return Some(now.clone());
        }
        self.cache.get(key).map(|c| {
            Some((
                c.version,
                koor_shared::ContentHash::from_hex(c.hash().to_owned()),
            ))
        })
    }

    /// Notes a state write of this batch (see [`Tx::known_state`]).
    pub fn wrote_state(&mut self, key: &str, now: Option<(i64, koor_shared::ContentHash)>) {
        self.written.push((key.to_owned(), now));
    }

    /// Runs `hook` after the batch commits, in commit order, before its events are published.
    /// Dropped if this job or the batch fails.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(hook));
    }
}

trait WriteJob: Send {
    fn run(&mut self, tx: &mut Tx<'_>);
    /// Whether the job failed because the disk is full.
    fn failed_full(&self) -> bool;
    /// Why the whole batch must be rolled back: a job without a savepoint failed after it had
    /// changed rows.
    fn poisoned(&self) -> Option<StoreError>;
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    /// Run inside a savepoint of its own (see [`Store::write`] and [`Store::write_no_savepoint`]).
    savepoint: bool,
    poisoned: bool,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&mut Tx<'_>) -> Result<T> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) {
        let Some(work) = self.work.take() else { return };
        let (mark, hook_mark, written_mark) = (tx.events.len(), tx.hooks.len(), tx.written.len());
        if !self.savepoint {
            let changes = tx.conn.total_changes();
            let result = work(tx);
            if result.is_err() {
                tx.events.truncate(mark);
                tx.hooks.truncate(hook_mark);
                tx.written.truncate(written_mark);
                self.poisoned = tx.conn.total_changes() != changes;
            }
            self.result = Some(result);
            return;
        }
        let exec = |sql: &str| tx_exec(tx.conn, sql);
        let result = exec("SAVEPOINT job")
            .map_err(StoreError::from)
            .and_then(|()| work(tx));
        let ended = match &result {
            Ok(_) => tx_exec(tx.conn, "RELEASE job"),
            Err(_) => {
                tx.events.truncate(mark);
                tx.hooks.truncate(hook_mark);
                tx.written.truncate(written_mark);
                tx_exec(tx.conn, "ROLLBACK TO job").and_then(|()| tx_exec(tx.conn, "RELEASE job"))
            }
        };
        self.result = Some(match (ended, result) {
            (Ok(()), result) => result,
            // The job's own error says more than the failed rollback after it (SQLite may have
            // rolled the whole transaction back already, e.g. on a full disk).
            (Err(_), Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e.into()),
        });
    }

    fn failed_full(&self) -> bool {
        matches!(self.result, Some(Err(StoreError::Full)))
    }

    fn poisoned(&self) -> Option<StoreError> {
        match &self.result {
            Some(Err(e)) if self.poisoned => Some(match e {
                StoreError::Sqlite(_) | StoreError::Full => e.clone(),
                other => StoreError::Sqlite(format!(
                    "a write failed after it had changed rows ({other}); its batch was rolled back"
                )),
            }),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let TypedJob { result, reply, .. } = *self;
        let outcome = commit.and_then(|()| result.unwrap_or(Err(StoreError::Closed)));
        let _ = reply.send(outcome);
    }
}

enum Message {
    Write(Box<dyn WriteJob>),
    Close(oneshot::Sender<()>),
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Message>>>,
    readers: Mutex<Vec<Connection>>,
    cache: Arc<StateCache>,
    checkpoint_stop: Mutex<Option<mpsc::Sender<()>>>,
    stats: Arc<WriterStats>,
    bus: Bus,
    _lock: DirLock,
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Locks `data_dir`, opens (or creates) `data.db` in it, migrates the schema and starts the
    /// writer thread.
    pub fn open(data_dir: &Path, bus: Bus) -> Result<Store, OpenError> {
        Self::open_with(data_dir, bus, cache::DEFAULT_BUDGET, None)
    }

    /// Like [`Store::open`], with a state cache of `cache_budget` bytes and, optionally, the
    /// database capped at `max_pages` pages (SQLite's `max_page_count`): a test knob that makes
    /// "the disk" fill up without a small filesystem.
    pub fn open_with(
        data_dir: &Path,
        bus: Bus,
        cache_budget: usize,
        max_pages: Option<u64>,
    ) -> Result<Store, OpenError> {
        let path = data_dir.join("data.db");
        let db_err = |reason: String| OpenError::Database {
            path: path.clone(),
            reason,
        };
        match std::fs::metadata(data_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(db_err(format!("{} is not a directory", data_dir.display()))),
            Err(e) => return Err(db_err(format!("data dir {}: {e}", data_dir.display()))),
        }
        let lock = DirLock::acquire(data_dir).map_err(|e| match e {
            lock::LockError::Held { holder } => OpenError::Locked {
                dir: data_dir.to_owned(),
                holder,
            },
            lock::LockError::Io(e) => db_err(format!(
                "data dir {} is not writable: {e}",
                data_dir.display()
            )),
        })?;
        let mut conn = Connection::open(&path).map_err(|e| db_err(e.to_string()))?;
        configure_writer(&conn).map_err(|e| db_err(e.to_string()))?;
        if let Some(pages) = max_pages {
            set_page_cap(&conn, pages).map_err(|e| db_err(e.to_string()))?;
        }
        schema::migrate(&mut conn).map_err(db_err)?;
        let last_id = events::last_id(&conn).map_err(|e| db_err(e.to_string()))?;
        bus.set_last_id(last_id);

        let (tx, rx) = mpsc::channel();
        let writer_bus = bus.clone();
        let cache = Arc::new(StateCache::new(cache_budget));
        let writer_cache = cache.clone();
        let stats = Arc::new(WriterStats::default());
        let writer_stats = stats.clone();
        thread::Builder::new()
            .name("koor-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_bus, writer_cache, &writer_stats))
            .map_err(|e| db_err(format!("cannot start the writer thread: {e}")))?;
        let (checkpoint_stop, checkpoint_rx) = mpsc::channel();
        let checkpoint_path = path.clone();
        thread::Builder::new()
            .name("koor-checkpoint".into())
            .spawn(move || checkpointer(checkpoint_path, checkpoint_rx))
            .map_err(|e| db_err(format!("cannot start the checkpoint thread: {e}")))?;

        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Some(tx)),
                readers: Mutex::new(Vec::new()),
                cache,
                checkpoint_stop: Mutex::new(Some(checkpoint_stop)),
                stats,
                bus,
                _lock: lock,
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The writer's batch sizes and commit latencies, for the metrics.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// The current value of a state key: from the cache, else from SQLite (then cached).
    pub async fn current_state(&self, key: &str) -> Result<Arc<Current>> {
        let cache = &self.inner.cache;
        if let Some(hit) = cache.get(key) {
            return Ok(hit);
        }
        let generation = cache.generation();
        let k = key.to_owned();
        let stored = self.read(move |c| state::get(c, &k, None)).await?;
        let current = Current::new(
            stored.version,
            &stored.hash,
            &stored.content_type,
            stored.value.into(),
        );
        Ok(cache.fill(key, current, generation))
    }

    /// Runs `work` on the writer thread inside the next group commit. Answers after the commit.
    ///
    /// The job runs inside a savepoint of its own: when it fails, whatever it changed is undone
    /// and the other jobs of the batch commit as if it had never run.
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Like [`Store::write`], without the savepoint, which costs a copy of every page the job
    /// touches first: for the hot writes that check everything before they change a row (a
    /// state PUT, a publish), so that an error after a change can only come from SQLite itself.
    /// Should such a job fail after changing rows anyway, the whole batch is rolled back and
    /// every job in it answers the error: nothing half-done is ever committed.
    pub async fn write_no_savepoint<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.submit(work, false).await
    }

    async fn submit<T, F>(&self, work: F, savepoint: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            result: None,
            reply,
            savepoint,
            poisoned: false,
        };
        {
            let writer = self.inner.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = writer.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Message::Write(Box::new(job)))
                .map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Changes the test cap on the database's size (see [`Store::open_with`]); raising it is
    /// how tests "free space".
    pub async fn set_page_cap(&self, pages: u64) -> Result<()> {
        self.write(move |tx| Ok(set_page_cap(tx.conn(), pages)?))
            .await
    }

    /// Runs `work` with a read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.lock().ok().and_then(|mut pool| pool.pop()) {
                Some(conn) => conn,
                None => open_reader(&inner.path)?,
            };
            let result = work(&conn);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < MAX_IDLE_READERS
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on a read-only connection on the current thread. For startup only.
    pub fn read_now<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = open_reader(&self.inner.path)?;
        work(&conn)
    }

    /// Stops the writer after the jobs already queued, and closes every connection. Later writes
    /// answer [`StoreError::Closed`].
    pub async fn close(&self) {
        if let Ok(mut stop) = self.inner.checkpoint_stop.lock() {
            stop.take();
        }
        let sender = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(sender) = sender {
            let (done, wait) = oneshot::channel();
            if sender.send(Message::Close(done)).is_ok() {
                let _ = wait.await;
            }
        }
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.clear();
        }
    }
}

/// Runs a statement without arguments through the statement cache (no re-parsing per job).
fn tx_exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn set_page_cap(conn: &Connection, pages: u64) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// Bytes the WAL file is cut back to after a checkpoint: it cannot keep a burst's size (or the
/// space a failed write took on a full disk) for ever.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Settings every connection of ours shares.
///
/// The query planner stability guarantee keeps a cached statement's plan whatever values are
/// bound: without it SQLite marks every `column = ?` parameter as one a new value could re-plan,
/// and since the statement cache clears the bindings of every statement it takes back, each
/// cached statement was parsed and planned again on every use.
fn configure_common(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    configure_common(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives the process being killed (the WAL is in the OS cache);
    // only a power loss may drop the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (see `checkpointer`); this is only a backstop in case
    // that thread falls far behind.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    conn.query_row(
        &format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}"),
        [],
        |_| Ok(()),
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the WAL back into the database file off the writer thread, so commits never wait for
/// it. PASSIVE checkpoints never block the writer or readers. Ends when `stop` is dropped.
fn checkpointer(path: PathBuf, stop: mpsc::Receiver<()>) {
    let Ok(conn) = Connection::open(&path) else {
        return;
    };
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure_common(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// What the writer measures about its group commits.
#[derive(Debug, Clone)]
pub struct WriterStats {
    /// Jobs per committed transaction.
    pub batch_size: prometheus_client::metrics::histogram::Histogram,
    /// Seconds from `BEGIN` to the end of `COMMIT`.
    pub commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for WriterStats {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        Self {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.5, 12)),
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Message>,
    bus: Bus,
    cache: Arc<StateCache>,
    stats: &WriterStats,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Write(job) => jobs.push(job),
                Message::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if jobs.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            let started = std::time::Instant::now();
            stats.batch_size.observe(jobs.len() as f64);
            commit_batch(&conn, jobs, &bus, &cache);
            stats
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        if let Some(done) = close {
            // Fold the WAL back into the main file so the data dir is tidy after a clean stop.
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            drop(conn);
            let _ = done.send(());
            return;
        }
    }
}

fn commit_batch(
    conn: &Connection,
    mut jobs: Vec<Box<dyn WriteJob>>,
    bus: &Bus,
    cache: &Arc<StateCache>,
) {
    let mut events = Vec::new();
    let mut hooks = Vec::new();
    let mut written = Vec::new();
    let now = now_rfc3339();
    let outcome = match tx_exec(conn, "BEGIN IMMEDIATE") {
        Ok(()) => {
            let mut aborted = None;
            for job in &mut jobs {
                let mut tx = Tx {
                    conn,
                    cache,
                    events: &mut events,
                    hooks: &mut hooks,
                    written: &mut written,
                    now: &now,
                };
                job.run(&mut tx);
                if let Some(e) = job.poisoned() {
                    aborted = Some(e);
                    break;
                }
                // On some errors (a full disk, out of memory) SQLite rolls the whole transaction
                // back by itself: the jobs before this one are gone too, and later ones would run
                // outside any transaction. Fail the batch instead.
                if conn.is_autocommit() {
                    aborted = Some(if job.failed_full() {
                        StoreError::Full
                    } else {
                        StoreError::Sqlite("the write transaction was rolled back".into())
                    });
                    break;
                }
            }
            match aborted {
                Some(e) => Err(e),
                None => tx_exec(conn, "COMMIT").map_err(StoreError::from),
            }
        }
        Err(e) => Err(e.into()),
    };
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %outcome.as_ref().err().map(ToString::to_string).unwrap_or_default(), jobs = jobs.len(), "write batch failed");
        events.clear();
        hooks.clear();
    }
    let full = matches!(outcome, Err(StoreError::Full)) || jobs.iter().any(|j| j.failed_full());
    if full {
        // Give the space the failed write took in the WAL back: fold what is committed into the
        // database and cut the WAL to nothing, so that freed space serves new writes.
        warn_full();
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::debug!(error = %e, "checkpoint after a full disk failed");
        }
    }
    for hook in hooks {
        hook();
    }
    for event in events {
        bus.publish(event);
    }
    for job in jobs {
        job.finish(outcome.clone());
    }
}

/// Logs a full disk at most once a minute (every failed write would otherwise log it).
fn warn_full() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(
            "the disk holding the database is full: writes answer 507 until space is freed; reads keep working"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch built by hand, so that several jobs are sure to share one transaction.
    struct Batch {
        conn: Connection,
        bus: Bus,
        cache: Arc<StateCache>,
        _dir: tempfile::TempDir,
    }

    type Answer = oneshot::Receiver<Result<i64>>;

    impl Batch {
        fn new() -> Batch {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut conn = Connection::open(dir.path().join("data.db")).expect("open");
            configure_writer(&conn).expect("configure");
            schema::migrate(&mut conn).expect("migrate");
            conn.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
                .expect("table");
            Batch {
                conn,
                bus: Bus::default(),
                cache: Arc::new(StateCache::new(cache::DEFAULT_BUDGET)),
                _dir: dir,
            }
        }

        /// A job that inserts `x` (and emits an event) and then fails when `fail_after`, or
        /// fails at once when `fail_before`.
        fn job(
            savepoint: bool,
            x: i64,
            fail_before: bool,
            fail_after: bool,
        ) -> (Box<dyn WriteJob>, Answer) {
            typed_job(savepoint, move |tx: &mut Tx<'_>| -> Result<i64> {
                if fail_before {
                    return Err(StoreError::Invalid("refused before writing".into()));
                }
                tx.conn().execute("INSERT INTO t (x) VALUES (?1)", [x])?;
                tx.emit("test.inserted", serde_json::json!({"x": x}), "test")?;
                if fail_after {
                    return Err(StoreError::Invalid("refused after writing".into()));
                }
                Ok(x)
            })
        }

        fn run(&self, jobs: Vec<(Box<dyn WriteJob>, Answer)>) -> Vec<Result<i64>> {
            let (jobs, answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            commit_batch(&self.conn, jobs, &self.bus, &self.cache);
            answers
                .into_iter()
                .map(|mut a| a.try_recv().expect("answered"))
                .collect()
        }

        fn rows(&self) -> Vec<i64> {
            let mut stmt = self
                .conn
                .prepare("SELECT x FROM t ORDER BY x")
                .expect("select");
            stmt.query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("collect")
        }
    }

    #[test]
    fn a_job_without_savepoint_that_fails_before_writing_leaves_its_batch_alone() {
        let b = Batch::new();
        let mut events = b.bus.subscribe();
        let got = b.run(vec![
            Batch::job(false, 1, false, false),
            Batch::job(false, 2, true, false),
            Batch::job(false, 3, false, false),
        ]);
        assert!(matches!(got[0], Ok(1)), "{got:?}");
        assert!(matches!(got[1], Err(StoreError::Invalid(_))), "{got:?}");
        assert!(matches!(got[2], Ok(3)), "{got:?}");
        assert_eq!(b.rows(), [1, 3]);
        let published: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.event.data["x"].as_i64())
            .collect();
        assert_eq!(published, [Some(1), Some(3)]);
    }

    #[test]
    fn a_job_without_savepoint_that_fails_after_writing_rolls_its_batch_back() {
        let b = Batch::new();
        let mut events = b.bus.subscribe();
        let got = b.run(vec![
            Batch::job(true, 1, false, false),
            Batch::job(false, 2, false, true),
            Batch::job(false, 3, false, false),
        ]);
        for answer in &got {
            assert!(
                matches!(answer, Err(StoreError::Sqlite(m)) if m.contains("rolled back")),
                "{got:?}"
            );
        }
        assert!(b.rows().is_empty(), "nothing of the batch is committed");
        assert!(events.try_recv().is_err(), "and nothing is published");
        // The connection is usable again at once.
        let got = b.run(vec![Batch::job(false, 4, false, false)]);
        assert!(matches!(got[0], Ok(4)), "{got:?}");
        assert_eq!(b.rows(), [4]);
    }

    /// A write job as [`Store::submit`] builds it, with the receiver of its answer.
    fn typed_job<T: Send + 'static>(
        savepoint: bool,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> (Box<dyn WriteJob>, oneshot::Receiver<Result<T>>) {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            result: None,
            reply,
            savepoint,
            poisoned: false,
        };
        (Box::new(job), answer)
    }

    fn state_job<T: Send + 'static>(
        work: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> (Box<dyn WriteJob>, oneshot::Receiver<Result<T>>) {
        typed_job(false, work)
    }

    #[test]
    fn writes_of_one_key_in_one_batch_see_each_other() {
        let b = Batch::new();
        let hash = koor_shared::ContentHash::of(b"{}");
        let put = |key: &'static str| {
            let hash = hash.clone();
            state_job(move |tx| {
                state::put(
                    tx,
                    key,
                    b"{}",
                    "application/json",
                    &hash,
                    &Default::default(),
                )
                .map(|w| w.version)
            })
        };
        let (a, mut ra) = put("k");
        let (c, mut rc) = put("k");
        let (d, mut rd) = state_job(|tx| state::delete(tx, "k", &Default::default()));
        let (e, mut re) = put("k");
        let (f, mut rf) = state_job(|tx| {
            let cond = state::Condition {
                if_version: Some(1),
                ..Default::default()
            };
            state::put(
                tx,
                "k",
                b"{}",
                "application/json",
                &koor_shared::ContentHash::of(b"{}"),
                &cond,
            )
            .map(|w| w.version)
        });
        commit_batch(&b.conn, vec![a, c, d, e, f], &b.bus, &b.cache);
        assert!(matches!(ra.try_recv(), Ok(Ok(1))));
        assert!(
            matches!(rc.try_recv(), Ok(Ok(2))),
            "the second write sees the first"
        );
        assert!(matches!(rd.try_recv(), Ok(Ok(()))));
        assert!(
            matches!(re.try_recv(), Ok(Ok(1))),
            "a key written after its delete starts over"
        );
        assert!(
            matches!(rf.try_recv(), Ok(Ok(2))),
            "a condition sees the batch too"
        );
        // The next batch finds the committed version through the cache, as SQLite has it.
        let (g, mut rg) = put("k");
        commit_batch(&b.conn, vec![g], &b.bus, &b.cache);
        assert!(matches!(rg.try_recv(), Ok(Ok(3))));
        let stored: i64 = b
            .conn
            .query_row("SELECT version FROM state WHERE key = 'k'", [], |r| {
                r.get(0)
            })
            .expect("row");
        assert_eq!(stored, 3);
    }

    #[test]
    fn cached_statements_are_not_planned_again_on_each_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.db");
        let mut writer = Connection::open(&path).expect("open");
        configure_writer(&writer).expect("configure");
        schema::migrate(&mut writer).expect("migrate");
        for m in 1..=3i64 {
            writer
                .execute(
                    "INSERT INTO message_recipients (message_id, pos, instance_id, instance_name)
                     VALUES (?1, 0, 'b', 'b')",
                    [m],
                )
                .expect("insert");
        }
        let reader = open_reader(&path).expect("reader");
        // An equality on part of an index: the kind of term SQLite would re-plan for.
        let sql = "SELECT instance_id FROM message_recipients WHERE message_id = ?1 ORDER BY pos";
        for m in 1..=3i64 {
            let mut stmt = reader.prepare_cached(sql).expect("prepare");
            let got: String = stmt.query_row([m], |r| r.get(0)).expect("row");
            assert_eq!(got, "b");
            let replanned = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(
                replanned, 0,
                "use {m} of a cached statement was planned again"
            );
        }
    }

    #[test]
    fn a_job_with_savepoint_that_fails_after_writing_is_undone_alone() {
        let b = Batch::new();
        let got = b.run(vec![
            Batch::job(false, 1, false, false),
            Batch::job(true, 2, false, true),
            Batch::job(true, 3, false, false),
        ]);
        assert!(matches!(got[0], Ok(1)), "{got:?}");
        assert!(matches!(got[1], Err(StoreError::Invalid(_))), "{got:?}");
        assert!(matches!(got[2], Ok(3)), "{got:?}");
        assert_eq!(b.rows(), [1, 3]);
    }
}
