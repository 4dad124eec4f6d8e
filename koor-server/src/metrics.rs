//! Prometheus metrics: request counts and latencies by route class, and the server's own gauges,
//! exposed at `GET /metrics` in the Prometheus text format (through `prometheus-client`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::WriterStats;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    pub health: &'static str,
}

/// Every metric the server exports. Counters and histograms are updated as things happen;
/// the gauges are sampled when `/metrics` is read.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
    pub events_published: Counter,
    pub events_retained: Gauge,
    pub subscribers: Gauge,
    pub log_subscribers: Gauge,
    pub instances: Gauge,
    pub stale_instances: Gauge,
    pub state_keys: Gauge,
    pub specs: Gauge,
    pub webhooks: Family<HealthLabels, Gauge>,
    pub database_bytes: Gauge,
    pub uptime_seconds: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(writer: &WriterStats) -> Self {
        let mut registry = Registry::with_prefix("koor");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route class, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 12))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to build a reply, by route class",
            latency.clone(),
        );
        registry.register(
            "writer_batch_size",
            "Write jobs committed per transaction (group commit)",
            writer.batch_size.clone(),
        );
        registry.register(
            "writer_commit_duration_seconds",
            "Time from BEGIN to the end of COMMIT of one batch",
            writer.commit_seconds.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhook_deliveries.clone(),
        );
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let events_retained = gauge("events_retained", "Events kept in history");
        let subscribers = gauge("event_subscribers", "Open event WebSocket subscribers");
        let log_subscribers = gauge("log_subscribers", "Open log WebSocket subscribers");
        let instances = gauge("instances", "Registered agent instances");
        let stale_instances = gauge("stale_instances", "Registered instances marked stale");
        let state_keys = gauge("state_keys", "State keys stored");
        let specs = gauge("specs", "Specs stored, all projects");
        let database_bytes = gauge("database_bytes", "Size of the database file and its WAL");
        let uptime_seconds = gauge("uptime_seconds", "Seconds since the server started");
        let events_published = Counter::default();
        registry.register(
            "events_published",
            "Events published since the database was created (the newest event id)",
            events_published.clone(),
        );
        let webhooks = Family::<HealthLabels, Gauge>::default();
        registry.register("webhooks", "Webhooks by health", webhooks.clone());
        Self {
            registry,
            requests,
            latency,
            webhook_deliveries,
            events_published,
            events_retained,
            subscribers,
            log_subscribers,
            instances,
            stale_instances,
            state_keys,
            specs,
            webhooks,
            database_bytes,
            uptime_seconds,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, path: &str, method: &str, status: u16, took: Duration) {
        let route = route_class(path);
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "PUT" => "PUT",
            "POST" => "POST",
            "DELETE" => "DELETE",
            "PATCH" => "PATCH",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// Raises the published counter to the newest event id (ids are never reused).
    pub fn set_events_published(&self, last_id: i64) {
        let last = u64::try_from(last_id).unwrap_or(0);
        let now = self.events_published.get();
        if last > now {
            self.events_published.inc_by(last - now);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A bounded label for a path: the resource it belongs to, never the key or id in it.
pub fn route_class(path: &str) -> &'static str {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next()) {
        (Some("health"), _) => "/health",
        (Some("metrics"), _) => "/metrics",
        (Some("mcp"), _) => "/mcp",
        (Some("api"), Some(kind)) => match kind {
            "state" => "/api/state",
            "specs" => "/api/specs",
            "events" => "/api/events",
            "instances" => "/api/instances",
            "liveness" => "/api/liveness",
            "validate" => "/api/validate",
            "rules" => "/api/rules",
            "logs" => "/api/logs",
            "metrics" => "/api/metrics",
            "webhooks" => "/api/webhooks",
            "audit" => "/api/audit",
            "backup" => "/api/backup",
            "locks" => "/api/locks",
            "holds" => "/api/holds",
            "tasks" => "/api/tasks",
            "messages" => "/api/messages",
            "reservations" => "/api/reservations",
            _ => "/api/other",
        },
        (Some(""), None) => "/",
        _ => "other",
    }
}
