//! Model-based property test: random interleavings of every operation, retried requests and
//! time, applied to the real machine and to a small reference model written for clarity, not
//! speed. Outcomes, lists and histories must match after every step; invariants, snapshot
//! round trips and replica agreement are checked along the way.
//!
//! The model keeps the current price as state: a competing bid sets it to
//! `max(price, formula over all maxima)`; a raise by the leader of their own maximum (eBay's
//! rule, docs/auction-rules.md) changes it only to meet an unmet reserve and does not extend
//! a soft close. Bids may carry what the bidder saw (`expected`) and buy-now
//! the price the buyer saw; a zero there is a placeholder that `run` fills with the current
//! state, so matching and stale expectations are both exercised.
//!
//! Bidders have aliases in each auction, in the order of their first bid (then a buyer who
//! never bid). Every list and history is compared as every viewer sees it (nobody, each
//! bidder, the seller), and every event, list and history entry is searched for a name the
//! viewer may not see: only the seller sees other bidders' names.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use auction_core::AuctionMachine;
use auction_core::dedup::PER_CLIENT;
use auction_core::spec::increment_at;
use auction_proto::msg::auction::*;
use auction_proto::msg::client::ListFilter;
use auction_proto::msg::log::*;
use auction_proto::{Amount, AuctionId, ClientId, RequestNo, Seq, Term, Timestamp};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["ann", "ben", "cat", "dan", "eve"];

fn name(i: usize) -> BidderName {
    BidderName::new(NAMES[i % NAMES.len()]).unwrap()
}

fn amt(m: u64) -> Amount {
    Amount::from_minor(m)
}

// ---------------------------------------------------------------- the reference model

#[derive(Clone, Debug)]
struct MBid {
    seq: u64,
    at: u64,
    bidder: BidderName,
    kind: BidKind,
    max: Amount,
    price: Amount,
}

#[derive(Clone, Debug)]
struct MAuction {
    seller: BidderName,
    spec: AuctionSpec,
    original_end: u64,
    ends_at: u64,
    state: AuctionState,
    /// The current price (state: a raise does not apply the formula).
    price: Amount,
    bids: Vec<MBid>,
    sold: Option<(Option<BidderName>, Amount)>,
    /// Bidders in the order of their first bid (alias = position + 1), then a buyer.
    aliases: Vec<BidderName>,
    /// When it ended (the time of the entry that ended it).
    ended_at: Option<u64>,
}

impl MAuction {
    /// Each bidder's highest maximum and when it was first reached; leader first (highest
    /// maximum, earliest on ties).
    fn ranking(&self) -> Vec<(Amount, u64, BidderName)> {
        let mut best: BTreeMap<BidderName, (Amount, u64)> = BTreeMap::new();
        for b in &self.bids {
            let e = best.entry(b.bidder.clone()).or_insert((b.max, b.seq));
            if b.max > e.0 {
                *e = (b.max, b.seq);
            }
        }
        let mut v: Vec<_> = best.into_iter().map(|(n, (m, s))| (m, s, n)).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v
    }

    fn price(&self) -> Amount {
        self.price
    }

    /// The proxy formula over all maxima: the second highest plus its increment, capped at the
    /// highest, raised to a reserve the highest reaches.
    fn formula(&self) -> Amount {
        let r = self.ranking();
        let Some(top) = r.first() else { return self.spec.starting_price };
        let base = match r.get(1) {
            None => self.spec.starting_price,
            Some(second) => {
                let inc = increment_at(&self.spec.increment, second.0);
                second.0.checked_add(inc).map_or(top.0, |p| p.min(top.0))
            }
        };
        match self.spec.reserve {
            Some(res) if top.0 >= res && base < res => res,
            _ => base,
        }
    }

    fn leader(&self) -> Option<(BidderName, Amount)> {
        self.ranking().first().map(|(m, _, n)| (n.clone(), *m))
    }

