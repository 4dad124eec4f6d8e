//! The commands, one module per group.

mod audit;
mod backup;
mod completions;
mod config;
mod events;
mod guard;
mod init;
mod instances;
mod lock;
mod logs;
mod mcp;
mod me;
mod messages;
mod reserve;
mod rules;
mod specs;
mod state;
mod status;
mod tasks;
mod wait;
mod webhooks;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::Ctx;
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server is up: prints its health.
    #[command(
        after_help = "Example:\n  koor-cli status\n  # {\"status\":\"ok\",\"uptime\":\"3h24m10s\"}"
    )]
    Status,

    /// Show the server's counters (keys, instances, last event id, subscribers).
    #[command(after_help = "Example:\n  koor-cli metrics --pretty")]
    Metrics,

    /// Shared key/value state with versions, history, diff and rollback.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli state set api-contract --data '{\"endpoint\":\"/users\"}'\n  koor-cli state get api-contract"
    )]
    State(state::StateCmd),

    /// Per-project specs, named PROJECT/NAME.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli specs set shop/orders --file orders.json\n  koor-cli specs list shop"
    )]
    Specs(specs::SpecsCmd),

    /// The event bus: publish, history, and a live subscription.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli events publish api.change.contract --data '{\"breaking\":true}'\n  koor-cli events subscribe 'api.*'"
    )]
    Events(events::EventsCmd),

    /// Register this agent (or resume the one saved in .koor/instance.json); prints it with its token.
    #[command(
        after_help = "Example:\n  koor-cli register claude-frontend --workspace /projects/web --intent 'dark mode' --capability code-edit\n  koor-cli register claude-frontend --project shop --new"
    )]
    Register(instances::RegisterArgs),

    /// Registered agent instances: list, inspect, heartbeat, activate, deregister.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli instances list --status stale --pretty\n  koor-cli instances deregister 550e8400-e29b-41d4-a716-446655440000"
    )]
    Instances(instances::InstancesCmd),

    /// Stream events live, one JSON line each, until Ctrl-C (the same as `events subscribe`).
    #[command(
        after_help = "Example:\n  koor-cli subscribe 'api.*'\n  # the same as: koor-cli events subscribe 'api.*' (see its --help)"
    )]
    Subscribe(events::SubscribeArgs),

    /// Show the instance this directory acts for (KOOR_INSTANCE or .koor/instance.json).
    #[command(after_help = "Example:\n  koor-cli whoami --pretty")]
    Whoami,

    /// Mark this agent's instance active (ID defaults to KOOR_INSTANCE or .koor/instance.json).
    #[command(
        after_help = "Example:\n  koor-cli activate\n  koor-cli activate 550e8400-e29b-41d4-a716-446655440000"
    )]
    Activate(me::InstanceArg),

    /// Tell the server this agent is alive; renews its locks and reservations (ID as for activate).
    #[command(after_help = "Example:\n  koor-cli heartbeat")]
    Heartbeat(me::InstanceArg),

    /// Named locks: acquire (optionally waiting), release, list.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli lock acquire deploy/prod --ttl 5m --wait 30s\n  koor-cli lock release deploy/prod"
    )]
    Lock(lock::LockCmd),

    /// Reserve files or globs of the project for this instance (all or nothing); exits 9 on a conflict.
    #[command(
        after_help = "Example:\n  koor-cli reserve 'src/auth/**' --reason 'refactoring auth' --ttl 30m\n  koor-cli reserve README.md docs/guide.md --shared"
    )]
    Reserve(reserve::ReserveArgs),

    /// List the file reservations held now (filters: --project, --instance/--mine, --path).
    #[command(
        after_help = "Example:\n  koor-cli reservations --project shop --pretty\n  koor-cli reservations --path src/auth/login.rs"
    )]
    Reservations(reserve::ReservationsArgs),

    /// Let go of reserved paths (or --all of this instance's, or one --id; --force for operators).
    #[command(
        after_help = "Example:\n  koor-cli release 'src/auth/**'\n  koor-cli release --all\n  koor-cli release --id 3f1c... --force"
    )]
    Release(reserve::ReleaseArgs),

    /// Git guard: refuse commits of files others have reserved (pre-commit, install).
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli guard install\n  koor-cli guard pre-commit"
    )]
    Guard(guard::GuardCmd),

    /// IDE hooks that enforce file reservations at the edit (claude-code).
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli hook claude-code < event.json"
    )]
    Hook(guard::HookCmd),
    /// Send a message to other agents (ids or names); prints its id and thread.
    #[command(
        after_help = "Example:\n  koor-cli send backend --subject 'which API version?' --body '{\"endpoint\":\"/users\"}' --ack\n  koor-cli send 550e8400-e29b-41d4-a716-446655440000 --subject 're: version' --body v3 --thread 12"
    )]
    Send(messages::SendArgs),

    /// List this agent's inbox (never marks anything read); --wait sleeps until something new comes.
    #[command(
        after_help = "Example:\n  koor-cli inbox --unread\n  koor-cli inbox --wait 5m   # unread messages; exit 10 when none came\n  koor-cli inbox --since 41 --wait 5m   # after the last id seen, read or not"
    )]
    Inbox(messages::InboxArgs),

    /// Mark a message of this agent's inbox read; prints it with the receipts.
    #[command(after_help = "Example:\n  koor-cli read 12")]
    Read(messages::MarkArgs),

    /// Acknowledge a message of this agent's inbox (also marks it read).
    #[command(after_help = "Example:\n  koor-cli ack 12")]
    Ack(messages::MarkArgs),

    /// Show a whole thread, oldest first (give the thread or any message id in it).
    #[command(after_help = "Example:\n  koor-cli thread 12 --pretty")]
    Thread(messages::ThreadArgs),

    /// Wait for events matching PATTERN, print them and exit 0; exit 10 at the timeout.
    #[command(
        after_help = "Example:\n  koor-cli wait 'build.done' --timeout 10m\n  koor-cli wait 'koor.state.updated' --since 42"
    )]
    Wait(wait::WaitArgs),

    /// A project's task board: add (a plan on stdin), list, claim, done, release, fail, cancel.
    #[command(
        after_help = "Example:\n  koor-cli tasks add --project shop < plan.json\n  koor-cli tasks claim --project shop"
    )]
    Tasks(tasks::TasksArgs),

    /// Per-project validation rules: list, set, propose, accept, reject.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli rules propose shop no-todo --pattern TODO --message 'Resolve TODOs first'\n  koor-cli rules accept shop no-todo"
    )]
    Rules(rules::RulesCmd),

    /// Check a file against a project's accepted rules; exits 8 on error-severity violations.
    #[command(
        after_help = "Example:\n  koor-cli validate shop --file src/app.js\n  git show HEAD:index.html | koor-cli validate shop --file - --filename index.html --stack react"
    )]
    Validate(rules::ValidateArgs),

    /// The server's own log records (recent, or followed live).
    #[command(
        after_help = "Example:\n  koor-cli logs --last 20 --level warn\n  koor-cli logs --follow"
    )]
    Logs(logs::LogsArgs),

    /// Webhooks: list (with delivery health), add, delete, test.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli webhooks add --id ci --url http://127.0.0.1:8080/hook --patterns 'build.*'\n  koor-cli webhooks list --pretty"
    )]
    Webhooks(webhooks::WebhooksCmd),

    /// The audit log of mutations (who changed what, when, with what outcome), or its summary.
    #[command(
        after_help = "Example:\n  koor-cli audit --action 'state.*' --since 1h --pretty\n  koor-cli audit summary --since 24h"
    )]
    Audit(audit::AuditArgs),

    /// Download a consistent snapshot of the whole store (a SQLite file).
    #[command(
        after_help = "Example:\n  koor-cli backup -o koor-$(date +%F).db\n  # restore it with the server stopped: koor-server restore koor-2026-02-09.db --data-dir DIR"
    )]
    Backup(backup::BackupArgs),

    /// How to restore a backup (it runs offline: koor-server restore FILE --data-dir DIR).
    #[command(
        after_help = "Example:\n  koor-cli restore --file koor.db\n  # prints: restore runs on the server machine while the server is stopped: koor-server restore koor.db --data-dir DIR"
    )]
    Restore(backup::RestoreArgs),

    /// Which server and token the CLI uses, and where they are set.
    #[command(
        subcommand,
        after_help = "Example:\n  koor-cli config set server http://localhost:9801\n  koor-cli config get"
    )]
    Config(config::ConfigCmd),

    /// Print the MCP config snippet for an IDE (claude, cursor or vscode).
    #[command(
        name = "mcp-config",
        after_help = "Example:\n  koor-cli mcp-config claude --pretty > .mcp.json\n  koor-cli mcp-config cursor --pretty > .cursor/mcp.json\n  koor-cli mcp-config vscode --inline-token\n\nWith a token configured, the Authorization header names it by the IDE's variable\n(${KOOR_TOKEN} for Claude Code, ${env:KOOR_TOKEN} for Cursor, an ${input:koor-token} prompt\nfor VS Code), so the file can be committed; --inline-token writes the token itself."
    )]
    McpConfig(mcp::McpArgs),

    /// Set up a workspace for an agent: MCP config, AGENTS.md/CLAUDE.md, the Claude Code hook, the git guard.
    #[command(
        after_help = "Example:\n  koor-cli init\n  koor-cli init --ide claude --workspace ../web --name web-agent --project shop --dry-run\n\nRe-running it is safe: it replaces only the koor entry of each MCP config and the section\nbetween <!-- koor:begin ... --> and <!-- koor:end --> in AGENTS.md/CLAUDE.md, adds the hook\nentry to .claude/settings.json only when it is missing, and never replaces a pre-commit hook\nthat is not Koor's without --force (--no-claude-hook and --no-git-guard skip them)."
    )]
    Init(init::InitArgs),

    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  koor-cli completions bash > ~/.local/share/bash-completion/completions/koor-cli\n  koor-cli completions zsh > ~/.zfunc/_koor-cli"
    )]
    Completions(completions::CompletionsArgs),
}

