//! Real `auction-node` processes on separate hosts: Linux network namespaces on a bridge
//! (see `netns_util` for the topology). Broadcast discovery with no addresses configured,
//! a partitioned host that must refuse writes and catch up when healed, and random loss.
//!
//! These need root (CI runs as root); elsewhere each test prints why and returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;
mod netns_util;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{BidRecord, Outcome};
use auction_proto::msg::client::{ClientError, NodeReport, RequestBody};
use auction_proto::{Amount, AuctionId, Seq};
use common::{Client, bid, open_auction};
use netns_util::{Lan, can_run};

/// One LAN at a time: the tests' failure detectors run on 200 ms probes, and three clusters
/// sharing two cores would make their timing, not the protocol, the thing under test.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `cond` every 100 ms until it holds; panics after `limit` with `what` and the
/// hosts' reports.
fn wait_until(lan: &Lan, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reports: Vec<_> = (0..lan.hosts.len()).map(|k| lan.report(k)).collect();
    panic!("{what}: not within {limit:?}; reports: {reports:#?}");
}

/// Starts every host's node (no addresses configured) and waits for one cluster of all.
fn start_cluster(lan: &Lan) -> Vec<NodeReport> {
    for k in 0..lan.hosts.len() {
        lan.spawn(k);
    }
    let mut reports = None;
    wait_until(lan, Duration::from_secs(25), "the hosts form one cluster", || {
        reports = lan.converged(lan.hosts.len());
        reports.is_some()
    });
    for k in 0..lan.hosts.len() {
        assert!(lan.running(k), "host {k}'s node exited");
    }
    reports.unwrap()
}

fn logged_in(addr: SocketAddr, name: &str) -> Client {
    let mut c = Client::connect(addr).unwrap();
    c.register_and_login(name);
    c
}

/// The history of `auction` at `addr` once that server has applied `seq`.
fn history_at(lan: &Lan, addr: SocketAddr, auction: AuctionId, seq: Seq) -> Vec<BidRecord> {
    let mut out = None;
    wait_until(lan, Duration::from_secs(15), &format!("{addr} applies {seq:?}"), || {
        out = common::history_if_applied(addr, auction, seq);
        out.is_some()
    });
    out.unwrap()
}

#[test]
fn three_hosts_find_each_other_by_broadcast_and_form_a_cluster() {
    if !can_run("three_hosts_find_each_other_by_broadcast_and_form_a_cluster") {
        return;
    }
    let _serial = serial();
    let lan = Lan::create(3);
    lan.in_client_ns(|| {
        let reports = start_cluster(&lan);
        let mut ids: Vec<_> = reports.iter().map(|r| r.node).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "three distinct nodes answered");
        assert_eq!(reports[0].members.len(), 3);

        // A bid committed through one host is visible on all of them.
        let mut seller = logged_in(lan.hosts[0].client(), "seller");
        let auction = open_auction(&mut seller, "lamp");
        let mut alice = logged_in(lan.hosts[1].client(), "alice");
        assert!(matches!(bid(&mut alice, auction, 1000), Outcome::Accepted { .. }));
        let mut bob = logged_in(lan.hosts[2].client(), "bob");
        assert!(matches!(bid(&mut bob, auction, 1500), Outcome::Accepted { .. }));
        let seq = alice.seen.max(bob.seen);
        let histories: Vec<_> =
            lan.hosts.iter().map(|h| history_at(&lan, h.client(), auction, seq)).collect();
        assert_eq!(histories[0].len(), 2, "{histories:?}");
        assert!(histories.iter().all(|h| *h == histories[0]), "{histories:#?}");
    });
}

