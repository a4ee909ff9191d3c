//! `auction-bench`: drives a cluster as real clients do (the client protocol over TCP) and
//! reports requests/s, accepted/s, latency percentiles (HDR histogram) and the longest gap
//! between committed answers; optionally starts a local 3-node cluster, stops its leader
//! mid-run (SIGKILL or SIGTERM), and runs the same load, leader stop included, against a
//! 3-member etcd cluster (feature `etcd`). Method and results: docs/performance.md.

#![forbid(unsafe_code)]

mod client;
mod cluster;
#[cfg(feature = "etcd")]
mod etcd;
mod load;
mod output;
mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use tokio::time::Instant;

use crate::cluster::{LocalCluster, LocalConfig};
use crate::load::Shape;
use crate::stats::{Failover, Kill, Merged, Summary, Window, loadavg};

/// Load generator for the auction cluster (and etcd, for comparison).
#[derive(Debug, Parser)]
#[command(
    name = "auction-bench",
    version,
    after_help = "Examples:\n  \
        # one-command run: start 3 local nodes (fsync on), 64 clients, 10 s after 2 s warm-up:\n  \
        auction-bench --local --clients 64\n\n  \
        # the comparison table (needs --features etcd and scripts/etcd-cluster.sh start DIR):\n  \
        auction-bench --local --backend auction,etcd --sweep 1,16,64,256\n\n  \
        # failover: kill -9 the leader 5 s into the run:\n  \
        auction-bench --local --clients 16 --kill-leader-after 5s\n\n  \
        # failover, ours and etcd alternated, kill -9 and SIGTERM, 10 runs of each:\n  \
        auction-bench --local --backend auction,etcd --etcd-dir DIR --duration 8s \\\n      \
        --kill-leader-after 3s --leader-signal kill,term --repeat 10"
)]
struct Args {
    /// Client addresses of a running cluster.
    #[arg(long, value_delimiter = ',', conflicts_with = "local")]
    servers: Vec<SocketAddr>,
    /// Start a local 3-node cluster from the `auction-node` next to this binary; stop it at
    /// the end.
    #[arg(long)]
    local: bool,
    /// The `auction-node` executable for --local (default: next to this binary).
    #[arg(long, requires = "local")]
    node_bin: Option<PathBuf>,
    /// Keep the local cluster's data here instead of a temporary directory.
    #[arg(long, requires = "local")]
    data_dir: Option<PathBuf>,
    /// fsync policy of the local servers (`always` is the only honest headline).
    #[arg(long, value_enum, default_value = "always")]
    fsync: Fsync,
    /// Extra argument for every local `auction-node run` (repeatable), e.g.
    /// `--node-arg=--suspect-after=100ms`.
    #[arg(long = "node-arg", allow_hyphen_values = true, requires = "local")]
    node_args: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Auctions (etcd: keys) the clients bid on.
    #[arg(long, default_value_t = 64)]
    auctions: usize,
    /// Warm-up before measuring.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    warmup: Duration,
    /// Measured time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Stop the leader (`kill -9` unless --leader-signal says otherwise) this long into the
    /// measured window. Ours needs --local, etcd needs --etcd-dir.
    #[arg(long, value_parser = humantime::parse_duration)]
    kill_leader_after: Option<Duration>,
    /// How --kill-leader-after stops the leader: `kill` (SIGKILL, as `kill -9`) or `term`
    /// (SIGTERM, a graceful stop: our node and etcd both hand the leadership over before
    /// they exit). Several alternate, each with every backend.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kill",
        requires = "kill_leader_after"
    )]
    leader_signal: Vec<LeaderSignal>,
    /// Run everything (client counts × leader signals × backends) this many times, in that
    /// order, so backends alternate. After a leader stop the next run of that backend gets a
    /// whole cluster: ours a fresh local one, etcd the stopped member restarted.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// After the run, kill every server, restart them on their data, and report how long each
    /// takes to serve a read at the applied seq it had (--local only).
    #[arg(long, requires = "local")]
    restart: bool,
    /// Backends to run, one after the other, with the same shape.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "auction")]
    backend: Vec<Backend>,
    /// Client counts to run one after the other (overrides --clients).
    #[arg(long, value_delimiter = ',', conflicts_with = "kill_leader_after")]
    sweep: Vec<usize>,
    /// etcd client endpoints (the ones scripts/etcd-cluster.sh starts).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793"
    )]
    etcd_endpoints: Vec<String>,
    /// The directory `scripts/etcd-cluster.sh start DIR` keeps its members' pid files in: with
    /// --kill-leader-after, etcd's leader is found over the maintenance API and stopped by its
    /// pid (only a process that is that member of DIR), and restarted after the run.
    #[arg(long)]
    etcd_dir: Option<PathBuf>,
    /// The script that restarts a stopped etcd member (`SCRIPT start DIR`).
    #[arg(long, default_value = "scripts/etcd-cluster.sh")]
    etcd_script: PathBuf,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Fsync {
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// Our cluster, over the client protocol.
    Auction,
    /// etcd v3: one transaction per bid (needs the `etcd` feature).
    Etcd,
}

