//! Update-function tests: keys and network messages in, model and commands out.

use super::*;
use crate::msg::{Detail, Level, Snapshot};
use crate::views::state::{Mode, Target};
use koor_shared::types::{Instance, LogRecord, SpecList, SpecSummary};
use serde_json::json;

pub const T0: &str = "2026-02-09T14:30:00Z";

pub fn now() -> i64 {
    crate::format::epoch_ms(T0).expect("time") + 10_000
}

pub fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

pub fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

pub fn ev(id: i64, topic: &str, data: Value) -> Event {
    Event {
        id,
        topic: topic.into(),
        data: data.into(),
        source: if topic.starts_with("koor.") {
            "koor".into()
        } else {
            "test".into()
        },
        created_at: T0.into(),
    }
}

pub fn inst(id: &str, name: &str, status: &str) -> Instance {
    Instance {
        id: id.into(),
        name: name.into(),
        workspace: format!("/src/{name}"),
        intent: "working".into(),
        stack: String::new(),
        capabilities: vec![],
        status: status.into(),
        registered_at: T0.into(),
        last_seen: T0.into(),
    }
}

pub fn summary(k: &str, version: i64) -> StateSummary {
    StateSummary {
        key: k.into(),
        version,
        content_type: "application/json".into(),
        updated_at: T0.into(),
        size: 42,
    }
}

pub fn metrics(last_event_id: i64) -> Metrics {
    serde_json::from_value(json!({
        "uptime": "1m0s", "state_keys": 0, "instances": 0, "last_event_id": last_event_id,
        "api_bind": "127.0.0.1:9800", "dashboard_bind": ""
    }))
    .expect("metrics")
}

/// A connected app at 80x24 with a snapshot at event 10: keys `a` (v1) and `b` (v3), instances
/// `i1` (active), `i2` (stale), and events 9 and 10 in the recent history.
pub fn connected() -> App {
    let mut app = App::new(Options {
        server: "http://127.0.0.1:9800".into(),
        ..Options::default()
    });
    update(&mut app, Msg::Resize(80, 24));
    update(&mut app, Msg::Tick(now()));
    let snap = Snapshot {
        metrics: metrics(10),
        state: vec![summary("a", 1), summary("b", 3)],
        instances: vec![
            inst("i1", "claude", "active"),
            inst("i2", "cursor", "stale"),
        ],
        recent: vec![
            ev(9, "api.change", json!({"endpoint": "/users"})),
            ev(10, "koor.state.updated", json!({"key": "b", "version": 3})),
        ],
        since: 10,
        reset: false,
        projects: vec!["docs".into()],
    };
    update(&mut app, Msg::Net(Net::Snapshot(Box::new(snap))));
    update(&mut app, Msg::Net(Net::Conn(Conn::Connected)));
    app
}

fn net(n: Net) -> Msg {
    Msg::Net(n)
}

#[test]
fn global_keys_switch_views_and_quit() {
    let mut app = connected();
    assert_eq!(app.view, ViewId::Events);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.view, ViewId::State);
    update(&mut app, key(KeyCode::BackTab));
    update(&mut app, key(KeyCode::BackTab));
    assert_eq!(app.view, ViewId::Work);
    update(&mut app, key(KeyCode::BackTab));
    assert_eq!(app.view, ViewId::Logs);
    update(&mut app, ch('3'));
    assert_eq!(app.view, ViewId::Instances);
    update(&mut app, ch('?'));
    assert!(app.help);
    update(&mut app, ch('1'));
    assert_eq!(app.view, ViewId::Instances, "help takes the keys");
    update(&mut app, key(KeyCode::Esc));
    assert!(!app.help);
    assert_eq!(update(&mut app, ch('q')), vec![Command::Quit]);
    assert!(app.quit);

    let mut app = connected();
    let cmds = update(
        &mut app,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(cmds, vec![Command::Quit]);
    assert!(app.quit);
}

