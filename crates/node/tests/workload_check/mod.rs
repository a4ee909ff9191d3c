//! A history checker for the real-process workload (`tests/workload.rs`).
//!
//! The simulation's checker (`auction_sim::checker`) reads every server's applied log; real
//! processes do not expose theirs, so this one works from what clients can observe: each
//! client's requests with their final results and the applied seqs of its responses, and the
//! final state (auction list and bid histories) read from every node as the seller (who alone
//! sees the bidders' names; reads show the leader by alias). The property names are
//! the simulation's: `agreement`, `integrity`, `durability`, `auction-rules`, `reads`,
//! `liveness`.
//!
//! Each client has one request in flight and never abandons a request it may have submitted
//! (until the liveness bound is over), so its request `i` can only have been applied between
//! the newest seq it had seen when it first sent `i` (exclusive) and the newest seq it had seen
//! when it first sent `i + 1` (inclusive). That window attributes every history record to one
//! request. The reference for the auction rules is `auction_core::AuctionMachine` fed the
//! attributed bids at their recorded positions and times.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use auction_core::AuctionMachine;
use auction_proto::msg::auction::{
    AuctionSpec, AuctionSummary, BidKind, BidRecord, Bidder, BidderName, Outcome,
};
use auction_proto::msg::client::{ClientError, ListFilter};
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation};
use auction_proto::{Amount, AuctionId, Seq, Term, Timestamp};

/// A property that failed, with what showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `agreement`, `integrity`, `durability`, `auction-rules`, `reads` or `liveness`.
    pub property: &'static str,
    /// What showed it.
    pub detail: String,
}

fn v(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

/// A bid a client sent (`Bid` is `Plain`, `MaxBid` is `Proxy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BidOp {
    pub auction: AuctionId,
    pub kind: BidKind,
    pub amount: u64,
}

/// The final result of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Answered with an outcome; `applied` is the response's applied seq.
    Ok { outcome: Outcome, applied: Seq },
    /// Refused for certain: every attempt was answered with an error that changes nothing.
    Refused(ClientError),
    /// The client gave up without knowing.
    Unknown,
}

/// One client write, from invocation to its final result.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The client (index into `History::bidders`).
    pub client: usize,
    /// Its request number.
    pub no: u64,
    /// What it asked.
    pub op: BidOp,
    /// When it was first sent (since the workload started).
    pub at: Duration,
    /// When its final result came (`None`: never).
    pub done_at: Option<Duration>,
    /// The newest applied seq the client had seen when it first sent the request.
    pub seen_before: Seq,
    /// Attempts that may have submitted the command (no definite answer, or the answer).
    pub uncertain: u32,
    /// The final result.
    pub result: OpResult,
}

/// What a read showed of an auction: `(price, leader's alias, bids)`.
pub type View = (u64, Option<String>, u32);

/// What a read shows of `s`, whoever read it: the leader by alias (`bidder 2`).
pub fn view_of(s: &AuctionSummary) -> View {
    (s.price.minor(), s.leader.as_ref().map(|l| l.alias().to_string()), s.bids)
}

/// A bidder's name as the seller is shown it (empty if the final state was read by somebody
/// else, which then attributes nothing).
fn name_of(b: &Bidder) -> &str {
    b.name().map_or("", BidderName::as_str)
}

/// One successful response a client received, in the order received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub client: usize,
    /// The response's applied seq.
    pub applied: Seq,
    /// For a `ShowAuction` read: the auction and what it showed.
    pub view: Option<(AuctionId, View)>,
}

/// What one node showed at the end, to the seller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalState {
    pub node: usize,
    pub auctions: Vec<AuctionSummary>,
    pub histories: BTreeMap<AuctionId, Vec<BidRecord>>,
}

/// An auction the setup opened, in opening order.
#[derive(Clone, Debug)]
pub struct Opened {
    pub id: AuctionId,
    pub spec: AuctionSpec,
    pub opened_at: Timestamp,
}

/// Everything the checker looks at.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The seller's name.
    pub seller: String,
    /// Bidder name of each client.
    pub bidders: Vec<String>,
    /// The auctions, in the order they were opened.
    pub auctions: Vec<Opened>,
    /// Every client's writes, each client's in request order.
    pub invocations: Vec<Invocation>,
    /// Every client's successful responses, each client's in the order received.
    pub observations: Vec<Observation>,
    /// The final state of every node.
    pub finals: Vec<FinalState>,
    /// When the heal was complete (all nodes up and agreeing on a leader), if it was.
    pub heal_at: Option<Duration>,
    /// Every request must complete within this after `max(invoked, heal_at)`.
    pub liveness_bound: Duration,
}