    /// Met by the price paid once bought, otherwise by the current price.
    fn reserve_met(&self) -> Option<bool> {
        let paid = self.sold.as_ref().map(|s| s.1);
        self.spec.reserve.map(|r| match paid {
            Some(p) => p >= r,
            None => !self.bids.is_empty() && self.price() >= r,
        })
    }

    fn note_bidder(&mut self, who: &BidderName) {
        if !self.aliases.contains(who) {
            self.aliases.push(who.clone());
        }
    }

    fn alias(&self, who: &BidderName) -> BidderAlias {
        let i = self.aliases.iter().position(|n| n == who).unwrap();
        BidderAlias(i as u32 + 1)
    }

    /// `who` as `viewer` sees them: themself, named for the seller, otherwise an alias.
    fn shown(&self, who: &BidderName, viewer: Option<&BidderName>) -> Bidder {
        let alias = self.alias(who);
        match viewer {
            Some(v) if v == who => Bidder::You { alias, name: who.clone() },
            Some(v) if *v == self.seller => Bidder::Named { alias, name: who.clone() },
            _ => Bidder::Alias(alias),
        }
    }

    fn open_at(&self, now: u64) -> bool {
        self.state == AuctionState::Open && now < self.ends_at
    }

    fn buy_now(&self) -> Option<Amount> {
        let untouched = self.reserve_met().map_or(self.bids.is_empty(), |met| !met);
        self.spec.buy_now.filter(|_| self.state == AuctionState::Open && untouched)
    }
}

#[derive(Default)]
struct Model {
    bidders: BTreeSet<BidderName>,
    auctions: Vec<MAuction>,
    done: BTreeMap<(u8, u64), Outcome>,
    now: u64,
    /// Set when the step applied a new bid: whether it was a raise by the leader that left
    /// the price alone (watchers hear nothing of it).
    fresh_bid: Option<bool>,
}

fn rej(reason: RejectReason) -> Outcome {
    Outcome::Rejected { reason }
}

impl Model {
    fn apply(&mut self, seq: u64, origin: Option<(u8, u64)>, op: &Operation) -> Outcome {
        let Some((c, no)) = origin else { return self.exec(seq, op) };
        if let Some(o) = self.done.get(&(c, no)) {
            let mut nos: Vec<u64> = self.done.keys().filter(|k| k.0 == c).map(|k| k.1).collect();
            nos.sort_unstable();
            let kept_from = nos.len().saturating_sub(PER_CLIENT);
            if nos[kept_from..].contains(&no) {
                return o.clone();
            }
            return rej(RejectReason::RequestExpired);
        }
        let floor = {
            let mut nos: Vec<u64> = self.done.keys().filter(|k| k.0 == c).map(|k| k.1).collect();
            nos.sort_unstable();
            let n = nos.len().saturating_sub(PER_CLIENT);
            nos[..n].last().copied()
        };
        if floor.is_some_and(|f| no <= f) {
            return rej(RejectReason::RequestExpired);
        }
        let o = self.exec(seq, op);
        self.done.insert((c, no), o.clone());
        o
    }

    fn exec(&mut self, seq: u64, op: &Operation) -> Outcome {
        match self.exec_inner(seq, op) {
            Ok(o) => o,
            Err(r) => rej(r),
        }
    }

    fn lookup(&mut self, who: &BidderName, id: AuctionId) -> Result<&mut MAuction, RejectReason> {
        if !self.bidders.contains(who) {
            return Err(RejectReason::UnknownBidder);
        }
        let i = (id.0 as usize).checked_sub(1).ok_or(RejectReason::UnknownAuction)?;
        self.auctions.get_mut(i).ok_or(RejectReason::UnknownAuction)
    }

