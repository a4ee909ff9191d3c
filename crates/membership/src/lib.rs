//! Group membership: discovery, heartbeats and failure detection, as a sans-IO state machine.
//!
//! # Role
//!
//! [`Membership`] keeps one node's table of the other servers of its cluster: who exists
//! (discovery), at which incarnation and addresses, and whether each one seems `Alive`,
//! `Suspect`, `Down` or has `Left`. The detector is SWIM's probe (a direct `Ping`, then
//! `PingReq` through other members) run against every member each probe interval, with
//! per-member suspicion and confirmation timeouts; joins and departures spread by gossip
//! piggy-backed on probes. Its verdicts are suggestions: who counts for quorums is the
//! replicated configuration's business. See docs/membership.md.
//!
//! # Inputs
//!
//! - [`Membership::handle_discovery`] and [`Membership::handle_membership`]: a decoded,
//!   authenticated peer frame's body, with its [`Origin`] (envelope sender and incarnation).
//!   The codec has already dropped frames of other clusters and bad tags.
//! - [`Membership::handle_heard`]: any other peer frame (election, ordering) as proof of life.
//! - [`Membership::handle_timeout`]: the clock reached [`Membership::poll_timeout`].
//! - [`Membership::leave`], [`Membership::set_announce_status`]: local decisions.
//!
//! Every input takes `now: Instant`. The core never reads a clock: the node passes
//! `tokio::time::Instant::into_std()`, a simulation passes its virtual clock. Randomness (which
//! members relay an indirect probe, rediscovery jitter) comes from the injected `R: RngCore`.
//!
//! # Outputs
//!
//! [`Membership::poll_action`] yields [`Action`]s: unicast sends to a member's peer address,
//! `Discover` datagrams for each discovery target, and [`MembershipEvent`]s.
//!
//! # Call order
//!
//! ```text
//! let mut m = Membership::new(me, config, rng, now)?;
//! loop {
//!     feed one input (a message, or handle_timeout(now) once now >= poll_timeout());
//!     while let Some(action) = m.poll_action() { carry it out }
//!     sleep until m.poll_timeout() or a datagram arrives;
//! }
//! ```
//!
//! ```
//! use std::time::Instant;
//! use auction_membership::{Action, MembershipConfig, Membership};
//! use auction_proto::{Incarnation, NodeId, msg::discovery::NodeInfo};
//! use rand::SeedableRng;
//!
//! let me = NodeInfo {
//!     node: NodeId::from_bytes([1; 16]),
//!     incarnation: Incarnation(1),
//!     peer_addr: "10.0.0.1:7000".parse()?,
//!     client_addr: "10.0.0.1:7001".parse()?,
//! };
//! let config = MembershipConfig { discovery_targets: vec!["10.0.0.255:7002".parse()?], ..MembershipConfig::default() };
//! let now = Instant::now();
//! let rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let mut m = Membership::new(me, config, rng, now)?;
//! assert_eq!(m.poll_timeout(), Some(now));
//! m.handle_timeout(now);
//! assert!(matches!(m.poll_action(), Some(Action::Broadcast { .. })));
//! assert_eq!(m.poll_action(), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod config;
mod core;
mod error;
mod gossip;
mod inbound;
mod table;
mod timers;

pub use action::{Action, MembershipEvent};
pub use config::MembershipConfig;
pub use core::{AnnounceStatus, Membership, MembershipStats, Origin};
pub use error::MembershipError;
pub use table::MemberView;

#[cfg(test)]
mod tests;
