//! Who may act for an instance (COORDINATION.md, "Who may act for an instance").
//!
//! A call made on behalf of an instance names its `instance_id`. When the request carries
//! `X-Koor-Instance-Token` it must be that instance's token (403 otherwise); with
//! `--require-instance-token` the header is required (401 naming it).

use warp::http::HeaderMap;

use super::ApiError;
use crate::App;

/// The instance token the request carries, if any.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(koor_shared::INSTANCE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks that this request may act for instance `id`. An unknown `id` is a 400 (a hold for an
/// unknown instance); whether it exists is checked again inside the write itself.
pub fn act_for(app: &App, headers: &HeaderMap, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::bad_request("instance_id is required"));
    }
    match token(headers) {
        Some(t) => match app.instances.token_matches(id, t) {
            None => Err(ApiError::bad_request(format!("instance not found: {id}"))),
            Some(false) => Err(ApiError::Forbidden(format!(
                "X-Koor-Instance-Token does not match instance {id}"
            ))),
            Some(true) => Ok(()),
        },
        None if app.config.require_instance_token => Err(ApiError::InstanceTokenRequired),
        None => Ok(()),
    }
}
