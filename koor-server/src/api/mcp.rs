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

use std::sync::LazyLock;

use bytes::Bytes;
use koor_shared::types::RegisterRequest;
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::Reply;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode, header};
use warp::path::Tail;
use warp::reply::Response;

use super::{ApiError, body, method_not_allowed, origin_guard, with_app};
use crate::App;
use crate::instances::Filter as InstanceFilter;
use crate::store::{StoreError, rules};

/// Protocol revisions we speak, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// What a request without an `MCP-Protocol-Version` header is taken to speak (as the spec says).
pub const ASSUMED_VERSION: &str = "2025-03-26";
/// Largest JSON-RPC message accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Agents `discover_instances` lists when `limit` is not given, and at most.
const DEFAULT_DISCOVER: usize = 100;
const MAX_DISCOVER: usize = 1000;

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
        .and(message_body())
        .and(with_app(app))
        .then(
            |method: Method, headers: HeaderMap, body: Result<Bytes, ApiError>, app: App| async move {
                match body {
                    _ if method != Method::POST => {
                        method_not_allowed(&method, "/mcp", "POST").into_response()
                    }
                    Ok(body) => post(&app, &headers, &body).await,
                    Err(e) => rpc_error(e.status(), Value::Null, INVALID_REQUEST, format!("invalid request: {e}")),
                }
            },
        )
        .boxed()
}

/// The body, or why it cannot be read (over [`MAX_BODY`]): answered as a JSON-RPC error, which
/// an MCP client shows, rather than a REST error body.
fn message_body()
-> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = warp::Rejection> + Clone {
    body::limited(MAX_BODY)
        .map(Ok)
        .or_else(|r: warp::Rejection| async move {
            match r.find::<ApiError>() {
                Some(e) => Ok((Err(e.clone()),)),
                None => Err(r),
            }
        })
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
        "instructions": "Koor coordinates coding agents. Call register_instance once, set_intent when \
            your task changes, discover_instances to find other agents. Move data (state, specs, \
            events) through REST or koor-cli, not MCP: get_endpoints lists them.",
    })
}

// ---- tools ----------------------------------------------------------------------------------

fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn schema(properties: Value, required: &[&str]) -> Value {
    let mut s = json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// The `tools/list` answer, built once.
static TOOLS: LazyLock<Value> = LazyLock::new(|| {
    json!([
        {
            "name": "register_instance",
            "description": "Register this agent so others can discover it; returns instance_id and token (keep both).",
            "inputSchema": schema(json!({
                "name": text("Agent name, e.g. claude-frontend"),
                "workspace": text("Workspace path or repo"),
                "intent": text("What you are working on"),
                "stack": text("Main stack, e.g. rust, react"),
                "capabilities": {"type": "array", "items": {"type": "string"}, "description": "e.g. code-edit, review"},
            }), &["name"]),
        },
        {
            "name": "discover_instances",
            "description": "List registered agents (id, name, workspace, intent, stack, capabilities, status); exact-match filters; at most limit (default 100).",
            "inputSchema": schema(json!({
                "name": text("Agent name"),
                "workspace": text("Workspace"),
                "stack": text("Stack"),
                "capability": text("Has this capability"),
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_DISCOVER, "description": "Most agents returned (default 100)"},
            }), &[]),
            "annotations": {"readOnlyHint": true},
        },
        {
            "name": "set_intent",
            "description": "Say what this agent is working on now; also a heartbeat that keeps it active.",
            "inputSchema": schema(json!({
                "instance_id": text("Your instance_id from register_instance"),
                "intent": text("Current task, one line"),
            }), &["instance_id", "intent"]),
        },
        {
            "name": "get_endpoints",
            "description": "Get the REST base URL, endpoints and CLI commands for moving data (state, specs, events) outside MCP.",
            "inputSchema": schema(json!({}), &[]),
            "annotations": {"readOnlyHint": true},
        },
        {
            "name": "propose_rule",
            "description": "Propose a validation rule for a project; a person accepts or rejects it, only accepted rules run.",
            "inputSchema": schema(json!({
                "project": text("Project name"),
                "rule_id": text("Short id, e.g. no-console-log"),
                "pattern": text("Regex to look for"),
                "message": text("Shown on a violation"),
                "severity": {"type": "string", "enum": rules::SEVERITIES, "description": "Default error"},
                "match_type": {"type": "string", "enum": rules::MATCH_TYPES, "description": "regex: a match is a violation; missing: no match is; default regex"},
                "stack": text("Only for this stack"),
                "proposed_by": text("Your name or instance_id"),
                "context": text("Why this rule"),
            }), &["project", "rule_id", "pattern", "message"]),
        },
    ])
});

