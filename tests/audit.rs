//! The audit log: one entry per mutation of every kind, with actor, outcome and no token.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, error, json, publish};

const TOKEN: &str = "audit-secret-token";

/// Waits until the audit log holds at least `n` entries (they are appended in the background).
async fn entries(s: &Server, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..1200 {
        let got = json(s.get(&format!("/api/audit?last=1000{query}")).await, 200).await;
        let list = got.as_array().cloned().unwrap_or_default();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let got = json(s.get(&format!("/api/audit?last=1000{query}")).await, 200).await;
    panic!("the audit log never reached {n} entries for {query:?}: {got:#}");
}

fn find<'a>(list: &'a [Value], action: &str) -> &'a Value {
    list.iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {list:#?}"))
}

#[tokio::test]
async fn every_kind_of_mutation_is_recorded_without_the_token() {
    let s = Server::start_with(|c| c.auth_token = Some(TOKEN.into())).await;
    assert_eq!(s.put("/api/state/cfg", "{\"a\":1}").await.status(), 200);
    assert_eq!(s.put("/api/state/cfg", "{\"a\":2}").await.status(), 200);
    assert_eq!(
        s.req(Method::POST, "/api/state/cfg?rollback=1")
            .send()
            .await
            .expect("rollback")
            .status(),
        200
    );
    assert_eq!(s.delete("/api/state/cfg").await.status(), 200);
    assert_eq!(
        s.put("/api/specs/shop/orders", "{\"openapi\":\"3.1.0\"}")
            .await
            .status(),
        200
    );
    assert_eq!(s.delete("/api/specs/shop/orders").await.status(), 200);
    publish(&s, "build.done", json!({})).await;
    let reg = json(
        s.post_json(
            "/api/instances/register",
            json!({"name": "agent-a", "workspace": "/w"}),
        )
        .await,
        200,
    )
    .await;
    let (iid, itoken) = (
        reg["id"].as_str().expect("id").to_owned(),
        reg["token"].as_str().expect("token").to_owned(),
    );
    // An agent naming itself with its token: the entry's actor is the instance.
    let named = s
        .req(Method::PUT, "/api/state/owned")
        .header("x-koor-instance-token", &itoken)
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(named.status(), 200);
    assert_eq!(
        s.delete(&format!("/api/instances/{iid}")).await.status(),
        200
    );
    let rules = s
        .req(Method::PUT, "/api/validate/shop/rules")
        .json(&json!([{"rule_id": "no-todo", "pattern": "TODO"}]))
        .send()
        .await
        .expect("PUT rules");
    assert_eq!(rules.status(), 200);
    json(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "shop", "rule_id": "p1", "pattern": "x", "proposed_by": iid}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        s.post_json("/api/rules/shop/p1/accept", json!({}))
            .await
            .status(),
        200
    );
    let hook = json!({"id": "h1", "url": "http://127.0.0.1:9/", "patterns": ["none.*"], "secret": "hook-secret"});
    assert_eq!(s.post_json("/api/webhooks", hook).await.status(), 200);
    assert_eq!(s.delete("/api/webhooks/h1").await.status(), 200);
    // Reads are not audited; a refused write is, as denied.
    assert_eq!(s.get("/api/state").await.status(), 200);
    let anonymous = s
        .http
        .put(s.url("/api/state/x"))
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(anonymous.status(), 401);
    let bad = s.put("/api/state/", "{}").await;
    assert!(bad.status().is_client_error());

    let list = entries(&s, "", 17).await;
    let raw = serde_json::to_string(&list).expect("json");
    assert!(
        !raw.contains(TOKEN),
        "the bearer token leaked into the audit log"
    );
    assert!(
        !raw.contains(&itoken),
        "an instance token leaked into the audit log"
    );
    assert!(
        !raw.contains("hook-secret"),
        "a webhook secret leaked into the audit log"
    );

    let e = list
        .iter()
        .find(|e| e["action"] == "state.put" && e["resource"] == "cfg")
        .expect("state.put on cfg");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["status"], 200);
    assert_eq!(e["method"], "PUT");
    assert_eq!(e["path"], "/api/state/cfg");
    assert_eq!(e["token_used"], true);
    assert_eq!(e["actor"], "127.0.0.1");
    assert!(
        e["remote"]
            .as_str()
            .expect("remote")
            .starts_with("127.0.0.1:"),
        "{e}"
    );
    assert!(e["timestamp"].is_string());
    let e = find(&list, "state.rollback");
    assert_eq!(e["resource"], "cfg");
    assert_eq!(e["detail"], "{\"query\":\"rollback=1\"}");
    assert_eq!(find(&list, "state.delete")["resource"], "cfg");
    assert_eq!(find(&list, "spec.put")["resource"], "shop/orders");
    assert_eq!(find(&list, "spec.delete")["resource"], "shop/orders");
    assert_eq!(find(&list, "event.publish")["resource"], "build.done");
    assert_eq!(find(&list, "instance.register")["outcome"], "success");
    assert_eq!(find(&list, "instance.deregister")["resource"], iid.as_str());
    assert_eq!(find(&list, "rules.put")["resource"], "shop");
    assert_eq!(find(&list, "rule.propose")["outcome"], "success");
    assert_eq!(find(&list, "rule.accept")["resource"], "shop/p1");
    assert_eq!(find(&list, "webhook.create")["resource"], "h1");
    assert_eq!(find(&list, "webhook.delete")["resource"], "h1");
    let owned = list
        .iter()
        .find(|e| e["resource"] == "owned")
        .expect("the named write");
    assert_eq!(
        owned["actor"],
        iid.as_str(),
        "the instance named by its token is the actor"
    );
    let denied = list
        .iter()
        .find(|e| e["outcome"] == "denied")
        .expect("the refused write");
    assert_eq!(denied["status"], 401);
    assert_eq!(denied["token_used"], false);
    assert!(list.iter().all(|e| e["method"] != "GET"));
    // Newest first, ids increasing with time.
    let ids: Vec<i64> = list.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // Filters.
    let puts = entries(&s, "&action=state.*", 1).await;
    assert!(
        puts.iter()
            .all(|e| e["action"].as_str().expect("action").starts_with("state."))
    );
    let by_actor = entries(&s, &format!("&actor={iid}"), 1).await;
    assert!(by_actor.iter().all(|e| e["actor"] == iid.as_str()));
    let spec = entries(&s, "&resource=shop/*", 2).await;
    assert!(
        spec.iter()
            .all(|e| e["resource"].as_str().expect("r").starts_with("shop/"))
    );
    let two = json(s.get("/api/audit?last=2&since=1h").await, 200).await;
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    let none = json(s.get("/api/audit?since=2999-01-01T00:00:00Z").await, 200).await;
    assert_eq!(none, json!([]));
    let summary = json(s.get("/api/audit/summary").await, 200).await;
    assert!(summary["total_entries"].as_i64().expect("total") >= 17);
    assert_eq!(summary["action_counts"]["state.put"], 5);
    assert!(
        summary["outcome_counts"]["denied"]
            .as_i64()
            .expect("denied")
            >= 1
    );
    assert!(summary["unique_actors"].as_i64().expect("actors") >= 2);
    error(
        s.get("/api/audit?since=yesterday").await,
        400,
        "invalid since",
    )
    .await;
    error(s.get("/api/audit?last=0").await, 400, "invalid last").await;
    error(s.get("/api/audit?last=x").await, 400, "invalid last").await;
    error(
        s.post_json("/api/audit", json!({})).await,
        405,
        "not allowed",
    )
    .await;
    error(s.get("/api/audit/nope").await, 404, "not found").await;
    s.stop().await;
}

