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
//! and the replica hands it the live servers outside the configuration again. The public
//! entry points are `Ordering::handle_learners`, `learners`, `learner_ready` and
//! `voter_caught_up`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auction_proto::{NodeId, Seq};

use super::progress::ProgressTracker;

/// Most learners a leader replicates to at once.
pub const MAX_LEARNERS: usize = 16;

/// The learners of one leader and since when each has been caught up.
///
/// Invariant: at most [`MAX_LEARNERS`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Learners {
    since: BTreeMap<NodeId, Option<Instant>>,
}

impl Learners {
    /// Replaces the set with `wanted` (already filtered and bounded); returns those added.
    pub(super) fn set(&mut self, wanted: &[NodeId]) -> Vec<NodeId> {
        self.since.retain(|n, _| wanted.contains(n));
        let mut added = Vec::new();
        for n in wanted {
            if !self.since.contains_key(n) {
                self.since.insert(*n, None);
                added.push(*n);
            }
        }
        added
    }

    pub(super) fn contains(&self, n: NodeId) -> bool {
        self.since.contains_key(&n)
    }

    /// The learners, in id order.
    pub(crate) fn nodes(&self) -> Vec<NodeId> {
        self.since.keys().copied().collect()
    }

    /// Whether `learner` has been caught up continuously for `stable` as of `now`.
    pub(crate) fn ready(&self, learner: NodeId, stable: Duration, now: Instant) -> bool {
        self.since
            .get(&learner)
            .copied()
            .flatten()
            .is_some_and(|since| now.saturating_duration_since(since) >= stable)
    }

    /// Leader tick: notes since when each learner is caught up (within `lag` entries of
    /// `commit`, acknowledged, and heard within `recent`).
    pub(super) fn track(
        &mut self,
        progress: &ProgressTracker,
        commit: Seq,
        lag: u64,
        recent: Duration,
        now: Instant,
    ) {
        for (n, since) in &mut self.since {
            let p = progress.get(*n);
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

    pub(super) fn check_invariants(&self) {
        assert!(self.since.len() <= MAX_LEARNERS, "learners over bound");
    }
}
