//! `mcp-config`: the MCP config snippet an IDE needs to reach this server.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::done;
use crate::Ctx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ide {
    /// Claude Code: `.mcp.json` or its settings.
    Claude,
    /// Cursor: `.cursor/mcp.json`.
    Cursor,
    /// VS Code: `.vscode/mcp.json`.
    Vscode,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Which IDE's format.
    #[arg(value_enum, default_value = "claude")]
    ide: Ide,
}

/// One server entry. Field order is the order printed.
#[derive(Debug, Serialize)]
struct Entry {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'static str, String>,
}

/// The snippet for `ide`, pointing at `server` (a base URL) with `token` when auth is on.
pub fn snippet(ide: Ide, server: &str, token: Option<&str>) -> serde_json::Value {
    let mut headers = BTreeMap::new();
    if let Some(t) = token {
        headers.insert("Authorization", format!("Bearer {t}"));
    }
    let entry = Entry {
        kind: (ide != Ide::Cursor).then_some("http"),
        url: format!("{server}/mcp"),
        headers,
    };
    let servers_key = if ide == Ide::Vscode {
        "servers"
    } else {
        "mcpServers"
    };
    serde_json::json!({ servers_key: { "koor": entry } })
}

impl McpArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = ctx.config()?;
        ctx.out
            .json(&snippet(self.ide, &cfg.server, cfg.token.as_deref()))?;
        done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).expect("JSON")
    }

    #[test]
    fn formats_match_the_api_doc() {
        let s = |ide| snippet(ide, "http://localhost:9800", None);
        assert_eq!(
            s(Ide::Claude),
            parse(r#"{"mcpServers":{"koor":{"type":"http","url":"http://localhost:9800/mcp"}}}"#)
        );
        assert_eq!(
            s(Ide::Cursor),
            parse(r#"{"mcpServers":{"koor":{"url":"http://localhost:9800/mcp"}}}"#)
        );
        assert_eq!(
            s(Ide::Vscode),
            parse(r#"{"servers":{"koor":{"type":"http","url":"http://localhost:9800/mcp"}}}"#)
        );
        assert_eq!(
            snippet(Ide::Cursor, "http://h:1", Some("T")),
            parse(
                r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp","headers":{"Authorization":"Bearer T"}}}}"#
            )
        );
    }
}
