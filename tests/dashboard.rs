//! The web dashboard end to end: a real server with its dashboard listener, and the page loaded in
//! headless Chromium, driven over the Chrome DevTools protocol.
//!
//! Needs the `chromium` binary (Debian package `chromium`; `KOOR_CHROMIUM=/path` picks another).
//! Without it the browser tests are skipped with a message, unless `CI` is set: there they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use koor_server::{Config, Running};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{self, Seen, json as json_body};

/// Longest any single step waits (a hang guard, not a measurement).
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Polls of a page condition before giving up (each after a 50 ms pause: at most 60 s).
const MAX_POLLS: usize = 1200;

/// A server started with its dashboard listener.
struct Dash {
    running: Running,
    _dir: TempDir,
    http: reqwest::Client,
    token: Option<String>,
}

impl Dash {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Dash {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_data_dir(dir.path());
        tweak(&mut config);
        let token = config.auth_token.clone();
        let running = koor_server::spawn_with_dashboard(config)
            .await
            .expect("server starts");
        Dash {
            running,
            _dir: dir,
            http: reqwest::Client::new(),
            token,
        }
    }

    fn dashboard(&self) -> String {
        self.running.dashboard_url().expect("dashboard listener")
    }

    /// A request to the API listener, with the token when there is one.
    fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{path}", self.running.url()));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let rb = self.api(method, path);
        let rb = match body {
            Some(b) => rb.json(&b),
            None => rb,
        };
        json_body(rb.send().await.expect("request"), 200).await
    }
}

// ----- Chromium over the DevTools protocol ----------------------------------------------------

fn chromium_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOOR_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

