//! The bench's output: a table for people, one JSON object for scripts. The only place that
//! prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::Report;
use crate::stats::{Failover, Summary};

/// One line on stderr per finished run, so long sweeps show progress.
pub(crate) fn progress(s: &Summary) {
    let kill = s.kill.as_ref().map_or(String::new(), |k| {
        format!("; {} to leader {}: {}", k.signal, k.server, first_commit(k.to_first_commit_ms))
    });
    eprintln!(
        "done: {} {} clients: {:.0} req/s, p99 {} us{kill}",
        s.backend, s.clients, s.requests_per_s, s.latency.p99_us
    );
}

fn first_commit(ms: Option<f64>) -> String {
    ms.map_or("no answer after it".to_string(), |m| format!("{m:.1} ms"))
}

/// A failed run, on stderr.
pub(crate) fn error(e: &anyhow::Error) {
    eprintln!("auction-bench: {e:#}");
}

/// The report as one JSON object on stdout.
pub(crate) fn json(report: &Report) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// The report as a table on stdout.
pub(crate) fn table(report: &Report) {
    println!(
        "fsync {}{}",
        if report.fsync { "always" } else { "never" },
        if report.node_args.is_empty() {
            String::new()
        } else {
            format!(", node args: {}", report.node_args.join(" "))
        }
    );
    println!(
        "{:<8} {:>7} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}",
        "backend",
        "clients",
        "auctions",
        "req/s",
        "accepted/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "gap ms",
        "retries",
        "load"
    );
    for s in &report.runs {
        println!(
            "{:<8} {:>7} {:>8} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.1} {:>7} {:>5.2}/{:<5.2}",
            s.backend,
            s.clients,
            s.auctions,
            s.requests_per_s,
            s.accepted_per_s,
            ms(s.latency.p50_us),
            ms(s.latency.p90_us),
            ms(s.latency.p99_us),
            ms(s.latency.max_us),
            s.max_gap_ms,
            s.retries,
            s.loadavg[0],
            s.loadavg[1],
        );
    }
    for s in &report.runs {
        if let Some(k) = &s.kill {
            let first = k.to_first_commit_ms.map_or("none".to_string(), |m| format!("{m:.1} ms"));
            println!(
                "{}: {} to leader {} at {:.0} ms into the window; first committed answer to a \
                 request sent after it: {first}; longest gap between committed answers: {:.1} ms",
                s.backend, k.signal, k.server, k.at_ms, s.max_gap_ms
            );
        }
    }
    failover(&report.failover);
    if let Some(s) = report.runs.iter().rev().find(|s| !s.rss_kib.is_empty()) {
        let mib: Vec<String> =
            s.rss_kib.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
        println!("server RSS at the end (MiB): {}", mib.join(", "));
    }
    if let Some(a) = report.applied {
        println!("log entries applied by the servers: {a}");
    }
    if let Some(r) = &report.restart_ms {
        let t: Vec<String> = r.iter().map(|m| format!("{m:.0}")).collect();
        println!("restart to serving at the old applied seq (ms, per server): {}", t.join(", "));
    }
}

/// The leader stops per backend and signal, and ours over etcd's per signal.
fn failover(f: &[Failover]) {
    if f.is_empty() {
        return;
    }
    println!("leader stop -> first committed answer to a request sent after it (ms):");
    println!("{:<8} {:<8} {:>4} {:>9} {:>9}  runs", "backend", "signal", "n", "median", "max");
    for x in f {
        // An unanswered run took longer than the rest of its window: a lower bound.
        let bound = x.unanswered_after_ms.map_or("-".to_string(), |b| format!(">{b:.0}"));
        let opt = |v: Option<f64>| v.map_or(bound.clone(), |m| format!("{m:.1}"));
        let runs: Vec<String> = x.runs_ms.iter().map(|m| opt(*m)).collect();
        println!(
            "{:<8} {:<8} {:>4} {:>9} {:>9}  {}{}",
            x.backend,
            x.signal,
            x.runs_ms.len(),
            opt(x.median_ms),
            opt(x.max_ms),
            runs.join(" "),
            if x.unanswered > 0 {
                format!(" ({} without an answer before the window ended)", x.unanswered)
            } else {
                String::new()
            }
        );
    }
    for ours in f.iter().filter(|x| x.backend == "auction") {
        let Some(etcd) = f.iter().find(|x| x.backend == "etcd" && x.signal == ours.signal) else {
            continue;
        };
        // etcd's figure may be a lower bound (unanswered runs): the ratio is then an upper one.
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b, etcd.unanswered_after_ms) {
            (Some(a), Some(b), _) if b > 0.0 => format!("{:.3}", a / b),
            (Some(a), None, Some(bound)) if bound > 0.0 => format!("<{:.3}", a / bound),
            _ => "-".to_string(),
        };
        println!(
            "ours/etcd, {}: median {}, max {}",
            ours.signal,
            ratio(ours.median_ms, etcd.median_ms),
            ratio(ours.max_ms, etcd.max_ms)
        );
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
