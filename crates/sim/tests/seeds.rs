//! The simulation over many seeds, replay of one seed, regression seeds, planted bugs.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::ops::Range;
use std::time::Instant;

use auction_sim::{Bug, OpResult, Options, replay_command, run_seed};

/// Runs `seeds` (or `SEEDS=a..b` from the environment) and fails naming every failing seed.
fn run_range(default: Range<u64>) {
    let seeds = std::env::var("SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(default);
    let started = Instant::now();
    let mut failed = Vec::new();
    let n = seeds.end - seeds.start;
    for seed in seeds {
        let out = run_seed(Options::mixed(seed));
        if !out.violations.is_empty() {
            eprintln!("seed {seed} failed: {:?}", out.violations.first());
            eprintln!("  replay: {}", replay_command(seed));
            failed.push(seed);
        }
    }
    eprintln!("{n} seeds in {:?}", started.elapsed());
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

#[test]
fn seeds_a() {
    if std::env::var("SEEDS").is_ok() {
        run_range(0..0);
        return;
    }
    run_range(0..250);
}

#[test]
fn seeds_b() {
    if std::env::var("SEEDS").is_err() {
        run_range(250..500);
    }
}

#[test]
fn seeds_c() {
    if std::env::var("SEEDS").is_err() {
        run_range(500..750);
    }
}

#[test]
fn seeds_d() {
    if std::env::var("SEEDS").is_err() {
        run_range(750..1000);
    }
}

/// `SEED=n`: one seed with a message trace.
#[test]
fn replay() {
    let Some(seed) = std::env::var("SEED").ok().and_then(|s| s.parse().ok()) else { return };
    let mut opts = Options::mixed(seed);
    opts.trace = true;
    let out = run_seed(opts);
    let h = &out.history;
    let acked = h.invocations.iter().filter(|i| matches!(i.result, OpResult::Ok { .. })).count();
    eprintln!(
        "seed {seed}: {} invocations, {acked} acked, {} reads",
        h.invocations.len(),
        h.reads.len()
    );
    assert!(out.violations.is_empty(), "{:#?}", out.violations);
}

/// A fault-free run makes progress: clients get answers and auctions close.
#[test]
fn quiet_run_makes_progress() {
    let mut opts = Options::mixed(0);
    opts.faults = false;
    let out = run_seed(opts);
    assert!(out.violations.is_empty(), "{:#?}", out.violations);
    let acked = out.history.invocations.iter().filter(|i| matches!(i.result, OpResult::Ok { .. }));
    assert!(acked.count() > 20);
}

/// Finds a seed on which `bug` is caught, and checks which properties name it.
fn caught(bug: Bug, faults: bool, expect: &[&str]) {
    for seed in 0..40 {
        let mut opts = Options::mixed(seed);
        opts.bug = bug;
        opts.faults = faults;
        let out = run_seed(opts);
        if let Some(v) = out.violations.iter().find(|v| expect.contains(&v.property)) {
            eprintln!("{bug:?} caught on seed {seed}: {v:?}");
            return;
        }
    }
    panic!("{bug:?} was never caught");
}

#[test]
fn planted_ack_on_sequence_is_caught() {
    caught(Bug::AckOnSequence, true, &["durability"]);
}

#[test]
fn planted_lying_disk_is_caught() {
    caught(Bug::LyingDisk, true, &["commit-majority", "agreement", "durability"]);
}

#[test]
fn planted_stale_reads_are_caught() {
    caught(Bug::StaleReads, true, &["reads"]);
}
