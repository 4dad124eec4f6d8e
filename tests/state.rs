use std::sync::Arc;

use reqwest::Method;

use crate::harness::{Server, error, json};

#[tokio::test]
async fn put_get_list_delete() {
    let s = Server::start().await;
    assert_eq!(
        json(s.get("/api/state").await, 200).await,
        serde_json::json!([])
    );

    let w = json(s.put("/api/state/api-contract", r#"{"a":1}"#).await, 200).await;
    assert_eq!(w["key"], "api-contract");
    assert_eq!(w["version"], 1);
    assert_eq!(w["content_type"], "application/json");
    assert_eq!(
        w["hash"],
        koor_shared::ContentHash::of(br#"{"a":1}"#).as_str()
    );
    assert!(w["updated_at"].as_str().expect("time").ends_with('Z'));

    let w2 = json(s.put("/api/state/api-contract", r#"{"a":2}"#).await, 200).await;
    assert_eq!(w2["version"], 2);

    let resp = s.get("/api/state/api-contract").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-koor-version"], "2");
    assert_eq!(
        resp.headers()["etag"],
        format!("\"{}\"", w2["hash"].as_str().expect("hash"))
    );
    assert_eq!(resp.text().await.expect("body"), r#"{"a":2}"#);

    s.put("/api/state/b", "2").await;
    let list = json(s.get("/api/state").await, 200).await;
    let keys: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["api-contract", "b"], "sorted by key");
    assert_eq!(list[0]["version"], 2);
    assert_eq!(list[0]["content_type"], "application/json");
    assert!(list[0]["updated_at"].is_string());

    let d = json(s.delete("/api/state/api-contract").await, 200).await;
    assert_eq!(d, serde_json::json!({"deleted": "api-contract"}));
    error(
        s.get("/api/state/api-contract").await,
        404,
        "key not found: api-contract",
    )
    .await;
    error(
        s.delete("/api/state/api-contract").await,
        404,
        "key not found: api-contract",
    )
    .await;
    // A deleted key starts over.
    let w = json(s.put("/api/state/api-contract", "{}").await, 200).await;
    assert_eq!(w["version"], 1);
}

#[tokio::test]
async fn etag_revalidation() {
    let s = Server::start().await;
    let w = json(s.put("/api/state/k", r#"{"x":1}"#).await, 200).await;
    let etag = format!("\"{}\"", w["hash"].as_str().expect("hash"));
    let resp = s
        .req(Method::GET, "/api/state/k")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["x-koor-version"], "1");
    assert!(resp.bytes().await.expect("body").is_empty());

    let resp = s
        .req(Method::GET, "/api/state/k")
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);

    s.put("/api/state/k", r#"{"x":2}"#).await;
    let resp = s
        .req(Method::GET, "/api/state/k")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "a changed value is sent again");
}

#[tokio::test]
async fn history_versions_diff_rollback() {
    let s = Server::start().await;
    for v in 1..=3 {
        s.put("/api/state/cfg", format!(r#"{{"n":{v},"keep":true}}"#))
            .await;
    }
    let h = json(s.get("/api/state/cfg?history=1").await, 200).await;
    assert_eq!(h["key"], "cfg");
    let versions: Vec<i64> = h["versions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["version"].as_i64().expect("v"))
        .collect();
    assert_eq!(versions, [3, 2, 1], "newest first");
    assert!(h["versions"][0]["hash"].is_string() && h["versions"][0]["updated_at"].is_string());
    let h = json(s.get("/api/state/cfg?history=1&limit=2").await, 200).await;
    assert_eq!(h["versions"].as_array().expect("array").len(), 2);
    error(
        s.get("/api/state/missing?history=1").await,
        404,
        "key not found: missing",
    )
    .await;

    let resp = s.get("/api/state/cfg?version=1").await;
    assert_eq!(resp.headers()["x-koor-version"], "1");
    assert_eq!(resp.text().await.expect("body"), r#"{"n":1,"keep":true}"#);
    error(s.get("/api/state/cfg?version=9").await, 404, "version 9").await;

    let d = json(s.get("/api/state/cfg?diff=1,3").await, 200).await;
    assert_eq!(d["key"], "cfg");
    assert_eq!(d["v1"], 1);
    assert_eq!(d["v2"], 3);
    assert_eq!(
        d["diffs"],
        serde_json::json!([{"operation":"replace","path":"/n","old_value":1,"new_value":3}])
    );
    error(s.get("/api/state/cfg?diff=1,9").await, 404, "version 9").await;

    let r = json(
        s.req(Method::POST, "/api/state/cfg?rollback=1")
            .send()
            .await
            .expect("POST"),
        200,
    )
    .await;
    assert_eq!(r["version"], 4);
    assert_eq!(r["rolled_back"], 1);
    assert!(r["hash"].is_string() && r["updated_at"].is_string());
    let resp = s.get("/api/state/cfg").await;
    assert_eq!(resp.headers()["x-koor-version"], "4");
    assert_eq!(resp.text().await.expect("body"), r#"{"n":1,"keep":true}"#);
    error(
        s.req(Method::POST, "/api/state/cfg?rollback=99")
            .send()
            .await
            .expect("POST"),
        404,
        "version 99",
    )
    .await;
    error(
        s.req(Method::POST, "/api/state/nope?rollback=1")
            .send()
            .await
            .expect("POST"),
        404,
        "key not found",
    )
    .await;
    error(
        s.req(Method::POST, "/api/state/cfg?rollback=0")
            .send()
            .await
            .expect("POST"),
        400,
        "rollback",
    )
    .await;

    // Diff of non-JSON values is a clear 400.
    s.req(Method::PUT, "/api/state/txt")
        .header("content-type", "text/plain")
        .body("a")
        .send()
        .await
        .expect("PUT");
    s.req(Method::PUT, "/api/state/txt")
        .header("content-type", "text/plain")
        .body("b")
        .send()
        .await
        .expect("PUT");
    error(s.get("/api/state/txt?diff=1,2").await, 400, "not JSON").await;
}

#[tokio::test]
async fn keys_with_slashes_encoding_and_content_types() {
    let s = Server::start().await;
    json(s.put("/api/state/team/frontend/config", "{}").await, 200).await;
    let resp = s.get("/api/state/team/frontend/config").await;
    assert_eq!(resp.status(), 200);
    // Percent-encoded segments are decoded once.
    json(s.put("/api/state/a%20b%2Fc", "1").await, 200).await;
    let list = json(s.get("/api/state").await, 200).await;
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|e| e["key"] == "a b/c"),
        "{list}"
    );
    assert_eq!(s.get("/api/state/a%20b/c").await.status(), 200);
    // `..` is just characters. HTTP client libraries resolve dot segments, so send raw bytes.
    let raw = raw_http(
        s.running.addr,
        "PUT /api/state/../etc/passwd HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    // Header names go out in title case, as the original's did (`curl -v … | grep X-Koor-Version`).
    let raw = raw_http(
        s.running.addr,
        "GET /api/state/../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.contains("\r\nX-Koor-Version: 1\r\n"), "{raw}");
    assert!(
        raw.contains("\r\nContent-Type: application/json\r\n"),
        "{raw}"
    );
    let list = json(s.get("/api/state").await, 200).await;
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|e| e["key"] == "../etc/passwd"),
        "{list}"
    );

    let resp = s
        .req(Method::PUT, "/api/state/bin")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150, 255])
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        json(resp, 200).await["content_type"],
        "application/octet-stream"
    );
    let resp = s.get("/api/state/bin").await;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        [0u8, 159, 146, 150, 255]
    );

    // No content type: JSON is assumed.
    let resp = s
        .req(Method::PUT, "/api/state/plain")
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(json(resp, 200).await["content_type"], "application/json");
    error(s.put("/api/state/empty", "").await, 400, "empty body").await;
}

#[tokio::test]
async fn body_limit_is_ten_mib_including_chunked() {
    let s = Server::start().await;
    let limit = 10 * 1024 * 1024;
    let resp = s
        .req(Method::PUT, "/api/state/big")
        .header("content-type", "application/octet-stream")
        .body(vec![b'x'; limit])
        .send()
        .await
        .expect("PUT");
    assert_eq!(json(resp, 200).await["version"], 1);
    let got = s.get("/api/state/big").await.bytes().await.expect("body");
    assert_eq!(got.len(), limit);

    let resp = s
        .req(Method::PUT, "/api/state/toobig")
        .body(vec![b'x'; limit + 1])
        .send()
        .await
        .expect("PUT");
    error(resp, 413, "too large").await;

    // Chunked bodies (no Content-Length) are held to the same limit.
    let chunks = |n: usize| {
        let stream = futures_util::stream::iter(
            (0..n).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024 * 1024])),
        );
        reqwest::Body::wrap_stream(stream)
    };
    let resp = s
        .req(Method::PUT, "/api/state/chunked")
        .body(chunks(3))
        .send()
        .await
        .expect("PUT");
    assert_eq!(json(resp, 200).await["version"], 1);
    let resp = s
        .req(Method::PUT, "/api/state/chunked-big")
        .body(chunks(11))
        .send()
        .await;
    match resp {
        Ok(resp) => {
            error(resp, 413, "too large").await;
        }
        // The server may close the connection before the client finished sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    error(s.get("/api/state/chunked-big").await, 404, "key not found").await;
    json(s.get("/health").await, 200).await;
}

#[tokio::test]
async fn conditional_writes() {
    let s = Server::start().await;
    // Create-only.
    let created = s
        .req(Method::PUT, "/api/state/lock")
        .header("if-none-match", "*")
        .body("1")
        .send()
        .await
        .expect("PUT");
    let w = json(created, 200).await;
    let again = s
        .req(Method::PUT, "/api/state/lock")
        .header("if-none-match", "*")
        .body("2")
        .send()
        .await
        .expect("PUT");
    let body = error(again, 412, "already exists").await;
    assert_eq!(body["current_version"], 1);

    // If-Match with the current ETag succeeds, with a stale one fails.
    let etag = format!("\"{}\"", w["hash"].as_str().expect("hash"));
    let ok = s
        .req(Method::PUT, "/api/state/lock")
        .header("if-match", &etag)
        .body("3")
        .send()
        .await
        .expect("PUT");
    assert_eq!(json(ok, 200).await["version"], 2);
    let stale = s
        .req(Method::PUT, "/api/state/lock")
        .header("if-match", &etag)
        .body("4")
        .send()
        .await
        .expect("PUT");
    let body = error(stale, 412, "changed").await;
    assert_eq!(body["current_version"], 2);

    // Version-based.
    let ok = s
        .req(Method::PUT, "/api/state/lock")
        .header("x-koor-if-version", "2")
        .body("5")
        .send()
        .await
        .expect("PUT");
    assert_eq!(json(ok, 200).await["version"], 3);
    let stale = s
        .req(Method::PUT, "/api/state/lock")
        .header("x-koor-if-version", "2")
        .body("6")
        .send()
        .await
        .expect("PUT");
    error(stale, 412, "version 3").await;

    // Conditional delete.
    let stale = s
        .req(Method::DELETE, "/api/state/lock")
        .header("x-koor-if-version", "1")
        .send()
        .await
        .expect("DELETE");
    error(stale, 412, "precondition failed").await;
    let ok = s
        .req(Method::DELETE, "/api/state/lock")
        .header("x-koor-if-version", "3")
        .send()
        .await
        .expect("DELETE");
    json(ok, 200).await;
    // If-Match on a missing key fails.
    let missing = s
        .req(Method::PUT, "/api/state/lock")
        .header("if-match", &etag)
        .body("7")
        .send()
        .await
        .expect("PUT");
    error(missing, 412, "does not exist").await;
}

#[tokio::test]
async fn concurrent_writers_never_lose_an_update() {
    let s = Arc::new(Server::start().await);
    let (tasks, writes) = (16, 25);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for w in 0..writes {
                let r = json(
                    s.put("/api/state/counter", format!(r#"{{"t":{t},"w":{w}}}"#))
                        .await,
                    200,
                )
                .await;
                versions.push(r["version"].as_i64().expect("version"));
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all.sort_unstable();
    let expected: Vec<i64> = (1..=(tasks * writes) as i64).collect();
    assert_eq!(all, expected, "every write got its own version");
    let resp = s.get("/api/state/counter").await;
    assert_eq!(
        resp.headers()["x-koor-version"],
        (tasks * writes).to_string().as_str()
    );
    let h = json(s.get("/api/state/counter?history=1&limit=1000").await, 200).await;
    assert_eq!(
        h["versions"].as_array().expect("array").len(),
        tasks * writes
    );
}

async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    out
}
