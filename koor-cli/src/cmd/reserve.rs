//! (ext) `reserve`, `reservations`, `release`: file reservations of a project, and how a
//! workspace finds its project (shared with `guard` and `hook`).
//!
//! Paths and globs are relative to the project root (the repository's top directory), wherever
//! in the repository the command runs; an absolute path inside the repository is made relative.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use koor_shared::client::{ClientError, ReserveRequest};
use koor_shared::identity::{self, Current};
use koor_shared::{ErrorBody, paths};

use super::done;
use crate::Ctx;
use crate::exit;

/// Environment variable naming the project (below `--project`, above the identity file).
pub const ENV_PROJECT: &str = "KOOR_PROJECT";

/// Said when no rule tells the project.
pub const NO_PROJECT: &str = "no project: pass --project P, set KOOR_PROJECT, or register here \
     with `koor-cli register NAME --project P` (it saves the project in .koor/instance.json)";

/// The one rule every command (reserve, tasks, the guard, the hook...) finds its project by:
/// `flag` (`--project`), else `KOOR_PROJECT`, else the `project` saved by
/// `koor-cli register --project P` in the nearest identity file; `None` when none says. No
/// guessing from a directory's name: a worktree's name is not its project, and a guessed project
/// would let an edit of a file reserved in the real one through in silence.
pub fn project_of(flag: Option<String>, me: Option<&Current>) -> Option<String> {
    flag.or_else(|| std::env::var(ENV_PROJECT).ok())
        .filter(|p| !p.trim().is_empty())
        .or_else(|| {
            me.and_then(|m| m.file.as_ref())
                .and_then(|(_, saved)| saved.project.clone())
                .filter(|p| !p.trim().is_empty())
        })
}

/// Where a command runs: the project root, the project's name, and the instance acting.
#[derive(Debug)]
pub struct Workspace {
    /// The top of the git repository holding the directory, else the directory itself.
    pub root: PathBuf,
    pub project: String,
    /// The instance (`KOOR_INSTANCE` or the nearest `.koor/instance.json`), if any.
    pub me: Option<Current>,
}

impl Workspace {
    /// The workspace of `cwd`, its project found by [`project_of`]; a usage error when none
    /// tells it.
    pub fn at(cwd: &Path, flag: Option<String>) -> Result<Workspace> {
        Workspace::try_at(cwd, flag)?.ok_or_else(|| exit::usage(NO_PROJECT))
    }

    /// [`Workspace::at`], with `None` when the project cannot be told (the guard and the hook
    /// say so and let the edit through).
    pub fn try_at(cwd: &Path, flag: Option<String>) -> Result<Option<Workspace>> {
        let root = identity::default_dir(cwd);
        let me = identity::resolve(
            cwd,
            std::env::var(identity::ENV_INSTANCE).ok(),
            std::env::var(identity::ENV_INSTANCE_TOKEN).ok(),
        )?;
        Ok(project_of(flag, me.as_ref()).map(|project| Workspace { root, project, me }))
    }

    /// The workspace of the current directory.
    pub fn here(flag: Option<String>) -> Result<Workspace> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Workspace::at(&cwd, flag)
    }

    /// `path` as the project names it: absolute paths inside the root made relative; `None`
    /// for an absolute path outside it.
    pub fn project_path(&self, path: &str) -> Option<String> {
        paths::relative_to(&self.root, path)
    }
}

/// What `release` prints.
#[derive(Debug, serde::Serialize)]
struct Released {
    released: Vec<koor_shared::types::Reservation>,
}

/// `reserve PATHS...`.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// Files or globs relative to the project root (`src/auth/**`, `*.md`, `README.md`).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// A shared reservation: others may share the paths, but none may hold them exclusively.
    #[arg(long)]
    shared: bool,
    /// How long it lasts without a heartbeat (5s to 24h; default: the server's --stale-after).
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Why, shown to whoever is refused (the git guard and the Claude Code hook say it).
    #[arg(long)]
    reason: Option<String>,
    /// The project (default: KOOR_PROJECT, else the project saved by `register --project`).
    #[arg(long)]
    project: Option<String>,
    /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
}

