//! koor-server: the Koor coordination server as a library, so tests and tools can run it
//! in-process on a listener they bound themselves.
//!
//! # Layout
//!
//! - [`config`]: flags > env > config file > defaults.
//! - [`logging`]: logfmt to stderr, daily files, and the in-memory ring behind `/api/logs`.
//! - [`store`]: SQLite with one group-committing writer thread and pooled readers.
//! - [`bus`]: fan-out of committed events to subscribers.
//! - [`instances`]: the in-memory agent registry with liveness, persisted through the store.
//! - [`messages`]: directed messages between instances, threads and receipts.
//! - [`holds`]: the one model behind locks, reservations and task claims (TTL, expiry, fences).
//! - [`waiters`]: long-polls that sleep until a committed event concerns them.
//! - [`validate`]: the validation engine (rule matching, globs, stacks) behind `/api/validate`.
//! - [`webhooks`]: webhook delivery workers (ordered, retried, resumed after a restart).
//! - [`audit`]: capture of every mutating request into the append-only audit log.
//! - [`metrics`]: Prometheus counters, histograms and gauges behind `GET /metrics`.
//! - [`api`]: the warp route tree, one module per resource, one rejection handler.
//!
//! [`open`] builds an [`App`] (locks the data dir, opens the database); [`run`] serves it on
//! already-bound listeners until the shutdown future resolves.

pub mod api;
pub mod audit;
pub mod bus;
pub mod config;
pub mod holds;
pub mod instances;
pub mod logging;
pub mod messages;
pub mod metrics;
mod serve;
pub mod store;
pub mod validate;
pub mod waiters;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bus::Bus;
pub use crate::config::Config;
use crate::holds::Holds;
use crate::instances::Registry;
use crate::logging::LogRing;
use crate::store::{OpenError, Store};
use crate::waiters::Waiters;

/// How long in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub bus: Bus,
    pub instances: Registry,
    pub holds: Holds,
    pub waiters: Waiters,
    pub config: Arc<Config>,
    pub logs: Arc<LogRing>,
    /// Audit entries waiting to be appended.
    pub audit: Arc<audit::Recorder>,
    pub metrics: Arc<metrics::Metrics>,
    pub started: Instant,
    addrs: Arc<std::sync::RwLock<(String, String)>>,
    stop: watch::Receiver<bool>,
    stop_tx: Arc<watch::Sender<bool>>,
}

impl App {
    /// The bound API and dashboard addresses (`""` when the dashboard is off).
    pub fn addrs(&self) -> (String, String) {
        self.addrs.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Resolves when the server starts shutting down; long-lived tasks (WebSockets) watch it.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Requests waiting now: long-polls and lock waits (`waiters` in `/api/metrics`).
    pub fn waiting(&self) -> usize {
        self.waiters.count() + self.holds.lock_waiters().count()
    }
}

/// Locks the data directory and opens the database.
pub fn open(config: Config, logs: Arc<LogRing>) -> Result<App, OpenError> {
    let bus = Bus::new(config.subscriber_buffer);
    let store = Store::open_with(
        &config.data_dir,
        bus.clone(),
        config.cache_size,
        config.max_db_pages,
    )?;
    let instances =
        Registry::load(&store, config.stale_after).map_err(|e| OpenError::Database {
            path: store.path().to_owned(),
            reason: format!("cannot load instances: {e}"),
        })?;
    let holds = Holds::load(&store, config.stale_after).map_err(|e| OpenError::Database {
        path: store.path().to_owned(),
        reason: format!("cannot load holds: {e}"),
    })?;
    let (stop_tx, stop) = watch::channel(false);
    let metrics = Arc::new(metrics::Metrics::new(store.writer_stats()));
    Ok(App {
        audit: Arc::default(),
        metrics,
        store,
        bus,
        instances,
        holds,
        waiters: Waiters::default(),
        config: Arc::new(config),
        logs,
        started: Instant::now(),
        addrs: Arc::default(),
        stop,
        stop_tx: Arc::new(stop_tx),
    })
}

/// Serves the API on `api` (and the dashboard on `dashboard`) until `shutdown` resolves, then stops
/// accepting, gives in-flight requests [`SHUTDOWN_GRACE`] to finish, closes WebSockets with a Close
/// frame and closes the database.
pub async fn run(
    app: App,
    api: TcpListener,
    dashboard: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let addr_string = |l: &TcpListener| {
        l.local_addr()
            .map(|a: SocketAddr| a.to_string())
            .unwrap_or_default()
    };
    if let Ok(mut addrs) = app.addrs.write() {
        *addrs = (
            addr_string(&api),
            dashboard.as_ref().map(addr_string).unwrap_or_default(),
        );
    }
    let background = tokio::spawn(background(app.clone()));
    let sweeper = tokio::spawn(
        app.holds
            .clone()
            .run_sweeper(app.store.clone(), app.stopping()),
    );
    // Subscribed here, before the first request is accepted, so no waiter can miss an event.
    let dispatcher = tokio::spawn(app.waiters.clone().run(app.bus.subscribe(), app.stopping()));
    let webhooks = tokio::spawn(webhooks::run(app.clone()));
    let audit = tokio::spawn(audit::run(app.clone()));
    let conns = serve::Connections::new(app.config.max_connections, app.config.request_timeout);
    let api_server = serve::serve(api, api::routes(app.clone()), conns.clone(), app.stopping());
    let dashboard_server = async {
        if let Some(listener) = dashboard {
            let routes = api::dashboard_routes(app.clone());
            serve::serve(listener, routes, conns, app.stopping()).await;
        }
    };
    let servers = futures_util::future::join(api_server, dashboard_server);
    let mut servers = std::pin::pin!(servers);
    tokio::select! {
        _ = &mut servers => {}
        () = shutdown => {
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = app.stop_tx.send(true);
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut servers).await.is_err() {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; closing anyway");
            }
        }
    }
    let _ = app.stop_tx.send(true);
    let _ = background.await;
    let _ = sweeper.await;
    let _ = dispatcher.await;
    let _ = webhooks.await;
    let _ = audit.await;
    audit::flush(&app).await;
    if let Err(e) = app.instances.flush(&app.store).await {
        tracing::warn!(error = %e, "could not write the last heartbeats");
    }
    app.store.close().await;
    tracing::info!("database closed; bye");
}

