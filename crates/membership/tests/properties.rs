//! Properties of whole clusters of membership cores over the seeded testkit network.
//!
//! Every run draws new random cases (proptest seeds its case generator randomly unless
//! `PROPTEST_RNG_SEED` is set; `PROPTEST_CASES` overrides the case count). A case is a pure
//! function of its inputs (`seed` drives the network and every core's RNG), so a failure is
//! replayed exactly from the `minimal failing input: seed = .., n = .., ..` line proptest
//! prints: pin it as a `#[test]` calling the property's body with those values (see
//! `regression_restart_seed_871691417778323219`), and keep it as a regression test.

mod sim;

use std::time::Duration;

use auction_membership::{MembershipConfig, MembershipEvent};
use auction_proto::msg::peer::MemberState;
use auction_testkit::NetConfig;
use proptest::prelude::*;
use rand::Rng;
use sim::{Cluster, id};

fn lossy(drop: f64) -> NetConfig {
    NetConfig { drop, duplicate: 0.01, delay_min: ms(1), delay_max: ms(20), ..NetConfig::default() }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The stated convergence bound after the last change: a crash is declared after at most
/// `detection_bound` (+ one delay); joins, restarts and leaves spread within a few probe
/// intervals; two more intervals of slack for loss.
fn convergence_bound(c: &MembershipConfig) -> Duration {
    c.detection_bound() + c.probe_interval * 4
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Crash,
    Restart,
    Leave,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![Just(Change::Crash), Just(Change::Restart), Just(Change::Leave)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// After the last crash, restart or leave, every running node's live set equals the set
    /// of running nodes within `convergence_bound`, and stays so.
    #[test]
    fn live_sets_converge_after_the_last_change(
        seed in any::<u64>(),
        n in 2u8..=6,
        drop in 0.0f64..=0.05,
        changes in proptest::collection::vec((change(), 1u8..=6, 0u64..3000), 0..5),
    ) {
        live_sets_converge(seed, n, drop, &changes)?;
    }

    /// A crashed member is declared `Down` by every running member within
    /// `detection_bound` plus two message delays of the crash: the last thing heard of it can
    /// be an indirect ack, which it sent just before the crash and which reaches the prober
    /// through the intermediary (two hops) after it.
    #[test]
    fn a_crash_is_declared_down_everywhere_within_the_bound(
        seed in any::<u64>(),
        n in 3u8..=7,
        drop in 0.0f64..=0.05,
        after in 3000u64..8000,
    ) {
        let config = MembershipConfig::default();
        let mut c = Cluster::new(seed, n, config.clone(), lossy(drop));
        c.net.run_for(ms(after));
        let victim = c.net.rng().random_range(1..=n);
        c.crash(victim);
        let crashed_at = c.net.now();
        let bound = config.detection_bound() + c.net.config().delay_max * 2;
        c.net.run_for(bound + config.probe_interval);
        for i in (1..=n).filter(|i| *i != victim) {
            let downs: Vec<_> = c.downs().into_iter()
                .filter(|(at, about, _)| *at == id(i) && *about == id(victim))
                .collect();
            prop_assert_eq!(downs.len(), 1, "seed {}: node {} saw {:?}", seed, i, downs);
            let took = downs[0].2 - crashed_at;
            prop_assert!(took <= bound, "seed {seed}: node {i} took {took:?} > {bound:?}");
        }
    }

    /// A restarted node (new incarnation) appears exactly once in every table, at its new
    /// incarnation and alive, and nobody declares the new incarnation down (the old one may
    /// be, within the detection bound of the crash).
    #[test]
    fn a_restarted_node_is_seen_exactly_once(
        seed in any::<u64>(),
        n in 2u8..=6,
        down_for in 0u64..10_000,
    ) {
        restarted_node_is_seen_exactly_once(seed, n, down_for)?;
    }
}

/// The body of `live_sets_converge_after_the_last_change`, callable with fixed parameters.
fn live_sets_converge(
    seed: u64,
    n: u8,
    drop: f64,
    changes: &[(Change, u8, u64)],
) -> Result<(), TestCaseError> {
    let config = MembershipConfig::default();
    let mut c = Cluster::new(seed, n, config.clone(), lossy(drop));
    c.net.run_for(Duration::from_secs(5));
    for &(what, who, gap) in changes {
        let who = (who - 1) % n + 1;
        c.net.run_for(ms(gap));
        match what {
            Change::Crash => c.crash(who),
            Change::Leave if c.is_up(who) => c.leave(who),
            Change::Leave => {}
            Change::Restart => {
                c.crash(who);
                c.start(who);
            }
        }
    }
    let bound = convergence_bound(&config);
    let last_change = c.net.now();
    let mut converged_at = None;
    while c.net.now() < last_change + bound * 2 {
        c.net.run_for(ms(100));
        match (converged_at, c.converged()) {
            (None, true) => converged_at = Some(c.net.now()),
            (Some(_), false) => converged_at = None,
            _ => {}
        }
    }
    let at = converged_at.map(|t| t - last_change);
    prop_assert!(
        at.is_some_and(|d| d <= bound),
        "seed {seed}: converged after {at:?}, bound {bound:?}"
    );
    Ok(())
}

/// Regression (randomized sweep): node 3 crashed at 6.015 s, node 1 restarted at 7.422 s. Node 2
/// suspected node 3 at 9.03 s but kept gossiping it as `Alive` by anti-entropy; restarted node 1
/// admitted that hearsay at 11.44 s with a fresh timer and declared node 3 down only at 17.44 s,
/// past the bound. Fixed in the core: a member we suspect is not gossiped.
#[test]
fn regression_converge_seed_5047758899427577223() {
    let changes = [(Change::Crash, 3, 1015), (Change::Restart, 1, 1407)];
    live_sets_converge(5_047_758_899_427_577_223, 3, 0.033_540_604_753_839_076, &changes).unwrap();
}

/// The body of `a_restarted_node_is_seen_exactly_once`, callable with fixed parameters.
fn restarted_node_is_seen_exactly_once(
    seed: u64,
    n: u8,
    down_for: u64,
) -> Result<(), TestCaseError> {
    let config = MembershipConfig::default();
    let mut c = Cluster::new(seed, n, config.clone(), lossy(0.01));
    c.net.run_for(Duration::from_secs(5));
    c.crash(1);
    let crashed_at = c.net.now();
    let bound = config.detection_bound() + c.net.config().delay_max;
    c.net.run_for(ms(down_for));
    c.start(1);
    c.net.run_for(convergence_bound(&config));
    let inc = c.incarnations[&1];
    for (_, node) in c.net.nodes().filter(|(_, m)| m.core.me().node != id(1)) {
        let me = node.core.me().node;
        let entries: Vec<_> = node.core.members().filter(|v| v.info.node == id(1)).collect();
        prop_assert_eq!(entries.len(), 1, "seed {}", seed);
        prop_assert_eq!(entries[0].info.incarnation.0, inc, "seed {}", seed);
        prop_assert_eq!(entries[0].state, MemberState::Alive, "seed {}", seed);
        prop_assert_eq!(
            node.core.live_members().filter(|x| *x == id(1)).count(),
            1,
            "seed {}",
            seed
        );
        // `Down` names a node, not an incarnation. A restart within the detection bound of the
        // crash may come just after an observer declared the *old* incarnation down, and the
        // new incarnation's first message may arrive later still (delay, loss). So a `Down`
        // is about the new incarnation only if the observer had admitted it already (its
        // `Joined` at `inc`); a `Down` before that is the old one's detection, which must
        // fall within the bound of the crash.
        let joined = node.events.iter().position(|(_, e)| {
            matches!(e, MembershipEvent::Joined(i) if i.node == id(1) && i.incarnation.0 == inc)
        });
        prop_assert!(joined.is_some(), "seed {seed}: {me:?} never admitted incarnation {inc}");
        let (before, after) = node.events.split_at(joined.unwrap_or(0));
        let is_down = |e: &MembershipEvent| *e == MembershipEvent::Down(id(1));
        for (t, _) in before.iter().filter(|(t, e)| *t > crashed_at && is_down(e)) {
            prop_assert!(
                *t - crashed_at <= bound,
                "seed {seed}: {me:?} declared the old incarnation down {:?} after the crash",
                *t - crashed_at
            );
        }
        let late_downs = after.iter().filter(|(_, e)| is_down(e)).count();
        prop_assert_eq!(late_downs, 0, "seed {}: {:?} declared the new incarnation down", seed, me);
    }
    Ok(())
}

/// Regression (CI): node 1 crashed at 5 s and restarted at 10.017 s; node 4 had last heard
/// incarnation 1 at 4.026 s, so it declared that incarnation down at 10.026 s, 1.5 ms before
/// incarnation 2's first `Discover` reached it. Correct detection, not a `Down` of the new
/// incarnation: the property must tell the two apart.
#[test]
fn regression_restart_seed_871691417778323219() {
    restarted_node_is_seen_exactly_once(871_691_417_778_323_219, 4, 5017).unwrap();
}

/// With 5 % random loss and the default settings, no running member is ever declared `Down`
/// across 10,000 heartbeat intervals (a few seeds: each run is about half a million messages).
#[test]
fn no_false_down_under_five_percent_loss_for_ten_thousand_intervals() {
    let config = MembershipConfig::default();
    for seed in [1, 2] {
        let mut c = Cluster::new(seed, 5, config.clone(), lossy(0.05));
        c.net.run_for(config.probe_interval * 10_000);
        assert!(c.converged(), "seed {seed}: not converged");
        assert_eq!(c.downs(), vec![], "seed {seed}");
        let s = c.net.stats();
        assert!(s.dropped * 100 >= s.sent * 4, "seed {seed}: loss too low {s:?}");
    }
}
