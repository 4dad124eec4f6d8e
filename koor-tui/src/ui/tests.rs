//! Render tests: the frame drawn into ratatui's `TestBackend`, read back as text.

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::*;
use crate::app::tests::{ch, connected, key, now};
use crate::app::update;
use crate::msg::{Msg, Net};

const COLOR: Theme = Theme { color: true };

fn terminal(app: &App, w: u16, h: u16, theme: Theme) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    terminal.draw(|f| render(app, f, &theme)).expect("draw");
    terminal
}

fn draw(app: &App, w: u16, h: u16) -> Vec<String> {
    let t = terminal(app, w, h, COLOR);
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn screen(lines: &[String]) -> String {
    lines.join("\n")
}

fn assert_on_screen(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l.contains(want)),
        "{want:?} not on screen:\n{}",
        screen(lines)
    );
}

#[test]
fn instances_view_at_80x24() {
    let mut app = connected();
    update(&mut app, ch('3'));
    let lines = draw(&app, 80, 24);
    let mut want: Vec<String> = vec![
        " koor  http://127.0.0.1:9800  ● connected            ev 2 keys 2 inst 2 stale 1 ",
        "  1 Events   2 State   3 Instances   4 Logs   5 Work                            ",
        " Instances · 2 · 1 stale ───────────────────────────────────────────────────────",
        "STATUS    NAME           WORKSPACE        INTENT                            SEEN",
        "✗ stale   cursor         /src/cursor      working                           10s ",
        "● active  claude         /src/claude      working                           10s ",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    want.resize(23, " ".repeat(80));
    want.push(format!(
        "{:<80}",
        " d deregister  D deregister stale  ⏎ detail  Tab view  ? help  q quit"
    ));
    if lines != want {
        panic!("got:\n{}\nwant:\n{}", screen(&lines), screen(&want));
    }
}

#[test]
fn every_view_at_80x24() {
    let mut app = connected();
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "● connected");
    assert_on_screen(&lines, "Events 2 · following");
    assert_on_screen(
        &lines,
        "#9  14:30:00 api.change           {\"endpoint\":\"/users\"}",
    );
    assert_on_screen(&lines, "#10 14:30:00 koor.state.updated   b v3");
    assert_on_screen(&lines, "q quit");

    update(&mut app, ch('2'));
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "State · 2 keys");
    assert_on_screen(&lines, "KEY");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(" b ") && l.contains(" 3 ") && l.contains("application/json")),
        "{}",
        screen(&lines)
    );

    update(&mut app, ch('4'));
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "Logs · info+ · following");
    assert_on_screen(&lines, "no log records yet");
}

#[test]
fn too_small_shows_a_notice() {
    let app = connected();
    let lines = draw(&app, 40, 8);
    assert_on_screen(&lines, "terminal too small (need 50x10)");
    assert_on_screen(&lines, "now 40x8");
    let lines = draw(&app, 80, 9);
    assert_on_screen(&lines, "terminal too small (need 50x10)");
}

#[test]
fn connection_states_read_in_the_header() {
    let mut app = connected();
    update(
        &mut app,
        Msg::Net(Net::Conn(Conn::Reconnecting {
            retry_at_ms: now() + 2500,
            attempt: 2,
            reason: "connection refused: cannot reach the Koor server".into(),
        })),
    );
    let lines = draw(&app, 100, 30);
    assert_on_screen(&lines, "↻ reconnecting in 3s, attempt 2");
    assert_on_screen(&lines, "connection refused: cannot reach the Koor server");

    update(
        &mut app,
        Msg::Net(Net::Conn(Conn::AuthError {
            message: "invalid or missing bearer token (401)".into(),
            retry_at_ms: now() + 10_000,
        })),
    );
    let lines = draw(&app, 100, 30);
    assert_on_screen(&lines, "✗ auth error");
    assert_on_screen(
        &lines,
        "invalid or missing bearer token (401): set KOOR_TOKEN or --token (retrying in 10s)",
    );

    let fresh = App::new(crate::app::Options {
        server: "http://localhost:9800".into(),
        readonly: true,
        projects: vec![],
    });
    let lines = draw(&fresh, 100, 30);
    assert_on_screen(&lines, "○ connecting…");
    assert_on_screen(&lines, "read-only");
}

#[test]
fn dialog_and_help_overlays() {
    let mut app = connected();
    update(&mut app, ch('3'));
    update(&mut app, ch('d'));
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "Deregister instance");
    assert_on_screen(
        &lines,
        "Deregister cursor (i2, ✗ stale, last seen 10s ago)?",
    );
    assert_on_screen(&lines, "> No <");
    assert_on_screen(&lines, "y yes");
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, ch('?'));
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "Help");
    assert_on_screen(&lines, "Instances view");
    assert_on_screen(&lines, "deregister");
}

