//! The bench end to end, as a functional test (no timing assertion: performance goals are
//! measured by running the bench, never asserted in tests): a tiny run on a local cluster
//! must complete requests and print one JSON object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_auction-bench");

/// The `auction-node` binary next to the bench's; built on demand when only this package's
/// tests were asked for (`cargo test --workspace` builds it anyway).
fn node_binary() -> PathBuf {
    let dir = Path::new(BENCH).parent().unwrap();
    let node = dir.join("auction-node");
    if !node.exists() {
        let profile =
            if dir.file_name().is_some_and(|n| n == "release") { "release" } else { "dev" };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "auction-node", "--bin", "auction-node", "--profile", profile])
            .arg("--target-dir")
            .arg(dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building auction-node failed");
    }
    node
}

/// Runs the bench on a local cluster (no fsync, `--json`) with `args`; returns its one JSON
/// object.
fn local_run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BENCH)
        .args(["--local", "--node-bin"])
        .arg(node_binary())
        .args(["--fsync", "never", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn a_short_local_run_completes_requests_and_prints_json() {
    let v = local_run(&["--clients", "2", "--auctions", "3", "--warmup", "0s", "--duration", "1s"]);
    let run = &v["runs"][0];
    assert_eq!(run["backend"], "auction");
    assert_eq!(run["clients"], 2);
    assert!(run["completed"].as_u64().unwrap() > 0, "{v}");
    assert!(run["latency"]["p50_us"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(run["rss_kib"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn killing_or_terminating_the_leader_mid_run_reports_it_and_answers_after_it() {
    let v = local_run(&[
        "--clients",
        "4",
        "--warmup",
        "1s",
        "--duration",
        "5s",
        "--kill-leader-after",
        "1s",
        "--leader-signal",
        "kill,term",
    ]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    for (run, signal) in runs.iter().zip(["SIGKILL", "SIGTERM"]) {
        let kill = &run["kill"];
        assert_eq!(kill["signal"], signal, "{v}");
        assert!(kill["server"].as_str().is_some_and(|s| s.starts_with('n')), "{v}");
        // The survivors have a leader and committed a request sent after the signal; how
        // fast is the benchmark's business, not this test's.
        assert!(kill["to_first_commit_ms"].as_f64().is_some(), "no answer after it: {v}");
        // The second run had a fresh cluster of 3; each lost its leader.
        assert_eq!(run["rss_kib"].as_array().unwrap().len(), 2, "{v}");
    }
    let failover = v["failover"].as_array().unwrap();
    assert_eq!(failover.len(), 2, "one entry per signal: {v}");
    assert!(failover.iter().all(|f| f["median_ms"].as_f64().is_some()), "{v}");
}

#[test]
fn flags_are_consistent_and_an_existing_cluster_or_local_is_required() {
    let out = Command::new(BENCH).arg("--clients").arg("2").output().unwrap();
    assert!(!out.status.success());
    let help = Command::new(BENCH).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--servers", "--local", "--kill-leader-after", "--sweep", "--backend", "--json"] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn inconsistent_kill_and_duration_flags_are_refused_before_anything_starts() {
    let refused = |args: &[&str], why: &str| {
        let mut cmd = Command::new(BENCH);
        let out = cmd.args(["--local", "--node-bin", "/nonexistent"]).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    };
    refused(&["--duration", "5s", "--kill-leader-after", "5s"], "--kill-leader-after must fall");
    refused(&["--kill-leader-after", "1s", "--restart"], "not after --kill-leader-after");
    refused(&["--duration", "100000h"], "must stay within");
    refused(&["--repeat", "0"], "positive numbers");
    // A signal without a stop to send it for; our leader stopped without --local.
    refused(&["--leader-signal", "term"], "--kill-leader-after");
    let out = Command::new(BENCH)
        .args(["--servers", "127.0.0.1:1", "--kill-leader-after", "1s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --local"), "{out:?}");
}
