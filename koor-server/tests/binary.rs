//! The real `koor-server` binary: startup errors, config priority, graceful stop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_koor-server");

fn server(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("KOOR_BIND")
        .env_remove("KOOR_DASHBOARD_BIND")
        .env_remove("KOOR_DATA_DIR")
        .env_remove("KOOR_AUTH_TOKEN")
        .env_remove("KOOR_LOG_LEVEL")
        .env_remove("KOOR_LOG_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs to completion (for startup failures), with a deadline.
fn run_failing(cmd: &mut Command) -> (i32, String) {
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("read");
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a server and waits for its startup line; returns the child and that line.
#[allow(clippy::zombie_processes)] // the caller owns the child and waits for it in `terminate`
fn start(cmd: &mut Command) -> (Child, BufReader<std::process::ChildStderr>, String) {
    let mut child = cmd.spawn().expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = stderr.read_line(&mut line).expect("read");
        if n == 0 {
            let status = child.wait().expect("wait");
            panic!("server exited before starting: {status}");
        }
        if line.contains("koor-server started") {
            return (child, stderr, line);
        }
    }
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing in {line}"))
}

fn terminate(child: &mut Child) -> i32 {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn starts_logs_its_addresses_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, mut stderr, line) = start(server(dir.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--dashboard-bind",
        "127.0.0.1:0",
        "--auth-token",
        "tok-secret-123",
    ]));
    assert!(
        field(&line, "api").starts_with("http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        field(&line, "dashboard").starts_with("http://127.0.0.1:"),
        "{line}"
    );
    assert_eq!(field(&line, "auth"), "on");
    assert_eq!(field(&line, "data_dir"), ".");
    assert!(
        !line.contains("tok-secret-123"),
        "token must never be logged: {line}"
    );
    assert_eq!(terminate(&mut child), 0);
    let mut rest = String::new();
    use std::io::Read;
    stderr.read_to_string(&mut rest).expect("read");
    assert!(rest.contains("database closed"), "{rest}");
    assert!(!rest.contains("tok-secret-123"));
    // Logs also went to a daily file under the data dir.
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .expect("log dir")
        .collect();
    assert_eq!(logs.len(), 1, "one log file");
}

#[test]
fn busy_port_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) =
        run_failing(server(dir.path()).args(["--bind", &addr, "--dashboard-bind", ""]));
    assert_ne!(code, 0);
    assert!(err.contains("address already in use"), "{err}");
    assert!(err.contains(&addr), "{err}");
}

#[test]
fn a_busy_port_leaves_nothing_behind_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = run_failing(server(dir.path()).args([
        "--bind",
        &addr,
        "--dashboard-bind",
        "",
        "--data-dir",
        "fresh/koor",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("address already in use"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn a_missing_data_dir_is_created_private_and_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _stderr, line) = start(server(dir.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--dashboard-bind",
        "",
        "--log-level",
        "info",
        "--data-dir",
        "new/koor",
    ]));
    assert_eq!(field(&line, "data_dir"), "new/koor");
    let made = dir.path().join("new/koor");
    assert!(made.join("data.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&made).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
    assert_eq!(terminate(&mut child), 0);
    // The creation was logged (to the file too, which starts with it).
    let logs: Vec<_> = std::fs::read_dir(made.join("logs"))
        .expect("logs dir")
        .map(|e| e.expect("entry").path())
        .collect();
    let text = std::fs::read_to_string(&logs[0]).expect("log file");
    assert!(text.contains("created the data dir"), "{text}");
}

#[test]
fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), "x").expect("write");
    let (code, err) = run_failing(server(dir.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--dashboard-bind",
        "",
        "--data-dir",
        "file/koor",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot create the data dir file/koor"),
        "{err}"
    );
    assert!(err.contains("Not a directory"), "{err}");
}

#[test]
fn second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut first, _stderr, _) =
        start(server(dir.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    let (code, err) =
        run_failing(server(dir.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    assert_ne!(code, 0);
    assert!(
        err.contains("another koor-server is already using data dir"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    terminate(&mut first);
}

#[test]
fn config_priority_flags_env_file_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["from-file", "from-env", "from-flag"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"bind":"127.0.0.1:0","dashboard_bind":"","data_dir":"from-file","log_level":"warn"}"#,
    )
    .expect("write settings");

    // File only (./settings.json is read by default). Level warn hides the info startup line, so
    // raise it from the environment and check the file supplied the rest.
    let (mut child, _e, line) = start(server(dir.path()).env("KOOR_LOG_LEVEL", "info"));
    assert_eq!(field(&line, "data_dir"), "from-file");
    assert_eq!(field(&line, "dashboard"), "off");
    terminate(&mut child);

    // Env beats the file.
    let (mut child, _e, line) = start(
        server(dir.path())
            .env("KOOR_LOG_LEVEL", "info")
            .env("KOOR_DATA_DIR", "from-env"),
    );
    assert_eq!(field(&line, "data_dir"), "from-env");
    terminate(&mut child);

    // Flags beat env.
    let (mut child, _e, line) = start(
        server(dir.path())
            .env("KOOR_LOG_LEVEL", "info")
            .env("KOOR_DATA_DIR", "from-env")
            .args(["--data-dir", "from-flag"]),
    );
    assert_eq!(field(&line, "data_dir"), "from-flag");
    terminate(&mut child);

    // A bad value names itself.
    let (code, err) = run_failing(server(dir.path()).args(["--log-level", "loud"]));
    assert_eq!(code, 2);
    assert!(err.contains("loud"), "{err}");
}

#[test]
fn an_empty_log_dir_turns_log_files_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _e, line) = start(server(dir.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--dashboard-bind",
        "",
        "--log-dir",
        "",
    ]));
    assert_eq!(field(&line, "dashboard"), "off");
    assert_eq!(terminate(&mut child), 0);
    assert!(
        !dir.path().join("logs").exists(),
        "no log directory was made"
    );
}

