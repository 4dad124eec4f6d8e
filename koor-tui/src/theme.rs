//! Styles. Only the terminal's own 16 colours plus bold/dim/reverse, so the console reads on light
//! and dark backgrounds alike; with `NO_COLOR` set, colours are dropped and only modifiers remain
//! (every state also has a symbol or a word, so nothing depends on colour).

use ratatui::style::{Color, Modifier, Style};

/// The palette in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }

    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn accent(&self) -> Style {
        self.fg(Color::Cyan)
    }

    /// The selected row: reverse video works on every background.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// A row that changed a moment ago.
    pub fn changed(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// The active tab.
    pub fn tab_active(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// A key name in the footer and help.
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn table_header(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    /// An instance status: active green, pending yellow, stale red.
    pub fn status(&self, status: &str) -> Style {
        match status {
            "active" => self.good(),
            "pending" => self.warn(),
            "stale" => self.bad(),
            _ => Style::new(),
        }
    }

    /// A log level.
    pub fn level(&self, level: &str) -> Style {
        match level.to_ascii_lowercase().as_str() {
            "error" => self.bad(),
            "warn" | "warning" => self.warn(),
            "debug" | "trace" => self.dim(),
            _ => Style::new(),
        }
    }
}

/// The symbol of an instance status, so status reads without colour.
pub fn status_symbol(status: &str) -> &'static str {
    match status {
        "active" => "●",
        "pending" => "○",
        "stale" => "✗",
        _ => "?",
    }
}
