//! Outputs of the replica and its errors.

use std::net::SocketAddr;
use std::time::Duration;

use auction_core::Event;
use auction_ordering::{Snapshot, StoreId};
use auction_proto::msg::auction::Outcome;
use auction_proto::msg::client::Role;
use auction_proto::msg::log::{ConfigChange, LogEntry, RequestId};
use auction_proto::msg::peer::PeerBody;
use auction_proto::{Addressee, InstanceId, NodeId, Seq, Term, Timestamp};

/// One output, drained with [`crate::Replica::poll_action`]. The driver carries them out
/// strictly in the order polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `body` to the peer at `to` (unicast), sealed for `receiver` (`None` only for
    /// discovery to a peer whose incarnation is not known yet).
    Send {
        /// The peer's address.
        to: SocketAddr,
        /// The node and incarnation the frame is bound to.
        receiver: Option<Addressee>,
        /// The message.
        body: PeerBody,
    },
    /// Send a discovery message to a discovery target (broadcast or `--join` address).
    Broadcast {
        /// The target.
        to: SocketAddr,
        /// The message.
        body: PeerBody,
    },
    /// This node founded `instance`: make it durable, and seal every later frame with it,
    /// before carrying out any later action.
    PersistInstance {
        /// The instance.
        instance: InstanceId,
    },
    /// Told to bootstrap on an empty data directory, this node found an existing instance
    /// of the cluster and refuses to found a second one (which would fork the service):
    /// the driver must stop and tell the operator to start it without `--bootstrap`, so it
    /// joins. Nothing after it is valid.
    BootstrapRefused {
        /// The instance found.
        instance: InstanceId,
    },
    /// A configuration change was applied at `seq`; `voters` is the configuration after it.
    /// For the operator's log; nothing to carry out.
    Configuration {
        /// Where.
        seq: Seq,
        /// The change.
        change: ConfigChange,
        /// The voters after it.
        voters: Vec<NodeId>,
    },
    /// This leader now replicates to these learners (servers outside the configuration,
    /// promoted once caught up). For the operator's log; nothing to carry out.
    Learners {
        /// The learners.
        learners: Vec<NodeId>,
    },
    /// Make `(term, accepted)` durable before carrying out any later action.
    PersistTerm {
        /// The highest term of the election and ordering cores.
        term: Term,
        /// The vote in `term`.
        accepted: Option<NodeId>,
    },
    /// Discard stored entries from `from` on, write `entries`, then call
    /// [`crate::Replica::handle_stored`] with `id` (stores complete in id order).
    Store {
        /// Confirm with this id.
        id: StoreId,
        /// First seq replaced.
        from: Seq,
        /// The new entries from `from` on.
        entries: Vec<LogEntry>,
    },
    /// Replace the durable snapshot and the whole log with `snapshot` (empty log after it),
    /// then call [`crate::Replica::handle_stored`] with `id`. The replica has already restored
    /// its state machine from it.
    InstallSnapshot {
        /// Confirm with this id.
        id: StoreId,
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// The replica snapshotted its state machine: write `snapshot` durably; the log up to
    /// its `last_included` may then be dropped. No confirmation is needed.
    SaveSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// A client command was applied at `seq` with `outcome`. Emitted for every applied entry
    /// with an origin; the node answers the client if the request is its own.
    Complete {
        /// The request.
        request: RequestId,
        /// Where it was applied.
        seq: Seq,
        /// The state machine's answer (the first outcome for a retried request).
        outcome: Outcome,
    },
    /// The entry at `seq` produced events for subscribers.
    Events {
        /// The entry.
        seq: Seq,
        /// Its sequencer time.
        at: Timestamp,
        /// The events, in order; render each for its watcher with [`Event::for_viewer`].
        events: Vec<Event>,
    },
    /// A committed entry was applied to the state machine. Emitted only after
    /// [`crate::Replica::set_observe`]`(true)` (simulations, audit logs); drivers that do not
    /// observe can ignore it.
    Applied {
        /// The entry.
        entry: LogEntry,
    },
    /// The role, term or leader changed.
    Role {
        /// The role now.
        role: Role,
        /// The term now.
        term: Term,
        /// The leader known now.
        leader: Option<NodeId>,
    },
    /// The replica cannot go on without diverging (a snapshot from a member does not decode
    /// into a state machine): the driver must stop the node. Nothing after it is valid.
    Halt {
        /// What happened.
        reason: &'static str,
    },
}

/// Why [`crate::Replica::submit`] refused a command. Nothing changed in any variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No leader that can reach a majority is known here: retry after `retry_after`, here or
    /// at `leader`'s server.
    #[error("unavailable (leader {leader:?}); retry after {retry_after:?}")]
    Unavailable {
        /// A leader this node knows of.
        leader: Option<NodeId>,
        /// When to retry.
        retry_after: Duration,
    },
    /// Too many commands wait here; retry later.
    #[error("overloaded")]
    Overloaded,
    /// This node is not (yet, or any more) a member of the cluster's configuration.
    #[error("not a member of the configuration")]
    NotMember,
    /// This node is leaving or has left.
    #[error("leaving the cluster")]
    Leaving,
}

/// Why [`crate::Replica::new`] failed. No replica was built.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The membership settings are invalid.
    #[error("membership settings: {0}")]
    Membership(#[from] auction_membership::MembershipError),
    /// The durable snapshot does not decode.
    #[error("durable snapshot: {0}")]
    Snapshot(#[from] auction_core::SnapshotError),
    /// A composition setting is invalid (`snapshot_every` of zero).
    #[error("invalid setting {setting}")]
    Setting {
        /// Which one.
        setting: &'static str,
    },
}
