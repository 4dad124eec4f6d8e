//! The MCP endpoint: interop with the official Rust SDK's client (rmcp, Streamable HTTP), and every
//! transport rule of API.md's MCP section over raw HTTP, as IDE clients send it.

use std::time::Duration;

use koor_server::Config;
use reqwest::Method;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServiceError, ServiceExt};
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

type Client = RunningService<RoleClient, ()>;

/// The rmcp client, connected and initialized, with the server's token when it has one.
/// Every tool of `tools/list`, sorted.
pub const TOOLS: &[&str] = &[
    "discover_instances",
    "get_endpoints",
    "lock",
    "propose_rule",
    "register_instance",
    "reserve",
    "set_intent",
    "tasks",
];

pub async fn connect(s: &Server) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(s.url("/mcp"));
    if let Some(t) = &s.token {
        config = config.auth_header(t.clone());
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("rmcp client initializes")
}

pub async fn call(c: &Client, tool: &str, args: Value) -> CallToolResult {
    try_call(c, tool, args).await.expect("tools/call")
}

async fn try_call(c: &Client, tool: &str, args: Value) -> Result<CallToolResult, ServiceError> {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    c.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
}

/// A successful result's JSON, checking that text content and `structuredContent` agree.
pub fn ok_json(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "tool failed: {r:?}");
    let text = &r.content[0].as_text().expect("text content").text;
    let parsed: Value = serde_json::from_str(text).expect("text content is JSON");
    let structured = r.structured_content.clone().expect("structuredContent");
    assert_eq!(parsed, structured);
    structured
}

