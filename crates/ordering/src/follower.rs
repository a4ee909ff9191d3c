//! A member's side: following the leader of the term, the hold-back queue, acknowledgements,
//! forwarding proposals and installing snapshots.

use std::time::Instant;

use auction_proto::msg::log::{Command, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, NodeId, Seq, Term};

use crate::core::{Forwarded, Incoming, Ordering};
use crate::log::Log;
use crate::{Action, Bound, OrderingError, Snapshot};

impl Ordering {
    /// Checks a leader-to-member message: refuses older terms (telling the sender), follows a
    /// higher term's leader, and refuses a second leader in one term.
    pub(crate) fn accept_leader(&mut self, from: NodeId, term: Term, now: Instant) -> bool {
        if term < self.term {
            self.send(from, OrderingMsg::NotLeader { term: self.term, leader: self.leader });
            return false;
        }
        if term > self.term {
            self.observe_term(term, Some(from));
            self.resend_forwarded(now, true);
            return true;
        }
        match self.leader {
            Some(l) => l == from,
            None if self.leading.is_none() => {
                self.leader = Some(from);
                self.resend_forwarded(now, true);
                true
            }
            None => false,
        }
    }

    /// `StartView`: report the log after the leader's commit point (bounded), once synced
    /// just acknowledge.
    pub(crate) fn on_start_view(&mut self, leader_commit: Seq) {
        if self.matched.is_some() {
            self.ack();
            return;
        }
        let last = self.log.last();
        let from = leader_commit.next();
        let len = last.seq.0.saturating_sub(leader_commit.0);
        let suffix = if len == 0
            || from <= self.log.base().seq
            || len > self.config.max_uncommitted as u64
        {
            Vec::new()
        } else {
            self.log.slice(from, last.seq, self.config.max_uncommitted)
        };
        let msg = OrderingMsg::LogState { term: self.term, last, commit: self.commit, suffix };
        self.send_leader(msg);
    }

    /// Asks the leader to bring this member in sync (a `LogState` without suffix).
    fn sync_request(&mut self) {
        let msg = OrderingMsg::LogState {
            term: self.term,
            last: self.log.last(),
            commit: self.commit,
            suffix: Vec::new(),
        };
        self.send_leader(msg);
    }

    fn send_leader(&mut self, msg: OrderingMsg) {
        if let Some(l) = self.leader.filter(|l| *l != self.me) {
            self.send(l, msg);
        }
    }

    /// Acknowledges what is both durable and known to match the leader's log.
    pub(crate) fn ack(&mut self) {
        if let Some(m) = self.matched {
            let stored = m.min(self.durable);
            self.last_ack = Some((self.term, stored));
            self.send_leader(OrderingMsg::Ack { term: self.term, stored });
        }
    }

    /// Acknowledges an `Order` only if that moves the acknowledged point. An `Order`'s entries
    /// are rarely durable yet, so its ack mostly repeated the previous one, and the real one
    /// follows when the store completes (`on_durable`): half of all follower-to-leader traffic.
    /// A lost ack is still repaired: every `Commit` heartbeat is acknowledged.
    fn ack_if_moved(&mut self) {
        let stored = self.matched.map(|m| m.min(self.durable));
        if stored.is_some() && self.last_ack != stored.map(|s| (self.term, s)) {
            self.ack();
        }
    }

