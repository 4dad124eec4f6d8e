//! MCP for the coordination layer and the hardened argument rules: resuming an identity, the
//! lock tool, strict argument types, the discover limit, an oversized message.

use serde_json::{Value, json};

use crate::harness::{Server, json};
use crate::mcp::{call, connect, err_text, ok_json, post_raw, req};

#[tokio::test]
async fn register_instance_resumes_with_instance_id_and_token() {
    let s = Server::start().await;
    let c = connect(&s).await;
    let r = ok_json(&call(&c, "register_instance", json!({"name": "claude"})).await);
    let (id, token) = (r["instance_id"].clone(), r["token"].clone());
    assert_eq!(r["resumed"], false);
    let msg = r["message"].as_str().expect("message");
    assert!(msg.contains("inbox"), "tells how to check the inbox: {msg}");

    let again = ok_json(
        &call(
            &c,
            "register_instance",
            json!({"name": "claude", "instance_id": id, "token": token}),
        )
        .await,
    );
    assert_eq!(again["instance_id"], id, "same id");
    assert_eq!(again["resumed"], true);
    assert_eq!(again["status"], "active");
    let all = json(s.get("/api/instances").await, 200).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "no second instance");

    let wrong = err_text(
        &call(
            &c,
            "register_instance",
            json!({"name": "claude", "instance_id": id, "token": "koor_x"}),
        )
        .await,
    );
    assert!(wrong.contains("does not match"), "{wrong}");
    let unknown = err_text(
        &call(
            &c,
            "register_instance",
            json!({"name": "claude", "instance_id": "nope", "token": "t"}),
        )
        .await,
    );
    assert!(unknown.contains("instance not found"), "{unknown}");
}

#[tokio::test]
async fn lock_tool_acquires_lists_and_releases() {
    let s = Server::start().await;
    let c = connect(&s).await;
    let a = ok_json(&call(&c, "register_instance", json!({"name": "a"})).await);
    let b = ok_json(&call(&c, "register_instance", json!({"name": "b"})).await);
    let got = ok_json(
        &call(&c, "lock", json!({"action": "acquire", "name": "db/migrate", "instance_id": a["instance_id"], "ttl": "2m"})).await,
    );
    assert_eq!(got["holder"]["name"], "a");
    assert!(got["fence"].as_i64().is_some());
    let held = err_text(
        &call(
            &c,
            "lock",
            json!({"action": "acquire", "name": "db/migrate", "instance_id": b["instance_id"]}),
        )
        .await,
    );
    assert!(
        held.contains("conflict") && held.contains("held by a"),
        "{held}"
    );
    let list = ok_json(&call(&c, "lock", json!({"action": "list"})).await);
    assert_eq!(list["locks"][0]["name"], "db/migrate");
    let bad = err_text(
        &call(&c, "lock", json!({"action": "acquire", "name": "x", "instance_id": a["instance_id"], "wait_s": 90})).await,
    );
    assert!(bad.contains("wait_s"), "{bad}");
    let wrong = err_text(
        &call(&c, "lock", json!({"action": "release", "name": "db/migrate", "instance_id": a["instance_id"], "token": "koor_wrong"})).await,
    );
    assert!(wrong.contains("does not match"), "{wrong}");
    ok_json(
        &call(&c, "lock", json!({"action": "release", "name": "db/migrate", "instance_id": a["instance_id"], "token": a["token"]})).await,
    );
    let list = ok_json(&call(&c, "lock", json!({"action": "list"})).await);
    assert_eq!(list["locks"], json!([]));
}

#[tokio::test]
async fn arguments_must_have_the_types_their_schema_says() {
    let s = Server::start().await;
    let c = connect(&s).await;
    let e = err_text(&call(&c, "register_instance", json!({"name": 5})).await);
    assert!(e.contains("\"name\" must be a string, not a number"), "{e}");
    let e = err_text(&call(&c, "discover_instances", json!({"limit": "ten"})).await);
    assert!(e.contains("must be an integer"), "{e}");
    let all = json(s.get("/api/instances").await, 200).await;
    assert_eq!(all, json!([]), "nothing registered by the bad calls");
}

#[tokio::test]
async fn discover_instances_is_limited_and_says_when_more_exist() {
    let s = Server::start().await;
    for i in 0..105 {
        json(
            s.post_json(
                "/api/instances/register",
                json!({"name": format!("agent-{i}")}),
            )
            .await,
            200,
        )
        .await;
    }
    let c = connect(&s).await;
    let d = ok_json(&call(&c, "discover_instances", json!({})).await);
    assert_eq!(d["count"], 100);
    assert_eq!(d["total"], 105);
    assert_eq!(d["truncated"], true);
    assert!(
        d["message"].as_str().is_some_and(|m| m.contains("105")),
        "{d}"
    );
    let d = ok_json(&call(&c, "discover_instances", json!({"limit": 200})).await);
    assert_eq!(d["count"], 105);
    assert!(d.get("truncated").is_none());
}

