//! The membership state machine: state, construction, outputs and invariants.
//!
//! Inputs live in `inbound.rs` (messages) and `timers.rs` (deadlines).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::discovery::{DiscoveryMsg, NodeInfo};
use auction_proto::msg::peer::{MemberState, MemberUpdate, MembershipMsg, PeerBody};
use auction_proto::{Envelope, Incarnation, NodeId, Term, Timestamp};
use rand::RngCore;

use crate::gossip::{Rumours, sends_for};
use crate::table::{MemberView, Phase, Table};
use crate::{Action, MembershipConfig, MembershipError, MembershipEvent};

/// Who sent a message, as the authenticated envelope says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The sender.
    pub node: NodeId,
    /// The sender's boot.
    pub incarnation: Incarnation,
}

impl From<&Envelope> for Origin {
    fn from(e: &Envelope) -> Self {
        Self { node: e.sender, incarnation: e.incarnation }
    }
}

/// What this node says about itself in `Announce` (filled in by the node from the other cores).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnounceStatus {
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The highest term it knows.
    pub term: Term,
    /// How many clients it holds.
    pub clients: u32,
}

/// Counters of input that was ignored or output that was dropped because of a bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Actions dropped because the queue was full (the driver did not drain it).
    pub dropped_actions: u64,
    /// New members refused because the table was full of live members.
    pub refused_members: u64,
    /// `PingReq`s refused because too many indirect probes were running.
    pub refused_relays: u64,
    /// Messages from an older incarnation of a member, ignored.
    pub stale_messages: u64,
}

/// An indirect probe this node runs on behalf of `asker`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Relay {
    pub(crate) target: NodeId,
    pub(crate) asker: NodeId,
    pub(crate) asker_probe: u64,
    pub(crate) expires: Instant,
}

/// The membership core of one node. See the crate docs for the call-order contract.
///
/// Invariants (checked by [`Membership::check_invariants`] after every input in debug builds):
/// this node is not in its own table; the table, the rumour queue, the relays and the action
/// queue are within their bounds; rumours and relays only name members in the table or are
/// about to expire; once left, the core emits nothing more.
#[derive(Debug)]
pub struct Membership<R> {
    pub(crate) me: NodeInfo,
    pub(crate) config: MembershipConfig,
    pub(crate) rng: R,
    pub(crate) table: Table,
    pub(crate) rumours: Rumours,
    /// Indirect probes run for others, keyed by our own probe number.
    pub(crate) relays: BTreeMap<u64, Relay>,
    pub(crate) next_probe: u64,
    /// Anti-entropy cursor: the last member piggy-backed besides the rumours.
    pub(crate) cursor: Option<NodeId>,
    pub(crate) next_discover: Instant,
    pub(crate) backoff: Duration,
    pub(crate) status: AnnounceStatus,
    pub(crate) left: bool,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) stats: MembershipStats,
    /// The last wall-clock reading and when it was taken.
    pub(crate) clock: Option<auction_proto::WallAnchor>,
}

impl<R: RngCore> Membership<R> {
    /// A core for node `me`, started at `now`. The first `handle_timeout(now)` sends
    /// `Discover` to every discovery target.
    ///
    /// # Errors
    /// [`MembershipConfig::validate`] refused the settings.
    pub fn new(
        me: NodeInfo,
        config: MembershipConfig,
        rng: R,
        now: Instant,
    ) -> Result<Self, MembershipError> {
        config.validate()?;
        Ok(Self {
            table: Table::new(config.max_members.get()),
            rumours: Rumours::new(config.max_members.get()),
            relays: BTreeMap::new(),
            next_probe: 1,
            cursor: None,
            next_discover: now,
            backoff: config.rediscover_min,
            status: AnnounceStatus::default(),
            left: false,
            actions: VecDeque::new(),
            stats: MembershipStats::default(),
            clock: None,
            me,
            config,
            rng,
        })
    }

    /// Updates what `Announce` says about this node (leader, term, client count).
    pub fn set_announce_status(&mut self, status: AnnounceStatus) {
        self.status = status;
    }

