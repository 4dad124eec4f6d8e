//! Task boards over the hold model: claim races, dependency order, reclaim on expiry and on
//! deregistration, conditional PATCH, the holder's calls, operators' force, events, bad input.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

const WAIT: Duration = Duration::from_secs(15);

async fn register(s: &Server, name: &str) -> String {
    crate::harness::register_agent(s, name).await.0
}

async fn claim(s: &Server, project: &str, body: Value) -> reqwest::Response {
    s.post_json(&format!("/api/tasks/{project}/claim"), body)
        .await
}

async fn call(s: &Server, project: &str, id: &str, action: &str, body: Value) -> reqwest::Response {
    s.post_json(&format!("/api/tasks/{project}/{id}/{action}"), body)
        .await
}

/// The next event on `ws` whose topic starts with `koor.task.`.
async fn next_task_event(ws: &mut crate::harness::Ws) -> Value {
    loop {
        match next(ws, WAIT).await {
            Seen::Event(e)
                if e["topic"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("koor.task.")) =>
            {
                return e;
            }
            Seen::Event(_) => {}
            other => panic!("no task event: {other:?}"),
        }
    }
}

fn id_of(t: &Value) -> String {
    t["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn sixteen_claimers_five_ready_tasks_each_claimed_exactly_once_fifty_times() {
    let s = Server::start().await;
    let mut agents = Vec::new();
    for i in 0..16 {
        agents.push(register(&s, &format!("worker-{i}")).await);
    }
    for round in 0..50 {
        let project = format!("race-{round}");
        let plan: Vec<Value> = (0..5)
            .map(|i| json!({"title": format!("task {i}")}))
            .collect();
        let created = json(
            s.post_json(&format!("/api/tasks/{project}"), json!(plan))
                .await,
            200,
        )
        .await;
        assert_eq!(created["tasks"].as_array().map(Vec::len), Some(5));
        let attempts = agents.iter().map(|id| {
            let req = s
                .req(Method::POST, &format!("/api/tasks/{project}/claim"))
                .json(&json!({"instance_id": id, "ttl": "1m"}));
            async move { req.send().await.expect("send") }
        });
        let answers = futures_util::future::join_all(attempts).await;
        let mut claimed = Vec::new();
        let mut none_left = 0;
        for resp in answers {
            match resp.status().as_u16() {
                200 => claimed.push(resp.json::<Value>().await.expect("json")),
                404 => {
                    let body: Value = resp.json().await.expect("json");
                    assert_eq!(
                        body["error"],
                        format!("no ready task in {project}"),
                        "{body}"
                    );
                    none_left += 1;
                }
                other => panic!("round {round}: unexpected status {other}"),
            }
        }
        let ids: HashSet<String> = claimed.iter().map(id_of).collect();
        assert_eq!(claimed.len(), 5, "round {round}: five claims: {claimed:?}");
        assert_eq!(ids.len(), 5, "round {round}: no task went to two claimers");
        assert_eq!(none_left, 11, "round {round}");
        let holders: HashSet<&str> = claimed
            .iter()
            .map(|t| t["claim"]["holder"]["id"].as_str().expect("holder"))
            .collect();
        assert_eq!(holders.len(), 5, "round {round}: five different claimers");
        let board = json(s.get(&format!("/api/tasks/{project}")).await, 200).await;
        for t in board["tasks"].as_array().expect("tasks") {
            assert_eq!(t["status"], "claimed", "{t}");
            assert!(t["claim"]["fence"].is_i64(), "{t}");
        }
    }

    // Racing for one given task: exactly one winner, the others 409 naming it.
    let created = json(
        s.post_json("/api/tasks/one", json!({"title": "the only one"}))
            .await,
        200,
    )
    .await;
    let attempts = agents.iter().map(|id| {
        let req = s
            .req(Method::POST, "/api/tasks/one/claim")
            .json(&json!({"instance_id": id, "id": created["id"]}));
        async move { req.send().await.expect("send").status().as_u16() }
    });
    let mut codes = futures_util::future::join_all(attempts).await;
    codes.sort_unstable();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 15, "{codes:?}");
}

