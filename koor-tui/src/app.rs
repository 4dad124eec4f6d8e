//! The model ([`App`]) and the update function ([`update`]), the only place state changes.
//!
//! `update` is pure: it reads the message and the model, changes the model and returns the side
//! effects it wants as [`Command`]s; it never does I/O and never reads the clock (time arrives
//! with [`Msg::Tick`]).

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use koor_shared::topic::is_system_topic;
use koor_shared::types::{Event, Metrics, StateSummary};
use serde_json::Value;

use crate::component::{Answer, Confirm, Ctx, Handled, Status};
use crate::compose::{Compose, ComposeAnswer};
use crate::msg::{Command, Conn, Msg, Net};
use crate::views::ViewId;
use crate::views::events::EventsView;
use crate::views::instances::InstancesView;
use crate::views::logs::LogsView;
use crate::views::state::StateView;
use crate::views::work::WorkView;

/// Below this size only a "terminal too small" notice is drawn.
pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 10;
/// Rows the header, tab bar, status line and footer take, plus a view's title rule and
/// table header.
const CHROME_ROWS: u16 = 6;
/// While connected, the instance list is refreshed this often (in ticks), because heartbeats of
/// active agents are batched by the server and publish no event.
pub const REFRESH_INSTANCES_TICKS: u64 = 5;
/// While the console's `operator` instance exists, it heartbeats this often (in ticks).
pub const OPERATOR_HEARTBEAT_TICKS: u64 = 15;
/// Informational status messages fade after this long.
const STATUS_MS: i64 = 8000;

/// Startup options that shape the model.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub server: String,
    pub readonly: bool,
    /// Spec projects to list from the start (others are learned from `koor.spec.*` events); the
    /// first is also the task board the Work view shows first.
    pub projects: Vec<String>,
}

/// The whole state of the console.
#[derive(Debug, Clone)]
pub struct App {
    pub server: String,
    pub readonly: bool,
    pub view: ViewId,
    pub conn: Conn,
    pub now_ms: i64,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    pub metrics: Option<Metrics>,
    /// Events up to this id are reflected in the last snapshot; the stream applies only newer
    /// system events to the lists (list-then-watch).
    pub snapshot_id: i64,
    pub projects: BTreeSet<String>,
    /// Webhooks, for their health in the header.
    pub webhooks: Vec<koor_shared::ops::Webhook>,
    pub events: EventsView,
    pub state: StateView,
    pub instances: InstancesView,
    pub logs: LogsView,
    /// (ext) Locks, tasks, reservations, messages.
    pub work: WorkView,
    pub help: bool,
    pub confirm: Option<Confirm>,
    /// (ext) The compose prompt for a message to an agent.
    pub compose: Option<Compose>,
    /// (ext) The id of the console's own `operator` instance, once a message was sent.
    pub operator: Option<String>,
    pub status: Option<Status>,
    pub ticks: u64,
    pub quit: bool,
}

impl App {
    pub fn new(opts: Options) -> Self {
        let mut work = WorkView::default();
        work.tasks.projects.extend(opts.projects.iter().cloned());
        work.tasks.project = opts.projects.first().cloned();
        Self {
            server: opts.server,
            readonly: opts.readonly,
            view: ViewId::Events,
            conn: Conn::Connecting,
            now_ms: 0,
            size: (80, 24),
            metrics: None,
            snapshot_id: 0,
            projects: opts.projects.into_iter().collect(),
            webhooks: Vec::new(),
            events: EventsView::default(),
            state: StateView::default(),
            instances: InstancesView::default(),
            logs: LogsView::default(),
            work,
            help: false,
            confirm: None,
            compose: None,
            operator: None,
            status: None,
            ticks: 0,
            quit: false,
        }
    }

    /// Rows a list shows at the current size.
    pub fn page(&self) -> usize {
        self.size.1.saturating_sub(CHROME_ROWS).max(1) as usize
    }

    pub fn too_small(&self) -> bool {
        self.size.0 < MIN_WIDTH || self.size.1 < MIN_HEIGHT
    }

