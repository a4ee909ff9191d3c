use super::*;
use auction_proto::msg::client::ClientError;
use auction_proto::{Amount, AuctionId};

use crate::session::ClientErrorText;

fn name(s: &str) -> BidderName {
    BidderName::new(s).unwrap()
}

fn ctx(me: Option<&BidderName>) -> Ctx<'_> {
    Ctx { color: false, now: Some(Timestamp(1_000_000)), me }
}

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    use std::ffi::OsStr;
    assert!(use_color(true, None));
    assert!(use_color(true, Some(OsStr::new(""))));
    assert!(!use_color(true, Some(OsStr::new("1"))));
    assert!(!use_color(false, None));
}

#[test]
fn plain_text_has_no_escapes_and_colour_has() {
    let o =
        Outcome::Rejected { reason: RejectReason::TooLow { minimum: Amount::from_minor(1260) } };
    let plain = outcome_text(&o, &ctx(None));
    assert_eq!(plain, "rejected: too low; the minimum bid is 12.60");
    let coloured = outcome_text(&o, &Ctx { color: true, ..ctx(None) });
    assert!(coloured.contains("\x1b[31m"));
}

#[test]
fn accepted_says_who_leads() {
    let alice = name("alice");
    let o = Outcome::Accepted {
        auction: AuctionId(3),
        price: Amount::from_minor(1250),
        leader: alice.clone(),
    };
    assert_eq!(outcome_text(&o, &ctx(Some(&alice))), "bid accepted on #3: price 12.50, you lead");
    let bob = name("bob");
    assert_eq!(
        outcome_text(&o, &ctx(Some(&bob))),
        "bid accepted on #3: price 12.50, alice leads (a higher maximum)"
    );
}

#[test]
fn remaining_time_uses_the_server_clock() {
    let o = Outcome::Opened { auction: AuctionId(1), ends_at: Timestamp(1_000_000 + 300_000) };
    assert_eq!(outcome_text(&o, &ctx(None)), "opened auction #1, ends in 5m 0s");
    let e = PushEvent {
        seq: Seq(9),
        at: Timestamp(0),
        event: AuctionEvent::Extended {
            auction: AuctionId(1),
            new_end: Timestamp(1_000_000 + 90_000),
        },
    };
    assert_eq!(event_text(&e, &ctx(None)), "#1: extended, now ends in 1m 30s");
}

#[test]
fn outbid_event_addresses_me() {
    let alice = name("alice");
    let e = PushEvent {
        seq: Seq(9),
        at: Timestamp(0),
        event: AuctionEvent::Outbid {
            auction: AuctionId(2),
            bidder: alice.clone(),
            price: Amount::from_minor(500),
        },
    };
    assert_eq!(event_text(&e, &ctx(Some(&alice))), "#2: you were outbid; price now 5.00");
}

#[test]
fn json_objects_carry_minor_units_and_exit_codes() {
    let answer = Answer {
        applied: Seq(7),
        reply: Reply::Outcome(Outcome::Accepted {
            auction: AuctionId(3),
            price: Amount::from_minor(1250),
            leader: name("alice"),
        }),
    };
    let v = reply_json("bid", &answer);
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit"], 0);
    assert_eq!(v["applied"], 7);
    assert_eq!(v["reply"]["Outcome"]["Accepted"]["price"], 1250);
    let rejected = Answer {
        applied: Seq(7),
        reply: Reply::Outcome(Outcome::Rejected { reason: RejectReason::AuctionClosed }),
    };
    assert_eq!(reply_json("bid", &rejected)["exit"], 3);
    let err = SessionError::Server(ClientErrorText(ClientError::NotLoggedIn));
    let v = error_json("bid", &err);
    assert_eq!((v["exit"].as_u64(), v["error"].as_str()), (Some(5), Some("auth")));
    assert_eq!(v["detail"], "NotLoggedIn");
}

#[test]
fn event_filter_drops_repeats() {
    let ev = |seq, p| PushEvent {
        seq: Seq(seq),
        at: Timestamp(0),
        event: AuctionEvent::NewHighBid {
            auction: AuctionId(1),
            price: Amount::from_minor(p),
            leader: name("a"),
        },
    };
    let mut f = EventFilter::default();
    assert!(f.admit(&ev(5, 1)));
    assert!(f.admit(&ev(5, 2)));
    assert!(!f.admit(&ev(5, 1)));
    assert!(!f.admit(&ev(4, 9)));
    assert!(f.admit(&ev(6, 1)));
}
