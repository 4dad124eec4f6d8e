//! (ext) Enforcement of file reservations where the edit happens: `guard pre-commit` (a git
//! hook), `guard install`, and `hook claude-code` (a Claude Code `PreToolUse` hook).
//!
//! Both ask the read-only `POST /api/reservations/check` for the files at hand, acting as the
//! workspace's instance (so its own reservations never stop it), and both fail open: when the
//! server cannot be reached, or answers an error, they warn on stderr and let the edit through.
//! A coordination server that is down must never block an agent.
//!
//! They ask the server the workspace's instance registered with (`.koor/instance.json`) when
//! neither `--server` nor `KOOR_SERVER` names one: git clients and IDEs run hooks without the
//! agent's environment. The project follows the one rule of every command
//! ([`super::reserve::project_of`]); when no rule tells it, nothing can be checked, and they say
//! so (the guard on stderr, the hook in its answer, as context for the agent and a message for
//! the user) rather than letting the edit through in silence.
//!
//! The Claude Code hook follows the documented hook protocol
//! (<https://code.claude.com/docs/en/hooks>): the event arrives as JSON on stdin
//! (`hook_event_name`, `cwd`, `tool_name`, `tool_input`); to deny, the hook exits 0 and prints
//! `{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny",
//! "permissionDecisionReason":"..."}}` on stdout, the reason being shown to Claude; to let the
//! call go on as usual it exits 0 and prints nothing (an explicit `"allow"` would also skip the
//! user's permission prompt, which is not ours to skip).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use koor_shared::types::{ReservationCheck, ReservationConflict};
use serde_json::{Value, json};

use super::done;
use super::reserve::Workspace;
use crate::Ctx;

/// Says that a hook file is ours (and may be replaced without --force).
pub(super) const MARKER: &str = "# koor-cli guard: file reservations";
/// Most files one check asks about (the server's limit).
const CHECK_CHUNK: usize = 256;
/// The tools whose calls edit a file.
pub(super) const EDIT_TOOLS: [&str; 4] = ["Edit", "Write", "MultiEdit", "NotebookEdit"];
/// Largest hook event read from stdin (a Write carries the whole file).
const MAX_EVENT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum GuardCmd {
    /// Check the staged files against others' reservations; exits 1 naming file, holder and reason.
    #[command(
        name = "pre-commit",
        after_help = "Example:\n  koor-cli guard pre-commit\n  # in .git/hooks/pre-commit (see `koor-cli guard install`)"
    )]
    PreCommit {
        /// The project (default: KOOR_PROJECT, else the project saved by `register --project`).
        #[arg(long)]
        project: Option<String>,
    },

    /// Write the git pre-commit hook that runs `koor-cli guard pre-commit`.
    #[command(after_help = "Example:\n  koor-cli guard install\n  koor-cli guard install --force")]
    Install {
        /// Replace a pre-commit hook that is not Koor's.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum HookCmd {
    /// Claude Code PreToolUse hook: denies an edit of a file another instance holds exclusively.
    #[command(
        name = "claude-code",
        after_help = "Example:\n  koor-cli hook claude-code < event.json\n  # in .claude/settings.json: {\"hooks\":{\"PreToolUse\":[{\"matcher\":\"Edit|Write|MultiEdit|NotebookEdit\",\"hooks\":[{\"type\":\"command\",\"command\":\"koor-cli hook claude-code\"}]}]}}"
    )]
    ClaudeCode {
        /// The project (as for `guard pre-commit`).
        #[arg(long)]
        project: Option<String>,
    },
}

/// A warning on stderr; the edit goes through.
fn warn(who: &str, what: impl std::fmt::Display) {
    eprintln!("koor-cli {who}: warning: {what}; not checked, letting it through");
}

