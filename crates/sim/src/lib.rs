//! Deterministic whole-cluster simulation of the real server core
//! ([`auction_server::Server`], which composes [`auction_replica::Replica`]) with a checker of
//! the recorded history.
//!
//! # What runs
//!
//! [`run_seed`] builds N servers (server 0 bootstraps, the others join through discovery),
//! each the real server core (sessions, admission, the seal, batching, the replica), wrapped
//! in [`SimServer`] adapters on the seeded
//! [`auction_testkit::Network`], and clients that register, open auctions, bid and read.
//! Each server has a simulated disk: `Store`s become durable only after a simulated fsync;
//! a crash keeps the durable content plus a random prefix of the writes in flight, and a
//! restart is `Replica::new` from exactly that, with a new incarnation. During the fault
//! phase the schedule drops, delays, duplicates and reorders messages, partitions
//! (symmetric and one-way), crashes and restarts servers and jumps their wall clocks; then
//! every fault stops, crashed servers restart, and a heal phase runs.
//!
//! Servers talk through the real [`auction_proto::PeerSeal`] (a fixed test key): the wire
//! carries sealed bytes and the channel, and a server opens each frame as the node does
//! (refusals counted, `StaleReceiver` answered with `handle_misaddressed`, an adopted
//! instance persisted). An attacker without the key captures frames and injects copies and
//! garbage anywhere (see [`AttackStats`]), and the operator wipes a data directory and
//! restarts the server with its original flags (a new node id; `Start::Bootstrap` for the
//! founder, which must refuse).
//!
//! Clients speak the client protocol: encoded frames over simulated connections to the server
//! core (`Hello` with their secret id and the newest seq they have seen, `Login`, then one
//! request at a time with a per-client `RequestNo`); on a timeout or a lost connection they
//! retry the same request number at another server on a new session, so the checker sees the
//! real sessions' exactly-once, admission and refusals (a server that has applied less than
//! the client has seen answers `Behind`). Everything follows from one `u64`.
//!
//! # What is checked
//!
//! [`check`] reports each failed property by name; see [`Violation::property`].
//!
//! # Replay
//!
//! `SEED=n cargo test -p auction-sim --test seeds replay -- --nocapture` replays one seed
//! with a message trace; `SEEDS=a..b` runs many. A failing seed prints that command.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adversary;
mod checker;
mod disk;
mod history;
mod run;
mod server;

use std::time::Duration;

pub use adversary::{AttackStats, Injected, Tally};
pub use checker::{Violation, check};
pub use disk::Disk;
pub use history::{Applied, History, Invocation, OpResult, Read};
pub use server::{Meta, SimServer, Wire};

/// A planted bug, to show that the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// No bug.
    None,
    /// Clients are acknowledged when the leader sequences, before a majority stores.
    AckOnSequence,
    /// The disk confirms writes at once and loses them on a crash (fsync lies).
    LyingDisk,
    /// Servers serve reads older than what the client has seen: the session ignores the seq
    /// the client has seen and reads skip the readiness gate (a fault flag of the server core).
    StaleReads,
    /// The session keys requests by the connection too, so a retry after a failover is a new
    /// request (a fault flag of the server core): exactly-once across failover is lost.
    PerConnectionIds,
    /// A new leader skips the view change and keeps its own log. Masked by the election's
    /// vote rule (a winner holds every committed entry), so no run should catch it alone.
    SkipViewChange,
    /// Voters accept a leader without checking its log is as up to date as theirs. Masked by
    /// the view change (the winner adopts the best log of a majority) except while logs hold
    /// different configurations.
    SkipVoteCheck,
    /// Both of the above: a new leader takes over with whatever log it has, and entries
    /// committed under earlier leaders that it lacks are overwritten.
    LeaderKeepsOwnLog,
}

