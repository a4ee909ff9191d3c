//! Binding frames to their receiver's boot, what unaddressed discovery may do, the cluster
//! instance, and the bootstrap probe.
//!
//! Every frame a replica sends to a member is sealed for that member's node id *and
//! incarnation* (see `auction_proto::seal`), so a captured frame cannot be replayed to another
//! member or to a restarted one. The replica learns incarnations only from authenticated
//! frames (the envelope's sender), keeps the highest, and falls back to what membership or the
//! configuration last said. A guess that is stale is refused by the receiver, which then
//! tells the sender its current incarnation ([`Replica::handle_misaddressed`]): one `Discover`
//! addressed back. Where nothing is known, only discovery goes out, unaddressed.
//!
//! Unaddressed discovery (broadcasts, `--join` probes, and anything replayed from them) can
//! make a server *known*, never a member: the leader adds a server only after an addressed
//! frame from it (one sent to this incarnation, which no capture from before can be), and a
//! `Leave` counts only when addressed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::discovery::DiscoveryMsg;
use auction_proto::msg::peer::PeerBody;
use auction_proto::{Addressee, Incarnation, InstanceId, NodeId};

use crate::replica::MAX_TRACKED_PEERS;
use crate::{Action, Replica};

/// At most one `Discover` sent to one peer per this long (answering misaddressed frames, or
/// asking a peer whose boot is unknown).
const HELLO_EVERY: Duration = Duration::from_millis(200);

/// What a replica knows of its peers' boots.
///
/// Invariants: every map holds at most `MAX_TRACKED_PEERS` entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peers {
    /// The highest incarnation of each peer seen in an authenticated frame.
    incarnations: BTreeMap<NodeId, Incarnation>,
    /// Peers that sent an addressed frame to this incarnation, and their incarnation then.
    vouched: BTreeMap<NodeId, Incarnation>,
    /// When a `Discover` last went to each peer.
    hellos: BTreeMap<NodeId, Instant>,
}

impl Peers {
    fn heard(&mut self, node: NodeId, inc: Incarnation, addressed: bool) {
        bounded_max(&mut self.incarnations, node, inc);
        if addressed {
            bounded_max(&mut self.vouched, node, inc);
        }
    }

    /// Whether `node` sent an addressed frame to this incarnation, in its current boot.
    pub(crate) fn is_vouched(&self, node: NodeId) -> bool {
        self.vouched.get(&node).is_some_and(|i| Some(i) == self.incarnations.get(&node))
    }

    fn hello_due(&mut self, node: NodeId, now: Instant) -> bool {
        let due = self.hellos.get(&node).is_none_or(|at| now >= *at + HELLO_EVERY);
        if due {
            if !self.hellos.contains_key(&node) && self.hellos.len() >= MAX_TRACKED_PEERS {
                self.hellos.retain(|_, at| now < *at + HELLO_EVERY);
                if self.hellos.len() >= MAX_TRACKED_PEERS {
                    return false;
                }
            }
            self.hellos.insert(node, now);
        }
        due
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.incarnations.len() <= MAX_TRACKED_PEERS, "incarnations over bound");
        assert!(self.vouched.len() <= MAX_TRACKED_PEERS, "vouched over bound");
        assert!(self.hellos.len() <= MAX_TRACKED_PEERS, "hellos over bound");
    }
}

/// Raises `map[node]` to `inc`; a new node is dropped when the map is full (a peer that
/// cannot be tracked is asked again by discovery).
fn bounded_max(map: &mut BTreeMap<NodeId, Incarnation>, node: NodeId, inc: Incarnation) {
    let full = map.len() >= MAX_TRACKED_PEERS;
    match map.get_mut(&node) {
        Some(known) => *known = (*known).max(inc),
        None if !full => {
            map.insert(node, inc);
        }
        None => {}
    }
}

impl Replica {
    /// The cluster instance this node founded or joined.
    pub fn instance(&self) -> Option<InstanceId> {
        self.instance
    }

    /// Whether this node waits, told to bootstrap, to see if a cluster already exists.
    pub fn is_probing(&self) -> bool {
        self.probing.is_some()
    }

