//! Client configuration: which server to talk to and with what token.
//!
//! Both `koor-cli` and `koor-tui` resolve it here, highest priority first:
//!
//! 1. command-line flags (`--server`, `--token`);
//! 2. environment: `KOOR_SERVER`, `KOOR_TOKEN`;
//! 3. (server only) the agent identity `.koor/instance.json` found walking up (see
//!    [`crate::identity`]): the server the instance acting here registered with, which is the only
//!    server that knows it. So a git hook run by a GUI client or an IDE, with no `KOOR_SERVER` in
//!    its environment, still asks the right server. The CLI fills it in ([`Inputs::identity`]);
//!    the file records no bearer token, so the token goes on to the files below;
//! 4. the workspace file `./settings.json` (keys `server`, `token`), so each agent's workspace can
//!    point at its own server; the server reads its own keys from the same file and ignores these;
//! 5. the user file `$KOOR_CONFIG`, else `$XDG_CONFIG_HOME/koor/config.json`, else
//!    `~/.config/koor/config.json`: where `koor-cli config set` writes, so a setting holds in every
//!    directory of that user;
//! 6. the default `http://localhost:9800`, no token.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::DEFAULT_SERVER_URL;

/// Name of the per-workspace settings file.
pub const WORKSPACE_FILE: &str = "settings.json";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The resolved client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL without a trailing slash, e.g. `http://localhost:9800`.
    pub server: String,
    pub server_source: Source,
    /// Bearer token, if any. Never print it.
    pub token: Option<String>,
    pub token_source: Source,
}

/// A configuration file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a JSON object: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("no home directory: set KOOR_CONFIG or HOME")]
    NoHome,
}

/// Everything resolution looks at, so tests can supply their own.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub flag_server: Option<String>,
    pub flag_token: Option<String>,
    pub env_server: Option<String>,
    pub env_token: Option<String>,
    pub workspace_file: Option<PathBuf>,
    pub user_file: Option<PathBuf>,
    /// The server recorded in the identity file of the instance acting here, with the file's
    /// path (below flags and environment, above the settings files).
    pub identity: Option<(String, PathBuf)>,
}

impl Inputs {
    /// Inputs from the process environment and the current directory, plus the given flags.
    pub fn from_env(flag_server: Option<String>, flag_token: Option<String>) -> Self {
        Self {
            flag_server,
            flag_token,
            env_server: non_empty_env("KOOR_SERVER"),
            env_token: non_empty_env("KOOR_TOKEN"),
            // Absolute, so `config get` names the file a value came from unambiguously.
            workspace_file: Some(
                std::env::current_dir()
                    .map(|dir| dir.join(WORKSPACE_FILE))
                    .unwrap_or_else(|_| PathBuf::from(WORKSPACE_FILE)),
            ),
            user_file: user_config_path().ok(),
            identity: None,
        }
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The user-level config file path.
pub fn user_config_path() -> Result<PathBuf, ConfigError> {
    if let Some(path) = non_empty_env("KOOR_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = non_empty_env("XDG_CONFIG_HOME") {
        return Ok(Path::new(&dir).join("koor").join("config.json"));
    }
    non_empty_env("HOME")
        .map(|home| {
            Path::new(&home)
                .join(".config")
                .join("koor")
                .join("config.json")
        })
        .ok_or(ConfigError::NoHome)
}

/// Resolves the configuration from `inputs`.
pub fn resolve(inputs: &Inputs) -> Result<ClientConfig, ConfigError> {
    let mut files = Vec::new();
    for path in [&inputs.workspace_file, &inputs.user_file]
        .into_iter()
        .flatten()
    {
        if let Some(map) = read_object(path)? {
            files.push((path.clone(), map));
        }
    }
    let from_files = |key: &str| {
        files.iter().find_map(|(path, map)| {
            map.get(key)
                .and_then(Value::as_str)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v.to_owned(), Source::File(path.clone())))
        })
    };
    let (server, server_source) = if let Some(s) = &inputs.flag_server {
        (s.clone(), Source::Flag)
    } else if let Some(s) = &inputs.env_server {
        (s.clone(), Source::Env("KOOR_SERVER"))
    } else if let Some((s, path)) = inputs
        .identity
        .as_ref()
        .filter(|(s, _)| !s.trim().is_empty())
    {
        (s.clone(), Source::File(path.clone()))
    } else if let Some(found) = from_files("server") {
        found
    } else {
        (DEFAULT_SERVER_URL.to_owned(), Source::Default)
    };
    let (token, token_source) = if let Some(t) = &inputs.flag_token {
        (Some(t.clone()), Source::Flag)
    } else if let Some(t) = &inputs.env_token {
        (Some(t.clone()), Source::Env("KOOR_TOKEN"))
    } else if let Some((t, src)) = from_files("token") {
        (Some(t), src)
    } else {
        (None, Source::Default)
    };
    Ok(ClientConfig {
        server: normalize_server(&server),
        server_source,
        token: token.filter(|t| !t.is_empty()),
        token_source,
    })
}