    fn exec_inner(&mut self, seq: u64, op: &Operation) -> Result<Outcome, RejectReason> {
        let now = self.now;
        match op {
            Operation::RegisterBidder { name, .. } => {
                if !self.bidders.insert(name.clone()) {
                    return Err(RejectReason::NameTaken);
                }
                Ok(Outcome::Registered { bidder: name.clone() })
            }
            Operation::OpenAuction { seller, spec } => {
                if !self.bidders.contains(seller) {
                    return Err(RejectReason::UnknownBidder);
                }
                if spec.title.trim().is_empty() {
                    return Err(RejectReason::InvalidSpec);
                }
                // The strategy's hostile texts, with the refusal each must get.
                let unsafe_text = |field, position, code_point, class| {
                    Err(RejectReason::UnsafeText { field, position, code_point, class })
                };
                if spec.title == HOSTILE_TITLE {
                    return unsafe_text(TextField::Title, 3, 0x1b, CharClass::Control);
                }
                if spec.description == HOSTILE_DESCRIPTION {
                    return unsafe_text(TextField::Description, 5, 0x202e, CharClass::Bidi);
                }
                let end = now + spec.duration.as_millis() as u64;
                self.auctions.push(MAuction {
                    seller: seller.clone(),
                    spec: spec.clone(),
                    original_end: end,
                    ends_at: end,
                    state: AuctionState::Open,
                    price: spec.starting_price,
                    bids: vec![],
                    sold: None,
                    aliases: vec![],
                    ended_at: None,
                });
                let id = AuctionId(self.auctions.len() as u64);
                Ok(Outcome::Opened { auction: id, ends_at: Timestamp(end) })
            }
            Operation::PlaceBid { auction, bidder, amount, kind, expected } => {
                let a = self.lookup(bidder, *auction)?;
                if *bidder == a.seller {
                    return Err(RejectReason::SellerCannotBid);
                }
                if !a.open_at(now) {
                    return Err(RejectReason::AuctionClosed);
                }
                if amount.is_zero() || *amount > MAX_PRICE {
                    return Err(RejectReason::InvalidAmount);
                }
                if let Some(e) = expected {
                    let leader = a.leader().map(|l| l.0);
                    let alias = leader.as_ref().map(|l| a.alias(l));
                    if e.price != a.price || e.leader.is_some_and(|l| Some(l) != alias) {
                        let leader = leader.map(|l| a.shown(&l, Some(bidder)));
                        return Err(RejectReason::PriceMoved { price: a.price, leader });
                    }
                }
                let mut minimum = if a.bids.is_empty() {
                    a.spec.starting_price
                } else {
                    let p = a.price();
                    p.checked_add(increment_at(&a.spec.increment, p))
                        .ok_or(RejectReason::InvalidAmount)?
                };
                let raise = a.leader().is_some_and(|(lead, _)| lead == *bidder);
                if let Some((_, max)) = a.leader().filter(|_| raise) {
                    minimum =
                        minimum.max(max.checked_add(amt(1)).ok_or(RejectReason::InvalidAmount)?);
                }
                if minimum > MAX_PRICE {
                    return Err(RejectReason::InvalidAmount);
                }
                if *amount < minimum {
                    return Err(RejectReason::TooLow { minimum });
                }
                a.note_bidder(bidder);
                let before = a.price;
                a.bids.push(MBid {
                    seq,
                    at: now,
                    bidder: bidder.clone(),
                    kind: *kind,
                    max: *amount,
                    price: Amount::ZERO,
                });
                a.price = match a.spec.reserve {
                    Some(r) if raise && *amount >= r && a.price < r => r,
                    _ if raise => a.price,
                    _ => a.price.max(a.formula()),
                };
                let price = a.price();
                a.bids.last_mut().unwrap().price = price;
                let quiet = raise && price == before;
                if let Some(sc) = a.spec.soft_close.as_ref().filter(|_| !raise) {
                    let w = sc.window.as_millis() as u64;
                    if now + w >= a.ends_at {
                        let cap = a.original_end + sc.max_extension.as_millis() as u64;
                        a.ends_at = a.ends_at.max((now + sc.extension.as_millis() as u64).min(cap));
                    }
                }
                let leader = a.shown(&a.leader().unwrap().0, Some(bidder));
                self.fresh_bid = Some(quiet);
                Ok(Outcome::Accepted { auction: *auction, price, leader })
            }
            Operation::BuyNow { auction, bidder, price: expected } => {
                let a = self.lookup(bidder, *auction)?;
                if *bidder == a.seller {
                    return Err(RejectReason::SellerCannotBid);
                }
                if !a.open_at(now) {
                    return Err(RejectReason::AuctionClosed);
                }
                let price = a.buy_now().ok_or(RejectReason::BuyNowUnavailable)?;
                if price != *expected {
                    return Err(RejectReason::BuyNowPriceDiffers { buy_now: price });
                }
                a.state = AuctionState::Bought;
                a.sold = Some((Some(bidder.clone()), price));
                a.note_bidder(bidder);
                a.ended_at = Some(now);
                Ok(Outcome::Bought { auction: *auction, price })
            }
            Operation::Cancel { auction, seller } => {
                let a = self.lookup(seller, *auction)?;
                if *seller != a.seller {
                    return Err(RejectReason::NotSeller);
                }
                if !a.open_at(now) {
                    return Err(RejectReason::AuctionClosed);
                }
                if !a.bids.is_empty() {
                    return Err(RejectReason::HasBids);
                }
                a.state = AuctionState::Cancelled;
                a.ended_at = Some(now);
                Ok(Outcome::Cancelled { auction: *auction })
            }
            Operation::Close { auction } => {
                let i = (auction.0 as usize).checked_sub(1).ok_or(RejectReason::UnknownAuction)?;
                let a = self.auctions.get_mut(i).ok_or(RejectReason::UnknownAuction)?;
                if a.state != AuctionState::Open || now < a.ends_at {
                    return Ok(Outcome::Unchanged);
                }
                a.state = AuctionState::Closed;
                a.ended_at = Some(now);
                let winner = a.leader().map(|l| l.0).filter(|_| a.reserve_met() != Some(false));
                let price = winner.as_ref().map(|_| a.price());
                let winner = winner.map(|w| a.shown(&w, None));
                Ok(Outcome::Closed { auction: *auction, winner, price })
            }
        }
    }

