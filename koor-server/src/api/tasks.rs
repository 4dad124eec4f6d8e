//! `/api/tasks...` (ext): task boards per project; a claim is a hold (see `holds::tasks`).
//!
//! - `GET /api/tasks`: the projects that have tasks, with counts by status.
//! - `GET|POST /api/tasks/{project}`: the board (filters `status`, `ready`, `label`,
//!   `claimed_by`), or create one task or an array of them.
//! - `POST /api/tasks/{project}/claim`: a given task, or the best ready one.
//! - `GET|PATCH|DELETE /api/tasks/{project}/{id}`: one task; change it (`If-Match`); cancel it.
//! - `POST /api/tasks/{project}/{id}/renew|complete|release|fail`: the holder's calls;
//!   `release?force=1` is the operator's "put back to open".

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, Query, body, identity, json_body, method_not_allowed, ok, path_segments, query,
    with_app,
};
use crate::App;
use crate::holds::{self, tasks};

/// Largest JSON body these routes accept (a whole plan in one create call).
const MAX_BODY: usize = 1024 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("tasks"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(query())
        .and(body::limited(MAX_BODY))
        .and(with_app(app))
        .then(
            |tail: Tail, method: Method, headers: HeaderMap, q: Query, body: Bytes, app: App| async move {
                respond(route(tail, method, headers, q, body, app).await)
            },
        )
        .boxed()
}

/// One task to create.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    /// The creating instance (optional): recorded as `created_by`.
    #[serde(default)]
    instance_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    title: Option<String>,
    description: Option<String>,
    priority: Option<i64>,
    labels: Option<Vec<String>>,
    depends_on: Option<Vec<String>>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ClaimBody {
    #[serde(default)]
    instance_id: String,
    id: Option<String>,
    label: Option<String>,
    ttl: Option<Value>,
}

#[derive(Deserialize)]
struct HolderBody {
    #[serde(default)]
    instance_id: String,
    ttl: Option<Value>,
    result: Option<Value>,
    #[serde(default)]
    reason: String,
}

async fn route(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let segments = path_segments(&tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [] => match method {
            Method::GET | Method::HEAD => {
                Ok(ok(&json!({"boards": tasks::boards(&app.store).await?})))
            }
            m => Err(method_not_allowed(&m, "/api/tasks", "GET")),
        },
        [project] => match method {
            Method::GET | Method::HEAD => {
                let filter = list_filter(&q)?;
                let list = tasks::list(&app.store, project, filter).await?;
                Ok(ok(&json!({"project": project, "tasks": list})))
            }
            Method::POST => create(&app, &headers, project, &body).await,
            m => Err(method_not_allowed(&m, "/api/tasks/{project}", "GET, POST")),
        },
        [project, "claim"] => match method {
            Method::POST => {
                let req: ClaimBody = json_body(&body, Some("{}"))?;
                identity::act_for(&app, &headers, &req.instance_id)?;
                let ttl = holds::parse_ttl(req.ttl.as_ref(), app.holds.default_ttl())?;
                let label = req.label.as_deref().filter(|l| !l.is_empty());
                let id = req.id.as_deref().filter(|i| !i.is_empty());
                let task = tasks::claim(
                    &app.holds,
                    &app.store,
                    project,
                    &req.instance_id,
                    id,
                    label,
                    ttl,
                )
                .await?;
                tracing::debug!(project = %project, id = %task.id, holder = %req.instance_id, "task claimed");
                Ok(ok(&task))
            }
            m => Err(method_not_allowed(&m, "/api/tasks/{project}/claim", "POST")),
        },
        [project, id] => match method {
            Method::GET | Method::HEAD => {
                let task = tasks::get(&app.store, project, id).await?;
                Ok(with_version(ok(&task), task.version))
            }
            Method::PATCH => {
                let req: PatchBody = json_body(&body, None)?;
                let patch = tasks::Patch {
                    title: req.title,
                    description: req.description,
                    priority: req.priority,
                    labels: req.labels,
                    depends_on: req.depends_on,
                    status: req.status,
                    if_version: if_version(&headers)?,
                };
                let task = tasks::update(&app.holds, &app.store, project, id, patch).await?;
                Ok(with_version(ok(&task), task.version))
            }
            Method::DELETE => {
                let task = tasks::cancel(&app.holds, &app.store, project, id).await?;
                tracing::debug!(project = %project, id = %task.id, "task cancelled");
                Ok(ok(&task))
            }
            m => Err(method_not_allowed(
                &m,
                "/api/tasks/{project}/{id}",
                "GET, PATCH, DELETE",
            )),
        },
        [
            project,
            id,
            action @ ("renew" | "complete" | "release" | "fail"),
        ] => {
            if method != Method::POST {
                return Err(method_not_allowed(
                    &method,
                    "/api/tasks/{project}/{id}/{action}",
                    "POST",
                ));
            }
            holder_call(&app, &headers, &q, project, id, action, &body).await
        }
        _ => Err(ApiError::NotFound(format!(
            "not found: /api/tasks/{}",
            tail.as_str()
        ))),
    }
}

