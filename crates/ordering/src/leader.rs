//! The leader's side: view change, sequencing, replication progress and majority commit.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use auction_proto::msg::log::{Command, ConfigChange, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, NodeId, Seq, Term};

use crate::core::{Forwarded, Ordering};
use crate::log::{apply_change, is_majority};
use crate::{Action, Bound, OrderingConfig, OrderingError};

/// Where the leader is in its term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Collecting `LogState` from a majority (the leader's own included).
    Gathering { states: BTreeMap<NodeId, Gathered> },
    /// The chosen log is adopted and a `Noop` of this term sequenced at `noop`; new commands
    /// wait until it commits (then a majority holds the chosen log).
    Adopting { noop: Seq },
    /// Sequencing.
    Active,
}

/// One member's answer to `StartView`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gathered {
    pub(crate) last: LogPosition,
    pub(crate) commit: Seq,
    /// Its entries after the leader's commit point; `None` if it could not send them all.
    pub(crate) suffix: Option<Vec<LogEntry>>,
}

/// What the leader knows of one other member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// It acknowledged holding the leader's log up to here (durably), in this term.
    pub(crate) matched: Seq,
    /// Entries up to here were sent (go-back-N: reset to `matched` when acks stall).
    pub(crate) sent: Seq,
    /// It adopted (or was sent) this term's view; until then it is asked for its log state.
    pub(crate) synced: bool,
    /// When it was last heard from.
    pub(crate) heard: Option<Instant>,
    /// `matched` at the previous tick, to notice stalls.
    pub(crate) matched_at_tick: Seq,
    /// The highest commit point sent to it (in an `Order` or a `Commit`).
    pub(crate) commit_sent: Seq,
}

/// The leader's state for its term.
///
/// Invariants: `pending.len() <= max_pending`; every progress's `matched` is at most the last
/// log seq; `Adopting { noop }` names a seq in the log after the commit point's start.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    pub(crate) phase: Phase,
    pub(crate) since: Instant,
    /// The commit point when the view change began (what `StartView` announced).
    pub(crate) gather_commit: Seq,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Proposals received during the view change, sequenced once active.
    pub(crate) pending: VecDeque<Command>,
    /// Servers outside the configuration it replicates to, and since when each is caught up.
    pub(crate) learners: crate::learners::Learners,
    pub(crate) unavailable: bool,
    /// `QuorumLost` was reported for the current stretch of silence.
    pub(crate) quorum_lost: bool,
}

impl LeaderState {
    /// Whether the view change is over.
    pub(crate) fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    pub(crate) fn check_invariants(&self, config: &OrderingConfig, last: Seq, commit: Seq) {
        assert!(self.pending.len() <= config.max_pending, "leader pending over bound");
        assert!(self.learners.len() <= crate::MAX_LEARNERS, "learners over bound");
        assert!(self.progress.values().all(|p| p.matched <= last), "progress beyond log");
        if let Phase::Adopting { noop } = self.phase {
            assert!(noop <= last && noop > self.gather_commit.min(commit), "noop position");
        }
    }
}

impl Ordering {
    /// Becomes leader of `self.term`: starts the view change.
    pub(crate) fn start_leading(&mut self, now: Instant) {
        let own = Gathered { last: self.log.last(), commit: self.commit, suffix: Some(Vec::new()) };
        let mut pending: VecDeque<Command> = VecDeque::new();
        for (_, f) in std::mem::take(&mut self.forwarded) {
            pending.push_back(f.cmd);
        }
        self.matched = None;
        self.holdback.clear();
        self.leading = Some(LeaderState {
            phase: Phase::Gathering { states: BTreeMap::from([(self.me, own)]) },
            since: now,
            gather_commit: self.commit,
            progress: BTreeMap::new(),
            pending,
            learners: BTreeMap::new(),
            unavailable: false,
            quorum_lost: false,
        });
        let members: Vec<NodeId> = self.log.members().iter().map(|m| m.node).collect();
        let me = self.me;
        for n in members.into_iter().filter(|n| *n != me) {
            self.send(n, OrderingMsg::StartView { term: self.term, commit: self.commit });
        }
        self.try_finish_gather(now);
    }

