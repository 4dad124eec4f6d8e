//! `init`: a workspace set up for an agent, twice, against a server that wants a token.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Cli, Server};

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
        .await
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(snapshot(&ws), untouched, "a dry run writes nothing");
    let planned = actions(&dry);
    assert_eq!(planned["AGENTS.md"], "updated");
    assert_eq!(planned["CLAUDE.md"], "created");
    assert!(
        dry["files"]
            .as_array()
            .expect("files")
            .iter()
            .all(|f| f["content"].is_string()),
        "{dry}"
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
