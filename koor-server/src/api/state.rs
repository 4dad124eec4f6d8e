//! `/api/state` and `/api/state/{key...}`.

use bytes::Bytes;
use koor_shared::types::{Deleted, DiffOp, Rollback, StateDiff, StateHistory};
use serde_json::Value;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::{FullPath, Tail};
use warp::reply::Response;

use super::error::respond;
use super::{
    ApiError, Query, body, condition, current_not_modified, current_value, decode_path, hash_body,
    method_not_allowed, ok, query, raw_value, set_version_headers, with_app,
};
use crate::App;
use crate::store::state;

/// Versions listed by `?history=1` when no limit is given.
const DEFAULT_HISTORY_LIMIT: i64 = 50;
/// Most versions one history request returns.
const MAX_HISTORY_LIMIT: i64 = 10_000;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let listing = warp::path!("api" / "state")
        .and(warp::method())
        .and(warp::path::full())
        .and(with_app(app.clone()))
        .then(|method: Method, path: FullPath, app: App| async move {
            respond(if method == Method::GET || method == Method::HEAD {
                list(app).await
            } else if path.as_str().ends_with('/') {
                // `/api/state/` names an empty key.
                Err(ApiError::bad_request("key is required: /api/state/{key}"))
            } else {
                Err(method_not_allowed(&method, "/api/state", "GET"))
            })
        });
    let key =
        warp::path("api")
            .and(warp::path("state"))
            .and(warp::path::tail())
            .and(warp::method())
            .and(query())
            .and(warp::header::headers_cloned())
            .and(body::limited(koor_shared::MAX_VALUE_BYTES))
            .and(with_app(app.clone()))
            .then(
                |tail: Tail,
                 method: Method,
                 q: Query,
                 headers: HeaderMap,
                 body: Bytes,
                 app: App| async move {
                    respond(key_route(tail, method, q, headers, body, app).await)
                },
            );
    // GETs skip the body and the full header map: the hot path, tried first. `/api/state` and
    // `/api/state/` (an empty tail) are the listing.
    let get_key = warp::path("api")
        .and(warp::path("state"))
        .and(warp::path::tail())
        .and(warp::get())
        .and(query())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_app(app.clone()))
        .then(
            |tail: Tail, q: Query, inm: Option<String>, app: App| async move {
                respond(if tail.as_str().is_empty() {
                    list(app).await
                } else {
                    match key_of(&tail) {
                        Ok(key) => get(app, key, q, inm).await,
                        Err(e) => Err(e),
                    }
                })
            },
        );
    get_key.or(listing).unify().or(key).unify().boxed()
}

fn key_of(tail: &Tail) -> Result<String, ApiError> {
    let key = decode_path(tail.as_str())?;
    if key.is_empty() {
        return Err(ApiError::bad_request("key is required: /api/state/{key}"));
    }
    Ok(key)
}

async fn list(app: App) -> Result<Response, ApiError> {
    let rows = app.store.read(state::list).await?;
    Ok(ok(&rows))
}

async fn key_route(
    tail: Tail,
    method: Method,
    q: Query,
    headers: HeaderMap,
    body: Bytes,
    app: App,
) -> Result<Response, ApiError> {
    let key = key_of(&tail)?;
    match method {
        Method::GET | Method::HEAD => {
            let inm = headers
                .get(warp::http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            get(app, key, q, inm).await
        }
        Method::PUT => put(app, key, headers, body).await,
        Method::POST => rollback(app, key, q).await,
        Method::DELETE => delete(app, key, headers).await,
        other => Err(method_not_allowed(
            &other,
            "/api/state/{key}",
            "GET, PUT, POST, DELETE",
        )),
    }
}

async fn get(
    app: App,
    key: String,
    q: Query,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    if q.get("history")
        .is_some_and(|v| !matches!(v, "0" | "false"))
    {
        let limit = q.int("limit")?.unwrap_or(DEFAULT_HISTORY_LIMIT);
        if limit < 1 {
            return Err(ApiError::bad_request("invalid limit: must be at least 1"));
        }
        let limit = limit.min(MAX_HISTORY_LIMIT);
        let k = key.clone();
        let versions = app
            .store
            .read(move |c| state::history(c, &k, limit))
            .await?;
        return Ok(ok(&StateHistory { key, versions }));
    }
    if let Some(spec) = q.get("diff") {
        return diff(app, key, spec).await;
    }
    let version = q.int("version")?;
    if version.is_some_and(|v| v < 1) {
        return Err(ApiError::bad_request(
            "invalid version: versions start at 1",
        ));
    }
    if version.is_none() && (q.has("wait") || q.has("after")) {
        return super::wait::state(app, key, &q).await;
    }
    if version.is_none() {
        let current = app.store.current_state(&key).await?;
        if if_none_match.is_some_and(|tag| current.matches_if_none_match(&tag)) {
            return Ok(current_not_modified(&current));
        }
        return Ok(current_value(&current));
    }
    let k = key.clone();
    let stored = app.store.read(move |c| state::get(c, &k, version)).await?;
    Ok(raw_value(
        stored.value.into(),
        &stored.content_type,
        &stored.hash,
        stored.version,
    ))
}

async fn put(app: App, key: String, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body"));
    }
    let content_type = match headers.get(warp::http::header::CONTENT_TYPE) {
        None => "",
        Some(v) => v
            .to_str()
            .map_err(|_| ApiError::bad_request("invalid Content-Type: it must be visible ASCII"))?
            .trim(),
    };
    let is_json = || serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
    // Without a Content-Type the body is labelled by what it is; `curl -d` labels every body as
    // a form, so a JSON body sent that way is stored as JSON too.
    let content_type = if content_type.is_empty() {
        if is_json() {
            "application/json"
        } else if std::str::from_utf8(&body).is_ok() {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        }
        .to_owned()
    } else if content_type.starts_with("application/x-www-form-urlencoded") && is_json() {
        "application/json".to_owned()
    } else {
        content_type.to_owned()
    };
    let cond = condition(&headers)?;
    let (body, hash) = hash_body(body).await?;
    let k = key.clone();
    let h = hash.clone();
    let written = app
        .store
        .write_no_savepoint(move |tx| state::put(tx, &k, &body, &content_type, &h, &cond))
        .await?;
    tracing::debug!(key = %written.key, version = written.version, "state updated");
    let mut resp = ok(&written);
    set_version_headers(resp.headers_mut(), &hash, written.version);
    Ok(resp)
}

