//! `propose_rule`: a validation rule for a person to accept or reject.

use serde_json::{Value, json};

use super::args::{Args, one_of, schema, text};
use super::store_message;
use crate::App;
use crate::store::rules;

pub fn spec() -> Value {
    json!({
        "name": "propose_rule",
        "description": "Propose a validation rule for a project; a person accepts or rejects it, only accepted rules run.",
        "inputSchema": schema(json!({
            "project": text("Project name"),
            "rule_id": text("Short id, e.g. no-console-log"),
            "pattern": text("Regex to look for"),
            "message": text("Shown on a violation"),
            "severity": one_of(rules::SEVERITIES, "Default error"),
            "match_type": one_of(rules::MATCH_TYPES, "regex: a match is a violation; missing: no match is; default regex"),
            "stack": text("Only for this stack"),
            "proposed_by": text("Your name or instance_id"),
            "context": text("Why this rule"),
        }), &["project", "rule_id", "pattern", "message"]),
    })
}

pub async fn propose(app: &App, args: Args) -> Result<Value, String> {
    let rule = rules::Rule {
        project: args.text("project"),
        rule_id: args.text("rule_id"),
        severity: args.text("severity"),
        match_type: args.text("match_type"),
        pattern: args.text("pattern"),
        message: args.text("message"),
        stack: args.text("stack"),
        proposed_by: args.text("proposed_by"),
        context: args.text("context"),
        ..rules::Rule::default()
    };
    let rule = app
        .store
        .write(move |tx| rules::propose(tx, rule))
        .await
        .map_err(|e| format!("propose_rule: {}", store_message(e)))?;
    tracing::info!(project = %rule.project, rule_id = %rule.rule_id, "rule proposed over mcp");
    Ok(json!({
        "project": rule.project,
        "rule_id": rule.rule_id,
        "status": rule.status,
        "message": format!(
            "Rule {}/{} proposed ({} on {} matches). A person accepts it with POST /api/rules/{}/{}/accept \
             (or rejects it with .../reject); only accepted rules run.",
            rule.project, rule.rule_id, rule.severity, rule.match_type, rule.project, rule.rule_id
        ),
    }))
}
