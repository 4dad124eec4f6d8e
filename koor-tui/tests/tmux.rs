//! End to end: the real `koor-tui` binary in a tmux pane against a real server started in this
//! process. Each test runs its own tmux server (`tmux -L <unique>`, no config file) and kills it at
//! the end, also when the test fails.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use koor_server::Config;
use koor_shared::client::Client;
use koor_shared::config::{ClientConfig, Source};
use koor_shared::types::{PublishRequest, RegisterRequest};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_koor-tui");
const WAIT: Duration = Duration::from_secs(10);

/// A private tmux server with one session running a command.
struct Tmux {
    socket: String,
    /// The socket file, removed at the end (tmux may leave it behind).
    path: String,
}

impl Tmux {
    fn start(name: &str, cwd: &Path, width: u16, height: u16, command: &str) -> Tmux {
        let mut tmux = Tmux {
            socket: format!("koor-tui-{name}-{}", std::process::id()),
            path: String::new(),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-c",
            &cwd.display().to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = tmux.run(&["display-message", "-p", "#{socket_path}"]);
        tmux.path = String::from_utf8_lossy(&path.stdout).trim().to_owned();
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is installed")
    }

    /// Sends keys as `tmux send-keys` names them (`d`, `Enter`, `Escape`, `C-c`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "main"]).stdout)
            .into_owned()
    }

    /// Polls the pane until `ok` holds, for at most [`WAIT`]; fails with the pane's text.
    async fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let pane = self.pane();
            if ok(&pane) {
                return pane;
            }
            if start.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {what}; the pane shows:\n{pane}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_text(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |p| p.contains(text)).await
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "main"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if !self.path.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether tmux is installed. Without it the test is skipped with a message, unless `CI` is set
/// (CI installs tmux, so there a missing tmux is a failure).
fn tmux_available(test: &str) -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "{test}: tmux is not installed (CI must install it: apt-get install -y tmux)"
        );
        eprintln!("{test}: skipped: tmux is not installed (apt-get install -y tmux)");
    }
    found
}

fn client(url: &str) -> Client {
    Client::new(&ClientConfig {
        server: url.to_owned(),
        server_source: Source::Flag,
        token: None,
        token_source: Source::Default,
    })
}

