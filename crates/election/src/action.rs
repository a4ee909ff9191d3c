//! Outputs of the election core.

use auction_proto::msg::peer::ElectionMsg;
use auction_proto::{NodeId, Term};

/// Something the driver must do, drained with [`crate::Election::poll_action`] in order.
///
/// Ordering contract: a [`Action::PersistTerm`] must be durable before the driver carries out
/// any action queued after it (sends and notifications depend on the persisted vote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store `(term, accepted)` durably (see [`crate::PersistentState`]) before anything later.
    PersistTerm {
        /// The node's new term.
        term: Term,
        /// The leader it accepted in `term`, if any.
        accepted: Option<NodeId>,
    },
    /// Send `msg` to the member `to` (the node's ring successor).
    Send {
        /// Receiver.
        to: NodeId,
        /// The election message.
        msg: ElectionMsg,
    },
    /// This node is the leader of `term`: a majority of the configuration accepted it.
    /// It may sequence only after the ordering layer's view change has gathered a majority.
    Elected {
        /// The term led.
        term: Term,
        /// This node.
        leader: NodeId,
        /// The members that accepted it (a majority of the configuration).
        participants: Vec<NodeId>,
    },
    /// `leader` is the only node that can lead `term`; expect its view change. A hint: the
    /// leader's authority comes from its majority, which this node cannot see.
    FollowLeader {
        /// The term.
        term: Term,
        /// The leader.
        leader: NodeId,
    },
    /// The leader this node had (itself or another) is superseded: `term` is newer.
    StepDown {
        /// The newer term.
        term: Term,
    },
}
