//! The Koor wire protocol, shared by `koor-server`, `koor-cli` and `koor-tui`.
//!
//! # Layout
//!
//! - [`types`]: the JSON bodies of `API.md` (state, specs, events, instances, health).
//! - [`ops`]: the JSON bodies of webhooks and the audit log, and the webhook headers.
//! - [`rules`]: the JSON bodies of validation rules, proposals and validation runs.
//! - [`error`]: the `{"error","code"}` error body.
//! - [`etag`]: [`etag::ContentHash`], the SHA-256 of stored bytes, and ETag header comparison.
//! - [`topic`]: topic pattern matching for the event bus.
//! - [`time`]: RFC 3339 timestamps and the `3h24m10s` uptime format.
//! - [`config`]: client configuration resolution (env > workspace file > user file > default).
//! - [`identity`]: (ext) the agent identity file `.koor/instance.json` and `KOOR_INSTANCE`.
//! - [`paths`]: (ext) project paths of file reservations: normalisation, globs, overlap.
//! - [`client`]: an HTTP + WebSocket client for the API.

pub mod client;
pub mod config;
pub mod error;
pub mod etag;
pub mod identity;
pub mod ops;
pub mod paths;
pub mod rules;
pub mod time;
pub mod topic;
pub mod types;

pub use error::ErrorBody;
pub use etag::ContentHash;

/// Default API address of the server.
pub const DEFAULT_BIND: &str = "localhost:9800";
/// Default address of the dashboard listener.
pub const DEFAULT_DASHBOARD_BIND: &str = "localhost:9847";
/// Default server URL used by the clients.
pub const DEFAULT_SERVER_URL: &str = "http://localhost:9800";
/// Largest stored value accepted (10 MiB).
pub const MAX_VALUE_BYTES: usize = 10 * 1024 * 1024;
/// Header carrying the version of a stored value.
pub const VERSION_HEADER: &str = "x-koor-version";
/// (ext) Header for a conditional write on a version number.
pub const IF_VERSION_HEADER: &str = "x-koor-if-version";
/// (ext) Header proving a call is made by the instance it names (the token from registration).
pub const INSTANCE_TOKEN_HEADER: &str = "x-koor-instance-token";
