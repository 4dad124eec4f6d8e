//! Load benchmark of a release `koor-server` against the bars in DESIGN.md.
//!
//! ```text
//! cargo bench -p koor-server --bench load                  # everything
//! cargo bench -p koor-server --bench load -- http          # throughput: /health vs state GET/304/PUT, and Redis
//! cargo bench -p koor-server --bench load -- coord         # lock, task, message and inbox routes vs /health
//! cargo bench -p koor-server --bench load -- events        # publish-to-subscriber latency, 100 subscribers
//! cargo bench -p koor-server --bench load -- idle          # RSS idle and with 1,000 idle subscribers
//! cargo bench -p koor-server --bench load -- waiters       # long-polls: wake latency; 1,000 waiters' RSS and CPU
//! cargo bench -p koor-server --bench load -- history       # history query at 100k retained events
//! cargo bench -p koor-server --bench load -- keys 100000   # GET/PUT latency at 1k vs N keys
//! cargo bench -p koor-server --bench load -- claims       # 32 claim+complete loops on a board of 10,000 tasks
//! cargo bench -p koor-server --bench load -- http,events    # several in one run
//! ```
//!
//! `KOOR_BENCH_SERVER=/path/to/koor-server` measures another build instead of this one.
//!
//! Throughput uses `wrk` (Debian package `wrk`) as the load generator, so the client costs little
//! of the two cores; the rest is measured from this process. Everything talks to 127.0.0.1 only,
//! and every loop is bounded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_koor-server");

/// The server binary measured: this build's, or `KOOR_BENCH_SERVER` (another build, to compare
/// two versions with the same benchmark in one run).
fn server_bin() -> String {
    std::env::var("KOOR_BENCH_SERVER").unwrap_or_else(|_| BIN.to_owned())
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let bind = format!("127.0.0.1:{port}");
        let mut child = Command::new(server_bin())
            .args(["--bind", &bind, "--dashboard-bind", "", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn koor-server");
        // Keep draining its logs so the server never blocks on a full pipe.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        // Ready once it accepts connections (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&bind).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("koor-server exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "koor-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            base: format!("http://{bind}"),
            _dir: dir,
        }
    }

    /// CPU time the server has used (user + system), from /proc (clock ticks of 10 ms).
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        Duration::from_millis(fields.iter().sum::<u64>() * 10)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    // Several modes in one run: `http,events`.
    let wants = |mode: &str| what == "all" || what.split(',').any(|w| w == mode);
    println!(
        "koor-server load benchmark ({what}); release build {}, loopback only\n",
        server_bin()
    );
    if wants("http") {
        http().await;
    }
    if wants("events") {
        events().await;
    }
    if wants("idle") {
        idle().await;
    }
    if wants("history") {
        history().await;
    }
    if wants("waiters") {
        waiters().await;
    }
    if wants("claims") {
        claims().await;
    }
    if wants("coord") {
        coord().await;
    }
    if wants("keys") {
        let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
        keys(n).await;
    }
}

/// What wrk measured.
struct Wrk {
    rps: f64,
    /// Responses that were not 2xx or 3xx.
    errors: u64,
}

/// Runs wrk (`-t2 -c32 -d5s`) with an optional Lua script and extra headers.
fn wrk(url: &str, script: Option<&str>, headers: &[String]) -> Option<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", "-d5s", "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let script_file;
    if let Some(lua) = script {
        script_file = tempfile::NamedTempFile::new().expect("script file");
        std::fs::write(script_file.path(), lua).expect("write script");
        cmd.arg("-s").arg(script_file.path());
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Wrk { rps, errors })
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Keys written and read by the throughput runs, as redis-benchmark's `-r 1000` spreads its own.
const KEYS: usize = 1000;
/// A state value of about 80 bytes of JSON (redis-benchmark writes `-d 80`).
const VALUE: &str =
    r#"{"agent":"claude-web","endpoint":"/api/users","method":"GET","status":"ok","n":1}"#;

/// The `/health` baseline as a wrk script: the same client work per request everywhere, since a
/// Lua `request()` costs wrk a little per request.
const HEALTH_SCRIPT: &str = r#"request = function() return wrk.format("GET", "/health") end"#;

/// A wrk script that sends `method` with `body` to `/api/state/bench/k0` .. `k999` in turn.
fn state_script(method: &str, body: &str) -> String {
    format!(
        r#"counter = 0
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/state/bench/k" .. (counter % {KEYS}))
end
"#
    )
}

