//! Leader liveness in the whole-cluster simulation (issue 16): restarting or cutting off a
//! follower never moves the cluster through an election, because the node's pre-vote is
//! refused while the others hear the leader. Kept apart from `seeds.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use auction_sim::{Bug, Options, ScriptOp, run_seed};

/// Three servers, no random faults, the attacker on (it can replay but not forge); server 0
/// founds the cluster and leads; `script` then disturbs the followers only.
fn quiet(seed: u64, script: Vec<(Duration, ScriptOp)>) -> Options {
    Options {
        seed,
        servers: 3,
        clients: 3,
        faults: false,
        fault_time: Duration::from_secs(6),
        heal_time: Duration::from_secs(3),
        step_downs: false,
        adversary: true,
        wipes: false,
        script,
        bug: Bug::None,
        trace: false,
    }
}

/// Terms in which some server led, over the whole run.
fn led_terms(opts: Options) -> usize {
    let seed = opts.seed;
    let out = run_seed(opts);
    assert!(out.violations.is_empty(), "seed {seed}: {:#?}", out.violations);
    out.history.leaders.len()
}

#[test]
fn restarting_followers_causes_no_election() {
    let s = Duration::from_millis;
    for seed in 0..6 {
        let script = vec![
            (s(1_000), ScriptOp::Crash(1)),
            (s(1_500), ScriptOp::Restart(1)),
            (s(3_000), ScriptOp::Crash(2)),
            (s(3_100), ScriptOp::Restart(2)),
            (s(4_500), ScriptOp::Crash(1)),
            (s(4_510), ScriptOp::Restart(1)),
        ];
        assert_eq!(led_terms(quiet(seed, script)), 1, "seed {seed}: an election happened");
    }
}

#[test]
fn a_follower_cut_off_for_seconds_rejoins_without_an_election() {
    let s = Duration::from_millis;
    for seed in 0..6 {
        let mut script: Vec<(Duration, ScriptOp)> = [(0, 2), (2, 0), (1, 2), (2, 1)]
            .into_iter()
            .map(|(from, to)| (s(1_000), ScriptOp::Block { from, to }))
            .collect();
        script.push((s(5_000), ScriptOp::Heal));
        assert_eq!(led_terms(quiet(seed, script)), 1, "seed {seed}: an election happened");
    }
}

/// The same check can fail: killing the leader does cause exactly the one election needed.
#[test]
fn killing_the_leader_causes_one_election() {
    let s = Duration::from_millis;
    for seed in 0..6 {
        let script = vec![(s(1_000), ScriptOp::Crash(0)), (s(3_000), ScriptOp::Restart(0))];
        assert_eq!(led_terms(quiet(seed, script)), 2, "seed {seed}");
    }
}
