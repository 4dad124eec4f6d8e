//! (ext) The instance this workspace acts for: `whoami`, and the top-level `activate` and
//! `heartbeat` (the original's agent instructions run `./koor-cli activate <id>`).
//!
//! Commands that act for an instance take its id from their argument, else `KOOR_INSTANCE`, else
//! the nearest `.koor/instance.json` (written by `register`), and send the instance token as
//! `X-Koor-Instance-Token` when the id is that instance's.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use koor_shared::identity::{self, Current};
use koor_shared::types::Instance;
use serde::Serialize;

use super::done;
use crate::Ctx;
use crate::exit;

/// Said when a command needs an instance and none is known.
const NO_INSTANCE: &str = "no instance: give its ID, set KOOR_INSTANCE, or run \
     `koor-cli register NAME` here (it saves .koor/instance.json)";

impl Ctx {
    /// The instance the current directory acts for (`KOOR_INSTANCE`, else the nearest
    /// `.koor/instance.json`), if any.
    pub fn me(&self) -> Result<Option<Current>> {
        Ok(identity::from_env()?)
    }

    /// The id a command acts for and the token that proves it: `explicit` when given (with our
    /// token only when it is our id), else ours; a usage error when there is none.
    pub fn acting_for(&self, explicit: Option<String>) -> Result<(String, Option<String>)> {
        match explicit {
            Some(id) => {
                // an unreadable identity file does not stop a command given an explicit id
                let token = self
                    .me()
                    .ok()
                    .flatten()
                    .and_then(|me| me.token_for(&id).map(str::to_owned));
                Ok((id, token))
            }
            None => match self.me()? {
                Some(me) => Ok((me.id, me.token)),
                None => Err(exit::usage(NO_INSTANCE)),
            },
        }
    }
}

/// `activate [ID]` and `heartbeat [ID]`.
#[derive(Debug, Args)]
pub struct InstanceArg {
    /// The instance id (default: KOOR_INSTANCE, else .koor/instance.json).
    id: Option<String>,
}

impl InstanceArg {
    /// `POST /api/instances/{id}/{action}` on behalf of the instance.
    pub async fn run(self, ctx: &Ctx, action: &str) -> Result<ExitCode> {
        let (id, token) = ctx.acting_for(self.id)?;
        let answer = ctx
            .client()?
            .instance_action_as(&id, action, token.as_deref())
            .await?;
        ctx.out.json(&answer)?;
        done()
    }
}

/// What `whoami` prints. The token is never printed; `token` says whether one is known.
#[derive(Debug, Serialize)]
struct WhoAmI {
    id: String,
    name: String,
    project: Option<String>,
    /// The server asked.
    server: String,
    /// Where the id came from: `env KOOR_INSTANCE` or `file PATH`.
    source: String,
    /// The identity file found walking up, if any.
    file: Option<String>,
    /// Whether an instance token is known (sent as `X-Koor-Instance-Token`).
    token: bool,
    /// The server's view of the instance.
    instance: Instance,
}

/// `whoami`: the instance this directory acts for, and the server's view of it.
pub async fn whoami(ctx: &Ctx) -> Result<ExitCode> {
    let Some(me) = ctx.me()? else {
        return Err(exit::usage(format!(
            "{NO_INSTANCE}; looked for .koor/instance.json from {} up",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| ".".into())
        )));
    };
    let config = ctx.config()?;
    let instance = ctx.client()?.instance(&me.id).await?;
    let saved = me.saved();
    let answer = WhoAmI {
        id: me.id.clone(),
        name: instance.name.clone(),
        project: saved.and_then(|s| s.project.clone()),
        server: config.server,
        source: me.source.to_string(),
        file: me.file.as_ref().map(|(p, _)| p.display().to_string()),
        token: me.token.is_some(),
        instance,
    };
    ctx.out.json(&answer)?;
    done()
}