    pub fn stale_count(&self) -> usize {
        self.instances.stale().len()
    }

    /// Webhooks (failing, disabled): retrying after errors, and turned off after too many.
    pub fn webhook_trouble(&self) -> (usize, usize) {
        let count = |h: &str| self.webhooks.iter().filter(|w| w.health() == h).count();
        (count("failing"), count("disabled"))
    }

    /// A message about the current view: it shows while that view is on screen.
    fn set_status(&mut self, text: impl Into<String>, error: bool) {
        self.set_status_on(Some(self.view), text, error);
    }

    /// A message about `view` (`None`: about the whole console, shown on every view).
    fn set_status_on(&mut self, view: Option<ViewId>, text: impl Into<String>, error: bool) {
        self.status = Some(Status {
            text: text.into(),
            error,
            at_ms: self.now_ms,
            view,
        });
    }

    /// The status message to show on the current view, if any.
    pub fn visible_status(&self) -> Option<&Status> {
        self.status
            .as_ref()
            .filter(|s| s.view.is_none_or(|v| v == self.view))
    }

    /// With a filter active on the current view: how many rows it shows.
    pub fn filtered_rows(&self) -> Option<usize> {
        match self.view {
            ViewId::Events if self.events.filter.is_active() => Some(self.events.visible().len()),
            ViewId::State if self.state.filter.is_active() => {
                Some(self.state.visible_keys().len() + self.state.visible_specs().len())
            }
            ViewId::Instances if self.instances.filter.is_active() => {
                Some(self.instances.visible().len())
            }
            ViewId::Logs if self.logs.filter.is_active() => Some(self.logs.visible().len()),
            ViewId::Work if self.work.filter().is_active() => Some(self.work.visible_rows()),
            _ => None,
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            now_ms: self.now_ms,
            readonly: self.readonly,
            page: self.page(),
            ..Ctx::default()
        }
    }
}

/// Applies one message to the model; returns the side effects to run.
pub fn update(app: &mut App, msg: Msg) -> Vec<Command> {
    match msg {
        Msg::Key(key) => on_key(app, key),
        Msg::Resize(w, h) => {
            app.size = (w, h);
            Vec::new()
        }
        Msg::Tick(now) => on_tick(app, now),
        Msg::Net(net) => on_net(app, net),
        Msg::Quit => {
            app.quit = true;
            vec![Command::Quit]
        }
    }
}

