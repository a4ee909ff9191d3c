//! Unit tests: one replica, exact composition behaviour.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::time::{Duration, Instant};

use auction_proto::msg::discovery::DiscoveryMsg;
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{ConfigChange, EntryPayload};
use auction_proto::msg::peer::{MembershipMsg, PeerBody};
use auction_proto::{Addressee, Incarnation, InstanceId, NodeId, Seq, Timestamp};

use crate::{Action, Durable, Replica, ReplicaConfig, Start};

fn info(n: u8) -> NodeInfo {
    NodeInfo {
        node: NodeId::from_bytes([n; 16]),
        incarnation: Incarnation(1),
        peer_addr: format!("10.0.0.{n}:7000").parse().unwrap(),
        client_addr: format!("10.0.0.{n}:7001").parse().unwrap(),
    }
}

fn drain(r: &mut Replica, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = r.poll_action() {
        if let Action::Store { id, .. } | Action::InstallSnapshot { id, .. } = &a {
            r.handle_stored(*id, now);
        }
        out.push(a);
    }
    out
}

fn instance(b: u8) -> InstanceId {
    InstanceId::from_bytes([b; 16])
}

fn bootstrap() -> Start {
    Start::Bootstrap { instance: instance(7) }
}

/// A founder on an empty disk, past its probe.
fn founder(now: Instant) -> (Replica, Vec<Action>) {
    let rng = 1;
    let cfg = ReplicaConfig::default();
    let probe = cfg.bootstrap_probe;
    let mut r = Replica::new(info(1), bootstrap(), Durable::default(), cfg, rng, now).unwrap();
    r.handle_wall_clock(Timestamp(1_000), now);
    let mut actions = drain(&mut r, now);
    assert!(r.is_probing() && !r.is_leading());
    r.handle_timeout(now + probe);
    r.handle_wall_clock(Timestamp(1_000 + probe.as_millis() as u64), now + probe);
    actions.extend(drain(&mut r, now + probe));
    (r, actions)
}

#[test]
fn bootstrap_probes_then_founds_and_leads_alone() {
    let now = Instant::now();
    let (mut r, actions) = founder(now);
    assert!(r.is_leading(), "{actions:?}");
    assert!(actions.contains(&Action::PersistInstance { instance: instance(7) }), "{actions:?}");
    assert_eq!(r.instance(), Some(instance(7)));
    assert!(actions.iter().any(|a| matches!(a, Action::PersistTerm { .. })));
    assert_eq!(r.applied(), Seq(2));
    assert_eq!(r.leader(), Some(info(1).node));
    r.check_invariants();
    let later = now + Duration::from_secs(4);
    r.handle_timeout(later);
    drain(&mut r, later);
    assert!(r.is_leading());
}

#[test]
fn join_waits_to_be_added() {
    let now = Instant::now();
    let rng = 1;
    let cfg = ReplicaConfig::default();
    let mut r = Replica::new(info(2), Start::Join, Durable::default(), cfg, rng, now).unwrap();
    drain(&mut r, now);
    r.handle_timeout(now + Duration::from_secs(5));
    drain(&mut r, now);
    assert!(!r.is_member());
    assert_eq!(r.leader(), None);
}

#[test]
fn a_snapshot_that_does_not_decode_halts_the_replica() {
    use auction_proto::msg::peer::{OrderingMsg, PeerBody};
    use auction_proto::{LogPosition, Term};
    let now = Instant::now();
    let rng = 1;
    let cfg = ReplicaConfig::default();
    let mut r = Replica::new(info(2), Start::Join, Durable::default(), cfg, rng, now).unwrap();
    drain(&mut r, now);
    let snapshot = OrderingMsg::Snapshot {
        term: Term(1),
        last_included: LogPosition { term: Term(1), seq: Seq(10) },
        members: vec![info(1), info(2)],
        offset: 0,
        chunk: vec![0xff; 64],
        done: true,
    };
    r.handle_peer(info(1).node, Incarnation(1), PeerBody::Ordering(snapshot), now);
    let actions = drain(&mut r, now);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Halt { .. })),
        "garbage state must stop the node, not be installed: {actions:?}"
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::InstallSnapshot { .. })));
}

