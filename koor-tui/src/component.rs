//! Building blocks shared by the views: what a key handler answers ([`Handled`]), what it may ask
//! of the app ([`Ctx`]), a keyed list cursor ([`Cursor`]), the `/` filter prompt ([`FilterInput`]),
//! a scrollable text pane ([`Pager`]) and the yes/no dialog ([`Confirm`]).
//!
//! Components change state only from inside [`crate::app::update`]; their render functions take
//! `&self`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::msg::Command;

/// Whether a component used a key (gitui's `EventState`): a consumed key never reaches the global
/// bindings, so a view's `d` or `q` inside a text prompt cannot fire a global action by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Consumed,
    NotConsumed,
}

/// A status-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
    pub at_ms: i64,
    /// The view it is about; it shows only there (`None`: on every view).
    pub view: Option<crate::views::ViewId>,
}

/// What a component's key handler sees of the app, and what it may ask for.
#[derive(Debug, Default)]
pub struct Ctx {
    pub now_ms: i64,
    pub readonly: bool,
    /// Rows a list shows at the current terminal size (for paging and scrolling).
    pub page: usize,
    pub commands: Vec<Command>,
    pub confirm: Option<Confirm>,
    /// (ext) A compose prompt to open.
    pub compose: Option<crate::compose::Compose>,
    pub status: Option<(String, bool)>,
}

impl Ctx {
    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), false));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some((text.into(), true));
    }
}

/// How far a navigation key moves a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    By(isize),
    Top,
    Bottom,
}

/// Reads the common navigation keys: `j`/`k`/arrows, PgUp/PgDn, Ctrl-d/Ctrl-u, `g`/`G`,
/// Home/End.
pub fn nav_key(key: &KeyEvent, page: usize) -> Option<Nav> {
    let page = page.max(1) as isize;
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('j') | KeyCode::Down if !ctrl => Nav::By(1),
        KeyCode::Char('k') | KeyCode::Up if !ctrl => Nav::By(-1),
        KeyCode::PageDown => Nav::By(page),
        KeyCode::PageUp => Nav::By(-page),
        KeyCode::Char('d') if ctrl => Nav::By(page / 2),
        KeyCode::Char('u') if ctrl => Nav::By(-(page / 2)),
        KeyCode::Char('g') | KeyCode::Home => Nav::Top,
        KeyCode::Char('G') | KeyCode::End => Nav::Bottom,
        _ => return None,
    })
}

/// A selection in a list whose rows come and go: remembered by key (so it stays on the same row
/// when others are inserted or removed), with the last position as a fallback and a scroll
/// offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor<K> {
    pub key: Option<K>,
    pub pos: usize,
    pub offset: usize,
}

impl<K> Default for Cursor<K> {
    fn default() -> Self {
        Self {
            key: None,
            pos: 0,
            offset: 0,
        }
    }
}

impl<K: PartialEq + Clone> Cursor<K> {
    /// The selected position in `keys`, `None` for an empty list.
    pub fn resolve(&self, keys: &[K]) -> Option<usize> {
        if keys.is_empty() {
            return None;
        }
        if let Some(k) = &self.key
            && let Some(p) = keys.iter().position(|x| x == k)
        {
            return Some(p);
        }
        Some(self.pos.min(keys.len() - 1))
    }

    /// Selects position `pos` (clamped) and scrolls so it is visible in `height` rows.
    pub fn select(&mut self, keys: &[K], pos: usize, height: usize) {
        if keys.is_empty() {
            *self = Self::default();
            return;
        }
        let pos = pos.min(keys.len() - 1);
        self.key = Some(keys[pos].clone());
        self.pos = pos;
        self.offset = window(keys.len(), pos, self.offset, height);
    }

    /// Applies a navigation.
    pub fn apply(&mut self, keys: &[K], nav: Nav, height: usize) {
        let Some(cur) = self.resolve(keys) else {
            return;
        };
        let last = keys.len() - 1;
        let pos = match nav {
            Nav::By(d) => (cur as isize + d).clamp(0, last as isize) as usize,
            Nav::Top => 0,
            Nav::Bottom => last,
        };
        self.select(keys, pos, height);
    }
}

