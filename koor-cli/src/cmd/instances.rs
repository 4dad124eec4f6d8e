//! `register` and `instances ...`: the agent registry.
//!
//! `register` also saves the instance in `.koor/instance.json` (see `koor_shared::identity`) and,
//! registering again under the same name, resumes the instance saved there instead of creating a
//! second one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use koor_shared::client::{Client, InstanceFilter};
use koor_shared::config::normalize_server;
use koor_shared::identity::{self, Identity};
use koor_shared::types::{RegisterRequest, Registered};
use serde::Serialize;
use serde_json::json;

use super::done;
use crate::Ctx;

/// `register NAME ...`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The agent's name, e.g. claude-frontend.
    name: String,
    /// Workspace path or identifier (default: the directory the identity is saved in).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// What the agent is working on.
    #[arg(long, value_name = "TEXT")]
    intent: Option<String>,
    /// Tech stack, e.g. rust or react.
    #[arg(long, value_name = "S")]
    stack: Option<String>,
    /// A capability (repeat it, or separate with commas).
    #[arg(long = "capability", value_name = "C", value_delimiter = ',')]
    capabilities: Vec<String>,
    /// The project this agent works on, saved for hooks and guards.
    #[arg(long, value_name = "P")]
    project: Option<String>,
    /// Save the identity in DIR/.koor/instance.json (DIR is created) instead of the top of the git
    /// repository, else the current directory.
    #[arg(long, value_name = "DIR")]
    save_dir: Option<PathBuf>,
    /// Register a new instance even when the identity file names a registered one of this name.
    #[arg(long)]
    new: bool,
}

/// What `register` prints: the instance with its token, whether it was resumed, and where the
/// identity was saved.
#[derive(Debug, Serialize)]
struct RegisterOutput {
    #[serde(flatten)]
    registered: Registered,
    /// The instance saved in the identity file was resumed (same id) rather than created.
    resumed: bool,
    /// The identity file written.
    identity_file: String,
}