/// How a leader is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LeaderSignal {
    /// SIGKILL (`kill -9`): a crash.
    Kill,
    /// SIGTERM: a graceful stop.
    Term,
}

impl LeaderSignal {
    /// The signal's name, for the report.
    fn name(self) -> &'static str {
        match self {
            Self::Kill => "SIGKILL",
            Self::Term => "SIGTERM",
        }
    }
}

/// Longest warm-up plus measured time accepted: a day (absurd values would overflow the
/// clock arithmetic).
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

fn main() -> std::process::ExitCode {
    match bench(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench(args: Args) -> anyhow::Result<()> {
    if args.clients == 0 || args.auctions == 0 || args.repeat == 0 || args.sweep.contains(&0) {
        bail!("--clients, --auctions, --repeat and --sweep need positive numbers");
    }
    if args.backend.contains(&Backend::Auction) && args.servers.is_empty() && !args.local {
        bail!("give --servers ADDR,... (a running cluster) or --local");
    }
    if args.warmup + args.duration > MAX_RUN {
        bail!("--warmup plus --duration must stay within {}", humantime::format_duration(MAX_RUN));
    }
    if args.kill_leader_after.is_some_and(|k| k >= args.duration) {
        bail!("--kill-leader-after must fall inside the measured --duration");
    }
    if args.kill_leader_after.is_some() && args.restart {
        bail!("--restart measures every server at the seq it had; not after --kill-leader-after");
    }
    if args.kill_leader_after.is_some() && args.backend.contains(&Backend::Auction) && !args.local {
        bail!("--kill-leader-after with the auction backend needs --local (it stops by pid)");
    }
    if args.backend.contains(&Backend::Etcd) && !cfg!(feature = "etcd") {
        bail!("this auction-bench was built without the etcd backend: cargo build --features etcd");
    }
    if args.kill_leader_after.is_some()
        && args.backend.contains(&Backend::Etcd)
        && args.etcd_dir.is_none()
    {
        bail!("--kill-leader-after with the etcd backend needs --etcd-dir DIR (its pid files)");
    }
    // One thread: every client waits for its answer, so the load generator's work per request
    // is small, and a worker pool only added cross-thread wake-ups (futex, work stealing) that
    // took CPU from the servers on this 2-core machine. Both backends run on it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        // Ending this future drops the local cluster, which kills its servers.
        tokio::select! {
            r = run(args) => r,
            r = interrupted() => r,
        }
    })
}

async fn interrupted() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
        _ = hangup.recv() => {}
    }
    bail!("interrupted; servers stopped")
}

