use super::*;
use auction_proto::msg::auction::BidderAlias;
use auction_proto::msg::client::ClientError;
use auction_proto::{Amount, AuctionId};

use crate::session::ClientErrorText;

fn name(s: &str) -> BidderName {
    BidderName::new(s).unwrap()
}

fn ctx() -> Ctx {
    Ctx { color: false, now: Some(Timestamp(1_000_000)), bid: None }
}

fn you(n: u32, who: &str) -> Bidder {
    Bidder::You { alias: BidderAlias(n), name: name(who) }
}

fn alias(n: u32) -> Bidder {
    Bidder::Alias(BidderAlias(n))
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
    let plain = outcome_text(&o, &ctx());
    assert_eq!(plain, "rejected: too low; the minimum bid is 12.60");
    let coloured = outcome_text(&o, &Ctx { color: true, ..ctx() });
    assert!(coloured.contains("\x1b[31m"));
}

#[test]
fn accepted_says_who_leads() {
    let o = |leader| Outcome::Accepted {
        auction: AuctionId(3),
        price: Amount::from_minor(1250),
        leader,
    };
    assert_eq!(
        outcome_text(&o(you(1, "alice")), &ctx()),
        "bid accepted on #3: price 12.50, you lead"
    );
    assert_eq!(
        outcome_text(&o(alias(1)), &ctx()),
        "bid accepted on #3: price 12.50, bidder 1 leads (a higher maximum)"
    );
}

#[test]
fn remaining_time_uses_the_server_clock() {
    let o = Outcome::Opened { auction: AuctionId(1), ends_at: Timestamp(1_000_000 + 300_000) };
    assert_eq!(outcome_text(&o, &ctx()), "opened auction #1, ends in 5m 0s");
    let e = PushEvent {
        seq: Seq(9),
        at: Timestamp(0),
        event: AuctionEvent::Extended {
            auction: AuctionId(1),
            new_end: Timestamp(1_000_000 + 90_000),
        },
    };
    assert_eq!(event_text(&e, &ctx()), "#1: extended, now ends in 1m 30s");
}

#[test]
fn outbid_event_addresses_me_when_the_server_says_it_is_me() {
    let e = |bidder| PushEvent {
        seq: Seq(9),
        at: Timestamp(0),
        event: AuctionEvent::Outbid {
            auction: AuctionId(2),
            bidder,
            price: Amount::from_minor(500),
        },
    };
    assert_eq!(event_text(&e(you(1, "alice")), &ctx()), "#2: you were outbid; price now 5.00");
    assert_eq!(event_text(&e(alias(1)), &ctx()), "#2: bidder 1 was outbid; price now 5.00");
    let seller_sees = Bidder::Named { alias: BidderAlias(1), name: name("alice") };
    assert_eq!(event_text(&e(seller_sees), &ctx()), "#2: alice was outbid; price now 5.00");
    let high = PushEvent {
        event: AuctionEvent::NewHighBid {
            auction: AuctionId(2),
            price: Amount::from_minor(500),
            leader: you(2, "bob"),
        },
        ..e(alias(1))
    };
    assert_eq!(event_text(&high, &ctx()), "#2: new price 5.00, you lead");
}

#[test]
fn json_objects_carry_minor_units_and_exit_codes() {
    let answer = Answer {
        applied: Seq(7),
        reply: Reply::Outcome(Outcome::Accepted {
            auction: AuctionId(3),
            price: Amount::from_minor(1250),
            leader: you(1, "alice"),
        }),
    };
    let v = reply_json("bid", &answer);
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit"], 0);
    assert_eq!(v["applied"], 7);
    assert_eq!(v["reply"]["Outcome"]["Accepted"]["price"], 1250);
    // As docs/client.md shows it: the leader as the server showed them.
    assert_eq!(v["reply"]["Outcome"]["Accepted"]["leader"]["You"]["alias"], 1);
    assert_eq!(v["reply"]["Outcome"]["Accepted"]["leader"]["You"]["name"], "alice");
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
            leader: alias(1),
        },
    };
    let mut f = EventFilter::default();
    assert!(f.admit(&ev(5, 1)));
    assert!(f.admit(&ev(5, 2)));
    assert!(!f.admit(&ev(5, 1)));
    assert!(!f.admit(&ev(4, 9)));
    assert!(f.admit(&ev(6, 1)));
}

fn view(title: &str, description: &str) -> AuctionView {
    AuctionView {
        summary: AuctionSummary {
            id: AuctionId(10),
            title: title.into(),
            seller: name("sam"),
            state: AuctionState::Open,
            price: Amount::from_minor(100),
            leader: Some(alias(1)),
            bids: 2,
            ends_at: Timestamp(2_000_000),
            ended_at: None,
            reserve_met: None,
        },
        description: description.into(),
        starting_price: Amount::from_minor(100),
        increment: IncrementRule::Fixed(Amount::from_minor(10)),
        minimum_bid: Some(Amount::from_minor(110)),
        your_minimum: Some(Amount::from_minor(110)),
        buy_now: Some(Amount::from_minor(500_000)),
        soft_close: None,
        opened_at: Timestamp(0),
    }
}

/// Only the text this client writes itself: newlines between lines, nothing that acts.
fn inert(text: &str) -> bool {
    !text.chars().any(|c| c != '\n' && crate::neutral::is_unsafe(c))
}

