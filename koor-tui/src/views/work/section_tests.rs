//! The Tasks, Reservations and Messages sections through the update function and the whole
//! frame (TestBackend), and the compose prompt with the unread marks of the Instances view.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use super::Section;
use crate::app::tests::{T0, ch, connected, ev, key, now};
use crate::app::{App, OPERATOR_HEARTBEAT_TICKS, update};
use crate::msg::{Command, Msg, Net};
use crate::theme::Theme;
use crate::views::ViewId;
use crate::views::work::messages::MessageRow;
use crate::views::work::reservations::ReservationRow;
use crate::views::work::tasks::TaskRow;

/// `T0 + s` seconds as RFC 3339 (`now()` is T0 + 10 s).
fn at(s: u64) -> String {
    let t0 = koor_shared::time::parse_rfc3339(T0).expect("time");
    koor_shared::time::format_rfc3339(t0 + std::time::Duration::from_secs(s))
}

fn draw(app: &App, w: u16, h: u16) -> Vec<String> {
    let theme = Theme { color: true };
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| crate::ui::render(app, f, &theme)).expect("draw");
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn on_screen(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l.contains(want))
}

fn board() -> Value {
    json!({"project": "web", "tasks": [
        {"id": "T-2", "project": "web", "title": "login API", "status": "claimed", "ready": false,
         "priority": 2, "depends_on": ["T-1"],
         "claim": {"holder": {"id": "i1", "name": "claude"}, "fence": 8, "expires_at": at(250)}},
        {"id": "T-4", "project": "web", "title": "docs", "status": "open", "ready": true,
         "depends_on": [], "claim": null},
        {"id": "T-3", "project": "web", "title": "login page", "status": "open", "ready": false,
         "depends_on": ["T-2", "T-1"], "claim": null},
        {"id": "T-1", "project": "web", "title": "user schema", "status": "done", "ready": false,
         "depends_on": [], "claim": null}
    ]})
}

/// Connected, the board of `web` read as of event 10, on the Work view's Tasks section.
fn with_tasks() -> App {
    let mut app = connected();
    let cmds = update(&mut app, Msg::Net(Net::Boards(vec!["web".into()])));
    assert_eq!(cmds, vec![Command::RefreshTasks("web".into())]);
    update(
        &mut app,
        Msg::Net(Net::Tasks {
            project: "web".into(),
            tasks: TaskRow::list(&board()),
            as_of: 10,
        }),
    );
    update(&mut app, ch('5'));
    update(&mut app, key(KeyCode::Right));
    assert_eq!(app.work.section, Section::Tasks);
    app
}

#[test]
fn tasks_by_status_with_holder_time_left_and_dependencies_at_80x24() {
    let mut app = with_tasks();
    let lines = draw(&app, 80, 24);
    let want = [
        " Work · Locks 0 · Tasks web 4 · Reservations 0 · Messages 0 ────────────────────",
        "ID     STATUS    TITLE                                HOLDER         PRI LEFT   ",
        "T-2    claimed   login API                            claude         2   4m     ",
        "T-4    ready     docs                                                0          ",
        "T-3    blocked   login page                                          0          ",
        "T-1    done      user schema                                         0          ",
    ];
    assert_eq!(lines[2..8], want, "\n{}", lines.join("\n"));
    // the selected task's dependencies on the last row of the view
    assert!(
        on_screen(&lines, " T-2 needs T-1 done"),
        "{}",
        lines.join("\n")
    );
    update(&mut app, ch('j'));
    update(&mut app, ch('j'));
    let lines = draw(&app, 80, 24);
    assert!(
        on_screen(&lines, " T-3 needs T-2 claimed · T-1 done"),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines[23].starts_with(" r reopen  p project  ⏎ detail"),
        "{}",
        lines[23]
    );
    // Enter: every field
    update(&mut app, key(KeyCode::Enter));
    let lines = draw(&app, 80, 24);
    assert!(on_screen(&lines, "depends on  T-2 claimed · T-1 done"));
    update(&mut app, key(KeyCode::Esc));
    // the filter narrows by holder, status, title
    update(&mut app, ch('/'));
    for c in "claude".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.work.tasks.visible().len(), 1);
    assert_eq!(app.filtered_rows(), Some(1));
}

