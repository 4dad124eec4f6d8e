//! The view: `render(&App, &mut Frame)` draws the header, the tab bar, the current view (two side
//! by side on a wide terminal), the status line, the footer, and the help overlay or the
//! confirmation dialog on top. It only reads the model.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::app::{App, MIN_HEIGHT, MIN_WIDTH};
use crate::component::Confirm;
use crate::compose::{Compose, Field};
use crate::format;
use crate::msg::Conn;
use crate::theme::Theme;
use crate::views::{KeyHelp, ViewId};

/// From this width on, a second view shows beside the current one.
pub const SIDE_BY_SIDE_WIDTH: u16 = 160;

/// Keys every view has.
const GLOBAL_KEYS: [KeyHelp; 6] = [
    ("Tab/S-Tab", "next/previous view"),
    ("1-5", "Events, State, Instances, Logs, Work"),
    ("j/k ↑/↓", "move (PgUp/PgDn, g/G)"),
    ("Esc", "back / clear filter"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

pub fn render(app: &App, f: &mut Frame, theme: &Theme) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(f, area, theme);
        return;
    }
    let [header, tabs, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, f, header, theme);
    draw_tabs(app, f, tabs, theme);
    if area.width >= SIDE_BY_SIDE_WIDTH {
        let [main, side] =
            Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(body);
        let other = if app.view == ViewId::Instances {
            ViewId::Events
        } else {
            ViewId::Instances
        };
        draw_view(app, app.view, f, main, theme, true);
        draw_view(app, other, f, side, theme, false);
    } else {
        draw_view(app, app.view, f, body, theme, true);
    }
    draw_status(app, f, status, theme);
    draw_footer(app, f, footer, theme);
    if app.help {
        draw_help(app, f, area, theme);
    }
    if let Some(compose) = &app.compose {
        draw_compose(compose, f, area, theme);
    }
    if let Some(dialog) = &app.confirm {
        draw_confirm(dialog, f, area, theme);
    }
}

fn draw_view(app: &App, view: ViewId, f: &mut Frame, area: Rect, theme: &Theme, focused: bool) {
    match view {
        ViewId::Events => app.events.render(f, area, theme, focused),
        ViewId::State => app.state.render(f, area, theme, focused, app.now_ms),
        ViewId::Instances => app.instances.render(f, area, theme, focused, app.now_ms),
        ViewId::Logs => app.logs.render(f, area, theme, focused),
        ViewId::Work => app.work.render(f, area, theme, focused, app.now_ms),
    }
}

fn too_small(f: &mut Frame, area: Rect, theme: &Theme) {
    let lines = vec![
        Line::from(Span::styled(
            format!("terminal too small (need {MIN_WIDTH}x{MIN_HEIGHT})"),
            theme.bad(),
        )),
        Line::from(format!("now {}x{}", area.width, area.height)),
    ];
    let h = (lines.len() as u16).min(area.height);
    let y = area.y + area.height.saturating_sub(h) / 2;
    let rect = Rect {
        y,
        height: h,
        ..area
    };
    f.render_widget(
        Paragraph::new(lines).centered().wrap(Wrap { trim: true }),
        rect,
    );
}

/// The connection state as a symbol and words, and its style.
fn conn_text(app: &App, theme: &Theme) -> Span<'static> {
    let secs = |at: i64| ((at - app.now_ms).max(0) + 999) / 1000;
    match &app.conn {
        Conn::Connecting => Span::styled("○ connecting…", theme.warn()),
        Conn::Connected => Span::styled("● connected", theme.good()),
        Conn::Reconnecting {
            retry_at_ms,
            attempt,
            ..
        } => Span::styled(
            format!(
                "↻ reconnecting in {}s, attempt {attempt}",
                secs(*retry_at_ms)
            ),
            theme.warn(),
        ),
        Conn::AuthError { .. } => Span::styled("✗ auth error", theme.bad()),
    }
}

