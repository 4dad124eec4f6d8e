//! The five views, and the drawing helpers they share (a windowed table, a text pager, the filter
//! prompt in a title).

pub mod events;
pub mod instances;
pub mod logs;
pub mod state;
pub mod work;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use crate::component::{FilterInput, Pager, window};
use crate::theme::Theme;

/// A key and what it does, for the footer and the help overlay.
pub type KeyHelp = (&'static str, &'static str);

/// The views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewId {
    Events,
    State,
    Instances,
    Logs,
    Work,
}

impl ViewId {
    pub const ALL: [ViewId; 5] = [
        ViewId::Events,
        ViewId::State,
        ViewId::Instances,
        ViewId::Logs,
        ViewId::Work,
    ];

    pub fn index(self) -> usize {
        ViewId::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            ViewId::Events => "Events",
            ViewId::State => "State",
            ViewId::Instances => "Instances",
            ViewId::Logs => "Logs",
            ViewId::Work => "Work",
        }
    }

    pub fn next(self) -> ViewId {
        ViewId::ALL[(self.index() + 1) % ViewId::ALL.len()]
    }

    pub fn prev(self) -> ViewId {
        ViewId::ALL[(self.index() + ViewId::ALL.len() - 1) % ViewId::ALL.len()]
    }
}

/// The filter as it shows in a view's title: the prompt while typing, else the active filter.
pub fn filter_title(filter: &FilterInput, theme: &Theme) -> Vec<Span<'static>> {
    if filter.editing {
        vec![
            Span::styled(" /", theme.key()),
            Span::raw(filter.text.clone()),
            Span::styled("▏", theme.key()),
            Span::styled(" ⏎ keep · Esc cancel ", theme.dim()),
        ]
    } else if filter.is_active() {
        vec![Span::styled(
            format!(" filter: {} ", filter.text.trim()),
            theme.accent(),
        )]
    } else {
        Vec::new()
    }
}

/// Draws rows `offset..` of a list of `len` rows as a table under a titled top rule; only the
/// rows that fit are built.
#[allow(clippy::too_many_arguments)]
pub fn draw_table<'a>(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    title: Line<'a>,
    cols: &[(&'static str, Constraint)],
    len: usize,
    selected: Option<usize>,
    highlight: bool,
    offset: usize,
    mut row: impl FnMut(usize) -> Row<'a>,
    empty: &str,
) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(title)
        .title_style(theme.title());
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height.saturating_sub(1) as usize;
    let offset = match selected {
        Some(s) => window(len, s, offset, height),
        None => offset.min(len.saturating_sub(height)),
    };
    let rows: Vec<Row<'a>> = (offset..(offset + height).min(len))
        .map(|i| {
            let r = row(i);
            if highlight && Some(i) == selected {
                r.style(theme.selected())
            } else {
                r
            }
        })
        .collect();
    let header = Row::new(cols.iter().map(|(t, _)| Cell::from(*t))).style(theme.table_header());
    let table = Table::new(rows, cols.iter().map(|c| c.1))
        .header(header)
        .column_spacing(1);
    f.render_widget(table, inner);
    if len == 0 && inner.height > 1 {
        let msg = Rect {
            y: inner.y + 1,
            height: 1,
            ..inner
        };
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(empty.to_owned(), theme.dim()))),
            msg,
        );
    }
}

/// Draws `text` scrolled as `pager` says, under a titled top rule.
pub fn draw_pager(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    title: String,
    text: &str,
    pager: &Pager,
) {
    let lines: Vec<&str> = text.lines().collect();
    let block = Block::new()
        .borders(Borders::TOP)
        .title(Line::from(title))
        .title_style(theme.title());
    let inner = block.inner(area);
    let height = inner.height as usize;
    let top = pager.top(lines.len(), height);
    let end = (top + height).min(lines.len());
    let block = if lines.len() > height {
        block.title(
            Line::from(Span::styled(
                format!(" {}-{} of {} ", top + 1, end, lines.len()),
                theme.dim(),
            ))
            .right_aligned(),
        )
    } else {
        block
    };
    f.render_widget(block, area);
    let shown: Vec<Line> = lines[top..end]
        .iter()
        .map(|l| Line::from((*l).to_owned()))
        .collect();
    f.render_widget(Paragraph::new(shown), inner);
}
