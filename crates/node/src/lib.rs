//! The auction server: the IO shell around the sans-IO `auction-replica`.
//!
//! `auction-node` is the only crate that does IO. One driver task ([`driver`]) owns the
//! replica (membership, election, ordering and the auction state machine) and the client
//! sessions; it feeds socket reads, storage completions and timer expiries in, and carries the
//! replica's actions out in order: peer frames over UDP and TCP ([`transport`]), durable
//! writes through a group-commit writer thread ([`storage`]), answers and events to clients
//! ([`clients`], [`session`]). [`dev`] starts a local cluster of real processes.
//!
//! Operators: see docs/operations.md.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod clients;
pub mod config_file;
pub mod dev;
pub mod driver;
pub mod metrics;
pub mod session;
pub mod settings;
pub mod storage;
pub mod transport;
