//! Validation rules per project, as rows of the `rules` table.
//!
//! A rule is proposed (by an agent over MCP, or `POST /api/rules/propose`), then accepted or
//! rejected by a person; only accepted rules run. Rules set directly with
//! `PUT /api/validate/{project}/rules` are accepted at once. [`check`] is the one place that
//! decides whether a rule could ever run (severity, match type, regex, globs; it compiles the rule
//! with [`crate::validate::compile`]), so every way in shares it.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::{Result, StoreError, Tx};
use crate::validate;

/// Waiting for a person to accept or reject it; does not run.
pub const PROPOSED: &str = "proposed";
/// Runs on `POST /api/validate/{project}`.
pub const ACCEPTED: &str = "accepted";
/// Turned down; does not run.
pub const REJECTED: &str = "rejected";
/// Every status, for filters.
pub const STATUSES: &[&str] = &[PROPOSED, ACCEPTED, REJECTED];

/// Allowed severities; the first is the default.
pub const SEVERITIES: &[&str] = &["error", "warning"];
/// Allowed match types; the first is the default. `regex`: a match is a violation; `missing`:
/// no match is a violation; `custom`: a built-in check named by the pattern (`no-console-log`),
/// any other name runs as a regex.
pub const MATCH_TYPES: &[&str] = &["regex", "missing", "custom"];

/// Most rules one `PUT /api/validate/{project}/rules` may set.
pub const MAX_RULES: usize = 1000;

pub use koor_shared::rules::Rule;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// Fills the defaults (severity `error`, match type `regex`) and rejects a rule that could never
/// run: a missing project, rule_id or pattern, an unknown severity or match type, a pattern that
/// is not a valid regex (or is too big), or an invalid `applies_to` glob. Errors name the rule.
pub fn check(rule: &mut Rule) -> Result<()> {
    rule.project = rule.project.trim().to_owned();
    rule.rule_id = rule.rule_id.trim().to_owned();
    for (name, value) in [
        ("project", &rule.project),
        ("rule_id", &rule.rule_id),
        ("pattern", &rule.pattern),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(format!("{name} is required")));
        }
    }
    for (name, value) in [("project", &rule.project), ("rule_id", &rule.rule_id)] {
        if value.contains('/') {
            return Err(invalid(format!(
                "invalid {name} {value:?}: it may not contain '/'"
            )));
        }
    }
    rule.severity = normalize("severity", &rule.severity, SEVERITIES)?;
    rule.match_type = normalize("match_type", &rule.match_type, MATCH_TYPES)?;
    rule.stack = rule.stack.trim().to_owned();
    rule.applies_to = rule
        .applies_to
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    validate::compile(rule).map_err(|e| invalid(e.0))?;
    Ok(())
}

/// The value lowercased, or the first allowed one when empty; anything else is an error naming
/// the allowed values.
fn normalize(name: &str, value: &str, allowed: &[&str]) -> Result<String> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Ok(allowed[0].to_owned());
    }
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(invalid(format!(
            "invalid {name} {value:?}: must be one of {}",
            allowed.join(", ")
        )))
    }
}

const COLUMNS: &str = "project, rule_id, severity, match_type, pattern, message, applies_to, \
                       stack, status, proposed_by, context, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Rule> {
    let applies_to: String = r.get(6)?;
    Ok(Rule {
        project: r.get(0)?,
        rule_id: r.get(1)?,
        severity: r.get(2)?,
        match_type: r.get(3)?,
        pattern: r.get(4)?,
        message: r.get(5)?,
        applies_to: serde_json::from_str(&applies_to).unwrap_or_default(),
        stack: r.get(7)?,
        status: r.get(8)?,
        proposed_by: r.get(9)?,
        context: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// One rule, whatever its status.
pub fn get(conn: &Connection, project: &str, rule_id: &str) -> Result<Option<Rule>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM rules WHERE project = ?1 AND rule_id = ?2"
        ))?
        .query_row(params![project, rule_id], from_row)
        .optional()?)
}

