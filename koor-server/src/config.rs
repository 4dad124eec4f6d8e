//! Server configuration: flags > environment (`KOOR_*`) > config file (`--config`, else
//! `./settings.json` when it exists) > defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value};
use tracing::Level;

use crate::logging::parse_level;

/// Command-line flags. Every flag also has an environment variable and a config-file key.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "koor-server",
    version,
    about = "Koor: a coordination server for AI coding agents (state, specs, events, instances, MCP)",
    after_help = "Each flag may also come from its env var or the config file (flags > env > file > defaults).\n\
                  Config file keys: bind, dashboard_bind, data_dir, auth_token, log_level, log_dir,\n\
                  stale_after, event_retention, allowed_origins, require_instance_token,\n\
                  audit_retention, webhook_timeout, webhook_max_failures, allowed_hosts,\n\
                  max_connections, request_timeout, cache_size.\n\n\
                  Restore a backup (from `koor-cli backup` or GET /api/backup) with the server stopped:\n\
                  koor-server restore FILE --data-dir DIR   (see koor-server restore --help)"
)]
pub struct Args {
    /// API listen address [env: KOOR_BIND] [default: localhost:9800]
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: Option<String>,
    /// Dashboard listen address; empty disables it [env: KOOR_DASHBOARD_BIND] [default: localhost:9847]
    #[arg(long, value_name = "HOST:PORT")]
    pub dashboard_bind: Option<String>,
    /// Directory holding data.db, created (mode 0700) when missing [env: KOOR_DATA_DIR] [default: .]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Bearer token required on every route but /health; empty = no auth [env: KOOR_AUTH_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// debug, info, warn or error [env: KOOR_LOG_LEVEL] [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Directory for daily log files; empty disables them [env: KOOR_LOG_DIR] [default: <data-dir>/logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<String>,
    /// Instances not seen for this long are marked stale, e.g. 90s, 5m [env: KOOR_STALE_AFTER] [default: 5m]
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
    /// Events kept in history; older ones are pruned [env: KOOR_EVENT_RETENTION] [default: 10000]
    #[arg(long, value_name = "N")]
    pub event_retention: Option<String>,
    /// Extra browser origins allowed on /mcp and WebSockets, comma-separated [env: KOOR_ALLOWED_ORIGINS]
    #[arg(long, value_name = "ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Extra host names the server answers to when no token is set, comma-separated; `*` = any
    /// (DNS-rebinding protection) [env: KOOR_ALLOWED_HOSTS]
    #[arg(long, value_name = "HOSTS")]
    pub allowed_hosts: Option<String>,
    /// Most connections open at once (both listeners, WebSockets included)
    /// [env: KOOR_MAX_CONNECTIONS] [default: the open-file limit minus 256, at most 16384]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Time a new connection has to send its first request [env: KOOR_REQUEST_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Require X-Koor-Instance-Token on every call made for an instance (heartbeat, holds, inbox)
    /// [env: KOOR_REQUIRE_INSTANCE_TOKEN] [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub require_instance_token: Option<String>,
    /// Audit log entries kept; older ones are pruned [env: KOOR_AUDIT_RETENTION] [default: 100000]
    #[arg(long, value_name = "N")]
    pub audit_retention: Option<String>,
    /// How long a webhook receiver may take to answer, e.g. 10s [env: KOOR_WEBHOOK_TIMEOUT] [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub webhook_timeout: Option<String>,
    /// Consecutive failed deliveries after which a webhook is disabled [env: KOOR_WEBHOOK_MAX_FAILURES] [default: 10]
    #[arg(long, value_name = "N")]
    pub webhook_max_failures: Option<String>,
    /// Memory for current state values kept ready to serve, e.g. 256MB, 1GB; reads of values
    /// not held go to SQLite [env: KOOR_CACHE_SIZE] [default: 256MB]
    #[arg(long, value_name = "BYTES")]
    pub cache_size: Option<String>,
    /// Config file (JSON object) [default: ./settings.json when it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: String,
    /// `None` when the dashboard is disabled.
    pub dashboard_bind: Option<String>,
    pub data_dir: PathBuf,
    /// `None` when auth is off.
    pub auth_token: Option<String>,
    pub log_level: Level,
    /// `None` when file logs are off.
    pub log_dir: Option<PathBuf>,
    pub stale_after: Duration,
    pub event_retention: u64,
    /// How often history is pruned to `event_retention` (not a flag: tests shorten it).
    pub prune_every: Duration,
    /// Events a WebSocket subscriber may fall behind by before it is closed (not a flag).
    pub subscriber_buffer: usize,
    pub allowed_origins: Vec<String>,
    /// Host names answered besides loopback, IP literals and the bind hosts (`*` = any).
    pub allowed_hosts: Vec<String>,
    /// Most connections open at once; at the bound the oldest one that never sent a request is
    /// closed to make room.
    pub max_connections: usize,
    /// Time a new connection has to send its first request's headers.
    pub request_timeout: Duration,
    /// Test knob, not a flag: caps the database at this many pages (SQLite's `max_page_count`)
    /// so tests can fill "the disk" without a small filesystem.
    pub max_db_pages: Option<u64>,
    /// Calls made for an instance must carry its `X-Koor-Instance-Token`.
    pub require_instance_token: bool,
    /// Audit log entries kept.
    pub audit_retention: u64,
    /// Per-attempt timeout of a webhook delivery.
    pub webhook_timeout: Duration,
    /// Consecutive failures that disable a webhook.
    pub webhook_max_failures: u32,
    /// First retry delay of a failed delivery; doubles up to `webhook_retry_max` (not flags:
    /// tests shorten them).
    pub webhook_retry_base: Duration,
    pub webhook_retry_max: Duration,
    /// Bytes of current state values (with their keys and bookkeeping) the state cache holds.
    pub cache_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: koor_shared::DEFAULT_BIND.to_owned(),
            dashboard_bind: Some(koor_shared::DEFAULT_DASHBOARD_BIND.to_owned()),
            data_dir: PathBuf::from("."),
            auth_token: None,
            log_level: Level::INFO,
            log_dir: Some(PathBuf::from("./logs")),
            stale_after: Duration::from_secs(300),
            event_retention: 10_000,
            prune_every: Duration::from_secs(10),
            subscriber_buffer: crate::bus::DEFAULT_CAPACITY,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: default_max_connections(),
            request_timeout: Duration::from_secs(30),
            max_db_pages: None,
            require_instance_token: false,
            audit_retention: 100_000,
            webhook_timeout: Duration::from_secs(10),
            webhook_max_failures: 10,
            webhook_retry_base: Duration::from_secs(1),
            webhook_retry_max: Duration::from_secs(60),
            cache_size: crate::store::cache::DEFAULT_BUDGET,
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: no dashboard, no log files, data in `data_dir`.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dashboard_bind: None,
            data_dir: data_dir.into(),
            log_dir: None,
            ..Self::default()
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid {name} {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Looks up a setting by its env var name and file key.
struct Layers<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Map<String, Value>,
}

impl Layers<'_> {
    fn get(&self, flag: Option<String>, env: &str, key: &str) -> Option<String> {
        flag.or_else(|| (self.env)(env)).or_else(|| {
            self.file.get(key).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
    }
}

/// Resolves the configuration from flags, an environment lookup and the config file.
pub fn resolve(args: Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(koor_shared::config::WORKSPACE_FILE), false),
    };
    let file = read_file(&path, explicit)?;
    let layers = Layers { env, file };
    let defaults = Config::default();

