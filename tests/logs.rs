//! The log stream. The tracing subscriber is global, so these tests share one ring.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use koor_server::logging::{self, LogRing};

use crate::harness::{Seen, Server, json, next, ws_connect};

fn ring() -> Arc<LogRing> {
    static RING: OnceLock<Arc<LogRing>> = OnceLock::new();
    RING.get_or_init(|| {
        let ring = LogRing::new(logging::RING_CAPACITY);
        let (guard, _) = logging::init(tracing::Level::INFO, None, ring.clone());
        std::mem::forget(guard);
        ring
    })
    .clone()
}

#[tokio::test]
async fn the_log_stream_shows_a_record_produced_by_a_request_and_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = koor_server::Config::for_data_dir(dir.path());
    config.auth_token = Some("very-secret-token".into());
    let running = koor_server::spawn_with_logs(config, ring())
        .await
        .expect("server");
    let s = Server {
        running,
        dir,
        http: reqwest::Client::new(),
        token: Some("very-secret-token".into()),
    };
    let mut ws = ws_connect(&s, "/api/logs/subscribe?level=info", &[])
        .await
        .expect("connect");
    // Writes of data log at debug (one line per write would flood the log); an agent's arrival
    // logs at info.
    json(s.put("/api/state/log-probe-7731", "{}").await, 200).await;
    let registered = json(
        s.post_json(
            "/api/instances/register",
            serde_json::json!({"name": "log-probe-7731"}),
        )
        .await,
        200,
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "record never arrived"
        );
        match next(&mut ws, Duration::from_secs(10)).await {
            Seen::Event(r) => {
                assert!(!r.to_string().contains("very-secret-token"));
                assert!(
                    r["message"] != "state updated",
                    "a state write is not logged at info: {r}"
                );
                if r["message"] == "instance registered" && r["fields"]["name"] == "log-probe-7731"
                {
                    assert_eq!(r["level"], "INFO");
                    assert_eq!(r["fields"]["id"], registered["id"]);
                    assert!(r["time"].as_str().expect("time").ends_with('Z'));
                    break;
                }
            }
            other => panic!("log stream ended: {other:?}"),
        }
    }
    let recent = json(s.get("/api/logs?last=500&level=info").await, 200).await;
    assert!(
        recent
            .as_array()
            .expect("array")
            .iter()
            .any(|r| r["fields"]["name"] == "log-probe-7731"),
        "GET /api/logs has it too"
    );
    assert!(!recent.to_string().contains("very-secret-token"));
    let warn_only = json(s.get("/api/logs?last=500&level=warn").await, 200).await;
    assert!(
        warn_only
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["level"] == "WARN" || r["level"] == "ERROR")
    );
    crate::harness::error(s.get("/api/logs?level=loud").await, 400, "level").await;
}
