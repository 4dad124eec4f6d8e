//! `/api/validate/{project}[/rules]` and `/api/rules...`: validation rules, proposals and the
//! validation run itself (the engine is [`crate::validate`]).

use bytes::Bytes;
use koor_shared::rules::{RuleList, RuleStatus, RulesSet, ValidateRequest, Validation};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, Query, body, json_body, method_not_allowed, ok, path_segments, query, with_app,
};
use crate::App;
use crate::store::rules::{self, ACCEPTED, REJECTED, Rule};
use crate::validate::{self, MAX_CONTENT_BYTES, Target};

/// Largest body of `POST /api/validate/{project}` and `PUT .../rules`: room for
/// [`MAX_CONTENT_BYTES`] of content even when JSON escaping inflates it.
const MAX_VALIDATE_BODY: usize = 8 * MAX_CONTENT_BYTES;
/// Largest body of the `/api/rules` routes (one proposal, or an import of many rules).
const MAX_RULE_BODY: usize = 4 * 1024 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let validate = warp::path("api")
        .and(warp::path("validate"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(query())
        .and(body::limited(MAX_VALIDATE_BODY))
        .and(with_app(app.clone()))
        .then(
            |tail: Tail, method: Method, q: Query, body: Bytes, app: App| async move {
                respond(validate_route(tail, method, q, body, app).await)
            },
        );
    let rules = warp::path("api")
        .and(warp::path("rules"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(query())
        .and(body::limited(MAX_RULE_BODY))
        .and(with_app(app))
        .then(
            |tail: Tail, method: Method, q: Query, body: Bytes, app: App| async move {
                respond(rules_route(tail, method, q, body, app).await)
            },
        );
    validate.or(rules).unify().boxed()
}

/// `?status=proposed|accepted|rejected|all`; `default` when absent.
fn status_filter(q: &Query, default: Option<&'static str>) -> Result<Option<String>, ApiError> {
    match q.get("status").map(str::trim) {
        None | Some("") => Ok(default.map(str::to_owned)),
        Some("all") => Ok(None),
        Some(s) if rules::STATUSES.contains(&s) => Ok(Some(s.to_owned())),
        Some(s) => Err(ApiError::bad_request(format!(
            "invalid status {s:?}: must be one of proposed, accepted, rejected, all"
        ))),
    }
}

async fn validate_route(
    tail: Tail,
    method: Method,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let segs = path_segments(&tail)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([project], Method::POST) => run_validation(&app, project, &body).await,
        ([_], m) => Err(method_not_allowed(&m, "/api/validate/{project}", "POST")),
        ([project, "rules"], Method::GET | Method::HEAD) => {
            list_project(&app, project, status_filter(&q, Some(ACCEPTED))?).await
        }
        ([project, "rules"], Method::PUT) => put_rules(&app, project, &body).await,
        ([_, "rules"], m) => Err(method_not_allowed(
            &m,
            "/api/validate/{project}/rules",
            "GET, PUT",
        )),
        _ => Err(ApiError::NotFound("not found".into())),
    }
}

async fn rules_route(
    tail: Tail,
    method: Method,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let segs = path_segments(&tail)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([], Method::GET | Method::HEAD) => {
            let status = status_filter(&q, None)?;
            let rules = app
                .store
                .read(move |c| rules::list_all(c, status.as_deref()))
                .await?;
            Ok(ok(&RuleList {
                project: None,
                rules,
            }))
        }
        ([], m) => Err(method_not_allowed(&m, "/api/rules", "GET")),
        (["propose"], Method::POST) => propose(&app, &body).await,
        (["export"], Method::GET | Method::HEAD) => export(&app, &q).await,
        (["export"], m) => Err(method_not_allowed(&m, "/api/rules/export", "GET")),
        (["import"], Method::POST) => import(&app, &body).await,
        (["import"], m) => Err(method_not_allowed(&m, "/api/rules/import", "POST")),
        ([project], Method::GET | Method::HEAD) => {
            list_project(&app, project, status_filter(&q, None)?).await
        }
        (["propose"], m) => Err(method_not_allowed(&m, "/api/rules/propose", "POST")),
        ([_], m) => Err(method_not_allowed(&m, "/api/rules/{project}", "GET")),
        ([project, rule_id], Method::GET | Method::HEAD) => {
            let (project, rule_id) = ((*project).to_owned(), (*rule_id).to_owned());
            let rule = app
                .store
                .read(move |c| {
                    rules::get(c, &project, &rule_id)?.ok_or_else(|| {
                        crate::store::StoreError::NotFound(format!(
                            "rule not found: {project}/{rule_id}"
                        ))
                    })
                })
                .await?;
            Ok(ok(&rule))
        }
        ([_, _], m) => Err(method_not_allowed(
            &m,
            "/api/rules/{project}/{rule_id}",
            "GET",
        )),
        ([project, rule_id, action @ ("accept" | "reject")], Method::POST) => {
            let status = if *action == "accept" {
                ACCEPTED
            } else {
                REJECTED
            };
            let (project, rule_id) = ((*project).to_owned(), (*rule_id).to_owned());
            let rule = app
                .store
                .write(move |tx| rules::decide(tx, &project, &rule_id, status))
                .await?;
            tracing::info!(project = %rule.project, rule_id = %rule.rule_id, status = %rule.status, "rule decided");
            Ok(ok(&RuleStatus {
                project: rule.project,
                rule_id: rule.rule_id,
                status: rule.status,
            }))
        }
        ([_, _, "accept" | "reject"], m) => Err(method_not_allowed(
            &m,
            "/api/rules/{project}/{rule_id}/accept|reject",
            "POST",
        )),
        _ => Err(ApiError::NotFound("not found".into())),
    }
}

/// One rule as `GET /api/rules/export` lists it: the rule with the original's `source`.
#[derive(serde::Serialize)]
struct Exported {
    #[serde(flatten)]
    rule: Rule,
    source: &'static str,
}

/// `GET /api/rules/export[?source=local,learned]`: accepted rules of every project (all sources
/// unless `source` names some).
async fn export(app: &App, q: &Query) -> Result<Response, ApiError> {
    let sources: Vec<String> = q
        .get("source")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let rules = app
        .store
        .read(|c| rules::list_all(c, Some(ACCEPTED)))
        .await?;
    let out: Vec<Exported> = rules
        .into_iter()
        .map(|rule| {
            let source = rules::source_of(&rule);
            Exported { rule, source }
        })
        .filter(|e| sources.is_empty() || sources.iter().any(|s| s == e.source))
        .collect();
    Ok(ok(&out))
}

/// `POST /api/rules/import`: an array of rules (each naming its project) stored as accepted,
/// replacing rules with the same project and id. All are checked first: one bad rule imports
/// nothing.
async fn import(app: &App, body: &Bytes) -> Result<Response, ApiError> {
    let list: Vec<Rule> = json_body(body, None)
        .map_err(|e| ApiError::bad_request(format!("{e} (the body is a JSON array of rules)")))?;
    if list.is_empty() {
        return Err(ApiError::bad_request("empty rules array"));
    }
    if list.len() > rules::MAX_RULES {
        return Err(ApiError::bad_request(format!(
            "too many rules: {}, the limit is {}",
            list.len(),
            rules::MAX_RULES
        )));
    }
    let checked = tokio::task::spawn_blocking(move || {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(list.len());
        for (i, mut rule) in list.into_iter().enumerate() {
            rule.project = rule.project.trim().to_owned();
            if rule.project.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "project is required (rule #{} of the array)",
                    i + 1
                )));
            }
            rules::check(&mut rule).map_err(|e| {
                ApiError::bad_request(format!("{e} (rule #{} of the array)", i + 1))
            })?;
            if !seen.insert((rule.project.clone(), rule.rule_id.clone())) {
                return Err(ApiError::bad_request(format!(
                    "duplicate rule {}/{} in the array",
                    rule.project, rule.rule_id
                )));
            }
            out.push(rule);
        }
        Ok(out)
    })
    .await
    .map_err(|_| ApiError::Unavailable)??;
    let imported = app
        .store
        .write(move |tx| rules::import(tx, checked))
        .await?;
    tracing::info!(count = imported, "rules imported");
    Ok(ok(&serde_json::json!({ "imported": imported })))
}

