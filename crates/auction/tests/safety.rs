//! Issue 25: text that cannot act, paying the price one saw, eBay's rule for a leader raising
//! their own maximum, the minimum next bid at the edges, names that collide, and the smaller
//! spec rules.

mod common;

use std::time::Duration;

use auction_core::AuctionMachine;
use auction_proto::msg::auction::*;
use auction_proto::msg::log::*;
use auction_proto::{AuctionId, Timestamp};
use common::*;

fn open_with(h: &mut H, title: &str, description: &str) -> Outcome {
    let spec = AuctionSpec { title: title.into(), description: description.into(), ..spec() };
    h.op(Operation::OpenAuction { seller: name("seller"), spec }).outcome
}

fn unsafe_text(field: TextField, position: u32, c: char, class: CharClass) -> Outcome {
    let code_point = u32::from(c);
    rejected(RejectReason::UnsafeText { field, position, code_point, class })
}

/// One character of every class: C0 controls (NUL, BEL, BS, TAB, LF, CR, ESC), DEL, C1
/// controls (NEL, CSI, OSC), line and paragraph separators, every bidi control, and the
/// invisible format characters.
const HOSTILE: &[(char, CharClass)] = &[
    ('\0', CharClass::Control),
    ('\x07', CharClass::Control),
    ('\x08', CharClass::Control),
    ('\t', CharClass::Control),
    ('\n', CharClass::Control),
    ('\r', CharClass::Control),
    ('\x1b', CharClass::Control),
    ('\x7f', CharClass::Control),
    ('\u{85}', CharClass::Control),
    ('\u{9b}', CharClass::Control),
    ('\u{9d}', CharClass::Control),
    ('\u{2028}', CharClass::Control),
    ('\u{2029}', CharClass::Control),
    ('\u{61c}', CharClass::Bidi),
    ('\u{200e}', CharClass::Bidi),
    ('\u{200f}', CharClass::Bidi),
    ('\u{202a}', CharClass::Bidi),
    ('\u{202b}', CharClass::Bidi),
    ('\u{202c}', CharClass::Bidi),
    ('\u{202d}', CharClass::Bidi),
    ('\u{202e}', CharClass::Bidi),
    ('\u{2066}', CharClass::Bidi),
    ('\u{2067}', CharClass::Bidi),
    ('\u{2068}', CharClass::Bidi),
    ('\u{2069}', CharClass::Bidi),
    ('\u{ad}', CharClass::Invisible),
    ('\u{34f}', CharClass::Invisible),
    ('\u{180e}', CharClass::Invisible),
    ('\u{200b}', CharClass::Invisible),
    ('\u{200c}', CharClass::Invisible),
    ('\u{200d}', CharClass::Invisible),
    ('\u{2060}', CharClass::Invisible),
    ('\u{2064}', CharClass::Invisible),
    ('\u{3164}', CharClass::Invisible),
    ('\u{fe00}', CharClass::Invisible),
    ('\u{feff}', CharClass::Invisible),
    ('\u{e0001}', CharClass::Invisible),
    ('\u{e0041}', CharClass::Invisible),
];

#[test]
fn titles_and_descriptions_with_any_control_bidi_or_invisible_character_are_refused() {
    let mut h = H::new();
    for &(c, class) in HOSTILE {
        let text = format!("ab{c}cd");
        assert_eq!(open_with(&mut h, &text, ""), unsafe_text(TextField::Title, 2, c, class));
        if c != '\n' {
            let out = open_with(&mut h, "Lamp", &text);
            assert_eq!(out, unsafe_text(TextField::Description, 2, c, class), "{c:?}");
        }
    }
    // Every class at once in both: the first character of the title is reported.
    let all: String = HOSTILE.iter().map(|(c, _)| *c).collect();
    let out = open_with(&mut h, &format!("x{all}"), &all);
    assert_eq!(out, unsafe_text(TextField::Title, 1, '\0', CharClass::Control));
    assert!(h.m.auctions(auction_proto::msg::client::ListFilter::All).is_empty());
}

#[test]
fn the_forged_price_attack_of_the_issue_is_refused() {
    let mut h = H::new();
    let forged = "Nice bike\n  buy now for 5.00\u{1b}]0;";
    let out = open_with(&mut h, "Bike", forged);
    assert_eq!(out, unsafe_text(TextField::Description, 28, '\x1b', CharClass::Control));
    let osc52 = "\u{1b}]52;c;cm0gLXJmIH4=\u{7}";
    assert!(matches!(open_with(&mut h, osc52, ""), Outcome::Rejected { .. }));
}

