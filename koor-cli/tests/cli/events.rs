//! `events ...`, including a subscription that survives a server restart and a lag close.

use koor_shared::types::PublishRequest;
use serde_json::{Value, json};

use crate::harness::{Cli, PinnedServer, Server, client, port_outside_ephemeral_range};

fn event(topic: &str, data: Value) -> PublishRequest {
    PublishRequest {
        topic: topic.to_owned(),
        data,
        source: "test".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_history() {
    let server = Server::start().await;
    let cli = server.cli();

    let first = cli
        .run(&[
            "events",
            "publish",
            "api.change.contract",
            "--data",
            r#"{"version":"2.0","breaking":true}"#,
            "--source",
            "backend",
        ])
        .await
        .json();
    assert_eq!(first["topic"], "api.change.contract");
    assert_eq!(first["data"], json!({"version":"2.0","breaking":true}));
    assert_eq!(first["source"], "backend");
    let first_id = first["id"].as_i64().expect("id");

    let second = cli.run(&["events", "publish", "api.ping"]).await.json();
    assert_eq!(second["data"], Value::Null);
    assert!(second["id"].as_i64().expect("id") > first_id);
    let third = server
        .cli()
        .stdin(r#"[1,2,3]"#)
        .run(&["events", "publish", "deploy.done", "--file", "-"])
        .await
        .json();
    assert_eq!(third["data"], json!([1, 2, 3]));

    let all = cli.run(&["events", "history"]).await.json();
    assert_eq!(all.as_array().expect("array").len(), 3);
    let last1 = cli.run(&["events", "history", "--last", "1"]).await.json();
    assert_eq!(last1.as_array().expect("array").len(), 1);
    let api = cli
        .run(&["events", "history", "--topic", "api.*"])
        .await
        .json();
    let topics: Vec<&str> = api
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["topic"].as_str().expect("topic"))
        .collect();
    assert_eq!(topics, ["api.ping"], "api.* is one segment");
    let since = cli
        .run(&["events", "history", "--since", &first_id.to_string()])
        .await
        .json();
    let ids: Vec<i64> = since
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "oldest first with --since: {ids:?}");
    let backend = cli
        .run(&["events", "history", "--source", "backend"])
        .await
        .json();
    assert_eq!(backend.as_array().expect("array").len(), 1);

    cli.run(&["events", "publish", "x", "--data", "{not json"])
        .await
        .assert_fails(2, "--data is not valid JSON");
    cli.run(&["events", "publish", "koor.state.updated", "--data", "{}"])
        .await
        .assert_fails(7, "koor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_prints_live_events_and_exits_0_on_ctrl_c() {
    let server = Server::start().await;
    let api = server.client();
    api.publish(&event("api.before", json!(0)))
        .await
        .expect("publish");

    let mut sub = server
        .cli()
        .spawn(&["events", "subscribe", "api.*", "deploy.**"]);
    sub.wait_stderr("subscribed to").await;
    let mut expected = Vec::new();
    for (topic, data) in [
        ("api.change", json!({"n":1})),
        ("other.topic", json!({"n":2})),
        ("api.change.contract", json!({"n":3})),
        ("deploy.prod.done", json!({"n":4})),
        ("api.done", json!({"n":5})),
    ] {
        let e = api.publish(&event(topic, data)).await.expect("publish");
        if !topic.starts_with("other") && topic != "api.change.contract" {
            expected.push(e);
        }
    }
    for want in &expected {
        let line = sub.line().await;
        let got: koor_shared::types::Event = serde_json::from_str(&line).expect("event line");
        assert_eq!(&got, want, "{line}");
    }
    let (code, rest) = sub.interrupt().await;
    assert_eq!(code, 0, "Ctrl-C exits 0");
    assert!(rest.is_empty(), "nothing else printed: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_since_and_count() {
    let server = Server::start().await;
    let api = server.client();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            api.publish(&event("job.step", json!(i)))
                .await
                .expect("publish")
                .id,
        );
    }
    let out = server
        .cli()
        .run(&[
            "events",
            "subscribe",
            "--since",
            &ids[0].to_string(),
            "--count",
            "3",
            "-q",
        ])
        .await;
    out.assert_ok();
    assert!(out.stderr.is_empty(), "-q: {}", out.stderr);
    let got: Vec<i64> = out
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON line")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(got, ids[1..]);

    // --pretty prints each event indented.
    let out = server
        .cli()
        .run(&[
            "events",
            "subscribe",
            "--since",
            "0",
            "--count",
            "1",
            "--pretty",
        ])
        .await;
    assert!(out.text().starts_with("{\n  \"id\": "), "{}", out.text());
}

/// The subscriber keeps going across a server restart on the same data dir and port: the events
/// published while it was away come first, then live ones, none lost and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_resumes_after_server_restart_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("data dir");
    let port = port_outside_ephemeral_range();
    let first = PinnedServer::start(dir.path(), port, |_| {}).await;
    let url = first.url();

    let mut sub = Cli::new()
        .env("KOOR_SERVER", &url)
        .spawn(&["events", "subscribe", "job.*"]);
    sub.wait_stderr("subscribed to").await;

    let mut published = Vec::new();
    let api = client(&url, None);
    for i in 1..=2 {
        published.push(
            api.publish(&event("job.step", json!(i)))
                .await
                .expect("publish")
                .id,
        );
    }
    for id in &published[..2] {
        assert_eq!(sub.json_line().await["id"], *id);
    }

    first.stop().await;

    // While the CLI cannot reach its port, another server on the same data dir (other port)
    // takes events: the CLI must get them from history when it is back.
    let away = koor_server::spawn(koor_server::Config::for_data_dir(dir.path()))
        .await
        .expect("server on the same data dir");
    let away_api = client(&away.url(), None);
    published.push(
        away_api
            .publish(&event("job.step", json!(3)))
            .await
            .expect("publish")
            .id,
    );
    away_api
        .publish(&event("other.thing", json!("not matched")))
        .await
        .expect("publish");
    published.push(
        away_api
            .publish(&event("job.step", json!(4)))
            .await
            .expect("publish")
            .id,
    );
    away.stop().await;

    let back = PinnedServer::start(dir.path(), port, |_| {}).await;
    let api = client(&back.url(), None);
    published.push(
        api.publish(&event("job.step", json!(5)))
            .await
            .expect("publish")
            .id,
    );

    for id in &published[2..] {
        assert_eq!(sub.json_line().await["id"], *id);
    }
    // One more live event after the replay, so a duplicate would have shown up before it.
    let live = api
        .publish(&event("job.step", json!(6)))
        .await
        .expect("publish")
        .id;
    assert_eq!(sub.json_line().await["id"], live);

    let (code, rest) = sub.interrupt().await;
    assert_eq!(code, 0);
    assert!(rest.is_empty(), "no duplicates after the end: {rest:?}");
    back.stop().await;
}

