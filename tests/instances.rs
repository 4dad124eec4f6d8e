use std::time::Duration;

use serde_json::json;

use crate::harness::{Seen, Server, error, json, next, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

async fn register(s: &Server, body: serde_json::Value) -> serde_json::Value {
    json(s.post_json("/api/instances/register", body).await, 200).await
}

/// Polls until `cond` holds for the instance, at most 10 s.
async fn wait_status(s: &Server, id: &str, status: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let i = json(s.get(&format!("/api/instances/{id}")).await, 200).await;
        if i["status"] == status {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became {status}: {i}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn lifecycle_pending_active_stale_active_deregistered_with_events_in_order() {
    let s = Server::start_with(|c| c.stale_after = Duration::from_millis(1500)).await;
    let mut sys = ws_connect(&s, "/api/events/subscribe?pattern=koor.instance.*", &[])
        .await
        .expect("connect");

    let r = register(&s, json!({"name": "claude", "workspace": "/w/a", "intent": "refactor", "stack": "rust", "capabilities": ["code", "review"]})).await;
    let id = r["id"].as_str().expect("id").to_owned();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["name"], "claude");
    assert_eq!(r["capabilities"], json!(["code", "review"]));
    let token = r["token"].as_str().expect("token").to_owned();
    assert!(token.len() >= 32);
    for key in ["registered_at", "last_seen", "workspace", "intent", "stack"] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }

    // The token appears only in the registration answer.
    let one = json(s.get(&format!("/api/instances/{id}")).await, 200).await;
    assert!(one.get("token").is_none());
    let list = json(s.get("/api/instances").await, 200).await;
    assert!(!list.to_string().contains(&token));

    let a = json(
        s.post_json(&format!("/api/instances/{id}/activate"), json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(a, json!({"id": id, "status": "active"}));
    let h = json(
        s.post_json(&format!("/api/instances/{id}/heartbeat"), json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(h, json!({"id": id, "status": "ok"}));

    // The monitor marks it stale and says so on the bus.
    loop {
        match next(&mut sys, WAIT).await {
            Seen::Event(e) if e["topic"] == "koor.instance.stale" => break,
            Seen::Event(_) => continue,
            other => panic!("no stale event: {other:?}"),
        }
    }
    let stale = wait_status(&s, &id, "stale").await;
    assert!(!stale.to_string().contains(&token));
    let listed = json(s.get("/api/instances/stale").await, 200).await;
    assert_eq!(listed.as_array().expect("array").len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    // Contact brings it back.
    json(
        s.post_json(&format!("/api/instances/{id}/heartbeat"), json!({}))
            .await,
        200,
    )
    .await;
    let back = json(s.get(&format!("/api/instances/{id}")).await, 200).await;
    assert_eq!(back["status"], "active");
    assert_eq!(
        json(s.get("/api/instances/stale").await, 200).await,
        json!([])
    );

    let c = json(
        s.post_json(
            &format!("/api/instances/{id}/capabilities"),
            json!({"capabilities": ["deploy"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(c, json!({"id": id, "capabilities": ["deploy"]}));

    let d = json(s.delete(&format!("/api/instances/{id}")).await, 200).await;
    assert_eq!(d, json!({"deleted": id}));
    error(
        s.get(&format!("/api/instances/{id}")).await,
        404,
        &format!("instance not found: {id}"),
    )
    .await;

    // Replay the whole sequence from the start.
    let mut sys = ws_connect(
        &s,
        "/api/events/subscribe?pattern=koor.instance.*&since=0",
        &[],
    )
    .await
    .expect("connect");
    let mut seen = Vec::new();
    loop {
        match next(&mut sys, WAIT).await {
            Seen::Event(e) => {
                assert_eq!(e["data"]["id"], id.as_str());
                assert_eq!(e["data"]["name"], "claude");
                assert!(!e.to_string().contains(&token), "no token in events");
                let topic = e["topic"].as_str().expect("topic").to_owned();
                seen.push(format!(
                    "{topic}:{}",
                    e["data"]["status"].as_str().expect("status")
                ));
                if topic == "koor.instance.deregistered" {
                    break;
                }
            }
            other => panic!("events stopped after {seen:?}: {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            "koor.instance.registered:pending",
            "koor.instance.updated:active",
            "koor.instance.stale:stale",
            "koor.instance.updated:active",
            "koor.instance.updated:active",
            "koor.instance.deregistered:active",
        ]
    );
}

#[tokio::test]
async fn filters_and_errors() {
    let s = Server::start().await;
    register(
        &s,
        json!({"name": "a", "workspace": "/w1", "stack": "rust", "capabilities": ["code"]}),
    )
    .await;
    let b = register(
        &s,
        json!({"name": "b", "workspace": "/w2", "stack": "go", "capabilities": ["code", "test"]}),
    )
    .await;
    register(&s, json!({"name": "c"})).await;

    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(
        names(json(s.get("/api/instances").await, 200).await),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?name=b").await, 200).await),
        ["b"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?workspace=/w1").await, 200).await),
        ["a"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?stack=go").await, 200).await),
        ["b"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?capability=code").await, 200).await),
        ["a", "b"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?capability=test&stack=go").await, 200).await),
        ["b"]
    );
    assert_eq!(
        names(json(s.get("/api/instances?status=pending").await, 200).await),
        ["a", "b", "c"]
    );
    let id = b["id"].as_str().expect("id");
    json(
        s.post_json(&format!("/api/instances/{id}/activate"), json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        names(json(s.get("/api/instances?status=active").await, 200).await),
        ["b"]
    );
    assert_eq!(
        json(s.get("/api/instances?name=zzz").await, 200).await,
        json!([])
    );

    error(
        s.post_json("/api/instances/register", json!({"workspace": "/x"}))
            .await,
        400,
        "name is required",
    )
    .await;
    error(
        s.post_json("/api/instances/register", json!({"name": "  "}))
            .await,
        400,
        "name is required",
    )
    .await;
    let resp = s
        .req(reqwest::Method::POST, "/api/instances/register")
        .body("{oops")
        .send()
        .await
        .expect("POST");
    error(resp, 400, "invalid JSON").await;
    error(
        s.get("/api/instances/nope").await,
        404,
        "instance not found: nope",
    )
    .await;
    error(
        s.post_json("/api/instances/nope/heartbeat", json!({}))
            .await,
        404,
        "instance not found: nope",
    )
    .await;
    error(
        s.post_json("/api/instances/nope/activate", json!({})).await,
        404,
        "instance not found: nope",
    )
    .await;
    error(
        s.delete("/api/instances/nope").await,
        404,
        "instance not found: nope",
    )
    .await;
    error(
        s.post_json(&format!("/api/instances/{id}/capabilities"), json!({}))
            .await,
        400,
        "capabilities is required",
    )
    .await;
    error(s.get("/api/instances/register").await, 405, "not allowed").await;
    error(s.put("/api/instances", "{}").await, 405, "not allowed").await;
}

#[tokio::test]
async fn forced_liveness_check_returns_the_newly_stale() {
    let s = Server::start_with(|c| c.stale_after = Duration::from_millis(300)).await;
    let r = register(&s, json!({"name": "x"})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Either the monitor already marked it, or the forced check does now.
    let forced = json(s.post_json("/api/liveness/check", json!({})).await, 200).await;
    let listed = json(s.get("/api/instances/stale").await, 200).await;
    assert_eq!(listed[0]["id"], r["id"]);
    assert!(forced.as_array().expect("array").len() <= 1);
    let again = json(s.post_json("/api/liveness/check", json!({})).await, 200).await;
    assert_eq!(again, json!([]), "already stale: not newly stale");
    let m = json(s.get("/api/metrics").await, 200).await;
    assert_eq!(m["instances"], 1);
    assert_eq!(m["stale_instances"], 1);
}

#[tokio::test]
async fn instances_survive_a_restart_with_correct_status() {
    let s = Server::start_with(|c| c.stale_after = Duration::from_secs(2)).await;
    let fresh = register(&s, json!({"name": "fresh", "capabilities": ["x"]})).await;
    let old = register(&s, json!({"name": "old"})).await;
    let fid = fresh["id"].as_str().expect("id").to_owned();
    json(
        s.post_json(&format!("/api/instances/{fid}/activate"), json!({}))
            .await,
        200,
    )
    .await;
    json(
        s.post_json(&format!("/api/instances/{fid}/heartbeat"), json!({}))
            .await,
        200,
    )
    .await;
    let dir = s.stop().await;

    // Restarted with a threshold the old registration has outlived.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let s = Server::start_in(dir, |c| c.stale_after = Duration::from_secs(1)).await;
    let all = json(s.get("/api/instances").await, 200).await;
    assert_eq!(all.as_array().expect("array").len(), 2, "{all}");
    // Nobody could heartbeat while the server was down: each agent gets one stale-after
    // period from startup instead of being marked stale at once.
    let stale = json(s.get("/api/instances/stale").await, 200).await;
    assert_eq!(stale, json!([]), "none stale right after the restart");
    let oid = old["id"].as_str().expect("id").to_owned();
    assert_eq!(
        json(s.get(&format!("/api/instances/{oid}")).await, 200).await["status"],
        "pending"
    );
    // Without contact, that period runs out like any other.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let o = json(s.get(&format!("/api/instances/{oid}")).await, 200).await;
        if o["status"] == "stale" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never went stale: {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = json(s.get(&format!("/api/instances/{fid}")).await, 200).await;
    assert_eq!(f["capabilities"], json!(["x"]));
    // Contact after the restart brings it back to active.
    json(
        s.post_json(&format!("/api/instances/{fid}/heartbeat"), json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        json(s.get(&format!("/api/instances/{fid}")).await, 200).await["status"],
        "active"
    );
}
