//! Deterministic test support for the sans-IO cores: a seeded in-memory network.
//!
//! Role: run several real protocol cores (membership today, election and ordering later, whole
//! clusters in the simulation) against each other without sockets, threads or a wall clock.
//! Same seed, same run.
//!
//! - A core is wrapped in a small adapter implementing [`SimNode`]: messages in, timeouts in,
//!   next deadline out, outgoing messages out.
//! - [`Network`] owns the nodes by address, a virtual clock and the messages in flight. Each
//!   sent message gets a random delay (uniform in [`NetConfig::delay_min`]..=
//!   [`NetConfig::delay_max`], so messages reorder), may be dropped or duplicated, and is
//!   discarded if a partition blocks its `(from, to)` pair or its receiver is crashed.
//! - [`Network::step`] jumps the clock to the next event, the earliest of the next delivery and
//!   every node's [`SimNode::poll_timeout`], and handles everything due at that instant.
//!
//! Call order: [`Network::new`], [`Network::add_node`] for each node, then any mix of
//! [`Network::step`] / [`Network::run_for`] / [`Network::run_until`] with faults injected in
//! between ([`Network::crash`], [`Network::add_node`] again to restart, [`Network::partition`],
//! [`Network::block`], [`Network::heal`], [`Network::set_config`]).
//!
//! Replaying a failure: every random choice comes from one `ChaCha8Rng` seeded by
//! [`Network::new`]; print [`Network::seed`] in assertion messages and rerun with it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use auction_testkit::{Dest, NetConfig, Network, Outgoing, SimNode};
//!
//! /// Sends "ping" to 2 once, at start; counts what it receives.
//! #[derive(Debug, Default)]
//! struct Echo { out: Vec<Outgoing<u8, &'static str>>, got: usize }
//! impl SimNode for Echo {
//!     type Addr = u8;
//!     type Msg = &'static str;
//!     fn handle_message(&mut self, from: u8, msg: &'static str, _now: Instant) {
//!         self.got += 1;
//!         if msg == "ping" { self.out.push(Outgoing { to: Dest::To(from), msg: "pong" }); }
//!     }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn drain_outgoing(&mut self) -> Vec<Outgoing<u8, &'static str>> {
//!         std::mem::take(&mut self.out)
//!     }
//! }
//!
//! let mut net = Network::new(7, NetConfig::default());
//! let mut one = Echo::default();
//! one.out.push(Outgoing { to: Dest::To(2), msg: "ping" });
//! net.add_node(1, one);
//! net.add_node(2, Echo::default());
//! net.run_for(Duration::from_secs(1));
//! assert_eq!(net.node(&1).map(|n| n.got), Some(1));
//! assert_eq!(net.node(&2).map(|n| n.got), Some(1));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod network;

pub use network::{Dest, NetConfig, NetStats, Network, Outgoing, SimNode};

#[cfg(test)]
mod tests;
