//! `audit [summary]`: the server's audit log of mutations.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use koor_shared::client::encode_query;
use reqwest::Method;

use super::{done, send_json};
use crate::Ctx;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum View {
    /// Counts by action and outcome instead of the entries.
    Summary,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `summary` for counts instead of entries.
    #[arg(value_enum)]
    view: Option<View>,
    /// Only entries at or after this time: RFC 3339, or a duration back from now (10m, 2h).
    #[arg(long)]
    since: Option<String>,
    /// Only entries at or after this RFC 3339 time (the original's spelling).
    #[arg(long)]
    from: Option<String>,
    /// Only entries at or before this RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// Only this actor (an instance id, or a remote address).
    #[arg(long)]
    actor: Option<String>,
    /// Only these actions: a pattern such as 'state.*', or a comma-separated list.
    #[arg(long)]
    action: Option<String>,
    /// Only this resource, or resources starting with it when it ends with '*'.
    #[arg(long)]
    resource: Option<String>,
    /// How many of the newest entries (default 50).
    #[arg(long, visible_alias = "limit", value_name = "N")]
    last: Option<u32>,
}

impl AuditArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let mut params = Vec::new();
        let mut add = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                params.push(format!("{name}={}", encode_query(&v)));
            }
        };
        add("since", self.since);
        add("from", self.from);
        add("to", self.to);
        add("actor", self.actor);
        add("action", self.action);
        add("resource", self.resource);
        add("last", self.last.map(|n| n.to_string()));
        let base = match self.view {
            Some(View::Summary) => "/api/audit/summary",
            None => "/api/audit",
        };
        let path = if params.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", params.join("&"))
        };
        let client = ctx.client()?;
        let answer = send_json(&client, client.request(Method::GET, &path)).await?;
        ctx.out.json(&answer)?;
        done()
    }
}