#[test]
fn task_events_apply_at_once_and_the_board_is_read_on_the_next_tick() {
    let mut app = with_tasks();
    let claim = json!({"project": "web", "id": "T-4", "title": "docs", "status": "claimed",
                       "holder": {"id": "i2", "name": "cursor"}});
    let created = json!({"project": "web", "id": "T-5", "title": "deploy", "status": "open",
                         "holder": null});
    let other = json!({"project": "api", "id": "T-1", "title": "x", "status": "open",
                       "holder": null});
    let cmds = update(
        &mut app,
        Msg::Net(Net::Events(vec![
            ev(11, "koor.task.claimed", claim),
            ev(12, "koor.task.created", created),
            ev(13, "koor.task.created", other),
        ])),
    );
    assert!(cmds.is_empty(), "{cmds:?}");
    let t4 = app
        .work
        .tasks
        .list
        .iter()
        .find(|t| t.id == "T-4")
        .expect("T-4");
    assert_eq!(
        (
            t4.status.as_str(),
            t4.holder.as_ref().map(|h| h.name.as_str())
        ),
        ("claimed", Some("cursor"))
    );
    assert!(app.work.tasks.list.iter().any(|t| t.id == "T-5"));
    assert!(app.work.tasks.projects.contains("api"));
    // one read on the next tick, none on the one after
    let cmds = update(&mut app, Msg::Tick(now() + 1000));
    assert!(
        cmds.contains(&Command::RefreshTasks("web".into())),
        "{cmds:?}"
    );
    let cmds = update(&mut app, Msg::Tick(now() + 2000));
    assert!(!cmds.contains(&Command::RefreshTasks("web".into())));
    // a read older than the events keeps them
    update(
        &mut app,
        Msg::Net(Net::Tasks {
            project: "web".into(),
            tasks: TaskRow::list(&board()),
            as_of: 11,
        }),
    );
    assert!(app.work.tasks.list.iter().any(|t| t.id == "T-5"));
    // p: the other project's board
    let cmds = update(&mut app, ch('p'));
    assert_eq!(cmds, vec![Command::RefreshTasks("api".into())]);
    assert_eq!(app.work.tasks.project.as_deref(), Some("api"));
}

#[test]
fn reopen_asks_first_and_defaults_to_no() {
    let mut app = with_tasks();
    // not claimed: nothing to put back
    update(&mut app, ch('j'));
    update(&mut app, ch('r'));
    assert!(app.confirm.is_none());
    update(&mut app, ch('k'));
    update(&mut app, ch('r'));
    let dialog = app.confirm.clone().expect("asks first");
    assert!(
        dialog
            .message
            .contains("T-2 \"login API\" claimed by claude"),
        "{}",
        dialog.message
    );
    assert!(!dialog.yes_focused);
    let lines = draw(&app, 80, 24);
    assert!(
        on_screen(&lines, "Put task back to open"),
        "{}",
        lines.join("\n")
    );
    assert!(on_screen(&lines, "> No <"));
    assert!(
        update(&mut app, key(KeyCode::Enter)).is_empty(),
        "Enter answers No"
    );
    update(&mut app, ch('r'));
    let cmds = update(&mut app, ch('y'));
    assert_eq!(
        cmds,
        vec![Command::ForceReleaseTask {
            project: "web".into(),
            id: "T-2".into()
        }]
    );
    let cmds = update(
        &mut app,
        Msg::Net(Net::TaskReleased {
            project: "web".into(),
            id: "T-2".into(),
            error: None,
        }),
    );
    assert_eq!(cmds, vec![Command::RefreshTasks("web".into())]);
    assert_eq!(
        app.status.as_ref().map(|s| s.text.as_str()),
        Some("✓ T-2 is open again")
    );
    update(
        &mut app,
        Msg::Net(Net::TaskReleased {
            project: "web".into(),
            id: "T-2".into(),
            error: Some("task not claimed: T-2 (409)".into()),
        }),
    );
    assert!(app.status.as_ref().is_some_and(|s| s.error));

    let mut ro = with_tasks();
    ro.readonly = true;
    update(&mut ro, ch('r'));
    assert!(ro.confirm.is_none());
    assert!(ro.status.as_ref().is_some_and(|s| s.error));
    assert!(!ro.work.keys(true).iter().any(|k| k.0 == "r"));
}

