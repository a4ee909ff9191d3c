//! The machine's invariants, checked after every `apply` under debug assertions (the touched
//! auction only) and in full by tests and by `restore`.

use auction_proto::AuctionId;
use auction_proto::msg::auction::AuctionState;
use auction_proto::msg::log::{EntryPayload, Operation};

use crate::machine::{AuctionMachine, auction_index};

/// A broken invariant: a bug in this crate, or a snapshot that was not made by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("auction state invariant violated: {what}")]
pub struct InvariantViolation {
    /// Which invariant.
    pub what: &'static str,
}

impl AuctionMachine {
    /// Checks every invariant of the whole state; `Err` names the first one broken.
    ///
    /// Costs time linear in the state: tests call it after every step; `apply` checks only the
    /// auction an entry touched (under `debug_assert!`).
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let v = |what| InvariantViolation { what };
        self.bidders.validate().map_err(v)?;
        self.dedup.validate(self.last_applied).map_err(v)?;
        let open = self.auctions.iter().filter(|a| a.state == AuctionState::Open).count();
        if open != self.deadlines.len() {
            return Err(v("the deadline index does not hold exactly the open auctions"));
        }
        for i in 0..self.auctions.len() {
            self.check_auction(AuctionId(i as u64 + 1))?;
        }
        Ok(())
    }

    /// Invariants of one auction and its place in the indexes.
    fn check_auction(&self, id: AuctionId) -> Result<(), InvariantViolation> {
        let v = |what| InvariantViolation { what };
        let Some(a) = auction_index(id).and_then(|i| self.auctions.get(i)) else {
            return Ok(());
        };
        crate::spec::validate(&a.spec).map_err(|_| v("an auction has an invalid spec"))?;
        a.validate().map_err(v)?;
        if a.id != id {
            return Err(v("auction ids are not their positions plus one"));
        }
        let known = |b: crate::bidders::BidderIx| (b.0 as usize) < self.bidders.len();
        if !known(a.seller) || a.bids.iter().any(|b| !known(b.bidder)) {
            return Err(v("an auction refers to an unregistered bidder"));
        }
        if a.ending.is_some_and(|e| e.seq > self.last_applied) || a.opened_at > self.clock {
            return Err(v("an auction refers to the future"));
        }
        if (a.state == AuctionState::Open) != self.deadlines.contains(&(a.ends_at, id)) {
            return Err(v("the deadline index disagrees with an auction"));
        }
        Ok(())
    }

    /// The cheap check run after each `apply`: the auction the entry named, and the sizes of
    /// the indexes.
    pub(crate) fn check_touched(&self, payload: &EntryPayload) -> Result<(), InvariantViolation> {
        let EntryPayload::Command(cmd) = payload else { return Ok(()) };
        let id = match &cmd.op {
            Operation::PlaceBid { auction, .. }
            | Operation::BuyNow { auction, .. }
            | Operation::Cancel { auction, .. }
            | Operation::Close { auction } => *auction,
            Operation::OpenAuction { .. } => AuctionId(self.auctions.len() as u64),
            Operation::RegisterBidder { .. } => return Ok(()),
        };
        self.check_auction(id)
    }
}
