//! A member's side: following the leader of the term, the hold-back queue, acknowledgements
//! and installing snapshots. [`FollowerState`] lives as long as the member; the handler
//! ([`FollowerHandler`]) borrows it next to the shared [`Core`], and `Ordering` uses it for
//! leader-to-member messages it accepted from the leader of its term (never while leading).

use std::time::Instant;

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::LogEntry;
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, Seq, Term};

use crate::core::Core;
use crate::holdback::HoldBack;
use crate::log::Log;
use crate::{Action, OrderingConfig, Snapshot};

/// A snapshot being reassembled from chunks.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    pub(crate) last_included: LogPosition,
    pub(crate) members: Vec<NodeInfo>,
    pub(crate) bytes: Vec<u8>,
}

/// A member's following state.
///
/// Invariants: `matched`, when set, lies between the commit point and the last log seq; the
/// hold-back queue holds only entries after `matched`, within its bound, and is empty
/// without `matched` (always so while leading); the snapshot buffer is within its bound.
#[derive(Debug)]
pub(crate) struct FollowerState {
    /// The log up to here equals the log of the leader of the current term.
    matched: Option<Seq>,
    holdback: HoldBack,
    incoming: Option<Incoming>,
    /// The last gap asked for with a `Nack`, and when.
    nacked: Option<(Seq, Instant)>,
    /// The last `Ack` sent: its term and stored point (see `FollowerHandler::ack_if_moved`).
    last_ack: Option<(Term, Seq)>,
    /// The term in which it caught up with the leader's commit point while in sync.
    commit_learned: Option<Term>,
    /// `NewView`s and `Order`s refused by the catch-up check (for `OrderingStats`).
    refused_catch_up: u64,
}

impl FollowerState {
    /// A member restarted with `last` as its last log entry, in `term`: in sync if its log
    /// ends in that term (it can only have got such entries from that term's leader).
    pub(crate) fn new(config: &OrderingConfig, term: Term, last: LogPosition) -> Self {
        Self {
            matched: (term > Term::ZERO && last.term == term).then_some(last.seq),
            holdback: HoldBack::new(config.max_held_back),
            incoming: None,
            nacked: None,
            last_ack: None,
            commit_learned: None,
            refused_catch_up: 0,
        }
    }

    /// How many `NewView`s and `Order`s the catch-up check refused.
    pub(crate) fn refused_catch_up(&self) -> u64 {
        self.refused_catch_up
    }

    /// Where its log is known to equal the leader's, if it is in sync.
    pub(crate) fn matched(&self) -> Option<Seq> {
        self.matched
    }

    /// Whether it caught up with a commit point its leader of `term` announced.
    pub(crate) fn learned_commit_in(&self, term: Term) -> bool {
        self.commit_learned == Some(term)
    }

    /// A new term: not in sync, nothing held back, no snapshot or gap in progress.
    pub(crate) fn new_term(&mut self) {
        self.matched = None;
        self.holdback.clear();
        self.incoming = None;
        self.nacked = None;
    }

    /// This node starts leading: it follows no one.
    pub(crate) fn start_leading(&mut self) {
        self.matched = None;
        self.holdback.clear();
    }

    pub(crate) fn check_invariants(&self, config: &OrderingConfig, commit: Seq, last: Seq) {
        if let Some(m) = self.matched {
            assert!(commit <= m && m <= last, "matched {m:?} out of range");
            self.holdback.check_invariants(m);
        } else {
            assert_eq!(self.holdback.len(), 0, "holding back while unsynced");
        }
        if let Some(inc) = &self.incoming {
            assert!(inc.bytes.len() <= config.max_snapshot_bytes, "snapshot buffer");
        }
    }
}

/// The follower's inputs: the shared core and the follower state, borrowed together.
#[derive(Debug)]
pub(crate) struct FollowerHandler<'a> {
    core: &'a mut Core,
    f: &'a mut FollowerState,
}

