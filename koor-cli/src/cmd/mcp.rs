//! `mcp-config`: the MCP config snippet an IDE needs to reach this server.
//!
//! The snippets are the files shipped in `assets/mcp/` (one source of truth), with the default URL
//! replaced by the configured server and the token placeholder by the configured token.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::done;
use crate::Ctx;
use crate::output::compact_json;

/// The URL the shipped snippets point at.
const TEMPLATE_URL: &str = "http://localhost:9800/mcp";
/// The token placeholder in the shipped `*-auth.json` snippets.
const TEMPLATE_TOKEN: &str = "YOUR_KOOR_TOKEN";

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

fn template(ide: Ide, with_token: bool) -> &'static str {
    match (ide, with_token) {
        (Ide::Claude, false) => include_str!("../../../assets/mcp/claude-code.json"),
        (Ide::Claude, true) => include_str!("../../../assets/mcp/claude-code-auth.json"),
        (Ide::Cursor, false) => include_str!("../../../assets/mcp/cursor.json"),
        (Ide::Cursor, true) => include_str!("../../../assets/mcp/cursor-auth.json"),
        (Ide::Vscode, false) => include_str!("../../../assets/mcp/vscode.json"),
        (Ide::Vscode, true) => include_str!("../../../assets/mcp/vscode-auth.json"),
    }
}

/// The text of a JSON string literal without its quotes.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The snippet for `ide`, pointing at `server` (a base URL) with `token` when auth is on, as
/// compact JSON in the shipped files' key order.
pub fn snippet(ide: Ide, server: &str, token: Option<&str>) -> Result<Vec<u8>> {
    let mut text = template(ide, token.is_some())
        .replace(TEMPLATE_URL, &json_escaped(&format!("{server}/mcp")));
    if let Some(t) = token {
        text = text.replace(TEMPLATE_TOKEN, &json_escaped(t));
    }
    compact_json(text.as_bytes()).context("assets/mcp snippet is not valid JSON")
}

impl McpArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = ctx.config()?;
        let json = snippet(self.ide, &cfg.server, cfg.token.as_deref())?;
        ctx.out.json_text(&json)?;
        done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ide: Ide, token: Option<&str>) -> String {
        String::from_utf8(snippet(ide, "http://h:1", token).expect("snippet")).expect("utf-8")
    }

    #[test]
    fn formats_match_the_api_doc() {
        assert_eq!(
            s(Ide::Claude, None),
            r#"{"mcpServers":{"koor":{"type":"http","url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Cursor, None),
            r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Vscode, None),
            r#"{"servers":{"koor":{"type":"http","url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Cursor, Some("T\"x")),
            r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp","headers":{"Authorization":"Bearer T\"x"}}}}"#
        );
    }

    #[test]
    fn every_shipped_snippet_has_the_placeholders() {
        for ide in [Ide::Claude, Ide::Cursor, Ide::Vscode] {
            for auth in [false, true] {
                let t = template(ide, auth);
                assert!(t.contains(TEMPLATE_URL), "{ide:?} {auth}");
                assert_eq!(t.contains(TEMPLATE_TOKEN), auth, "{ide:?} {auth}");
            }
        }
    }
}
