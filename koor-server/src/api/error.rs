//! API errors and the one rejection handler that turns every failure, ours and warp's, into the
//! JSON error body `{"error","code"}`.

use std::convert::Infallible;

use koor_shared::ErrorBody;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::store::StoreError;

/// Everything a handler can fail with; each variant has one status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid or missing bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    #[error("{message}")]
    Precondition {
        message: String,
        current_version: Option<i64>,
    },
    /// Held by someone else / not the holder; `details` are extra body fields.
    #[error("{message}")]
    Conflict {
        message: String,
        details: serde_json::Value,
    },
    /// A call for an instance without its `X-Koor-Instance-Token` on a server that requires it.
    #[error(
        "missing X-Koor-Instance-Token header: this server requires the instance's token (from registration) on calls made for an instance"
    )]
    InstanceTokenRequired,
    #[error("request body too large: the limit is {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Internal(String),
    #[error("the server is shutting down")]
    Unavailable,
    #[error("{0}")]
    InsufficientStorage(String),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Precondition { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::InstanceTokenRequired => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Precondition {
                message,
                current_version,
            } => ApiError::Precondition {
                message,
                current_version,
            },
            StoreError::Conflict { message, details } => ApiError::Conflict { message, details },
            StoreError::Sqlite(m) => ApiError::Internal(format!("database error: {m}")),
            StoreError::Closed => ApiError::Unavailable,
            full @ StoreError::Full => ApiError::InsufficientStorage(full.to_string()),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        }
        let mut body = ErrorBody::new(status.as_u16(), self.to_string());
        if let ApiError::Precondition {
            current_version, ..
        } = &self
        {
            body.current_version = *current_version;
        }
        let mut resp = match &self {
            ApiError::Conflict { details, .. } => {
                let mut value = serde_json::to_value(&body).unwrap_or_default();
                if let (Some(v), Some(extra)) = (value.as_object_mut(), details.as_object()) {
                    v.extend(extra.clone());
                }
                warp::reply::with_status(warp::reply::json(&value), status).into_response()
            }
            _ => warp::reply::with_status(warp::reply::json(&body), status).into_response(),
        };
        if let ApiError::MethodNotAllowed { allow, .. } = &self {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let ApiError::Unauthorized = &self {
            // RFC 6750: a 401 names the scheme the client should use.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"koor\""),
            );
        }
        resp
    }
}

/// Turns a handler result into a response.
pub fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

/// The `.recover()` of the whole route tree.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    let api = if let Some(e) = err.find::<ApiError>() {
        e.clone()
    } else if err.is_not_found() {
        ApiError::NotFound("not found".into())
    } else if err.find::<MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed {
            method: "this method".into(),
            path: "this route".into(),
            allow: "GET",
        }
    } else if err.find::<PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge {
            limit: koor_shared::MAX_VALUE_BYTES,
        }
    } else if err.find::<LengthRequired>().is_some() {
        ApiError::BadRequest("a Content-Length header is required".into())
    } else if let Some(e) = err.find::<InvalidQuery>() {
        ApiError::BadRequest(format!("invalid query string: {e}"))
    } else if let Some(e) = err.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::BadRequest(format!(
            "invalid JSON body: {}",
            std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.to_string())
        ))
    } else if let Some(name) = err
        .find::<InvalidHeader>()
        .map(InvalidHeader::name)
        .or_else(|| err.find::<MissingHeader>().map(MissingHeader::name))
        .filter(|n| is_handshake_header(n))
    {
        ApiError::BadRequest(format!(
            "websocket: bad handshake ({name} header): this route needs a WebSocket client (websocat, wscat), not plain HTTP"
        ))
    } else if let Some(e) = err.find::<InvalidHeader>() {
        ApiError::BadRequest(format!("invalid header: {}", e.name()))
    } else if let Some(e) = err.find::<MissingHeader>() {
        ApiError::BadRequest(format!("missing header: {}", e.name()))
    } else if err.find::<UnsupportedMediaType>().is_some() {
        ApiError::BadRequest("unsupported content type: send application/json".into())
    } else if err.find::<warp::ws::MissingConnectionUpgrade>().is_some() {
        ApiError::BadRequest(
            "websocket: bad handshake: this route needs a WebSocket client (websocat, wscat), not plain HTTP".into(),
        )
    } else {
        ApiError::Internal(format!("unhandled rejection: {err:?}"))
    };
    Ok(api.into_response())
}

fn is_handshake_header(name: &str) -> bool {
    [
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}