/// One line about a conflict: file, holder, until, through which reservation, and why.
fn describe(c: &ReservationConflict) -> String {
    let through = if c.held_path == c.path {
        String::new()
    } else {
        format!(" (through {})", c.held_path)
    };
    let why = if c.reason.is_empty() {
        " (no reason given)".to_owned()
    } else {
        format!(": {}", c.reason)
    };
    format!(
        "{} is reserved by {} ({}) until {}{through}{why}",
        c.path, c.holder.name, c.holder.id, c.expires_at
    )
}

/// Said when the project cannot be told: nothing is checked.
const PROJECT_UNKNOWN: &str = "cannot tell the project of this workspace, so file reservations \
     were not checked: register here with `koor-cli register NAME --project P`, set KOOR_PROJECT, \
     or pass --project to the hook";

/// Asks the server of the workspace in `dir` about `files`; `Err` when it could not answer.
async fn check(
    ctx: &Ctx,
    dir: &Path,
    ws: &Workspace,
    files: &[String],
) -> Result<ReservationCheck> {
    let client = ctx.client_at(dir)?;
    let me = ws.me.as_ref().map(|m| m.id.as_str());
    let mut all = ReservationCheck {
        ok: true,
        conflicts: Vec::new(),
    };
    for chunk in files.chunks(CHECK_CHUNK) {
        let answer = client
            .reservation_check(&ws.project, chunk, me, false)
            .await?;
        all.ok &= answer.ok;
        all.conflicts.extend(answer.conflicts);
    }
    Ok(all)
}

/// Runs git in `dir`; stdout on success.
pub(super) fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run git {}", args.join(" ")))?;
    if !out.status.success() {
        return Err(anyhow!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

impl GuardCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            GuardCmd::PreCommit { project } => pre_commit(ctx, project).await,
            GuardCmd::Install { force } => install(ctx, force),
        }
    }
}

async fn pre_commit(ctx: &Ctx, project: Option<String>) -> Result<ExitCode> {
    let here = cwd();
    let top = String::from_utf8(git(&here, &["rev-parse", "--show-toplevel"])?)
        .context("git printed a top-level path that is not UTF-8")?;
    let root = PathBuf::from(top.trim());
    // Every staged change, renames as a delete plus an add, paths relative to the top.
    let staged = git(
        &root,
        &["diff", "--cached", "--name-only", "--no-renames", "-z"],
    )?;
    let files: Vec<String> = staged
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if files.is_empty() {
        return done();
    }
    let Some(ws) = Workspace::try_at(&root, project)? else {
        eprintln!("koor-cli guard: warning: {PROJECT_UNKNOWN}; letting the commit through");
        return done();
    };
    let answer = match check(ctx, &root, &ws, &files).await {
        Ok(a) => a,
        Err(e) => {
            warn("guard", format!("{e:#}"));
            return done();
        }
    };
    if answer.ok {
        return done();
    }
    for c in &answer.conflicts {
        eprintln!("koor-cli guard: {}", describe(c));
    }
    eprintln!(
        "koor-cli guard: commit refused: {} staged file(s) reserved by another agent in project {} \
         (ask the holder to release, or see `koor-cli reservations --project {}`)",
        answer.conflicts.len(),
        ws.project,
        ws.project
    );
    Ok(ExitCode::from(crate::exit::FAILURE))
}

/// The hook script: runs the guard with this binary (or `koor-cli` on PATH), and lets the
/// commit through with a warning when neither is there.
pub(super) fn hook_script() -> String {
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "koor-cli".into());
    let quoted = exe.replace('\'', r"'\''");
    format!(
        "#!/bin/sh\n{MARKER} (written by `koor-cli guard install`).\n\
         # Refuses a commit of staged files another agent has reserved in Koor.\n\
         KOOR_CLI='{quoted}'\n\
         if [ ! -x \"$KOOR_CLI\" ]; then KOOR_CLI=koor-cli; fi\n\
         if ! command -v \"$KOOR_CLI\" >/dev/null 2>&1; then\n\
         \x20 echo 'koor guard: koor-cli not found; reservations not checked' >&2\n\
         \x20 exit 0\n\
         fi\n\
         exec \"$KOOR_CLI\" guard pre-commit\n"
    )
}

