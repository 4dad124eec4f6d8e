//! koor-tui: the Koor operator console for a terminal (tmux) pane.
//!
//! Built as model / update / view: every input becomes a [`msg::Msg`]; [`app::update`] is the
//! only place state changes and returns side effects as [`msg::Command`]s; [`ui::render`] only
//! reads the model; network I/O runs in background tasks ([`net`]) that send messages in.
//!
//! # Layout
//!
//! - [`msg`]: the message, network report and command types.
//! - [`app`]: the model and the update function.
//! - [`component`]: what key handlers answer, the list cursor, filter prompt, pager, dialog.
//! - [`views`]: Events, State (+ specs), Instances, Logs, Work (locks, tasks, reservations,
//!   messages): state, keys and drawing of each.
//! - [`compose`]: the prompt for a message from the operator to an agent.
//! - [`ui`]: the frame: header, tabs, status line, footer, help overlay, dialog, size notice.
//! - [`net`]: list-then-watch with reconnects, the log stream, one-shot requests.
//! - [`runtime`]: the terminal, the loop, frame coalescing, restore on exit and panic.
//! - [`theme`], [`format`]: styles (`NO_COLOR`) and text helpers.

pub mod app;
pub mod component;
pub mod compose;
pub mod format;
pub mod msg;
pub mod net;
pub mod runtime;
pub mod theme;
pub mod ui;
pub mod views;

pub use app::{App, Options, update};
pub use runtime::run;
