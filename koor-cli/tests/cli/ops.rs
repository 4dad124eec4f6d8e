//! `webhooks`, `audit`, `backup` and `restore`.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_add_list_test_delete() {
    let server = Server::start().await;
    let cli = server.cli();
    // A port nothing listens on: the test delivery fails and says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);

    let added = cli
        .run(&[
            "webhooks",
            "add",
            "--id",
            "ci",
            "--url",
            &url,
            "--patterns",
            "build.*, deploy.*",
            "--secret",
            "s",
        ])
        .await
        .json();
    assert_eq!(added["id"], "ci");
    assert_eq!(
        added["patterns"],
        serde_json::json!(["build.*", "deploy.*"])
    );
    assert_eq!(added["has_secret"], true);
    let list = cli.run(&["webhooks", "list"]).await.json();
    assert_eq!(list[0]["id"], "ci");
    assert!(list[0].get("secret").is_none());
    cli.run(&["webhooks", "test", "ci"])
        .await
        .assert_fails(7, "webhook test failed");
    cli.run(&["webhooks", "add", "--id", "bad id", "--url", &url])
        .await
        .assert_fails(7, "invalid id");
    let deleted = cli.run(&["webhooks", "delete", "ci"]).await.json();
    assert_eq!(deleted["deleted"], "ci");
    cli.run(&["webhooks", "delete", "ci"])
        .await
        .assert_fails(5, "webhook not found: ci");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lists_and_summarises_mutations() {
    let server = Server::start_with(|c| c.auth_token = Some("cli-audit-token".into())).await;
    let cli = server.cli();
    cli.run(&["state", "set", "cfg", "--data", "{}"])
        .await
        .assert_ok();
    cli.run(&["events", "publish", "build.done"])
        .await
        .assert_ok();
    let mut entries = Value::Null;
    for _ in 0..400 {
        entries = cli
            .run(&["audit", "--since", "1h", "--last", "10"])
            .await
            .json();
        if entries.as_array().is_some_and(|a| a.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entries[0]["action"], "event.publish", "{entries}");
    assert_eq!(entries[1]["action"], "state.put");
    assert_eq!(entries[1]["token_used"], true);
    assert!(!entries.to_string().contains("cli-audit-token"));
    let only = cli
        .run(&["audit", "--action", "state.*", "--limit", "5"])
        .await
        .json();
    assert_eq!(only.as_array().map(Vec::len), Some(1));
    let summary = cli.run(&["audit", "summary"]).await.json();
    assert_eq!(summary["total_entries"], 2);
    assert_eq!(summary["action_counts"]["state.put"], 1);
    cli.run(&["audit", "--since", "soon"])
        .await
        .assert_fails(7, "invalid since");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_writes_a_sqlite_file_and_restore_points_to_the_server() {
    let server = Server::start().await;
    let cli = server.cli();
    cli.run(&["state", "set", "k", "--data", "{\"v\":1}"])
        .await
        .assert_ok();
    let out = cli.run(&["backup", "-o", "snap.db"]).await.json();
    assert_eq!(out["file"], "snap.db");
    let file = cli.cwd().join("snap.db");
    let bytes = std::fs::read(&file).expect("backup file");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    assert_eq!(out["bytes"], bytes.len());
    assert!(!cli.cwd().join("snap.db.partial").exists());
    // The original's spelling.
    cli.run(&["backup", "--output", "again.db"])
        .await
        .assert_ok();
    assert!(cli.cwd().join("again.db").exists());
    assert_eq!(cli.run(&["backup"]).await.code, 2, "-o is required");
    cli.run(&["restore", "--file", "snap.db"])
        .await
        .assert_fails(2, "koor-server restore snap.db --data-dir DIR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_export_to_a_file_and_import_elsewhere() {
    let a = Server::start().await;
    let b = Server::start().await;
    let cli_a = a.cli();
    cli_a
        .run(&[
            "rules",
            "set",
            "shop",
            "--data",
            r#"[{"rule_id":"no-todo","pattern":"TODO"}]"#,
        ])
        .await
        .assert_ok();
    let out = cli_a
        .run(&["rules", "export", "--output", "rules.json"])
        .await
        .json();
    assert_eq!(out["exported"], 1);
    let file = cli_a.cwd().join("rules.json");
    let text = std::fs::read_to_string(&file).expect("export file");
    assert!(text.contains("\"source\": \"local\""), "{text}");
    let printed = cli_a
        .run(&["rules", "export", "--source", "learned"])
        .await
        .json();
    assert_eq!(printed, serde_json::json!([]));

    let imported = b
        .cli()
        .run(&["rules", "import", "--file", file.to_str().expect("path")])
        .await
        .json();
    assert_eq!(imported["imported"], 1);
    b.cli()
        .run(&["rules", "import", "--data", "{}"])
        .await
        .assert_fails(2, "JSON array");
}
