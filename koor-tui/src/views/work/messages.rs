//! The Messages section of the Work view: recent messages between instances, newest first, with
//! the time, `from → to`, the subject and the receipts (READ: `✓` every recipient read it, `1/2`
//! some did, `·` none; ACK for messages sent with `ack_required`: `✓` acked by all, `!` waiting).
//! `m` answers the selected message's sender in its thread (the compose prompt).
//!
//! Messages never disappear, so a listing and `koor.message.sent` events merge as a union by id;
//! receipts change without an event, so the list is read again every few seconds while shown.

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::Holder;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use super::{holder_of, str_of};
use crate::component::{Ctx, Cursor, FilterInput, Handled, Pager, list_key};
use crate::compose::Compose;
use crate::format;
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// Messages kept (the newest).
pub const KEEP: usize = 200;

/// One recipient of a message and its receipts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    pub id: String,
    pub name: String,
    pub read_at: Option<String>,
    pub acked_at: Option<String>,
}

/// One message as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageRow {
    pub id: i64,
    pub thread_id: i64,
    pub from: Holder,
    pub to: Vec<Receipt>,
    pub subject: String,
    pub ack_required: bool,
    pub created_at: String,
    /// The body for reading (pretty JSON, or the text of a string); empty when unknown or none.
    pub body: String,
}

