//! Locks over the hold model: races, expiry, keepalive, deregistration, fences, waiting, identity.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

async fn register(s: &Server, name: &str) -> (String, String) {
    crate::harness::register_agent(s, name).await
}

async fn acquire(s: &Server, name: &str, body: Value) -> reqwest::Response {
    s.post_json(&format!("/api/locks/{name}"), body).await
}

/// The next event on `ws` whose topic starts with `koor.lock.`.
async fn next_lock_event(ws: &mut crate::harness::Ws) -> Value {
    loop {
        match next(ws, WAIT).await {
            Seen::Event(e)
                if e["topic"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("koor.lock.")) =>
            {
                return e;
            }
            Seen::Event(_) => {}
            other => panic!("no lock event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sixteen_racing_acquirers_exactly_one_wins_fifty_times() {
    let s = Server::start().await;
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(register(&s, &format!("racer-{i}")).await.0);
    }
    let mut last_fence = 0;
    for round in 0..50 {
        let name = format!("race/{round}");
        let attempts = ids.iter().map(|id| {
            let req = s
                .req(Method::POST, &format!("/api/locks/{name}"))
                .json(&json!({"instance_id": id, "ttl": "1m"}));
            async move { req.send().await.expect("send") }
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut winners = Vec::new();
        for resp in answers {
            match resp.status().as_u16() {
                200 => winners.push(resp.json::<Value>().await.expect("json")),
                409 => {
                    let body: Value = resp.json().await.expect("json");
                    assert!(
                        body["holder"]["id"].is_string(),
                        "409 names the holder: {body}"
                    );
                    assert!(body["expires_at"].is_string(), "{body}");
                }
                other => panic!("round {round}: unexpected status {other}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner: {winners:?}"
        );
        let lock = &winners[0];
        let fence = lock["fence"].as_i64().expect("fence");
        assert!(fence > last_fence, "fences strictly increase");
        last_fence = fence;
        let held = json(s.get(&format!("/api/locks/{name}")).await, 200).await;
        assert_eq!(held["holder"], lock["holder"]);
    }
    let all = json(s.get("/api/locks").await, 200).await;
    assert_eq!(all["locks"].as_array().map(Vec::len), Some(50));
    let names: Vec<&str> = all["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| l["name"].as_str().expect("name"))
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted by name");
}

#[tokio::test]
async fn acquire_renew_release_and_errors() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;

    let got = json(
        acquire(&s, "db/migrate", json!({"instance_id": a, "ttl": "30s"})).await,
        200,
    )
    .await;
    assert_eq!(got["name"], "db/migrate");
    assert_eq!(got["holder"], json!({"id": a, "name": "alpha"}));
    for key in ["fence", "acquired_at", "expires_at"] {
        assert!(got.get(key).is_some(), "{key}: {got}");
    }
    // The holder acquiring again renews: same fence, later expiry.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = json(
        acquire(&s, "db/migrate", json!({"instance_id": a, "ttl": "1m"})).await,
        200,
    )
    .await;
    assert_eq!(again["fence"], got["fence"]);
    assert!(again["expires_at"].as_str() > got["expires_at"].as_str());

    let held = error(
        acquire(&s, "db/migrate", json!({"instance_id": b})).await,
        409,
        "held by alpha",
    )
    .await;
    assert_eq!(held["holder"], json!({"id": a, "name": "alpha"}));
    error(
        s.delete(&format!("/api/locks/db/migrate?instance_id={b}"))
            .await,
        409,
        "not by beta",
    )
    .await;
    error(
        s.delete("/api/locks/db/migrate").await,
        400,
        "instance_id is required",
    )
    .await;

    // Bad input: 400s, never 500s.
    error(
        acquire(&s, "x", json!({"instance_id": "nope"})).await,
        400,
        "instance not found: nope",
    )
    .await;
    error(
        acquire(&s, "x", json!({})).await,
        400,
        "instance_id is required",
    )
    .await;
    error(
        acquire(&s, "x", json!({"instance_id": a, "ttl": "1s"})).await,
        400,
        "at least 5s",
    )
    .await;
    error(
        acquire(&s, "x", json!({"instance_id": a, "ttl": "48h"})).await,
        400,
        "at most 24h",
    )
    .await;
    error(
        acquire(&s, "x", json!({"instance_id": a, "ttl": "soon"})).await,
        400,
        "invalid ttl",
    )
    .await;
    error(
        acquire(&s, "x", json!({"instance_id": a, "wait": "2m"})).await,
        400,
        "60s",
    )
    .await;
    error(
        s.post_json("/api/locks/x", json!([1])).await,
        400,
        "invalid JSON",
    )
    .await;
    error(s.get("/api/locks/free").await, 404, "lock not held: free").await;
    error(
        s.delete(&format!("/api/locks/free?instance_id={a}")).await,
        404,
        "lock not held",
    )
    .await;
    error(
        s.req(Method::PUT, "/api/locks/x")
            .send()
            .await
            .expect("send"),
        405,
        "not allowed",
    )
    .await;

    let released = json(
        s.delete(&format!("/api/locks/db/migrate?instance_id={a}"))
            .await,
        200,
    )
    .await;
    assert_eq!(released, json!({"released": "db/migrate"}));
    error(s.get("/api/locks/db/migrate").await, 404, "lock not held").await;

    // Operators force-release whoever holds it.
    json(acquire(&s, "deploy", json!({"instance_id": b})).await, 200).await;
    json(s.delete("/api/locks/deploy?force=1").await, 200).await;
    json(acquire(&s, "deploy", json!({"instance_id": a})).await, 200).await;
}

#[tokio::test]
async fn expiry_frees_the_lock_once_expires_at_passes_and_is_published_first() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.lock.*", &[])
        .await
        .expect("connect");
    let got = json(
        acquire(&s, "short", json!({"instance_id": a, "ttl": "5s"})).await,
        200,
    )
    .await;
    let expires: chrono::DateTime<chrono::Utc> = got["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expires_at");
    assert_eq!(
        next_lock_event(&mut ws).await["topic"],
        "koor.lock.acquired"
    );

    // Just before: still held. Just after: free for the next caller, whether or not the sweep ran.
    let until = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until.saturating_sub(Duration::from_millis(400))).await;
    error(
        acquire(&s, "short", json!({"instance_id": b})).await,
        409,
        "held by alpha",
    )
    .await;
    let until = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until + Duration::from_millis(5)).await;
    let taken = json(acquire(&s, "short", json!({"instance_id": b})).await, 200).await;
    assert_eq!(taken["holder"]["name"], "beta");

    let expired = next_lock_event(&mut ws).await;
    assert_eq!(
        expired["topic"], "koor.lock.expired",
        "the expiry comes first: {expired}"
    );
    assert_eq!(expired["data"]["holder"], json!({"id": a, "name": "alpha"}));
    assert_eq!(expired["data"]["fence"], got["fence"]);
    let acquired = next_lock_event(&mut ws).await;
    assert_eq!(acquired["topic"], "koor.lock.acquired");
    assert_eq!(acquired["data"]["holder"]["name"], "beta");
    assert_eq!(
        acquired["id"], taken["fence"],
        "the fence is the grant's event id"
    );
}

#[tokio::test]
async fn the_sweep_publishes_an_expiry_nobody_asked_about() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.lock.*", &[])
        .await
        .expect("connect");
    json(
        acquire(&s, "idle", json!({"instance_id": a, "ttl": "5s"})).await,
        200,
    )
    .await;
    assert_eq!(
        next_lock_event(&mut ws).await["topic"],
        "koor.lock.acquired"
    );
    let expired = next_lock_event(&mut ws).await;
    assert_eq!(expired["topic"], "koor.lock.expired");
    assert_eq!(expired["data"]["name"], "idle");
    error(s.get("/api/locks/idle").await, 404, "lock not held").await;
}

#[tokio::test]
async fn heartbeats_keep_a_lock_past_several_ttls() {
    let s = Server::start().await;
    let (a, token) = register(&s, "alpha").await;
    let got = json(
        acquire(&s, "long", json!({"instance_id": a, "ttl": "5s"})).await,
        200,
    )
    .await;
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let hb = s
            .req(Method::POST, &format!("/api/instances/{a}/heartbeat"))
            .header("X-Koor-Instance-Token", &token)
            .send()
            .await
            .expect("heartbeat");
        assert_eq!(hb.status(), 200);
    }
    // 14 s later, nearly three TTLs: still the same grant.
    let held = json(s.get("/api/locks/long").await, 200).await;
    assert_eq!(held["fence"], got["fence"]);
    assert!(held["expires_at"].as_str() > got["expires_at"].as_str());
}

