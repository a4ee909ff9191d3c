//! Tunables: timers and the bound of every queue.

use std::time::Duration;

/// Timers and bounds of one [`crate::Ordering`] core. Every queue and buffer has a bound here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderingConfig {
    /// Leader: how often it sends `Commit` heartbeats, retransmits unacknowledged entries and
    /// re-asks silent members for their log state. Follower: how often it resends proposals
    /// not yet seen sequenced.
    pub tick: Duration,
    /// Leader: refuse proposals with [`crate::OrderingError::Unavailable`] once a majority of
    /// the configuration has been silent this long (or the view change has taken this long).
    pub unavailable_after: Duration,
    /// Leader: report [`crate::Action::QuorumLost`] once a majority of the configuration has
    /// been silent this long (Raft's CheckQuorum). Longer than `unavailable_after`: a member's
    /// TCP stream under packet loss can stall for its retransmission back-off (0.2, 0.4,
    /// 0.8 s ...) while the member still hears the leader's UDP heartbeats, and a leader
    /// stepping down then would cost an election for nothing.
    pub step_down_after: Duration,
    /// Most entries in one `Order`, `NewView` or `LogState` message (batch size).
    pub max_batch: usize,
    /// Most entries the leader has sequenced but not committed (pipelining window); more
    /// proposals are refused with [`crate::OrderingError::Overloaded`].
    pub max_uncommitted: usize,
    /// Most entries a member holds back after a gap.
    pub max_held_back: usize,
    /// Most proposals a member keeps until it sees them sequenced (forwarded or waiting for a
    /// leader), and most a new leader keeps while its view change runs.
    pub max_pending: usize,
    /// Largest snapshot, in bytes, the core keeps or reassembles.
    pub max_snapshot_bytes: usize,
    /// Bytes per `Snapshot` chunk.
    pub snapshot_chunk: usize,
    /// A learner acknowledged up to within this many entries of the commit point counts as
    /// caught up (see [`crate::Ordering::learner_ready`]).
    pub learner_lag: u64,
}

impl Default for OrderingConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(50),
            unavailable_after: Duration::from_millis(500),
            step_down_after: Duration::from_secs(2),
            max_batch: 256,
            max_uncommitted: 4096,
            max_held_back: 4096,
            max_pending: 1024,
            max_snapshot_bytes: 64 << 20,
            snapshot_chunk: 1 << 20,
            learner_lag: 256,
        }
    }
}
