//! [`AuctionMachine`]: the replicated state and `apply`.

use std::collections::BTreeSet;

use auction_proto::msg::auction::{
    AuctionSpec, AuctionState, BidKind, Bidder, BidderName, Expected, MAX_PRICE, Outcome,
    RejectReason,
};
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation, TokenHash};
use auction_proto::{Amount, AuctionId, Seq, Timestamp};

use crate::auction::{Auction, Bid, Ending};
use crate::bidders::{BidderIx, Bidders};
use crate::dedup::{Dedup, Seen};
use crate::spec;
use crate::view::{Event, Party, What};

/// What applying one entry produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The answer for the client that sent the command (for a retried request: the first
    /// answer, unchanged).
    pub outcome: Outcome,
    /// Notifications for watchers, in order; empty for rejections and retries. Render each
    /// for its watcher with [`Event::for_viewer`].
    pub events: Vec<Event>,
}

impl Applied {
    fn unchanged() -> Self {
        Self { outcome: Outcome::Unchanged, events: Vec::new() }
    }

    fn rejected(reason: RejectReason) -> Self {
        Self { outcome: Outcome::Rejected { reason }, events: Vec::new() }
    }
}

/// The replicated auction state machine. See the crate docs for the call contract.
///
/// Invariants (see [`AuctionMachine::check_invariants`]): auction `i` has id `i + 1`; the
/// deadline index holds exactly the open auctions by `(ends_at, id)`; every auction and the
/// bidder and dedup tables satisfy their own invariants; `clock` is the largest timestamp seen.
#[derive(Clone, Debug, Default)]
pub struct AuctionMachine {
    pub(crate) bidders: Bidders,
    pub(crate) auctions: Vec<Auction>,
    pub(crate) dedup: Dedup,
    pub(crate) last_applied: Seq,
    pub(crate) clock: Timestamp,
    /// Derived: open auctions by end time, for [`AuctionMachine::due_for_close`].
    pub(crate) deadlines: BTreeSet<(Timestamp, AuctionId)>,
}

type Reject<T> = Result<T, RejectReason>;

impl AuctionMachine {
    /// An empty state: no bidders, no auctions, nothing applied.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of the last entry applied (`Seq(0)` for none).
    pub fn last_applied(&self) -> Seq {
        self.last_applied
    }

    /// Applies one committed entry. Call with every committed entry, in sequence order.
    ///
    /// - `Noop` and `Config` entries give `Outcome::Unchanged` (configuration belongs to the
    ///   ordering layer), but still advance [`AuctionMachine::last_applied`].
    /// - An entry at or below `last_applied` is ignored (`Unchanged`), so replaying a log
    ///   that overlaps a restored snapshot is harmless.
    /// - Time is `max(entry.timestamp, latest timestamp seen)`: sequencer time never goes
    ///   backwards here even if a buggy leader's did.
    pub fn apply(&mut self, entry: &LogEntry) -> Applied {
        if entry.seq <= self.last_applied {
            return Applied::unchanged();
        }
        self.last_applied = entry.seq;
        self.clock = self.clock.max(entry.timestamp);
        let applied = match &entry.payload {
            EntryPayload::Noop | EntryPayload::Config(_) => Applied::unchanged(),
            EntryPayload::Command(cmd) => self.apply_command(entry.seq, cmd),
        };
        debug_assert_eq!(self.check_touched(&entry.payload), Ok(()));
        applied
    }

    fn apply_command(&mut self, seq: Seq, cmd: &Command) -> Applied {
        let Some(origin) = cmd.origin else { return self.execute(seq, &cmd.op) };
        match self.dedup.seen(origin) {
            Seen::Done(first) => return Applied { outcome: first.clone(), events: Vec::new() },
            Seen::Expired => return Applied::rejected(RejectReason::RequestExpired),
            Seen::Fresh => {}
        }
        let applied = self.execute(seq, &cmd.op);
        self.dedup.record(origin, seq, applied.outcome.clone());
        applied
    }

    fn execute(&mut self, seq: Seq, op: &Operation) -> Applied {
        let result = match op {
            Operation::RegisterBidder { name, token_hash } => self.register(name, *token_hash),
            Operation::OpenAuction { seller, spec } => self.open(seller, spec),
            Operation::PlaceBid { auction, bidder, amount, kind, expected } => {
                let bid = BidOp { amount: *amount, kind: *kind, expected: expected.as_ref() };
                self.bid(seq, *auction, bidder, bid)
            }
            Operation::BuyNow { auction, bidder, price } => {
                self.buy_now(seq, *auction, bidder, *price)
            }
            Operation::Cancel { auction, seller } => self.cancel(seq, *auction, seller),
            Operation::Close { auction } => self.close(seq, *auction),
        };
        result.unwrap_or_else(Applied::rejected)
    }

