//! (ext) The whole flow of issue 22, scripted: two agents, each in its own git repository of
//! project `shop`, set up by `koor-cli init` alone (MCP config, instructions, the Claude Code hook,
//! the git guard) and registered as the instructions say; a plan and its claims; a reservation
//! that the other agent's commit (the guard git runs) and Edit (the hook, fed Claude Code's event
//! on stdin) both respect; messages with `--wait`. Nothing but `register` names the server.

use std::path::Path;

use serde_json::Value;

use crate::harness::{BIN, Cli, Out, Server};
use crate::messages::until_waiters;
use crate::reservations::{GitOk, assert_allowed, assert_denied, fixture, git, write};

/// A fresh git repository set up by `init` and registered as its instructions say.
async fn agent(url: &str, name: &str) -> Cli {
    let cli = Cli::new();
    let repo = cli.cwd().to_path_buf();
    git(&repo, &["init", "-q", "-b", "main"], None).assert_git();
    let init = cli
        .run(&[
            "--server",
            url,
            "init",
            "--ide",
            "claude",
            "--project",
            "shop",
            "--name",
            name,
        ])
        .await
        .json();
    let files: Vec<&str> = init["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    for wanted in [
        ".mcp.json",
        ".claude/settings.json",
        ".git/hooks/pre-commit",
        "CLAUDE.md",
    ] {
        assert!(files.contains(&wanted), "{wanted} in {init}");
    }
    let register = format!("koor-cli register {name} --project shop");
    let instructions = std::fs::read_to_string(repo.join("CLAUDE.md")).expect("CLAUDE.md");
    assert!(instructions.contains(&register), "{instructions}");
    let reg = cli
        .run(&["--server", url, "register", name, "--project", "shop"])
        .await
        .json();
    let id = reg["id"].as_str().expect("id");
    cli.run(&["activate", id]).await.assert_ok();
    cli
}

/// Runs the hook command `init` wrote into `.claude/settings.json`, as Claude Code would before
/// an Edit of `src/auth/login.rs`.
async fn claude_code_edit(cli: &Cli, repo: &Path) -> Out {
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join(".claude/settings.json")).expect("settings"),
    )
    .expect("json");
    let entry = settings["hooks"]["PreToolUse"]
        .as_array()
        .expect("PreToolUse")
        .iter()
        .find(|e| e["matcher"].as_str().is_some_and(|m| m.contains("Edit")))
        .expect("an Edit hook");
    let command = entry["hooks"][0]["command"].as_str().expect("command");
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[0], "koor-cli", "{command}");
    assert!(BIN.ends_with("koor-cli"));
    cli.run_with_stdin(&args[1..], &fixture("edit.json", repo))
        .await
}

fn id(v: &Value) -> String {
    match &v["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_repositories_init_claims_a_reservation_and_messages() {
    let server = Server::start().await;
    let url = server.url();
    let alice = agent(&url, "alice").await;
    let bob = agent(&url, "bob").await;
    let bob_repo = bob.cwd().to_path_buf();

    // A plan, and one task each.
    let plan = r##"[{"title": "auth", "priority": 1}, {"title": "docs"}, {"title": "release", "depends_on": ["#0", "#1"]}]"##;
    alice
        .run_with_stdin(&["tasks", "add"], plan.as_bytes())
        .await
        .assert_ok();
    assert_eq!(id(&alice.run(&["tasks", "claim"]).await.json()), "T-1");
    assert_eq!(id(&bob.run(&["tasks", "claim"]).await.json()), "T-2");

    // alice reserves what T-1 touches.
    alice
        .run(&["reserve", "src/auth/**", "--reason", "T-1: auth"])
        .await
        .assert_ok();

    // bob's Edit of a reserved file: denied by the hook init wrote.
    write(&bob_repo, "src/auth/login.rs", "fn login() {}\n");
    let reason = assert_denied(&claude_code_edit(&bob, &bob_repo).await);
    assert!(
        reason.contains("alice") && reason.contains("T-1: auth"),
        "{reason}"
    );

    // bob's own files commit; the reserved one is refused by the guard init installed.
    write(&bob_repo, "docs/guide.md", "# Guide\n");
    git(&bob_repo, &["add", "docs"], None).assert_git();
    git(&bob_repo, &["commit", "-q", "-m", "docs"], None).assert_git();
    git(&bob_repo, &["add", "src"], None).assert_git();
    let refused = git(&bob_repo, &["commit", "-q", "-m", "auth"], None);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "refused: {said}");
    assert!(
        said.contains("src/auth/login.rs") && said.contains("alice"),
        "{said}"
    );

    // bob asks alice, who sleeps until spoken to.
    let mut alice_waits = alice.spawn(&["inbox", "--wait", "5m"]);
    until_waiters(&server, 1).await;
    let asked = bob
        .run(&[
            "send",
            "alice",
            "--subject",
            "may I touch src/auth/login.rs?",
            "--ack",
        ])
        .await
        .json();
    let woke = alice_waits.json_line().await;
    assert_eq!(woke["messages"][0]["id"], asked["id"], "{woke}");
    assert_eq!(alice_waits.finish().await.0, 0);
    let q = id(&asked);
    alice.run(&["ack", &q]).await.assert_ok();

    // alice finishes, lets go and answers; bob wakes to the answer.
    let done = alice.run(&["tasks", "done", "T-1"]).await.json();
    assert_eq!(
        done["unblocked"],
        serde_json::json!([]),
        "T-3 still waits for T-2"
    );
    alice.run(&["release", "--all"]).await.assert_ok();
    let mut bob_waits = bob.spawn(&["inbox", "--wait", "5m"]);
    until_waiters(&server, 1).await;
    alice
        .run(&["send", "bob", "--subject", "go ahead", "--thread", &q])
        .await
        .assert_ok();
    let answer = bob_waits.json_line().await;
    assert_eq!(answer["messages"][0]["subject"], "go ahead", "{answer}");
    assert_eq!(bob_waits.finish().await.0, 0);
    let answer_id = id(&answer["messages"][0]);
    bob.run(&["read", &answer_id]).await.assert_ok();

    // Now the Edit and the commit go through, and the finished task unblocks the last one.
    assert_allowed(&claude_code_edit(&bob, &bob_repo).await);
    git(&bob_repo, &["commit", "-q", "-m", "auth"], None).assert_git();
    let done = bob.run(&["tasks", "done", "T-2"]).await.json();
    assert_eq!(done["unblocked"], serde_json::json!(["T-3"]), "{done}");

    // Nothing new for bob: a wait in a loop sleeps and ends with nothing (exit 10).
    let idle = bob.run(&["inbox", "--wait", "1s"]).await;
    assert_eq!(idle.code, 10, "{}", idle.text());
}
