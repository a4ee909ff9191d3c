//! Unit tests: one input, exact actions.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

mod detector;
mod discovery;
mod limits;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::discovery::{DiscoveryMsg, NodeInfo};
use auction_proto::msg::peer::{MemberState, MemberUpdate, MembershipMsg, PeerBody};
use auction_proto::{Incarnation, NodeId};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Action, Membership, MembershipConfig, MembershipEvent, Origin};

type Core = Membership<ChaCha8Rng>;

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

fn info_inc(n: u8, inc: u64) -> NodeInfo {
    NodeInfo {
        node: id(n),
        incarnation: Incarnation(inc),
        peer_addr: addr(n, 7000),
        client_addr: addr(n, 7001),
    }
}

fn info(n: u8) -> NodeInfo {
    info_inc(n, 1)
}

fn addr(n: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], port))
}

fn origin(n: u8) -> Origin {
    Origin { node: id(n), incarnation: Incarnation(1) }
}

fn bcast() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 255], 7002))
}

fn config() -> MembershipConfig {
    MembershipConfig { discovery_targets: vec![bcast()], ..MembershipConfig::default() }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Node 1 at `t0`, with the start-up `Discover` already drained.
fn core_with(config: MembershipConfig) -> (Core, Instant) {
    let t0 = Instant::now();
    let mut m = Membership::new(info(1), config, ChaCha8Rng::seed_from_u64(0), t0).unwrap();
    m.handle_timeout(t0);
    drain(&mut m);
    (m, t0)
}

fn core() -> (Core, Instant) {
    core_with(config())
}

/// Node 1 knowing nodes `others` (all alive, first pings sent and answered), at `t0`.
fn core_knowing(others: &[u8]) -> (Core, Instant) {
    let (mut m, t0) = core();
    for &n in others {
        m.handle_discovery(origin(n), announce(n), t0);
    }
    m.handle_timeout(t0);
    for p in pings(&drain(&mut m)) {
        let (to, probe) = p;
        m.handle_membership(origin(to), ack(to, probe, vec![]), t0);
    }
    drain(&mut m);
    (m, t0)
}

fn drain(m: &mut Core) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn announce(n: u8) -> DiscoveryMsg {
    DiscoveryMsg::Announce { from: info(n), leader: None, term: Default::default(), clients: 0 }
}

fn alive(n: u8) -> MemberUpdate {
    MemberUpdate { info: info(n), state: MemberState::Alive }
}

fn ack(from: u8, probe: u64, mut rumours: Vec<MemberUpdate>) -> MembershipMsg {
    rumours.insert(0, alive(from));
    MembershipMsg::Ack { probe, target: id(from), updates: rumours }
}

fn ping(from: u8, probe: u64) -> MembershipMsg {
    MembershipMsg::Ping { probe, updates: vec![alive(from)], wall: auction_proto::Timestamp(0) }
}

/// `(node byte, probe)` of every `Ping` sent.
fn pings(actions: &[Action]) -> Vec<(u8, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                node,
                msg: PeerBody::Membership(MembershipMsg::Ping { probe, .. }),
                ..
            } => Some((node.as_bytes()[0], *probe)),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<MembershipEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn send(n: u8, msg: PeerBody) -> Action {
    Action::Send { node: id(n), addr: addr(n, 7000), msg }
}

fn state(m: &Core, n: u8) -> Option<MemberState> {
    m.member(&id(n)).map(|v| v.state)
}
