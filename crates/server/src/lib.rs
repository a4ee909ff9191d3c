//! The auction server's whole logic as one sans-IO state machine: what quinn-proto is to
//! quinn, this crate is to `auction-node`.
//!
//! # Role
//!
//! [`Server`] composes the [`auction_replica::Replica`] (membership, election, ordering, the
//! auction state machine) with everything a server decides at its edge: the client codec
//! (with its configured frame limit) and sessions (hello, login, reads, writes answered once
//! applied, events to subscribers, admin operations), admission (the client limit, at most
//! [`MAX_IN_FLIGHT`] unanswered requests and [`MAX_PENDING_PER_CONN`] pending writes per
//! connection, flow-control credit, idle connections, write timeouts), the rate limit of
//! `FindServers` answers, the peer seal (authentication, replay windows, instance adoption)
//! and the batching of ordering messages (merged while held, sealed into one stream buffer
//! per peer). It opens no socket, reads no clock, spawns nothing: `auction-node` drives it
//! with tokio, and `auction-sim` drives the same code in virtual time for every simulated
//! server.
//!
//! # Inputs
//!
//! Every input takes `now: Instant`.
//! - [`Server::handle_wall_clock`] on every loop turn.
//! - [`Server::handle_client_connected`], [`Server::handle_client_bytes`],
//!   [`Server::handle_client_closed`], [`Server::handle_client_stalled`].
//! - [`Server::handle_peer_bytes`] (a peer datagram), [`Server::handle_peer_frame`] (a
//!   stream frame a reader task authenticated), [`Server::handle_discovery`].
//! - [`Server::handle_stored`] (a write is durable), [`Server::handle_timeout`] once
//!   `now >= poll_timeout()`, [`Server::handle_shutdown`].
//! - [`Server::flush`] when no input is ready.
//!
//! # Outputs
//!
//! [`Server::poll_action`] yields [`Action`]s to carry out strictly in order: bytes to a
//! client or peer, credit to read more from a client, closes, durable writes
//! (`PersistInstance` and `PersistTerm` must be durable before any later action), and
//! [`Action::Stop`]. [`Server::poll_timeout`] is the next deadline.
//!
//! # Call order
//!
//! ```text
//! let mut s = Server::new(replica, seal, config);
//! loop {
//!     s.handle_wall_clock(wall, now);
//!     feed one input;
//!     if no input is ready { s.flush() }
//!     while let Some(action) = s.poll_action() { carry it out, in order }
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod batch;
mod intake;
mod limit;
mod server;
mod sessions;

pub use action::{Action, ConnId, Stop};
pub use batch::{MAX_MERGED_COMMANDS, MAX_UDP_FRAME};
pub use server::{HANDOFF_WAIT, LEAVE_GRACE, PeerStats, Server, ServerConfig, TICK};
#[doc(hidden)]
pub use sessions::SessionFaults;
pub use sessions::{
    AdmissionStats, MAX_IN_FLIGHT, MAX_PENDING_PER_CONN, PENDING_TIMEOUT, hash, register_token,
    session_id,
};

/// Bytes a client connection may have unread in the core at once (one largest frame of the
/// default codec and a read chunk): the credit a new connection starts with.
pub const CLIENT_WINDOW: usize = auction_proto::codec::CLIENT_HEADER_LEN
    + auction_proto::codec::DEFAULT_MAX_CLIENT_PAYLOAD
    + 16 * 1024;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;
