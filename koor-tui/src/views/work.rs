//! The Work view: how the agents divide the work. It is made of sections, each a list of one kind
//! of hold or work item with its own keys; `←`/`→` (or `[`/`]`) switch between them: **Locks**
//! (name, holder, fence and the time left), **Tasks** (one project's board, [`tasks`]),
//! **Reservations** (file reservations, [`reservations`]) and **Messages** (recent messages with
//! receipts, [`messages`]).
//!
//! Locks follow list-then-watch: a listing tagged with the event id it reflects ([`LocksSection::
//! set_list`]), then `koor.lock.*` events newer than that. Because a lock's fence is the id of the
//! event that granted it, a listing and the events can be merged exactly: a grant the listing
//! predates is kept, a grant that ended after the listing was read stays gone. `x` force-releases
//! the selected lock after a confirmation that defaults to No.

pub mod messages;
pub mod reservations;
#[cfg(test)]
mod section_tests;
pub mod tasks;

use crossterm::event::{KeyCode, KeyEvent};
use koor_shared::types::{Holder, Lock};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};
use serde_json::Value;

use crate::component::{Confirm, Ctx, Cursor, FilterInput, Handled, Pager, list_key};
use crate::format;
use crate::msg::Command;
use crate::theme::Theme;
use crate::views::{KeyHelp, draw_pager, draw_table, filter_title};

/// How long an ended grant is remembered, so a fetch or listing already in flight cannot bring
/// it back.
const ENDED_MS: i64 = 30_000;
/// A lock with less time left than this shows in the warning style.
const SOON_MS: i64 = 30_000;

/// The sections of the Work view, in the order `←`/`→` visits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Section {
    #[default]
    Locks,
    Tasks,
    Reservations,
    Messages,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Locks,
        Section::Tasks,
        Section::Reservations,
        Section::Messages,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Locks => "Locks",
            Section::Tasks => "Tasks",
            Section::Reservations => "Reservations",
            Section::Messages => "Messages",
        }
    }

    fn step(self, by: isize) -> Section {
        let n = Section::ALL.len() as isize;
        let i = Section::ALL.iter().position(|s| *s == self).unwrap_or(0) as isize;
        Section::ALL[(i + by).rem_euclid(n) as usize]
    }
}

