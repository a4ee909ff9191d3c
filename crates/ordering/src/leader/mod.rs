//! The leader's side: its state for one term ([`LeaderState`], which exists only while this
//! node leads) and the handler of every input that needs it ([`LeaderHandler`]):
//! sequencing, replication, majority commit and the tick. The view change is in
//! `view_change`, per-member progress in `progress`, learners in `learners`.
//!
//! Like openraft's `LeaderHandler`, the handler borrows the shared [`Core`] next to the
//! leader state, so a handler method cannot run on a node that does not lead: `Ordering`
//! obtains one through `Ordering::as_leader`, the one place that checks the role, and counts
//! a message that needs a leader at a node that does not lead as a refusal. A handler
//! that must end the leadership (abdication, a committed self-removal) returns
//! [`StepDown`]; `Ordering` then drops the state.

pub(crate) mod learners;
mod progress;
mod view_change;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::Instant;

use auction_proto::msg::log::{Command, ConfigChange, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{NodeId, Seq};

use crate::core::Core;
use crate::{Action, Bound, OrderingConfig, OrderingError};
use learners::Learners;
use progress::ProgressTracker;
pub(crate) use view_change::Phase;

/// `Ordering::leader` on a node that does not lead its term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotLeading;

/// A leader handler's verdict: this node must stop leading (it abdicated, or its removal
/// from the configuration committed). Its leader state is dropped by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) struct StepDown;

/// What a leader handler returns when it may end the leadership.
pub(crate) type Flow = ControlFlow<StepDown>;

/// The leader's state for its term.
///
/// Invariants: `pending.len() <= max_pending`; every progress's `matched` is at most the last
/// log seq; `Adopting { noop }` names a seq in the log after the commit point's start;
/// the learners within their bound.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    phase: Phase,
    since: Instant,
    /// The commit point when the view change began (what `StartView` announced).
    gather_commit: Seq,
    progress: ProgressTracker,
    /// Proposals received during the view change, sequenced once active.
    pending: VecDeque<Command>,
    /// Servers outside the configuration it replicates to, and since when each is caught up.
    learners: Learners,
    unavailable: bool,
    /// `QuorumLost` was reported for the current stretch of silence.
    quorum_lost: bool,
}

impl LeaderState {
    /// Whether the view change is over.
    pub(crate) fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// Whether it refuses proposals for want of a majority.
    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    pub(crate) fn learners(&self) -> &Learners {
        &self.learners
    }

    /// Whether `voter` has stored everything up to `commit` and was heard within `recent`.
    pub(crate) fn caught_up(
        &self,
        voter: NodeId,
        commit: Seq,
        recent: std::time::Duration,
        now: Instant,
    ) -> bool {
        self.progress.get(voter).is_some_and(|p| {
            p.matched >= commit
                && p.heard.is_some_and(|h| now.saturating_duration_since(h) <= recent)
        })
    }

    /// The proposals it still holds (buffered during the view change), for the next leader.
    pub(crate) fn into_pending(self) -> VecDeque<Command> {
        self.pending
    }

    pub(crate) fn check_invariants(&self, config: &OrderingConfig, last: Seq, commit: Seq) {
        assert!(self.pending.len() <= config.max_pending, "leader pending over bound");
        self.learners.check_invariants();
        self.progress.check_invariants(last);
        if let Phase::Adopting { noop } = self.phase {
            assert!(noop <= last && noop > self.gather_commit.min(commit), "noop position");
        }
    }
}

/// The leader's inputs: the shared core and the leader state, borrowed together.
#[derive(Debug)]
pub(crate) struct LeaderHandler<'a> {
    core: &'a mut Core,
    ls: &'a mut LeaderState,
}

impl<'a> LeaderHandler<'a> {
    pub(crate) fn new(core: &'a mut Core, ls: &'a mut LeaderState) -> Self {
        Self { core, ls }
    }

