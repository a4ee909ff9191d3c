//! The [`Replica`] state, construction, queries and invariants.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use auction_core::AuctionMachine;
use auction_election::Election;
use auction_membership::Membership;
use auction_ordering::{Ordering, Persisted};
use auction_proto::msg::client::{NodeReport, Role, ServerInfo};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::LogEntry;
use auction_proto::msg::peer::MemberState;
use auction_proto::{AuctionId, InstanceId, LogPosition, NodeId, Seq, Term};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Action, Durable, ReplicaConfig, ReplicaError, Start};

/// Most entries [`Replica::holdback`] returns.
pub const MAX_HOLDBACK_VIEW: usize = 1024;
/// Most auctions whose `Close` a leader remembers having proposed in its term.
pub const MAX_PENDING_CLOSES: usize = 1024;
/// Most peers whose `Down`/`Left` state or client count the replica remembers.
pub const MAX_TRACKED_PEERS: usize = 1024;

/// Counters of input the replica ignored or output it dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Messages for a member whose address is unknown, dropped.
    pub unroutable: u64,
    /// Election messages the election core refused (stale term, not a member, oversized).
    pub election_refused: u64,
    /// Snapshots that did not decode (the state machine was kept as it was).
    pub restore_failures: u64,
    /// Leader duties (`Close`, configuration changes) the ordering core refused for now.
    pub duties_refused: u64,
    /// Times this node, leading, heard no majority for `step_down_after` and gave up leading.
    pub quorum_lost: u64,
    /// Inputs after which the cores had not settled within the pump's round cap (a bug).
    pub pump_overruns: u64,
}

/// Test-only fault injection (planted bugs to show the simulation's checker catches them).
/// Never set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Emit `Complete` when the leader sequences a command instead of when it is applied.
    pub ack_on_sequence: bool,
    /// A new leader skips the ordering view change (see `auction_ordering::Faults`).
    pub skip_view_change: bool,
    /// Voters accept a leader without the up-to-date check (see
    /// `auction_election::Election::set_skip_vote_check`).
    pub skip_vote_check: bool,
}

/// One server's protocol logic: membership, election, ordering and the auction state machine
/// composed into one sans-IO state machine. See the crate documentation for the contract.
///
/// Invariants (checked by [`Replica::check_invariants`] after every input in debug builds):
/// - the state machine has applied exactly what the ordering core delivered (unless a snapshot
///   failed to decode, which is counted);
/// - the election's members are the ordering configuration's members;
/// - each core's own invariants hold; every map and queue of the replica is within its bound.
#[derive(Debug)]
pub struct Replica {
    pub(crate) me: NodeInfo,
    pub(crate) config: ReplicaConfig,
    pub(crate) membership: Membership<ChaCha8Rng>,
    pub(crate) election: Election<ChaCha8Rng>,
    pub(crate) ordering: Ordering,
    pub(crate) machine: AuctionMachine,
    pub(crate) actions: VecDeque<Action>,
    /// The last `(wall, now)` pair from `handle_wall_clock`.
    pub(crate) clock: Option<auction_proto::WallAnchor>,
    pub(crate) clients: u32,
    pub(crate) peer_clients: BTreeMap<NodeId, u32>,
    /// Members the detector declared down (or that left), and since when.
    pub(crate) down_since: BTreeMap<NodeId, Instant>,
    pub(crate) left: BTreeSet<NodeId>,
    /// Learners held by `admin demote` (replicated state, see `held.rs`).
    pub(crate) held: BTreeSet<NodeId>,
    /// Auctions whose `Close` this leader proposed in `closes_term`.
    pub(crate) closes: BTreeSet<AuctionId>,
    pub(crate) closes_term: Term,
    pub(crate) last_snapshot: Seq,
    /// Member without a known leader and without a running election since then.
    pub(crate) leaderless_since: Option<Instant>,
    /// `leave` was called then; `membership.leave` follows the removal (or a timeout).
    pub(crate) leaving: Option<Instant>,
    pub(crate) persisted: (Term, Option<NodeId>),
    pub(crate) role: (Role, Term, Option<NodeId>),
    pub(crate) last_log: LogPosition,
    pub(crate) members: Vec<NodeId>,
    pub(crate) observe: bool,
    /// The `now` of the last input.
    pub(crate) now: Instant,
    pub(crate) stats: ReplicaStats,
    pub(crate) faults: Faults,
    /// What this node knows of its peers' boots and which of them are vouched for.
    pub(crate) peers: crate::peers::Peers,
    /// The instance this node founded or joined.
    pub(crate) instance: Option<InstanceId>,
    /// Told to bootstrap with no instance: probing for an existing one until then, founding
    /// this instance afterwards.
    pub(crate) probing: Option<(Instant, InstanceId)>,
}

