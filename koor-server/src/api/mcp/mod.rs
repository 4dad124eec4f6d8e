//! `/mcp`: the MCP control plane over the Streamable HTTP transport (spec revision 2025-11-25),
//! written directly on warp so it answers what real IDE clients send.
//!
//! - One JSON-RPC message per `POST /mcp` (or `/mcp/`); the answer is always `application/json`,
//!   whatever the `Accept` header says (never 406). A batch array or malformed JSON is a 400 with a
//!   JSON-RPC error; so is an `MCP-Protocol-Version` header naming a version we do not speak.
//! - Stateless: no `Mcp-Session-Id` is issued or required, and one that arrives is ignored, so a
//!   server restart never breaks a connected IDE.
//! - Notifications and client responses: 202 with an empty body. `GET`/`DELETE`: 405 with
//!   `Allow: POST` (we offer no server-to-client stream).
//! - A foreign `Origin` is refused (403) by [`origin_guard`]; the bearer token is checked by the
//!   route tree's auth guard like every `/api` route.
//! - Tools: small control-plane calls. Their results carry the JSON both as text content and as
//!   `structuredContent`; bad arguments are `isError` results with a full message, not protocol
//!   errors, so the model can correct itself.
//!
//! # Layout
//!
//! This file is the transport and the tool registry. [`args`] checks arguments against a tool's
//! schema; each tool group is a file with its schemas and handlers: [`agents`] (register,
//! discover, intent), [`endpoints`], [`rules`], [`locks`], [`reserve`], [`tasks`]. Coordination tools take an `action`
//! argument, so a few tools cover a whole kind and `tools/list` stays small (under 8 KB).

mod agents;
mod args;
mod endpoints;
mod locks;
mod reserve;
mod rules;
mod tasks;

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::Reply;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::Tail;
use warp::reply::Response;

use self::args::Args;
use super::{ApiError, body, identity, method_not_allowed, origin_guard, with_app};
use crate::App;
use crate::store::StoreError;

/// Protocol revisions we speak, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// What a request without an `MCP-Protocol-Version` header is taken to speak (as the spec says).
pub const ASSUMED_VERSION: &str = "2025-03-26";
/// Largest JSON-RPC message accepted.
const MAX_BODY: usize = 1024 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path("mcp")
        .and(warp::path::tail())
        .and_then(|tail: Tail| async move {
            // `/mcp` and `/mcp/` only; anything below is an unknown path (JSON 404).
            if tail.as_str().is_empty() {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(origin_guard(app.clone()))
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(body::try_limited(MAX_BODY))
        .and(with_app(app))
        .then(
            |method: Method, headers: HeaderMap, body: Result<Bytes, ApiError>, app: App| async move {
                if method != Method::POST {
                    return method_not_allowed(&method, "/mcp", "POST").into_response();
                }
                match body {
                    Ok(body) => post(&app, &headers, &body).await,
                    Err(ApiError::PayloadTooLarge { limit }) => rpc_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Value::Null,
                        INVALID_REQUEST,
                        format!("invalid request: the message is larger than {limit} bytes; send less per call (move data through REST)"),
                    ),
                    Err(e) => rpc_error(StatusCode::BAD_REQUEST, Value::Null, INVALID_REQUEST, format!("invalid request: {e}")),
                }
            },
        )
        .boxed()
}

/// A JSON body with a status, `Content-Type: application/json`.
fn reply(status: StatusCode, body: &Value) -> Response {
    super::json(status, body)
}

fn rpc_result(id: Value, result: Value) -> Response {
    reply(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Response {
    reply(
        status,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}}),
    )
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// One JSON-RPC message.
async fn post(app: &App, headers: &HeaderMap, body: &[u8]) -> Response {
    let message: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let what = if body.iter().all(u8::is_ascii_whitespace) {
                "parse error: empty body; send one JSON-RPC message".to_owned()
            } else {
                format!("parse error: the body is not valid JSON: {e}")
            };
            return rpc_error(StatusCode::BAD_REQUEST, Value::Null, PARSE_ERROR, what);
        }
    };
    let msg = match message {
        Value::Object(m) => m,
        Value::Array(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "invalid request: JSON-RPC batches are not supported; send one message per POST",
            );
        }
        _ => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "invalid request: expected a JSON-RPC 2.0 object",
            );
        }
    };
    let id = msg.get("id").cloned();
    let bad = |text: String| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            id.clone().unwrap_or(Value::Null),
            INVALID_REQUEST,
            text,
        )
    };
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad("invalid request: \"jsonrpc\" must be \"2.0\"".into());
    }
    let method = match msg.get("method") {
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return bad("invalid request: \"method\" must be a string".into()),
        // A response to a server request (we send none): nothing to answer.
        None if id.is_some() && (msg.contains_key("result") || msg.contains_key("error")) => {
            return accepted();
        }
        None => return bad("invalid request: \"method\" is missing".into()),
    };
    // `initialize` negotiates in its body; every later request carries the negotiated version
    // (none: the client predates the header).
    let version = match headers.get("mcp-protocol-version") {
        None => ASSUMED_VERSION,
        Some(v) => v.to_str().unwrap_or_default().trim(),
    };
    if method != "initialize" && !SUPPORTED_VERSIONS.contains(&version) {
        return bad(format!(
            "unsupported MCP-Protocol-Version {version:?}: this server speaks {}",
            SUPPORTED_VERSIONS.join(", ")
        ));
    }
    let Some(id) = id else {
        // A notification (`notifications/initialized`, `notifications/cancelled`, ...).
        tracing::debug!(method, version, "mcp notification");
        return accepted();
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "invalid request: \"id\" must be a string or an integer",
        );
    }
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    tracing::debug!(method, version, "mcp request");
    match method {
        "initialize" => rpc_result(id, initialize(&params)),
        "ping" => rpc_result(id, json!({})),
        "tools/list" => rpc_result(id, json!({"tools": &*TOOLS})),
        "tools/call" => match call(app, headers, &params).await {
            Ok(result) => rpc_result(id, result),
            Err(message) => rpc_error(StatusCode::OK, id, INVALID_PARAMS, message),
        },
        other => rpc_error(
            StatusCode::OK,
            id,
            METHOD_NOT_FOUND,
            format!("method not found: {other} (this server offers tools: tools/list, tools/call)"),
        ),
    }
}

