//! The Reservations section of the Work view: file reservations by project, with the holder, the
//! path or glob, exclusive or shared, and the time left. `x` force-releases the selected one after
//! a confirmation that defaults to No.
//!
//! List-then-watch as for locks: a listing tagged with the event id it reflects, then
//! `koor.reservation.*` events newer than that, merged by fence (a reservation's fence is the id
//! of the event that granted it). A grant event carries no expiry, so the list is read again on
//! the next tick.

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::Holder;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use super::{holder_of, left_ms, left_text, str_of};
use crate::component::{Confirm, Ctx, Cursor, FilterInput, Handled, Pager, list_key};
use crate::format;
use crate::msg::Command;
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// How long an ended grant is remembered, so a listing already in flight cannot bring it back.
const ENDED_MS: i64 = 30_000;
/// A reservation with less time left than this shows in the warning style.
const SOON_MS: i64 = 30_000;

/// One reservation as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReservationRow {
    pub id: String,
    pub project: String,
    pub path: String,
    pub exclusive: bool,
    pub holder: Holder,
    pub fence: i64,
    pub reason: String,
    pub created_at: String,
    /// Empty while unknown (shown from an event).
    pub expires_at: String,
}

impl ReservationRow {
    pub fn from_value(v: &Value) -> Option<ReservationRow> {
        let id = str_of(v, "id");
        if id.is_empty() {
            return None;
        }
        Some(ReservationRow {
            id,
            project: str_of(v, "project"),
            path: str_of(v, "path"),
            exclusive: v.get("exclusive").and_then(Value::as_bool).unwrap_or(true),
            holder: v.get("holder").and_then(holder_of).unwrap_or_default(),
            fence: v.get("fence").and_then(Value::as_i64).unwrap_or(0),
            reason: str_of(v, "reason"),
            created_at: str_of(v, "created_at"),
            expires_at: str_of(v, "expires_at"),
        })
    }

    /// The `reservations` array of a listing.
    pub fn list(v: &Value) -> Vec<ReservationRow> {
        v.get("reservations")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(ReservationRow::from_value).collect())
            .unwrap_or_default()
    }

    fn mode(&self) -> &'static str {
        if self.exclusive { "excl" } else { "shared" }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReservationsSection {
    /// Current reservations, by project then path.
    pub list: Vec<ReservationRow>,
    pub cursor: Cursor<String>,
    pub filter: FilterInput,
    pub detail: Option<(String, Pager)>,
    /// A grant was shown from an event (no expiry yet): read the list on the next tick.
    pub dirty: bool,
    /// Grants known to have ended: `(id, fence, when)`.
    ended: Vec<(String, i64, i64)>,
}

impl ReservationsSection {
    fn has_ended(&self, id: &str, fence: i64) -> bool {
        self.ended.iter().any(|(i, f, _)| i == id && *f >= fence)
    }

    fn sort(&mut self) {
        self.list
            .sort_by(|a, b| (&a.project, &a.path, &a.id).cmp(&(&b.project, &b.path, &b.id)));
    }

    pub fn upsert(&mut self, r: ReservationRow) {
        if self.has_ended(&r.id, r.fence) {
            return;
        }
        match self.list.iter_mut().find(|o| o.id == r.id) {
            Some(old) if old.fence > r.fence => {}
            Some(old) => {
                let expires = if r.expires_at.is_empty() {
                    old.expires_at.clone()
                } else {
                    r.expires_at.clone()
                };
                *old = ReservationRow {
                    expires_at: expires,
                    ..r
                };
            }
            None => {
                self.list.push(r);
                self.sort();
            }
        }
    }

    /// A listing reflecting every event up to `as_of`; grants newer than that stay.
    pub fn set_list(&mut self, list: Vec<ReservationRow>, as_of: i64, now_ms: i64) {
        self.ended.retain(|(_, _, at)| now_ms - at < ENDED_MS);
        let newer: Vec<ReservationRow> = self
            .list
            .iter()
            .filter(|r| r.fence > as_of)
            .cloned()
            .collect();
        self.list = Vec::new();
        for r in list.into_iter().chain(newer) {
            self.upsert(r);
        }
        self.sort();
    }

    /// The grant `fence` of reservation `id` is over (an event, or our own force-release).
    pub fn ended(&mut self, id: &str, fence: Option<i64>, now_ms: i64) {
        let fence = fence.or_else(|| self.list.iter().find(|r| r.id == id).map(|r| r.fence));
        let Some(fence) = fence else {
            return;
        };
        self.list.retain(|r| !(r.id == id && r.fence <= fence));
        self.ended.push((id.to_owned(), fence, now_ms));
        if self.detail.as_ref().is_some_and(|(d, _)| d == id)
            && !self.list.iter().any(|r| r.id == id)
        {
            self.detail = None;
        }
    }

    /// A `koor.reservation.*` event.
    pub fn on_event(&mut self, kind: &str, data: &Value, now_ms: i64) {
        let Some(row) = ReservationRow::from_value(data) else {
            return;
        };
        match kind {
            "granted" => {
                self.upsert(row);
                self.dirty = true;
            }
            "released" | "expired" => {
                let fence = data.get("fence").and_then(Value::as_i64);
                self.ended(&row.id, fence, now_ms);
            }
            _ => {}
        }
    }

    pub fn visible(&self) -> Vec<&ReservationRow> {
        let terms = self.filter.terms();
        self.list
            .iter()
            .filter(|r| {
                terms.is_empty()
                    || terms.iter().any(|t| {
                        [&r.project, &r.path, &r.holder.name, &r.holder.id, &r.reason]
                            .iter()
                            .any(|f| f.to_lowercase().contains(t.as_str()))
                    })
            })
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.visible().iter().map(|r| r.id.clone()).collect()
    }

