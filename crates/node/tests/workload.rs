//! A bidding workload against 3 real `auction-node` processes on loopback while a fault thread
//! `kill -9`s and restarts them, then a heal, then the history checker of
//! `workload_check/mod.rs` over what the clients recorded and what every node shows at the end.
//! The workload itself is `bidding/mod.rs` (shared with `netns_workload.rs`); this file has the
//! loopback cluster, its fault schedule and the checker's own tests.
//!
//! Every bid choice comes from a seeded RNG; the seed is printed and `SEED=n` replays the same
//! choices (the timing, and so the interleaving, is the machine's):
//!
//! ```sh
//! SEED=42 cargo test -p auction-node --test workload -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod bidding;
mod common;
mod workload_check;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bidding::Workload;
use common::TestCluster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How long the fault phase runs.
const FAULT_PHASE: Duration = Duration::from_secs(12);

#[test]
fn bidding_through_kill_9_and_restarts_keeps_every_property() {
    let seed = bidding::seed();
    let replay = format!("SEED={seed} cargo test -p auction-node --test workload -- --nocapture");
    eprintln!("workload seed {seed}; replay: {replay}");
    let started = Instant::now();
    let mut cluster = TestCluster::start(3);
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
    let mut workload = Workload::setup(seed, &addrs);

    let mut kills = Vec::new();
    workload.run(FAULT_PHASE, |phase| {
        // kill -9 one node, restart it, let it rejoin, repeat.
        let mut faults = ChaCha8Rng::seed_from_u64(seed ^ 0xFA17);
        std::thread::sleep(Duration::from_millis(faults.random_range(500..1500)));
        while !phase.faults_over() {
            let leader = faults.random_bool(0.5);
            let victim = match leader.then(|| cluster.leader()).flatten() {
                Some(l) => l,
                None => faults.random_range(0..3),
            };
            cluster.kill(victim);
            kills.push((phase.elapsed(), victim, leader));
            std::thread::sleep(Duration::from_millis(faults.random_range(800..1300)));
            cluster.spawn(victim);
            // Back in the configuration with a leader before the next fault: one down at most.
            let back = Instant::now();
            while back.elapsed() < Duration::from_secs(10) && !cluster.converged(3) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(faults.random_range(1000..2000)));
        }
        // Heal: every node up, one leader everywhere.
        for i in 0..3 {
            if !cluster.running(i) {
                cluster.spawn(i);
            }
        }
        cluster.wait_for(Duration::from_secs(30), |c| c.converged(3));
    });

    // Final state: every node, once it has applied everything any client saw and the leader
    // had committed when the clients stopped.
    let mut target = workload.seen();
    for i in 0..3 {
        if let Some(r) = cluster.report(i) {
            target = target.max(r.commit);
        }
    }
    let finals = workload.final_states(&addrs, target, |i| format!("{:?}", cluster.report(i)));
    let schedule = format!("kills (at, node, meant the leader) {kills:?}");
    let accepted = workload.check(finals, &schedule, &replay);
    eprintln!("seed {seed}: total {:?}", started.elapsed());
    assert!(accepted > 10, "the workload should get bids accepted: {accepted}");
    assert!(!kills.is_empty(), "the fault thread should have killed nodes");
}

/// The checker on hand-made histories: a clean one passes, and a planted violation of each
/// property is reported under that property's name.
mod checker {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::common::spec;
    use crate::workload_check::{
        BidOp, FinalState, History, Invocation, Observation, OpResult, Opened, check,
    };
    use auction_proto::msg::auction::{
        AuctionState, AuctionSummary, BidKind, BidRecord, Bidder, BidderAlias, BidderName, Outcome,
        RejectReason,
    };
    use auction_proto::msg::client::ClientError;
    use auction_proto::{Amount, AuctionId, Seq, Timestamp};

    const OPEN_AT: u64 = 1_000_000;

    /// `name` as the seller sees them (alice is bidder 1, bob 2, anybody else 3).
    fn named(name: &str) -> Bidder {
        let alias = BidderAlias(match name {
            "alice" => 1,
            "bob" => 2,
            _ => 3,
        });
        Bidder::Named { alias, name: BidderName::new(name).unwrap() }
    }

    fn record(seq: u64, bidder: &str, kind: BidKind, price: u64) -> BidRecord {
        BidRecord {
            seq: Seq(seq),
            at: Timestamp(OPEN_AT + seq),
            bidder: named(bidder),
            kind,
            price: Amount::from_minor(price),
        }
    }

    fn inv(client: usize, no: u64, amount: u64, seen_before: u64, result: OpResult) -> Invocation {
        Invocation {
            client,
            no,
            op: BidOp { auction: AuctionId(1), kind: BidKind::Plain, amount },
            at: Duration::from_secs(no),
            done_at: Some(Duration::from_secs(no) + Duration::from_millis(10)),
            seen_before: Seq(seen_before),
            uncertain: 1,
            result,
        }
    }

    /// `Accepted` for the leader's own bid.
    fn accepted(price: u64, leader: &str, applied: u64) -> OpResult {
        let Bidder::Named { alias, name } = named(leader) else { unreachable!() };
        OpResult::Ok {
            outcome: Outcome::Accepted {
                auction: AuctionId(1),
                price: Amount::from_minor(price),
                leader: Bidder::You { alias, name },
            },
            applied: Seq(applied),
        }
    }