#[test]
fn a_filter_prompt_consumes_keys_that_are_global_elsewhere() {
    let mut app = connected();
    update(&mut app, ch('/'));
    for c in "q2".chars() {
        update(&mut app, ch(c));
    }
    assert!(!app.quit, "q typed into the filter does not quit");
    assert_eq!(
        app.view,
        ViewId::Events,
        "2 typed into the filter does not switch"
    );
    assert_eq!(app.events.filter.text, "q2");
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.events.filter.text, "", "Esc cancels the edit");
    update(&mut app, ch('/'));
    for c in "api.*".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    let shown: Vec<i64> = app.events.visible().iter().map(|e| e.id).collect();
    assert_eq!(shown, vec![9]);
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(
        app.events.visible().len(),
        2,
        "Esc clears an applied filter"
    );
}

#[test]
fn snapshot_then_stream_applies_only_newer_system_events() {
    let mut app = connected();
    assert_eq!(app.state.keys.len(), 2);
    assert_eq!(app.events.total, 2);
    // an event at or below the snapshot id is already in the snapshot: listed, not applied
    // (a duplicate of one we hold is dropped altogether)
    update(
        &mut app,
        net(Net::Events(vec![ev(
            10,
            "koor.state.updated",
            json!({"key": "b", "version": 2}),
        )])),
    );
    assert_eq!(app.events.total, 2);
    assert_eq!(app.state.keys[1].summary.version, 3);
    // newer ones change the lists
    let cmds = update(
        &mut app,
        net(Net::Events(vec![
            ev(
                11,
                "koor.state.updated",
                json!({"key": "a", "version": 2, "size": 7}),
            ),
            ev(12, "koor.state.updated", json!({"key": "c", "version": 1})),
            ev(13, "koor.state.deleted", json!({"key": "b", "version": 3})),
            ev(14, "deploy.done", json!({"ok": true})),
        ])),
    );
    assert!(cmds.is_empty());
    let keys: Vec<(&str, i64)> = app
        .state
        .keys
        .iter()
        .map(|r| (r.summary.key.as_str(), r.summary.version))
        .collect();
    assert_eq!(keys, vec![("a", 2), ("c", 1)]);
    assert_eq!(app.state.keys[0].changed_at, Some(app.now_ms));
    assert_eq!(app.state.keys[0].summary.size, 7);
    assert_eq!(app.events.total, 6);
    assert_eq!(app.events.last_id(), 14);
}

#[test]
fn instance_events_change_status_and_fetch_details() {
    let mut app = connected();
    assert_eq!(app.stale_count(), 1);
    let cmds = update(
        &mut app,
        net(Net::Events(vec![ev(
            11,
            "koor.instance.registered",
            json!({"id": "i3", "name": "kilo", "status": "pending"}),
        )])),
    );
    assert_eq!(cmds, vec![Command::FetchInstance("i3".into())]);
    assert_eq!(app.instances.list.len(), 3);
    update(
        &mut app,
        net(Net::Instance(Box::new(inst("i3", "kilo", "pending")))),
    );
    assert_eq!(app.instances.list.len(), 3);
    update(
        &mut app,
        net(Net::Events(vec![ev(
            12,
            "koor.instance.stale",
            json!({"id": "i1", "name": "claude", "status": "stale", "last_seen": T0}),
        )])),
    );
    assert_eq!(app.stale_count(), 2);
    assert_eq!(
        app.instances.list[0].inst.status, "stale",
        "stale sorts first"
    );
    update(
        &mut app,
        net(Net::Events(vec![ev(
            13,
            "koor.instance.deregistered",
            json!({"id": "i2", "name": "cursor", "status": "stale"}),
        )])),
    );
    assert_eq!(app.instances.list.len(), 2);
    assert_eq!(app.stale_count(), 1);
}

#[test]
fn deregister_one_asks_first_and_defaults_to_no() {
    let mut app = connected();
    update(&mut app, ch('3'));
    // the stale one sorts first and is selected
    assert_eq!(app.instances.selected().map(|i| i.id.as_str()), Some("i2"));
    assert!(update(&mut app, ch('d')).is_empty());
    let dialog = app.confirm.as_ref().expect("a dialog");
    assert!(dialog.message.contains("cursor"), "{}", dialog.message);
    assert!(!dialog.yes_focused);
    // Enter on the default answer (No) does nothing
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    assert!(app.confirm.is_none());
    assert_eq!(app.instances.list.len(), 2);
    // keys while the dialog is open go to it, not to the app
    update(&mut app, ch('d'));
    assert!(update(&mut app, ch('q')).is_empty());
    assert!(!app.quit && app.confirm.is_none(), "q answers No");
    update(&mut app, ch('d'));
    let cmds = update(&mut app, ch('y'));
    assert_eq!(
        cmds,
        vec![Command::Deregister(vec![("i2".into(), "cursor".into())])]
    );
    update(
        &mut app,
        net(Net::Deregistered(vec![(
            "cursor".into(),
            "i2".into(),
            None,
        )])),
    );
    assert_eq!(app.instances.list.len(), 1);
    let status = app.status.as_ref().expect("status");
    assert_eq!(status.text, "✓ deregistered cursor");
    assert!(!status.error);
}

