//! The crate's one error type.

use auction_proto::{NodeId, Seq, Term};

/// Which bound refused an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// [`crate::OrderingConfig::max_uncommitted`]: the pipelining window is full.
    Uncommitted,
    /// [`crate::OrderingConfig::max_pending`]: too many proposals wait for a leader or for
    /// being seen sequenced.
    Pending,
    /// [`crate::OrderingConfig::max_snapshot_bytes`]: the snapshot is too large.
    SnapshotBytes,
}

/// Why an input was refused. Every variant says whether state changed: none of them do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderingError {
    /// The leader has not heard from a majority recently (or is still changing view after
    /// `unavailable_after`). Nothing changed; retry later or elsewhere.
    #[error("unavailable: the leader of {term:?} cannot reach a majority")]
    Unavailable {
        /// The leader's term.
        term: Term,
    },
    /// Only the leader takes this input. Nothing changed.
    #[error("not the leader of {term:?} (leader: {leader:?})")]
    NotLeader {
        /// This node's term.
        term: Term,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// A bound is reached. Nothing changed.
    #[error("overloaded: {bound:?} bound of {limit} reached")]
    Overloaded {
        /// Which bound.
        bound: Bound,
        /// Its value.
        limit: usize,
    },
    /// A configuration change is still uncommitted; one at a time. Nothing changed.
    #[error("configuration change at {pending:?} is not committed yet")]
    ConfigChangeInProgress {
        /// The uncommitted config entry.
        pending: Seq,
    },
    /// The change does not apply to the configuration (adding a member, removing a stranger,
    /// or a second bootstrap). Nothing changed.
    #[error("configuration change about {node:?} does not apply")]
    InvalidConfigChange {
        /// The node concerned (this node for a bootstrap).
        node: NodeId,
    },
    /// The term is older than this node's. Nothing changed.
    #[error("stale term {term:?}, current is {current:?}")]
    StaleTerm {
        /// The term given.
        term: Term,
        /// This node's term.
        current: Term,
    },
    /// Another leader is already known for this term. Nothing changed.
    #[error("{claimed:?} cannot lead {term:?}: {known:?} does")]
    ConflictingLeader {
        /// The term.
        term: Term,
        /// The leader this node already follows.
        known: NodeId,
        /// The leader announced now.
        claimed: NodeId,
    },
    /// This node may not lead `term`: it is not in the configuration, has none, or restarted in
    /// that term (it may have forgotten what it sequenced). Nothing changed.
    #[error("this node cannot lead {term:?}")]
    CannotLead {
        /// The term.
        term: Term,
    },
    /// `handle_stored` named a store this core never issued or already confirmed. Nothing
    /// changed.
    #[error("unknown store {id}")]
    UnknownStore {
        /// The id given.
        id: u64,
    },
    /// A snapshot must end at an applied entry still in the log. Nothing changed.
    #[error(
        "snapshot at {last_included:?} is not an applied entry in the log (applied {applied:?})"
    )]
    BadSnapshotPoint {
        /// The snapshot point given.
        last_included: Seq,
        /// What the core has delivered.
        applied: Seq,
    },
}