    fn summaries(&self, viewer: Option<&BidderName>) -> Vec<AuctionSummary> {
        let summary = |(i, a): (usize, &MAuction)| {
            let (price, leader) = match (&a.state, &a.sold) {
                (AuctionState::Bought, Some((w, p))) => (*p, w.clone()),
                _ => (a.price(), a.leader().map(|l| l.0)),
            };
            let leader = leader.map(|l| a.shown(&l, viewer));
            AuctionSummary {
                id: AuctionId(i as u64 + 1),
                title: a.spec.title.clone(),
                seller: a.seller.clone(),
                state: a.state,
                price,
                leader,
                bids: a.bids.len() as u32,
                ends_at: Timestamp(a.ends_at),
                ended_at: a.ended_at.map(Timestamp),
                reserve_met: a.reserve_met(),
            }
        };
        self.auctions.iter().enumerate().map(summary).collect()
    }
}

// ---------------------------------------------------------------- random steps

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    Noop,
    /// An operation with an optional client (0..3); `None` for leader-made commands.
    Op(Option<u8>, Operation),
    /// Resend the k-th earlier client request (modulo the number sent).
    Retry(usize),
}

/// Clears the screen.
const HOSTILE_TITLE: &str = "bad\u{1b}[2J";
/// A right-to-left override after a newline (the newline alone is allowed).
const HOSTILE_DESCRIPTION: &str = "ok\nx \u{202e}05.5";

