//! The `koor-server` binary: parse config, set up logs, open the store, bind, serve; or, as
//! `koor-server restore FILE --data-dir DIR`, put a backup in place of a stopped server's data.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use koor_server::config::{self, Args, Config};
use koor_server::logging::{self, LogRing, RING_CAPACITY};
use tokio::net::TcpListener;

/// `koor-server restore`: replace the database of a data dir no server is using with a backup.
#[derive(Debug, Parser)]
#[command(
    name = "koor-server restore",
    about = "Replace the database in --data-dir with a backup (from `koor-cli backup` or GET /api/backup).\n\
             The file must pass PRAGMA integrity_check and have a schema this server knows; no server may\n\
             be running on the directory. The old database is kept as data.db.before-restore-<time>."
)]
struct RestoreArgs {
    /// The backup file
    #[arg(value_name = "FILE", required_unless_present = "file_flag")]
    file: Option<PathBuf>,
    /// The backup file (the original's spelling)
    #[arg(long = "file", value_name = "FILE", conflicts_with = "file")]
    file_flag: Option<PathBuf>,
    /// The data directory to restore into [env: KOOR_DATA_DIR] [default: .]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn restore() -> ExitCode {
    let args = RestoreArgs::parse_from(std::env::args_os().skip(1));
    let Some(file) = args.file.or(args.file_flag) else {
        eprintln!("koor-server restore: name the backup file");
        return ExitCode::from(2);
    };
    let data_dir = args
        .data_dir
        .or_else(|| std::env::var_os("KOOR_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    match koor_server::store::backup::restore(&file, &data_dir) {
        Ok(done) => {
            println!("{}", serde_json::to_string(&done).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koor-server restore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "restore") {
        return restore();
    }
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
