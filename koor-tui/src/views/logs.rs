//! The Logs view: the server's own log stream at a chosen level (`l` cycles it), with follow,
//! pause and a `/` text filter.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::LogRecord;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use crate::component::{
    Ctx, Cursor, FilterInput, Handled, Pager, detail_key, follow_to_end, nav_key, stream_nav,
};
use crate::format;
use crate::msg::{Command, Level};
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// Log records kept in memory.
pub const CAPACITY: usize = 2000;

#[derive(Debug, Clone)]
pub struct LogsView {
    /// Records with a local sequence number (records carry no id).
    pub buf: VecDeque<(u64, LogRecord)>,
    pub seq: u64,
    pub level: Level,
    pub cursor: Cursor<u64>,
    pub follow: bool,
    pub paused_at: Option<u64>,
    pub filter: FilterInput,
    /// Why the stream is down, when it is.
    pub down: Option<String>,
    pub detail: Option<(u64, Pager)>,
}

impl Default for LogsView {
    fn default() -> Self {
        Self {
            buf: VecDeque::new(),
            seq: 0,
            level: Level::Info,
            cursor: Cursor::default(),
            follow: true,
            paused_at: None,
            filter: FilterInput::default(),
            down: None,
            detail: None,
        }
    }
}

/// `key=value` pairs of a record's fields.
pub fn fields(r: &LogRecord) -> String {
    r.fields
        .iter()
        .map(|(k, v)| format!("{k}={}", format::compact_json(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl LogsView {
    pub fn push(&mut self, r: LogRecord) {
        self.seq += 1;
        if self.buf.len() == CAPACITY {
            self.buf.pop_front();
        }
        self.buf.push_back((self.seq, r));
    }

    /// A fresh snapshot replaces what is shown.
    pub fn replace(&mut self, records: Vec<LogRecord>) {
        self.buf.clear();
        self.paused_at = None;
        self.detail = None;
        self.down = None;
        for r in records {
            self.push(r);
        }
    }

    pub fn visible(&self) -> Vec<&(u64, LogRecord)> {
        let terms = self.filter.terms();
        self.buf
            .iter()
            .filter(|(s, _)| self.paused_at.is_none_or(|p| *s <= p))
            .filter(|(_, r)| {
                terms.is_empty() || {
                    let line = format!("{} {} {} {}", r.level, r.target, r.message, fields(r))
                        .to_lowercase();
                    terms.iter().any(|t| line.contains(t.as_str()))
                }
            })
            .collect()
    }

    fn ids(&self) -> Vec<u64> {
        self.visible().iter().map(|(s, _)| *s).collect()
    }

    fn follow_to_end(&mut self, page: usize) {
        let ids = self.ids();
        follow_to_end(&mut self.cursor, self.follow, &ids, page);
    }

    pub fn detail_text(&self) -> Option<String> {
        let (seq, _) = self.detail.as_ref()?;
        let (_, r) = self.buf.iter().find(|(s, _)| s == seq)?;
        Some(serde_json::to_string_pretty(r).unwrap_or_default())
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
                self.paused_at = match self.paused_at {
                    Some(_) => None,
                    None => Some(self.seq),
                };
                self.follow_to_end(ctx.page);
            }
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                self.follow_to_end(ctx.page);
            }
            KeyCode::Char('l') => {
                self.level = self.level.next();
                self.buf.clear();
                self.cursor = Cursor::default();
                ctx.commands.push(Command::SetLogLevel(self.level));
                ctx.info(format!("log level: {} and above", self.level.as_str()));
            }
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Char('c') => {
                self.buf.clear();
                self.cursor = Cursor::default();
            }
            KeyCode::Enter => {
                let ids = self.ids();
                let pos = if self.follow {
                    ids.len().checked_sub(1)
                } else {
                    self.cursor.resolve(&ids)
                };
                if let Some(p) = pos {
                    self.detail = Some((ids[p], Pager::default()));
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self) -> Vec<KeyHelp> {
        if self.detail.is_some() {
            return vec![("j/k", "scroll"), ("Esc", "back")];
        }
        vec![
            ("j/k", "move"),
            ("⏎", "detail"),
            ("/", "filter"),
            ("l", "level"),
            (
                "space",
                if self.paused_at.is_some() {
                    "resume"
                } else {
                    "pause"
                },
            ),
            ("f", "follow"),
            ("c", "clear"),
        ]
    }

    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool) {
        if let Some(text) = self.detail_text() {
            let pager = self
                .detail
                .as_ref()
                .map(|d| d.1.clone())
                .unwrap_or_default();
            draw_pager(
                f,
                area,
                theme,
                " Log record · Esc back ".into(),
                &text,
                &pager,
            );
            return;
        }
        let rows = self.visible();
        let ids: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
        let selected = if self.follow {
            ids.len().checked_sub(1)
        } else {
            self.cursor.resolve(&ids)
        };
        let state = if self.paused_at.is_some() {
            "paused"
        } else if self.follow {
            "following"
        } else {
            "scrolled"
        };
        let mut title = Line::from(vec![Span::raw(format!(
            " Logs · {}+ · {} ",
            self.level.as_str(),
            state
        ))]);
        if let Some(why) = &self.down {
            title.spans.push(Span::styled(
                format!("· unavailable: {} ", format::truncate(why, 60)),
                theme.bad(),
            ));
        }
        title.spans.extend(filter_title(&self.filter, theme));
        let wide = area.width >= 100;
        let mut cols = vec![
            ("TIME", Constraint::Length(8)),
            ("LEVEL", Constraint::Length(5)),
        ];
        if wide {
            cols.push(("TARGET", Constraint::Length(18)));
        }
        cols.push(("MESSAGE", Constraint::Fill(1)));
        let row = |i: usize| {
            let (_, r) = rows[i];
            let mut cells = vec![
                Cell::from(format::clock(&r.time).to_owned()),
                Cell::from(Span::styled(r.level.to_uppercase(), theme.level(&r.level))),
            ];
            if wide {
                let target = r.target.strip_prefix("koor_server::").unwrap_or(&r.target);
                cells.push(Cell::from(target.to_owned()));
            }
            let fields = fields(r);
            let msg = if fields.is_empty() {
                r.message.clone()
            } else {
                format!("{}  {}", r.message, format::truncate(&fields, 300))
            };
            cells.push(Cell::from(msg));
            Row::new(cells)
        };
        let empty = match &self.down {
            Some(_) => "log stream unavailable; retrying",
            None if self.buf.is_empty() => "no log records yet",
            None => "no record matches the filter",
        };
        draw_table(
            f,
            area,
            theme,
            title,
            &cols,
            rows.len(),
            selected,
            focused,
            self.cursor.offset,
            row,
            empty,
        );
    }
}
