//! `init`: set up a workspace so the agent working in it uses Koor, in one command.
//!
//! It writes two kinds of files, both safe to re-run:
//!
//! - the IDE's project MCP config (`.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`) with the
//!   `koor` entry from the same snippets `mcp-config` prints (the token by the IDE's variable
//!   unless `--inline-token`). An existing file keeps its other servers and keys in their order;
//!   only the `koor` entry (and VS Code's `koor-token` input) is added or replaced.
//! - a marked section in `CLAUDE.md` (Claude Code) and/or `AGENTS.md` (Cursor, VS Code) telling
//!   the agent how to work with Koor, with the exact commands. Only the text between the markers
//!   is ever replaced; the rest of the file is left byte for byte.
//!
//! and, by default, what makes file reservations hold (instructions alone do not):
//!
//! - for Claude Code, the `PreToolUse` hook entry in `.claude/settings.json` that runs
//!   `koor-cli hook claude-code` before every edit (`--no-claude-hook` skips it). It is added
//!   after the file's own hooks; a file that already runs the hook is left as it is;
//! - in a git repository, the pre-commit hook of `koor-cli guard install` (`--no-git-guard` skips
//!   it). A pre-commit hook that is not Koor's is never replaced without `--force`: the run stops
//!   and says what it found and how to go on.
//!
//! Nothing is written until every file has been read and planned, so a file that cannot be
//! updated (say, an MCP config with comments) stops the run before anything changes. A file whose
//! new content equals the old is not rewritten. `--dry-run` prints the plan for a person to read:
//! what happens to each file, then each new content as it would be written.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::json;

use super::done;
use super::guard::{EDIT_TOOLS, MARKER, git, hook_script};
use super::mcp::{Ide, TOKEN_ENV, TokenMode, snippet_text};
use crate::Ctx;
use crate::exit::usage;

/// First line of the section `init` owns in `AGENTS.md` / `CLAUDE.md`.
pub const BEGIN_MARKER: &str =
    "<!-- koor:begin (written by `koor-cli init`; re-running it replaces this section) -->";
/// Last line of that section.
pub const END_MARKER: &str = "<!-- koor:end -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdeChoice {
    /// Claude Code: `.mcp.json` and `CLAUDE.md`.
    Claude,
    /// Cursor: `.cursor/mcp.json` and `AGENTS.md`.
    Cursor,
    /// VS Code: `.vscode/mcp.json` and `AGENTS.md`.
    Vscode,
    /// All three.
    All,
}

impl IdeChoice {
    fn ides(self) -> Vec<Ide> {
        match self {
            IdeChoice::Claude => vec![Ide::Claude],
            IdeChoice::Cursor => vec![Ide::Cursor],
            IdeChoice::Vscode => vec![Ide::Vscode],
            IdeChoice::All => Ide::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which IDE(s) to set up.
    #[arg(long, value_enum, default_value = "all")]
    ide: IdeChoice,
    /// The workspace to set up (created if missing) [default: the current directory].
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// The agent's name in the instructions [default: the workspace directory's name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The project its tasks and reservations belong to [default: the workspace directory's name].
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// Write the token itself into the MCP config instead of the IDE's variable for it.
    #[arg(long)]
    inline_token: bool,
    /// Do not add the Claude Code hook that refuses edits of files others reserved.
    #[arg(long)]
    no_claude_hook: bool,
    /// Do not install the git pre-commit guard that refuses commits of files others reserved.
    #[arg(long)]
    no_git_guard: bool,
    /// Replace a pre-commit hook that is not Koor's.
    #[arg(long)]
    force: bool,
    /// Print the plan (what happens to each file, then its new content) and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What happens to one file.
#[derive(Debug)]
struct Planned {
    /// Path shown to the user, relative to the workspace.
    shown: String,
    path: PathBuf,
    before: Option<String>,
    after: String,
    /// Keep it readable by its owner only (it holds a token).
    private: bool,
    /// Make it executable (a git hook).
    executable: bool,
    /// It replaces a file that was not ours (`--force`).
    foreign: bool,
}

impl Planned {
    fn new(shown: String, path: PathBuf, before: Option<String>, after: String) -> Planned {
        Planned {
            shown,
            path,
            before,
            after,
            private: false,
            executable: false,
            foreign: false,
        }
    }

    fn action(&self) -> &'static str {
        match &self.before {
            None => "created",
            Some(b) if *b == self.after => "unchanged",
            Some(_) if self.foreign => "replaced",
            Some(_) => "updated",
        }
    }

    /// The verb of the dry run's plan.
    fn verb(&self) -> &'static str {
        match self.action() {
            "created" => "create",
            "updated" => "update",
            "replaced" => "replace",
            _ => "unchanged",
        }
    }
}

/// The command the Claude Code hook entry runs (`koor-cli` on PATH, as in the instructions).
pub const CLAUDE_HOOK_COMMAND: &str = "koor-cli hook claude-code";
/// Where Claude Code reads a project's shared settings.
const CLAUDE_SETTINGS: &str = ".claude/settings.json";

impl InitArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = ctx.config()?;
        let workspace = match &self.workspace {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        if workspace.exists() && !workspace.is_dir() {
            return Err(usage(format!(
                "--workspace {} is not a directory",
                workspace.display()
            )));
        }
        let dir_name = std::path::absolute(&workspace)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "agent".to_owned());
        let name = self.name.clone().unwrap_or_else(|| dir_name.clone());
        let project = self.project.clone().unwrap_or(dir_name);
        for (flag, value) in [("--name", &name), ("--project", &project)] {
            if value.trim().is_empty() || value.contains(['\n', '\r']) {
                return Err(usage(format!("{flag} must be one non-empty line")));
            }
        }

