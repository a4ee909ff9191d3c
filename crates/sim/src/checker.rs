//! The history checker: each property by name.

use std::collections::{BTreeMap, BTreeSet};

use auction_core::AuctionMachine;
use auction_proto::msg::auction::{AuctionEvent, Outcome};
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation, RequestId};
use auction_proto::{AuctionId, Seq};

use crate::history::{Applied, History, OpResult};

/// A property that failed, with what showed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property's name (`agreement`, `delivery`, `integrity`, `durability`,
    /// `one-leader-per-term`, `commit-majority`, `auction-rules`, `state-agreement`,
    /// `reads`, `liveness`).
    pub property: &'static str,
    /// Details.
    pub detail: String,
}

fn v(property: &'static str, detail: String) -> Violation {
    Violation { property, detail }
}

/// Checks every property over `h`; returns the violations (empty when all hold).
pub fn check(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let log = agreement(h, &mut out);
    delivery(h, &mut out);
    let outcomes = replay(&log, h, &mut out);
    integrity(h, &log, &outcomes, &mut out);
    durability(h, &log, &outcomes, &mut out);
    for (term, leaders) in &h.leaders {
        if leaders.len() > 1 {
            out.push(v("one-leader-per-term", format!("{term:?}: {leaders:?}")));
        }
    }
    for (seq, held, of) in &h.unbacked_commits {
        out.push(v("commit-majority", format!("{seq:?} applied while {held} of {of} held it")));
    }
    reads(h, &log, &mut out);
    liveness(h, &mut out);
    out
}

/// Agreement: every applied sequence is a prefix of one log. Returns that log.
fn agreement(h: &History, out: &mut Vec<Violation>) -> BTreeMap<Seq, LogEntry> {
    let mut log: BTreeMap<Seq, LogEntry> = BTreeMap::new();
    for (who, entries) in &h.applied {
        for a in entries {
            let Applied::Entry(e) = a else { continue };
            match log.get(&e.seq) {
                Some(first) if first != e => {
                    out.push(v("agreement", format!("{who:?} at {:?}: {e:?} vs {first:?}", e.seq)));
                }
                Some(_) => {}
                None => {
                    log.insert(e.seq, e.clone());
                }
            }
        }
    }
    log
}

/// Delivery: each server incarnation applies seqs contiguously from its restore point, once.
fn delivery(h: &History, out: &mut Vec<Violation>) {
    for (who, entries) in &h.applied {
        let mut next = h.restored.get(who).copied().unwrap_or(Seq::ZERO).next();
        for a in entries {
            match a {
                Applied::Installed(at) if *at >= next => next = at.next(),
                Applied::Entry(e) if e.seq == next => next = next.next(),
                _ => {
                    out.push(v("delivery", format!("{who:?} did {a:?}, expected {next:?}")));
                    break;
                }
            }
        }
    }
}

/// Replays the agreed log on a reference machine (from seq 1, contiguous) and checks the
/// auction rules. Returns each seq's outcome.
fn replay(
    log: &BTreeMap<Seq, LogEntry>,
    h: &History,
    out: &mut Vec<Violation>,
) -> BTreeMap<Seq, Outcome> {
    let mut m = AuctionMachine::new();
    let mut outcomes = BTreeMap::new();
    let mut prices: BTreeMap<AuctionId, u64> = BTreeMap::new();
    let mut ended: BTreeSet<AuctionId> = BTreeSet::new();
    let mut maxes: BTreeMap<AuctionId, BTreeMap<String, u64>> = BTreeMap::new();
    let mut first: BTreeMap<RequestId, Outcome> = BTreeMap::new();
    let mut rules = |what: String| out.push(v("auction-rules", what));
    let mut expect = Seq(1);
    for (seq, e) in log {
        if *seq != expect {
            break; // a gap: only a prefix is known applied everywhere
        }
        expect = expect.next();
        let applied = m.apply(e);
        let cmd = match &e.payload {
            EntryPayload::Command(c) => Some(c),
            _ => None,
        };
        let retry = cmd.and_then(|c| c.origin).is_some_and(|id| first.contains_key(&id));
        if let Some(Command { origin: Some(id), .. }) = cmd {
            match first.get(id) {
                Some(o) if !idempotent(o, &applied.outcome) || !applied.events.is_empty() => {
                    rules(format!("retry of {id:?} at {seq:?} not idempotent"));
                }
                Some(_) => {}
                None => {
                    first.insert(*id, applied.outcome.clone());
                }
            }
        }
        if let (Some(c), Outcome::Accepted { auction, .. } | Outcome::Bought { auction, .. }) =
            (cmd, &applied.outcome)
        {
            if ended.contains(auction) && !retry {
                rules(format!("{auction:?} accepted a bid at {seq:?} after it ended"));
            }
            if let Operation::PlaceBid { bidder, amount, .. } = &c.op {
                let mx = maxes.entry(*auction).or_default().entry(bidder.to_string()).or_default();
                *mx = (*mx).max(amount.minor());
            }
        }
        for ev in &applied.events {
            // As the seller sees it: the winner by name, to compare with the bidders' maxima.
            match ev.for_viewer(Some(ev.seller())) {
                AuctionEvent::NewHighBid { auction, price, .. } => {
                    let p = prices.entry(auction).or_default();
                    if price.minor() < *p {
                        rules(format!("{auction:?} price dropped at {seq:?}"));
                    }
                    *p = price.minor();
                }
                AuctionEvent::Closed { auction, winner, .. } => {
                    ended.insert(auction);
                    if let Some(w) = winner.as_ref().and_then(|w| w.name()) {
                        let bids = maxes.get(&auction).cloned().unwrap_or_default();
                        let top = bids.values().copied().max().unwrap_or(0);
                        if bids.get(w.as_str()).copied().unwrap_or(0) < top {
                            rules(format!("{auction:?} won by {w} without the highest max"));
                        }
                    }
                }
                _ => {}
            }
        }
        if matches!(applied.outcome, Outcome::Bought { .. } | Outcome::Cancelled { .. }) {
            if let Some(Operation::BuyNow { auction, .. } | Operation::Cancel { auction, .. }) =
                cmd.map(|c| &c.op)
            {
                ended.insert(*auction);
            }
        }
        outcomes.insert(*seq, applied.outcome);
    }
    // State agreement: every server's final state equals the reference at its applied seq.
    for (i, applied, bytes) in &h.final_states {
        if *applied == m.last_applied() && *bytes != m.snapshot() {
            out.push(v("state-agreement", format!("server {i} differs at {applied:?}")));
        }
    }
    outcomes
}

