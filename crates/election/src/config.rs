//! Tunables and the state a node must persist.

use std::time::Duration;

use auction_proto::{NodeId, Term};
use serde::{Deserialize, Serialize};

/// Election timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long an election round may run before the node gives up on it and starts a new
    /// one with a higher term (lost token, lost `Elected`, no majority reachable).
    pub election_timeout: Duration,
    /// Upper bound of the random back-off added to every election deadline, drawn uniformly
    /// from `0..=max_backoff` with the injected RNG, so that retries of different nodes spread
    /// out instead of colliding again.
    pub max_backoff: Duration,
}

impl Default for Config {
    /// 300 ms timeout plus up to 300 ms back-off.
    fn default() -> Self {
        Self {
            election_timeout: Duration::from_millis(300),
            max_backoff: Duration::from_millis(300),
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