/// A scripted fault, at a fixed time of the fault phase (servers by index; server 0 founds
/// the cluster and leads first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptOp {
    /// Drop every message from one server to another (one way).
    Block {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
    },
    /// Crash a server (its disk keeps a random part of what was not synced).
    Crash(usize),
    /// Restart a crashed server from its disk.
    Restart(usize),
    /// End every partition and block.
    Heal,
    /// The operator asks the leader to step down.
    StepDownLeader,
    /// Move a server's wall clock by `ms` milliseconds (it keeps running from there).
    Skew {
        /// The server.
        server: usize,
        /// By how much.
        ms: i64,
    },
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Everything random derives from it.
    pub seed: u64,
    /// Servers (3 or 5).
    pub servers: usize,
    /// Clients.
    pub clients: usize,
    /// Whether the fault phase injects faults.
    pub faults: bool,
    /// Length of the fault phase (virtual time).
    pub fault_time: Duration,
    /// Length of the heal phase (virtual time); the liveness bound is a second less.
    pub heal_time: Duration,
    /// Whether an operator asks the leader to step down now and then during the fault phase
    /// (drawn from a random stream of its own, so the other faults of a seed stay the same).
    pub step_downs: bool,
    /// Faults at fixed times (from the start), in addition to the random ones.
    pub script: Vec<(Duration, ScriptOp)>,
    /// Whether an attacker without the key captures frames and injects copies and garbage
    /// (from a random stream of its own).
    pub adversary: bool,
    /// Whether the operator now and then wipes a server's data directory and restarts it
    /// with its original flags (from a random stream of its own).
    pub wipes: bool,
    /// A planted bug.
    pub bug: Bug,
    /// Print a message trace to stderr.
    pub trace: bool,
}

impl Options {
    /// The mixed scenario of `seed`: 3 servers, 5 on one seed in eight; faults on most seeds;
    /// operator step-downs on one seed in four; the attacker on every seed; wipes on every
    /// seed with faults.
    pub fn mixed(seed: u64) -> Self {
        Self {
            seed,
            servers: if seed % 8 == 3 { 5 } else { 3 },
            clients: 3,
            faults: seed % 8 != 0,
            fault_time: Duration::from_secs(3),
            heal_time: Duration::from_secs(4),
            step_downs: seed % 4 == 1,
            adversary: true,
            wipes: seed % 8 != 0,
            script: Vec::new(),
            bug: Bug::None,
            trace: false,
        }
    }

    /// A run of 3 servers without random faults and one scripted failure that only the
    /// ordering view change survives: server 2 crashes and bids commit on 0 and 1; then 1
    /// crashes, and as 2 comes back with its old log the operator steps the leader 0 down. The
    /// lagging server 2 is elected (0 runs with a demoted candidate, 1 is down) and must adopt
    /// 0's log in its view change before it sequences, or it overwrites committed entries.
    pub fn lagging_successor(seed: u64) -> Self {
        let s = Duration::from_millis;
        Self {
            servers: 3,
            faults: false,
            fault_time: s(5_000),
            step_downs: false,
            script: vec![
                (s(1_000), ScriptOp::Crash(2)),
                (s(2_000), ScriptOp::Crash(1)),
                (s(3_000), ScriptOp::Restart(2)),
                (s(3_000), ScriptOp::StepDownLeader),
                (s(4_000), ScriptOp::Restart(1)),
            ],
            ..Self::mixed(seed)
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The recorded history.
    pub history: History,
    /// Violated properties (empty: the run passed).
    pub violations: Vec<Violation>,
    /// What the attacker and the operator faults did.
    pub attacks: AttackStats,
}

/// Runs one seed and checks its history.
pub fn run_seed(opts: Options) -> Outcome {
    let heal = opts.heal_time;
    let (mut history, live, attacks) = run::Sim::new(opts).run();
    history.liveness_bound = heal.saturating_sub(Duration::from_secs(1));
    let mut violations = check(&history);
    violations.extend(live.into_iter().map(|(property, detail)| Violation { property, detail }));
    Outcome { history, violations, attacks }
}

/// The command that replays `seed` with a trace.
pub fn replay_command(seed: u64) -> String {
    format!("SEED={seed} cargo test -p auction-sim --test seeds replay -- --nocapture")
}
