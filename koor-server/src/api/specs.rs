//! `/api/specs/{project}` and `/api/specs/{project}/{name...}`.

use bytes::Bytes;
use koor_shared::types::{Deleted, SpecList};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, body, client_has, condition, decode_path, hash_body, method_not_allowed,
    not_modified, ok, raw_value, set_version_headers, with_app,
};
use crate::App;
use crate::store::specs;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("specs"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(body::limited(koor_shared::MAX_VALUE_BYTES))
        .and(with_app(app))
        .then(
            |tail: Tail, method: Method, headers: HeaderMap, body: Bytes, app: App| async move {
                respond(route(tail, method, headers, body, app).await)
            },
        )
        .boxed()
}

async fn route(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let raw = tail.as_str().trim_end_matches('/');
    let (project, name) = match raw.split_once('/') {
        Some((p, n)) => (decode_path(p)?, decode_path(n)?),
        None => (decode_path(raw)?, String::new()),
    };
    if project.is_empty() {
        // (ext) The projects that have specs.
        return match method {
            Method::GET | Method::HEAD => Ok(ok(&serde_json::json!({
                "projects": app.store.read(specs::projects).await?
            }))),
            other => Err(method_not_allowed(&other, "/api/specs", "GET")),
        };
    }
    if name.is_empty() {
        return match method {
            Method::GET | Method::HEAD => {
                let p = project.clone();
                let specs = app.store.read(move |c| specs::list(c, &p)).await?;
                Ok(ok(&SpecList { project, specs }))
            }
            other => Err(method_not_allowed(&other, "/api/specs/{project}", "GET")),
        };
    }
    match method {
        Method::GET | Method::HEAD => {
            let (p, n) = (project.clone(), name.clone());
            let spec = app.store.read(move |c| specs::get(c, &p, &n)).await?;
            if client_has(&headers, &spec.hash) {
                return Ok(not_modified(&spec.hash, spec.version));
            }
            Ok(raw_value(
                spec.data.into(),
                "application/json",
                &spec.hash,
                spec.version,
            ))
        }
        Method::PUT => {
            if body.is_empty() {
                return Err(ApiError::bad_request("empty body"));
            }
            // Specs are served as application/json: store only what is.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                return Err(ApiError::bad_request(format!(
                    "spec data must be JSON: {e}"
                )));
            }
            let cond = condition(&headers)?;
            let (body, hash) = hash_body(body).await?;
            let (p, n, h) = (project.clone(), name.clone(), hash.clone());
            let written = app
                .store
                .write(move |tx| specs::put(tx, &p, &n, &body, &h, &cond))
                .await?;
            tracing::debug!(project = %project, name = %name, version = written.version, "spec updated");
            let mut resp = ok(&written);
            set_version_headers(resp.headers_mut(), &hash, written.version);
            Ok(resp)
        }
        Method::DELETE => {
            let cond = condition(&headers)?;
            let (p, n) = (project.clone(), name.clone());
            app.store
                .write(move |tx| specs::delete(tx, &p, &n, &cond))
                .await?;
            tracing::debug!(project = %project, name = %name, "spec deleted");
            Ok(ok(&Deleted {
                deleted: format!("{project}/{name}"),
            }))
        }
        other => Err(method_not_allowed(
            &other,
            "/api/specs/{project}/{name}",
            "GET, PUT, DELETE",
        )),
    }
}
