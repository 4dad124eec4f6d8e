//! (ext) File reservations from the command line: `reserve`, `reservations`, `release`, the git
//! pre-commit guard in a real repository, and the Claude Code hook on recorded `PreToolUse`
//! events (fixtures in `tests/fixtures/claude-code/`, written from Claude Code's documented
//! event format). Two agents, each in its own git workspace registered with `--project shop`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::harness::{Cli, Out, Server, dead_port};

/// Registers `name` for project `shop` in a fresh git workspace; returns its CLI and id.
async fn agent(server: &Server, name: &str) -> (Cli, String) {
    let cli = server.cli();
    git(cli.cwd(), &["init", "-q", "-b", "main"], None).assert_git();
    let reg = cli
        .run(&["register", name, "--project", "shop"])
        .await
        .json();
    (cli, reg["id"].as_str().expect("id").to_owned())
}

pub(crate) trait GitOk {
    fn assert_git(&self) -> &Self;
}

impl GitOk for Output {
    fn assert_git(&self) -> &Self {
        assert!(
            self.status.success(),
            "git failed: {}",
            String::from_utf8_lossy(&self.stderr)
        );
        self
    }
}

/// Runs git in `dir` with a clean identity; `server` is the URL the hooks it runs should use.
pub(crate) fn git(dir: &Path, args: &[&str], server: Option<&str>) -> Output {
    let mut cmd = std::process::Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    for var in [
        "KOOR_SERVER",
        "KOOR_TOKEN",
        "KOOR_INSTANCE",
        "KOOR_INSTANCE_TOKEN",
        "KOOR_PROJECT",
    ] {
        cmd.env_remove(var);
    }
    if let Some(url) = server {
        cmd.env("KOOR_SERVER", url);
    }
    cmd.output().expect("git runs")
}

pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A recorded `PreToolUse` event with the agent's working directory filled in.
pub(crate) fn fixture(name: &str, cwd: &Path) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let cwd = cwd.canonicalize().expect("canonical cwd");
    text.replace("{{CWD}}", &cwd.display().to_string())
        .into_bytes()
}

/// Asserts the hook let the call go on as usual: exit 0, nothing on stdout.
pub(crate) fn assert_allowed(out: &Out) {
    assert_eq!(out.code, 0, "exit code (stderr: {})", out.stderr);
    assert!(out.stdout.is_empty(), "no decision: {}", out.text());
}

