//! Inputs: peer messages, timers, disk confirmations, the wall clock and local requests.

use std::time::{Duration, Instant};

use auction_membership::Origin;
use auction_ordering::{OrderingError, StoreId};
use auction_proto::msg::discovery::DiscoveryMsg;
use auction_proto::msg::log::Command;
use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::{Incarnation, NodeId, Term, Timestamp};

use crate::replica::MAX_TRACKED_PEERS;
use crate::{Replica, SubmitError};

impl Replica {
    /// A peer frame from `from` (already authenticated and replay-checked by the node).
    /// Every frame counts as a heartbeat; ordering traffic from a leader also tells the
    /// election who leads.
    pub fn handle_peer(
        &mut self,
        from: NodeId,
        incarnation: Incarnation,
        body: PeerBody,
        now: Instant,
    ) {
        let origin = Origin { node: from, incarnation };
        self.heard_addressed(from, incarnation);
        match body {
            PeerBody::Discovery(msg) => self.handle_discovery(from, incarnation, msg, now),
            PeerBody::Membership(msg) => self.membership.handle_membership(origin, msg, now),
            PeerBody::Election(msg) => {
                self.membership.handle_heard(origin, now);
                if self.election.handle_message(from, msg, now).is_err() {
                    self.stats.election_refused += 1;
                }
            }
            PeerBody::Ordering(msg) => {
                self.membership.handle_heard(origin, now);
                let led = leader_term(&msg);
                self.ordering.handle_message(from, msg, now);
                if let Some(term) = led {
                    self.election.handle_leader_heard(from, term, now);
                }
            }
        }
        self.after_input(now);
    }

    /// Discovery from `from`, addressed or not.
    pub(crate) fn handle_discovery(
        &mut self,
        from: NodeId,
        incarnation: Incarnation,
        msg: DiscoveryMsg,
        now: Instant,
    ) {
        if let DiscoveryMsg::Announce { from: info, clients, .. } = &msg {
            let known = self.peer_clients.contains_key(&info.node);
            if known || self.peer_clients.len() < MAX_TRACKED_PEERS {
                self.peer_clients.insert(info.node, *clients);
            }
        }
        self.membership.handle_discovery(Origin { node: from, incarnation }, msg, now);
    }

