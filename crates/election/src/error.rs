//! The election's error type.

use auction_proto::{NodeId, Term};

/// Why a message was rejected. Every variant leaves the state unchanged and queues no action,
/// except `StaleTerm`, which a node without a leader answers (see `Election::handle_message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    /// The message belongs to an older term than the node's; ignored (terms only grow).
    #[error("stale election message of {got:?}, current term is {current:?}")]
    StaleTerm {
        /// The message's term.
        got: Term,
        /// The node's term.
        current: Term,
    },
    /// The sender, or this node itself, is not a member of the configuration; ignored.
    #[error("{node:?} is not a member of the configuration")]
    NotMember {
        /// The non-member.
        node: NodeId,
    },
    /// The message's path (`visited` or `participants`) is longer than any legitimate one.
    #[error("election path of {len} nodes exceeds the limit of {limit}")]
    OversizedPath {
        /// Length of the path.
        len: usize,
        /// The limit (twice the configuration size).
        limit: usize,
    },
    /// A `TimeoutNow` not from the leader this node follows in its current term; ignored.
    #[error("leadership hand-over from {from:?}, which is not the leader followed in this term")]
    NotFromLeader {
        /// The sender.
        from: NodeId,
    },
}