fn spec_strategy() -> impl Strategy<Value = AuctionSpec> {
    (
        prop_oneof![Just(100u64), Just(200)],
        prop::option::of(300u64..1200),
        prop_oneof![
            Just(IncrementRule::Fixed(amt(10))),
            Just(IncrementRule::Fixed(amt(25))),
            Just(IncrementRule::Tiered(vec![
                IncrementTier { from: amt(0), increment: amt(10) },
                IncrementTier { from: amt(500), increment: amt(50) },
            ])),
        ],
        5u64..40,
        any::<bool>(),
        prop::option::of(0u64..2000),
        prop_oneof![18 => Just("item"), 1 => Just(" "), 1 => Just(HOSTILE_TITLE)],
        prop_oneof![9 => Just(""), 1 => Just("two\nlines"), 1 => Just(HOSTILE_DESCRIPTION)],
    )
        .prop_map(|(start, reserve, increment, secs, soft, buy, title, description)| {
            AuctionSpec {
                title: title.into(),
                description: description.into(),
                starting_price: amt(start),
                reserve: reserve.map(amt),
                increment,
                duration: Duration::from_secs(secs),
                soft_close: soft.then(|| SoftClose {
                    window: Duration::from_secs(5),
                    extension: Duration::from_secs(10),
                    max_extension: Duration::from_secs(20),
                }),
                buy_now: buy.map(|b| amt(start.max(reserve.unwrap_or(0)) + b)),
            }
        })
}

/// `None` mostly; a zero price is a placeholder for "what the model shows now" (and then a
/// leader alias for "the leader's alias now").
fn expected_strategy() -> impl Strategy<Value = Option<Expected>> {
    let leader = prop::option::of((1u32..5).prop_map(BidderAlias));
    prop_oneof![
        6 => Just(None),
        2 => leader.clone().prop_map(|leader| Some(Expected { price: Amount::ZERO, leader })),
        1 => (0u64..150, leader).prop_map(|(k, leader)| Some(Expected { price: amt(k * 10), leader })),
    ]
}

/// Fills the placeholders of [`expected_strategy`] and the buy-now price from the model's view.
fn resolve(model: &Model, op: Operation) -> Operation {
    let view = |id: AuctionId| model.auctions.get((id.0 as usize).checked_sub(1)?);
    match op {
        Operation::PlaceBid { auction, bidder, amount, kind, expected: Some(e) }
            if e.price.is_zero() =>
        {
            let expected = view(auction).map(|a| Expected {
                price: a.price(),
                leader: e.leader.and_then(|_| a.leader().map(|l| a.alias(&l.0))),
            });
            Operation::PlaceBid { auction, bidder, amount, kind, expected }
        }
        Operation::BuyNow { auction, bidder, price } if price.is_zero() => {
            let price = view(auction).and_then(MAuction::buy_now).unwrap_or(amt(1));
            Operation::BuyNow { auction, bidder, price }
        }
        op => op,
    }
}

fn op_strategy() -> impl Strategy<Value = Operation> {
    let who = 0usize..NAMES.len();
    let auction = (0u64..5).prop_map(AuctionId);
    prop_oneof![
        1 => who.clone().prop_map(|i| Operation::RegisterBidder { name: name(i), token_hash: [i as u8; 32] }),
        2 => (who.clone(), spec_strategy()).prop_map(|(i, spec)| Operation::OpenAuction { seller: name(i), spec }),
        10 => (auction.clone(), who.clone(), 0u64..150, any::<bool>(), expected_strategy()).prop_map(|(a, i, k, proxy, expected)| {
            Operation::PlaceBid {
                auction: a,
                bidder: name(i),
                amount: amt(k * 10),
                kind: if proxy { BidKind::Proxy } else { BidKind::Plain },
                expected,
            }
        }),
        // Price zero: the buy-now price the model shows now (filled in by `run`).
        1 => (auction.clone(), who.clone(), prop_oneof![3 => Just(0u64), 1 => 100u64..3000]).prop_map(|(a, i, p)| Operation::BuyNow { auction: a, bidder: name(i), price: amt(p) }),
        1 => (auction.clone(), who).prop_map(|(a, i)| Operation::Cancel { auction: a, seller: name(i) }),
        2 => auction.prop_map(|a| Operation::Close { auction: a }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..8_000).prop_map(Step::Advance),
        1 => Just(Step::Noop),
        12 => (prop::option::of(0u8..3), op_strategy()).prop_map(|(c, op)| Step::Op(c, op)),
        3 => any::<usize>().prop_map(Step::Retry),
    ]
}