impl Replica {
    /// A replica for node `me` from what it made durable (`Durable::default()` for a new
    /// node). `Start::Bootstrap` with an empty log founds a cluster of one; `Start::Join`
    /// waits to be added by a cluster's leader. `seed` seeds every random choice.
    ///
    /// # Errors
    /// Invalid membership settings, `snapshot_every == 0`, or a durable snapshot that does
    /// not decode.
    pub fn new(
        me: NodeInfo,
        start: Start,
        durable: Durable,
        config: ReplicaConfig,
        seed: u64,
        now: Instant,
    ) -> Result<Self, ReplicaError> {
        if config.snapshot_every == 0 {
            return Err(ReplicaError::Setting { setting: "snapshot_every" });
        }
        let Durable { term, accepted, ordering: persisted, instance } = durable;
        let accepted = accepted.filter(|_| term >= persisted.term);
        let term = term.max(persisted.term);
        let (machine, held) = restore_machine(&persisted)?;
        let persisted = Persisted { term, ..persisted };
        let id = me.node;
        // Every random choice (probe order, back-offs, timeouts) derives from `seed`: a
        // simulation replays a node exactly, and the driver never names an RNG type.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let election_rng = ChaCha8Rng::seed_from_u64(rng.next_u64());
        let membership = Membership::new(me.clone(), config.membership.clone(), rng, now)?;
        let ordering = Ordering::new(id, config.ordering.clone(), persisted, now);
        let members: Vec<NodeId> = ordering.members().iter().map(|m| m.node).collect();
        let state = auction_election::PersistentState { term, accepted };
        let election =
            Election::new(id, members.clone(), state, election_rng, config.election.clone());
        let mut this = Self {
            last_snapshot: machine.last_applied(),
            machine,
            me,
            membership,
            election,
            ordering,
            actions: VecDeque::new(),
            clock: None,
            clients: 0,
            peer_clients: BTreeMap::new(),
            down_since: BTreeMap::new(),
            left: BTreeSet::new(),
            held,
            closes: BTreeSet::new(),
            closes_term: Term::ZERO,
            leaderless_since: None,
            leaving: None,
            persisted: (term, accepted),
            role: (Role::Joining, term, None),
            last_log: LogPosition::default(),
            members,
            observe: false,
            now,
            stats: ReplicaStats::default(),
            faults: Faults::default(),
            peers: crate::peers::Peers::default(),
            instance,
            probing: None,
            config,
        };
        this.replay_applied();
        // Members of the recovered configuration are probed like any other, so one that died
        // while this node was down is declared down here too.
        let configured = this.ordering.members().to_vec();
        this.membership.handle_configured(&configured, now);
        let empty = this.ordering.last_log().seq == Seq::ZERO;
        if let (true, Start::Bootstrap { instance: fresh }) = (empty, start) {
            match this.instance {
                // It founded this instance before and lost its log before the `Bootstrap`
                // entry was durable: nobody can have joined it yet.
                Some(instance) => this.found(instance, now),
                None if this.config.bootstrap_probe.is_zero() => this.found(fresh, now),
                None => this.probing = Some((now + this.config.bootstrap_probe, fresh)),
            }
        }
        this.pump(now);
        Ok(this)
    }