/// Checks every property over `h`; returns the violations (empty when all hold).
pub fn check(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    agreement(h, &mut out);
    let Some(reference) = h.finals.first() else {
        out.push(v("agreement", "no final state was read".into()));
        return out;
    };
    let maxima = attribute(h, reference, &mut out);
    rules(h, reference, &maxima, &mut out);
    reads(h, reference, &maxima, &mut out);
    liveness(h, &mut out);
    out
}

/// Agreement: every node shows the same auctions and the same history of each.
fn agreement(h: &History, out: &mut Vec<Violation>) {
    let Some(first) = h.finals.first() else { return };
    for a in &h.auctions {
        if !first.histories.contains_key(&a.id) {
            out.push(v("agreement", format!("node {} has no history of {:?}", first.node, a.id)));
        }
    }
    for f in &h.finals[1..] {
        if f.auctions != first.auctions {
            out.push(v(
                "agreement",
                format!(
                    "auction lists differ: node {} {:?} vs node {} {:?}",
                    first.node, first.auctions, f.node, f.auctions
                ),
            ));
        }
        for (id, hist) in &first.histories {
            if f.histories.get(id) != Some(hist) {
                out.push(v(
                    "agreement",
                    format!(
                        "{id:?}: node {} {:?} vs node {} {:?}",
                        first.node,
                        hist,
                        f.node,
                        f.histories.get(id)
                    ),
                ));
            }
        }
    }
}

/// Integrity and durability: attributes each history record to the one request that can have
/// produced it. Returns the maximum of each attributed record, by seq, when every record was
/// attributed (the reference replay needs them all).
fn attribute(
    h: &History,
    reference: &FinalState,
    out: &mut Vec<Violation>,
) -> Option<BTreeMap<Seq, (AuctionId, BidRecord, u64)>> {
    let mut complete = true;
    // Every record once per (bidder, seq), and each seq in one auction only.
    let mut records: BTreeMap<Seq, (AuctionId, BidRecord)> = BTreeMap::new();
    let mut count: BTreeMap<(String, Seq), usize> = BTreeMap::new();
    for (id, hist) in &reference.histories {
        for r in hist {
            *count.entry((r.bidder.to_string(), r.seq)).or_default() += 1;
            if let Some((other, _)) = records.insert(r.seq, (*id, r.clone())) {
                out.push(v("integrity", format!("{:?} appears in {other:?} and {id:?}", r.seq)));
                complete = false;
            }
        }
    }
    for ((bidder, seq), n) in count {
        if n > 1 {
            out.push(v("integrity", format!("{bidder}'s bid at {seq:?} appears {n} times")));
            complete = false;
        }
    }
    // Each client's requests in order, and the window of seqs each may have been applied at.
    let mut by_client: BTreeMap<usize, Vec<&Invocation>> = BTreeMap::new();
    for inv in &h.invocations {
        by_client.entry(inv.client).or_default().push(inv);
    }
    for list in by_client.values_mut() {
        list.sort_by_key(|i| i.no);
    }
    let mut matched: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut maxima = BTreeMap::new();
    for (seq, (auction, r)) in &records {
        let Some(client) = h.bidders.iter().position(|b| b.as_str() == name_of(&r.bidder)) else {
            out.push(v("integrity", format!("{auction:?} {seq:?}: {r:?} by no client's bidder")));
            complete = false;
            continue;
        };
        let list = by_client.get(&client).map(Vec::as_slice).unwrap_or_default();
        let window = list.iter().enumerate().find(|(i, inv)| {
            inv.seen_before < *seq && list.get(i + 1).is_none_or(|next| *seq <= next.seen_before)
        });
        let Some((_, inv)) = window else {
            out.push(v("integrity", format!("{auction:?} {seq:?}: {r:?} sent by no request")));
            complete = false;
            continue;
        };
        if inv.op.auction != *auction || inv.op.kind != r.kind {
            out.push(v(
                "integrity",
                format!("{auction:?} {seq:?}: {r:?} matches no request (the one then: {inv:?})"),
            ));
            complete = false;
            continue;
        }
        if !matched.insert((inv.client, inv.no)) {
            out.push(v("integrity", format!("request {} of {} applied twice", inv.no, r.bidder)));
            complete = false;
            continue;
        }
        match &inv.result {
            OpResult::Ok { outcome: Outcome::Accepted { price, .. }, applied } => {
                let exact = inv.uncertain <= 1;
                let at_ok = if exact { seq == applied } else { seq <= applied };
                if !at_ok || *price != r.price {
                    out.push(v(
                        "durability",
                        format!(
                            "request {} of {} acked at {applied:?} with price {price:?} \
                             (sent {} times), history has {r:?}",
                            inv.no, r.bidder, inv.uncertain
                        ),
                    ));
                }
            }
            OpResult::Ok { outcome, .. } => {
                out.push(v(
                    "durability",
                    format!(
                        "request {} of {} answered {outcome:?} but appears: {r:?}",
                        inv.no, r.bidder
                    ),
                ));
            }
            OpResult::Refused(e) => {
                out.push(v(
                    "durability",
                    format!(
                        "request {} of {} refused ({e:?}) but appears: {r:?}",
                        inv.no, r.bidder
                    ),
                ));
            }
            OpResult::Unknown => {}
        }
        maxima.insert(*seq, (*auction, r.clone(), inv.op.amount));
    }
    for inv in &h.invocations {
        if let OpResult::Ok { outcome: Outcome::Accepted { .. }, applied } = &inv.result {
            if !matched.contains(&(inv.client, inv.no)) {
                out.push(v(
                    "durability",
                    format!(
                        "request {} of client {} ({:?}) acked Accepted at {applied:?}, \
                         missing from the final history",
                        inv.no, inv.client, inv.op
                    ),
                ));
            }
        }
    }
    complete.then_some(maxima)
}