    /// Stops leading; pending proposals go back to the forward table for the next leader.
    pub(crate) fn stop_leading(&mut self) {
        if let Some(ls) = self.leading.take() {
            for cmd in ls.pending {
                if let Some(id) = cmd.origin {
                    if self.forwarded.len() < self.config.max_pending {
                        self.forwarded.insert(id, Forwarded { cmd, seen: false, sent_at: None });
                    }
                }
            }
        }
        self.leader = None;
        self.no_lead_upto = self.no_lead_upto.max(self.term);
    }

    /// A member's `LogState`: a view-change answer, or later a request to be brought in sync.
    pub(crate) fn on_log_state(
        &mut self,
        from: NodeId,
        term: Term,
        last: LogPosition,
        commit: Seq,
        suffix: Vec<LogEntry>,
        now: Instant,
    ) {
        if !self.member_msg_term(term) {
            return;
        }
        let Some(ls) = self.leading.as_mut() else { return };
        ls.progress.entry(from).or_default().heard = Some(now);
        let gc = ls.gather_commit;
        let member = self.log.is_member(from);
        if let Phase::Gathering { states } = &mut ls.phase {
            if !member {
                // A learner's log never decides the view change; it is synced afterwards.
                return;
            }
            let complete = last.seq <= gc
                || (suffix.first().map(|e| e.seq) == Some(gc.next())
                    && suffix.last().map(|e| e.seq) == Some(last.seq));
            let suffix = complete.then_some(suffix);
            states.insert(from, Gathered { last, commit, suffix });
            self.try_finish_gather(now);
        } else {
            self.send_new_view(from, commit);
        }
    }

    /// Checks a member-to-leader message's term: a higher one deposes this node.
    fn member_msg_term(&mut self, term: Term) -> bool {
        if term > self.term {
            self.observe_term(term, None);
            return false;
        }
        term == self.term
    }

    /// Ends the view change once a majority answered: adopts the best log, sequences a `Noop`.
    fn try_finish_gather(&mut self, now: Instant) {
        let Some(ls) = self.leading.as_ref() else { return };
        let Phase::Gathering { states } = &ls.phase else { return };
        let skip = self.faults.skip_view_change;
        if !skip && !is_majority(self.log.members(), |n| states.contains_key(&n)) {
            return;
        }
        let me = self.me;
        let chosen = match skip {
            true => states.get_key_value(&me),
            false => states.iter().max_by_key(|(n, g)| (g.last, **n == me)),
        };
        let Some((&best, chosen)) = chosen else {
            return;
        };
        let Some(suffix) = chosen.suffix.clone() else {
            self.actions.push_back(Action::Abdicate { term: self.term, ahead: best });
            self.stop_leading();
            return;
        };
        let best_last = chosen.last;
        let gather_commit = ls.gather_commit;
        // The chosen log's configuration must also have answered by a majority.
        let mut members = self.log.members_at(ls.gather_commit).to_vec();
        for e in &suffix {
            if let EntryPayload::Config(change) = &e.payload {
                apply_change(&mut members, change);
            }
        }
        if best != me && !is_majority(&members, |n| states.contains_key(&n)) {
            let missing: Vec<NodeId> =
                members.iter().map(|m| m.node).filter(|n| !states.contains_key(n)).collect();
            for n in missing {
                self.send(n, OrderingMsg::StartView { term: self.term, commit: gather_commit });
            }
            return;
        }
        let Some(ls) = self.leading.as_mut() else { return };
        let Phase::Gathering { states } = std::mem::replace(&mut ls.phase, Phase::Active) else {
            return;
        };
        if best != me {
            self.adopt(suffix, best_last);
        }
        let noop = self.sequence(EntryPayload::Noop, now);
        if let Some(ls) = self.leading.as_mut() {
            ls.phase = Phase::Adopting { noop };
        }
        for (n, g) in states {
            if n != me {
                self.send_new_view(n, g.commit);
            }
        }
    }

    /// Makes the leader's log the chosen one: `suffix` follows the gather commit point and ends
    /// at `best_last`.
    fn adopt(&mut self, suffix: Vec<LogEntry>, best_last: LogPosition) {
        for e in suffix {
            if e.seq <= self.commit || e.seq <= self.log.base().seq {
                continue;
            }
            match self.log.term_at(e.seq) {
                Some(t) if t == e.term => {}
                Some(_) => {
                    self.truncate(e.seq);
                    self.append(e);
                }
                None => self.append(e),
            }
        }
        if self.log.last().seq > best_last.seq && best_last.seq >= self.commit {
            self.truncate(best_last.seq.next());
        }
    }

