//! Properties of whole clusters of membership cores over the seeded testkit network.
//!
//! A failing case prints its seed and parameters; rerun with those to replay it exactly.

mod sim;

use std::time::Duration;

use auction_membership::{Config, MembershipEvent};
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
fn convergence_bound(c: &Config) -> Duration {
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
        let config = Config::default();
        let mut c = Cluster::new(seed, n, config.clone(), lossy(drop));
        c.net.run_for(Duration::from_secs(5));
        for (what, who, gap) in changes {
            let who = (who - 1) % n + 1;
            c.net.run_for(ms(gap));
            match what {
                Change::Crash => c.crash(who),
                Change::Leave if c.is_up(who) => c.leave(who),
                Change::Leave => {}
                Change::Restart => { c.crash(who); c.start(who); }
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
        prop_assert!(at.is_some_and(|d| d <= bound),
            "seed {seed}: converged after {at:?}, bound {bound:?}");
    }

    /// A crashed member is declared `Down` by every running member within
    /// `detection_bound` plus one message delay of the crash.
    #[test]
    fn a_crash_is_declared_down_everywhere_within_the_bound(
        seed in any::<u64>(),
        n in 3u8..=7,
        drop in 0.0f64..=0.05,
        after in 3000u64..8000,
    ) {
        let config = Config::default();
        let mut c = Cluster::new(seed, n, config.clone(), lossy(drop));
        c.net.run_for(ms(after));
        let victim = c.net.rng().random_range(1..=n);
        c.crash(victim);
        let crashed_at = c.net.now();
        let bound = config.detection_bound() + c.net.config().delay_max;
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
    /// incarnation and alive, and nobody declares it down.
    #[test]
    fn a_restarted_node_is_seen_exactly_once(
        seed in any::<u64>(),
        n in 2u8..=6,
        down_for in 0u64..10_000,
    ) {
        let config = Config::default();
        let mut c = Cluster::new(seed, n, config.clone(), lossy(0.01));
        c.net.run_for(Duration::from_secs(5));
        c.crash(1);
        c.net.run_for(ms(down_for));
        c.start(1);
        let restarted_at = c.net.now();
        c.net.run_for(convergence_bound(&config));
        let inc = c.incarnations[&1];
        for (_, node) in c.net.nodes().filter(|(_, m)| m.core.me().node != id(1)) {
            let me = node.core.me().node;
            let entries: Vec<_> = node.core.members().filter(|v| v.info.node == id(1)).collect();
            prop_assert_eq!(entries.len(), 1, "seed {}", seed);
            prop_assert_eq!(entries[0].info.incarnation.0, inc, "seed {}", seed);
            prop_assert_eq!(entries[0].state, MemberState::Alive, "seed {}", seed);
            prop_assert_eq!(node.core.live_members().filter(|x| *x == id(1)).count(), 1);
            let late_downs = node.events.iter()
                .filter(|(t, e)| *t > restarted_at && *e == MembershipEvent::Down(id(1)))
                .count();
            prop_assert_eq!(late_downs, 0, "seed {}: {:?} declared the new incarnation down", seed, me);
        }
    }
}

/// With 5 % random loss and the default settings, no running member is ever declared `Down`
/// across 10,000 heartbeat intervals (a few seeds: each run is about half a million messages).
#[test]
fn no_false_down_under_five_percent_loss_for_ten_thousand_intervals() {
    let config = Config::default();
    for seed in [1, 2] {
        let mut c = Cluster::new(seed, 5, config.clone(), lossy(0.05));
        c.net.run_for(config.probe_interval * 10_000);
        assert!(c.converged(), "seed {seed}: not converged");
        assert_eq!(c.downs(), vec![], "seed {seed}");
        let s = c.net.stats();
        assert!(s.dropped * 100 >= s.sent * 4, "seed {seed}: loss too low {s:?}");
    }
}