#[tokio::test]
async fn deregistering_the_holder_releases_its_locks_and_says_why() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.**", &[])
        .await
        .expect("connect");
    json(acquire(&s, "one", json!({"instance_id": a})).await, 200).await;
    json(acquire(&s, "two", json!({"instance_id": a})).await, 200).await;
    json(s.delete(&format!("/api/instances/{a}")).await, 200).await;
    let mut released = Vec::new();
    while released.len() < 2 {
        let e = next_lock_event(&mut ws).await;
        if e["topic"] == "koor.lock.released" {
            assert_eq!(e["data"]["reason"], "deregistered", "{e}");
            released.push(e["data"]["name"].as_str().expect("name").to_owned());
        }
    }
    released.sort();
    assert_eq!(released, ["one", "two"]);
    let all = json(s.get("/api/locks").await, 200).await;
    assert_eq!(all, json!({"locks": []}));
}

#[tokio::test]
async fn fences_strictly_increase_and_holds_survive_a_restart() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let first = json(
        acquire(&s, "kept", json!({"instance_id": a, "ttl": "10m"})).await,
        200,
    )
    .await;
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    let kept = json(s.get("/api/locks/kept").await, 200).await;
    assert_eq!(kept, first, "same lock, same expiry after the restart");
    let second = json(acquire(&s, "other", json!({"instance_id": a})).await, 200).await;
    assert!(
        second["fence"].as_i64() > first["fence"].as_i64(),
        "{second} after {first}"
    );
}