impl<'a> FollowerHandler<'a> {
    pub(crate) fn new(core: &'a mut Core, f: &'a mut FollowerState) -> Self {
        Self { core, f }
    }

    /// `StartView`: report the log after the leader's commit point (bounded), once synced
    /// just acknowledge.
    pub(crate) fn on_start_view(&mut self, leader_commit: Seq) {
        if self.f.matched.is_some() {
            self.ack();
            return;
        }
        let last = self.core.log.last();
        let from = leader_commit.next();
        let len = last.seq.0.saturating_sub(leader_commit.0);
        let suffix = if len == 0
            || from <= self.core.log.base().seq
            || len > self.core.config.max_uncommitted as u64
        {
            Vec::new()
        } else {
            self.core.log.slice(from, last.seq, self.core.config.max_uncommitted)
        };
        let msg =
            OrderingMsg::LogState { term: self.core.term, last, commit: self.core.commit, suffix };
        self.send_leader(msg);
    }

    /// Asks the leader to bring this member in sync (a `LogState` without suffix).
    fn sync_request(&mut self) {
        let msg = OrderingMsg::LogState {
            term: self.core.term,
            last: self.core.log.last(),
            commit: self.core.commit,
            suffix: Vec::new(),
        };
        self.send_leader(msg);
    }

    fn send_leader(&mut self, msg: OrderingMsg) {
        if let Some(l) = self.core.leader.filter(|l| *l != self.core.me) {
            self.core.send(l, msg);
        }
    }

    /// Acknowledges what is both durable and known to match the leader's log.
    pub(crate) fn ack(&mut self) {
        if let Some(m) = self.f.matched {
            let stored = m.min(self.core.durable);
            self.f.last_ack = Some((self.core.term, stored));
            self.send_leader(OrderingMsg::Ack { term: self.core.term, stored });
        }
    }

    /// Acknowledges an `Order` only if that moves the acknowledged point. An `Order`'s entries
    /// are rarely durable yet, so its ack mostly repeated the previous one, and the real one
    /// follows when the store completes (`on_durable`): half of all follower-to-leader traffic.
    /// A lost ack is still repaired: every `Commit` heartbeat is acknowledged.
    fn ack_if_moved(&mut self) {
        let stored = self.f.matched.map(|m| m.min(self.core.durable));
        if stored.is_some() && self.f.last_ack != stored.map(|s| (self.core.term, s)) {
            self.ack();
        }
    }

    /// `Order`: entries of the leader's log, in any order, possibly repeated; `prev` is the
    /// leader's entry before the first of them.
    ///
    /// Only `prev` at or below `matched` can be checked: there this log equals the leader's,
    /// so a different term there means `matched` was wrong (or the message is), and the
    /// member re-syncs. Entries after a gap are held back without their `prev`: every entry
    /// comes from the one log the leader of this term appends to (it adopts the chosen log
    /// before sending anything, never truncates in its term and may not lead a term it
    /// restarted in; the queue is cleared on a term change). An entry taken from the queue at
    /// `matched + 1` therefore follows, in the leader's log, the entry this log holds at
    /// `matched`, exactly as an `Order` whose `prev` is checked.
    pub(crate) fn on_order(
        &mut self,
        prev: LogPosition,
        entries: Vec<LogEntry>,
        leader_commit: Seq,
        now: Instant,
    ) {
        let Some(mut m) = self.f.matched else {
            self.sync_request();
            return;
        };
        let contiguous = entries.first().is_none_or(|e| e.seq == prev.seq.next());
        if !contiguous || (prev.seq <= m && !self.agrees(prev)) {
            self.refuse_catch_up();
            return;
        }
        for e in entries {
            if e.term > self.core.term {
                continue;
            }
            if e.seq != m.next() {
                let _ = self.f.holdback.offer(e, m.next());
                continue;
            }
            if !self.accept_entry(e) {
                break;
            }
            self.f.matched = Some(m.next());
            m = self.drain_holdback();
        }
        self.f.matched = Some(m);
        self.follow_commit(leader_commit);
        self.nack_gap(now);
        self.ack_if_moved();
    }