    /// An authenticated frame from `from` in `incarnation`, *not* addressed to this node
    /// (broadcast or `--join` discovery). It can make `from` known, never a member, and a
    /// `Leave` in it is ignored (a real one is addressed to each member).
    pub fn handle_unaddressed(
        &mut self,
        from: NodeId,
        incarnation: Incarnation,
        msg: DiscoveryMsg,
        now: Instant,
    ) {
        self.peers.heard(from, incarnation, false);
        if !matches!(msg, DiscoveryMsg::Leave { .. }) {
            self.handle_discovery(from, incarnation, msg, now);
        }
        self.after_input(now);
    }

    /// An authenticated frame from `from` in `incarnation` was refused because it was
    /// addressed to an earlier boot of this node: tell `from` this boot (rate-limited).
    pub fn handle_misaddressed(&mut self, from: NodeId, incarnation: Incarnation, now: Instant) {
        self.peers.heard(from, incarnation, false);
        if let Some(addr) = self.peer_addr(from) {
            self.hello(from, addr, now);
        }
        self.after_input(now);
    }

    /// The driver's seal adopted `instance` from a frame addressed to this node (a node that
    /// had none joins the first instance that talks to it). The driver persists it.
    pub fn handle_instance(&mut self, instance: InstanceId, now: Instant) {
        if self.instance.is_some() {
            return;
        }
        self.instance = Some(instance);
        if self.probing.take().is_some() {
            self.actions.push_back(Action::BootstrapRefused { instance });
            return;
        }
        self.after_input(now);
    }

    /// Ends the bootstrap probe once it is due, founding the instance.
    pub(crate) fn probe_timeout(&mut self, now: Instant) {
        if let Some((until, instance)) = self.probing {
            if now >= until {
                self.probing = None;
                self.found(instance, now);
            }
        }
    }

    /// Founds `instance`: persists it, writes the `Bootstrap` entry, and leads.
    pub(crate) fn found(&mut self, instance: InstanceId, now: Instant) {
        self.instance = Some(instance);
        self.actions.push_back(Action::PersistInstance { instance });
        let _ = self.ordering.handle_bootstrap(vec![self.me.clone()], now);
        self.pump(now);
        self.election.start(now);
    }

    /// Records the sender of an addressed frame.
    pub(crate) fn heard_addressed(&mut self, from: NodeId, incarnation: Incarnation) {
        self.peers.heard(from, incarnation, true);
    }

    /// The boot a frame to `node` is sealed for: what its own frames said, else what
    /// membership or the configuration last said.
    fn addressee(&self, node: NodeId) -> Option<Addressee> {
        let inc = self.peers.incarnations.get(&node).copied().or_else(|| {
            self.membership.member(&node).map(|m| m.info.incarnation).or_else(|| {
                self.ordering.members().iter().find(|m| m.node == node).map(|m| m.incarnation)
            })
        });
        inc.map(|incarnation| Addressee { node, incarnation })
    }

    fn peer_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.membership.member(&node).map(|m| m.info.peer_addr).or_else(|| {
            self.ordering.members().iter().find(|m| m.node == node).map(|m| m.peer_addr)
        })
    }

    /// Sends to a member by id: its address from membership, else from the configuration.
    pub(crate) fn route(&mut self, to: NodeId, body: PeerBody) {
        match self.peer_addr(to) {
            Some(addr) => self.send_to(to, addr, body),
            None => self.stats.unroutable += 1,
        }
    }

    /// Sends `body` to `node` at `addr`, sealed for its boot. With its boot unknown, only
    /// discovery goes (unaddressed); anything else is dropped (the protocols resend) and a
    /// `Discover` asks the peer to show itself.
    pub(crate) fn send_to(&mut self, node: NodeId, addr: SocketAddr, body: PeerBody) {
        if addr == self.me.peer_addr || node == self.me.node {
            self.stats.unroutable += 1;
            return;
        }
        let receiver = self.addressee(node);
        if receiver.is_none() && !matches!(body, PeerBody::Discovery(_)) {
            self.stats.unroutable += 1;
            let now = self.now;
            self.hello(node, addr, now);
            return;
        }
        self.actions.push_back(Action::Send { to: addr, receiver, body });
    }

    fn hello(&mut self, node: NodeId, addr: SocketAddr, now: Instant) {
        if self.peers.hello_due(node, now) {
            let receiver = self.addressee(node);
            let body = PeerBody::Discovery(DiscoveryMsg::Discover { from: self.me.clone() });
            self.actions.push_back(Action::Send { to: addr, receiver, body });
        }
    }
}
