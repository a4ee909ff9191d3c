//! One auction's state and the pricing rules: minimum bid, proxy resolution, reserve, soft
//! close, and the bidders' aliases.
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
//! the earlier maximum: the new bid leads only if it is strictly higher. The price never
//! decreases: it is `max(price before, formula)`.
//!
//! # The leader raising their own maximum (eBay's rule)
//!
//! A *raise* is a bid by the current leader. It replaces their maximum and changes the price
//! only to meet an unmet reserve (`new max >= reserve > price`: price = reserve); the formula is
//! not applied, so nobody pays for competing against themselves. A raise emits no
//! `NewHighBid` unless the reserve bump moved the price, and does not extend a soft close. It
//! is an accepted bid like any other in the history (at the unchanged price). Later competing
//! bids use the formula on the raised maximum as usual.
//!
//! # Aliases
//!
//! Public views name bidders by their alias in the auction (`bidder 3`): the first bidder to
//! have a bid accepted is 1, the next new one 2, and so on; a buyer who never bid gets the next
//! one when buying. The aliases are part of the state (and of snapshots), assigned in log
//! order, so every replica agrees.

use std::collections::BTreeMap;

use auction_proto::msg::auction::{AuctionSpec, AuctionState, BidKind, BidderAlias, MAX_PRICE};
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

/// One accepted bid, compactly: the wire `BidRecord` is built only for queries.
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
    /// A raise by the leader of their own maximum (see the module docs).
    pub(crate) raise: bool,
}

/// The pricing state: the leading maximum, the runner-up maximum and the price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pricing {
    pub(crate) leader: Option<Lead>,
    pub(crate) runner_up: Option<Amount>,
    pub(crate) price: Amount,
}

impl Pricing {
    /// Before any bid.
    fn start(spec: &AuctionSpec) -> Self {
        Self { leader: None, runner_up: None, price: spec.starting_price }
    }

    /// The state after an accepted bid of maximum `max` by `bidder`, and whether it was a raise
    /// by the leader.
    pub(crate) fn after(self, spec: &AuctionSpec, bidder: BidderIx, max: Amount) -> (Self, bool) {
        let mut next = self;
        let new = Lead { bidder, max };
        match self.leader {
            Some(lead) if lead.bidder == bidder => {
                next.leader = Some(new);
                if let Some(reserve) = spec.reserve {
                    if max >= reserve && self.price < reserve {
                        next.price = reserve;
                    }
                }
                return (next, true);
            }
            None => next.leader = Some(new),
            Some(lead) if max > lead.max => {
                next.runner_up = Some(lead.max);
                next.leader = Some(new);
            }
            Some(_) => next.runner_up = Some(max),
        }
        next.price = self.price.max(next.formula_price(spec));
        (next, false)
    }

    /// The pricing formula (see the module docs) on these maxima.
    pub(crate) fn formula_price(&self, spec: &AuctionSpec) -> Amount {
        let Some(lead) = self.leader else { return spec.starting_price };
        let top = lead.max;
        let base = match self.runner_up {
            None => spec.starting_price,
            Some(r) => r.checked_add(increment_at(&spec.increment, r)).map_or(top, |p| p.min(top)),
        };
        match spec.reserve {
            Some(reserve) if top >= reserve && base < reserve => reserve,
            _ => base,
        }
    }
}

/// How an auction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ending {
    /// The entry that ended it.
    pub(crate) seq: Seq,
    /// That entry's sequencer time: when the auction ended (for a close, at or after
    /// `ends_at`; for a purchase or a cancel, before it).
    pub(crate) at: Timestamp,
    /// Buyer (buy-now) or winning bidder (reserve met); `None` for no sale.
    pub(crate) winner: Option<BidderIx>,
    /// The price paid, if sold.
    pub(crate) price: Option<Amount>,
}

