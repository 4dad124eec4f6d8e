//! `mcp-config`: the MCP config snippet an IDE needs to reach this server.
//!
//! The snippets are the files shipped in `assets/mcp/` (one source of truth), with the default URL
//! replaced by the configured server. When the CLI has a token, the `*-auth.json` variant is used:
//! it names the token through the IDE's own variable substitution, so the file can be committed
//! without the secret in it:
//!
//! - Claude Code (`.mcp.json`): `${KOOR_TOKEN}`, expanded from the environment in `url` and
//!   `headers` (Claude Code docs, "Environment variable expansion in .mcp.json");
//! - Cursor (`.cursor/mcp.json`): `${env:KOOR_TOKEN}` (Cursor docs, MCP "config interpolation");
//! - VS Code (`.vscode/mcp.json`): `${input:koor-token}`, a `promptString` input with
//!   `"password": true` that VS Code asks for once and keeps in its secret storage (VS Code docs,
//!   "MCP configuration reference", input variables).
//!
//! `--inline-token` writes the token itself instead. `koor-cli init` writes these same snippets.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::done;
use crate::Ctx;
use crate::output::compact_json;

/// The URL the shipped snippets point at.
const TEMPLATE_URL: &str = "http://localhost:9800/mcp";

/// The environment variable the Claude Code and Cursor snippets read the token from.
pub const TOKEN_ENV: &str = "KOOR_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ide {
    /// Claude Code: `.mcp.json` or its settings.
    Claude,
    /// Cursor: `.cursor/mcp.json`.
    Cursor,
    /// VS Code: `.vscode/mcp.json`.
    Vscode,
}

impl Ide {
    pub const ALL: [Ide; 3] = [Ide::Claude, Ide::Cursor, Ide::Vscode];

    /// The IDE's variable reference for the token, as written in the `*-auth.json` snippet.
    fn token_reference(self) -> &'static str {
        match self {
            Ide::Claude => "${KOOR_TOKEN}",
            Ide::Cursor => "${env:KOOR_TOKEN}",
            Ide::Vscode => "${input:koor-token}",
        }
    }

    /// Where the IDE reads a project's MCP config, relative to the workspace root.
    pub fn config_path(self) -> &'static str {
        match self {
            Ide::Claude => ".mcp.json",
            Ide::Cursor => ".cursor/mcp.json",
            Ide::Vscode => ".vscode/mcp.json",
        }
    }

    /// The key of the object that maps server names to their entries.
    pub fn servers_key(self) -> &'static str {
        match self {
            Ide::Vscode => "servers",
            Ide::Claude | Ide::Cursor => "mcpServers",
        }
    }

    /// How the user supplies the token the snippet refers to (one line, for humans).
    pub fn token_hint(self) -> &'static str {
        match self {
            Ide::Claude => {
                "Claude Code expands ${KOOR_TOKEN} from its environment: export KOOR_TOKEN before starting it"
            }
            Ide::Cursor => {
                "Cursor expands ${env:KOOR_TOKEN} from its environment: export KOOR_TOKEN before starting it"
            }
            Ide::Vscode => {
                "VS Code asks for the token once (input koor-token) and keeps it in its secret storage"
            }
        }
    }
}

/// The VS Code input that `${input:koor-token}` refers to, as the shipped file spells it; dropped
/// when the token is written inline.
const VSCODE_INPUTS: &str = r#"  "inputs": [
    {
      "type": "promptString",
      "id": "koor-token",
      "description": "Koor bearer token (koor-server --auth-token)",
      "password": true
    }
  ],
"#;

/// How a snippet carries the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode<'a> {
    /// No auth header (a server without `--auth-token`).
    None,
    /// The header refers to the token through the IDE's variable substitution.
    Variable,
    /// The header holds the token itself.
    Inline(&'a str),
}

