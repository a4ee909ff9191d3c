//! Who may see which bidder's name: the rule for every public view of an auction.
//!
//! Bidders of an auction are shown to a viewer (the bidder a client session is logged in as,
//! or nobody) as a [`Bidder`]:
//!
//! | viewer | sees a bidder as |
//! | --- | --- |
//! | that bidder | `Bidder::You` (their own name and alias) |
//! | the auction's seller | `Bidder::Named` (name and alias) |
//! | anybody else, or nobody logged in | `Bidder::Alias` (`bidder 3`) |
//!
//! Histories, lists and `show` apply it in the queries ([`AuctionMachine::history_for`],
//! [`AuctionMachine::auctions_for`], [`AuctionMachine::auction_for`]); an outcome is for the
//! bidder who sent the command; events come out of `apply` as [`Event`]s, which carry what the
//! rule needs, and are rendered once per watcher with [`Event::for_viewer`]. Everything here
//! is pure.
//!
//! [`AuctionMachine::history_for`]: crate::AuctionMachine::history_for
//! [`AuctionMachine::auctions_for`]: crate::AuctionMachine::auctions_for
//! [`AuctionMachine::auction_for`]: crate::AuctionMachine::auction_for

use auction_proto::msg::auction::{AuctionEvent, Bidder, BidderAlias, BidderName};
use auction_proto::{Amount, AuctionId, Timestamp};

/// A bidder with both their name and their alias in one auction, before the rule picks what a
/// viewer sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Party {
    pub(crate) name: BidderName,
    pub(crate) alias: BidderAlias,
}

impl Party {
    /// This bidder as `viewer` sees them in an auction sold by `seller`.
    pub(crate) fn seen_by(&self, seller: &BidderName, viewer: Option<&BidderName>) -> Bidder {
        let (alias, name) = (self.alias, self.name.clone());
        match viewer {
            Some(v) if *v == self.name => Bidder::You { alias, name },
            Some(v) if v == seller => Bidder::Named { alias, name },
            _ => Bidder::Alias(alias),
        }
    }
}

/// A notification for watchers as `apply` produced it: the auction's seller and every bidder
/// it mentions with name and alias. Never sent as it is: each watcher gets
/// [`Event::for_viewer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    auction: AuctionId,
    seller: BidderName,
    what: What,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum What {
    NewHighBid { price: Amount, leader: Party },
    Outbid { bidder: Party, price: Amount },
    Extended { new_end: Timestamp },
    Closed { winner: Option<Party>, price: Option<Amount>, reserve_met: Option<bool> },
}

impl Event {
    pub(crate) fn new(auction: AuctionId, seller: BidderName, what: What) -> Self {
        Self { auction, seller, what }
    }

    /// The auction it is about (for subscriptions to one auction).
    pub fn auction(&self) -> AuctionId {
        self.auction
    }

    /// The auction's seller, who sees every bidder's name.
    pub fn seller(&self) -> &BidderName {
        &self.seller
    }

    /// The event as `viewer` (the logged-in bidder, or `None`) may see it: see the module docs.
    pub fn for_viewer(&self, viewer: Option<&BidderName>) -> AuctionEvent {
        let auction = self.auction;
        let show = |p: &Party| p.seen_by(&self.seller, viewer);
        match &self.what {
            What::NewHighBid { price, leader } => {
                AuctionEvent::NewHighBid { auction, price: *price, leader: show(leader) }
            }
            What::Outbid { bidder, price } => {
                AuctionEvent::Outbid { auction, bidder: show(bidder), price: *price }
            }
            What::Extended { new_end } => AuctionEvent::Extended { auction, new_end: *new_end },
            What::Closed { winner, price, reserve_met } => AuctionEvent::Closed {
                auction,
                winner: winner.as_ref().map(show),
                price: *price,
                reserve_met: *reserve_met,
            },
        }
    }

    /// The event as somebody not logged in sees it: every bidder by alias.
    pub fn public(&self) -> AuctionEvent {
        self.for_viewer(None)
    }
}