impl MessageRow {
    /// A message of `GET /api/messages`, or the data of a `koor.message.sent` event (which
    /// carries no body and no receipts).
    pub fn from_value(v: &Value) -> Option<MessageRow> {
        let id = v.get("id").and_then(Value::as_i64)?;
        let opt = |r: &Value, name: &str| {
            r.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let to = v
            .get("to")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| Receipt {
                        id: str_of(r, "id"),
                        name: str_of(r, "name"),
                        read_at: opt(r, "read_at"),
                        acked_at: opt(r, "acked_at"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = match v.get("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        Some(MessageRow {
            id,
            thread_id: v.get("thread_id").and_then(Value::as_i64).unwrap_or(id),
            from: v.get("from").and_then(holder_of).unwrap_or_default(),
            to,
            subject: str_of(v, "subject"),
            ack_required: v
                .get("ack_required")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            created_at: str_of(v, "created_at"),
            body,
        })
    }

    /// The `messages` array of a listing.
    pub fn list(v: &Value) -> Vec<MessageRow> {
        v.get("messages")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(MessageRow::from_value).collect())
            .unwrap_or_default()
    }

    /// `claude → cursor, kilo`.
    pub fn route(&self) -> String {
        let to: Vec<&str> = self.to.iter().map(|r| r.name.as_str()).collect();
        format!("{} → {}", self.from.name, to.join(", "))
    }

    /// READ: `✓` all read, `n/m` some, `·` none.
    pub fn read_mark(&self) -> String {
        let read = self.to.iter().filter(|r| r.read_at.is_some()).count();
        match (read, self.to.len()) {
            (_, 0) => String::new(),
            (r, n) if r == n => "✓".into(),
            (0, _) => "·".into(),
            (r, n) => format!("{r}/{n}"),
        }
    }

    /// ACK: empty when no ack was asked for, `✓` when all acked, else `!`.
    pub fn ack_mark(&self) -> &'static str {
        if !self.ack_required {
            ""
        } else if !self.to.is_empty() && self.to.iter().all(|r| r.acked_at.is_some()) {
            "✓"
        } else {
            "!"
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MessagesSection {
    /// Newest first.
    pub list: Vec<MessageRow>,
    pub cursor: Cursor<i64>,
    pub filter: FilterInput,
    pub detail: Option<(i64, Pager)>,
}

impl MessagesSection {
    /// Puts `m` in (a listing's copy replaces an event's, which has no body or receipts).
    pub fn upsert(&mut self, m: MessageRow) {
        match self.list.iter_mut().find(|o| o.id == m.id) {
            Some(old) => {
                let body = if m.body.is_empty() {
                    std::mem::take(&mut old.body)
                } else {
                    m.body.clone()
                };
                let created = if m.created_at.is_empty() {
                    std::mem::take(&mut old.created_at)
                } else {
                    m.created_at.clone()
                };
                *old = MessageRow {
                    body,
                    created_at: created,
                    ..m
                };
            }
            None => {
                self.list.push(m);
                self.list.sort_by_key(|m| std::cmp::Reverse(m.id));
                self.list.truncate(KEEP);
            }
        }
    }

    pub fn set_list(&mut self, list: Vec<MessageRow>) {
        for m in list {
            self.upsert(m);
        }
    }

    /// `koor.message.sent`, at the event's time.
    pub fn on_event(&mut self, data: &Value, created_at: &str) {
        if let Some(mut m) = MessageRow::from_value(data) {
            if m.created_at.is_empty() {
                m.created_at = created_at.to_owned();
            }
            if !self.list.iter().any(|o| o.id == m.id) {
                self.upsert(m);
            }
        }
    }

    pub fn visible(&self) -> Vec<&MessageRow> {
        let terms = self.filter.terms();
        self.list
            .iter()
            .filter(|m| {
                terms.is_empty()
                    || terms.iter().any(|t| {
                        [m.route(), m.subject.clone(), m.from.id.clone()]
                            .iter()
                            .any(|f| f.to_lowercase().contains(t.as_str()))
                    })
            })
            .collect()
    }

    fn ids(&self) -> Vec<i64> {
        self.visible().iter().map(|m| m.id).collect()
    }

    pub fn selected(&self) -> Option<&MessageRow> {
        let visible = self.visible();
        let ids: Vec<i64> = visible.iter().map(|m| m.id).collect();
        self.cursor.resolve(&ids).map(|p| visible[p])
    }

    pub fn detail_text(&self, now_ms: i64) -> Option<String> {
        let (id, _) = self.detail.as_ref()?;
        let m = self.list.iter().find(|m| m.id == *id)?;
        let mut out = format!(
            "id        {}\nthread    {}\nfrom      {} ({})\nsent      {} ({} ago)\nsubject   {}\nack       {}\n",
            m.id,
            m.thread_id,
            m.from.name,
            format::short_id(&m.from.id),
            m.created_at,
            format::age(&m.created_at, now_ms),
            m.subject,
            if m.ack_required {
                "asked for"
            } else {
                "not asked"
            },
        );
        for r in &m.to {
            out.push_str(&format!(
                "to        {} ({}): {}{}\n",
                r.name,
                format::short_id(&r.id),
                r.read_at
                    .as_deref()
                    .map_or("unread".to_owned(), |t| format!("read {t}")),
                r.acked_at
                    .as_deref()
                    .map_or(String::new(), |t| format!(", acked {t}")),
            ));
        }
        out.push('\n');
        out.push_str(if m.body.is_empty() {
            "(no body)"
        } else {
            &m.body
        });
        out.push('\n');
        Some(out)
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        let is_reply = matches!(key.code, KeyCode::Char('m'));
        let lines = match &self.detail {
            Some(_) => self
                .detail_text(ctx.now_ms)
                .map_or(0, |t| t.lines().count()),
            None => 0,
        };
        let ids = self.ids();
        if let Some(handled) = list_key(
            &mut self.filter,
            &mut self.detail,
            &mut self.cursor,
            &ids,
            lines,
            key,
            ctx.page,
            is_reply,
        ) {
            return handled;
        }
        match key.code {
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Enter => {
                if let Some(m) = self.selected() {
                    self.detail = Some((m.id, Pager::default()));
                }
            }
            KeyCode::Char('m') => {
                let target = match &self.detail {
                    Some((id, _)) => self.list.iter().find(|m| m.id == *id),
                    None => self.selected(),
                };
                if ctx.readonly {
                    ctx.error("read-only mode: sending messages is off");
                } else if let Some(m) = target {
                    ctx.compose = Some(Compose::reply(
                        m.from.id.clone(),
                        m.from.name.clone(),
                        m.thread_id,
                        &m.subject,
                    ));
                } else {
                    ctx.info("no message selected");
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        super::section_keys(("m", "reply"), &[], readonly, self.detail.is_some())
    }

    pub fn label(&self) -> String {
        format!("Messages {}", self.list.len())
    }

    pub fn render(
        &self,
        f: &mut Frame,
        area: Rect,
        theme: &Theme,
        focused: bool,
        now_ms: i64,
        mut title: Vec<Span<'static>>,
    ) {
        if let Some(text) = self.detail_text(now_ms) {
            let pager = self
                .detail
                .as_ref()
                .map(|d| d.1.clone())
                .unwrap_or_default();
            draw_pager(f, area, theme, " Message · Esc back ".into(), &text, &pager);
            return;
        }
        let rows = self.visible();
        let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
        title.extend(filter_title(&self.filter, theme));
        let cols = vec![
            ("TIME", Constraint::Length(8)),
            ("FROM → TO", Constraint::Fill(2)),
            ("SUBJECT", Constraint::Fill(3)),
            ("READ", Constraint::Length(4)),
            ("ACK", Constraint::Length(3)),
        ];
        let row = |i: usize| {
            let m = rows[i];
            let read = m.read_mark();
            let read_style = if read == "✓" {
                theme.good()
            } else {
                theme.warn()
            };
            let ack = m.ack_mark();
            let ack_style = if ack == "✓" {
                theme.good()
            } else {
                theme.bad()
            };
            Row::new(vec![
                Cell::from(Span::styled(
                    format::clock(&m.created_at).to_owned(),
                    theme.dim(),
                )),
                Cell::from(m.route()),
                Cell::from(m.subject.clone()),
                Cell::from(Span::styled(read, read_style)),
                Cell::from(Span::styled(ack, ack_style)),
            ])
        };
        let empty = if self.list.is_empty() {
            "no messages yet"
        } else {
            "no message matches the filter"
        };
        draw_table(
            f,
            area,
            theme,
            Line::from(title),
            &cols,
            rows.len(),
            self.cursor.resolve(&ids),
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
    use serde_json::json;

    #[test]
    fn listing_and_events_merge_and_receipts_read_as_marks() {
        let mut s = MessagesSection::default();
        s.on_event(
            &json!({"id": 2, "thread_id": 1, "from": {"id": "b", "name": "cursor"},
                    "to": [{"id": "a", "name": "claude"}], "subject": "Re: schema?",
                    "ack_required": true}),
            "2026-02-09T14:31:00Z",
        );
        assert_eq!(s.list[0].read_mark(), "·");
        assert_eq!(s.list[0].ack_mark(), "!");
        assert_eq!(s.list[0].route(), "cursor → claude");
        let listing = json!({"messages": [
            {"id": 1, "thread_id": 1, "from": {"id": "a", "name": "claude"},
             "to": [{"id": "b", "name": "cursor", "read_at": "2026-02-09T14:30:30Z"},
                    {"id": "c", "name": "kilo", "read_at": null}],
             "subject": "schema?", "body": "which table?", "created_at": "2026-02-09T14:30:00Z"},
            {"id": 2, "thread_id": 1, "from": {"id": "b", "name": "cursor"},
             "to": [{"id": "a", "name": "claude", "read_at": "2026-02-09T14:31:05Z",
                     "acked_at": "2026-02-09T14:31:05Z"}],
             "subject": "Re: schema?", "body": {"table": "users"}, "ack_required": true,
             "created_at": "2026-02-09T14:31:00Z"}
        ]});
        s.set_list(MessageRow::list(&listing));
        let ids: Vec<i64> = s.list.iter().map(|m| m.id).collect();
        assert_eq!(ids, [2, 1], "newest first");
        assert_eq!(
            (s.list[0].read_mark().as_str(), s.list[0].ack_mark()),
            ("✓", "✓")
        );
        assert_eq!(s.list[1].read_mark(), "1/2");
        assert!(s.list[0].body.contains("\"users\""));
        // an event for a message already listed changes nothing
        s.on_event(
            &json!({"id": 1, "thread_id": 1, "from": {"id": "a", "name": "claude"}, "to": []}),
            "t",
        );
        assert_eq!(s.list[1].to.len(), 2);
    }
}
