//! The server's logs: logfmt text to stderr (as the original printed it), a daily-rolling file
//! under the data dir, and a bounded in-memory ring that `/api/logs` serves.
//!
//! ```text
//! time=2026-02-09T14:00:00.000Z level=INFO msg="instance registered" id=3c81f5d7 name=claude-web
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use koor_shared::time::now_rfc3339;
use koor_shared::types::LogRecord;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Records the ring keeps.
pub const RING_CAPACITY: usize = 2000;

/// Parses `debug|info|warn|error` (and `warning`, `trace`).
pub fn parse_level(s: &str) -> Option<Level> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" | "warning" => Some(Level::WARN),
        "error" => Some(Level::ERROR),
        _ => None,
    }
}

/// Rank of a level name for filtering (`error` highest); unknown names rank as `info`.
pub fn level_rank(name: &str) -> u8 {
    match parse_level(name).unwrap_or(Level::INFO) {
        Level::ERROR => 4,
        Level::WARN => 3,
        Level::INFO => 2,
        Level::DEBUG => 1,
        Level::TRACE => 0,
    }
}

/// The in-memory ring of recent log records, with a live feed.
#[derive(Debug)]
pub struct LogRing {
    records: Mutex<VecDeque<Arc<LogRecord>>>,
    capacity: usize,
    tx: broadcast::Sender<Arc<LogRecord>>,
    subscribers: Arc<AtomicI64>,
}

/// Counts an open log subscriber while it lives.
pub struct LogSubscriberGuard(Arc<AtomicI64>);

impl Drop for LogSubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LogRing {
    pub fn new(capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(1024);
        Arc::new(Self {
            records: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            tx,
            subscribers: Arc::new(AtomicI64::new(0)),
        })
    }

    pub fn subscriber_guard(&self) -> LogSubscriberGuard {
        self.subscribers.fetch_add(1, Ordering::SeqCst);
        LogSubscriberGuard(self.subscribers.clone())
    }

    pub fn subscriber_count(&self) -> i64 {
        self.subscribers.load(Ordering::SeqCst)
    }

    fn push(&self, record: LogRecord) {
        let record = Arc::new(record);
        if let Ok(mut records) = self.records.lock() {
            if records.len() == self.capacity {
                records.pop_front();
            }
            records.push_back(record.clone());
        }
        let _ = self.tx.send(record);
    }

    /// The newest `last` records at `min_level` or above, oldest first.
    pub fn recent(&self, last: usize, min_level: &str) -> Vec<LogRecord> {
        let rank = level_rank(min_level);
        let Ok(records) = self.records.lock() else {
            return Vec::new();
        };
        let mut out: Vec<LogRecord> = records
            .iter()
            .rev()
            .filter(|r| level_rank(&r.level) >= rank)
            .take(last)
            .map(|r| (**r).clone())
            .collect();
        out.reverse();
        out
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogRecord>> {
        self.tx.subscribe()
    }
}

/// Where log lines go.
struct Sinks {
    stderr: bool,
    file: Option<Mutex<NonBlocking>>,
    ring: Arc<LogRing>,
}

struct LogLayer {
    sinks: Sinks,
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .push((field.name().to_owned(), Value::String(value.to_owned())));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields
            .push((field.name().to_owned(), Value::from(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields
                .push((field.name().to_owned(), Value::String(text)));
        }
    }
}

/// Quotes a logfmt value when it needs it.
fn logfmt_value(out: &mut String, value: &str) {
    if !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        out.push_str(value);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Formats one record as a logfmt line (with a trailing newline).
pub fn format_line(time: &str, level: &str, message: &str, fields: &[(String, Value)]) -> String {
    let mut line = format!("time={time} level={level} msg=");
    logfmt_value(&mut line, message);
    for (name, value) in fields {
        line.push(' ');
        line.push_str(name);
        line.push('=');
        match value {
            Value::String(s) => logfmt_value(&mut line, s),
            other => line.push_str(&other.to_string()),
        }
    }
    line.push('\n');
    line
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = now_rfc3339();
        let level = meta.level().as_str();
        let line = format_line(&time, level, &fields.message, &fields.fields);
        if self.sinks.stderr {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        if let Some(file) = &self.sinks.file
            && let Ok(mut file) = file.lock()
        {
            let _ = file.write_all(line.as_bytes());
        }
        self.sinks.ring.push(LogRecord {
            time,
            level: level.to_owned(),
            target: meta.target().to_owned(),
            message: fields.message,
            fields: fields.fields.into_iter().collect::<Map<String, Value>>(),
        });
    }
}

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber: our crate's records at `level`, others' at warn or above.
/// `log_dir`, when given, gets a daily-rolling `koor-server.log.YYYY-MM-DD`. Returns an error
/// string when the log directory cannot be used (logging to stderr and the ring still works).
pub fn init(
    level: Level,
    log_dir: Option<&Path>,
    ring: Arc<LogRing>,
) -> (LogGuard, Option<String>) {
    let mut warning = None;
    let mut guard = None;
    let file = log_dir.and_then(|dir| {
        let made = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                tracing_appender::rolling::Builder::new()
                    .rotation(tracing_appender::rolling::Rotation::DAILY)
                    .filename_prefix("koor-server.log")
                    .build(dir)
                    .map_err(|e| e.to_string())
            });
        match made {
            Ok(appender) => {
                let (writer, g) = tracing_appender::non_blocking(appender);
                guard = Some(g);
                Some(Mutex::new(writer))
            }
            Err(e) => {
                warning = Some(format!("cannot write log files in {}: {e}", dir.display()));
                None
            }
        }
    });
    let filter = Targets::new()
        .with_target("koor_server", level)
        .with_default(LevelFilter::from_level(level).min(LevelFilter::WARN));
    let layer = LogLayer {
        sinks: Sinks {
            stderr: true,
            file,
            ring,
        },
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    (LogGuard { _file: guard }, warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_when_needed() {
        let line = format_line(
            "2026-02-09T14:00:00.000Z",
            "INFO",
            "state updated",
            &[
                ("key".into(), Value::from("api-contract")),
                ("version".into(), Value::from(2)),
            ],
        );
        assert_eq!(
            line,
            "time=2026-02-09T14:00:00.000Z level=INFO msg=\"state updated\" key=api-contract version=2\n"
        );
        let line = format_line("t", "WARN", "x", &[("path".into(), Value::from("a b"))]);
        assert!(line.ends_with("path=\"a b\"\n"), "{line}");
    }

    #[test]
    fn ring_filters_and_bounds() {
        let ring = LogRing::new(3);
        for (i, level) in ["DEBUG", "INFO", "WARN", "ERROR"].iter().enumerate() {
            ring.push(LogRecord {
                time: String::new(),
                level: (*level).into(),
                target: "t".into(),
                message: format!("m{i}"),
                fields: Map::new(),
            });
        }
        let all = ring.recent(10, "debug");
        assert_eq!(all.len(), 3, "capacity bounds the ring");
        assert_eq!(all[0].message, "m1");
        let warn = ring.recent(10, "warn");
        assert_eq!(
            warn.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ["m2", "m3"]
        );
    }
}
