//! (ext) `tasks ...`: a planner loads a plan on stdin, two agents in their own workspaces claim,
//! complete and release, and the exit codes of a 404 and a 409.

use serde_json::Value;

use crate::harness::{Cli, Server};

/// Registers `name` with `--project shop` in a fresh workspace; returns the CLI and the id.
async fn agent(server: &Server, name: &str) -> (Cli, String) {
    let cli = server.cli();
    let reg = cli
        .run(&["register", name, "--project", "shop"])
        .await
        .json();
    (cli, reg["id"].as_str().expect("id").to_owned())
}

fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_two_agents_and_the_exit_codes() {
    let server = Server::start().await;
    let (planner, planner_id) = agent(&server, "planner").await;
    let plan = r##"[
        {"title": "design the schema"},
        {"title": "write the API", "depends_on": ["#0"], "labels": ["backend"]},
        {"title": "build the UI", "depends_on": ["#0"], "labels": ["frontend"]}
    ]"##;
    let planner = planner.stdin(plan);
    let created = planner.run(&["tasks", "add"]).await.json();
    assert_eq!(ids(&created), ["T-1", "T-2", "T-3"]);
    assert_eq!(created["tasks"][0]["created_by"], planner_id.as_str());
    let one = planner
        .run(&[
            "tasks",
            "add",
            "ship it",
            "--priority",
            "-1",
            "--depends-on",
            "T-2",
            "--depends-on",
            "T-3",
        ])
        .await
        .json();
    assert_eq!(one["id"], "T-4");
    assert_eq!(one["priority"], -1);

    let (alice, alice_id) = agent(&server, "alice").await;
    let (bob, _) = agent(&server, "bob").await;
    assert_eq!(
        ids(&alice.run(&["tasks", "list", "--ready"]).await.json()),
        ["T-1"]
    );

    // Not ready yet: exit 9 naming what it waits for.
    bob.run(&["tasks", "claim", "T-2"])
        .await
        .assert_fails(9, "waits for T-1");
    let got = alice.run(&["tasks", "claim"]).await.json();
    assert_eq!(got["id"], "T-1");
    assert_eq!(got["claim"]["holder"]["id"], alice_id.as_str());
    // Held by alice: 9; nothing else ready: 5.
    bob.run(&["tasks", "claim", "T-1"])
        .await
        .assert_fails(9, "alice");
    bob.run(&["tasks", "claim"])
        .await
        .assert_fails(5, "no ready task in shop");
    bob.run(&["tasks", "done", "T-1"])
        .await
        .assert_fails(9, "not by bob");
    bob.run(&["tasks", "show", "T-99"])
        .await
        .assert_fails(5, "task not found");

    let renewed = alice
        .run(&["tasks", "renew", "T-1", "--ttl", "10m"])
        .await
        .json();
    assert_eq!(renewed["claim"]["fence"], got["claim"]["fence"]);
    let mine = alice.run(&["tasks", "list", "--mine"]).await.json();
    assert_eq!(ids(&mine), ["T-1"]);
    let done = alice
        .run(&["tasks", "done", "T-1", "--result", "schema.sql merged"])
        .await
        .json();
    assert_eq!(done["status"], "done");
    assert_eq!(done["result"], "schema.sql merged");

    // Two ready now; bob takes the frontend one by label, then gives it back.
    let ui = bob
        .run(&["tasks", "claim", "--label", "frontend"])
        .await
        .json();
    assert_eq!(ui["id"], "T-3");
    let back = bob
        .run(&["tasks", "release", "T-3", "--reason", "need a designer"])
        .await
        .json();
    assert_eq!(back["status"], "open");
    let api = alice.run(&["tasks", "claim", "T-2"]).await.json();
    assert_eq!(api["status"], "claimed");
    let failed = alice
        .run(&["tasks", "fail", "T-2", "--reason", "spec unclear"])
        .await
        .json();
    assert_eq!(failed["status"], "failed");

    // Operators: put a claimed task back, cancel one; a done task cannot be cancelled (9).
    bob.run(&["tasks", "claim", "T-3"]).await.assert_ok();
    let operator = server.cli();
    let forced = operator
        .run(&["tasks", "release", "T-3", "--force", "--project", "shop"])
        .await
        .json();
    assert_eq!(forced["attempts"], 1);
    assert_eq!(forced["status"], "open");
    operator
        .run(&["tasks", "cancel", "T-4", "--project", "shop"])
        .await
        .assert_ok();
    operator
        .run(&["tasks", "cancel", "T-1", "--project", "shop"])
        .await
        .assert_fails(9, "is done");
    let shown = operator
        .run(&["tasks", "show", "T-4", "--project", "shop"])
        .await
        .json();
    assert_eq!(shown["status"], "cancelled");
    let listed = operator
        .run(&[
            "tasks",
            "list",
            "--status",
            "failed,cancelled",
            "--project",
            "shop",
        ])
        .await
        .json();
    assert_eq!(ids(&listed), ["T-2", "T-4"]);
    // No project anywhere: a usage error.
    operator
        .run(&["tasks", "list"])
        .await
        .assert_fails(2, "no project");
    // KOOR_PROJECT works too.
    let env = server.cli().env("KOOR_PROJECT", "shop");
    assert_eq!(
        ids(&env.run(&["tasks", "list", "--ready"]).await.json()),
        ["T-3"]
    );
}