    /// alice bids 1000 (seq 10), bob 1500 (seq 11: price 1100), alice 1200 is too low (seq
    /// 12), bob reads at 11.
    fn clean() -> History {
        let s = spec("lamp", 30);
        let summary = AuctionSummary {
            id: AuctionId(1),
            title: "lamp".into(),
            seller: BidderName::new("seller").unwrap(),
            state: AuctionState::Open,
            price: Amount::from_minor(1100),
            leader: Some(named("bob")),
            bids: 2,
            ends_at: Timestamp(OPEN_AT + s.duration.as_millis() as u64),
            ended_at: None,
            reserve_met: None,
        };
        let hist = vec![
            record(10, "alice", BidKind::Plain, 1000),
            record(11, "bob", BidKind::Plain, 1100),
        ];
        let fin = |node| FinalState {
            node,
            auctions: vec![summary.clone()],
            histories: BTreeMap::from([(AuctionId(1), hist.clone())]),
        };
        let too_low = OpResult::Ok {
            outcome: Outcome::Rejected {
                reason: RejectReason::TooLow { minimum: Amount::from_minor(1200) },
            },
            applied: Seq(12),
        };
        History {
            seller: "seller".into(),
            bidders: vec!["alice".into(), "bob".into()],
            auctions: vec![Opened { id: AuctionId(1), spec: s, opened_at: Timestamp(OPEN_AT) }],
            invocations: vec![
                inv(0, 1, 1000, 9, accepted(1000, "alice", 10)),
                inv(1, 1, 1500, 9, accepted(1100, "bob", 11)),
                inv(0, 2, 1150, 10, too_low),
            ],
            observations: vec![
                Observation { client: 0, applied: Seq(10), view: None },
                Observation { client: 1, applied: Seq(11), view: None },
                Observation {
                    client: 1,
                    applied: Seq(11),
                    view: Some((AuctionId(1), (1100, Some("bidder 2".into()), 2))),
                },
                Observation { client: 0, applied: Seq(12), view: None },
            ],
            finals: vec![fin(0), fin(1), fin(2)],
            heal_at: Some(Duration::from_secs(1)),
            liveness_bound: Duration::from_secs(10),
        }
    }

    fn properties(h: &History) -> Vec<&'static str> {
        let mut p: Vec<_> = check(h).into_iter().map(|v| v.property).collect();
        p.dedup();
        p
    }

    fn assert_caught(h: &History, property: &str) {
        let violations = check(h);
        assert!(
            violations.iter().any(|v| v.property == property),
            "expected {property}, got {violations:?}"
        );
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }

    #[test]
    fn nodes_that_disagree_are_agreement() {
        let mut h = clean();
        h.finals[2].histories.get_mut(&AuctionId(1)).unwrap().pop();
        assert_caught(&h, "agreement");
        let mut h = clean();
        h.finals[1].auctions[0].bids = 3;
        assert_eq!(properties(&h), vec!["agreement"]);
    }

    #[test]
    fn an_acked_bid_missing_from_the_final_history_is_durability() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap().pop();
        }
        assert_caught(&h, "durability");
    }

    #[test]
    fn an_acked_bid_at_another_position_is_durability() {
        let mut h = clean();
        h.invocations[1].result = accepted(1100, "bob", 13);
        assert_eq!(properties(&h), vec!["durability"]);
    }

    #[test]
    fn a_refused_bid_that_appears_is_durability() {
        let mut h = clean();
        h.invocations[1].result = OpResult::Refused(ClientError::Unavailable {
            retry_after: Duration::from_millis(100),
            leader: None,
        });
        assert_caught(&h, "durability");
    }

    #[test]
    fn a_bid_applied_twice_or_never_sent_is_integrity() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories
                .get_mut(&AuctionId(1))
                .unwrap()
                .insert(1, record(10, "alice", BidKind::Plain, 1000));
        }
        assert_caught(&h, "integrity");
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].kind = BidKind::Proxy;
        }
        assert_caught(&h, "integrity");
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].bidder = named("mallory");
        }
        assert_caught(&h, "integrity");
    }

    #[test]
    fn a_dropping_price_or_the_wrong_leader_is_auction_rules() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].price = Amount::from_minor(900);
        }
        h.invocations[1].result = accepted(900, "bob", 11);
        assert_caught(&h, "auction-rules");
        let mut h = clean();
        for f in &mut h.finals {
            f.auctions[0].leader = Some(named("alice"));
        }
        assert_eq!(properties(&h), vec!["auction-rules"]);
        // A valid bid answered TooLow.
        let mut h = clean();
        h.invocations[2].op.amount = 1600;
        assert_eq!(properties(&h), vec!["auction-rules"]);
    }

    #[test]
    fn a_stale_or_wrong_read_is_reads() {
        let mut h = clean();
        h.observations.push(Observation { client: 1, applied: Seq(10), view: None });
        assert_eq!(properties(&h), vec!["reads"]);
        let mut h = clean();
        h.observations[2].view = Some((AuctionId(1), (1000, Some("bidder 1".into()), 1)));
        assert_eq!(properties(&h), vec!["reads"]);
    }

    #[test]
    fn a_request_unanswered_after_the_heal_is_liveness() {
        let mut h = clean();
        h.invocations[2].result = OpResult::Unknown;
        h.invocations[2].done_at = None;
        assert_eq!(properties(&h), vec!["liveness"]);
        let mut h = clean();
        h.invocations[2].done_at = Some(Duration::from_secs(30));
        assert_eq!(properties(&h), vec!["liveness"]);
    }
}
