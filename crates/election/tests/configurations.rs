//! Elections while logs hold different configurations (the relay rule).

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use auction_election::{Action, Election, ElectionConfig, PersistentState};
use auction_proto::msg::peer::ElectionMsg;
use auction_proto::{LogPosition, NodeId, Seq, Term};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn id(i: u8) -> NodeId {
    NodeId::from_bytes([i; 16])
}

/// ids W=1 < P=2 < R=3; Q1=4, Q2=5. Old config {1,3,4,5}.
/// Term 5 leader 1 appended Add(2) (held by 1 and 2 only, log (5,10)).
/// Term 6 leader 4 committed a noop (6,11) with {3,4,5} and Remove(3) (6,12), held by 3,4,5,
/// committed by {4,5} in {1,4,5}. Node 3 is outside its own configuration: a relay.
/// Partition {4,5} | {1,2,3}, accurate detectors. Node 3 restarted (Idle at term 6).
/// Node 5 wins term 7 with {4, 5}, a majority of {1, 4, 5}. Before relays checked the
/// candidate's log against their own, node 3 relayed and voted for node 2, whose stale
/// configuration counted {1, 2, 3} as a majority of five: two leaders in term 7.
#[test]
fn a_relay_does_not_let_a_stale_configuration_elect_a_second_leader() {
    let now = Instant::now();
    // The bare ring election: with the pre-vote, node 1 and relay 3 would not both let node 2
    // stand, and the vote rule under test would not be reached.
    let cfg = ElectionConfig {
        election_timeout: Duration::from_millis(300),
        max_backoff: Duration::ZERO,
        pre_vote: false,
        ..ElectionConfig::default()
    };
    let p = PersistentState { term: Term(6), accepted: None };
    let spec: [(u8, &[u8], (u64, u64)); 5] = [
        (1, &[1, 2, 3, 4, 5], (5, 10)),
        (2, &[1, 2, 3, 4, 5], (5, 10)),
        (3, &[1, 4, 5], (6, 12)),
        (4, &[1, 4, 5], (6, 12)),
        (5, &[1, 4, 5], (6, 12)),
    ];
    let mut nodes: BTreeMap<u8, Election<ChaCha8Rng>> = BTreeMap::new();
    for (me, members, (t, s)) in spec {
        let mut e = Election::new(
            id(me),
            members.iter().map(|&i| id(i)),
            p,
            ChaCha8Rng::seed_from_u64(u64::from(me)),
            cfg.clone(),
        );
        e.handle_last_log(LogPosition { term: Term(t), seq: Seq(s) });
        nodes.insert(me, e);
    }
    let side = |n: u8| n >= 4;
    for (me, e) in nodes.iter_mut() {
        for other in 1..=5u8 {
            if side(other) != side(*me) {
                e.handle_down(id(other));
            }
        }
    }
    nodes.get_mut(&2).unwrap().start(now);
    nodes.get_mut(&5).unwrap().start(now);
    let mut q: VecDeque<(u8, u8, ElectionMsg)> = VecDeque::new();
    let mut leaders = Vec::new();
    let mut votes: BTreeMap<u8, Option<NodeId>> = BTreeMap::new();
    loop {
        for (me, e) in nodes.iter_mut() {
            while let Some(a) = e.poll_action() {
                match a {
                    Action::Send { to, msg } => {
                        let to = (1..=5u8).find(|i| id(*i) == to).unwrap();
                        if side(to) == side(*me) {
                            q.push_back((*me, to, msg));
                        }
                    }
                    Action::Elected { term, leader, participants } => {
                        leaders.push((term, leader, participants))
                    }
                    Action::PersistTerm { accepted, .. } => {
                        votes.insert(*me, accepted);
                    }
                    _ => {}
                }
            }
        }
        let Some((from, to, msg)) = q.pop_front() else { break };
        let _ = nodes.get_mut(&to).unwrap().handle_message(id(from), msg, now);
    }
    let in7: Vec<NodeId> = leaders.iter().filter(|l| l.0 == Term(7)).map(|l| l.1).collect();
    assert_eq!(in7, vec![id(5)], "one leader in term 7; votes {votes:?}");
    assert_ne!(votes.get(&3), Some(&Some(id(2))), "the relay refused the stale candidate");
}