impl<'a> TokenMode<'a> {
    /// The mode for a CLI that has `token`: by variable unless `inline`.
    pub fn for_token(token: Option<&'a str>, inline: bool) -> Self {
        match (token, inline) {
            (None, _) => TokenMode::None,
            (Some(t), true) => TokenMode::Inline(t),
            (Some(_), false) => TokenMode::Variable,
        }
    }
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Which IDE's format.
    #[arg(value_enum, default_value = "claude")]
    ide: Ide,
    /// Write the token itself into the header instead of the IDE's variable for it.
    #[arg(long)]
    inline_token: bool,
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

/// The snippet for `ide` as pretty JSON text in the shipped file's key order, pointing at
/// `server` (a base URL).
pub fn snippet_text(ide: Ide, server: &str, token: TokenMode<'_>) -> String {
    let mut text = template(ide, token != TokenMode::None)
        .replace(TEMPLATE_URL, &json_escaped(&format!("{server}/mcp")));
    if let TokenMode::Inline(t) = token {
        text = text
            .replace(VSCODE_INPUTS, "")
            .replace(ide.token_reference(), &json_escaped(t));
    }
    text
}

/// The snippet for `ide` as compact JSON (what `mcp-config` prints).
pub fn snippet(ide: Ide, server: &str, token: TokenMode<'_>) -> Result<Vec<u8>> {
    compact_json(snippet_text(ide, server, token).as_bytes())
        .context("assets/mcp snippet is not valid JSON")
}

impl McpArgs {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let cfg = ctx.config()?;
        let mode = TokenMode::for_token(cfg.token.as_deref(), self.inline_token);
        let json = snippet(self.ide, &cfg.server, mode)?;
        ctx.out.json_text(&json)?;
        done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ide: Ide, token: TokenMode<'_>) -> String {
        String::from_utf8(snippet(ide, "http://h:1", token).expect("snippet")).expect("utf-8")
    }

    #[test]
    fn formats_match_the_api_doc() {
        assert_eq!(
            s(Ide::Claude, TokenMode::None),
            r#"{"mcpServers":{"koor":{"type":"http","url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Cursor, TokenMode::None),
            r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Vscode, TokenMode::None),
            r#"{"servers":{"koor":{"type":"http","url":"http://h:1/mcp"}}}"#
        );
        assert_eq!(
            s(Ide::Cursor, TokenMode::Inline("T\"x")),
            r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp","headers":{"Authorization":"Bearer T\"x"}}}}"#
        );
        assert_eq!(
            s(Ide::Vscode, TokenMode::Inline("T")),
            r#"{"servers":{"koor":{"type":"http","url":"http://h:1/mcp","headers":{"Authorization":"Bearer T"}}}}"#
        );
    }

    #[test]
    fn tokens_go_by_each_ides_variable() {
        assert_eq!(
            s(Ide::Claude, TokenMode::Variable),
            r#"{"mcpServers":{"koor":{"type":"http","url":"http://h:1/mcp","headers":{"Authorization":"Bearer ${KOOR_TOKEN}"}}}}"#
        );
        assert_eq!(
            s(Ide::Cursor, TokenMode::Variable),
            r#"{"mcpServers":{"koor":{"url":"http://h:1/mcp","headers":{"Authorization":"Bearer ${env:KOOR_TOKEN}"}}}}"#
        );
        assert_eq!(
            s(Ide::Vscode, TokenMode::Variable),
            r#"{"inputs":[{"type":"promptString","id":"koor-token","description":"Koor bearer token (koor-server --auth-token)","password":true}],"servers":{"koor":{"type":"http","url":"http://h:1/mcp","headers":{"Authorization":"Bearer ${input:koor-token}"}}}}"#
        );
    }

    #[test]
    fn every_shipped_snippet_has_the_placeholders() {
        for ide in Ide::ALL {
            for auth in [false, true] {
                let t = template(ide, auth);
                assert!(t.contains(TEMPLATE_URL), "{ide:?} {auth}");
                assert_eq!(t.contains(ide.token_reference()), auth, "{ide:?} {auth}");
                assert!(t.contains(&format!("\"{}\"", ide.servers_key())), "{ide:?}");
            }
        }
        assert!(template(Ide::Vscode, true).contains(VSCODE_INPUTS));
    }
}