/// The browser, or `None` (after saying why) when the test should be skipped.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    match chromium_binary() {
        Some(bin) => Some(bin),
        None if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => panic!(
            "{test}: chromium is not installed but CI is set: install the Debian `chromium` package (.ci/run does) or set KOOR_CHROMIUM"
        ),
        None => {
            eprintln!(
                "SKIPPED {test}: no chromium found (install the Debian `chromium` package, or set KOOR_CHROMIUM=/path/to/chrome); with CI=true this is a failure"
            );
            None
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium with a fresh profile, and one page attached over the DevTools protocol.
struct Browser {
    child: Child,
    _profile: TempDir,
    cdp: Socket,
    session: String,
    next_id: u64,
    stderr: tokio::task::JoinHandle<Vec<String>>,
}

impl Browser {
    async fn launch(bin: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        // Chromium says where its DevTools endpoint is on stderr; keep reading stderr after
        // that so it never blocks on a full pipe (and for diagnostics).
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let stderr = tokio::spawn(async move {
            let mut url_tx = Some(url_tx);
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://")
                    && line.contains("DevTools listening on")
                    && let Some(tx) = url_tx.take()
                {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
                if seen.len() < 200 {
                    seen.push(line);
                }
            }
            seen
        });
        let url = match tokio::time::timeout(HANG_GUARD, url_rx).await {
            Ok(Ok(url)) => url,
            other => {
                let _ = child.start_kill();
                let lines = stderr.await.unwrap_or_default();
                panic!(
                    "chromium never announced its DevTools endpoint ({other:?}); stderr: {lines:#?}"
                )
            }
        };
        let (cdp, _) = tokio::time::timeout(HANG_GUARD, tokio_tungstenite::connect_async(&url))
            .await
            .expect("DevTools connect in time")
            .expect("DevTools connect");
        let mut browser = Browser {
            child,
            _profile: profile,
            cdp,
            session: String::new(),
            next_id: 0,
            stderr,
        };
        let target = browser
            .call_browser("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser
            .call_browser(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
    }

    async fn send(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.cdp
            .send(Message::text(msg.to_string()))
            .await
            .expect("send a DevTools command");
        loop {
            let frame = tokio::time::timeout(HANG_GUARD, self.cdp.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap_or_else(|| panic!("DevTools closed during {method}"))
                .expect("DevTools frame");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    async fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params).await
    }

    /// A command to the page.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = Some(self.session.clone());
        self.send(session, method, params).await
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Evaluates `expr` in the page and returns its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page script failed: {expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page (a bounded poll; it fails with the page's text).
    async fn wait_for(&mut self, what: &str, expr: &str) {
        for _ in 0..MAX_POLLS {
            // Before the page has loaded, its elements are missing: that counts as "not yet".
            let probe = format!(
                "(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()"
            );
            if self.eval(&probe).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text = self
            .eval("document.body ? document.body.innerText : '(no body)'")
            .await;
        panic!("the page never showed {what} ({expr}); it shows:\n{text}");
    }

    /// Saves a PNG of the viewport at `path`.
    async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": false}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }

    async fn close(mut self) {
        self.send(None, "Browser.close", json!({})).await;
        if tokio::time::timeout(HANG_GUARD, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = self.stderr.await;
    }
}

/// JavaScript: the text of the first element matching `selector` (or null).
fn text_of(selector: &str) -> String {
    format!(
        "(document.querySelector({sel}) || {{}}).textContent || null",
        sel = serde_json::to_string(selector).expect("selector")
    )
}

fn exists(selector: &str) -> String {
    format!(
        "document.querySelector({}) !== null",
        serde_json::to_string(selector).expect("selector")
    )
}

// ----- the tests ------------------------------------------------------------------------------

#[tokio::test]
async fn dashboard_listener_serves_the_page_health_and_the_api() {
    let s = Dash::start(|c| c.auth_token = Some("dash-token-5678".into())).await;
    let page = s
        .http
        .get(format!("{}/", s.dashboard()))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("<title>Koor dashboard</title>"));
    for asset in ["/index.html", "/app.js", "/style.css"] {
        let r = s
            .http
            .get(format!("{}{asset}", s.dashboard()))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 200, "{asset}");
    }
    // /health is public on both listeners; /api/* needs the token on the dashboard too.
    let health = s
        .http
        .get(format!("{}/health", s.dashboard()))
        .send()
        .await
        .expect("health");
    assert_eq!(json_body(health, 200).await["status"], "ok");
    let no_token = s
        .http
        .get(format!("{}/api/state", s.dashboard()))
        .send()
        .await
        .expect("GET");
    harness::error(no_token, 401, "invalid or missing bearer token").await;
    s.send(Method::PUT, "/api/state/from-api", Some(json!({"v": 1})))
        .await;
    let listed = s
        .http
        .get(format!("{}/api/state", s.dashboard()))
        .bearer_auth("dash-token-5678")
        .send()
        .await
        .expect("GET");
    assert_eq!(json_body(listed, 200).await[0]["key"], "from-api");
    // The API listener does not serve the page; unknown dashboard paths are JSON 404s.
    harness::error(
        s.api(Method::GET, "/").send().await.expect("GET"),
        404,
        "not found",
    )
    .await;
    harness::error(
        s.http
            .get(format!("{}/nope.html", s.dashboard()))
            .send()
            .await
            .expect("GET"),
        404,
        "not found",
    )
    .await;
    let metrics = s.send(Method::GET, "/api/metrics", None).await;
    assert_eq!(
        metrics["dashboard_bind"],
        s.running.dashboard.expect("addr").to_string()
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium_shows_live_events_state_instances_and_proposals() {
    let Some(bin) = browser_or_skip("dashboard_in_headless_chromium") else {
        return;
    };
    let s = Dash::start(|c| c.stale_after = Duration::from_millis(1500)).await;

    // Something to show: state keys with versions, a stale and an active instance, proposals.
    s.send(
        Method::PUT,
        "/api/state/api-contract",
        Some(json!({"endpoint": "/users", "method": "GET"})),
    )
    .await;
    s.send(
        Method::PUT,
        "/api/state/api-contract",
        Some(json!({"endpoint": "/users", "method": "POST"})),
    )
    .await;
    s.send(
        Method::PUT,
        "/api/state/shop/build-config",
        Some(json!({"target": "es2022"})),
    )
    .await;
    let mut sys = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/events/subscribe?pattern=koor.instance.stale",
        s.running.addr
    ))
    .await
    .expect("subscribe")
    .0;
    let stale = s
        .send(
            Method::POST,
            "/api/instances/register",
            Some(json!({"name": "kilo-code", "workspace": "/src/shop-web", "intent": "migrating checkout to v2"})),
        )
        .await;
    let stale_id = stale["id"].as_str().expect("id").to_owned();
    match harness::next(&mut sys, HANG_GUARD).await {
        Seen::Event(e) => assert_eq!(e["data"]["id"], stale_id.as_str()),
        other => panic!("no koor.instance.stale: {other:?}"),
    }
    let mut active_ids = Vec::new();
    for (name, workspace, intent) in [
        ("claude-code", "/src/shop-api", "refactor auth middleware"),
        ("cursor", "/src/shop-api", "orders endpoint tests"),
    ] {
        let i = s
            .send(
                Method::POST,
                "/api/instances/register",
                Some(json!({"name": name, "workspace": workspace, "intent": intent})),
            )
            .await;
        active_ids.push(i["id"].as_str().expect("id").to_owned());
    }
    // Keep those two alive while the test runs (heartbeats make them active).
    let heartbeats = {
        let http = s.http.clone();
        let base = s.running.url();
        let ids = active_ids.clone();
        tokio::spawn(async move {
            loop {
                for id in &ids {
                    let _ = http
                        .post(format!("{base}/api/instances/{id}/heartbeat"))
                        .send()
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    for (id, message, severity, match_type, pattern, globs) in [
        (
            "no-console-log",
            "Remove console.log before committing",
            "error",
            "custom",
            "no-console-log",
            json!(["*.js", "*.ts"]),
        ),
        (
            "no-inline-style",
            "Use utility classes instead of inline styles",
            "warning",
            "regex",
            "style\\s*=",
            json!(["*.html"]),
        ),
        (
            "no-todo",
            "Resolve TODOs before merging",
            "warning",
            "regex",
            "TODO",
            json!([]),
        ),
    ] {
        s.send(
            Method::POST,
            "/api/rules/propose",
            Some(
                json!({"project": "shop", "rule_id": id, "message": message, "severity": severity,
                        "match_type": match_type, "pattern": pattern, "applies_to": globs,
                        "proposed_by": "claude-code", "context": "seen in review"}),
            ),
        )
        .await;
    }
    s.send(
        Method::POST,
        "/api/events/publish",
        Some(json!({"topic": "build.finished", "data": {"ok": true, "ms": 5312}, "source": "ci"})),
    )
    .await;

    let mut b = Browser::launch(&bin).await;
    b.navigate(&format!("{}/", s.dashboard())).await;
    b.wait_for(
        "the live event stream",
        "document.body.dataset.live === '1'",
    )
    .await;

    // State keys with their versions.
    b.wait_for(
        "the api-contract key",
        &exists("#state tr[data-key='api-contract']"),
    )
    .await;
    let row = b.eval(&text_of("#state tr[data-key='api-contract']")).await;
    assert!(
        row.as_str().is_some_and(|t| t.contains("v2")),
        "version shown: {row}"
    );
    // Instances, the stale one flagged.
    b.wait_for(
        "the stale instance flagged",
        &exists(&format!("#instances tr.stale[data-instance='{stale_id}']")),
    )
    .await;
    let stale_row = b
        .eval(&text_of(&format!(
            "#instances tr[data-instance='{stale_id}']"
        )))
        .await;
    assert!(
        stale_row
            .as_str()
            .is_some_and(|t| t.contains("stale") && t.contains("kilo-code")),
        "{stale_row}"
    );
    // History from before the page loaded.
    b.wait_for(
        "the earlier event",
        &exists("#events li[data-topic='build.finished']"),
    )
    .await;

    // A live event, published now, shows up without a reload.
    let published = s
        .send(
            Method::POST,
            "/api/events/publish",
            Some(json!({"topic": "api.change.contract", "data": {"endpoint": "/users", "breaking": true}, "source": "claude-code"})),
        )
        .await;
    let selector = format!(
        "#events li[data-id='{}'][data-topic='api.change.contract']",
        published["id"]
    );
    b.wait_for("the live event", &exists(&selector)).await;
    let text = b.eval(&text_of(&selector)).await;
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("claude-code") && t.contains("\"breaking\":true")),
        "{text}"
    );
    // A state change arrives live too (through koor.state.updated and a re-read).
    s.send(
        Method::PUT,
        "/api/state/feature-flags",
        Some(json!({"dark_mode": true})),
    )
    .await;
    b.wait_for(
        "the new key",
        &exists("#state tr[data-key='feature-flags']"),
    )
    .await;

    // Pending proposals with accept/reject buttons that work.
    b.wait_for(
        "three proposals",
        "document.querySelectorAll('#proposals li.card').length === 3",
    )
    .await;
    b.eval(
        "document.querySelector(\"button[data-decide='accept'][data-rule-id='no-todo']\").click()",
    )
    .await;
    b.wait_for(
        "the accepted proposal gone",
        "document.querySelectorAll('#proposals li.card').length === 2",
    )
    .await;
    let rule = s.send(Method::GET, "/api/rules/shop/no-todo", None).await;
    assert_eq!(rule["status"], "accepted");
    let v = s
        .send(
            Method::POST,
            "/api/validate/shop",
            Some(json!({"content": "// TODO later"})),
        )
        .await;
    assert_eq!(
        v["violations"][0]["rule_id"], "no-todo",
        "accepted rules run"
    );
    assert_eq!(b.eval(&text_of("#count-proposals")).await, json!("2"));

    // The screenshot, with the page settled (no highlight animation).
    b.wait_for(
        "the counters",
        "document.getElementById('count-keys').textContent === '3'",
    )
    .await;
    b.eval("document.querySelectorAll('.fresh').forEach(e => e.classList.remove('fresh'))")
        .await;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("koor-dashboard.png");
    b.screenshot(&path).await;
    println!("dashboard screenshot: {}", path.display());
    eprintln!("dashboard screenshot: {}", path.display());

    heartbeats.abort();
    b.close().await;
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_with_auth_asks_for_the_token_once() {
    let Some(bin) = browser_or_skip("dashboard_with_auth_asks_for_the_token_once") else {
        return;
    };
    let token = "dash-secret-0123456789";
    let s = Dash::start(|c| c.auth_token = Some(token.into())).await;
    s.send(Method::PUT, "/api/state/secret-key", Some(json!({"a": 1})))
        .await;

    let mut b = Browser::launch(&bin).await;
    b.navigate(&format!("{}/", s.dashboard())).await;
    b.wait_for(
        "the token dialog",
        "!document.getElementById('login').hidden",
    )
    .await;
    assert_eq!(b.eval("document.body.dataset.live").await, json!("0"));
    // A wrong token is refused and the dialog says so.
    b.eval(
        "document.getElementById('token').value = 'wrong'; \
         document.getElementById('login-form').requestSubmit()",
    )
    .await;
    b.wait_for(
        "the refusal",
        "!document.getElementById('login-error').hidden && !document.getElementById('login').hidden",
    )
    .await;
    b.eval(&format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login-form').requestSubmit()",
        serde_json::to_string(token).expect("json")
    ))
    .await;
    b.wait_for("the live stream", "document.body.dataset.live === '1'")
        .await;
    b.wait_for("the key", &exists("#state tr[data-key='secret-key']"))
        .await;
    assert_eq!(
        b.eval("sessionStorage.getItem('koor.token')").await,
        json!(token)
    );

    // The WebSocket took the token as ?token=: a published event arrives.
    let e = s
        .send(
            Method::POST,
            "/api/events/publish",
            Some(json!({"topic": "auth.ok", "data": 1})),
        )
        .await;
    b.wait_for(
        "the event",
        &exists(&format!("#events li[data-id='{}']", e["id"])),
    )
    .await;

    // A reload does not ask again.
    b.eval("window.koorBeforeReload = true").await;
    b.call("Page.reload", json!({})).await;
    b.wait_for(
        "the reloaded page, live",
        "!window.koorBeforeReload && document.body.dataset.ready === '1' \
         && document.body.dataset.live === '1'",
    )
    .await;
    assert_eq!(
        b.eval("document.getElementById('login').hidden").await,
        json!(true)
    );
    b.close().await;
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_task_board_follows_claims_live() {
    let Some(bin) = browser_or_skip("dashboard_task_board") else {
        return;
    };
    let s = Dash::start(|_| {}).await;
    let agent = s
        .send(
            Method::POST,
            "/api/instances/register",
            Some(json!({"name": "claude-code"})),
        )
        .await;
    let agent = agent["id"].as_str().expect("id").to_owned();
    s.send(
        Method::POST,
        "/api/tasks/shop",
        Some(json!([
            {"title": "design the schema"},
            {"title": "orders API", "depends_on": ["#0"]},
        ])),
    )
    .await;
    s.send(
        Method::POST,
        "/api/tasks/web",
        Some(json!({"title": "landing page"})),
    )
    .await;

    let mut b = Browser::launch(&bin).await;
    b.navigate(&format!("{}/", s.dashboard())).await;
    b.wait_for(
        "the live event stream",
        "document.body.dataset.live === '1'",
    )
    .await;
    b.wait_for("the shop board", &exists("#tasks tr[data-task='T-2']"))
        .await;
    assert_eq!(
        b.eval("document.querySelector(\"#tasks tr[data-task='T-1']\").dataset.status")
            .await,
        json!("ready")
    );
    let waiting = b.eval(&text_of("#tasks tr[data-task='T-2']")).await;
    assert!(
        waiting
            .as_str()
            .is_some_and(|t| t.contains("waits for T-1")),
        "{waiting}"
    );

    // A claim shows up live, with its holder and the time left.
    s.send(
        Method::POST,
        "/api/tasks/shop/claim",
        Some(json!({"instance_id": agent, "ttl": "10m"})),
    )
    .await;
    b.wait_for(
        "the claim",
        "document.querySelector(\"#tasks tr[data-task='T-1']\").dataset.status === 'claimed'",
    )
    .await;
    let row = b.eval(&text_of("#tasks tr[data-task='T-1']")).await;
    let row = row.as_str().unwrap_or_default().to_owned();
    assert!(row.contains("claude-code"), "holder shown: {row}");
    assert!(row.contains('m'), "time left shown: {row}");

    // Completing it makes T-2 ready; the operator's put-back of a claim shows as open again.
    s.send(
        Method::POST,
        "/api/tasks/shop/T-1/complete",
        Some(json!({"instance_id": agent})),
    )
    .await;
    b.wait_for(
        "T-2 ready",
        "document.querySelector(\"#tasks tr[data-task='T-2']\").dataset.status === 'ready'",
    )
    .await;
    s.send(
        Method::POST,
        "/api/tasks/shop/claim",
        Some(json!({"instance_id": agent})),
    )
    .await;
    b.wait_for(
        "T-2 claimed",
        "document.querySelector(\"#tasks tr[data-task='T-2']\").dataset.status === 'claimed'",
    )
    .await;
    s.send(Method::POST, "/api/tasks/shop/T-2/release?force=1", None)
        .await;
    b.wait_for(
        "T-2 back to ready",
        "document.querySelector(\"#tasks tr[data-task='T-2']\").dataset.status === 'ready'",
    )
    .await;

    // The selector switches boards.
    b.eval(
        "(() => { const s = document.getElementById('task-board'); s.value = 'web'; s.dispatchEvent(new Event('change')); })()",
    )
    .await;
    b.wait_for(
        "the web board",
        "document.querySelectorAll('#tasks tr').length === 1 && document.getElementById('tasks').textContent.includes('landing page')",
    )
    .await;
    b.close().await;
    s.running.stop().await;
}
