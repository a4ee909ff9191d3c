//! Discovery between servers: who is out there, and where.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Incarnation, NodeId, Term};

/// How to reach one server.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its identity.
    pub node: NodeId,
    /// Its current boot.
    pub incarnation: Incarnation,
    /// Where it takes peer traffic.
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "crate::ids::arb_socket_addr()")
    )]
    pub peer_addr: SocketAddr,
    /// Where it takes client connections.
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "crate::ids::arb_socket_addr()")
    )]
    pub client_addr: SocketAddr,
}

/// Discovery messages. They travel in authenticated peer frames, whose envelope carries the
/// cluster id: a frame of another cluster is rejected before its body is read.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiscoveryMsg {
    /// "Who is there?": broadcast on the discovery port, or sent to `--join` addresses.
    Discover {
        /// The sender.
        from: NodeInfo,
    },
    /// "Here I am": the unicast answer to `Discover`, also sent unprompted while re-announcing.
    Announce {
        /// The sender.
        from: NodeInfo,
        /// The leader the sender knows of, if any.
        leader: Option<NodeId>,
        /// The highest term the sender knows.
        term: Term,
        /// How many clients the sender holds (for load balancing).
        clients: u32,
    },
    /// The sender leaves the cluster gracefully.
    Leave {
        /// The leaving node.
        node: NodeId,
        /// Its incarnation.
        incarnation: Incarnation,
    },
}