#[test]
fn newlines_are_allowed_in_descriptions_and_ordinary_unicode_everywhere() {
    let mut h = H::new();
    let out = open_with(&mut h, "Café 日本 ❤\u{fe0f} — №5", "line one\nline two\n  € 5");
    assert!(matches!(out, Outcome::Opened { .. }), "{out:?}");
}

#[test]
fn buy_now_at_a_price_other_than_the_buy_now_price_is_refused() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { buy_now: Some(amt(500_000)), ..spec() });
    let buy = |price| Operation::BuyNow { auction: a, bidder: name("alice"), price: amt(price) };
    let out = h.op(buy(500)).outcome;
    assert_eq!(out, rejected(RejectReason::BuyNowPriceDiffers { buy_now: amt(500_000) }));
    assert_eq!(h.summary(a).state, AuctionState::Open);
    assert_eq!(h.op(buy(500_000)).outcome, Outcome::Bought { auction: a, price: amt(500_000) });
}

#[test]
fn a_bid_placed_against_a_moved_price_or_leader_is_refused() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    let bid = |price, leader: Option<u32>| Operation::PlaceBid {
        auction: a,
        bidder: name("bob"),
        amount: amt(300),
        kind: BidKind::Plain,
        expected: Some(Expected { price: amt(price), leader: leader.map(BidderAlias) }),
    };
    // bob knows the leader only as bidder 1, and is told no more.
    let moved = rejected(RejectReason::PriceMoved { price: amt(100), leader: Some(alias(1)) });
    assert_eq!(h.op(bid(90, None)).outcome, moved);
    assert_eq!(h.op(bid(100, Some(2))).outcome, moved);
    assert_eq!(h.m.history(a).unwrap().len(), 1);
    assert_eq!(h.op(bid(100, Some(1))).outcome, accepted(a, 310, alias(1)));
    assert_eq!(h.op(bid(310, None)).outcome, rejected(RejectReason::TooLow { minimum: amt(320) }));
}

#[test]
fn a_leader_raising_their_maximum_keeps_the_price() {
    // The issue's case: ann's 5.00 leads at 5.00 over ben's 4.95; ann raises to 10.00.
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    assert_eq!(h.proxy(a, "bob", 495), accepted(a, 500, alias(1)));
    let raise = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("alice"),
        amount: amt(1000),
        kind: BidKind::Proxy,
        expected: None,
    });
    assert_eq!(raise.outcome, accepted(a, 500, you(1, "alice")));
    assert_eq!(raise.events, vec![], "a raise announces no new high bid");
    let history = h.m.history(a).unwrap();
    assert_eq!(history.iter().map(|r| r.price).collect::<Vec<_>>(), [100, 500, 500].map(amt));
    // The raised maximum counts against the next competing bid.
    assert_eq!(h.bid(a, "bob", 700), accepted(a, 710, alias(1)));
}

#[test]
fn a_tied_leader_raising_their_maximum_keeps_the_price() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    h.proxy(a, "bob", 800);
    assert_eq!(h.proxy(a, "alice", 800), accepted(a, 800, alias(2)));
    let raise = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("bob"),
        amount: amt(2000),
        kind: BidKind::Proxy,
        expected: None,
    });
    assert_eq!(raise.outcome, accepted(a, 800, you(2, "bob")));
    assert_eq!(raise.events, vec![], "a raise announces no new high bid");
    assert_eq!(h.bid(a, "alice", 1000), accepted(a, 1010, alias(2)));
}

#[test]
fn a_raise_moves_the_price_only_to_meet_an_unmet_reserve() {
    let mut h = H::new();
    let a = h.open(AuctionSpec { reserve: Some(amt(1000)), ..spec() });
    h.proxy(a, "alice", 500);
    assert_eq!(h.proxy(a, "alice", 900), accepted(a, 100, you(1, "alice")));
    let raise = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("alice"),
        amount: amt(1200),
        kind: BidKind::Proxy,
        expected: None,
    });
    assert_eq!(raise.outcome, accepted(a, 1000, you(1, "alice")));
    let high = AuctionEvent::NewHighBid { auction: a, price: amt(1000), leader: alias(1) };
    assert_eq!(raise.events.iter().map(|e| e.public()).collect::<Vec<_>>(), vec![high]);
    assert_eq!(h.summary(a).reserve_met, Some(true));
    assert_eq!(h.proxy(a, "alice", 5000), accepted(a, 1000, you(1, "alice")));
}

