//! (ext) `tasks add|list|show|claim|renew|done|release|fail|cancel`: a project's task board.
//!
//! The project comes from `--project`, else `KOOR_PROJECT`, else the `project` saved by
//! `koor-cli register --project P`. Calls for an instance (claim, renew, done, release, fail) act
//! for the instance found as for `lock` (`--instance`, `KOOR_INSTANCE`, `.koor/instance.json`).
//!
//! `done` adds `unblocked` to the task it prints: the tasks the completion made ready, as the
//! server recorded them in its `koor.task.completed` event (computed in the same transaction, so
//! a task claimed by someone else a moment later is still named).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use koor_shared::client::{Client, HistoryQuery, TaskFilter};
use serde_json::{Value, json};

use super::done;
use super::reserve::{NO_PROJECT, project_of};
use crate::Ctx;
use crate::exit::usage;
use crate::input::ValueArgs;

/// The `tasks` group: the board's project, then the subcommand.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The project whose board to use (default: KOOR_PROJECT, else the project saved by
    /// `register --project`).
    #[arg(long, short = 'p', global = true, value_name = "PROJECT")]
    project: Option<String>,

    #[command(subcommand)]
    cmd: TasksCmd,
}

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// Add a task, or a whole plan as a JSON array on stdin ("#N" refers to item N).
    #[command(
        after_help = "Example:\n  koor-cli tasks add 'Write the API' --priority 2 --label backend --depends-on T-1\n  koor-cli tasks add --data '{\"title\":\"Write the API\",\"priority\":2,\"labels\":[\"backend\"]}'\n  echo '[{\"title\":\"design\"},{\"title\":\"build\",\"depends_on\":[\"#0\"]}]' | koor-cli tasks add --project shop",
        mut_arg("data", |a| a.help("The task inline as JSON, or an array of tasks (a plan), e.g. '{\"title\":\"Write the API\"}'")),
        mut_arg("file", |a| a.help("Read the task or plan from a file ('-' reads stdin)"))
    )]
    Add {
        /// The title of one task; without it, the task or array of tasks is read as JSON
        /// from --data, --file or stdin.
        title: Option<String>,
        /// What to do, in more words.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Higher first (default 0).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        priority: Option<i64>,
        /// A label (repeatable).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        /// A task this one waits for (repeatable), e.g. T-3.
        #[arg(long = "depends-on", value_name = "ID")]
        depends_on: Vec<String>,
        #[command(flatten)]
        input: ValueArgs,
    },

    /// List the board by priority then age (--ready: only what can be claimed now).
    #[command(
        after_help = "Example:\n  koor-cli tasks list --ready --pretty\n  koor-cli tasks list --status claimed,open --label backend"
    )]
    List {
        /// Only tasks that are open with every dependency done.
        #[arg(long)]
        ready: bool,
        /// Only these statuses (comma-separated): open, claimed, done, failed, cancelled.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Only tasks with this label.
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        /// Only tasks claimed by this instance (id or name).
        #[arg(long, value_name = "INSTANCE", conflicts_with = "mine")]
        claimed_by: Option<String>,
        /// Only tasks claimed by this workspace's instance.
        #[arg(long)]
        mine: bool,
    },

    /// Show one task with its claim and dependencies; exits 5 when there is none.
    #[command(after_help = "Example:\n  koor-cli tasks show T-3 --pretty")]
    Show {
        /// The task id (T-3).
        id: String,
    },

    /// Claim a task: the given one, else the best ready one; exits 5 when none is ready, 9 when taken.
    #[command(
        after_help = "Example:\n  koor-cli tasks claim\n  koor-cli tasks claim T-3 --ttl 30m\n  koor-cli tasks claim --label frontend"
    )]
    Claim {
        /// The task to claim (default: the highest-priority, oldest ready task).
        id: Option<String>,
        /// Only tasks with this label (when no id is given).
        #[arg(long, value_name = "LABEL", conflicts_with = "id")]
        label: Option<String>,
        /// How long the claim lasts without a heartbeat (5s to 24h; default: the server's
        /// --stale-after).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
    },

    /// Renew this instance's claim on a task (same fence); exits 9 when it is not ours.
    #[command(after_help = "Example:\n  koor-cli tasks renew T-3 --ttl 1h")]
    Renew {
        /// The task id.
        id: String,
        /// The new TTL from now (default: the server's --stale-after).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
    },

    /// Mark a claimed task done; prints it with `unblocked`, the tasks that became ready.
    #[command(
        after_help = "Example:\n  koor-cli tasks done T-3 --result '{\"pr\":42}'\n  # {\"id\":\"T-3\",\"status\":\"done\",...,\"unblocked\":[\"T-5\"]}"
    )]
    Done {
        /// The task id.
        id: String,
        /// What came of it: JSON, or any text (sent as a string).
        #[arg(long, value_name = "RESULT")]
        result: Option<String>,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
    },

    /// Give a claimed task back (open again); --force: an operator's put-back, whoever holds it.
    #[command(
        after_help = "Example:\n  koor-cli tasks release T-3 --reason 'blocked on review'\n  koor-cli tasks release T-3 --force"
    )]
    Release {
        /// The task id.
        id: String,
        /// Why (kept on the task).
        #[arg(long, value_name = "TEXT", conflicts_with = "force")]
        reason: Option<String>,
        /// Put it back to open whoever holds it (counts as a reclaim: attempts + 1).
        #[arg(long)]
        force: bool,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID", conflicts_with = "force")]
        instance: Option<String>,
    },

    /// Mark a claimed task failed, with the reason (`tasks reopen ID` puts it back on the board).
    #[command(
        after_help = "Example:\n  koor-cli tasks fail T-3 --reason 'tests do not build on CI'"
    )]
    Fail {
        /// The task id.
        id: String,
        /// Why it failed.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Act for this instance (default: KOOR_INSTANCE, else .koor/instance.json).
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
    },

    /// Reopen a failed or cancelled task (open again, claimable); exits 9 for another status.
    #[command(after_help = "Example:\n  koor-cli tasks reopen T-3")]
    Reopen {
        /// The task id.
        id: String,
    },

    /// Cancel a task (it stays on the board as cancelled); exits 9 for a done task.
    #[command(after_help = "Example:\n  koor-cli tasks cancel T-3")]
    Cancel {
        /// The task id.
        id: String,
    },
}

