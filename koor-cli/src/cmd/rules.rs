//! `rules ...` and `validate`: per-project validation rules, proposals, and a validation run that
//! CI can gate on (exit 8 on error-severity violations).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use koor_shared::rules::{Rule, ValidateRequest};

use super::done;
use crate::Ctx;
use crate::exit::{self, usage};
use crate::input::ValueArgs;

#[derive(Debug, Subcommand)]
pub enum RulesCmd {
    /// List a project's rules with their status (proposed, accepted, rejected).
    #[command(
        after_help = "Example:\n  koor-cli rules list shop --pretty\n  koor-cli rules list shop --status proposed"
    )]
    List {
        /// The project.
        project: String,
        /// Only rules with this status: proposed, accepted, rejected (default: all).
        #[arg(long, value_name = "S")]
        status: Option<String>,
    },

    /// Replace a project's accepted rules with a JSON array of rules (proposals are kept).
    #[command(
        after_help = "Example:\n  koor-cli rules set shop --file rules.json\n  echo '[{\"rule_id\":\"no-todo\",\"pattern\":\"TODO\",\"message\":\"no TODOs\"}]' | koor-cli rules set shop\n\nEach rule: {\"rule_id\", \"pattern\", \"message\", \"severity\": \"error|warning\",\n\"match_type\": \"regex|missing|custom\", \"applies_to\": [\"*.html\"], \"stack\"}."
    )]
    Set {
        /// The project.
        project: String,
        #[command(flatten)]
        value: ValueArgs,
    },

    /// Propose a rule; it runs only once a person accepts it.
    #[command(
        after_help = "Example:\n  koor-cli rules propose shop no-console-log --match-type custom --pattern no-console-log --message 'Remove console.log' --applies-to '*.js'"
    )]
    Propose(ProposeArgs),

    /// Accept a proposed rule: from now on it runs.
    #[command(after_help = "Example:\n  koor-cli rules accept shop no-console-log")]
    Accept {
        /// The project.
        project: String,
        /// The rule's id.
        rule_id: String,
    },

    /// Import rules of any projects (a JSON array, each rule naming its project) as accepted.
    #[command(
        after_help = "Example:\n  koor-cli rules import --file team-rules.json\n  koor-cli rules export --output all.json && koor-cli --server http://other:9800 rules import --file all.json"
    )]
    Import {
        #[command(flatten)]
        value: ValueArgs,
    },

    /// Export the accepted rules of every project as a JSON array (for `rules import`).
    #[command(
        after_help = "Example:\n  koor-cli rules export --source learned --output learned.json"
    )]
    Export {
        /// Only these sources, comma-separated: local (set on the project), learned (proposed).
        #[arg(long, value_name = "SOURCES")]
        source: Option<String>,
        /// Write the (indented) JSON to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },

    /// Reject a rule: it does not run.
    #[command(after_help = "Example:\n  koor-cli rules reject shop no-console-log")]
    Reject {
        /// The project.
        project: String,
        /// The rule's id.
        rule_id: String,
    },
}

/// `rules propose PROJECT RULE_ID ...`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The project.
    project: String,
    /// A short id for the rule, e.g. no-console-log.
    rule_id: String,
    /// A regex, or for --match-type custom a built-in check (no-console-log).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pattern: String,
    /// Shown on a violation.
    #[arg(long, value_name = "TEXT")]
    message: String,
    /// error (default) or warning.
    #[arg(long, value_name = "S")]
    severity: Option<String>,
    /// regex (default: a match is a violation), missing (no match is), custom.
    #[arg(long, value_name = "T")]
    match_type: Option<String>,
    /// Only for this stack.
    #[arg(long, value_name = "S")]
    stack: Option<String>,
    /// A file glob the rule applies to (repeat it, or separate with commas).
    #[arg(long = "applies-to", value_name = "GLOB", value_delimiter = ',')]
    applies_to: Vec<String>,
    /// Who proposes it.
    #[arg(long, value_name = "NAME")]
    proposed_by: Option<String>,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    context: Option<String>,
}

