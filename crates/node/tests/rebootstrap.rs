//! The documented recovery from a corrupt WAL, done to the founder: its data directory is
//! wiped and it is restarted with its original flags, `--bootstrap` included. It must not
//! found a second cluster with the same key (clients would pick it, and the bids it
//! acknowledged would be lost); it must exit saying what to do, and once restarted as that
//! message says it joins the running cluster with every acknowledged bid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auction_proto::msg::auction::Outcome;
use common::{Client, TestCluster, bid, open_auction};

#[test]
fn a_wiped_founder_restarted_with_bootstrap_does_not_fork_the_cluster() {
    let mut cluster = TestCluster::start(3);
    let mut seller = Client::connect(cluster.nodes[1].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "clock");
    let mut alice = Client::connect(cluster.nodes[2].client).unwrap();
    alice.register_and_login("alice");
    for i in 0..5 {
        assert!(matches!(bid(&mut alice, auction, 1000 + i * 100), Outcome::Accepted { .. }));
    }

    // The operator follows the corrupt-WAL recovery on the founder: kill, wipe, restart
    // with the same command line (the harness passes --bootstrap on an empty directory).
    cluster.kill(0);
    std::fs::remove_dir_all(&cluster.nodes[0].dir).unwrap();
    let log = cluster.dir.path().join("n1.stderr");
    cluster.nodes[0].stderr = Some(log.clone());
    cluster.spawn(0);
    let status = cluster.wait_exit(0, Duration::from_secs(30)).expect("the founder must exit");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "it must fail, not found a cluster: {status:?}\n{said}");
    assert!(said.contains("refusing to found a second cluster"), "{said}");
    assert!(said.contains("without --bootstrap"), "the message says what to do: {said}");

    // Bidding went on at the real cluster meanwhile (2 of 3 members live).
    assert!(matches!(bid(&mut alice, auction, 2000), Outcome::Accepted { .. }));

    // Restarted as the message says, it joins the running cluster (a new member: its old
    // identity went with the directory) and holds every acknowledged bid.
    cluster.nodes[0].bootstrap = false;
    cluster.nodes[0].stderr = None;
    cluster.spawn(0);
    let addr = cluster.nodes[0].client;
    let seen = alice.seen;
    let mut history = None;
    cluster.wait_for(Duration::from_secs(30), |_| {
        history = common::history_if_applied(addr, auction, seen);
        history.is_some()
    });
    let history = history.unwrap();
    assert_eq!(history.len(), 6, "every acknowledged bid, once: {history:?}");
    // A learner first (it already answers reads), then a voter of the running cluster.
    cluster.wait_for(Duration::from_secs(30), |c| {
        c.report(0).is_some_and(|r| r.members.contains(&r.node))
    });
    let report = cluster.report(0).expect("the rejoined node answers");
    let leader = cluster.report(1).and_then(|r| r.leader);
    assert_eq!(report.leader, leader, "one cluster, one leader");
}