/// A reference state machine with the setup applied (seller, bidders, auctions at seqs 1..).
fn reference_machine(h: &History) -> AuctionMachine {
    let mut m = AuctionMachine::new();
    let at = h.auctions.iter().map(|a| a.opened_at).min().unwrap_or(Timestamp(0));
    let mut seq = 0;
    let mut apply = |m: &mut AuctionMachine, timestamp: Timestamp, op: Operation| {
        seq += 1;
        let payload = EntryPayload::Command(Command { origin: None, op });
        m.apply(&LogEntry { term: Term(1), seq: Seq(seq), timestamp, payload });
    };
    for name in std::iter::once(&h.seller).chain(&h.bidders) {
        let name = BidderName::new(name.as_str()).expect("a valid name");
        apply(&mut m, at, Operation::RegisterBidder { name, token_hash: [0; 32] });
    }
    let seller = BidderName::new(h.seller.as_str()).expect("a valid name");
    for a in &h.auctions {
        let op = Operation::OpenAuction { seller: seller.clone(), spec: a.spec.clone() };
        apply(&mut m, a.opened_at, op);
    }
    m
}

fn bid_entry(
    seq: Seq,
    at: Timestamp,
    auction: AuctionId,
    bidder: &str,
    amount: u64,
    kind: BidKind,
) -> LogEntry {
    let bidder = BidderName::new(bidder).expect("a valid name");
    let amount = Amount::from_minor(amount);
    let op = Operation::PlaceBid { auction, bidder, amount, kind, expected: None };
    LogEntry {
        term: Term(1),
        seq,
        timestamp: at,
        payload: EntryPayload::Command(Command { origin: None, op }),
    }
}

