//! The Events view: the live stream (`*` and `koor.**`), newest at the bottom, with follow mode,
//! pause, a `/` filter and the selected event's JSON.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::topic::{Pattern, is_system_topic};
use koor_shared::types::Event;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use crate::component::{
    Ctx, Cursor, FilterInput, Handled, Pager, detail_key, follow_to_end, nav_key, stream_nav,
};
use crate::format;
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// Events kept in memory; older ones drop off the front.
pub const CAPACITY: usize = 5000;

#[derive(Debug, Clone)]
pub struct EventsView {
    pub buf: VecDeque<Event>,
    /// Events received this session (not bounded).
    pub total: u64,
    pub cursor: Cursor<i64>,
    /// The selection sticks to the newest event.
    pub follow: bool,
    /// While paused, only events up to this id show; newer ones wait (nothing is dropped).
    pub paused_at: Option<i64>,
    pub show_system: bool,
    pub filter: FilterInput,
    /// The selected event's JSON is open.
    pub detail: Option<(i64, Pager)>,
}

impl Default for EventsView {
    fn default() -> Self {
        Self {
            buf: VecDeque::new(),
            total: 0,
            cursor: Cursor::default(),
            follow: true,
            paused_at: None,
            show_system: true,
            filter: FilterInput::default(),
            detail: None,
        }
    }
}

/// Whether `ev` passes the filter terms: a term with a wildcard is a topic pattern (`api.*`,
/// `koor.**`), any other term a case-insensitive substring of what its row shows (`#id`, time,
/// topic, source and the DATA column, so `api-contract` finds `koor.state.updated  api-contract v5`).
pub fn matches(terms: &[String], ev: &Event) -> bool {
    if terms.is_empty() {
        return true;
    }
    let mut row: Option<String> = None;
    terms.iter().any(|t| {
        if t.contains(['*', '?', '[']) {
            Pattern::new(t).matches(&ev.topic)
        } else {
            let row = row.get_or_insert_with(|| row_text(ev));
            row.contains(t.as_str())
        }
    })
}

/// The text of an event's row, lower-cased, for the filter.
fn row_text(ev: &Event) -> String {
    format!(
        "#{} {} {} {} {}",
        ev.id,
        format::clock(&ev.created_at),
        ev.topic,
        ev.source,
        summary(ev)
    )
    .to_lowercase()
}

