//! `status`, `metrics`, `logs`, `mcp-config`, `completions`.

use serde_json::json;

use crate::harness::{Cli, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics() {
    let server = Server::start().await;
    let cli = server.cli();
    let health = cli.run(&["status"]).await.json();
    assert_eq!(health["status"], "ok");
    assert!(health["uptime"].is_string());

    cli.run(&["state", "set", "a", "--data", "1"])
        .await
        .assert_ok();
    let metrics = cli.run(&["metrics"]).await.json();
    assert_eq!(metrics["state_keys"], 1);
    assert!(metrics["last_event_id"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_recent() {
    let server = Server::start().await;
    let logs = server
        .cli()
        .run(&["logs", "--last", "5", "--level", "warn"])
        .await
        .json();
    assert!(logs.is_array(), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_config_for_each_ide_with_and_without_token() {
    let cli = Cli::new().env("KOOR_SERVER", "http://localhost:9801");
    assert_eq!(
        cli.run(&["mcp-config"]).await.json(),
        json!({"mcpServers":{"koor":{"type":"http","url":"http://localhost:9801/mcp"}}})
    );
    assert_eq!(
        cli.run(&["mcp-config", "cursor"]).await.json(),
        json!({"mcpServers":{"koor":{"url":"http://localhost:9801/mcp"}}})
    );
    assert_eq!(
        cli.run(&["mcp-config", "vscode"]).await.json(),
        json!({"servers":{"koor":{"type":"http","url":"http://localhost:9801/mcp"}}})
    );
    let with_token = Cli::new()
        .env("KOOR_SERVER", "http://localhost:9801")
        .env("KOOR_TOKEN", "T");
    // The token goes by the IDE's variable, so the file can be committed...
    assert_eq!(
        with_token.run(&["mcp-config", "claude"]).await.json(),
        json!({"mcpServers":{"koor":{"type":"http","url":"http://localhost:9801/mcp","headers":{"Authorization":"Bearer ${KOOR_TOKEN}"}}}})
    );
    assert_eq!(
        with_token.run(&["mcp-config", "cursor"]).await.json(),
        json!({"mcpServers":{"koor":{"url":"http://localhost:9801/mcp","headers":{"Authorization":"Bearer ${env:KOOR_TOKEN}"}}}})
    );
    let vscode = with_token.run(&["mcp-config", "vscode"]).await.json();
    assert_eq!(
        vscode["servers"]["koor"]["headers"]["Authorization"],
        "Bearer ${input:koor-token}"
    );
    assert_eq!(vscode["inputs"][0]["id"], "koor-token");
    assert_eq!(vscode["inputs"][0]["password"], true);
    // ...and literally only when asked.
    assert_eq!(
        with_token
            .run(&["mcp-config", "claude", "--inline-token"])
            .await
            .json(),
        json!({"mcpServers":{"koor":{"type":"http","url":"http://localhost:9801/mcp","headers":{"Authorization":"Bearer T"}}}})
    );
    assert_eq!(
        with_token
            .run(&["mcp-config", "vscode", "--inline-token"])
            .await
            .json(),
        json!({"servers":{"koor":{"type":"http","url":"http://localhost:9801/mcp","headers":{"Authorization":"Bearer T"}}}})
    );
    let out = cli.run(&["mcp-config", "emacs"]).await;
    assert_eq!(out.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_shells() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", shell]).await;
        out.assert_ok();
        let text = out.text();
        assert!(text.contains("koor-cli"), "{shell}");
        assert!(text.contains("subscribe"), "{shell}: knows subcommands");
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).await.code, 2);
}

/// `koor-cli subscribe` (the name the troubleshooting page uses) is `events subscribe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_is_an_alias_of_events_subscribe() {
    let server = Server::start().await;
    let cli = server.cli();
    let help = cli.run(&["subscribe", "--help"]).await;
    help.assert_ok();
    assert!(help.text().contains("PATTERN"), "{}", help.text());
    let mut sub = cli.spawn(&["subscribe", "build.*", "--count", "1"]);
    sub.wait_stderr("subscribed").await;
    cli.run(&["events", "publish", "build.done", "--data", "1"])
        .await
        .assert_ok();
    assert_eq!(sub.json_line().await["topic"], "build.done");
    assert_eq!(sub.finish().await.0, 0);
}