    /// A proposal at the leader: sequenced, or buffered while the view change runs.
    ///
    /// # Errors
    /// `Unavailable` or `Overloaded`; nothing changed.
    pub(crate) fn propose(&mut self, cmd: Command, now: Instant) -> Result<(), OrderingError> {
        let core = &mut *self.core;
        let uncommitted = (core.log.last().seq.0 - core.commit.0) as usize;
        if self.ls.unavailable {
            return Err(OrderingError::Unavailable { term: core.term });
        }
        if !self.ls.is_active() {
            if self.ls.pending.len() >= core.config.max_pending {
                let limit = core.config.max_pending;
                return Err(OrderingError::Overloaded { bound: Bound::Pending, limit });
            }
            self.ls.pending.push_back(cmd);
            return Ok(());
        }
        if uncommitted >= core.config.max_uncommitted {
            let limit = core.config.max_uncommitted;
            return Err(OrderingError::Overloaded { bound: Bound::Uncommitted, limit });
        }
        self.sequence(EntryPayload::Command(cmd), now);
        Ok(())
    }

    /// Proposals forwarded by a member: sequenced in order until one is refused.
    pub(crate) fn on_propose(&mut self, cmds: Vec<Command>, now: Instant) {
        for cmd in cmds {
            if self.propose(cmd, now).is_err() {
                break;
            }
        }
    }

    /// A configuration change at the leader; returns its seq.
    ///
    /// # Errors
    /// `Unavailable`, `ConfigChangeInProgress`, `InvalidConfigChange` or `Overloaded`;
    /// nothing changed.
    pub(crate) fn config_change(
        &mut self,
        change: ConfigChange,
        now: Instant,
    ) -> Result<Seq, OrderingError> {
        let core = &mut *self.core;
        let term = core.term;
        if self.ls.unavailable || !self.ls.is_active() {
            return Err(OrderingError::Unavailable { term });
        }
        if let Some(pending) = core.log.last_config_seq().filter(|s| *s > core.commit) {
            return Err(OrderingError::ConfigChangeInProgress { pending });
        }
        let invalid = match &change {
            ConfigChange::Bootstrap { .. } => Some(core.me),
            ConfigChange::AddMember(info) => core.log.is_member(info.node).then_some(info.node),
            ConfigChange::RemoveMember(n) | ConfigChange::Demote(n) => {
                (!core.log.is_member(*n) || core.log.members().len() == 1).then_some(*n)
            }
        };
        if let Some(node) = invalid {
            return Err(OrderingError::InvalidConfigChange { node });
        }
        if (core.log.last().seq.0 - core.commit.0) as usize >= core.config.max_uncommitted {
            let limit = core.config.max_uncommitted;
            return Err(OrderingError::Overloaded { bound: Bound::Uncommitted, limit });
        }
        if let ConfigChange::AddMember(info) = &change {
            core.send(info.node, OrderingMsg::StartView { term, commit: core.commit });
        }
        Ok(self.sequence(EntryPayload::Config(change), now))
    }

    /// Appends a new entry of this term with the sequencer's timestamp.
    fn sequence(&mut self, payload: EntryPayload, now: Instant) -> Seq {
        let core = &mut *self.core;
        let seq = core.log.last().seq.next();
        let entry = LogEntry { term: core.term, seq, timestamp: core.wall_now(now), payload };
        core.append(entry);
        seq
    }

    /// A member's acknowledgement of this term.
    pub(crate) fn on_ack(&mut self, from: NodeId, stored: Seq, now: Instant) -> Flow {
        let last = self.core.log.last().seq;
        self.ls.progress.ack(from, stored, last, now);
        self.advance_commit()
    }

    /// A member of this term asks for `lo..=hi` again.
    pub(crate) fn on_nack(&mut self, from: NodeId, lo: Seq, hi: Seq, now: Instant) {
        self.ls.progress.heard(from, now);
        if !self.ls.is_active() && !matches!(self.ls.phase, Phase::Adopting { .. }) {
            return;
        }
        let core = &mut *self.core;
        if lo <= core.log.base().seq {
            self.send_snapshot(from);
            return;
        }
        let Some(prev) = core.log.position(lo.prev()) else { return };
        let entries = core.log.slice(lo, hi, core.config.max_batch);
        if !entries.is_empty() {
            let (term, commit) = (core.term, core.commit);
            core.send(from, OrderingMsg::Order { term, prev, entries, commit });
        }
    }

    /// Whether it is still gathering log states (a `Nack` then asks for nothing it sent).
    pub(crate) fn is_gathering(&self) -> bool {
        matches!(self.ls.phase, Phase::Gathering { .. })
    }

    /// Durable writes completed: the leader's own log counts for the commit point.
    pub(crate) fn on_durable(&mut self) -> Flow {
        self.advance_commit()
    }