#[tokio::test]
async fn a_task_is_never_claimable_before_its_dependencies_are_done() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    // A five-step plan: design -> (api, ui) -> tests -> release; ui has the highest priority.
    let plan = json!([
        {"title": "design", "labels": ["doc"]},
        {"title": "api", "depends_on": ["#0"], "labels": ["backend"]},
        {"title": "ui", "depends_on": ["#0"], "priority": 5, "labels": ["frontend"]},
        {"title": "tests", "depends_on": ["#1", "#2"]},
        {"title": "release", "depends_on": ["#3"], "priority": 9},
    ]);
    let created = json(s.post_json("/api/tasks/shop", plan).await, 200).await;
    let ids: Vec<String> = created["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, ["T-1", "T-2", "T-3", "T-4", "T-5"]);
    assert_eq!(created["project"], "shop");
    assert_eq!(created["tasks"][3]["depends_on"], json!(["T-2", "T-3"]));
    assert_eq!(created["tasks"][0]["ready"], true);
    assert_eq!(created["tasks"][1]["ready"], false);

    let ready = json(s.get("/api/tasks/shop?ready=1").await, 200).await;
    assert_eq!(ready["tasks"].as_array().map(Vec::len), Some(1));
    assert_eq!(ready["tasks"][0]["id"], "T-1");

    // A given task that waits: 409 naming what it waits for.
    let body = error(
        claim(&s, "shop", json!({"instance_id": a, "id": "T-4"})).await,
        409,
        "waits for T-2, T-3",
    )
    .await;
    assert_eq!(body["waits_for"], json!(["T-2", "T-3"]));

    let mut order = Vec::new();
    let mut done = HashSet::new();
    loop {
        let resp = claim(&s, "shop", json!({"instance_id": a})).await;
        if resp.status() == 404 {
            break;
        }
        let t = json(resp, 200).await;
        for dep in t["depends_on"].as_array().expect("deps") {
            assert!(
                done.contains(dep.as_str().expect("dep")),
                "{} claimed before {dep} was done",
                t["id"]
            );
        }
        let id = id_of(&t);
        let finished = json(
            call(
                &s,
                "shop",
                &id,
                "complete",
                json!({"instance_id": a, "result": {"ok": true}}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(finished["status"], "done");
        assert_eq!(finished["result"], json!({"ok": true}));
        assert_eq!(finished["claim"], Value::Null);
        done.insert(id.clone());
        order.push(id);
    }
    // Priority among the ready ones: ui (5) before api (0).
    assert_eq!(order, ["T-1", "T-3", "T-2", "T-4", "T-5"]);
    let board = json(s.get("/api/tasks/shop?status=done").await, 200).await;
    assert_eq!(board["tasks"].as_array().map(Vec::len), Some(5));
    // Ordered by priority, then age.
    let listed: Vec<String> = board["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, ["T-5", "T-3", "T-1", "T-2", "T-4"]);
}

#[tokio::test]
async fn bad_dependencies_are_400s_and_create_nothing() {
    let s = Server::start().await;
    json(
        s.post_json("/api/tasks/p", json!({"title": "one"})).await,
        200,
    )
    .await;
    error(
        s.post_json("/api/tasks/p", json!({"title": "x", "depends_on": ["T-9"]}))
            .await,
        400,
        "unknown dependency: p/T-9",
    )
    .await;
    error(
        s.post_json(
            "/api/tasks/p",
            json!([{"title": "a", "depends_on": ["#1"]}, {"title": "b"}]),
        )
        .await,
        400,
        "earlier items",
    )
    .await;
    error(
        s.post_json(
            "/api/tasks/p",
            json!([{"title": "a", "depends_on": ["#0"]}]),
        )
        .await,
        400,
        "cycle",
    )
    .await;
    error(
        s.post_json(
            "/api/tasks/p",
            json!([{"title": "ok"}, {"title": "bad", "depends_on": ["nope"]}]),
        )
        .await,
        400,
        "task #1: unknown dependency",
    )
    .await;
    // Nothing of a refused array was created.
    let board = json(s.get("/api/tasks/p").await, 200).await;
    assert_eq!(board["tasks"].as_array().map(Vec::len), Some(1));

    // A cycle made by PATCH: T-2 depends on T-1; T-1 may not then depend on T-2.
    json(
        s.post_json(
            "/api/tasks/p",
            json!({"title": "two", "depends_on": ["T-1"]}),
        )
        .await,
        200,
    )
    .await;
    let patch = s
        .req(Method::PATCH, "/api/tasks/p/T-1")
        .json(&json!({"depends_on": ["T-2"]}))
        .send()
        .await
        .expect("send");
    error(patch, 400, "dependency cycle: T-1 -> T-2 -> T-1").await;

    // Other bad input: clear 400s.
    error(
        s.post_json("/api/tasks/p", json!({})).await,
        400,
        "title is required",
    )
    .await;
    error(
        s.post_json("/api/tasks/p", json!([])).await,
        400,
        "no tasks given",
    )
    .await;
    error(
        s.post_json("/api/tasks/p", json!(7)).await,
        400,
        "task object",
    )
    .await;
    error(
        s.post_json("/api/tasks/p", json!({"title": "t", "dependencies": []}))
            .await,
        400,
        "unknown field",
    )
    .await;
    error(
        s.post_json("/api/tasks/p", json!({"title": "t", "priority": "high"}))
            .await,
        400,
        "invalid task",
    )
    .await;
    error(
        s.get("/api/tasks/p?status=busy").await,
        400,
        "invalid status",
    )
    .await;
    error(
        s.get("/api/tasks/p/T-99").await,
        404,
        "task not found: p/T-99",
    )
    .await;
    error(s.get("/api/tasks/p/banana").await, 404, "task not found").await;
    error(
        s.req(Method::PUT, "/api/tasks/p")
            .send()
            .await
            .expect("send"),
        405,
        "not allowed",
    )
    .await;
    error(
        claim(&s, "p", json!({})).await,
        400,
        "instance_id is required",
    )
    .await;
    error(
        claim(&s, "p", json!({"instance_id": "ghost"})).await,
        400,
        "instance not found: ghost",
    )
    .await;
}

#[tokio::test]
async fn the_holders_calls_and_their_errors() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.task.*", &[])
        .await
        .expect("connect");
    let t = json(
        s.post_json(
            "/api/tasks/web",
            json!({"title": "dark mode", "labels": ["ui"], "instance_id": a}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(t["id"], "T-1");
    assert_eq!(t["status"], "open");
    assert_eq!(t["created_by"], a.as_str());
    assert_eq!(t["version"], 1);
    let created = next_task_event(&mut ws).await;
    assert_eq!(created["topic"], "koor.task.created");
    assert_eq!(created["data"]["id"], "T-1");
    assert_eq!(created["data"]["holder"], Value::Null);

    // By label: none with "backend"; the "ui" one is there.
    error(
        claim(&s, "web", json!({"instance_id": a, "label": "backend"})).await,
        404,
        "no ready task in web with label backend",
    )
    .await;
    let got = json(
        claim(
            &s,
            "web",
            json!({"instance_id": a, "label": "ui", "ttl": "30s"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(got["status"], "claimed");
    assert_eq!(got["claim"]["holder"], json!({"id": a, "name": "alpha"}));
    let claimed = next_task_event(&mut ws).await;
    assert_eq!(claimed["topic"], "koor.task.claimed");
    assert_eq!(claimed["data"]["holder"]["name"], "alpha");
    assert_eq!(
        claimed["id"], got["claim"]["fence"],
        "the fence is the claim's event id"
    );

    // Someone else: 409 with the holder; not the holder: 409.
    let held = error(
        claim(&s, "web", json!({"instance_id": b, "id": "T-1"})).await,
        409,
        "held by alpha",
    )
    .await;
    assert_eq!(held["holder"]["id"], a.as_str());
    for action in ["renew", "complete", "release"] {
        error(
            call(&s, "web", "T-1", action, json!({"instance_id": b})).await,
            409,
            "not by beta",
        )
        .await;
    }
    error(
        call(&s, "web", "T-1", "fail", json!({"instance_id": a})).await,
        400,
        "reason is required",
    )
    .await;

    // Renew keeps the fence.
    let renewed = json(
        call(
            &s,
            "web",
            "T-1",
            "renew",
            json!({"instance_id": a, "ttl": "2m"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renewed["claim"]["fence"], got["claim"]["fence"]);
    assert!(renewed["claim"]["expires_at"].as_str() > got["claim"]["expires_at"].as_str());

    // Release: back to open, attempts unchanged, the reason kept.
    let released = json(
        call(
            &s,
            "web",
            "T-1",
            "release",
            json!({"instance_id": a, "reason": "lunch"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(released["status"], "open");
    assert_eq!(released["claim"], Value::Null);
    assert_eq!(released["attempts"], 0);
    assert_eq!(released["reason"], "lunch");
    let e = next_task_event(&mut ws).await;
    assert_eq!(e["topic"], "koor.task.released");
    assert_eq!(e["data"]["reason"], "lunch");
    error(
        call(&s, "web", "T-1", "complete", json!({"instance_id": a})).await,
        409,
        "not claimed",
    )
    .await;

    // Fail: terminal until reopened with PATCH.
    json(claim(&s, "web", json!({"instance_id": b})).await, 200).await;
    let failed = json(
        call(
            &s,
            "web",
            "T-1",
            "fail",
            json!({"instance_id": b, "reason": "flaky build"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(failed["status"], "failed");
    error(
        claim(&s, "web", json!({"instance_id": a, "id": "T-1"})).await,
        409,
        "it is failed",
    )
    .await;
    let reopen = s
        .req(Method::PATCH, "/api/tasks/web/T-1")
        .json(&json!({"status": "open"}))
        .send()
        .await
        .expect("send");
    assert_eq!(json(reopen, 200).await["status"], "open");

    // An operator puts a claimed task back to open: reclaimed, attempts + 1.
    json(claim(&s, "web", json!({"instance_id": a})).await, 200).await;
    let forced = json(
        s.post_json("/api/tasks/web/T-1/release?force=1", json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(forced["status"], "open");
    assert_eq!(forced["attempts"], 1);
    assert_eq!(forced["reason"], "forced");
    error(
        s.post_json("/api/tasks/web/T-1/release?force=1", json!({}))
            .await,
        409,
        "not claimed",
    )
    .await;

    // Cancel: kept on the board; a claim on it ends; done tasks stay done.
    json(claim(&s, "web", json!({"instance_id": a})).await, 200).await;
    let cancelled = json(s.delete("/api/tasks/web/T-1").await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["claim"], Value::Null);
    let board = json(s.get("/api/tasks/web?status=cancelled").await, 200).await;
    assert_eq!(board["tasks"][0]["id"], "T-1");
    json(
        s.post_json("/api/tasks/web", json!({"title": "two"})).await,
        200,
    )
    .await;
    json(claim(&s, "web", json!({"instance_id": a})).await, 200).await;
    json(
        call(&s, "web", "T-2", "complete", json!({"instance_id": a})).await,
        200,
    )
    .await;
    error(s.delete("/api/tasks/web/T-2").await, 409, "is done").await;

    let topics: Vec<String> = {
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("koor.task.completed") {
            seen.push(
                next_task_event(&mut ws).await["topic"]
                    .as_str()
                    .expect("topic")
                    .to_owned(),
            );
        }
        seen
    };
    for t in [
        "koor.task.failed",
        "koor.task.updated",
        "koor.task.reclaimed",
        "koor.task.cancelled",
        "koor.task.completed",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} in {topics:?}");
    }

    let boards = json(s.get("/api/tasks").await, 200).await;
    assert_eq!(boards["boards"][0]["project"], "web");
    assert_eq!(boards["boards"][0]["counts"]["done"], 1);
}

#[tokio::test]
async fn patch_with_a_stale_version_is_a_412() {
    let s = Server::start().await;
    json(
        s.post_json("/api/tasks/p", json!({"title": "first"})).await,
        200,
    )
    .await;
    let resp = s.get("/api/tasks/p/T-1").await;
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_owned();
    assert_eq!(etag, "\"1\"");
    let patch = |tag: &str, body: Value| {
        s.req(Method::PATCH, "/api/tasks/p/T-1")
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    let changed = json(
        patch(
            &etag,
            json!({"title": "renamed", "priority": 3, "labels": ["a", "b"]}),
        )
        .await
        .expect("send"),
        200,
    )
    .await;
    assert_eq!(changed["title"], "renamed");
    assert_eq!(changed["priority"], 3);
    assert_eq!(changed["labels"], json!(["a", "b"]));
    assert_eq!(changed["version"], 2);
    let stale = error(
        patch(&etag, json!({"title": "lost update"}))
            .await
            .expect("send"),
        412,
        "version 2, not 1",
    )
    .await;
    assert_eq!(stale["current_version"], 2);
    assert_eq!(
        json(s.get("/api/tasks/p/T-1").await, 200).await["title"],
        "renamed"
    );
    error(
        patch("\"2\"", json!({})).await.expect("send"),
        400,
        "nothing to change",
    )
    .await;
    error(
        patch("\"2\"", json!({"status": "done"}))
            .await
            .expect("send"),
        400,
        "only reopens",
    )
    .await;
    // Reopening an open task changes nothing but the version.
    let same = json(
        patch("\"2\"", json!({"status": "open"}))
            .await
            .expect("send"),
        200,
    )
    .await;
    assert_eq!(same["status"], "open");
    assert_eq!(same["version"], 3);
}

#[tokio::test]
async fn an_expired_claim_is_reclaimed_with_one_more_attempt() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.task.*", &[])
        .await
        .expect("connect");
    json(
        s.post_json("/api/tasks/p", json!({"title": "slow"})).await,
        200,
    )
    .await;
    let got = json(
        claim(&s, "p", json!({"instance_id": a, "ttl": "5s"})).await,
        200,
    )
    .await;
    assert_eq!(next_task_event(&mut ws).await["topic"], "koor.task.created");
    assert_eq!(next_task_event(&mut ws).await["topic"], "koor.task.claimed");

    // Nobody asks: the sweep reclaims it and says so.
    let e = next_task_event(&mut ws).await;
    assert_eq!(e["topic"], "koor.task.reclaimed", "{e}");
    assert_eq!(e["data"]["reason"], "expired");
    assert_eq!(e["data"]["attempts"], 1);
    assert_eq!(e["data"]["holder"], json!({"id": a, "name": "alpha"}));
    assert_eq!(e["data"]["fence"], got["claim"]["fence"]);
    let t = json(s.get("/api/tasks/p/T-1").await, 200).await;
    assert_eq!(t["status"], "open");
    assert_eq!(t["ready"], true);
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["claim"], Value::Null);

    // The next claimer gets it with a higher fence.
    let again = json(claim(&s, "p", json!({"instance_id": b})).await, 200).await;
    assert_eq!(again["claim"]["holder"]["name"], "beta");
    assert!(again["claim"]["fence"].as_i64() > got["claim"]["fence"].as_i64());
}

#[tokio::test]
async fn deregistering_the_holder_puts_its_tasks_back() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.task.*", &[])
        .await
        .expect("connect");
    json(
        s.post_json("/api/tasks/p", json!([{"title": "one"}, {"title": "two"}]))
            .await,
        200,
    )
    .await;
    json(claim(&s, "p", json!({"instance_id": a})).await, 200).await;
    json(claim(&s, "p", json!({"instance_id": a})).await, 200).await;
    json(s.delete(&format!("/api/instances/{a}")).await, 200).await;
    let mut reclaimed = Vec::new();
    while reclaimed.len() < 2 {
        let e = next_task_event(&mut ws).await;
        if e["topic"] == "koor.task.reclaimed" {
            assert_eq!(e["data"]["reason"], "deregistered", "{e}");
            reclaimed.push(e["data"]["id"].as_str().expect("id").to_owned());
        }
    }
    reclaimed.sort();
    assert_eq!(reclaimed, ["T-1", "T-2"]);
    let board = json(s.get("/api/tasks/p?ready=1").await, 200).await;
    for t in board["tasks"].as_array().expect("tasks") {
        assert_eq!(t["status"], "open");
        assert_eq!(t["attempts"], 1);
    }
    assert_eq!(board["tasks"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn heartbeats_keep_a_claim_and_claims_survive_a_restart() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    json(
        s.post_json("/api/tasks/p", json!({"title": "long"})).await,
        200,
    )
    .await;
    let got = json(
        claim(&s, "p", json!({"instance_id": a, "ttl": "5s"})).await,
        200,
    )
    .await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        json(
            s.req(Method::POST, &format!("/api/instances/{a}/heartbeat"))
                .send()
                .await
                .expect("heartbeat"),
            200,
        )
        .await;
    }
    let held = json(s.get("/api/tasks/p/T-1").await, 200).await;
    assert_eq!(held["status"], "claimed");
    assert_eq!(held["claim"]["fence"], got["claim"]["fence"]);
    assert_eq!(
        held["version"], got["version"],
        "a renewal does not touch the task"
    );

    let long = json(
        call(
            &s,
            "p",
            "T-1",
            "renew",
            json!({"instance_id": a, "ttl": "10m"}),
        )
        .await,
        200,
    )
    .await;
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    let kept = json(s.get("/api/tasks/p/T-1").await, 200).await;
    assert_eq!(kept, long, "same task, same claim after the restart");
    let next = json(
        s.post_json("/api/tasks/p", json!({"title": "next"})).await,
        200,
    )
    .await;
    assert_eq!(next["id"], "T-2");
}

#[tokio::test]
async fn instance_tokens_are_checked_on_task_calls() {
    let s = Server::start_with(|c| c.require_instance_token = true).await;
    let r = json(
        s.post_json("/api/instances/register", json!({"name": "alpha"}))
            .await,
        200,
    )
    .await;
    let (a, token) = (
        r["id"].as_str().expect("id").to_owned(),
        r["token"].as_str().expect("token").to_owned(),
    );
    json(
        s.post_json("/api/tasks/p", json!({"title": "t"})).await,
        200,
    )
    .await;
    error(
        claim(&s, "p", json!({"instance_id": a})).await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    let wrong = s
        .req(Method::POST, "/api/tasks/p/claim")
        .header("X-Koor-Instance-Token", "koor_wrong")
        .json(&json!({"instance_id": a}))
        .send()
        .await
        .expect("send");
    error(wrong, 403, "does not match").await;
    let right = s
        .req(Method::POST, "/api/tasks/p/claim")
        .header("X-Koor-Instance-Token", &token)
        .json(&json!({"instance_id": a}))
        .send()
        .await
        .expect("send");
    assert_eq!(json(right, 200).await["id"], "T-1");
}