    /// Writes became durable.
    pub(crate) fn on_durable(&mut self, _now: Instant) {
        if self.leading.is_some() {
            self.advance_commit();
        } else {
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
        let Some(mut m) = self.matched else {
            self.sync_request();
            return;
        };
        let contiguous = entries.first().is_none_or(|e| e.seq == prev.seq.next());
        if !contiguous || (prev.seq <= m && !self.agrees(prev)) {
            self.refuse_catch_up();
            return;
        }
        for e in entries {
            if e.term > self.term {
                continue;
            }
            if e.seq != m.next() {
                let _ = self.holdback.offer(e, m.next());
                continue;
            }
            if !self.accept_entry(e) {
                break;
            }
            self.matched = Some(m.next());
            m = self.drain_holdback();
        }
        self.matched = Some(m);
        self.follow_commit(leader_commit);
        self.nack_gap(now);
        self.ack_if_moved();
    }

    /// Moves held-back entries that became contiguous into the log; returns the new `matched`.
    fn drain_holdback(&mut self) -> Seq {
        let mut m = self.matched.unwrap_or(self.commit);
        while let Some(e) = self.holdback.take(m.next()) {
            if !self.accept_entry(e) {
                break;
            }
            m = m.next();
        }
        self.matched = Some(m);
        m
    }

    /// `Commit` (heartbeat).
    pub(crate) fn on_commit(&mut self, leader_commit: Seq, _now: Instant) {
        if self.matched.is_none() {
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
        if self.matched.is_some() {
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
            if e.seq != m.next() || e.term > self.term || !self.accept_entry(e) {
                break;
            }
            m = m.next();
        }
        self.matched = Some(m.max(self.commit));
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
        if prev.seq == Seq::ZERO || prev.seq < self.log.base().seq {
            return true;
        }
        let held = self.log.term_at(prev.seq);
        debug_assert!(
            prev.seq > self.commit || held == Some(prev.term) || self.faults.skip_view_change,
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
        self.matched = None;
        self.holdback.clear();
        self.sync_request();
    }

    /// Puts the leader's entry at its seq (the next one to match): keeps an identical entry,
    /// replaces a conflicting uncommitted one. Returns `false` if it cannot (a bug elsewhere).
    fn accept_entry(&mut self, e: LogEntry) -> bool {
        if e.seq <= self.log.base().seq {
            return true;
        }
        match self.log.term_at(e.seq) {
            Some(t) if t == e.term => true,
            Some(_) if e.seq <= self.commit => {
                debug_assert!(false, "leader overwrites committed {:?}", e.seq);
                false
            }
            Some(_) => {
                self.truncate(e.seq);
                self.append(e);
                true
            }
            None if e.seq == self.log.last().seq.next() => {
                self.append(e);
                true
            }
            None => false,
        }
    }

    fn follow_commit(&mut self, leader_commit: Seq) {
        if let Some(m) = self.matched {
            self.commit = self.commit.max(leader_commit.min(m));
            // Ready once it holds everything the leader said committed (then for the rest of
            // the term: a follower a few entries behind under load does not flap).
            if self.commit >= leader_commit {
                self.commit_learned = Some(self.term);
            }
        }
    }

    /// Asks for the first gap before held-back entries (at most once per tick per gap).
    fn nack_gap(&mut self, now: Instant) {
        let Some(m) = self.matched else { return };
        let Some((from, to)) = self.holdback.gap(m.next()) else { return };
        let recent = self.nacked.is_some_and(|(s, at)| {
            s == from && now.saturating_duration_since(at) < self.config.tick
        });
        if !recent {
            self.nacked = Some((from, now));
            self.send_leader(OrderingMsg::Nack { term: self.term, from, to });
        }
    }

    /// A `Snapshot` chunk: reassembled in order; the last one installs it.
    pub(crate) fn on_snapshot_chunk(&mut self, part: Incoming, offset: u64, done: bool) {
        if part.last_included.seq <= self.commit {
            if self.matched.is_none() {
                self.sync_request();
            }
            self.ack();
            return;
        }
        let max = self.config.max_snapshot_bytes;
        match self.incoming.as_mut() {
            _ if offset == 0 => self.incoming = Some(part),
            Some(inc)
                if inc.last_included == part.last_included
                    && inc.bytes.len() as u64 == offset
                    && inc.bytes.len() + part.bytes.len() <= max =>
            {
                inc.bytes.extend_from_slice(&part.bytes);
            }
            _ => return,
        }
        if self.incoming.as_ref().is_some_and(|inc| inc.bytes.len() > max) {
            self.incoming = None;
            return;
        }
        if done {
            if let Some(inc) = self.incoming.take() {
                self.install(inc);
            }
        }
    }

    /// Installs a complete snapshot, unless the log already holds its last entry: then the
    /// log up to there equals the leader's (log matching) and nothing is dropped, since the
    /// entries after it may be acknowledged already.
    fn install(&mut self, inc: Incoming) {
        let point = inc.last_included;
        if self.log.term_at(point.seq) == Some(point.term) {
            self.matched = Some(self.matched.unwrap_or(self.commit).max(point.seq));
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
        self.write = None;
        self.log = Log::from_snapshot(last_included, members);
        self.durable = Seq::ZERO;
        for (_, upto) in &mut self.stores {
            *upto = Seq::ZERO;
        }
        let id = self.issue_store(last_included.seq);
        self.commit = last_included.seq;
        self.applied = last_included.seq;
        self.matched = Some(last_included.seq);
        self.holdback.clear();
        self.actions.push_back(Action::InstallSnapshot { id, snapshot: snapshot.clone() });
        self.snapshot = Some(snapshot);
    }

    /// `NotLeader`: learn a higher term or the leader's identity.
    pub(crate) fn on_not_leader(&mut self, term: Term, leader: Option<NodeId>, now: Instant) {
        let hint = leader.filter(|l| *l != self.me);
        if term > self.term {
            self.observe_term(term, hint);
            self.resend_forwarded(now, true);
        } else if term == self.term && self.leader.is_none() && self.leading.is_none() {
            if let Some(l) = hint {
                self.leader = Some(l);
                self.resend_forwarded(now, true);
            }
        }
    }

    /// A proposal at a member that does not lead: tracked until delivered, sent to the leader.
    pub(crate) fn forward(&mut self, cmd: Command, now: Instant) -> Result<(), OrderingError> {
        let leader = self.leader.filter(|l| *l != self.me);
        let Some(id) = cmd.origin else {
            let Some(l) = leader else {
                return Err(OrderingError::Unavailable { term: self.term });
            };
            self.send(l, OrderingMsg::Propose { term: self.term, commands: vec![cmd] });
            return Ok(());
        };
        if self.forwarded.contains_key(&id) {
            return Ok(());
        }
        if self.forwarded.len() >= self.config.max_pending {
            let limit = self.config.max_pending;
            return Err(OrderingError::Overloaded { bound: Bound::Pending, limit });
        }
        let mut f = Forwarded { cmd: cmd.clone(), seen: false, sent_at: None };
        if let Some(l) = leader {
            f.sent_at = Some(now);
            self.send(l, OrderingMsg::Propose { term: self.term, commands: vec![cmd] });
        }
        self.forwarded.insert(id, f);
        Ok(())
    }

    /// Resends tracked proposals to the leader: all of them on a leader change (`all`), else
    /// those not seen sequenced and not sent within the last tick.
    pub(crate) fn resend_forwarded(&mut self, now: Instant, all: bool) {
        let Some(l) = self.leader.filter(|l| *l != self.me) else { return };
        let tick = self.config.tick;
        let mut cmds = Vec::new();
        for f in self.forwarded.values_mut() {
            let stale = f.sent_at.is_none_or(|at| now.saturating_duration_since(at) >= tick);
            if all || (!f.seen && stale) {
                f.sent_at = Some(now);
                cmds.push(f.cmd.clone());
            }
        }
        let batches: Vec<Vec<Command>> =
            cmds.chunks(self.config.max_batch.max(1)).map(<[Command]>::to_vec).collect();
        for commands in batches {
            self.send(l, OrderingMsg::Propose { term: self.term, commands });
        }
    }

    /// A member's periodic work: resend proposals, re-ask for gaps.
    pub(crate) fn follower_tick(&mut self, now: Instant) {
        self.resend_forwarded(now, false);
        self.nack_gap(now);
    }
}