impl RegisterArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let dir = match &self.save_dir {
            Some(d) => {
                let d = cwd.join(d);
                std::fs::create_dir_all(&d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                d
            }
            None => identity::default_dir(&cwd),
        };
        // fail before registering when the file cannot be written
        identity::prepare(&dir)?;
        let config = ctx.config()?;
        let client = Client::new(&config);
        let (registered, resumed) = match self.resume(&client, &dir, &config.server).await? {
            Some(registered) => (registered, true),
            None => (self.register(&client, &dir).await?, false),
        };
        let saved = identity::read_in(&dir).ok().flatten();
        let project = self.project.clone().or_else(|| {
            saved
                .filter(|s| resumed && s.id == registered.instance.id)
                .and_then(|s| s.project)
        });
        let path = identity::write(
            &dir,
            &Identity {
                server: config.server.clone(),
                id: registered.instance.id.clone(),
                token: registered.token.clone(),
                name: registered.instance.name.clone(),
                project,
            },
        )?;
        ctx.out.json(&RegisterOutput {
            registered,
            resumed,
            identity_file: path.display().to_string(),
        })?;
        done()
    }

    /// Resumes the instance saved in `dir` when it has this name, was registered with this
    /// server, and the server still knows it (a heartbeat with its token succeeds).
    async fn resume(
        &self,
        client: &Client,
        dir: &Path,
        server: &str,
    ) -> Result<Option<Registered>> {
        if self.new {
            return Ok(None);
        }
        // an unreadable file is replaced by the new registration
        let Some(saved) = identity::read_in(dir).ok().flatten() else {
            return Ok(None);
        };
        if saved.name != self.name || normalize_server(&saved.server) != server {
            return Ok(None);
        }
        let token = Some(saved.token.as_str()).filter(|t| !t.is_empty());
        match client.instance_action_as(&saved.id, "heartbeat", token).await {
            Ok(_) => {}
            // gone (deregistered, another data dir) or not ours: register anew
            Err(e) if matches!(e.status(), Some(400 | 403 | 404)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if !self.capabilities.is_empty() {
            client
                .set_capabilities(&saved.id, &self.capabilities)
                .await?;
        }
        let instance = client.instance(&saved.id).await?;
        Ok(Some(Registered {
            instance,
            token: saved.token,
        }))
    }

    async fn register(&self, client: &Client, dir: &Path) -> Result<Registered> {
        let req = RegisterRequest {
            name: self.name.clone(),
            workspace: self
                .workspace
                .clone()
                .unwrap_or_else(|| dir.display().to_string()),
            intent: self.intent.clone().unwrap_or_default(),
            stack: self.stack.clone().unwrap_or_default(),
            capabilities: self.capabilities.clone(),
        };
        Ok(client.register(&req).await?)
    }
}

#[derive(Debug, Subcommand)]
pub enum InstancesCmd {
    /// List instances, optionally filtered.
    #[command(
        after_help = "Example:\n  koor-cli instances list --pretty\n  koor-cli instances list --capability code-edit --status active"
    )]
    List {
        /// Only instances with this name.
        #[arg(long)]
        name: Option<String>,
        /// Only instances in this workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Only instances with this stack.
        #[arg(long)]
        stack: Option<String>,
        /// Only instances with this capability.
        #[arg(long)]
        capability: Option<String>,
        /// Only instances with this status (pending, active, stale).
        #[arg(long)]
        status: Option<String>,
    },

    /// Show one instance.
    #[command(
        after_help = "Example:\n  koor-cli instances get 550e8400-e29b-41d4-a716-446655440000"
    )]
    Get {
        /// The instance id.
        id: String,
    },

    /// List instances not seen within the server's stale threshold.
    #[command(after_help = "Example:\n  koor-cli instances stale --pretty")]
    Stale,

    /// Remove an instance from the registry (its locks are released).
    #[command(
        after_help = "Example:\n  koor-cli instances deregister 550e8400-e29b-41d4-a716-446655440000"
    )]
    Deregister {
        /// The instance id (default: KOOR_INSTANCE, else .koor/instance.json).
        id: Option<String>,
    },

    /// Deregister every stale instance; prints the ids removed.
    #[command(after_help = "Example:\n  koor-cli instances prune")]
    Prune,

    /// Tell the server the instance is alive (a stale one becomes active again).
    #[command(after_help = "Example:\n  koor-cli instances heartbeat \"$KOOR_INSTANCE_ID\"")]
    Heartbeat {
        /// The instance id (default: KOOR_INSTANCE, else .koor/instance.json).
        id: Option<String>,
    },

    /// Mark an instance active.
    #[command(after_help = "Example:\n  koor-cli instances activate \"$KOOR_INSTANCE_ID\"")]
    Activate {
        /// The instance id (default: KOOR_INSTANCE, else .koor/instance.json).
        id: Option<String>,
    },

    /// Replace an instance's capabilities (none given clears them).
    #[command(
        after_help = "Example:\n  koor-cli instances capabilities \"$KOOR_INSTANCE_ID\" code-edit test-runner"
    )]
    Capabilities {
        /// The instance id.
        id: String,
        /// The new capabilities.
        #[arg(value_name = "CAPABILITY")]
        capabilities: Vec<String>,
    },
}

impl InstancesCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        match self {
            InstancesCmd::List {
                name,
                workspace,
                stack,
                capability,
                status,
            } => {
                let filter = InstanceFilter {
                    name,
                    workspace,
                    stack,
                    capability,
                    status,
                };
                ctx.out.json(&client.instances(&filter).await?)?;
            }
            InstancesCmd::Get { id } => ctx.out.json(&client.instance(&id).await?)?,
            InstancesCmd::Stale => ctx.out.json(&client.stale_instances().await?)?,
            InstancesCmd::Deregister { id } => {
                let (id, token) = ctx.acting_for(id)?;
                ctx.out
                    .json(&client.deregister_as(&id, token.as_deref()).await?)?;
            }
            InstancesCmd::Prune => {
                let mut deleted = Vec::new();
                for instance in client.stale_instances().await? {
                    match client.deregister(&instance.id).await {
                        Ok(d) => deleted.push(d.deleted),
                        // Gone already (another operator, or a heartbeat race): nothing to do.
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                ctx.out.json(&json!({ "deleted": deleted }))?;
            }
            InstancesCmd::Heartbeat { id } => {
                let (id, token) = ctx.acting_for(id)?;
                let answer = client
                    .instance_action_as(&id, "heartbeat", token.as_deref())
                    .await?;
                ctx.out.json(&answer)?;
            }
            InstancesCmd::Activate { id } => {
                let (id, token) = ctx.acting_for(id)?;
                let answer = client
                    .instance_action_as(&id, "activate", token.as_deref())
                    .await?;
                ctx.out.json(&answer)?;
            }
            InstancesCmd::Capabilities { id, capabilities } => ctx
                .out
                .json(&client.set_capabilities(&id, &capabilities).await?)?,
        }
        done()
    }
}
