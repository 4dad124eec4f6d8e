//! `config ...`: where the CLI finds its server and token.
//!
//! Resolution lives in `koor_shared::config` (flags > env > ./settings.json > user file >
//! default). `set` writes the user file, so a setting applies from every directory; `--local`
//! writes `./settings.json` instead, the workspace file the server also reads (it keeps every
//! other key), which overrides the user file in that directory. Tokens are never printed in full.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
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
    /// Save the server URL or token for every directory (the user file; --local: ./settings.json).
    #[command(
        after_help = "Example:\n  koor-cli config set server http://localhost:9801\n  koor-cli config set token \"$TOKEN\"\n  koor-cli config set server http://localhost:9802 --local"
    )]
    Set {
        /// Which setting.
        key: Key,
        /// Its value.
        value: String,
        #[command(flatten)]
        scope: Scope,
    },

    /// Remove a saved setting from the user file (--local: from ./settings.json).
    #[command(
        after_help = "Example:\n  koor-cli config unset token\n  koor-cli config unset server --local"
    )]
    Unset {
        /// Which setting.
        key: Key,
        #[command(flatten)]
        scope: Scope,
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

/// Which file `set` and `unset` edit.
#[derive(Debug, Clone, Copy, Args)]
pub struct Scope {
    /// Edit ./settings.json, which overrides the user file in this directory only.
    #[arg(long, conflicts_with = "global")]
    local: bool,
    /// Edit the user file (the default; kept for scripts that name it).
    #[arg(long)]
    global: bool,
}

fn workspace_path() -> PathBuf {
    std::env::current_dir()
        .map(|dir| dir.join(WORKSPACE_FILE))
        .unwrap_or_else(|_| PathBuf::from(WORKSPACE_FILE))
}

fn target(scope: Scope) -> Result<PathBuf> {
    if scope.local {
        Ok(workspace_path())
    } else {
        Ok(config::user_config_path()?)
    }
}

/// The workspace file when it sets `key` and `path` is the user file: it wins in this directory.
fn shadowed_by(path: &Path, key: Key) -> Option<PathBuf> {
    let workspace = workspace_path();
    if workspace == path {
        return None;
    }
    let map = config::read_object(&workspace).ok().flatten()?;
    map.get(key.name())
        .and_then(serde_json::Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .map(|_| workspace)
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
            ConfigCmd::Set { key, value, scope } => {
                let value = value.trim();
                if value.is_empty() {
                    return Err(usage(format!(
                        "empty {}: use `koor-cli config unset {}` to remove it",
                        key.name(),
                        key.name()
                    )));
                }
                let path = target(scope)?;
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
                let mut answer = json!({
                    "set": key.name(),
                    "value": shown,
                    "file": path.display().to_string(),
                });
                if let Some(local) = shadowed_by(&path, key) {
                    eprintln!(
                        "koor-cli: note: {} also sets {} and wins in this directory (koor-cli config unset {} --local)",
                        local.display(),
                        key.name(),
                        key.name()
                    );
                    answer["overridden_here_by"] = json!(local.display().to_string());
                }
                ctx.out.json(&answer)?;
            }
            ConfigCmd::Unset { key, scope } => {
                let path = target(scope)?;
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