/// `POST /api/rules/propose`: the same fields as the MCP `propose_rule` tool (plus `applies_to`).
async fn propose(app: &App, body: &Bytes) -> Result<Response, ApiError> {
    let rule: Rule = json_body(body, None)?;
    let rule = app.store.write(move |tx| rules::propose(tx, rule)).await?;
    tracing::info!(project = %rule.project, rule_id = %rule.rule_id, proposed_by = %rule.proposed_by, "rule proposed");
    Ok(ok(&RuleStatus {
        project: rule.project,
        rule_id: rule.rule_id,
        status: rule.status,
    }))
}

/// `PUT /api/validate/{project}/rules`: checks every rule first (on the blocking pool: regexes
/// compile there), so one bad rule changes nothing.
async fn put_rules(app: &App, project: &str, body: &Bytes) -> Result<Response, ApiError> {
    let list: Vec<Rule> = json_body(body, None)
        .map_err(|e| ApiError::bad_request(format!("{e} (the body is a JSON array of rules)")))?;
    if list.len() > rules::MAX_RULES {
        return Err(ApiError::bad_request(format!(
            "too many rules: {}, the limit is {}",
            list.len(),
            rules::MAX_RULES
        )));
    }
    let project = project.trim().to_owned();
    let checked = {
        let project = project.clone();
        tokio::task::spawn_blocking(move || check_all(&project, list))
            .await
            .map_err(|_| ApiError::Unavailable)??
    };
    let count = app
        .store
        .write({
            let project = project.clone();
            move |tx| rules::replace(tx, &project, checked)
        })
        .await?;
    tracing::info!(project = %project, count, "rules replaced");
    Ok(ok(&RulesSet { project, count }))
}