#[test]
fn deregister_errors_show_in_the_status_line() {
    let mut app = connected();
    update(
        &mut app,
        net(Net::Deregistered(vec![(
            "cursor".into(),
            "i2".into(),
            Some("instance not found: i2 (404)".into()),
        )])),
    );
    let status = app.status.as_ref().expect("status");
    assert!(status.error);
    assert_eq!(
        status.text,
        "✗ could not deregister cursor: instance not found: i2 (404)"
    );
    assert_eq!(app.instances.list.len(), 2, "nothing removed on error");
}

#[test]
fn deregister_all_stale_names_how_many() {
    let mut app = connected();
    update(
        &mut app,
        net(Net::Instance(Box::new(inst("i3", "kilo", "stale")))),
    );
    update(&mut app, ch('3'));
    update(&mut app, ch('D'));
    let dialog = app.confirm.clone().expect("dialog");
    assert!(
        dialog
            .message
            .starts_with("Deregister all 2 stale instances?"),
        "{}",
        dialog.message
    );
    update(&mut app, key(KeyCode::Right));
    let cmds = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        cmds,
        vec![Command::Deregister(vec![
            ("i2".into(), "cursor".into()),
            ("i3".into(), "kilo".into())
        ])]
    );
    update(
        &mut app,
        net(Net::Deregistered(vec![
            ("cursor".into(), "i2".into(), None),
            ("kilo".into(), "i3".into(), None),
        ])),
    );
    assert_eq!(app.stale_count(), 0);
    update(&mut app, ch('D'));
    assert!(app.confirm.is_none());
    assert_eq!(
        app.status.as_ref().map(|s| s.text.as_str()),
        Some("no stale instances")
    );
}

#[test]
fn readonly_refuses_destructive_keys() {
    let mut app = App::new(Options {
        server: "http://x".into(),
        readonly: true,
        projects: vec![],
    });
    update(
        &mut app,
        net(Net::Instances(vec![inst("i2", "cursor", "stale")])),
    );
    update(&mut app, ch('3'));
    update(&mut app, ch('d'));
    update(&mut app, ch('D'));
    assert!(app.confirm.is_none());
    assert!(app.status.as_ref().is_some_and(|s| s.error));
    assert!(!app.instances.keys(true).iter().any(|(k, _)| *k == "d"));
}

#[test]
fn pause_holds_new_events_and_follow_tracks_the_newest() {
    let mut app = connected();
    assert!(app.events.follow);
    assert_eq!(app.events.selected().map(|e| e.id), Some(10));
    update(&mut app, ch(' '));
    update(
        &mut app,
        net(Net::Events(vec![
            ev(11, "a.b", json!(1)),
            ev(12, "a.b", json!(2)),
        ])),
    );
    assert_eq!(app.events.visible().len(), 2);
    assert_eq!(app.events.waiting(), 2);
    update(&mut app, ch(' '));
    assert_eq!(app.events.visible().len(), 4);
    assert_eq!(app.events.selected().map(|e| e.id), Some(12));
    // moving up leaves follow mode; new events then do not move the selection
    update(&mut app, ch('k'));
    assert!(!app.events.follow);
    update(&mut app, net(Net::Events(vec![ev(13, "a.b", json!(3))])));
    assert_eq!(app.events.selected().map(|e| e.id), Some(11));
    update(&mut app, ch('G'));
    assert!(app.events.follow);
    assert_eq!(app.events.selected().map(|e| e.id), Some(13));
    // s hides system topics
    update(&mut app, ch('s'));
    assert!(
        app.events
            .visible()
            .iter()
            .all(|e| !e.topic.starts_with("koor."))
    );
    // Enter opens the JSON, Esc closes it
    update(&mut app, key(KeyCode::Enter));
    assert!(
        app.events
            .detail_text()
            .is_some_and(|t| t.contains("\"id\": 13"))
    );
    update(&mut app, key(KeyCode::Esc));
    assert!(app.events.detail.is_none());
}