    /// Re-applies the durable log up to the ordering core's applied seq (already delivered
    /// before the restart) to the state machine restored from the snapshot.
    fn replay_applied(&mut self) {
        let upto = self.ordering.applied();
        let mut seq = self.machine.last_applied().next();
        while seq <= upto {
            let Some(entry) = self.ordering.entry(seq).cloned() else { break };
            self.machine.apply(&entry);
            if let auction_proto::msg::log::EntryPayload::Config(change) = &entry.payload {
                crate::held::apply(&mut self.held, change);
            }
            seq = seq.next();
        }
    }

    // ----- reads -----

    /// The auction state (serve client reads from here).
    pub fn machine(&self) -> &AuctionMachine {
        &self.machine
    }

    /// The last seq applied to [`Replica::machine`].
    pub fn applied(&self) -> Seq {
        self.machine.last_applied()
    }

    /// The highest seq known committed.
    pub fn commit(&self) -> Seq {
        self.ordering.commit()
    }

    /// This node's identity.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// The highest term known (election or ordering).
    pub fn term(&self) -> Term {
        self.election.term().max(self.ordering.term())
    }

    /// The voting members of the latest configuration in the log.
    pub fn members(&self) -> Vec<NodeId> {
        self.ordering.members().iter().map(|m| m.node).collect()
    }

    /// Whether this node is a voting member.
    pub fn is_member(&self) -> bool {
        self.ordering.members().iter().any(|m| m.node == self.me.node)
    }

    /// The leader of the current term as far as this node knows.
    pub fn leader(&self) -> Option<NodeId> {
        self.ordering.leader().or_else(|| self.election.leader())
    }

    /// Whether this node may answer clients (see `auction_ordering::Ordering::is_ready`):
    /// until then every request gets a retryable `Unavailable`, so that a restarted node's
    /// still-empty state never gives a final-looking answer.
    pub fn is_ready(&self) -> bool {
        self.ordering.is_ready()
    }

    /// The learners this leader replicates to (empty on a follower).
    pub fn learners(&self) -> Vec<NodeId> {
        self.ordering.learners()
    }

    /// Whether this node leads and has finished its view change (it sequences).
    pub fn is_leading(&self) -> bool {
        self.ordering.is_leading()
    }

    /// Whether [`Replica::leave`] completed: the node may stop once the actions are drained.
    pub fn has_left(&self) -> bool {
        self.membership.has_left()
    }

    /// Counters of ignored input and dropped output.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// The current role.
    pub fn role(&self) -> Role {
        if !self.is_member() {
            Role::Joining
        } else if self.ordering.leader() == Some(self.me.node) || self.election.is_leader() {
            Role::Leader
        } else if self.election.is_pre_voting()
            || matches!(
                self.election.status(),
                auction_election::Status::Electing | auction_election::Status::Announcing
            )
        {
            // A pre-vote means it lost its leader (and asks whether the others did too).
            Role::Candidate
        } else {
            Role::Follower
        }
    }

    /// This server's status report.
    pub fn report(&self) -> NodeReport {
        let commit = self.ordering.commit();
        let last = self.ordering.last_log().seq;
        NodeReport {
            node: self.me.node,
            incarnation: self.me.incarnation,
            role: self.role(),
            term: self.term(),
            // Pre-voting, it has lost its leader, though no newer term has started yet.
            leader: self.leader().filter(|_| !self.election.is_pre_voting()),
            commit,
            applied: self.applied(),
            members: self.members(),
            clients: self.clients,
            holdback: u32::try_from(last.0.saturating_sub(commit.0)).unwrap_or(u32::MAX),
            ready: self.is_ready(),
            learners: self.learners(),
            held: self.held(),
            clock_skew_ms: self.clock_skew_ms(),
            clock_offsets: self.clock_offsets(),
        }
    }

    /// The membership view (this node first), with client counts where announced.
    pub fn servers(&self) -> Vec<ServerInfo> {
        let mine = ServerInfo {
            node: self.me.node,
            incarnation: self.me.incarnation,
            client_addr: self.me.client_addr,
            state: MemberState::Alive,
            clients: self.clients,
        };
        let others = self.membership.members().map(|m| ServerInfo {
            node: m.info.node,
            incarnation: m.info.incarnation,
            client_addr: m.info.client_addr,
            state: m.state,
            clients: self.peer_clients.get(&m.info.node).copied().unwrap_or(0),
        });
        std::iter::once(mine).chain(others).collect()
    }