#[test]
fn a_raise_does_not_extend_a_soft_close() {
    let mut h = H::new();
    let sc = SoftClose {
        window: Duration::from_secs(120),
        extension: Duration::from_secs(300),
        max_extension: Duration::from_secs(600),
    };
    let a = h.open(AuctionSpec { soft_close: Some(sc), ..spec() });
    h.advance(55_000); // 6 s before the end at 61 s
    h.proxy(a, "alice", 500);
    let end = h.summary(a).ends_at;
    assert_eq!(end, Timestamp(356_000));
    h.advance(290_000);
    assert_eq!(h.proxy(a, "alice", 1000), accepted(a, 100, you(1, "alice")));
    assert_eq!(h.summary(a).ends_at, end);
}

#[test]
fn the_leader_is_shown_their_own_minimum() {
    let mut h = H::new();
    let a = h.open(spec());
    h.proxy(a, "alice", 500);
    let view = |h: &H, who: &str| h.m.auction_for(a, Some(&name(who))).unwrap();
    assert_eq!(view(&h, "alice").minimum_bid, Some(amt(110)));
    assert_eq!(view(&h, "alice").your_minimum, Some(amt(501)));
    assert_eq!(view(&h, "bob").your_minimum, Some(amt(110)));
    assert_eq!(view(&h, "seller").your_minimum, None);
    assert_eq!(h.m.auction(a).unwrap().your_minimum, None);
    assert_eq!(h.bid(a, "alice", 501), accepted(a, 100, you(1, "alice")));
}

#[test]
fn the_minimum_at_the_top_of_the_money_range_can_be_bid() {
    let mut h = H::new();
    let top = MAX_PRICE.minor();
    let a = h.open(AuctionSpec { starting_price: amt(top - 10), ..spec() });
    h.bid(a, "alice", top - 10);
    assert_eq!(h.m.auction(a).unwrap().minimum_bid, Some(MAX_PRICE));
    assert_eq!(h.bid(a, "bob", top), accepted(a, top, you(2, "bob")));
    let view = h.m.auction_for(a, Some(&name("bob"))).unwrap();
    assert_eq!((view.minimum_bid, view.your_minimum), (None, None));
    assert_eq!(h.bid(a, "carol", top), rejected(RejectReason::InvalidAmount));
}

#[test]
fn names_that_differ_only_by_case_or_normalisation_collide() {
    let mut h = H::new();
    let register = |h: &mut H, n: &str| {
        h.op(Operation::RegisterBidder { name: name(n), token_hash: [9; 32] }).outcome
    };
    assert_eq!(register(&mut h, "Alice"), rejected(RejectReason::NameTaken));
    assert_eq!(register(&mut h, "ＡＬＩＣＥ"), rejected(RejectReason::NameTaken));
    assert_eq!(register(&mut h, "Strauß"), Outcome::Registered { bidder: name("Strauß") });
    assert_eq!(register(&mut h, "STRAUSS"), rejected(RejectReason::NameTaken));
    // The rule survives a snapshot (the key index is rebuilt).
    h.m = AuctionMachine::restore(&h.m.snapshot()).unwrap();
    assert_eq!(register(&mut h, "BOB"), rejected(RejectReason::NameTaken));
    assert_eq!(h.m.bidder_count(), 5);
}

#[test]
fn a_zero_soft_close_cap_and_amounts_past_the_money_range_are_invalid() {
    let mut h = H::new();
    let sc = SoftClose {
        window: Duration::from_secs(60),
        extension: Duration::from_secs(60),
        max_extension: Duration::ZERO,
    };
    let too_big = amt(MAX_PRICE.minor() + 1);
    let bad = [
        AuctionSpec { soft_close: Some(sc), ..spec() },
        AuctionSpec { starting_price: too_big, ..spec() },
        AuctionSpec { buy_now: Some(too_big), ..spec() },
        AuctionSpec { increment: IncrementRule::Fixed(too_big), ..spec() },
    ];
    for s in bad {
        let out = h.op(Operation::OpenAuction { seller: name("seller"), spec: s.clone() }).outcome;
        assert_eq!(out, rejected(RejectReason::InvalidSpec), "{s:?}");
    }
    assert_eq!(h.m.auction(AuctionId(1)), None);
}