#[test]
fn state_detail_loads_and_reloads_on_change() {
    let mut app = connected();
    update(&mut app, ch('2'));
    let cmds = update(&mut app, key(KeyCode::Enter));
    assert_eq!(cmds, vec![Command::LoadState("a".into())]);
    assert_eq!(app.state.detail_text().as_deref(), Some("loading…"));
    let detail = Detail {
        title: "a".into(),
        version: Some(1),
        content_type: "application/json".into(),
        size: 9,
        body: "{\n  \"x\": 1\n}".into(),
        history: None,
    };
    update(&mut app, net(Net::Detail(Ok(Box::new(detail)))));
    assert!(
        app.state
            .detail_text()
            .is_some_and(|t| t.contains("\"x\": 1"))
    );
    let cmds = update(
        &mut app,
        net(Net::Events(vec![ev(
            11,
            "koor.state.updated",
            json!({"key": "a", "version": 2}),
        )])),
    );
    assert_eq!(cmds, vec![Command::LoadState("a".into())]);
    update(&mut app, key(KeyCode::Esc));
    assert!(app.state.detail.is_none());
    // specs: a new project is learned from an event and listed
    let cmds = update(
        &mut app,
        net(Net::Events(vec![ev(
            12,
            "koor.spec.updated",
            json!({"project": "shop", "name": "orders", "version": 1}),
        )])),
    );
    assert_eq!(cmds, vec![Command::FetchSpecs("shop".into())]);
    update(
        &mut app,
        net(Net::Specs(SpecList {
            project: "shop".into(),
            specs: vec![SpecSummary {
                name: "orders".into(),
                version: 1,
                updated_at: T0.into(),
            }],
        })),
    );
    update(&mut app, ch('s'));
    assert_eq!(app.state.mode, Mode::Specs);
    assert_eq!(
        app.state.selected(),
        Some(Target::Spec("shop".into(), "orders".into()))
    );
    let cmds = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        cmds,
        vec![Command::LoadSpec {
            project: "shop".into(),
            name: "orders".into()
        }]
    );
}

#[test]
fn ticks_refresh_instances_while_connected_and_fade_info() {
    let mut app = connected();
    let mut refreshes = 0;
    for i in 1..=10 {
        let cmds = update(&mut app, Msg::Tick(now() + i * 1000));
        refreshes += cmds
            .iter()
            .filter(|c| **c == Command::RefreshInstances)
            .count();
    }
    assert_eq!(refreshes, 2);
    app.status = Some(Status {
        text: "hi".into(),
        error: false,
        at_ms: app.now_ms,
        view: None,
    });
    let t = app.now_ms + 9000;
    update(&mut app, Msg::Tick(t));
    assert!(app.status.is_none());
    update(
        &mut app,
        net(Net::Conn(Conn::Reconnecting {
            retry_at_ms: 0,
            attempt: 1,
            reason: "x".into(),
        })),
    );
    let t = app.now_ms + 5000;
    let cmds = update(&mut app, Msg::Tick(t));
    assert!(cmds.is_empty(), "no refresh while disconnected");
}

#[test]
fn logs_level_and_snapshot() {
    let mut app = connected();
    update(&mut app, ch('4'));
    let rec = |m: &str| LogRecord {
        time: T0.into(),
        level: "info".into(),
        target: "koor_server".into(),
        message: m.into(),
        fields: serde_json::Map::new(),
    };
    update(
        &mut app,
        net(Net::LogSnapshot(vec![rec("one"), rec("two")])),
    );
    update(&mut app, net(Net::Logs(vec![rec("three")])));
    assert_eq!(app.logs.visible().len(), 3);
    let cmds = update(&mut app, ch('l'));
    assert_eq!(cmds, vec![Command::SetLogLevel(Level::Warn)]);
    assert!(app.logs.buf.is_empty());
    update(&mut app, net(Net::LogsDown("404".into())));
    let cmds = update(
        &mut app,
        net(Net::Conn(Conn::Reconnecting {
            retry_at_ms: 0,
            attempt: 1,
            reason: "x".into(),
        })),
    );
    assert!(cmds.is_empty());
    let cmds = update(&mut app, net(Net::Conn(Conn::Connected)));
    assert_eq!(
        cmds,
        vec![Command::SetLogLevel(Level::Warn)],
        "a reconnect restarts a dead log stream"
    );
}