    pub fn selected(&self) -> Option<&ReservationRow> {
        let visible = self.visible();
        let ids: Vec<String> = visible.iter().map(|r| r.id.clone()).collect();
        self.cursor.resolve(&ids).map(|p| visible[p])
    }

    pub fn detail_text(&self, now_ms: i64) -> Option<String> {
        let (id, _) = self.detail.as_ref()?;
        let r = self.list.iter().find(|r| &r.id == id)?;
        let expires = if r.expires_at.is_empty() {
            "…".to_owned()
        } else {
            format!(
                "{} ({} left)",
                r.expires_at,
                left_text(&r.expires_at, now_ms)
            )
        };
        Some(format!(
            "id         {}\nproject    {}\npath       {}\nmode       {}\nholder     {}\nholder id  {}\nreason     {}\nfence      {}\ncreated    {}\nexpires    {}\n",
            r.id,
            r.project,
            r.path,
            if r.exclusive { "exclusive" } else { "shared" },
            r.holder.name,
            r.holder.id,
            r.reason,
            r.fence,
            r.created_at,
            expires,
        ))
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        let is_release = matches!(key.code, KeyCode::Char('x') | KeyCode::Delete);
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
            is_release,
        ) {
            return handled;
        }
        match key.code {
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Enter => {
                if let Some(r) = self.selected() {
                    self.detail = Some((r.id.clone(), Pager::default()));
                }
            }
            KeyCode::Char('x') | KeyCode::Delete => {
                let target = match &self.detail {
                    Some((id, _)) => self.list.iter().find(|r| &r.id == id),
                    None => self.selected(),
                };
                if ctx.readonly {
                    ctx.error("read-only mode: releasing reservations is off");
                } else if let Some(r) = target {
                    ctx.confirm = Some(Confirm::new(
                        "Force-release reservation",
                        format!(
                            "Release {} {} in {} held by {} ({}, {} left)? The holder is not asked.",
                            r.mode(),
                            r.path,
                            r.project,
                            r.holder.name,
                            format::short_id(&r.holder.id),
                            left_text(&r.expires_at, ctx.now_ms),
                        ),
                        Command::ForceReleaseReservation {
                            id: r.id.clone(),
                            fence: r.fence,
                            path: r.path.clone(),
                        },
                    ));
                } else {
                    ctx.info("no reservation selected");
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        super::section_keys(("x", "force-release"), &[], readonly, self.detail.is_some())
    }

    pub fn label(&self) -> String {
        format!("Reservations {}", self.list.len())
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
            draw_pager(
                f,
                area,
                theme,
                " Reservation · Esc back ".into(),
                &text,
                &pager,
            );
            return;
        }
        let rows = self.visible();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        title.extend(filter_title(&self.filter, theme));
        let wide = area.width >= 76;
        let cols = vec![
            ("PROJECT", Constraint::Length(if wide { 12 } else { 8 })),
            ("PATH", Constraint::Fill(1)),
            ("MODE", Constraint::Length(6)),
            ("HOLDER", Constraint::Length(if wide { 14 } else { 10 })),
            ("LEFT", Constraint::Length(7)),
        ];
        let row = |i: usize| {
            let r = rows[i];
            let style = match left_ms(&r.expires_at, now_ms) {
                Some(ms) if ms <= 0 => theme.bad(),
                Some(ms) if ms < SOON_MS => theme.warn(),
                Some(_) => theme.good(),
                None => theme.dim(),
            };
            let mode = if r.exclusive {
                Span::styled(r.mode(), theme.accent())
            } else {
                Span::styled(r.mode(), theme.dim())
            };
            Row::new(vec![
                Cell::from(r.project.clone()),
                Cell::from(r.path.clone()),
                Cell::from(mode),
                Cell::from(r.holder.name.clone()),
                Cell::from(Span::styled(left_text(&r.expires_at, now_ms), style)),
            ])
        };
        let empty = if self.list.is_empty() {
            "no reservations held"
        } else {
            "no reservation matches the filter"
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

    fn res(id: &str, path: &str, fence: i64) -> Value {
        json!({"id": id, "project": "web", "path": path, "exclusive": true,
               "holder": {"id": "i1", "name": "claude"}, "fence": fence, "reason": "auth rework",
               "created_at": "2026-02-09T14:30:00Z", "expires_at": "2026-02-09T14:35:00Z"})
    }

    #[test]
    fn a_listing_and_events_merge_by_fence() {
        let mut s = ReservationsSection::default();
        let listing = json!({"reservations": [res("r2", "src/b/**", 4), res("r1", "src/a/**", 3)]});
        s.set_list(ReservationRow::list(&listing), 10, 0);
        let paths: Vec<&str> = s.list.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["src/a/**", "src/b/**"]);

        // r3 granted (event 11: no expiry yet), r1 released (event 12)
        let mut granted = res("r3", "README.md", 11);
        granted
            .as_object_mut()
            .expect("object")
            .remove("expires_at");
        s.on_event("granted", &granted, 1);
        assert!(s.dirty);
        s.on_event("released", &res("r1", "src/a/**", 3), 2);
        // a listing read before both arrives late: r1 stays gone, r3 stays
        s.set_list(ReservationRow::list(&listing), 10, 3);
        let ids: Vec<&str> = s.list.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2"]);
        assert!(s.list[0].expires_at.is_empty());
        // a later listing brings r3's expiry
        let later = json!({"reservations": [res("r2", "src/b/**", 4), res("r3", "README.md", 11)]});
        s.set_list(ReservationRow::list(&later), 12, 4);
        assert_eq!(s.list[0].expires_at, "2026-02-09T14:35:00Z");
    }
}
