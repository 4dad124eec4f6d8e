//! The validation engine: compiles a project's rules and runs them over one file's content.
//!
//! - `regex`: a violation for each line the pattern matches (1-based line number and the text it
//!   matched; lines are split on `\n`, a trailing `\r` is dropped, an empty match does not count).
//! - `missing`: one violation (no line) when the pattern matches nowhere in the content.
//! - `custom`: a built-in check named by the pattern ([`BUILTINS`]: `no-console-log`); any other
//!   name is used as a regex, as `regex` does.
//!
//! Which rules apply: a rule with a `stack` applies only when the request names that stack or
//! none; `applies_to` globs (`*.html`, `src/**/*.ts`) are matched against the filename and its
//! base name, and apply to everything when the request names no file (the original's behaviour).
//!
//! No rule can hang or exhaust the server: patterns are compiled by the `regex` crate, whose
//! matching time is linear in the input, under a compiled-size limit; the content is bounded by
//! [`MAX_CONTENT_BYTES`] and the answer by [`MAX_VIOLATIONS`].

use globset::{GlobBuilder, GlobMatcher};
pub use koor_shared::rules::Violation;
use regex::{Regex, RegexBuilder};

use crate::store::rules::Rule;

/// Largest content `POST /api/validate/{project}` checks.
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
/// Longest pattern a rule may have.
pub const MAX_PATTERN_BYTES: usize = 4096;
/// Most violations one answer lists (the answer then says `"truncated": true`).
pub const MAX_VIOLATIONS: usize = 10_000;
/// The compiled program of one pattern may not grow beyond this.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;
/// Cache budget of the lazy DFA of one pattern.
const DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// The `custom` checks built in, by name, with the regex each one runs.
pub const BUILTINS: &[(&str, &str)] = &[("no-console-log", r"console\.log\(")];

/// The regex a built-in `custom` check runs.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name.trim())
        .map(|(_, re)| *re)
}

/// Why a rule cannot run; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// Compiles `pattern` with the engine's limits.
pub fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
}

#[derive(Debug)]
enum Kind {
    /// A violation per matching line.
    Lines,
    /// A violation when nothing matches.
    Missing,
}

/// A rule ready to run.
#[derive(Debug)]
pub struct Compiled {
    rule_id: String,
    severity: String,
    message: String,
    pattern: String,
    stack: String,
    kind: Kind,
    /// A built-in `custom` check.
    builtin: bool,
    regex: Regex,
    /// `None`: every file.
    globs: Option<Vec<GlobMatcher>>,
}

/// Compiles `rule` (its match type, pattern and globs); the error names the rule and the part
/// that is wrong.
pub fn compile(rule: &Rule) -> Result<Compiled, RuleError> {
    let id = &rule.rule_id;
    if rule.pattern.len() > MAX_PATTERN_BYTES {
        return Err(RuleError(format!(
            "pattern of rule {id} is too long: {} bytes, the limit is {MAX_PATTERN_BYTES}",
            rule.pattern.len()
        )));
    }
    let (kind, source) = match rule.match_type.as_str() {
        "" | "regex" => (Kind::Lines, rule.pattern.as_str()),
        "missing" => (Kind::Missing, rule.pattern.as_str()),
        "custom" => (
            Kind::Lines,
            builtin(&rule.pattern).unwrap_or(rule.pattern.as_str()),
        ),
        other => {
            return Err(RuleError(format!(
                "invalid match_type {other:?} in rule {id}: must be one of regex, missing, custom"
            )));
        }
    };
    let is_builtin = rule.match_type == "custom" && builtin(&rule.pattern).is_some();
    let regex = regex(source).map_err(|e| RuleError(format!("invalid regex in rule {id}: {e}")))?;
    let globs = globs(&rule.applies_to)
        .map_err(|(g, e)| RuleError(format!("invalid applies_to glob {g:?} in rule {id}: {e}")))?;
    Ok(Compiled {
        rule_id: rule.rule_id.clone(),
        severity: if rule.severity.is_empty() {
            "error".into()
        } else {
            rule.severity.clone()
        },
        message: rule.message.clone(),
        pattern: rule.pattern.clone(),
        stack: rule.stack.trim().to_owned(),
        kind,
        builtin: is_builtin,
        regex,
        globs,
    })
}

