//! The real `koor-cli` binary against a real server (in-process, loopback, temp data dir).
//!
//! Each test starts its own server and runs the binary with a clean environment: a temp working
//! directory (for `./settings.json`), a temp `HOME`, no inherited `KOOR_*` variables, and no TTY.

mod harness;

mod config;
mod docs;
mod enforcement;
mod errors;
mod events;
mod flow;
mod identity;
mod init;
mod instances;
mod locks;
mod messages;
mod misc;
mod ops;
mod reservations;
mod rules;
mod specs;
mod state;
mod tasks;
