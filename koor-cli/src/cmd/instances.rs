//! `register` and `instances ...`: the agent registry.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use koor_shared::client::InstanceFilter;
use koor_shared::types::RegisterRequest;
use serde_json::json;

use super::done;
use crate::Ctx;

/// `register NAME ...`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The agent's name, e.g. claude-frontend.
    name: String,
    /// Workspace path or identifier.
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
}

impl RegisterArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let req = RegisterRequest {
            name: self.name,
            workspace: self.workspace.unwrap_or_default(),
            intent: self.intent.unwrap_or_default(),
            stack: self.stack.unwrap_or_default(),
            capabilities: self.capabilities,
        };
        let registered = ctx.client()?.register(&req).await?;
        ctx.out.json(&registered)?;
        done()
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

    /// Remove an instance from the registry.
    #[command(
        after_help = "Example:\n  koor-cli instances deregister 550e8400-e29b-41d4-a716-446655440000"
    )]
    Deregister {
        /// The instance id.
        id: String,
    },

    /// Deregister every stale instance; prints the ids removed.
    #[command(after_help = "Example:\n  koor-cli instances prune")]
    Prune,

    /// Tell the server the instance is alive (a stale one becomes active again).
    #[command(after_help = "Example:\n  koor-cli instances heartbeat \"$KOOR_INSTANCE_ID\"")]
    Heartbeat {
        /// The instance id.
        id: String,
    },

    /// Mark an instance active.
    #[command(after_help = "Example:\n  koor-cli instances activate \"$KOOR_INSTANCE_ID\"")]
    Activate {
        /// The instance id.
        id: String,
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
            InstancesCmd::Deregister { id } => ctx.out.json(&client.deregister(&id).await?)?,
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
            InstancesCmd::Heartbeat { id } => ctx
                .out
                .json(&client.instance_action(&id, "heartbeat").await?)?,
            InstancesCmd::Activate { id } => ctx
                .out
                .json(&client.instance_action(&id, "activate").await?)?,
            InstancesCmd::Capabilities { id, capabilities } => ctx
                .out
                .json(&client.set_capabilities(&id, &capabilities).await?)?,
        }
        done()
    }
}