/// A string field of a JSON object (empty when missing).
pub(crate) fn str_of(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A holder `{"id","name"}`; `None` for anything else (`null`).
pub(crate) fn holder_of(v: &Value) -> Option<Holder> {
    let id = v.get("id")?.as_str()?;
    Some(Holder {
        id: id.to_owned(),
        name: str_of(v, "name"),
    })
}

/// Milliseconds left until `expires_at`; `None` while it is not known.
pub(crate) fn left_ms(expires_at: &str, now_ms: i64) -> Option<i64> {
    format::epoch_ms(expires_at).map(|t| t - now_ms)
}

/// The time left as a LEFT column shows it: `4m`, `expired`, or `…` while unknown.
pub(crate) fn left_text(expires_at: &str, now_ms: i64) -> String {
    match left_ms(expires_at, now_ms) {
        Some(ms) if ms <= 0 => "expired".into(),
        Some(ms) => format::age_ms(ms),
        None => "…".into(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct WorkView {
    pub section: Section,
    pub locks: LocksSection,
    pub tasks: tasks::TasksSection,
    pub reservations: reservations::ReservationsSection,
    pub messages: messages::MessagesSection,
}

impl WorkView {
    pub fn filter_editing(&self) -> bool {
        match self.section {
            Section::Locks => self.locks.filter.editing,
            Section::Tasks => self.tasks.filter.editing,
            Section::Reservations => self.reservations.filter.editing,
            Section::Messages => self.messages.filter.editing,
        }
    }

    /// The current section's filter.
    pub fn filter(&self) -> &crate::component::FilterInput {
        match self.section {
            Section::Locks => &self.locks.filter,
            Section::Tasks => &self.tasks.filter,
            Section::Reservations => &self.reservations.filter,
            Section::Messages => &self.messages.filter,
        }
    }

    /// Rows the current section shows through its filter.
    pub fn visible_rows(&self) -> usize {
        match self.section {
            Section::Locks => self.locks.visible().len(),
            Section::Tasks => self.tasks.visible().len(),
            Section::Reservations => self.reservations.visible().len(),
            Section::Messages => self.messages.visible().len(),
        }
    }

    /// A `koor.*` system event newer than the last listing; returns whether it was a Work event.
    pub fn on_event(
        &mut self,
        topic: &str,
        data: &Value,
        created_at: &str,
        event_id: i64,
        now_ms: i64,
        cmds: &mut Vec<Command>,
    ) -> bool {
        if let Some(kind) = topic.strip_prefix("koor.task.") {
            cmds.extend(self.tasks.on_event(kind, data, event_id));
            return true;
        }
        if let Some(kind) = topic.strip_prefix("koor.reservation.") {
            self.reservations.on_event(kind, data, now_ms);
            return true;
        }
        if topic == "koor.message.sent" {
            self.messages.on_event(data, created_at);
            return true;
        }
        let Some(kind) = topic.strip_prefix("koor.lock.") else {
            return false;
        };
        let name = data.get("name").and_then(Value::as_str).unwrap_or_default();
        let fence = data.get("fence").and_then(Value::as_i64);
        match kind {
            "acquired" => {
                let holder: Holder = data
                    .get("holder")
                    .and_then(|h| serde_json::from_value(h.clone()).ok())
                    .unwrap_or_default();
                self.locks
                    .acquired(name, holder, fence.unwrap_or_default(), created_at);
                // the event has no expiry: read the lock for it
                cmds.push(Command::FetchLock(name.to_owned()));
            }
            "released" | "expired" => self.locks.ended(name, fence, now_ms),
            _ => {}
        }
        true
    }

    pub fn handle_key(&mut self, key: &KeyEvent, ctx: &mut Ctx) -> Handled {
        if !self.filter_editing() && Section::ALL.len() > 1 {
            let by = match key.code {
                KeyCode::Left | KeyCode::Char('[') => -1,
                KeyCode::Right | KeyCode::Char(']') => 1,
                _ => 0,
            };
            if by != 0 {
                self.section = self.section.step(by);
                return Handled::Consumed;
            }
        }
        match self.section {
            Section::Locks => self.locks.handle_key(key, ctx),
            Section::Tasks => self.tasks.handle_key(key, ctx),
            Section::Reservations => self.reservations.handle_key(key, ctx),
            Section::Messages => self.messages.handle_key(key, ctx),
        }
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        let mut keys = match self.section {
            Section::Locks => self.locks.keys(readonly),
            Section::Tasks => self.tasks.keys(readonly),
            Section::Reservations => self.reservations.keys(readonly),
            Section::Messages => self.messages.keys(readonly),
        };
        if Section::ALL.len() > 1 {
            keys.push(("←/→", "section"));
        }
        keys
    }

    pub fn render(&self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool, now_ms: i64) {
        // the section tabs lead the title: " Work · Locks 2 · Tasks 5 "; when they do not all
        // fit, the others shrink to their initial and count
        let labels: Vec<String> = Section::ALL
            .iter()
            .map(|s| match s {
                Section::Locks => format!("{} {}", s.name(), self.locks.list.len()),
                Section::Tasks => self.tasks.label(),
                Section::Reservations => self.reservations.label(),
                Section::Messages => self.messages.label(),
            })
            .collect();
        let full: usize = 6 + labels.iter().map(|l| l.chars().count() + 3).sum::<usize>();
        let short = full + 10 > area.width as usize;
        let mut title = vec![Span::raw(" Work ")];
        for (s, label) in Section::ALL.into_iter().zip(labels) {
            let label = if short && s != self.section {
                let (name, count) = label.rsplit_once(' ').unwrap_or((&label, ""));
                format!("{}{count}", &name[..1])
            } else {
                label
            };
            title.push(Span::raw("· "));
            title.push(if s == self.section {
                Span::styled(label, theme.title())
            } else {
                Span::styled(label, theme.dim())
            });
            title.push(Span::raw(" "));
        }
        match self.section {
            Section::Locks => self.locks.render(f, area, theme, focused, now_ms, title),
            Section::Tasks => self.tasks.render(f, area, theme, focused, now_ms, title),
            Section::Reservations => self
                .reservations
                .render(f, area, theme, focused, now_ms, title),
            Section::Messages => self.messages.render(f, area, theme, focused, now_ms, title),
        }
    }
}

/// The footer keys of a list section: its own `action` (unless read-only), then `Esc` while its
/// detail is open, else `extra` and the list keys.
fn section_keys(
    action: KeyHelp,
    extra: &[KeyHelp],
    readonly: bool,
    detail_open: bool,
) -> Vec<KeyHelp> {
    let mut keys = Vec::new();
    if !readonly {
        keys.push(action);
    }
    if detail_open {
        keys.push(("Esc", "back"));
        return keys;
    }
    keys.extend_from_slice(extra);
    keys.extend([("⏎", "detail"), ("/", "filter"), ("j/k", "move")]);
    keys
}

/// The Locks section.
#[derive(Debug, Clone, Default)]
pub struct LocksSection {
    /// Current locks, sorted by name.
    pub list: Vec<Lock>,
    pub cursor: Cursor<String>,
    pub filter: FilterInput,
    /// The selected lock's fields are open (by name).
    pub detail: Option<(String, Pager)>,
    /// Grants known to have ended: `(name, fence, when)`.
    ended: Vec<(String, i64, i64)>,
}

impl LocksSection {
    fn has_ended(&self, name: &str, fence: i64) -> bool {
        self.ended.iter().any(|(n, f, _)| n == name && *f >= fence)
    }

    fn sort(&mut self) {
        self.list.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Puts `lock` in unless a newer grant of that name is shown or its grant has ended.
    pub fn upsert(&mut self, lock: Lock) {
        if self.has_ended(&lock.name, lock.fence) {
            return;
        }
        match self.list.iter_mut().find(|l| l.name == lock.name) {
            Some(old) if old.fence > lock.fence => {}
            Some(old) => *old = lock,
            None => {
                self.list.push(lock);
                self.sort();
            }
        }
    }

    /// A listing that reflects every event up to `as_of`: it replaces what is shown, except grants
    /// newer than `as_of` (their events came first) and grants that have ended since.
    pub fn set_list(&mut self, list: Vec<Lock>, as_of: i64, now_ms: i64) {
        self.ended.retain(|(_, _, at)| now_ms - at < ENDED_MS);
        let newer: Vec<Lock> = self
            .list
            .iter()
            .filter(|l| l.fence > as_of)
            .cloned()
            .collect();
        self.list = Vec::new();
        for lock in list.into_iter().chain(newer) {
            self.upsert(lock);
        }
        self.sort();
    }

    /// `koor.lock.acquired`: shown at once; the expiry follows with a fetch.
    pub fn acquired(&mut self, name: &str, holder: Holder, fence: i64, created_at: &str) {
        let expires_at = self
            .list
            .iter()
            .find(|l| l.name == name && l.fence == fence)
            .map(|l| l.expires_at.clone())
            .unwrap_or_default();
        self.upsert(Lock {
            name: name.to_owned(),
            holder,
            fence,
            acquired_at: created_at.to_owned(),
            expires_at,
        });
    }

    /// `koor.lock.released` / `koor.lock.expired`, or our own force-release: the grant `fence`
    /// (or, without one, whatever grant of `name` is shown) is over.
    pub fn ended(&mut self, name: &str, fence: Option<i64>, now_ms: i64) {
        let fence = fence.or_else(|| self.list.iter().find(|l| l.name == name).map(|l| l.fence));
        let Some(fence) = fence else {
            return;
        };
        self.list.retain(|l| !(l.name == name && l.fence <= fence));
        self.ended.push((name.to_owned(), fence, now_ms));
        if self.detail.as_ref().is_some_and(|(d, _)| d == name)
            && !self.list.iter().any(|l| l.name == name)
        {
            self.detail = None;
        }
    }

    pub fn visible(&self) -> Vec<&Lock> {
        let terms = self.filter.terms();
        self.list
            .iter()
            .filter(|l| {
                terms.is_empty()
                    || terms.iter().any(|t| {
                        [&l.name, &l.holder.name, &l.holder.id]
                            .iter()
                            .any(|f| f.to_lowercase().contains(t.as_str()))
                    })
            })
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.visible().iter().map(|l| l.name.clone()).collect()
    }

    pub fn selected(&self) -> Option<&Lock> {
        let visible = self.visible();
        let names: Vec<String> = visible.iter().map(|l| l.name.clone()).collect();
        self.cursor.resolve(&names).map(|p| visible[p])
    }

    /// Milliseconds left on `lock` at `now_ms`; `None` when its expiry is not known yet.
    pub fn left_ms(lock: &Lock, now_ms: i64) -> Option<i64> {
        format::epoch_ms(&lock.expires_at).map(|t| t - now_ms)
    }

    /// The time left as the LEFT column shows it: `4m`, `expired`, or `…` while unknown.
    pub fn left_text(lock: &Lock, now_ms: i64) -> String {
        match Self::left_ms(lock, now_ms) {
            Some(ms) if ms <= 0 => "expired".into(),
            Some(ms) => format::age_ms(ms),
            None => "…".into(),
        }
    }

    pub fn detail_text(&self, now_ms: i64) -> Option<String> {
        let (name, _) = self.detail.as_ref()?;
        let l = self.list.iter().find(|l| &l.name == name)?;
        let expires = if l.expires_at.is_empty() {
            "…".to_owned()
        } else {
            format!("{} ({} left)", l.expires_at, Self::left_text(l, now_ms))
        };
        Some(format!(
            "name       {}\nholder     {}\nholder id  {}\nfence      {}\nacquired   {} ({} ago)\nexpires    {}\n",
            l.name,
            l.holder.name,
            l.holder.id,
            l.fence,
            l.acquired_at,
            format::age(&l.acquired_at, now_ms),
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
        let names = self.names();
        if let Some(handled) = list_key(
            &mut self.filter,
            &mut self.detail,
            &mut self.cursor,
            &names,
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
                if let Some(l) = self.selected() {
                    self.detail = Some((l.name.clone(), Pager::default()));
                }
            }
            KeyCode::Char('x') | KeyCode::Delete => {
                let target = match &self.detail {
                    Some((name, _)) => self.list.iter().find(|l| &l.name == name),
                    None => self.selected(),
                };
                if ctx.readonly {
                    ctx.error("read-only mode: releasing locks is off");
                } else if let Some(l) = target {
                    ctx.confirm = Some(Confirm::new(
                        "Force-release lock",
                        format!(
                            "Release {} held by {} ({}, fence {}, {} left)? The holder is not asked.",
                            l.name,
                            l.holder.name,
                            format::short_id(&l.holder.id),
                            l.fence,
                            Self::left_text(l, ctx.now_ms),
                        ),
                        Command::ForceReleaseLock {
                            name: l.name.clone(),
                            fence: l.fence,
                        },
                    ));
                } else {
                    ctx.info("no lock selected");
                }
            }
            KeyCode::Esc if self.filter.is_active() => self.filter.text.clear(),
            _ => return Handled::NotConsumed,
        }
        Handled::Consumed
    }

    pub fn keys(&self, readonly: bool) -> Vec<KeyHelp> {
        section_keys(("x", "force-release"), &[], readonly, self.detail.is_some())
    }

    fn render(
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
            draw_pager(f, area, theme, " Lock · Esc back ".into(), &text, &pager);
            return;
        }
        let rows = self.visible();
        let names: Vec<String> = rows.iter().map(|l| l.name.clone()).collect();
        title.extend(filter_title(&self.filter, theme));
        let wide = area.width >= 76;
        let widest = area.width >= 100;
        let mut cols = vec![
            ("NAME", Constraint::Fill(1)),
            ("HOLDER", Constraint::Length(if widest { 18 } else { 14 })),
        ];
        if widest {
            cols.push(("HOLDER ID", Constraint::Length(9)));
        }
        cols.push(("FENCE", Constraint::Length(7)));
        if wide {
            cols.push(("HELD", Constraint::Length(5)));
        }
        cols.push(("LEFT", Constraint::Length(7)));
        let row = |i: usize| {
            let l = rows[i];
            let mut cells = vec![
                Cell::from(l.name.clone()),
                Cell::from(l.holder.name.clone()),
            ];
            if widest {
                cells.push(Cell::from(format::short_id(&l.holder.id).to_owned()));
            }
            cells.push(Cell::from(l.fence.to_string()));
            if wide {
                cells.push(Cell::from(format::age(&l.acquired_at, now_ms)));
            }
            let left = Self::left_text(l, now_ms);
            let style = match Self::left_ms(l, now_ms) {
                Some(ms) if ms <= 0 => theme.bad(),
                Some(ms) if ms < SOON_MS => theme.warn(),
                Some(_) => theme.good(),
                None => theme.dim(),
            };
            cells.push(Cell::from(Span::styled(left, style)));
            Row::new(cells)
        };
        let empty = if self.list.is_empty() {
            "no locks held"
        } else {
            "no lock matches the filter"
        };
        draw_table(
            f,
            area,
            theme,
            Line::from(title),
            &cols,
            rows.len(),
            self.cursor.resolve(&names),
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

    pub fn lock(name: &str, holder: &str, fence: i64) -> Lock {
        Lock {
            name: name.into(),
            holder: Holder {
                id: format!("{holder}-id"),
                name: holder.into(),
            },
            fence,
            acquired_at: "2026-02-09T14:30:00Z".into(),
            expires_at: "2026-02-09T14:35:00Z".into(),
        }
    }

    #[test]
    fn a_listing_and_events_merge_by_fence() {
        let mut s = LocksSection::default();
        s.set_list(vec![lock("b", "alice", 5), lock("a", "bob", 3)], 10, 0);
        let names: Vec<&str> = s.list.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "sorted by name");

        // b released (event 11) and taken again by carol (event 12)
        s.ended("b", Some(5), 1);
        s.acquired(
            "b",
            Holder {
                id: "c".into(),
                name: "carol".into(),
            },
            12,
            "t",
        );
        // a listing read before event 11 arrives late: alice's grant stays gone, carol's stays
        s.set_list(vec![lock("b", "alice", 5), lock("a", "bob", 3)], 10, 3);
        let b = s.list.iter().find(|l| l.name == "b").expect("b");
        assert_eq!((b.holder.name.as_str(), b.fence), ("carol", 12));

        // a fetch of an older grant does not replace a newer one
        s.upsert(lock("b", "alice", 5));
        assert_eq!(s.list.iter().find(|l| l.name == "b").expect("b").fence, 12);

        // a listing after a is released: a goes
        s.set_list(vec![lock("b", "carol", 12)], 20, 4);
        assert_eq!(s.list.len(), 1);
        // the grant that ended does not come back with a late fetch
        s.ended("b", Some(12), 5);
        s.upsert(lock("b", "carol", 12));
        assert!(s.list.is_empty());
    }

    #[test]
    fn time_left_reads_as_an_age_or_expired() {
        let l = lock("a", "x", 1);
        let t = format::epoch_ms("2026-02-09T14:35:00Z").expect("time");
        assert_eq!(LocksSection::left_text(&l, t - 125_000), "2m");
        assert_eq!(LocksSection::left_text(&l, t), "expired");
        let unknown = Lock {
            expires_at: String::new(),
            ..l
        };
        assert_eq!(LocksSection::left_text(&unknown, t), "…");
    }

    // ----- through the update function and the whole frame -----

    use crossterm::event::KeyCode;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use serde_json::json;

    use crate::app::tests::{ch, connected, ev, key, now};
    use crate::app::{App, update};
    use crate::msg::{Msg, Net};
    use crate::views::ViewId;

    /// A lock granted at T0 (10 s before `now()`), expiring `left_s` after `now()`.
    fn held(name: &str, holder: &str, fence: i64, left_s: i64) -> Lock {
        // now() is T0 + 10 s
        let t0 = koor_shared::time::parse_rfc3339(crate::app::tests::T0).expect("time");
        let expires = koor_shared::time::format_rfc3339(
            t0 + std::time::Duration::from_secs((10 + left_s) as u64),
        );
        Lock {
            expires_at: expires,
            ..lock(name, holder, fence)
        }
    }

    /// The connected app with two locks listed as of event 10, on the Work view.
    fn with_locks() -> App {
        let mut app = connected();
        update(
            &mut app,
            Msg::Net(Net::Locks {
                locks: vec![
                    held("deploy/prod", "claude", 7, 240),
                    held("db-migrations", "cursor", 9, 20),
                ],
                as_of: 10,
            }),
        );
        update(&mut app, ch('5'));
        app
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

    #[test]
    fn work_view_lists_locks_then_follows_lock_events() {
        let mut app = with_locks();
        assert_eq!(app.view, ViewId::Work);
        let names: Vec<&str> = app
            .work
            .locks
            .list
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["db-migrations", "deploy/prod"]);

        let holder = json!({"id": "i3", "name": "kilo"});
        let cmds = update(
            &mut app,
            Msg::Net(Net::Events(vec![ev(
                11,
                "koor.lock.acquired",
                json!({"name": "release/notes", "holder": holder, "fence": 11}),
            )])),
        );
        assert_eq!(cmds, vec![Command::FetchLock("release/notes".into())]);
        let got = app
            .work
            .locks
            .list
            .iter()
            .find(|l| l.name == "release/notes");
        assert_eq!(
            got.map(|l| (l.holder.name.as_str(), l.fence)),
            Some(("kilo", 11))
        );
        assert!(
            got.is_some_and(|l| l.expires_at.is_empty()),
            "expiry not known yet"
        );
        update(
            &mut app,
            Msg::Net(Net::Lock(Box::new(held("release/notes", "kilo", 11, 60)))),
        );
        let got = app
            .work
            .locks
            .list
            .iter()
            .find(|l| l.name == "release/notes");
        assert!(got.is_some_and(|l| !l.expires_at.is_empty()));

        update(
            &mut app,
            Msg::Net(Net::Events(vec![
                ev(
                    12,
                    "koor.lock.released",
                    json!({"name": "release/notes", "holder": holder, "fence": 11, "reason": "released"}),
                ),
                ev(
                    13,
                    "koor.lock.expired",
                    json!({"name": "db-migrations", "holder": {"id": "cursor-id", "name": "cursor"}, "fence": 9}),
                ),
            ])),
        );
        let names: Vec<&str> = app
            .work
            .locks
            .list
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["deploy/prod"]);

        // the expiry is re-read on the refresh tick while locks are shown
        let mut refresh = 0;
        for i in 1..=5 {
            refresh += update(&mut app, Msg::Tick(now() + i * 1000))
                .iter()
                .filter(|c| **c == Command::RefreshLocks)
                .count();
        }
        assert_eq!(refresh, 1);
    }

    #[test]
    fn force_release_asks_first_and_defaults_to_no() {
        let mut app = with_locks();
        update(&mut app, ch('j'));
        assert_eq!(
            app.work.locks.selected().map(|l| l.name.as_str()),
            Some("deploy/prod")
        );
        update(&mut app, ch('x'));
        let dialog = app.confirm.clone().expect("asks first");
        assert!(
            dialog.message.contains("deploy/prod held by claude"),
            "{}",
            dialog.message
        );
        assert!(!dialog.yes_focused);
        let lines = draw(&app, 80, 24);
        assert!(
            on_screen(&lines, "Force-release lock"),
            "{}",
            lines.join("\n")
        );
        assert!(on_screen(&lines, "> No <"), "{}", lines.join("\n"));

        // Enter answers No
        assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
        assert!(app.confirm.is_none());
        assert_eq!(app.work.locks.list.len(), 2);

        update(&mut app, ch('x'));
        let cmds = update(&mut app, ch('y'));
        assert_eq!(
            cmds,
            vec![Command::ForceReleaseLock {
                name: "deploy/prod".into(),
                fence: 7
            }]
        );
        assert_eq!(
            app.status.as_ref().map(|s| s.text.as_str()),
            Some("releasing…")
        );
        update(
            &mut app,
            Msg::Net(Net::LockReleased {
                name: "deploy/prod".into(),
                fence: 7,
                error: None,
            }),
        );
        assert!(app.work.locks.list.iter().all(|l| l.name != "deploy/prod"));
        assert_eq!(
            app.status.as_ref().map(|s| s.text.as_str()),
            Some("✓ released lock deploy/prod")
        );
        update(
            &mut app,
            Msg::Net(Net::LockReleased {
                name: "db-migrations".into(),
                fence: 9,
                error: Some("lock not held: db-migrations (404)".into()),
            }),
        );
        assert!(app.status.as_ref().is_some_and(|s| s.error));

        // read-only: no dialog
        let mut ro = with_locks();
        ro.readonly = true;
        update(&mut ro, ch('x'));
        assert!(ro.confirm.is_none());
        assert!(ro.status.as_ref().is_some_and(|s| s.error));
    }

    #[test]
    fn work_view_at_80x24() {
        let app = with_locks();
        let lines = draw(&app, 80, 24);
        let want = [
            "  1 Events   2 State   3 Instances   4 Logs   5 Work                            ",
            " Work · Locks 2 · Tasks 0 · Reservations 0 · Messages 0 ────────────────────────",
            "NAME                                        HOLDER         FENCE   HELD  LEFT   ",
            "db-migrations                               cursor         9       10s   20s    ",
            "deploy/prod                                 claude         7       10s   4m     ",
        ];
        assert_eq!(lines[1..6], want, "\n{}", lines.join("\n"));
        assert!(
            lines[23].starts_with(" x force-release  ⏎ detail  / filter"),
            "{}",
            lines[23]
        );

        // Enter shows the lock's fields; the filter narrows the list
        let mut app = app;
        update(&mut app, key(KeyCode::Enter));
        let lines = draw(&app, 80, 24);
        assert!(on_screen(&lines, "fence      9"), "{}", lines.join("\n"));
        assert!(on_screen(&lines, "holder     cursor"));
        update(&mut app, key(KeyCode::Esc));
        update(&mut app, ch('/'));
        for c in "claude".chars() {
            update(&mut app, ch(c));
        }
        update(&mut app, key(KeyCode::Enter));
        assert_eq!(app.work.locks.visible().len(), 1);
        let empty = {
            let mut a = connected();
            update(&mut a, ch('5'));
            draw(&a, 80, 24)
        };
        assert!(on_screen(&empty, "no locks held"));
    }

    #[test]
    fn work_view_draws_at_any_size() {
        let mut app = with_locks();
        for (w, h) in [(1, 1), (49, 9), (50, 10), (60, 20), (100, 30), (200, 60)] {
            draw(&app, w, h);
            update(&mut app, key(KeyCode::Enter));
            draw(&app, w, h);
            update(&mut app, ch('x'));
            draw(&app, w, h);
            update(&mut app, key(KeyCode::Esc));
            update(&mut app, key(KeyCode::Esc));
        }
    }
}
