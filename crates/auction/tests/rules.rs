//! One test per rule of issue 3, named after the rule.

mod common;

use std::time::Duration;

use auction_core::AuctionMachine;
use auction_proto::msg::auction::*;
use auction_proto::msg::client::ListFilter;
use auction_proto::msg::log::*;
use auction_proto::{AuctionId, Seq, Term, Timestamp};
use common::*;

#[test]
fn many_auctions_run_at_once_with_deterministic_ids() {
    let mut h = H::new();
    let a = h.open(spec());
    let b = h.open(spec());
    assert_eq!((a, b), (AuctionId(1), AuctionId(2)));
    assert_eq!(h.bid(a, "alice", 100), accepted(a, 100, you(1, "alice")));
    assert_eq!(h.bid(b, "bob", 150), accepted(b, 100, you(1, "bob")));
    assert_eq!(h.m.auctions(ListFilter::Open).len(), 2);
}

#[test]
fn open_auction_ends_at_opening_time_plus_duration() {
    let mut h = H::new();
    let out = h.op(Operation::OpenAuction { seller: name("seller"), spec: spec() }).outcome;
    assert_eq!(out, Outcome::Opened { auction: AuctionId(1), ends_at: Timestamp(61_000) });
}

#[test]
fn open_auction_by_unregistered_seller_is_unknown_bidder() {
    let mut h = H::new();
    let out = h.op(Operation::OpenAuction { seller: name("mallory"), spec: spec() }).outcome;
    assert_eq!(out, rejected(RejectReason::UnknownBidder));
}

#[test]
fn invalid_specs_are_refused() {
    let mut h = H::new();
    let mut bad = vec![AuctionSpec { title: "  ".into(), ..spec() }];
    bad.push(AuctionSpec { title: "x".repeat(121), ..spec() });
    bad.push(AuctionSpec { starting_price: amt(0), ..spec() });
    bad.push(AuctionSpec { reserve: Some(amt(50)), ..spec() });
    bad.push(AuctionSpec { buy_now: Some(amt(99)), ..spec() });
    bad.push(AuctionSpec { reserve: Some(amt(500)), buy_now: Some(amt(400)), ..spec() });
    bad.push(AuctionSpec { increment: IncrementRule::Fixed(amt(0)), ..spec() });
    bad.push(AuctionSpec { duration: Duration::ZERO, ..spec() });
    let sc = SoftClose {
        window: Duration::ZERO,
        extension: Duration::from_secs(1),
        max_extension: Duration::ZERO,
    };
    bad.push(AuctionSpec { soft_close: Some(sc), ..spec() });
    for s in bad {
        let out = h.op(Operation::OpenAuction { seller: name("seller"), spec: s.clone() }).outcome;
        assert_eq!(out, rejected(RejectReason::InvalidSpec), "{s:?}");
    }
    assert!(h.m.auctions(ListFilter::All).is_empty());
}

#[test]
fn first_bid_must_reach_the_starting_price() {
    let mut h = H::new();
    let a = h.open(spec());
    assert_eq!(h.bid(a, "alice", 99), rejected(RejectReason::TooLow { minimum: amt(100) }));
    assert_eq!(h.bid(a, "alice", 100), accepted(a, 100, you(1, "alice")));
}

#[test]
fn later_bid_must_reach_price_plus_increment() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "alice", 100);
    assert_eq!(h.bid(a, "bob", 109), rejected(RejectReason::TooLow { minimum: amt(110) }));
    assert_eq!(h.bid(a, "bob", 110), accepted(a, 110, you(2, "bob")));
}

#[test]
fn tiered_increment_follows_the_current_price() {
    let mut h = H::new();
    let tiers = vec![
        IncrementTier { from: amt(0), increment: amt(10) },
        IncrementTier { from: amt(500), increment: amt(50) },
    ];
    let a = h.open(AuctionSpec { increment: IncrementRule::Tiered(tiers), ..spec() });
    h.bid(a, "alice", 500);
    assert_eq!(h.bid(a, "bob", 500), accepted(a, 500, alias(1)));
    assert_eq!(h.bid(a, "bob", 540), rejected(RejectReason::TooLow { minimum: amt(550) }));
}

#[test]
fn seller_cannot_bid() {
    let mut h = H::new();
    let a = h.open(spec());
    assert_eq!(h.bid(a, "seller", 500), rejected(RejectReason::SellerCannotBid));
}