    /// The clock reached [`Replica::poll_timeout`] (early and repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.probe_timeout(now);
        self.membership.handle_timeout(now);
        self.election.handle_timeout(now);
        self.ordering.handle_timeout(now);
        self.after_input(now);
    }

    /// The write [`crate::Action::Store`] / [`crate::Action::InstallSnapshot`] `id` (and all
    /// before it) is durable.
    ///
    /// # Panics
    /// If `id` is not an outstanding write of this replica (never issued, or confirmed
    /// already): the driver confirms exactly the writes it was given, in order, so anything
    /// else is a bug in the driver, and acknowledging a write that may not be on disk would
    /// break durability.
    pub fn handle_stored(&mut self, id: StoreId, now: Instant) {
        let confirmed = self.ordering.handle_stored(id, now);
        assert!(
            confirmed.is_ok(),
            "the driver confirmed a write that is not outstanding: {confirmed:?}"
        );
        self.after_input(now);
    }

    /// The wall clock reads `wall` at `now`. Sequencer timestamps and auction closing derive
    /// from the latest reading; call it on every loop turn.
    pub fn handle_wall_clock(&mut self, wall: Timestamp, now: Instant) {
        self.clock = Some(auction_proto::WallAnchor { wall, at: now });
        self.ordering.handle_wall_clock(wall, now);
        self.membership.handle_wall_clock(wall, now);
        self.after_input(now);
    }

    /// A client command (origin `Some`) submitted at this server. It is sequenced here or
    /// forwarded to the leader and resent until applied; the outcome comes later as
    /// [`crate::Action::Complete`] (a retried request completes with its first outcome).
    ///
    /// # Errors
    /// [`SubmitError`]; nothing changed.
    pub fn submit(&mut self, cmd: Command, now: Instant) -> Result<(), SubmitError> {
        if self.leaving.is_some() || self.membership.has_left() {
            return Err(SubmitError::Leaving);
        }
        if !self.is_member() {
            return Err(SubmitError::NotMember);
        }
        // On the minority side of a partition (as the failure detector sees it) refuse at
        // once: nothing is queued, so nothing can commit later behind the client's back.
        // So does a node that has lost its leader (it pre-votes) before the failure detector
        // has declared anyone down: forwarded, the command would wait for a leader it cannot
        // reach while the client times out.
        if !self.majority_reachable() || self.election.is_pre_voting() {
            return Err(SubmitError::Unavailable { leader: None, retry_after: self.retry_after() });
        }
        let result = match self.ordering.handle_propose(cmd, now) {
            Ok(()) => Ok(()),
            Err(OrderingError::Overloaded { .. }) => Err(SubmitError::Overloaded),
            Err(_) => Err(SubmitError::Unavailable {
                leader: self.leader().filter(|l| *l != self.me.node),
                retry_after: self.retry_after(),
            }),
        };
        self.after_input(now);
        result
    }

    /// Leaves the cluster gracefully: a leader first commits its own `RemoveMember`; then
    /// (or at once on a follower, whose removal the leader commits on `Left`) membership
    /// announces `Leave`. [`Replica::has_left`] tells when it is done.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving.is_none() {
            self.leaving = Some(now);
        }
        self.after_input(now);
    }

    /// An operator asks this leader to step down: it starts an election for the next term in
    /// which it runs with a demoted candidate, so another member is elected (a one-member
    /// cluster elects itself again). Returns `false`, changing nothing, if this node does not
    /// lead, or is outside its own configuration (it cannot start an election; its removal
    /// ends its leadership anyway).
    pub fn step_down(&mut self, now: Instant) -> bool {
        if !self.election.is_leader() || !self.is_member() {
            return false;
        }
        self.election.step_down(now);
        self.after_input(now);
        true
    }

    /// Takes a snapshot of the state machine now (as the periodic one does), so the log
    /// before it can be dropped. Returns `false`, changing nothing, if nothing was applied
    /// since the last snapshot.
    pub fn snapshot_now(&mut self, now: Instant) -> bool {
        let applied = self.machine.last_applied();
        if applied <= self.last_snapshot {
            return false;
        }
        self.take_snapshot(applied, now);
        self.after_input(now);
        true
    }

    /// How many clients this server holds (announced for load balancing).
    pub fn set_client_count(&mut self, n: u32) {
        self.clients = n;
        self.announce_status();
    }

    /// Whether this node and the members its failure detector holds live (alive or suspect)
    /// make a majority of the configuration.
    pub(crate) fn majority_reachable(&self) -> bool {
        let config = self.members();
        let live: std::collections::BTreeSet<NodeId> = self.membership.live_members().collect();
        let reachable = config.iter().filter(|m| **m == self.me.node || live.contains(*m)).count();
        reachable * 2 > config.len()
    }

    /// The hint given with `Unavailable`.
    pub(crate) fn retry_after(&self) -> Duration {
        self.config.election.election_timeout
    }

    /// Every input ends here: propagate between the cores, then check invariants.
    pub(crate) fn after_input(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.pump(now);
        debug_assert!({
            self.check_invariants();
            true
        });
    }
}

/// The term of a message only a leader sends (view change, entries, commit, snapshot).
fn leader_term(msg: &OrderingMsg) -> Option<Term> {
    match msg {
        OrderingMsg::Order { term, .. }
        | OrderingMsg::Commit { term, .. }
        | OrderingMsg::StartView { term, .. }
        | OrderingMsg::NewView { term, .. }
        | OrderingMsg::Snapshot { term, .. } => Some(*term),
        OrderingMsg::Propose { .. }
        | OrderingMsg::Ack { .. }
        | OrderingMsg::Nack { .. }
        | OrderingMsg::LogState { .. }
        | OrderingMsg::NotLeader { .. } => None,
    }
}
