//! `/api/webhooks...`: register, list, delete and test webhooks (delivery is [`crate::webhooks`]).

use bytes::Bytes;
use koor_shared::ops::{CreateWebhook, Webhook};
use koor_shared::types::Deleted;
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::Tail;
use warp::reply::Response;

use super::error::respond;
use super::{ApiError, body, json_body, method_not_allowed, ok, path_segments, with_app};
use crate::App;
use crate::audit::AuditResource;
use crate::store::webhooks as rows;

/// Largest JSON body these routes accept.
const MAX_BODY: usize = 64 * 1024;
/// Longest webhook id.
const MAX_ID: usize = 128;
/// Most topic patterns per webhook.
const MAX_PATTERNS: usize = 64;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path("webhooks"))
        .and(warp::path::tail())
        .and(warp::method())
        .and(body::limited(MAX_BODY))
        .and(with_app(app))
        .then(
            |tail: Tail, method: Method, body: Bytes, app: App| async move {
                respond(route(tail, method, body, app).await)
            },
        )
        .boxed()
}

async fn route(tail: Tail, method: Method, body: Bytes, app: App) -> Result<Response, ApiError> {
    let segments = path_segments(&tail)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segs.as_slice(), method) {
        ([], Method::GET | Method::HEAD) => list(&app).await,
        ([], Method::POST) => create(&app, &body).await,
        ([], m) => Err(method_not_allowed(&m, "/api/webhooks", "GET, POST")),
        ([id], Method::GET | Method::HEAD) => {
            let id = (*id).to_owned();
            let row = app.store.read(move |c| rows::get(c, &id)).await?;
            Ok(ok(&row.hook))
        }
        ([id], Method::DELETE) => {
            let id = (*id).to_owned();
            let deleted = id.clone();
            app.store.write(move |tx| rows::delete(tx, &id)).await?;
            tracing::info!(id = %deleted, "webhook deleted");
            Ok(ok(&Deleted { deleted }))
        }
        ([_], m) => Err(method_not_allowed(&m, "/api/webhooks/{id}", "GET, DELETE")),
        ([id, "test"], Method::POST) => test(&app, id).await,
        ([_, "test"], m) => Err(method_not_allowed(&m, "/api/webhooks/{id}/test", "POST")),
        _ => Err(ApiError::NotFound(format!(
            "not found: /api/webhooks/{}",
            tail.as_str()
        ))),
    }
}

async fn list(app: &App) -> Result<Response, ApiError> {
    let hooks: Vec<Webhook> = app
        .store
        .read(rows::list)
        .await?
        .into_iter()
        .map(|r| r.hook)
        .collect();
    Ok(ok(&hooks))
}

fn check(req: &mut CreateWebhook) -> Result<(), ApiError> {
    if req.id.is_empty() || req.url.is_empty() {
        return Err(ApiError::bad_request("id and url are required"));
    }
    if req.id.len() > MAX_ID
        || !req
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(ApiError::bad_request(format!(
            "invalid id {:?}: use up to {MAX_ID} letters, digits, '-', '_', '.' or ':'",
            req.id
        )));
    }
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| ApiError::bad_request(format!("invalid url {:?}: {e}", req.url)))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(ApiError::bad_request(
                "https webhook URLs are not supported by this build: use an http:// receiver (for example a local relay)",
            ));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid url {:?}: the scheme must be http, not {other}",
                req.url
            )));
        }
    }
    req.patterns.retain(|p| !p.trim().is_empty());
    if req.patterns.is_empty() {
        req.patterns.push("*".into());
    }
    if req.patterns.len() > MAX_PATTERNS
        || req
            .patterns
            .iter()
            .any(|p| p.len() > koor_shared::topic::MAX_TOPIC_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "too many or too long patterns: at most {MAX_PATTERNS} of {} bytes",
            koor_shared::topic::MAX_TOPIC_BYTES
        )));
    }
    Ok(())
}

async fn create(app: &App, body: &[u8]) -> Result<Response, ApiError> {
    let mut req: CreateWebhook = json_body(body, None)?;
    check(&mut req)?;
    let id = req.id.clone();
    let row = app.store.write(move |tx| rows::upsert(tx, &req)).await?;
    tracing::info!(id = %row.hook.id, url = %row.hook.url, "webhook saved");
    let mut resp = ok(&row.hook);
    resp.extensions_mut().insert(AuditResource(id));
    Ok(resp)
}

async fn test(app: &App, id: &str) -> Result<Response, ApiError> {
    let key = id.to_owned();
    let row = app.store.read(move |c| rows::get(c, &key)).await?;
    match crate::webhooks::test_fire(app, &row).await {
        Ok(_) => Ok(ok(&json!({"tested": id, "status": "ok"}))),
        Err(e) => Err(ApiError::bad_request(format!("webhook test failed: {e}"))),
    }
}