/// A project's rules, whatever their status, sorted by rule_id.
pub fn list(conn: &Connection, project: &str) -> Result<Vec<Rule>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM rules WHERE project = ?1 ORDER BY rule_id"
    ))?;
    let rows = stmt.query_map([project], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A project's rules with `status` (every status when `None`), sorted by rule_id.
pub fn list_status(conn: &Connection, project: &str, status: Option<&str>) -> Result<Vec<Rule>> {
    let Some(status) = status else {
        return list(conn, project);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM rules WHERE project = ?1 AND status = ?2 ORDER BY rule_id"
    ))?;
    let rows = stmt.query_map(params![project, status], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every project's rules with `status` (every status when `None`), sorted by project and rule_id.
pub fn list_all(conn: &Connection, status: Option<&str>) -> Result<Vec<Rule>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM rules WHERE ?1 IS NULL OR status = ?1 ORDER BY project, rule_id"
    ))?;
    let rows = stmt.query_map([status], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Writes the whole row as given (no checks, no event): the building block of the write paths.
pub fn upsert(conn: &Connection, rule: &Rule) -> Result<()> {
    let applies_to = serde_json::to_string(&rule.applies_to).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "INSERT INTO rules ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (project, rule_id) DO UPDATE SET severity = excluded.severity,
           match_type = excluded.match_type, pattern = excluded.pattern, message = excluded.message,
           applies_to = excluded.applies_to, stack = excluded.stack, status = excluded.status,
           proposed_by = excluded.proposed_by, context = excluded.context,
           created_at = excluded.created_at, updated_at = excluded.updated_at"
    ))?
    .execute(params![
        rule.project,
        rule.rule_id,
        rule.severity,
        rule.match_type,
        rule.pattern,
        rule.message,
        applies_to,
        rule.stack,
        rule.status,
        rule.proposed_by,
        rule.context,
        rule.created_at,
        rule.updated_at,
    ])?;
    Ok(())
}

/// Stores `rule` with status [`PROPOSED`] after [`check`], and emits `koor.rule.proposed`.
/// Proposing again under the id of a proposed or rejected rule replaces it (keeping its
/// `created_at`); an accepted rule is never overwritten by a proposal.
pub fn propose(tx: &mut Tx<'_>, mut rule: Rule) -> Result<Rule> {
    check(&mut rule)?;
    let existing = get(tx.conn(), &rule.project, &rule.rule_id)?;
    if existing.as_ref().is_some_and(|e| e.status == ACCEPTED) {
        return Err(StoreError::Precondition {
            message: format!(
                "rule {}/{} is already accepted: propose the change under another rule_id",
                rule.project, rule.rule_id
            ),
            current_version: None,
        });
    }
    let now = tx.now().to_owned();
    rule.status = PROPOSED.into();
    rule.created_at = existing.map_or_else(|| now.clone(), |e| e.created_at);
    rule.updated_at = now;
    upsert(tx.conn(), &rule)?;
    tx.emit(
        "koor.rule.proposed",
        json!({"project": rule.project, "rule_id": rule.rule_id, "severity": rule.severity}),
        "koor",
    )?;
    Ok(rule)
}

/// Replaces the project's accepted rules with `rules` (already passed through [`check`]), all
/// accepted; proposals and rejected rules stay unless `rules` reuses their ids. Emits
/// `koor.rule.replaced` with the project and the count.
pub fn replace(tx: &mut Tx<'_>, project: &str, rules: Vec<Rule>) -> Result<usize> {
    let now = tx.now().to_owned();
    let count = rules.len();
    let existing: std::collections::HashMap<String, String> = list(tx.conn(), project)?
        .into_iter()
        .map(|r| (r.rule_id, r.created_at))
        .collect();
    tx.conn()
        .prepare_cached("DELETE FROM rules WHERE project = ?1 AND status = ?2")?
        .execute(params![project, ACCEPTED])?;
    for mut rule in rules {
        rule.project = project.to_owned();
        rule.status = ACCEPTED.into();
        rule.created_at = existing
            .get(&rule.rule_id)
            .cloned()
            .unwrap_or_else(|| now.clone());
        rule.updated_at = now.clone();
        upsert(tx.conn(), &rule)?;
    }
    tx.emit(
        "koor.rule.replaced",
        json!({"project": project, "count": count}),
        "koor",
    )?;
    Ok(count)
}

/// A person's decision on a rule: `status` [`ACCEPTED`] or [`REJECTED`], from any status (a
/// rejected proposal can still be accepted, an accepted rule can be turned off). Accepting checks
/// the rule again, so a rule that cannot run is never accepted. Emits `koor.rule.accepted` or
/// `koor.rule.rejected` when the status changes; deciding again is a no-op.
pub fn decide(tx: &mut Tx<'_>, project: &str, rule_id: &str, status: &str) -> Result<Rule> {
    let mut rule = get(tx.conn(), project, rule_id)?
        .ok_or_else(|| StoreError::NotFound(format!("rule not found: {project}/{rule_id}")))?;
    if rule.status == status {
        return Ok(rule);
    }
    if status == ACCEPTED {
        check(&mut rule)?;
    }
    rule.status = status.to_owned();
    rule.updated_at = tx.now().to_owned();
    upsert(tx.conn(), &rule)?;
    tx.emit(
        &format!("koor.rule.{status}"),
        json!({"project": rule.project, "rule_id": rule.rule_id}),
        "koor",
    )?;
    Ok(rule)
}

