//! (ext) The agent identity that survives a restart: `.koor/instance.json`.
//!
//! `koor-cli register NAME` saves `{"server","id","token","name","project"}` there (mode 0600) at
//! the top of the current git repository, else in the current directory. Commands that act for an
//! instance find the file by walking up from the current directory, as git finds `.git`.
//! `KOOR_INSTANCE` (an id) and `KOOR_INSTANCE_TOKEN` override what the file says.
//!
//! The CLI uses this module today; hooks and other clients can share it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory that holds the identity file.
pub const DIR: &str = ".koor";
/// The identity file's name inside [`DIR`].
pub const FILE: &str = "instance.json";
/// Environment variable naming the instance id (overrides the file).
pub const ENV_INSTANCE: &str = "KOOR_INSTANCE";
/// Environment variable carrying the instance token (overrides the file).
pub const ENV_INSTANCE_TOKEN: &str = "KOOR_INSTANCE_TOKEN";

/// The saved identity: what `koor-cli register` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The server the instance is registered with.
    pub server: String,
    pub id: String,
    /// The instance token from registration. Never print it.
    pub token: String,
    pub name: String,
    /// The project given with `register --project`, for hooks and guards.
    #[serde(default)]
    pub project: Option<String>,
}

/// Where the id acted for came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// `KOOR_INSTANCE`.
    Env,
    /// An identity file.
    File(PathBuf),
}

impl std::fmt::Display for IdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdSource::Env => write!(f, "env {ENV_INSTANCE}"),
            IdSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// The instance the current directory acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub id: String,
    /// The token to send as `X-Koor-Instance-Token`, when known. Never print it.
    pub token: Option<String>,
    pub source: IdSource,
    /// The identity file found walking up (also when `KOOR_INSTANCE` overrides its id).
    pub file: Option<(PathBuf, Identity)>,
}

impl Current {
    /// The saved identity, when it is the one acted for.
    pub fn saved(&self) -> Option<&Identity> {
        self.file
            .as_ref()
            .map(|(_, saved)| saved)
            .filter(|saved| saved.id == self.id)
    }

    /// The token for a call on behalf of `id`: ours when `id` is us, else none.
    pub fn token_for(&self, id: &str) -> Option<&str> {
        if id == self.id {
            self.token.as_deref()
        } else {
            None
        }
    }
}

/// An identity file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not an instance identity: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The identity file inside `dir`: `dir/.koor/instance.json`.
pub fn file_in(dir: &Path) -> PathBuf {
    dir.join(DIR).join(FILE)
}

/// The nearest identity file at or above `start`, as git finds `.git`.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(file_in)
        .find(|path| path.is_file())
}

/// Where `register` saves by default: the top of the git repository holding `cwd` (the nearest
/// directory with a `.git` entry, a directory or a worktree's file), else `cwd` itself.
pub fn default_dir(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

/// Reads an identity file.
pub fn read(path: &Path) -> Result<Identity, IdentityError> {
    let text = fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })?;
    let identity: Identity =
        serde_json::from_str(&text).map_err(|e| IdentityError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if identity.id.trim().is_empty() {
        return Err(IdentityError::Parse {
            path: path.to_owned(),
            reason: "empty id".into(),
        });
    }
    Ok(identity)
}