impl ReserveArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let ws = Workspace::here(self.project)?;
        let (id, token) = ctx.acting_for(self.instance)?;
        let mut wanted = Vec::with_capacity(self.paths.len());
        for p in &self.paths {
            wanted.push(ws.project_path(p).ok_or_else(|| {
                exit::usage(format!(
                    "{p} is outside the project root {}",
                    ws.root.display()
                ))
            })?);
        }
        let req = ReserveRequest {
            instance_id: id,
            project: ws.project,
            paths: wanted,
            exclusive: !self.shared,
            ttl: self.ttl,
            reason: self.reason,
        };
        let answer = ctx.client()?.reserve(&req, token.as_deref()).await?;
        ctx.out.json(&answer)?;
        done()
    }
}

/// `reservations`.
#[derive(Debug, Args)]
pub struct ReservationsArgs {
    /// Only this project's.
    #[arg(long)]
    project: Option<String>,
    /// Only this instance's.
    #[arg(long, value_name = "ID", conflicts_with = "mine")]
    instance: Option<String>,
    /// Only this workspace's instance's (KOOR_INSTANCE or .koor/instance.json).
    #[arg(long)]
    mine: bool,
    /// Only those that cover this file (relative to the project root).
    #[arg(long, value_name = "FILE")]
    path: Option<String>,
}

impl ReservationsArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let instance = if self.mine {
            Some(ctx.acting_for(None)?.0)
        } else {
            self.instance
        };
        let path = match self.path {
            // Only the root matters here: a path outside it is sent as given.
            Some(p) => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let root = identity::default_dir(&cwd);
                Some(paths::relative_to(&root, &p).unwrap_or(p))
            }
            None => None,
        };
        let list = ctx
            .client()?
            .reservations(
                self.project.as_deref(),
                instance.as_deref(),
                path.as_deref(),
            )
            .await?;
        ctx.out.json(&list)?;
        done()
    }
}

/// `release [PATHS...] [--all]`, `release --id ID [--force]`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The reserved paths to let go of, as they were reserved (normalised).
    #[arg(value_name = "PATH", required_unless_present_any = ["all", "id"])]
    paths: Vec<String>,
    /// Every reservation of this instance (in --project only, when given).
    #[arg(long, conflicts_with_all = ["paths", "id"])]
    all: bool,
    /// One reservation by its id.
    #[arg(long, value_name = "ID", conflicts_with = "paths")]
    id: Option<String>,
    /// With --id: release it whoever holds it (an operator's action).
    #[arg(long, requires = "id")]
    force: bool,
    /// The project (as for `reserve`).
    #[arg(long)]
    project: Option<String>,
    /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
    #[arg(long, value_name = "ID", conflicts_with = "force")]
    instance: Option<String>,
}

impl ReleaseArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        if let Some(rid) = &self.id {
            let answer = if self.force {
                client.reservation_release(rid, None, true, None).await?
            } else {
                let (me, token) = ctx.acting_for(self.instance)?;
                client
                    .reservation_release(rid, Some(&me), false, token.as_deref())
                    .await?
            };
            ctx.out.json(&answer)?;
            return done();
        }
        let (me, token) = ctx.acting_for(self.instance)?;
        if self.all {
            let released = client
                .reservations_release(&me, self.project.as_deref(), &[], token.as_deref())
                .await?;
            ctx.out.json(&Released {
                released: released.reservations,
            })?;
            return done();
        }
        let ws = Workspace::here(self.project)?;
        let wanted: Vec<String> = self
            .paths
            .iter()
            .map(|p| ws.project_path(p).unwrap_or_else(|| p.clone()))
            .collect();
        let released = client
            .reservations_release(&me, Some(&ws.project), &wanted, token.as_deref())
            .await?;
        if released.reservations.is_empty() {
            let message = format!(
                "none of {} is reserved by this instance in project {}",
                wanted.join(", "),
                ws.project
            );
            return Err(ClientError::Api {
                status: 404,
                body: ErrorBody::new(404, message),
            }
            .into());
        }
        ctx.out.json(&Released {
            released: released.reservations,
        })?;
        done()
    }
}