#[test]
fn a_cut_off_host_cannot_commit_while_the_others_can_and_catches_up_when_healed() {
    if !can_run("a_cut_off_host_cannot_commit_while_the_others_can_and_catches_up_when_healed") {
        return;
    }
    let _serial = serial();
    let lan = Lan::create(3);
    lan.in_client_ns(|| {
        let reports = start_cluster(&lan);
        let leader_id = reports[0].leader.unwrap();
        let leader = reports.iter().position(|r| r.node == leader_id).expect("leader is a host");
        let cut = (leader + 1) % 3;
        let other = (leader + 2) % 3;
        let cut_addr = lan.hosts[cut].client();

        let mut seller = logged_in(lan.hosts[leader].client(), "seller");
        let auction = open_auction(&mut seller, "bike");
        let mut alice = logged_in(lan.hosts[other].client(), "alice");
        // Carol's session lives on the host that will be cut off.
        let mut carol = logged_in(cut_addr, "carol");
        assert!(matches!(bid(&mut carol, auction, 1000), Outcome::Accepted { .. }));
        let before = lan.report(cut).unwrap();

        lan.isolate(cut);
        // The cut-off host notices that its leader is gone...
        wait_until(&lan, Duration::from_secs(10), "the cut-off host loses its leader", || {
            lan.report(cut).is_some_and(|r| r.leader.is_none() || r.term > before.term)
        });
        // ...and never accepts a write, while the other two still commit. Carol's bid on the
        // cut-off host runs beside alice's on the majority.
        let (carol_reply, waited) = std::thread::scope(|s| {
            let cut_bid = s.spawn(|| {
                let start = Instant::now();
                let r = carol
                    .request(RequestBody::Bid {
                        auction,
                        amount: Amount::from_minor(5000),
                        expected: None,
                    })
                    .unwrap();
                (r, start.elapsed())
            });
            for minor in [1100, 1200, 1300] {
                assert!(matches!(bid(&mut alice, auction, minor), Outcome::Accepted { .. }));
            }
            cut_bid.join().unwrap()
        });
        // A minority refuses at once with a clear `Unavailable` (nothing is queued).
        assert!(
            matches!(carol_reply.result, Err(ClientError::Unavailable { .. })),
            "a cut-off host must refuse a write with Unavailable: {:?} after {waited:?}",
            carol_reply.result
        );
        assert!(waited < Duration::from_secs(3), "refused within a bound, not after {waited:?}");
        let majority = history_at(&lan, lan.hosts[leader].client(), auction, alice.seen);
        assert_eq!(majority.len(), 4, "carol's first bid and alice's three: {majority:?}");
        assert!(lan.report(cut).unwrap().applied < alice.seen, "the cut-off host saw nothing");

        lan.heal();
        // The host catches up...
        let caught_up = history_at(&lan, cut_addr, auction, alice.seen);
        assert_eq!(caught_up[..4], majority[..], "the cut-off host agrees after healing");
        wait_until(&lan, Duration::from_secs(15), "one cluster again", || {
            lan.converged(3).is_some()
        });
        // ...and can commit again.
        assert!(matches!(bid(&mut carol, auction, 9000), Outcome::Accepted { .. }));
        let seq = carol.seen;
        let histories: Vec<_> =
            lan.hosts.iter().map(|h| history_at(&lan, h.client(), auction, seq)).collect();
        assert!(histories.iter().all(|h| *h == histories[0]), "{histories:#?}");
        assert_eq!(histories[0][..4], majority[..]);
        // The refused write never appears. Carol bid first: the history shows her as bidder 1.
        let carols = histories[0].iter().filter(|b| b.bidder.alias().0 == 1).count();
        assert_eq!(carols, 2, "carol's bids: {:#?}", histories[0]);
    });
}

#[test]
fn bidding_works_with_five_percent_random_loss_between_hosts() {
    if !can_run("bidding_works_with_five_percent_random_loss_between_hosts") {
        return;
    }
    let _serial = serial();
    let lan = Lan::create(3);
    lan.in_client_ns(|| {
        start_cluster(&lan);
        lan.lossy(5);
        // The rules bite (heartbeats alone pass enough packets).
        wait_until(&lan, Duration::from_secs(10), "nftables drops packets", || lan.dropped() > 0);
        let mut seller = logged_in(lan.hosts[0].client(), "seller");
        let auction = open_auction(&mut seller, "piano");
        let mut bidders =
            [logged_in(lan.hosts[1].client(), "alice"), logged_in(lan.hosts[2].client(), "bob")];
        let start = Instant::now();
        for i in 0..20u64 {
            let c = &mut bidders[usize::try_from(i % 2).unwrap()];
            let o = bid(c, auction, 1000 + i * 100);
            assert!(matches!(o, Outcome::Accepted { .. }), "bid {i}: {o:?}");
        }
        eprintln!(
            "20 bids under 5% loss took {:?}; {} packets dropped",
            start.elapsed(),
            lan.dropped()
        );
        let seq = bidders[0].seen.max(bidders[1].seen);
        let histories: Vec<_> =
            lan.hosts.iter().map(|h| history_at(&lan, h.client(), auction, seq)).collect();
        assert_eq!(histories[0].len(), 20, "{histories:?}");
        assert!(histories.iter().all(|h| *h == histories[0]), "{histories:#?}");
    });
}