fn install(ctx: &Ctx, force: bool) -> Result<ExitCode> {
    let here = cwd();
    let hooks = String::from_utf8(git(&here, &["rev-parse", "--git-path", "hooks"])?)
        .context("git printed a hooks path that is not UTF-8")?;
    let hooks = here.join(hooks.trim());
    std::fs::create_dir_all(&hooks)
        .with_context(|| format!("cannot create {}", hooks.display()))?;
    let path = hooks.join("pre-commit");
    let existing = std::fs::read_to_string(&path).ok();
    let replaced = existing.is_some();
    if let Some(text) = &existing
        && !text.contains(MARKER)
        && !force
    {
        return Err(anyhow!(
            "{} exists and is not Koor's: not replaced (use --force to replace it, or add \
             `koor-cli guard pre-commit` to it yourself)",
            path.display()
        ));
    }
    std::fs::write(&path, hook_script())
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    ctx.out
        .json(&json!({"installed": path.display().to_string(), "replaced": replaced}))?;
    done()
}

impl HookCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            HookCmd::ClaudeCode { project } => claude_code(ctx, project).await,
        }
    }
}

/// The file a `PreToolUse` event of an edit tool is about, if it is one.
fn edited_file(event: &Value) -> Option<&str> {
    if event
        .get("hook_event_name")
        .and_then(Value::as_str)
        .is_some_and(|e| e != "PreToolUse")
    {
        return None;
    }
    let tool = event.get("tool_name").and_then(Value::as_str)?;
    if !EDIT_TOOLS.contains(&tool) {
        return None;
    }
    let input = event.get("tool_input")?;
    // NotebookEdit names its file `notebook_path`; the others `file_path`.
    input
        .get("file_path")
        .or_else(|| input.get("notebook_path"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
}

async fn claude_code(ctx: &Ctx, project: Option<String>) -> Result<ExitCode> {
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_EVENT_BYTES).read_to_end(&mut raw) {
        warn("hook", format!("cannot read the hook event: {e}"));
        return done();
    }
    let event: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => {
            warn("hook", format!("the hook event is not JSON: {e}"));
            return done();
        }
    };
    let Some(file) = edited_file(&event) else {
        return done();
    };
    let dir = event
        .get("cwd")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(cwd);
    let ws = match Workspace::try_at(&dir, project) {
        Ok(Some(ws)) => ws,
        Ok(None) => {
            // No decision (the usual permission flow goes on), but the agent and the user learn
            // that the edit was not checked, and how to fix that.
            eprintln!("koor-cli hook: warning: {PROJECT_UNKNOWN}");
            ctx.out.json(&json!({
                "systemMessage": format!("Koor: {PROJECT_UNKNOWN}."),
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "additionalContext": format!(
                        "Koor: {PROJECT_UNKNOWN}. Until then, edits of files other agents have \
                         reserved are not refused: check `koor-cli reservations` before editing."
                    ),
                }
            }))?;
            return done();
        }
        Err(e) => {
            warn("hook", format!("{e:#}"));
            return done();
        }
    };
    let absolute = if Path::new(file).is_absolute() {
        PathBuf::from(file)
    } else {
        dir.join(file)
    };
    let Some(rel) = ws.project_path(&absolute.to_string_lossy()) else {
        return done(); // outside the project: not ours to judge
    };
    let answer = match check(ctx, &dir, &ws, &[rel]).await {
        Ok(a) => a,
        Err(e) => {
            warn("hook", format!("{e:#}"));
            return done();
        }
    };
    if answer.ok {
        return done();
    }
    let lines: Vec<String> = answer.conflicts.iter().map(describe).collect();
    let reason = format!(
        "Koor file reservation: {}. Another agent is working on this file: do not edit it now; \
         ask {} to release it, or work on something else (see `koor-cli reservations --path {}`).",
        lines.join("; "),
        answer.conflicts[0].holder.name,
        answer.conflicts[0].path,
    );
    ctx.out.json(&json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }))?;
    done()
}