/// A failed result's message.
pub fn err_text(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected isError: {r:?}");
    r.content[0].as_text().expect("text content").text.clone()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// The next system event with `topic`, skipping others.
async fn event(ws: &mut crate::harness::Ws, topic: &str) -> Value {
    loop {
        match next(ws, WAIT).await {
            Seen::Event(e) if e["topic"] == topic => return e,
            Seen::Event(_) => continue,
            other => panic!("no {topic} event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rmcp_client_initializes_lists_and_calls_every_tool() {
    let s = Server::start().await;
    let mut sys = ws_connect(&s, "/api/events/subscribe?pattern=koor.**", &[])
        .await
        .expect("subscribe");
    let c = connect(&s).await;

    let info = c.peer_info().expect("server info");
    assert_eq!(info.protocol_version.as_str(), "2025-11-25");
    assert_eq!(info.server_info.as_ref().expect("serverInfo").name, "koor");
    assert!(info.capabilities.tools.is_some());

    let tools = c.list_tools(None).await.expect("tools/list").tools;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    for t in &tools {
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert_eq!(t.input_schema["additionalProperties"], false);
        assert!(t.output_schema.is_none());
        assert!(!t.description.as_deref().unwrap_or_default().is_empty());
    }

    // register_instance: the original's keys, the token, a message on how to activate.
    let r = ok_json(
        &call(
            &c,
            "register_instance",
            json!({"name": "claude-frontend", "workspace": "/w/web", "intent": "dark mode", "stack": "react", "capabilities": ["code-edit"]}),
        )
        .await,
    );
    assert_eq!(
        keys(&r),
        [
            "capabilities",
            "instance_id",
            "intent",
            "message",
            "name",
            "registered_at",
            "resumed",
            "stack",
            "status",
            "token",
            "workspace"
        ]
    );
    let id = r["instance_id"].as_str().expect("id").to_owned();
    let token = r["token"].as_str().expect("token").to_owned();
    assert_eq!(r["status"], "pending");
    assert_eq!(r["capabilities"], json!(["code-edit"]));
    let msg = r["message"].as_str().expect("message");
    assert!(msg.contains(&format!("./koor-cli activate {id}")), "{msg}");
    assert!(msg.contains("heartbeat"), "{msg}");
    assert_eq!(
        event(&mut sys, "koor.instance.registered").await["data"]["id"],
        id.as_str()
    );
    // The same instance over REST.
    let rest = json(s.get(&format!("/api/instances/{id}")).await, 200).await;
    assert_eq!(rest["name"], "claude-frontend");

    // discover_instances: the list with a count, filters, never a token.
    let d = ok_json(&call(&c, "discover_instances", json!({})).await);
    assert_eq!(keys(&d), ["count", "instances", "total"]);
    assert_eq!(d["count"], 1);
    assert_eq!(d["instances"][0]["id"], id.as_str());
    assert!(!d.to_string().contains(&token));
    let none = ok_json(&call(&c, "discover_instances", json!({"stack": "go"})).await);
    assert_eq!(none, json!({"count": 0, "instances": [], "total": 0}));
    let by_cap = ok_json(
        &call(
            &c,
            "discover_instances",
            json!({"capability": "code-edit", "workspace": "/w/web"}),
        )
        .await,
    );
    assert_eq!(by_cap["count"], 1);

    // set_intent: a heartbeat that activates, visible over REST and on the bus.
    let i = ok_json(
        &call(
            &c,
            "set_intent",
            json!({"instance_id": id, "intent": "fix login"}),
        )
        .await,
    );
    assert_eq!(keys(&i), ["instance_id", "intent", "message"]);
    assert_eq!(i["intent"], "fix login");
    let updated = event(&mut sys, "koor.instance.updated").await;
    assert_eq!(updated["data"]["id"], id.as_str());
    assert_eq!(updated["data"]["status"], "active");
    let rest = json(s.get(&format!("/api/instances/{id}")).await, 200).await;
    assert_eq!(rest["status"], "active");
    assert_eq!(rest["intent"], "fix login");
    assert!(rest["last_seen"].as_str() >= rest["registered_at"].as_str());

    // get_endpoints: the base URL as this client reached the server.
    let e = ok_json(&call(&c, "get_endpoints", json!({})).await);
    assert_eq!(keys(&e), ["api_base", "cli", "endpoints", "message"]);
    assert_eq!(e["api_base"], s.running.url());
    assert_eq!(e["endpoints"]["state_get"], "GET /api/state/{key...}");
    assert!(e["cli"].as_object().is_some_and(|c| !c.is_empty()));

    // propose_rule: stored as proposed, announced on the bus.
    let p = ok_json(
        &call(
            &c,
            "propose_rule",
            json!({"project": "shop", "rule_id": "no-console", "pattern": "console\\.log", "message": "remove console.log", "severity": "warning", "proposed_by": id}),
        )
        .await,
    );
    assert_eq!(keys(&p), ["message", "project", "rule_id", "status"]);
    assert_eq!(
        (&p["project"], &p["rule_id"], &p["status"]),
        (&json!("shop"), &json!("no-console"), &json!("proposed"))
    );
    let proposed = event(&mut sys, "koor.rule.proposed").await;
    assert_eq!(
        proposed["data"],
        json!({"project": "shop", "rule_id": "no-console", "severity": "warning"})
    );

    // Tool-level failures are results with isError and a full message.
    let missing = err_text(&call(&c, "register_instance", json!({"workspace": "/w"})).await);
    assert!(
        missing.contains("missing required argument \"name\""),
        "{missing}"
    );
    let unknown_id = err_text(
        &call(
            &c,
            "set_intent",
            json!({"instance_id": "nope", "intent": "x"}),
        )
        .await,
    );
    assert!(
        unknown_id.contains("instance not found: nope"),
        "{unknown_id}"
    );
    let no_intent = err_text(&call(&c, "set_intent", json!({"instance_id": id})).await);
    assert!(no_intent.contains("\"intent\""), "{no_intent}");
    let bad_regex = err_text(
        &call(
            &c,
            "propose_rule",
            json!({"project": "shop", "rule_id": "broken", "pattern": "([", "message": "m"}),
        )
        .await,
    );
    assert!(bad_regex.contains("invalid regex"), "{bad_regex}");
    let extra = err_text(&call(&c, "get_endpoints", json!({"verbose": true})).await);
    assert!(extra.contains("takes no arguments"), "{extra}");

    // An unknown tool is a protocol error (-32602).
    match try_call(&c, "drop_database", json!({})).await {
        Err(ServiceError::McpError(e)) => {
            assert_eq!(e.code.0, -32602);
            assert!(e.message.contains("unknown tool"), "{}", e.message);
        }
        other => panic!("expected -32602, got {other:?}"),
    }
    // The client is still usable after all of that.
    assert_eq!(
        ok_json(&call(&c, "discover_instances", json!({})).await)["count"],
        1
    );
    c.cancel().await.expect("close");
}

#[tokio::test]
async fn rmcp_client_with_auth() {
    let s = Server::start_with(|c| c.auth_token = Some("s3cret-mcp".into())).await;
    let c = connect(&s).await;
    assert_eq!(
        c.list_tools(None).await.expect("tools/list").tools.len(),
        TOOLS.len()
    );
    let r = ok_json(&call(&c, "register_instance", json!({"name": "cursor"})).await);
    assert_eq!(r["name"], "cursor");
    let e = ok_json(&call(&c, "get_endpoints", json!({})).await);
    assert!(
        e["cli"]["setup"]
            .as_str()
            .is_some_and(|s| s.contains("KOOR_TOKEN")),
        "{e}"
    );
    assert!(
        !e.to_string().contains("s3cret-mcp"),
        "never echo the server token"
    );
    c.cancel().await.expect("close");

    // Without the token the client cannot initialize, and the refusal is the JSON 401.
    let anonymous = ().serve(StreamableHttpClientTransport::from_uri(s.url("/mcp")));
    assert!(anonymous.await.is_err());
    error(
        s.http
            .post(s.url("/mcp"))
            .json(&init(1, "2025-11-25"))
            .send()
            .await
            .expect("POST"),
        401,
        "invalid or missing bearer token",
    )
    .await;
    let wrong = s
        .http
        .post(s.url("/mcp"))
        .bearer_auth("wrong")
        .json(&init(1, "2025-11-25"))
        .send()
        .await
        .expect("POST");
    error(wrong, 401, "invalid or missing bearer token").await;
}

#[tokio::test]
async fn a_server_restart_between_two_calls_does_not_break_the_client() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("dir");
    let start = |listener, dir: tempfile::TempDir| async move {
        let running = koor_server::spawn_on(Config::for_data_dir(dir.path()), listener)
            .await
            .expect("server starts");
        Server {
            running,
            dir,
            http: reqwest::Client::new(),
            token: None,
        }
    };
    let s = start(listener, dir).await;
    let c = connect(&s).await;
    let r = ok_json(&call(&c, "register_instance", json!({"name": "claude"})).await);
    let id = r["instance_id"].as_str().expect("id").to_owned();

    // Same data dir, same port: the IDE's configured URL still points at it.
    let dir = s.stop().await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the same port");
    let s = start(listener, dir).await;

    let i = ok_json(
        &call(
            &c,
            "set_intent",
            json!({"instance_id": id, "intent": "after restart"}),
        )
        .await,
    );
    assert_eq!(i["intent"], "after restart");
    let d = ok_json(&call(&c, "discover_instances", json!({"name": "claude"})).await);
    assert_eq!(d["count"], 1);
    assert_eq!(d["instances"][0]["status"], "active");
    c.cancel().await.expect("close");
    s.stop().await;
}

// ---- raw HTTP ---------------------------------------------------------------------------------

fn init(id: i64, version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "1.0"}
    }})
}