#[test]
fn bid_by_unregistered_bidder_is_unknown_bidder() {
    let mut h = H::new();
    let a = h.open(spec());
    assert_eq!(h.bid(a, "mallory", 500), rejected(RejectReason::UnknownBidder));
}

#[test]
fn bid_on_unknown_auction_is_refused() {
    let mut h = H::new();
    assert_eq!(h.bid(AuctionId(9), "alice", 500), rejected(RejectReason::UnknownAuction));
    assert_eq!(h.bid(AuctionId(0), "alice", 500), rejected(RejectReason::UnknownAuction));
}

#[test]
fn zero_or_overflowing_amounts_are_invalid() {
    let mut h = H::new();
    let a = h.open(spec());
    let max = MAX_PRICE.minor();
    assert_eq!(h.bid(a, "alice", 0), rejected(RejectReason::InvalidAmount));
    assert_eq!(h.bid(a, "alice", u64::MAX), rejected(RejectReason::InvalidAmount));
    assert_eq!(h.bid(a, "alice", max + 1), rejected(RejectReason::InvalidAmount));
    assert_eq!(h.bid(a, "alice", max), accepted(a, 100, you(1, "alice")));
    assert_eq!(h.bid(a, "bob", max), accepted(a, max, alias(1)));
    // price + increment is now past the money range: nothing is high enough, and `show` says so.
    assert_eq!(h.m.auction(a).unwrap().minimum_bid, None);
    assert_eq!(h.bid(a, "carol", max), rejected(RejectReason::InvalidAmount));
}

#[test]
fn proxy_bid_leads_at_just_enough() {
    let mut h = H::new();
    let a = h.open(spec());
    assert_eq!(h.proxy(a, "alice", 1000), accepted(a, 100, you(1, "alice")));
    // bob's 300 is beaten by alice's secret 1000: the price is 300 + one increment. bob is
    // told that bidder 1 leads, never who that is.
    assert_eq!(h.bid(a, "bob", 300), accepted(a, 310, alias(1)));
    assert_eq!(h.m.auction(a).unwrap().minimum_bid, Some(amt(320)));
}

#[test]
fn higher_maximum_takes_the_lead_at_second_maximum_plus_increment() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    let applied = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("bob"),
        amount: amt(800),
        kind: BidKind::Proxy,
        expected: None,
    });
    assert_eq!(applied.outcome, accepted(a, 510, you(2, "bob")));
    let events = |viewer: Option<&str>| {
        let viewer = viewer.map(name);
        applied.events.iter().map(|e| e.for_viewer(viewer.as_ref())).collect::<Vec<_>>()
    };
    let shown = |leader, bidder| {
        vec![
            AuctionEvent::NewHighBid { auction: a, price: amt(510), leader },
            AuctionEvent::Outbid { auction: a, bidder, price: amt(510) },
        ]
    };
    assert_eq!(events(None), shown(alias(2), alias(1)));
    assert_eq!(events(Some("carol")), shown(alias(2), alias(1)));
    assert_eq!(events(Some("alice")), shown(alias(2), you(1, "alice")));
    assert_eq!(events(Some("bob")), shown(you(2, "bob"), alias(1)));
    assert_eq!(events(Some("seller")), shown(named(2, "bob"), named(1, "alice")));
}

#[test]
fn price_is_capped_at_the_highest_maximum() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    assert_eq!(h.proxy(a, "bob", 505), accepted(a, 505, you(2, "bob")));
}

#[test]
fn earlier_maximum_wins_a_tie() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    assert_eq!(h.proxy(a, "bob", 500), accepted(a, 500, alias(1)));
}

#[test]
fn plain_bid_is_a_proxy_bid_with_maximum_equal_to_amount() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "alice", 500);
    assert_eq!(h.bid(a, "bob", 400), accepted(a, 410, alias(1)));
    let history = h.m.history(a).unwrap();
    assert_eq!(history.iter().map(|r| r.price).collect::<Vec<_>>(), vec![amt(100), amt(410)]);
    assert_eq!(history[1].kind, BidKind::Plain);
}

#[test]
fn leader_may_only_raise_its_own_maximum() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    assert_eq!(h.proxy(a, "alice", 500), rejected(RejectReason::TooLow { minimum: amt(501) }));
    assert_eq!(h.proxy(a, "alice", 900), accepted(a, 100, you(1, "alice")));
    assert_eq!(h.bid(a, "bob", 600), accepted(a, 610, alias(1)));
}