/// Reads the identity file in `dir` (not walking up); `Ok(None)` when there is none.
pub fn read_in(dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = file_in(dir);
    if path.is_file() {
        read(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// Prepares `dir/.koor/` for an identity file: creates it (and `dir`), with a `.gitignore` that
/// keeps the token out of commits. Returns the file's path.
pub fn prepare(dir: &Path) -> Result<PathBuf, IdentityError> {
    let koor = dir.join(DIR);
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Write { path, source }
    };
    fs::create_dir_all(&koor).map_err(write_err(&koor))?;
    let ignore = koor.join(".gitignore");
    if !ignore.exists() {
        fs::write(&ignore, "# written by koor-cli register: the instance token stays out of git\n*\n")
            .map_err(write_err(&ignore))?;
    }
    Ok(koor.join(FILE))
}

/// Writes `identity` to `dir/.koor/instance.json` with mode 0600, atomically; returns the path.
pub fn write(dir: &Path, identity: &Identity) -> Result<PathBuf, IdentityError> {
    let path = prepare(dir)?;
    let tmp = path.with_extension("json.tmp");
    let write_err = |source| IdentityError::Write {
        path: path.clone(),
        source,
    };
    let mut text = serde_json::to_string_pretty(identity).unwrap_or_default();
    text.push('\n');
    // a leftover temp file may have other permissions: start from nothing
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(write_err)?;
    file.write_all(text.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}

/// The instance the directory `cwd` acts for: `env_instance` (`KOOR_INSTANCE`) over the nearest
/// identity file's id, `env_token` (`KOOR_INSTANCE_TOKEN`) over its token. The file's token is used
/// only for the file's own id. `Ok(None)` when neither names an instance.
pub fn resolve(
    cwd: &Path,
    env_instance: Option<String>,
    env_token: Option<String>,
) -> Result<Option<Current>, IdentityError> {
    let file = match find(cwd) {
        Some(path) => {
            let identity = read(&path)?;
            Some((path, identity))
        }
        None => None,
    };
    let env_instance = env_instance.filter(|v| !v.trim().is_empty());
    let env_token = env_token.filter(|v| !v.is_empty());
    let current = match (env_instance, file) {
        (Some(id), file) => {
            let token = env_token.or_else(|| {
                file.as_ref()
                    .filter(|(_, saved)| saved.id == id)
                    .map(|(_, saved)| saved.token.clone())
            });
            Current {
                id,
                token,
                source: IdSource::Env,
                file,
            }
        }
        (None, Some((path, saved))) => Current {
            id: saved.id.clone(),
            token: env_token.or_else(|| Some(saved.token.clone()).filter(|t| !t.is_empty())),
            source: IdSource::File(path.clone()),
            file: Some((path, saved)),
        },
        (None, None) => return Ok(None),
    };
    Ok(Some(current))
}

/// [`resolve`] for the process: its current directory and environment.
pub fn from_env() -> Result<Option<Current>, IdentityError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    resolve(
        &cwd,
        std::env::var(ENV_INSTANCE).ok(),
        std::env::var(ENV_INSTANCE_TOKEN).ok(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(id: &str) -> Identity {
        Identity {
            server: "http://localhost:9800".into(),
            id: id.into(),
            token: format!("token-of-{id}"),
            name: "claude".into(),
            project: Some("shop".into()),
        }
    }

    #[test]
    fn written_with_mode_0600_and_found_from_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), &identity("i1")).expect("write");
        assert_eq!(path, dir.path().join(".koor/instance.json"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ignore = fs::read_to_string(dir.path().join(".koor/.gitignore")).expect("ignore");
        assert!(ignore.lines().any(|l| l == "*"));
        let deep = dir.path().join("a/b/c");
        fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(find(&deep), Some(path.clone()));
        assert_eq!(read(&path).expect("read"), identity("i1"));
        // written again: replaced, still 0600
        write(dir.path(), &identity("i2")).expect("write again");
        assert_eq!(read(&path).expect("read").id, "i2");
    }

    #[test]
    fn git_top_level_or_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("repo/src/auth");
        fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(default_dir(&deep), deep);
        fs::create_dir_all(dir.path().join("repo/.git")).expect("git dir");
        assert_eq!(default_dir(&deep), dir.path().join("repo"));
        // a worktree's .git is a file
        fs::create_dir_all(dir.path().join("wt/x")).expect("mkdir");
        fs::write(dir.path().join("wt/.git"), "gitdir: elsewhere\n").expect("git file");
        assert_eq!(
            default_dir(&dir.path().join("wt/x")),
            dir.path().join("wt")
        );
    }

    #[test]
    fn env_overrides_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(resolve(dir.path(), None, None).expect("resolve"), None);
        let path = write(dir.path(), &identity("i1")).expect("write");

        let me = resolve(dir.path(), None, None).expect("resolve").expect("some");
        assert_eq!(me.id, "i1");
        assert_eq!(me.token.as_deref(), Some("token-of-i1"));
        assert_eq!(me.source, IdSource::File(path.clone()));
        assert!(me.saved().is_some());

        // another id from the environment: the file's token is not sent for it
        let me = resolve(dir.path(), Some("i9".into()), None)
            .expect("resolve")
            .expect("some");
        assert_eq!((me.id.as_str(), me.token.as_deref()), ("i9", None));
        assert_eq!(me.source, IdSource::Env);
        assert!(me.saved().is_none());

        // the same id from the environment keeps the file's token; an env token wins
        let me = resolve(dir.path(), Some("i1".into()), None)
            .expect("resolve")
            .expect("some");
        assert_eq!(me.token.as_deref(), Some("token-of-i1"));
        let me = resolve(dir.path(), None, Some("from-env".into()))
            .expect("resolve")
            .expect("some");
        assert_eq!(me.token.as_deref(), Some("from-env"));
        assert_eq!(me.token_for("i1"), Some("from-env"));
        assert_eq!(me.token_for("other"), None);
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = prepare(dir.path()).expect("prepare");
        fs::write(&path, "{not json").expect("write");
        let err = resolve(dir.path(), None, None).expect_err("broken");
        assert!(err.to_string().contains("instance.json"), "{err}");
        fs::write(&path, r#"{"server":"s","id":"","token":"t","name":"n"}"#).expect("write");
        assert!(read(&path).is_err(), "empty id");
    }
}