#[test]
fn scrolling_keeps_the_selection_visible() {
    let mut app = connected();
    update(&mut app, ch('2'));
    let many: Vec<StateSummary> = (0..100).map(|i| summary(&format!("k{i:03}"), 1)).collect();
    update(
        &mut app,
        net(Net::Snapshot(Box::new(Snapshot {
            metrics: metrics(10),
            state: many,
            instances: vec![],
            recent: vec![],
            since: 10,
            reset: false,
            projects: vec![],
        }))),
    );
    let page = app.page();
    for _ in 0..30 {
        update(&mut app, ch('j'));
    }
    let c = &app.state.key_cursor;
    assert_eq!(c.key.as_deref(), Some("k030"));
    assert!(c.offset <= 30 && 30 < c.offset + page);
    update(&mut app, key(KeyCode::PageDown));
    assert_eq!(app.state.key_cursor.pos, 30 + page);
    update(&mut app, ch('G'));
    assert_eq!(app.state.key_cursor.key.as_deref(), Some("k099"));
    update(&mut app, ch('g'));
    assert_eq!(app.state.key_cursor.key.as_deref(), Some("k000"));
}

#[test]
fn a_server_with_a_new_history_starts_the_event_list_over() {
    let mut app = connected();
    assert_eq!(app.events.last_id(), 10);
    let snap = Snapshot {
        metrics: metrics(1),
        state: vec![],
        instances: vec![],
        recent: vec![ev(1, "fresh.start", json!({}))],
        since: 1,
        reset: true,
        projects: vec![],
    };
    update(&mut app, net(Net::Snapshot(Box::new(snap))));
    let ids: Vec<i64> = app.events.visible().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![1]);
    update(
        &mut app,
        net(Net::Events(vec![ev(2, "fresh.more", json!({}))])),
    );
    assert_eq!(app.events.last_id(), 2);
    assert!(app.state.keys.is_empty());
}

#[test]
fn spec_projects_from_the_snapshot_are_fetched() {
    let mut app = connected();
    let cmds = update(
        &mut app,
        net(Net::Snapshot(Box::new(Snapshot {
            metrics: metrics(10),
            state: vec![],
            instances: vec![],
            recent: vec![],
            since: 10,
            reset: false,
            projects: vec!["web".into()],
        }))),
    );
    assert!(app.projects.contains("web"));
    assert!(
        cmds.contains(&Command::FetchSpecs("web".into())),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&Command::FetchSpecs("docs".into())),
        "{cmds:?}"
    );
}

/// Issue 18: after a reconnect the log view is read again from the server's ring at once, even
/// when the log stream itself has not noticed the restart yet.
#[test]
fn a_reconnect_reloads_the_logs() {
    let mut app = connected();
    let reconnecting = Conn::Reconnecting {
        retry_at_ms: now() + 250,
        attempt: 1,
        reason: "connection to the server lost".into(),
    };
    update(&mut app, net(Net::Conn(reconnecting)));
    assert!(app.logs.down.is_none());
    let cmds = update(&mut app, net(Net::Conn(Conn::Connected)));
    assert_eq!(cmds, vec![Command::SetLogLevel(app.logs.level)]);
    // the first connect of a session loads them anyway: no second request
    let mut fresh = App::new(Options::default());
    assert!(update(&mut fresh, net(Net::Conn(Conn::Connected))).is_empty());
}

#[test]
fn webhook_events_and_connects_refetch_the_webhooks() {
    let mut app = connected();
    let cmds = update(
        &mut app,
        Msg::Net(Net::Events(vec![ev(
            11,
            "koor.webhook.disabled",
            json!({"id": "ci"}),
        )])),
    );
    assert!(cmds.contains(&Command::FetchWebhooks), "{cmds:?}");
    let cmds = update(
        &mut app,
        Msg::Net(Net::Events(vec![ev(
            12,
            "koor.state.updated",
            json!({"key": "a", "version": 2}),
        )])),
    );
    assert!(!cmds.contains(&Command::FetchWebhooks), "{cmds:?}");
}