#[test]
fn bootstrap_on_an_empty_disk_refuses_to_fork_a_running_cluster() {
    let now = Instant::now();
    let rng = 1;
    let cfg = ReplicaConfig::default();
    let mut r = Replica::new(info(1), bootstrap(), Durable::default(), cfg, rng, now).unwrap();
    drain(&mut r, now);
    assert!(r.is_probing());
    // The seal adopted the instance of a member that answered the probe.
    r.handle_instance(instance(3), now);
    let actions = drain(&mut r, now);
    assert_eq!(actions, vec![Action::BootstrapRefused { instance: instance(3) }]);
    let later = now + Duration::from_secs(10);
    r.handle_timeout(later);
    let actions = drain(&mut r, later);
    assert!(!r.is_leading() && !r.is_member() && !r.is_probing(), "{actions:?}");
    assert!(!actions.iter().any(|a| matches!(a, Action::PersistInstance { .. })));
}

#[test]
fn bootstrap_with_its_instance_on_disk_founds_at_once() {
    let now = Instant::now();
    let rng = 1;
    let durable = Durable { instance: Some(instance(4)), ..Durable::default() };
    let cfg = ReplicaConfig::default();
    let mut r = Replica::new(info(1), bootstrap(), durable, cfg, rng, now).unwrap();
    r.handle_wall_clock(Timestamp(1_000), now);
    drain(&mut r, now);
    assert!(!r.is_probing());
    assert!(r.is_leading());
    assert_eq!(r.instance(), Some(instance(4)));
}

fn discover(n: u8) -> DiscoveryMsg {
    DiscoveryMsg::Discover { from: info(n) }
}

fn adds(actions: &[Action]) -> bool {
    actions.iter().any(|a| match a {
        Action::Store { entries, .. } => entries
            .iter()
            .any(|e| matches!(e.payload, EntryPayload::Config(ConfigChange::AddMember(_)))),
        _ => false,
    })
}

#[test]
fn unaddressed_discovery_makes_a_server_known_but_never_a_member() {
    let now = Instant::now();
    let (mut r, _) = founder(now);
    let t = now + Duration::from_secs(4);
    r.handle_unaddressed(info(2).node, Incarnation(1), discover(2), t);
    let actions = drain(&mut r, t);
    // It answers, addressed to the boot the Discover came from.
    let to = Some(Addressee { node: info(2).node, incarnation: Incarnation(1) });
    assert!(
        actions.iter().any(|a| matches!(a, Action::Send { receiver, .. } if *receiver == to)),
        "{actions:?}"
    );
    let later = t + Duration::from_secs(1);
    r.handle_timeout(later);
    assert!(!adds(&drain(&mut r, later)), "added on the strength of an unaddressed frame");
    // An unaddressed Leave (a replay of a broadcast, say) is ignored.
    let leave = DiscoveryMsg::Leave { node: info(2).node, incarnation: Incarnation(1) };
    r.handle_unaddressed(info(2).node, Incarnation(1), leave, later);
    drain(&mut r, later);
    assert_eq!(r.learners(), vec![], "not even a learner");
    // An addressed frame vouches for it: the leader replicates to it as a learner, and
    // makes it a voter once it has been caught up for the stabilization time.
    let ping = MembershipMsg::Ping { probe: 1, updates: vec![], wall: auction_proto::Timestamp(0) };
    r.handle_peer(info(2).node, Incarnation(1), PeerBody::Membership(ping), later);
    let actions = drain(&mut r, later);
    assert!(actions.contains(&Action::Learners { learners: vec![info(2).node] }), "{actions:?}");
    assert!(!adds(&actions), "a voter at once: {actions:?}");
    // It stays alive and caught up: promoted once the stabilization time has passed.
    let stable = later + ReplicaConfig::default().promote_after + Duration::from_millis(100);
    let mut at = later;
    let mut promoted = None;
    while at <= stable + Duration::from_secs(1) && promoted.is_none() {
        let ping =
            MembershipMsg::Ping { probe: 2, updates: vec![], wall: auction_proto::Timestamp(0) };
        r.handle_peer(info(2).node, Incarnation(1), PeerBody::Membership(ping), at);
        drain(&mut r, at);
        if adds(&caught_up(&mut r, 2, at)) {
            promoted = Some(at);
        }
        at += Duration::from_millis(500);
    }
    let promoted = promoted.expect("promoted after the stabilization time");
    assert!(promoted >= later + ReplicaConfig::default().promote_after, "promoted too early");
}

