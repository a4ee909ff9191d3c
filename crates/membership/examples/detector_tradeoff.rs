//! Measures detection time versus false positives over the seeded network, for the table in
//! docs/membership.md. Run: `cargo run --release -p auction-membership --example detector_tradeoff`.

#![allow(clippy::print_stdout)]

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::Duration;

use auction_membership::Config;
use auction_testkit::NetConfig;
use rand::Rng;
use sim::{Cluster, id};

const NODES: u8 = 5;
const INTERVALS: u32 = 2_000;
const SEEDS: u64 = 10;

fn net(drop: f64) -> NetConfig {
    NetConfig {
        drop,
        duplicate: 0.01,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(20),
        ..NetConfig::default()
    }
}

fn settings() -> Vec<(&'static str, Config)> {
    let d = Config::default();
    let s = |susp: u64, conf: u64| Config {
        suspicion_timeout: Duration::from_secs(susp),
        confirmation_timeout: Duration::from_secs(conf),
        ..d.clone()
    };
    vec![("fast 2s+1s", s(2, 1)), ("default 3s+3s", d.clone()), ("slow 5s+5s", s(5, 5))]
}

/// `(suspect events, down events)` per node-hour among running nodes.
fn false_positives(config: &Config, drop: f64) -> (f64, f64) {
    let (mut suspects, mut downs) = (0, 0);
    for seed in 0..SEEDS {
        let mut c = Cluster::new(seed, NODES, config.clone(), net(drop));
        c.net.run_for(config.probe_interval * INTERVALS);
        suspects += c.suspicions();
        downs += c.downs().len();
    }
    let hours = (config.probe_interval * INTERVALS).as_secs_f64() / 3600.0
        * f64::from(NODES)
        * SEEDS as f64;
    (suspects as f64 / hours, downs as f64 / hours)
}

/// Mean and max time from a crash to `Down` at the other members.
fn detection(config: &Config, drop: f64) -> (Duration, Duration) {
    let mut times = Vec::new();
    for seed in 0..SEEDS {
        let mut c = Cluster::new(seed, NODES, config.clone(), net(drop));
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
                "| {name} | {:.0} % | {:.2} s | {:.2} s | {s:.2} | {d:.2} |",
                drop * 100.0,
                mean.as_secs_f64(),
                max.as_secs_f64()
            );
        }
    }
}