/// Redis 7 on a loopback port with the append-only file on and fsync every second, the same
/// durability class as our WAL with `synchronous=NORMAL`. Stopped on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        if !have("redis-server", "--version") || !have("redis-benchmark", "--version") {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    /// `redis-benchmark` with the same client shape as wrk (32 connections, 2 threads) over
    /// [`KEYS`] keys of 80 bytes: (test, requests per second), e.g. `("SET", 131795.0)`.
    fn bench(&self, tests: &str) -> Vec<(String, f64)> {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "32", "--threads", "2", "-n", "400000", "-d", "80"])
            .args(["-r", &KEYS.to_string(), "-t", tests, "--csv"])
            .output();
        let Ok(out) = out else { return Vec::new() };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut cols = l.split(',').map(|c| c.trim_matches('"'));
                let test = cols.next()?.to_owned();
                let rps = cols.next()?.parse().ok()?;
                Some((test, rps))
            })
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

async fn http() {
    println!(
        "== HTTP throughput: wrk -t2 -c32 -d5s; {KEYS} keys of {}-byte JSON ==",
        VALUE.len()
    );
    if !have("wrk", "--version") {
        println!("   wrk is not installed: apt-get install -y wrk\n");
        return;
    }
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    let mut etag = String::new();
    for i in 0..KEYS {
        let resp = client
            .put(format!("{}/api/state/bench/k{i}", server.base))
            .header("content-type", "application/json")
            .body(VALUE)
            .send()
            .await
            .expect("seed");
        etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
    }
    let run = |url: String, script: Option<String>, headers: Vec<String>, what: &str| {
        let got = wrk(&url, script.as_deref(), &headers);
        if let Some(w) = got.as_ref().filter(|w| w.errors > 0) {
            println!("    note: {what}: {} responses were not 2xx/3xx", w.errors);
        }
        got.map_or(f64::NAN, |w| w.rps)
    };
    let redis = Redis::start();
    // Shared machines drift: the measures take turns, ROUNDS times, and each is the median of
    // its rounds (the per-round ratios show how steady the machine was).
    const ROUNDS: usize = 5;
    let mut rounds: Vec<[f64; 6]> = Vec::new();
    for round in 1..=ROUNDS {
        let health = run(
            format!("{}/", server.base),
            Some(HEALTH_SCRIPT.to_owned()),
            vec![],
            "/health",
        );
        let get = run(
            format!("{}/", server.base),
            Some(state_script("GET", "")),
            vec![],
            "GET",
        );
        // Every key holds the same bytes, so one ETag revalidates them all.
        let revalidate = run(
            format!("{}/", server.base),
            Some(state_script("GET", "")),
            vec![format!("If-None-Match: {etag}")],
            "304",
        );
        let put = run(
            format!("{}/", server.base),
            Some(state_script("PUT", VALUE)),
            vec![],
            "PUT",
        );
        let anchors = redis
            .as_ref()
            .map(|r| r.bench("set,get"))
            .unwrap_or_default();
        let anchor = |t: &str| {
            anchors
                .iter()
                .find(|(n, _)| n == t)
                .map_or(f64::NAN, |(_, r)| *r)
        };
        let (rget, rset) = (anchor("GET"), anchor("SET"));
        println!(
            "   round {round}: /health {health:.0}  GET {get:.0} ({:.2})  304 {revalidate:.0} ({:.2})  PUT {put:.0} ({:.2})  Redis GET {rget:.0} SET {rset:.0}",
            get / health,
            revalidate / health,
            put / health
        );
        rounds.push([health, get, revalidate, put, rget, rset]);
    }
    drop(redis);
    drop(server);
    let median = |i: usize| {
        let mut v: Vec<f64> = rounds
            .iter()
            .map(|r| r[i])
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (health, get, revalidate, put) = (median(0), median(1), median(2), median(3));
    let (rget, rset) = (median(4), median(5));
    let redis = rget.is_finite() && rset.is_finite();
    // Ratios are taken within each round (its measures ran minutes apart at most), then the
    // median of those: steadier than a ratio of medians from different rounds.
    let ratio_of = |a: usize, b: usize| {
        let mut v: Vec<f64> = rounds
            .iter()
            .map(|r| r[a] / r[b])
            .filter(|x| x.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2)
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
    };
    println!("   medians of {ROUNDS} rounds (ratios: the median of each round's own ratio):");
    println!("                                  req/s   of /health   of Redis");
    println!("   koor GET /health           {health:>10.0}        1.00");
    println!(
        "   koor state GET             {get:>10.0}   {:>9}   {:>8}   (bar: >= 0.90 of /health)",
        ratio_of(1, 0),
        if redis { ratio_of(1, 4) } else { "-".into() }
    );
    println!(
        "   koor 304 revalidation      {revalidate:>10.0}   {:>9}              {} of GET (bar: as fast as GET)",
        ratio_of(2, 0),
        ratio_of(2, 1)
    );
    println!(
        "   koor state PUT             {put:>10.0}   {:>9}   {:>8}   (bar: >= 0.50 of /health and of Redis SET)",
        ratio_of(3, 0),
        if redis { ratio_of(3, 5) } else { "-".into() }
    );
    if redis {
        println!(
            "   Redis GET                  {rget:>10.0}   {:>9}",
            ratio_of(4, 0)
        );
        println!(
            "   Redis SET (AOF everysec)   {rset:>10.0}   {:>9}   (redis-benchmark -c 32 --threads 2 -r {KEYS} -d 80)",
            ratio_of(5, 0)
        );
    } else {
        println!(
            "   Redis: not measured (apt-get install -y redis-server redis-tools for the anchor)"
        );
    }
    println!();
}

/// The coordination routes under wrk: each request's answer tells the script what to send next
/// (a lock acquired is released, a task claimed is completed), by any of the 32 connections.
/// Registers `agents` instances (`bench-0`, ...) and puts `tasks` tasks on the board `bench`
/// (1,000 a call, the most one call takes); answers the instance ids.
async fn agents_and_board(
    client: &reqwest::Client,
    base: &str,
    agents: usize,
    tasks: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..agents {
        let r: serde_json::Value = client
            .post(format!("{base}/api/instances/register"))
            .json(&serde_json::json!({"name": format!("bench-{i}")}))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("json");
        ids.push(r["id"].as_str().expect("id").to_owned());
    }
    for batch in 0..tasks / 1000 {
        let plan: Vec<serde_json::Value> = (0..1000)
            .map(|i| serde_json::json!({"title": format!("task {}", batch * 1000 + i), "priority": i % 7}))
            .collect();
        let resp = client
            .post(format!("{base}/api/tasks/bench"))
            .json(&plan)
            .send()
            .await
            .expect("create");
        assert!(resp.status().is_success(), "create: {}", resp.status());
    }
    // Let the creation's commits and checkpoint settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ids
}

async fn coord() {
    const AGENTS: usize = 32;
    const TASKS: usize = 100_000;
    println!("== coordination routes: wrk -t2 -c32 -d5s, {AGENTS} registered agents ==");
    if !have("wrk", "--version") {
        println!("   wrk is not installed: apt-get install -y wrk\n");
        return;
    }
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    // More tasks than 5 s of claims can take, so the board never runs dry.
    let agents = agents_and_board(&client, &server.base, AGENTS, TASKS).await;
    let lua_agents = agents
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let prelude = format!(
        r#"agents = {{ {lua_agents} }}
n = 0
pending = {{}}
-- Each wrk thread has its own Lua state: `tid` keeps their lock names apart.
threads = 0
setup = function(thread) thread:set("tid", threads) threads = threads + 1 end
function agent() n = n + 1 return agents[(n % #agents) + 1] end
wrk.headers["Content-Type"] = "application/json"
"#
    );
    // A lock per acquire; the release goes out with the next request of any connection.
    let locks = format!(
        r#"{prelude}
request = function()
  local p = table.remove(pending)
  if p then
    return wrk.format("DELETE", "/api/locks/bench/" .. p.name .. "?instance_id=" .. p.agent, nil, "")
  end
  local a = agent()
  local name = tostring(tid) .. "-" .. tostring(n)
  return wrk.format("POST", "/api/locks/bench/" .. name, nil, '{{"instance_id":"' .. a .. '","ttl":"1m"}}')
end
response = function(status, headers, body)
  local name = body:match('"name":"bench/([^"]+)"')
  local a = body:match('"holder":{{"id":"([^"]+)"')
  if status == 200 and name and a and body:find('"fence"') then
    table.insert(pending, {{ name = name, agent = a }})
  end
end
"#
    );
    let tasks = format!(
        r#"{prelude}
request = function()
  local p = table.remove(pending)
  if p then
    return wrk.format("POST", "/api/tasks/bench/" .. p.id .. "/complete", nil, '{{"instance_id":"' .. p.agent .. '"}}')
  end
  return wrk.format("POST", "/api/tasks/bench/claim", nil, '{{"instance_id":"' .. agent() .. '"}}')
end
response = function(status, headers, body)
  local id = body:match('^{{"id":"(T%-%d+)"')
  local a = body:match('"holder":{{"id":"([^"]+)"')
  if status == 200 and id and a and body:find('"status":"claimed"') then
    table.insert(pending, {{ id = id, agent = a }})
  end
end
"#
    );
    let send = format!(
        r#"{prelude}
request = function()
  local from, to = agent(), agent()
  return wrk.format("POST", "/api/messages", nil, '{{"from":"' .. from .. '","to":["' .. to .. '"],"subject":"bench","body":"status?"}}')
end
"#
    );
    let inbox = format!(
        r#"{prelude}
request = function()
  return wrk.format("GET", "/api/instances/" .. agent() .. "/inbox?last=20")
end
"#
    );
    let url = format!("{}/", server.base);
    let health = wrk(&url, Some(HEALTH_SCRIPT), &[]).map_or(f64::NAN, |w| w.rps);
    println!("                                        req/s   of /health");
    println!("   GET /health                      {health:>10.0}        1.00");
    for (label, script, per) in [
        ("lock acquire + release", &locks, 2.0),
        ("task claim + complete", &tasks, 2.0),
        ("message send", &send, 1.0),
        ("inbox read (last 20)", &inbox, 1.0),
    ] {
        let Some(w) = wrk(&url, Some(script), &[]) else {
            println!("   {label:<32} wrk failed");
            continue;
        };
        let pairs = if per > 1.0 {
            format!("   ({:.0} pairs/s)", w.rps / per)
        } else {
            String::new()
        };
        let errors = if w.errors > 0 {
            format!("   ({} not 2xx)", w.errors)
        } else {
            String::new()
        };
        println!(
            "   {label:<32} {:>10.0}   {:>9}{pairs}{errors}",
            w.rps,
            ratio(w.rps, Some(health))
        );
    }
    println!();
}

async fn events() {
    const SUBSCRIBERS: usize = 100;
    const RATE: u64 = 1000;
    const SECONDS: u64 = 5;
    let total = (RATE * SECONDS) as usize;
    println!(
        "== publish-to-subscriber latency: {SUBSCRIBERS} subscribers + 1 that never reads, {RATE} events/s for {SECONDS}s =="
    );
    let server = Server::start(&["--event-retention", "100000"]);
    let ws_url = format!(
        "{}/api/events/subscribe?pattern=bench.*",
        server.base.replacen("http", "ws", 1)
    );
    // One subscriber that never reads: it must not move the others' latency.
    let (_stuck, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("connect");
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (ws, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect("connect");
        readers.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut latencies = Vec::with_capacity(total);
            let mut last_id = 0i64;
            let mut gaps = 0usize;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS + 20);
            while latencies.len() < total {
                let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                    Ok(Some(Ok(m))) => m,
                    _ => break,
                };
                if let Message::Text(t) = msg {
                    let now = now_micros();
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    let id = v["id"].as_i64().unwrap_or(0);
                    if last_id != 0 && id != last_id + 1 {
                        gaps += 1;
                    }
                    last_id = id;
                    let sent = v["data"]["t"].as_u64().unwrap_or(now);
                    latencies.push(now.saturating_sub(sent) as f64 / 1000.0);
                }
            }
            (latencies, gaps)
        }));
    }
    let client = reqwest::Client::new();
    let url = format!("{}/api/events/publish", server.base);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let client = client.clone();
        let url = url.clone();
        inflight.push(tokio::spawn(async move {
            let body =
                serde_json::json!({"topic": "bench.tick", "data": {"n": n, "t": now_micros()}});
            client
                .post(&url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
    }
    let mut published = 0;
    for f in inflight {
        if f.await.unwrap_or(false) {
            published += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let (mut lost, mut gaps) = (0usize, 0usize);
    for r in readers {
        let (lat, g) = r.await.expect("reader");
        lost += total - lat.len();
        gaps += g;
        all.extend(lat);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    println!(
        "   published {published}/{total} in {elapsed:.1}s ({:.0}/s)",
        published as f64 / elapsed
    );
    println!(
        "   latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}   (bar: p99 < 5 ms)",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "   delivered {} of {} (lost {lost}, out-of-order/gaps {gaps})\n",
        all.len(),
        total * SUBSCRIBERS
    );
}

async fn idle() {
    println!("== memory ==");
    let server = Server::start(&[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_kib();
    let ws_url = format!(
        "{}/api/events/subscribe?pattern=*",
        server.base.replacen("http", "ws", 1)
    );
    let mut conns = Vec::new();
    for _ in 0..1000 {
        match tokio_tungstenite::connect_async(&ws_url).await {
            Ok((ws, _)) => conns.push(ws),
            Err(e) => {
                println!("   stopped at {} subscribers: {e}", conns.len());
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_subs = server.rss_kib();
    println!(
        "   idle RSS                          {:>8.1} MB   (bar < 30 MB)",
        idle as f64 / 1024.0
    );
    println!(
        "   RSS with {} idle subscribers     {:>8.1} MB   (bar < 100 MB)\n",
        conns.len(),
        with_subs as f64 / 1024.0
    );
}

async fn history() {
    const EVENTS: usize = 100_000;
    println!("== history query at {EVENTS} retained events ==");
    let server = Server::start(&["--event-retention", "200000", "--log-level", "warn"]);
    let client = reqwest::Client::new();
    let url = format!("{}/api/events/publish", server.base);
    let client = Arc::new(client);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..16 {
        let client = client.clone();
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            for n in (w..EVENTS).step_by(16) {
                let topic = if n % 100 == 0 {
                    "rare.hit"
                } else {
                    "common.tick"
                };
                let body = serde_json::json!({"topic": topic, "data": {"n": n}});
                let _ = client.post(&url).json(&body).send().await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    println!(
        "   loaded {EVENTS} events in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    for (label, query) in [
        ("last=50 (all topics)", "last=50"),
        (
            "topic=rare.* last=50 (1% of events)",
            "topic=rare.*&last=50",
        ),
        (
            "topic=*.hit last=50 (wildcard first segment)",
            "topic=*.hit&last=50",
        ),
        ("since=<mid> last=100", "since=50000&last=100"),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let resp = client
                .get(format!("{}/api/events/history?{query}", server.base))
                .send()
                .await
                .expect("history");
            let _ = resp.bytes().await;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "   {label:<46} p50 {:.2} ms  p99 {:.2} ms   (bar < 5 ms)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    println!();
}

async fn keys(n: usize) {
    // The state cache must hold the working set for reads to stay flat (a miss is a hop to a
    // reader thread): give it what N of these entries take (docs/performance.md), at least the
    // default.
    let budget_mb = (n * 600 / (1 << 20)).max(256);
    println!(
        "== latency as data grows: 1k keys vs {n} keys (sequential client), --cache-size {budget_mb}MB =="
    );
    let cache = format!("{budget_mb}MB");
    let server = Server::start(&["--log-level", "warn", "--cache-size", &cache]);
    let client = Arc::new(reqwest::Client::new());
    let value = format!(r#"{{"payload":"{}"}}"#, "x".repeat(200));
    let mut loaded = 0usize;
    let mut report = Vec::new();
    for target in [1000usize, n] {
        // Load up to `target` keys with 32 concurrent writers.
        let mut workers = Vec::new();
        for w in 0..32 {
            let client = client.clone();
            let base = server.base.clone();
            let value = value.clone();
            workers.push(tokio::spawn(async move {
                for i in (loaded + w..target).step_by(32) {
                    let _ = client
                        .put(format!("{base}/api/state/k/{i}"))
                        .header("content-type", "application/json")
                        .body(value.clone())
                        .send()
                        .await;
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        loaded = target;
        // Measure the steady state, not the bulk load's tail: let the background WAL checkpoint
        // of the import finish first.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (mut gets, mut puts) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let key = (i * 7919) % target;
            let t = Instant::now();
            let _ = client
                .get(format!("{}/api/state/k/{key}", server.base))
                .send()
                .await
                .expect("get")
                .bytes()
                .await;
            gets.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let _ = client
                .put(format!("{}/api/state/k/{key}", server.base))
                .header("content-type", "application/json")
                .body(value.clone())
                .send()
                .await
                .expect("put");
            puts.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        gets.sort_by(|a, b| a.total_cmp(b));
        puts.sort_by(|a, b| a.total_cmp(b));
        let (g, p) = (percentile(&gets, 0.5), percentile(&puts, 0.5));
        println!(
            "   {target:>8} keys: GET p50 {g:.3} ms   PUT p50 {p:.3} ms   server RSS {:.0} MB",
            server.rss_kib() as f64 / 1024.0
        );
        report.push((g, p));
    }
    if let [(g1, p1), (g2, p2)] = report[..] {
        println!(
            "   change: GET {:+.0}%  PUT {:+.0}%   (bar: within 25%)\n",
            100.0 * (g2 - g1) / g1,
            100.0 * (p2 - p1) / p1
        );
    }
}

/// Waits (bounded) until the server counts `n` waiters in `/api/metrics`.
async fn until_waiters(client: &reqwest::Client, base: &str, n: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(resp) = client.get(format!("{base}/api/metrics")).send().await
            && let Ok(m) = resp.json::<serde_json::Value>().await
            && m["waiters"].as_i64() == Some(n)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

async fn publish_one(client: &reqwest::Client, base: &str, topic: &str) {
    let _ = client
        .post(format!("{base}/api/events/publish"))
        .json(&serde_json::json!({"topic": topic, "data": {}}))
        .send()
        .await;
}

/// Long-polls: how soon one waiter answers after the publish that wakes it, and what a thousand
/// sleeping waiters cost (RSS, CPU while nothing happens) and how soon all of them answer.
async fn waiters() {
    println!("== long-poll waiters (GET /api/events/wait) ==");
    let server = Server::start(&["--log-level", "warn"]);
    let base = server.base.clone();
    let control = reqwest::Client::new();
    // One connection per waiter, as separate agents would hold.
    let waiters = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    const ROUNDS: usize = 200;
    let mut wake = Vec::new();
    let mut publish = Vec::new();
    for _ in 0..ROUNDS {
        let req = waiters.get(format!(
            "{base}/api/events/wait?pattern=bench.one&timeout=60s"
        ));
        let task = tokio::spawn(async move {
            let resp = req.send().await.ok()?;
            let at = Instant::now();
            let _ = resp.bytes().await;
            Some(at)
        });
        if !until_waiters(&control, &base, 1).await {
            println!("   the waiter never registered");
            return;
        }
        let sent = Instant::now();
        publish_one(&control, &base, "bench.one").await;
        publish.push(sent.elapsed().as_secs_f64() * 1000.0);
        if let Ok(Some(at)) = task.await {
            wake.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    wake.sort_by(f64::total_cmp);
    publish.sort_by(f64::total_cmp);
    println!(
        "   one waiter, publish -> answer ({} rounds): p50 {:.2} ms  p99 {:.2} ms  (the publish itself: p50 {:.2} ms)",
        wake.len(),
        percentile(&wake, 0.5),
        percentile(&wake, 0.99),
        percentile(&publish, 0.5)
    );

    const N: usize = 1000;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let req = waiters.get(format!(
                "{base}/api/events/wait?pattern=bench.all&timeout=120s"
            ));
            tokio::spawn(async move {
                let resp = req.send().await.ok()?;
                let at = Instant::now();
                let ok = resp.status().is_success();
                let _ = resp.bytes().await;
                ok.then_some(at)
            })
        })
        .collect();
    if !until_waiters(&control, &base, N as i64).await {
        println!("   the {N} waiters never all registered");
        return;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = server.rss_kib();
    let cpu_before = server.cpu_time();
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let idle_cpu = server.cpu_time().saturating_sub(cpu_before);
    let sent = Instant::now();
    publish_one(&control, &base, "bench.all").await;
    let mut answered = Vec::new();
    for task in tasks {
        if let Ok(Some(at)) = task.await {
            answered.push(at.duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    answered.sort_by(f64::total_cmp);
    println!(
        "   RSS before / with {N} waiters        {:>6.1} MB / {:>6.1} MB  (+{:.1} KB per waiter)",
        before as f64 / 1024.0,
        with as f64 / 1024.0,
        (with.saturating_sub(before)) as f64 / N as f64
    );
    println!(
        "   server CPU over {}s with {N} idle waiters: {} ms ({:.2}% of one core)",
        window.as_secs(),
        idle_cpu.as_millis(),
        idle_cpu.as_secs_f64() / window.as_secs_f64() * 100.0
    );
    println!(
        "   one matching event woke {}/{N}: first answer {:.1} ms, p50 {:.1} ms, last {:.1} ms after the publish\n",
        answered.len(),
        answered.first().copied().unwrap_or(f64::NAN),
        percentile(&answered, 0.5),
        answered.last().copied().unwrap_or(f64::NAN)
    );
}

/// Runs `loops` concurrent copies of `one` (each bounded by its own deadline) and collects the
/// latencies (ms) each returns.
async fn run_loops<F, Fut>(loops: usize, one: F) -> Vec<Vec<f64>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<f64>> + Send + 'static,
{
    let tasks: Vec<_> = (0..loops).map(|i| tokio::spawn(one(i))).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_default());
    }
    out
}

async fn claims() {
    const LOOPS: usize = 32;
    const TASKS: usize = 10_000;
    const SECONDS: u64 = 5;
    println!(
        "== task claims: {LOOPS} concurrent claim+complete loops on one board of {TASKS} tasks, {SECONDS}s =="
    );
    let server = Server::start(&["--log-level", "warn"]);
    let client = Arc::new(reqwest::Client::new());
    let agents = agents_and_board(&client, &server.base, LOOPS, TASKS).await;

    // /health in the same run, with the same client shape (32 loops, reqwest), as the baseline.
    let base = server.base.clone();
    let c = client.clone();
    let started = Instant::now();
    let health = run_loops(LOOPS, move |_| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            let mut lat = Vec::new();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                let t = Instant::now();
                if c.get(format!("{base}/health")).send().await.is_err() {
                    break;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }
    })
    .await;
    let health_secs = started.elapsed().as_secs_f64();
    let mut health: Vec<f64> = health.into_iter().flatten().collect();
    health.sort_by(|a, b| a.total_cmp(b));

    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let dup = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let base = server.base.clone();
    let c = client.clone();
    let agents = Arc::new(agents);
    let (seen2, dup2) = (seen.clone(), dup.clone());
    let started = Instant::now();
    let results = run_loops(LOOPS, move |i| {
        let (c, base, agents, seen, dup) = (
            c.clone(),
            base.clone(),
            agents.clone(),
            seen2.clone(),
            dup2.clone(),
        );
        async move {
            let me = agents[i].clone();
            let mut lat = Vec::new();
            let end = Instant::now() + Duration::from_secs(SECONDS);
            while Instant::now() < end {
                let t = Instant::now();
                let resp = match c
                    .post(format!("{base}/api/tasks/bench/claim"))
                    .json(&serde_json::json!({"instance_id": me}))
                    .send()
                    .await
                {
                    Ok(r) => r,
                    Err(_) => break,
                };
                if !resp.status().is_success() {
                    break; // 404: the board is empty
                }
                let task: serde_json::Value = resp.json().await.unwrap_or_default();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                let id = task["id"].as_str().unwrap_or_default().to_owned();
                if let Ok(mut s) = seen.lock()
                    && !s.insert(id.clone())
                {
                    dup.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = c
                    .post(format!("{base}/api/tasks/bench/{id}/complete"))
                    .json(&serde_json::json!({"instance_id": me}))
                    .send()
                    .await;
            }
            lat
        }
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = results.into_iter().flatten().collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let n = lat.len();
    let health_rps = health.len() as f64 / health_secs;
    println!(
        "   GET /health              {health_rps:>8.0} req/s   p99 {:.2} ms   (baseline, same client)",
        percentile(&health, 0.99)
    );
    println!(
        "   claim + complete         {:>8.0} claims/s ({:.0} req/s, {:.1}% of /health)   claim p50 {:.2} ms  p99 {:.2} ms",
        n as f64 / secs,
        2.0 * n as f64 / secs,
        100.0 * 2.0 * n as f64 / secs / health_rps,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    println!(
        "   {n} claims, {} distinct tasks, {} claimed twice (must be 0)\n",
        seen.lock().map(|s| s.len()).unwrap_or(0),
        dup.load(std::sync::atomic::Ordering::Relaxed)
    );
}
