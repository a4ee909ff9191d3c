//! The ring: configuration members sorted by `NodeId`, minus those believed down or silent.

use std::collections::BTreeSet;
use std::ops::Bound;

use auction_proto::NodeId;

use crate::MAX_MEMBERS;

/// The configuration as the election sees it.
///
/// Invariants: `silent ⊆ members`; `foreign ∩ members = ∅`; `me ∉ down ∪ silent ∪ foreign`;
/// `down` and `foreign` hold at most [`MAX_MEMBERS`] non-members each.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    me: NodeId,
    members: BTreeSet<NodeId>,
    /// Believed down by the failure detector (`handle_down`, until `handle_alive`); members,
    /// and non-members the ring may route through (`foreign`).
    down: BTreeSet<NodeId>,
    /// Leaders this node gave up on after its leader timeout, until it hears from them again:
    /// the failure detector is much slower, and a ring that still routes through the dead
    /// leader cannot elect its successor.
    silent: BTreeSet<NodeId>,
    /// Non-members that passed on a message of the current term (on its path, or its
    /// sender): members of another node's newer configuration, which this node's log lacks.
    /// The ring routes through them too (they count for no majority): a node lacking an
    /// `AddMember(x)` that is `x`'s predecessor would otherwise cut every lap. Forgotten when
    /// the term changes.
    foreign: BTreeSet<NodeId>,
}

impl Ring {
    pub(crate) fn new(me: NodeId, members: impl IntoIterator<Item = NodeId>) -> Self {
        let members = members.into_iter().collect();
        Self {
            me,
            members,
            down: BTreeSet::new(),
            silent: BTreeSet::new(),
            foreign: BTreeSet::new(),
        }
    }

    /// Replaces the configuration; beliefs about removed members are forgotten.
    pub(crate) fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        self.members = members.into_iter().collect();
        let members = &self.members;
        self.down.retain(|n| members.contains(n));
        self.silent.retain(|n| members.contains(n));
        self.foreign.retain(|n| !members.contains(n));
    }

    /// Marks `node` down (ignored for this node, and for a non-member once
    /// [`MAX_MEMBERS`] are held). Returns whether it was a change.
    pub(crate) fn set_down(&mut self, node: NodeId) -> bool {
        let room = self.members.contains(&node) || self.outsiders_down() < MAX_MEMBERS;
        node != self.me && room && self.down.insert(node)
    }

    fn outsiders_down(&self) -> usize {
        self.down.iter().filter(|n| !self.members.contains(n)).count()
    }

    /// `node` passed on a message of the current term: route through it if it is not a
    /// member (bounded; see `foreign`).
    pub(crate) fn note_foreign(&mut self, node: NodeId) {
        let new = node != self.me && !self.members.contains(&node);
        if new && self.foreign.len() < MAX_MEMBERS {
            self.foreign.insert(node);
        }
    }

    /// The term changed: forget the non-members routed through.
    pub(crate) fn clear_foreign(&mut self) {
        self.foreign.clear();
    }

    /// Marks `node` alive again (also no longer silent).
    pub(crate) fn set_alive(&mut self, node: NodeId) {
        self.down.remove(&node);
        self.silent.remove(&node);
    }

    /// Marks the leader `node` silent (ignored for non-members and for this node). Returns
    /// whether it was a change.
    pub(crate) fn set_silent(&mut self, node: NodeId) -> bool {
        node != self.me && self.members.contains(&node) && self.silent.insert(node)
    }

    /// `node` was heard from: no longer silent.
    pub(crate) fn heard(&mut self, node: NodeId) {
        self.silent.remove(&node);
    }

    /// The members other than this node, in ring order.
    pub(crate) fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(|n| *n != self.me)
    }

    /// Whether this node holds no configuration at all (a member just added, before the
    /// configuration reached it).
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn is_member(&self, node: NodeId) -> bool {
        self.members.contains(&node)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The next member (or non-member routed through, see `foreign`) after `me` in `NodeId`
    /// order, wrapping, that is neither believed down nor silent. `None` if every other one
    /// is, or if this node holds no configuration (it relays to every node it knows).
    pub(crate) fn successor(&self) -> Option<NodeId> {
        if self.members.is_empty() {
            return None;
        }
        let ring: BTreeSet<NodeId> = self.members.union(&self.foreign).copied().collect();
        let after = ring.range((Bound::Excluded(self.me), Bound::Unbounded));
        let before = ring.range(..self.me);
        after.chain(before).copied().find(|n| !self.down.contains(n) && !self.silent.contains(n))
    }

    /// The first member of the configuration after `me` (wrapping) that is not in `path` and
    /// not believed down or silent.
    pub(crate) fn next_not_in(&self, path: &[NodeId]) -> Option<NodeId> {
        let after = self.members.range((Bound::Excluded(self.me), Bound::Unbounded));
        let before = self.members.range(..self.me);
        after
            .chain(before)
            .copied()
            .find(|n| !path.contains(n) && !self.down.contains(n) && !self.silent.contains(n))
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
        assert!(self.outsiders_down() <= MAX_MEMBERS, "down non-members over bound");
        assert!(self.foreign.len() <= MAX_MEMBERS, "foreign nodes over bound");
        assert!(self.foreign.is_disjoint(&self.members), "a foreign node is a member");
        assert!(!self.foreign.contains(&self.me), "a node is never foreign to itself");
        assert!(!self.down.contains(&self.me), "a node never believes itself down");
        assert!(self.silent.is_subset(&self.members), "silent nodes outside the configuration");
        assert!(!self.silent.contains(&self.me), "a node is never silent to itself");
    }
}