/// The report: every run's summary, the leader stops per backend and signal, plus the restart
/// measurement.
#[derive(Debug, serde::Serialize)]
struct Report {
    runs: Vec<Summary>,
    failover: Vec<Failover>,
    fsync: bool,
    node_args: Vec<String>,
    /// The highest applied seq of the local servers after the runs (log entries, bids and
    /// setup alike).
    applied: Option<u64>,
    restart_ms: Option<Vec<f64>>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let exe = match &args.node_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .join("auction-node"),
    };
    // Started before the first run of our backend, and again after a run that stopped one of
    // its servers; dropping it kills its servers.
    let mut local: Option<LocalCluster> = None;
    let mut started = 0;
    let counts = if args.sweep.is_empty() { vec![args.clients] } else { args.sweep.clone() };
    // Without a leader stop the signal plays no part: one pass.
    let signals = if args.kill_leader_after.is_some() {
        args.leader_signal.clone()
    } else {
        vec![LeaderSignal::Kill]
    };
    let mut report = Report {
        runs: Vec::new(),
        failover: Vec::new(),
        fsync: args.fsync == Fsync::Always,
        node_args: args.node_args.clone(),
        applied: None,
        restart_ms: None,
    };
    for _ in 0..args.repeat {
        for &clients in &counts {
            for &signal in &signals {
                for &backend in &args.backend {
                    // A cluster that lost a server does not run again, nor share the CPU
                    // with etcd's run.
                    if local.as_ref().is_some_and(|c| !c.is_whole()) {
                        local = None;
                    }
                    if backend == Backend::Auction && args.local && local.is_none() {
                        local = Some(start_local(&args, &exe, started).await?);
                        started += 1;
                    }
                    let shape = Shape {
                        clients,
                        auctions: args.auctions,
                        warmup: args.warmup,
                        duration: args.duration,
                    };
                    let s = match backend {
                        Backend::Auction => run_auction(&args, &mut local, &shape, signal).await?,
                        Backend::Etcd => run_etcd(&args, &shape, signal).await?,
                    };
                    if !args.json {
                        output::progress(&s);
                    }
                    report.runs.push(s);
                }
            }
        }
    }
    report.failover = stats::failovers(&report.runs);
    if let Some(c) = local.as_ref() {
        report.applied = c.reports().await.iter().map(|(_, r)| r.applied.0).max();
    }
    if args.restart {
        if let Some(c) = local.as_mut() {
            let times = c.restart_all(Duration::from_secs(60)).await?;
            report.restart_ms = Some(times.iter().map(|d| d.as_secs_f64() * 1000.0).collect());
        }
    }
    if args.json {
        output::json(&report)?;
    } else {
        output::table(&report);
    }
    Ok(())
}

/// Starts the `n`-th local cluster of this invocation (with --data-dir, the second and later
/// ones keep their data in `DIR/cluster-N`, so each is fresh).
async fn start_local(args: &Args, exe: &Path, n: usize) -> anyhow::Result<LocalCluster> {
    let data_dir = args
        .data_dir
        .as_ref()
        .map(|d| if n == 0 { d.clone() } else { d.join(format!("cluster-{}", n + 1)) });
    let config = LocalConfig {
        exe: exe.to_path_buf(),
        data_dir,
        fsync: args.fsync == Fsync::Always,
        node_args: args.node_args.clone(),
    };
    LocalCluster::start(config).await
}

async fn run_auction(
    args: &Args,
    local: &mut Option<LocalCluster>,
    shape: &Shape,
    signal: LeaderSignal,
) -> anyhow::Result<Summary> {
    let load_start = loadavg();
    let servers = local.as_ref().map_or_else(|| args.servers.clone(), |c| c.client_addrs());
    let servers = servers.as_slice();
    let tag = run_tag();
    let auctions = load::open_auctions(servers, &tag, shape.auctions).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<Window>();
    let killer = async {
        let (Some(after), Some(cluster)) = (args.kill_leader_after, local.as_mut()) else {
            return Ok::<_, anyhow::Error>(None);
        };
        let Ok(window) = rx.await else { return Ok(None) };
        tokio::time::sleep_until(window.start + after).await;
        let i = cluster.leader().await.context("no leader to stop")?;
        // The time first: answers the leader sent just before the signal must not count as
        // answers after it (and the signal does not wait for the process to be reaped).
        let at = Instant::now();
        cluster.stop(i, signal)?;
        Ok(Some((at, cluster.servers[i].name.clone())))
    };
    let clients = load::run(servers, &tag, &auctions, shape, |w| {
        let _ = tx.send(w);
    });
    let (done, killed) = tokio::join!(clients, killer);
    let (done, killed) = (done?, killed?);
    let rss = local
        .as_ref()
        .map(|c| c.pids().into_iter().filter_map(cluster::rss_kib).collect())
        .unwrap_or_default();
    let merged = Merged::new(done.window, done.recorders);
    let mut s = summarize("auction", shape, &merged, done.retries);
    s.kill = killed.map(|(at, server)| kill_summary(&merged, at, server, signal));
    s.rss_kib = rss;
    s.loadavg = [load_start, loadavg()];
    Ok(s)
}

