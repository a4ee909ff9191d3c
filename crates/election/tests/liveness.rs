//! Leader liveness over the testkit's lossy network: the leader's heartbeats keep a
//! majority that hears it from electing, and a node cut off never raises its term.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::Duration;

use auction_election::{ElectionConfig, Status};
use auction_proto::{LogPosition, Term};
use auction_testkit::NetConfig;
use common::Cluster;

/// A settled cluster of `n` with the default liveness settings, then `secs` of virtual time
/// with `drop` loss on every link: `(term before, term after, pre-vote messages)`.
fn lossy_run(seed: u64, n: usize, drop: f64, secs: u64) -> (Cluster, Term, Term, u64) {
    let logs = vec![LogPosition::default(); n];
    let mut c = Cluster::new(seed, NetConfig::default(), &logs, ElectionConfig::default());
    for id in c.ids.clone() {
        c.with(id, |e, now| e.start(now));
    }
    assert!(c.settle(Duration::from_secs(5)).is_some(), "seed {seed}: no leader");
    let leader = c.settled_leader().unwrap();
    let before = c.status(leader).unwrap().0;
    let pre_votes = c.log.borrow().pre_votes;
    let lossy = NetConfig { drop, ..NetConfig::default() };
    c.net.set_config(lossy);
    c.net.run_for(Duration::from_secs(secs));
    let after = c.ids.iter().filter_map(|id| c.status(*id)).map(|(t, _)| t).max().unwrap();
    let asked = c.log.borrow().pre_votes - pre_votes;
    (c, before, after, asked)
}

/// Issue 16: with 10 % loss on every link (the analysis in docs/election.md puts a
/// follower's false leader timeout at under 5·10⁻⁴ per second, and an election at under
/// 10⁻⁸), two minutes per seed of 3 and 5 nodes see no election: the term never moves and
/// the leader keeps leading.
#[test]
fn no_election_while_a_majority_hears_the_leader_with_10_percent_loss() {
    let mut asked = 0;
    for seed in 0..10 {
        for n in [3, 5] {
            let (c, before, after, pre_votes) = lossy_run(seed, n, 0.10, 120);
            assert_eq!(after, before, "seed {seed}, {n} nodes: an election happened");
            let leader = c.settled_leader();
            assert!(leader.is_some(), "seed {seed}, {n} nodes: the leader was lost");
            asked += pre_votes;
        }
    }
    eprintln!("pre-vote messages over 20 runs of 120 s: {asked}");
}

/// A follower cut off from everyone for a minute asks, with back-off, and its term never
/// moves; when the partition heals it follows the leader again, which never stopped leading.
#[test]
fn an_isolated_follower_never_raises_its_term_and_rejoins_without_an_election() {
    for seed in 0..10 {
        let logs = vec![LogPosition::default(); 3];
        let mut c = Cluster::new(seed, NetConfig::default(), &logs, ElectionConfig::default());
        for id in c.ids.clone() {
            c.with(id, |e, now| e.start(now));
        }
        assert!(c.settle(Duration::from_secs(5)).is_some());
        let leader = c.settled_leader().unwrap();
        let term = c.status(leader).unwrap().0;
        let cut = *c.ids.iter().find(|id| **id != leader).unwrap();
        let rest: Vec<_> = c.ids.iter().copied().filter(|id| *id != cut).collect();
        c.net.partition(&[cut], &rest);
        c.net.run_for(Duration::from_secs(60));
        assert_eq!(c.status(cut).unwrap().0, term, "seed {seed}: the cut-off node's term moved");
        assert_eq!(c.status(leader), Some((term, Status::Leading)), "seed {seed}");
        c.net.heal();
        c.net.run_for(Duration::from_secs(1));
        assert_eq!(c.status(cut), Some((term, Status::Following(leader))), "seed {seed}");
        assert_eq!(c.status(leader), Some((term, Status::Leading)), "seed {seed}");
    }
}

/// The leader dies: a follower notices within `2 × leader_timeout` of the last heartbeat,
/// and a new leader is elected in the next term (no waiting for the failure detector,
/// which this harness never runs here).
#[test]
fn a_dead_leader_is_replaced_without_the_failure_detector() {
    for seed in 0..20 {
        let logs = vec![LogPosition::default(); 3];
        let mut c = Cluster::new(seed, NetConfig::default(), &logs, ElectionConfig::default());
        for id in c.ids.clone() {
            c.with(id, |e, now| e.start(now));
        }
        assert!(c.settle(Duration::from_secs(5)).is_some());
        let old = c.settled_leader().unwrap();
        let term = c.status(old).unwrap().0;
        c.crash(old);
        // Far below the membership detector's 6 s; the election has no other hint here.
        c.net.run_for(Duration::from_millis(600));
        let leaders: Vec<_> =
            c.live().into_iter().filter(|id| c.status(*id).unwrap().1 == Status::Leading).collect();
        assert_eq!(leaders.len(), 1, "seed {seed}: {leaders:?}");
        let now = c.status(leaders[0]).unwrap().0;
        assert_eq!(now, Term(term.0 + 1), "seed {seed}: one election");
        c.check_safety().unwrap();
    }
}