        let mode = TokenMode::for_token(cfg.token.as_deref(), self.inline_token);
        let ides = self.ide.ides();
        let mut plan = Vec::new();
        for &ide in &ides {
            plan.push(plan_mcp(&workspace, ide, &cfg.server, mode)?);
        }
        let section = section(&cfg.server, &name, &project, cfg.token.is_some());
        let mut docs = Vec::new();
        if ides.contains(&Ide::Claude) {
            docs.push("CLAUDE.md");
        }
        if ides.iter().any(|i| *i != Ide::Claude) {
            docs.push("AGENTS.md");
        }
        for doc in docs {
            plan.push(plan_section(&workspace, doc, &section)?);
        }
        let mut skipped = Vec::new();
        if ides.contains(&Ide::Claude) && !self.no_claude_hook {
            plan.push(plan_claude_hook(&workspace)?);
        }
        if !self.no_git_guard {
            match plan_git_guard(&workspace, self.force)? {
                Ok(p) => plan.push(p),
                Err(why) => skipped.push(json!({"what": "git guard", "why": why})),
            }
        }

        let hints: Vec<&str> = if mode == TokenMode::Variable {
            ides.iter().map(|i| i.token_hint()).collect()
        } else {
            Vec::new()
        };
        if self.dry_run {
            print_plan(ctx, &workspace, &plan, &skipped, &hints)?;
            return done();
        }
        std::fs::create_dir_all(&workspace)
            .with_context(|| format!("cannot create {}", workspace.display()))?;
        for p in plan.iter().filter(|p| p.action() != "unchanged") {
            write_file(p)?;
        }

        let files: Vec<_> = plan
            .iter()
            .map(|p| json!({"path": p.shown, "action": p.action()}))
            .collect();
        let mut answer = json!({
            "workspace": workspace.display().to_string(),
            "dry_run": false,
            "files": files,
        });
        if !skipped.is_empty() {
            answer["skipped"] = json!(skipped);
        }
        if !hints.is_empty() {
            answer["token"] = json!(hints);
        }
        ctx.out.json(&answer)?;
        done()
    }
}

