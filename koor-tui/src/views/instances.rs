//! The Instances view: registered agents with a status symbol and colour, intent and a ticking
//! last-seen age; stale ones sort first (or alone with `s`). `d` deregisters the selected instance
//! and `D` every stale one, each after a confirmation that defaults to No. An instance with
//! unread messages shows `✉N` after its name; `m` writes to the selected one (the compose prompt).

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::Instance;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use crate::component::{Confirm, Ctx, Cursor, FilterInput, Handled, Pager, nav_key};
use crate::format;
use crate::msg::Command;
use crate::theme::{Theme, status_symbol};
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// How long a deregistered id is kept out of listings that were already in flight.
const GONE_MS: i64 = 15_000;
/// How long a status change stays highlighted.
const CHANGED_MS: i64 = 3000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstRow {
    pub inst: Instance,
    pub changed_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct InstancesView {
    pub list: Vec<InstRow>,
    pub cursor: Cursor<String>,
    pub filter: FilterInput,
    pub stale_only: bool,
    /// The selected instance's fields are open (by id).
    pub detail: Option<(String, Pager)>,
    /// (ext) Unread messages per instance id (only inboxes that have some).
    pub unread: std::collections::BTreeMap<String, i64>,
    /// Recently deregistered ids, with when.
    gone: Vec<(String, i64)>,
}

fn rank(status: &str) -> u8 {
    match status {
        "stale" => 0,
        "pending" => 1,
        "active" => 2,
        _ => 3,
    }
}

impl InstancesView {
    fn sort(&mut self) {
        self.list.sort_by(|a, b| {
            (rank(&a.inst.status), &a.inst.name, &a.inst.id).cmp(&(
                rank(&b.inst.status),
                &b.inst.name,
                &b.inst.id,
            ))
        });
    }

    /// Replaces the list with a fresh listing.
    pub fn set_list(&mut self, list: Vec<Instance>, now_ms: i64) {
        self.gone.retain(|(_, at)| now_ms - at < GONE_MS);
        let first = self.list.is_empty();
        let rows = list
            .into_iter()
            .filter(|i| !self.gone.iter().any(|(id, _)| *id == i.id))
            .map(|inst| {
                let old = self.list.iter().find(|r| r.inst.id == inst.id);
                let changed_at = match old {
                    Some(o) if o.inst.status == inst.status => o.changed_at,
                    _ if first => None,
                    _ => Some(now_ms),
                };
                InstRow { inst, changed_at }
            })
            .collect();
        self.list = rows;
        self.sort();
    }

    /// One instance fetched after an event.
    pub fn upsert(&mut self, inst: Instance, now_ms: i64) {
        if self.gone.iter().any(|(id, _)| *id == inst.id) {
            return;
        }
        match self.list.iter_mut().find(|r| r.inst.id == inst.id) {
            Some(r) => {
                if r.inst.status != inst.status {
                    r.changed_at = Some(now_ms);
                }
                r.inst = inst;
            }
            None => self.list.push(InstRow {
                inst,
                changed_at: Some(now_ms),
            }),
        }
        self.sort();
    }

    /// A `koor.instance.*` event: the status (and last-seen time when known) changes at once;
    /// the rest of the instance follows with a fetch.
    pub fn set_status(
        &mut self,
        id: &str,
        name: &str,
        status: &str,
        last_seen: Option<&str>,
        now_ms: i64,
    ) {
        if self.gone.iter().any(|(g, _)| g == id) {
            return;
        }
        match self.list.iter_mut().find(|r| r.inst.id == id) {
            Some(r) => {
                if r.inst.status != status {
                    r.changed_at = Some(now_ms);
                }
                r.inst.status = status.to_owned();
                if let Some(t) = last_seen {
                    r.inst.last_seen = t.to_owned();
                }
            }
            None => self.list.push(InstRow {
                inst: Instance {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    workspace: String::new(),
                    intent: String::new(),
                    stack: String::new(),
                    capabilities: Vec::new(),
                    status: status.to_owned(),
                    registered_at: last_seen.unwrap_or_default().to_owned(),
                    last_seen: last_seen.unwrap_or_default().to_owned(),
                },
                changed_at: Some(now_ms),
            }),
        }
        self.sort();
    }

    /// A `koor.instance.deregistered` event, or our own deregistration.
    pub fn remove(&mut self, id: &str, now_ms: i64) {
        self.list.retain(|r| r.inst.id != id);
        if !self.gone.iter().any(|(g, _)| g == id) {
            self.gone.push((id.to_owned(), now_ms));
        }
        if self.detail.as_ref().is_some_and(|(d, _)| d == id) {
            self.detail = None;
        }
    }

    pub fn stale(&self) -> Vec<&Instance> {
        self.list
            .iter()
            .map(|r| &r.inst)
            .filter(|i| i.status == "stale")
            .collect()
    }

    pub fn visible(&self) -> Vec<&InstRow> {
        let terms = self.filter.terms();
        self.list
            .iter()
            .filter(|r| !self.stale_only || r.inst.status == "stale")
            .filter(|r| {
                let i = &r.inst;
                terms.is_empty()
                    || terms.iter().any(|t| {
                        [&i.name, &i.workspace, &i.intent, &i.stack, &i.id, &i.status]
                            .iter()
                            .any(|f| f.to_lowercase().contains(t.as_str()))
                    })
            })
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.visible().iter().map(|r| r.inst.id.clone()).collect()
    }

    pub fn selected(&self) -> Option<&Instance> {
        let visible = self.visible();
        let ids: Vec<String> = visible.iter().map(|r| r.inst.id.clone()).collect();
        self.cursor.resolve(&ids).map(|p| &visible[p].inst)
    }

    pub fn detail_text(&self, now_ms: i64) -> Option<String> {
        let (id, _) = self.detail.as_ref()?;
        let i = &self.list.iter().find(|r| &r.inst.id == id)?.inst;
        let caps = if i.capabilities.is_empty() {
            "-".to_owned()
        } else {
            i.capabilities.join(", ")
        };
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        Some(format!(
            "id            {}\nname          {}\nstatus        {} {}\nworkspace     {}\nintent        {}\nstack         {}\ncapabilities  {}\nregistered    {} ({} ago)\nlast seen     {} ({} ago)\n",
            i.id,
            i.name,
            status_symbol(&i.status),
            i.status,
            or_dash(&i.workspace),
            or_dash(&i.intent),
            or_dash(&i.stack),
            caps,
            i.registered_at,
            format::age(&i.registered_at, now_ms),
            i.last_seen,
            format::age(&i.last_seen, now_ms),
        ))
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        if self.filter.editing {
            return self.filter.handle_key(key);
        }
        if self.detail.is_some() {
            if matches!(key.code, KeyCode::Esc | KeyCode::Backspace) {
                self.detail = None;
                return Handled::Consumed;
            }
            let lines = self
                .detail_text(ctx.now_ms)
                .map_or(0, |t| t.lines().count());
            if let Some((_, pager)) = &mut self.detail
                && pager.handle_key(key, lines, ctx.page) == Handled::Consumed
            {
                return Handled::Consumed;
            }
            if !matches!(key.code, KeyCode::Char('d') | KeyCode::Char('m')) {
                return Handled::NotConsumed;
            }
        }
        if let Some(nav) = nav_key(key, ctx.page) {
            let ids = self.ids();
            self.cursor.apply(&ids, nav, ctx.page);
            return Handled::Consumed;
        }
        match key.code {
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Char('s') => {
                self.stale_only = !self.stale_only;
            }
            KeyCode::Enter => {
                if let Some(i) = self.selected() {
                    self.detail = Some((i.id.clone(), Pager::default()));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if ctx.readonly {
                    ctx.error("read-only mode: deregistering is off");
                } else if let Some(i) = self.selected() {
                    ctx.confirm = Some(Confirm::new(
                        "Deregister instance",
                        format!(
                            "Deregister {} ({}, {} {}, last seen {} ago)?",
                            i.name,
                            format::short_id(&i.id),
                            status_symbol(&i.status),
                            i.status,
                            format::age(&i.last_seen, ctx.now_ms),
                        ),
                        Command::Deregister(vec![(i.id.clone(), i.name.clone())]),
                    ));
                } else {
                    ctx.info("no instance selected");
                }
            }
            KeyCode::Char('m') => {
                if ctx.readonly {
                    ctx.error("read-only mode: sending messages is off");
                } else if let Some(i) = self.selected() {
                    ctx.compose = Some(crate::compose::Compose::new(i.id.clone(), i.name.clone()));
                } else {
                    ctx.info("no instance selected");
                }
            }
            KeyCode::Char('D') => {
                let stale = self.stale();
                if ctx.readonly {
                    ctx.error("read-only mode: deregistering is off");
                } else if stale.is_empty() {
                    ctx.info("no stale instances");
                } else {
                    let names: Vec<&str> = stale.iter().map(|i| i.name.as_str()).collect();
                    let n = stale.len();
                    ctx.confirm = Some(Confirm::new(
                        "Deregister stale instances",
                        format!(
                            "Deregister all {n} stale instance{}? ({})",
                            if n == 1 { "" } else { "s" },
                            format::truncate(&names.join(", "), 120)
                        ),
                        Command::Deregister(
                            stale
                                .iter()
                                .map(|i| (i.id.clone(), i.name.clone()))
                                .collect(),
                        ),
                    ));
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            KeyCode::Esc if self.stale_only => self.stale_only = false,
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        // the actions first: on a narrow footer the obvious navigation keys go first
        let mut keys = Vec::new();
        if !readonly {
            keys.push(("d", "deregister"));
            if self.detail.is_none() {
                keys.push(("D", "deregister stale"));
            }
        }
        if self.detail.is_some() {
            keys.push(("Esc", "back"));
            return keys;
        }
        keys.extend([
            ("⏎", "detail"),
            ("/", "filter"),
            ("s", if self.stale_only { "all" } else { "stale only" }),
            ("j/k", "move"),
        ]);
        if !readonly {
            keys.push(("m", "message"));
        }
        keys
    }

    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool, now_ms: i64) {
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
                " Instance · Esc back ".into(),
                &text,
                &pager,
            );
            return;
        }
        let rows = self.visible();
        let ids: Vec<String> = rows.iter().map(|r| r.inst.id.clone()).collect();
        let stale = self.stale().len();
        let mut title = Line::from(vec![Span::raw(format!(
            " Instances · {} ",
            self.list.len()
        ))]);
        if stale > 0 {
            title
                .spans
                .push(Span::styled(format!("· {stale} stale "), theme.bad()));
        }
        if self.stale_only {
            title.spans.push(Span::raw("· stale only "));
        }
        title.spans.extend(filter_title(&self.filter, theme));
        let wide = area.width >= 76;
        let widest = area.width >= 100;
        let mut cols = vec![
            ("STATUS", Constraint::Length(9)),
            ("NAME", Constraint::Length(if widest { 18 } else { 14 })),
        ];
        if wide {
            cols.push(("WORKSPACE", Constraint::Fill(1)));
        }
        cols.push(("INTENT", Constraint::Fill(2)));
        cols.push(("SEEN", Constraint::Length(4)));
        if widest {
            cols.push(("ID", Constraint::Length(8)));
        }
        let row = |i: usize| {
            let r = rows[i];
            let inst = &r.inst;
            let status = Span::styled(
                format!("{} {}", status_symbol(&inst.status), inst.status),
                theme.status(&inst.status),
            );
            let name = match self.unread.get(&inst.id) {
                Some(n) if *n > 0 => Line::from(vec![
                    Span::raw(inst.name.clone()),
                    Span::styled(format!(" ✉{n}"), theme.warn()),
                ]),
                _ => Line::from(inst.name.clone()),
            };
            let mut cells = vec![Cell::from(status), Cell::from(name)];
            if wide {
                cells.push(Cell::from(inst.workspace.clone()));
            }
            cells.push(Cell::from(inst.intent.clone()));
            cells.push(Cell::from(format::age(&inst.last_seen, now_ms)));
            if widest {
                cells.push(Cell::from(format::short_id(&inst.id).to_owned()));
            }
            let row = Row::new(cells);
            if r.changed_at.is_some_and(|t| now_ms - t < CHANGED_MS) {
                row.style(theme.changed())
            } else {
                row
            }
        };
        let empty = if self.list.is_empty() {
            "no instances registered"
        } else if self.stale_only {
            "no stale instances"
        } else {
            "no instance matches the filter"
        };
        draw_table(
            f,
            area,
            theme,
            title,
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

    pub fn inst(id: &str, name: &str, status: &str) -> Instance {
        Instance {
            id: id.into(),
            name: name.into(),
            workspace: "/w".into(),
            intent: String::new(),
            stack: String::new(),
            capabilities: vec![],
            status: status.into(),
            registered_at: "2026-02-09T14:30:00Z".into(),
            last_seen: "2026-02-09T14:30:00Z".into(),
        }
    }

    #[test]
    fn stale_first_and_gone_stays_gone() {
        let mut v = InstancesView::default();
        v.set_list(
            vec![
                inst("1", "b", "active"),
                inst("2", "a", "stale"),
                inst("3", "c", "pending"),
            ],
            0,
        );
        let names: Vec<_> = v.list.iter().map(|r| r.inst.name.as_str()).collect();
        assert_eq!(names, ["a", "c", "b"]);
        v.remove("2", 100);
        v.set_list(vec![inst("1", "b", "active"), inst("2", "a", "stale")], 200);
        assert_eq!(
            v.list.len(),
            1,
            "a listing in flight does not bring it back"
        );
        v.set_list(
            vec![inst("1", "b", "active"), inst("2", "a", "stale")],
            100_000,
        );
        assert_eq!(
            v.list.len(),
            2,
            "much later it may (re-registered under the same id)"
        );
        v.set_status("1", "b", "stale", Some("2026-02-09T14:31:00Z"), 100_001);
        assert_eq!(v.stale().len(), 2);
        assert_eq!(v.list[0].inst.last_seen, "2026-02-09T14:30:00Z");
    }
}
