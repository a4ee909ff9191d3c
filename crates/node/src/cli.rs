//! The command line: `auction-node run` (one server) and `auction-node dev` (a local cluster).
//!
//! Every flag has an environment-variable fallback (`AUCTION_*`), so a service manager can
//! configure a node without a long command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The replicated auction server.
#[derive(Debug, Parser)]
#[command(
    name = "auction-node",
    version = version(),
    about = "The replicated auction server",
    after_help = "Examples:\n  \
        # a local 3-node cluster for trying things out (temporary data, dev key):\n  \
        auction-node dev\n\n  \
        # the first server of a new cluster:\n  \
        auction-node run --name a --data-dir /var/lib/auction --bootstrap \\\n      \
        --cluster-key-file /etc/auction/key --peer-addr 10.0.0.1:7000 --client-addr 10.0.0.1:7100\n\n  \
        # more servers join by broadcast, or by explicit address where broadcast is impossible:\n  \
        auction-node run --name b --data-dir /var/lib/auction --cluster-key-file /etc/auction/key \\\n      \
        --peer-addr 10.0.0.2:7000 --client-addr 10.0.0.2:7100 --join 10.0.0.1:7000"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: the crate version, the git commit and the peer protocol version (servers
/// of different protocol versions do not talk to each other).
pub fn version() -> String {
    format!(
        "{} (git {}, protocol {})",
        env!("CARGO_PKG_VERSION"),
        env!("AUCTION_GIT_HASH"),
        auction_proto::codec::PROTOCOL_VERSION
    )
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one server.
    Run(Box<RunArgs>),
    /// Start a local development cluster of N servers on loopback with temporary data
    /// directories and a development key; Ctrl-C stops it.
    Dev(DevArgs),
    /// Print the admin token a node uses when `--admin-token` is not given (derived from the
    /// cluster key, so admin requests never carry the key itself).
    AdminToken(KeyArgs),
    /// Print a shell completion script (e.g. `auction-node completions bash >
    /// /etc/bash_completion.d/auction-node`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `auction-node man | man -l -`).
    Man,
}

/// The cluster key: `run` and `admin-token` take it the same way.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// File holding the cluster key (at least 16 bytes; surrounding whitespace is trimmed).
    #[arg(long, env = "AUCTION_CLUSTER_KEY_FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// The cluster key itself (prefer the file: environment variables leak into process
    /// listings of some systems).
    #[arg(long, env = "AUCTION_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// Use a fixed, public development key (`run` refuses it unless every address is
    /// loopback).
    #[arg(long)]
    pub dev_key: bool,
}

/// When the write-ahead log is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FsyncArg {
    /// Group commit: one fsync for every batch of writes, before they are acknowledged.
    Always,
    /// Never fsync: acknowledged bids can be lost on power failure. Benchmarks only.
    Never,
}

