//! The deterministic auction state machine: the rules of the product.
//!
//! Every replica runs one [`AuctionMachine`] and feeds it the committed log entries in
//! sequence order. It is pure: no IO, no clock, no randomness, no hashing order in anything
//! that is observable. The same entries therefore give the same outcomes, the same events and
//! the same [`snapshot`](AuctionMachine::snapshot) bytes on every replica.
//!
//! # Inputs
//!
//! - [`AuctionMachine::apply`] with each committed [`LogEntry`]. Commands are validated here
//!   and only here: bids are judged in log order, at the entry's sequencer timestamp.
//! - [`AuctionMachine::restore`] instead of replaying a truncated log prefix.
//!
//! # Outputs
//!
//! - [`Applied`]: the typed [`Outcome`] for the client that sent the command and the
//!   [`Event`]s for watchers, each rendered for one watcher as an [`AuctionEvent`] with
//!   [`Event::for_viewer`].
//! - Queries: [`auctions_for`](AuctionMachine::auctions_for),
//!   [`auction_for`](AuctionMachine::auction_for), [`history_for`](AuctionMachine::history_for)
//!   (each as one viewer may see it; [`auctions`](AuctionMachine::auctions),
//!   [`auction`](AuctionMachine::auction) and [`history`](AuctionMachine::history) as anybody
//!   may), and for the leader
//!   [`due_for_close`](AuctionMachine::due_for_close) / [`next_deadline`](AuctionMachine::next_deadline):
//!   when an open auction's end has passed (by sequencer time), the leader sequences a
//!   `Close` entry for it.
//!
//! # Call order
//!
//! ```text
//! machine = AuctionMachine::new()            or   AuctionMachine::restore(bytes)?
//! for entry in committed entries after machine.last_applied():
//!     Applied { outcome, events } = machine.apply(&entry)
//!     answer the client (entry's origin) with outcome
//!     for each watcher, for each event: send event.for_viewer(watcher's bidder)
//! (leader) for id in machine.due_for_close(now): sequence Command { origin: None, Close { id } }
//! ```
//!
//! # The rules in brief
//!
//! See `docs/auction-rules.md` for the full rules with examples. Proxy pricing is described in
//! the `auction` module, the exactly-once window in the [`dedup`] module, the spec limits in
//! [`spec`]. Rejections are checked in a fixed order: unknown bidder, unknown auction, role
//! (seller bidding / non-seller cancelling), auction ended or past its end, amount (zero or
//! above `MAX_PRICE`), the price or leader the bid expected has moved, too low. A raise by the
//! leader of their own maximum follows eBay's rule (the `auction` module).
//!
//! # Who sees whose name
//!
//! Bidders are public only by their alias in an auction (`bidder 3`, numbered in the order of
//! their first bid there); the seller sees their names, and each bidder sees themself as
//! "you". The rule is in the [`view`] module; every query, outcome and event follows it.
//!
//! ```
//! use auction_core::AuctionMachine;
//! use auction_proto::msg::auction::*;
//! use auction_proto::msg::log::*;
//! use auction_proto::{Amount, AuctionId, Seq, Term, Timestamp};
//! use std::time::Duration;
//!
//! let mut m = AuctionMachine::new();
//! let mut seq = 0;
//! let mut run = |m: &mut AuctionMachine, op: Operation| {
//!     seq += 1;
//!     let payload = EntryPayload::Command(Command { origin: None, op });
//!     m.apply(&LogEntry { term: Term(1), seq: Seq(seq), timestamp: Timestamp(1_000), payload })
//! };
//! let name = |s: &str| BidderName::new(s).unwrap();
//! run(&mut m, Operation::RegisterBidder { name: name("sam"), token_hash: [0; 32] });
//! run(&mut m, Operation::RegisterBidder { name: name("bea"), token_hash: [1; 32] });
//! let spec = AuctionSpec {
//!     title: "Lamp".into(),
//!     description: String::new(),
//!     starting_price: Amount::from_minor(1_000),
//!     reserve: None,
//!     increment: IncrementRule::Fixed(Amount::from_minor(50)),
//!     duration: Duration::from_secs(3600),
//!     soft_close: None,
//!     buy_now: None,
//! };
//! run(&mut m, Operation::OpenAuction { seller: name("sam"), spec });
//! let bid = Operation::PlaceBid {
//!     auction: AuctionId(1),
//!     bidder: name("bea"),
//!     amount: Amount::from_minor(2_000),
//!     kind: BidKind::Proxy,
//!     expected: None,
//! };
//! let applied = run(&mut m, bid);
//! // Alone, bea leads at the starting price; her maximum of 20.00 stays secret. She is told
//! // that she leads; watchers learn only that bidder 1 does, the seller that bea does.
//! let you = Bidder::You { alias: BidderAlias(1), name: name("bea") };
//! assert_eq!(
//!     applied.outcome,
//!     Outcome::Accepted { auction: AuctionId(1), price: Amount::from_minor(1_000), leader: you }
//! );
//! let high = |leader| AuctionEvent::NewHighBid {
//!     auction: AuctionId(1),
//!     price: Amount::from_minor(1_000),
//!     leader,
//! };
//! assert_eq!(applied.events[0].public(), high(Bidder::Alias(BidderAlias(1))));
//! let named = Bidder::Named { alias: BidderAlias(1), name: name("bea") };
//! assert_eq!(applied.events[0].for_viewer(Some(&name("sam"))), high(named));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auction;
mod bidders;
pub mod dedup;
mod invariants;
mod machine;
mod query;
mod snapshot;
pub mod spec;
pub mod view;

pub use auction_proto::msg::auction::{AuctionEvent, Outcome};
pub use auction_proto::msg::log::LogEntry;
pub use bidders::token_hash_matches;
pub use invariants::InvariantViolation;
pub use machine::{Applied, AuctionMachine};
pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};
pub use view::Event;
