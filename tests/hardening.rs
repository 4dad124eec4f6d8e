//! Issue 16, "Hardening": one test per finding, each against a real server. DNS rebinding (the
//! `Host` check), connections that never send a request, costly topic patterns, event data kept
//! exactly as sent, a full disk, a stolen data-dir lock, and the smaller ones.

use std::time::Duration;

use futures_util::StreamExt;
use koor_server::{Config, store::OpenError};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Seen, Server, error, json, next, publish, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

/// Waits (at most a minute: a liveness bound, not a speed check) until the server closes `conn`.
async fn closed_by_server(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An HTTP/2 server speaks first (SETTINGS): keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

// ---- 1. DNS rebinding ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_name_is_refused_on_every_route_but_health() {
    let s = Server::start_with(|c| c.allowed_hosts = vec!["koor.lan".into()]).await;
    s.put("/api/state/secret", r#"{"pw":1}"#).await;
    let evil = "evil.example:9800";

    let get = |path: &str, host: &str| {
        s.req(Method::GET, path)
            .header("host", host.to_owned())
            .send()
    };
    error(
        get("/api/state/secret", evil).await.expect("GET"),
        403,
        "host evil.example:9800 is not allowed",
    )
    .await;
    for path in [
        "/api/state",
        "/api/events/history",
        "/api/logs",
        "/api/instances",
    ] {
        error(get(path, evil).await.expect("GET"), 403, "--allowed-hosts").await;
    }
    json(get("/health", evil).await.expect("health"), 200).await;
    // MCP too.
    let mcp = s
        .req(Method::POST, "/mcp")
        .header("host", evil)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("mcp");
    error(mcp, 403, "not allowed").await;
    // And the WebSockets.
    assert_eq!(
        ws_connect(&s, "/api/events/subscribe", &[("host", evil)])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(&s, "/api/logs/subscribe", &[("host", evil)])
            .await
            .err(),
        Some(403)
    );

    // Loopback names and addresses, IP literals and listed names pass.
    for host in [
        "localhost:9800",
        "127.0.0.1",
        "[::1]:9800",
        "192.168.1.20:9800",
        "koor.lan:9800",
        "KOOR.LAN",
    ] {
        json(get("/api/state/secret", host).await.expect("GET"), 200).await;
    }
    // A name that only starts like a loopback one is foreign.
    error(
        get("/api/state", "localhost.evil.example")
            .await
            .expect("GET"),
        403,
        "not allowed",
    )
    .await;
    s.stop().await;

    // The dashboard listener checks too, its page included.
    let dir = tempfile::tempdir().expect("tempdir");
    let running = koor_server::spawn_with_dashboard(Config::for_data_dir(dir.path()))
        .await
        .expect("starts");
    let dash = running.dashboard_url().expect("dashboard");
    let http = reqwest::Client::new();
    for path in ["/", "/api/state"] {
        let r = http
            .get(format!("{dash}{path}"))
            .header("host", evil)
            .send()
            .await
            .expect("GET");
        error(r, 403, "not allowed").await;
    }
    let r = http.get(format!("{dash}/")).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    running.stop().await;

    // With a token the token is the gate (documented): a rebinding page cannot know it.
    let s = Server::start_with(|c| c.auth_token = Some("t0ken".into())).await;
    let r = s
        .req(Method::GET, "/api/state")
        .header("host", evil)
        .send()
        .await
        .expect("GET");
    json(r, 200).await;
    let r = s
        .http
        .get(s.url("/api/state"))
        .header("host", evil)
        .send()
        .await
        .expect("GET");
    error(r, 401, "token").await;
    s.stop().await;
}

// ---- 2. Connections that never send a request ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_cannot_lock_out_clients() {
    let s = Server::start_with(|c| {
        c.max_connections = 8;
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    // A subscriber from before the flood keeps its connection.
    let mut sub = ws_connect(&s, "/api/events/subscribe?pattern=flood.*", &[])
        .await
        .expect("subscribe");

    // Far more silent connections than the bound, an HTTP/2 preface among them.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(s.running.addr).await.expect("connect"));
    }
    let mut h2 = TcpStream::connect(s.running.addr).await.expect("connect");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");

    // /health still answers: the oldest silent connections make room.
    json(s.get("/health").await, 200).await;
    let id = publish(&s, "flood.x", json!({"n": 1})).await;
    match next(&mut sub, WAIT).await {
        Seen::Event(e) => assert_eq!(e["id"], id),
        other => panic!("the subscriber lost its connection: {other:?}"),
    }

    // Every silent connection is closed by the server (the bound or the 1 s deadline).
    assert!(
        closed_by_server(&mut h2).await,
        "h2c preface-only connection"
    );
    for conn in &mut idle {
        assert!(closed_by_server(conn).await, "idle connection left open");
    }
    // One that sends half a request line is closed too.
    let mut half = TcpStream::connect(s.running.addr).await.expect("connect");
    half.write_all(b"GET /heal").await.expect("write");
    assert!(closed_by_server(&mut half).await, "half a request line");
    json(s.get("/health").await, 200).await;
    s.stop().await;
}

// ---- 3. Costly topic patterns ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_class_patterns_are_bounded_and_cheap() {
    let s = Server::start().await;
    let topic = "a".repeat(511);
    for i in 0..200 {
        publish(&s, &topic, json!(i)).await;
    }
    // Over the bound: a 400 that says so, on history and on the WebSocket.
    let huge = format!("*[{}]b", "a".repeat(30_000));
    let url = format!("/api/events/history?topic={huge}&last=1");
    error(s.get(&url).await, 400, "longer than 512 bytes").await;
    assert_eq!(
        ws_connect(&s, &format!("/api/events/subscribe?pattern={huge}"), &[])
            .await
            .err(),
        Some(400)
    );
    let many: String = (0..65).map(|i| format!("&topic=t{i}")).collect();
    error(
        s.get(&format!("/api/events/history?last=1{many}")).await,
        400,
        "too many patterns",
    )
    .await;

    // Within the bound, the worst shape is answered at once (it backtracked over every class
    // byte for every topic position before).
    let worst = format!("*[{}]b", "a".repeat(500));
    let got = json(
        s.get(&format!("/api/events/history?topic={worst}&last=1"))
            .await,
        200,
    )
    .await;
    assert_eq!(got, json!([]));
    let hit = format!("*[{}]", "a".repeat(500));
    let got = json(
        s.get(&format!("/api/events/history?topic={hit}&last=1"))
            .await,
        200,
    )
    .await;
    assert_eq!(got[0]["data"], 199);

    // Subscribers with that pattern do not slow publishing down to a crawl either.
    let mut subs = Vec::new();
    for _ in 0..10 {
        subs.push(
            ws_connect(&s, &format!("/api/events/subscribe?pattern={worst}"), &[])
                .await
                .expect("subscribe"),
        );
    }
    for i in 0..50 {
        publish(&s, &topic, json!(i)).await;
    }
    let mut ok = ws_connect(&s, &format!("/api/events/subscribe?pattern={hit}"), &[])
        .await
        .expect("subscribe");
    let id = publish(&s, &topic, json!("last")).await;
    match next(&mut ok, WAIT).await {
        Seen::Event(e) => assert_eq!(e["id"], id),
        other => panic!("expected the event: {other:?}"),
    }
    s.stop().await;
}