    let bind = layers
        .get(args.bind, "KOOR_BIND", "bind")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or(defaults.bind);
    let dashboard_bind =
        match layers.get(args.dashboard_bind, "KOOR_DASHBOARD_BIND", "dashboard_bind") {
            Some(b) if b.trim().is_empty() => None,
            Some(b) => Some(b),
            None => defaults.dashboard_bind,
        };
    let data_dir = layers
        .get(args.data_dir, "KOOR_DATA_DIR", "data_dir")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or(defaults.data_dir);
    let auth_token = layers
        .get(args.auth_token, "KOOR_AUTH_TOKEN", "auth_token")
        .filter(|t| !t.is_empty());
    let log_level = match layers.get(args.log_level, "KOOR_LOG_LEVEL", "log_level") {
        Some(l) => parse_level(&l).ok_or_else(|| ConfigError::Invalid {
            name: "log level",
            value: l,
            reason: "use debug, info, warn or error".into(),
        })?,
        None => defaults.log_level,
    };
    let log_dir = match layers.get(args.log_dir, "KOOR_LOG_DIR", "log_dir") {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => Some(data_dir.join("logs")),
    };
    let stale_after = match layers.get(args.stale_after, "KOOR_STALE_AFTER", "stale_after") {
        Some(s) => parse_duration(&s).map_err(|reason| ConfigError::Invalid {
            name: "stale-after",
            value: s,
            reason,
        })?,
        None => defaults.stale_after,
    };
    let event_retention = match layers.get(
        args.event_retention,
        "KOOR_EVENT_RETENTION",
        "event_retention",
    ) {
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "event retention",
                    value: s,
                    reason: "use a positive number of events".into(),
                });
            }
        },
        None => defaults.event_retention,
    };
    let allowed_origins = layers
        .get(
            args.allowed_origins,
            "KOOR_ALLOWED_ORIGINS",
            "allowed_origins",
        )
        .map(|s| list(&s))
        .unwrap_or_default();
    let allowed_hosts = layers
        .get(args.allowed_hosts, "KOOR_ALLOWED_HOSTS", "allowed_hosts")
        .map(|s| list(&s))
        .unwrap_or_default();
    let max_connections = match layers.get(
        args.max_connections,
        "KOOR_MAX_CONNECTIONS",
        "max_connections",
    ) {
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 2 => n,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "max connections",
                    value: s,
                    reason: "use a number of at least 2".into(),
                });
            }
        },
        None => defaults.max_connections,
    };
    let request_timeout = match layers.get(
        args.request_timeout,
        "KOOR_REQUEST_TIMEOUT",
        "request_timeout",
    ) {
        Some(s) => parse_duration(&s).map_err(|reason| ConfigError::Invalid {
            name: "request-timeout",
            value: s,
            reason,
        })?,
        None => defaults.request_timeout,
    };

    let positive = |value: Option<String>, name: &'static str, default: u64| match value {
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                value: s,
                reason: "use a positive number".into(),
            }),
        },
        None => Ok(default),
    };
    let audit_retention = positive(
        layers.get(
            args.audit_retention,
            "KOOR_AUDIT_RETENTION",
            "audit_retention",
        ),
        "audit retention",
        defaults.audit_retention,
    )?;
    let webhook_max_failures = positive(
        layers.get(
            args.webhook_max_failures,
            "KOOR_WEBHOOK_MAX_FAILURES",
            "webhook_max_failures",
        ),
        "webhook max failures",
        u64::from(defaults.webhook_max_failures),
    )?;
    let webhook_timeout = match layers.get(
        args.webhook_timeout,
        "KOOR_WEBHOOK_TIMEOUT",
        "webhook_timeout",
    ) {
        Some(s) => parse_duration(&s).map_err(|reason| ConfigError::Invalid {
            name: "webhook timeout",
            value: s,
            reason,
        })?,
        None => defaults.webhook_timeout,
    };

    let cache_size = match layers.get(args.cache_size, "KOOR_CACHE_SIZE", "cache_size") {
        Some(s) => parse_size(&s).map_err(|reason| ConfigError::Invalid {
            name: "cache size",
            value: s,
            reason,
        })?,
        None => defaults.cache_size,
    };
    let require_instance_token = match layers.get(
        args.require_instance_token,
        "KOOR_REQUIRE_INSTANCE_TOKEN",
        "require_instance_token",
    ) {
        None => defaults.require_instance_token,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "require-instance-token",
                    value: v,
                    reason: "use true or false".into(),
                });
            }
        },
    };

    Ok(Config {
        bind,
        dashboard_bind,
        data_dir,
        auth_token,
        log_level,
        log_dir,
        stale_after,
        event_retention,
        prune_every: defaults.prune_every,
        subscriber_buffer: defaults.subscriber_buffer,
        allowed_origins,
        allowed_hosts,
        max_connections,
        request_timeout,
        max_db_pages: None,
        require_instance_token,
        audit_retention,
        webhook_timeout,
        webhook_max_failures: u32::try_from(webhook_max_failures).unwrap_or(u32::MAX),
        webhook_retry_base: defaults.webhook_retry_base,
        webhook_retry_max: defaults.webhook_retry_max,
        cache_size,
    })
}