#[test]
fn the_forged_buy_now_line_of_the_issue_cannot_hide_the_real_one() {
    let v = view("Bike", "Nice bike\n  buy now for 5.00\x1b]0;");
    let text = reply_text("show", &Reply::Auction(v), &ctx());
    assert!(inert(&text), "{text:?}");
    assert!(text.contains("  Nice bike\n    buy now for 5.00\\u{1b}]0;\n"), "{text}");
    assert!(text.contains("\n  buy now for 5000.00"), "{text}");
}

proptest::proptest! {
    #[test]
    fn hostile_summaries_render_without_control_characters(
        title in proptest::prelude::any::<String>(),
        description in proptest::prelude::any::<String>(),
    ) {
        let v = view(&title, &description);
        let list = Reply::Auctions(vec![v.summary.clone()]);
        for text in [
            reply_text("show", &Reply::Auction(v.clone()), &ctx()),
            reply_text("auctions", &list, &ctx()),
        ] {
            proptest::prop_assert!(inert(&text), "{:?}", text);
        }
    }
}

#[test]
fn list_columns_are_cut_by_display_width() {
    let list = Reply::Auctions(vec![view("日本の古い自転車とランプと時計", "").summary]);
    let text = reply_text("auctions", &list, &ctx());
    assert!(text.contains("  日本の古い自転車とラン… "), "{text}");
}

#[test]
fn a_tie_is_not_called_a_higher_maximum() {
    let o = Outcome::Accepted {
        auction: AuctionId(3),
        price: Amount::from_minor(800),
        leader: alias(2),
    };
    let tie = Ctx { bid: Some(Amount::from_minor(800)), ..ctx() };
    assert_eq!(
        outcome_text(&o, &tie),
        "bid accepted on #3: price 8.00, bidder 2 leads (an equal maximum, placed earlier)"
    );
}

#[test]
fn next_bid_is_right_for_the_leader_and_at_the_top_of_the_range() {
    let mut v = view("Lamp", "");
    v.summary.leader = Some(you(1, "ann"));
    v.your_minimum = Some(Amount::from_minor(501));
    let text = reply_text("show", &Reply::Auction(v.clone()), &ctx());
    assert!(text.contains("you lead") && text.contains("raise your maximum: at least 5.01"));
    v.summary.leader = Some(alias(1));
    v.your_minimum = Some(Amount::from_minor(110));
    let text = reply_text("show", &Reply::Auction(v.clone()), &ctx());
    assert!(text.contains("next bid at least 1.10"), "{text}");
    v.minimum_bid = None;
    v.your_minimum = None;
    let text = reply_text("show", &Reply::Auction(v), &ctx());
    assert!(text.contains("no further bid is possible"), "{text}");
}

#[test]
fn integers_a_javascript_consumer_would_round_are_strings() {
    let v = serde_json::json!({"a": 9_007_199_254_740_991u64, "b": [9_007_199_254_740_992u64], "c": -5});
    assert_eq!(
        exact_json(v),
        serde_json::json!({"a": 9_007_199_254_740_991u64, "b": ["9007199254740992"], "c": -5})
    );
}

#[test]
fn new_refusals_say_what_to_do() {
    use auction_proto::msg::auction::{CharClass, TextField};
    let r = RejectReason::UnsafeText {
        field: TextField::Description,
        position: 9,
        code_point: 0x1b,
        class: CharClass::Control,
    };
    assert_eq!(
        reason_text(&r),
        "the description holds U+001B, a control character, at character 9; remove it (see \
         docs/auction-rules.md)"
    );
    let r = RejectReason::BuyNowPriceDiffers { buy_now: Amount::from_minor(500_000) };
    assert!(reason_text(&r).contains("5000.00"));
}

#[test]
fn an_ended_auction_says_when_it_ended_not_its_old_deadline() {
    let mut v = view("Lamp", "");
    v.summary.state = AuctionState::Bought;
    v.summary.ended_at = Some(Timestamp(1_000_000 - 180_000));
    v.summary.ends_at = Timestamp(1_000_000 + 476_000);
    for (command, reply) in [
        ("show", Reply::Auction(v.clone())),
        ("auctions", Reply::Auctions(vec![v.summary.clone()])),
    ] {
        let text = reply_text(command, &reply, &ctx());
        assert!(text.contains("bought 3m 0s ago"), "{text}");
        assert!(!text.contains("7m 56s"), "{text}");
    }
    // Without the end time (an older server): the state alone, never a countdown.
    v.summary.ended_at = None;
    let text = reply_text("show", &Reply::Auction(v), &ctx());
    assert!(text.ends_with("\n  bought"), "{text}");
}

#[test]
fn history_names_bidders_as_the_server_showed_them() {
    let record = |seq, bidder| BidRecord {
        seq: Seq(seq),
        at: Timestamp(1_000_000 - 60_000),
        bidder,
        kind: BidKind::Plain,
        price: Amount::from_minor(100 * seq),
    };
    let seller_sees = Bidder::Named { alias: BidderAlias(2), name: name("bob") };
    let bids = vec![record(1, you(1, "ann")), record(2, alias(2)), record(3, seller_sees)];
    let text = reply_text("history", &Reply::History(bids), &ctx());
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("you "), "{text}");
    assert!(lines[1].contains("bidder 2 "), "{text}");
    assert!(lines[2].contains("bob "), "{text}");
    assert!(!text.contains("ann"), "the name of \"you\" is not needed: {text}");
}