/// Asserts the hook denied the call in Claude Code's documented output format; returns the
/// reason.
pub(crate) fn assert_denied(out: &Out) -> String {
    let answer: Value = out.json();
    let hook = &answer["hookSpecificOutput"];
    assert_eq!(hook["hookEventName"], "PreToolUse", "{answer}");
    assert_eq!(hook["permissionDecision"], "deny", "{answer}");
    hook["permissionDecisionReason"]
        .as_str()
        .expect("a reason")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_list_release_and_the_exit_code_of_a_conflict() {
    let server = Server::start().await;
    let (alice, alice_id) = agent(&server, "alice").await;
    let (bob, _) = agent(&server, "bob").await;

    let got = alice
        .run(&[
            "reserve",
            "src/auth/**",
            "--reason",
            "refactoring auth",
            "--ttl",
            "30m",
        ])
        .await
        .json();
    let r = &got["reservations"][0];
    assert_eq!(r["path"], "src/auth/**");
    assert_eq!(r["project"], "shop", "the project saved by register");
    assert_eq!(r["exclusive"], true);
    assert_eq!(r["holder"]["id"], alice_id.as_str());

    // Held by another: exit 9, holder and reason on stderr.
    let refused = bob.run(&["reserve", "./src/auth/login.rs"]).await;
    refused.assert_fails(9, "alice");
    assert!(
        refused.stderr.contains("refactoring auth"),
        "{}",
        refused.stderr
    );

    // An absolute path inside the repository is made relative to its top.
    let abs = alice
        .cwd()
        .canonicalize()
        .expect("cwd")
        .join("docs/guide.md");
    let got = alice
        .run(&["reserve", abs.to_str().expect("utf-8"), "--shared"])
        .await
        .json();
    assert_eq!(got["reservations"][0]["path"], "docs/guide.md");
    assert_eq!(got["reservations"][0]["exclusive"], false);
    bob.run(&["reserve", "/etc/passwd"])
        .await
        .assert_fails(2, "outside the project root");

    let list = bob.run(&["reservations", "--project", "shop"]).await.json();
    assert_eq!(list["reservations"].as_array().map(Vec::len), Some(2));
    let covering = bob
        .run(&["reservations", "--path", "src/auth/login.rs"])
        .await
        .json();
    assert_eq!(covering["reservations"][0]["path"], "src/auth/**");
    let mine = bob.run(&["reservations", "--mine"]).await.json();
    assert_eq!(mine["reservations"], Value::Array(vec![]));

    // Releasing what you do not hold: exit 5.
    bob.run(&["release", "src/auth/**"])
        .await
        .assert_fails(5, "none of src/auth/** is reserved by this instance");
    let released = alice.run(&["release", "src/auth/**"]).await.json();
    assert_eq!(released["released"][0]["path"], "src/auth/**");
    bob.run(&["reserve", "src/auth/login.rs"]).await.assert_ok();

    // --all, and an operator's --id --force.
    let id = bob.run(&["reservations", "--mine"]).await.json()["reservations"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let forced = alice.run(&["release", "--id", &id, "--force"]).await.json();
    assert_eq!(forced["released"][0]["path"], "src/auth/login.rs");
    let all = alice.run(&["release", "--all"]).await.json();
    assert_eq!(all["released"][0]["path"], "docs/guide.md");
    assert_eq!(bob.run(&["release"]).await.code, 2, "nothing to release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_commit_guard_blocks_a_staged_file_held_by_another_and_passes_otherwise() {
    let server = Server::start().await;
    let url = server.url();
    let (alice, _) = agent(&server, "alice").await;
    let (bob, _) = agent(&server, "bob").await;
    let repo = bob.cwd().to_path_buf();
    write(&repo, "src/auth/login.rs", "fn login() {}\n");
    write(&repo, "src/main.rs", "fn main() {}\n");

    alice
        .run(&["reserve", "src/auth/**", "--reason", "refactoring auth"])
        .await
        .assert_ok();
    // bob's own reservation never stops bob
    bob.run(&["reserve", "src/main.rs"]).await.assert_ok();

    // Only a free file staged: the guard passes.
    git(&repo, &["add", "src/main.rs"], None).assert_git();
    let out = bob.run(&["guard", "pre-commit"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);

    // A file under alice's glob staged: exit 1 naming file, holder and reason.
    git(&repo, &["add", "src/auth/login.rs"], None).assert_git();
    let out = bob.run(&["guard", "pre-commit"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    for needle in [
        "src/auth/login.rs",
        "alice",
        "refactoring auth",
        "src/auth/**",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }

    // Installed as the repository's hook, `git commit` itself is refused.
    let installed = bob.run(&["guard", "install"]).await.json();
    let hook = Path::new(installed["installed"].as_str().expect("path"));
    assert!(
        hook.ends_with(".git/hooks/pre-commit"),
        "{}",
        hook.display()
    );
    let commit = git(&repo, &["commit", "-q", "-m", "auth"], Some(&url));
    assert!(!commit.status.success(), "the commit was refused");
    let said = String::from_utf8_lossy(&commit.stderr);
    assert!(
        said.contains("alice") && said.contains("refactoring auth"),
        "{said}"
    );

    // alice lets go: the same commit goes through.
    alice.run(&["release", "--all"]).await.assert_ok();
    git(&repo, &["commit", "-q", "-m", "auth"], Some(&url)).assert_git();

    // The server down: a warning, and the commit goes through.
    write(&repo, "src/auth/login.rs", "fn login(user: &str) {}\n");
    git(&repo, &["add", "-A", "src"], None).assert_git();
    let down = format!("http://127.0.0.1:{}", dead_port());
    let out = bob.run(&["--server", &down, "guard", "pre-commit"]).await;
    assert_eq!(out.code, 0, "fails open: {}", out.stderr);
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
    let commit = git(&repo, &["commit", "-q", "-m", "down"], Some(&down));
    commit.assert_git();
    assert!(String::from_utf8_lossy(&commit.stderr).contains("warning"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_install_keeps_a_hook_that_is_not_ours_unless_forced() {
    let server = Server::start().await;
    let (bob, _) = agent(&server, "bob").await;
    let hook = bob.cwd().join(".git/hooks/pre-commit");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("mkdir");
    std::fs::write(&hook, "#!/bin/sh\nmake lint\n").expect("write");
    bob.run(&["guard", "install"])
        .await
        .assert_fails(1, "not Koor's");
    assert_eq!(
        std::fs::read_to_string(&hook).expect("read"),
        "#!/bin/sh\nmake lint\n"
    );
    let forced = bob.run(&["guard", "install", "--force"]).await.json();
    assert_eq!(forced["replaced"], true);
    // Ours may be written again without --force.
    bob.run(&["guard", "install"]).await.assert_ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&hook).expect("meta").permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "executable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claude_code_hook_denies_and_allows_on_recorded_events() {
    let server = Server::start().await;
    let (alice, _) = agent(&server, "alice").await;
    let (bob, _) = agent(&server, "bob").await;
    let repo = bob.cwd().to_path_buf();
    write(&repo, "src/auth/login.rs", "fn login() {}\n");
    alice
        .run(&["reserve", "src/auth/**", "--reason", "refactoring auth"])
        .await
        .assert_ok();
    let hook = ["hook", "claude-code"];

    // Edit, Write (of a file that does not exist yet), MultiEdit, NotebookEdit under the glob.
    for name in ["edit.json", "write.json", "multiedit.json", "notebook.json"] {
        let out = bob.run_with_stdin(&hook, &fixture(name, &repo)).await;
        let reason = assert_denied(&out);
        for needle in ["alice", "refactoring auth", "src/auth/**"] {
            assert!(reason.contains(needle), "{name}: {needle} in {reason}");
        }
    }
    // A file nobody holds, and a tool that does not edit: no decision.
    assert_allowed(
        &bob.run_with_stdin(&hook, &fixture("edit_free.json", &repo))
            .await,
    );
    assert_allowed(
        &bob.run_with_stdin(&hook, &fixture("read.json", &repo))
            .await,
    );
    // The holder's own edit goes through.
    let alice_repo = alice.cwd().to_path_buf();
    write(&alice_repo, "src/auth/login.rs", "fn login() {}\n");
    assert_allowed(
        &alice
            .run_with_stdin(&hook, &fixture("edit.json", &alice_repo))
            .await,
    );

    // A shared reservation does not stop an edit.
    alice.run(&["release", "--all"]).await.assert_ok();
    alice
        .run(&["reserve", "src/auth/**", "--shared"])
        .await
        .assert_ok();
    assert_allowed(
        &bob.run_with_stdin(&hook, &fixture("edit.json", &repo))
            .await,
    );
    alice.run(&["release", "--all"]).await.assert_ok();
    assert_allowed(
        &bob.run_with_stdin(&hook, &fixture("edit.json", &repo))
            .await,
    );

    // The server down: allowed, with a warning on stderr.
    let down = format!("http://127.0.0.1:{}", dead_port());
    let out = bob
        .run_with_stdin(
            &["--server", &down, "hook", "claude-code"],
            &fixture("edit.json", &repo),
        )
        .await;
    assert_allowed(&out);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("cannot reach"),
        "{}",
        out.stderr
    );
    // Not JSON: allowed, with a warning.
    let out = bob.run_with_stdin(&hook, b"not json").await;
    assert_allowed(&out);
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
}