    /// Moves held-back entries that became contiguous into the log; returns the new `matched`.
    fn drain_holdback(&mut self) -> Seq {
        let mut m = self.f.matched.unwrap_or(self.core.commit);
        while let Some(e) = self.f.holdback.take(m.next()) {
            if !self.accept_entry(e) {
                break;
            }
            m = m.next();
        }
        self.f.matched = Some(m);
        m
    }

    /// `Commit` (heartbeat).
    pub(crate) fn on_commit(&mut self, leader_commit: Seq, _now: Instant) {
        if self.f.matched.is_none() {
            self.sync_request();
            return;
        }
        self.follow_commit(leader_commit);
        self.ack();
    }

    /// `NewView`: adopt the leader's log from `from` on (conflicting entries are replaced),
    /// but only if this log holds the leader's entry before it, `prev` (the catch-up check).
    pub(crate) fn on_new_view(
        &mut self,
        from: Seq,
        prev: LogPosition,
        entries: Vec<LogEntry>,
        leader_commit: Seq,
        now: Instant,
    ) {
        if from != prev.seq.next() {
            self.refuse_catch_up();
            return;
        }
        if self.f.matched.is_some() {
            self.on_order(prev, entries, leader_commit, now);
            return;
        }
        if !self.agrees(prev) {
            self.refuse_catch_up();
            return;
        }
        // This log equals the leader's up to `prev` (log matching), and up to the commit
        // point (agreed by every log).
        let mut m = prev.seq;
        for e in entries {
            if e.seq != m.next() || e.term > self.core.term || !self.accept_entry(e) {
                break;
            }
            m = m.next();
        }
        self.f.matched = Some(m.max(self.core.commit));
        self.follow_commit(leader_commit);
        self.ack();
    }

    /// Whether this log equals the leader's up to `prev`, the leader's entry before what it
    /// sends: this log holds an entry of `prev.term` at `prev.seq`, or a snapshot of
    /// committed state covers `prev.seq` (at the snapshot point itself its term must match),
    /// or `prev` is the start of the empty log. A gap (`prev.seq` beyond the end) is no.
    /// A different term at or below the commit point is a safety bug (committed entries are
    /// in every later leader's log), asserted unless one is planted on purpose: with the
    /// test-only `skip_view_change` a leader may lack committed entries, and the simulation's
    /// checker, not this assertion, must catch what follows.
    fn agrees(&self, prev: LogPosition) -> bool {
        if prev.seq == Seq::ZERO || prev.seq < self.core.log.base().seq {
            return true;
        }
        let held = self.core.log.term_at(prev.seq);
        debug_assert!(
            prev.seq > self.core.commit
                || held == Some(prev.term)
                || self.core.faults.skips_view_change(),
            "the leader's log differs at committed {:?}",
            prev.seq
        );
        held == Some(prev.term)
    }

    /// A catch-up message that does not build on this log: nothing of it is taken, nothing
    /// is truncated, and the log is no longer believed equal to the leader's beyond the
    /// commit point. The sync request makes the leader answer with a `NewView` from the
    /// commit point on, which every log agrees on, so that one builds on this log.
    fn refuse_catch_up(&mut self) {
        self.f.refused_catch_up += 1;
        self.f.matched = None;
        self.f.holdback.clear();
        self.sync_request();
    }

    /// Puts the leader's entry at its seq (the next one to match): keeps an identical entry,
    /// replaces a conflicting uncommitted one. Returns `false` if it cannot (a bug elsewhere).
    fn accept_entry(&mut self, e: LogEntry) -> bool {
        if e.seq <= self.core.log.base().seq {
            return true;
        }
        match self.core.log.term_at(e.seq) {
            Some(t) if t == e.term => true,
            Some(_) if e.seq <= self.core.commit => {
                debug_assert!(false, "leader overwrites committed {:?}", e.seq);
                false
            }
            Some(_) => {
                self.core.truncate(e.seq);
                self.core.append(e);
                true
            }
            None if e.seq == self.core.log.last().seq.next() => {
                self.core.append(e);
                true
            }
            None => false,
        }
    }