    /// The uncommitted suffix of the log (what the core exposes of its hold-back state: the
    /// entries stored in order but not yet committed), at most [`MAX_HOLDBACK_VIEW`].
    pub fn holdback(&self) -> Vec<LogEntry> {
        let last = self.ordering.last_log().seq;
        let mut seq = self.ordering.commit().next();
        let mut out = Vec::new();
        while seq <= last && out.len() < MAX_HOLDBACK_VIEW {
            if let Some(e) = self.ordering.entry(seq) {
                out.push(e.clone());
            }
            seq = seq.next();
        }
        out
    }

    // ----- outputs -----

    /// The next output, in order. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Replica::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let leaderless = self.leaderless_since.map(|t| t + self.config.election.election_timeout);
        let removal = if self.ordering.is_leading() {
            let grace = self.config.removal_grace;
            self.down_since.values().map(|t| *t + grace).filter(|t| *t > self.now).min()
        } else {
            None
        };
        [
            self.membership.poll_timeout(),
            self.election.poll_timeout(),
            self.ordering.poll_timeout(),
            leaderless,
            removal,
            self.close_deadline(),
            self.probing.map(|(until, _)| until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next auction end, mapped onto `Instant` through the last wall-clock reading, if
    /// this node leads and the end is still ahead (due ends are proposed at once).
    fn close_deadline(&self) -> Option<Instant> {
        if !self.ordering.is_leading() {
            return None;
        }
        let clock = self.clock?;
        let end = self.machine.next_deadline()?;
        (end > clock.wall).then(|| clock.instant_of(end))
    }

    /// Turns recording of applied entries ([`Action::Applied`]) on or off (off by default).
    pub fn set_observe(&mut self, on: bool) {
        self.observe = on;
    }

    #[doc(hidden)]
    #[cfg(feature = "faults")]
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        let skip_view_change = faults.skip_view_change;
        self.ordering.set_faults(auction_ordering::Faults { skip_view_change });
        self.election.set_skip_vote_check(faults.skip_vote_check);
    }

    /// Whether the planted early-acknowledgement bug is on: never without the `faults`
    /// feature, so release builds compile it away.
    pub(crate) fn acks_on_sequence(&self) -> bool {
        cfg!(feature = "faults") && self.faults.ack_on_sequence
    }

    /// Checks every documented invariant; panics on a violation (a bug).
    pub fn check_invariants(&self) {
        self.ordering.check_invariants();
        self.election.check_invariants();
        self.membership.check_invariants();
        if let Err(v) = self.machine.check_invariants() {
            panic!("auction machine: {v:?}");
        }
        if self.stats.restore_failures == 0 {
            assert_eq!(
                self.machine.last_applied(),
                self.ordering.applied(),
                "state machine and ordering disagree on applied"
            );
        }
        assert_eq!(self.members, self.members(), "election members out of date");
        assert!(self.closes.len() <= MAX_PENDING_CLOSES, "closes over bound");
        assert!(self.down_since.len() <= MAX_TRACKED_PEERS, "down table over bound");
        assert!(self.left.len() <= MAX_TRACKED_PEERS, "left table over bound");
        assert!(self.peer_clients.len() <= MAX_TRACKED_PEERS, "client table over bound");
        self.peers.check_invariants();
        assert!(
            self.probing.is_none() || self.ordering.last_log().seq == Seq::ZERO,
            "probing with a log"
        );
    }
}

/// The state machine and the held learners from the durable snapshot, if any.
fn restore_machine(
    persisted: &Persisted,
) -> Result<(AuctionMachine, BTreeSet<NodeId>), ReplicaError> {
    let Some(s) = &persisted.snapshot else {
        return Ok((AuctionMachine::new(), BTreeSet::new()));
    };
    let (held, bytes) = crate::held::unwrap(&s.bytes)
        .ok_or(ReplicaError::Snapshot(auction_core::SnapshotError::Malformed(None)))?;
    Ok((AuctionMachine::restore(bytes)?, held))
}
