//! Clock skew: how far this node's wall clock is from the cluster's.
//!
//! Sequencer time is the leader's wall clock (never below the last timestamp), so a leader
//! whose clock runs ahead ends auctions early for good, and one behind freezes time. Every
//! membership `Ping` carries its sender's wall clock; the membership core keeps each live
//! member's offset from this node (smoothed). This node's skew is its own clock minus the
//! median of the clocks it knows (its own included, so one wrong peer does not move it); a
//! node skewed by more than [`crate::ReplicaConfig::max_clock_skew`] does not stand for leader.

use std::time::{Duration, Instant};

use auction_proto::NodeId;

use crate::Replica;

impl Replica {
    /// Each measured member's wall clock minus this node's, in milliseconds.
    pub fn clock_offsets(&self) -> Vec<(NodeId, i64)> {
        self.membership.clock_offsets()
    }

    /// This node's wall clock minus the median of the clocks it knows (its own and the
    /// measured members'), in milliseconds; 0 before anything is measured.
    pub fn clock_skew_ms(&self) -> i64 {
        let mut clocks: Vec<i64> = self.clock_offsets().into_iter().map(|(_, o)| o).collect();
        clocks.push(0);
        clocks.sort_unstable();
        // The lower median: with two clocks (this node's and one peer's) neither is blamed.
        let median = match clocks.len() {
            2 => 0,
            n => clocks[(n - 1) / 2],
        };
        median.saturating_neg()
    }

    /// Keeps the election from putting this node forward while its clock is skewed.
    /// A leader whose clock became skewed hands its leadership over (its timestamps would
    /// move every auction's end).
    pub(crate) fn sync_standing(&mut self, now: Instant) {
        let skewed = self.clock_skewed();
        self.election.set_standing(!skewed);
        if skewed && self.election.is_leader() && self.members.len() > 1 {
            self.election.step_down(now);
        }
    }

    /// Whether this node's clock is too far from the cluster's for it to lead.
    pub fn clock_skewed(&self) -> bool {
        let bound = i64::try_from(self.config.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
        self.clock_skew_ms().abs() > bound
    }
}

/// The default bound of [`crate::ReplicaConfig::max_clock_skew`].
pub(crate) const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(1);