#[tokio::test]
async fn waiters_get_the_lock_in_arrival_order_as_soon_as_it_is_released() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    let (c, _) = register(&s, "gamma").await;
    let (d, _) = register(&s, "delta").await;
    json(acquire(&s, "q", json!({"instance_id": a})).await, 200).await;

    let wait_for = |id: String| {
        let req = s
            .req(Method::POST, "/api/locks/q")
            .json(&json!({"instance_id": id, "wait": "20s"}));
        tokio::spawn(async move {
            let resp = req.send().await.expect("send");
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.expect("json"),
                std::time::Instant::now(),
            )
        })
    };
    let beta = wait_for(b.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gamma = wait_for(c.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A caller that does not wait gets 409 while others wait.
    error(
        acquire(&s, "q", json!({"instance_id": d})).await,
        409,
        "held by alpha",
    )
    .await;

    let released_at = std::time::Instant::now();
    json(
        s.delete(&format!("/api/locks/q?instance_id={a}")).await,
        200,
    )
    .await;
    let (status, lock, at) = beta.await.expect("beta");
    assert_eq!(status, 200, "{lock}");
    assert_eq!(lock["holder"]["name"], "beta", "the longest waiter first");
    println!(
        "waiter answered {:?} after the release",
        at.duration_since(released_at)
    );
    assert!(!gamma.is_finished(), "gamma still waits");
    error(
        acquire(&s, "q", json!({"instance_id": d})).await,
        409,
        "held by beta",
    )
    .await;

    json(
        s.delete(&format!("/api/locks/q?instance_id={b}")).await,
        200,
    )
    .await;
    let (status, lock, _) = gamma.await.expect("gamma");
    assert_eq!(status, 200);
    assert_eq!(lock["holder"]["name"], "gamma");

    // A wait that ends without the lock is a 409 naming the holder.
    let resp = acquire(&s, "q", json!({"instance_id": d, "wait": "1s"})).await;
    let body = error(resp, 409, "held by gamma").await;
    assert_eq!(body["holder"]["id"], c);
}

#[tokio::test]
async fn a_shutdown_ends_every_wait() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    json(acquire(&s, "held", json!({"instance_id": a})).await, 200).await;
    let req = s
        .req(Method::POST, "/api/locks/held")
        .json(&json!({"instance_id": b, "wait": "60s"}));
    let waiter = tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the wait ended with the server")
        .expect("task");
    println!(
        "wait ended {:?} after the stop began: {answer:?}",
        started.elapsed()
    );
    if let Ok(status) = answer {
        assert_eq!(status, 503);
    }
}

#[tokio::test]
async fn instance_tokens_are_checked_and_can_be_required() {
    let s = Server::start().await;
    let (a, token) = register(&s, "alpha").await;
    let wrong = s
        .req(Method::POST, "/api/locks/t")
        .header("X-Koor-Instance-Token", "koor_wrong")
        .json(&json!({"instance_id": a}))
        .send()
        .await
        .expect("send");
    error(wrong, 403, "does not match").await;
    let hb = s
        .req(Method::POST, &format!("/api/instances/{a}/heartbeat"))
        .header("X-Koor-Instance-Token", "koor_wrong")
        .send()
        .await
        .expect("send");
    error(hb, 403, "does not match").await;
    let right = s
        .req(Method::POST, "/api/locks/t")
        .header("X-Koor-Instance-Token", &token)
        .json(&json!({"instance_id": a}))
        .send()
        .await
        .expect("send");
    assert_eq!(right.status(), 200);
    let dir = s.stop().await;

    let s = Server::start_in(dir, |c| c.require_instance_token = true).await;
    error(
        acquire(&s, "t2", json!({"instance_id": a})).await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    error(
        s.delete(&format!("/api/locks/t?instance_id={a}")).await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    let with = s
        .req(Method::DELETE, &format!("/api/locks/t?instance_id={a}"))
        .header("X-Koor-Instance-Token", &token)
        .send()
        .await
        .expect("send");
    assert_eq!(with.status(), 200);
}