    fn register(&mut self, name: &BidderName, hash: TokenHash) -> Reject<Applied> {
        self.bidders.register(name, hash).ok_or(RejectReason::NameTaken)?;
        let outcome = Outcome::Registered { bidder: name.clone() };
        Ok(Applied { outcome, events: Vec::new() })
    }

    fn open(&mut self, seller: &BidderName, spec: &AuctionSpec) -> Reject<Applied> {
        let seller = self.bidders.lookup(seller).ok_or(RejectReason::UnknownBidder)?;
        spec::validate(spec).map_err(|e| match e {
            spec::SpecError::Text { field, position, code_point, class } => {
                RejectReason::UnsafeText { field, position, code_point, class }
            }
            _ => RejectReason::InvalidSpec,
        })?;
        let id = AuctionId(self.auctions.len() as u64 + 1);
        let auction = Auction::new(id, seller, spec.clone(), self.clock);
        let ends_at = auction.ends_at;
        self.deadlines.insert((ends_at, id));
        self.auctions.push(auction);
        Ok(Applied { outcome: Outcome::Opened { auction: id, ends_at }, events: Vec::new() })
    }

    /// The auction `id`, mutably, and the index of `name` (checked in that documented order:
    /// bidder first, then auction).
    fn find(&mut self, id: AuctionId, name: &BidderName) -> Reject<(&mut Auction, BidderIx)> {
        let who = self.bidders.lookup(name).ok_or(RejectReason::UnknownBidder)?;
        let auction = auction_mut(&mut self.auctions, id).ok_or(RejectReason::UnknownAuction)?;
        Ok((auction, who))
    }

    fn bid(
        &mut self,
        seq: Seq,
        id: AuctionId,
        name: &BidderName,
        op: BidOp<'_>,
    ) -> Reject<Applied> {
        let now = self.clock;
        let bidder = self.bidders.lookup(name).ok_or(RejectReason::UnknownBidder)?;
        let a = self.get(id).ok_or(RejectReason::UnknownAuction)?;
        if a.seller == bidder {
            return Err(RejectReason::SellerCannotBid);
        }
        if !a.is_open_at(now) {
            return Err(RejectReason::AuctionClosed);
        }
        if op.amount.is_zero() || op.amount > MAX_PRICE {
            return Err(RejectReason::InvalidAmount);
        }
        let price = a.price;
        if let Some(expected) = op.expected {
            let leader = a.leader.map(|l| a.alias(l.bidder));
            if expected.price != price || expected.leader.is_some_and(|e| Some(e) != leader) {
                let leader = a.leader.map(|l| self.bidder_for(a, l.bidder, Some(name)));
                return Err(RejectReason::PriceMoved { price, leader });
            }
        }
        let minimum = a.minimum_bid_for(bidder).ok_or(RejectReason::InvalidAmount)?;
        if op.amount < minimum {
            return Err(RejectReason::TooLow { minimum });
        }
        let rec = Bid {
            seq,
            at: now,
            bidder,
            kind: op.kind,
            max: op.amount,
            price: Amount::ZERO,
            raise: false,
        };
        let a = auction_mut(&mut self.auctions, id).ok_or(RejectReason::UnknownAuction)?;
        let (before, raise) = a.place(rec);
        let (price_now, lead) = (a.price, a.leader.map_or(bidder, |l| l.bidder));
        let old_end = a.ends_at;
        let extended = if raise { None } else { a.extend_for_bid_at(now) };
        if let Some(new_end) = extended {
            self.deadlines.remove(&(old_end, id));
            self.deadlines.insert((new_end, id));
        }
        let a = self.get(id).ok_or(RejectReason::UnknownAuction)?;
        let leader = self.bidder_for(a, lead, Some(name));
        let outcome = Outcome::Accepted { auction: id, price: price_now, leader };
        let mut whats = Vec::with_capacity(3);
        // A raise that left the price alone tells watchers nothing (see the `auction` module).
        if !raise || price_now != price {
            whats.push(What::NewHighBid { price: price_now, leader: self.party(a, lead) });
        }
        if let Some(prev) = before.filter(|p| p.bidder != lead) {
            whats.push(What::Outbid { bidder: self.party(a, prev.bidder), price: price_now });
        }
        if let Some(new_end) = extended {
            whats.push(What::Extended { new_end });
        }
        Ok(Applied { outcome, events: self.events(a, whats) })
    }

