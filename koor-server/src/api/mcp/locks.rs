//! `lock`: acquire (or renew), release and list named locks.

use std::time::Duration;

use serde_json::{Value, json};
use warp::http::HeaderMap;

use super::args::{Args, int, one_of, schema, text};
use super::{acting_for, store_message};
use crate::App;
use crate::holds::{self, locks};

/// How long an MCP acquire waits at most by default: IDE tool calls time out after about 30 s.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);

pub fn spec() -> Value {
    json!({
        "name": "lock",
        "description": "Named locks: acquire (renews if yours; waits up to wait_s, default 0), release, list. Returns fence and expires_at.",
        "inputSchema": schema(json!({
            "action": one_of(&["acquire", "release", "list"], "What to do"),
            "name": text("Lock name, e.g. db/migrations"),
            "instance_id": text("Your instance_id"),
            "ttl": text("e.g. 5m (5s..24h); your heartbeats renew it"),
            "wait_s": int("Seconds to wait for it (max 25)"),
            "token": text("Your token (if required)"),
        }), &["action"]),
    })
}

pub async fn call(app: &App, headers: &HeaderMap, args: Args) -> Result<Value, String> {
    let action = args.action();
    if action == "list" {
        let all = locks::list(&app.store).await.map_err(store_message)?;
        return Ok(json!({"locks": all}));
    }
    let name = args
        .opt("name")
        .ok_or_else(|| format!("lock {action}: name is required"))?;
    let (id, _) = acting_for(app, headers, &args)?;
    match action.as_str() {
        "acquire" => {
            let ttl = holds::parse_ttl(args.raw("ttl"), app.holds.default_ttl())
                .map_err(store_message)?;
            let wait = match args.int("wait_s") {
                None | Some(0) => None,
                Some(s) if (1..=25).contains(&s) => Some(Duration::from_secs(s.unsigned_abs())),
                Some(s) => {
                    return Err(format!(
                        "lock acquire: wait_s {s} is out of range (0 to 25)"
                    ));
                }
            };
            let lock = locks::acquire(
                &app.holds,
                &app.store,
                &name,
                &id,
                ttl,
                wait.map(|w| w.min(DEFAULT_WAIT)),
                app.stopping(),
            )
            .await
            .map_err(store_message)?;
            let mut out = serde_json::to_value(&lock).unwrap_or_default();
            out["message"] = json!(format!(
                "You hold {} until {} (fence {}); your heartbeats (set_intent) renew it. Release it when done.",
                lock.name, lock.expires_at, lock.fence
            ));
            Ok(out)
        }
        "release" => {
            locks::release(&app.holds, &app.store, &name, Some(&id), false)
                .await
                .map_err(store_message)?;
            Ok(json!({"released": name}))
        }
        other => Err(format!(
            "lock: unknown action {other:?} (acquire, release, list)"
        )),
    }
}