fn draw_header(app: &App, f: &mut Frame, area: Rect, theme: &Theme) {
    let width = area.width as usize;
    let stale = app.stale_count();
    let events = format::count(app.events.total);
    let keys = app.state.keys.len();
    let instances = app.instances.list.len();
    // webhooks in trouble come first: they are what an operator must act on
    let (failing, disabled) = app.webhook_trouble();
    let hooks = |long: bool| match (failing, disabled, long) {
        (0, 0, _) => String::new(),
        (f, d, true) => format!("webhooks {f} failing {d} disabled · "),
        (f, d, false) => format!("hooks {f}✗ {d}⊘ "),
    };
    // the counts in the longest form that fits; the scheme of the URL goes first when tight
    // with a filter on the current view, the counts say so and how many rows it lets through
    let (shown_long, shown_short) = match app.filtered_rows() {
        Some(n) => (
            format!("filter: {} shown · ", format::count(n as u64)),
            format!("⌕{} ", format::count(n as u64)),
        ),
        None => (String::new(), String::new()),
    };
    let counts = [
        format!(
            "{}{shown_long}events {events} · keys {keys} · instances {instances} · stale {stale} ",
            hooks(true)
        ),
        format!(
            "{}{shown_short}ev {events} keys {keys} inst {instances} stale {stale} ",
            hooks(false)
        ),
        format!(
            "{}{shown_short}inst {instances} stale {stale} ",
            hooks(false)
        ),
        hooks(false),
    ];
    let server = app.server.as_str();
    let short_server = server.split_once("://").map_or(server, |(_, rest)| rest);
    let left = |server: &str| {
        let mut spans = vec![
            Span::styled(" koor ", theme.tab_active()),
            Span::raw(" "),
            Span::raw(server.to_owned()),
            Span::raw("  "),
            conn_text(app, theme),
        ];
        if app.readonly {
            spans.push(Span::styled("  read-only", theme.dim()));
        }
        spans
    };
    let span_width =
        |spans: &[Span]| -> usize { spans.iter().map(|s| s.content.chars().count()).sum() };
    let mut chosen = (left(server), None);
    'search: for server in [server, short_server] {
        let spans = left(server);
        let room = width.saturating_sub(span_width(&spans) + 2);
        for c in &counts {
            if c.chars().count() <= room {
                chosen = (spans, Some(c.clone()));
                break 'search;
            }
        }
    }
    let (left, right) = chosen;
    f.render_widget(Paragraph::new(Line::from(left)), area);
    if let Some(right) = right {
        let style = if failing + disabled > 0 {
            theme.bad()
        } else if stale > 0 {
            theme.warn()
        } else {
            theme.dim()
        };
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(right, style)).right_aligned()),
            area,
        );
    }
}