/// Prunes history to the newest `event_retention` events, in small batches so that publishing
/// never waits long behind it. Returns how many were removed.
pub async fn prune_events(app: &App) -> Result<usize, store::StoreError> {
    const BATCH: usize = 2000;
    let keep = app.config.event_retention;
    let mut total = 0;
    loop {
        let n = app
            .store
            .write(move |tx| store::events::prune(tx.conn(), keep, BATCH))
            .await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// The server's own periodic work until shutdown: the liveness monitor, the heartbeat flush and history pruning.
async fn background(app: App) {
    let mut liveness = tokio::time::interval(app.instances.check_interval());
    let mut flush = tokio::time::interval(instances::FLUSH_EVERY);
    let mut prune = tokio::time::interval(app.config.prune_every);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => return,
            _ = liveness.tick() => {
                match app.instances.check_liveness(&app.store).await {
                    Ok(marked) => {
                        for i in marked {
                            tracing::info!(id = %i.id, name = %i.name, last_seen = %i.last_seen, "instance stale");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "liveness check failed"),
                }
            }
            _ = flush.tick() => {
                if let Err(e) = app.instances.flush(&app.store).await {
                    tracing::warn!(error = %e, "heartbeat flush failed");
                }
            }
            _ = prune.tick() => {
                match prune_events(&app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(pruned = n, keep = app.config.event_retention, "event history pruned"),
                    Err(e) => tracing::warn!(error = %e, "event pruning failed"),
                }
            }
        }
    }
}

/// A server running in this process, as tests and embedders start it.
pub struct Running {
    /// Where the API listens (`127.0.0.1:<ephemeral port>`).
    pub addr: SocketAddr,
    /// Where the dashboard listens, when started with [`spawn_with_dashboard`].
    pub dashboard: Option<SocketAddr>,
    pub app: App,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<dashboard port>`, when the dashboard listener runs.
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.map(|a| format!("http://{a}"))
    }

    /// Shuts down as on SIGTERM and waits until the database is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Opens `config`'s data dir and serves the API on an ephemeral loopback port (ignoring
/// `config.bind`) until [`Running::stop`].
pub async fn spawn(config: Config) -> Result<Running, OpenError> {
    spawn_with_logs(config, LogRing::new(logging::RING_CAPACITY)).await
}

/// Like [`spawn`], on a listener the caller bound (tests restart a server on the same port with
/// it, as an IDE that keeps its configured URL sees a restart).
pub async fn spawn_on(config: Config, listener: TcpListener) -> Result<Running, OpenError> {
    let app = open(config, LogRing::new(logging::RING_CAPACITY))?;
    start(app, listener, None)
}

/// Like [`spawn`], with the log ring the process's tracing layer feeds.
pub async fn spawn_with_logs(config: Config, logs: Arc<LogRing>) -> Result<Running, OpenError> {
    let app = open(config, logs)?;
    let api = bind_loopback(&app).await?;
    start(app, api, None)
}

/// Like [`spawn`], with the dashboard listener too, on a second ephemeral loopback port
/// ([`Running::dashboard_url`]).
pub async fn spawn_with_dashboard(config: Config) -> Result<Running, OpenError> {
    let app = open(config, LogRing::new(logging::RING_CAPACITY))?;
    let api = bind_loopback(&app).await?;
    let dashboard = bind_loopback(&app).await?;
    start(app, api, Some(dashboard))
}

async fn bind_loopback(app: &App) -> Result<TcpListener, OpenError> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| OpenError::Database {
            path: app.store.path().to_owned(),
            reason: format!("cannot bind a loopback port: {e}"),
        })
}

/// Runs `app` on the listeners in a task, stopped by [`Running::stop`].
fn start(app: App, api: TcpListener, dashboard: Option<TcpListener>) -> Result<Running, OpenError> {
    let addr_err = |e: std::io::Error| OpenError::Database {
        path: app.store.path().to_owned(),
        reason: e.to_string(),
    };
    let addr = api.local_addr().map_err(addr_err)?;
    let dashboard_addr = dashboard
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(addr_err)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(app.clone(), api, dashboard, async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        addr,
        dashboard: dashboard_addr,
        app,
        stop: Some(stop),
        task,
    })
}