/// Node `n` acknowledges the leader's whole log, as a learner that caught up does; then a
/// tick. Returns the actions.
fn caught_up(r: &mut Replica, n: u8, now: Instant) -> Vec<Action> {
    use auction_proto::msg::peer::OrderingMsg;
    let stored = r.ordering.last_log().seq;
    let ack = OrderingMsg::Ack { term: r.term(), stored };
    r.handle_peer(info(n).node, Incarnation(1), PeerBody::Ordering(ack), now);
    let mut actions = drain(r, now);
    let tick = now + Duration::from_millis(60);
    r.handle_timeout(tick);
    actions.extend(drain(r, tick));
    actions
}

#[test]
fn a_short_lived_server_never_becomes_a_voter() {
    let now = Instant::now();
    let (mut r, _) = founder(now);
    let t = now + Duration::from_secs(4);
    let ping = MembershipMsg::Ping { probe: 1, updates: vec![], wall: auction_proto::Timestamp(0) };
    r.handle_unaddressed(info(2).node, Incarnation(1), discover(2), t);
    r.handle_peer(info(2).node, Incarnation(1), PeerBody::Membership(ping), t);
    drain(&mut r, t);
    // Alive and caught up for 5 s, then gone (less than the 10 s stabilization time).
    let mut at = t;
    for _ in 0..10 {
        let ping =
            MembershipMsg::Ping { probe: 2, updates: vec![], wall: auction_proto::Timestamp(0) };
        r.handle_peer(info(2).node, Incarnation(1), PeerBody::Membership(ping), at);
        assert!(!adds(&caught_up(&mut r, 2, at)), "a voter before the stabilization time");
        at += Duration::from_millis(500);
    }
    // Never added.
    for _ in 0..40 {
        at += Duration::from_millis(500);
        r.handle_timeout(at);
        assert!(!adds(&drain(&mut r, at)), "a server that lived 5 s became a voter");
    }
    assert_eq!(r.members(), vec![info(1).node]);
}

#[test]
fn a_frame_for_an_old_boot_is_answered_with_this_boot() {
    let now = Instant::now();
    let (mut r, _) = founder(now);
    let t = now + Duration::from_secs(4);
    r.handle_unaddressed(info(2).node, Incarnation(1), discover(2), t);
    drain(&mut r, t);
    // Node 2 restarted (incarnation 2) and sent to an earlier boot of this node.
    r.handle_misaddressed(info(2).node, Incarnation(2), t);
    let actions = drain(&mut r, t);
    let to = Some(Addressee { node: info(2).node, incarnation: Incarnation(2) });
    let hello = PeerBody::Discovery(DiscoveryMsg::Discover { from: info(1) });
    assert_eq!(actions, vec![Action::Send { to: info(2).peer_addr, receiver: to, body: hello }]);
    // Rate-limited.
    r.handle_misaddressed(info(2).node, Incarnation(2), t);
    assert_eq!(drain(&mut r, t), vec![]);
}

/// A confirmation of a write the replica never asked for is a driver bug, and acknowledging it
/// could count a write that is not on disk: it stops the replica instead of being ignored.
#[test]
#[should_panic(expected = "not outstanding")]
fn confirming_a_write_that_was_never_issued_is_a_bug() {
    let now = Instant::now();
    let (mut r, _) = founder(now);
    r.handle_stored(auction_ordering::StoreId(u64::MAX), now);
}
