//! Property tests of the election over the testkit's faulty network.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use auction_election::{ElectionConfig, Status};
use auction_proto::{LogPosition, Seq, Term};
use auction_testkit::NetConfig;
use common::{Cluster, node_id};
use proptest::prelude::*;

/// A fault injected during the chaotic phase.
#[derive(Clone, Debug)]
enum Fault {
    Crash(usize),
    Restart(usize),
    /// Crash and instant restart without `start`.
    Bounce(usize),
    /// Nodes whose bit is set vs. the rest.
    Partition(u16),
    Heal,
    /// Node `.0` falsely believes `.1` down.
    Suspect(usize, usize),
    Unsuspect(usize, usize),
    LeaderLost(usize),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => (0..9usize).prop_map(Fault::Crash),
        2 => (0..9usize).prop_map(Fault::Restart),
        3 => (0..9usize).prop_map(Fault::Bounce),
        1 => any::<u16>().prop_map(Fault::Partition),
        1 => Just(Fault::Heal),
        3 => (0..9usize, 0..9usize).prop_map(|(a, b)| Fault::Suspect(a, b)),
        1 => (0..9usize, 0..9usize).prop_map(|(a, b)| Fault::Unsuspect(a, b)),
        2 => (0..9usize).prop_map(Fault::LeaderLost),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    last_logs: Vec<LogPosition>,
    initiators: Vec<bool>,
    delay_max: Duration,
    drop: f64,
    duplicate: f64,
    faults: Vec<(Duration, Fault)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=9usize).prop_flat_map(|n| {
        let pos = (0..3u64, 0..4u64).prop_map(|(t, s)| LogPosition { term: Term(t), seq: Seq(s) });
        let at = (0..2_000u64).prop_map(Duration::from_millis);
        (
            any::<u64>(),
            proptest::collection::vec(pos, n),
            proptest::collection::vec(any::<bool>(), n),
            (1..40u64).prop_map(Duration::from_millis),
            0.0..0.3f64,
            0.0..0.2f64,
            proptest::collection::vec((at, fault()), 0..24),
        )
            .prop_map(
                |(seed, last_logs, initiators, delay_max, drop, duplicate, mut faults)| {
                    faults.sort_by_key(|(at, _)| *at);
                    Scenario { seed, last_logs, initiators, delay_max, drop, duplicate, faults }
                },
            )
    })
}

fn apply(c: &mut Cluster, fault: &Fault) {
    let n = c.ids.len();
    match *fault {
        Fault::Crash(i) => {
            let id = c.ids[i % n];
            c.crash(id);
            for other in c.live() {
                c.with(other, |e, now| {
                    e.handle_down(id);
                    if e.leader() == Some(id) {
                        e.handle_leader_lost(now);
                    }
                });
            }
        }
        Fault::Restart(i) => c.restart(c.ids[i % n]),
        Fault::Bounce(i) => c.bounce(c.ids[i % n]),
        Fault::Partition(mask) => {
            let (a, b): (Vec<_>, Vec<_>) =
                c.ids.iter().enumerate().partition(|(i, _)| mask & (1 << i) != 0);
            let a: Vec<_> = a.into_iter().map(|(_, id)| *id).collect();
            let b: Vec<_> = b.into_iter().map(|(_, id)| *id).collect();
            c.net.partition(&a, &b);
        }
        Fault::Heal => c.net.heal(),
        Fault::Suspect(i, j) => {
            let target = c.ids[j % n];
            c.with(c.ids[i % n], |e, _| e.handle_down(target));
        }
        Fault::Unsuspect(i, j) => {
            let target = c.ids[j % n];
            c.with(c.ids[i % n], |e, _| e.handle_alive(target));
        }
        Fault::LeaderLost(i) => c.with(c.ids[i % n], |e, now| e.handle_leader_lost(now)),
    }
}

fn run(s: &Scenario) -> Result<(Cluster, Option<Duration>), String> {
    let net = NetConfig {
        delay_max: s.delay_max,
        drop: s.drop,
        duplicate: s.duplicate,
        ..NetConfig::default()
    };
    let mut c = Cluster::new(s.seed, net, &s.last_logs, ElectionConfig::default());
    for (i, _) in s.initiators.iter().enumerate().filter(|(_, go)| **go) {
        c.with(node_id(i), |e, now| e.start(now));
    }
    let start = c.net.now();
    for (at, fault) in &s.faults {
        c.net.run_until(start + *at);
        apply(&mut c, fault);
        c.check_safety()?;
    }
    c.net.run_until(start + Duration::from_secs(3));
    c.check_safety()?;
    let took = c.settle(LIVENESS_BOUND);
    c.check_safety()?;
    Ok((c, took))
}