fn check_all(project: &str, list: Vec<Rule>) -> Result<Vec<Rule>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, mut rule) in list.into_iter().enumerate() {
        rule.project = project.to_owned();
        rules::check(&mut rule).map_err(|e| {
            let at = if rule.rule_id.is_empty() {
                format!(" (rule #{} of the array)", i + 1)
            } else {
                String::new()
            };
            ApiError::bad_request(format!("{e}{at}"))
        })?;
        if !seen.insert(rule.rule_id.clone()) {
            return Err(ApiError::bad_request(format!(
                "duplicate rule_id {:?} in the array",
                rule.rule_id
            )));
        }
        out.push(rule);
    }
    Ok(out)
}

/// `POST /api/validate/{project}`: the project's accepted rules over the content.
async fn run_validation(app: &App, project: &str, body: &Bytes) -> Result<Response, ApiError> {
    let req: ValidateRequest = json_body(body, None)?;
    let content = req.content.ok_or_else(|| {
        ApiError::bad_request("content is required: {\"filename\": \"a.js\", \"content\": \"...\"}")
    })?;
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_CONTENT_BYTES,
        });
    }
    let project = project.to_owned();
    let rules = app
        .store
        .read({
            let project = project.clone();
            move |c| rules::list_status(c, &project, Some(ACCEPTED))
        })
        .await?;
    let outcome = tokio::task::spawn_blocking(move || {
        validate::run(
            &rules,
            &Target {
                filename: req.filename.as_deref(),
                stack: req.stack.as_deref(),
                content: &content,
            },
        )
    })
    .await
    .map_err(|_| ApiError::Unavailable)?;
    let count = outcome.violations.len();
    tracing::debug!(project = %project, count, "validated");
    Ok(ok(&Validation {
        project,
        violations: outcome.violations,
        count,
        truncated: outcome.truncated,
    }))
}

/// A project's rules with `status` (`None` = all), as `{"project","rules"}`.
async fn list_project(
    app: &App,
    project: &str,
    status: Option<String>,
) -> Result<Response, ApiError> {
    let p = project.to_owned();
    let rules = app
        .store
        .read(move |c| rules::list_status(c, &p, status.as_deref()))
        .await?;
    Ok(ok(&RuleList {
        project: Some(project.to_owned()),
        rules,
    }))
}