async fn rollback(app: App, key: String, q: Query) -> Result<Response, ApiError> {
    let Some(raw) = q.get("rollback") else {
        return Err(ApiError::bad_request(
            "POST on a key needs ?rollback=N (use PUT to write a value)",
        ));
    };
    let target = raw
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("invalid rollback version: {raw:?}")))?;
    let k = key.clone();
    let written = app
        .store
        .write_no_savepoint(move |tx| state::rollback(tx, &k, target))
        .await?;
    tracing::debug!(key = %written.key, version = written.version, rolled_back = target, "state rolled back");
    Ok(ok(&Rollback {
        key: written.key,
        version: written.version,
        hash: written.hash,
        rolled_back: target,
        updated_at: written.updated_at,
    }))
}

async fn delete(app: App, key: String, headers: HeaderMap) -> Result<Response, ApiError> {
    let cond = condition(&headers)?;
    let k = key.clone();
    app.store
        .write_no_savepoint(move |tx| state::delete(tx, &k, &cond))
        .await?;
    tracing::debug!(key = %key, "state deleted");
    Ok(ok(&Deleted { deleted: key }))
}

async fn diff(app: App, key: String, spec: &str) -> Result<Response, ApiError> {
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|v| *v >= 1);
    let (v1, v2) = spec
        .split_once(',')
        .and_then(|(a, b)| Some((parse(a)?, parse(b)?)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid diff {spec:?}: use ?diff=A,B with two version numbers"
            ))
        })?;
    let k = key.clone();
    let (a, b) = app
        .store
        .read(move |c| Ok((state::get(c, &k, Some(v1))?, state::get(c, &k, Some(v2))?)))
        .await?;
    let as_json = |bytes: &[u8], v: i64| {
        serde_json::from_slice::<Value>(bytes).map_err(|_| {
            ApiError::bad_request(format!(
                "version {v} of {key} is not JSON: diff needs JSON values"
            ))
        })
    };
    let (left, right) = (as_json(&a.value, v1)?, as_json(&b.value, v2)?);
    Ok(ok(&StateDiff {
        key: key.clone(),
        v1,
        v2,
        diffs: json_diff(&left, &right),
    }))
}

/// The differences from `left` to `right` as JSON-pointer operations.
pub fn json_diff(left: &Value, right: &Value) -> Vec<DiffOp> {
    use json_patch::PatchOperation as Op;
    json_patch::diff(left, right)
        .0
        .into_iter()
        .filter_map(|op| {
            let (operation, path, new_value) = match op {
                Op::Add(o) => ("add", o.path.to_string(), Some(o.value)),
                Op::Remove(o) => ("remove", o.path.to_string(), None),
                Op::Replace(o) => ("replace", o.path.to_string(), Some(o.value)),
                _ => return None,
            };
            let old_value = if operation == "add" {
                None
            } else {
                left.pointer(&path).cloned()
            };
            Some(DiffOp {
                operation: operation.into(),
                path,
                old_value,
                new_value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diff_reports_pointer_operations() {
        let left = json!({"a": 1, "b": {"c": [1, 2]}, "gone": true});
        let right = json!({"a": 2, "b": {"c": [1, 2, 3]}, "new": "x"});
        let mut ops = json_diff(&left, &right);
        ops.sort_by(|x, y| x.path.cmp(&y.path));
        let summary: Vec<(String, String)> = ops
            .iter()
            .map(|o| (o.operation.clone(), o.path.clone()))
            .collect();
        assert!(
            summary.contains(&("replace".into(), "/a".into())),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("add".into(), "/b/c/2".into())),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("remove".into(), "/gone".into())),
            "{summary:?}"
        );
        assert!(
            summary.contains(&("add".into(), "/new".into())),
            "{summary:?}"
        );
        let replace = ops.iter().find(|o| o.path == "/a").expect("replace /a");
        assert_eq!(replace.old_value, Some(json!(1)));
        assert_eq!(replace.new_value, Some(json!(2)));
        assert!(json_diff(&left, &left).is_empty());
    }
}
