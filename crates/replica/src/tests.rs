//! Unit tests: one replica, exact composition behaviour.

use std::time::{Duration, Instant};

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::{Incarnation, NodeId, Seq, Timestamp};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Action, Durable, Replica, ReplicaConfig, Start};

fn info(n: u8) -> NodeInfo {
    NodeInfo {
        node: NodeId::from_bytes([n; 16]),
        incarnation: Incarnation(1),
        peer_addr: format!("10.0.0.{n}:7000").parse().unwrap(),
        client_addr: format!("10.0.0.{n}:7001").parse().unwrap(),
    }
}

fn drain(r: &mut Replica<ChaCha8Rng>, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    while let Some(a) = r.poll_action() {
        if let Action::Store { id, .. } | Action::InstallSnapshot { id, .. } = &a {
            r.handle_stored(*id, now);
        }
        out.push(a);
    }
    out
}

#[test]
fn bootstrap_leads_alone() {
    let now = Instant::now();
    let rng = ChaCha8Rng::seed_from_u64(1);
    let cfg = ReplicaConfig::default();
    let mut r = Replica::new(info(1), Start::Bootstrap, Durable::default(), cfg, rng, now).unwrap();
    r.handle_wall_clock(Timestamp(1_000), now);
    let actions = drain(&mut r, now);
    assert!(r.is_leading(), "{actions:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::PersistTerm { .. })));
    assert_eq!(r.applied(), Seq(2));
    assert_eq!(r.leader(), Some(info(1).node));
    r.check_invariants();
    let later = now + Duration::from_secs(1);
    r.handle_timeout(later);
    drain(&mut r, later);
    assert!(r.is_leading());
}

#[test]
fn join_waits_to_be_added() {
    let now = Instant::now();
    let rng = ChaCha8Rng::seed_from_u64(1);
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
    let rng = ChaCha8Rng::seed_from_u64(1);
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