/// Auction rules: prices never drop; replaying the attributed bids on the reference machine
/// gives each record's price, each single-attempt rejection's answer, and the final state
/// (whose leader thereby holds the highest maximum).
fn rules(
    h: &History,
    reference: &FinalState,
    maxima: &Option<BTreeMap<Seq, (AuctionId, BidRecord, u64)>>,
    out: &mut Vec<Violation>,
) {
    for (id, hist) in &reference.histories {
        for w in hist.windows(2) {
            if w[1].price < w[0].price {
                out.push(v(
                    "auction-rules",
                    format!("{id:?} price dropped: {:?} then {:?}", w[0], w[1]),
                ));
            }
        }
    }
    let Some(maxima) = maxima else { return };
    // The highest maximum leads (ties: the earlier), independently of the reference machine.
    for s in &reference.auctions {
        let mut top: Option<(u64, &str)> = None;
        for (_, r, max) in maxima.values().filter(|(a, _, _)| *a == s.id) {
            if top.is_none_or(|(m, _)| *max > m) {
                top = Some((*max, name_of(&r.bidder)));
            }
        }
        if s.leader.as_ref().map(name_of) != top.map(|(_, b)| b) {
            out.push(v(
                "auction-rules",
                format!("{:?} led by {:?}, the highest maximum is {top:?}", s.id, s.leader),
            ));
        }
    }
    // Single-attempt rejections happened exactly at their response's seq.
    let mut rejected: BTreeMap<Seq, &Invocation> = BTreeMap::new();
    for inv in &h.invocations {
        if let OpResult::Ok { outcome: Outcome::Rejected { .. }, applied } = &inv.result {
            if inv.uncertain <= 1 && !maxima.contains_key(applied) {
                rejected.insert(*applied, inv);
            }
        }
    }
    let mut m = reference_machine(h);
    let mut events: Vec<(Seq, Option<&Invocation>)> = maxima
        .keys()
        .map(|s| (*s, None))
        .chain(rejected.iter().map(|(s, i)| (*s, Some(*i))))
        .collect();
    events.sort_by_key(|(s, _)| *s);
    let mut last_at = Timestamp(0);
    for (seq, inv) in events {
        if seq <= m.last_applied() {
            continue;
        }
        match inv {
            None => {
                let (auction, r, max) = &maxima[&seq];
                last_at = r.at;
                let e = bid_entry(seq, r.at, *auction, name_of(&r.bidder), *max, r.kind);
                let got = m.apply(&e).outcome;
                let ok = matches!(&got, Outcome::Accepted { price, .. } if *price == r.price);
                if !ok {
                    out.push(v(
                        "auction-rules",
                        format!(
                            "{auction:?} {seq:?}: {r:?} (max {max}), reference answers {got:?}"
                        ),
                    ));
                }
            }
            Some(inv) => {
                let bidder = &h.bidders[inv.client];
                let e = bid_entry(seq, last_at, inv.op.auction, bidder, inv.op.amount, inv.op.kind);
                let got = m.apply(&e).outcome;
                let OpResult::Ok { outcome, .. } = &inv.result else { continue };
                if got != *outcome {
                    out.push(v(
                        "auction-rules",
                        format!(
                            "request {} of {bidder} {:?} answered {outcome:?} at {seq:?}, \
                             reference answers {got:?}",
                            inv.no, inv.op
                        ),
                    ));
                }
            }
        }
    }
    let want: Vec<_> = m.auctions(ListFilter::All).iter().map(|s| (s.id, view_of(s))).collect();
    let got: Vec<_> = reference.auctions.iter().map(|s| (s.id, view_of(s))).collect();
    if want != got {
        out.push(v("auction-rules", format!("final auctions {got:?}, reference {want:?}")));
    }
}

/// Reads: each client's applied seqs never decrease, and what a read showed is the reference
/// state at its applied seq.
fn reads(
    h: &History,
    reference: &FinalState,
    maxima: &Option<BTreeMap<Seq, (AuctionId, BidRecord, u64)>>,
    out: &mut Vec<Violation>,
) {
    let mut seen: BTreeMap<usize, Seq> = BTreeMap::new();
    for o in &h.observations {
        let s = seen.entry(o.client).or_default();
        if o.applied < *s {
            out.push(v("reads", format!("client {} saw {:?} after {:?}", o.client, o.applied, s)));
        }
        *s = (*s).max(o.applied);
    }
    let Some(maxima) = maxima else { return };
    let mut views: Vec<&Observation> = h.observations.iter().filter(|o| o.view.is_some()).collect();
    views.sort_by_key(|o| o.applied);
    let mut m = reference_machine(h);
    let mut records = maxima.iter().peekable();
    for o in views {
        let Some((auction, view)) = &o.view else { continue };
        while let Some((seq, (a, r, max))) = records.next_if(|(s, _)| **s <= o.applied) {
            m.apply(&bid_entry(*seq, r.at, *a, name_of(&r.bidder), *max, r.kind));
        }
        let want = m.auction(*auction).map(|a| view_of(&a.summary));
        if want.as_ref() != Some(view) {
            out.push(v(
                "reads",
                format!(
                    "client {} read {auction:?} at {:?} as {view:?}, the history says {want:?}",
                    o.client, o.applied
                ),
            ));
        }
    }
    let _ = reference;
}

/// Liveness: after the heal, every request completes within the bound.
fn liveness(h: &History, out: &mut Vec<Violation>) {
    let Some(heal) = h.heal_at else { return };
    for inv in &h.invocations {
        let due = inv.at.max(heal) + h.liveness_bound;
        let late = match inv.done_at {
            Some(t) => t > due || inv.result == OpResult::Unknown,
            None => true,
        };
        if late {
            out.push(v(
                "liveness",
                format!(
                    "request {} of client {} invoked at {:?}, due {due:?}: {:?} at {:?}",
                    inv.no, inv.client, inv.at, inv.result, inv.done_at
                ),
            ));
        }
    }
}
