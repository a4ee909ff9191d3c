//! What the leader knows of every other member and learner: how far each holds its log,
//! what was sent to it, when it was last heard (raft-rs's `ProgressTracker`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::{NodeId, Seq};

/// What the leader knows of one other member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// It acknowledged holding the leader's log up to here (durably), in this term.
    pub(super) matched: Seq,
    /// Entries up to here were sent (go-back-N: reset to `matched` when acks stall).
    pub(super) sent: Seq,
    /// It adopted (or was sent) this term's view; until then it is asked for its log state.
    pub(super) synced: bool,
    /// When it was last heard from.
    pub(super) heard: Option<Instant>,
    /// `matched` at the previous tick, to notice stalls.
    matched_at_tick: Seq,
    /// The highest commit point sent to it (in an `Order` or a `Commit`).
    pub(super) commit_sent: Seq,
}

impl Progress {
    /// Whether it was heard within `window` before `now`.
    pub(super) fn heard_within(&self, window: Duration, now: Instant) -> bool {
        self.heard.is_some_and(|h| now.saturating_duration_since(h) < window)
    }

    /// Tick: a member whose `matched` did not move since the last tick while entries are
    /// outstanding is resent from `matched + 1` (go-back-N).
    pub(super) fn tick(&mut self) {
        if self.matched < self.sent && self.matched == self.matched_at_tick {
            self.sent = self.matched;
        }
        self.matched_at_tick = self.matched;
    }
}

/// The leader's [`Progress`] per node, for its term.
///
/// Invariant: every `matched` is at most the leader's last log seq (`check_invariants`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgressTracker {
    nodes: BTreeMap<NodeId, Progress>,
}

impl ProgressTracker {
    /// The progress of `n`, created empty if unknown.
    pub(super) fn entry(&mut self, n: NodeId) -> &mut Progress {
        self.nodes.entry(n).or_default()
    }

    pub(super) fn get(&self, n: NodeId) -> Option<&Progress> {
        self.nodes.get(&n)
    }

    pub(super) fn get_mut(&mut self, n: NodeId) -> Option<&mut Progress> {
        self.nodes.get_mut(&n)
    }

    /// `n` was heard from at `now`.
    pub(super) fn heard(&mut self, n: NodeId, now: Instant) {
        self.entry(n).heard = Some(now);
    }

    /// `n` acknowledged holding the leader's log up to `stored` (clamped to `last`): it is
    /// in sync, and nothing it holds needs sending again.
    pub(super) fn ack(&mut self, n: NodeId, stored: Seq, last: Seq, now: Instant) {
        let p = self.entry(n);
        p.heard = Some(now);
        p.synced = true;
        p.matched = p.matched.max(stored.min(last));
        p.sent = p.sent.max(p.matched);
    }

    /// `n` was sent the view (or the snapshot) up to `sent`: it is in sync from now on.
    pub(super) fn synced(&mut self, n: NodeId, sent: Seq) {
        let p = self.entry(n);
        p.synced = true;
        p.sent = sent;
    }

    /// The highest seq held by a majority of `members`, counting `me` as holding `own`
    /// (`None` without members).
    pub(super) fn majority_matched(
        &self,
        members: &[NodeInfo],
        me: NodeId,
        own: Seq,
    ) -> Option<Seq> {
        let mut held: Vec<Seq> = members
            .iter()
            .map(|m| match m.node == me {
                true => own,
                false => self.get(m.node).map_or(Seq::ZERO, |p| p.matched),
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(members.len() / 2).copied()
    }

    /// Whether a majority of `members` (`me` included) was heard within `window`.
    pub(super) fn heard_majority(
        &self,
        members: &[NodeInfo],
        me: NodeId,
        window: Duration,
        now: Instant,
    ) -> bool {
        crate::log::is_majority(members, |n| {
            n == me || self.get(n).is_some_and(|p| p.heard_within(window, now))
        })
    }

    /// Forgets every node but those `keep` says.
    pub(super) fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.nodes.retain(|n, _| keep(*n));
    }

    pub(super) fn check_invariants(&self, last: Seq) {
        assert!(self.nodes.values().all(|p| p.matched <= last), "progress beyond log");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    #![allow(clippy::disallowed_methods, reason = "the real clock as the base of virtual time")]

    use auction_proto::Incarnation;

    use super::*;

    fn node(i: u8) -> NodeId {
        NodeId::from_bytes([i; 16])
    }

    fn members(n: u8) -> Vec<NodeInfo> {
        (1..=n)
            .map(|i| NodeInfo {
                node: node(i),
                incarnation: Incarnation(1),
                peer_addr: ([10, 0, 0, i], 7000).into(),
                client_addr: ([10, 0, 0, i], 7001).into(),
            })
            .collect()
    }

    #[test]
    fn acks_only_move_matched_forward_and_never_past_the_log() {
        let now = Instant::now();
        let mut t = ProgressTracker::default();
        t.ack(node(2), Seq(5), Seq(9), now);
        t.ack(node(2), Seq(3), Seq(9), now);
        t.ack(node(3), Seq(12), Seq(9), now);
        let p2 = t.get(node(2)).unwrap();
        assert_eq!((p2.matched, p2.sent, p2.synced), (Seq(5), Seq(5), true));
        assert_eq!(t.get(node(3)).unwrap().matched, Seq(9));
        t.check_invariants(Seq(9));
    }

    #[test]
    fn the_majority_matched_point_counts_the_leaders_own_durable_log() {
        let now = Instant::now();
        let mut t = ProgressTracker::default();
        assert_eq!(t.majority_matched(&[], node(1), Seq(7)), None);
        let five = members(5);
        assert_eq!(t.majority_matched(&five, node(1), Seq(7)), Some(Seq::ZERO));
        t.ack(node(2), Seq(4), Seq(9), now);
        assert_eq!(t.majority_matched(&five, node(1), Seq(7)), Some(Seq::ZERO));
        t.ack(node(3), Seq(6), Seq(9), now);
        // Held: 7 (leader), 6, 4, 0, 0: the third highest is held by three of five.
        assert_eq!(t.majority_matched(&five, node(1), Seq(7)), Some(Seq(4)));
        t.ack(node(5), Seq(9), Seq(9), now);
        assert_eq!(t.majority_matched(&five, node(1), Seq(7)), Some(Seq(6)));
        // A learner's progress never counts.
        t.ack(node(8), Seq(9), Seq(9), now);
        assert_eq!(t.majority_matched(&five, node(1), Seq(7)), Some(Seq(6)));
    }

    #[test]
    fn a_majority_is_heard_only_within_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_millis(100);
        let mut t = ProgressTracker::default();
        let three = members(3);
        assert!(!t.heard_majority(&three, node(1), w, t0));
        t.heard(node(3), t0);
        assert!(t.heard_majority(&three, node(1), w, t0 + Duration::from_millis(99)));
        assert!(!t.heard_majority(&three, node(1), w, t0 + w));
    }

    #[test]
    fn a_stalled_member_is_resent_from_its_matched_point() {
        let now = Instant::now();
        let mut t = ProgressTracker::default();
        t.ack(node(2), Seq(3), Seq(9), now);
        t.entry(node(2)).sent = Seq(8);
        t.entry(node(2)).tick();
        assert_eq!(t.get(node(2)).unwrap().sent, Seq(8), "first tick: matched moved from 0");
        t.entry(node(2)).tick();
        assert_eq!(t.get(node(2)).unwrap().sent, Seq(3), "second tick: stalled, go back");
    }
}
