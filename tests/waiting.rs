//! Long-polls: the events wait, the inbox wait and the blocking state read wake on the event that
//! concerns them, answer `[]`/the empty inbox/304 at their deadline, refuse waits over the
//! maximum, show in `/api/metrics` as `waiters`, and end with the server's shutdown. Latency is
//! printed, not asserted (the bench measures it).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Server, error, json, publish};

/// Generous bound for "the answer comes": a hang fails instead of blocking the suite.
const BOUND: Duration = Duration::from_secs(30);

async fn register(s: &Server, name: &str) -> String {
    let r = json(
        s.post_json("/api/instances/register", json!({"name": name}))
            .await,
        200,
    )
    .await;
    r["id"].as_str().expect("id").to_owned()
}

/// Waits until `/api/metrics` counts `n` waiters (the requests have registered).
async fn until_waiters(s: &Server, n: i64) {
    for _ in 0..2000 {
        let m = json(s.get("/api/metrics").await, 200).await;
        if m["waiters"].as_i64() == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never saw {n} waiters");
}

/// Starts a GET in the background; answers (status, body text, when it arrived).
fn spawn_get(s: &Server, path: &str) -> tokio::task::JoinHandle<(StatusCode, String, Instant)> {
    let req = s.req(Method::GET, path);
    tokio::spawn(async move {
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, text, Instant::now())
    })
}

async fn answer(
    task: tokio::task::JoinHandle<(StatusCode, String, Instant)>,
) -> (StatusCode, String, Instant) {
    tokio::time::timeout(BOUND, task)
        .await
        .expect("the waiter answered")
        .expect("task")
}

#[tokio::test]
async fn an_events_wait_returns_on_the_matching_event() {
    let s = Server::start().await;
    let waiter = spawn_get(&s, "/api/events/wait?pattern=api.*&timeout=60s");
    until_waiters(&s, 1).await;
    // Events that do not match leave it waiting.
    publish(&s, "other.topic", json!({})).await;
    publish(&s, "api.change.deep", json!({})).await;
    let at = Instant::now();
    let id = publish(&s, "api.change", json!({"n": 1})).await;
    let (status, text, got) = answer(waiter).await;
    println!("events wait answered {:?} after the publish", got - at);
    assert_eq!(status, 200);
    let events: Vec<Value> = serde_json::from_str(&text).expect("JSON array");
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["id"], id);
    assert_eq!(events[0]["topic"], "api.change");
    assert_eq!(events[0]["data"], json!({"n": 1}));
    until_waiters(&s, 0).await;
}

