//! `auction-node`: the auction server.
//!
//! The server is not built yet (issue 7). Until then this binary parses its command line and
//! says honestly that it cannot serve, exiting with status 2.

use clap::{Parser, Subcommand};

/// The replicated auction server.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local development cluster of N nodes on loopback (default 3).
    Dev {
        /// Number of nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u8,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let what = match cli.command {
        Some(Command::Dev { nodes }) => format!("a local cluster of {nodes} nodes"),
        None => "a server".to_string(),
    };
    tracing::error!(
        "auction-node cannot start {what} yet: only the wire protocol (crates/proto) exists so \
         far; the server is tracked by issue 7. Run the tests with `cargo test --workspace`."
    );
    std::process::ExitCode::from(2)
}