/// The matchers of `applies_to`: `None` when it is empty or contains `*` (every file). In a glob
/// `*` and `?` stop at `/`, `**` crosses directories, `[abc]` and `{a,b}` work as in a shell.
fn globs(applies_to: &[String]) -> Result<Option<Vec<GlobMatcher>>, (String, globset::Error)> {
    let globs: Vec<&str> = applies_to
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .collect();
    if globs.is_empty() || globs.contains(&"*") {
        return Ok(None);
    }
    globs
        .into_iter()
        .map(|g| {
            GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| (g.to_owned(), e))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// What to check: the content, and the filename and stack that choose the rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub filename: Option<&'a str>,
    pub stack: Option<&'a str>,
    pub content: &'a str,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// More violations were found than [`MAX_VIOLATIONS`]; the rest were left out.
    pub truncated: bool,
}

impl Compiled {
    /// Whether the rule runs for `target` (stack and filename).
    pub fn applies(&self, target: &Target<'_>) -> bool {
        let stack = target.stack.map(str::trim).unwrap_or_default();
        if !self.stack.is_empty() && !stack.is_empty() && !self.stack.eq_ignore_ascii_case(stack) {
            return false;
        }
        match (&self.globs, target.filename.map(str::trim)) {
            (None, _) | (_, None | Some("")) => true,
            (Some(globs), Some(name)) => {
                let path = name.replace('\\', "/");
                let path = path.trim_start_matches("./");
                let base = path.rsplit('/').next().unwrap_or(path);
                globs.iter().any(|g| g.is_match(path) || g.is_match(base))
            }
        }
    }

    fn message(&self, default: impl FnOnce() -> String) -> String {
        if self.message.trim().is_empty() {
            default()
        } else {
            self.message.clone()
        }
    }

    /// Adds this rule's violations in `content` to `out`, up to `room` of them; returns whether
    /// it had more to add.
    fn check(&self, content: &str, out: &mut Vec<Violation>, room: usize) -> bool {
        match self.kind {
            Kind::Missing => {
                if self.regex.is_match(content) {
                    return false;
                }
                if room == 0 {
                    return true;
                }
                out.push(Violation {
                    rule_id: self.rule_id.clone(),
                    severity: self.severity.clone(),
                    message: self
                        .message(|| format!("required pattern {:?} not found", self.pattern)),
                    line: None,
                    matched: None,
                });
                false
            }
            Kind::Lines => {
                let mut added = 0;
                for (i, line) in content.split('\n').enumerate() {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    let Some(m) = self.regex.find_iter(line).find(|m| !m.is_empty()) else {
                        continue;
                    };
                    if added == room {
                        return true;
                    }
                    out.push(Violation {
                        rule_id: self.rule_id.clone(),
                        severity: self.severity.clone(),
                        message: self.message(|| match self.builtin {
                            true => format!("check {:?} matched", self.pattern),
                            false => format!("pattern {:?} matched", self.pattern),
                        }),
                        line: Some(i + 1),
                        matched: Some(m.as_str().to_owned()),
                    });
                    added += 1;
                }
                false
            }
        }
    }
}

/// Runs `rules` (in their order) over `target`. A stored rule that cannot be compiled any more
/// shows up as an `error` violation naming it, so a CI gate notices instead of passing silently.
pub fn run(rules: &[Rule], target: &Target<'_>) -> Outcome {
    let mut outcome = Outcome::default();
    for rule in rules {
        let room = MAX_VIOLATIONS - outcome.violations.len();
        match compile(rule) {
            Ok(compiled) => {
                if compiled.applies(target)
                    && compiled.check(target.content, &mut outcome.violations, room)
                {
                    outcome.truncated = true;
                }
            }
            Err(e) if room > 0 => outcome.violations.push(Violation {
                rule_id: rule.rule_id.clone(),
                severity: "error".into(),
                message: format!("rule cannot run: {e}"),
                line: None,
                matched: None,
            }),
            Err(_) => outcome.truncated = true,
        }
        if outcome.truncated {
            break;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, match_type: &str, pattern: &str) -> Rule {
        Rule {
            project: "p".into(),
            rule_id: id.into(),
            match_type: match_type.into(),
            pattern: pattern.into(),
            message: format!("{id} violated"),
            ..Rule::default()
        }
    }

    fn content(content: &str) -> Target<'_> {
        Target {
            content,
            ..Target::default()
        }
    }

    fn lines(outcome: &Outcome) -> Vec<(&str, Option<usize>, Option<&str>)> {
        outcome
            .violations
            .iter()
            .map(|v| (v.rule_id.as_str(), v.line, v.matched.as_deref()))
            .collect()
    }

    #[test]
    fn regex_reports_each_matching_line_with_its_number_and_match() {
        let text = "let a = 1;\r\nconsole.log(a); console.log(b);\nok\n  style = \"x\"\n";
        let out = run(&[rule("r", "regex", r"console\.log\(\w\)")], &content(text));
        assert_eq!(lines(&out), [("r", Some(2), Some("console.log(a)"))]);
        let v = &out.violations[0];
        assert_eq!(
            (v.severity.as_str(), v.message.as_str()),
            ("error", "r violated")
        );

        let out = run(&[rule("s", "", r"style\s*=.*")], &content(text));
        assert_eq!(lines(&out), [("s", Some(4), Some("style = \"x\""))]);
        // The `\r` of a CRLF line is not part of the match.
        let out = run(&[rule("e", "regex", r"1;.*")], &content(text));
        assert_eq!(lines(&out), [("e", Some(1), Some("1;"))]);
    }

    #[test]
    fn empty_matches_do_not_count() {
        let out = run(&[rule("x", "regex", "x*")], &content("abc\naxb\n\n"));
        assert_eq!(lines(&out), [("x", Some(2), Some("x"))]);
        let out = run(&[rule("anchor", "regex", "^")], &content("a\nb"));
        assert!(out.violations.is_empty());
    }

    #[test]
    fn missing_reports_once_when_the_pattern_never_occurs() {
        let r = rule("ai-id", "missing", "data-ai-id");
        let out = run(std::slice::from_ref(&r), &content("<div>\n</div>"));
        assert_eq!(lines(&out), [("ai-id", None, None)]);
        let out = run(std::slice::from_ref(&r), &content("<div data-ai-id=\"x\">"));
        assert!(out.violations.is_empty());
        // Without a message the violation says what was missing.
        let out = run(
            &[Rule {
                message: String::new(),
                ..r
            }],
            &content(""),
        );
        assert_eq!(
            out.violations[0].message,
            "required pattern \"data-ai-id\" not found"
        );
        let json = serde_json::to_value(&out.violations[0]).expect("json");
        assert!(
            json.get("line").is_none() && json.get("match").is_none(),
            "{json}"
        );
    }

    #[test]
    fn custom_has_no_console_log_built_in_and_falls_back_to_regex() {
        let text = "console.log('x')\nconsole.error('y')\nconsole.log";
        let out = run(&[rule("c", "custom", "no-console-log")], &content(text));
        assert_eq!(lines(&out), [("c", Some(1), Some("console.log("))]);
        let out = run(&[rule("c", "custom", r"console\.error")], &content(text));
        assert_eq!(lines(&out), [("c", Some(2), Some("console.error"))]);
        assert!(compile(&rule("c", "custom", "(unclosed")).is_err());
        assert!(compile(&rule("c", "custom", "no-console-log")).is_ok());
    }

    #[test]
    fn severity_and_default_message() {
        let r = Rule {
            severity: "warning".into(),
            message: String::new(),
            ..rule("w", "regex", "TODO")
        };
        let out = run(&[r], &content("// TODO"));
        assert_eq!(out.violations[0].severity, "warning");
        assert_eq!(out.violations[0].message, "pattern \"TODO\" matched");
    }

    #[test]
    fn applies_to_globs_match_the_path_or_its_base_name() {
        let r = |globs: &[&str]| {
            compile(&Rule {
                applies_to: globs.iter().map(|g| g.to_string()).collect(),
                ..rule("g", "regex", "a")
            })
            .expect("compiles")
        };
        let file = |name: &'static str| Target {
            filename: Some(name),
            content: "a",
            stack: None,
        };
        let html = r(&["*.html"]);
        assert!(html.applies(&file("index.html")));
        assert!(html.applies(&file("site/pages/index.html")), "base name");
        assert!(!html.applies(&file("index.htm")));
        assert!(html.applies(&content("a")), "no filename: every rule runs");

        let ts = r(&["src/**/*.ts"]);
        assert!(ts.applies(&file("src/a.ts")));
        assert!(ts.applies(&file("src/app/deep/b.ts")));
        assert!(ts.applies(&file("./src/app/b.ts")));
        assert!(ts.applies(&file("src\\app\\b.ts")), "windows separators");
        assert!(!ts.applies(&file("lib/a.ts")));
        assert!(!ts.applies(&file("src/a.js")));

        let several = r(&["*.js", "*.{ts,tsx}"]);
        assert!(several.applies(&file("x.tsx")) && several.applies(&file("x.js")));
        assert!(!several.applies(&file("x.rs")));
        assert!(r(&["*"]).applies(&file("anything/at/all")));
        assert!(r(&[]).applies(&file("anything")));
        assert!(r(&[" "]).applies(&file("anything")));

        let err = compile(&Rule {
            applies_to: vec!["src/[".into()],
            ..rule("bad-glob", "regex", "a")
        })
        .expect_err("bad glob");
        assert!(
            err.0
                .contains("invalid applies_to glob \"src/[\" in rule bad-glob"),
            "{err}"
        );
    }

    #[test]
    fn stacks_scope_rules() {
        let go = compile(&Rule {
            stack: "go".into(),
            ..rule("go", "regex", "a")
        })
        .expect("compiles");
        let any = compile(&rule("any", "regex", "a")).expect("compiles");
        let with = |stack: &'static str| Target {
            stack: Some(stack),
            content: "a",
            filename: None,
        };
        assert!(go.applies(&with("go")) && go.applies(&with("Go")));
        assert!(!go.applies(&with("react")));
        assert!(any.applies(&with("react")) && any.applies(&with("go")));
        assert!(go.applies(&content("a")), "no stack asked: every rule runs");
    }

    #[test]
    fn invalid_and_oversized_patterns_are_errors_naming_the_rule() {
        let err = compile(&rule("broken", "regex", "([")).expect_err("invalid");
        assert!(err.0.starts_with("invalid regex in rule broken"), "{err}");
        let err = compile(&rule("huge", "regex", r"\w{1000}\w{1000}\w{1000}")).expect_err("big");
        assert!(
            err.0.contains("rule huge") && err.0.contains("size limit"),
            "{err}"
        );
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        let err = compile(&rule("long", "regex", &long)).expect_err("long");
        assert!(err.0.contains("pattern of rule long is too long"), "{err}");
        // A stored rule that cannot compile any more is reported, not skipped.
        let out = run(&[rule("broken", "regex", "([")], &content("x"));
        assert_eq!(out.violations[0].rule_id, "broken");
        assert!(out.violations[0].message.starts_with("rule cannot run"));
    }

    #[test]
    fn pathological_patterns_run_in_linear_time() {
        // Catastrophic for a backtracking engine; linear here.
        let text = format!("{}!", "a".repeat(64 * 1024));
        let out = run(&[rule("evil", "regex", r"^(a+)+$")], &content(&text));
        assert!(out.violations.is_empty());
        let out = run(&[rule("evil", "missing", r"(a|aa)*b")], &content(&text));
        assert_eq!(out.violations.len(), 1);
    }

    #[test]
    fn violations_are_capped() {
        let text = "x\n".repeat(MAX_VIOLATIONS + 5);
        let out = run(
            &[rule("a", "regex", "x"), rule("b", "regex", "x")],
            &content(&text),
        );
        assert_eq!(out.violations.len(), MAX_VIOLATIONS);
        assert!(out.truncated);
        let out = run(&[rule("a", "regex", "x")], &content("x\nx"));
        assert!(!out.truncated);
    }

    #[test]
    fn rules_run_in_order() {
        let out = run(
            &[rule("b", "regex", "b"), rule("a", "missing", "zzz")],
            &content("a\nb"),
        );
        assert_eq!(lines(&out), [("b", Some(2), Some("b")), ("a", None, None)]);
    }
}
