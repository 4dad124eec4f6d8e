//! `/api/reservations...` (ext): file reservations over the hold model.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/reservations[?project&instance_id&path]` | the live ones |
//! | `POST /api/reservations` | reserve (all or nothing) |
//! | `DELETE /api/reservations?instance_id=ID[&project=P][&path=F...]` | release an instance's |
//! | `POST /api/reservations/check` | read-only: which files others hold |
//! | `GET /api/reservations/{id}` | one |
//! | `DELETE /api/reservations/{id}?instance_id=ID` (or `?force=1`) | release one |
//! | `POST /api/reservations/{id}/renew` | new expiry |

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, Query, body, identity, json_body, method_not_allowed, ok, path_segments, query,
    with_app,
};
use crate::App;
use crate::holds::{self, reservations};

/// Largest JSON body these routes accept (256 paths of 1 KiB fit).
const MAX_BODY: usize = 512 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("reservations"))
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

#[derive(Deserialize)]
struct ReserveBody {
    #[serde(default)]
    instance_id: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    paths: Vec<String>,
    exclusive: Option<bool>,
    ttl: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct CheckBody {
    #[serde(default)]
    project: String,
    #[serde(default)]
    paths: Vec<String>,
    instance_id: Option<String>,
    #[serde(default)]
    exclusive: bool,
}

#[derive(Deserialize)]
struct RenewBody {
    #[serde(default)]
    instance_id: String,
    ttl: Option<Value>,
}

fn is_force(q: &Query) -> bool {
    matches!(q.get("force"), Some("1" | "true" | "yes"))
}

/// A non-empty query value.
fn param<'a>(q: &'a Query, name: &str) -> Option<&'a str> {
    q.get(name).filter(|v| !v.is_empty())
}

async fn route(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let segs = path_segments(&tail)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([], Method::GET | Method::HEAD) => {
            let filter = reservations::Filter {
                project: param(&q, "project").map(str::to_owned),
                instance: param(&q, "instance_id").map(str::to_owned),
                path: param(&q, "path").map(str::to_owned),
            };
            let list = reservations::list(&app.store, filter).await?;
            Ok(ok(&json!({"reservations": list})))
        }
        ([], Method::POST) => {
            let req: ReserveBody = json_body(&body, None)?;
            identity::act_for(&app, &headers, &req.instance_id)?;
            let ttl = holds::parse_ttl(req.ttl.as_ref(), app.holds.default_ttl())?;
            let granted = reservations::reserve(
                &app.holds,
                &app.store,
                reservations::Request {
                    instance: req.instance_id.clone(),
                    project: req.project,
                    paths: req.paths,
                    exclusive: req.exclusive.unwrap_or(true),
                    ttl,
                    reason: req.reason.unwrap_or_default(),
                },
            )
            .await?;
            tracing::debug!(holder = %req.instance_id, paths = granted.len(), "reserved");
            Ok(ok(&json!({"reservations": granted})))
        }
        ([], Method::DELETE) => {
            let id = param(&q, "instance_id").ok_or_else(|| {
                ApiError::bad_request(
                    "instance_id is required: DELETE /api/reservations?instance_id=ID[&project=P] (one: DELETE /api/reservations/{id})",
                )
            })?;
            identity::act_for(&app, &headers, id)?;
            let only: Vec<String> = q
                .all("path")
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            let released =
                reservations::release_all(&app.holds, &app.store, id, param(&q, "project"), &only)
                    .await?;
            tracing::debug!(holder = %id, released = released.len(), "reservations released");
            Ok(ok(&json!({"released": released})))
        }
        ([], m) => Err(method_not_allowed(
            &m,
            "/api/reservations",
            "GET, POST, DELETE",
        )),
        (["check"], Method::POST) => {
            let req: CheckBody = json_body(&body, None)?;
            let instance = req.instance_id.as_deref().filter(|i| !i.is_empty());
            let answer = reservations::check(
                &app.store,
                &req.project,
                &req.paths,
                instance,
                req.exclusive,
            )
            .await?;
            Ok(ok(&answer))
        }
        (["check"], m) => Err(method_not_allowed(&m, "/api/reservations/check", "POST")),
        ([id], Method::GET | Method::HEAD) => Ok(ok(&reservations::get(&app.store, id).await?)),
        ([id], Method::DELETE) => {
            let force = is_force(&q);
            let instance = param(&q, "instance_id");
            if !force {
                let who = instance.ok_or_else(|| {
                    ApiError::bad_request(
                        "instance_id is required: DELETE /api/reservations/{id}?instance_id=ID (operators: ?force=1)",
                    )
                })?;
                identity::act_for(&app, &headers, who)?;
            }
            let gone = reservations::release(&app.holds, &app.store, id, instance, force).await?;
            tracing::debug!(id = %gone.id, path = %gone.path, force, "reservation released");
            Ok(ok(&json!({"released": [gone]})))
        }
        ([_], m) => Err(method_not_allowed(
            &m,
            "/api/reservations/{id}",
            "GET, DELETE",
        )),
        ([id, "renew"], Method::POST) => {
            let req: RenewBody = json_body(&body, Some("{}"))?;
            identity::act_for(&app, &headers, &req.instance_id)?;
            // Without a ttl the reservation keeps its own.
            let ttl = match req.ttl.as_ref().filter(|t| !t.is_null()) {
                None => None,
                Some(t) => Some(holds::parse_ttl(Some(t), app.holds.default_ttl())?),
            };
            let renewed =
                reservations::renew(&app.holds, &app.store, id, &req.instance_id, ttl).await?;
            Ok(ok(&renewed))
        }
        ([_, "renew"], m) => Err(method_not_allowed(
            &m,
            "/api/reservations/{id}/renew",
            "POST",
        )),
        _ => Err(ApiError::NotFound(format!(
            "no such route: /api/reservations/{}",
            segs.join("/")
        ))),
    }
}
