//! Settings, the durable state handed back after a restart, and how a replica starts.

use std::time::Duration;

use auction_proto::{InstanceId, NodeId, Term};

/// Settings of one [`crate::Replica`]: the cores' own settings plus the composition's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// Discovery and failure detection.
    pub membership: auction_membership::MembershipConfig,
    /// Ring election timing.
    pub election: auction_election::ElectionConfig,
    /// Replication timers and bounds.
    pub ordering: auction_ordering::OrderingConfig,
    /// Applied entries between two snapshots of the auction state (at least 1).
    pub snapshot_every: u64,
    /// A member `Down` this long is removed from the configuration by the leader.
    pub removal_grace: Duration,
    /// How long a node told to bootstrap on an empty data directory first looks for an
    /// existing instance of the cluster (by discovery) before it founds one.
    pub bootstrap_probe: Duration,
    /// How long a learner must stay caught up before the leader makes it a voter (Consul
    /// autopilot's server stabilization time).
    pub promote_after: Duration,
    /// Automatic removal of a member down past the grace never takes the voters below this
    /// many (or below the configuration's size, if smaller): below it an operator decides.
    pub min_voters: usize,
    /// A node whose wall clock differs from the median of the cluster's by more than this
    /// does not stand for leader (its timestamps would end auctions early or late).
    pub max_clock_skew: Duration,
}

impl Default for ReplicaConfig {
    /// The cores' defaults, a snapshot every 10 000 entries, removal after 60 s down (never
    /// below 3 voters), promotion after 10 s caught up, a 3 s bootstrap probe.
    fn default() -> Self {
        Self {
            membership: auction_membership::MembershipConfig::default(),
            election: auction_election::ElectionConfig::default(),
            ordering: auction_ordering::OrderingConfig::default(),
            snapshot_every: 10_000,
            removal_grace: Duration::from_secs(60),
            bootstrap_probe: Duration::from_secs(3),
            promote_after: Duration::from_secs(10),
            min_voters: 3,
            max_clock_skew: crate::clock::DEFAULT_MAX_SKEW,
        }
    }
}

/// What the node recovered from disk (all default for a brand-new node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The last term written by [`crate::Action::PersistTerm`].
    pub term: Term,
    /// The vote written with it.
    pub accepted: Option<NodeId>,
    /// The snapshot, the durable log after it and the applied seq. Its `term` may be left at
    /// zero: the replica uses the larger of it and [`Durable::term`].
    pub ordering: auction_ordering::Persisted,
    /// The cluster instance this node founded or joined (written by
    /// [`crate::Action::PersistInstance`], or by the driver when its seal adopted one).
    pub instance: Option<InstanceId>,
}

/// How a replica with an empty log starts. Ignored when the durable log is not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Found a new cluster of one (this node), lead it, and add discovered servers. With no
    /// durable instance, the node first probes for an existing instance for
    /// [`ReplicaConfig::bootstrap_probe`]; if one answers it refuses to found
    /// ([`crate::Action::BootstrapRefused`]), otherwise it founds `instance` (a fresh random
    /// id from the driver).
    Bootstrap {
        /// The id of the instance to found.
        instance: InstanceId,
    },
    /// Join a cluster found by discovery: wait until its leader adds this node.
    Join,
}
