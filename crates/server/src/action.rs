//! Outputs of the server core.

use std::net::SocketAddr;
use std::time::Duration;

use auction_ordering::{Snapshot, StoreId};
use auction_proto::msg::log::LogEntry;
use auction_proto::{InstanceId, NodeId, Seq, Term};

/// Identifies one client connection for the node's lifetime (the driver numbers them).
pub type ConnId = u64;

/// One output, drained with [`crate::Server::poll_action`]. The driver carries them out
/// strictly in the order polled; none of them needs a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `bytes` (whole client frames) to connection `conn`.
    ToClient {
        /// The connection.
        conn: ConnId,
        /// The frames.
        bytes: Vec<u8>,
    },
    /// The driver may read `bytes` more bytes from connection `conn` (flow control: a
    /// connection starts with one window, [`crate::CLIENT_WINDOW`] with the default codec, and
    /// gets back what the core has consumed; a client with [`crate::MAX_IN_FLIGHT`]
    /// unanswered requests gets nothing until it is answered, so TCP pushes back on that
    /// client alone).
    ReadClient {
        /// The connection.
        conn: ConnId,
        /// How many more bytes.
        bytes: usize,
    },
    /// Close connection `conn` once what was queued to it is written. Nothing more comes
    /// from the core for it; the driver still reports the close.
    CloseClient {
        /// The connection.
        conn: ConnId,
    },
    /// Send one sealed peer frame as a datagram from the peer socket.
    PeerDatagram {
        /// The peer (or discovery target).
        to: SocketAddr,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Write whole sealed peer frames to the stream (TCP) to this peer.
    PeerStream {
        /// The peer.
        to: SocketAddr,
        /// The frames, in order.
        bytes: Vec<u8>,
    },
    /// Answer a client's `FindServers` from the discovery socket.
    DiscoveryReply {
        /// The client.
        to: SocketAddr,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Make the cluster instance durable before carrying out any later action (founded
    /// here, or adopted from an authentic frame; the seal already uses it).
    PersistInstance {
        /// The instance.
        instance: InstanceId,
    },
    /// Make `(term, accepted)` durable before carrying out any later action.
    PersistTerm {
        /// The term.
        term: Term,
        /// The vote in it.
        accepted: Option<NodeId>,
    },
    /// As [`auction_replica::Action::Store`]: confirm with [`crate::Server::handle_stored`].
    Store {
        /// Confirm with this id.
        id: StoreId,
        /// First seq replaced.
        from: Seq,
        /// The new entries from `from` on.
        entries: Vec<LogEntry>,
    },
    /// As [`auction_replica::Action::InstallSnapshot`]: confirm with
    /// [`crate::Server::handle_stored`].
    InstallSnapshot {
        /// Confirm with this id.
        id: StoreId,
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// As [`auction_replica::Action::SaveSnapshot`]: no confirmation.
    SaveSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// A committed entry was applied (only with the replica's observation on: simulations).
    Applied {
        /// The entry.
        entry: LogEntry,
    },
    /// A client write was applied; `waited` is how long it waited if a client of this
    /// server was answered. For metrics.
    WriteApplied {
        /// From its arrival to its answer.
        waited: Option<Duration>,
    },
    /// A replica action for the operator's log only: `Configuration`, `Learners` or `Role`.
    Log(auction_replica::Action),
    /// Stop the node: nothing after it is valid.
    Stop(Stop),
}

/// Why the node stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Shut down as asked ([`crate::Server::handle_shutdown`]), after handing the leadership
    /// over if this node led.
    Shutdown {
        /// Whether another member leads now.
        handed_over: bool,
    },
    /// An admin `leave` was carried out (or its grace ran out).
    Left,
    /// Told to bootstrap on an empty data directory, the node found a running instance:
    /// founding a second one would fork the service.
    BootstrapRefused {
        /// The instance found.
        instance: InstanceId,
    },
    /// The replica cannot go on without diverging.
    Halted {
        /// What happened.
        reason: &'static str,
    },
}
