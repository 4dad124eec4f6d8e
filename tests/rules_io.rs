//! Rules export and import, as the original's routes.

use serde_json::json;

use crate::harness::{Server, error, json};

#[tokio::test]
async fn export_from_one_server_imports_into_another() {
    let a = Server::start().await;
    let set = a
        .req(reqwest::Method::PUT, "/api/validate/shop/rules")
        .json(&json!([{"rule_id": "no-todo", "pattern": "TODO", "applies_to": ["*.js"]}]))
        .send()
        .await
        .expect("PUT");
    assert_eq!(set.status(), 200);
    json(
        a.post_json(
            "/api/rules/propose",
            json!({"project": "web", "rule_id": "no-log", "pattern": "console\\.log", "proposed_by": "agent-1"}),
        )
        .await,
        200,
    )
    .await;
    json(
        a.post_json(
            "/api/rules/propose",
            json!({"project": "web", "rule_id": "pending", "pattern": "x"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        a.post_json("/api/rules/web/no-log/accept", json!({}))
            .await
            .status(),
        200
    );

    let all = json(a.get("/api/rules/export").await, 200).await;
    let ids: Vec<(&str, &str)> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["rule_id"].as_str().expect("id"),
                r["source"].as_str().expect("source"),
            )
        })
        .collect();
    assert_eq!(ids.len(), 2, "only accepted rules: {all}");
    assert!(ids.contains(&("no-todo", "local")));
    assert!(ids.contains(&("no-log", "learned")));
    let learned = json(a.get("/api/rules/export?source=learned").await, 200).await;
    assert_eq!(learned.as_array().map(Vec::len), Some(1));
    assert_eq!(learned[0]["project"], "web");

    let b = Server::start().await;
    let imported = json(
        b.req(reqwest::Method::POST, "/api/rules/import")
            .json(&all)
            .send()
            .await
            .expect("POST"),
        200,
    )
    .await;
    assert_eq!(imported, json!({"imported": 2}));
    let shop = json(b.get("/api/rules/shop?status=accepted").await, 200).await;
    assert_eq!(shop["rules"][0]["rule_id"], "no-todo");
    assert_eq!(shop["rules"][0]["applies_to"], json!(["*.js"]));
    let run = json(
        b.post_json(
            "/api/validate/web",
            json!({"filename": "a.js", "content": "console.log(1)"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(run["count"], 1, "the imported rule runs: {run}");
    let events = json(
        b.get("/api/events/history?topic=koor.rule.imported").await,
        200,
    )
    .await;
    assert_eq!(events[0]["data"]["count"], 2);

    let post = |body: serde_json::Value| {
        b.req(reqwest::Method::POST, "/api/rules/import")
            .json(&body)
            .send()
    };
    error(
        post(json!([])).await.expect("POST"),
        400,
        "empty rules array",
    )
    .await;
    error(
        post(json!({"rules": []})).await.expect("POST"),
        400,
        "JSON array of rules",
    )
    .await;
    error(
        post(json!([{"rule_id": "x", "pattern": "x"}]))
            .await
            .expect("POST"),
        400,
        "project is required",
    )
    .await;
    error(
        post(json!([{"project": "p", "rule_id": "x", "pattern": "("}]))
            .await
            .expect("POST"),
        400,
        "rule #1",
    )
    .await;
    error(
        post(json!([{"project": "p", "rule_id": "x", "pattern": "a"}, {"project": "p", "rule_id": "x", "pattern": "b"}]))
            .await
            .expect("POST"),
        400,
        "duplicate rule p/x",
    )
    .await;
    error(b.get("/api/rules/import").await, 405, "not allowed").await;
    error(
        b.post_json("/api/rules/export", json!({})).await,
        405,
        "not allowed",
    )
    .await;
    a.stop().await;
    b.stop().await;
}
