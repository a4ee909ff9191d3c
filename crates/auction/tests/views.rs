//! Issue 18: views that leak nothing (bidder aliases).

mod common;

use auction_core::AuctionMachine;
use auction_proto::msg::auction::*;
use auction_proto::msg::client::ListFilter;
use auction_proto::msg::log::*;
use common::*;

#[test]
fn aliases_number_bidders_in_the_order_of_their_first_bid() {
    let mut h = H::new();
    let a = h.open(spec());
    let b = h.open(spec());
    h.bid(a, "bob", 100);
    h.proxy(a, "carol", 500);
    h.bid(a, "bob", 300);
    h.bid(a, "alice", 600);
    // In another auction the same bidders have their own numbers.
    h.bid(b, "alice", 100);
    let bidders = |id, viewer: Option<&str>| {
        let viewer = viewer.map(name);
        let history = h.m.history_for(id, viewer.as_ref()).unwrap();
        history.into_iter().map(|r| r.bidder).collect::<Vec<_>>()
    };
    assert_eq!(bidders(a, None), [alias(1), alias(2), alias(1), alias(3)]);
    assert_eq!(
        bidders(a, Some("seller")),
        [named(1, "bob"), named(2, "carol"), named(1, "bob"), named(3, "alice")]
    );
    assert_eq!(bidders(a, Some("bob")), [you(1, "bob"), alias(2), you(1, "bob"), alias(3)]);
    // Somebody who has not bid, or is not registered, sees what anybody sees.
    assert_eq!(bidders(a, Some("mallory")), bidders(a, None));
    assert_eq!(bidders(b, None), [alias(1)]);
    assert_eq!(h.m.history(a), h.m.history_for(a, None));
}

#[test]
fn aliases_survive_a_snapshot() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "carol", 100);
    h.bid(a, "alice", 200);
    let restored = AuctionMachine::restore(&h.m.snapshot()).unwrap();
    for viewer in [None, Some(name("seller")), Some(name("alice"))] {
        let viewer = viewer.as_ref();
        assert_eq!(restored.history_for(a, viewer), h.m.history_for(a, viewer));
        assert_eq!(
            restored.auctions_for(ListFilter::All, viewer),
            h.m.auctions_for(ListFilter::All, viewer)
        );
    }
}

#[test]
fn lists_and_show_name_the_leader_only_to_the_seller_and_the_leader() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "alice", 100);
    h.proxy(a, "bob", 900);
    let leader = |viewer: Option<&str>| {
        let viewer = viewer.map(name);
        let list = h.m.auctions_for(ListFilter::All, viewer.as_ref());
        let show = h.m.auction_for(a, viewer.as_ref()).unwrap().summary;
        assert_eq!(list, vec![show.clone()]);
        show.leader
    };
    assert_eq!(leader(None), Some(alias(2)));
    assert_eq!(leader(Some("alice")), Some(alias(2)));
    assert_eq!(leader(Some("bob")), Some(you(2, "bob")));
    assert_eq!(leader(Some("seller")), Some(named(2, "bob")));
    assert_eq!(h.m.auctions(ListFilter::All)[0].leader, Some(alias(2)));
}

#[test]
fn events_name_bidders_as_each_watcher_may_see_them() {
    let mut h = H::new();
    let a = h.open(spec());
    h.bid(a, "alice", 100);
    let applied = h.op(Operation::PlaceBid {
        auction: a,
        bidder: name("bob"),
        amount: amt(500),
        kind: BidKind::Plain,
        expected: None,
    });
    for e in &applied.events {
        assert_eq!(e.auction(), a);
        assert_eq!(e.seller(), &name("seller"));
        for viewer in [None, Some("carol"), Some("alice"), Some("bob")] {
            let text = format!("{:?}", e.for_viewer(viewer.map(name).as_ref()));
            for other in ["alice", "bob"].into_iter().filter(|n| Some(*n) != viewer) {
                assert!(!text.contains(&format!("{other:?}")), "{viewer:?} saw {other}: {text}");
            }
        }
        let seller = format!("{:?}", e.for_viewer(Some(&name("seller"))));
        assert!(seller.contains("\"bob\"") || seller.contains("\"alice\""), "{seller}");
    }
}
