//! Piggy-backed dissemination of membership rumours (SWIM's infection-style gossip).
//!
//! Only first-hand facts that every member can act on are spread: "this member is `Alive`
//! with this incarnation and these addresses" (joins, restarts) and "this member `Left`".
//! Suspicion and `Down` are each member's own opinion and are never gossiped (see
//! docs/membership.md).

use std::collections::BTreeMap;

use auction_proto::NodeId;

/// Members with news to spread, each with how many more messages should carry it.
///
/// Invariant: `len() <= max`; no entry has a count of zero.
#[derive(Clone, Debug)]
pub(crate) struct Rumours {
    pending: BTreeMap<NodeId, u32>,
    max: usize,
}

impl Rumours {
    pub(crate) fn new(max: usize) -> Self {
        Self { pending: BTreeMap::new(), max }
    }

    /// Starts (or restarts) spreading news about `node`, `sends` times. When full, the rumour
    /// closest to done makes room.
    pub(crate) fn spread(&mut self, node: NodeId, sends: u32) {
        if sends == 0 {
            return;
        }
        if !self.pending.contains_key(&node) && self.pending.len() >= self.max {
            let done = self.pending.iter().min_by_key(|(id, n)| (**n, **id)).map(|(id, _)| *id);
            if let Some(done) = done {
                self.pending.remove(&done);
            }
        }
        self.pending.insert(node, sends);
    }

    /// Forgets news about `node`.
    pub(crate) fn forget(&mut self, node: &NodeId) {
        self.pending.remove(node);
    }

    /// Takes up to `n` rumours to piggy-back, the least-sent first, counting one send each.
    pub(crate) fn take(&mut self, n: usize) -> Vec<NodeId> {
        let mut order: Vec<(u32, NodeId)> = self.pending.iter().map(|(id, k)| (*k, *id)).collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        order.truncate(n);
        let picked: Vec<NodeId> = order.into_iter().map(|(_, id)| id).collect();
        for id in &picked {
            if let Some(k) = self.pending.get_mut(id) {
                *k -= 1;
                if *k == 0 {
                    self.pending.remove(id);
                }
            }
        }
        picked
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = &NodeId> {
        self.pending.keys()
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.pending.len() <= self.max, "rumour queue over its bound");
        assert!(self.pending.values().all(|k| *k > 0), "finished rumour kept");
    }
}

/// How many times a rumour is sent in a group of `members` (self included): SWIM's
/// `lambda * log n`, rounded up.
pub(crate) fn sends_for(multiplier: u32, members: usize) -> u32 {
    let bits = usize::BITS - members.max(1).leading_zeros();
    multiplier.saturating_mul(bits.max(1))
}
