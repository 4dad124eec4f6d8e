//! `register_instance` (new, or resumed with `instance_id` + `token`), `discover_instances`,
//! `set_intent`.

use koor_shared::types::RegisterRequest;
use serde_json::{Value, json};
use warp::http::HeaderMap;

use super::args::{Args, int, list, schema, text};
use super::{acting_for, store_message};
use crate::App;
use crate::instances::Filter as InstanceFilter;
use crate::store::StoreError;

/// Instances `discover_instances` lists when the call names no limit.
const DEFAULT_LIMIT: usize = 100;

pub fn register_spec() -> Value {
    json!({
        "name": "register_instance",
        "description": "Register this agent so others can find it; returns instance_id and token (keep both). After a restart pass them to resume.",
        "inputSchema": schema(json!({
            "name": text("Agent name, e.g. claude-frontend"),
            "workspace": text("Workspace path or repo"),
            "intent": text("What you are working on"),
            "stack": text("Main stack, e.g. rust, react"),
            "capabilities": list("e.g. code-edit, review"),
            "instance_id": text("Resume: your earlier instance_id"),
            "token": text("Resume: its token"),
        }), &["name"]),
    })
}

pub fn discover_spec() -> Value {
    json!({
        "name": "discover_instances",
        "description": "List registered agents (id, name, workspace, intent, stack, capabilities, status); filters are exact matches.",
        "inputSchema": schema(json!({
            "name": text("Agent name"),
            "workspace": text("Workspace"),
            "stack": text("Stack"),
            "capability": text("Has this capability"),
            "limit": int("At most this many (default 100)"),
        }), &[]),
        "annotations": {"readOnlyHint": true},
    })
}

pub fn intent_spec() -> Value {
    json!({
        "name": "set_intent",
        "description": "Say what this agent is working on now; also a heartbeat that keeps it and its locks, claims and reservations alive.",
        "inputSchema": schema(json!({
            "instance_id": text("Your instance_id from register_instance"),
            "intent": text("Current task, one line"),
            "token": text("Your token (if the server requires it)"),
        }), &["instance_id", "intent"]),
    })
}

fn guide(app: &App, id: &str) -> String {
    let stale = humantime::format_duration(app.instances.stale_after());
    format!(
        "Activate: `./koor-cli activate {id}` (REST: POST /api/instances/{id}/activate). Stay active: \
         call set_intent when your task changes, or `./koor-cli heartbeat {id}`; agents silent for \
         {stale} turn stale and lose their locks, claims and reservations. Check your inbox: the \
         messages tool (action inbox, unread true), or `./koor-cli inbox --unread`. Keep the token: \
         it is shown only once; pass instance_id and token to register_instance to resume after a restart."
    )
}

pub async fn register(app: &App, args: Args) -> Result<Value, String> {
    if let Some(id) = args.opt("instance_id") {
        return resume(app, &id, args).await;
    }
    if args.opt("token").is_some() {
        return Err(
            "register_instance: token resumes an instance only together with instance_id".into(),
        );
    }
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
        "resumed": false,
        "message": format!("Registered as {} (status pending). {}", i.id, guide(app, &i.id)),
    }))
}

/// Resumes a registered instance: a heartbeat proven by its token; same id, holds and inbox kept.
async fn resume(app: &App, id: &str, args: Args) -> Result<Value, String> {
    let token = args
        .opt("token")
        .ok_or("register_instance: resuming needs the token you got with that instance_id")?;
    match app.instances.token_matches(id, &token) {
        None => {
            return Err(format!(
                "instance not found: {id} (deregistered, or the server's data was reset): call register_instance without instance_id to register anew"
            ));
        }
        Some(false) => return Err(format!("the token does not match instance {id}")),
        Some(true) => {}
    }
    let i = app
        .instances
        .heartbeat(&app.store, id)
        .await
        .map_err(store_message)?;
    let renewed = app
        .holds
        .keepalive(&app.store, id)
        .await
        .map_err(store_message)?;
    tracing::info!(id = %i.id, name = %i.name, "instance resumed over mcp");
    Ok(json!({
        "instance_id": i.id,
        "token": token,
        "name": i.name,
        "status": i.status,
        "registered_at": i.registered_at,
        "resumed": true,
        "message": format!(
            "Resumed {} ({}): same id, {renewed} hold(s) renewed. {}",
            i.id, i.name, guide(app, &i.id)
        ),
    }))
}

pub fn discover(app: &App, args: Args) -> Value {
    let filter = InstanceFilter {
        name: args.opt("name"),
        workspace: args.opt("workspace"),
        stack: args.opt("stack"),
        capability: args.opt("capability"),
        status: None,
    };
    let mut instances = app.instances.list(&filter);
    let total = instances.len();
    let limit = args.int("limit").map_or(DEFAULT_LIMIT, |l| {
        usize::try_from(l.max(1)).unwrap_or(DEFAULT_LIMIT)
    });
    instances.truncate(limit);
    let mut out = json!({"count": instances.len(), "total": total, "instances": instances});
    if total > limit {
        out["truncated"] = json!(true);
        out["message"] = json!(format!(
            "{total} instances match; showing the first {limit}. Narrow with name/workspace/stack/capability or raise limit."
        ));
    }
    out
}

pub async fn set_intent(app: &App, headers: &HeaderMap, args: Args) -> Result<Value, String> {
    let (id, _) = acting_for(app, headers, &args)?;
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
    // Also a heartbeat for the agent's holds (locks, reservations, task claims).
    app.holds
        .keepalive(&app.store, &id)
        .await
        .map_err(store_message)?;
    tracing::info!(id = %i.id, name = %i.name, "instance intent set over mcp");
    Ok(json!({
        "instance_id": i.id,
        "intent": i.intent,
        "message": format!("Intent set; this also counted as a heartbeat (status {}).", i.status),
    }))
}