    fn buy_now(
        &mut self,
        seq: Seq,
        id: AuctionId,
        name: &BidderName,
        expected: Amount,
    ) -> Reject<Applied> {
        let now = self.clock;
        let (a, buyer) = self.find(id, name)?;
        if a.seller == buyer {
            return Err(RejectReason::SellerCannotBid);
        }
        if !a.is_open_at(now) {
            return Err(RejectReason::AuctionClosed);
        }
        let price = a.buy_now_available().ok_or(RejectReason::BuyNowUnavailable)?;
        if price != expected {
            return Err(RejectReason::BuyNowPriceDiffers { buy_now: price });
        }
        a.buy(Ending { seq, at: now, winner: Some(buyer), price: Some(price) });
        let end = a.ends_at;
        self.deadlines.remove(&(end, id));
        let a = self.get(id).ok_or(RejectReason::UnknownAuction)?;
        let what = What::Closed {
            winner: Some(self.party(a, buyer)),
            price: Some(price),
            reserve_met: a.reserve_met(),
        };
        let events = self.events(a, vec![what]);
        Ok(Applied { outcome: Outcome::Bought { auction: id, price }, events })
    }

    fn cancel(&mut self, seq: Seq, id: AuctionId, name: &BidderName) -> Reject<Applied> {
        let now = self.clock;
        let (a, who) = self.find(id, name)?;
        if a.seller != who {
            return Err(RejectReason::NotSeller);
        }
        if !a.is_open_at(now) {
            return Err(RejectReason::AuctionClosed);
        }
        if !a.bids.is_empty() {
            return Err(RejectReason::HasBids);
        }
        a.end(AuctionState::Cancelled, Ending { seq, at: now, winner: None, price: None });
        let end = a.ends_at;
        self.deadlines.remove(&(end, id));
        let a = self.get(id).ok_or(RejectReason::UnknownAuction)?;
        let what = What::Closed { winner: None, price: None, reserve_met: a.reserve_met() };
        let events = self.events(a, vec![what]);
        Ok(Applied { outcome: Outcome::Cancelled { auction: id }, events })
    }

    /// `Close`: ends an open auction whose end has passed. Closing one already ended, or one
    /// whose end a soft-close extension moved past the entry's time, is `Unchanged`.
    fn close(&mut self, seq: Seq, id: AuctionId) -> Reject<Applied> {
        let now = self.clock;
        let a = auction_mut(&mut self.auctions, id).ok_or(RejectReason::UnknownAuction)?;
        if a.state != AuctionState::Open || now < a.ends_at {
            return Ok(Applied::unchanged());
        }
        let ending = a.close(seq, now);
        let end = a.ends_at;
        self.deadlines.remove(&(end, id));
        let a = self.get(id).ok_or(RejectReason::UnknownAuction)?;
        let winner = ending.winner.map(|w| self.party(a, w));
        // A `Close` answers no client: its outcome is what anybody may see.
        let seller = self.bidders.name(a.seller);
        let outcome = Outcome::Closed {
            auction: id,
            winner: winner.as_ref().map(|w| w.seen_by(seller, None)),
            price: ending.price,
        };
        let what = What::Closed { winner, price: ending.price, reserve_met: a.reserve_met() };
        Ok(Applied { outcome, events: self.events(a, vec![what]) })
    }

    /// Bidder `who` of auction `a`, with name and alias.
    pub(crate) fn party(&self, a: &Auction, who: BidderIx) -> Party {
        Party { name: self.bidders.name(who).clone(), alias: a.alias(who) }
    }

    /// Bidder `who` of auction `a` as `viewer` sees them (the rule of [`crate::view`]).
    pub(crate) fn bidder_for(
        &self,
        a: &Auction,
        who: BidderIx,
        viewer: Option<&BidderName>,
    ) -> Bidder {
        self.party(a, who).seen_by(self.bidders.name(a.seller), viewer)
    }

    fn events(&self, a: &Auction, whats: Vec<What>) -> Vec<Event> {
        let seller = self.bidders.name(a.seller);
        whats.into_iter().map(|w| Event::new(a.id, seller.clone(), w)).collect()
    }
}

/// A bid's own fields, as the log entry carries them.
#[derive(Clone, Copy, Debug)]
struct BidOp<'a> {
    amount: Amount,
    kind: BidKind,
    expected: Option<&'a Expected>,
}

/// Auction ids are positions plus one: id 1 is the first auction opened.
pub(crate) fn auction_index(id: AuctionId) -> Option<usize> {
    usize::try_from(id.0).ok()?.checked_sub(1)
}

fn auction_mut(auctions: &mut [Auction], id: AuctionId) -> Option<&mut Auction> {
    auctions.get_mut(auction_index(id)?)
}
