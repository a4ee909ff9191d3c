//! The bench's output: a table for people, one JSON object for scripts. The only place that
//! prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::Report;
use crate::stats::Summary;

/// One line on stderr per finished run, so long sweeps show progress.
pub(crate) fn progress(s: &Summary) {
    eprintln!(
        "done: {} {} clients: {:.0} req/s, p99 {} us",
        s.backend, s.clients, s.requests_per_s, s.latency.p99_us
    );
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
                "killed leader {} at {:.0} ms into the window; first committed answer to a \
                 request sent after it: {first}; longest gap between committed answers: {:.1} ms",
                k.server, k.at_ms, s.max_gap_ms
            );
        }
    }
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

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