    /// Appends a new entry of this term with the sequencer's timestamp.
    pub(crate) fn sequence(&mut self, payload: EntryPayload, now: Instant) -> Seq {
        let seq = self.log.last().seq.next();
        let entry = LogEntry { term: self.term, seq, timestamp: self.wall_now(now), payload };
        self.append(entry);
        seq
    }

    /// Brings `to` in sync from its commit point on: `NewView` (first batch) built on this
    /// log's entry at that point, or the snapshot if that entry is compacted (the base itself
    /// still has a known term, so a view can build on it).
    pub(crate) fn send_new_view(&mut self, to: NodeId, their_commit: Seq) {
        let last = self.log.last().seq;
        // A member's commit point is never beyond this log (leader completeness); the clamp
        // only keeps a confused report from naming an entry this leader lacks.
        let at = their_commit.min(last);
        let Some(prev) = self.log.position(at) else {
            self.send_snapshot(to);
            return;
        };
        let from = at.next();
        let entries = self.log.slice(from, last, self.config.max_batch);
        let sent = Seq(at.0 + entries.len() as u64);
        let (term, commit) = (self.term, self.commit);
        self.send(to, OrderingMsg::NewView { term, from, prev, entries, commit });
        if let Some(ls) = self.leading.as_mut() {
            let p = ls.progress.entry(to).or_default();
            p.synced = true;
            p.sent = sent;
        }
    }

    /// Sends the latest snapshot to `to`, in chunks.
    fn send_snapshot(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.as_ref() else { return };
        let chunk = self.config.snapshot_chunk.max(1);
        let mut msgs = Vec::new();
        let n = snap.bytes.len().div_ceil(chunk).max(1);
        for i in 0..n {
            let bytes = snap.bytes.get(i * chunk..((i + 1) * chunk).min(snap.bytes.len()));
            msgs.push(OrderingMsg::Snapshot {
                term: self.term,
                last_included: snap.last_included,
                members: snap.members.clone(),
                offset: (i * chunk) as u64,
                chunk: bytes.unwrap_or_default().to_vec(),
                done: i + 1 == n,
            });
        }
        let upto = snap.last_included.seq;
        for m in msgs {
            self.send(to, m);
        }
        if let Some(ls) = self.leading.as_mut() {
            let p = ls.progress.entry(to).or_default();
            p.synced = true;
            p.sent = p.sent.max(upto);
        }
    }

    /// A proposal at the leader.
    pub(crate) fn leader_propose(
        &mut self,
        cmd: Command,
        now: Instant,
    ) -> Result<(), OrderingError> {
        let uncommitted = (self.log.last().seq.0 - self.commit.0) as usize;
        let Some(ls) = self.leading.as_mut() else {
            return Err(OrderingError::NotLeader { term: self.term, leader: self.leader });
        };
        if ls.unavailable {
            return Err(OrderingError::Unavailable { term: self.term });
        }
        if !ls.is_active() {
            if ls.pending.len() >= self.config.max_pending {
                let limit = self.config.max_pending;
                return Err(OrderingError::Overloaded { bound: Bound::Pending, limit });
            }
            ls.pending.push_back(cmd);
            return Ok(());
        }
        if uncommitted >= self.config.max_uncommitted {
            let limit = self.config.max_uncommitted;
            return Err(OrderingError::Overloaded { bound: Bound::Uncommitted, limit });
        }
        self.sequence(EntryPayload::Command(cmd), now);
        Ok(())
    }

    /// A configuration change at the leader.
    pub(crate) fn leader_config_change(
        &mut self,
        change: ConfigChange,
        now: Instant,
    ) -> Result<Seq, OrderingError> {
        let (term, leader) = (self.term, self.leader);
        let Some(ls) = self.leading.as_ref() else {
            return Err(OrderingError::NotLeader { term, leader });
        };
        if ls.unavailable || !ls.is_active() {
            return Err(OrderingError::Unavailable { term });
        }
        if let Some(pending) = self.log.last_config_seq().filter(|s| *s > self.commit) {
            return Err(OrderingError::ConfigChangeInProgress { pending });
        }
        let invalid = match &change {
            ConfigChange::Bootstrap { .. } => Some(self.me),
            ConfigChange::AddMember(info) => self.log.is_member(info.node).then_some(info.node),
            ConfigChange::RemoveMember(n) | ConfigChange::Demote(n) => {
                (!self.log.is_member(*n) || self.log.members().len() == 1).then_some(*n)
            }
        };
        if let Some(node) = invalid {
            return Err(OrderingError::InvalidConfigChange { node });
        }
        if (self.log.last().seq.0 - self.commit.0) as usize >= self.config.max_uncommitted {
            let limit = self.config.max_uncommitted;
            return Err(OrderingError::Overloaded { bound: Bound::Uncommitted, limit });
        }
        if let ConfigChange::AddMember(info) = &change {
            self.send(info.node, OrderingMsg::StartView { term, commit: self.commit });
        }
        Ok(self.sequence(EntryPayload::Config(change), now))
    }