/// Where a rule came from, as the original's export names it: `learned` when an agent or a
/// person proposed it, else `local` (set directly on the project).
pub fn source_of(rule: &Rule) -> &'static str {
    if rule.proposed_by.is_empty() {
        "local"
    } else {
        "learned"
    }
}

/// Stores imported rules (already passed through [`check`]) as accepted, replacing rules with the
/// same project and id (keeping their `created_at`). Emits `koor.rule.imported` with the count.
pub fn import(tx: &mut Tx<'_>, rules: Vec<Rule>) -> Result<usize> {
    let now = tx.now().to_owned();
    let count = rules.len();
    let mut projects = std::collections::BTreeSet::new();
    for mut rule in rules {
        let existing = get(tx.conn(), &rule.project, &rule.rule_id)?;
        rule.status = ACCEPTED.into();
        rule.created_at = existing.map_or_else(|| now.clone(), |e| e.created_at);
        rule.updated_at = now.clone();
        upsert(tx.conn(), &rule)?;
        projects.insert(rule.project);
    }
    tx.emit(
        "koor.rule.imported",
        json!({"count": count, "projects": projects}),
        "koor",
    )?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;
    use crate::store::Store;

    fn rule(id: &str, pattern: &str) -> Rule {
        Rule {
            project: "shop".into(),
            rule_id: id.into(),
            pattern: pattern.into(),
            message: "no console.log".into(),
            ..Rule::default()
        }
    }

    #[test]
    fn check_fills_defaults_and_names_what_is_wrong() {
        let mut r = rule("no-console", r"console\.log");
        check(&mut r).expect("valid");
        assert_eq!(
            (r.severity.as_str(), r.match_type.as_str()),
            ("error", "regex")
        );

        let err = |mut r: Rule| check(&mut r).expect_err("invalid").to_string();
        assert!(err(rule("x", "(unclosed")).contains("invalid regex in rule x"));
        assert!(err(rule("", "a")).contains("rule_id is required"));
        assert!(err(rule("x", " ")).contains("pattern is required"));
        assert!(
            err(Rule {
                severity: "fatal".into(),
                ..rule("x", "a")
            })
            .contains("must be one of error, warning")
        );
        assert!(
            err(Rule {
                match_type: "glob".into(),
                ..rule("x", "a")
            })
            .contains("regex, missing, custom")
        );
        assert!(err(rule("a/b", "a")).contains("may not contain '/'"));
        assert!(
            err(Rule {
                applies_to: vec!["a[".into()],
                ..rule("globby", "a")
            })
            .contains("invalid applies_to glob \"a[\" in rule globby")
        );
        // A custom rule names a built-in check; any other name must be a valid regex.
        let mut custom = Rule {
            match_type: "Custom".into(),
            applies_to: vec![" *.js ".into(), "".into()],
            ..rule("x", "no-console-log")
        };
        check(&mut custom).expect("built-in check");
        assert_eq!(custom.match_type, "custom");
        assert_eq!(custom.applies_to, ["*.js"]);
        assert!(
            err(Rule {
                match_type: "custom".into(),
                ..rule("x", "(not a regex")
            })
            .contains("invalid regex in rule x")
        );
        // The message is optional (a violation then names the pattern).
        check(&mut Rule {
            message: String::new(),
            ..rule("x", "a")
        })
        .expect("no message");
    }

    #[tokio::test]
    async fn replace_keeps_proposals_and_decide_moves_status() {
        let dir = tempfile::tempdir().expect("dir");
        let bus = Bus::new(64);
        let mut events = bus.subscribe();
        let store = Store::open(dir.path(), bus).expect("open");
        store
            .write(|tx| propose(tx, rule("pending", "TODO")))
            .await
            .expect("proposed");
        let _ = events.recv().await.expect("proposed event");

        let set = vec![rule("a", "x"), rule("b", "y")];
        let n = store
            .write(move |tx| replace(tx, "shop", set))
            .await
            .expect("replaced");
        assert_eq!(n, 2);
        let e = events.recv().await.expect("event");
        assert_eq!(e.event.topic, "koor.rule.replaced");
        assert_eq!(e.event.data, json!({"project": "shop", "count": 2}));

        // A second PUT replaces the accepted set, the proposal stays.
        let set = vec![rule("c", "z")];
        store
            .write(move |tx| replace(tx, "shop", set))
            .await
            .expect("replaced");
        let all = store.read(|c| list(c, "shop")).await.expect("list");
        let ids: Vec<(&str, &str)> = all
            .iter()
            .map(|r| (r.rule_id.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(ids, [("c", ACCEPTED), ("pending", PROPOSED)]);
        let accepted = store
            .read(|c| list_status(c, "shop", Some(ACCEPTED)))
            .await
            .expect("list");
        assert_eq!(accepted.len(), 1);
        let proposed = store
            .read(|c| list_all(c, Some(PROPOSED)))
            .await
            .expect("list");
        assert_eq!(proposed[0].rule_id, "pending");
        assert_eq!(
            store.read(|c| list_all(c, None)).await.expect("all").len(),
            2
        );
        let _ = events.recv().await.expect("replaced event");

        let r = store
            .write(|tx| decide(tx, "shop", "pending", ACCEPTED))
            .await
            .expect("accepted");
        assert_eq!(r.status, ACCEPTED);
        let e = events.recv().await.expect("event");
        assert_eq!(e.event.topic, "koor.rule.accepted");
        assert_eq!(
            e.event.data,
            json!({"project": "shop", "rule_id": "pending"})
        );
        // Deciding the same again changes nothing and says nothing.
        store
            .write(|tx| decide(tx, "shop", "pending", ACCEPTED))
            .await
            .expect("again");
        store
            .write(|tx| decide(tx, "shop", "pending", REJECTED))
            .await
            .expect("rejected");
        let e = events.recv().await.expect("event");
        assert_eq!(e.event.topic, "koor.rule.rejected");

        let missing = store
            .write(|tx| decide(tx, "shop", "nope", ACCEPTED))
            .await
            .expect_err("missing");
        assert!(matches!(&missing, StoreError::NotFound(m) if m == "rule not found: shop/nope"));
        store.close().await;
    }

    #[tokio::test]
    async fn propose_stores_emits_and_never_overwrites_an_accepted_rule() {
        let dir = tempfile::tempdir().expect("dir");
        let bus = Bus::new(64);
        let mut events = bus.subscribe();
        let store = Store::open(dir.path(), bus).expect("open");

        let first = store
            .write(|tx| {
                propose(
                    tx,
                    Rule {
                        severity: "warning".into(),
                        applies_to: vec!["*.js".into()],
                        ..rule("no-console", r"console\.log")
                    },
                )
            })
            .await
            .expect("proposed");
        assert_eq!(first.status, PROPOSED);
        let e = events.recv().await.expect("event");
        assert_eq!(e.event.topic, "koor.rule.proposed");
        assert_eq!(
            e.event.data,
            json!({"project": "shop", "rule_id": "no-console", "severity": "warning"})
        );

        let stored = store
            .read(|c| get(c, "shop", "no-console"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored, first);

        // Re-proposing replaces the proposal but keeps its creation time.
        let again = store
            .write(|tx| propose(tx, rule("no-console", "debugger")))
            .await
            .expect("re-proposed");
        assert_eq!(again.created_at, first.created_at);
        assert_eq!(again.pattern, "debugger");

        // Once accepted, a proposal under the same id is refused and the rule is untouched.
        store
            .write(|tx| {
                let mut r = get(tx.conn(), "shop", "no-console")?.expect("rule");
                r.status = ACCEPTED.into();
                upsert(tx.conn(), &r)
            })
            .await
            .expect("accept");
        let refused = store
            .write(|tx| propose(tx, rule("no-console", "alert")))
            .await
            .expect_err("refused");
        assert!(
            matches!(&refused, StoreError::Precondition { message, .. } if message.contains("already accepted")),
            "{refused:?}"
        );
        let kept = store.read(|c| list(c, "shop")).await.expect("list");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].status.as_str(), kept[0].pattern.as_str()),
            (ACCEPTED, "debugger")
        );

        let bad = store
            .write(|tx| propose(tx, rule("bad", "([")))
            .await
            .expect_err("invalid regex");
        assert!(matches!(bad, StoreError::Invalid(_)), "{bad:?}");
        store.close().await;
    }
}