/// The dry run's plan, for a person: one line per file, what is skipped and why, then each new
/// content as it would be written.
fn print_plan(
    ctx: &Ctx,
    workspace: &Path,
    plan: &[Planned],
    skipped: &[serde_json::Value],
    hints: &[&str],
) -> Result<()> {
    let width = plan.iter().map(|p| p.verb().len()).max().unwrap_or(0);
    let mut text = format!(
        "koor-cli init --dry-run: nothing written. The plan for {}:\n\n",
        workspace.display()
    );
    for p in plan {
        text.push_str(&format!("{:<width$} {}\n", p.verb(), p.shown));
    }
    for s in skipped {
        text.push_str(&format!(
            "{:<width$} {}: {}\n",
            "skip",
            s["what"].as_str().unwrap_or_default(),
            s["why"].as_str().unwrap_or_default()
        ));
    }
    for hint in hints {
        text.push_str(&format!("\nnote: {hint}\n"));
    }
    for p in plan.iter().filter(|p| p.action() != "unchanged") {
        text.push_str(&format!(
            "\n--- {} ({}) ---\n{}",
            p.shown,
            p.action(),
            p.after
        ));
        if !p.after.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(ctx.out.raw(text.as_bytes())?)
}

/// `.claude/settings.json` with the `PreToolUse` entry that runs the hook before every edit,
/// added after the file's own entries. A file that already runs `hook claude-code` is kept as is.
fn plan_claude_hook(workspace: &Path) -> Result<Planned> {
    let path = workspace.join(CLAUDE_SETTINGS);
    let before = read_existing(&path)?;
    let entry: Json = serde_json::from_value(json!({
        "matcher": EDIT_TOOLS.join("|"),
        "hooks": [{"type": "command", "command": CLAUDE_HOOK_COMMAND}],
    }))
    .context("hook entry")?;
    let mut doc = match &before {
        None => Json::Obj(Vec::new()),
        Some(text) => serde_json::from_str::<Json>(text)
            .ok()
            .filter(|d| matches!(d, Json::Obj(_)))
            .ok_or_else(|| {
                anyhow!(
                    "cannot update {}: it is not a plain JSON object; add the hook by hand \
                     (`koor-cli hook claude-code --help` shows the entry), then re-run, or re-run \
                     with --no-claude-hook",
                    path.display()
                )
            })?,
    };
    if let Some(text) = &before
        && runs_claude_hook(&doc)
    {
        return Ok(Planned::new(
            CLAUDE_SETTINGS.into(),
            path,
            before.clone(),
            text.clone(),
        ));
    }
    let Json::Obj(top) = &mut doc else {
        unreachable!("checked above")
    };
    if !top.iter().any(|(k, _)| k == "hooks") {
        top.push(("hooks".into(), Json::Obj(Vec::new())));
    }
    let Some((_, Json::Obj(hooks))) = top.iter_mut().find(|(k, _)| k == "hooks") else {
        return Err(anyhow!("{}: \"hooks\" is not an object", path.display()));
    };
    if !hooks.iter().any(|(k, _)| k == "PreToolUse") {
        hooks.push(("PreToolUse".into(), Json::Arr(Vec::new())));
    }
    let Some((_, Json::Arr(entries))) = hooks.iter_mut().find(|(k, _)| k == "PreToolUse") else {
        return Err(anyhow!(
            "{}: \"hooks.PreToolUse\" is not an array",
            path.display()
        ));
    };
    entries.push(entry);
    let mut after = serde_json::to_string_pretty(&doc).context("cannot format JSON")?;
    after.push('\n');
    Ok(Planned::new(CLAUDE_SETTINGS.into(), path, before, after))
}

/// Whether a Claude Code settings document already runs `koor-cli hook claude-code` (ours, or a
/// user's own line for it, with another path to the binary or flags).
fn runs_claude_hook(doc: &Json) -> bool {
    let Some(Json::Arr(entries)) = doc.get("hooks").and_then(|h| h.get("PreToolUse")) else {
        return false;
    };
    entries.iter().any(|e| match e.get("hooks") {
        Some(Json::Arr(hooks)) => hooks.iter().any(
            |h| matches!(h.get("command"), Some(Json::Str(c)) if c.contains("hook claude-code")),
        ),
        _ => false,
    })
}

/// The git pre-commit guard (`koor-cli guard install`'s hook) of the repository holding
/// `workspace`; `Ok(Err(why))` when there is none to install it in. A hook that is not Koor's
/// stops the run unless `force`.
fn plan_git_guard(workspace: &Path, force: bool) -> Result<Result<Planned, String>> {
    if !workspace.is_dir() {
        return Ok(Err(
            "the workspace does not exist yet (run init again after git init)".into(),
        ));
    }
    let hooks = match git(workspace, &["rev-parse", "--git-path", "hooks"]) {
        Ok(out) => String::from_utf8_lossy(&out).trim().to_owned(),
        Err(_) => return Ok(Err("not in a git repository".into())),
    };
    let shown = Path::new(&hooks).join("pre-commit").display().to_string();
    let path = workspace.join(&shown);
    let before = read_existing(&path)?;
    let foreign = before.as_ref().is_some_and(|text| !text.contains(MARKER));
    if foreign && !force {
        let found = before
            .as_deref()
            .and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
            })
            .map(|l| format!(" (it runs `{l}`)"))
            .unwrap_or_default();
        return Err(anyhow!(
            "{} exists and is not Koor's{found}: nothing written. Re-run with --force to replace \
             it, with --no-git-guard to leave it alone, or add `koor-cli guard pre-commit` to it \
             yourself",
            path.display()
        ));
    }
    let mut planned = Planned::new(shown, path, before, hook_script());
    planned.executable = true;
    planned.foreign = foreign;
    Ok(Ok(planned))
}