    /// Proposals forwarded by a member.
    pub(crate) fn on_propose(
        &mut self,
        from: NodeId,
        term: Term,
        cmds: Vec<Command>,
        now: Instant,
    ) {
        if term > self.term {
            self.observe_term(term, None);
        }
        if self.leading.is_none() {
            self.send(from, OrderingMsg::NotLeader { term: self.term, leader: self.leader });
            return;
        }
        for cmd in cmds {
            if self.leader_propose(cmd, now).is_err() {
                break;
            }
        }
    }

    /// A member's acknowledgement.
    pub(crate) fn on_ack(&mut self, from: NodeId, term: Term, stored: Seq, now: Instant) {
        if !self.member_msg_term(term) {
            return;
        }
        let last = self.log.last().seq;
        let Some(ls) = self.leading.as_mut() else { return };
        let p = ls.progress.entry(from).or_default();
        p.heard = Some(now);
        p.synced = true;
        p.matched = p.matched.max(stored.min(last));
        p.sent = p.sent.max(p.matched);
        self.advance_commit();
    }

    /// A member asks for `lo..=hi` again.
    pub(crate) fn on_nack(&mut self, from: NodeId, term: Term, lo: Seq, hi: Seq, now: Instant) {
        if !self.member_msg_term(term) {
            return;
        }
        let Some(ls) = self.leading.as_mut() else { return };
        ls.progress.entry(from).or_default().heard = Some(now);
        if !ls.is_active() && !matches!(ls.phase, Phase::Adopting { .. }) {
            return;
        }
        if lo <= self.log.base().seq {
            self.send_snapshot(from);
            return;
        }
        let Some(prev) = self.log.position(lo.prev()) else { return };
        let entries = self.log.slice(lo, hi, self.config.max_batch);
        if !entries.is_empty() {
            let (term, commit) = (self.term, self.commit);
            self.send(from, OrderingMsg::Order { term, prev, entries, commit });
        }
    }