fn on_tick(app: &mut App, now: i64) -> Vec<Command> {
    app.now_ms = now;
    app.ticks += 1;
    if let Some(s) = &app.status
        && !s.error
        && now - s.at_ms > STATUS_MS
    {
        app.status = None;
    }
    let mut cmds = Vec::new();
    if app.conn != Conn::Connected {
        return cmds;
    }
    let refresh = app.ticks.is_multiple_of(REFRESH_INSTANCES_TICKS);
    if refresh {
        cmds.push(Command::RefreshInstances);
        if !app.work.locks.list.is_empty() {
            cmds.push(Command::RefreshLocks);
        }
        if !app.work.messages.list.is_empty() {
            cmds.push(Command::RefreshMessages);
        }
    }
    // events changed a list without carrying everything it shows (expiry, readiness): read it
    // again, at most once a tick; claims and reservations are also renewed by heartbeats, which
    // publish nothing
    let work = &mut app.work;
    if let Some(p) = &work.tasks.project
        && (work.tasks.dirty || (refresh && !work.tasks.list.is_empty()))
    {
        work.tasks.dirty = false;
        cmds.push(Command::RefreshTasks(p.clone()));
    }
    if work.reservations.dirty || (refresh && !work.reservations.list.is_empty()) {
        work.reservations.dirty = false;
        cmds.push(Command::RefreshReservations);
    }
    if app.operator.is_some() && app.ticks.is_multiple_of(OPERATOR_HEARTBEAT_TICKS) {
        cmds.push(Command::HeartbeatOperator);
    }
    cmds
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        app.quit = true;
        return vec![Command::Quit];
    }
    // 1. a dialog takes every key
    if let Some(dialog) = &mut app.confirm {
        return match dialog.handle_key(&key) {
            Answer::Pending => Vec::new(),
            Answer::No => {
                app.confirm = None;
                app.set_status("cancelled", false);
                Vec::new()
            }
            Answer::Yes(cmd) => {
                app.confirm = None;
                app.set_status(cmd.pending_text(), false);
                vec![cmd]
            }
        };
    }
    // 1b. so does the compose prompt
    if let Some(compose) = &mut app.compose {
        return match compose.handle_key(&key) {
            ComposeAnswer::Pending => Vec::new(),
            ComposeAnswer::Cancel => {
                app.compose = None;
                app.set_status("not sent", false);
                Vec::new()
            }
            ComposeAnswer::Send(cmd) => {
                app.compose = None;
                app.set_status(cmd.pending_text(), false);
                vec![cmd]
            }
        };
    }
    // 2. the help overlay closes on ?, Esc or Enter; q still quits
    if app.help {
        match key.code {
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => app.help = false,
            KeyCode::Char('q') => {
                app.quit = true;
                return vec![Command::Quit];
            }
            _ => {}
        }
        return Vec::new();
    }
    // 3. the current view
    let mut ctx = app.ctx();
    let handled = match app.view {
        ViewId::Events => app.events.handle_key(&key, &mut ctx),
        ViewId::State => app.state.handle_key(&key, &mut ctx),
        ViewId::Instances => app.instances.handle_key(&key, &mut ctx),
        ViewId::Logs => app.logs.handle_key(&key, &mut ctx),
        ViewId::Work => app.work.handle_key(&key, &mut ctx),
    };
    if let Some((text, error)) = ctx.status.take() {
        app.set_status(text, error);
    }
    if let Some(dialog) = ctx.confirm.take() {
        app.confirm = Some(dialog);
    }
    if let Some(compose) = ctx.compose.take() {
        app.compose = Some(compose);
    }
    if handled == Handled::Consumed {
        return ctx.commands;
    }
    // 4. global keys
    match key.code {
        KeyCode::Char('q') => {
            app.quit = true;
            return vec![Command::Quit];
        }
        KeyCode::Tab => app.view = app.view.next(),
        KeyCode::BackTab => app.view = app.view.prev(),
        KeyCode::Char(c @ '1'..='9') if ((c as u8 - b'1') as usize) < ViewId::ALL.len() => {
            app.view = ViewId::ALL[(c as u8 - b'1') as usize];
        }
        KeyCode::Char('?') => app.help = true,
        KeyCode::Esc => app.status = None,
        _ => {}
    }
    ctx.commands
}