/// How long the no-election run lasts: 60 s in CI, `NETNS_LOSS_SECS=600` for the ten
/// minutes by hand.
fn loss_run_secs() -> u64 {
    std::env::var("NETNS_LOSS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

/// Issue 16: with 5 % random loss on every host's input, a steady cluster with the default
/// failover flags (heartbeat 20 ms, leader timeout 120-240 ms) never elects: every host keeps
/// the term and the leader it started with, while bids go through.
#[test]
fn a_minute_at_five_percent_loss_without_an_election() {
    if !can_run("a_minute_at_five_percent_loss_without_an_election") {
        return;
    }
    let _serial = serial();
    let lan = Lan::create(3);
    lan.in_client_ns(|| {
        let reports = start_cluster(&lan);
        let (term, leader) = (reports[0].term, reports[0].leader);
        assert!(reports.iter().all(|r| r.term == term && r.leader == leader), "{reports:#?}");
        lan.lossy(5);
        let mut seller = logged_in(lan.hosts[0].client(), "seller");
        let auction = open_auction(&mut seller, "organ");
        let mut alice = logged_in(lan.hosts[1].client(), "alice");
        let secs = loss_run_secs();
        let start = Instant::now();
        let (mut bids, mut checks) = (0u64, 0u64);
        while start.elapsed() < Duration::from_secs(secs) {
            let o = bid(&mut alice, auction, 1000 + bids * 100);
            assert!(matches!(o, Outcome::Accepted { .. }), "bid {bids}: {o:?}");
            bids += 1;
            for k in 0..3 {
                // A report lost to the loss is retried by the next round; one that answers
                // must show the same term and leader.
                if let Some(r) = lan.report(k) {
                    assert_eq!(
                        (r.term, r.leader),
                        (term, leader),
                        "host {k} after {:?}: an election under 5% loss",
                        start.elapsed()
                    );
                    checks += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let dropped = lan.dropped();
        eprintln!("{secs} s at 5% loss: {bids} bids, {checks} reports, {dropped} packets dropped");
        assert!(dropped > 0, "the loss rules never bit");
        assert!(checks >= bids, "too few reports answered: {checks} for {bids} rounds");
    });
}

/// Issue 16: a leader cut off from both others gives up leading after `step_down_after` (2 s)
/// (it hears no majority), reports no leader instead of itself, and never raises its term
/// while cut off; the other two elect a new leader, and the old one follows it when healed.
#[test]
fn a_cut_off_leader_steps_down_and_says_so() {
    if !can_run("a_cut_off_leader_steps_down_and_says_so") {
        return;
    }
    let _serial = serial();
    let lan = Lan::create(3);
    lan.in_client_ns(|| {
        let reports = start_cluster(&lan);
        let leader_id = reports[0].leader.unwrap();
        let old = reports.iter().position(|r| r.node == leader_id).expect("leader is a host");
        let term = reports[old].term;
        lan.isolate(old);
        let cut = Instant::now();
        wait_until(&lan, Duration::from_secs(5), "the cut-off leader steps down", || {
            lan.report(old).is_some_and(|r| {
                r.role != auction_proto::msg::client::Role::Leader && r.leader.is_none()
            })
        });
        eprintln!("the cut-off leader stepped down after {:?}", cut.elapsed());
        let others: Vec<usize> = (0..3).filter(|k| *k != old).collect();
        wait_until(&lan, Duration::from_secs(10), "the others elect a new leader", || {
            others
                .iter()
                .all(|k| lan.report(*k).is_some_and(|r| r.leader.is_some_and(|l| l != leader_id)))
        });
        // Cut off for a few seconds more, it keeps its term (pre-vote, no election alone).
        std::thread::sleep(Duration::from_secs(3));
        let r = lan.report(old).unwrap();
        assert_eq!(r.term, term, "the cut-off leader raised its term alone: {r:?}");
        lan.heal();
        wait_until(&lan, Duration::from_secs(15), "one cluster again", || {
            lan.converged(3).is_some()
        });
        let after = lan.report(old).unwrap();
        assert!(after.leader.is_some_and(|l| l != leader_id), "it follows the new leader");
    });
}
