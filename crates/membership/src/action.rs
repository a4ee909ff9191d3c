//! Outputs of the core.

use std::net::SocketAddr;

use auction_proto::NodeId;
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::peer::PeerBody;

/// One output, drained with [`crate::Membership::poll_action`]. Plain data so tests compare
/// them exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `msg` to member `node` at its peer address `addr` (unicast).
    Send {
        /// The receiver (for drivers and test harnesses that route by identity).
        node: NodeId,
        /// Its peer address.
        addr: SocketAddr,
        /// The message; always `PeerBody::Discovery` or `PeerBody::Membership`.
        msg: PeerBody,
    },
    /// Send `msg` to a discovery target: a broadcast address (send with `SO_BROADCAST`) or a
    /// static `--join` address, from [`crate::MembershipConfig::discovery_targets`].
    Broadcast {
        /// The target address.
        to: SocketAddr,
        /// The message (a `Discover`).
        msg: PeerBody,
    },
    /// Something changed in the member table.
    Event(MembershipEvent),
}

/// What the detector suggests. It decides nothing: who counts for quorums is the replicated
/// configuration's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member appeared, or restarted with a higher incarnation and replaced its old self
    /// (its addresses may have changed).
    Joined(NodeInfo),
    /// A `Suspect` or `Down` member was heard from again.
    Alive(NodeId),
    /// A member was silent for the suspicion timeout.
    Suspect(NodeId),
    /// A suspected member stayed silent for the confirmation timeout.
    Down(NodeId),
    /// A member left gracefully.
    Left(NodeId),
}