#[cfg(feature = "etcd")]
async fn run_etcd(args: &Args, shape: &Shape, signal: LeaderSignal) -> anyhow::Result<Summary> {
    let load_start = loadavg();
    let members = match (args.kill_leader_after, &args.etcd_dir) {
        (Some(after), Some(dir)) => {
            Some((after, etcd::Members::new(dir, &args.etcd_script, &args.etcd_endpoints)?))
        }
        _ => None,
    };
    // Three members before the stop, as ours has (a member down since an interrupted run
    // would leave no majority after it).
    if let Some((_, members)) = members.as_ref() {
        members.start().await?;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<Window>();
    let killer = async {
        let Some((after, members)) = members.as_ref() else {
            return Ok::<_, anyhow::Error>(None);
        };
        let Ok(window) = rx.await else { return Ok(None) };
        tokio::time::sleep_until(window.start + *after).await;
        let leader = members.leader().await?;
        // The time first, as for ours.
        let at = Instant::now();
        members.stop(&leader, signal)?;
        Ok(Some((at, leader)))
    };
    let tag = run_tag();
    let clients = etcd::run(&args.etcd_endpoints, &tag, shape, |w| {
        let _ = tx.send(w);
    });
    let (done, killed) = tokio::join!(clients, killer);
    // The stopped member comes back before anything else happens, the run's own error
    // included, so the cluster is whole for the next run and after the bench.
    let restarted = match (&killed, members.as_ref()) {
        (Ok(Some((_, leader))), Some((_, members))) => members.restart(leader).await,
        _ => Ok(()),
    };
    let (done, killed) = (done?, killed?);
    restarted?;
    let merged = Merged::new(done.window, done.recorders);
    let mut s = summarize("etcd", shape, &merged, done.retries);
    s.kill = killed.map(|(at, leader)| kill_summary(&merged, at, leader.name, signal));
    s.loadavg = [load_start, loadavg()];
    Ok(s)
}

#[cfg(not(feature = "etcd"))]
async fn run_etcd(_: &Args, _: &Shape, _: LeaderSignal) -> anyhow::Result<Summary> {
    bail!("built without the etcd feature")
}

/// What a run's leader stop at `at` measured.
fn kill_summary(merged: &Merged, at: Instant, server: String, signal: LeaderSignal) -> Kill {
    Kill {
        at_ms: merged.ms_into_window(at),
        server,
        signal: signal.name().to_string(),
        to_first_commit_ms: merged.first_commit_sent_after(at).map(|d| d.as_secs_f64() * 1000.0),
        left_ms: merged.ms_left(at),
    }
}

fn summarize(backend: &str, shape: &Shape, m: &Merged, retries: u64) -> Summary {
    let secs = shape.duration.as_secs_f64().max(1e-9);
    Summary {
        backend: backend.to_string(),
        clients: shape.clients,
        auctions: shape.auctions,
        duration_s: shape.duration.as_secs_f64(),
        warmup_s: shape.warmup.as_secs_f64(),
        completed: m.completed,
        accepted: m.accepted,
        requests_per_s: m.completed as f64 / secs,
        accepted_per_s: m.accepted as f64 / secs,
        latency: m.latency.clone(),
        max_gap_ms: m.max_gap().as_secs_f64() * 1000.0,
        retries,
        kill: None,
        rss_kib: Vec::new(),
        loadavg: [0.0, 0.0],
    }
}

/// A short tag that keeps names unique across runs against one cluster.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{:x}", nanos ^ std::process::id())
}