/// The MCP config of `ide` in `workspace` with the `koor` entry set.
fn plan_mcp(workspace: &Path, ide: Ide, server: &str, mode: TokenMode<'_>) -> Result<Planned> {
    let shown = ide.config_path().to_owned();
    let path = workspace.join(&shown);
    let before = read_existing(&path)?;
    let fresh: Json = serde_json::from_str(&snippet_text(ide, server, mode))
        .context("assets/mcp snippet is not valid JSON")?;
    let doc = match &before {
        None => fresh,
        Some(text) => {
            let mut doc: Json = serde_json::from_str(text)
                .ok()
                .filter(|d| matches!(d, Json::Obj(_)))
                .ok_or_else(|| {
                    anyhow!(
                        "cannot update {}: it is not a plain JSON object (comments?); add the koor entry by hand (`koor-cli mcp-config {}`), then re-run",
                        path.display(),
                        ide_arg(ide)
                    )
                })?;
            merge_entry(&mut doc, &fresh, ide.servers_key())?;
            if mode == TokenMode::Variable {
                merge_inputs(&mut doc, &fresh);
            }
            // Same content as before: keep the file's own formatting.
            let unchanged = serde_json::from_str::<Json>(text).ok().as_ref() == Some(&doc);
            if unchanged {
                let after = text.clone();
                return Ok(Planned::new(shown, path, before, after));
            }
            doc
        }
    };
    let mut after = serde_json::to_string_pretty(&doc).context("cannot format JSON")?;
    after.push('\n');
    let mut planned = Planned::new(shown, path, before, after);
    planned.private = matches!(mode, TokenMode::Inline(_));
    Ok(planned)
}

fn ide_arg(ide: Ide) -> &'static str {
    match ide {
        Ide::Claude => "claude",
        Ide::Cursor => "cursor",
        Ide::Vscode => "vscode",
    }
}

/// Sets `doc[key].koor` to `fresh[key].koor`, in place when it exists, else at the end.
fn merge_entry(doc: &mut Json, fresh: &Json, key: &str) -> Result<()> {
    let entry = fresh
        .get(key)
        .and_then(|s| s.get("koor"))
        .cloned()
        .ok_or_else(|| anyhow!("assets/mcp snippet has no {key}.koor"))?;
    let Json::Obj(top) = doc else {
        return Err(anyhow!("not an object"));
    };
    if !top.iter().any(|(k, _)| k == key) {
        top.push((key.to_owned(), Json::Obj(Vec::new())));
    }
    match top.iter_mut().find(|(k, _)| k == key) {
        Some((_, Json::Obj(servers))) => {
            set_key(servers, "koor", entry);
            Ok(())
        }
        _ => Err(anyhow!("\"{key}\" is not an object")),
    }
}

/// Adds the snippet's `inputs` (VS Code's token prompt) that the file does not have yet, by id.
fn merge_inputs(doc: &mut Json, fresh: &Json) {
    let Some(Json::Arr(wanted)) = fresh.get("inputs") else {
        return;
    };
    let Json::Obj(top) = doc else {
        return;
    };
    if !top.iter().any(|(k, _)| k == "inputs") {
        top.insert(0, ("inputs".to_owned(), Json::Arr(Vec::new())));
    }
    if let Some((_, Json::Arr(have))) = top.iter_mut().find(|(k, _)| k == "inputs") {
        for input in wanted {
            let id = input.get("id");
            if !have.iter().any(|h| h.get("id") == id) {
                have.push(input.clone());
            }
        }
    }
}

fn set_key(map: &mut Vec<(String, Json)>, key: &str, value: Json) {
    match map.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => map.push((key.to_owned(), value)),
    }
}

