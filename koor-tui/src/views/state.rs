//! The State view: every key with version, content type, size and age, kept current by
//! `koor.state.*` events (a changed row is highlighted for a moment); `s` switches to the specs of
//! the known projects. Enter shows the value (pretty JSON when it is JSON) and its versions.

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::{SpecList, StateSummary};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use crate::component::{Ctx, Cursor, FilterInput, Handled, Pager, nav_key};
use crate::format;
use crate::msg::{Command, Detail};
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// How long a changed row stays highlighted.
pub const CHANGED_MS: i64 = 3000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub summary: StateSummary,
    pub changed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRow {
    pub project: String,
    pub name: String,
    pub version: i64,
    pub updated_at: String,
    pub changed_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Keys,
    Specs,
}

/// What the detail pane shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Key(String),
    Spec(String, String),
}

impl Target {
    pub fn title(&self) -> String {
        match self {
            Target::Key(k) => k.clone(),
            Target::Spec(p, n) => format!("{p}/{n}"),
        }
    }

    pub fn command(&self) -> Command {
        match self {
            Target::Key(k) => Command::LoadState(k.clone()),
            Target::Spec(p, n) => Command::LoadSpec {
                project: p.clone(),
                name: n.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetailPane {
    pub target: Target,
    /// `None` while loading.
    pub loaded: Option<Result<Box<Detail>, String>>,
    pub pager: Pager,
}

#[derive(Debug, Clone, Default)]
pub struct StateView {
    pub keys: Vec<StateRow>,
    pub specs: Vec<SpecRow>,
    pub mode: Mode,
    pub key_cursor: Cursor<String>,
    pub spec_cursor: Cursor<(String, String)>,
    pub filter: FilterInput,
    pub detail: Option<DetailPane>,
}

fn recently(changed_at: Option<i64>, now_ms: i64) -> bool {
    changed_at.is_some_and(|t| now_ms - t < CHANGED_MS)
}

impl StateView {
    /// Replaces the keys with a fresh listing; rows whose version moved are marked changed
    /// (unless this is the first listing).
    pub fn set_keys(&mut self, list: Vec<StateSummary>, now_ms: i64) {
        let first = self.keys.is_empty();
        let mut rows: Vec<StateRow> = list
            .into_iter()
            .map(|s| {
                let old = self.keys.iter().find(|r| r.summary.key == s.key);
                let changed_at = match old {
                    Some(o) if o.summary.version == s.version => o.changed_at,
                    _ if first => None,
                    _ => Some(now_ms),
                };
                StateRow {
                    summary: s,
                    changed_at,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.summary.key.cmp(&b.summary.key));
        self.keys = rows;
    }

    /// A `koor.state.updated` event.
    pub fn key_updated(&mut self, summary: StateSummary, now_ms: i64) {
        match self
            .keys
            .binary_search_by(|r| r.summary.key.as_str().cmp(&summary.key))
        {
            Ok(i) => {
                let row = &mut self.keys[i];
                // keep the size we knew when the event does not carry one
                let size = if summary.size == 0 {
                    row.summary.size
                } else {
                    summary.size
                };
                row.summary = StateSummary { size, ..summary };
                row.changed_at = Some(now_ms);
            }
            Err(i) => self.keys.insert(
                i,
                StateRow {
                    summary,
                    changed_at: Some(now_ms),
                },
            ),
        }
    }

    /// A `koor.state.deleted` event.
    pub fn key_deleted(&mut self, key: &str) {
        self.keys.retain(|r| r.summary.key != key);
    }

    /// A project's spec listing replaces what we knew of that project.
    pub fn set_specs(&mut self, list: SpecList, now_ms: i64) {
        let project = list.project.clone();
        let old: Vec<SpecRow> = self
            .specs
            .iter()
            .filter(|r| r.project == project)
            .cloned()
            .collect();
        self.specs.retain(|r| r.project != project);
        for s in list.specs {
            let changed_at = match old.iter().find(|r| r.name == s.name) {
                Some(o) if o.version == s.version => o.changed_at,
                Some(_) => Some(now_ms),
                None => None,
            };
            self.specs.push(SpecRow {
                project: project.clone(),
                name: s.name,
                version: s.version,
                updated_at: s.updated_at,
                changed_at,
            });
        }
        self.sort_specs();
    }

    fn sort_specs(&mut self) {
        self.specs
            .sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    }

    /// A `koor.spec.updated` event.
    pub fn spec_updated(
        &mut self,
        project: &str,
        name: &str,
        version: i64,
        updated_at: &str,
        now_ms: i64,
    ) {
        match self
            .specs
            .iter_mut()
            .find(|r| r.project == project && r.name == name)
        {
            Some(r) => {
                r.version = version;
                r.updated_at = updated_at.to_owned();
                r.changed_at = Some(now_ms);
            }
            None => {
                self.specs.push(SpecRow {
                    project: project.to_owned(),
                    name: name.to_owned(),
                    version,
                    updated_at: updated_at.to_owned(),
                    changed_at: Some(now_ms),
                });
                self.sort_specs();
            }
        }
    }

    pub fn spec_deleted(&mut self, project: &str, name: &str) {
        self.specs
            .retain(|r| !(r.project == project && r.name == name));
    }

    pub fn visible_keys(&self) -> Vec<&StateRow> {
        let terms = self.filter.terms();
        self.keys
            .iter()
            .filter(|r| {
                terms.is_empty()
                    || terms
                        .iter()
                        .any(|t| r.summary.key.to_lowercase().contains(t.as_str()))
            })
            .collect()
    }

    pub fn visible_specs(&self) -> Vec<&SpecRow> {
        let terms = self.filter.terms();
        self.specs
            .iter()
            .filter(|r| {
                let full = format!("{}/{}", r.project, r.name).to_lowercase();
                terms.is_empty() || terms.iter().any(|t| full.contains(t.as_str()))
            })
            .collect()
    }

    fn key_ids(&self) -> Vec<String> {
        self.visible_keys()
            .iter()
            .map(|r| r.summary.key.clone())
            .collect()
    }

    fn spec_ids(&self) -> Vec<(String, String)> {
        self.visible_specs()
            .iter()
            .map(|r| (r.project.clone(), r.name.clone()))
            .collect()
    }

    /// The row under the cursor, as a detail target.
    pub fn selected(&self) -> Option<Target> {
        match self.mode {
            Mode::Keys => {
                let ids = self.key_ids();
                self.key_cursor
                    .resolve(&ids)
                    .map(|p| Target::Key(ids[p].clone()))
            }
            Mode::Specs => {
                let ids = self.spec_ids();
                self.spec_cursor.resolve(&ids).map(|p| {
                    let (proj, name) = ids[p].clone();
                    Target::Spec(proj, name)
                })
            }
        }
    }

    /// Details arrived: kept when they are for the open pane.
    pub fn detail_loaded(&mut self, result: Result<Box<Detail>, String>, title: Option<&str>) {
        if let Some(pane) = &mut self.detail
            && title.is_none_or(|t| t == pane.target.title())
        {
            pane.loaded = Some(result);
        }
    }

    pub fn detail_text(&self) -> Option<String> {
        let pane = self.detail.as_ref()?;
        Some(match &pane.loaded {
            None => "loading…".to_owned(),
            Some(Err(e)) => format!("error: {e}"),
            Some(Ok(d)) => {
                let mut out = String::new();
                let version = d.version.map(|v| format!("v{v}")).unwrap_or_default();
                out.push_str(&format!(
                    "{} · {} · {}\n\n",
                    version,
                    if d.content_type.is_empty() {
                        "-"
                    } else {
                        &d.content_type
                    },
                    format::bytes(d.size as i64)
                ));
                out.push_str(&d.body);
                out.push('\n');
                if let Some(h) = &d.history {
                    out.push_str(&format!(
                        "\nHistory ({} versions, newest first)\n",
                        h.versions.len()
                    ));
                    for v in &h.versions {
                        out.push_str(&format!(
                            "  v{:<5} {}  {}  {}\n",
                            v.version,
                            v.updated_at,
                            format::truncate(&v.hash, 13),
                            format::bytes(v.size)
                        ));
                    }
                }
                out
            }
        })
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        if self.filter.editing {
            return self.filter.handle_key(key);
        }
        if self.detail.is_some() {
            match key.code {
                KeyCode::Esc | KeyCode::Backspace => {
                    self.detail = None;
                    return Handled::Consumed;
                }
                KeyCode::Char('r') => {
                    if let Some(pane) = &mut self.detail {
                        pane.loaded = None;
                        ctx.commands.push(pane.target.command());
                    }
                    return Handled::Consumed;
                }
                _ => {}
            }
            let lines = self.detail_text().map_or(0, |t| t.lines().count());
            return match &mut self.detail {
                Some(pane) => pane.pager.handle_key(key, lines, ctx.page),
                None => Handled::NotConsumed,
            };
        }
        if let Some(nav) = nav_key(key, ctx.page) {
            match self.mode {
                Mode::Keys => {
                    let ids = self.key_ids();
                    self.key_cursor.apply(&ids, nav, ctx.page);
                }
                Mode::Specs => {
                    let ids = self.spec_ids();
                    self.spec_cursor.apply(&ids, nav, ctx.page);
                }
            }
            return Handled::Consumed;
        }
        match key.code {
            KeyCode::Char('s') => {
                self.mode = match self.mode {
                    Mode::Keys => Mode::Specs,
                    Mode::Specs => Mode::Keys,
                };
            }
            KeyCode::Char('/') => self.filter.start(),
            KeyCode::Enter => {
                if let Some(target) = self.selected() {
                    ctx.commands.push(target.command());
                    self.detail = Some(DetailPane {
                        target,
                        loaded: None,
                        pager: Pager::default(),
                    });
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self) -> Vec<KeyHelp> {
        if self.detail.is_some() {
            return vec![
                ("j/k", "scroll"),
                ("g/G", "top/end"),
                ("r", "reload"),
                ("Esc", "back"),
            ];
        }
        vec![
            ("j/k", "move"),
            ("⏎", "value"),
            ("/", "filter"),
            (
                "s",
                if self.mode == Mode::Keys {
                    "specs"
                } else {
                    "keys"
                },
            ),
        ]
    }

    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool, now_ms: i64) {
        if let (Some(pane), Some(text)) = (&self.detail, self.detail_text()) {
            let kind = match pane.target {
                Target::Key(_) => "Key",
                Target::Spec(..) => "Spec",
            };
            let title = format!(" {kind} {} · Esc back ", pane.target.title());
            draw_pager(f, area, theme, title, &text, &pane.pager);
            return;
        }
        let wide = area.width >= 70;
        match self.mode {
            Mode::Keys => {
                let rows = self.visible_keys();
                let ids: Vec<String> = rows.iter().map(|r| r.summary.key.clone()).collect();
                let mut title = Line::from(vec![
                    Span::raw(format!(
                        " State · {} key{} ",
                        self.keys.len(),
                        if self.keys.len() == 1 { "" } else { "s" }
                    )),
                    Span::styled("· s: specs ", theme.dim()),
                ]);
                title.spans.extend(filter_title(&self.filter, theme));
                let mut cols = vec![("KEY", Constraint::Fill(1)), ("VER", Constraint::Length(5))];
                if wide {
                    cols.push(("TYPE", Constraint::Length(24)));
                }
                cols.push(("SIZE", Constraint::Length(9)));
                cols.push(("AGE", Constraint::Length(4)));
                let row = |i: usize| {
                    let r = rows[i];
                    let changed = recently(r.changed_at, now_ms);
                    let mark = if changed { "*" } else { " " };
                    let mut cells = vec![
                        Cell::from(format!("{mark}{}", r.summary.key)),
                        Cell::from(r.summary.version.to_string()),
                    ];
                    if wide {
                        cells.push(Cell::from(r.summary.content_type.clone()));
                    }
                    cells.push(Cell::from(format::bytes(r.summary.size)));
                    cells.push(Cell::from(format::age(&r.summary.updated_at, now_ms)));
                    let row = Row::new(cells);
                    if changed {
                        row.style(theme.changed())
                    } else {
                        row
                    }
                };
                let empty = if self.keys.is_empty() {
                    "no keys yet (koor-cli state set KEY VALUE)"
                } else {
                    "no key matches the filter"
                };
                draw_table(
                    f,
                    area,
                    theme,
                    title,
                    &cols,
                    rows.len(),
                    self.key_cursor.resolve(&ids),
                    focused,
                    self.key_cursor.offset,
                    row,
                    empty,
                );
            }
            Mode::Specs => {
                let rows = self.visible_specs();
                let ids: Vec<(String, String)> = rows
                    .iter()
                    .map(|r| (r.project.clone(), r.name.clone()))
                    .collect();
                let mut title = Line::from(vec![
                    Span::raw(format!(" Specs · {} ", self.specs.len())),
                    Span::styled("· s: keys ", theme.dim()),
                ]);
                title.spans.extend(filter_title(&self.filter, theme));
                let cols = [
                    ("PROJECT", Constraint::Length(if wide { 20 } else { 12 })),
                    ("NAME", Constraint::Fill(1)),
                    ("VER", Constraint::Length(5)),
                    ("AGE", Constraint::Length(4)),
                ];
                let row = |i: usize| {
                    let r = rows[i];
                    let changed = recently(r.changed_at, now_ms);
                    let mark = if changed { "*" } else { " " };
                    let row = Row::new(vec![
                        Cell::from(format!("{mark}{}", r.project)),
                        Cell::from(r.name.clone()),
                        Cell::from(r.version.to_string()),
                        Cell::from(format::age(&r.updated_at, now_ms)),
                    ]);
                    if changed {
                        row.style(theme.changed())
                    } else {
                        row
                    }
                };
                draw_table(
                    f,
                    area,
                    theme,
                    title,
                    &cols,
                    rows.len(),
                    self.spec_cursor.resolve(&ids),
                    focused,
                    self.spec_cursor.offset,
                    row,
                    "no specs seen yet (projects come from koor.spec.* events and --project)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(key: &str, version: i64) -> StateSummary {
        StateSummary {
            key: key.into(),
            version,
            content_type: "application/json".into(),
            updated_at: "2026-02-09T14:30:00Z".into(),
            size: 10,
        }
    }

    #[test]
    fn keys_stay_sorted_and_mark_changes() {
        let mut v = StateView::default();
        v.set_keys(vec![summary("b", 1), summary("a", 1)], 0);
        assert_eq!(v.keys[0].summary.key, "a");
        assert_eq!(v.keys[0].changed_at, None, "first listing marks nothing");
        v.key_updated(summary("c", 1), 5);
        v.key_updated(summary("a", 2), 6);
        let keys: Vec<_> = v.keys.iter().map(|r| r.summary.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(v.keys[0].summary.version, 2);
        assert_eq!(v.keys[0].changed_at, Some(6));
        v.key_deleted("b");
        assert_eq!(v.keys.len(), 2);
        v.set_keys(vec![summary("a", 3), summary("c", 1)], 10);
        assert_eq!(v.keys[0].changed_at, Some(10));
        assert_eq!(
            v.keys[1].changed_at,
            Some(5),
            "unchanged row keeps its mark time"
        );
    }
}