#[test]
fn no_color_uses_no_colours_but_keeps_symbols() {
    let mut app = connected();
    update(&mut app, ch('3'));
    let t = terminal(&app, 80, 24, Theme { color: false });
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!(cell.fg, Color::Reset, "cell {:?}", cell.symbol());
        assert_eq!(cell.bg, Color::Reset, "cell {:?}", cell.symbol());
    }
    let text: String = buf.content().iter().map(|c| c.symbol()).collect();
    assert!(text.contains("✗ stale") && text.contains("● active"));
    // with colour, the stale status is red
    let t = terminal(&app, 80, 24, COLOR);
    let buf = t.backend().buffer();
    assert_eq!(buf[(0, 4)].symbol(), "✗");
    assert_eq!(buf[(0, 4)].fg, Color::Red);
}

#[test]
fn any_size_draws_without_panic() {
    let mut app = connected();
    for (w, h) in [
        (1, 1),
        (10, 3),
        (49, 9),
        (50, 10),
        (60, 20),
        (80, 24),
        (100, 30),
        (200, 60),
    ] {
        for view in ['1', '2', '3', '4'] {
            update(&mut app, ch(view));
            draw(&app, w, h);
            update(&mut app, key(KeyCode::Enter));
            draw(&app, w, h);
            update(&mut app, key(KeyCode::Esc));
        }
        update(&mut app, ch('3'));
        update(&mut app, ch('d'));
        draw(&app, w, h);
        update(&mut app, key(KeyCode::Esc));
        update(&mut app, ch('?'));
        draw(&app, w, h);
        update(&mut app, key(KeyCode::Esc));
    }
}

#[test]
fn small_pane_keeps_the_essentials() {
    let mut app = connected();
    update(&mut app, ch('3'));
    let lines = draw(&app, 60, 20);
    assert_on_screen(&lines, "✗ stale   cursor");
    assert!(
        lines[0].contains("127.0.0.1:9800  ● connected") && lines[0].contains("inst 2 stale 1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[19].ends_with("q quit  ") || lines[19].contains("q quit"),
        "{}",
        screen(&lines)
    );
}

#[test]
fn wide_terminal_shows_two_views() {
    let app = connected();
    let lines = draw(&app, 180, 30);
    assert_on_screen(&lines, "Events 2 · following");
    assert_on_screen(&lines, "Instances · 2 · 1 stale");
}

/// Issue 18: `/` finds what the row shows (the DATA column too), the header says a filter is
/// on and how many rows it lets through, and topics cut at 80 columns end in an ellipsis.
#[test]
fn filter_searches_the_row_and_the_header_says_so_at_80_columns() {
    let mut app = connected();
    update(
        &mut app,
        Msg::Net(Net::Events(vec![
            crate::app::tests::ev(
                11,
                "koor.state.updated",
                serde_json::json!({"key": "api-contract", "version": 5}),
            ),
            crate::app::tests::ev(
                12,
                "build.pipeline.frontend.finished",
                serde_json::json!({"ok": true}),
            ),
        ])),
    );
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "build.pipeline.fron…");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("filter:") || l.contains('⌕')),
        "no filter yet:\n{}",
        screen(&lines)
    );

    update(&mut app, ch('/'));
    for c in "api-contract".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    let shown: Vec<i64> = app.events.visible().iter().map(|e| e.id).collect();
    assert_eq!(shown, vec![11]);
    let lines = draw(&app, 80, 24);
    assert_on_screen(&lines, "api-contract v5");
    assert_on_screen(&lines, "⌕1 ev 4 keys 3 inst 2 stale 1");
    let wide = draw(&app, 140, 24);
    assert_on_screen(&wide, "filter: 1 shown · events 4");
}

/// Issue 18: a status message raised in one view does not follow the user to the others.
#[test]
fn a_views_status_message_stays_on_that_view() {
    let mut app = connected();
    update(&mut app, ch(' '));
    assert_on_screen(&draw(&app, 80, 24), "paused: new events wait");
    update(&mut app, ch('2'));
    let lines = draw(&app, 80, 24);
    assert!(
        !lines.iter().any(|l| l.contains("paused: new events wait")),
        "{}",
        screen(&lines)
    );
    update(&mut app, ch('1'));
    assert_on_screen(&draw(&app, 80, 24), "paused: new events wait");
}

#[test]
fn header_flags_failing_and_disabled_webhooks() {
    let mut app = connected();
    let hook = |id: &str, active: bool, fail_count: i64| -> koor_shared::ops::Webhook {
        serde_json::from_value(serde_json::json!({
            "id": id, "url": "http://127.0.0.1:1/", "patterns": ["*"], "active": active,
            "created_at": "2026-02-09T14:30:00Z", "fail_count": fail_count
        }))
        .expect("webhook")
    };
    update(
        &mut app,
        Msg::Net(Net::Webhooks(vec![
            hook("ok", true, 0),
            hook("flaky", true, 2),
            hook("dead", false, 10),
        ])),
    );
    assert_eq!(app.webhook_trouble(), (1, 1));
    assert_on_screen(
        &draw(&app, 120, 24),
        "webhooks 1 failing 1 disabled · events 2",
    );
    assert_on_screen(&draw(&app, 80, 24), "hooks 1✗ 1⊘ inst 2 stale 1");
    // Healthy again: the header is as before.
    update(&mut app, Msg::Net(Net::Webhooks(vec![hook("ok", true, 0)])));
    let lines = draw(&app, 80, 24);
    assert!(!screen(&lines).contains("hooks"), "{}", screen(&lines));
}