pub fn req(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs `body` to `path` with extra headers; returns status, headers and the body text.
pub async fn post_raw(
    s: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut rb = s
        .req(Method::POST, path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.body(body).send().await.expect("POST");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// POSTs one message with `Accept` as rmcp sends it; asserts a JSON response and returns it.
pub async fn rpc(s: &Server, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let (status, h, text) = post_raw(s, "/mcp", headers, body.to_string()).await;
    let ct = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "content type {ct:?} ({text})"
    );
    assert!(h.get("mcp-session-id").is_none(), "stateless: no session");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

fn rpc_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no JSON-RPC error: {v}"))
}

#[tokio::test]
async fn initialize_answers_the_clients_version_or_our_newest() {
    let s = Server::start().await;
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let (status, v) = rpc(&s, &[], &init(7, asked)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        assert_eq!(v["result"]["protocolVersion"], answered, "asked {asked}");
        assert!(v["result"]["capabilities"]["tools"].is_object());
        assert_eq!(v["result"]["serverInfo"]["name"], "koor");
    }
    // A string id comes back as it was sent.
    let mut m = init(0, "2025-06-18");
    m["id"] = json!("init-1");
    assert_eq!(rpc(&s, &[], &m).await.1["id"], "init-1");
}

#[tokio::test]
async fn json_rpc_rules() {
    let s = Server::start().await;

    // Notifications: 202, empty body, whatever the method.
    for method in ["notifications/initialized", "notifications/cancelled"] {
        let (status, _, body) = post_raw(
            &s,
            "/mcp",
            &[],
            json!({"jsonrpc": "2.0", "method": method}).to_string(),
        )
        .await;
        assert_eq!((status, body.as_str()), (202, ""), "{method}");
    }
    // A client's response to a server request (we send none) is accepted too.
    let (status, _, body) = post_raw(
        &s,
        "/mcp",
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}).to_string(),
    )
    .await;
    assert_eq!((status, body.as_str()), (202, ""));

    assert_eq!(
        rpc(&s, &[], &req(1, "ping", json!({}))).await,
        (200, json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
    );
    let (status, v) = rpc(
        &s,
        &[],
        &json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
    )
    .await;
    assert_eq!((status, &v["result"]), (200, &json!({})));

    let (status, v) = rpc(&s, &[], &req(3, "resources/list", json!({}))).await;
    assert_eq!((status, rpc_code(&v), &v["id"]), (200, -32601, &json!(3)));

    let (_, v) = rpc(
        &s,
        &[],
        &req(4, "tools/call", json!({"name": "nope", "arguments": {}})),
    )
    .await;
    assert_eq!(rpc_code(&v), -32602);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool: nope"))
    );
    let (_, v) = rpc(&s, &[], &req(5, "tools/call", json!({"arguments": {}}))).await;
    assert_eq!(rpc_code(&v), -32602);
    let (_, v) = rpc(
        &s,
        &[],
        &req(
            6,
            "tools/call",
            json!({"name": "get_endpoints", "arguments": [1]}),
        ),
    )
    .await;
    assert_eq!(rpc_code(&v), -32602);

    // A missing argument is a tool result with isError, not a protocol error.
    let (status, v) = rpc(
        &s,
        &[],
        &req(
            7,
            "tools/call",
            json!({"name": "register_instance", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("name")),
        "{v}"
    );

    // Batches, malformed JSON and non-objects: 400 with a JSON-RPC error.
    let (status, v) = rpc(&s, &[], &json!([req(1, "ping", json!({}))])).await;
    assert_eq!((status, rpc_code(&v)), (400, -32600));
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("batch"))
    );
    for bad in ["{\"jsonrpc\":", "", "not json"] {
        let (status, _, text) = post_raw(&s, "/mcp", &[], bad).await;
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!((status, rpc_code(&v)), (400, -32700), "{bad:?}");
        assert_eq!(v["id"], Value::Null);
    }
    let (status, v) = rpc(&s, &[], &json!("ping")).await;
    assert_eq!((status, rpc_code(&v)), (400, -32600));
    let (status, v) = rpc(
        &s,
        &[],
        &json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!((status, rpc_code(&v)), (400, -32600));
    let (status, v) = rpc(&s, &[], &json!({"jsonrpc": "2.0", "id": 1})).await;
    assert_eq!((status, rpc_code(&v)), (400, -32600));
    let (status, v) = rpc(
        &s,
        &[],
        &json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
    )
    .await;
    assert_eq!((status, rpc_code(&v)), (400, -32600));

    // The server keeps serving.
    assert_eq!(rpc(&s, &[], &req(9, "ping", json!({}))).await.0, 200);
}

#[tokio::test]
async fn protocol_version_header_and_sessions() {
    let s = Server::start().await;
    let list = req(1, "tools/list", json!({}));
    // No header: taken as 2025-03-26. Each supported version passes.
    assert_eq!(rpc(&s, &[], &list).await.0, 200);
    for v in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        assert_eq!(
            rpc(&s, &[("mcp-protocol-version", v)], &list).await.0,
            200,
            "{v}"
        );
    }
    for v in ["2024-11-05", "1999-01-01", "latest"] {
        let (status, body) = rpc(&s, &[("mcp-protocol-version", v)], &list).await;
        assert_eq!((status, rpc_code(&body)), (400, -32600), "{v}");
        assert_eq!(body["id"], 1, "the error names the request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("MCP-Protocol-Version")),
            "{body}"
        );
    }
    // `initialize` negotiates in its body, so a newer client's header does not lock it out.
    let (status, v) = rpc(
        &s,
        &[("mcp-protocol-version", "2099-01-01")],
        &init(2, "2099-01-01"),
    )
    .await;
    assert_eq!(
        (status, &v["result"]["protocolVersion"]),
        (200, &json!("2025-11-25"))
    );

    // Stateless: an unknown session id is ignored, never a 404.
    let (status, v) = rpc(
        &s,
        &[
            ("mcp-session-id", "a-session-from-before-a-restart"),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        &req(
            3,
            "tools/call",
            json!({"name": "discover_instances", "arguments": {}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["result"]["structuredContent"]["count"], 0);
}

#[tokio::test]
async fn always_json_whatever_the_accept_and_charset() {
    let s = Server::start().await;
    let list = req(1, "tools/list", json!({}));
    for accept in [
        None,
        Some("application/json"),
        Some("text/event-stream"),
        Some("*/*"),
        Some("application/json, text/event-stream"),
        Some("text/html"),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept", *a)).collect();
        let (status, v) = rpc(&s, &headers, &list).await;
        assert_eq!(status, 200, "accept {accept:?}");
        assert_eq!(
            v["result"]["tools"].as_array().map(Vec::len),
            Some(TOOLS.len())
        );
    }
    let (status, v) = rpc(
        &s,
        &[("content-type", "application/json; charset=utf-8")],
        &list,
    )
    .await;
    assert_eq!((status, v["result"]["tools"].is_array()), (200, true));
    // `/mcp/` is the same endpoint.
    let (status, _, text) = post_raw(&s, "/mcp/", &[], list.to_string()).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn other_methods_are_405_with_allow_post_and_unknown_paths_404() {
    let s = Server::start().await;
    for (method, accept) in [
        (Method::GET, "text/event-stream"),
        (Method::GET, "application/json"),
        (Method::DELETE, "*/*"),
        (Method::PUT, "*/*"),
    ] {
        for path in ["/mcp", "/mcp/"] {
            let resp = s
                .req(method.clone(), path)
                .header("accept", accept)
                .header("mcp-session-id", "whatever")
                .send()
                .await
                .expect("request");
            assert_eq!(
                resp.headers().get("allow").and_then(|v| v.to_str().ok()),
                Some("POST"),
                "{method} {path}"
            );
            error(resp, 405, "not allowed").await;
        }
    }
    error(s.get("/mcp/sse").await, 404, "not found").await;
    error(
        s.post_json("/mcp/messages", json!({})).await,
        404,
        "not found",
    )
    .await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused() {
    let s = Server::start().await;
    let list = req(1, "tools/list", json!({})).to_string();
    for origin in ["http://evil.example", "https://attacker.test:9800", "null"] {
        let resp = s
            .req(Method::POST, "/mcp")
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(list.clone())
            .send()
            .await
            .expect("POST");
        error(resp, 403, "not allowed").await;
    }
    let resp = s
        .req(Method::GET, "/mcp")
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 403);
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:9800",
        "http://[::1]:8080",
    ] {
        let (status, _) = rpc(&s, &[("origin", origin)], &req(1, "ping", json!({}))).await;
        assert_eq!(status, 200, "{origin}");
    }

    let allowed =
        Server::start_with(|c| c.allowed_origins = vec!["https://ide.example".into()]).await;
    let (status, _) = rpc(
        &allowed,
        &[("origin", "https://ide.example")],
        &req(1, "ping", json!({})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oauth_probes_get_json_404s_with_and_without_auth() {
    for token in [None, Some("s3cret")] {
        let s = Server::start_with(|c| c.auth_token = token.map(str::to_owned)).await;
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let resp = s.http.get(s.url(path)).send().await.expect("GET");
            error(resp, 404, "not found").await;
        }
        let resp = s
            .http
            .post(s.url("/register"))
            .json(
                &json!({"client_name": "claude-code", "redirect_uris": ["http://localhost:1/cb"]}),
            )
            .send()
            .await
            .expect("POST");
        error(resp, 404, "not found").await;
    }
}

#[tokio::test]
async fn tools_list_is_small() {
    let s = Server::start().await;
    let (_, _, text) = post_raw(&s, "/mcp", &[], req(1, "tools/list", json!({})).to_string()).await;
    eprintln!("tools/list response: {} bytes", text.len());
    assert!(text.len() < 8 * 1024, "{} bytes", text.len());
    let v: Value = serde_json::from_str(&text).expect("JSON");
    for t in v["result"]["tools"].as_array().expect("tools") {
        assert!(t["inputSchema"]["properties"].is_object(), "{t}");
        assert!(t.get("outputSchema").is_none());
    }
}

#[test]
fn ide_snippets_in_assets_have_the_documented_formats() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mcp");
    let read = |name: &str| -> Value {
        let text =
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let url = "http://localhost:9800/mcp";
    // The -auth variants name the token through each IDE's own variable substitution, so the
    // file can be committed without the secret in it.
    for (plain, auth, entry, key, token) in [
        (
            "claude-code.json",
            "claude-code-auth.json",
            json!({"type": "http", "url": url}),
            "mcpServers",
            "${KOOR_TOKEN}",
        ),
        (
            "cursor.json",
            "cursor-auth.json",
            json!({"url": url}),
            "mcpServers",
            "${env:KOOR_TOKEN}",
        ),
        (
            "vscode.json",
            "vscode-auth.json",
            json!({"type": "http", "url": url}),
            "servers",
            "${input:koor-token}",
        ),
    ] {
        assert_eq!(read(plain), json!({key: {"koor": entry}}), "{plain}");
        let mut with_auth = entry.clone();
        with_auth["headers"] = json!({"Authorization": format!("Bearer {token}")});
        let mut want = json!({key: {"koor": with_auth}});
        if key == "servers" {
            want["inputs"] = json!([{
                "type": "promptString",
                "id": "koor-token",
                "description": "Koor bearer token (koor-server --auth-token)",
                "password": true
            }]);
        }
        assert_eq!(read(auth), want, "{auth}");
    }
}
