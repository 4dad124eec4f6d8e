//! The Tasks section of the Work view: the board of one project (`p` cycles the projects seen),
//! grouped by status (claimed, ready, blocked, failed, done, cancelled; by priority inside a
//! group, as the server orders them), with the holder and the time left on each claim, and the
//! dependencies of the selected task under the list. `r` puts a claimed task back to open after
//! a confirmation that defaults to No.
//!
//! List-then-watch: a board read is tagged with the event id it reflects; `koor.task.*` events
//! newer than that change the row at once (status, holder) and ask for a fresh read on the next
//! tick, which brings what the events do not carry (claim expiry, readiness).

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::Holder;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row};
use serde_json::Value;

use super::{holder_of, left_ms, left_text, str_of};
use crate::component::{Confirm, Ctx, Cursor, FilterInput, Handled, Pager, list_key};
use crate::format;
use crate::msg::Command;
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// A claim with less time left than this shows in the warning style.
const SOON_MS: i64 = 30_000;

/// One task as the console shows it (parsed from the server's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskRow {
    pub id: String,
    pub project: String,
    pub title: String,
    pub description: String,
    /// `open`, `claimed`, `done`, `failed`, `cancelled`.
    pub status: String,
    pub priority: i64,
    pub labels: Vec<String>,
    pub depends_on: Vec<String>,
    pub ready: bool,
    /// The claim's holder, and its expiry (empty while unknown).
    pub holder: Option<Holder>,
    pub expires_at: String,
    pub attempts: i64,
    pub updated_at: String,
}

