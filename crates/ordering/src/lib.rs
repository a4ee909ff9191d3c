//! Total-order reliable multicast as a sans-IO state machine: sequencer, hold-back queue,
//! majority commit, view change, configuration changes and state transfer.
//!
//! # Role
//!
//! [`Ordering`] is one member's replication core. It turns proposals from any member into one
//! committed sequence of [`LogEntry`]s that every member delivers in the same order, exactly
//! once, across leader changes. The leader of a term (chosen by the election core) is the
//! sequencer: it first runs a view change (gathers the log state of a majority, adopts the most
//! up-to-date log as in Viewstamped Replication, sequences a `Noop` of its term and waits for it
//! to commit), then gives each proposal the next [`Seq`] and a timestamp and multicasts it in
//! batched, pipelined `Order`s. Members store entries contiguously (holding back early ones,
//! asking for gaps with `Nack`), take a `NewView` or `Order` only if their log holds the
//! leader's entry it builds on (its `prev`; else they ask to be synced from their commit
//! point), acknowledge what is durable, and deliver what the leader reports committed: the
//! highest entry of its term held by a majority of the configuration. The protocol, its
//! invariants and its relation to VR, Raft and JGroups SEQUENCER are in docs/ordering.md.
//!
//! # Inputs
//!
//! Every input takes `now: Instant`; the core never reads a clock.
//! - [`Ordering::new`] from [`Persisted`] state (fresh, or after a restart: persisted term,
//!   snapshot, durable log, applied seq); [`Ordering::handle_bootstrap`] founds a cluster.
//! - [`Ordering::handle_leader`] / [`Ordering::handle_step_down`]: the election's results.
//!   The election reads [`Ordering::last_log`] for its candidate rule.
//! - [`Ordering::handle_message`]: a decoded [`OrderingMsg`] from a member.
//! - [`Ordering::handle_propose`] (any member), [`Ordering::handle_config_change`] (leader).
//! - [`Ordering::handle_stored`]: a [`Action::Store`] / [`Action::InstallSnapshot`] is on disk.
//! - [`Ordering::handle_snapshot_taken`]: the state machine was snapshotted; the log before it
//!   is dropped and the bytes kept for lagging members.
//! - [`Ordering::handle_wall_clock`]: anchors sequencer timestamps to the wall clock.
//! - [`Ordering::handle_timeout`] once `now >= poll_timeout()`.
//!
//! # Outputs
//!
//! [`Ordering::poll_action`] yields [`Action`]s in the order they must be carried out:
//! `PersistTerm` (make the term durable before any later `Send`), `Send`, `Store` and
//! `InstallSnapshot` (durable writes, confirmed by `handle_stored`), `Deliver` (committed
//! entries, in order, once), and the reports `Leading`, `Unavailable`, `Abdicate`.
//! [`Ordering::poll_timeout`] is the next deadline. A message that does not fit this node's
//! role or term is refused and counted in [`Ordering::stats`] ([`OrderingStats`]).
//!
//! # Call order
//!
//! ```text
//! let mut core = Ordering::new(me, config, persisted, now);
//! loop {
//!     feed one input (message, proposal, stored confirmation, election result, or
//!     handle_timeout(now) once now >= poll_timeout());
//!     while let Some(action) = core.poll_action() { carry it out, in order }
//! }
//! ```
//!
//! ```
//! use std::time::Instant;
//! use auction_ordering::{Action, Ordering, OrderingConfig, Persisted};
//! use auction_proto::{Incarnation, NodeId, Seq, Term};
//! use auction_proto::msg::discovery::NodeInfo;
//!
//! let me = NodeId::from_bytes([1; 16]);
//! let info = NodeInfo {
//!     node: me,
//!     incarnation: Incarnation(1),
//!     peer_addr: "127.0.0.1:7000".parse()?,
//!     client_addr: "127.0.0.1:7001".parse()?,
//! };
//! let now = Instant::now();
//! let mut core = Ordering::new(me, OrderingConfig::default(), Persisted::default(), now);
//! core.handle_bootstrap(vec![info], now)?;
//! core.handle_leader(Term(1), me, now)?;
//! // A single member is its own majority once its writes are durable.
//! while let Some(action) = core.poll_action() {
//!     if let Action::Store { id, .. } = action {
//!         core.handle_stored(id, now)?;
//!     }
//! }
//! assert!(core.is_leading());
//! assert_eq!(core.commit(), Seq(2)); // the bootstrap entry and the leader's Noop
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`LogEntry`]: auction_proto::msg::log::LogEntry
//! [`OrderingMsg`]: auction_proto::msg::peer::OrderingMsg
//! [`Seq`]: auction_proto::Seq

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod config;
mod core;
mod error;
mod follower;
mod holdback;
mod leader;
mod log;
mod ordering;
mod stats;

pub use action::{Action, StoreId};
pub use config::OrderingConfig;
pub use error::{Bound, OrderingError};
pub use leader::learners::MAX_LEARNERS;
pub use log::Snapshot;
pub use ordering::{Faults, Ordering, Persisted};
pub use stats::OrderingStats;