/// The DATA column: for system events a short reading of their small data (`api-contract v2`,
/// `claude-1 stale`), else the data as one-line JSON.
pub fn summary(ev: &Event) -> String {
    let d = &ev.data;
    let s = |name: &str| {
        d.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let v = |name: &str| d.get(name).and_then(serde_json::Value::as_i64);
    let version = v("version").map(|v| format!(" v{v}")).unwrap_or_default();
    match ev.topic.as_str() {
        "koor.state.updated" | "koor.state.deleted" => format!("{}{version}", s("key")),
        "koor.spec.updated" | "koor.spec.deleted" => {
            format!("{}/{}{version}", s("project"), s("name"))
        }
        t if t.starts_with("koor.instance.") => format!(
            "{} {} ({})",
            s("name"),
            s("status"),
            format::short_id(s("id"))
        ),
        _ => format::compact_json(d),
    }
}

impl EventsView {
    pub fn last_id(&self) -> i64 {
        self.buf.back().map_or(0, |e| e.id)
    }

    /// Appends events newer than the last one held (a replay never duplicates).
    pub fn push(&mut self, ev: Event) {
        if ev.id <= self.last_id() {
            return;
        }
        self.total += 1;
        if self.buf.len() == CAPACITY {
            self.buf.pop_front();
        }
        self.buf.push_back(ev);
    }

    /// The events shown, oldest first.
    pub fn visible(&self) -> Vec<&Event> {
        let terms = self.filter.terms();
        self.buf
            .iter()
            .filter(|e| self.paused_at.is_none_or(|p| e.id <= p))
            .filter(|e| self.show_system || !is_system_topic(&e.topic))
            .filter(|e| matches(&terms, e))
            .collect()
    }

    /// Events that arrived while paused.
    pub fn waiting(&self) -> usize {
        match self.paused_at {
            Some(p) => self.buf.iter().rev().take_while(|e| e.id > p).count(),
            None => 0,
        }
    }

    fn ids(&self) -> Vec<i64> {
        self.visible().iter().map(|e| e.id).collect()
    }

    /// The selected event (the newest when following).
    pub fn selected(&self) -> Option<&Event> {
        let visible = self.visible();
        let ids: Vec<i64> = visible.iter().map(|e| e.id).collect();
        let pos = if self.follow {
            ids.len().checked_sub(1)
        } else {
            self.cursor.resolve(&ids)
        };
        pos.map(|p| visible[p])
    }

    pub fn detail_text(&self) -> Option<String> {
        let (id, _) = self.detail.as_ref()?;
        let ev = self.buf.iter().find(|e| e.id == *id)?;
        Some(serde_json::to_string_pretty(ev).unwrap_or_default())
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        if self.filter.editing {
            let h = self.filter.handle_key(key);
            self.follow_to_end(ctx.page);
            return h;
        }
        let lines = self.detail_text().map_or(0, |t| t.lines().count());
        if let Some(handled) = detail_key(&mut self.detail, key, lines, ctx.page) {
            return handled;
        }
        if let Some(nav) = nav_key(key, ctx.page) {
            let ids = self.ids();
            stream_nav(&mut self.cursor, &mut self.follow, &ids, nav, ctx.page);
            return Handled::Consumed;
        }
        match key.code {
            KeyCode::Char(' ') | KeyCode::Char('p') => {
                if self.paused_at.is_some() {
                    self.paused_at = None;
                    ctx.info("resumed");
                } else {
                    self.paused_at = Some(self.last_id());
                    ctx.info("paused: new events wait; space resumes");
                }
                self.follow_to_end(ctx.page);
            }
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                self.follow_to_end(ctx.page);
            }
            KeyCode::Char('s') => {
                self.show_system = !self.show_system;
                self.follow_to_end(ctx.page);
            }
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Char('c') => {
                self.buf.clear();
                self.cursor = Cursor::default();
                ctx.info("cleared");
            }
            KeyCode::Enter => {
                if let Some(ev) = self.selected() {
                    self.detail = Some((ev.id, Pager::default()));
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    /// When following, puts the cursor on the newest event.
    pub fn follow_to_end(&mut self, page: usize) {
        let ids = self.ids();
        follow_to_end(&mut self.cursor, self.follow, &ids, page);
    }

    pub fn keys(&self) -> Vec<KeyHelp> {
        if self.detail.is_some() {
            return vec![("j/k", "scroll"), ("g/G", "top/end"), ("Esc", "back")];
        }
        vec![
            ("j/k", "move"),
            ("⏎", "detail"),
            ("/", "filter"),
            (
                "space",
                if self.paused_at.is_some() {
                    "resume"
                } else {
                    "pause"
                },
            ),
            ("f", "follow"),
            (
                "s",
                if self.show_system {
                    "hide koor.*"
                } else {
                    "show koor.*"
                },
            ),
            ("c", "clear"),
        ]
    }

    pub fn title(&self) -> Line<'static> {
        let mut parts = vec![format!("Events {}", format::count(self.buf.len() as u64))];
        parts.push(if self.paused_at.is_some() {
            format!("paused (+{} waiting)", self.waiting())
        } else if self.follow {
            "following".into()
        } else {
            "scrolled".into()
        });
        if !self.show_system {
            parts.push("koor.* hidden".into());
        }
        Line::from(format!(" {} ", parts.join(" · ")))
    }

    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool) {
        let mut title = self.title();
        title.spans.extend(filter_title(&self.filter, theme));
        if let Some(text) = self.detail_text() {
            let id = self.detail.as_ref().map_or(0, |d| d.0);
            let pager = self
                .detail
                .as_ref()
                .map(|d| &d.1)
                .cloned()
                .unwrap_or_default();
            draw_pager(
                f,
                area,
                theme,
                format!(" Event #{id} · Esc back "),
                &text,
                &pager,
            );
            return;
        }
        let visible = self.visible();
        let ids: Vec<i64> = visible.iter().map(|e| e.id).collect();
        let selected = if self.follow {
            ids.len().checked_sub(1)
        } else {
            self.cursor.resolve(&ids)
        };
        let id_width = format!("#{}", self.last_id()).len().max(3) as u16;
        let wide = area.width >= 90;
        let topic_width: u16 = if wide { 28 } else { 20 };
        const SOURCE_WIDTH: u16 = 12;
        let mut cols = vec![
            ("#", Constraint::Length(id_width)),
            ("TIME", Constraint::Length(8)),
            ("TOPIC", Constraint::Length(topic_width)),
        ];
        if wide {
            cols.push(("SOURCE", Constraint::Length(SOURCE_WIDTH)));
        }
        cols.push(("DATA", Constraint::Fill(1)));
        let row = |i: usize| {
            let e = visible[i];
            let topic_style = if is_system_topic(&e.topic) {
                theme.dim()
            } else {
                theme.accent()
            };
            let mut cells = vec![
                Cell::from(format!("#{}", e.id)),
                Cell::from(format::clock(&e.created_at).to_owned()),
                // a cut topic ends in … so it is not mistaken for a shorter one
                Cell::from(Span::styled(
                    format::truncate(&e.topic, topic_width as usize),
                    topic_style,
                )),
            ];
            if wide {
                cells.push(Cell::from(format::truncate(
                    &e.source,
                    SOURCE_WIDTH as usize,
                )));
            }
            cells.push(Cell::from(format::truncate(&summary(e), 200)));
            Row::new(cells)
        };
        let empty = if self.buf.is_empty() {
            "no events yet: waiting for the stream"
        } else {
            "no event matches the filter"
        };
        draw_table(
            f,
            area,
            theme,
            title,
            &cols,
            visible.len(),
            selected,
            focused,
            self.cursor.offset,
            row,
            empty,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn ev(id: i64, topic: &str) -> Event {
        Event {
            id,
            topic: topic.into(),
            data: serde_json::json!({"n": id}).into(),
            source: "test".into(),
            created_at: "2026-02-09T14:30:00Z".into(),
        }
    }

    #[test]
    fn filter_terms() {
        let t = |s: &str| vec![s.to_owned()];
        assert!(matches(&t("api.*"), &ev(1, "api.change")));
        assert!(!matches(&t("api.*"), &ev(1, "api.change.contract")));
        assert!(matches(&t("koor.**"), &ev(1, "koor.state.updated")));
        assert!(matches(&t("chan"), &ev(1, "api.change")));
        assert!(matches(&t("test"), &ev(1, "x")), "source matches too");
        assert!(!matches(&t("zzz"), &ev(1, "api.change")));
        assert!(matches(&t("\"n\":7"), &ev(7, "x")), "the data too");
        assert!(matches(&t("#7"), &ev(7, "x")), "the id");
        let mut state = ev(8, "koor.state.updated");
        state.data = serde_json::json!({"key": "api-contract", "version": 5}).into();
        assert!(
            matches(&t("api-contract"), &state),
            "what the DATA column shows"
        );
        assert!(matches(&t("contract v5"), &state));
    }

    #[test]
    fn bounded_and_deduplicated() {
        let mut v = EventsView::default();
        for id in 1..=(CAPACITY as i64 + 10) {
            v.push(ev(id, "a"));
        }
        v.push(ev(3, "a"));
        assert_eq!(v.buf.len(), CAPACITY);
        assert_eq!(v.buf.front().map(|e| e.id), Some(11));
        assert_eq!(v.total, CAPACITY as u64 + 10);
    }
}