impl TasksArgs {
    /// The board's project, by the rule every command follows ([`project_of`]).
    fn project(&self, ctx: &Ctx) -> Result<String> {
        let me = ctx.me().ok().flatten();
        project_of(self.project.clone(), me.as_ref()).ok_or_else(|| usage(NO_PROJECT))
    }

    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let project = self.project(ctx)?;
        let client = ctx.client()?;
        match self.cmd {
            TasksCmd::Add {
                title,
                description,
                priority,
                labels,
                depends_on,
                input,
            } => {
                let mut body = match title {
                    Some(title) => {
                        if input.data.is_some() || input.file.is_some() {
                            return Err(usage("give either a TITLE or --data/--file, not both"));
                        }
                        let mut t = json!({"title": title});
                        if let Some(d) = description {
                            t["description"] = d.into();
                        }
                        if let Some(p) = priority {
                            t["priority"] = p.into();
                        }
                        if !labels.is_empty() {
                            t["labels"] = labels.into();
                        }
                        if !depends_on.is_empty() {
                            t["depends_on"] = depends_on.into();
                        }
                        t
                    }
                    None => {
                        if description.is_some()
                            || priority.is_some()
                            || !labels.is_empty()
                            || !depends_on.is_empty()
                        {
                            return Err(usage(
                                "--description, --priority, --label and --depends-on go with a TITLE; a JSON task carries its own fields",
                            ));
                        }
                        let doc = input.read_json_if_any()?.ok_or_else(|| {
                            usage(
                                "no task given: the input is empty; give a TITLE, --data '{\"title\":\"...\"}', \
                                 --file PATH, or pipe a JSON task or an array of them (a plan) on stdin",
                            )
                        })?;
                        if !doc.is_object() && !doc.is_array() {
                            return Err(usage(
                                "the input must be a JSON task object or an array of them",
                            ));
                        }
                        doc
                    }
                };
                // Record who created them when this workspace has an instance.
                let me = ctx.me().ok().flatten();
                let token = me.as_ref().and_then(|m| m.token.clone());
                if let Some(me) = &me {
                    let items: Vec<&mut Value> = match &mut body {
                        Value::Array(items) => items.iter_mut().collect(),
                        one => vec![one],
                    };
                    for item in items {
                        if let Some(obj) = item.as_object_mut() {
                            obj.entry("instance_id")
                                .or_insert_with(|| me.id.clone().into());
                        }
                    }
                }
                let answer = client.tasks_add(&project, &body, token.as_deref()).await?;
                ctx.out.json(&answer)?;
            }
            TasksCmd::List {
                ready,
                status,
                label,
                claimed_by,
                mine,
            } => {
                let claimed_by = if mine {
                    Some(ctx.acting_for(None)?.0)
                } else {
                    claimed_by
                };
                let filter = TaskFilter {
                    status,
                    ready,
                    label,
                    claimed_by,
                };
                ctx.out.json(&client.tasks(&project, &filter).await?)?;
            }
            TasksCmd::Show { id } => ctx.out.json(&client.task(&project, &id).await?)?,
            TasksCmd::Claim {
                id,
                label,
                ttl,
                instance,
            } => {
                let (me, token) = ctx.acting_for(instance)?;
                let task = client
                    .task_claim(
                        &project,
                        &me,
                        id.as_deref(),
                        label.as_deref(),
                        ttl.as_deref(),
                        token.as_deref(),
                    )
                    .await?;
                ctx.out.json(&task)?;
            }
            TasksCmd::Renew { id, ttl, instance } => {
                let (me, token) = ctx.acting_for(instance)?;
                let body = ttl.map_or_else(|| json!({}), |t| json!({"ttl": t}));
                let task = client
                    .task_call(&project, &id, "renew", &me, body, token.as_deref())
                    .await?;
                ctx.out.json(&task)?;
            }
            TasksCmd::Done {
                id,
                result,
                instance,
            } => {
                let (me, token) = ctx.acting_for(instance)?;
                let body = match result {
                    // JSON when it parses, else the text as a string.
                    Some(r) => {
                        json!({"result": serde_json::from_str::<Value>(&r).unwrap_or(Value::String(r))})
                    }
                    None => json!({}),
                };
                // The event id before the call: the completion's event comes after it.
                let before = client.metrics().await?.last_event_id;
                let task = client
                    .task_call(&project, &id, "complete", &me, body, token.as_deref())
                    .await?;
                let mut shown = serde_json::to_value(&task)?;
                shown["unblocked"] = unblocked(&client, before, &task.project, &task.id).await?;
                ctx.out.json(&shown)?;
            }
            TasksCmd::Release {
                id,
                reason,
                force,
                instance,
            } => {
                let task = if force {
                    client.task_force_release(&project, &id).await?
                } else {
                    let (me, token) = ctx.acting_for(instance)?;
                    let body = json!({"reason": reason.unwrap_or_default()});
                    client
                        .task_call(&project, &id, "release", &me, body, token.as_deref())
                        .await?
                };
                ctx.out.json(&task)?;
            }
            TasksCmd::Fail {
                id,
                reason,
                instance,
            } => {
                let (me, token) = ctx.acting_for(instance)?;
                let task = client
                    .task_call(
                        &project,
                        &id,
                        "fail",
                        &me,
                        json!({"reason": reason}),
                        token.as_deref(),
                    )
                    .await?;
                ctx.out.json(&task)?;
            }
            TasksCmd::Reopen { id } => ctx.out.json(
                &client
                    .task_update(&project, &id, &json!({"status": "open"}), None)
                    .await?,
            )?,
            TasksCmd::Cancel { id } => ctx.out.json(&client.task_cancel(&project, &id).await?)?,
        }
        done()
    }
}

/// The tasks the completion of `project`/`id` made ready: `unblocked` of its
/// `koor.task.completed` event, the first after event `since` (an empty list when none is found).
async fn unblocked(client: &Client, since: i64, project: &str, id: &str) -> Result<Value> {
    let query = HistoryQuery {
        topic: Some("koor.task.completed".to_owned()),
        since: Some(since),
        last: Some(1000),
        ..HistoryQuery::default()
    };
    let events = client.history(&query).await?;
    let found = events
        .iter()
        .map(|e| e.data.value())
        .find(|data| data["project"].as_str() == Some(project) && data["id"].as_str() == Some(id));
    Ok(found
        .and_then(|data| data.get("unblocked").cloned())
        .unwrap_or_else(|| json!([])))
}
