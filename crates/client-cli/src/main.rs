//! `auction-client`: the auction client shell, and every command one-shot for scripts.
//!
//! Without a command it starts the interactive shell; with one it runs it and exits with the
//! code of its result class (see `--help` and docs/client.md).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod shell;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auction_client::discovery::DiscoveryConfig;
use auction_client::exit::{EXIT_CODES_HELP, Exit};
use auction_client::parse::{Command, parse_words};
use auction_client::render::{self, Ctx, EventFilter};
use auction_client::session::{Session, SessionConfig};
use auction_client::units::parse_duration;
use auction_proto::msg::auction::BidderName;
use auction_proto::msg::client::RequestBody;
use clap::Parser;
use tokio::sync::mpsc;

use crate::app::{App, Printed};

/// Client of the replicated auction service.
///
/// Without COMMAND: an interactive shell (`help` lists commands). With COMMAND: runs it once and
/// exits, e.g. `auction-client --server 127.0.0.1:7100 bid 3 12.50`.
#[derive(Debug, Parser)]
#[command(version, about, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Server to connect to (host:port); repeatable. Without it, servers are found by broadcast
    /// and the least-loaded live one is used.
    #[arg(long, short = 's', value_name = "ADDR", env = "AUCTION_SERVER", value_delimiter = ',')]
    server: Vec<String>,
    /// Print one JSON object per result or event.
    #[arg(long)]
    json: bool,
    /// Cluster name for discovery.
    #[arg(long, default_value = "auction", env = "AUCTION_CLUSTER")]
    cluster: String,
    /// UDP discovery port of the servers.
    #[arg(long, default_value_t = 7946, value_name = "PORT")]
    discovery_port: u16,
    /// Address to send discovery to (repeatable); default 255.255.255.255.
    #[arg(long, value_name = "ADDR")]
    broadcast: Vec<IpAddr>,
    /// How long `find` collects answers.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DUR")]
    find_window: Duration,
    /// Log in as this bidder before running commands (token from --token-file, else the
    /// AUCTION_TOKEN environment variable, else the token dir).
    #[arg(long, short = 'u', env = "AUCTION_USER", value_name = "NAME")]
    user: Option<String>,
    /// A file holding the bidder's secret token (for --user). The token itself is never taken
    /// from the command line, where other users see it (`ps`); AUCTION_TOKEN also works.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible to other users.
    #[arg(long, hide = true)]
    token: Option<String>,
    /// Where `register` saves tokens and `login NAME` finds them
    /// [default: $XDG_STATE_HOME/auction/tokens or ~/.local/state/auction/tokens].
    #[arg(long, value_name = "DIR")]
    token_dir: Option<PathBuf>,
    /// The admin token for `admin`.
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Shell history file [default: $XDG_STATE_HOME/auction/history or
    /// ~/.local/state/auction/history].
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// How long to wait for one answer before trying another server.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    timeout: Duration,
    /// Attempts per request (connection losses, timeouts, unavailable answers).
    #[arg(long, default_value_t = 8, value_name = "N")]
    attempts: u32,
    /// The command to run once (omit for the shell).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage.code() } else { 0 });
        }
    };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cannot start the runtime: {e}");
                return ExitCode::from(Exit::Other.code());
            }
        };
    ExitCode::from(run(cli, &runtime).code())
}