/// A pane line holding `word`, split into whitespace-separated columns.
fn row<'a>(pane: &'a str, word: &str) -> Option<Vec<&'a str>> {
    pane.lines()
        .find(|l| l.split_whitespace().any(|w| w == word))
        .map(|l| l.split_whitespace().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_changes_and_deregisters_a_stale_instance() {
    if !tmux_available("operator_sees_changes_and_deregisters_a_stale_instance") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        stale_after: Duration::from_secs(2),
        ..Config::for_data_dir(dir.path())
    };
    let server = koor_server::spawn(config).await.expect("server");
    let url = server.url();
    let api = client(&url);

    let tmux = Tmux::start(
        "e2e",
        dir.path(),
        100,
        30,
        &format!("env TERM=tmux-256color {BIN} --server {url}"),
    );
    tmux.wait_text("● connected").await;

    // a published event shows in the Events view
    api.publish(&PublishRequest {
        topic: "e2e.hello".into(),
        data: json!({"greeting": "hi"}),
        source: "e2e-test".into(),
    })
    .await
    .expect("publish");
    let pane = tmux.wait_text("e2e.hello").await;
    assert!(pane.contains(r#"{"greeting":"hi"}"#), "{pane}");

    // a key's version changes live in the State view
    let set = |v: i64| {
        let api = api.clone();
        async move {
            api.state_set(
                "e2e-key",
                format!("{{\"v\":{v}}}").into_bytes(),
                "application/json",
                &Default::default(),
            )
            .await
            .expect("state set")
        }
    };
    set(1).await;
    tmux.keys(&["2"]);
    tmux.wait("e2e-key at version 1", |p| {
        row(p, "e2e-key").is_some_and(|r| r.get(1) == Some(&"1"))
    })
    .await;
    set(2).await;
    tmux.wait("e2e-key at version 2", |p| {
        row(p, "*e2e-key").is_some_and(|r| r.get(1) == Some(&"2"))
            || row(p, "e2e-key").is_some_and(|r| r.get(1) == Some(&"2"))
    })
    .await;

    // an instance that never heartbeats goes stale
    let reg = api
        .register(&RegisterRequest {
            name: "e2e-agent".into(),
            workspace: "/src/e2e".into(),
            intent: "testing the console".into(),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");
    let id = reg.instance.id.clone();
    tmux.keys(&["3"]);
    tmux.wait_text("e2e-agent").await;
    tmux.wait("e2e-agent stale", |p| {
        p.lines()
            .any(|l| l.contains("e2e-agent") && l.contains("✗ stale"))
    })
    .await;
    tmux.wait_text("stale 1").await;

    // d asks first, defaulting to No; y deregisters
    tmux.keys(&["d"]);
    let pane = tmux.wait_text("Deregister e2e-agent").await;
    assert!(pane.contains("> No <"), "{pane}");
    tmux.keys(&["y"]);
    tmux.wait_text("✓ deregistered e2e-agent").await;

    // the server confirms it is gone
    let err = api.instance(&id).await.expect_err("deregistered");
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(
        api.instances(&Default::default())
            .await
            .expect("list")
            .iter()
            .all(|i| i.id != id)
    );
    tmux.wait("the row to go", |p| !p.contains("✗ stale   e2e-agent"))
        .await;

    // q quits
    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.alive() {
        assert!(
            start.elapsed() < WAIT,
            "koor-tui did not quit:\n{}",
            tmux.pane()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_it_is_reconnecting_then_quits_on_ctrl_c_and_restores_the_terminal() {
    // NO_COLOR, screen-256color, a small pane, no server at first: the header says it is
    // reconnecting; Ctrl-C quits and the shell gets its screen back.
    if !tmux_available("says_it_is_reconnecting_then_quits_on_ctrl_c_and_restores_the_terminal") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let tmux = Tmux::start(
        "restore",
        dir.path(),
        60,
        20,
        &format!(
            "sh -c 'echo BEFORE; env TERM=screen-256color NO_COLOR=1 {BIN} --server http://127.0.0.1:{port}; echo EXITED $?; sleep 30'"
        ),
    );
    let pane = tmux.wait_text("reconnecting in").await;
    assert!(pane.contains("attempt"), "{pane}");
    assert!(pane.contains("connection refused"), "{pane}");
    tmux.keys(&["C-c"]);
    let pane = tmux.wait_text("EXITED 0").await;
    assert!(
        pane.contains("BEFORE"),
        "the normal screen is back:\n{pane}"
    );
    assert!(
        !pane.contains("reconnecting"),
        "the console is gone:\n{pane}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_locks_and_force_releases_one() {
    if !tmux_available("operator_sees_locks_and_force_releases_one") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = koor_server::spawn(Config::for_data_dir(dir.path()))
        .await
        .expect("server");
    let url = server.url();
    let api = client(&url);
    let agent = api
        .register(&RegisterRequest {
            name: "lock-agent".into(),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");
    let id = agent.instance.id.clone();
    let token = Some(agent.token.as_str());
    // one lock before the console starts (from the listing) ...
    api.lock_acquire("deploy/prod", &id, Some("10m"), None, token)
        .await
        .expect("acquire");

    let tmux = Tmux::start(
        "locks",
        dir.path(),
        100,
        30,
        &format!("env TERM=tmux-256color {BIN} --server {url}"),
    );
    tmux.wait_text("● connected").await;
    tmux.keys(&["5"]);
    tmux.wait("deploy/prod held by lock-agent", |p| {
        row(p, "deploy/prod").is_some_and(|r| r.contains(&"lock-agent"))
    })
    .await;

    // ... and one taken while it watches (from the koor.lock.acquired event)
    api.lock_acquire("db-migrations", &id, Some("10m"), None, token)
        .await
        .expect("acquire");
    let pane = tmux
        .wait("db-migrations with its time left", |p| {
            row(p, "db-migrations").is_some_and(|r| r.last().is_some_and(|l| l.ends_with('m')))
        })
        .await;
    assert!(pane.contains("Locks 2"), "{pane}");

    // x asks first (No focused); y releases the selected one (the first by name)
    tmux.keys(&["x"]);
    let pane = tmux.wait_text("Force-release lock").await;
    assert!(
        pane.contains("Release db-migrations held by lock-agent"),
        "{pane}"
    );
    assert!(pane.contains("> No <"), "{pane}");
    tmux.keys(&["y"]);
    tmux.wait_text("✓ released lock db-migrations").await;
    let err = api.lock("db-migrations").await.expect_err("released");
    assert_eq!(err.status(), Some(404), "{err}");
    tmux.wait("the row to go", |p| row(p, "db-migrations").is_none())
        .await;
    assert!(
        api.lock("deploy/prod").await.is_ok(),
        "the other lock stays"
    );

    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.alive() {
        assert!(start.elapsed() < WAIT, "koor-tui did not quit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_reservations_and_force_releases_one() {
    if !tmux_available("operator_sees_reservations_and_force_releases_one") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = koor_server::spawn(Config::for_data_dir(dir.path()))
        .await
        .expect("server");
    let url = server.url();
    let api = client(&url);
    let agent = api
        .register(&RegisterRequest {
            name: "res-agent".into(),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");
    let token = Some(agent.token.as_str());
    let reserve = |path: &str, exclusive: bool| koor_shared::client::ReserveRequest {
        instance_id: agent.instance.id.clone(),
        project: "shop".into(),
        paths: vec![path.into()],
        exclusive,
        ttl: Some("10m".into()),
        reason: Some("auth rework".into()),
    };
    // one before the console starts (from the listing) ...
    api.reserve(&reserve("src/auth/**", true), token)
        .await
        .expect("reserve");

    let tmux = Tmux::start(
        "reservations",
        dir.path(),
        100,
        30,
        &format!("env TERM=tmux-256color {BIN} --server {url}"),
    );
    tmux.wait_text("● connected").await;
    tmux.keys(&["5", "]", "]"]);
    tmux.wait("src/auth/** held by res-agent", |p| {
        row(p, "src/auth/**").is_some_and(|r| r.contains(&"res-agent") && r.contains(&"excl"))
    })
    .await;

    // ... and one taken while it watches (the event, then the read that brings its expiry)
    api.reserve(&reserve("README.md", false), token)
        .await
        .expect("reserve");
    let pane = tmux
        .wait("README.md with its time left", |p| {
            row(p, "README.md").is_some_and(|r| {
                r.contains(&"shared") && r.last().is_some_and(|l| l.ends_with('m'))
            })
        })
        .await;
    assert!(pane.contains("Reservations 2"), "{pane}");

    // x asks first (No focused); y releases the selected one (the first: README.md)
    tmux.keys(&["x"]);
    let pane = tmux.wait_text("Force-release reservation").await;
    assert!(
        pane.contains("Release shared README.md in shop held by res-agent"),
        "{pane}"
    );
    assert!(pane.contains("> No <"), "{pane}");
    tmux.keys(&["y"]);
    tmux.wait_text("✓ released reservation README.md").await;
    tmux.wait("the row to go", |p| row(p, "README.md").is_none())
        .await;
    let left = api
        .reservations(None, None, None)
        .await
        .expect("list")
        .reservations;
    let paths: Vec<&str> = left.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["src/auth/**"], "the other reservation stays");

    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.alive() {
        assert!(start.elapsed() < WAIT, "koor-tui did not quit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_messages_an_agent_and_sees_the_reply() {
    if !tmux_available("operator_messages_an_agent_and_sees_the_reply") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = koor_server::spawn(Config::for_data_dir(dir.path()))
        .await
        .expect("server");
    let url = server.url();
    let api = client(&url);
    let agent = api
        .register(&RegisterRequest {
            name: "stuck-agent".into(),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");

    let tmux = Tmux::start(
        "messages",
        dir.path(),
        100,
        30,
        &format!("env TERM=tmux-256color {BIN} --server {url}"),
    );
    tmux.wait_text("● connected").await;
    tmux.keys(&["3"]);
    tmux.wait_text("stuck-agent").await;
    tmux.keys(&["m"]);
    tmux.wait_text("Message to stuck-agent · from operator")
        .await;
    tmux.keys(&["-l", "are you stuck?"]);
    tmux.keys(&["Tab"]);
    tmux.keys(&["-l", "T-3 waits on you"]);
    tmux.keys(&["Enter"]);
    tmux.wait_text("✓ sent to stuck-agent").await;

    // the agent sees it from "operator" in its inbox (and has not read it: the console marks it)
    let path = format!("/api/instances/{}/inbox", agent.instance.id);
    let inbox = api
        .send_value(reqwest::Method::GET, &path, None, Some(&agent.token))
        .await
        .expect("inbox");
    let msg = &inbox["messages"][0];
    assert_eq!(msg["from"]["name"], "operator");
    assert_eq!(msg["subject"], "are you stuck?");
    assert_eq!(msg["body"], "T-3 waits on you");
    tmux.wait("the unread mark", |p| p.contains("stuck-agent ✉1"))
        .await;

    // it answers the operator by name; the Messages section shows both
    let reply = json!({"from": agent.instance.id, "to": ["operator"], "subject": "yes: need the schema",
                       "thread_id": msg["thread_id"]});
    api.send_value(
        reqwest::Method::POST,
        "/api/messages",
        Some(&reply),
        Some(&agent.token),
    )
    .await
    .expect("reply");
    tmux.keys(&["5", "["]);
    let pane = tmux
        .wait("both messages", |p| {
            p.contains("stuck-agent → operator") && p.contains("operator → stuck-agent")
        })
        .await;
    assert!(pane.contains("yes: need the schema"), "{pane}");

    // q quits and takes the operator instance with it
    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.alive() {
        assert!(start.elapsed() < WAIT, "koor-tui did not quit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    let left = api
        .instances(&koor_shared::client::InstanceFilter {
            name: Some("operator".into()),
            ..Default::default()
        })
        .await
        .expect("instances");
    assert!(left.is_empty(), "{left:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sees_the_task_board_and_reopens_a_claimed_task() {
    if !tmux_available("operator_sees_the_task_board_and_reopens_a_claimed_task") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = koor_server::spawn(Config::for_data_dir(dir.path()))
        .await
        .expect("server");
    let url = server.url();
    let api = client(&url);
    let agent = api
        .register(&RegisterRequest {
            name: "worker".into(),
            ..RegisterRequest::default()
        })
        .await
        .expect("register");
    let plan = json!([
        {"title": "user schema"},
        {"title": "login api", "depends_on": ["#0"]},
        {"title": "login page", "depends_on": ["#1"]}
    ]);
    api.send_value(reqwest::Method::POST, "/api/tasks/shop", Some(&plan), None)
        .await
        .expect("plan");
    let claim = json!({"instance_id": agent.instance.id, "ttl": "10m"});
    let claimed = api
        .send_value(
            reqwest::Method::POST,
            "/api/tasks/shop/claim",
            Some(&claim),
            Some(&agent.token),
        )
        .await
        .expect("claim");
    let id = claimed["id"].as_str().expect("id").to_owned();

    let tmux = Tmux::start(
        "tasks",
        dir.path(),
        100,
        30,
        &format!("env TERM=tmux-256color {BIN} --server {url}"),
    );
    tmux.wait_text("● connected").await;
    tmux.keys(&["5", "]"]);
    let pane = tmux
        .wait("the claimed task with its holder and time left", |p| {
            row(p, &id).is_some_and(|r| {
                r.contains(&"claimed")
                    && r.contains(&"worker")
                    && r.last().is_some_and(|l| l.ends_with('m'))
            })
        })
        .await;
    assert!(pane.contains("Tasks shop 3"), "{pane}");
    assert!(
        row(&pane, "blocked").is_some_and(|r| r.contains(&"login")),
        "{pane}"
    );

    // r asks first (No focused); y puts the claimed task back to open
    tmux.keys(&["r"]);
    let pane = tmux.wait_text("Put task back to open").await;
    assert!(pane.contains("claimed by worker"), "{pane}");
    assert!(pane.contains("> No <"), "{pane}");
    tmux.keys(&["y"]);
    tmux.wait_text(&format!("✓ {id} is open again")).await;
    tmux.wait("the task ready again", |p| {
        row(p, &id).is_some_and(|r| r.contains(&"ready") && !r.contains(&"worker"))
    })
    .await;
    let task = api
        .send_value(
            reqwest::Method::GET,
            &format!("/api/tasks/shop/{id}"),
            None,
            None,
        )
        .await
        .expect("task");
    assert_eq!(task["status"], "open");

    // a new task on the board arrives as its event
    api.send_value(
        reqwest::Method::POST,
        "/api/tasks/shop",
        Some(&json!({"title": "release notes"})),
        None,
    )
    .await
    .expect("add");
    tmux.wait_text("release notes").await;

    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.alive() {
        assert!(start.elapsed() < WAIT, "koor-tui did not quit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    server.stop().await;
}