/// The first visible row so that `selected` shows in `height` rows, starting from the
/// remembered `offset` and moving it as little as possible.
pub fn window(len: usize, selected: usize, offset: usize, height: usize) -> usize {
    if height == 0 || len == 0 {
        return 0;
    }
    let mut off = offset.min(selected);
    if selected >= off + height {
        off = selected + 1 - height;
    }
    off.min(len.saturating_sub(height))
}

/// The `/` prompt. While editing, the filter applies as you type; Enter keeps it, Esc restores
/// the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput {
    pub text: String,
    pub editing: bool,
    before: String,
}

impl FilterInput {
    pub fn start(&mut self) {
        self.before = self.text.clone();
        self.editing = true;
    }

    /// Handles a key while editing (all keys are consumed).
    pub fn handle_key(&mut self, key: &KeyEvent) -> Handled {
        match key.code {
            KeyCode::Enter => self.editing = false,
            KeyCode::Esc => {
                self.text = std::mem::take(&mut self.before);
                self.editing = false;
            }
            KeyCode::Backspace => {
                self.text.pop();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.push(c);
            }
            _ => {}
        }
        Handled::Consumed
    }

    pub fn is_active(&self) -> bool {
        !self.text.trim().is_empty()
    }

    /// Lower-cased whitespace-separated terms.
    pub fn terms(&self) -> Vec<String> {
        self.text
            .split_whitespace()
            .map(str::to_lowercase)
            .collect()
    }
}

/// A scrollable text pane (event JSON, a key's value, an instance's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pager {
    pub scroll: usize,
}

impl Pager {
    /// Scrolls on navigation keys; `lines` is the content's length.
    pub fn handle_key(&mut self, key: &KeyEvent, lines: usize, page: usize) -> Handled {
        let Some(nav) = nav_key(key, page) else {
            return Handled::NotConsumed;
        };
        let max = lines.saturating_sub(1);
        self.scroll = match nav {
            Nav::By(d) => (self.scroll as isize + d).clamp(0, max as isize) as usize,
            Nav::Top => 0,
            Nav::Bottom => lines.saturating_sub(page.max(1)),
        };
        Handled::Consumed
    }

    /// The first line to show in `height` rows of `lines`.
    pub fn top(&self, lines: usize, height: usize) -> usize {
        self.scroll.min(lines.saturating_sub(height))
    }
}

/// A yes/no question before a destructive action. The focus starts on No, so Enter alone
/// never destroys anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub message: String,
    pub yes_focused: bool,
    pub on_yes: Command,
}

/// The outcome of a key in the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Pending,
    No,
    Yes(Command),
}

impl Confirm {
    pub fn new(title: impl Into<String>, message: impl Into<String>, on_yes: Command) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
            yes_focused: false,
            on_yes,
        }
    }

    pub fn handle_key(&mut self, key: &KeyEvent) -> Answer {
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Answer::Yes(self.on_yes.clone()),
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                Answer::No
            }
            KeyCode::Left
            | KeyCode::Right
            | KeyCode::Tab
            | KeyCode::BackTab
            | KeyCode::Char('h')
            | KeyCode::Char('l') => {
                self.yes_focused = !self.yes_focused;
                Answer::Pending
            }
            KeyCode::Enter if self.yes_focused => Answer::Yes(self.on_yes.clone()),
            KeyCode::Enter => Answer::No,
            _ => Answer::Pending,
        }
    }
}

/// Keys of an open detail pager: Esc/Backspace closes it, the rest scroll its `lines`. `None` when
/// no detail is open.
pub fn detail_key<K>(
    detail: &mut Option<(K, Pager)>,
    key: &KeyEvent,
    lines: usize,
    page: usize,
) -> Option<Handled> {
    let (_, pager) = detail.as_mut()?;
    if matches!(key.code, KeyCode::Esc | KeyCode::Backspace) {
        *detail = None;
        return Some(Handled::Consumed);
    }
    Some(pager.handle_key(key, lines, page))
}