fn run(cli: Cli, runtime: &tokio::runtime::Runtime) -> Exit {
    let json = cli.json;
    let fail = |message: String| {
        let p = if json { render::usage_json(&message).to_string() } else { message };
        eprintln!("{p}");
        Exit::Usage
    };
    let servers = match resolve_servers(&cli.server) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let user = match cli.user.as_deref().map(BidderName::new).transpose() {
        Ok(u) => u,
        Err(e) => return fail(format!("bad --user: {e}")),
    };
    if cli.token.is_some() {
        return fail(
            "--token is refused: other users can read the command line (ps); use --token-file \
             FILE or the AUCTION_TOKEN environment variable"
                .into(),
        );
    }
    let token = match read_token(cli.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let one_shot = if cli.command.is_empty() {
        None
    } else {
        match parse_words(&cli.command) {
            Ok(cmd) => Some(cmd),
            Err(e) => {
                return fail(shell::usage_message(&e, cli.command.first().map(String::as_str)));
            }
        }
    };
    let targets = if cli.broadcast.is_empty() {
        DiscoveryConfig::default().targets
    } else {
        cli.broadcast.clone()
    };
    let discovery = DiscoveryConfig {
        cluster: cli.cluster.clone(),
        port: cli.discovery_port,
        targets,
        window: cli.find_window,
    };
    let config = SessionConfig {
        discovery: Some(discovery),
        servers,
        request_timeout: cli.timeout,
        attempts: cli.attempts.max(1),
        ..SessionConfig::default()
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let state = state_dir();
    let mut app = App {
        session: Session::new(config, events_tx),
        json,
        color: render::use_color(
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ),
        admin_token: cli.admin_token.clone(),
        token_dir: cli.token_dir.clone().or_else(|| state.as_ref().map(|s| s.join("tokens"))),
        ids: Arc::new(Mutex::new(BTreeSet::new())),
        last_bid: None,
    };
    if let Some(name) = user {
        let p = runtime.block_on(app.login(name, token));
        if p.exit != Exit::Success {
            emit(&p, true);
            return p.exit;
        }
    }
    match one_shot {
        Some(cmd) => one_shot_run(&mut app, runtime, cmd, events_rx),
        None => {
            let history = cli.history.clone().or_else(|| state.map(|s| s.join("history")));
            shell::run(app, runtime, events_rx, history)
        }
    }
}

fn one_shot_run(
    app: &mut App,
    runtime: &tokio::runtime::Runtime,
    cmd: Command,
    mut events: mpsc::UnboundedReceiver<auction_proto::msg::client::PushEvent>,
) -> Exit {
    let watching = matches!(cmd, Command::Watch { .. });
    let p = runtime.block_on(app.run(cmd));
    emit(&p, false);
    if !watching || p.exit != Exit::Success {
        return p.exit;
    }
    // Stream events until Ctrl-C; a periodic cheap request notices a dead server and fails
    // over (which subscribes again).
    runtime.block_on(async {
        let mut filter = EventFilter::default();
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Exit::Success,
                ev = events.recv() => {
                    let Some(ev) = ev else { return Exit::Success };
                    if !filter.admit(&ev) {
                        continue;
                    }
                    app.session.observe_time(ev.at);
                    let line = if app.json {
                        render::event_json(&ev).to_string()
                    } else {
                        let ctx = Ctx { color: app.color, now: Some(ev.at), bid: None };
                        render::event_text(&ev, &ctx)
                    };
                    println!("{line}");
                }
                _ = tick.tick() => {
                    if let Err(e) = app.session.request(RequestBody::Whoami).await {
                        let p = app.error("watch", &e);
                        emit(&p, false);
                        return p.exit;
                    }
                }
            }
        }
    })
}

/// Prints a result: to stdout, except human-readable errors in one-shot mode (stderr).
fn emit(p: &Printed, force_stderr: bool) {
    if p.text.is_empty() {
        return;
    }
    let to_stderr = force_stderr || p.exit != Exit::Success;
    if to_stderr && !p.text.starts_with('{') {
        eprintln!("{}", p.text);
    } else {
        println!("{}", p.text);
    }
}

/// The token for `--user`: the first line of `--token-file`, else `AUCTION_TOKEN`; `None` to
/// use the saved one.
fn read_token(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(format!("--token-file {} is empty", path.display()));
        }
        return Ok(Some(token));
    }
    Ok(std::env::var("AUCTION_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}

fn resolve_servers(given: &[String]) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for s in given {
        let addrs = s
            .to_socket_addrs()
            .map_err(|e| format!("bad --server {s:?}: {e} (expected host:port)"))?;
        out.extend(addrs);
    }
    Ok(out)
}

/// `$XDG_STATE_HOME/auction` or `~/.local/state/auction`.
fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("auction"));
    }
    let home = std::env::var_os("HOME").filter(|d| !d.is_empty())?;
    Some(PathBuf::from(home).join(".local/state/auction"))
}
