//! The ring: configuration members sorted by `NodeId`, minus those believed down.

use std::collections::BTreeSet;
use std::ops::Bound;

use auction_proto::NodeId;

/// The configuration as the election sees it.
///
/// Invariants: `down ⊆ members`; `me ∉ down`.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    me: NodeId,
    members: BTreeSet<NodeId>,
    down: BTreeSet<NodeId>,
}

impl Ring {
    pub(crate) fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Self {
        Self { me, members: members.into_iter().collect(), down: BTreeSet::new() }
    }

    /// Replaces the configuration; beliefs about removed members are forgotten.
    pub(crate) fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        self.members = members.into_iter().collect();
        let members = &self.members;
        self.down.retain(|n| members.contains(n));
    }

    /// Marks `node` down (ignored for non-members and for this node). Returns whether it was
    /// a change.
    pub(crate) fn set_down(&mut self, node: NodeId) -> bool {
        node != self.me && self.members.contains(&node) && self.down.insert(node)
    }

    /// Marks `node` alive again.
    pub(crate) fn set_alive(&mut self, node: NodeId) {
        self.down.remove(&node);
    }

    pub(crate) fn is_member(&self, node: NodeId) -> bool {
        self.members.contains(&node)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The next member after `me` in `NodeId` order, wrapping, that is not believed down.
    /// `None` if every other member is believed down (or there is none).
    pub(crate) fn successor(&self) -> Option<NodeId> {
        let after = self.members.range((Bound::Excluded(self.me), Bound::Unbounded));
        let before = self.members.range(..self.me);
        after.chain(before).copied().find(|n| !self.down.contains(n))
    }

    /// The smallest number of members that is a majority of the configuration.
    pub(crate) fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// Whether the distinct members among `nodes` form a majority (non-members do not count).
    pub(crate) fn is_majority(&self, nodes: &[NodeId]) -> bool {
        let distinct: BTreeSet<_> = nodes.iter().filter(|n| self.members.contains(n)).collect();
        distinct.len() >= self.majority()
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.down.is_subset(&self.members), "down nodes outside the configuration");
        assert!(!self.down.contains(&self.me), "a node never believes itself down");
    }
}