impl Command {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let result = match self {
            Command::Status => status::status(ctx).await,
            Command::Metrics => status::metrics(ctx).await,
            Command::State(cmd) => cmd.run(ctx).await,
            Command::Specs(cmd) => cmd.run(ctx).await,
            Command::Events(cmd) => cmd.run(ctx).await,
            Command::Subscribe(args) => events::EventsCmd::Subscribe(args).run(ctx).await,
            Command::Register(args) => args.run(ctx).await,
            Command::Instances(cmd) => cmd.run(ctx).await,
            Command::Whoami => me::whoami(ctx).await,
            Command::Activate(arg) => arg.run(ctx, "activate").await,
            Command::Heartbeat(arg) => arg.run(ctx, "heartbeat").await,
            Command::Lock(cmd) => cmd.run(ctx).await,
            Command::Tasks(args) => args.run(ctx).await,
            Command::Reserve(args) => args.run(ctx).await,
            Command::Reservations(args) => args.run(ctx).await,
            Command::Release(args) => args.run(ctx).await,
            Command::Guard(cmd) => cmd.run(ctx).await,
            Command::Hook(cmd) => cmd.run(ctx).await,
            Command::Send(args) => args.run(ctx).await,
            Command::Inbox(args) => args.run(ctx).await,
            Command::Read(args) => args.run(ctx, false).await,
            Command::Ack(args) => args.run(ctx, true).await,
            Command::Thread(args) => args.run(ctx).await,
            Command::Wait(args) => args.run(ctx).await,
            Command::Rules(cmd) => cmd.run(ctx).await,
            Command::Validate(args) => args.run(ctx).await,
            Command::Logs(args) => args.run(ctx).await,
            Command::Webhooks(cmd) => cmd.run(ctx).await,
            Command::Audit(args) => args.run(ctx).await,
            Command::Backup(args) => args.run(ctx).await,
            Command::Restore(args) => args.run(),
            Command::Config(cmd) => cmd.run(ctx),
            Command::McpConfig(args) => args.run(ctx),
            Command::Init(args) => args.run(ctx),
            Command::Completions(args) => args.run(ctx),
        };
        result.map_err(|err| {
            let source = ctx.config().ok().map(|c| c.server_source.to_string());
            exit::locate(err, source)
        })
    }
}

/// The usual end of a command: the answer printed, exit 0.
fn done() -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}

/// Sends a request and reads its JSON answer (errors become the usual exit codes).
async fn send_json(
    client: &koor_shared::client::Client,
    rb: reqwest::RequestBuilder,
) -> Result<serde_json::Value> {
    let resp = client.send(rb).await?;
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("unexpected answer from the server: {e}"))
}