#[test]
fn reserve_is_shown_only_as_met_or_not() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { reserve: Some(amt(1000)), ..spec() });
    assert_eq!(h.summary(a).reserve_met, Some(false));
    h.bid(a, "alice", 500);
    assert_eq!(h.summary(a).reserve_met, Some(false));
    // A maximum at or above the reserve lifts the price to the reserve.
    assert_eq!(h.proxy(a, "bob", 2000), accepted(a, 1000, you(2, "bob")));
    assert_eq!(h.summary(a).reserve_met, Some(true));
}

#[test]
fn bid_at_or_past_the_end_is_refused_before_close_is_applied() {
    let mut h = H::new();
    let a = h.open(spec());
    h.advance(60_000);
    assert_eq!(h.bid(a, "alice", 500), rejected(RejectReason::AuctionClosed));
    assert_eq!(h.m.due_for_close(Timestamp(61_000)).collect::<Vec<_>>(), vec![a]);
    assert_eq!(h.m.due_for_close(Timestamp(60_999)).count(), 0);
}

#[test]
fn close_with_reserve_met_sells_to_the_highest_bidder() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { reserve: Some(amt(300)), ..spec() });
    h.proxy(a, "alice", 400);
    h.bid(a, "bob", 350);
    h.advance(60_000);
    let applied = h.close(a);
    let outcome = Outcome::Closed { auction: a, winner: Some(alias(1)), price: Some(amt(360)) };
    assert_eq!(applied.outcome, outcome);
    let event = |winner| AuctionEvent::Closed {
        auction: a,
        winner: Some(winner),
        price: Some(amt(360)),
        reserve_met: Some(true),
    };
    let [e] = applied.events.as_slice() else { panic!("{:?}", applied.events) };
    assert_eq!(e.public(), event(alias(1)));
    assert_eq!(e.for_viewer(Some(&name("alice"))), event(you(1, "alice")));
    assert_eq!(e.for_viewer(Some(&name("bob"))), event(alias(1)));
    assert_eq!(e.for_viewer(Some(&name("seller"))), event(named(1, "alice")));
    assert_eq!(h.bid(a, "carol", 9999), rejected(RejectReason::AuctionClosed));
    assert_eq!(h.close(a).outcome, Outcome::Unchanged);
}

#[test]
fn close_with_reserve_not_met_is_no_sale() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { reserve: Some(amt(300)), ..spec() });
    h.bid(a, "alice", 200);
    h.advance(60_000);
    let applied = h.close(a);
    assert_eq!(applied.outcome, Outcome::Closed { auction: a, winner: None, price: None });
    assert_eq!(h.summary(a).state, AuctionState::Closed);
}

#[test]
fn close_before_the_end_is_unchanged() {
    let mut h = H::new();
    let a = h.open(spec());
    assert_eq!(h.close(a).outcome, Outcome::Unchanged);
    assert_eq!(h.summary(a).state, AuctionState::Open);
    assert_eq!(h.close(AuctionId(7)).outcome, rejected(RejectReason::UnknownAuction));
}

#[test]
fn soft_close_extends_the_end_up_to_the_cap() {
    let mut h = H::new();
    let sc = SoftClose {
        window: Duration::from_secs(10),
        extension: Duration::from_secs(20),
        max_extension: Duration::from_secs(30),
    };
    let a = h.open(AuctionSpec { soft_close: Some(sc), ..spec() });
    h.advance(40_000); // t = 41 s, end 61 s: outside the window
    h.bid(a, "alice", 100);
    assert_eq!(h.summary(a).ends_at, Timestamp(61_000));
    h.advance(15_000); // t = 56 s: inside, end -> 76 s
    let applied = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("bob"),
        amount: amt(200),
        kind: BidKind::Plain,
        expected: None,
    });
    assert!(
        applied.events.iter().any(
            |e| e.public() == AuctionEvent::Extended { auction: a, new_end: Timestamp(76_000) }
        )
    );
    h.advance(15_000); // t = 71 s: end -> min(91, cap 91) s
    h.bid(a, "alice", 300);
    assert_eq!(h.summary(a).ends_at, Timestamp(91_000));
    h.advance(15_000); // t = 86 s: would be 106 s, capped at 91 s
    h.bid(a, "bob", 400);
    assert_eq!(h.summary(a).ends_at, Timestamp(91_000));
    // A Close sequenced for the old end is ignored; the auction closes at the new one.
    assert_eq!(h.close(a).outcome, Outcome::Unchanged);
    h.advance(5_000);
    assert!(matches!(h.close(a).outcome, Outcome::Closed { .. }));
}

