//! `config ...`: where the CLI finds its server and token.
//!
//! Resolution lives in `koor_shared::config` (flags > env > ./settings.json > user file >
//! default). `set` writes `./settings.json`, the workspace file the server also reads (it keeps
//! every other key), or the user file with `--global`. Tokens are never printed in full.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use koor_shared::config::{self, WORKSPACE_FILE, mask_token, normalize_server};
use serde_json::json;

use super::done;
use crate::Ctx;
use crate::exit::usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Key {
    /// The server URL, e.g. http://localhost:9800.
    Server,
    /// The bearer token the server was started with (--auth-token).
    Token,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Server => "server",
            Key::Token => "token",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Save the server URL or token in ./settings.json (or the user file with --global).
    #[command(
        after_help = "Example:\n  koor-cli config set server http://localhost:9801\n  koor-cli config set token \"$TOKEN\" --global"
    )]
    Set {
        /// Which setting.
        key: Key,
        /// Its value.
        value: String,
        /// Write the user file instead of ./settings.json.
        #[arg(long)]
        global: bool,
    },

    /// Remove a saved setting from ./settings.json (or the user file with --global).
    #[command(after_help = "Example:\n  koor-cli config unset token")]
    Unset {
        /// Which setting.
        key: Key,
        /// Edit the user file instead of ./settings.json.
        #[arg(long)]
        global: bool,
    },

    /// Show the settings in effect and where each comes from (the token masked).
    #[command(
        after_help = "Example:\n  koor-cli config get --pretty\n  koor-cli config get server"
    )]
    Get {
        /// Only this setting.
        key: Option<Key>,
    },

    /// Show the paths of the workspace and user config files.
    #[command(after_help = "Example:\n  koor-cli config path")]
    Path,
}

fn workspace_path() -> PathBuf {
    std::env::current_dir()
        .map(|dir| dir.join(WORKSPACE_FILE))
        .unwrap_or_else(|_| PathBuf::from(WORKSPACE_FILE))
}

fn target(global: bool) -> Result<PathBuf> {
    if global {
        Ok(config::user_config_path()?)
    } else {
        Ok(workspace_path())
    }
}

/// Keeps a file holding a token readable by its owner only.
fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl ConfigCmd {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            ConfigCmd::Set { key, value, global } => {
                let value = value.trim();
                if value.is_empty() {
                    return Err(usage(format!(
                        "empty {}: use `koor-cli config unset {}` to remove it",
                        key.name(),
                        key.name()
                    )));
                }
                let path = target(global)?;
                let (stored, shown) = match key {
                    Key::Server => {
                        let url = normalize_server(value);
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            return Err(usage(format!(
                                "server must be an http:// or https:// URL, got {value:?}"
                            )));
                        }
                        (url.clone(), url)
                    }
                    Key::Token => (value.to_owned(), mask_token(value)),
                };
                config::write_setting(&path, key.name(), Some(&stored))?;
                if key == Key::Token {
                    restrict(&path)?;
                }
                ctx.out.json(&json!({
                    "set": key.name(),
                    "value": shown,
                    "file": path.display().to_string(),
                }))?;
            }
            ConfigCmd::Unset { key, global } => {
                let path = target(global)?;
                let existed =
                    config::read_object(&path)?.is_some_and(|m| m.contains_key(key.name()));
                if existed {
                    config::write_setting(&path, key.name(), None)?;
                }
                ctx.out.json(&json!({
                    "unset": key.name(),
                    "was_set": existed,
                    "file": path.display().to_string(),
                }))?;
            }
            ConfigCmd::Get { key } => {
                let cfg = ctx.config()?;
                let server = json!({
                    "value": cfg.server,
                    "source": cfg.server_source.to_string(),
                });
                let token = json!({
                    "value": cfg.token.as_deref().map(mask_token),
                    "source": cfg.token_source.to_string(),
                });
                let shown = match key {
                    None => json!({ "server": server, "token": token }),
                    Some(Key::Server) => server,
                    Some(Key::Token) => token,
                };
                ctx.out.json(&shown)?;
            }
            ConfigCmd::Path => {
                let workspace = workspace_path();
                let user = config::user_config_path().ok();
                ctx.out.json(&json!({
                    "workspace": workspace.display().to_string(),
                    "workspace_exists": workspace.exists(),
                    "user": user.as_ref().map(|p| p.display().to_string()),
                    "user_exists": user.as_ref().is_some_and(|p| p.exists()),
                }))?;
            }
        }
        done()
    }
}