// ---------------------------------------------------------------- the test

/// Nobody, every name (one never registered), each in turn.
fn viewers() -> impl Iterator<Item = Option<BidderName>> {
    std::iter::once(None).chain((0..NAMES.len()).map(|i| Some(name(i))))
}

/// Fails if `text` (the `Debug` form of what `viewer` was shown of auction `a`, where a name
/// appears quoted) holds a name the viewer may not see: anybody may see their own, the seller
/// every one, and in a list line (`seller_shown`) everybody the seller's.
fn no_leak(
    a: &MAuction,
    viewer: Option<&BidderName>,
    text: &str,
    seller_shown: bool,
) -> Result<(), TestCaseError> {
    if viewer == Some(&a.seller) {
        return Ok(());
    }
    for n in NAMES {
        let own = viewer.is_some_and(|v| v.as_str() == n);
        let public = seller_shown && a.seller.as_str() == n;
        prop_assert!(
            own || public || !text.contains(&format!("{n:?}")),
            "{:?} was shown {}'s name: {}",
            viewer,
            n,
            text
        );
    }
    Ok(())
}

/// The events of one step: rendered for every viewer without a name it may not see, and
/// matching the outcome and the model. An accepted bid announces its price first (as the
/// bidder sees it, the leader of the outcome), unless it was a raise by the leader that left
/// the price alone: then there is no event at all. A closing event's `reserve_met` is the
/// list's.
fn check_events(
    model: &Model,
    events: &[auction_core::Event],
    op: Option<&Operation>,
) -> Result<(), TestCaseError> {
    for e in events {
        let a = &model.auctions[e.auction().0 as usize - 1];
        prop_assert_eq!(e.seller(), &a.seller);
        for viewer in viewers() {
            no_leak(a, viewer.as_ref(), &format!("{:?}", e.for_viewer(viewer.as_ref())), false)?;
        }
        if let AuctionEvent::Closed { reserve_met, .. } = e.public() {
            prop_assert_eq!(reserve_met, a.reserve_met(), "Closed and the list disagree");
        }
    }
    let (Some(Operation::PlaceBid { auction, bidder, .. }), Some(quiet)) = (op, model.fresh_bid)
    else {
        return Ok(());
    };
    if quiet {
        prop_assert!(events.is_empty(), "a raise that kept the price was announced: {:?}", events);
        return Ok(());
    }
    let a = &model.auctions[auction.0 as usize - 1];
    let (leader, _) = a.leader().unwrap();
    let high = AuctionEvent::NewHighBid {
        auction: *auction,
        price: a.price(),
        leader: a.shown(&leader, Some(bidder)),
    };
    prop_assert_eq!(events.first().map(|e| e.for_viewer(Some(bidder))), Some(high));
    Ok(())
}

fn origin(c: u8, no: u64) -> RequestId {
    RequestId { client: ClientId::from_bytes([c; 16]), no: RequestNo(no) }
}

