//! `/api/instances...` and `/api/liveness/check`.

use bytes::Bytes;
use koor_shared::types::{Deleted, RegisterRequest};
use serde::Deserialize;
use serde_json::json;
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
use crate::instances::Filter as InstanceFilter;

/// Largest JSON body these routes accept.
const MAX_BODY: usize = 256 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let instances =
        warp::path("api")
            .and(warp::path("instances"))
            .and(warp::path::tail())
            .and(warp::method())
            .and(warp::header::headers_cloned())
            .and(query())
            .and(body::limited(MAX_BODY))
            .and(with_app(app.clone()))
            .then(
                |tail: Tail,
                 method: Method,
                 headers: HeaderMap,
                 q: Query,
                 body: Bytes,
                 app: App| async move {
                    respond(route(tail, method, headers, q, body, app).await)
                },
            );
    let liveness = warp::path!("api" / "liveness" / "check")
        .and(warp::method())
        .and(with_app(app))
        .then(|method: Method, app: App| async move {
            respond(if method == Method::POST {
                check(app).await
            } else {
                Err(method_not_allowed(&method, "/api/liveness/check", "POST"))
            })
        });
    instances.or(liveness).unify().boxed()
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
    let reg = &app.instances;
    let store = &app.store;
    match (segs.as_slice(), method.clone()) {
        ([], Method::GET | Method::HEAD) => {
            let filter = InstanceFilter {
                name: q.get("name").map(str::to_owned),
                workspace: q.get("workspace").map(str::to_owned),
                stack: q.get("stack").map(str::to_owned),
                capability: q.get("capability").map(str::to_owned),
                status: q.get("status").map(str::to_owned),
            };
            Ok(ok(&reg.list(&filter)))
        }
        ([], m) => Err(method_not_allowed(&m, "/api/instances", "GET")),
        (["register"], Method::POST) => {
            let req: RegisterRequest = json_body(&body, Some("{}"))?;
            let registered = reg.register(store, req).await?;
            tracing::info!(id = %registered.instance.id, name = %registered.instance.name, "instance registered");
            Ok(ok(&registered))
        }
        (["register"], m) => Err(method_not_allowed(&m, "/api/instances/register", "POST")),
        (["stale"], Method::GET | Method::HEAD) => {
            let filter = InstanceFilter {
                status: Some(crate::instances::STALE.into()),
                ..InstanceFilter::default()
            };
            Ok(ok(&reg.list(&filter)))
        }
        ([id], Method::GET | Method::HEAD) => Ok(ok(&reg.get(id)?)),
        ([id], Method::DELETE) => {
            if identity::token(&headers).is_some() {
                identity::act_for(&app, &headers, id)?;
            }
            let holds = app.holds.clone();
            let gone = reg
                .deregister(store, id, move |tx, id| {
                    holds.release_holder(tx, id).map(|_| ())
                })
                .await?;
            tracing::info!(id = %gone.id, name = %gone.name, "instance deregistered");
            Ok(ok(&Deleted { deleted: gone.id }))
        }
        ([_], m) => Err(method_not_allowed(&m, "/api/instances/{id}", "GET, DELETE")),
        ([id, "heartbeat"], Method::POST) => {
            reg.get(id)?;
            identity::act_for(&app, &headers, id)?;
            let i = reg.heartbeat(store, id).await?;
            let renewed = app.holds.keepalive(store, id).await?;
            tracing::debug!(id = %i.id, renewed, "instance heartbeat");
            Ok(ok(&json!({"id": i.id, "status": "ok"})))
        }
        ([id, "activate"], Method::POST) => {
            let i = reg.activate(store, id).await?;
            tracing::info!(id = %i.id, name = %i.name, "instance activated");
            Ok(ok(&json!({"id": i.id, "status": i.status})))
        }
        ([id, "capabilities"], Method::POST) => {
            #[derive(Deserialize)]
            struct Caps {
                capabilities: Option<Vec<String>>,
            }
            let caps: Caps = json_body(&body, Some("{}"))?;
            let caps = caps.capabilities.ok_or_else(|| {
                ApiError::bad_request("capabilities is required: {\"capabilities\": [\"...\"]}")
            })?;
            let i = reg.set_capabilities(store, id, caps).await?;
            tracing::info!(id = %i.id, capabilities = ?i.capabilities, "instance capabilities updated");
            Ok(ok(&json!({"id": i.id, "capabilities": i.capabilities})))
        }
        ([_, "heartbeat" | "activate" | "capabilities"], m) => {
            Err(method_not_allowed(&m, "/api/instances/{id}/...", "POST"))
        }
        _ => Err(ApiError::NotFound("not found".into())),
    }
}

async fn check(app: App) -> Result<Response, ApiError> {
    let marked = app.instances.check_liveness(&app.store).await?;
    Ok(ok(&marked))
}