/// Flags of `auction-node run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A TOML file of settings: the keys are these flags without the dashes (`peer-addr =
    /// "10.0.0.1:7000"`). A flag on the command line or its environment variable overrides
    /// the file; the file overrides the defaults.
    #[arg(long, env = "AUCTION_CONFIG")]
    pub config: Option<PathBuf>,
    /// A name for logs (defaults to the node id).
    #[arg(long, env = "AUCTION_NAME")]
    pub name: Option<String>,
    /// Where the node keeps its id, log and snapshots.
    #[arg(long, env = "AUCTION_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address for peer traffic (UDP and TCP on the same port). Must be reachable by the other
    /// servers: it is advertised as is.
    #[arg(long, env = "AUCTION_PEER_ADDR", default_value = "127.0.0.1:7000")]
    pub peer_addr: SocketAddr,
    /// Address for client connections (TCP), advertised to clients as is.
    #[arg(long, env = "AUCTION_CLIENT_ADDR", default_value = "127.0.0.1:7100")]
    pub client_addr: SocketAddr,
    /// UDP port on which servers and clients discover servers by broadcast.
    #[arg(long, env = "AUCTION_DISCOVERY_PORT", default_value_t = 7946)]
    pub discovery_port: u16,
    /// Where to broadcast `Discover` (repeatable). Default: the subnet broadcast address of
    /// every local IPv4 interface. `255.255.255.255` needs a route for it.
    #[arg(long = "broadcast", env = "AUCTION_BROADCAST", value_delimiter = ',')]
    pub broadcast: Vec<std::net::IpAddr>,
    /// Do not broadcast at all (use --join).
    #[arg(long, env = "AUCTION_NO_BROADCAST")]
    pub no_broadcast: bool,
    /// Peer addresses of known servers to contact directly (repeatable, or comma-separated).
    #[arg(long, env = "AUCTION_JOIN", value_delimiter = ',')]
    pub join: Vec<SocketAddr>,
    /// Start a new cluster with this node as its first member (the seed's entry-point server),
    /// on its first boot only, and only if no running instance of the cluster answers the
    /// probe (by broadcast and --join). Without it the node joins a cluster it finds.
    #[arg(long, env = "AUCTION_BOOTSTRAP")]
    pub bootstrap: bool,
    /// How long --bootstrap on an empty data directory first looks for a running instance
    /// of the cluster (it refuses to found a second one if one answers).
    #[arg(long, env = "AUCTION_BOOTSTRAP_PROBE", value_parser = parse_duration, default_value = "3s")]
    pub bootstrap_probe: Duration,
    /// How long a new server must stay caught up, as a non-voting learner, before the leader
    /// makes it a voter.
    #[arg(long, env = "AUCTION_PROMOTE_AFTER", value_parser = parse_duration, default_value = "10s")]
    pub promote_after: Duration,
    /// Automatic removal of a server down past the removal grace never takes the voters below
    /// this many (an operator decides below it).
    #[arg(long, env = "AUCTION_MIN_VOTERS", default_value_t = 3)]
    pub min_voters: usize,
    /// A server whose wall clock differs from the median of the cluster's by more than this
    /// does not stand for leader (sequencer time would end auctions early or late).
    #[arg(long, env = "AUCTION_MAX_CLOCK_SKEW", value_parser = parse_duration, default_value = "1s")]
    pub max_clock_skew: Duration,
    /// The cluster's name: nodes and clients of other clusters are ignored.
    #[arg(long, env = "AUCTION_CLUSTER", default_value = "auction")]
    pub cluster: String,
    /// The cluster key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Token for admin operations (default: derived from the cluster key; print it with
    /// `auction-node admin-token`).
    #[arg(long, env = "AUCTION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Interval between failure-detector probes of each member.
    #[arg(long, env = "AUCTION_PROBE_INTERVAL", value_parser = parse_duration, default_value = "1s")]
    pub probe_interval: Duration,
    /// Silence after which a member is suspected.
    #[arg(long, env = "AUCTION_SUSPECT_AFTER", value_parser = parse_duration, default_value = "3s")]
    pub suspect_after: Duration,
    /// Further silence after which a suspected member is declared down.
    #[arg(long, env = "AUCTION_DOWN_AFTER", value_parser = parse_duration, default_value = "3s")]
    pub down_after: Duration,
    /// How long an election round may take before a new one starts.
    #[arg(long, env = "AUCTION_ELECTION_TIMEOUT", value_parser = parse_duration, default_value = "300ms")]
    pub election_timeout: Duration,
    /// How often the leader sends its idle heartbeat to every member (UDP).
    #[arg(long, env = "AUCTION_HEARTBEAT_INTERVAL", value_parser = parse_duration, default_value = "20ms")]
    pub heartbeat_interval: Duration,
    /// A follower that hears nothing from its leader for a random time between this and
    /// twice this starts a pre-vote (failover time); at least 3 heartbeat intervals.
    #[arg(long, env = "AUCTION_LEADER_TIMEOUT", value_parser = parse_duration, default_value = "120ms")]
    pub leader_timeout: Duration,
    /// When to fsync the write-ahead log.
    #[arg(long, env = "AUCTION_FSYNC", value_enum, default_value = "always")]
    pub fsync: FsyncArg,
    /// Serve Prometheus metrics over HTTP on this address.
    #[arg(long, env = "AUCTION_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Most client connections at once.
    #[arg(long, env = "AUCTION_MAX_CLIENTS", default_value_t = 1024)]
    pub max_clients: usize,
    /// Close client connections idle for this long.
    #[arg(long, env = "AUCTION_CLIENT_IDLE", value_parser = parse_duration, default_value = "10m")]
    pub client_idle: Duration,
    /// Close a client connection that has not said Hello this long after it was accepted.
    #[arg(long, env = "AUCTION_HELLO_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub hello_timeout: Duration,
    /// Most client connections from one IP address at once.
    #[arg(long, env = "AUCTION_MAX_CLIENTS_PER_IP", default_value_t = 128)]
    pub max_clients_per_ip: usize,
}

/// Flags of `auction-node dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of servers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub nodes: u16,
    /// First peer port; server i uses base+i for peers and base+100+i for clients.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1024..=65000))]
    pub base_port: u16,
    /// Discovery port.
    #[arg(long, default_value_t = 7946)]
    pub discovery_port: u16,
    /// Keep the data directories under this path instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// fsync policy of the servers.
    #[arg(long, value_enum, default_value = "always")]
    pub fsync: FsyncArg,
}

/// Parses `300ms`, `1s`, `5m`, `2h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 300ms, 1s, 5m)"))?;
    if d.is_zero() {
        return Err("a duration must be positive".to_string());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "auction-node",
            "run",
            "--data-dir",
            "/tmp/x",
            "--bootstrap",
            "--join",
            "10.0.0.1:7000,10.0.0.2:7000",
            "--fsync",
            "never",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("run") };
        assert!(args.bootstrap);
        assert_eq!(args.join.len(), 2);
        assert_eq!(args.fsync, FsyncArg::Never);
        assert_eq!(args.probe_interval, Duration::from_secs(1));
    }
}
