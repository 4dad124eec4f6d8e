//! (ext) `lock acquire|release|list|get`: two agents, each in its own workspace with its own
//! `.koor/instance.json`, and the exit code of a 409.

use serde_json::Value;

use crate::harness::{Cli, Server};

/// Registers `name` in a fresh workspace; returns the CLI running there and the instance id.
async fn agent(server: &Server, name: &str) -> (Cli, String) {
    let cli = server.cli();
    let reg = cli.run(&["register", name]).await.json();
    let id = reg["id"].as_str().expect("id").to_owned();
    (cli, id)
}

fn fence(lock: &Value) -> i64 {
    lock["fence"].as_i64().expect("fence")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_one_lock() {
    let server = Server::start().await;
    let (alice, alice_id) = agent(&server, "alice").await;
    let (bob, bob_id) = agent(&server, "bob").await;

    let got = alice
        .run(&["lock", "acquire", "deploy/prod", "--ttl", "5m"])
        .await
        .json();
    assert_eq!(got["name"], "deploy/prod");
    assert_eq!(got["holder"]["id"], alice_id.as_str());
    assert_eq!(got["holder"]["name"], "alice");
    let first_fence = fence(&got);

    // held by another: exit 9, the holder named on stderr
    bob.run(&["lock", "acquire", "deploy/prod"])
        .await
        .assert_fails(9, "alice");
    // not the holder: 9 as well
    bob.run(&["lock", "release", "deploy/prod"])
        .await
        .assert_fails(9, "");

    // acquiring again renews: same fence
    let renewed = alice.run(&["lock", "acquire", "deploy/prod"]).await.json();
    assert_eq!(fence(&renewed), first_fence);

    let list = bob.run(&["lock", "list"]).await.json();
    assert_eq!(list["locks"].as_array().expect("locks").len(), 1);
    assert_eq!(list["locks"][0]["holder"]["id"], alice_id.as_str());
    assert_eq!(
        bob.run(&["lock", "get", "deploy/prod"]).await.json()["holder"]["name"],
        "alice"
    );

    assert_eq!(
        alice.run(&["lock", "release", "deploy/prod"]).await.json()["released"],
        "deploy/prod"
    );
    bob.run(&["lock", "get", "deploy/prod"])
        .await
        .assert_fails(5, "deploy/prod");

    // now bob takes it, with a higher fence; an operator forces it free
    let bobs = bob.run(&["lock", "acquire", "deploy/prod"]).await.json();
    assert_eq!(bobs["holder"]["id"], bob_id.as_str());
    assert!(fence(&bobs) > first_fence);
    let operator = server.cli();
    assert_eq!(
        operator
            .run(&["lock", "release", "deploy/prod", "--force"])
            .await
            .json()["released"],
        "deploy/prod"
    );
    assert_eq!(
        operator.run(&["lock", "list"]).await.json()["locks"],
        serde_json::json!([])
    );

    // bad input: the server's 400 (exit 7); no instance: a usage error
    alice
        .run(&["lock", "acquire", "x", "--ttl", "1s"])
        .await
        .assert_fails(7, "");
    operator
        .run(&["lock", "acquire", "x"])
        .await
        .assert_fails(2, "no instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_agent_waits_for_the_first_to_release() {
    let server = Server::start().await;
    let (alice, _) = agent(&server, "alice").await;
    let (bob, bob_id) = agent(&server, "bob").await;
    alice
        .run(&["lock", "acquire", "db-migrations"])
        .await
        .assert_ok();

    let mut waiting = bob.spawn(&["lock", "acquire", "db-migrations", "--wait", "30s"]);
    // the waiter is queued once the server counts it in /api/metrics; then alice lets go
    // (a server without the count: bob gets the lock all the same)
    let client = server.client();
    for _ in 0..500 {
        let m: Value = client
            .send(client.request(reqwest::Method::GET, "/api/metrics"))
            .await
            .expect("metrics")
            .json()
            .await
            .expect("json");
        if m["waiters"].as_i64().is_none_or(|n| n > 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    alice
        .run(&["lock", "release", "db-migrations"])
        .await
        .assert_ok();
    let got = waiting.json_line().await;
    assert_eq!(got["holder"]["id"], bob_id.as_str());
    let (code, _) = waiting.finish().await;
    assert_eq!(code, 0);

    // a wait that runs out is a 409 too
    alice
        .run(&["lock", "acquire", "db-migrations", "--wait", "1s"])
        .await
        .assert_fails(9, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_instance_token_is_refused() {
    let server = Server::start().await;
    let (alice, alice_id) = agent(&server, "alice").await;
    let forged = server
        .cli()
        .env("KOOR_INSTANCE", &alice_id)
        .env("KOOR_INSTANCE_TOKEN", "not-the-token");
    forged
        .run(&["lock", "acquire", "x"])
        .await
        .assert_fails(7, "403");
    forged.run(&["heartbeat"]).await.assert_fails(7, "403");
    // the right one, from the file
    alice.run(&["lock", "acquire", "x"]).await.assert_ok();
}

/// One rule for waits: a lock wait longer than the server's longest (60 s) is a loop of waits, as
/// `inbox --wait` and `wait --timeout` are; and errors echo a duration as it was typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lock_wait_loops_and_durations_are_echoed_as_typed() {
    let server = Server::start().await;
    let (alice, _) = agent(&server, "alice").await;
    let (bob, bob_id) = agent(&server, "bob").await;
    alice.run(&["lock", "acquire", "deploy"]).await.assert_ok();

    let mut waiting = bob.spawn(&["lock", "acquire", "deploy", "--wait", "90s"]);
    alice.run(&["lock", "release", "deploy"]).await.assert_ok();
    let got = waiting.json_line().await;
    assert_eq!(got["holder"]["id"], bob_id.as_str(), "{got}");
    assert_eq!(waiting.finish().await.0, 0);

    let out = bob.run(&["lock", "acquire", "other", "--ttl", "25h"]).await;
    out.assert_fails(7, "25h");
    assert!(!out.stderr.contains("day"), "{}", out.stderr);
    let out = bob
        .run(&["lock", "acquire", "other", "--wait", "forever"])
        .await;
    assert_eq!(out.code, 2, "a usage error: {}", out.stderr);
    assert!(out.stderr.contains("'forever'"), "{}", out.stderr);
}
