//! The `koor-server` binary: parse config, set up logs, open the store, bind, serve.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use koor_server::config::{self, Args, Config};
use koor_server::logging::{self, LogRing, RING_CAPACITY};
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::resolve(args, &|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("koor-server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koor-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koor-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Bind before touching the data dir: a server that cannot start (port in use) leaves no
    // database, lock file or log directory behind.
    let api = bind(&config.bind, "--bind").await?;
    let dashboard = match &config.dashboard_bind {
        Some(addr) => Some(bind(addr, "--dashboard-bind").await?),
        None => None,
    };
    let created = create_data_dir(&config.data_dir)?;

    let ring = LogRing::new(RING_CAPACITY);
    // Log files live under the data dir: only once it is known to exist.
    let log_dir = config.log_dir.clone().filter(|_| config.data_dir.is_dir());
    let (_log_guard, log_warning) =
        logging::init(config.log_level, log_dir.as_deref(), ring.clone());
    if let Some(w) = log_warning {
        tracing::warn!("{w}");
    }
    if created {
        tracing::info!(data_dir = %config.data_dir.display(), "created the data dir (mode 0700)");
    }

    let app = koor_server::open(config.clone(), ring)?;
    let shutdown = shutdown_signal();
    let local = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        api = %format!("http://{}", local(&api)),
        dashboard = %dashboard.as_ref().map(|d| format!("http://{}", local(d))).unwrap_or_else(|| "off".into()),
        data_dir = %config.data_dir.display(),
        db = %app.store.path().display(),
        auth = if config.auth_token.is_some() { "on" } else { "off" },
        log_level = %config.log_level,
        "koor-server started"
    );
    koor_server::run(app, api, dashboard, shutdown).await;
    Ok(())
}

/// Creates a missing data dir (and its parents), readable only by its owner. Returns whether it
/// had to; an error names the directory and why it could not be made.
fn create_data_dir(dir: &Path) -> anyhow::Result<bool> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        anyhow::anyhow!(
            "failed to open database: cannot create the data dir {}: {e} (choose another with --data-dir DIR)",
            dir.display()
        )
    })?;
    Ok(true)
}

async fn bind(addr: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "bind {addr}: address already in use (another process is listening there; choose another address with {flag} HOST:PORT)"
            )
        } else {
            anyhow::anyhow!("bind {addr}: {e} (check {flag})")
        }
    })
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (before the
/// startup line is logged), not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