#[tokio::test]
async fn an_events_wait_with_since_answers_what_is_stored_at_once() {
    let s = Server::start().await;
    let first = publish(&s, "build.done", json!({"n": 1})).await;
    publish(&s, "build.started", json!({})).await;
    let second = publish(&s, "build.done", json!({"n": 2})).await;
    let got = json(
        s.get(&format!(
            "/api/events/wait?pattern=build.done&since={}&timeout=60s",
            first - 1
        ))
        .await,
        200,
    )
    .await;
    let ids: Vec<i64> = got
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![first, second], "oldest first");
    let got = json(
        s.get(&format!(
            "/api/events/wait?pattern=build.done&since={}&last=1",
            first - 1
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(got.as_array().map(Vec::len), Some(1));
    assert_eq!(got[0]["id"], first, "the first `last` of them");

    // Nothing after `since` yet: it waits, and the next match answers it.
    let waiter = spawn_get(
        &s,
        &format!("/api/events/wait?pattern=build.**&since={second}&timeout=60s"),
    );
    until_waiters(&s, 1).await;
    let third = publish(&s, "build.done.linux", json!({})).await;
    let (status, text, _) = answer(waiter).await;
    assert_eq!(status, 200);
    let events: Vec<Value> = serde_json::from_str(&text).expect("array");
    assert_eq!(events[0]["id"], third);

    // System topics only for a `koor` pattern.
    let waiter = spawn_get(&s, "/api/events/wait?pattern=koor.state.*&timeout=60s");
    until_waiters(&s, 1).await;
    s.put("/api/state/k", "{}").await;
    let (_, text, _) = answer(waiter).await;
    let events: Vec<Value> = serde_json::from_str(&text).expect("array");
    assert_eq!(events[0]["topic"], "koor.state.updated");
}

#[tokio::test]
async fn waits_end_empty_at_their_deadline_and_refuse_more_than_the_maximum() {
    let s = Server::start().await;
    let started = Instant::now();
    let got = json(
        s.get("/api/events/wait?pattern=never.*&timeout=1s").await,
        200,
    )
    .await;
    assert_eq!(got, json!([]));
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");

    let a = register(&s, "alpha").await;
    let got = json(
        s.get(&format!("/api/instances/{a}/inbox?wait=1s")).await,
        200,
    )
    .await;
    assert_eq!(got["messages"], json!([]));

    s.put("/api/state/cfg", r#"{"v":1}"#).await;
    let resp = s.get("/api/state/cfg?wait=1s&after=1").await;
    assert_eq!(resp.status(), 304);
    assert_eq!(
        resp.headers()
            .get("x-koor-version")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // `after` older than the current version answers at once, like a GET.
    let resp = s.get("/api/state/cfg?wait=60s&after=0").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), r#"{"v":1}"#);
    // A missing key with after > 0 was deleted: 404.
    error(
        s.get("/api/state/gone?wait=5s&after=3").await,
        404,
        "key not found",
    )
    .await;

    error(
        s.get("/api/events/wait?timeout=121s").await,
        400,
        "longest wait",
    )
    .await;
    error(
        s.get("/api/events/wait?timeout=soon").await,
        400,
        "invalid timeout",
    )
    .await;
    error(
        s.get("/api/events/wait?since=-1").await,
        400,
        "invalid since",
    )
    .await;
    error(
        s.get("/api/events/wait?since=999999").await,
        400,
        "newest_id",
    )
    .await;
    error(s.get("/api/events/wait?last=0").await, 400, "invalid last").await;
    error(
        s.get("/api/state/cfg?wait=3m&after=1").await,
        400,
        "longest wait",
    )
    .await;
    error(
        s.get("/api/state/cfg?wait=5s").await,
        400,
        "after=N is required",
    )
    .await;
    error(
        s.get("/api/state/cfg?wait=5s&after=-2").await,
        400,
        "invalid after",
    )
    .await;
    error(
        s.post_json("/api/events/wait", json!({})).await,
        405,
        "not allowed",
    )
    .await;
    assert_eq!(json(s.get("/api/metrics").await, 200).await["waiters"], 0);
}

#[tokio::test]
async fn an_inbox_wait_wakes_on_a_message_to_it() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let c = register(&s, "gamma").await;
    let waiter = spawn_get(&s, &format!("/api/instances/{b}/inbox?unread=1&wait=60s"));
    until_waiters(&s, 1).await;
    // A message to someone else does not answer it.
    json(
        s.post_json(
            "/api/messages",
            json!({"from": a, "to": [c], "subject": "not you"}),
        )
        .await,
        200,
    )
    .await;
    let at = Instant::now();
    let sent = json(
        s.post_json(
            "/api/messages",
            json!({"from": a, "to": ["beta"], "subject": "are you there?"}),
        )
        .await,
        200,
    )
    .await;
    let (status, text, got) = answer(waiter).await;
    println!("inbox wait answered {:?} after the send", got - at);
    assert_eq!(status, 200);
    let inbox: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(inbox["messages"][0]["id"], sent["id"]);
    assert_eq!(inbox["messages"].as_array().map(Vec::len), Some(1));

    // Unread mail already there answers at once.
    let got = json(
        s.get(&format!("/api/instances/{b}/inbox?unread=1&wait=60s"))
            .await,
        200,
    )
    .await;
    assert_eq!(got["messages"][0]["id"], sent["id"]);

    // Deregistered while waiting: 404.
    let waiter = spawn_get(&s, &format!("/api/instances/{c}/inbox?since=999&wait=60s"));
    until_waiters(&s, 1).await;
    json(s.delete(&format!("/api/instances/{c}")).await, 200).await;
    let (status, text, _) = answer(waiter).await;
    assert_eq!(status, 404, "{text}");
}

#[tokio::test]
async fn a_blocking_state_read_wakes_on_a_new_version_or_deletion() {
    let s = Server::start().await;
    let w = json(s.put("/api/state/plan", r#"{"step":1}"#).await, 200).await;
    assert_eq!(w["version"], 1);
    let waiter = spawn_get(&s, "/api/state/plan?wait=60s&after=1");
    until_waiters(&s, 1).await;
    s.put("/api/state/other", "{}").await;
    let at = Instant::now();
    s.put("/api/state/plan", r#"{"step":2}"#).await;
    let (status, text, got) = answer(waiter).await;
    println!("state wait answered {:?} after the write", got - at);
    assert_eq!(status, 200);
    assert_eq!(text, r#"{"step":2}"#);

    // A key that does not exist yet: after=0 waits for it.
    let waiter = spawn_get(&s, "/api/state/later?wait=60s&after=0");
    until_waiters(&s, 1).await;
    s.put("/api/state/later", r#""here""#).await;
    let (status, text, _) = answer(waiter).await;
    assert_eq!((status.as_u16(), text.as_str()), (200, r#""here""#));

    // Deleted during the wait: 404.
    let waiter = spawn_get(&s, "/api/state/plan?wait=60s&after=2");
    until_waiters(&s, 1).await;
    json(s.delete("/api/state/plan").await, 200).await;
    let (status, text, _) = answer(waiter).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("key not found"), "{text}");
}

#[tokio::test]
async fn a_thousand_waiters_all_wake_on_one_matching_event() {
    const N: usize = 1000;
    let s = Server::start().await;
    // One connection per waiter, as a thousand agents would hold.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = s.url("/api/events/wait?pattern=go&timeout=120s");
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let req = client.get(&url);
            tokio::spawn(async move {
                let resp = req.send().await.expect("send");
                let status = resp.status();
                (status, resp.json::<Vec<Value>>().await.expect("JSON"))
            })
        })
        .collect();
    until_waiters(&s, N as i64).await;
    let id = publish(&s, "go", json!({"all": true})).await;
    for task in tasks {
        let (status, events) = tokio::time::timeout(BOUND, task)
            .await
            .expect("every waiter answered")
            .expect("task");
        assert_eq!(status, 200);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["id"], id);
    }
    until_waiters(&s, 0).await;
}

#[tokio::test]
async fn a_shutdown_ends_every_wait_promptly() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let waiters = vec![
        spawn_get(&s, "/api/events/wait?pattern=never&timeout=120s"),
        spawn_get(&s, &format!("/api/instances/{a}/inbox?wait=120s")),
        spawn_get(&s, "/api/state/none?wait=120s&after=0"),
    ];
    until_waiters(&s, 3).await;
    let started = Instant::now();
    s.stop().await;
    println!(
        "server stopped {:?} after the stop began",
        started.elapsed()
    );
    for w in waiters {
        let (status, text, _) = answer(w).await;
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("shutting down"), "{text}");
    }
}

#[tokio::test]
async fn a_waiter_whose_client_went_away_stops_counting() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let events = spawn_get(&s, "/api/events/wait?pattern=x&timeout=120s");
    let inbox = spawn_get(&s, &format!("/api/instances/{a}/inbox?wait=120s"));
    until_waiters(&s, 2).await;
    // The clients hang up: the server drops their requests, and the waiters with them.
    events.abort();
    inbox.abort();
    until_waiters(&s, 0).await;
}