fn run(steps: Vec<Step>, restore_at: usize) -> Result<(), TestCaseError> {
    let mut m = AuctionMachine::new();
    let mut model = Model::default();
    let mut sent: Vec<(u8, u64, Operation)> = vec![];
    let mut next_no = [0u64; 3];
    let mut log: Vec<LogEntry> = vec![];
    let mut max_prices: BTreeMap<AuctionId, Amount> = BTreeMap::new();
    for step in steps {
        let (origin_, op) = match step {
            Step::Advance(ms) => {
                model.now += ms;
                continue;
            }
            Step::Noop => (None, None),
            Step::Op(None, op) => (None, Some(resolve(&model, op))),
            Step::Op(Some(c), op) => {
                let op = resolve(&model, op);
                next_no[c as usize] += 1;
                let no = next_no[c as usize];
                sent.push((c, no, op.clone()));
                (Some((c, no)), Some(op))
            }
            Step::Retry(_) if sent.is_empty() => continue,
            Step::Retry(k) => {
                let (c, no, op) = sent[k % sent.len()].clone();
                (Some((c, no)), Some(op))
            }
        };
        let seq = log.len() as u64 + 1;
        let payload = match &op {
            None => EntryPayload::Noop,
            Some(op) => EntryPayload::Command(Command {
                origin: origin_.map(|(c, n)| origin(c, n)),
                op: op.clone(),
            }),
        };
        let entry =
            LogEntry { term: Term(1), seq: Seq(seq), timestamp: Timestamp(model.now), payload };
        let applied = m.apply(&entry);
        log.push(entry);
        model.fresh_bid = None;
        let expected = match &op {
            None => Outcome::Unchanged,
            Some(op) => model.apply(seq, origin_, op),
        };
        prop_assert_eq!(&applied.outcome, &expected, "step {} {:?}", seq, op);
        check_events(&model, &applied.events, op.as_ref())?;
        m.check_invariants().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let all = m.auctions(ListFilter::All);
        prop_assert_eq!(&all, &model.summaries(None));
        for s in &all {
            let prev = max_prices.insert(s.id, s.price).unwrap_or(Amount::ZERO);
            prop_assert!(s.price >= prev, "price of {:?} decreased", s.id);
        }
        for viewer in viewers() {
            let v = viewer.as_ref();
            let summaries = m.auctions_for(ListFilter::All, v);
            prop_assert_eq!(&summaries, &model.summaries(v), "as seen by {:?}", v);
            for (s, ma) in summaries.iter().zip(&model.auctions) {
                no_leak(ma, v, &format!("{s:?}"), true)?;
                let view = m.auction_for(s.id, v).unwrap();
                prop_assert_eq!(&view.summary, s);
                let history = m.history_for(s.id, v).unwrap();
                let expected: Vec<_> = ma
                    .bids
                    .iter()
                    .map(|b| (Seq(b.seq), Timestamp(b.at), ma.shown(&b.bidder, v), b.kind, b.price))
                    .collect();
                no_leak(ma, v, &format!("{history:?}"), false)?;
                let got: Vec<_> =
                    history.into_iter().map(|r| (r.seq, r.at, r.bidder, r.kind, r.price)).collect();
                prop_assert_eq!(got, expected, "history as seen by {:?}", v);
            }
        }
        let bytes = m.snapshot();
        prop_assert_eq!(AuctionMachine::restore(&bytes).unwrap().snapshot(), bytes);
    }
    // Replicas: one applies everything, one restores a snapshot midway and applies the rest.
    let mut a = AuctionMachine::new();
    let cut = restore_at % (log.len() + 1);
    for e in &log[..cut] {
        a.apply(e);
    }
    let mut b = AuctionMachine::restore(&a.snapshot()).unwrap();
    for e in &log[cut..] {
        b.apply(e);
    }
    prop_assert_eq!(b.snapshot(), m.snapshot());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn machine_matches_the_reference_model(
        steps in prop::collection::vec(step_strategy(), 1..120),
        restore_at in any::<usize>(),
    ) {
        // Start with most names registered so that bids are mostly meaningful.
        let mut prefix: Vec<Step> = (0..4)
            .map(|i| Step::Op(None, Operation::RegisterBidder { name: name(i), token_hash: [0; 32] }))
            .collect();
        prefix.extend(steps);
        run(prefix, restore_at)?;
    }
}