fn on_net(app: &mut App, net: Net) -> Vec<Command> {
    let mut cmds = Vec::new();
    match net {
        Net::Conn(conn) => {
            if conn == Conn::Connected
                && matches!(app.conn, Conn::Reconnecting { .. } | Conn::AuthError { .. })
            {
                // a reconnect (the server may have restarted): read the log ring again at once
                // rather than wait for the log stream's own retry or for new records
                cmds.push(Command::SetLogLevel(app.logs.level));
            }
            app.conn = conn;
        }
        Net::Snapshot(snap) => {
            if snap.reset {
                app.events = EventsView {
                    show_system: app.events.show_system,
                    filter: app.events.filter.clone(),
                    ..EventsView::default()
                };
                // messages are merged by id, and ids start over too
                app.work.messages = crate::views::work::messages::MessagesSection {
                    filter: app.work.messages.filter.clone(),
                    ..Default::default()
                };
                app.instances.unread.clear();
                app.set_status_on(
                    None,
                    "the server's event history started over (new data dir?)",
                    true,
                );
            }
            app.snapshot_id = snap.metrics.last_event_id;
            app.metrics = Some(snap.metrics);
            app.state.set_keys(snap.state, app.now_ms);
            app.instances.set_list(snap.instances, app.now_ms);
            for ev in snap.recent {
                learn_project(app, &ev, &mut cmds);
                app.events.push(ev);
            }
            app.events.follow_to_end(app.page());
            app.projects.extend(snap.projects);
            cmds.push(Command::FetchWebhooks);
            for p in &app.projects {
                cmds.push(Command::FetchSpecs(p.clone()));
            }
            if let Some(pane) = &app.state.detail {
                cmds.push(pane.target.command());
            }
        }
        Net::Events(events) => {
            for ev in events {
                on_event(app, ev, &mut cmds);
            }
        }
        Net::Gap { from, to } => {
            app.set_status_on(
                Some(ViewId::Events),
                format!("events #{from}..#{to} were pruned before the stream resumed"),
                true,
            );
        }
        Net::Instances(list) => app.instances.set_list(list, app.now_ms),
        Net::Instance(inst) => app.instances.upsert(*inst, app.now_ms),
        Net::Specs(list) => app.state.set_specs(list, app.now_ms),
        Net::Webhooks(list) => app.webhooks = list,
        Net::LogSnapshot(records) => {
            app.logs.replace(records);
        }
        Net::Logs(records) => {
            for r in records {
                app.logs.push(r);
            }
        }
        Net::LogsDown(why) => app.logs.down = Some(why),
        Net::Detail(result) => {
            let title = result.as_ref().ok().map(|d| d.title.clone());
            app.state.detail_loaded(result, title.as_deref());
        }
        Net::Locks { locks, as_of } => app.work.locks.set_list(locks, as_of, app.now_ms),
        Net::Lock(lock) => app.work.locks.upsert(*lock),
        Net::LockReleased { name, fence, error } => match error {
            None => {
                app.work.locks.ended(&name, Some(fence), app.now_ms);
                app.set_status(format!("✓ released lock {name}"), false);
            }
            Some(err) => app.set_status(format!("✗ could not release {name}: {err}"), true),
        },
        Net::Boards(projects) => {
            cmds.extend(app.work.tasks.learn(projects));
            // a (re)connect: read the shown board again
            if let Some(p) = &app.work.tasks.project
                && !cmds.contains(&Command::RefreshTasks(p.clone()))
            {
                cmds.push(Command::RefreshTasks(p.clone()));
            }
        }
        Net::Tasks {
            project,
            tasks,
            as_of,
        } => app.work.tasks.set_list(&project, tasks, as_of),
        Net::TaskReleased { project, id, error } => match error {
            None => {
                app.set_status(format!("✓ {id} is open again"), false);
                if app.work.tasks.project.as_deref() == Some(project.as_str()) {
                    cmds.push(Command::RefreshTasks(project));
                }
            }
            Some(err) => app.set_status(format!("✗ could not release {id}: {err}"), true),
        },
        Net::Reservations { list, as_of } => {
            app.work.reservations.set_list(list, as_of, app.now_ms);
        }
        Net::ReservationReleased {
            id,
            fence,
            path,
            error,
        } => match error {
            None => {
                app.work.reservations.ended(&id, Some(fence), app.now_ms);
                app.set_status(format!("✓ released reservation {path}"), false);
            }
            Some(err) => app.set_status(format!("✗ could not release {path}: {err}"), true),
        },
        Net::Messages { messages, unread } => {
            app.work.messages.set_list(messages);
            if let Some(unread) = unread {
                app.instances.unread = unread;
            }
        }
        Net::MessageSent {
            to_name,
            operator,
            error,
        } => {
            if operator.is_some() {
                app.operator = operator;
            }
            match error {
                None => app.set_status(format!("✓ sent to {to_name}"), false),
                Some(err) => {
                    app.set_status(format!("✗ could not send to {to_name}: {err}"), true);
                }
            }
        }
        Net::Deregistered(results) => {
            let ok: Vec<&(String, String, Option<String>)> =
                results.iter().filter(|r| r.2.is_none()).collect();
            let failed: Vec<&(String, String, Option<String>)> =
                results.iter().filter(|r| r.2.is_some()).collect();
            for (_, id, _) in &ok {
                app.instances.remove(id, app.now_ms);
            }
            let names = |rs: &[&(String, String, Option<String>)]| {
                rs.iter()
                    .map(|r| r.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let on = Some(ViewId::Instances);
            match (ok.len(), failed.first()) {
                (_, None) => app.set_status_on(on, format!("✓ deregistered {}", names(&ok)), false),
                (0, Some((name, _, err))) => app.set_status_on(
                    on,
                    format!(
                        "✗ could not deregister {name}: {}",
                        err.as_deref().unwrap_or("")
                    ),
                    true,
                ),
                (n, Some((_, _, err))) => app.set_status_on(
                    on,
                    format!(
                        "deregistered {n}; ✗ failed {}: {}",
                        names(&failed),
                        err.as_deref().unwrap_or("")
                    ),
                    true,
                ),
            }
        }
    }
    cmds
}

fn learn_project(app: &mut App, ev: &Event, cmds: &mut Vec<Command>) {
    if ev.topic.starts_with("koor.spec.")
        && let Some(p) = ev.data.get("project").and_then(Value::as_str)
        && app.projects.insert(p.to_owned())
        && app.conn == Conn::Connected
    {
        cmds.push(Command::FetchSpecs(p.to_owned()));
    }
}

fn str_field<'a>(data: &'a Value, name: &str) -> &'a str {
    data.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn int_field(data: &Value, name: &str) -> i64 {
    data.get(name).and_then(Value::as_i64).unwrap_or_default()
}

/// One event from the live stream: into the Events list, and when it is a system event newer than
/// the snapshot, into the State and Instances lists.
fn on_event(app: &mut App, ev: Event, cmds: &mut Vec<Command>) {
    if ev.id <= app.events.last_id() {
        return;
    }
    let apply = ev.id > app.snapshot_id && is_system_topic(&ev.topic);
    if apply {
        learn_project(app, &ev, cmds);
        let d = &ev.data;
        let now = app.now_ms;
        match ev.topic.as_str() {
            "koor.state.updated" => {
                let key = str_field(d, "key").to_owned();
                app.state.key_updated(
                    StateSummary {
                        key: key.clone(),
                        version: int_field(d, "version"),
                        content_type: str_field(d, "content_type").to_owned(),
                        updated_at: ev.created_at.clone(),
                        size: int_field(d, "size"),
                    },
                    now,
                );
                if app.state.detail.as_ref().is_some_and(
                    |p| matches!(&p.target, crate::views::state::Target::Key(k) if *k == key),
                ) {
                    cmds.push(Command::LoadState(key));
                }
            }
            "koor.state.deleted" => app.state.key_deleted(str_field(d, "key")),
            "koor.spec.updated" => app.state.spec_updated(
                str_field(d, "project"),
                str_field(d, "name"),
                int_field(d, "version"),
                &ev.created_at,
                now,
            ),
            "koor.spec.deleted" => app
                .state
                .spec_deleted(str_field(d, "project"), str_field(d, "name")),
            "koor.instance.registered" | "koor.instance.updated" => {
                let id = str_field(d, "id");
                app.instances.set_status(
                    id,
                    str_field(d, "name"),
                    str_field(d, "status"),
                    Some(&ev.created_at),
                    now,
                );
                cmds.push(Command::FetchInstance(id.to_owned()));
            }
            "koor.instance.stale" => {
                let seen = d.get("last_seen").and_then(Value::as_str);
                app.instances.set_status(
                    str_field(d, "id"),
                    str_field(d, "name"),
                    "stale",
                    seen,
                    now,
                );
            }
            "koor.instance.deregistered" => app.instances.remove(str_field(d, "id"), now),
            "koor.message.sent" => {
                // counted at once; the next listing brings the server's counts
                for to in d.get("to").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(id) = to.get("id").and_then(Value::as_str) {
                        *app.instances.unread.entry(id.to_owned()).or_insert(0) += 1;
                    }
                }
                app.work
                    .on_event(&ev.topic, d, &ev.created_at, ev.id, now, cmds);
            }
            t if t.starts_with("koor.webhook.") => cmds.push(Command::FetchWebhooks),
            topic => {
                app.work
                    .on_event(topic, d, &ev.created_at, ev.id, now, cmds);
            }
        }
    }
    app.events.push(ev);
}

#[cfg(test)]
pub(crate) mod tests;
