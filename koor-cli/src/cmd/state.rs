//! `state ...`: the flat, versioned key/value store.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use koor_shared::client::WriteCondition;

use super::done;
use crate::Ctx;
use crate::input::ValueArgs;

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// List every key with its version, content type and update time (no values).
    #[command(after_help = "Example:\n  koor-cli state list --pretty")]
    List,

    /// Print a key's stored value, byte for byte (--pretty indents a JSON value).
    #[command(
        after_help = "Example:\n  koor-cli state get api-contract\n  koor-cli state get api-contract --version 2\n  koor-cli state get logo.png > logo.png"
    )]
    Get {
        /// The key (may contain '/').
        key: String,
        /// Print this older version instead of the current one.
        #[arg(long, value_name = "N")]
        version: Option<i64>,
    },

    /// Store a value (from --data, --file or stdin) as the key's next version.
    #[command(
        after_help = "Example:\n  koor-cli state set api-contract --data '{\"endpoint\":\"/users\"}'\n  koor-cli state set build-config --file ./build.json\n  cat logo.png | koor-cli state set logo.png --content-type image/png\n  koor-cli state set lock --create-only --data '{\"owner\":\"agent-1\"}'"
    )]
    Set {
        /// The key (may contain '/').
        key: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Content type stored with the value [default: application/json for a JSON value,
        /// text/plain; charset=utf-8 for other text, application/octet-stream for bytes].
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        #[command(flatten)]
        cond: Conditions,
        /// Only create: fail with exit 6 when the key already exists (If-None-Match: *).
        #[arg(long, conflicts_with_all = ["if_match", "if_version"])]
        create_only: bool,
    },

    /// Delete a key and its history.
    #[command(
        after_help = "Example:\n  koor-cli state delete api-contract\n  koor-cli state delete lock --if-version 3"
    )]
    Delete {
        /// The key (may contain '/').
        key: String,
        #[command(flatten)]
        cond: Conditions,
    },

    /// List a key's versions, newest first.
    #[command(after_help = "Example:\n  koor-cli state history api-contract --limit 5")]
    History {
        /// The key (may contain '/').
        key: String,
        /// At most this many versions (server default 50).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },

    /// Restore an older version's value as a new version.
    #[command(after_help = "Example:\n  koor-cli state rollback api-contract --version 1")]
    Rollback {
        /// The key (may contain '/').
        key: String,
        /// The version to restore.
        #[arg(long, value_name = "N")]
        version: i64,
    },

    /// Show the JSON-pointer differences between two versions of a JSON value.
    #[command(after_help = "Example:\n  koor-cli state diff api-contract --v1 1 --v2 2 --pretty")]
    Diff {
        /// The key (may contain '/').
        key: String,
        /// The older version.
        #[arg(long, value_name = "N")]
        v1: i64,
        /// The newer version.
        #[arg(long, value_name = "N")]
        v2: i64,
    },
}

/// Optimistic concurrency: the write goes through only if the value is still the one you read.
#[derive(Debug, Clone, Args)]
pub struct Conditions {
    /// Only if the current value has this ETag/hash (If-Match); exit 6 otherwise.
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
    /// Only if the current version is N (X-Koor-If-Version); exit 6 otherwise.
    #[arg(long, value_name = "N")]
    pub if_version: Option<i64>,
}

impl Conditions {
    pub fn to_condition(&self, create_only: bool) -> WriteCondition {
        WriteCondition {
            if_match: self.if_match.clone(),
            if_version: self.if_version,
            create_only,
        }
    }
}

/// What a value is, for a write that does not name its content type: JSON, other UTF-8 text, or
/// bytes.
fn content_type_of(bytes: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        "application/json"
    } else if std::str::from_utf8(bytes).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

impl StateCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            StateCmd::List => {
                let keys = ctx.client()?.state_list().await?;
                ctx.out.json(&keys)?;
            }
            StateCmd::Get { key, version } => {
                let value = ctx.client()?.state_get(&key, version).await?;
                ctx.out.raw(&value.bytes)?;
            }
            StateCmd::Set {
                key,
                value,
                content_type,
                cond,
                create_only,
            } => {
                let bytes = value.read()?;
                let content_type = content_type.unwrap_or_else(|| content_type_of(&bytes).into());
                let client = ctx.client()?;
                let written = client
                    .state_set(&key, bytes, &content_type, &cond.to_condition(create_only))
                    .await?;
                ctx.out.json(&written)?;
            }
            StateCmd::Delete { key, cond } => {
                let deleted = ctx
                    .client()?
                    .state_delete(&key, &cond.to_condition(false))
                    .await?;
                ctx.out.json(&deleted)?;
            }
            StateCmd::History { key, limit } => {
                let history = ctx.client()?.state_history(&key, limit).await?;
                ctx.out.json(&history)?;
            }
            StateCmd::Rollback { key, version } => {
                let rolled = ctx.client()?.state_rollback(&key, version).await?;
                ctx.out.json(&rolled)?;
            }
            StateCmd::Diff { key, v1, v2 } => {
                let diff = ctx.client()?.state_diff(&key, v1, v2).await?;
                ctx.out.json(&diff)?;
            }
        }
        done()
    }
}

#[cfg(test)]
mod tests {
    use super::content_type_of;

    #[test]
    fn values_are_labelled_by_what_they_are() {
        assert_eq!(content_type_of(br#"{"a":1}"#), "application/json");
        assert_eq!(content_type_of(b" [1, 2]\n"), "application/json");
        assert_eq!(content_type_of(b"42"), "application/json");
        assert_eq!(content_type_of(b"plain text"), "text/plain; charset=utf-8");
        assert_eq!(content_type_of(b""), "text/plain; charset=utf-8");
        assert_eq!(
            content_type_of(&[0xff, 0x00, 0x10]),
            "application/octet-stream"
        );
    }
}