/// The CLI gaps of issue 22: `tasks reopen`, what `tasks done` unblocked, an empty stdin, and the
/// help of `tasks add --data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_unblocked_and_an_empty_plan() {
    let server = Server::start().await;
    let (planner, _) = agent(&server, "planner").await;
    let plan = r##"[
        {"title": "design"},
        {"title": "build", "depends_on": ["#0"]},
        {"title": "test", "depends_on": ["#0"]},
        {"title": "ship", "depends_on": ["#1", "#2"]}
    ]"##;
    let created = planner
        .run_with_stdin(&["tasks", "add"], plan.as_bytes())
        .await
        .json();
    assert_eq!(ids(&created), ["T-1", "T-2", "T-3", "T-4"]);

    // done says which tasks it made ready (not T-4: it still waits for T-2 and T-3)
    let (alice, _) = agent(&server, "alice").await;
    alice.run(&["tasks", "claim", "T-1"]).await.assert_ok();
    let done = alice.run(&["tasks", "done", "T-1"]).await.json();
    assert_eq!(done["status"], "done");
    assert_eq!(
        done["unblocked"],
        serde_json::json!(["T-2", "T-3"]),
        "{done}"
    );

    // a failed task is reopened from the CLI
    alice.run(&["tasks", "claim", "T-2"]).await.assert_ok();
    alice
        .run(&["tasks", "fail", "T-2", "--reason", "flaky"])
        .await
        .assert_ok();
    let reopened = alice.run(&["tasks", "reopen", "T-2"]).await.json();
    assert_eq!(reopened["status"], "open");
    assert_eq!(reopened["ready"], true);
    // a done task cannot be reopened: the server's 409 (exit 9)
    alice
        .run(&["tasks", "reopen", "T-1"])
        .await
        .assert_fails(9, "only a failed or cancelled task");
    alice.run(&["tasks", "claim", "T-2"]).await.assert_ok();
    let done = alice.run(&["tasks", "done", "T-2"]).await.json();
    assert_eq!(done["unblocked"], serde_json::json!([]), "{done}");

    // nothing on stdin: a clear usage error, not a JSON parser's EOF
    let empty = planner.run(&["tasks", "add"]).await;
    empty.assert_fails(2, "no task given");
    assert!(!empty.stderr.contains("EOF"), "{}", empty.stderr);

    // --data is shown with a task, not a state value
    let help = planner.run(&["tasks", "add", "--help"]).await;
    help.assert_ok();
    let text = help.text();
    assert!(!text.contains("endpoint"), "{text}");
    assert!(text.contains(r#"--data '{"title""#), "{text}");
}
