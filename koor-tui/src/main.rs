//! koor-tui: parses flags, resolves the server and token like koor-cli, runs the console.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use koor_shared::config::{Inputs, resolve};
use koor_tui::Options;

/// The Koor operator console: live events, state keys, agent instances, server logs, and the
/// work (locks, tasks, reservations, messages).
///
/// Server and token come from the flags, else KOOR_SERVER / KOOR_TOKEN, else ./settings.json,
/// else the user config file (as for koor-cli), else http://localhost:9800.
#[derive(Debug, Parser)]
#[command(name = "koor-tui", version, about)]
struct Args {
    /// Server URL, e.g. http://localhost:9800.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for a server started with --auth-token.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Hide and refuse destructive actions (deregistering instances, releasing locks,
    /// reservations and tasks) and sending messages.
    #[arg(long)]
    readonly: bool,
    /// A spec project to list in the State view (repeatable; others are learned from
    /// koor.spec.* events); the first is also the task board the Work view shows first.
    #[arg(long, value_name = "PROJECT")]
    project: Vec<String>,
}

fn main() -> ExitCode {
    // The keys go after the flags in --help, from the tables the console draws.
    let matches = Args::command()
        .after_help(koor_tui::ui::keys_help())
        .get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let config = match resolve(&Inputs::from_env(args.server, args.token)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("koor-tui: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        server: config.server.clone(),
        readonly: args.readonly,
        projects: args.project,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koor-tui: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(koor_tui::run(config, opts));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koor-tui: {e:#}");
            ExitCode::FAILURE
        }
    }
}