    /// Leaves gracefully: sends `Leave` to every live member. Afterwards every input is
    /// ignored, `poll_timeout` is `None`, and only the queued `Leave`s remain to be drained.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let msg = PeerBody::Discovery(DiscoveryMsg::Leave {
            node: self.me.node,
            incarnation: self.me.incarnation,
        });
        let live: Vec<_> = self
            .table
            .iter()
            .filter(|(_, m)| m.phase.is_live())
            .map(|(id, m)| (*id, m.info.peer_addr))
            .collect();
        for (node, addr) in live {
            self.push(Action::Send { node, addr, msg: msg.clone() });
        }
        self.left = true;
        self.relays.clear();
        self.after_input(now);
    }

    /// The next output, in the order produced. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline: call `handle_timeout` then (earlier or later calls are harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let members = self.table.iter().map(|(_, m)| m.deadline(&self.config));
        let relays = self.relays.values().map(|r| r.expires);
        members.chain(relays).chain([self.next_discover]).min()
    }

    /// This node's own identity and addresses.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// The settings.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// Counters of ignored input and dropped output.
    pub fn stats(&self) -> MembershipStats {
        self.stats
    }

    /// Whether [`Membership::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// One member, if in the table.
    pub fn member(&self, node: &NodeId) -> Option<MemberView> {
        self.table.get(node).map(|m| m.view())
    }

    /// Every member in the table (tombstones included), in `NodeId` order.
    pub fn members(&self) -> impl Iterator<Item = MemberView> + '_ {
        self.table.iter().map(|(_, m)| m.view())
    }

    /// The members currently `Alive` or `Suspect`, in `NodeId` order (self excluded).
    pub fn live_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.table.iter().filter(|(_, m)| m.phase.is_live()).map(|(id, _)| *id)
    }

    /// Asserts the invariants listed on [`Membership`]. Runs after every input in debug
    /// builds; tests may call it any time.
    ///
    /// # Panics
    /// If an invariant does not hold (a bug in this crate).
    pub fn check_invariants(&self) {
        self.table.check_invariants();
        self.rumours.check_invariants();
        assert!(self.table.get(&self.me.node).is_none(), "self in the member table");
        assert!(self.actions.len() <= self.config.max_actions.get(), "action queue over bound");
        assert!(self.relays.len() <= self.config.max_relays.get(), "relays over bound");
        assert!(self.rumours.ids().all(|id| self.table.get(id).is_some()), "rumour of no member");
        assert!(self.relays.keys().all(|p| *p < self.next_probe), "relay of an unsent probe");
        if self.left {
            assert!(self.relays.is_empty(), "relaying after leave");
        }
    }

    /// Runs after every input.
    pub(crate) fn after_input(&mut self, _now: Instant) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Queues an action, or drops and counts it when the queue is full.
    pub(crate) fn push(&mut self, action: Action) {
        if self.actions.len() >= self.config.max_actions.get() {
            self.stats.dropped_actions += 1;
            return;
        }
        self.actions.push_back(action);
    }

    pub(crate) fn emit(&mut self, event: MembershipEvent) {
        self.push(Action::Event(event));
    }

    pub(crate) fn take_probe_number(&mut self) -> u64 {
        let p = self.next_probe;
        self.next_probe = self.next_probe.wrapping_add(1).max(1);
        p
    }

    /// Starts spreading news about `node`.
    pub(crate) fn spread(&mut self, node: NodeId) {
        let sends = sends_for(self.config.gossip_multiplier.get(), self.table.len() + 1);
        self.rumours.spread(node, sends);
    }

    /// The updates to piggy-back on one `Ping` or `Ack`: ourselves, pending rumours, then one
    /// `Alive` member by rotation (anti-entropy, so a member that missed a rumour still learns).
    pub(crate) fn updates(&mut self) -> Vec<MemberUpdate> {
        let room = self.config.max_updates.get();
        let mut out = vec![MemberUpdate { info: self.me.clone(), state: MemberState::Alive }];
        for id in self.rumours.take(room.saturating_sub(1)) {
            if let Some(u) = self.table.get(&id).and_then(gossip_update) {
                out.push(u);
            }
        }
        if out.len() < room {
            let after = self.cursor;
            let next = self
                .table
                .iter()
                .filter(|(id, m)| {
                    after.is_none_or(|c| **id > c) && matches!(m.phase, Phase::Alive(_))
                })
                .map(|(id, _)| *id)
                .next();
            self.cursor = next;
            let fresh = next.and_then(|id| self.table.get(&id)).and_then(gossip_update);
            if let Some(u) = fresh.filter(|u| out.iter().all(|o| o.info.node != u.info.node)) {
                out.push(u);
            }
        }
        out
    }

    pub(crate) fn ping(&mut self, probe: u64, now: Instant) -> PeerBody {
        let updates = self.updates();
        let wall = self.wall_now(now).unwrap_or(Timestamp(0));
        PeerBody::Membership(MembershipMsg::Ping { probe, updates, wall })
    }

    /// The wall clock at `now`, from the last reading (`handle_wall_clock`).
    pub(crate) fn wall_now(&self, now: Instant) -> Option<Timestamp> {
        self.clock.map(|c| c.wall_at(now))
    }

    /// The wall clock reads `wall` at `now` (pings carry it; clock skew is measured from it).
    pub fn handle_wall_clock(&mut self, wall: Timestamp, now: Instant) {
        self.clock = Some(auction_proto::WallAnchor { wall, at: now });
    }

    /// Each live member's wall clock minus this node's, in milliseconds, as measured from
    /// its pings (members not measured yet are left out).
    pub fn clock_offsets(&self) -> Vec<(NodeId, i64)> {
        self.table
            .iter()
            .filter(|(_, m)| matches!(m.phase, Phase::Alive(_) | Phase::Suspect { .. }))
            .filter_map(|(id, m)| m.clock_offset.map(|o| (*id, o)))
            .collect()
    }

    pub(crate) fn send_to(&mut self, node: NodeId, msg: PeerBody) {
        if let Some(addr) = self.table.get(&node).map(|m| m.info.peer_addr) {
            self.push(Action::Send { node, addr, msg });
        }
    }

    pub(crate) fn addr_of(&self, node: &NodeId) -> Option<SocketAddr> {
        self.table.get(node).map(|m| m.info.peer_addr)
    }
}

/// What we gossip about a member: only `Alive` and `Left` (first-hand facts, see `gossip`).
/// A member we suspect is not vouched for: a receiver that does not know it would admit it
/// with a fresh timer, so a crashed member would outlive its detection bound there.
fn gossip_update(m: &crate::table::Member) -> Option<MemberUpdate> {
    let state = match m.phase {
        Phase::Alive(_) => MemberState::Alive,
        Phase::Left { .. } => MemberState::Left,
        Phase::Suspect { .. } | Phase::Down { .. } => return None,
    };
    Some(MemberUpdate { info: m.info.clone(), state })
}
