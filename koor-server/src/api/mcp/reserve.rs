//! `reserve`: reserve files (all or nothing), check before editing, release, list.

use serde_json::{Value, json};
use warp::http::HeaderMap;

use super::args::{Args, flag, list, one_of, schema, text};
use super::{acting_for, store_message};
use crate::App;
use crate::holds::{self, reservations};

pub fn spec() -> Value {
    json!({
        "name": "reserve",
        "description": "File reservations: reserve paths/globs (all or nothing; exclusive unless shared), check files before editing, release, list.",
        "inputSchema": schema(json!({
            "action": one_of(&["reserve", "check", "release", "list"], "What to do"),
            "project": text("Project name"),
            "paths": list("Paths or globs relative to the project root, e.g. src/auth/**"),
            "instance_id": text("Your instance_id"),
            "shared": flag("reserve: shared instead of exclusive"),
            "ttl": text("e.g. 30m; heartbeats renew it"),
            "reason": text("reserve: why (others see it)"),
            "token": text("Your token (if required)"),
        }), &["action"]),
    })
}

pub async fn call(app: &App, headers: &HeaderMap, args: Args) -> Result<Value, String> {
    let action = args.action();
    let project = args.opt("project");
    let paths = args.list("paths");
    match action.as_str() {
        "list" => {
            let filter = reservations::Filter {
                project,
                instance: args.opt("instance_id"),
                path: None,
            };
            let all = reservations::list(&app.store, filter)
                .await
                .map_err(store_message)?;
            Ok(json!({"reservations": all}))
        }
        "check" => {
            let project = project.ok_or("reserve check: project is required")?;
            let me = args.opt("instance_id");
            let report = reservations::check(&app.store, &project, &paths, me.as_deref(), false)
                .await
                .map_err(store_message)?;
            Ok(serde_json::to_value(report).unwrap_or_default())
        }
        "reserve" => {
            let me = acting_for(app, headers, &args)?;
            let project = project.ok_or("reserve: project is required")?;
            if paths.is_empty() {
                return Err(
                    "reserve: paths is required (files or globs such as src/auth/**)".into(),
                );
            }
            let ttl = holds::parse_ttl(args.raw("ttl"), app.holds.default_ttl())
                .map_err(store_message)?;
            let req = reservations::Request {
                instance: me,
                project,
                paths,
                exclusive: !args.flag("shared").unwrap_or(false),
                ttl,
                reason: args.text("reason"),
            };
            let granted = reservations::reserve(&app.holds, &app.store, req)
                .await
                .map_err(store_message)?;
            Ok(
                json!({"reservations": granted, "message": "Reserved; heartbeats renew it. Release when your edits are committed."}),
            )
        }
        "release" => {
            let me = acting_for(app, headers, &args)?;
            let released =
                reservations::release_all(&app.holds, &app.store, &me, project.as_deref(), &paths)
                    .await
                    .map_err(store_message)?;
            Ok(json!({"released": released}))
        }
        other => Err(format!(
            "reserve: unknown action {other:?} (reserve, check, release, list)"
        )),
    }
}
