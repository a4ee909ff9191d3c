//! Learners: servers the leader replicates to that are not (yet) in the configuration.
//!
//! A server discovered by the leader does not become a voter at once: it first receives the
//! log (or a snapshot) like a member, answers reads, but counts for no quorum and takes no part
//! in elections, because it is not in the configuration. The leader tracks since when each
//! learner has been caught up (acknowledged up to within a bounded distance of the commit
//! point, continuously); the replica promotes a learner that has been caught up for the
//! stabilization time by committing its `AddMember`. A short-lived server therefore never
//! becomes a voter, and a new voter never holds a quorum back while it catches up.
//!
//! The learner set is the leader's soft state, not replicated: a new leader starts with none
//! and the replica hands it the live servers outside the configuration again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{NodeId, Seq};

use crate::core::Ordering;

/// Most learners a leader replicates to at once.
pub const MAX_LEARNERS: usize = 16;

impl Ordering {
    /// Leader: replicate to `learners` (servers outside the configuration; members, this node
    /// and any past [`MAX_LEARNERS`] are ignored) from now on, and to no other non-member.
    /// Returns whether the set changed. A follower ignores it and returns `false`.
    pub fn handle_learners(&mut self, learners: &[NodeId], now: Instant) -> bool {
        let me = self.me;
        let wanted: Vec<NodeId> = learners
            .iter()
            .copied()
            .filter(|n| *n != me && !self.log.is_member(*n))
            .take(MAX_LEARNERS)
            .collect();
        let (term, commit) = (self.term, self.commit);
        let Some(ls) = self.leading.as_mut() else { return false };
        let before: Vec<NodeId> = ls.learners.keys().copied().collect();
        ls.learners.retain(|n, _| wanted.contains(n));
        let mut added = Vec::new();
        for n in &wanted {
            if !ls.learners.contains_key(n) {
                ls.learners.insert(*n, None);
                added.push(*n);
            }
        }
        // Nodes that stopped being learners (promoted, gone) keep no progress unless members.
        let members: Vec<NodeId> = self.log.members().iter().map(|m| m.node).collect();
        ls.progress.retain(|n, _| members.contains(n) || ls.learners.contains_key(n));
        for n in added {
            // Brought in sync like a member after a view change: it answers with its log
            // state and gets a `NewView` (or the snapshot).
            self.send(n, OrderingMsg::StartView { term, commit });
        }
        self.finish(now);
        self.leading.as_ref().is_some_and(|ls| ls.learners.keys().copied().ne(before))
    }

    /// Leader: the learners it replicates to.
    pub fn learners(&self) -> Vec<NodeId> {
        self.leading.as_ref().map(|ls| ls.learners.keys().copied().collect()).unwrap_or_default()
    }

    /// Leader: whether `learner` has been caught up (within `max_lag` entries of the commit
    /// point) continuously for `stable` as of `now`: ready to be promoted to voter.
    pub fn learner_ready(&self, learner: NodeId, stable: Duration, now: Instant) -> bool {
        let Some(ls) = self.leading.as_ref().filter(|ls| ls.is_active()) else { return false };
        ls.learners
            .get(&learner)
            .copied()
            .flatten()
            .is_some_and(|since| now.saturating_duration_since(since) >= stable)
    }

    /// Leader: whether the member `voter` has stored everything committed and answered within
    /// the last three ticks: it could take over at once (`admin move-leader`). `false` on a
    /// follower and for this node.
    pub fn voter_caught_up(&self, voter: NodeId, now: Instant) -> bool {
        let recent = self.config.tick * 3;
        let Some(ls) = self.leading.as_ref().filter(|ls| ls.is_active()) else { return false };
        self.log.is_member(voter)
            && ls.progress.get(&voter).is_some_and(|p| {
                p.matched >= self.commit
                    && p.heard.is_some_and(|h| now.saturating_duration_since(h) <= recent)
            })
    }

    /// Leader tick: notes since when each learner is caught up.
    pub(crate) fn track_learners(&mut self, now: Instant) {
        let (commit, lag) = (self.commit, self.config.learner_lag);
        // A learner acknowledges every `Commit` heartbeat (one per tick): silent for three
        // ticks, it is not caught up, whatever it acknowledged before. Without this a learner
        // that died right after its last ack could be promoted, and a configuration of one
        // voter would then need a dead second one for every commit (sim seed 156).
        let recent = self.config.tick * 3;
        let Some(ls) = self.leading.as_mut() else { return };
        let progress = &ls.progress;
        for (n, since) in &mut ls.learners {
            let p = progress.get(n);
            let matched = p.map_or(Seq::ZERO, |p| p.matched);
            let alive =
                p.and_then(|p| p.heard).is_some_and(|h| now.saturating_duration_since(h) <= recent);
            let caught_up =
                alive && matched > Seq::ZERO && matched.0.saturating_add(lag) >= commit.0;
            *since = match (caught_up, *since) {
                (true, Some(s)) => Some(s),
                (true, None) => Some(now),
                (false, _) => None,
            };
        }
    }
}

/// A learner's entry in the leader's state: since when it has been caught up.
pub(crate) type Learners = BTreeMap<NodeId, Option<Instant>>;
