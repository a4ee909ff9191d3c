//! One server's complete protocol logic as one sans-IO state machine: membership (SWIM
//! discovery and failure detection), LCR election, total-order replication and the auction
//! state machine, composed so that the tokio node and the whole-cluster simulation drive
//! exactly the same code.
//!
//! # Role
//!
//! [`Replica`] owns the four cores and wires them together (quinn-proto style: no sockets,
//! clocks, threads or tasks). Membership events steer the election (`Down` skips a node in the
//! ring and, for the leader, starts an election; `Alive` puts it back); the election's results
//! steer the ordering core (`Elected` → lead, `FollowLeader` → follow, `StepDown`); ordering
//! traffic from a leader tells the election who leads (`handle_leader_heard`, needed for
//! liveness) and counts as a heartbeat; the ordering core's last log feeds the election's
//! candidate rule; committed entries are applied to the [`AuctionMachine`], which answers
//! clients ([`Action::Complete`]) and subscribers ([`Action::Events`]). The leader also
//! sequences `Close` entries when auctions end (by wall-clock time mapped onto `Instant`),
//! adds discovered servers to the configuration (`AddMember`, one at a time; the cluster key
//! authenticates peers) and removes members that left or stayed down for
//! [`ReplicaConfig::removal_grace`]. Every [`ReplicaConfig::snapshot_every`] applied entries
//! the state is snapshotted ([`Action::SaveSnapshot`]) and the log before it dropped.
//!
//! # Inputs
//!
//! Every input takes `now: Instant`; the replica never reads a clock.
//! - [`Replica::new`] from the [`Durable`] state recovered from disk and a [`Start`] mode.
//! - [`Replica::handle_peer`]: an authenticated, replay-checked peer frame.
//! - [`Replica::handle_timeout`] once `now >= poll_timeout()`.
//! - [`Replica::handle_stored`]: a `Store`/`InstallSnapshot` is durable.
//! - [`Replica::handle_wall_clock`]: the wall clock (every loop turn).
//! - [`Replica::submit`]: a client command; [`Replica::leave`]; [`Replica::set_client_count`].
//!
//! # Outputs
//!
//! [`Replica::poll_action`] yields [`Action`]s to carry out strictly in order: a
//! `PersistTerm` must be durable before any later action; `Store` and `InstallSnapshot` are
//! confirmed later with `handle_stored`. [`Replica::poll_timeout`] is the next deadline.
//! Reads ([`Replica::machine`], [`Replica::applied`], [`Replica::report`],
//! [`Replica::servers`], [`Replica::holdback`]) are served on the same thread.
//!
//! # Call order
//!
//! ```text
//! let mut r = Replica::new(me, start, durable, config, seed, now)?;
//! loop {
//!     r.handle_wall_clock(wall, now);
//!     feed one input (peer frame, timeout once now >= poll_timeout(), stored, submit, leave);
//!     while let Some(action) = r.poll_action() { carry it out, in order }
//! }
//! ```
//!
//! ```
//! use std::time::Instant;
//! use auction_replica::{Action, Durable, Replica, ReplicaConfig, Start};
//! use auction_proto::{Incarnation, InstanceId, NodeId, Timestamp};
//! use auction_proto::msg::discovery::NodeInfo;
//!
//! let me = NodeInfo {
//!     node: NodeId::from_bytes([1; 16]),
//!     incarnation: Incarnation(1),
//!     peer_addr: "127.0.0.1:7000".parse()?,
//!     client_addr: "127.0.0.1:7001".parse()?,
//! };
//! let now = Instant::now();
//! let seed = 1; // every random choice derives from it
//! // Found a cluster at once (a real founder on an empty disk first probes for a running one).
//! let config = ReplicaConfig { bootstrap_probe: std::time::Duration::ZERO, ..ReplicaConfig::default() };
//! let start = Start::Bootstrap { instance: InstanceId::from_bytes([7; 16]) };
//! let mut r = Replica::new(me, start, Durable::default(), config, seed, now)?;
//! r.handle_wall_clock(Timestamp(1_000), now);
//! // A cluster of one: confirm every write at once; it elects itself and leads.
//! while let Some(action) = r.poll_action() {
//!     if let Action::Store { id, .. } = action {
//!         r.handle_stored(id, now);
//!     }
//! }
//! assert!(r.is_leading());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`AuctionMachine`]: auction_core::AuctionMachine

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod admin;
mod clock;
mod config;
mod duties;
mod held;
mod inputs;
mod liveness;
mod peers;
mod pump;
mod replica;

pub use action::{Action, ReplicaError, SubmitError};
pub use admin::AdminError;
pub use config::{Durable, ReplicaConfig, Start};
#[doc(hidden)]
pub use replica::Faults;
pub use replica::{
    MAX_HOLDBACK_VIEW, MAX_PENDING_CLOSES, MAX_TRACKED_PEERS, Replica, ReplicaStats,
};

#[cfg(test)]
mod tests;