#[test]
fn buy_now_ends_the_auction_at_the_buy_now_price() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { buy_now: Some(amt(5000)), ..spec() });
    let applied = h.op(Operation::BuyNow { auction: a, bidder: name("alice"), price: amt(5000) });
    assert_eq!(applied.outcome, Outcome::Bought { auction: a, price: amt(5000) });
    // The buyer never bid: buying gives them the next alias.
    let s = h.summary(a);
    assert_eq!((s.state, s.price, s.leader), (AuctionState::Bought, amt(5000), Some(alias(1))));
    assert_eq!(h.summary_for(a, "seller").leader, Some(named(1, "alice")));
    assert_eq!(h.summary_for(a, "alice").leader, Some(you(1, "alice")));
    assert_eq!(h.bid(a, "bob", 9000), rejected(RejectReason::AuctionClosed));
    assert!(h.m.due_for_close(Timestamp(u64::MAX)).next().is_none());
}

#[test]
fn buy_now_without_reserve_is_gone_after_the_first_bid() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { buy_now: Some(amt(5000)), ..spec() });
    h.bid(a, "alice", 100);
    assert_eq!(h.m.auction(a).unwrap().buy_now, None);
    let out = h.op(Operation::BuyNow { auction: a, bidder: name("bob"), price: amt(5000) }).outcome;
    assert_eq!(out, rejected(RejectReason::BuyNowUnavailable));
}

#[test]
fn buy_now_with_reserve_stays_until_a_bid_reaches_the_reserve() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { reserve: Some(amt(1000)), buy_now: Some(amt(5000)), ..spec() });
    h.bid(a, "alice", 500);
    let out = h.op(Operation::BuyNow { auction: a, bidder: name("bob"), price: amt(5000) }).outcome;
    assert_eq!(out, Outcome::Bought { auction: a, price: amt(5000) });
    let b = h.open(AuctionSpec { reserve: Some(amt(1000)), buy_now: Some(amt(5000)), ..spec() });
    h.bid(b, "alice", 1000);
    let out = h.op(Operation::BuyNow { auction: b, bidder: name("bob"), price: amt(5000) }).outcome;
    assert_eq!(out, rejected(RejectReason::BuyNowUnavailable));
}

#[test]
fn cancel_by_the_seller_only_while_there_are_no_bids() {
    let mut h = H::new();
    let a = h.open(spec());
    let out = h.op(Operation::Cancel { auction: a, seller: name("alice") }).outcome;
    assert_eq!(out, rejected(RejectReason::NotSeller));
    let b = h.open(spec());
    h.bid(b, "alice", 100);
    let out = h.op(Operation::Cancel { auction: b, seller: name("seller") }).outcome;
    assert_eq!(out, rejected(RejectReason::HasBids));
    let out = h.op(Operation::Cancel { auction: a, seller: name("seller") }).outcome;
    assert_eq!(out, Outcome::Cancelled { auction: a });
    assert_eq!(h.summary(a).state, AuctionState::Cancelled);
    assert_eq!(h.m.auctions(ListFilter::Ended).len(), 1);
}

#[test]
fn retried_request_returns_its_first_outcome_and_changes_nothing() {
    let mut h = H::new();
    let a = h.open(spec());
    let bid = Operation::PlaceBid {
        auction: a,
        bidder: name("alice"),
        amount: amt(100),
        kind: BidKind::Plain,
        expected: None,
    };
    let first = h.req(1, 1, bid.clone());
    let before = h.m.snapshot();
    let again = h.req(1, 1, bid);
    assert_eq!(again.outcome, first.outcome);
    assert!(again.events.is_empty());
    let after = h.m.snapshot();
    assert_eq!(h.m.history(a).unwrap().len(), 1);
    // Only last_applied moved: the states otherwise agree.
    assert_eq!(before.len(), after.len());
}

