//! What the core asks its driver to do.

use auction_proto::msg::log::LogEntry;
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{NodeId, Seq, Term};

use crate::Snapshot;

/// Identifies one durable write ([`Action::Store`] or [`Action::InstallSnapshot`]); the driver
/// confirms it with [`crate::Ordering::handle_stored`] once it is on disk. Ids increase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreId(pub u64);

/// One output, drained with [`crate::Ordering::poll_action`]. Carry them out in order: a
/// `PersistTerm` must be durable before any later `Send` leaves the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Persist the current term before sending anything queued after this action (a member
    /// answers one leader per term, also across restarts).
    PersistTerm(Term),
    /// Send a message to one member.
    Send {
        /// The receiver.
        to: NodeId,
        /// The message.
        msg: OrderingMsg,
    },
    /// Discard every stored entry at or after `from`, then write `entries` (contiguous from
    /// `from`, possibly empty: a pure truncation); then call `handle_stored(id)`. Stores
    /// complete in id order.
    Store {
        /// Confirm with this id.
        id: StoreId,
        /// The first seq replaced.
        from: Seq,
        /// The new entries from `from` on.
        entries: Vec<LogEntry>,
    },
    /// Replace the state machine with the snapshot and the whole durable log with its
    /// (empty) suffix; then call `handle_stored(id)`.
    InstallSnapshot {
        /// Confirm with this id.
        id: StoreId,
        /// What to install.
        snapshot: Snapshot,
    },
    /// Apply these committed entries to the state machine: contiguous, in order, each exactly
    /// once (continuing after the `applied` seq given at construction or the last snapshot).
    Deliver {
        /// The entries.
        entries: Vec<LogEntry>,
    },
    /// This node leads `term` and has finished its view change: it sequences from now on.
    Leading {
        /// The term.
        term: Term,
    },
    /// This node, leader of `term`, cannot reach a majority: proposals are refused until it
    /// hears from one again.
    Unavailable {
        /// The term.
        term: Term,
    },
    /// This node, leader of `term`, has heard no majority for `step_down_after` (Raft's
    /// CheckQuorum): it should give up leading, so that it stops claiming a leadership it
    /// cannot use. Reported once per stretch of silence; not during the view change.
    QuorumLost {
        /// The term.
        term: Term,
    },
    /// This node was elected for `term` but some member's log is too far ahead to be
    /// gathered in one bounded message; it gives up leading `term`. The election should pick
    /// a more up-to-date member (`ahead`) in a higher term.
    Abdicate {
        /// The term given up.
        term: Term,
        /// A member known to have a better log.
        ahead: NodeId,
    },
}