#[tokio::test]
async fn entries_written_just_before_a_stop_survive_it() {
    let s = Server::start().await;
    assert_eq!(s.put("/api/state/last-words", "{}").await.status(), 200);
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    let list = entries(&s, "&action=state.put", 1).await;
    assert_eq!(list[0]["resource"], "last-words");
    s.stop().await;
}

#[tokio::test]
async fn retention_keeps_the_newest_entries() {
    let s = Server::start_with(|c| {
        c.audit_retention = 5;
        c.prune_every = Duration::from_millis(50);
    })
    .await;
    for i in 0..12 {
        assert_eq!(s.put(&format!("/api/state/k{i}"), "{}").await.status(), 200);
    }
    // Wait until all twelve were appended and pruning brought them down to five.
    for _ in 0..1200 {
        let got = json(s.get("/api/audit?last=100").await, 200).await;
        let list = got.as_array().cloned().unwrap_or_default();
        if list.len() == 5 && list[0]["resource"] == "k11" {
            assert_eq!(list[4]["resource"], "k7");
            s.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("retention never pruned the audit log to five entries");
}

#[tokio::test]
async fn an_unreadable_instance_token_header_does_not_disturb_the_request() {
    let s = Server::start().await;
    let resp = s
        .req(Method::PUT, "/api/state/odd")
        .header(
            "x-koor-instance-token",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text header"),
        )
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    let list = entries(&s, "&resource=odd", 1).await;
    assert_eq!(list[0]["actor"], "127.0.0.1");
    s.stop().await;
}
