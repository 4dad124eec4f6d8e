//! A real server and a way to run the real binary against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use koor_server::logging::{LogRing, RING_CAPACITY};
use koor_server::{Config, Running};
use koor_shared::client::Client;
use koor_shared::config::{ClientConfig, Source};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpSocket;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_koor-cli");

/// Longest a test waits for a line from a running CLI before it fails (a hang guard, not a
/// measurement).
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// A server started with `koor_server::spawn` on an ephemeral loopback port.
pub struct Server {
    pub running: Running,
    /// The data dir, removed when the server is dropped.
    _dir: TempDir,
    pub token: Option<String>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_data_dir(dir.path());
        tweak(&mut config);
        let token = config.auth_token.clone();
        let running = koor_server::spawn(config).await.expect("server starts");
        Server {
            running,
            _dir: dir,
            token,
        }
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// A Rust client for setting up and checking what the CLI did.
    pub fn client(&self) -> Client {
        client(&self.url(), self.token.clone())
    }

    /// The CLI pointed at this server through `KOOR_SERVER` (and `KOOR_TOKEN` when auth is on).
    pub fn cli(&self) -> Cli {
        let cli = Cli::new().env("KOOR_SERVER", &self.url());
        match &self.token {
            Some(t) => cli.env("KOOR_TOKEN", t),
            None => cli,
        }
    }
}

pub fn client(url: &str, token: Option<String>) -> Client {
    Client::new(&ClientConfig {
        server: url.to_owned(),
        server_source: Source::Flag,
        token,
        token_source: Source::Flag,
    })
}

/// A server run with `koor_server::open` + `run` on a listener bound here, so a restarted server
/// can take the same port again (which `spawn` cannot: it always binds an ephemeral one).
pub struct PinnedServer {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl PinnedServer {
    /// Serves `dir` on `127.0.0.1:port`.
    pub async fn start(dir: &Path, port: u16, tweak: impl FnOnce(&mut Config)) -> PinnedServer {
        let mut config = Config::for_data_dir(dir);
        tweak(&mut config);
        let app = koor_server::open(config, LogRing::new(RING_CAPACITY)).expect("server opens");
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("bind the same loopback port again");
        let listener = socket.listen(128).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(koor_server::run(app, listener, None, async move {
            let _ = stopped.await;
        }));
        PinnedServer { addr, stop, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down as on SIGTERM and waits until the database is closed.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// One run of the binary: args, env, working dir, stdin.
pub struct Cli {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    cwd: TempDir,
    /// A directory under `cwd` to run in instead (created on first use).
    subdir: Option<PathBuf>,
    home: TempDir,
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("utf-8 stdout")
    }

    /// Stdout as one JSON document, asserting success first.
    pub fn json(&self) -> Value {
        self.assert_ok();
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.text()))
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "exit code (stderr: {})", self.stderr);
        self
    }

    /// Asserts a failure with `code`, nothing on stdout, and one line on stderr containing `needle`.
    pub fn assert_fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit code (stdout: {}, stderr: {})",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        assert!(self.stdout.is_empty(), "stdout: {}", self.text());
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one line: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{:?} should contain {needle:?}",
            self.stderr
        );
        self
    }
}

impl Cli {
    pub fn new() -> Cli {
        Cli {
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: tempfile::tempdir().expect("cwd"),
            subdir: None,
            home: tempfile::tempdir().expect("home"),
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> Cli {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cli {
        self.stdin = Some(bytes.into());
        self
    }

    /// The working directory, where `./settings.json` lives.
    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    /// Runs in `cwd/sub` (created) from now on; `cwd` stays where settings files live.
    pub fn in_subdir(mut self, sub: &str) -> Cli {
        let dir = self.cwd.path().join(sub);
        std::fs::create_dir_all(&dir).expect("create the subdirectory");
        self.subdir = Some(dir);
        self
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The default user config file under this run's `HOME`.
    pub fn user_file(&self) -> PathBuf {
        self.home().join(".config").join("koor").join("config.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .args(args)
            .current_dir(self.subdir.as_deref().unwrap_or(self.cwd.path()))
            .env_clear()
            .env("HOME", self.home.path())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `koor-cli ARGS...` to completion.
    pub async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn koor-cli");
        if let Some(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(bytes).await.expect("write stdin");
            drop(stdin);
        }
        let output = child.wait_with_output().await.expect("koor-cli runs");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `koor-cli ARGS...` to completion with `input` on stdin.
    pub async fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn koor-cli");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).await.expect("write stdin");
        drop(stdin);
        let output = child.wait_with_output().await.expect("koor-cli runs");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `koor-cli ARGS...` and leaves it running, its stdout and stderr read line by line.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn koor-cli");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Proc {
            child,
            stdout,
            stderr,
        }
    }
}

/// A CLI process still running.
pub struct Proc {
    pub child: Child,
    pub stdout: Lines<BufReader<ChildStdout>>,
    pub stderr: Lines<BufReader<ChildStderr>>,
}

impl Proc {
    /// The next stdout line (panics at EOF or after [`HANG_GUARD`]).
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(HANG_GUARD, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => {
                let status = self.child.try_wait();
                let mut notes = Vec::new();
                while let Ok(Ok(Some(l))) =
                    tokio::time::timeout(Duration::from_secs(1), self.stderr.next_line()).await
                {
                    notes.push(l);
                }
                panic!(
                    "no stdout line from koor-cli: {other:?}; exit {status:?}; stderr {notes:#?}"
                )
            }
        }
    }

    /// The next stdout line as JSON.
    pub async fn json_line(&mut self) -> Value {
        let line = self.line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads stderr until a line contains `needle`; returns the lines read.
    pub async fn wait_stderr(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(HANG_GUARD, self.stderr.next_line()).await {
                Ok(Ok(Some(line))) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                other => panic!("stderr never said {needle:?}: {seen:?} then {other:?}"),
            }
        }
    }

    /// Sends SIGINT (as Ctrl-C does) and returns the exit code and the rest of stdout.
    pub async fn interrupt(self) -> (i32, Vec<String>) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
        self.finish().await
    }

    /// Waits for the process to exit; returns its exit code and the rest of stdout.
    pub async fn finish(mut self) -> (i32, Vec<String>) {
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(HANG_GUARD, self.stdout.next_line())
            .await
            .expect("stdout closes")
            .expect("read stdout")
        {
            rest.push(line);
        }
        let status = tokio::time::timeout(HANG_GUARD, self.child.wait())
            .await
            .expect("koor-cli exits")
            .expect("wait");
        (status.code().unwrap_or(-1), rest)
    }
}

/// A free loopback port below the kernel's ephemeral range, so that while a test has released it
/// (between two servers) no `bind(0)` or outgoing connection elsewhere is handed the same port.
pub fn port_outside_ephemeral_range() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = low.saturating_sub(20_000).max(1);
    let start = 20_000 + (std::process::id() as u16 % span);
    (0..span)
        .map(|i| 20_000 + (start - 20_000 + i) % span)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port")
}

/// A loopback port nothing listens on.
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
