//! Read-only queries: lists, one auction, its history, deadlines, login hashes.
//!
//! Every view of bidders follows the rule of the [`view`](crate::view) module: the `_for`
//! queries take the viewer (the logged-in bidder, or `None`), the others are what anybody
//! may see.

use auction_proto::msg::auction::{
    AuctionState, AuctionSummary, AuctionView, BidRecord, BidderName,
};
use auction_proto::msg::client::ListFilter;
use auction_proto::msg::log::TokenHash;
use auction_proto::{AuctionId, Timestamp};

use crate::auction::{Auction, Bid};
use crate::machine::{AuctionMachine, auction_index};

impl AuctionMachine {
    /// The auctions that `filter` selects, by id, as anybody sees them (leaders by alias).
    /// `Open` means not yet ended by an applied entry (an auction past its end but not yet
    /// closed is still listed as open).
    pub fn auctions(&self, filter: ListFilter) -> Vec<AuctionSummary> {
        self.auctions_for(filter, None)
    }

    /// As [`AuctionMachine::auctions`], as `viewer` sees them: the leader named to the
    /// seller, "you" to the leader.
    pub fn auctions_for(
        &self,
        filter: ListFilter,
        viewer: Option<&BidderName>,
    ) -> Vec<AuctionSummary> {
        let wanted = |a: &&Auction| match filter {
            ListFilter::Open => a.state == AuctionState::Open,
            ListFilter::Ended => a.state != AuctionState::Open,
            ListFilter::All => true,
        };
        self.auctions.iter().filter(wanted).map(|a| self.summary(a, viewer)).collect()
    }

    /// Everything anybody may see about auction `id` (never the maxima or the reserve, the
    /// leader by alias); `your_minimum` is `None`. See [`AuctionMachine::auction_for`].
    pub fn auction(&self, id: AuctionId) -> Option<AuctionView> {
        self.auction_for(id, None)
    }

    /// Auction `id` as `viewer` sees it: as [`AuctionMachine::auction`], with the leader
    /// named to the seller and "you" to the leader, and `your_minimum` the smallest bid
    /// `viewer` may place (for the leader: above their own maximum).
    pub fn auction_for(&self, id: AuctionId, viewer: Option<&BidderName>) -> Option<AuctionView> {
        let a = self.get(id)?;
        let open = a.state == AuctionState::Open;
        let bidder = viewer.and_then(|v| self.bidders.lookup(v)).filter(|v| *v != a.seller);
        Some(AuctionView {
            summary: self.summary(a, viewer),
            description: a.spec.description.clone(),
            starting_price: a.spec.starting_price,
            increment: a.spec.increment.clone(),
            minimum_bid: a.minimum_bid().filter(|_| open),
            your_minimum: bidder.and_then(|v| a.minimum_bid_for(v)).filter(|_| open),
            buy_now: a.buy_now_available(),
            soft_close: a.spec.soft_close.clone(),
            opened_at: a.opened_at,
        })
    }

    /// The accepted bids of auction `id`, oldest first, with the price after each (not the
    /// maxima), as anybody sees them: bidders by alias. See [`AuctionMachine::history_for`].
    pub fn history(&self, id: AuctionId) -> Option<Vec<BidRecord>> {
        self.history_for(id, None)
    }

    /// The history of auction `id` as `viewer` (the logged-in bidder, or `None`) sees it:
    /// every bidder named to the seller; to a bidder, their own bids as "you" and the others'
    /// by alias; to anybody else, every bidder by alias.
    pub fn history_for(
        &self,
        id: AuctionId,
        viewer: Option<&BidderName>,
    ) -> Option<Vec<BidRecord>> {
        let a = self.get(id)?;
        let record = |b: &Bid| BidRecord {
            seq: b.seq,
            at: b.at,
            bidder: self.bidder_for(a, b.bidder, viewer),
            kind: b.kind,
            price: b.price,
        };
        Some(a.bids.iter().map(record).collect())
    }

    /// Open auctions whose end is at or before `now`, earliest end first: the leader sequences
    /// a `Close` for each. Costs `O(log n + k)` for `k` results.
    pub fn due_for_close(&self, now: Timestamp) -> impl Iterator<Item = AuctionId> + '_ {
        self.deadlines.range(..=(now, AuctionId(u64::MAX))).map(|(_, id)| *id)
    }

    /// The earliest end among open auctions, for the leader's close timer.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The stored token hash of bidder `name`, if registered. Compare with
    /// [`token_hash_matches`](crate::token_hash_matches), not `==`.
    pub fn token_hash(&self, name: &BidderName) -> Option<&TokenHash> {
        self.bidders.token_hash(name)
    }

    /// Number of registered bidders.
    pub fn bidder_count(&self) -> usize {
        self.bidders.len()
    }

    /// Number of clients the exactly-once table remembers.
    pub fn remembered_clients(&self) -> usize {
        self.dedup.len()
    }

    pub(crate) fn get(&self, id: AuctionId) -> Option<&Auction> {
        self.auctions.get(auction_index(id)?)
    }

    fn summary(&self, a: &Auction, viewer: Option<&BidderName>) -> AuctionSummary {
        let (price, leader) = match (a.state, a.ending) {
            (AuctionState::Bought, Some(e)) => (e.price.unwrap_or(a.price), e.winner),
            _ => (a.price, a.leader.map(|l| l.bidder)),
        };
        AuctionSummary {
            id: a.id,
            title: a.spec.title.clone(),
            seller: self.bidders.name(a.seller).clone(),
            state: a.state,
            price,
            leader: leader.map(|l| self.bidder_for(a, l, viewer)),
            bids: u32::try_from(a.bids.len()).unwrap_or(u32::MAX),
            ends_at: a.ends_at,
            ended_at: a.ending.map(|e| e.at),
            reserve_met: a.reserve_met(),
        }
    }
}