/// One auction.
///
/// Invariants (checked by `validate`): replaying `bids` through [`Pricing::after`] gives every
/// bid's price and raise flag and ends at `leader`, `runner_up` and `price` (so prices never
/// decrease, the leader holds the highest maximum reached first, and a raise only raises);
/// the price is at most [`MAX_PRICE`]; every bid is before `ends_at` and before the
/// ending entry; `state == Open` exactly when `ending` is `None`; `ends_at` lies between the
/// original end and the original end plus the soft-close cap; `aliases` numbers the bidders
/// 1, 2, ... in the order of their first bid in `bids`, then a buyer who never bid, and
/// nobody else; the ending's time is at or after the last bid, and at or after `ends_at`
/// exactly for a close.
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
    /// Each bidder's alias in this auction (see the module docs).
    pub(crate) aliases: BTreeMap<BidderIx, BidderAlias>,
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
            aliases: BTreeMap::new(),
            ending: None,
        }
    }

    /// The alias of `bidder`, who has bid on this auction. Bidders come only from `bids`, so a
    /// miss is a bug; it panics rather than invent an alias.
    #[allow(clippy::indexing_slicing)]
    pub(crate) fn alias(&self, bidder: BidderIx) -> BidderAlias {
        self.aliases[&bidder]
    }

    /// Open and not past its end at `now` (the end itself is already too late).
    pub(crate) fn is_open_at(&self, now: Timestamp) -> bool {
        self.state == AuctionState::Open && now < self.ends_at
    }

    /// The smallest bid anyone but the leader may place now; `None` if it would exceed
    /// [`MAX_PRICE`] (no bid is possible).
    pub(crate) fn minimum_bid(&self) -> Option<Amount> {
        let minimum = match self.leader {
            None => Some(self.spec.starting_price),
            Some(_) => self.price.checked_add(increment_at(&self.spec.increment, self.price)),
        };
        minimum.filter(|m| *m <= MAX_PRICE)
    }

    /// The smallest bid `bidder` may place now: the leader must also raise its own maximum.
    /// `None` if it would exceed [`MAX_PRICE`].
    pub(crate) fn minimum_bid_for(&self, bidder: BidderIx) -> Option<Amount> {
        let minimum = self.minimum_bid()?;
        let minimum = match self.leader {
            Some(lead) if lead.bidder == bidder => {
                minimum.max(lead.max.checked_add(Amount::from_minor(1))?)
            }
            _ => minimum,
        };
        Some(minimum).filter(|m| *m <= MAX_PRICE)
    }

    /// Whether the reserve is met (`None` without a reserve): by the price paid once sold
    /// (bought at the buy-now price, or closed with a winner), otherwise by the leading bid.
    /// The one rule for `show`, lists and the `Closed` event.
    pub(crate) fn reserve_met(&self) -> Option<bool> {
        let reserve = self.spec.reserve?;
        Some(match self.ending.and_then(|e| e.price) {
            Some(paid) => paid >= reserve,
            None => self.leader.is_some() && self.price >= reserve,
        })
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

    /// Applies a bid already checked against [`Auction::minimum_bid_for`], giving a new bidder
    /// the next alias. Returns the leader before the bid and whether the bid was a raise by
    /// the leader (`rec.raise` is set here).
    pub(crate) fn place(&mut self, mut rec: Bid) -> (Option<Lead>, bool) {
        let before = self.pricing();
        let (after, raise) = before.after(&self.spec, rec.bidder, rec.max);
        (self.leader, self.runner_up, self.price) = (after.leader, after.runner_up, after.price);
        rec.price = self.price;
        rec.raise = raise;
        let next = next_alias(&self.aliases);
        self.aliases.entry(rec.bidder).or_insert(next);
        self.bids.push(rec);
        (before.leader, raise)
    }

    fn pricing(&self) -> Pricing {
        Pricing { leader: self.leader, runner_up: self.runner_up, price: self.price }
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

    /// Ends the auction at its deadline, by the entry `seq` at `at`: the leader wins if the
    /// reserve (if any) is met.
    pub(crate) fn close(&mut self, seq: Seq, at: Timestamp) -> Ending {
        let sold = self.reserve_met() != Some(false);
        let winner = self.leader.filter(|_| sold).map(|l| l.bidder);
        let ending = Ending { seq, at, winner, price: winner.map(|_| self.price) };
        self.end(AuctionState::Closed, ending);
        ending
    }

    /// Ends the auction by a buy-now purchase; a buyer who never bid gets the next alias (as
    /// the winner, they are shown like a bidder).
    pub(crate) fn buy(&mut self, ending: Ending) {
        if let Some(buyer) = ending.winner {
            let next = next_alias(&self.aliases);
            self.aliases.entry(buyer).or_insert(next);
        }
        self.end(AuctionState::Bought, ending);
    }

    /// Ends the auction in `state` (bought, cancelled or closed).
    pub(crate) fn end(&mut self, state: AuctionState, ending: Ending) {
        self.state = state;
        self.ending = Some(ending);
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
        self.validate_ending()?;
        if self.leader.is_none()
            && (self.price != self.spec.starting_price || self.runner_up.is_some())
        {
            return Err("an auction without bids has its starting price and no runner-up");
        }
        Ok(())
    }

    fn validate_bids(&self) -> Result<(), &'static str> {
        let mut seq = Seq::ZERO;
        let mut pricing = Pricing::start(&self.spec);
        for b in &self.bids {
            if b.seq <= seq || b.at >= self.ends_at || b.at < self.opened_at {
                return Err("bids out of order, or bid after the end");
            }
            if self.ending.is_some_and(|e| b.seq >= e.seq) || b.bidder == self.seller {
                return Err("bid accepted after the close, or by the seller");
            }
            let (next, raise) = pricing.after(&self.spec, b.bidder, b.max);
            if next.price != b.price || raise != b.raise || next.price < pricing.price {
                return Err("a bid's price or raise flag differs from the pricing rules");
            }
            if pricing.leader.is_some_and(|l| l.bidder == b.bidder && b.max <= l.max) {
                return Err("a raise did not raise the leader's maximum");
            }
            (pricing, seq) = (next, b.seq);
        }
        if pricing != self.pricing() {
            return Err("the leader, runner-up or price differs from replaying the bids");
        }
        let mut aliases = BTreeMap::new();
        let buyer = self.ending.filter(|_| self.state == AuctionState::Bought);
        for who in self.bids.iter().map(|b| b.bidder).chain(buyer.and_then(|e| e.winner)) {
            let next = next_alias(&aliases);
            aliases.entry(who).or_insert(next);
        }
        if aliases != self.aliases {
            return Err("the aliases do not number the bidders in the order of their first bid");
        }
        if self.price > MAX_PRICE {
            return Err("the price exceeds the money range");
        }
        Ok(())
    }

    fn validate_ending(&self) -> Result<(), &'static str> {
        let Some(e) = self.ending else { return Ok(()) };
        let closed = self.state == AuctionState::Closed;
        if e.at < self.opened_at || self.bids.last().is_some_and(|b| e.at < b.at) {
            return Err("an auction ended before it opened or before its last bid");
        }
        if closed != (e.at >= self.ends_at) {
            return Err("a close before the end, or a purchase or cancel after it");
        }
        Ok(())
    }
}

/// The alias the next new bidder gets: one more than the number of bidders so far.
fn next_alias(aliases: &BTreeMap<BidderIx, BidderAlias>) -> BidderAlias {
    // At most one alias per registered bidder, and the registry holds fewer than u32::MAX.
    BidderAlias(u32::try_from(aliases.len()).map_or(u32::MAX, |n| n.saturating_add(1)))
}
