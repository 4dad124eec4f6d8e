//! `get_endpoints`: where data moves outside MCP (REST and koor-cli).

use serde_json::{Value, json};
use warp::http::{HeaderMap, header};

use super::args::schema;
use crate::App;

pub fn spec() -> Value {
    json!({
        "name": "get_endpoints",
        "description": "Get the REST base URL, endpoints and CLI commands for moving data (state, specs, events) outside MCP.",
        "inputSchema": schema(json!({}), &[]),
        "annotations": {"readOnlyHint": true},
    })
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

pub fn get(app: &App, headers: &HeaderMap) -> Value {
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
            "locks": "POST|GET|DELETE /api/locks/{name...}",
            "tasks": "GET|POST /api/tasks/{project}; POST /api/tasks/{project}/claim",
            "reservations": "POST|GET /api/reservations; POST /api/reservations/check",
            "messages_send": "POST /api/messages",
            "inbox": "GET /api/instances/{id}/inbox?unread=1&wait=30s",
            "events_wait": "GET /api/events/wait?pattern={pattern}&since={id}&timeout=30s",
        },
        "cli": {
            "setup": setup,
            "state_get": "koor-cli state get KEY",
            "state_set": "koor-cli state set KEY --data JSON",
            "specs_get": "koor-cli specs get PROJECT/NAME",
            "specs_set": "koor-cli specs set PROJECT/NAME --file FILE",
            "events_publish": "koor-cli events publish TOPIC --data JSON",
            "events_subscribe": "koor-cli events subscribe PATTERN",
            "heartbeat": "koor-cli heartbeat (renews your locks, claims and reservations)",
            "tasks": "koor-cli tasks list --ready; koor-cli tasks claim; koor-cli tasks done ID",
            "reserve": "koor-cli reserve 'src/auth/**' --reason R; koor-cli release --all",
            "inbox": "koor-cli inbox --unread --wait 5m",
            "wait": "koor-cli wait PATTERN --timeout 10m",
            "validate": "koor-cli validate PROJECT --file FILE (exit 8 on errors)",
        },
        "message": format!(
            "Move data through REST or koor-cli, not MCP, to keep your context small. Values are \
             versioned: GET returns ETag and X-Koor-Version; PUT with If-Match to avoid lost updates.{auth_note}"
        ),
    })
}
