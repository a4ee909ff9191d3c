//! Leader election with the LeLann-Chang-Roberts ring algorithm (sans-IO).
//!
//! Role: pick at most one leader per term among the members of the configuration, the one
//! with the most up-to-date log, and only with the agreement of a majority. The algorithm and
//! its safety argument are in `docs/election.md`.
//!
//! The ring is the configuration sorted by `NodeId`; a node sends only to its successor, the
//! next member it does not believe down. An election has two phases, both one trip around the
//! ring:
//! 1. **Token** (LCR): every node forwards the larger of the token's candidate and its own
//!    `(last log position, NodeId)` and swallows smaller ones; a node whose own token returns
//!    through a majority has won the token phase.
//! 2. **Elected**: the winner accepts itself and circulates `Elected`; each node accepts at
//!    most one leader per term (a persisted vote) and adds itself to the participants. The
//!    winner leads once its `Elected` returns accepted by a majority.
//!
//! Inputs (each a method, `now` where time matters):
//! [`Election::start`], [`Election::handle_leader_lost`], [`Election::handle_message`],
//! [`Election::handle_timeout`], [`Election::handle_members`], [`Election::handle_down`],
//! [`Election::handle_alive`], [`Election::handle_last_log`], [`Election::handle_leader_heard`]
//! (the ordering layer saw a leader's traffic: how a node skipped by the ring catches up),
//! [`Election::handle_term`] (the ordering layer saw a newer term without a leader) and
//! [`Election::step_down`] (an operator asked the leader to step down).
//!
//! Outputs: [`Action`]s drained with [`Election::poll_action`]; the next deadline from
//! [`Election::poll_timeout`]; queries such as [`Election::status`] and
//! [`Election::persistent`].
//!
//! Call order: build with [`Election::new`] (restoring the [`PersistentState`] from disk),
//! feed the configuration's failure-detector view (`handle_down`), call `start` if no leader
//! is known. Then, after *every* input, drain `poll_action` until `None`, carrying actions out
//! in order. A [`Action::PersistTerm`] must be durable before any later action is carried out.
//! Re-read `poll_timeout` after every input and call `handle_timeout` when it passes (early,
//! late and repeated calls are harmless).
//!
//! ```
//! use std::time::Instant;
//! use auction_election::{Action, ElectionConfig, Election, PersistentState};
//! use auction_proto::{NodeId, Term};
//! use rand::SeedableRng;
//!
//! let me = NodeId::from_bytes([1; 16]);
//! let rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let mut node = Election::new(me, [me], PersistentState::default(), rng, ElectionConfig::default());
//! node.start(Instant::now());
//! // A ring of one: persist the new term, persist the self-vote, lead.
//! assert_eq!(node.poll_action(), Some(Action::PersistTerm { term: Term(1), accepted: None }));
//! assert_eq!(node.poll_action(), Some(Action::PersistTerm { term: Term(1), accepted: Some(me) }));
//! assert_eq!(
//!     node.poll_action(),
//!     Some(Action::Elected { term: Term(1), leader: me, participants: vec![me] })
//! );
//! assert!(node.is_leader());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod config;
mod election;
mod error;
mod liveness;
mod ring;
mod rounds;

pub use action::Action;
pub use config::{ElectionConfig, PersistentState};
pub use election::{Election, MAX_ABSTAIN_TERMS, MAX_MEMBERS, MAX_PENDING_ACTIONS, Status};
pub use error::ElectionError;

#[cfg(test)]
mod tests;
