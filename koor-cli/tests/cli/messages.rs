//! (ext) `send`, `inbox [--wait]`, `read`, `ack`, `thread` and `wait`: two agents, each in its own
//! workspace, ask and answer; the exit code of a wait that ends with nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Cli, Server};

async fn agent(server: &Server, name: &str) -> (Cli, String) {
    let cli = server.cli();
    let reg = cli.run(&["register", name]).await.json();
    (cli, reg["id"].as_str().expect("id").to_owned())
}

/// Waits until the server counts `n` waiters (the CLI's request has registered).
pub(crate) async fn until_waiters(server: &Server, n: i64) {
    let client = server.client();
    for _ in 0..2000 {
        if client.metrics().await.expect("metrics").waiters == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never saw {n} waiters");
}

fn ids(inbox: &Value) -> Vec<i64> {
    inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_asks_another_and_waits_for_the_reply() {
    let server = Server::start().await;
    let (alice, alice_id) = agent(&server, "alice").await;
    let (bob, bob_id) = agent(&server, "bob").await;

    // bob sleeps until he is spoken to
    let mut bob_waits = bob.spawn(&["inbox", "--unread", "--wait", "5m"]);
    until_waiters(&server, 1).await;
    let sent = alice
        .run(&[
            "send",
            "bob",
            "--subject",
            "which API version?",
            "--body",
            r#"{"endpoint":"/users"}"#,
            "--ack",
        ])
        .await
        .json();
    let q = sent["id"].as_i64().expect("id");
    assert_eq!(sent["to"], json!([{"id": bob_id, "name": "bob"}]));
    let woke = bob_waits.json_line().await;
    assert_eq!(ids(&woke), vec![q]);
    assert_eq!(woke["messages"][0]["body"], json!({"endpoint": "/users"}));
    assert_eq!(woke["messages"][0]["from"]["id"], alice_id.as_str());
    assert_eq!(bob_waits.finish().await.0, 0);

    // listing never marks read
    for _ in 0..2 {
        assert_eq!(ids(&bob.run(&["inbox", "--unread"]).await.json()), vec![q]);
    }
    let read = bob.run(&["read", &q.to_string()]).await.json();
    assert!(
        read["read_at"].is_string() && read["acked_at"].is_null(),
        "{read}"
    );
    assert!(ids(&bob.run(&["inbox", "--unread"]).await.json()).is_empty());
    assert_eq!(ids(&bob.run(&["inbox", "--unacked"]).await.json()), vec![q]);
    let acked = bob.run(&["ack", &q.to_string()]).await.json();
    assert!(acked["acked_at"].is_string());

    // alice waits for the answer; bob replies in the thread with a body from stdin
    let mut alice_waits = alice.spawn(&[
        "inbox",
        "--unread",
        "--thread",
        &q.to_string(),
        "--wait",
        "5m",
    ]);
    until_waiters(&server, 1).await;
    let reply = bob
        .stdin("v3, see the spec\n")
        .run(&[
            "send",
            &alice_id,
            "--subject",
            "re: which API version?",
            "--body",
            "-",
            "--thread",
            &q.to_string(),
        ])
        .await
        .json();
    assert_eq!(reply["thread_id"], q);
    let answer = alice_waits.json_line().await;
    assert_eq!(answer["messages"][0]["body"], "v3, see the spec");
    assert_eq!(alice_waits.finish().await.0, 0);

    let thread = alice
        .run(&["thread", &reply["id"].to_string()])
        .await
        .json();
    assert_eq!(thread["thread_id"], q);
    assert_eq!(thread["messages"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_end_with_nothing_exit_10() {
    let server = Server::start().await;
    let (alice, _) = agent(&server, "alice").await;
    let out = alice.run(&["inbox", "--wait", "1s"]).await;
    assert_eq!(out.code, 10, "stderr: {}", out.stderr);
    let inbox: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(inbox["messages"], json!([]));

    let out = alice.run(&["wait", "never.*", "--timeout", "1s"]).await;
    assert_eq!(out.code, 10);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("no matching event"), "{}", out.stderr);

    // unknown addressee: the server's 400 names it (exit 7)
    alice
        .run(&["send", "ghost", "--subject", "hi"])
        .await
        .assert_fails(7, "ghost");
    // no identity here: a usage error
    server
        .cli()
        .run(&["inbox"])
        .await
        .assert_fails(2, "no instance");
    let out = alice.run(&["wait", "x", "--timeout", "soon"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("'soon'"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_prints_the_matching_events() {
    let server = Server::start().await;
    let client = server.client();
    let publish = |topic: &str| {
        let client = client.clone();
        let topic = topic.to_owned();
        async move {
            client
                .publish(&koor_shared::types::PublishRequest {
                    topic,
                    data: json!({}),
                    source: "test".into(),
                })
                .await
                .expect("publish")
                .id
        }
    };
    let cli = server.cli();
    // longer than one server wait: a loop of waits
    let mut waiting = cli.spawn(&["wait", "build.*", "deploy.**", "--timeout", "10m"]);
    until_waiters(&server, 1).await;
    publish("other").await;
    let id = publish("deploy.prod.eu").await;
    let event = waiting.json_line().await;
    assert_eq!(event["id"], id);
    assert_eq!(event["topic"], "deploy.prod.eu");
    assert_eq!(waiting.finish().await.0, 0);

    // --since: what is stored already answers at once, one line per event
    let first = publish("build.done").await;
    let second = publish("build.failed").await;
    let out = cli
        .run(&["wait", "build.*", "--since", &(first - 1).to_string()])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<Value> = out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let got: Vec<i64> = lines
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(got, vec![first, second]);
}

/// `inbox --wait` waits for something new: a message already read and acked never ends it, so a
/// script looping on it sleeps instead of spinning; `--since` waits past the last id seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_wait_ignores_what_was_already_read() {
    let server = Server::start().await;
    let (alice, _) = agent(&server, "alice").await;
    let (bob, _) = agent(&server, "bob").await;
    let old = send(&alice, "old").await;
    bob.run(&["ack", &old.to_string()]).await.assert_ok();

    // Only a read and acked message in the inbox: the wait ends with nothing.
    let out = bob.run(&["inbox", "--wait", "1s"]).await;
    assert_eq!(out.code, 10, "stdout {} stderr {}", out.text(), out.stderr);

    // A new message ends it, and only the new one is listed.
    let mut waiting = bob.spawn(&["inbox", "--wait", "5m"]);
    until_waiters(&server, 1).await;
    let new = send(&alice, "new").await;
    assert_eq!(ids(&waiting.json_line().await), vec![new]);
    assert_eq!(waiting.finish().await.0, 0);

    // After the last id seen, read or not.
    let mut after = bob.spawn(&["inbox", "--since", &new.to_string(), "--wait", "5m"]);
    until_waiters(&server, 1).await;
    let third = send(&alice, "third").await;
    assert_eq!(ids(&after.json_line().await), vec![third]);
    assert_eq!(after.finish().await.0, 0);
}

/// `from` sends bob a message asking for an ack; returns its id.
async fn send(from: &Cli, subject: &str) -> i64 {
    from.run(&["send", "bob", "--subject", subject, "--ack"])
        .await
        .json()["id"]
        .as_i64()
        .expect("id")
}
