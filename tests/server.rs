use reqwest::Method;

use crate::harness::{Server, error, json};

#[tokio::test]
async fn health_and_metrics() {
    let s = Server::start().await;
    let h = json(s.get("/health").await, 200).await;
    assert_eq!(h["status"], "ok");
    assert!(h["uptime"].as_str().expect("uptime").ends_with('s'));

    s.put("/api/state/a", "1").await;
    let m = json(s.get("/api/metrics").await, 200).await;
    assert_eq!(m["state_keys"], 1);
    assert_eq!(m["instances"], 0);
    assert!(m["last_event_id"].as_i64().expect("id") >= 1, "{m}");
    assert_eq!(m["api_bind"], s.running.addr.to_string());
    for key in ["uptime", "dashboard_bind"] {
        assert!(m.get(key).is_some(), "{key} missing: {m}");
    }
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_wrong_methods_json_405() {
    let s = Server::start().await;
    for path in [
        "/nope",
        "/api/nope",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        error(s.get(path).await, 404, "not found").await;
    }
    error(
        s.post_json("/register", serde_json::json!({})).await,
        404,
        "not found",
    )
    .await;

    let resp = s
        .req(Method::PATCH, "/api/state/k")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, PUT, POST, DELETE")
    );
    error(resp, 405, "not allowed").await;
    error(
        s.req(Method::POST, "/api/state")
            .send()
            .await
            .expect("POST"),
        405,
        "not allowed",
    )
    .await;
    error(
        s.req(Method::DELETE, "/health")
            .send()
            .await
            .expect("DELETE"),
        405,
        "not allowed",
    )
    .await;
    error(
        s.req(Method::PUT, "/api/metrics")
            .send()
            .await
            .expect("PUT"),
        405,
        "not allowed",
    )
    .await;
}

#[tokio::test]
async fn bad_input_is_a_400_never_a_500() {
    let s = Server::start().await;
    s.put("/api/state/k", "{}").await;
    error(
        s.get("/api/state/k?history=1&limit=abc").await,
        400,
        "limit",
    )
    .await;
    error(s.get("/api/state/k?version=x").await, 400, "version").await;
    error(s.get("/api/state/k?version=0").await, 400, "version").await;
    error(s.get("/api/state/k?diff=1").await, 400, "diff").await;
    error(
        s.req(Method::POST, "/api/state/k?rollback=abc")
            .send()
            .await
            .expect("POST"),
        400,
        "rollback",
    )
    .await;
    error(
        s.req(Method::POST, "/api/state/k")
            .send()
            .await
            .expect("POST"),
        400,
        "rollback",
    )
    .await;
    // A trailing slash is the list; writing to it names no key.
    assert_eq!(s.get("/api/state/").await.status(), 200);
    error(s.put("/api/state/", "1").await, 400, "key is required").await;
    let resp = s
        .req(Method::PUT, "/api/state/k")
        .header("x-koor-if-version", "seven")
        .body("1")
        .send()
        .await
        .expect("PUT");
    error(resp, 400, "X-Koor-If-Version").await;
    error(s.get("/api/state/k%FF").await, 400, "UTF-8").await;
    // The server is still serving.
    json(s.get("/health").await, 200).await;
}

#[tokio::test]
async fn auth_guards_everything_but_health() {
    let s = Server::start_with(|c| c.auth_token = Some("s3cret".into())).await;
    let anon = reqwest::Client::new();
    let health = anon.get(s.url("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);

    for path in ["/api/state", "/api/metrics", "/api/specs/p", "/api/state/k"] {
        let resp = anon.get(s.url(path)).send().await.expect("GET");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"koor\"",
            "a 401 names its scheme"
        );
        let body = error(resp, 401, "invalid or missing bearer token").await;
        assert_eq!(body["error"], "invalid or missing bearer token");
        let resp = anon
            .get(s.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("GET");
        error(resp, 401, "invalid or missing bearer token").await;
        let resp = anon
            .get(s.url(path))
            .header("authorization", "Basic czNjcmV0")
            .send()
            .await
            .expect("GET");
        error(resp, 401, "invalid or missing bearer token").await;
    }
    // Probes of unknown paths stay JSON 404s, even without a token.
    let resp = anon
        .get(s.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .expect("probe");
    error(resp, 404, "not found").await;

    // With the token (scheme in any case), everything works.
    let resp = anon
        .put(s.url("/api/state/k"))
        .header("authorization", "bearer s3cret")
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200);
    json(s.get("/api/state").await, 200).await;
}

#[tokio::test]
async fn data_survives_a_restart_and_versions_continue() {
    let s = Server::start().await;
    s.put("/api/state/cfg", r#"{"v":1}"#).await;
    s.put("/api/state/cfg", r#"{"v":2}"#).await;
    s.put("/api/specs/proj/api", r#"{"openapi":"3"}"#).await;
    let before = json(s.get("/api/metrics").await, 200).await["last_event_id"].clone();
    let dir = s.stop().await;

    let s = Server::start_in(dir, |_| {}).await;
    let resp = s.get("/api/state/cfg").await;
    assert_eq!(resp.headers()["x-koor-version"], "2");
    assert_eq!(resp.text().await.expect("body"), r#"{"v":2}"#);
    let w = json(s.put("/api/state/cfg", r#"{"v":3}"#).await, 200).await;
    assert_eq!(w["version"], 3);
    let specs = json(s.get("/api/specs/proj").await, 200).await;
    assert_eq!(specs["specs"][0]["name"], "api");
    let after = json(s.get("/api/metrics").await, 200).await["last_event_id"].clone();
    assert!(
        after.as_i64() > before.as_i64(),
        "event ids keep increasing: {before} -> {after}"
    );
}

#[tokio::test]
async fn one_server_per_data_dir() {
    let s = Server::start().await;
    let err = koor_server::spawn(koor_server::Config::for_data_dir(s.dir.path()))
        .await
        .err()
        .expect("second server refused");
    let msg = err.to_string();
    assert!(msg.contains("already using data dir"), "{msg}");
    assert!(msg.contains(&s.dir.path().display().to_string()), "{msg}");
    // The first server is unaffected.
    json(s.get("/health").await, 200).await;

    // Once the first one stops, the directory is free again.
    let dir = s.stop().await;
    let again = Server::start_in(dir, |_| {}).await;
    json(again.get("/health").await, 200).await;
}

#[tokio::test]
async fn missing_data_dir_fails_with_path_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("does-not-exist");
    let err = koor_server::spawn(koor_server::Config::for_data_dir(&missing))
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.starts_with("failed to open database"), "{msg}");
    assert!(msg.contains("does-not-exist"), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");
}

#[tokio::test]
async fn foreign_web_pages_cannot_use_the_api() {
    let s = Server::start().await;
    let resp = s
        .req(Method::PUT, "/api/state/k")
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body("pwned")
        .send()
        .await
        .expect("PUT");
    error(resp, 403, "not allowed").await;
    error(s.get("/api/state/k").await, 404, "key not found").await;
    let resp = s
        .req(Method::PUT, "/api/state/k")
        .header("origin", "http://localhost:9847")
        .body("{}")
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 200, "a loopback page (the dashboard) may");
    // Minor input rules: an empty key, a non-object publish, a non-JSON spec.
    error(s.put("/api/state/", "1").await, 400, "key is required").await;
    error(
        s.post_json("/api/events/publish", serde_json::json!(["t.arr"]))
            .await,
        400,
        "object",
    )
    .await;
    error(
        s.put("/api/specs/p/n", "not json").await,
        400,
        "must be JSON",
    )
    .await;
}
