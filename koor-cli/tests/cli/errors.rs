//! What the CLI says when things go wrong, and with which exit code.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use crate::harness::{BIN, Cli, Server, dead_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_says_how_to_start_the_server() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let cli = Cli::new().env("KOOR_SERVER", &url);
    for args in [
        &["status"][..],
        &["state", "list"][..],
        &["events", "subscribe"][..],
        &["instances", "list"][..],
    ] {
        let out = cli.run(args).await;
        out.assert_fails(3, "connection refused");
        for needle in [
            url.as_str(),
            "env KOOR_SERVER",
            "koor-server",
            "cargo run --release -p koor-server",
            "KOOR_SERVER=http://HOST:PORT",
            "koor-cli config set server URL",
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: {needle:?} in {}",
                out.stderr
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_says_how_to_set_the_token() {
    let server = Server::start_with(|c| c.auth_token = Some("t0ken".into())).await;
    let cli = Cli::new().env("KOOR_SERVER", &server.url());
    // /health needs no token.
    cli.run(&["status"]).await.assert_ok();
    for args in [
        &["state", "list"][..],
        &["state", "get", "k"][..],
        &["events", "subscribe", "--since", "0"][..],
        &["logs"][..],
    ] {
        let out = cli.run(args).await;
        out.assert_fails(4, "invalid or missing bearer token");
        assert!(
            out.stderr.contains("koor-cli config set token"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("KOOR_TOKEN"), "{}", out.stderr);
    }
    server.cli().run(&["state", "list"]).await.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_help_exits_0() {
    let cli = Cli::new();
    let out = cli.run(&["state", "frobnicate"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("frobnicate"), "{}", out.stderr);
    let out = cli.run(&["state", "get"]).await;
    assert_eq!(out.code, 2, "missing KEY");
    let out = cli.run(&["state", "rollback", "k"]).await;
    assert_eq!(out.code, 2, "missing --version");
    let out = cli.run(&[]).await;
    assert_eq!(out.code, 2, "no command");

    let help = cli.run(&["state", "set", "--help"]).await;
    help.assert_ok();
    assert!(help.text().contains("Example:"));
    assert!(help.text().contains("koor-cli state set api-contract"));
    let version = cli.run(&["--version"]).await;
    version.assert_ok();
    assert!(version.text().starts_with("koor-cli "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_server_errors_exit_7() {
    let server = Server::start().await;
    let cli = server.cli();
    cli.run(&["state", "set", "k", "--data", "1"])
        .await
        .assert_ok();
    cli.run(&["state", "rollback", "k", "--version", "0"])
        .await
        .assert_fails(7, "HTTP 400");
    cli.run(&["state", "rollback", "k", "--version", "9"])
        .await
        .assert_fails(5, "");
    cli.run(&["logs", "--level", "loud"])
        .await
        .assert_fails(7, "invalid level");
}

/// `koor-cli ... | head`: the reader goes away, the CLI exits 0 without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_pipe_exits_quietly() {
    let server = Server::start().await;
    // Bigger than a pipe buffer, so the CLI is still writing when the reader leaves.
    let big = vec![b'a'; 1 << 20];
    server
        .cli()
        .stdin(big)
        .run(&["state", "set", "big", "--content-type", "text/plain"])
        .await
        .assert_ok();

    let home = tempfile::tempdir().expect("home");
    let mut child = tokio::process::Command::new(BIN)
        .args(["state", "get", "big"])
        .env_clear()
        .env("HOME", home.path())
        .env("KOOR_SERVER", server.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).await.expect("some output");
    drop(stdout);
    let out = child.wait_with_output().await.expect("exits");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