async fn create(
    app: &App,
    headers: &HeaderMap,
    project: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let doc: Value = json_body(body, None)?;
    let (many, docs) = match doc {
        Value::Array(items) => (true, items),
        obj @ Value::Object(_) => (false, vec![obj]),
        _ => {
            return Err(ApiError::bad_request(
                "invalid body: send a task object or an array of them",
            ));
        }
    };
    let mut items = Vec::with_capacity(docs.len());
    for (i, d) in docs.into_iter().enumerate() {
        let b: NewBody = serde_json::from_value(d).map_err(|e| {
            ApiError::bad_request(if many {
                format!("invalid task #{i}: {e}")
            } else {
                format!("invalid task: {e}")
            })
        })?;
        items.push(tasks::NewTask {
            title: b.title,
            description: b.description,
            priority: b.priority,
            labels: b.labels,
            depends_on: b.depends_on,
            created_by: b.instance_id,
        });
    }
    let mut creators: Vec<&str> = items
        .iter()
        .map(|t| t.created_by.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    creators.dedup();
    for c in creators {
        identity::act_for(app, headers, c)?;
    }
    let created = tasks::create(&app.holds, &app.store, project, items).await?;
    tracing::info!(project = %project, count = created.len(), "tasks created");
    if many {
        Ok(ok(&json!({"project": project, "tasks": created})))
    } else {
        Ok(ok(&created[0]))
    }
}

async fn holder_call(
    app: &App,
    headers: &HeaderMap,
    q: &Query,
    project: &str,
    id: &str,
    action: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let force = matches!(q.get("force"), Some("1" | "true" | "yes"));
    if force {
        if action != "release" {
            return Err(ApiError::bad_request(
                "force=1 only applies to release (an operator putting a task back to open)",
            ));
        }
        let task = tasks::force_release(&app.holds, &app.store, project, id).await?;
        tracing::info!(project = %project, id = %task.id, "task put back to open by an operator");
        return Ok(ok(&task));
    }
    let req: HolderBody = json_body(body, Some("{}"))?;
    identity::act_for(app, headers, &req.instance_id)?;
    let task = match action {
        "renew" => {
            let ttl = holds::parse_ttl(req.ttl.as_ref(), app.holds.default_ttl())?;
            tasks::renew(&app.holds, &app.store, project, id, &req.instance_id, ttl).await?
        }
        _ => {
            let how = match action {
                "complete" => tasks::Finish::Complete(req.result),
                "release" => tasks::Finish::Release(req.reason),
                _ => tasks::Finish::Fail(req.reason),
            };
            let task =
                tasks::finish(&app.holds, &app.store, project, id, &req.instance_id, how).await?;
            tracing::debug!(project = %project, id = %task.id, status = %task.status, "task {action}");
            task
        }
    };
    Ok(ok(&task))
}

fn list_filter(q: &Query) -> Result<tasks::ListFilter, ApiError> {
    let statuses = q
        .all("status")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let ready = match q.get("ready") {
        None | Some("" | "0" | "false" | "no") => false,
        Some("1" | "true" | "yes") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid ready: {v:?} (use ready=1)"
            )));
        }
    };
    let nonempty = |name| q.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(tasks::ListFilter {
        statuses,
        ready,
        label: nonempty("label"),
        claimed_by: nonempty("claimed_by"),
    })
}

/// The version a PATCH expects: `If-Match: "<version>"` (or `X-Koor-If-Version: N`).
fn if_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_owned())
                    .map_err(|_| ApiError::bad_request(format!("invalid header: {name}")))
            })
            .transpose()
    };
    if let Some(v) = text("if-match")? {
        if v == "*" {
            return Ok(None);
        }
        let bare = v.trim_start_matches("W/").trim_matches('"');
        return bare.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid If-Match: {v:?} (a task's version, as in If-Match: \"3\")"
            ))
        });
    }
    match text(koor_shared::IF_VERSION_HEADER)? {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid X-Koor-If-Version: {v:?} is not a number"))
        }),
    }
}

/// `ETag: "<version>"` and `X-Koor-Version` on a task, so a client can send it back in `If-Match`.
fn with_version(mut resp: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut()
        .insert(koor_shared::VERSION_HEADER, HeaderValue::from(version));
    resp
}
