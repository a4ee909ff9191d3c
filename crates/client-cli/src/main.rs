//! `auction-client`: the auction client shell.
//!
//! The shell is not built yet (issue 8). Until then this binary parses its command line and
//! says honestly that it cannot connect, exiting with status 2.

use clap::Parser;

/// Client of the replicated auction service.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Server address (host:port).
    #[arg(long)]
    server: Option<String>,
}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "auction-client is not built yet: only the wire protocol (crates/proto) exists so far; \
             the shell is tracked by issue 8."
        );
    }
    std::process::ExitCode::from(2)
}