/// `admin move-leader` (issue 16): the leader hands its leadership to a chosen member, which
/// wins the next term's election although (equal logs) LCR alone would elect the highest id.
/// Over 10 seeds of 3 and 5 members and every member as the nominee, a leader is always
/// elected within two terms, safely; the nominee wins in at least 9 of 10 hand-overs (it can
/// lose when its token overtakes the leader's `TimeoutNow` to another member, which then still
/// stands: the simulated network reorders freely, a LAN rarely by two hops).
#[test]
fn a_leader_hands_its_leadership_to_the_nominee() {
    // Equal, non-empty logs (every real member holds at least the bootstrap entry): a
    // demoted candidate carries the empty position, which only a non-empty log outranks.
    let last = LogPosition { term: Term(1), seq: auction_proto::Seq(5) };
    let (mut asked, mut won, mut retried) = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    for seed in 0..10 {
        for n in [3, 5] {
            let logs = vec![last; n];
            let mut c = Cluster::new(seed, NetConfig::default(), &logs, ElectionConfig::default());
            for id in c.ids.clone() {
                c.with(id, |e, now| e.start(now));
            }
            assert!(c.settle(Duration::from_secs(5)).is_some(), "seed {seed}: no leader");
            for nominee in c.ids.clone() {
                let leader = c.settled_leader().unwrap();
                let term = c.status(leader).unwrap().0;
                let mut started = false;
                c.with(leader, |e, now| started = e.transfer(nominee, now));
                assert_eq!(started, nominee != leader, "seed {seed}: transfer to itself refused");
                c.net.run_for(Duration::from_millis(50));
                let took = c.settle(Duration::from_secs(5));
                assert!(took.is_some(), "seed {seed}, {n} nodes: no leader after the hand-over");
                slowest = slowest.max(took.unwrap_or_default());
                let now = c.settled_leader();
                let after = c.status(now.unwrap()).unwrap().0;
                if nominee == leader {
                    assert_eq!((now, after), (Some(leader), term), "seed {seed}: no election");
                    continue;
                }
                assert!(after.0 - term.0 <= 3, "seed {seed}: {term:?} to {after:?}");
                asked += 1;
                won += u32::from(now == Some(nominee));
                retried += u32::from(after.0 - term.0 >= 2);
                c.check_safety().unwrap();
            }
        }
    }
    eprintln!(
        "hand-overs: {won} of {asked} to the nominee, {retried} in a later round, slowest \
         settled {slowest:?} after the first 50 ms"
    );
    assert!(won * 10 >= asked * 9, "the nominee won only {won} of {asked} hand-overs");
}

/// A hand-over is heeded only from the leader a node follows, in its term: a follower that
/// forwards (or an attacker that replays) `TimeoutNow` changes nothing.
#[test]
fn a_hand_over_not_from_the_leader_is_refused() {
    use auction_proto::msg::peer::ElectionMsg;
    let logs = vec![LogPosition::default(); 3];
    let mut c = Cluster::new(3, NetConfig::default(), &logs, ElectionConfig::default());
    for id in c.ids.clone() {
        c.with(id, |e, now| e.start(now));
    }
    assert!(c.settle(Duration::from_secs(5)).is_some());
    let leader = c.settled_leader().unwrap();
    let term = c.status(leader).unwrap().0;
    let others: Vec<_> = c.ids.iter().copied().filter(|n| *n != leader).collect();
    let (a, b) = (others[0], others[1]);
    let mut refused = Vec::new();
    c.with(b, |e, now| {
        let forged = ElectionMsg::TimeoutNow { term, nominee: b };
        refused.push(e.handle_message(a, forged, now).is_err());
        let stale = ElectionMsg::TimeoutNow { term: Term(term.0.saturating_sub(1)), nominee: b };
        refused.push(e.handle_message(leader, stale, now).is_err());
    });
    assert_eq!(refused, [true, true]);
    c.net.run_for(Duration::from_millis(500));
    assert_eq!(c.settled_leader(), Some(leader));
    assert_eq!(c.status(leader).unwrap().0, term, "no election");
}
