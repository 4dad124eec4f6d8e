//! `init`: a workspace set up for an agent, twice, against a server that wants a token.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Cli, Server};
use crate::reservations::{GitOk, git, write};

const TOKEN: &str = "init-test-token-0123456789";

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("inside")
                    .display()
                    .to_string();
                files.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

fn actions(out: &Value) -> BTreeMap<String, String> {
    out["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().expect("path").to_owned(),
                f["action"].as_str().expect("action").to_owned(),
            )
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

/// Posts an MCP `initialize` the way an IDE would with the header from the config file.
async fn mcp_initialize(url: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"init-test","version":"1"}}}),
        );
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.expect("POST /mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_twice_changes_only_its_own_parts() {
    let server = Server::start_with(|c| c.auth_token = Some(TOKEN.to_owned())).await;
    let cli = server.cli();
    let ws = cli.cwd().join("web");
    std::fs::create_dir_all(&ws).expect("mkdir");
    let ws_arg = ws.to_str().expect("path");

    // The user's own files: instructions with text of their own, an MCP config with another server.
    let agents_before = "# Our agents\n\nAlways run the tests.\n";
    std::fs::write(ws.join("AGENTS.md"), agents_before).expect("write");
    std::fs::write(
        ws.join(".mcp.json"),
        r#"{"mcpServers":{"other":{"type":"http","url":"http://other/mcp"}},"z":1}"#,
    )
    .expect("write");

    // A dry run shows the plan with the contents and writes nothing.
    let untouched = snapshot(&ws);
    let dry = cli
        .run(&[
            "init",
            "--workspace",
            ws_arg,
            "--project",
            "shop",
            "--dry-run",
        ])
        .await;
    dry.assert_ok();
    assert_eq!(snapshot(&ws), untouched, "a dry run writes nothing");
    let plan = dry.text();
    for line in [
        "update AGENTS.md",
        "create CLAUDE.md",
        "create .claude/settings.json",
    ] {
        assert!(
            plan.lines().any(|l| l.starts_with(line)),
            "{line:?} in {plan}"
        );
    }
    assert!(
        plan.contains("koor-cli register web --project shop"),
        "{plan}"
    );

    let first = cli
        .run(&["init", "--workspace", ws_arg, "--project", "shop"])
        .await
        .json();
    assert_eq!(
        actions(&first),
        BTreeMap::from([
            (".mcp.json".to_owned(), "updated".to_owned()),
            (".cursor/mcp.json".to_owned(), "created".to_owned()),
            (".vscode/mcp.json".to_owned(), "created".to_owned()),
            (".claude/settings.json".to_owned(), "created".to_owned()),
            ("CLAUDE.md".to_owned(), "created".to_owned()),
            ("AGENTS.md".to_owned(), "updated".to_owned()),
        ])
    );
    // The token never lands in a file.
    for (path, bytes) in snapshot(&ws) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "{path} holds the token"
        );
    }

    // AGENTS.md: the user's text untouched, the section after it, with the exact commands.
    let agents = read(&ws.join("AGENTS.md"));
    assert!(agents.starts_with(agents_before), "{agents}");
    for cmd in [
        "koor-cli register web --project shop",
        "koor-cli activate ID",
        "koor-cli instances heartbeat",
        "koor-cli inbox --unread",
        "koor-cli tasks claim",
        "koor-cli reserve PATHS",
        "koor-cli events publish shop.changed",
    ] {
        assert!(agents.contains(cmd), "AGENTS.md lacks {cmd:?}");
    }
    assert_eq!(
        read(&ws.join("CLAUDE.md")),
        agents[agents_before.len() + 1..]
    );

    // .mcp.json: the other server and key kept, in their order, koor added with ${KOOR_TOKEN}.
    let mcp = read(&ws.join(".mcp.json"));
    let other = mcp.find("\"other\"").expect("other kept");
    let koor = mcp.find("\"koor\"").expect("koor added");
    assert!(
        other < koor && koor < mcp.find("\"z\"").expect("z kept"),
        "{mcp}"
    );
    let claude: Value = serde_json::from_str(&mcp).expect("json");
    let entry = &claude["mcpServers"]["koor"];
    assert_eq!(entry["url"], format!("{}/mcp", server.url()));
    assert_eq!(entry["headers"]["Authorization"], "Bearer ${KOOR_TOKEN}");
    let cursor: Value = serde_json::from_str(&read(&ws.join(".cursor/mcp.json"))).expect("json");
    assert_eq!(
        cursor["mcpServers"]["koor"]["headers"]["Authorization"],
        "Bearer ${env:KOOR_TOKEN}"
    );

    // The config works as the IDE reads it: the variable expanded from the environment.
    let url = entry["url"].as_str().expect("url");
    let header = entry["headers"]["Authorization"]
        .as_str()
        .expect("header")
        .replace("${KOOR_TOKEN}", TOKEN);
    assert_eq!(mcp_initialize(url, Some(&header)).await.status(), 200);
    let refused = mcp_initialize(url, None).await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer"),
        "a 401 names its scheme"
    );

    // The user edits outside the section; the second run changes nothing at all.
    let mut edited = read(&ws.join("AGENTS.md"));
    edited.push_str("\n## Notes added after init\n");
    std::fs::write(ws.join("AGENTS.md"), &edited).expect("write");
    let before = snapshot(&ws);
    let second = cli
        .run(&["init", "--workspace", ws_arg, "--project", "shop"])
        .await
        .json();
    assert!(
        actions(&second).values().all(|a| a == "unchanged"),
        "{second}"
    );
    assert_eq!(snapshot(&ws), before, "the second run changes nothing");

    // Another name changes only the section.
    let third = cli
        .run(&[
            "init",
            "--workspace",
            ws_arg,
            "--project",
            "shop",
            "--name",
            "web-2",
            "--ide",
            "cursor",
        ])
        .await
        .json();
    assert_eq!(
        actions(&third),
        BTreeMap::from([
            (".cursor/mcp.json".to_owned(), "unchanged".to_owned()),
            ("AGENTS.md".to_owned(), "updated".to_owned()),
        ])
    );
    let agents = read(&ws.join("AGENTS.md"));
    assert!(agents.starts_with(agents_before));
    assert!(agents.ends_with("<!-- koor:end -->\n\n## Notes added after init\n"));
    assert!(agents.contains("koor-cli register web-2 --project shop"));
    let after = snapshot(&ws);
    for (path, bytes) in &before {
        if path != "AGENTS.md" {
            assert_eq!(after.get(path), Some(bytes), "{path} changed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_files_it_cannot_update_and_writes_nothing() {
    let cli = Cli::new();
    let ws = cli.cwd();
    std::fs::create_dir_all(ws.join(".vscode")).expect("mkdir");
    std::fs::write(
        ws.join(".vscode/mcp.json"),
        "{\n  // a comment\n  \"servers\": {}\n}\n",
    )
    .expect("write");
    let before = snapshot(ws);
    let out = cli.run(&["init"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(".vscode/mcp.json"), "{}", out.stderr);
    assert!(out.stderr.contains("mcp-config vscode"), "{}", out.stderr);
    assert_eq!(snapshot(ws), before, "nothing written");

    // --inline-token is the explicit way to put the token in the file (kept private).
    let cli = Cli::new().env("KOOR_TOKEN", TOKEN);
    let out = cli
        .run(&["init", "--ide", "claude", "--inline-token"])
        .await
        .json();
    assert_eq!(actions(&out)[".mcp.json"], "created");
    let mcp = read(&cli.cwd().join(".mcp.json"));
    assert!(mcp.contains(&format!("Bearer {TOKEN}")), "{mcp}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.cwd().join(".mcp.json"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

/// `init` in a git repository also writes what makes reservations hold: the Claude Code hook in
/// `.claude/settings.json` and the git guard; again changes nothing; never replaces a pre-commit
/// hook of someone else's without --force; --dry-run shows a plan a person can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_the_claude_code_hook_and_the_git_guard() {
    let server = Server::start().await;
    let cli = server.cli();
    let ws = cli.cwd().to_path_buf();
    git(&ws, &["init", "-q", "-b", "main"], None).assert_git();
    // The user's own Claude Code settings, with a hook of their own.
    write(
        &ws,
        ".claude/settings.json",
        r#"{"permissions":{"allow":["Bash(make:*)"]},"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"./lint.sh"}]}]}}"#,
    );

    // The dry run: a readable plan (each file's new content as it will be written).
    let before = snapshot(&ws);
    let dry = cli
        .run(&["init", "--project", "shop", "--ide", "claude", "--dry-run"])
        .await;
    dry.assert_ok();
    let plan = dry.text();
    assert_eq!(snapshot(&ws), before, "a dry run writes nothing");
    assert!(!plan.trim_start().starts_with('{'), "not JSON: {plan}");
    assert!(!plan.contains(r#"\""#), "nothing escaped: {plan}");
    for needle in [
        ".claude/settings.json",
        ".git/hooks/pre-commit",
        "koor-cli hook claude-code",
        "guard pre-commit",
        "\"mcpServers\": {",
    ] {
        assert!(plan.contains(needle), "{needle} in {plan}");
    }

    let first = cli
        .run(&["init", "--project", "shop", "--ide", "claude"])
        .await
        .json();
    let done = actions(&first);
    assert_eq!(done[".claude/settings.json"], "updated", "{first}");
    assert_eq!(done[".git/hooks/pre-commit"], "created", "{first}");

    // Their permissions and hook kept; ours added after it.
    let settings: Value =
        serde_json::from_str(&read(&ws.join(".claude/settings.json"))).expect("json");
    assert_eq!(settings["permissions"]["allow"][0], "Bash(make:*)");
    let pre = settings["hooks"]["PreToolUse"]
        .as_array()
        .expect("PreToolUse");
    assert_eq!(pre.len(), 2, "{settings}");
    assert_eq!(pre[0]["hooks"][0]["command"], "./lint.sh");
    assert_eq!(pre[1]["matcher"], "Edit|Write|MultiEdit|NotebookEdit");
    assert_eq!(pre[1]["hooks"][0]["command"], "koor-cli hook claude-code");
    let guard = read(&ws.join(".git/hooks/pre-commit"));
    assert!(guard.contains("guard pre-commit"), "{guard}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ws.join(".git/hooks/pre-commit"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable");
    }
    // The instructions name the command as it is on PATH.
    let claude = read(&ws.join("CLAUDE.md"));
    assert!(claude.contains("`koor-cli activate ID`"), "{claude}");
    assert!(!claude.contains("./koor-cli"), "{claude}");

    // Again: nothing changes.
    let before = snapshot(&ws);
    let second = cli
        .run(&["init", "--project", "shop", "--ide", "claude"])
        .await
        .json();
    assert!(
        actions(&second).values().all(|a| a == "unchanged"),
        "{second}"
    );
    assert_eq!(snapshot(&ws), before);

    // Skipped on request.
    let other = server.cli();
    git(other.cwd(), &["init", "-q", "-b", "main"], None).assert_git();
    let skipped = other
        .run(&[
            "init",
            "--ide",
            "claude",
            "--no-claude-hook",
            "--no-git-guard",
        ])
        .await
        .json();
    assert!(!actions(&skipped).contains_key(".claude/settings.json"));
    assert!(!other.cwd().join(".claude/settings.json").exists());
    assert!(!other.cwd().join(".git/hooks/pre-commit").exists());

    // A pre-commit hook of someone else's: refused, nothing written, and how to go on.
    let foreign = server.cli();
    let dir = foreign.cwd().to_path_buf();
    git(&dir, &["init", "-q", "-b", "main"], None).assert_git();
    write(&dir, ".git/hooks/pre-commit", "#!/bin/sh\nmake lint\n");
    let before = snapshot(&dir);
    let out = foreign.run(&["init", "--ide", "claude"]).await;
    out.assert_fails(1, "--force");
    for needle in [".git/hooks/pre-commit", "--no-git-guard", "make lint"] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert_eq!(snapshot(&dir), before, "nothing written");
    let forced = foreign
        .run(&["init", "--ide", "claude", "--force"])
        .await
        .json();
    assert_eq!(actions(&forced)[".git/hooks/pre-commit"], "replaced");
    assert!(read(&dir.join(".git/hooks/pre-commit")).contains("guard pre-commit"));
}