fn draw_tabs(app: &App, f: &mut Frame, area: Rect, theme: &Theme) {
    let mut spans = vec![Span::raw(" ")];
    for (i, v) in ViewId::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, v.name());
        spans.push(if *v == app.view {
            Span::styled(label, theme.tab_active())
        } else {
            Span::raw(label)
        });
        spans.push(Span::raw(" "));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(app: &App, f: &mut Frame, area: Rect, theme: &Theme) {
    let line = if let Some(s) = app.visible_status() {
        let style = if s.error { theme.bad() } else { theme.good() };
        Line::from(Span::styled(format!(" {}", s.text), style))
    } else {
        match &app.conn {
            Conn::Reconnecting { reason, .. } => {
                Line::from(Span::styled(format!(" {reason}"), theme.warn()))
            }
            Conn::AuthError {
                message,
                retry_at_ms,
            } => Line::from(Span::styled(
                format!(
                    " {message}: set KOOR_TOKEN or --token (retrying in {}s)",
                    ((retry_at_ms - app.now_ms).max(0) + 999) / 1000
                ),
                theme.bad(),
            )),
            _ => Line::default(),
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The keys of the console as text, for `koor-tui --help`: those of every view, then each view's
/// own (as its help overlay lists them), from the same tables the console draws.
pub fn keys_help() -> String {
    use crate::views::{
        events::EventsView, instances::InstancesView, logs::LogsView, state::StateView,
        work::WorkView,
    };
    let mut text = String::from("Keys (? in the console shows those of the current view):\n");
    let line = |text: &mut String, (k, what): KeyHelp| {
        text.push_str(&format!("  {k:<11} {what}\n"));
    };
    for key in GLOBAL_KEYS {
        line(&mut text, key);
    }
    for view in ViewId::ALL {
        let keys = match view {
            ViewId::Events => EventsView::default().keys(),
            ViewId::State => StateView::default().keys(),
            ViewId::Instances => InstancesView::default().keys(false),
            ViewId::Logs => LogsView::default().keys(),
            ViewId::Work => WorkView::default().keys(false),
        };
        text.push_str(&format!("{} view:\n", view.name()));
        for key in keys {
            line(&mut text, key);
        }
    }
    text
}

fn view_keys(app: &App) -> Vec<KeyHelp> {
    match app.view {
        ViewId::Events => app.events.keys(),
        ViewId::State => app.state.keys(),
        ViewId::Instances => app.instances.keys(app.readonly),
        ViewId::Logs => app.logs.keys(),
        ViewId::Work => app.work.keys(app.readonly),
    }
}

fn draw_footer(app: &App, f: &mut Frame, area: Rect, theme: &Theme) {
    let mut keys: Vec<KeyHelp> = if app.confirm.is_some() {
        vec![
            ("y", "yes"),
            ("n/Esc", "no"),
            ("←/→", "choose"),
            ("⏎", "answer"),
        ]
    } else if app.compose.is_some() {
        vec![("⏎", "send"), ("Tab", "subject/body"), ("Esc", "cancel")]
    } else if app.help {
        vec![("?/Esc", "close help")]
    } else if filter_editing(app) {
        vec![("⏎", "keep filter"), ("Esc", "cancel"), ("Ctrl-U", "clear")]
    } else {
        view_keys(app)
    };
    let always: Vec<KeyHelp> =
        if app.confirm.is_none() && app.compose.is_none() && !app.help && !filter_editing(app) {
            vec![("Tab", "view"), ("?", "help"), ("q", "quit")]
        } else {
            Vec::new()
        };
    // the view's keys as far as they fit, then the global ones
    let width = |(k, what): &KeyHelp| k.chars().count() + what.chars().count() + 3;
    let mut room =
        (area.width as usize).saturating_sub(1 + always.iter().map(width).sum::<usize>());
    keys.retain(|k| {
        let w = width(k);
        let fits = w <= room;
        if fits {
            room -= w;
        }
        fits
    });
    keys.extend(always);
    let mut spans = vec![Span::raw(" ")];
    for (k, what) in keys {
        spans.push(Span::styled(k, theme.key()));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn filter_editing(app: &App) -> bool {
    match app.view {
        ViewId::Events => app.events.filter.editing,
        ViewId::State => app.state.filter.editing,
        ViewId::Instances => app.instances.filter.editing,
        ViewId::Logs => app.logs.filter.editing,
        ViewId::Work => app.work.filter_editing(),
    }
}

fn draw_help(app: &App, f: &mut Frame, area: Rect, theme: &Theme) {
    let mut lines = vec![Line::from(Span::styled("Everywhere", theme.title()))];
    let key_line = |(k, what): KeyHelp| {
        Line::from(vec![
            Span::styled(format!("  {k:<11}"), theme.key()),
            Span::raw(what),
        ])
    };
    lines.extend(GLOBAL_KEYS.into_iter().map(key_line));
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(
        format!("{} view", app.view.name()),
        theme.title(),
    )));
    lines.extend(view_keys(app).into_iter().map(key_line));
    if app.view == ViewId::Events {
        lines.push(Line::from(Span::styled(
            "  filter: a topic pattern (api.*, koor.**) or text",
            theme.dim(),
        )));
    }
    let note = match app.view {
        ViewId::Work => Some("  sections: Locks, Tasks, Reservations, Messages"),
        ViewId::Instances if !app.readonly => Some("  ✉N: unread messages; m writes as 'operator'"),
        _ => None,
    };
    if let Some(note) = note {
        lines.push(Line::from(Span::styled(note, theme.dim())));
    }
    if app.readonly {
        lines.push(Line::from(Span::styled(
            "  read-only: destructive keys are off",
            theme.dim(),
        )));
    }
    let width = 62.min(area.width.saturating_sub(2));
    let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let rect = area.centered(Constraint::Length(width), Constraint::Length(height));
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" Help · ? or Esc closes ")
                .title_style(theme.title())
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        rect,
    );
}

/// The compose prompt: who it goes to, the subject and the body, the cursor in the current field.
fn draw_compose(compose: &Compose, f: &mut Frame, area: Rect, theme: &Theme) {
    let width = 64.min(area.width.saturating_sub(2));
    let text_width = width.saturating_sub(4).max(1) as usize;
    let field = |label: &str, text: &str, on: bool| {
        // the end of a long text stays in view
        let room = text_width.saturating_sub(label.chars().count() + 1);
        let skip = text.chars().count().saturating_sub(room);
        let shown: String = text.chars().skip(skip).collect();
        let mut spans = vec![
            Span::styled(label.to_owned(), if on { theme.key() } else { theme.dim() }),
            Span::raw(shown),
        ];
        if on {
            spans.push(Span::styled("▏", theme.key()));
        }
        Line::from(spans)
    };
    let mut lines = vec![
        field(
            "Subject ",
            &compose.subject,
            compose.field == Field::Subject,
        ),
        field("Body    ", &compose.body, compose.field == Field::Body),
        Line::default(),
    ];
    lines.push(match &compose.problem {
        Some(p) => Line::from(Span::styled(p.clone(), theme.bad())),
        None => Line::from(Span::styled(
            "⏎ send · Tab subject/body · Esc cancel",
            theme.dim(),
        )),
    });
    let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let rect = area.centered(Constraint::Length(width), Constraint::Length(height));
    f.render_widget(Clear, rect);
    let what = if compose.thread_id.is_some() {
        "Reply to"
    } else {
        "Message to"
    };
    let block = Block::bordered()
        .title(format!(" {what} {} · from operator ", compose.to_name))
        .title_style(theme.title())
        .padding(ratatui::widgets::Padding::horizontal(1));
    f.render_widget(Paragraph::new(lines).block(block), rect);
}

fn draw_confirm(dialog: &Confirm, f: &mut Frame, area: Rect, theme: &Theme) {
    let width = 64.min(area.width.saturating_sub(2));
    // borders and padding take 4 columns; the message wraps, then a blank row and the buttons
    let text_width = width.saturating_sub(4).max(1) as usize;
    let message_rows = dialog.message.chars().count().div_ceil(text_width) as u16;
    let height = (message_rows + 4).min(area.height.saturating_sub(2));
    let rect = area.centered(Constraint::Length(width), Constraint::Length(height));
    f.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(format!(" {} ", dialog.title))
        .title_style(theme.bad())
        .padding(ratatui::widgets::Padding::horizontal(1));
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let [msg, buttons] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(inner);
    f.render_widget(
        Paragraph::new(dialog.message.clone()).wrap(Wrap { trim: true }),
        msg,
    );
    let button = |label: &str, focused: bool| {
        if focused {
            Span::styled(format!("> {label} <"), theme.selected())
        } else {
            Span::raw(format!("  {label}  "))
        }
    };
    let line = Line::from(vec![
        button("No", !dialog.yes_focused),
        Span::raw("   "),
        button("Yes", dialog.yes_focused),
        Span::styled("   y yes · n no", theme.dim()),
    ])
    .centered();
    f.render_widget(Paragraph::new(line), buttons);
}

#[cfg(test)]
mod tests;