    /// Raises the commit point to the highest entry of this term a majority holds; steps
    /// down once its own removal is committed.
    fn advance_commit(&mut self) -> Flow {
        if matches!(self.ls.phase, Phase::Gathering { .. }) {
            return Flow::Continue(());
        }
        let core = &mut *self.core;
        let members = core.log.members();
        let Some(n) = self.ls.progress.majority_matched(members, core.me, core.durable) else {
            return Flow::Continue(());
        };
        if n > core.commit && core.log.term_at(n) == Some(core.term) {
            core.commit = n;
        }
        let removed = !core.log.is_member(core.me)
            && core.log.last_config_seq().is_none_or(|s| s <= core.commit);
        match removed {
            true => Flow::Break(StepDown),
            false => Flow::Continue(()),
        }
    }

    /// End of every input: sends what is new to every synced member; ends the view change
    /// when its `Noop` commits.
    pub(crate) fn flush(&mut self, now: Instant) -> Flow {
        self.advance_commit()?;
        if let Phase::Adopting { noop } = self.ls.phase {
            if self.core.commit >= noop {
                self.ls.phase = Phase::Active;
                let pending = std::mem::take(&mut self.ls.pending);
                self.core.actions.push_back(Action::Leading { term: self.core.term });
                self.on_propose(pending.into(), now);
            }
        }
        if matches!(self.ls.phase, Phase::Gathering { .. }) {
            return Flow::Continue(());
        }
        let window = (self.core.config.max_batch * 4) as u64;
        let mut targets: Vec<NodeId> = self.core.log.members().iter().map(|m| m.node).collect();
        targets.extend(self.ls.learners.nodes());
        let me = self.core.me;
        for n in targets.into_iter().filter(|n| *n != me) {
            self.flush_to(n, window);
        }
        Flow::Continue(())
    }

    /// `Order`s of what `to` was not sent yet (at most `window` unacknowledged entries),
    /// else a `Commit` of a commit point it was not sent yet.
    fn flush_to(&mut self, to: NodeId, window: u64) {
        let last = self.core.log.last().seq;
        let commit = self.core.commit;
        loop {
            let Some(p) = self.ls.progress.get(to) else { return };
            if !p.synced {
                return;
            }
            if p.sent >= last || p.sent.0.saturating_sub(p.matched.0) >= window {
                break;
            }
            let from = p.sent.next();
            // The entry before `from` must have a known term (the base's counts): below the
            // base only the snapshot can bring the member on.
            let Some(prev) = self.core.log.position(p.sent) else {
                self.send_snapshot(to);
                return;
            };
            let entries = self.core.log.slice(from, last, self.core.config.max_batch);
            let Some(upto) = entries.last().map(|e| e.seq) else { return };
            let term = self.core.term;
            self.core.send(to, OrderingMsg::Order { term, prev, entries, commit });
            let p = self.ls.progress.entry(to);
            p.sent = upto;
            p.commit_sent = commit;
        }
        // Nothing (more) to order for it: tell it of a commit point it has not been sent, or
        // it learns it only with the next entries or tick, and its clients' answers wait for
        // that (a lone client of a follower waited a whole 50 ms tick per request).
        let Some(p) = self.ls.progress.get_mut(to) else { return };
        if p.commit_sent < commit {
            p.commit_sent = commit;
            let term = self.core.term;
            self.core.send(to, OrderingMsg::Commit { term, commit });
        }
    }

    /// Brings `to` in sync from its commit point on: `NewView` (first batch) built on this
    /// log's entry at that point, or the snapshot if that entry is compacted (the base itself
    /// still has a known term, so a view can build on it).
    fn send_new_view(&mut self, to: NodeId, their_commit: Seq) {
        let core = &mut *self.core;
        let last = core.log.last().seq;
        // A member's commit point is never beyond this log (leader completeness); the clamp
        // only keeps a confused report from naming an entry this leader lacks.
        let at = their_commit.min(last);
        let Some(prev) = core.log.position(at) else {
            self.send_snapshot(to);
            return;
        };
        let from = at.next();
        let entries = core.log.slice(from, last, core.config.max_batch);
        let sent = Seq(at.0 + entries.len() as u64);
        let (term, commit) = (core.term, core.commit);
        core.send(to, OrderingMsg::NewView { term, from, prev, entries, commit });
        self.ls.progress.synced(to, sent);
    }

