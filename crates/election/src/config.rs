//! Tunables and the state a node must persist.

use std::time::Duration;

use auction_proto::{NodeId, Term};
use serde::{Deserialize, Serialize};

/// Election timing: the round timeout, the leader's heartbeats and the followers' patience,
/// and the pre-vote. The defaults and the loss computation behind them are in
/// `docs/election.md` ("Timeouts").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long an election round may run before the node gives up on it and tries again
    /// (with a pre-vote for a higher term): lost token, lost `Elected`, no majority reachable.
    pub election_timeout: Duration,
    /// Upper bound of the random back-off added to every election deadline, drawn uniformly
    /// from `0..=max_backoff` with the injected RNG, so that retries of different nodes spread
    /// out instead of colliding again.
    pub max_backoff: Duration,
    /// How often a leader sends `Heartbeat` to every member (over UDP; its ordering traffic
    /// counts as heard too).
    pub heartbeat_interval: Duration,
    /// A follower that has heard nothing from its leader for a random time in
    /// `leader_timeout..=2 * leader_timeout` (drawn once per leader followed) gives up on it
    /// and starts a pre-vote; a member refuses a pre-vote while it heard a leader of its term
    /// within `leader_timeout`. Also the first pre-vote retry delay (then doubled).
    pub leader_timeout: Duration,
    /// Longest wait between two pre-vote attempts (the doubling back-off stops here).
    pub max_pre_vote_backoff: Duration,
    /// Whether an election starts with a pre-vote (Raft §9.6). Off only to measure the bare
    /// ring election (`tests/counts.rs`) and to show what the pre-vote prevents.
    pub pre_vote: bool,
}

impl Default for ElectionConfig {
    /// 300 ms round timeout plus up to 300 ms back-off; heartbeats every 20 ms, leader
    /// timeout 120-240 ms; pre-vote on, retried after 120 ms doubling up to 2 s.
    fn default() -> Self {
        Self {
            election_timeout: Duration::from_millis(300),
            max_backoff: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(20),
            leader_timeout: Duration::from_millis(120),
            max_pre_vote_backoff: Duration::from_secs(2),
            pre_vote: true,
        }
    }
}

/// What the driver must keep on disk across restarts: the highest term this node has seen and
/// the leader it accepted in that term (its vote). Restored with [`crate::Election::new`].
///
/// `PersistentState::default()` is the state of a node that never took part in an election.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    /// Highest term seen. Only grows.
    pub term: Term,
    /// The leader accepted in `term`, at most one per term.
    pub accepted: Option<NodeId>,
}