/// A comma-separated list (a JSON array in the config file reads the same).
fn list(s: &str) -> Vec<String> {
    s.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|o| o.trim().trim_matches('"').trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

/// The open-file limit minus room for the database, logs and readers (Linux reads it from
/// `/proc/self/limits`; elsewhere 1024 is assumed), between 64 and 16384.
fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            let soft = line.split_whitespace().nth(3)?;
            if soft == "unlimited" {
                Some(usize::MAX)
            } else {
                soft.parse::<usize>().ok()
            }
        })
        .unwrap_or(1024);
    soft.saturating_sub(256).clamp(64, 16_384)
}

/// `5m`, `90s`, `1h30m`, `500ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// `256MB`, `1GB`, `512KiB`, `1048576`: a bare number is bytes; `KB`/`KiB`, `MB`/`MiB` and
/// `GB`/`GiB` are powers of 1024. `0` turns the cache off.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "use a size such as 256MB, 1GB or a number of bytes".to_owned())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit {other:?} (use B, KB, MB or GB)")),
    };
    let bytes = number * scale;
    if !bytes.is_finite() || bytes > usize::MAX as f64 {
        return Err("too large".into());
    }
    Ok(bytes as usize)
}

fn read_file(path: &Path, explicit: bool) -> Result<Map<String, Value>, ConfigError> {
    let err = |reason: String| ConfigError::File {
        path: path.to_owned(),
        reason,
    };
    match koor_shared::config::read_object(path) {
        Ok(Some(map)) => Ok(map),
        Ok(None) if explicit => Err(err("no such file".into())),
        Ok(None) => Ok(Map::new()),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("256MB"), Ok(256 << 20));
        assert_eq!(parse_size(" 1 GiB "), Ok(1 << 30));
        assert_eq!(parse_size("1.5kb"), Ok(1536));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1MB").is_err());
    }

    #[test]
    fn defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = Args {
            config: Some(write(dir.path(), "{}")),
            ..Args::default()
        };
        let cfg = resolve(args, &env_of(&[])).expect("resolves");
        assert_eq!(cfg.bind, "localhost:9800");
        assert_eq!(cfg.dashboard_bind.as_deref(), Some("localhost:9847"));
        assert_eq!(cfg.data_dir, PathBuf::from("."));
        assert_eq!(cfg.auth_token, None);
        assert_eq!(cfg.log_level, Level::INFO);
        assert_eq!(cfg.stale_after, Duration::from_secs(300));
        assert_eq!(cfg.log_dir, Some(PathBuf::from("./logs")));
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("settings.json");
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            r#"{"bind":"file:1","dashboard_bind":"file:2","data_dir":"/file","auth_token":"file-token",
                "log_level":"error","stale_after":"1m","event_retention":500}"#,
        );
        let args = || Args {
            config: Some(file.clone()),
            ..Args::default()
        };
        let cfg = resolve(args(), &env_of(&[])).expect("resolves");
        assert_eq!(cfg.bind, "file:1");
        assert_eq!(cfg.dashboard_bind.as_deref(), Some("file:2"));
        assert_eq!(cfg.data_dir, PathBuf::from("/file"));
        assert_eq!(cfg.auth_token.as_deref(), Some("file-token"));
        assert_eq!(cfg.log_level, Level::ERROR);
        assert_eq!(cfg.stale_after, Duration::from_secs(60));
        assert_eq!(cfg.event_retention, 500);
        assert_eq!(cfg.allowed_hosts, Vec::<String>::new());

        let file2 = write(
            dir.path(),
            r#"{"allowed_hosts":["koor.lan","build-box:9800"],"max_connections":100,"request_timeout":"5s"}"#,
        );
        let cfg = resolve(
            Args {
                config: Some(file2),
                ..Args::default()
            },
            &env_of(&[("KOOR_MAX_CONNECTIONS", "50")]),
        )
        .expect("resolves");
        assert_eq!(cfg.allowed_hosts, ["koor.lan", "build-box:9800"]);
        assert_eq!(cfg.max_connections, 50, "env beats the file");
        assert_eq!(cfg.request_timeout, Duration::from_secs(5));
        // Put the first file back for the layers below.
        write(
            dir.path(),
            r#"{"bind":"file:1","dashboard_bind":"file:2","data_dir":"/file","auth_token":"file-token",
                "log_level":"error","stale_after":"1m","event_retention":500}"#,
        );

        let env = env_of(&[
            ("KOOR_BIND", "env:1"),
            ("KOOR_DATA_DIR", "/env"),
            ("KOOR_AUTH_TOKEN", "env-token"),
            ("KOOR_LOG_LEVEL", "warn"),
        ]);
        let cfg = resolve(args(), &env).expect("resolves");
        assert_eq!(cfg.bind, "env:1");
        assert_eq!(
            cfg.dashboard_bind.as_deref(),
            Some("file:2"),
            "unset env falls through to the file"
        );
        assert_eq!(cfg.data_dir, PathBuf::from("/env"));
        assert_eq!(cfg.auth_token.as_deref(), Some("env-token"));
        assert_eq!(cfg.log_level, Level::WARN);

        let mut flags = args();
        flags.bind = Some("flag:1".into());
        flags.log_level = Some("debug".into());
        flags.dashboard_bind = Some(String::new());
        let cfg = resolve(flags, &env).expect("resolves");
        assert_eq!(cfg.bind, "flag:1");
        assert_eq!(cfg.log_level, Level::DEBUG);
        assert_eq!(
            cfg.dashboard_bind, None,
            "an empty dashboard bind disables it"
        );
        assert_eq!(cfg.data_dir, PathBuf::from("/env"));
    }

    #[test]
    fn bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), "{}");
        let args = Args {
            config: Some(file.clone()),
            log_level: Some("loud".into()),
            ..Args::default()
        };
        let err = resolve(args, &env_of(&[])).expect_err("bad level");
        assert!(err.to_string().contains("loud"), "{err}");

        let args = Args {
            config: Some(file.clone()),
            stale_after: Some("soon".into()),
            ..Args::default()
        };
        assert!(resolve(args, &env_of(&[])).is_err());
        let args = Args {
            config: Some(file),
            max_connections: Some("1".into()),
            ..Args::default()
        };
        assert!(resolve(args, &env_of(&[])).is_err());

        let args = Args {
            config: Some(dir.path().join("missing.json")),
            ..Args::default()
        };
        let err = resolve(args, &env_of(&[])).expect_err("missing explicit file");
        assert!(err.to_string().contains("missing.json"), "{err}");

        let bad = write(dir.path(), "[1,2]");
        let args = Args {
            config: Some(bad),
            ..Args::default()
        };
        assert!(resolve(args, &env_of(&[])).is_err());
    }

    #[test]
    fn operator_settings_from_flags_env_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            r#"{"audit_retention":500,"webhook_timeout":"3s","webhook_max_failures":4,"cache_size":"64MB"}"#,
        );
        let args = || Args {
            config: Some(file.clone()),
            ..Args::default()
        };
        let cfg = resolve(args(), &env_of(&[])).expect("resolves");
        assert_eq!(cfg.audit_retention, 500);
        assert_eq!(cfg.webhook_timeout, Duration::from_secs(3));
        assert_eq!(cfg.webhook_max_failures, 4);
        assert_eq!(cfg.cache_size, 64 << 20);
        let cfg = resolve(
            Args {
                webhook_max_failures: Some("2".into()),
                cache_size: Some("1GB".into()),
                ..args()
            },
            &env_of(&[
                ("KOOR_AUDIT_RETENTION", "7"),
                ("KOOR_WEBHOOK_MAX_FAILURES", "9"),
                ("KOOR_CACHE_SIZE", "0"),
            ]),
        )
        .expect("resolves");
        assert_eq!(cfg.audit_retention, 7);
        assert_eq!(cfg.webhook_max_failures, 2);
        assert_eq!(cfg.cache_size, 1 << 30);
        let cfg = resolve(args(), &env_of(&[("KOOR_CACHE_SIZE", "0")])).expect("resolves");
        assert_eq!(cfg.cache_size, 0, "0 turns the cache off");
        let bad = resolve(args(), &env_of(&[("KOOR_CACHE_SIZE", "lots")]));
        assert!(bad.expect_err("lots").to_string().contains("cache size"));
        let bad = resolve(args(), &env_of(&[("KOOR_AUDIT_RETENTION", "0")]));
        assert!(
            bad.expect_err("zero")
                .to_string()
                .contains("audit retention")
        );
        let defaults = Config::default();
        assert_eq!(defaults.audit_retention, 100_000);
        assert_eq!(defaults.webhook_max_failures, 10);
        assert_eq!(defaults.cache_size, 256 << 20);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
    }
}