/// Election rounds last at most timeout + back-off + two trips around the ring (< 1.2 s
/// here); a quiet network with a majority up must settle within this many of them.
const LIVENESS_BOUND: Duration = Duration::from_secs(15);

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// At most one leader per term, never without a majority, always the maximum candidate
    /// among its participants; once quiet with a majority up, exactly one settled leader.
    #[test]
    fn safe_under_faults_and_live_when_quiet(s in scenario()) {
        let (c, took) = run(&s).map_err(|e| TestCaseError::fail(format!("seed {}: {e}", s.seed)))?;
        prop_assert!(took.is_some(), "seed {}: no settled leader within {LIVENESS_BOUND:?}", s.seed);
        let leader = c.settled_leader().unwrap();
        prop_assert!(c.live().iter().all(|id| c.status(*id).unwrap().1 == Status::Leading
            || c.status(*id).unwrap().1 == Status::Following(leader)));
        // The settled winner is the best candidate among the live nodes that took part.
        let log = c.log.borrow();
        let (_, winner, participants) = log.leaders.last().unwrap();
        prop_assert_eq!(*winner, leader);
        prop_assert!(participants.len() >= c.majority());
    }
}

/// With every node live and beliefs accurate, the winner is the global maximum candidate.
#[test]
fn quiet_ring_elects_the_maximum_candidate() {
    for seed in 0..40u64 {
        let n = usize::try_from(seed % 9).unwrap() + 1;
        let last_logs: Vec<_> = (0..n as u64)
            .map(|i| LogPosition { term: Term((i * 7 + seed) % 3), seq: Seq((i * 5 + seed) % 4) })
            .collect();
        let mut c = Cluster::new(seed, NetConfig::default(), &last_logs, ElectionConfig::default());
        for id in c.ids.clone() {
            c.with(id, |e, now| e.start(now));
        }
        assert!(c.settle(Duration::from_secs(5)).is_some(), "seed {seed}");
        c.check_safety().unwrap();
        let max = c.ids.iter().copied().max_by_key(|id| (c.last_logs[id], *id)).unwrap();
        assert_eq!(c.settled_leader(), Some(max), "seed {seed}");
    }
}

/// The design-note hazard: the maximum candidate is falsely skipped by its predecessor while
/// everybody initiates, and the suspicion is lifted at a random moment, so both the skipped
/// node's token and a smaller one can complete a lap in the same term.
#[test]
fn skipped_maximum_candidate_never_yields_two_leaders() {
    for seed in 0..300u64 {
        let n = 3 + usize::try_from(seed % 5).unwrap();
        let net = NetConfig { delay_max: Duration::from_millis(30), ..NetConfig::default() };
        let logs = vec![LogPosition::default(); n];
        let mut c = Cluster::new(seed, net, &logs, ElectionConfig::default());
        let (pred, max) = (c.ids[n - 2], c.ids[n - 1]);
        c.with(pred, |e, _| e.handle_down(max));
        for id in c.ids.clone() {
            c.with(id, |e, now| e.start(now));
        }
        let lift = Duration::from_millis(seed * 7 % 120);
        c.net.run_for(lift);
        c.with(pred, |e, _| e.handle_alive(max));
        c.net.run_for(Duration::from_secs(3));
        c.check_safety().map_err(|e| format!("seed {seed}: {e}")).unwrap();
        assert!(c.settle(LIVENESS_BOUND).is_some(), "seed {seed}");
        c.check_safety().unwrap();
    }
}

/// LCR alone would elect one leader per connected piece; ours elects none in a minority.
#[test]
fn only_a_majority_piece_elects() {
    for seed in 0..20u64 {
        for (n, piece) in [(5, 3), (4, 2), (2, 1), (9, 5), (9, 4)] {
            let logs = vec![LogPosition::default(); n];
            let mut c = Cluster::new(seed, NetConfig::default(), &logs, ElectionConfig::default());
            let (a, b) = c.ids.split_at(piece);
            let (a, b) = (a.to_vec(), b.to_vec());
            c.net.partition(&a, &b);
            for (side, other) in [(&a, &b), (&b, &a)] {
                for &id in side {
                    for &o in other {
                        c.with(id, |e, _| e.handle_down(o));
                    }
                }
            }
            for id in c.ids.clone() {
                c.with(id, |e, now| e.start(now));
            }
            c.net.run_for(Duration::from_secs(10));
            c.check_safety().unwrap();
            let leaders: Vec<_> = c
                .ids
                .iter()
                .filter(|id| c.status(**id).unwrap().1 == Status::Leading)
                .copied()
                .collect();
            let majority_side = if a.len() > n / 2 {
                Some(&a)
            } else if b.len() > n / 2 {
                Some(&b)
            } else {
                None
            };
            match majority_side {
                Some(side) => assert!(
                    leaders.len() == 1 && side.contains(&leaders[0]),
                    "seed {seed} n {n}: {leaders:?}"
                ),
                None => assert!(leaders.is_empty(), "seed {seed} n {n}: {leaders:?}"),
            }
        }
    }
}