/// A subscriber that stops reading is closed by the server with `last_id=N`; the CLI resumes
/// from there and still prints every event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_resumes_after_a_lag_close() {
    let server = Server::start_with(|c| c.subscriber_buffer = 16).await;
    let api = server.client();
    let mut sub = server.cli().spawn(&["events", "subscribe", "bulk.*"]);
    sub.wait_stderr("subscribed to").await;

    // The CLI blocks on its stdout pipe (nobody reads it yet), stops reading the socket, and the
    // socket buffers fill: large events get there quickly.
    let blob = "x".repeat(256 * 1024);
    let mut ids = Vec::new();
    for i in 0..160 {
        let e = api
            .publish(&event("bulk.item", json!({"i": i, "blob": blob})))
            .await
            .expect("publish");
        ids.push(e.id);
    }
    for (i, id) in ids.iter().enumerate() {
        let line = sub.json_line().await;
        assert_eq!(line["id"], *id, "event {i}");
        assert_eq!(line["data"]["i"], i);
    }
    let notes = sub.wait_stderr("lagged").await;
    assert!(notes.iter().any(|l| l.contains("last_id=")), "{notes:?}");
    let (code, rest) = sub.interrupt().await;
    assert_eq!(code, 0);
    assert!(rest.is_empty(), "{} extra lines", rest.len());
}