fn reservation(id: &str, path: &str, exclusive: bool, holder: &str, fence: i64) -> Value {
    json!({"id": id, "project": "web", "path": path, "exclusive": exclusive,
           "holder": {"id": format!("{holder}-id"), "name": holder}, "fence": fence,
           "reason": "auth rework", "created_at": T0, "expires_at": at(70)})
}

fn with_reservations() -> App {
    let mut app = connected();
    let listing = json!({"reservations": [
        reservation("r2", "src/auth/**", true, "claude", 7),
        reservation("r1", "README.md", false, "cursor", 5)
    ]});
    update(
        &mut app,
        Msg::Net(Net::Reservations {
            list: ReservationRow::list(&listing),
            as_of: 10,
        }),
    );
    update(&mut app, ch('5'));
    update(&mut app, ch(']'));
    update(&mut app, ch(']'));
    assert_eq!(app.work.section, Section::Reservations);
    app
}

#[test]
fn reservations_at_80x24_and_force_release_asks_first() {
    let mut app = with_reservations();
    let lines = draw(&app, 80, 24);
    let want = [
        " Work · Locks 0 · Tasks 0 · Reservations 2 · Messages 0 ────────────────────────",
        "PROJECT      PATH                                  MODE   HOLDER         LEFT   ",
        "web          README.md                             shared cursor         1m     ",
        "web          src/auth/**                           excl   claude         1m     ",
    ];
    assert_eq!(lines[2..6], want, "\n{}", lines.join("\n"));

    update(&mut app, ch('j'));
    update(&mut app, ch('x'));
    let dialog = app.confirm.clone().expect("asks first");
    assert!(
        dialog
            .message
            .contains("excl src/auth/** in web held by claude"),
        "{}",
        dialog.message
    );
    assert!(update(&mut app, key(KeyCode::Esc)).is_empty());
    update(&mut app, ch('x'));
    let cmds = update(&mut app, ch('y'));
    assert_eq!(
        cmds,
        vec![Command::ForceReleaseReservation {
            id: "r2".into(),
            fence: 7,
            path: "src/auth/**".into()
        }]
    );
    update(
        &mut app,
        Msg::Net(Net::ReservationReleased {
            id: "r2".into(),
            fence: 7,
            path: "src/auth/**".into(),
            error: None,
        }),
    );
    assert_eq!(app.work.reservations.list.len(), 1);
    assert_eq!(
        app.status.as_ref().map(|s| s.text.as_str()),
        Some("✓ released reservation src/auth/**")
    );

    // a grant event shows at once; its expiry comes with the read on the next tick
    let mut granted = reservation("r3", "src/db/**", true, "kilo", 11);
    granted
        .as_object_mut()
        .expect("object")
        .remove("expires_at");
    update(
        &mut app,
        Msg::Net(Net::Events(vec![
            ev(11, "koor.reservation.granted", granted),
            ev(
                12,
                "koor.reservation.expired",
                reservation("r1", "README.md", false, "cursor", 5),
            ),
        ])),
    );
    let ids: Vec<&str> = app
        .work
        .reservations
        .list
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["r3"]);
    let cmds = update(&mut app, Msg::Tick(now() + 1000));
    assert!(cmds.contains(&Command::RefreshReservations), "{cmds:?}");

    let mut ro = with_reservations();
    ro.readonly = true;
    update(&mut ro, ch('x'));
    assert!(ro.confirm.is_none());
}