    /// Raises the commit point to the highest entry of this term a majority holds.
    pub(crate) fn advance_commit(&mut self) {
        let Some(ls) = self.leading.as_ref() else { return };
        if matches!(ls.phase, Phase::Gathering { .. }) {
            return;
        }
        let members = self.log.members();
        let mut held: Vec<Seq> = members
            .iter()
            .map(|m| match m.node == self.me {
                true => self.durable,
                false => ls.progress.get(&m.node).map_or(Seq::ZERO, |p| p.matched),
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&n) = held.get(members.len() / 2) else { return };
        if n > self.commit && self.log.term_at(n) == Some(self.term) {
            self.commit = n;
        }
        let removed = !self.log.is_member(self.me)
            && self.log.last_config_seq().is_none_or(|s| s <= self.commit);
        if removed {
            self.stop_leading();
        }
    }

    /// Sends what is new to every synced member; ends the view change when its `Noop` commits.
    pub(crate) fn leader_flush(&mut self, now: Instant) {
        self.advance_commit();
        let Some(ls) = self.leading.as_mut() else { return };
        if let Phase::Adopting { noop } = ls.phase {
            if self.commit >= noop {
                ls.phase = Phase::Active;
                let pending = std::mem::take(&mut ls.pending);
                self.actions.push_back(Action::Leading { term: self.term });
                for cmd in pending {
                    if self.leader_propose(cmd, now).is_err() {
                        break;
                    }
                }
            }
        }
        let Some(ls) = self.leading.as_ref() else { return };
        if matches!(ls.phase, Phase::Gathering { .. }) {
            return;
        }
        let window = (self.config.max_batch * 4) as u64;
        let mut targets: Vec<NodeId> = self.log.members().iter().map(|m| m.node).collect();
        targets.extend(ls.learners.keys().copied());
        let me = self.me;
        for n in targets.into_iter().filter(|n| *n != me) {
            self.flush_to(n, window);
        }
    }

    fn flush_to(&mut self, to: NodeId, window: u64) {
        let last = self.log.last().seq;
        let commit = self.commit;
        loop {
            let Some(ls) = self.leading.as_ref() else { return };
            let Some(p) = ls.progress.get(&to) else { return };
            if !p.synced {
                return;
            }
            if p.sent >= last || p.sent.0.saturating_sub(p.matched.0) >= window {
                break;
            }
            let from = p.sent.next();
            // The entry before `from` must have a known term (the base's counts): below the
            // base only the snapshot can bring the member on.
            let Some(prev) = self.log.position(p.sent) else {
                self.send_snapshot(to);
                return;
            };
            let entries = self.log.slice(from, last, self.config.max_batch);
            let Some(upto) = entries.last().map(|e| e.seq) else { return };
            self.send(to, OrderingMsg::Order { term: self.term, prev, entries, commit });
            if let Some(p) = self.leading.as_mut().and_then(|l| l.progress.get_mut(&to)) {
                p.sent = upto;
                p.commit_sent = commit;
            }
        }
        // Nothing (more) to order for it: tell it of a commit point it has not been sent, or
        // it learns it only with the next entries or tick, and its clients' answers wait for
        // that (a lone client of a follower waited a whole 50 ms tick per request).
        let Some(p) = self.leading.as_mut().and_then(|l| l.progress.get_mut(&to)) else { return };
        if p.commit_sent < commit {
            p.commit_sent = commit;
            self.send(to, OrderingMsg::Commit { term: self.term, commit });
        }
    }

    /// Heartbeats, retransmission, re-asking silent members, availability.
    pub(crate) fn leader_tick(&mut self, now: Instant) {
        self.track_learners(now);
        let (term, commit, me) = (self.term, self.commit, self.me);
        let members: Vec<NodeId> = self.log.members().iter().map(|m| m.node).collect();
        let Some(ls) = self.leading.as_mut() else { return };
        let mut out = Vec::new();
        let learners: Vec<NodeId> = ls.learners.keys().copied().collect();
        for &n in members.iter().chain(&learners).filter(|n| **n != me) {
            let gathering = match &ls.phase {
                // Learners wait for the view change to end (they do not take part in it).
                Phase::Gathering { .. } if !members.contains(&n) => continue,
                Phase::Gathering { states } => Some(states.contains_key(&n)),
                _ => None,
            };
            let p = ls.progress.entry(n).or_default();
            match gathering {
                Some(true) => {}
                Some(false) => out.push((n, OrderingMsg::StartView { term, commit })),
                None if !p.synced => out.push((n, OrderingMsg::StartView { term, commit })),
                None => {
                    out.push((n, OrderingMsg::Commit { term, commit }));
                    p.commit_sent = p.commit_sent.max(commit);
                    if p.matched < p.sent && p.matched == p.matched_at_tick {
                        p.sent = p.matched;
                    }
                    p.matched_at_tick = p.matched;
                }
            }
        }
        let window = self.config.unavailable_after;
        let recent =
            |p: &Progress| p.heard.is_some_and(|h| now.saturating_duration_since(h) < window);
        let heard =
            is_majority(self.log.members(), |n| n == me || ls.progress.get(&n).is_some_and(recent));
        let gathering = matches!(ls.phase, Phase::Gathering { .. });
        let late = now.saturating_duration_since(ls.since) >= window;
        let unavailable = late && (gathering || !heard);
        if unavailable && !ls.unavailable {
            self.actions.push_back(Action::Unavailable { term });
        }
        ls.unavailable = unavailable;
        let long = self.config.step_down_after;
        let heard_long = is_majority(self.log.members(), |n| {
            n == me
                || ls.progress.get(&n).is_some_and(|p| {
                    p.heard.is_some_and(|h| now.saturating_duration_since(h) < long)
                })
        });
        let lost = !gathering && !heard_long && now.saturating_duration_since(ls.since) >= long;
        if lost && !ls.quorum_lost {
            self.actions.push_back(Action::QuorumLost { term });
        }
        ls.quorum_lost = lost;
        for (n, msg) in out {
            self.send(n, msg);
        }
    }
}