/// The client's version when we speak it, else our newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r.trim()))
        .copied()
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

fn initialize(params: &Value) -> Value {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let version = negotiate(requested);
    let client = &params["clientInfo"];
    tracing::info!(
        client = client["name"].as_str().unwrap_or("unknown"),
        client_version = client["version"].as_str().unwrap_or(""),
        requested = requested.unwrap_or(""),
        version,
        "mcp client initialized"
    );
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "koor", "title": "Koor", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Koor coordinates coding agents. Call register_instance once (again with \
            instance_id and token after a restart), set_intent when your task changes, \
            discover_instances to find other agents. Divide work with lock, tasks, reserve and \
            messages; wait_events sleeps until something happens. Move data (state, specs, events) \
            through REST or koor-cli, not MCP: get_endpoints lists them.",
    })
}

// ---- tools ----------------------------------------------------------------------------------

/// The `tools/list` answer, built once.
static TOOLS: LazyLock<Value> = LazyLock::new(|| {
    Value::Array(vec![
        agents::register_spec(),
        agents::discover_spec(),
        agents::intent_spec(),
        endpoints::spec(),
        rules::spec(),
        locks::spec(),
        reserve::spec(),
        tasks::spec(),
    ])
});

fn tool(name: &str) -> Option<&'static Value> {
    TOOLS
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == name))
}

fn tool_names() -> String {
    TOOLS
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tools/call`: `Err` is a protocol error (-32602: unknown tool, malformed params); a tool that
/// fails answers `Ok` with an `isError` result.
async fn call(app: &App, headers: &HeaderMap, params: &Value) -> Result<Value, String> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or("invalid params: tools/call needs \"name\" (a tool from tools/list)")?;
    let Some(spec) = tool(name) else {
        return Err(format!("unknown tool: {name} (tools: {})", tool_names()));
    };
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            return Err(format!(
                "invalid params: {name}'s \"arguments\" must be an object"
            ));
        }
    };
    let outcome = match Args::check(name, &spec["inputSchema"], args) {
        Ok(args) => match name {
            "register_instance" => agents::register(app, args).await,
            "discover_instances" => Ok(agents::discover(app, args)),
            "set_intent" => agents::set_intent(app, headers, args).await,
            "get_endpoints" => Ok(endpoints::get(app, headers)),
            "propose_rule" => rules::propose(app, args).await,
            "lock" => locks::call(app, headers, args).await,
            "reserve" => reserve::call(app, headers, args).await,
            "tasks" => tasks::call(app, headers, args).await,
            other => Err(format!("unknown tool: {other}")),
        },
        Err(message) => Err(message),
    };
    Ok(match outcome {
        Ok(value) => {
            tracing::debug!(tool = name, "mcp tool call");
            json!({
                "content": [{"type": "text", "text": value.to_string()}],
                "structuredContent": value,
            })
        }
        Err(message) => {
            tracing::info!(tool = name, error = %message, "mcp tool call failed");
            json!({
                "content": [{"type": "text", "text": message}],
                "isError": true,
            })
        }
    })
}

/// The message of a store error as the agent should read it.
fn store_message(e: StoreError) -> String {
    match e {
        StoreError::Closed => "the Koor server is shutting down; try again in a moment".into(),
        StoreError::Conflict { message, .. } => format!("conflict: {message}"),
        other => other.to_string(),
    }
}

/// The instance a coordination tool acts for: its `instance_id` argument, checked against the
/// `token` argument or the `X-Koor-Instance-Token` header as REST checks it.
fn acting_for(app: &App, headers: &HeaderMap, args: &Args) -> Result<String, String> {
    let id = args.opt("instance_id").ok_or(
        "instance_id is required: your instance_id from register_instance (register first)",
    )?;
    let mut headers = headers.clone();
    if let Some(token) = args.opt("token")
        && let Ok(v) = warp::http::HeaderValue::from_str(&token)
    {
        headers.insert(koor_shared::INSTANCE_TOKEN_HEADER, v);
    }
    identity::act_for(app, &headers, &id).map_err(|e| match e {
        ApiError::InstanceTokenRequired => {
            "this server requires your token: pass the token register_instance returned".to_owned()
        }
        other => other.to_string(),
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_clients_version_or_our_newest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2025-11-25");
        assert_eq!(negotiate(Some("2099-01-01")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }

    #[test]
    fn every_tool_has_an_object_schema_and_the_list_stays_under_8_kb() {
        let tools = TOOLS.as_array().expect("array");
        for t in tools {
            let s = &t["inputSchema"];
            assert_eq!(s["type"], "object", "{t}");
            assert_eq!(s["additionalProperties"], false, "{t}");
            assert!(s["properties"].is_object(), "{t}");
            assert!(
                t["description"].as_str().is_some_and(|d| d.len() < 200),
                "{t}"
            );
            assert!(t.get("outputSchema").is_none());
        }
        let size = json!({"tools": &*TOOLS}).to_string().len();
        println!("tools/list: {} tools, {size} bytes", tools.len());
        assert!(size < 8 * 1024, "tools/list is {size} bytes");
    }
}
