//! `/api/locks...` (ext): named locks over the hold model.

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
    ApiError, Query, body, decode_path, identity, json_body, method_not_allowed, ok, query,
    with_app,
};
use crate::App;
use crate::holds::{self, locks};

/// Largest JSON body these routes accept.
const MAX_BODY: usize = 64 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("locks"))
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
struct AcquireBody {
    #[serde(default)]
    instance_id: String,
    ttl: Option<Value>,
    wait: Option<Value>,
}

async fn route(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    q: Query,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    // Names may contain `/`, like state keys: the whole tail, decoded once.
    let name = decode_path(tail.as_str().trim_end_matches('/'))?;
    if name.is_empty() {
        return match method {
            Method::GET | Method::HEAD => Ok(ok(&json!({"locks": locks::list(&app.store).await?}))),
            m => Err(method_not_allowed(&m, "/api/locks", "GET")),
        };
    }
    match method {
        Method::GET | Method::HEAD => Ok(ok(&locks::get(&app.holds, &app.store, &name).await?)),
        Method::POST => {
            let req: AcquireBody = json_body(&body, None)?;
            identity::act_for(&app, &headers, &req.instance_id)?;
            let ttl = holds::parse_ttl(req.ttl.as_ref(), app.holds.default_ttl())?;
            let wait = match req.wait.as_ref().filter(|w| !w.is_null()) {
                None => None,
                Some(w) => {
                    let wait = holds::parse_duration_value("wait", w)?;
                    if wait > locks::MAX_WAIT {
                        return Err(ApiError::bad_request(format!(
                            "invalid wait: {} is longer than the most a lock waits (60s)",
                            holds::as_typed(w)
                        )));
                    }
                    Some(wait)
                }
            };
            let lock = locks::acquire(
                &app.holds,
                &app.store,
                &name,
                &req.instance_id,
                ttl,
                wait,
                app.stopping(),
            )
            .await?;
            tracing::debug!(name = %lock.name, holder = %lock.holder.id, fence = lock.fence, "lock acquired");
            Ok(ok(&lock))
        }
        Method::DELETE => {
            let force = matches!(q.get("force"), Some("1" | "true" | "yes"));
            let instance = q.get("instance_id").filter(|i| !i.is_empty());
            if !force {
                let id = instance.ok_or_else(|| {
                    ApiError::bad_request(
                        "instance_id is required: DELETE /api/locks/{name}?instance_id=ID (operators: ?force=1)",
                    )
                })?;
                identity::act_for(&app, &headers, id)?;
            }
            locks::release(&app.holds, &app.store, &name, instance, force).await?;
            tracing::debug!(name = %name, force, "lock released");
            Ok(ok(&json!({"released": name})))
        }
        m => Err(method_not_allowed(
            &m,
            "/api/locks/{name}",
            "GET, POST, DELETE",
        )),
    }
}