#[tokio::test]
async fn a_message_over_one_mib_is_a_json_rpc_error() {
    let s = Server::start().await;
    let big = "x".repeat(1024 * 1024 + 10);
    let body = req(
        1,
        "tools/call",
        json!({"name": "set_intent", "arguments": {"instance_id": "i", "intent": big}}),
    );
    let (status, _, text) = post_raw(&s, "/mcp", &[], body.to_string()).await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_str(&text).expect("JSON-RPC body");
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], -32600);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than")),
        "{v}"
    );
}

#[tokio::test]
async fn reserve_tool_reserves_checks_and_releases() {
    let s = Server::start().await;
    let c = connect(&s).await;
    let a = ok_json(&call(&c, "register_instance", json!({"name": "a"})).await);
    let b = ok_json(&call(&c, "register_instance", json!({"name": "b"})).await);
    let got = ok_json(
        &call(
            &c,
            "reserve",
            json!({"action": "reserve", "project": "shop", "paths": ["src/auth/**"],
                                   "instance_id": a["instance_id"], "reason": "auth refactor"}),
        )
        .await,
    );
    assert_eq!(got["reservations"][0]["path"], "src/auth/**");
    assert_eq!(got["reservations"][0]["exclusive"], true);
    let check = ok_json(
        &call(
            &c,
            "reserve",
            json!({"action": "check", "project": "shop", "paths": ["./src/auth/login.rs"],
                                   "instance_id": b["instance_id"]}),
        )
        .await,
    );
    assert_eq!(check["ok"], false, "{check}");
    let conflict = err_text(
        &call(
            &c,
            "reserve",
            json!({"action": "reserve", "project": "shop", "paths": "src/auth/login.rs",
                                   "instance_id": b["instance_id"]}),
        )
        .await,
    );
    assert!(conflict.contains("conflict"), "{conflict}");
    let mine = ok_json(
        &call(
            &c,
            "reserve",
            json!({"action": "check", "project": "shop", "paths": ["src/auth/login.rs"],
                                   "instance_id": a["instance_id"]}),
        )
        .await,
    );
    assert_eq!(mine["ok"], true, "own holds never conflict: {mine}");
    ok_json(
        &call(
            &c,
            "reserve",
            json!({"action": "release", "project": "shop", "instance_id": a["instance_id"]}),
        )
        .await,
    );
    let list = ok_json(&call(&c, "reserve", json!({"action": "list", "project": "shop"})).await);
    assert_eq!(list["reservations"], json!([]));
}

#[tokio::test]
async fn tasks_tool_lists_ready_claims_and_completes() {
    let s = Server::start().await;
    let plan = json!([{"title": "schema", "priority": 5}, {"title": "api", "depends_on": ["#0"]}]);
    json(s.post_json("/api/tasks/shop", plan).await, 200).await;
    let c = connect(&s).await;
    let a = ok_json(&call(&c, "register_instance", json!({"name": "a"})).await);
    let ready = ok_json(&call(&c, "tasks", json!({"action": "list", "project": "shop"})).await);
    assert_eq!(
        ready["count"], 1,
        "only the task without open dependencies: {ready}"
    );
    let all = ok_json(
        &call(
            &c,
            "tasks",
            json!({"action": "list", "project": "shop", "all": true}),
        )
        .await,
    );
    assert_eq!(all["count"], 2);
    let claimed = ok_json(
        &call(
            &c,
            "tasks",
            json!({"action": "claim", "project": "shop", "instance_id": a["instance_id"]}),
        )
        .await,
    );
    assert_eq!(claimed["title"], "schema");
    assert_eq!(claimed["claim"]["holder"]["name"], "a");
    let id = claimed["id"].as_str().expect("id").to_owned();
    let none = err_text(
        &call(
            &c,
            "tasks",
            json!({"action": "claim", "project": "shop", "instance_id": a["instance_id"]}),
        )
        .await,
    );
    assert!(none.contains("no ready task"), "{none}");
    let done = ok_json(
        &call(&c, "tasks", json!({"action": "complete", "project": "shop", "id": id, "instance_id": a["instance_id"], "result": "migrated"})).await,
    );
    assert_eq!(done["status"], "done");
    let ready = ok_json(&call(&c, "tasks", json!({"action": "list", "project": "shop"})).await);
    assert_eq!(
        ready["tasks"][0]["title"], "api",
        "completing made the next one ready"
    );
    let e = err_text(&call(&c, "tasks", json!({"action": "fail", "project": "shop", "id": "T-2", "instance_id": a["instance_id"]})).await);
    assert!(e.contains("reason is required"), "{e}");
}
