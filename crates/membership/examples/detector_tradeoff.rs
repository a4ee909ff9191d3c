//! Measures detection time versus false positives over the seeded network, for the table in
//! docs/membership.md. Run: `cargo run --release -p auction-membership --example detector_tradeoff`.

#![allow(clippy::print_stdout)]

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::Duration;

use auction_membership::MembershipConfig;
use auction_testkit::NetConfig;
use rand::Rng;
use sim::{Cluster, id};

const NODES: u8 = 5;
const INTERVALS: u32 = 2_000;
const SEEDS: u64 = 10;

/// Delays of 1-20 ms (a busy LAN), or 0.05-2 ms (one host or a quiet LAN) for the
/// fail-over setting, whose 12 ms probe timeout is meant for such links.
fn net(drop: f64, config: &MembershipConfig) -> NetConfig {
    let lan = config.probe_interval < Duration::from_millis(100);
    NetConfig {
        drop,
        duplicate: 0.01,
        delay_min: if lan { Duration::from_micros(50) } else { Duration::from_millis(1) },
        delay_max: if lan { Duration::from_millis(2) } else { Duration::from_millis(20) },
        ..NetConfig::default()
    }
}

/// Probe intervals simulated per seed for the false-positive rate: 2,000 (33 min at 1 s), and
/// 100,000 (50 min) at the fail-over setting's 30 ms.
fn intervals(config: &MembershipConfig) -> u32 {
    if config.probe_interval < Duration::from_millis(100) { 100_000 } else { INTERVALS }
}

fn settings() -> Vec<(&'static str, MembershipConfig)> {
    let d = MembershipConfig::default();
    let s = |susp: u64, conf: u64| MembershipConfig {
        suspicion_timeout: Duration::from_secs(susp),
        confirmation_timeout: Duration::from_secs(conf),
        ..d.clone()
    };
    // What `auction-node run --probe-interval 30ms --suspect-after 90ms --down-after 90ms`
    // configures (the node caps the probe timeout at 2/5 of the interval): the bench's
    // fail-over setting, the defaults' ratios at 1/33 of the time.
    let failover = MembershipConfig {
        probe_interval: Duration::from_millis(30),
        probe_timeout: Duration::from_millis(12),
        suspicion_timeout: Duration::from_millis(90),
        confirmation_timeout: Duration::from_millis(90),
        ..d.clone()
    };
    vec![
        ("fast 2s+1s", s(2, 1)),
        ("default 3s+3s", d.clone()),
        ("slow 5s+5s", s(5, 5)),
        ("failover 30ms: 90ms+90ms", failover),
    ]
}

/// `(suspect events, down events)` per node-hour among running nodes.
fn false_positives(config: &MembershipConfig, drop: f64) -> (f64, f64) {
    let (mut suspects, mut downs) = (0, 0);
    for seed in 0..SEEDS {
        let mut c = Cluster::new(seed, NODES, config.clone(), net(drop, config));
        c.net.run_for(config.probe_interval * intervals(config));
        suspects += c.suspicions();
        downs += c.downs().len();
    }
    let hours = (config.probe_interval * intervals(config)).as_secs_f64() / 3600.0
        * f64::from(NODES)
        * SEEDS as f64;
    (suspects as f64 / hours, downs as f64 / hours)
}

/// Mean and max time from a crash to `Down` at the other members.
fn detection(config: &MembershipConfig, drop: f64) -> (Duration, Duration) {
    let mut times = Vec::new();
    for seed in 0..SEEDS {
        let mut c = Cluster::new(seed, NODES, config.clone(), net(drop, config));
        // Crash at a random point of the probe period, not right after a round of pings.
        let offset = c.net.rng().random_range(0..1000);
        c.net.run_for(Duration::from_secs(10) + Duration::from_millis(offset));
        let victim = c.net.rng().random_range(1..=NODES);
        c.crash(victim);
        let at = c.net.now();
        c.net.run_for(config.detection_bound() * 2);
        times.extend(c.downs().iter().filter(|d| d.1 == id(victim)).map(|d| d.2 - at));
    }
    let total: Duration = times.iter().sum();
    let n = u32::try_from(times.len().max(1)).unwrap_or(u32::MAX);
    (total / n, times.iter().max().copied().unwrap_or_default())
}

fn main() {
    println!(
        "| settings | loss | detection mean | detection max | Suspect /node-h | Down /node-h |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, config) in settings() {
        for drop in [0.0, 0.05, 0.10, 0.20, 0.30] {
            let (mean, max) = detection(&config, drop);
            let (s, d) = false_positives(&config, drop);
            println!(
                "| {name} | {:.0} % | {:.3} s | {:.3} s | {s:.2} | {d:.2} |",
                drop * 100.0,
                mean.as_secs_f64(),
                max.as_secs_f64()
            );
        }
    }
}
