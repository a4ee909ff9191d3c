//! A small harness: a machine, a clock and a sequence counter, with one helper per operation.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use auction_core::{Applied, AuctionMachine};
use auction_proto::msg::auction::*;
use auction_proto::msg::log::*;
use auction_proto::{Amount, AuctionId, ClientId, RequestNo, Seq, Term, Timestamp};

pub fn name(s: &str) -> BidderName {
    BidderName::new(s).unwrap()
}

pub fn amt(minor: u64) -> Amount {
    Amount::from_minor(minor)
}

/// A 60-second auction starting at 1.00 with a fixed 0.10 increment.
pub fn spec() -> AuctionSpec {
    AuctionSpec {
        title: "Vintage lamp".into(),
        description: "Works.".into(),
        starting_price: amt(100),
        reserve: None,
        increment: IncrementRule::Fixed(amt(10)),
        duration: Duration::from_secs(60),
        soft_close: None,
        buy_now: None,
    }
}

pub struct H {
    pub m: AuctionMachine,
    pub seq: u64,
    pub now: u64,
}

impl H {
    /// A machine at t = 1000 ms with bidders seller, alice, bob, carol registered.
    pub fn new() -> Self {
        let mut h = H { m: AuctionMachine::new(), seq: 0, now: 1000 };
        for n in ["seller", "alice", "bob", "carol"] {
            h.op(Operation::RegisterBidder { name: name(n), token_hash: [n.len() as u8; 32] });
        }
        h
    }

    pub fn entry(&mut self, origin: Option<RequestId>, op: Operation) -> LogEntry {
        self.seq += 1;
        LogEntry {
            term: Term(1),
            seq: Seq(self.seq),
            timestamp: Timestamp(self.now),
            payload: EntryPayload::Command(Command { origin, op }),
        }
    }

    pub fn apply(&mut self, e: &LogEntry) -> Applied {
        let applied = self.m.apply(e);
        self.m.check_invariants().unwrap();
        applied
    }

    pub fn op(&mut self, op: Operation) -> Applied {
        let e = self.entry(None, op);
        self.apply(&e)
    }

    pub fn req(&mut self, client: u8, no: u64, op: Operation) -> Applied {
        let origin = RequestId { client: ClientId::from_bytes([client; 16]), no: RequestNo(no) };
        let e = self.entry(Some(origin), op);
        self.apply(&e)
    }

    pub fn open(&mut self, spec: AuctionSpec) -> AuctionId {
        match self.op(Operation::OpenAuction { seller: name("seller"), spec }).outcome {
            Outcome::Opened { auction, .. } => auction,
            other => panic!("open failed: {other:?}"),
        }
    }

    pub fn bid(&mut self, a: AuctionId, who: &str, minor: u64) -> Outcome {
        self.bid_kind(a, who, minor, BidKind::Plain)
    }

    pub fn proxy(&mut self, a: AuctionId, who: &str, minor: u64) -> Outcome {
        self.bid_kind(a, who, minor, BidKind::Proxy)
    }

    pub fn bid_kind(&mut self, a: AuctionId, who: &str, minor: u64, kind: BidKind) -> Outcome {
        let op = Operation::PlaceBid {
            auction: a,
            bidder: name(who),
            amount: amt(minor),
            kind,
            expected: None,
        };
        self.op(op).outcome
    }

    pub fn close(&mut self, a: AuctionId) -> Applied {
        self.op(Operation::Close { auction: a })
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// The list line of `a` as anybody sees it.
    pub fn summary(&self, a: AuctionId) -> AuctionSummary {
        self.m.auction(a).unwrap().summary
    }

    /// The list line of `a` as `who` sees it.
    pub fn summary_for(&self, a: AuctionId, who: &str) -> AuctionSummary {
        self.m.auction_for(a, Some(&name(who))).unwrap().summary
    }
}

/// `Accepted` as the bidder is told: `leader` is [`you`] or [`alias`].
pub fn accepted(a: AuctionId, price: u64, leader: Bidder) -> Outcome {
    Outcome::Accepted { auction: a, price: amt(price), leader }
}

/// The viewer themself, bidder `n` of the auction.
pub fn you(n: u32, who: &str) -> Bidder {
    Bidder::You { alias: BidderAlias(n), name: name(who) }
}

/// Bidder `n` of the auction, as anybody but the seller and themself sees them.
pub fn alias(n: u32) -> Bidder {
    Bidder::Alias(BidderAlias(n))
}

/// Bidder `n` of the auction as the seller sees them.
pub fn named(n: u32, who: &str) -> Bidder {
    Bidder::Named { alias: BidderAlias(n), name: name(who) }
}

pub fn rejected(reason: RejectReason) -> Outcome {
    Outcome::Rejected { reason }
}