/// The keys every list section of the Work view handles alike: typing into its filter, paging its
/// open detail (except `own`, the section's action key, which still works from the detail), and
/// moving its cursor over `ids`. `None` when the key is the section's to handle.
#[allow(clippy::too_many_arguments)]
pub fn list_key<K: PartialEq + Clone>(
    filter: &mut FilterInput,
    detail: &mut Option<(K, Pager)>,
    cursor: &mut Cursor<K>,
    ids: &[K],
    detail_lines: usize,
    key: &KeyEvent,
    page: usize,
    own: bool,
) -> Option<Handled> {
    if filter.editing {
        return Some(filter.handle_key(key));
    }
    if detail.is_some() && !own {
        return Some(detail_key(detail, key, detail_lines, page).unwrap_or(Handled::NotConsumed));
    }
    let nav = nav_key(key, page)?;
    cursor.apply(ids, nav, page);
    Some(Handled::Consumed)
}

/// In a live stream (events, logs), keeps the selection on the newest entry while following.
pub fn follow_to_end<K: PartialEq + Clone>(
    cursor: &mut Cursor<K>,
    follow: bool,
    keys: &[K],
    page: usize,
) {
    if follow && let Some(last) = keys.len().checked_sub(1) {
        cursor.select(keys, last, page);
    }
}

/// Moves a live stream's cursor: follow mode holds while the selection is on the newest entry
/// (or after End), and stops on any move away from it.
pub fn stream_nav<K: PartialEq + Clone>(
    cursor: &mut Cursor<K>,
    follow: &mut bool,
    keys: &[K],
    nav: Nav,
    page: usize,
) {
    follow_to_end(cursor, *follow, keys, page);
    cursor.apply(keys, nav, page);
    let at_end = cursor.resolve(keys).is_none_or(|p| p + 1 >= keys.len());
    *follow = matches!(nav, Nav::Bottom) || (at_end && !matches!(nav, Nav::Top));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn cursor_follows_its_key_and_scrolls() {
        let keys: Vec<i32> = (0..100).collect();
        let mut c = Cursor::default();
        c.apply(&keys, Nav::By(1), 10);
        assert_eq!(c.key, Some(1));
        c.apply(&keys, Nav::By(20), 10);
        assert_eq!((c.pos, c.offset), (21, 12));
        c.apply(&keys, Nav::By(-5), 10);
        assert_eq!(
            (c.pos, c.offset),
            (16, 12),
            "moving up inside the window keeps it"
        );
        // a row above the selection is removed: still on the same key
        let fewer: Vec<i32> = keys.iter().copied().filter(|k| *k != 3).collect();
        assert_eq!(c.resolve(&fewer), Some(15));
        // the selected row is removed: falls back to the position
        let gone: Vec<i32> = keys.iter().copied().filter(|k| *k != 16).collect();
        assert_eq!(c.resolve(&gone), Some(16));
        c.apply(&keys, Nav::Bottom, 10);
        assert_eq!((c.pos, c.offset), (99, 90));
        assert_eq!(Cursor::<i32>::default().resolve(&[]), None);
    }

    #[test]
    fn confirm_defaults_to_no() {
        let mut d = Confirm::new("t", "m", Command::Quit);
        assert_eq!(d.handle_key(&key(KeyCode::Enter)), Answer::No);
        assert_eq!(d.handle_key(&key(KeyCode::Char('x'))), Answer::Pending);
        assert_eq!(d.handle_key(&key(KeyCode::Right)), Answer::Pending);
        assert_eq!(
            d.handle_key(&key(KeyCode::Enter)),
            Answer::Yes(Command::Quit)
        );
        assert_eq!(d.handle_key(&key(KeyCode::Esc)), Answer::No);
        assert_eq!(
            d.handle_key(&key(KeyCode::Char('y'))),
            Answer::Yes(Command::Quit)
        );
    }

    #[test]
    fn filter_input_edits_and_cancels() {
        let mut f = FilterInput::default();
        f.start();
        for c in "api".chars() {
            f.handle_key(&key(KeyCode::Char(c)));
        }
        f.handle_key(&key(KeyCode::Enter));
        assert_eq!((f.text.as_str(), f.editing), ("api", false));
        f.start();
        f.handle_key(&key(KeyCode::Backspace));
        assert_eq!(f.text, "ap");
        f.handle_key(&key(KeyCode::Esc));
        assert_eq!(f.text, "api", "Esc restores the previous filter");
    }
}
