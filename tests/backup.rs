//! Backup under write load, restore, and the Prometheus exposition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::{Server, error};

#[tokio::test]
async fn a_backup_under_write_load_restores_every_acknowledged_write() {
    let s = Arc::new(Server::start().await);
    for i in 0..50 {
        assert_eq!(
            s.put(&format!("/api/state/seed{i}"), format!("{{\"i\":{i}}}"))
                .await
                .status(),
            200
        );
    }
    // Writers keep going for the whole backup; each records what the server acknowledged.
    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (s, acked, stop) = (s.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("load/w{w}/k{}", n % 20);
                let resp = s
                    .put(&format!("/api/state/{key}"), format!("{{\"n\":{n}}}"))
                    .await;
                assert_eq!(resp.status(), 200);
                let body: serde_json::Value = resp.json().await.expect("json");
                acked
                    .lock()
                    .expect("acked")
                    .push((key, body["version"].as_i64().expect("version")));
                n += 1;
            }
        }));
    }
    // Let the load get going, then note every write acknowledged before the backup begins.
    while acked.lock().expect("acked").len() < 200 {
        tokio::task::yield_now().await;
    }
    let before: Vec<(String, i64)> = acked.lock().expect("acked").clone();
    let resp = s.get("/api/backup").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.sqlite3")
    );
    assert!(
        resp.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment; filename=\"koor-backup-")),
    );
    let bytes = resp.bytes().await.expect("backup body");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the snapshot file is removed: {leftovers:?}"
    );

    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("backup.db");
    std::fs::write(&file, &bytes).expect("write backup");
    {
        let conn = rusqlite::Connection::open(&file).expect("open backup");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(ok, "ok");
        let mut stmt = conn
            .prepare("SELECT version FROM state WHERE key = ?1")
            .expect("prepare");
        for (key, version) in &before {
            let have: i64 = stmt
                .query_row([key], |r| r.get(0))
                .expect("acknowledged key in the backup");
            assert!(
                have >= *version,
                "{key}: backup has v{have}, v{version} was acknowledged before it"
            );
        }
        let seeds: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM state WHERE key LIKE 'seed%'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(seeds, 50);
    }
    let s = Arc::try_unwrap(s).unwrap_or_else(|_| panic!("server still shared"));
    s.stop().await;

    // Restore into a fresh data dir and serve it.
    let target = tempfile::tempdir().expect("tempdir");
    let done = koor_server::store::backup::restore(&file, target.path()).expect("restore");
    assert!(done.previous.is_none());
    let restored = Server::start_in(target, |_| {}).await;
    let seed = restored.get("/api/state/seed7").await;
    assert_eq!(seed.status(), 200);
    assert_eq!(seed.text().await.expect("body"), "{\"i\":7}");
    restored.stop().await;
}

#[tokio::test]
async fn restore_refuses_a_held_dir_a_damaged_file_and_a_newer_schema() {
    let s = Server::start().await;
    assert_eq!(s.put("/api/state/a", "{}").await.status(), 200);
    let bytes = s.get("/api/backup").await.bytes().await.expect("backup");
    let scratch = tempfile::tempdir().expect("tempdir");
    let good = scratch.path().join("good.db");
    std::fs::write(&good, &bytes).expect("write");

    let held = koor_server::store::backup::restore(&good, s.dir.path()).expect_err("held");
    assert!(held.contains("stop it before restoring"), "{held}");
    let dir = s.stop().await;

    let junk = scratch.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just text").expect("write");
    let e = koor_server::store::backup::restore(&junk, dir.path()).expect_err("junk");
    assert!(
        e.contains("not a SQLite database") || e.contains("integrity"),
        "{e}"
    );

    let newer = scratch.path().join("newer.db");
    std::fs::copy(&good, &newer).expect("copy");
    rusqlite::Connection::open(&newer)
        .and_then(|c| c.pragma_update(None, "user_version", 9999))
        .expect("bump version");
    let e = koor_server::store::backup::restore(&newer, dir.path()).expect_err("newer");
    assert!(e.contains("newer than this server knows"), "{e}");

    // Over an existing database: the old one is kept aside.
    let done = koor_server::store::backup::restore(&good, dir.path()).expect("restore");
    let previous = done.previous.expect("the old database is kept");
    assert!(previous.exists());
    let s = Server::start_in(dir, |_| {}).await;
    assert_eq!(s.get("/api/state/a").await.status(), 200);
    error(
        s.post_json("/api/backup", json!({})).await,
        405,
        "not allowed",
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn metrics_in_the_prometheus_text_format_behind_auth() {
    let s = Server::start_with(|c| c.auth_token = Some("m-token".into())).await;
    assert_eq!(
        s.http
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("GET")
            .status(),
        401
    );
    assert_eq!(s.put("/api/state/k", "{}").await.status(), 200);
    assert_eq!(s.get("/api/state/k").await.status(), 200);
    assert_eq!(s.get("/api/state/missing").await.status(), 404);
    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text().await.expect("body");
    for needle in [
        "koor_http_requests_total{route=\"/api/state\",method=\"PUT\",status=\"200\"} 1",
        "koor_http_requests_total{route=\"/api/state\",method=\"GET\",status=\"404\"} 1",
        "koor_http_request_duration_seconds_bucket{route=\"/api/state\",le=",
        "koor_writer_batch_size_count",
        "koor_writer_commit_duration_seconds_bucket",
        "koor_events_published_total 1",
        "koor_event_subscribers 0",
        "koor_state_keys 1",
        "koor_webhooks{health=\"disabled\"} 0",
        "koor_database_bytes ",
        "# TYPE koor_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    promtool_check(&text);
    s.stop().await;
}

/// Runs `promtool check metrics` over the exposition when promtool is installed (`.ci/run`
/// installs it; without it the check is skipped with a message, except under CI).
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "promtool is required under CI: {e}"
            );
            eprintln!("skipping promtool check metrics: promtool not found ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