fn tool(name: &str) -> Option<&'static Value> {
    TOOLS
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == name))
}

/// `tools/call`: `Err` is a protocol error (-32602: unknown tool, malformed params); a tool that
/// fails answers `Ok` with an `isError` result.
async fn call(app: &App, headers: &HeaderMap, params: &Value) -> Result<Value, String> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or("invalid params: tools/call needs \"name\" (a tool from tools/list)")?;
    let Some(spec) = tool(name) else {
        return Err(format!(
            "unknown tool: {name} (tools: register_instance, discover_instances, set_intent, get_endpoints, propose_rule)"
        ));
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
            "register_instance" => register_instance(app, args).await,
            "discover_instances" => Ok(discover_instances(app, args)),
            "set_intent" => set_intent(app, args).await,
            "get_endpoints" => Ok(get_endpoints(app, headers)),
            _ => propose_rule(app, args).await,
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

/// A tool's arguments, checked against its input schema: no unknown names, every required one
/// present and not blank, strings are strings, integers are integers within their bounds, arrays
/// are string arrays, enums hold one of their values. `null` counts as absent.
struct Args(Map<String, Value>);

impl Args {
    fn check(tool: &str, schema: &Value, args: Map<String, Value>) -> Result<Args, String> {
        let empty = Map::new();
        let props = schema["properties"].as_object().unwrap_or(&empty);
        let names = || props.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut out = Map::new();
        for (key, value) in args {
            let Some(prop) = props.get(&key) else {
                return Err(if props.is_empty() {
                    format!("{tool} takes no arguments (got {key:?})")
                } else {
                    format!("{tool}: unknown argument {key:?}; it takes: {}", names())
                });
            };
            let value = match (prop["type"].as_str(), value) {
                (_, Value::Null) => continue,
                (Some("string"), Value::String(s)) => Value::String(s),
                (Some("integer"), Value::Number(n))
                    if n.as_i64().is_some_and(|n| {
                        prop["minimum"].as_i64().is_none_or(|min| n >= min)
                            && prop["maximum"].as_i64().is_none_or(|max| n <= max)
                    }) =>
                {
                    Value::Number(n)
                }
                (Some("integer"), _) => {
                    let min = prop["minimum"].as_i64().unwrap_or(i64::MIN);
                    let max = prop["maximum"].as_i64().unwrap_or(i64::MAX);
                    return Err(format!(
                        "{tool}: argument {key:?} must be an integer from {min} to {max}"
                    ));
                }
                (Some("array"), Value::Array(items)) if items.iter().all(Value::is_string) => {
                    Value::Array(items)
                }
                (Some("array"), _) => {
                    return Err(format!(
                        "{tool}: argument {key:?} must be an array of strings"
                    ));
                }
                _ => return Err(format!("{tool}: argument {key:?} must be a string")),
            };
            if let (Some(allowed), Some(v)) = (prop["enum"].as_array(), value.as_str())
                && !v.is_empty()
                && !allowed
                    .iter()
                    .any(|a| a.as_str() == Some(v.to_ascii_lowercase().as_str()))
            {
                let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                return Err(format!(
                    "{tool}: invalid {key} {v:?}: must be one of {}",
                    allowed.join(", ")
                ));
            }
            out.insert(key, value);
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let Some(req) = req.as_str() else { continue };
            let blank = out
                .get(req)
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty());
            if blank {
                let hint = props[req]["description"].as_str().unwrap_or_default();
                return Err(format!(
                    "{tool}: missing required argument {req:?} ({hint}); required: {}",
                    schema["required"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(Args(out))
    }

    /// A string argument, `""` when absent.
    fn text(&self, name: &str) -> String {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|s| !s.trim().is_empty())
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}

/// The message of a store error as the agent should read it.
fn store_message(e: StoreError) -> String {
    match e {
        StoreError::Closed => "the Koor server is shutting down; try again in a moment".into(),
        other => other.to_string(),
    }
}

/// The REST base URL as the client reached it: `http://` + its `Host` header, else the bound
/// address.
fn api_base(app: &App, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| app.addrs().0);
    format!("http://{host}")
}

async fn register_instance(app: &App, args: Args) -> Result<Value, String> {
    let req = RegisterRequest {
        name: args.text("name"),
        workspace: args.text("workspace"),
        intent: args.text("intent"),
        stack: args.text("stack"),
        capabilities: args.list("capabilities"),
    };
    let r = app
        .instances
        .register(&app.store, req)
        .await
        .map_err(store_message)?;
    let i = r.instance;
    tracing::info!(id = %i.id, name = %i.name, "instance registered over mcp");
    let stale = humantime::format_duration(app.instances.stale_after());
    let message = format!(
        "Registered as {id} (status pending). Activate: `koor-cli instances activate {id}` (REST: \
         POST /api/instances/{id}/activate). Stay active: call set_intent when your task changes, or \
         `koor-cli instances heartbeat {id}`; agents silent for {stale} turn stale. Keep the token: \
         it is shown only once.",
        id = i.id,
    );
    Ok(json!({
        "instance_id": i.id,
        "token": r.token,
        "name": i.name,
        "workspace": i.workspace,
        "intent": i.intent,
        "stack": i.stack,
        "capabilities": i.capabilities,
        "status": i.status,
        "registered_at": i.registered_at,
        "message": message,
    }))
}

fn discover_instances(app: &App, args: Args) -> Value {
    let filter = InstanceFilter {
        name: args.opt("name"),
        workspace: args.opt("workspace"),
        stack: args.opt("stack"),
        capability: args.opt("capability"),
        status: None,
    };
    let mut instances = app.instances.list(&filter);
    let total = instances.len();
    let limit = args
        .int("limit")
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_DISCOVER);
    instances.truncate(limit);
    let mut out = json!({"count": instances.len(), "total": total, "instances": instances});
    if total > instances.len() {
        out["truncated"] = json!(true);
        out["message"] = json!(format!(
            "{} of {total} agents shown: narrow with name/workspace/stack/capability, or raise limit (at most {MAX_DISCOVER}); GET /api/instances lists all",
            instances.len()
        ));
    }
    out
}

async fn set_intent(app: &App, args: Args) -> Result<Value, String> {
    let id = args.text("instance_id").trim().to_owned();
    let intent = args.text("intent");
    let i = app
        .instances
        .set_intent(&app.store, &id, intent)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(m) => format!(
                "{m}: register_instance first, or find your id with discover_instances (the server may have been reset)"
            ),
            other => store_message(other),
        })?;
    tracing::info!(id = %i.id, name = %i.name, "instance intent set over mcp");
    Ok(json!({
        "instance_id": i.id,
        "intent": i.intent,
        "message": format!("Intent set; this also counted as a heartbeat (status {}).", i.status),
    }))
}

fn get_endpoints(app: &App, headers: &HeaderMap) -> Value {
    let base = api_base(app, headers);
    let auth = app.config.auth_token.is_some();
    let setup = if auth {
        format!("export KOOR_SERVER={base} KOOR_TOKEN=<the server's token>")
    } else {
        format!("export KOOR_SERVER={base}")
    };
    let auth_note = if auth {
        " Send Authorization: Bearer <token> on every REST call."
    } else {
        ""
    };
    json!({
        "api_base": base,
        "endpoints": {
            "health": "GET /health",
            "state_list": "GET /api/state",
            "state_get": "GET /api/state/{key...}",
            "state_set": "PUT /api/state/{key...}",
            "state_delete": "DELETE /api/state/{key...}",
            "state_history": "GET /api/state/{key...}?history=1",
            "specs_list": "GET /api/specs/{project}",
            "spec_get": "GET /api/specs/{project}/{name...}",
            "spec_set": "PUT /api/specs/{project}/{name...}",
            "events_publish": "POST /api/events/publish",
            "events_history": "GET /api/events/history?topic={pattern}&last={n}",
            "events_subscribe": "GET /api/events/subscribe?pattern={pattern} (WebSocket)",
            "instances_list": "GET /api/instances",
            "instance_heartbeat": "POST /api/instances/{id}/heartbeat",
            "instance_activate": "POST /api/instances/{id}/activate",
            "validate": "POST /api/validate/{project}",
            "rules_list": "GET /api/validate/{project}/rules",
            "rules_propose": "POST /api/rules/propose",
        },
        "cli": {
            "setup": setup,
            "state_get": "koor-cli state get KEY",
            "state_set": "koor-cli state set KEY --data JSON",
            "specs_get": "koor-cli specs get PROJECT/NAME",
            "specs_set": "koor-cli specs set PROJECT/NAME --file FILE",
            "events_publish": "koor-cli events publish TOPIC --data JSON",
            "events_subscribe": "koor-cli events subscribe PATTERN",
            "heartbeat": "koor-cli instances heartbeat ID",
            "validate": "koor-cli validate PROJECT --file FILE (exit 8 on errors)",
        },
        "message": format!(
            "Move data through REST or koor-cli, not MCP, to keep your context small. Values are \
             versioned: GET returns ETag and X-Koor-Version; PUT with If-Match to avoid lost updates.{auth_note}"
        ),
    })
}

async fn propose_rule(app: &App, args: Args) -> Result<Value, String> {
    let rule = rules::Rule {
        project: args.text("project"),
        rule_id: args.text("rule_id"),
        severity: args.text("severity"),
        match_type: args.text("match_type"),
        pattern: args.text("pattern"),
        message: args.text("message"),
        stack: args.text("stack"),
        proposed_by: args.text("proposed_by"),
        context: args.text("context"),
        ..rules::Rule::default()
    };
    let rule = app
        .store
        .write(move |tx| rules::propose(tx, rule))
        .await
        .map_err(|e| format!("propose_rule: {}", store_message(e)))?;
    tracing::info!(project = %rule.project, rule_id = %rule.rule_id, "rule proposed over mcp");
    Ok(json!({
        "project": rule.project,
        "rule_id": rule.rule_id,
        "status": rule.status,
        "message": format!(
            "Rule {}/{} proposed ({} on {} matches). A person accepts it with POST /api/rules/{}/{}/accept \
             (or rejects it with .../reject); only accepted rules run.",
            rule.project, rule.rule_id, rule.severity, rule.match_type, rule.project, rule.rule_id
        ),
    }))
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
    fn every_tool_has_an_object_schema_and_the_list_stays_small() {
        let tools = TOOLS.as_array().expect("array");
        assert_eq!(tools.len(), 5);
        for t in tools {
            let s = &t["inputSchema"];
            assert_eq!(s["type"], "object", "{t}");
            assert_eq!(s["additionalProperties"], false, "{t}");
            assert!(s["properties"].is_object(), "{t}");
            assert!(
                t["description"].as_str().is_some_and(|d| d.len() < 140),
                "{t}"
            );
            assert!(t.get("outputSchema").is_none());
        }
        let size = json!({"tools": &*TOOLS}).to_string().len();
        assert!(size < 3 * 1024, "tools/list is {size} bytes");
    }

    fn args(tool: &str, v: Value) -> Result<Args, String> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        Args::check(tool, &super::tool(tool).expect("tool")["inputSchema"], m)
    }

    #[test]
    fn arguments_are_checked_against_the_schema_with_full_messages() {
        let e = args("register_instance", json!({}))
            .err()
            .expect("missing name");
        assert!(e.contains("missing required argument \"name\""), "{e}");
        let e = args("register_instance", json!({"name": "  "}))
            .err()
            .expect("blank");
        assert!(e.contains("\"name\""), "{e}");
        let e = args("register_instance", json!({"name": "a", "nme": "b"}))
            .err()
            .expect("unknown");
        assert!(
            e.contains("unknown argument \"nme\"") && e.contains("workspace"),
            "{e}"
        );
        let e = args("get_endpoints", json!({"x": 1})).err().expect("none");
        assert!(e.contains("takes no arguments"), "{e}");
        let e = args("propose_rule", json!({"project": "p", "rule_id": "r", "pattern": "x", "message": "m", "severity": "fatal"}))
            .err()
            .expect("enum");
        assert!(e.contains("error, warning"), "{e}");
        let e = args(
            "register_instance",
            json!({"name": "a", "capabilities": [1]}),
        )
        .err()
        .expect("array");
        assert!(e.contains("array of strings"), "{e}");

        // Types as the schema says: no number for a string, no string for an array.
        let e = args("register_instance", json!({"name": 5}))
            .err()
            .expect("number");
        assert!(e.contains("\"name\" must be a string"), "{e}");
        let e = args(
            "register_instance",
            json!({"name": "a", "capabilities": "code, review"}),
        )
        .err()
        .expect("string for an array");
        assert!(e.contains("array of strings"), "{e}");
        let e = args("discover_instances", json!({"limit": 0}))
            .err()
            .expect("below the minimum");
        assert!(e.contains("integer from 1 to 1000"), "{e}");

        let a = args(
            "register_instance",
            json!({"name": "a", "capabilities": ["code", "review"], "stack": null}),
        )
        .expect("valid");
        assert_eq!(a.list("capabilities"), ["code", "review"]);
        assert_eq!(a.text("stack"), "");
    }
}