/// A token made safe to show: `****` plus, for tokens of 16 characters or more, their last 4.
pub fn mask_token(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

/// Adds `http://` when the scheme is missing and drops trailing slashes.
pub fn normalize_server(raw: &str) -> String {
    let raw = raw.trim().trim_end_matches('/');
    if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    }
}

/// Reads a JSON object file; `Ok(None)` when it does not exist.
pub fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, ConfigError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ConfigError::Parse {
            path: path.to_owned(),
            reason: "expected an object".into(),
        }),
        Err(e) => Err(ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Sets `key` to `value` in the JSON object file at `path`, keeping its other keys. `None` removes
/// the key. Creates the file (and its directory) when needed; the write is atomic.
pub fn write_setting(path: &Path, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
    let mut map = read_object(path)?.unwrap_or_default();
    match value {
        Some(v) => {
            map.insert(key.to_owned(), Value::String(v.to_owned()));
        }
        None => {
            map.remove(key);
        }
    }
    let write_err = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).map_err(write_err)?;
    fs::rename(&tmp, path).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(dir: &Path) -> Inputs {
        Inputs {
            workspace_file: Some(dir.join("settings.json")),
            user_file: Some(dir.join("user").join("config.json")),
            ..Inputs::default()
        }
    }

    #[test]
    fn default_when_nothing_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = resolve(&inputs(dir.path())).expect("resolves");
        assert_eq!(cfg.server, "http://localhost:9800");
        assert_eq!(cfg.server_source, Source::Default);
        assert_eq!(cfg.token, None);
    }

    #[test]
    fn priority_flag_env_workspace_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut inp = inputs(dir.path());
        let user = inp.user_file.clone().expect("user file");
        let ws = inp.workspace_file.clone().expect("workspace file");

        write_setting(&user, "server", Some("http://user:1")).expect("write");
        write_setting(&user, "token", Some("user-token")).expect("write");
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(cfg.server, "http://user:1");
        assert_eq!(cfg.token.as_deref(), Some("user-token"));

        write_setting(&ws, "server", Some("ws-host:2/")).expect("write");
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(cfg.server, "http://ws-host:2");
        assert_eq!(cfg.server_source, Source::File(ws.clone()));
        assert_eq!(
            cfg.token.as_deref(),
            Some("user-token"),
            "token still from user file"
        );

        inp.env_server = Some("http://env:3".into());
        inp.env_token = Some("env-token".into());
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(cfg.server, "http://env:3");
        assert_eq!(cfg.token.as_deref(), Some("env-token"));

        let identity = dir.path().join(".koor/instance.json");
        inp.identity = Some(("http://identity:5".into(), identity.clone()));
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(
            cfg.server, "http://env:3",
            "the environment wins over the identity"
        );
        inp.env_server = None;
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(
            cfg.server, "http://identity:5",
            "the identity wins over the files"
        );
        assert_eq!(cfg.server_source, Source::File(identity));
        assert_eq!(cfg.token.as_deref(), Some("env-token"));

        inp.flag_server = Some("http://flag:4".into());
        let cfg = resolve(&inp).expect("resolves");
        assert_eq!(cfg.server, "http://flag:4");
        assert_eq!(cfg.server_source, Source::Flag);
    }

    #[test]
    fn masked_tokens_never_show_short_tokens() {
        assert_eq!(mask_token("secret"), "****");
        assert_eq!(mask_token("0123456789abcdefWXYZ"), "****WXYZ");
        assert!(!mask_token("0123456789abcdef").contains("0123"));
    }

    #[test]
    fn write_keeps_other_keys_and_bad_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("settings.json");
        fs::write(&path, r#"{"bind":"localhost:9801"}"#).expect("write");
        write_setting(&path, "server", Some("http://x:1")).expect("write");
        let map = read_object(&path).expect("read").expect("exists");
        assert_eq!(map["bind"], "localhost:9801");
        assert_eq!(map["server"], "http://x:1");

        fs::write(&path, "not json").expect("write");
        let err = resolve(&inputs(dir.path())).expect_err("bad file");
        assert!(err.to_string().contains("settings.json"), "{err}");
    }
}
