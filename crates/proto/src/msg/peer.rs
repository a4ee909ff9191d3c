//! Traffic between members: failure detection, election and ordering.

use serde::{Deserialize, Serialize};

use super::discovery::{DiscoveryMsg, NodeInfo};
use super::log::{Command, LogEntry};
use crate::{LogPosition, NodeId, Seq, Term, Timestamp};

/// Everything an authenticated peer frame can carry, grouped by the core that handles it.
/// New variants go at the end (postcard encodes the variant index).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerBody {
    /// Discovery (also sent over UDP broadcast).
    Discovery(DiscoveryMsg),
    /// Failure detection.
    Membership(MembershipMsg),
    /// Leader election.
    Election(ElectionMsg),
    /// Total-order multicast.
    Ordering(OrderingMsg),
}

/// A member's state as the failure detector sees it.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Heard from recently.
    Alive,
    /// Silent for the suspicion timeout; may still refute.
    Suspect,
    /// Declared failed.
    Down,
    /// Left gracefully.
    Left,
}

/// A piggy-backed rumour about one member (SWIM-style dissemination).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdate {
    /// The member.
    pub info: NodeInfo,
    /// What the sender believes.
    pub state: MemberState,
}

/// Failure-detection messages.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipMsg {
    /// A direct probe (heartbeat).
    Ping {
        /// Probe number, echoed in the `Ack`.
        probe: u64,
        /// Piggy-backed rumours.
        updates: Vec<MemberUpdate>,
        /// The sender's wall clock when it sent the ping (receivers measure clock skew).
        wall: Timestamp,
    },
    /// The answer to a `Ping`, or to a `PingReq` on behalf of `target`.
    Ack {
        /// The probe answered.
        probe: u64,
        /// The member this ack is about (the sender itself for a direct ack).
        target: NodeId,
        /// Piggy-backed rumours.
        updates: Vec<MemberUpdate>,
    },
    /// "Probe `target` for me": an indirect probe through another member.
    PingReq {
        /// The asker's probe number.
        probe: u64,
        /// The member to probe.
        target: NodeId,
    },
}

/// A candidate in an election: more up to date logs win, then the larger node id.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// Position of the candidate's last log entry.
    pub last_log: LogPosition,
    /// The candidate.
    pub node: NodeId,
}

/// LeLann-Chang-Roberts ring election messages.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionMsg {
    /// The circulating token: the best candidate seen so far in `term`.
    Token {
        /// The election's term.
        term: Term,
        /// The best candidate so far.
        candidate: Candidate,
        /// The members the token has passed through (bounded by the configuration size).
        visited: Vec<NodeId>,
    },
    /// The winner, circulated once around the ring.
    Elected {
        /// The term.
        term: Term,
        /// The leader.
        leader: NodeId,
        /// The members that took part (the winner's token's path).
        participants: Vec<NodeId>,
    },
    /// The leader's idle heartbeat, sent over UDP every heartbeat interval to every member of
    /// its configuration, so that followers notice a dead leader within a few hundred
    /// milliseconds whatever its ordering traffic does.
    Heartbeat {
        /// The leader's term.
        term: Term,
    },
    /// Pre-vote request (Raft's PreVote): "I lost the leader; would you take part in an
    /// election for `term`?" Neither side changes its term for it.
    PreVote {
        /// The term the sender would start (its term + 1).
        term: Term,
        /// The sender's last log position (the receiver grants only if it is at least its own).
        last_log: LogPosition,
    },
    /// The leader of `term` hands its leadership to `nominee` (Raft's `TimeoutNow`, sent to
    /// every member): the nominee starts the election for `term + 1` at once, skipping the
    /// pre-vote; the others stand aside in that term (their candidates are demoted), so the
    /// nominee wins if it is as up to date as a majority. Only heeded from the leader a node
    /// follows, in its current term.
    TimeoutNow {
        /// The leader's term.
        term: Term,
        /// The voter to take over.
        nominee: NodeId,
    },
    /// The answer to a `PreVote`.
    PreVoteReply {
        /// The term asked for.
        term: Term,
        /// Whether the receiver also lost its leader and the sender's log is up to date.
        granted: bool,
        /// The answering node's current term.
        current: Term,
    },
}

/// Total-order multicast messages (sequencer, hold-back queue, view change, state transfer).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderingMsg {
    /// Commands forwarded to the leader for sequencing.
    Propose {
        /// The term the sender believes current.
        term: Term,
        /// The commands, in submission order.
        commands: Vec<Command>,
    },
    /// Sequenced entries from the leader, with its commit point piggy-backed.
    Order {
        /// The leader's term.
        term: Term,
        /// The leader's entry just before `entries[0]` (seq and term; `(0, 0)` on the empty
        /// log), as Raft's `prevLogIndex`/`prevLogTerm`. A member in sync with the leader up
        /// to `prev.seq` or beyond takes the entries only if its entry there (or its snapshot
        /// point) has this term, else it asks to be synced again; a member in sync up to less
        /// holds them back (merged `Order`s keep the first one's `prev`).
        prev: LogPosition,
        /// Contiguous entries.
        entries: Vec<LogEntry>,
        /// Highest committed seq.
        commit: Seq,
    },
    /// "I have stored everything up to `stored`" (durably, if durability is on).
    Ack {
        /// The term acknowledged.
        term: Term,
        /// Highest contiguous stored seq.
        stored: Seq,
    },
    /// "Please resend `from..=to`": a gap in the hold-back queue.
    Nack {
        /// The term.
        term: Term,
        /// First missing seq.
        from: Seq,
        /// Last missing seq.
        to: Seq,
    },
    /// The leader's commit point (also sent alone as a heartbeat).
    Commit {
        /// The leader's term.
        term: Term,
        /// Highest committed seq.
        commit: Seq,
    },
    /// A new leader asks for the members' log state before sequencing (view change).
    StartView {
        /// The new term.
        term: Term,
        /// Highest seq the new leader knows committed.
        commit: Seq,
    },
    /// A member's log state for the view change: its uncommitted suffix.
    LogState {
        /// The new term.
        term: Term,
        /// The member's last log position.
        last: LogPosition,
        /// The member's commit point.
        commit: Seq,
        /// Entries after `commit`.
        suffix: Vec<LogEntry>,
    },
    /// The new leader's chosen log, to be adopted before new entries arrive.
    NewView {
        /// The new term.
        term: Term,
        /// The first seq of `entries`.
        from: Seq,
        /// The leader's entry at `from - 1` (seq and term; `(0, 0)` on the empty log): the
        /// member adopts the view only if its own log holds this entry, or covers it by a
        /// snapshot, so the part of its log before `from` is known to equal the leader's
        /// (Raft's `prevLogIndex`/`prevLogTerm`). Otherwise it asks to be synced again.
        prev: LogPosition,
        /// The chosen entries from `from` on.
        entries: Vec<LogEntry>,
        /// Highest committed seq.
        commit: Seq,
    },
    /// A piece of a snapshot for a lagging or new member (state transfer).
    Snapshot {
        /// The leader's term.
        term: Term,
        /// The last entry the snapshot covers.
        last_included: LogPosition,
        /// Voting members at that point.
        members: Vec<NodeInfo>,
        /// Byte offset of `chunk` within the snapshot.
        offset: u64,
        /// Snapshot bytes.
        chunk: Vec<u8>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// The sender is not the leader of `term`; try `leader`.
    NotLeader {
        /// The sender's term.
        term: Term,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
}
