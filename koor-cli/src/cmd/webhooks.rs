//! `webhooks ...`: register, list, delete and test webhooks.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use koor_shared::client::encode_query;
use koor_shared::ops::CreateWebhook;
use reqwest::Method;

use super::{done, send_json};
use crate::Ctx;

#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// List webhooks with their delivery health (last status, last error, failures).
    #[command(after_help = "Example:\n  koor-cli webhooks list --pretty")]
    List,

    /// Register a webhook (or reconfigure and re-enable one with the same id).
    #[command(
        after_help = "Example:\n  koor-cli webhooks add --id ci --url http://127.0.0.1:8080/koor --patterns 'build.*,deploy.*' --secret s3cret"
    )]
    Add {
        /// Unique id: letters, digits, '-', '_', '.', ':'.
        #[arg(long)]
        id: String,
        /// Where to POST matching events (http://).
        #[arg(long)]
        url: String,
        /// Topic patterns, comma-separated (default: every topic).
        #[arg(long, value_name = "PATTERNS")]
        patterns: Option<String>,
        /// Secret for the X-Koor-Signature HMAC-SHA256 header.
        #[arg(long)]
        secret: Option<String>,
    },

    /// Delete a webhook.
    #[command(after_help = "Example:\n  koor-cli webhooks delete ci")]
    Delete {
        /// The webhook id.
        id: String,
    },

    /// Send a test event to a webhook now and report whether the receiver acknowledged it.
    #[command(after_help = "Example:\n  koor-cli webhooks test ci")]
    Test {
        /// The webhook id.
        id: String,
    },
}

impl WebhooksCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let client = ctx.client()?;
        let answer = match self {
            WebhooksCmd::List => {
                send_json(&client, client.request(Method::GET, "/api/webhooks")).await?
            }
            WebhooksCmd::Add {
                id,
                url,
                patterns,
                secret,
            } => {
                let req = CreateWebhook {
                    id,
                    url,
                    patterns: patterns
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    secret: secret.unwrap_or_default(),
                };
                send_json(
                    &client,
                    client.request(Method::POST, "/api/webhooks").json(&req),
                )
                .await?
            }
            WebhooksCmd::Delete { id } => {
                let path = format!("/api/webhooks/{}", encode_query(&id));
                send_json(&client, client.request(Method::DELETE, &path)).await?
            }
            WebhooksCmd::Test { id } => {
                let path = format!("/api/webhooks/{}/test", encode_query(&id));
                send_json(&client, client.request(Method::POST, &path)).await?
            }
        };
        ctx.out.json(&answer)?;
        done()
    }
}
