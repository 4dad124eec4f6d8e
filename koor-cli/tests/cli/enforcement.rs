//! (ext) Enforcement never switches off quietly (issue 22): the guard and the hook find the server
//! in `.koor/instance.json` when nothing else names it, and when they cannot tell the project they
//! say so instead of letting the edit through in silence.

use crate::harness::{Cli, Server, dead_port};
use crate::reservations::{GitOk, assert_denied, fixture, git, write};

/// Registers alice in project `shop` the usual way (KOOR_SERVER) and reserves `src/auth/**`.
async fn alice_holds_auth(server: &Server) -> Cli {
    let alice = server.cli();
    git(alice.cwd(), &["init", "-q", "-b", "main"], None).assert_git();
    alice
        .run(&["register", "alice", "--project", "shop"])
        .await
        .assert_ok();
    alice
        .run(&["reserve", "src/auth/**", "--reason", "refactoring auth"])
        .await
        .assert_ok();
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_files_server_is_used_when_nothing_else_names_one() {
    let server = Server::start().await;
    let url = server.url();
    let _alice = alice_holds_auth(&server).await;

    // bob names the server once, to register; after that, nothing in his environment does.
    let bob = Cli::new();
    let repo = bob.cwd().to_path_buf();
    git(&repo, &["init", "-q", "-b", "main"], None).assert_git();
    bob.run(&["--server", &url, "register", "bob", "--project", "shop"])
        .await
        .assert_ok();
    let me = bob.run(&["whoami"]).await.json();
    assert_eq!(me["server"], url.as_str(), "{me}");

    // The Claude Code hook asks the server bob registered with: denied.
    write(&repo, "src/auth/login.rs", "fn login() {}\n");
    let out = bob
        .run_with_stdin(&["hook", "claude-code"], &fixture("edit.json", &repo))
        .await;
    assert!(assert_denied(&out).contains("alice"));

    // So does the git guard, run by git with no KOOR_SERVER (a GUI client, an IDE): refused.
    bob.run(&["guard", "install"]).await.assert_ok();
    git(&repo, &["add", "src"], None).assert_git();
    let commit = git(&repo, &["commit", "-q", "-m", "auth"], None);
    let said = String::from_utf8_lossy(&commit.stderr);
    assert!(!commit.status.success(), "the commit was refused: {said}");
    assert!(
        said.contains("alice") && said.contains("refactoring auth"),
        "{said}"
    );

    // A flag (or KOOR_SERVER) still wins over the file.
    let down = format!("http://127.0.0.1:{}", dead_port());
    bob.run(&["--server", &down, "status"])
        .await
        .assert_fails(3, &down);
    let out = bob.run(&["config", "get"]).await.json();
    assert_eq!(out["server"]["value"], url.as_str(), "{out}");
    assert!(
        out["server"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("instance.json")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_project_the_hook_and_the_guard_say_so() {
    let server = Server::start().await;
    let _alice = alice_holds_auth(&server).await;

    // bob registered in his worktree without --project: which project is this?
    let bob = server.cli();
    let repo = bob.cwd().to_path_buf();
    git(&repo, &["init", "-q", "-b", "main"], None).assert_git();
    bob.run(&["register", "bob"]).await.assert_ok();
    write(&repo, "src/auth/login.rs", "fn login() {}\n");

    // The hook makes no decision, but tells the agent (and the user) that nothing was checked.
    let out = bob
        .run_with_stdin(&["hook", "claude-code"], &fixture("edit.json", &repo))
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let answer = out.json();
    let hook = &answer["hookSpecificOutput"];
    assert_eq!(hook["hookEventName"], "PreToolUse", "{answer}");
    assert!(
        hook["permissionDecision"].is_null(),
        "no decision: {answer}"
    );
    let context = hook["additionalContext"].as_str().expect("a message");
    assert!(
        context.contains("not checked") && context.contains("--project"),
        "{context}"
    );
    assert!(answer["systemMessage"].is_string(), "{answer}");

    // The guard says so on stderr and lets the commit through.
    git(&repo, &["add", "src"], None).assert_git();
    let out = bob.run(&["guard", "pre-commit"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot tell the project") && out.stderr.contains("--project"),
        "{}",
        out.stderr
    );

    // The same rule everywhere: reserve refuses as tasks list does.
    bob.run(&["reserve", "src/main.rs"])
        .await
        .assert_fails(2, "no project");
    bob.run(&["tasks", "list"])
        .await
        .assert_fails(2, "no project");

    // Told the project (KOOR_PROJECT here), the hook denies the edit.
    let bob = bob.env("KOOR_PROJECT", "shop");
    let out = bob
        .run_with_stdin(&["hook", "claude-code"], &fixture("edit.json", &repo))
        .await;
    assert!(assert_denied(&out).contains("alice"));
}