/// `doc` in `workspace` with `section` in place of the marked one (or appended).
fn plan_section(workspace: &Path, doc: &str, section: &str) -> Result<Planned> {
    let path = workspace.join(doc);
    let before = read_existing(&path)?;
    let after = match &before {
        None => section.to_owned(),
        Some(text) => {
            replace_section(text, section).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
    };
    Ok(Planned::new(doc.to_owned(), path, before, after))
}

/// `text` with its marked section replaced by `section` (which ends with a newline), or with
/// `section` appended after a blank line when it has none. Nothing outside the markers changes.
pub fn replace_section(text: &str, section: &str) -> Result<String, String> {
    let begin = line_starting(text, "<!-- koor:begin", 0);
    match begin {
        Some(b) => {
            let end = line_starting(text, END_MARKER, b).ok_or_else(|| {
                format!("has the line {BEGIN_MARKER:?} but no {END_MARKER:?} after it; fix or remove the section by hand")
            })?;
            let end_of_line = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
            let mut out = String::with_capacity(text.len() + section.len());
            out.push_str(&text[..b]);
            out.push_str(section);
            if end_of_line == text.len() && !text.ends_with('\n') {
                // The old section ended the file without a newline: keep it that way.
                out.pop();
            }
            out.push_str(&text[end_of_line..]);
            Ok(out)
        }
        None => {
            let mut out = text.to_owned();
            if !out.is_empty() {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push('\n');
            }
            out.push_str(section);
            Ok(out)
        }
    }
}

/// Byte offset of the first line at or after `from` that starts with `prefix`.
fn line_starting(text: &str, prefix: &str, from: usize) -> Option<usize> {
    let mut at = from;
    for line in text[from..].split_inclusive('\n') {
        if line.starts_with(prefix) {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// A word as the shell reads it: bare when it is plain, else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The section for `AGENTS.md` / `CLAUDE.md`: how this agent works with Koor, command by command
/// (the names are those of the coordination contract).
pub fn section(server: &str, name: &str, project: &str, auth: bool) -> String {
    let name = shell_word(name);
    let project_word = shell_word(project);
    let token_line = if auth {
        format!(
            "\nThe server asks for a bearer token: `{TOKEN_ENV}` must be set in the environment\n`koor-cli` runs in.\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"{BEGIN_MARKER}
## Working with Koor

Several agents share this project through the Koor server at {server}.
Koor holds the task board, file reservations, messages between agents, shared state and an event
log. Use `koor-cli` for all of it: it prints JSON on stdout, errors on stderr, and exits non-zero
on failure (409: someone else holds it). `koor-cli status` checks that the server is up;
`koor-cli COMMAND --help` lists every option.
{token_line}
**When a session starts**

1. `koor-cli register {name} --project {project_word}`: registers this agent, or resumes its earlier
   registration, and saves the id and token in `.koor/instance.json` (never commit that file).
   The commands below find the id there.
2. `koor-cli activate ID`, with the `id` that `register` printed: marks the agent active.
3. `koor-cli inbox --unread`: read what other agents sent you before starting; `koor-cli ack MSG_ID`
   when a message asks for an acknowledgement.

**While you work**

- Heartbeat every few minutes: `koor-cli instances heartbeat`. An agent that stays silent for the
  server's stale-after period (5 minutes by default) is marked stale, and the tasks, reservations
  and locks it holds lapse to others. The heartbeat renews all of them.
- Take work from the board, never work on a task you have not claimed: `koor-cli tasks claim`
  gives you the best ready task of project {project_word}; `koor-cli tasks done ID` when it is
  finished, `koor-cli tasks release ID` when you stop without finishing.
- Reserve files before you edit them: `koor-cli reserve PATHS...` (globs such as `src/auth/**`
  work). A conflict names the agent that holds them: choose other work or message that agent.
  `koor-cli release` frees your reservations when you are done. Edits and commits of files
  another agent reserved are refused (a Claude Code hook, a git pre-commit hook); the refusal
  names the holder: do not work around it.
- Tell the others what you changed that they depend on (an API, a schema, shared config):
  `koor-cli events publish {project_word}.changed --data '{{"summary":"...","paths":["..."]}}'`.
- Ask another agent with `koor-cli send NAME ...`; wait for news with `koor-cli inbox --wait` or
  `koor-cli wait PATTERN` instead of polling.
- Shared values: `koor-cli state get KEY`, `koor-cli state set KEY --data VALUE`.

**Before you stop**: finish or release your claimed tasks and `koor-cli release` your reservations.
{END_MARKER}
"#
    )
}

/// The file's text; `None` when it does not exist.
fn read_existing(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a planned file through a temporary file and a rename, creating its directory.
fn write_file(p: &Planned) -> Result<()> {
    let (path, text, private) = (p.path.as_path(), p.after.as_str(), p.private);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".koor-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private {
            Some(0o600)
        } else if p.executable {
            Some(0o755)
        } else {
            // Keep the mode of the file being replaced.
            std::fs::metadata(path)
                .ok()
                .map(|m| m.permissions().mode() & 0o777)
        };
        if let Some(mode) = mode {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A JSON value that keeps the order of object keys as read, so an IDE's config file keeps its
/// layout when the `koor` entry is added to it.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(map) => map.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Num(n) => n.serialize(s),
            Json::Str(v) => s.serialize_str(v),
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Obj(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Num(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Num(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
                Ok(Json::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
                Ok(Json::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    entries.push((k, v));
                }
                Ok(Json::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(tag: &str) -> String {
        format!("{BEGIN_MARKER}\n{tag}\n{END_MARKER}\n")
    }

    #[test]
    fn a_section_is_appended_once_then_replaced_in_place() {
        let text = "# Project\n\nOur rules.";
        let once = replace_section(text, &sec("one")).expect("append");
        assert_eq!(once, format!("# Project\n\nOur rules.\n\n{}", sec("one")));
        let mut edited = once.clone();
        edited.push_str("\n## Added later by hand\n");
        let twice = replace_section(&edited, &sec("two")).expect("replace");
        assert_eq!(
            twice,
            format!(
                "# Project\n\nOur rules.\n\n{}\n## Added later by hand\n",
                sec("two")
            )
        );
        assert_eq!(replace_section(&twice, &sec("two")).expect("same"), twice);
        assert_eq!(replace_section("", &sec("x")).expect("empty"), sec("x"));
    }

    #[test]
    fn a_begin_without_an_end_is_refused() {
        let text = format!("a\n{BEGIN_MARKER}\nb\n");
        let err = replace_section(&text, &sec("x")).expect_err("no end");
        assert!(err.contains("koor:end"), "{err}");
    }

    #[test]
    fn merging_keeps_other_servers_and_key_order() {
        let mut doc: Json = serde_json::from_str(
            r#"{"zeta":1,"mcpServers":{"other":{"url":"http://x"},"koor":{"url":"old"}},"alpha":[1.5,true,null]}"#,
        )
        .expect("parse");
        let fresh: Json =
            serde_json::from_str(&snippet_text(Ide::Cursor, "http://h:1", TokenMode::None))
                .expect("snippet");
        merge_entry(&mut doc, &fresh, "mcpServers").expect("merge");
        assert_eq!(
            serde_json::to_string(&doc).expect("json"),
            r#"{"zeta":1,"mcpServers":{"other":{"url":"http://x"},"koor":{"url":"http://h:1/mcp"}},"alpha":[1.5,true,null]}"#
        );
    }

    #[test]
    fn vscode_inputs_are_added_once() {
        let mut doc: Json =
            serde_json::from_str(r#"{"inputs":[{"id":"other"}],"servers":{}}"#).expect("parse");
        let fresh: Json = serde_json::from_str(&snippet_text(
            Ide::Vscode,
            "http://h:1",
            TokenMode::Variable,
        ))
        .expect("snippet");
        merge_inputs(&mut doc, &fresh);
        merge_inputs(&mut doc, &fresh);
        let Some(Json::Arr(inputs)) = doc.get("inputs") else {
            panic!("inputs");
        };
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].get("id"), Some(&Json::Str("koor-token".into())));
    }

    #[test]
    fn the_section_names_the_coordination_commands() {
        let s = section("http://localhost:9800", "web agent", "shop", true);
        for cmd in [
            "koor-cli register 'web agent' --project shop",
            "koor-cli activate ID",
            "koor-cli instances heartbeat",
            "koor-cli inbox --unread",
            "koor-cli tasks claim",
            "koor-cli reserve PATHS",
            "koor-cli events publish shop.changed",
            "KOOR_TOKEN",
        ] {
            assert!(s.contains(cmd), "missing {cmd:?}");
        }
        assert!(s.starts_with(BEGIN_MARKER) && s.ends_with(&format!("{END_MARKER}\n")));
    }
}
