//! `config ...` and where the CLI finds its server: flag > env > ./settings.json > user file.

use serde_json::{Value, json};

use crate::harness::{Cli, Server, dead_port};

fn read(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("config file")).expect("JSON file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_file_env_and_flag_in_that_order() {
    let server = Server::start().await;
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let cli = Cli::new();

    // Nothing configured: the default, which nobody here listens on... (the default is
    // localhost:9800, so only the reported settings are checked).
    let got = cli.run(&["config", "get"]).await.json();
    assert_eq!(
        got["server"],
        json!({"value":"http://localhost:9800","source":"default"})
    );
    assert_eq!(got["token"], json!({"value":null,"source":"default"}));

    // The workspace file: keeps the server's own keys.
    std::fs::write(
        cli.cwd().join("settings.json"),
        r#"{"bind":"localhost:9801"}"#,
    )
    .expect("write settings");
    let set = cli
        .run(&["config", "set", "server", &server.url(), "--local"])
        .await
        .json();
    assert_eq!(set["set"], "server");
    assert_eq!(set["value"], server.url());
    let file = read(&cli.cwd().join("settings.json"));
    assert_eq!(file["bind"], "localhost:9801");
    assert_eq!(file["server"], server.url());
    assert!(
        set["file"]
            .as_str()
            .expect("file")
            .ends_with("settings.json"),
        "{set}"
    );

    let got = cli.run(&["config", "get", "server"]).await.json();
    assert_eq!(got["value"], server.url());
    assert!(
        got["source"].as_str().expect("source").starts_with("file "),
        "{got}"
    );
    cli.run(&["status"]).await.assert_ok();

    // The environment beats the file.
    let env_cli = Cli::new().env("KOOR_SERVER", &dead);
    std::fs::write(
        env_cli.cwd().join("settings.json"),
        format!(r#"{{"server":"{}"}}"#, server.url()),
    )
    .expect("write settings");
    env_cli
        .run(&["state", "list"])
        .await
        .assert_fails(3, "connection refused");
    let got = env_cli.run(&["config", "get", "server"]).await.json();
    assert_eq!(got, json!({"value": dead, "source": "env KOOR_SERVER"}));

    // The flag beats the environment.
    env_cli
        .run(&["state", "list", "--server", &server.url()])
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_user_file_is_the_last_resort() {
    let server = Server::start().await;
    let cli = Cli::new();
    let set = cli
        .run(&["config", "set", "server", &server.url(), "--global"])
        .await
        .json();
    assert_eq!(
        set["file"].as_str().expect("file"),
        cli.user_file().display().to_string()
    );
    assert_eq!(read(&cli.user_file())["server"], server.url());
    assert!(!cli.cwd().join("settings.json").exists());
    cli.run(&["status"]).await.assert_ok();

    let paths = cli.run(&["config", "path"]).await.json();
    assert_eq!(paths["user"], cli.user_file().display().to_string());
    assert_eq!(paths["user_exists"], true);
    assert_eq!(paths["workspace_exists"], false);

    // A workspace file overrides it.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    cli.run(&["config", "set", "server", &dead, "--local"])
        .await
        .assert_ok();
    cli.run(&["status"])
        .await
        .assert_fails(3, "connection refused");
    let unset = cli
        .run(&["config", "unset", "server", "--local"])
        .await
        .json();
    assert_eq!(unset["was_set"], true);
    cli.run(&["status"]).await.assert_ok();

    // KOOR_CONFIG names the user file explicitly.
    let other = cli.home().join("elsewhere.json");
    let moved = Cli::new().env("KOOR_CONFIG", other.to_str().expect("path"));
    moved
        .run(&["config", "set", "token", "abc", "--global"])
        .await
        .assert_ok();
    assert_eq!(read(&other)["token"], "abc");
}

/// `config set` without flags writes the user file, so the setting holds in every directory of
/// that user; a project's ./settings.json still overrides it there, and `config get` names the
/// file each value came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_applies_from_every_directory() {
    let server = Server::start().await;
    let here = Cli::new();
    let set = here
        .run(&["config", "set", "server", &server.url()])
        .await
        .json();
    assert_eq!(set["file"], here.user_file().display().to_string());
    assert!(!here.cwd().join("settings.json").exists());

    // Another directory of the same user (same HOME) talks to the same server.
    let elsewhere = Cli::new().env("HOME", here.home().to_str().expect("home"));
    assert_ne!(elsewhere.cwd(), here.cwd());
    elsewhere.run(&["status"]).await.assert_ok();
    let got = elsewhere.run(&["config", "get", "server"]).await.json();
    assert_eq!(got["value"], server.url());
    assert_eq!(
        got["source"],
        format!("file {}", here.user_file().display())
    );

    // A project-local file overrides it in its directory, and says so.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    elsewhere
        .run(&["config", "set", "server", &dead, "--local"])
        .await
        .assert_ok();
    let got = elsewhere.run(&["config", "get", "server"]).await.json();
    assert_eq!(
        got["source"],
        format!("file {}", elsewhere.cwd().join("settings.json").display())
    );
    // Setting the user file where a local file wins warns about it.
    let again = elsewhere
        .run(&["config", "set", "server", &server.url()])
        .await;
    assert!(
        again.stderr.contains("wins in this directory"),
        "{}",
        again.stderr
    );
    assert_eq!(
        again.json()["overridden_here_by"],
        elsewhere.cwd().join("settings.json").display().to_string()
    );
    here.run(&["status"]).await.assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_masked_and_kept_private() {
    let token = "s3cret-token-0123456789-WXYZ";
    let server = Server::start_with(|c| c.auth_token = Some(token.to_owned())).await;
    let cli = Cli::new().env("KOOR_SERVER", &server.url());

    cli.run(&["state", "list"])
        .await
        .assert_fails(4, "invalid or missing bearer token");

    let set = cli.run(&["config", "set", "token", token]).await;
    set.assert_ok();
    assert!(!set.text().contains(token), "{}", set.text());
    assert_eq!(set.json()["value"], "****WXYZ");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.user_file())
            .expect("user file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "a config file with a token is private: {mode:o}"
        );
    }
    cli.run(&["state", "list"]).await.assert_ok();

    let got = cli.run(&["config", "get"]).await;
    assert!(!got.text().contains(token), "{}", got.text());
    assert_eq!(got.json()["token"]["value"], "****WXYZ");

    // KOOR_TOKEN beats the file (a wrong one fails, and is not echoed).
    let wrong = Cli::new()
        .env("KOOR_SERVER", &server.url())
        .env("KOOR_TOKEN", "wrong-token-value");
    let out = wrong.run(&["state", "list"]).await;
    out.assert_fails(4, "KOOR_TOKEN");
    assert!(!out.stderr.contains("wrong-token-value"));
    let got = wrong.run(&["config", "get", "token"]).await.json();
    assert_eq!(got, json!({"value":"****alue","source":"env KOOR_TOKEN"}));

    // And the --token flag beats both.
    wrong
        .run(&["state", "list", "--token", token])
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_bad_values() {
    let cli = Cli::new();
    std::fs::write(cli.cwd().join("settings.json"), "not json").expect("write");
    cli.run(&["status"]).await.assert_fails(1, "settings.json");
    let cli = Cli::new();
    cli.run(&["config", "set", "server", "ftp://x"])
        .await
        .assert_fails(2, "http://");
    cli.run(&["config", "set", "token", " "])
        .await
        .assert_fails(2, "config unset token");
    let out = cli.run(&["config", "set", "colour", "x"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    // A bare host:port gets http://.
    let set = cli
        .run(&["config", "set", "server", "localhost:9801/"])
        .await
        .json();
    assert_eq!(set["value"], "http://localhost:9801");
}
