//! Builders shared by the ordering core's test files (each file is its own crate, so not
//! every one uses every helper).

#![allow(dead_code)]

use auction_ordering::{Action, Ordering};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::{Incarnation, NodeId};

/// Node `i`'s id.
pub(crate) fn node(i: u8) -> NodeId {
    NodeId::from_bytes([i; 16])
}

/// Node `i`'s addresses (10.0.0.i, ports 7000 and 7001).
pub(crate) fn info(i: u8) -> NodeInfo {
    NodeInfo {
        node: node(i),
        incarnation: Incarnation(1),
        peer_addr: ([10, 0, 0, i], 7000).into(),
        client_addr: ([10, 0, 0, i], 7001).into(),
    }
}

/// Every queued action, in order.
pub(crate) fn drain(core: &mut Ordering) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}