/// No acknowledged write is lost when the server is killed with SIGKILL in the middle of a load.
#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _stderr, line) =
        start(server(dir.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    let base = field(&line, "api").to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let acked: Vec<(String, i64, String)> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut writers = Vec::new();
        for w in 0..8 {
            let (client, base) = (client.clone(), base.clone());
            writers.push(tokio::spawn(async move {
                // The last write the server acknowledged for this writer's key.
                let mut last: Option<(String, i64, String)> = None;
                for n in 0..5000 {
                    let key = format!("crash/w{w}");
                    let sent = client
                        .put(format!("{base}/api/state/{key}"))
                        .body(format!("{{\"w\":{w},\"n\":{n}}}"))
                        .send()
                        .await;
                    let Ok(resp) = sent else { break };
                    let Ok(body) = resp.json::<serde_json::Value>().await else {
                        break;
                    };
                    let (Some(v), Some(h)) = (body["version"].as_i64(), body["hash"].as_str())
                    else {
                        break;
                    };
                    last = Some((key, v, h.to_owned()));
                }
                last
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        // SIGKILL: no shutdown path runs.
        child.kill().expect("kill");
        let _ = child.wait();
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.expect("writer"));
        }
        acked
    });
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the kill"
    );

    let (mut child, _stderr, line) =
        start(server(dir.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    let base = field(&line, "api").to_owned();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (key, version, hash) in &acked {
            let resp = client
                .get(format!("{base}/api/state/{key}?version={version}"))
                .send()
                .await
                .expect("get");
            assert_eq!(
                resp.status(),
                200,
                "acknowledged version {version} of {key} is gone"
            );
            let stored = koor_shared::ContentHash::of(&resp.bytes().await.expect("body"));
            assert_eq!(
                stored.as_str(),
                hash,
                "acknowledged value of {key} v{version} changed"
            );
        }
    });
    terminate(&mut child);
}

#[test]
fn restore_refuses_while_a_server_runs_then_puts_the_backup_in_place() {
    // A real database to restore: the data dir of a server that ran and stopped.
    let source = tempfile::tempdir().expect("tempdir");
    let (mut child, _stderr, _) =
        start(server(source.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    assert_eq!(terminate(&mut child), 0);
    let backup = source.path().join("backup.db");
    std::fs::copy(source.path().join("data.db"), &backup).expect("copy");

    let target = tempfile::tempdir().expect("tempdir");
    let (mut running, _stderr, _) = start(server(target.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--dashboard-bind",
        "",
        "--data-dir",
        ".",
    ]));
    let restore = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("restore")
            .args(args)
            .current_dir(target.path())
            .env_remove("KOOR_DATA_DIR")
            .output()
            .expect("run restore");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = backup.to_str().expect("utf-8 path");
    let (code, _, err) = restore(&[file, "--data-dir", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stop it before restoring"), "{err}");
    assert_eq!(terminate(&mut running), 0);

    let junk = target.path().join("junk.db");
    std::fs::write(&junk, "not a database").expect("write");
    let (code, _, err) = restore(&[junk.to_str().expect("path"), "--data-dir", "."]);
    assert_eq!(code, 1, "{err}");

    // The original's `--file` spelling, and the data dir from the current directory.
    let (code, out, err) = restore(&["--file", file]);
    assert_eq!(code, 0, "{err}");
    let done: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        done["previous"]
            .as_str()
            .expect("previous")
            .contains("before-restore")
    );
    assert!(done["schema_version"].as_i64().expect("version") >= 1);
    let (code, _, err) = restore(&[]);
    assert_eq!(code, 2, "{err}");

    // A server starts on the restored directory.
    let (mut again, _stderr, _) =
        start(server(target.path()).args(["--bind", "127.0.0.1:0", "--dashboard-bind", ""]));
    assert_eq!(terminate(&mut again), 0);
}

/// `--help` says what the server does with a missing data dir (creates it) and names `restore`.
#[test]
fn help_names_restore_and_says_the_data_dir_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = server(dir.path())
        .arg("--help")
        .stdout(Stdio::piped())
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("must exist"), "{help}");
    assert!(help.contains("created (mode 0700) when missing"), "{help}");
    assert!(
        help.contains("koor-server restore FILE --data-dir DIR"),
        "{help}"
    );
    let out = server(dir.path())
        .args(["restore", "--help"])
        .stdout(Stdio::piped())
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--data-dir"));
}
