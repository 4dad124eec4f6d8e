//! The loop that ties it together: terminal input (a thread), the 1 s tick, signals and the
//! network tasks all become [`Msg`]s; [`update`] applies them; frames are drawn only when
//! something changed, at most every [`FRAME`], so a fast event stream costs one draw per frame,
//! not one per event. The terminal is restored on every exit path, and on panic.

use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{Event as TermEvent, KeyEventKind};
use koor_shared::client::Client;
use koor_shared::config::ClientConfig;
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::task::JoinHandle;

use crate::app::{App, Options, update};
use crate::msg::{Command, Level, Msg};
use crate::net;
use crate::theme::Theme;
use crate::ui;

/// Shortest time between two frames.
pub const FRAME: Duration = Duration::from_millis(16);
/// Network messages applied before input gets another look.
const DRAIN: usize = 2048;
/// Network messages waiting for the model; a full channel slows the socket reader (the server
/// then closes a subscriber that falls too far behind, and the stream resumes with `since`).
const NET_CHANNEL: usize = 8192;

/// Runs the console until the user quits.
pub async fn run(config: ClientConfig, opts: Options) -> anyhow::Result<()> {
    let theme = Theme::from_env();
    let client = Client::new(&config);
    let mut terminal = ratatui::try_init().context("koor-tui needs a terminal")?;
    install_panic_hook();
    let result = event_loop(&mut terminal, client, opts, theme).await;
    ratatui::restore();
    result
}

/// On panic: restore the terminal, print the panic, exit (a panic in a background task must not
/// leave a half-working console behind).
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = ratatui::try_restore();
        previous(info);
        std::process::exit(101);
    }));
}

/// Reads the terminal in a plain thread (crossterm's `read` blocks) and forwards keys and resizes.
fn spawn_input(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        loop {
            let msg = match crossterm::event::read() {
                Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => Msg::Key(k),
                Ok(TermEvent::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(_) => Msg::Quit,
            };
            let quit = matches!(msg, Msg::Quit);
            if tx.blocking_send(msg).is_err() || quit {
                return;
            }
        }
    });
}

/// SIGTERM, SIGHUP (the pane closed) and SIGINT end the console cleanly.
fn spawn_signals(tx: Sender<Msg>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(Msg::Quit).await;
    });
}

/// Runs commands: requests in their own tasks, the log stream restarted on a level change,
/// messages sent as the console's `operator` instance.
struct Effects {
    client: Client,
    net: Sender<Msg>,
    logs: JoinHandle<()>,
    operator: net::Operator,
}

impl Effects {
    fn run(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            match cmd {
                Command::Quit => {}
                Command::SetLogLevel(level) => self.restart_logs(level),
                cmd @ Command::SendMessage { .. } => {
                    let (client, tx, op) =
                        (self.client.clone(), self.net.clone(), self.operator.clone());
                    tokio::spawn(async move {
                        if let Some(net) = net::send_as_operator(&client, &op, cmd).await {
                            let _ = tx.send(Msg::Net(net)).await;
                        }
                    });
                }
                Command::HeartbeatOperator => {
                    let (client, op) = (self.client.clone(), self.operator.clone());
                    tokio::spawn(async move { op.heartbeat(&client).await });
                }
                cmd => {
                    let client = self.client.clone();
                    let tx = self.net.clone();
                    tokio::spawn(async move {
                        if let Some(net) = net::run_command(&client, cmd).await {
                            let _ = tx.send(Msg::Net(net)).await;
                        }
                    });
                }
            }
        }
    }

    fn restart_logs(&mut self, level: Level) {
        self.logs.abort();
        self.logs = tokio::spawn(net::watch_logs(
            self.client.clone(),
            level,
            self.net.clone(),
        ));
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: Client,
    opts: Options,
    theme: Theme,
) -> anyhow::Result<()> {
    let (input_tx, mut input) = mpsc::channel::<Msg>(256);
    let (net_tx, mut net_rx): (Sender<Msg>, Receiver<Msg>) = mpsc::channel(NET_CHANNEL);
    spawn_input(input_tx.clone());
    spawn_signals(input_tx);
    let events = tokio::spawn(net::watch_events(client.clone(), net_tx.clone()));
    let mut effects = Effects {
        logs: tokio::spawn(net::watch_logs(client.clone(), Level::Info, net_tx.clone())),
        client,
        net: net_tx,
        operator: net::Operator::default(),
    };

    let mut app = App::new(opts);
    let size = terminal.size()?;
    effects.run(update(&mut app, Msg::Resize(size.width, size.height)));
    effects.run(update(&mut app, Msg::Tick(net::now_ms())));

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    while !app.quit {
        if dirty && last_draw.elapsed() >= FRAME {
            terminal.draw(|f| ui::render(&app, f, &theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let next_frame = tokio::time::Instant::from_std(last_draw + FRAME);
        tokio::select! {
            biased;
            msg = input.recv() => {
                let Some(msg) = msg else { break };
                effects.run(update(&mut app, msg));
                dirty = true;
            }
            _ = tick.tick() => {
                effects.run(update(&mut app, Msg::Tick(net::now_ms())));
                dirty = true;
            }
            msg = net_rx.recv() => {
                let Some(msg) = msg else { break };
                effects.run(update(&mut app, msg));
                // apply what is already queued before drawing: one frame for many events
                for _ in 0..DRAIN {
                    match net_rx.try_recv() {
                        Ok(msg) => effects.run(update(&mut app, msg)),
                        Err(_) => break,
                    }
                }
                dirty = true;
            }
            () = tokio::time::sleep_until(next_frame), if dirty => {}
        }
    }
    events.abort();
    effects.logs.abort();
    // the operator instance goes with the console (briefly: a gone server must not hold us up)
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        effects.operator.leave(&effects.client),
    )
    .await;
    Ok(())
}
