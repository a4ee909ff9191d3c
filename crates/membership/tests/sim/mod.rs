//! A cluster of real membership cores over the testkit network (shared by the property tests
//! and the `detector_tradeoff` example).

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use auction_membership::{Action, Membership, MembershipConfig, MembershipEvent, Origin};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::peer::PeerBody;
use auction_proto::{Incarnation, NodeId};
use auction_testkit::{Dest, NetConfig, Network, Outgoing, SimNode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The simulated subnet's broadcast address (the discovery target of every node).
pub const BROADCAST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 255)), 7000);

/// What travels: the envelope's sender and the body (the codec's job in the real node).
#[derive(Clone, Debug)]
pub struct Frame {
    pub origin: Origin,
    pub body: PeerBody,
}

/// One node: the core, plus its events for the checks.
#[derive(Debug)]
pub struct SimMember {
    pub core: Membership<ChaCha8Rng>,
    pub events: Vec<(Instant, MembershipEvent)>,
    origin: Origin,
    out: Vec<Outgoing<SocketAddr, Frame>>,
}

impl SimMember {
    fn collect(&mut self, now: Instant) {
        while let Some(action) = self.core.poll_action() {
            let (to, body) = match action {
                Action::Send { addr, msg, .. } => (Dest::To(addr), msg),
                Action::Broadcast { to, msg } if to == BROADCAST => (Dest::Broadcast, msg),
                Action::Broadcast { to, msg } => (Dest::To(to), msg),
                Action::Event(e) => {
                    self.events.push((now, e));
                    continue;
                }
            };
            self.out.push(Outgoing { to, msg: Frame { origin: self.origin, body } });
        }
    }

    /// Live members as this node sees them, itself included.
    pub fn view(&self) -> BTreeSet<NodeId> {
        let mut v: BTreeSet<NodeId> = self.core.live_members().collect();
        v.insert(self.core.me().node);
        v
    }
}

impl SimNode for SimMember {
    type Addr = SocketAddr;
    type Msg = Frame;

    fn handle_message(&mut self, _from: SocketAddr, f: Frame, now: Instant) {
        match f.body {
            PeerBody::Discovery(m) => self.core.handle_discovery(f.origin, m, now),
            PeerBody::Membership(m) => self.core.handle_membership(f.origin, m, now),
            PeerBody::Election(_) | PeerBody::Ordering(_) => self.core.handle_heard(f.origin, now),
        }
        self.collect(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.collect(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn drain_outgoing(&mut self) -> Vec<Outgoing<SocketAddr, Frame>> {
        std::mem::take(&mut self.out)
    }
}

pub fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

pub fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 7000))
}

/// A cluster of nodes `1..=n` on one simulated subnet.
#[derive(Debug)]
pub struct Cluster {
    pub net: Network<SimMember>,
    pub config: MembershipConfig,
    /// Current incarnation of every node ever started.
    pub incarnations: BTreeMap<u8, u64>,
}

impl Cluster {
    pub fn new(seed: u64, n: u8, config: MembershipConfig, net: NetConfig) -> Self {
        let config = MembershipConfig { discovery_targets: vec![BROADCAST], ..config };
        let mut c = Self { net: Network::new(seed, net), config, incarnations: BTreeMap::new() };
        for i in 1..=n {
            c.start(i);
        }
        c
    }

    /// Starts node `i` (again, with the next incarnation, if it ran before).
    pub fn start(&mut self, i: u8) {
        let inc = self.incarnations.entry(i).and_modify(|k| *k += 1).or_insert(1);
        let info = NodeInfo {
            node: id(i),
            incarnation: Incarnation(*inc),
            peer_addr: addr(i),
            client_addr: SocketAddr::from(([10, 0, 0, i], 7001)),
        };
        let origin = Origin { node: info.node, incarnation: info.incarnation };
        let seed = self.net.seed() ^ (u64::from(i) << 32) ^ *inc;
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let now = self.net.now();
        let core = Membership::new(info, self.config.clone(), rng, now)
            .unwrap_or_else(|e| panic!("invalid config: {e}"));
        let node = SimMember { core, events: Vec::new(), origin, out: Vec::new() };
        self.net.add_node(addr(i), node);
    }

    pub fn crash(&mut self, i: u8) {
        self.net.crash(&addr(i));
    }

    /// Node `i` leaves gracefully, then its process exits.
    pub fn leave(&mut self, i: u8) {
        let now = self.net.now();
        if let Some(n) = self.net.node_mut(&addr(i)) {
            n.core.leave(now);
            n.collect(now);
        }
        self.net.flush(addr(i));
        self.net.crash(&addr(i));
    }

    pub fn is_up(&self, i: u8) -> bool {
        self.net.node(&addr(i)).is_some()
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> BTreeSet<NodeId> {
        self.net.nodes().map(|(_, n)| n.core.me().node).collect()
    }

    /// Whether every running node's view is exactly the running set.
    pub fn converged(&self) -> bool {
        let truth = self.running();
        self.net.nodes().all(|(_, n)| n.view() == truth)
    }

    /// Every `Down` event so far: `(at node, about, when)`.
    pub fn downs(&self) -> Vec<(NodeId, NodeId, Instant)> {
        let mut out = Vec::new();
        for (_, n) in self.net.nodes() {
            for (t, e) in &n.events {
                if let MembershipEvent::Down(x) = e {
                    out.push((n.core.me().node, *x, *t));
                }
            }
        }
        out
    }

    /// Counts `Suspect` events across running nodes.
    pub fn suspicions(&self) -> usize {
        let is_suspect =
            |(_, e): &&(Instant, MembershipEvent)| matches!(e, MembershipEvent::Suspect(_));
        self.net.nodes().map(|(_, n)| n.events.iter().filter(is_suspect).count()).sum()
    }
}
