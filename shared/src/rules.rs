//! The JSON bodies of validation rules, proposals and validation runs (`API.md`, "Validation
//! rules").

use serde::{Deserialize, Deserializer, Serialize};

/// A validation rule, as stored and listed. Every field may be left out of a request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    pub project: String,
    pub rule_id: String,
    /// `error` or `warning` (empty = `error`).
    pub severity: String,
    /// `regex`, `missing` or `custom` (empty = `regex`).
    pub match_type: String,
    /// A regex, or for `custom` the name of a built-in check (`no-console-log`).
    pub pattern: String,
    /// Shown on a violation (empty = one that names the pattern).
    pub message: String,
    /// File globs the rule applies to (`["*.html", "src/**/*.ts"]`); empty (or `null`) = every
    /// file.
    #[serde(deserialize_with = "null_as_empty")]
    pub applies_to: Vec<String>,
    /// Only for this stack; empty = every stack.
    pub stack: String,
    /// `proposed`, `accepted` or `rejected`; only accepted rules run.
    pub status: String,
    /// Who proposed it (an instance name or id, a person); free text.
    pub proposed_by: String,
    /// Why it was proposed; free text.
    pub context: String,
    pub created_at: String,
    pub updated_at: String,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// `{"project","rules"}` (`project` is absent in the every-project listing `GET /api/rules`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub rules: Vec<Rule>,
}

/// The answer to `PUT /api/validate/{project}/rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesSet {
    pub project: String,
    pub count: usize,
}

/// The answer to a proposal, an accept or a reject: `{"project","rule_id","status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub project: String,
    pub rule_id: String,
    pub status: String,
}

/// The body of `POST /api/validate/{project}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// Chooses the rules by their `applies_to` globs; without it every rule runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Required.
    pub content: Option<String>,
    /// Universal rules plus this stack's run; without it every rule runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule_id: String,
    pub severity: String,
    pub message: String,
    /// The 1-based line of a `regex` match; absent for `missing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The text matched on that line; absent for `missing`.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
}

/// The answer to `POST /api/validate/{project}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub project: String,
    pub violations: Vec<Violation>,
    pub count: usize,
    /// (ext) More violations were found than the server lists in one answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Validation {
    /// How many violations have severity `error` (what a CI gate fails on).
    pub fn errors(&self) -> usize {
        self.violations
            .iter()
            .filter(|v| v.severity == "error")
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_with_defaults_and_null_globs() {
        let r: Rule = serde_json::from_str(r#"{"rule_id":"a","pattern":"b","applies_to":null}"#)
            .expect("parses");
        assert_eq!((r.rule_id.as_str(), r.applies_to.len()), ("a", 0));
    }

    #[test]
    fn violations_leave_out_line_and_match_when_absent() {
        let v = Violation {
            rule_id: "r".into(),
            severity: "warning".into(),
            message: "m".into(),
            line: None,
            matched: None,
        };
        assert_eq!(
            serde_json::to_string(&v).expect("json"),
            r#"{"rule_id":"r","severity":"warning","message":"m"}"#
        );
        let with: Violation = serde_json::from_str(
            r#"{"rule_id":"r","severity":"error","message":"m","line":3,"match":"x"}"#,
        )
        .expect("parses");
        assert_eq!((with.line, with.matched.as_deref()), (Some(3), Some("x")));
        let outcome = Validation {
            project: "p".into(),
            violations: vec![v, with],
            count: 2,
            truncated: false,
        };
        assert_eq!(outcome.errors(), 1);
        assert!(
            !serde_json::to_string(&outcome)
                .expect("json")
                .contains("truncated")
        );
    }
}