#[test]
fn retried_rejection_returns_the_same_rejection() {
    let mut h = H::new();
    let a = h.open(spec());
    let low = Operation::PlaceBid {
        auction: a,
        bidder: name("alice"),
        amount: amt(50),
        kind: BidKind::Plain,
        expected: None,
    };
    assert_eq!(
        h.req(1, 1, low.clone()).outcome,
        rejected(RejectReason::TooLow { minimum: amt(100) })
    );
    assert_eq!(h.req(1, 1, low).outcome, rejected(RejectReason::TooLow { minimum: amt(100) }));
}

#[test]
fn request_older_than_the_window_is_expired() {
    let mut h = H::new();
    let reg =
        |i: u64| Operation::RegisterBidder { name: name(&format!("u{i}")), token_hash: [0; 32] };
    for no in 1..=20 {
        h.req(1, no, reg(no));
    }
    assert_eq!(h.req(1, 1, reg(1)).outcome, rejected(RejectReason::RequestExpired));
    assert_eq!(h.req(1, 20, reg(20)).outcome, Outcome::Registered { bidder: name("u20") });
}

#[test]
fn register_bidder_stores_the_hash_and_refuses_taken_names() {
    let mut h = H::new();
    let out = h.op(Operation::RegisterBidder { name: name("alice"), token_hash: [9; 32] }).outcome;
    assert_eq!(out, rejected(RejectReason::NameTaken));
    let stored = h.m.token_hash(&name("alice")).unwrap();
    assert!(auction_core::token_hash_matches(stored, &[5; 32]));
    assert!(!auction_core::token_hash_matches(stored, &[9; 32]));
    assert!(h.m.token_hash(&name("nobody")).is_none());
}

#[test]
fn noop_and_config_entries_are_unchanged() {
    let mut m = AuctionMachine::new();
    let noop = LogEntry {
        term: Term(1),
        seq: Seq(1),
        timestamp: Timestamp(5),
        payload: EntryPayload::Noop,
    };
    assert_eq!(m.apply(&noop).outcome, Outcome::Unchanged);
    let cfg = LogEntry {
        seq: Seq(2),
        payload: EntryPayload::Config(ConfigChange::RemoveMember(
            auction_proto::NodeId::from_bytes([1; 16]),
        )),
        ..noop.clone()
    };
    assert_eq!(m.apply(&cfg).outcome, Outcome::Unchanged);
    assert_eq!(m.last_applied(), Seq(2));
    // Replaying an already-applied entry is ignored.
    assert_eq!(m.apply(&noop).outcome, Outcome::Unchanged);
}

#[test]
fn queries_list_show_and_history() {
    let mut h = H::new();
    let a = h.open(spec());
    let b = h.open(spec());
    h.bid(a, "alice", 100);
    h.advance(60_000);
    h.close(b);
    assert_eq!(h.m.auctions(ListFilter::Open).iter().map(|s| s.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(h.m.auctions(ListFilter::Ended).iter().map(|s| s.id).collect::<Vec<_>>(), vec![b]);
    assert_eq!(h.m.auctions(ListFilter::All).len(), 2);
    let view = h.m.auction(a).unwrap();
    assert_eq!((view.summary.bids, view.minimum_bid), (1, Some(amt(110))));
    assert_eq!(h.m.history(a).unwrap()[0].bidder, alias(1));
    assert!(h.m.auction(AuctionId(3)).is_none() && h.m.history(AuctionId(3)).is_none());
}

#[test]
fn snapshot_restore_then_rest_of_log_equals_applying_everything() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    let mid = AuctionMachine::restore(&h.m.snapshot()).unwrap();
    assert_eq!(mid.snapshot(), h.m.snapshot());
    let rest = vec![
        h.entry(
            None,
            Operation::PlaceBid {
                auction: a,
                bidder: name("bob"),
                amount: amt(700),
                kind: BidKind::Proxy,
                expected: None,
            },
        ),
        h.entry(None, Operation::Close { auction: a }),
    ];
    let mut restored = mid;
    for e in &rest {
        assert_eq!(restored.apply(e), h.apply(e));
    }
    assert_eq!(restored.snapshot(), h.m.snapshot());
}

#[test]
fn corrupt_snapshots_are_errors() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "alice", 100);
    let bytes = h.m.snapshot();
    assert!(AuctionMachine::restore(&[]).is_err());
    assert!(AuctionMachine::restore(&[2]).is_err());
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(AuctionMachine::restore(&trailing).is_err());
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] = b[i].wrapping_add(1);
        let _ = AuctionMachine::restore(&b); // never panics
        b.truncate(i);
        assert!(AuctionMachine::restore(&b).is_err());
    }
}
