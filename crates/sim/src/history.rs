//! What the simulation records for the checker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::log::{LogEntry, Operation, RequestId};
use auction_proto::{AuctionId, NodeId, Seq, Term};

/// One client operation's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Still waiting at the end of the run.
    Pending,
    /// Answered: applied at `seq` with `outcome`.
    Ok {
        /// Where.
        seq: Seq,
        /// The answer.
        outcome: Outcome,
    },
    /// Refused for certain (nothing changed) on every attempt, and given up.
    Failed,
}

/// What a server incarnation did to its state, in order.
#[allow(clippy::large_enum_variant)] // recorded once per applied entry; boxing buys nothing
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied this committed entry.
    Entry(LogEntry),
    /// Replaced its state with a snapshot up to this seq (state transfer).
    Installed(Seq),
}

/// One client write, from invocation to its final result.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The request.
    pub request: RequestId,
    /// What it asked.
    pub op: Operation,
    /// When it was invoked (virtual time since start).
    pub at: Duration,
    /// When it got its result.
    pub done_at: Option<Duration>,
    /// Attempts (1 + retries after timeouts).
    pub attempts: u32,
    /// Its result.
    pub result: OpResult,
}

/// One client read: the applied seq of the state read and what it showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The client.
    pub client: usize,
    /// The server's applied seq.
    pub applied: Seq,
    /// The auction read.
    pub auction: AuctionId,
    /// The reading client's bidder name (the server shows it "you" as the leader when the
    /// session is logged in, an alias otherwise).
    pub reader: auction_proto::msg::auction::BidderName,
    /// Its `(price minor units, leader, bids)`, if it existed.
    pub view: Option<(u64, Option<String>, u32)>,
}

/// Everything the checker looks at.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Client writes.
    pub invocations: Vec<Invocation>,
    /// Client reads, in time order.
    pub reads: Vec<Read>,
    /// Applied entries per `(server index, incarnation)`, in apply order, after the restore
    /// point recorded in `restored`.
    pub applied: BTreeMap<(usize, u64), Vec<Applied>>,
    /// The applied seq each `(server, incarnation)` started from.
    pub restored: BTreeMap<(usize, u64), Seq>,
    /// Who led (finished its view change) in which term.
    pub leaders: BTreeMap<Term, BTreeSet<NodeId>>,
    /// Commits observed without a majority of the configuration holding the entry durably.
    pub unbacked_commits: Vec<(Seq, usize, usize)>,
    /// Final state snapshots of the servers up at the end: `(server, applied, bytes)`.
    pub final_states: Vec<(usize, Seq, Vec<u8>)>,
    /// When the faults stopped (virtual time since start), and the liveness bound after it.
    pub heal_at: Duration,
    /// The bound within which pending requests must complete after the heal.
    pub liveness_bound: Duration,
    /// Whether a majority of servers was up after the heal.
    pub majority_up: bool,
}
