//! Webhooks against a real receiver on loopback: signatures, order, retries, restarts, isolation,
//! auto-disable, and bad input.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::harness::{Server, error, json, publish};
use crate::receiver::{Mode, Receiver};

/// Short retry delays so the tests do not wait on backoff.
fn quick(c: &mut koor_server::Config) {
    c.webhook_retry_base = Duration::from_millis(10);
    c.webhook_retry_max = Duration::from_millis(50);
}

async fn add(
    s: &Server,
    id: &str,
    url: &str,
    patterns: &[&str],
    secret: &str,
) -> serde_json::Value {
    json(
        s.post_json(
            "/api/webhooks",
            json!({"id": id, "url": url, "patterns": patterns, "secret": secret}),
        )
        .await,
        200,
    )
    .await
}

async fn hook(s: &Server, id: &str) -> serde_json::Value {
    json(s.get(&format!("/api/webhooks/{id}")).await, 200).await
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_their_ids() {
    let s = Server::start_with(quick).await;
    let r = Receiver::start(Mode::Ack).await;
    let created = add(&s, "ci", &r.url, &["build.*"], "s3cret").await;
    assert_eq!(created["active"], true);
    assert_eq!(created["patterns"], json!(["build.*"]));
    assert!(
        created.get("secret").is_none(),
        "the secret is never sent back: {created}"
    );
    assert_eq!(created["has_secret"], true);

    let first = publish(&s, "build.done", json!({"ok": true, "n": 1.50})).await;
    publish(&s, "other.thing", json!({})).await;
    let second = publish(&s, "build.failed", json!({"ok": false})).await;
    let hits = r.wait_until("two deliveries", |h| h.len() >= 2).await;
    assert_eq!(r.acked_ids(), vec![first, second]);

    for (hit, id) in hits.iter().zip([first, second]) {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(&hit.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hit.header("x-koor-signature").as_deref(),
            Some(want.as_str())
        );
        assert_eq!(hit.header("x-koor-event").as_deref(), Some("true"));
        assert_eq!(hit.header("x-koor-event-id"), Some(id.to_string()));
        assert_eq!(hit.header("x-koor-webhook").as_deref(), Some("ci"));
        assert_eq!(
            hit.header("content-type").as_deref(),
            Some("application/json")
        );
        let body = hit.json();
        assert_eq!(body["event_id"], id);
        assert_eq!(body["source"], "test");
        assert!(body["created_at"].is_string());
    }
    assert_eq!(hits[0].json()["topic"], "build.done");
    assert_eq!(hits[0].json()["data"], json!({"ok": true, "n": 1.50}));
    let d0 = hits[0].header("x-koor-delivery").expect("delivery id");
    let d1 = hits[1].header("x-koor-delivery").expect("delivery id");
    assert_ne!(d0, d1);

    let listed = json(s.get("/api/webhooks").await, 200).await;
    let h = &listed[0];
    assert_eq!(h["id"], "ci");
    assert_eq!(h["delivered"], 2);
    assert_eq!(h["last_status"], 200);
    assert_eq!(h["fail_count"], 0);
    assert_eq!(h["last_event_id"], second);
    assert!(h["last_fired"].is_string());
    assert!(h.get("last_error").is_none());
    assert!(!listed.to_string().contains("s3cret"));
    s.stop().await;
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_gets_every_event_in_order() {
    let s = Server::start_with(quick).await;
    let r = Receiver::start(Mode::FailNext(3, 500)).await;
    add(&s, "flaky", &r.url, &["job.*"], "").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(publish(&s, "job.step", json!({"i": i})).await);
    }
    r.wait_until("five acknowledged", |h| {
        h.iter().filter(|h| h.acked).count() >= 5
    })
    .await;
    assert_eq!(r.acked_ids(), ids);
    let hits = r.hits();
    assert_eq!(hits.iter().filter(|h| !h.acked).count(), 3);
    assert!(hits.iter().all(|h| h.header("x-koor-signature").is_none()));
    // Every attempt for one event carries one delivery id; different events, different ids.
    for id in &ids {
        let mut deliveries: Vec<String> = hits
            .iter()
            .filter(|h| h.event_id() == *id)
            .map(|h| h.header("x-koor-delivery").expect("delivery id"))
            .collect();
        deliveries.dedup();
        assert_eq!(deliveries.len(), 1, "event {id}: {deliveries:?}");
    }
    let first_event_attempts = hits.iter().filter(|h| h.event_id() == ids[0]).count();
    assert_eq!(first_event_attempts, 4, "three failures then the success");

    let h = hook(&s, "flaky").await;
    assert_eq!(h["fail_count"], 0);
    assert_eq!(h["active"], true);
    let history = json(
        s.get("/api/events/history?topic=koor.webhook.*&last=50")
            .await,
        200,
    )
    .await;
    let topics: Vec<&str> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["topic"].as_str())
        .collect();
    assert!(topics.contains(&"koor.webhook.failing"), "{topics:?}");
    assert!(topics.contains(&"koor.webhook.recovered"), "{topics:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_restart_mid_stream_loses_nothing() {
    let s = Server::start_with(quick).await;
    let r = Receiver::start(Mode::Ack).await;
    add(&s, "durable", &r.url, &["data.*"], "k").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(publish(&s, "data.row", json!({"i": i})).await);
    }
    r.wait_until("first three", |h| h.len() >= 3).await;

    // The receiver goes down; events keep coming; the server stops before it can deliver them.
    r.set_mode(Mode::Fail(503));
    for i in 3..6 {
        ids.push(publish(&s, "data.row", json!({"i": i})).await);
    }
    r.wait_until("a failed attempt", |h| h.iter().any(|h| !h.acked))
        .await;
    let dir = s.stop().await;

    r.set_mode(Mode::Ack);
    let s = Server::start_in(dir, quick).await;
    ids.push(publish(&s, "data.row", json!({"i": 6})).await);
    r.wait_until("all seven", |_| r.acked_ids().len() >= 7)
        .await;
    assert_eq!(
        r.acked_ids(),
        ids,
        "every event, in order, after the restart"
    );
    let h = hook(&s, "durable").await;
    assert_eq!(h["last_event_id"], ids[6]);
    s.stop().await;
}