    /// Sends the latest snapshot to `to`, in chunks.
    fn send_snapshot(&mut self, to: NodeId) {
        let core = &mut *self.core;
        let Some(snap) = core.snapshot.as_ref() else { return };
        let chunk = core.config.snapshot_chunk.max(1);
        let mut msgs = Vec::new();
        let n = snap.bytes.len().div_ceil(chunk).max(1);
        for i in 0..n {
            let bytes = snap.bytes.get(i * chunk..((i + 1) * chunk).min(snap.bytes.len()));
            msgs.push(OrderingMsg::Snapshot {
                term: core.term,
                last_included: snap.last_included,
                members: snap.members.clone(),
                offset: (i * chunk) as u64,
                chunk: bytes.unwrap_or_default().to_vec(),
                done: i + 1 == n,
            });
        }
        let upto = snap.last_included.seq;
        for m in msgs {
            core.send(to, m);
        }
        let p = self.ls.progress.entry(to);
        p.synced = true;
        p.sent = p.sent.max(upto);
    }

    /// Replicate to `wanted` (already filtered and bounded) as learners from now on;
    /// the new ones are asked for their log state.
    pub(crate) fn set_learners(&mut self, wanted: &[NodeId]) {
        let core = &mut *self.core;
        let (term, commit) = (core.term, core.commit);
        let added = self.ls.learners.set(wanted);
        // Nodes that stopped being learners (promoted, gone) keep no progress unless members.
        let (log, learners) = (&core.log, &self.ls.learners);
        self.ls.progress.retain(|n| log.is_member(n) || learners.contains(n));
        for n in added {
            // Brought in sync like a member after a view change: it answers with its log
            // state and gets a `NewView` (or the snapshot).
            core.send(n, OrderingMsg::StartView { term, commit });
        }
    }

    /// Heartbeats, retransmission, re-asking silent members, availability.
    pub(crate) fn tick(&mut self, now: Instant) {
        let core = &mut *self.core;
        let ls = &mut *self.ls;
        // A learner acknowledges every `Commit` heartbeat (one per tick): silent for three
        // ticks, it is not caught up, whatever it acknowledged before. Without this a learner
        // that died right after its last ack could be promoted, and a configuration of one
        // voter would then need a dead second one for every commit (sim seed 156).
        let recent = core.config.tick * 3;
        ls.learners.track(&ls.progress, core.commit, core.config.learner_lag, recent, now);
        let (term, commit, me) = (core.term, core.commit, core.me);
        let members: Vec<NodeId> = core.log.members().iter().map(|m| m.node).collect();
        let mut out = Vec::new();
        let learners = ls.learners.nodes();
        for &n in members.iter().chain(&learners).filter(|n| **n != me) {
            let gathering = match &ls.phase {
                // Learners wait for the view change to end (they do not take part in it).
                Phase::Gathering { .. } if !members.contains(&n) => continue,
                Phase::Gathering { states } => Some(states.contains_key(&n)),
                _ => None,
            };
            let p = ls.progress.entry(n);
            match gathering {
                Some(true) => {}
                Some(false) => out.push((n, OrderingMsg::StartView { term, commit })),
                None if !p.synced => out.push((n, OrderingMsg::StartView { term, commit })),
                None => {
                    out.push((n, OrderingMsg::Commit { term, commit }));
                    p.commit_sent = p.commit_sent.max(commit);
                    p.tick();
                }
            }
        }
        let window = core.config.unavailable_after;
        let heard = ls.progress.heard_majority(core.log.members(), me, window, now);
        let gathering = matches!(ls.phase, Phase::Gathering { .. });
        let late = now.saturating_duration_since(ls.since) >= window;
        let unavailable = late && (gathering || !heard);
        if unavailable && !ls.unavailable {
            core.actions.push_back(Action::Unavailable { term });
        }
        ls.unavailable = unavailable;
        let long = core.config.step_down_after;
        let heard_long = ls.progress.heard_majority(core.log.members(), me, long, now);
        let lost = !gathering && !heard_long && now.saturating_duration_since(ls.since) >= long;
        if lost && !ls.quorum_lost {
            core.actions.push_back(Action::QuorumLost { term });
        }
        ls.quorum_lost = lost;
        for (n, msg) in out {
            core.send(n, msg);
        }
    }
}