// ---- 4. Event data exactly as sent -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_is_stored_and_served_byte_for_byte() {
    let s = Server::start().await;
    let mut sub = ws_connect(&s, "/api/events/subscribe?pattern=exact.*", &[])
        .await
        .expect("subscribe");
    let data = r#"{"f":0.9097055049519657,"big":123456789012345678901234567890,"neg":-98765432109876543210,"one":1.0,"exp":1E+2,"z":{"b":1,"a":[0.1, 0.30000000000000004]},"s":"\u00e9\n"}"#;
    let body = format!(r#"{{"topic":"exact.data","data":{data},"source":"t"}}"#);
    let r = s
        .req(Method::POST, "/api/events/publish")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    let want = format!(r#""data":{data}"#);
    assert!(text.contains(&want), "publish answer: {text}");

    let history = s
        .get("/api/events/history?topic=exact.data")
        .await
        .text()
        .await
        .expect("history");
    assert!(history.contains(&want), "history: {history}");
    let since = s
        .get("/api/events/history?since=0")
        .await
        .text()
        .await
        .expect("history");
    assert!(since.contains(&want), "history since: {since}");

    // Live, and replayed with since.
    let frame = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("frame")
        .expect("ok");
    let Message::Text(live) = frame else {
        panic!("not text: {frame:?}")
    };
    assert!(live.as_str().contains(&want), "live: {live}");
    let mut replay = ws_connect(&s, "/api/events/subscribe?pattern=exact.*&since=0", &[])
        .await
        .expect("subscribe");
    let frame = tokio::time::timeout(WAIT, replay.next())
        .await
        .expect("in time")
        .expect("frame")
        .expect("ok");
    let Message::Text(replayed) = frame else {
        panic!("not text: {frame:?}")
    };
    assert!(replayed.as_str().contains(&want), "replayed: {replayed}");

    // And after a restart.
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    let history = s
        .get("/api/events/history?topic=exact.data")
        .await
        .text()
        .await
        .expect("history");
    assert!(history.contains(&want), "history after restart: {history}");
    // Invalid data is still refused.
    let r = s
        .req(Method::POST, "/api/events/publish")
        .body(r#"{"topic":"exact.bad","data":{"a":01}}"#)
        .send()
        .await
        .expect("publish");
    error(r, 400, "invalid JSON body").await;
    s.stop().await;
}

// ---- 5. A full disk ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_507_reads_go_on_and_writes_resume() {
    // The database is capped at 48 pages of 4 KiB (SQLite's max_page_count), a stand-in for a
    // small filesystem: deterministic, and needs no privileges (see the README).
    let s = Server::start_with(|c| c.max_db_pages = Some(48)).await;
    let value = format!(r#"{{"pad":"{}"}}"#, "x".repeat(6000));
    let mut acked = Vec::new();
    let mut full = None;
    for i in 0..200 {
        let r = s.put(&format!("/api/state/k{i}"), value.clone()).await;
        match r.status().as_u16() {
            200 => acked.push(format!("k{i}")),
            507 => {
                full = Some(r);
                break;
            }
            other => panic!("unexpected status {other}: {:?}", r.text().await),
        }
    }
    let full = full.expect("the capped database fills up");
    error(full, 507, "disk holding the database is full").await;
    assert!(!acked.is_empty(), "some writes fit before the cap");
    // A publish is refused the same way; reads keep working.
    let r = s
        .post_json(
            "/api/events/publish",
            json!({"topic": "big.one", "data": "y".repeat(20_000)}),
        )
        .await;
    error(r, 507, "full").await;
    for key in &acked {
        let r = s.get(&format!("/api/state/{key}")).await;
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.text().await.expect("value"), value);
    }
    json(s.get("/api/state").await, 200).await;
    json(s.get("/health").await, 200).await;

    // Space comes back: writes resume without a restart, nothing acknowledged is lost.
    s.running
        .app
        .store
        .set_page_cap(1_000_000)
        .await
        .expect("raise cap");
    json(s.put("/api/state/after", value.clone()).await, 200).await;
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    for key in acked.iter().chain(std::iter::once(&"after".to_owned())) {
        let r = s.get(&format!("/api/state/{key}")).await;
        assert_eq!(r.status(), 200, "{key} after restart");
    }
    s.stop().await;
}

// ---- 6. The data-dir lock ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_lock_file_does_not_let_a_second_server_in() {
    let s = Server::start().await;
    json(s.put("/api/state/k", r#"{"v":1}"#).await, 200).await;
    std::fs::remove_file(s.dir.path().join("koor.lock")).expect("delete koor.lock");
    let second = koor_server::spawn(Config::for_data_dir(s.dir.path())).await;
    match second {
        Err(OpenError::Locked { holder, .. }) => {
            assert!(holder.contains("pid") || holder.is_empty(), "{holder}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(running) => {
            running.stop().await;
            panic!("a second server started on a data dir in use");
        }
    }
    // The first goes on serving and writing.
    json(s.put("/api/state/k", r#"{"v":2}"#).await, 200).await;
    let r = s.get("/api/state/k").await;
    assert_eq!(r.text().await.expect("value"), r#"{"v":2}"#);
    let dir = s.stop().await;
    // Once it stopped, a new server may take the directory.
    let s = Server::start_in(dir, |_| {}).await;
    s.stop().await;
}

// ---- 7. The smaller ones -----------------------------------------------------------------------

async fn rpc(s: &Server, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = s
        .req(Method::POST, "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .expect("mcp");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

fn tool_call(name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": args}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_findings() {
    let s = Server::start().await;

    // A PUT without Content-Type is labelled by what it is.
    let put_untyped = |key: &str, body: &'static [u8]| {
        s.http
            .put(s.url(&format!("/api/state/{key}")))
            .body(body)
            .send()
    };
    for (key, body, want) in [
        ("text", &b"hello, not JSON"[..], "text/plain; charset=utf-8"),
        (
            "bin",
            &b"\xff\xfe\x00binary"[..],
            "application/octet-stream",
        ),
        ("doc", &b"{\"a\":1}"[..], "application/json"),
    ] {
        json(put_untyped(key, body).await.expect("PUT"), 200).await;
        let r = s.get(&format!("/api/state/{key}")).await;
        assert_eq!(r.headers()["content-type"], want, "{key}");
    }

    // A version that cannot exist is a bad request, not a lost race.
    let r = s
        .req(Method::PUT, "/api/state/doc")
        .header("x-koor-if-version", "-1")
        .body("{}")
        .send()
        .await
        .expect("PUT");
    error(r, 400, "X-Koor-If-Version").await;

    // An Origin with user info names the host after the `@`.
    let r = s
        .req(Method::GET, "/api/state")
        .header("origin", "http://localhost:80@evil.example")
        .send()
        .await
        .expect("GET");
    error(r, 403, "not allowed").await;

    // MCP: argument types as the schema says.
    let (status, v) = rpc(&s, tool_call("register_instance", json!({"name": 5}))).await;
    assert_eq!(status, 200);
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"name\"") && t.contains("must be a string")),
        "{v}"
    );
    let (_, v) = rpc(
        &s,
        tool_call(
            "register_instance",
            json!({"name": "a", "capabilities": [1, 2]}),
        ),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    let (_, v) = rpc(&s, tool_call("discover_instances", json!({"limit": "ten"}))).await;
    assert_eq!(v["result"]["isError"], true, "{v}");

    // MCP: a body over 1 MiB is a JSON-RPC error.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let (status, v) = rpc(&s, big).await;
    assert_eq!(status, 413);
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than")),
        "{v}"
    );

    // MCP: discover_instances lists at most 100 by default and says when there are more.
    for i in 0..130 {
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
    let (_, v) = rpc(&s, tool_call("discover_instances", json!({}))).await;
    let out = &v["result"]["structuredContent"];
    assert_eq!(out["count"], 100, "{v}");
    assert_eq!(out["total"], 130);
    assert_eq!(out["truncated"], true);
    assert_eq!(out["instances"].as_array().map(Vec::len), Some(100));
    let (_, v) = rpc(&s, tool_call("discover_instances", json!({"limit": 500}))).await;
    let out = &v["result"]["structuredContent"];
    assert_eq!(out["count"], 130, "{v}");
    assert!(out.get("truncated").is_none(), "{v}");

    // What the HTTP layer answers before routing stays as hyper writes it (documented): the
    // connection gets a 4xx status and is closed, and the server goes on serving.
    let mut raw = TcpStream::connect(s.running.addr).await.expect("connect");
    raw.write_all(b"PUT /api/state/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x10\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    json(s.get("/health").await, 200).await;
    s.stop().await;
}
