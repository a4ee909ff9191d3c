//! One auction's state and the pricing rules: minimum bid, proxy resolution, reserve, soft
//! close.
//!
//! # Proxy pricing
//!
//! Every bid is a maximum (a plain bid is a maximum equal to its amount). Of all the maxima,
//! only two matter: the leader's (`top`) and the highest of everybody else's (`runner_up`).
//! The current price is
//!
//! ```text
//! price = starting_price                                   if there is no runner-up
//!       = min(runner_up + increment_at(runner_up), top)   otherwise
//! and then, if top >= reserve > price: price = reserve       (reserve bump, as eBay does)
//! ```
//!
//! A valid new bid is always above the current runner-up, so after it the runner-up is either
//! the new bid (the leader holds) or the old leader's maximum (the new bid leads). Ties go to
//! the earlier maximum: the new bid leads only if it is strictly higher.

use auction_proto::msg::auction::{AuctionSpec, AuctionState, BidKind};
use auction_proto::{Amount, AuctionId, Seq, Timestamp};
use serde::{Deserialize, Serialize};

use crate::bidders::BidderIx;
use crate::spec::increment_at;

/// The leading maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lead {
    pub(crate) bidder: BidderIx,
    pub(crate) max: Amount,
}

/// One accepted bid, compactly (40 bytes): the wire `BidRecord` is built only for queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bid {
    pub(crate) seq: Seq,
    pub(crate) at: Timestamp,
    pub(crate) bidder: BidderIx,
    pub(crate) kind: BidKind,
    /// The secret maximum (the amount for a plain bid). Never leaves the state machine.
    pub(crate) max: Amount,
    /// The current price right after this bid.
    pub(crate) price: Amount,
}

/// How an auction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ending {
    /// The entry that ended it.
    pub(crate) seq: Seq,
    /// Buyer (buy-now) or winning bidder (reserve met); `None` for no sale.
    pub(crate) winner: Option<BidderIx>,
    /// The price paid, if sold.
    pub(crate) price: Option<Amount>,
}

/// One auction.
///
/// Invariants (checked by `validate`): `price` is the pricing formula above applied to
/// `leader`/`runner_up`; bid prices never decrease and the last equals `price`; the leader holds
/// the highest maximum in `bids`, reached first; every bid is before `ends_at` and before the
/// ending entry; `state == Open` exactly when `ending` is `None`; `ends_at` lies between the
/// original end and the original end plus the soft-close cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Auction {
    pub(crate) id: AuctionId,
    pub(crate) seller: BidderIx,
    pub(crate) spec: AuctionSpec,
    pub(crate) opened_at: Timestamp,
    pub(crate) original_end: Timestamp,
    pub(crate) ends_at: Timestamp,
    pub(crate) state: AuctionState,
    pub(crate) price: Amount,
    pub(crate) leader: Option<Lead>,
    pub(crate) runner_up: Option<Amount>,
    pub(crate) bids: Vec<Bid>,
    pub(crate) ending: Option<Ending>,
}

impl Auction {
    pub(crate) fn new(
        id: AuctionId,
        seller: BidderIx,
        spec: AuctionSpec,
        opened_at: Timestamp,
    ) -> Self {
        let end = opened_at.saturating_add(spec.duration);
        Self {
            id,
            seller,
            price: spec.starting_price,
            spec,
            opened_at,
            original_end: end,
            ends_at: end,
            state: AuctionState::Open,
            leader: None,
            runner_up: None,
            bids: Vec::new(),
            ending: None,
        }
    }

    /// Open and not past its end at `now` (the end itself is already too late).
    pub(crate) fn is_open_at(&self, now: Timestamp) -> bool {
        self.state == AuctionState::Open && now < self.ends_at
    }

    /// The smallest bid anyone but the leader may place now; `None` if it overflows.
    pub(crate) fn minimum_bid(&self) -> Option<Amount> {
        match self.leader {
            None => Some(self.spec.starting_price),
            Some(_) => self.price.checked_add(increment_at(&self.spec.increment, self.price)),
        }
    }

    /// The smallest bid `bidder` may place now: the leader must also raise its own maximum.
    pub(crate) fn minimum_bid_for(&self, bidder: BidderIx) -> Option<Amount> {
        let minimum = self.minimum_bid()?;
        match self.leader {
            Some(lead) if lead.bidder == bidder => {
                Some(minimum.max(lead.max.checked_add(Amount::from_minor(1))?))
            }
            _ => Some(minimum),
        }
    }

    /// Whether the reserve is met (`None` without a reserve).
    pub(crate) fn reserve_met(&self) -> Option<bool> {
        self.spec.reserve.map(|r| self.leader.is_some() && self.price >= r)
    }

