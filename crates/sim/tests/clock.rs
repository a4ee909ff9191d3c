//! Clock skew: a server whose wall clock is far from the cluster's never leads (issue 25).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use auction_proto::NodeId;
use auction_sim::{Bug, Options, ScriptOp, run_seed};

/// Server 2 has the largest node id, so with equal logs it wins a contested election; its
/// clock runs 5 s ahead from the start; the operator steps each leader down again and again.
fn skewed_run(seed: u64) -> Options {
    let s = Duration::from_millis;
    let mut script = vec![(s(0), ScriptOp::Skew { server: 2, ms: 5_000 })];
    script.extend((0..8).map(|k| (s(2_000 + 700 * k), ScriptOp::StepDownLeader)));
    Options {
        seed,
        servers: 3,
        clients: 3,
        faults: false,
        fault_time: s(8_000),
        heal_time: s(3_000),
        step_downs: false,
        adversary: false,
        wipes: false,
        script,
        bug: Bug::None,
        trace: false,
    }
}

#[test]
fn a_server_whose_clock_runs_ahead_never_leads() {
    let skewed = NodeId::from_bytes([3; 16]);
    let mut elections = 0;
    for seed in 0..4 {
        let out = run_seed(skewed_run(seed));
        assert!(out.violations.is_empty(), "seed {seed}: {:#?}", out.violations);
        for (term, leaders) in &out.history.leaders {
            assert!(!leaders.contains(&skewed), "seed {seed}: the skewed server led {term:?}");
        }
        elections += out.history.leaders.len();
    }
    // The step-downs really moved the leadership around (each run: several terms).
    assert!(elections >= 4 * 4, "only {elections} terms with a leader in 4 runs");
}

#[test]
fn a_leader_whose_clock_jumps_hands_its_leadership_over() {
    let founder = NodeId::from_bytes([1; 16]);
    for seed in 0..4 {
        let s = Duration::from_millis;
        let opts = Options {
            script: vec![(s(3_000), ScriptOp::Skew { server: 0, ms: -4_000 })],
            ..skewed_run(seed)
        };
        let out = run_seed(opts);
        assert!(out.violations.is_empty(), "seed {seed}: {:#?}", out.violations);
        let leaders = &out.history.leaders;
        assert!(leaders.values().any(|l| l.contains(&founder)), "seed {seed}: {leaders:?}");
        let (last, who) = leaders.iter().next_back().unwrap();
        assert!(!who.contains(&founder), "seed {seed}: the skewed founder still leads {last:?}");
    }
}