    fn follow_commit(&mut self, leader_commit: Seq) {
        if let Some(m) = self.f.matched {
            self.core.commit = self.core.commit.max(leader_commit.min(m));
            // Ready once it holds everything the leader said committed (then for the rest of
            // the term: a follower a few entries behind under load does not flap).
            if self.core.commit >= leader_commit {
                self.f.commit_learned = Some(self.core.term);
            }
        }
    }

    /// Asks for the first gap before held-back entries (at most once per tick per gap).
    fn nack_gap(&mut self, now: Instant) {
        let Some(m) = self.f.matched else { return };
        let Some((from, to)) = self.f.holdback.gap(m.next()) else { return };
        let recent = self.f.nacked.is_some_and(|(s, at)| {
            s == from && now.saturating_duration_since(at) < self.core.config.tick
        });
        if !recent {
            self.f.nacked = Some((from, now));
            self.send_leader(OrderingMsg::Nack { term: self.core.term, from, to });
        }
    }

    /// A `Snapshot` chunk: reassembled in order; the last one installs it.
    pub(crate) fn on_snapshot_chunk(&mut self, part: Incoming, offset: u64, done: bool) {
        if part.last_included.seq <= self.core.commit {
            if self.f.matched.is_none() {
                self.sync_request();
            }
            self.ack();
            return;
        }
        let max = self.core.config.max_snapshot_bytes;
        match self.f.incoming.as_mut() {
            _ if offset == 0 => self.f.incoming = Some(part),
            Some(inc)
                if inc.last_included == part.last_included
                    && inc.bytes.len() as u64 == offset
                    && inc.bytes.len() + part.bytes.len() <= max =>
            {
                inc.bytes.extend_from_slice(&part.bytes);
            }
            _ => return,
        }
        if self.f.incoming.as_ref().is_some_and(|inc| inc.bytes.len() > max) {
            self.f.incoming = None;
            return;
        }
        if done {
            if let Some(inc) = self.f.incoming.take() {
                self.install(inc);
            }
        }
    }

    /// Installs a complete snapshot, unless the log already holds its last entry: then the
    /// log up to there equals the leader's (log matching) and nothing is dropped, since the
    /// entries after it may be acknowledged already.
    fn install(&mut self, inc: Incoming) {
        let point = inc.last_included;
        if self.core.log.term_at(point.seq) == Some(point.term) {
            self.f.matched = Some(self.f.matched.unwrap_or(self.core.commit).max(point.seq));
            self.drain_holdback();
            self.ack();
            return;
        }
        self.replace_with_snapshot(inc);
        self.ack();
    }

    fn replace_with_snapshot(&mut self, inc: Incoming) {
        let Incoming { last_included, members, bytes } = inc;
        let snapshot = Snapshot { last_included, members: members.clone(), bytes };
        self.core.write = None;
        self.core.log = Log::from_snapshot(last_included, members);
        self.core.durable = Seq::ZERO;
        for (_, upto) in &mut self.core.stores {
            *upto = Seq::ZERO;
        }
        let id = self.core.issue_store(last_included.seq);
        self.core.commit = last_included.seq;
        self.core.applied = last_included.seq;
        self.f.matched = Some(last_included.seq);
        self.f.holdback.clear();
        self.core.actions.push_back(Action::InstallSnapshot { id, snapshot: snapshot.clone() });
        self.core.snapshot = Some(snapshot);
    }

    /// A member's periodic work: re-ask for gaps (the forwarded proposals are resent by
    /// the caller first).
    pub(crate) fn tick(&mut self, now: Instant) {
        self.nack_gap(now);
    }
}
