//! `auction-node`: the replicated auction server. See `auction-node --help`.

use std::process::ExitCode;

use auction_node::cli::{Cli, Command};
use auction_node::settings::NodeSettings;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = auction_node::config_file::apply(
        std::env::args_os().collect(),
        |k| std::env::var(k).ok(),
        |p| std::fs::read_to_string(p),
    );
    let cli = match args {
        Ok(args) => Cli::parse_from(args),
        Err(e) => return fail(&e.to_string()),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    // One thread: the driver owns all protocol state, so the client and peer socket tasks
    // only move bytes to and from it; on a worker pool every request crossed threads twice
    // (a futex wake-up and a context switch each way). Disk writes keep their own thread.
    // Measured in docs/performance.md: 1-client p50 0.62 -> 0.44 ms, 64 clients +55 % req/s.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                let settings = NodeSettings::from_args(&args)?;
                auction_node::driver::run(settings, shutdown_signal()).await?;
                Ok(())
            }
            Command::Dev(args) => auction_node::dev::run(args).await,
            Command::AdminToken(k) => {
                let key = auction_node::settings::key_from(&k)?;
                print_line(&auction_node::settings::default_admin_token(&key));
                Ok(())
            }
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "auction-node", &mut std::io::stdout());
                Ok(())
            }
            Command::Man => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .map_err(|e| anyhow::anyhow!("cannot write the manual page: {e}"))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Our error messages already include their causes.
        Err(e) => fail(&format!("{e}")),
    }
}

#[allow(clippy::print_stdout)]
fn print_line(text: &str) {
    println!("{text}");
}

#[allow(clippy::print_stderr)]
fn fail(msg: &str) -> ExitCode {
    eprintln!("auction-node: {msg}");
    ExitCode::FAILURE
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
