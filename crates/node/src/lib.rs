//! The auction server: the IO driver of the sans-IO server core `auction-server`, as quinn is
//! to quinn-proto.
//!
//! `auction-node` is the only crate that does IO, and it decides nothing. One driver task
//! ([`driver`]) owns the `auction_server::Server` (client sessions, admission, the codecs,
//! peer batching, and the replica with membership, election, ordering and the auction state
//! machine); it feeds socket reads, storage completions, timer expiries and signals in, and
//! carries the core's actions out in order: peer frames over UDP and TCP ([`transport`]),
//! durable writes through a group-commit writer thread ([`storage`]), bytes to and from
//! client connections ([`clients`]). [`dev`] starts a local cluster of real processes.
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
pub mod settings;
pub mod storage;
pub mod transport;