    /// Whether buy-now is offered now: set, still open, and no bid has reached the reserve
    /// (without a reserve: no bid at all).
    pub(crate) fn buy_now_available(&self) -> Option<Amount> {
        let untouched = match self.reserve_met() {
            Some(met) => !met,
            None => self.leader.is_none(),
        };
        self.spec.buy_now.filter(|_| self.state == AuctionState::Open && untouched)
    }

    /// Applies a bid already checked against [`Auction::minimum_bid_for`]. Returns the leader
    /// before the bid.
    pub(crate) fn place(
        &mut self,
        bid_max: Amount,
        bidder: BidderIx,
        mut rec: Bid,
    ) -> Option<Lead> {
        let before = self.leader;
        match before {
            None => self.leader = Some(Lead { bidder, max: bid_max }),
            Some(lead) if lead.bidder == bidder => {
                self.leader = Some(Lead { bidder, max: bid_max })
            }
            Some(lead) if bid_max > lead.max => {
                self.runner_up = Some(lead.max);
                self.leader = Some(Lead { bidder, max: bid_max });
            }
            Some(_) => self.runner_up = Some(bid_max),
        }
        self.price = self.price.max(self.formula_price());
        rec.price = self.price;
        self.bids.push(rec);
        before
    }

    /// The pricing formula (see the module docs) on the current maxima.
    pub(crate) fn formula_price(&self) -> Amount {
        let Some(lead) = self.leader else { return self.spec.starting_price };
        let top = lead.max;
        let base = match self.runner_up {
            None => self.spec.starting_price,
            Some(r) => {
                r.checked_add(increment_at(&self.spec.increment, r)).map_or(top, |p| p.min(top))
            }
        };
        match self.spec.reserve {
            Some(reserve) if top >= reserve && base < reserve => reserve,
            _ => base,
        }
    }

    /// Soft close: a bid at `now` within the last `window` moves the end to `now + extension`,
    /// capped at the original end plus `max_extension`. Returns the new end if it moved.
    pub(crate) fn extend_for_bid_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        let sc = self.spec.soft_close.as_ref()?;
        if now.saturating_add(sc.window) < self.ends_at {
            return None;
        }
        let cap = self.original_end.saturating_add(sc.max_extension);
        let new_end = now.saturating_add(sc.extension).min(cap);
        (new_end > self.ends_at).then(|| {
            self.ends_at = new_end;
            new_end
        })
    }

    /// Ends the auction at its deadline: the leader wins if the reserve (if any) is met.
    pub(crate) fn close(&mut self, seq: Seq) -> Ending {
        let sold = self.reserve_met() != Some(false);
        let winner = self.leader.filter(|_| sold).map(|l| l.bidder);
        let ending = Ending { seq, winner, price: winner.map(|_| self.price) };
        self.state = AuctionState::Closed;
        self.ending = Some(ending);
        ending
    }

    /// Checks this auction's invariants.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if (self.state == AuctionState::Open) != self.ending.is_none() {
            return Err("an auction is open exactly when it has no ending");
        }
        let cap = self.original_end.saturating_add(
            self.spec.soft_close.as_ref().map_or_else(Default::default, |s| s.max_extension),
        );
        if self.ends_at < self.original_end
            || self.ends_at > cap
            || self.opened_at > self.original_end
        {
            return Err("end time outside [original end, original end + cap]");
        }
        self.validate_bids()?;
        if self.price != self.formula_price() && self.leader.is_some() {
            return Err("price differs from the proxy pricing formula");
        }
        if self.leader.is_none()
            && (self.price != self.spec.starting_price || self.runner_up.is_some())
        {
            return Err("an auction without bids has its starting price and no runner-up");
        }
        Ok(())
    }

    fn validate_bids(&self) -> Result<(), &'static str> {
        let mut price = self.spec.starting_price;
        let mut seq = Seq::ZERO;
        let mut top: Option<Lead> = None;
        for b in &self.bids {
            if b.price < price || b.seq <= seq || b.at >= self.ends_at || b.at < self.opened_at {
                return Err("bids out of order, price decreased, or bid after the end");
            }
            if self.ending.is_some_and(|e| b.seq >= e.seq) || b.bidder == self.seller {
                return Err("bid accepted after the close, or by the seller");
            }
            if top.is_none_or(|t| b.max > t.max) {
                top = Some(Lead { bidder: b.bidder, max: b.max });
            }
            (price, seq) = (b.price, b.seq);
        }
        if self.bids.last().is_some_and(|b| b.price != self.price) {
            return Err("current price differs from the last bid's price");
        }
        if top != self.leader {
            return Err("the leader does not hold the highest maximum, reached first");
        }
        Ok(())
    }
}