#[tokio::test]
async fn a_hanging_receiver_delays_neither_publishing_nor_other_webhooks() {
    let s = Server::start_with(|c| {
        quick(c);
        c.webhook_timeout = Duration::from_secs(3600);
    })
    .await;
    let stuck = Receiver::start(Mode::Hang).await;
    let good = Receiver::start(Mode::Ack).await;
    add(&s, "stuck", &stuck.url, &["*"], "").await;
    add(&s, "good", &good.url, &["*"], "").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(publish(&s, "load.tick", json!({"i": i})).await);
    }
    good.wait_until("all twenty", |h| h.len() >= 20).await;
    assert_eq!(good.acked_ids(), ids);
    // The stuck receiver is holding its first delivery and has acknowledged nothing.
    stuck
        .wait_until("the first attempt", |h| !h.is_empty())
        .await;
    assert_eq!(stuck.hits().len(), 1);
    let h = hook(&s, "stuck").await;
    assert_eq!(h["delivered"], 0);
    // Shutdown does not wait for the hung delivery.
    s.stop().await;
}

#[tokio::test]
async fn repeated_failures_disable_the_webhook_and_re_adding_resumes_it() {
    let s = Server::start_with(|c| {
        quick(c);
        c.webhook_max_failures = 3;
    })
    .await;
    let r = Receiver::start(Mode::Fail(500)).await;
    add(&s, "dead", &r.url, &["x.*"], "").await;
    let id = publish(&s, "x.y", json!({})).await;
    r.wait_until("three attempts", |h| h.len() >= 3).await;
    let mut disabled = serde_json::Value::Null;
    for _ in 0..600 {
        let history = json(
            s.get("/api/events/history?topic=koor.webhook.disabled")
                .await,
            200,
        )
        .await;
        if let Some(e) = history.as_array().and_then(|a| a.first()) {
            disabled = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(disabled["data"]["id"], "dead", "{disabled}");
    assert_eq!(disabled["data"]["fail_count"], 3);
    let h = hook(&s, "dead").await;
    assert_eq!(h["active"], false);
    assert_eq!(h["last_status"], 500);
    assert_eq!(h["last_error"], "webhook returned status 500");
    assert_eq!(r.hits().len(), 3, "no attempts once disabled");

    // Registering it again re-enables it, and the event it missed is still delivered.
    r.set_mode(Mode::Ack);
    let again = add(&s, "dead", &r.url, &["x.*"], "").await;
    assert_eq!(again["active"], true);
    r.wait_until("the missed event", |_| r.acked_ids() == vec![id])
        .await;
    s.stop().await;
}

#[tokio::test]
async fn crud_test_fire_and_bad_input() {
    let s = Server::start().await;
    let r = Receiver::start(Mode::Ack).await;
    assert_eq!(json(s.get("/api/webhooks").await, 200).await, json!([]));
    error(
        s.post_json("/api/webhooks", json!({"id": "a"})).await,
        400,
        "id and url are required",
    )
    .await;
    error(
        s.post_json("/api/webhooks", json!({"id": "a/b", "url": r.url}))
            .await,
        400,
        "invalid id",
    )
    .await;
    error(
        s.post_json("/api/webhooks", json!({"id": "a", "url": "ftp://x"}))
            .await,
        400,
        "scheme",
    )
    .await;
    error(
        s.post_json("/api/webhooks", json!({"id": "a", "url": "not a url"}))
            .await,
        400,
        "invalid url",
    )
    .await;
    error(
        s.post_json(
            "/api/webhooks",
            json!({"id": "a", "url": "https://example.com/"}),
        )
        .await,
        400,
        "https",
    )
    .await;
    error(
        s.post_json("/api/webhooks", json!([1])).await,
        400,
        "invalid JSON",
    )
    .await;
    error(
        s.req(reqwest::Method::PUT, "/api/webhooks")
            .send()
            .await
            .expect("PUT"),
        405,
        "not allowed",
    )
    .await;
    error(
        s.delete("/api/webhooks/nope").await,
        404,
        "webhook not found: nope",
    )
    .await;
    error(
        s.post_json("/api/webhooks/nope/test", json!({})).await,
        404,
        "webhook not found",
    )
    .await;

    let created = add(&s, "t", &r.url, &[], "sig").await;
    assert_eq!(
        created["patterns"],
        json!(["*"]),
        "no patterns means every topic"
    );
    let tested = json(s.post_json("/api/webhooks/t/test", json!({})).await, 200).await;
    assert_eq!(tested, json!({"tested": "t", "status": "ok"}));
    let hit = &r.hits()[0];
    assert_eq!(hit.json()["topic"], "webhook.test");
    assert_eq!(hit.json()["data"], json!({"webhook_id": "t", "test": true}));
    assert!(hit.header("x-koor-signature").is_some());

    // A receiver that is not there: the test says why.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead_url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    add(&s, "gone", &dead_url, &["nothing.here"], "").await;
    error(
        s.post_json("/api/webhooks/gone/test", json!({})).await,
        400,
        "webhook test failed",
    )
    .await;

    assert_eq!(
        json(s.delete("/api/webhooks/t").await, 200).await,
        json!({"deleted": "t"})
    );
    let listed = json(s.get("/api/webhooks").await, 200).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    s.stop().await;
}
