//! Exit codes and the one-line error report.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (also Ctrl-C on `events subscribe`, and a closed stdout pipe) |
//! | 1 | other failure: unreadable file, bad settings file, request broken in flight, unexpected answer |
//! | 2 | usage error: unknown command or flag, missing or bad argument, no value to send |
//! | 3 | cannot connect to the server |
//! | 4 | unauthorized (401): missing or wrong token |
//! | 5 | not found (404) |
//! | 6 | precondition failed (412): a conditional write lost |
//! | 7 | any other error status from the server (400, 405, 413, 5xx, ...) |
//! | 8 | `validate` found error-severity violations (the report is on stdout) |
//! | 9 | conflict (409): a lock or task held by another instance (also after `--wait` ran out), not the holder, or a task that is not ready |
//! | 10 | `wait` or `inbox --wait`: the wait ended with nothing to show |

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use koor_shared::client::ClientError;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const CONNECT: u8 = 3;
pub const UNAUTHORIZED: u8 = 4;
pub const NOT_FOUND: u8 = 5;
pub const PRECONDITION: u8 = 6;
pub const SERVER: u8 = 7;
/// `validate` ran and found violations of severity `error`.
pub const VALIDATION: u8 = 8;
/// (ext) Conflict (409): held by another instance, or not the holder.
pub const CONFLICT: u8 = 9;
/// (ext) `wait` / `inbox --wait` ended without a matching event or message.
pub const WAIT_TIMEOUT: u8 = 10;

/// A command line that parses but makes no sense (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// A client error with where the server URL came from, for the connection hint.
#[derive(Debug)]
pub struct ServerFailure {
    pub err: ClientError,
    pub server_source: Option<String>,
}

impl fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.err.fmt(f)
    }
}

impl std::error::Error for ServerFailure {}

/// Attaches the origin of the server setting to a client error.
pub fn locate(err: anyhow::Error, server_source: Option<String>) -> anyhow::Error {
    match err.downcast::<ClientError>() {
        Ok(err) => ServerFailure { err, server_source }.into(),
        Err(err) => err,
    }
}

/// Prints `err` once on stderr as one line and returns its exit code. A broken pipe is a quiet 0.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let (code, message) = classify(err);
    let line = message.replace(['\n', '\r'], " ");
    let _ = writeln!(io::stderr().lock(), "koor-cli: {line}");
    ExitCode::from(code)
}

/// Whether the error is stdout (or any pipe) closed by the reader, as in `koor-cli ... | head`.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The exit code and message for an error.
pub fn classify(err: &anyhow::Error) -> (u8, String) {
    if let Some(u) = err.downcast_ref::<UsageError>() {
        return (USAGE, u.0.clone());
    }
    if let Some(f) = err.downcast_ref::<ServerFailure>() {
        return client_message(&f.err, f.server_source.as_deref());
    }
    if let Some(e) = err.downcast_ref::<ClientError>() {
        return client_message(e, None);
    }
    (FAILURE, format!("{err:#}"))
}

fn client_message(err: &ClientError, server_source: Option<&str>) -> (u8, String) {
    match err {
        ClientError::Connect { server, reason } => {
            let from = match server_source {
                Some("default") => " (the default)".to_owned(),
                Some(s) => format!(" (set by {s})"),
                None => String::new(),
            };
            (
                CONNECT,
                format!(
                    "connection refused: cannot reach the Koor server at {server}{from}: {reason}; \
                     start the server with `koor-server` (from a checkout: \
                     `cargo run --release -p koor-server`), or point the CLI at it with \
                     KOOR_SERVER=http://HOST:PORT or `koor-cli config set server URL`"
                ),
            )
        }
        ClientError::Api { status: 401, body } => (
            UNAUTHORIZED,
            format!(
                "{} (HTTP 401); set the token with `koor-cli config set token TOKEN` \
                 or the KOOR_TOKEN environment variable",
                body.error
            ),
        ),
        ClientError::Api { status, body } => {
            let code = match status {
                404 => NOT_FOUND,
                409 => CONFLICT,
                412 => PRECONDITION,
                _ => SERVER,
            };
            (code, format!("{} (HTTP {status})", body.error))
        }
        ClientError::Protocol(message) => (FAILURE, message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use koor_shared::ErrorBody;

    use super::*;

    fn api(status: u16, msg: &str) -> anyhow::Error {
        ClientError::Api {
            status,
            body: ErrorBody::new(status, msg),
        }
        .into()
    }

    #[test]
    fn codes_by_status() {
        assert_eq!(classify(&api(404, "key not found: k")).0, NOT_FOUND);
        assert_eq!(classify(&api(412, "precondition failed")).0, PRECONDITION);
        assert_eq!(classify(&api(409, "lock held by x")).0, CONFLICT);
        assert_eq!(
            classify(&api(401, "invalid or missing bearer token")).0,
            UNAUTHORIZED
        );
        assert_eq!(classify(&api(400, "empty body")).0, SERVER);
        assert_eq!(classify(&api(500, "boom")).0, SERVER);
        assert_eq!(classify(&usage("no value")).0, USAGE);
        assert_eq!(classify(&anyhow::anyhow!("disk full")).0, FAILURE);
    }

    #[test]
    fn broken_pipe_is_found_through_context() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing output");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn connect_hint_names_the_fixes() {
        let err = locate(
            ClientError::Connect {
                server: "http://localhost:9800".into(),
                reason: "Connection refused (os error 111)".into(),
            }
            .into(),
            Some("env KOOR_SERVER".into()),
        );
        let (code, msg) = classify(&err);
        assert_eq!(code, CONNECT);
        for needle in [
            "connection refused",
            "cargo run --release -p koor-server",
            "KOOR_SERVER",
            "env KOOR_SERVER",
        ] {
            assert!(msg.contains(needle), "{msg}");
        }
    }
}