impl TaskRow {
    /// A task of `GET /api/tasks/{project}`; `None` without an id.
    pub fn from_value(v: &Value) -> Option<TaskRow> {
        let id = str_of(v, "id");
        if id.is_empty() {
            return None;
        }
        let claim = v.get("claim").filter(|c| c.is_object());
        let strings = |name: &str| -> Vec<String> {
            v.get(name)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(TaskRow {
            id,
            project: str_of(v, "project"),
            title: str_of(v, "title"),
            description: str_of(v, "description"),
            status: str_of(v, "status"),
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            labels: strings("labels"),
            depends_on: strings("depends_on"),
            ready: v.get("ready").and_then(Value::as_bool).unwrap_or(false),
            holder: claim.and_then(|c| holder_of(c.get("holder")?)),
            expires_at: claim.map(|c| str_of(c, "expires_at")).unwrap_or_default(),
            attempts: v.get("attempts").and_then(Value::as_i64).unwrap_or(0),
            updated_at: str_of(v, "updated_at"),
        })
    }

    /// The `tasks` array of a board.
    pub fn list(v: &Value) -> Vec<TaskRow> {
        v.get("tasks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(TaskRow::from_value).collect())
            .unwrap_or_default()
    }

    /// What the STATUS column says: an open task is `ready` or `blocked` (by a dependency).
    pub fn shown_status(&self) -> &str {
        match self.status.as_str() {
            "open" if self.ready => "ready",
            "open" => "blocked",
            s => s,
        }
    }

    /// The group the task sorts into.
    fn rank(&self) -> u8 {
        match self.shown_status() {
            "claimed" => 0,
            "ready" => 1,
            "blocked" => 2,
            "failed" => 3,
            "done" => 4,
            "cancelled" => 5,
            _ => 6,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TasksSection {
    /// Projects seen (boards on the server, `--project`, `koor.task.*` events).
    pub projects: BTreeSet<String>,
    /// The project whose board is shown.
    pub project: Option<String>,
    /// Its tasks, grouped by status.
    pub list: Vec<TaskRow>,
    pub cursor: Cursor<String>,
    pub filter: FilterInput,
    pub detail: Option<(String, Pager)>,
    /// An event changed the board since the last read: read it again on the next tick.
    pub dirty: bool,
    /// Tasks changed by an event: `(id, event id)`, so an older read does not undo them.
    touched: Vec<(String, i64)>,
}

impl TasksSection {
    fn sort(&mut self) {
        self.list.sort_by_key(TaskRow::rank);
    }

    /// Learns projects; picks the first when none is shown. Returns a command to read the board
    /// when the shown project changed.
    pub fn learn(&mut self, projects: impl IntoIterator<Item = String>) -> Option<Command> {
        self.projects
            .extend(projects.into_iter().filter(|p| !p.is_empty()));
        if self.project.is_none() {
            let first = self.projects.iter().next()?.clone();
            self.project = Some(first.clone());
            return Some(Command::RefreshTasks(first));
        }
        None
    }

    /// Shows the next project's board (`p`).
    pub fn next_project(&mut self) -> Option<Command> {
        let next = match &self.project {
            Some(cur) => self
                .projects
                .range::<String, _>((
                    std::ops::Bound::Excluded(cur.clone()),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .or_else(|| self.projects.iter().next()),
            None => self.projects.iter().next(),
        }?
        .clone();
        if self.project.as_deref() == Some(next.as_str()) {
            return None;
        }
        self.project = Some(next.clone());
        self.list.clear();
        self.touched.clear();
        self.detail = None;
        self.cursor = Cursor::default();
        Some(Command::RefreshTasks(next))
    }

    /// A read of `project`'s board reflecting every event up to `as_of`.
    pub fn set_list(&mut self, project: &str, tasks: Vec<TaskRow>, as_of: i64) {
        self.projects.insert(project.to_owned());
        if self.project.as_deref() != Some(project) {
            return;
        }
        self.touched.retain(|(_, ev)| *ev > as_of);
        let mut next: Vec<TaskRow> = Vec::with_capacity(tasks.len());
        for t in tasks {
            let newer = self.touched.iter().any(|(id, _)| *id == t.id);
            match self.list.iter().find(|o| o.id == t.id) {
                Some(old) if newer => next.push(old.clone()),
                _ => next.push(t),
            }
        }
        // tasks created by an event the read predates
        for old in &self.list {
            if self.touched.iter().any(|(id, _)| *id == old.id)
                && !next.iter().any(|t| t.id == old.id)
            {
                next.push(old.clone());
            }
        }
        self.list = next;
        self.sort();
    }

    /// A `koor.task.*` event (`kind` is what follows the prefix) with id `event_id`.
    pub fn on_event(&mut self, kind: &str, data: &Value, event_id: i64) -> Option<Command> {
        let project = str_of(data, "project");
        let cmd = self.learn([project.clone()]);
        if self.project.as_deref() != Some(project.as_str()) {
            return cmd;
        }
        let id = str_of(data, "id");
        if id.is_empty() {
            return cmd;
        }
        self.dirty = true;
        self.touched.push((id.clone(), event_id));
        let status = str_of(data, "status");
        let holder = data.get("holder").and_then(holder_of);
        let title = str_of(data, "title");
        match self.list.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                if !status.is_empty() {
                    t.status = status;
                }
                if !title.is_empty() {
                    t.title = title;
                }
                if kind == "claimed" {
                    if holder.is_some() {
                        t.holder = holder;
                    }
                    // the claim event carries its expiry (else it comes with the next read)
                    t.expires_at = str_of(data, "expires_at");
                } else if t.status != "claimed" {
                    t.holder = None;
                    t.expires_at.clear();
                }
            }
            None => self.list.push(TaskRow {
                id,
                project,
                title,
                status: if status.is_empty() {
                    "open".into()
                } else {
                    status
                },
                holder: if kind == "claimed" { holder } else { None },
                expires_at: str_of(data, "expires_at"),
                ..TaskRow::default()
            }),
        }
        self.sort();
        cmd
    }

    pub fn visible(&self) -> Vec<&TaskRow> {
        let terms = self.filter.terms();
        self.list
            .iter()
            .filter(|t| {
                terms.is_empty()
                    || terms.iter().any(|term| {
                        let holder = t.holder.as_ref().map(|h| h.name.as_str()).unwrap_or("");
                        [
                            t.id.as_str(),
                            t.title.as_str(),
                            t.shown_status(),
                            holder,
                            &t.labels.join(" "),
                        ]
                        .iter()
                        .any(|f| f.to_lowercase().contains(term.as_str()))
                    })
            })
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.visible().iter().map(|t| t.id.clone()).collect()
    }

    pub fn selected(&self) -> Option<&TaskRow> {
        let visible = self.visible();
        let ids: Vec<String> = visible.iter().map(|t| t.id.clone()).collect();
        self.cursor.resolve(&ids).map(|p| visible[p])
    }

    fn target(&self) -> Option<&TaskRow> {
        match &self.detail {
            Some((id, _)) => self.list.iter().find(|t| &t.id == id),
            None => self.selected(),
        }
    }

    /// `T-1 done · T-2 claimed`: each dependency with its status as the board shows it.
    pub fn deps_text(&self, t: &TaskRow) -> String {
        t.depends_on
            .iter()
            .map(|d| {
                let status = self
                    .list
                    .iter()
                    .find(|o| &o.id == d)
                    .map_or("?", TaskRow::shown_status);
                format!("{d} {status}")
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }

    pub fn detail_text(&self, now_ms: i64) -> Option<String> {
        let (id, _) = self.detail.as_ref()?;
        let t = self.list.iter().find(|t| &t.id == id)?;
        let claim = match &t.holder {
            Some(h) if t.status == "claimed" => format!(
                "{} ({}), {} left",
                h.name,
                format::short_id(&h.id),
                left_text(&t.expires_at, now_ms)
            ),
            _ => "-".into(),
        };
        let deps = if t.depends_on.is_empty() {
            "-".to_owned()
        } else {
            self.deps_text(t)
        };
        let labels = if t.labels.is_empty() {
            "-".to_owned()
        } else {
            t.labels.join(", ")
        };
        Some(format!(
            "id          {}\nproject     {}\ntitle       {}\nstatus      {}\npriority    {}\nlabels      {}\ndepends on  {}\nclaim       {}\nattempts    {}\nupdated     {}\n\n{}\n",
            t.id,
            t.project,
            t.title,
            t.shown_status(),
            t.priority,
            labels,
            deps,
            claim,
            t.attempts,
            t.updated_at,
            t.description,
        ))
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        let is_release = matches!(key.code, KeyCode::Char('r'));
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
            KeyCode::Char('p') => match self.next_project() {
                Some(cmd) => ctx.commands.push(cmd),
                None if self.projects.is_empty() => ctx.info("no task boards yet"),
                None => ctx.info("only one project has tasks"),
            },
            KeyCode::Enter => {
                if let Some(t) = self.selected() {
                    self.detail = Some((t.id.clone(), Pager::default()));
                }
            }
            KeyCode::Char('r') => {
                if ctx.readonly {
                    ctx.error("read-only mode: releasing tasks is off");
                } else if let Some(t) = self.target() {
                    if t.status != "claimed" {
                        ctx.info(format!("{} is {}, not claimed", t.id, t.shown_status()));
                    } else {
                        let holder = t.holder.clone().unwrap_or_default();
                        ctx.confirm = Some(Confirm::new(
                            "Put task back to open",
                            format!(
                                "Release {} \"{}\" claimed by {} ({}, {} left) back to open? The holder is not asked.",
                                t.id,
                                t.title,
                                holder.name,
                                format::short_id(&holder.id),
                                left_text(&t.expires_at, ctx.now_ms),
                            ),
                            Command::ForceReleaseTask {
                                project: t.project.clone(),
                                id: t.id.clone(),
                            },
                        ));
                    }
                } else {
                    ctx.info("no task selected");
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        super::section_keys(
            ("r", "reopen"),
            &[("p", "project")],
            readonly,
            self.detail.is_some(),
        )
    }

    /// The tab label: `Tasks web 5` (the project, and its number of tasks).
    pub fn label(&self) -> String {
        match &self.project {
            Some(p) => format!("Tasks {p} {}", self.list.len()),
            None => "Tasks 0".into(),
        }
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
            draw_pager(f, area, theme, " Task · Esc back ".into(), &text, &pager);
            return;
        }
        let rows = self.visible();
        let ids: Vec<String> = rows.iter().map(|t| t.id.clone()).collect();
        let selected = self.cursor.resolve(&ids);
        title.extend(filter_title(&self.filter, theme));
        // the selected task's dependencies on the last row
        let deps = selected.and_then(|i| {
            let t = rows[i];
            (!t.depends_on.is_empty()).then(|| format!(" {} needs {}", t.id, self.deps_text(t)))
        });
        let [table, foot] = if deps.is_some() && area.height > 4 {
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area)
        } else {
            [area, Rect::default()]
        };
        let wide = area.width >= 76;
        let mut cols = vec![
            ("ID", Constraint::Length(6)),
            ("STATUS", Constraint::Length(9)),
            ("TITLE", Constraint::Fill(1)),
            ("HOLDER", Constraint::Length(if wide { 14 } else { 10 })),
        ];
        if wide {
            cols.push(("PRI", Constraint::Length(3)));
        }
        cols.push(("LEFT", Constraint::Length(7)));
        // the title takes what the fixed columns leave (one space between columns), cut with `…`
        let fixed: u16 = cols
            .iter()
            .map(|(_, c)| match c {
                Constraint::Length(n) => n + 1,
                _ => 1,
            })
            .sum();
        let title_width = usize::from(area.width.saturating_sub(fixed).max(1));
        let row = |i: usize| {
            let t = rows[i];
            let status_style = match t.shown_status() {
                "claimed" => theme.accent(),
                "ready" => theme.good(),
                "failed" => theme.bad(),
                "done" | "cancelled" | "blocked" => theme.dim(),
                _ => ratatui::style::Style::default(),
            };
            let claimed = t.status == "claimed";
            let holder = match &t.holder {
                Some(h) if claimed => h.name.clone(),
                _ => String::new(),
            };
            let mut cells = vec![
                Cell::from(t.id.clone()),
                Cell::from(Span::styled(t.shown_status().to_owned(), status_style)),
                Cell::from(format::truncate(&t.title, title_width)),
                Cell::from(holder),
            ];
            if wide {
                cells.push(Cell::from(t.priority.to_string()));
            }
            let left = if claimed {
                let style = match left_ms(&t.expires_at, now_ms) {
                    Some(ms) if ms <= 0 => theme.bad(),
                    Some(ms) if ms < SOON_MS => theme.warn(),
                    Some(_) => theme.good(),
                    None => theme.dim(),
                };
                Span::styled(left_text(&t.expires_at, now_ms), style)
            } else {
                Span::raw("")
            };
            cells.push(Cell::from(left));
            Row::new(cells)
        };
        let empty = if self.project.is_none() {
            "no task boards yet"
        } else if self.list.is_empty() {
            "no tasks on this board"
        } else {
            "no task matches the filter"
        };
        draw_table(
            f,
            table,
            theme,
            Line::from(title),
            &cols,
            rows.len(),
            selected,
            focused,
            self.cursor.offset,
            row,
            empty,
        );
        if let Some(text) = deps
            && foot.height > 0
        {
            f.render_widget(
                Paragraph::new(Line::from(Span::styled(text, theme.dim()))),
                foot,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_board_parses_and_groups_by_status() {
        let board = json!({"project": "web", "tasks": [
            {"id": "T-1", "project": "web", "title": "schema", "status": "done", "ready": false,
             "depends_on": [], "claim": null},
            {"id": "T-3", "project": "web", "title": "ui", "status": "open", "ready": false,
             "depends_on": ["T-2"], "claim": null},
            {"id": "T-2", "project": "web", "title": "api", "status": "claimed", "ready": false,
             "depends_on": ["T-1"], "priority": 2,
             "claim": {"holder": {"id": "i1", "name": "claude"}, "fence": 9,
                       "expires_at": "2026-02-09T14:35:00Z"}},
            {"bad": "no id"}
        ]});
        let mut s = TasksSection::default();
        assert_eq!(
            s.learn(["web".to_owned()]),
            Some(Command::RefreshTasks("web".into()))
        );
        s.set_list("web", TaskRow::list(&board), 10);
        let ids: Vec<&str> = s.list.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["T-2", "T-3", "T-1"], "claimed, blocked, done");
        let t2 = &s.list[0];
        assert_eq!(t2.holder.as_ref().map(|h| h.name.as_str()), Some("claude"));
        assert_eq!(t2.expires_at, "2026-02-09T14:35:00Z");
        assert_eq!(s.deps_text(&s.list[1]), "T-2 claimed");

        // an event newer than the next read wins over it
        s.on_event(
            "completed",
            &json!({"project": "web", "id": "T-2", "title": "api", "status": "done", "holder": null}),
            12,
        );
        assert!(s.dirty);
        s.set_list("web", TaskRow::list(&board), 11);
        assert_eq!(
            s.list
                .iter()
                .find(|t| t.id == "T-2")
                .map(|t| t.status.as_str()),
            Some("done")
        );
        // a read that reflects the event replaces it
        s.set_list("web", TaskRow::list(&board), 12);
        assert_eq!(
            s.list
                .iter()
                .find(|t| t.id == "T-2")
                .map(|t| t.status.as_str()),
            Some("claimed")
        );
        // another project's events teach its name but leave the board alone
        s.on_event(
            "created",
            &json!({"project": "api", "id": "T-1", "status": "open"}),
            13,
        );
        assert_eq!(s.list.len(), 3);
        assert_eq!(s.next_project(), Some(Command::RefreshTasks("api".into())));
        assert!(s.list.is_empty());
        assert_eq!(s.next_project(), Some(Command::RefreshTasks("web".into())));
    }
}