fn listing() -> Value {
    json!({"messages": [
        {"id": 1, "thread_id": 1, "from": {"id": "i1", "name": "claude"},
         "to": [{"id": "i2", "name": "cursor", "read_at": at(5), "acked_at": null}],
         "subject": "which table holds sessions?", "body": "for T-3", "ack_required": false,
         "created_at": T0},
        {"id": 2, "thread_id": 1, "from": {"id": "i2", "name": "cursor"},
         "to": [{"id": "i1", "name": "claude", "read_at": null, "acked_at": null}],
         "subject": "Re: which table holds sessions?", "body": {"table": "sessions"},
         "ack_required": true, "created_at": at(8)}
    ]})
}

fn with_messages() -> App {
    let mut app = connected();
    let unread = [("i1".to_owned(), 1)].into_iter().collect();
    update(
        &mut app,
        Msg::Net(Net::Messages {
            messages: MessageRow::list(&listing()),
            unread: Some(unread),
        }),
    );
    update(&mut app, ch('5'));
    update(&mut app, key(KeyCode::Left));
    assert_eq!(app.work.section, Section::Messages);
    app
}

#[test]
fn messages_at_80x24_with_receipts_and_unread_marks() {
    let mut app = with_messages();
    let lines = draw(&app, 80, 24);
    let want = [
        " Work · Locks 0 · Tasks 0 · Reservations 0 · Messages 2 ────────────────────────",
        "TIME     FROM → TO                SUBJECT                               READ ACK",
        "14:30:08 cursor → claude          Re: which table holds sessions?       ·    !  ",
        "14:30:00 claude → cursor          which table holds sessions?           ✓       ",
    ];
    assert_eq!(lines[2..6], want, "\n{}", lines.join("\n"));
    update(&mut app, key(KeyCode::Enter));
    let lines = draw(&app, 80, 24);
    assert!(
        on_screen(&lines, "to        claude (i1): unread"),
        "{}",
        lines.join("\n")
    );
    assert!(on_screen(&lines, "\"table\": \"sessions\""));
    update(&mut app, key(KeyCode::Esc));

    // the Instances view marks unread mail; a sent event counts at once
    update(
        &mut app,
        Msg::Net(Net::Events(vec![ev(
            11,
            "koor.message.sent",
            json!({"id": 3, "thread_id": 3, "from": {"id": "i2", "name": "cursor"},
                   "to": [{"id": "i1", "name": "claude"}], "subject": "done with T-2?"}),
        )])),
    );
    assert_eq!(app.work.messages.list.first().map(|m| m.id), Some(3));
    assert_eq!(app.instances.unread.get("i1"), Some(&2));
    update(&mut app, ch('3'));
    let lines = draw(&app, 80, 24);
    assert!(on_screen(&lines, "claude ✉2"), "{}", lines.join("\n"));
    // receipts are re-read on the refresh tick
    let mut refreshed = false;
    for i in 1..=5 {
        refreshed |=
            update(&mut app, Msg::Tick(now() + i * 1000)).contains(&Command::RefreshMessages);
    }
    assert!(refreshed);
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        update(app, ch(c));
    }
}