/// A retry answers the first outcome, or (beyond the exactly-once window) `RequestExpired`.
fn idempotent(first: &Outcome, again: &Outcome) -> bool {
    use auction_proto::msg::auction::RejectReason;
    first == again || matches!(again, Outcome::Rejected { reason: RejectReason::RequestExpired })
}

/// Integrity: every applied command with an origin was sent by a client, with that operation;
/// commands without an origin are `Close`s.
fn integrity(
    h: &History,
    log: &BTreeMap<Seq, LogEntry>,
    _outcomes: &BTreeMap<Seq, Outcome>,
    out: &mut Vec<Violation>,
) {
    let sent: BTreeMap<RequestId, &Operation> =
        h.invocations.iter().map(|i| (i.request, &i.op)).collect();
    for (seq, e) in log {
        let EntryPayload::Command(c) = &e.payload else { continue };
        match c.origin {
            Some(id) if sent.get(&id) != Some(&&c.op) => {
                out.push(v("integrity", format!("{seq:?}: {id:?} was never sent as {:?}", c.op)));
            }
            None if !matches!(c.op, Operation::Close { .. }) => {
                out.push(v("integrity", format!("{seq:?}: command without origin {:?}", c.op)));
            }
            _ => {}
        }
    }
}

/// Durability: every acknowledged request is in the log at its acknowledged position with the
/// acknowledged outcome; no request failed for certain appears.
fn durability(
    h: &History,
    log: &BTreeMap<Seq, LogEntry>,
    outcomes: &BTreeMap<Seq, Outcome>,
    out: &mut Vec<Violation>,
) {
    let origins: BTreeSet<RequestId> = log
        .values()
        .filter_map(|e| match &e.payload {
            EntryPayload::Command(c) => c.origin,
            _ => None,
        })
        .collect();
    for inv in &h.invocations {
        match &inv.result {
            OpResult::Ok { seq, outcome } => {
                let at = log.get(seq).and_then(|e| match &e.payload {
                    EntryPayload::Command(c) => c.origin,
                    _ => None,
                });
                if at != Some(inv.request) {
                    let msg = format!("{:?} acked at {seq:?}, log holds {:?}", inv.request, at);
                    out.push(v("durability", msg));
                } else if outcomes.get(seq).is_some_and(|o| o != outcome) {
                    let msg = format!(
                        "{:?} acked {outcome:?}, applied {:?}",
                        inv.request,
                        outcomes.get(seq)
                    );
                    out.push(v("durability", msg));
                }
            }
            OpResult::Failed if origins.contains(&inv.request) => {
                out.push(v("durability", format!("{:?} failed but was applied", inv.request)));
            }
            _ => {}
        }
    }
}

/// Reads: a client never reads a state older than one it has seen, and what it read is the
/// reference state at that seq.
fn reads(h: &History, log: &BTreeMap<Seq, LogEntry>, out: &mut Vec<Violation>) {
    let mut seen: BTreeMap<usize, Seq> = BTreeMap::new();
    for r in &h.reads {
        let s = seen.entry(r.client).or_default();
        if r.applied < *s {
            out.push(v("reads", format!("client {} read {:?} after {:?}", r.client, r.applied, s)));
        }
        *s = (*s).max(r.applied);
    }
    let mut by_seq: Vec<_> = h.reads.iter().collect();
    by_seq.sort_by_key(|r| r.applied);
    let mut m = AuctionMachine::new();
    let mut seq = Seq(1);
    for r in by_seq {
        while seq <= r.applied {
            let Some(e) = log.get(&seq) else { return };
            m.apply(e);
            seq = seq.next();
        }
        // As the reader's server renders it: for the reader logged in ("you" when it leads),
        // or for an anonymous session (a read sent before its login went through).
        let view = |viewer| {
            m.auction_for(r.auction, viewer).map(|v| {
                (v.summary.price.minor(), v.summary.leader.map(|l| l.to_string()), v.summary.bids)
            })
        };
        if view(Some(&r.reader)) != r.view && view(None) != r.view {
            out.push(v(
                "reads",
                format!("client {} read {:?} at {:?}", r.client, r.view, r.applied),
            ));
        }
    }
}

/// Liveness: after the heal (a majority up), every request completes within the bound.
fn liveness(h: &History, out: &mut Vec<Violation>) {
    if !h.majority_up {
        return;
    }
    for inv in &h.invocations {
        let due = inv.at.max(h.heal_at) + h.liveness_bound;
        let late = match inv.done_at {
            Some(t) => t > due,
            None => true,
        };
        if late && inv.result != OpResult::Failed {
            out.push(v(
                "liveness",
                format!("{:?} invoked at {:?}: {:?}", inv.request, inv.at, inv.result),
            ));
        }
    }
}
