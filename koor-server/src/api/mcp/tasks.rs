//! `tasks`: list a project's ready tasks, claim one, renew, complete, release or fail it.

use serde_json::{Value, json};
use warp::http::HeaderMap;

use super::args::{Args, flag, one_of, schema, text};
use super::{acting_for, store_message};
use crate::App;
use crate::holds::{self, tasks};

pub fn spec() -> Value {
    json!({
        "name": "tasks",
        "description": "A project's task board: list (ready ones unless all), claim (id, else the best ready one), renew, complete, release, fail.",
        "inputSchema": schema(json!({
            "action": one_of(&["list", "claim", "renew", "complete", "release", "fail"], "What to do"),
            "project": text("Project (board) name"),
            "id": text("Task id, e.g. T-3"),
            "instance_id": text("Your instance_id"),
            "label": text("claim/list: only tasks with this label"),
            "all": flag("list: every task, not only ready ones"),
            "ttl": text("Claim TTL, e.g. 30m; heartbeats renew it"),
            "result": text("complete: what you did"),
            "reason": text("release/fail: why"),
            "token": text("Your token (if required)"),
        }), &["action", "project"]),
    })
}

pub async fn call(app: &App, headers: &HeaderMap, args: Args) -> Result<Value, String> {
    let project = args.text("project").trim().to_owned();
    let action = args.action();
    if action == "list" {
        let filter = tasks::ListFilter {
            ready: !args.flag("all").unwrap_or(false),
            label: args.opt("label"),
            ..tasks::ListFilter::default()
        };
        let list = tasks::list(&app.store, &project, filter)
            .await
            .map_err(store_message)?;
        return Ok(json!({"project": project, "count": list.len(), "tasks": list}));
    }
    let me = acting_for(app, headers, &args)?;
    let id = args.opt("id");
    let need_id = || {
        id.clone()
            .ok_or_else(|| format!("tasks {action}: id is required"))
    };
    let ttl = holds::parse_ttl(args.raw("ttl"), app.holds.default_ttl()).map_err(store_message)?;
    let task = match action.as_str() {
        "claim" => {
            tasks::claim(
                &app.holds,
                &app.store,
                &project,
                &me,
                id.as_deref(),
                args.opt("label").as_deref(),
                ttl,
            )
            .await
        }
        "renew" => tasks::renew(&app.holds, &app.store, &project, &need_id()?, &me, ttl).await,
        "complete" | "release" | "fail" => {
            let how = match action.as_str() {
                "complete" => tasks::Finish::Complete(args.opt("result").map(Value::String)),
                "release" => tasks::Finish::Release(args.text("reason")),
                _ => tasks::Finish::Fail(
                    args.opt("reason")
                        .ok_or("tasks fail: reason is required (what went wrong)")?,
                ),
            };
            tasks::finish(&app.holds, &app.store, &project, &need_id()?, &me, how).await
        }
        other => return Err(format!("tasks: unknown action {other:?}")),
    }
    .map_err(store_message)?;
    let mut out = serde_json::to_value(&task).unwrap_or_default();
    if action == "claim" {
        out["message"] = json!(format!(
            "You hold {} ({}) until {}; set_intent/heartbeats renew the claim. Finish with action complete (or release, fail).",
            task.id,
            task.title,
            task.claim
                .as_ref()
                .map(|c| c.expires_at.as_str())
                .unwrap_or("?")
        ));
    }
    Ok(out)
}