#[test]
fn compose_sends_as_the_operator_and_the_operator_heartbeats() {
    let mut app = connected();
    update(&mut app, ch('3'));
    let selected = app
        .instances
        .selected()
        .map(|i| (i.id.clone(), i.name.clone()));
    let (to_id, to_name) = selected.expect("an instance");
    update(&mut app, ch('m'));
    assert!(app.compose.is_some());
    // keys go to the prompt: q types, it does not quit
    typed(&mut app, "quick question");
    assert!(!app.quit);
    update(&mut app, key(KeyCode::Tab));
    typed(&mut app, "are you stuck on T-3?");
    let lines = draw(&app, 80, 24);
    assert!(
        on_screen(&lines, &format!("Message to {to_name} · from operator")),
        "{}",
        lines.join("\n")
    );
    assert!(
        on_screen(&lines, "Subject quick question"),
        "{}",
        lines.join("\n")
    );
    assert!(on_screen(&lines, "Body    are you stuck on T-3?▏"));
    assert!(
        lines[23].starts_with(" ⏎ send  Tab subject/body  Esc cancel"),
        "{}",
        lines[23]
    );
    let cmds = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        cmds,
        vec![Command::SendMessage {
            to_id: to_id.clone(),
            to_name: to_name.clone(),
            subject: "quick question".into(),
            body: "are you stuck on T-3?".into(),
            thread_id: None,
        }]
    );
    assert!(app.compose.is_none());
    assert_eq!(
        app.status.as_ref().map(|s| s.text.as_str()),
        Some("sending…")
    );

    // no heartbeat before the operator exists
    let hb = |app: &mut App, from: i64| {
        (1..=OPERATOR_HEARTBEAT_TICKS as i64)
            .flat_map(|i| update(app, Msg::Tick(from + i * 1000)))
            .filter(|c| *c == Command::HeartbeatOperator)
            .count()
    };
    assert_eq!(hb(&mut app, now()), 0);
    update(
        &mut app,
        Msg::Net(Net::MessageSent {
            to_name: to_name.clone(),
            operator: Some("op-1".into()),
            error: None,
        }),
    );
    assert_eq!(app.operator.as_deref(), Some("op-1"));
    assert_eq!(
        app.status.as_ref().map(|s| s.text.clone()),
        Some(format!("✓ sent to {to_name}"))
    );
    assert_eq!(hb(&mut app, now() + 100_000), 1);

    // Esc cancels; an empty subject does not send
    update(&mut app, ch('m'));
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    assert!(app.compose.as_ref().is_some_and(|c| c.problem.is_some()));
    update(&mut app, key(KeyCode::Esc));
    assert!(app.compose.is_none());

    // a reply from the Messages section joins the thread
    update(
        &mut app,
        Msg::Net(Net::Messages {
            messages: MessageRow::list(&listing()),
            unread: None,
        }),
    );
    update(&mut app, ch('5'));
    update(&mut app, key(KeyCode::Left));
    update(&mut app, ch('m'));
    let c = app.compose.clone().expect("reply");
    assert_eq!(
        (c.to_name.as_str(), c.thread_id, c.subject.as_str()),
        ("cursor", Some(1), "Re: which table holds sessions?")
    );

    // read-only: no prompt
    let mut ro = connected();
    ro.readonly = true;
    update(&mut ro, ch('3'));
    update(&mut ro, ch('m'));
    assert!(ro.compose.is_none());
    assert!(ro.status.as_ref().is_some_and(|s| s.error));
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    update(&mut app, ch('m'));
    assert_eq!(update(&mut app, ctrl_c), vec![Command::Quit]);
}

#[test]
fn every_section_draws_at_any_size() {
    let mut app = with_tasks();
    let mut more = with_messages();
    update(
        &mut more,
        Msg::Net(Net::Reservations {
            list: vec![
                ReservationRow::from_value(&reservation("r1", "a/**", true, "x", 3)).expect("row"),
            ],
            as_of: 10,
        }),
    );
    for app in [&mut app, &mut more] {
        for _ in 0..4 {
            update(app, key(KeyCode::Right));
            for (w, h) in [(1, 1), (49, 9), (50, 10), (60, 20), (100, 30), (200, 60)] {
                update(app, Msg::Resize(w, h));
                draw(app, w, h);
                update(app, key(KeyCode::Enter));
                draw(app, w, h);
                update(app, key(KeyCode::Esc));
            }
        }
    }
    update(&mut app, ch('3'));
    update(&mut app, ch('m'));
    for (w, h) in [(1, 1), (50, 10), (200, 60)] {
        draw(&app, w, h);
    }
    assert_eq!(app.view, ViewId::Instances);
}

#[test]
fn a_server_with_a_new_history_drops_the_messages_shown() {
    let mut app = with_messages();
    assert_eq!(app.work.messages.list.len(), 2);
    let snap = crate::msg::Snapshot {
        metrics: crate::app::tests::metrics(1),
        state: vec![],
        instances: vec![],
        recent: vec![],
        since: 1,
        reset: true,
        projects: vec![],
    };
    update(&mut app, Msg::Net(Net::Snapshot(Box::new(snap))));
    assert!(
        app.work.messages.list.is_empty(),
        "ids start over: no mixing"
    );
    assert!(app.instances.unread.is_empty());
}