impl RulesCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            RulesCmd::List { project, status } => {
                let list = ctx
                    .client()?
                    .rules_list(&project, status.as_deref())
                    .await?;
                ctx.out.json(&list)?;
            }
            RulesCmd::Set { project, value } => {
                let bytes = value.read()?;
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(serde_json::Value::Array(_)) => {}
                    Ok(_) => return Err(usage("the rules must be a JSON array of rule objects")),
                    Err(e) => return Err(usage(format!("the rules are not valid JSON: {e}"))),
                }
                ctx.out
                    .json(&ctx.client()?.rules_set(&project, bytes).await?)?;
            }
            RulesCmd::Propose(args) => {
                let rule = Rule {
                    project: args.project,
                    rule_id: args.rule_id,
                    pattern: args.pattern,
                    message: args.message,
                    severity: args.severity.unwrap_or_default(),
                    match_type: args.match_type.unwrap_or_default(),
                    stack: args.stack.unwrap_or_default(),
                    applies_to: args.applies_to,
                    proposed_by: args.proposed_by.unwrap_or_default(),
                    context: args.context.unwrap_or_default(),
                    ..Rule::default()
                };
                ctx.out.json(&ctx.client()?.rule_propose(&rule).await?)?;
            }
            RulesCmd::Import { value } => {
                let bytes = value.read()?;
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(serde_json::Value::Array(_)) => {}
                    Ok(_) => return Err(usage("the rules must be a JSON array of rule objects")),
                    Err(e) => return Err(usage(format!("the rules are not valid JSON: {e}"))),
                }
                let client = ctx.client()?;
                let rb = client
                    .request(reqwest::Method::POST, "/api/rules/import")
                    .header("content-type", "application/json")
                    .body(bytes);
                ctx.out.json(&super::send_json(&client, rb).await?)?;
            }
            RulesCmd::Export { source, output } => {
                let client = ctx.client()?;
                let path = match source {
                    Some(s) => format!(
                        "/api/rules/export?source={}",
                        koor_shared::client::encode_query(&s)
                    ),
                    None => "/api/rules/export".to_owned(),
                };
                let rules =
                    super::send_json(&client, client.request(reqwest::Method::GET, &path)).await?;
                match output {
                    Some(file) => {
                        let mut text = serde_json::to_vec_pretty(&rules)?;
                        text.push(b'\n');
                        std::fs::write(&file, text)
                            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
                        let count = rules.as_array().map_or(0, Vec::len);
                        ctx.out.json(&serde_json::json!({
                            "file": file.display().to_string(),
                            "exported": count,
                        }))?;
                    }
                    None => ctx.out.json(&rules)?,
                }
            }
            RulesCmd::Accept { project, rule_id } => {
                let r = ctx
                    .client()?
                    .rule_decide(&project, &rule_id, "accept")
                    .await?;
                ctx.out.json(&r)?;
            }
            RulesCmd::Reject { project, rule_id } => {
                let r = ctx
                    .client()?
                    .rule_decide(&project, &rule_id, "reject")
                    .await?;
                ctx.out.json(&r)?;
            }
        }
        done()
    }
}

/// `validate PROJECT --file F [--stack S] [--filename NAME]`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The project whose accepted rules run.
    project: String,
    /// The file to check ('-' reads stdin).
    #[arg(long, short = 'f', value_name = "PATH")]
    file: PathBuf,
    /// Run the universal rules plus this stack's (default: every rule).
    #[arg(long, value_name = "S")]
    stack: Option<String>,
    /// The name the rules' applies_to globs see (default: the --file path; none for stdin).
    #[arg(long, value_name = "NAME")]
    filename: Option<String>,
}

impl ValidateArgs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let from_stdin = self.file.as_os_str() == "-";
        let bytes = if from_stdin {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut io::stdin().lock(), &mut bytes)
                .context("cannot read stdin")?;
            bytes
        } else {
            std::fs::read(&self.file)
                .with_context(|| format!("cannot read {}", self.file.display()))?
        };
        let content = String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!(
                "{} is not UTF-8 text: validation rules run on text files",
                if from_stdin {
                    "stdin".to_owned()
                } else {
                    self.file.display().to_string()
                }
            )
        })?;
        let filename = self
            .filename
            .or_else(|| (!from_stdin).then(|| self.file.display().to_string()));
        let request = ValidateRequest {
            filename,
            content: Some(content),
            stack: self.stack,
        };
        let result = ctx.client()?.validate(&self.project, &request).await?;
        ctx.out.json(&result)?;
        let errors = result.errors();
        if errors == 0 {
            return done();
        }
        let warnings = result.violations.len() - errors;
        let _ = writeln!(
            io::stderr().lock(),
            "koor-cli: validation failed: {errors} error{} and {warnings} warning{} in {}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
            request.filename.as_deref().unwrap_or("stdin"),
        );
        Ok(ExitCode::from(exit::VALIDATION))
    }
}
