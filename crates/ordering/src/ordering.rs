//! [`Ordering`], the public state machine: construction, accessors, every input, and the
//! dispatch of each to the handler of this node's role. The role is checked in one place,
//! [`Ordering::as_leader`]; a message that does not fit the role is refused and counted in
//! [`OrderingStats`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{Command, ConfigChange, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, NodeId, Seq, Term, Timestamp};

use crate::core::{Core, Forwarded};
use crate::follower::{FollowerHandler, FollowerState, Incoming};
use crate::leader::learners::MAX_LEARNERS;
use crate::leader::{Flow, LeaderHandler, LeaderState, NotLeading};
use crate::log::Log;
use crate::{Action, Bound, OrderingConfig, OrderingError, OrderingStats, Snapshot, StoreId};

/// What a member stored durably, handed back to [`Ordering::new`] after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// The last term written by [`Action::PersistTerm`].
    pub term: Term,
    /// The last snapshot installed or taken, if any.
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot: contiguous from the snapshot's next seq (or 1).
    pub entries: Vec<LogEntry>,
    /// The last seq the state machine applied (at least the snapshot's).
    pub applied: Seq,
}

/// Test-only fault injection: a planted bug, to show that the simulation's checker catches
/// it. Never set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// A new leader ends its view change at once with its own log, without gathering the
    /// logs of a majority (so entries committed under earlier leaders can be lost).
    pub skip_view_change: bool,
}

impl Faults {
    /// Whether the planted view-change bug is on: never without the `faults` feature.
    pub(crate) fn skips_view_change(&self) -> bool {
        cfg!(feature = "faults") && self.skip_view_change
    }
}

/// One member's total-order multicast core. See the crate documentation for the contract.
///
/// Invariants (checked by [`Ordering::check_invariants`] after every input): those of the
/// shared core (`applied <= commit <= last log seq`, terms, durability, bounds), of the
/// follower state (`matched` between `commit` and the last seq, the hold-back queue after
/// it) and of the leader state; a leader state exists only when `leader == Some(me)`, and
/// then the follower state is out of sync.
#[derive(Debug)]
pub struct Ordering {
    core: Core,
    follower: FollowerState,
    /// This node's state as leader of the current term, only while it leads.
    leading: Option<LeaderState>,
    stats: OrderingStats,
}

impl Ordering {
    /// A core from what this member stored durably (`Persisted::default()` for a new member).
    pub fn new(me: NodeId, config: OrderingConfig, persisted: Persisted, now: Instant) -> Self {
        let Persisted { term, snapshot, entries, applied } = persisted;
        let mut log = match &snapshot {
            Some(s) => Log::from_snapshot(s.last_included, s.members.clone()),
            None => Log::new(),
        };
        for e in entries {
            if e.seq > log.last().seq {
                log.append(e);
            }
        }
        let last = log.last();
        let applied = applied.max(log.base().seq).min(last.seq);
        let follower = FollowerState::new(&config, term, last);
        let core = Core::new(me, config, term, log, snapshot, applied, now);
        let core = Self { core, follower, leading: None, stats: OrderingStats::default() };
        core.check_invariants();
        core
    }

    // ----- accessors -----

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.core.me
    }

    /// The highest term seen (persisted through [`Action::PersistTerm`]).
    pub fn term(&self) -> Term {
        self.core.term
    }

    /// The leader of [`Ordering::term`], if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.core.leader
    }

    #[doc(hidden)]
    #[cfg(feature = "faults")]
    pub fn set_faults(&mut self, faults: Faults) {
        self.core.faults = faults;
    }

    /// Whether this follower's leader has removed itself: the latest configuration, which
    /// does not hold the leader, is in the part of the log known to equal the leader's and
    /// not yet known to be committed. Such
    /// a leader stops leading once the removal commits, perhaps before this follower learns
    /// of the commit, so the follower should elect a new leader (whose view change adopts the
    /// removal from a majority and commits it). `false` while the follower is not yet in sync
    /// with the leader: a follower behind may lack the re-adding of its leader.
    pub fn leader_removed(&self) -> bool {
        let Some(l) = self.core.leader.filter(|l| *l != self.core.me) else { return false };
        let Some(matched) = self.follower.matched() else { return false };
        // A removal above this follower's commit point: a re-add can only follow a committed
        // removal, and the follower learns that commit with the entries that carry it, so a
        // follower whose first batch ends between a removal and a re-add does not depose a
        // re-added leader (found by review).
        let commit = self.core.commit;
        !self.core.log.is_member(l)
            && self.core.log.last_config_seq().is_some_and(|s| s <= matched && s > commit)
    }

    /// Whether this node leads and has finished its view change.
    pub fn is_leading(&self) -> bool {
        self.leading.as_ref().is_some_and(LeaderState::is_active)
    }

    /// Position of the last log entry: the election's candidate rule compares these.
    pub fn last_log(&self) -> LogPosition {
        self.core.log.last()
    }

    /// The highest seq known committed.
    pub fn commit(&self) -> Seq {
        self.core.commit
    }

    /// The highest seq delivered.
    pub fn applied(&self) -> Seq {
        self.core.applied
    }

    /// The voting members of the latest configuration in the log (committed or not).
    pub fn members(&self) -> &[NodeInfo] {
        self.core.log.members()
    }

    /// Whether this node can answer clients from its state: it leads and finished its view
    /// change, or it follows the leader of the current term in sync and has caught up with
    /// a commit point that leader announced (everything committed up to it is applied). A node that has just
    /// started or lost its leader is not ready: its state may be older than what a client
    /// already saw elsewhere.
    pub fn is_ready(&self) -> bool {
        match &self.leading {
            Some(ls) => ls.is_active() && !ls.is_unavailable(),
            None => {
                self.core.leader.is_some_and(|l| l != self.core.me)
                    && self.follower.matched().is_some()
                    && self.follower.learned_commit_in(self.core.term)
            }
        }
    }

    /// The voters of the configuration in force at `seq` (after the entry there).
    pub fn members_at(&self, seq: Seq) -> Vec<NodeId> {
        self.core.log.members_at(seq).iter().map(|m| m.node).collect()
    }

    /// The entry at `seq`, if still in the log.
    pub fn entry(&self, seq: Seq) -> Option<&LogEntry> {
        self.core.log.entry(seq)
    }

    /// The snapshot point (`(0, 0)` without a snapshot).
    pub fn snapshot_point(&self) -> LogPosition {
        self.core.log.base()
    }

    /// The latest snapshot taken or installed (persist it with the log for [`Persisted`]).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.core.snapshot.as_ref()
    }

    // ----- outputs -----

    /// The next output, if any. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.core.actions.pop_front()
    }

    /// When [`Ordering::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.core.tick_at)
    }

    // ----- inputs -----

    /// The wall clock reads `wall` at `now`; sequencer timestamps derive from this anchor.
    pub fn handle_wall_clock(&mut self, wall: Timestamp, now: Instant) {
        self.core.clock = Some(auction_proto::WallAnchor { wall, at: now });
    }

    /// Founds a cluster: writes the `Bootstrap` entry (term 0, seq 1) into an empty log. Give
    /// every founder the same members and wall clock, or found on one node only (the others
    /// learn the entry from the first leader).
    ///
    /// # Errors
    /// [`OrderingError::InvalidConfigChange`] if the log is not empty. Nothing changed.
    pub fn handle_bootstrap(
        &mut self,
        members: Vec<NodeInfo>,
        now: Instant,
    ) -> Result<(), OrderingError> {
        if self.core.log.last().seq != Seq::ZERO {
            return Err(OrderingError::InvalidConfigChange { node: self.core.me });
        }
        let entry = LogEntry {
            term: Term::ZERO,
            seq: Seq(1),
            timestamp: self.core.wall_now(now),
            payload: EntryPayload::Config(ConfigChange::Bootstrap { members }),
        };
        self.core.append(entry);
        self.finish(now);
        Ok(())
    }

    /// The election's result: `leader` leads `term`. If that is this node, it starts the view
    /// change; otherwise proposals not yet sequenced are resent to `leader`.
    ///
    /// # Errors
    /// `StaleTerm`, `ConflictingLeader` or `CannotLead`; nothing changed.
    pub fn handle_leader(
        &mut self,
        term: Term,
        leader: NodeId,
        now: Instant,
    ) -> Result<(), OrderingError> {
        if term < self.core.term {
            return Err(OrderingError::StaleTerm { term, current: self.core.term });
        }
        if term == self.core.term {
            match self.core.leader {
                Some(known) if known == leader => return Ok(()),
                Some(known) => {
                    return Err(OrderingError::ConflictingLeader { term, known, claimed: leader });
                }
                None => {}
            }
        }
        if leader == self.core.me
            && (term <= self.core.no_lead_upto || !self.core.log.is_member(self.core.me))
        {
            return Err(OrderingError::CannotLead { term });
        }
        self.observe_term(term, Some(leader));
        if leader == self.core.me {
            self.start_leading(now);
        } else {
            self.core.resend_forwarded(now, true);
        }
        self.finish(now);
        Ok(())
    }

    /// The election started for `term` (or this leader must stop): forget the leader; a
    /// leader of `term` steps down and will not lead `term` again.
    pub fn handle_step_down(&mut self, term: Term, now: Instant) {
        if term > self.core.term {
            self.observe_term(term, None);
        } else if term == self.core.term && self.leading.is_some() {
            self.stop_leading();
        }
        self.finish(now);
    }

    /// A client command submitted at this member: sequenced here if this node leads, otherwise
    /// forwarded to the leader (or kept until one is known) and resent until delivered.
    /// Commands without an origin are forwarded once and not tracked.
    ///
    /// # Errors
    /// `Unavailable` (leader without a majority) or `Overloaded`; nothing changed.
    pub fn handle_propose(&mut self, cmd: Command, now: Instant) -> Result<(), OrderingError> {
        match self.as_leader() {
            Ok(mut l) => l.propose(cmd, now)?,
            Err(NotLeading) => self.core.forward(cmd, now)?,
        }
        self.finish(now);
        Ok(())
    }

    /// A configuration change (leader only): sequenced as a log entry once the previous change
    /// is committed. Returns the entry's seq.
    ///
    /// # Errors
    /// `NotLeader`, `Unavailable`, `ConfigChangeInProgress`, `InvalidConfigChange` or
    /// `Overloaded`; nothing changed.
    pub fn handle_config_change(
        &mut self,
        change: ConfigChange,
        now: Instant,
    ) -> Result<Seq, OrderingError> {
        let (term, leader) = (self.core.term, self.core.leader);
        let seq = match self.as_leader() {
            Ok(mut l) => l.config_change(change, now)?,
            Err(NotLeading) => return Err(OrderingError::NotLeader { term, leader }),
        };
        self.finish(now);
        Ok(seq)
    }

    /// A message from member `from`.
    pub fn handle_message(&mut self, from: NodeId, msg: OrderingMsg, now: Instant) {
        if from != self.core.me {
            self.dispatch(from, msg, now);
        }
        self.finish(now);
    }

    /// Writes up to `id` are durable (stores complete in order).
    ///
    /// # Errors
    /// `UnknownStore` if `id` was never issued or is already confirmed; nothing changed.
    pub fn handle_stored(&mut self, id: StoreId, now: Instant) -> Result<(), OrderingError> {
        self.core.confirm_store(id)?;
        self.on_durable();
        self.finish(now);
        Ok(())
    }

    /// The node took a snapshot of its state machine after applying `last_included` (an
    /// applied entry still in the log); the log before it is dropped and `bytes` are kept to
    /// send to lagging members.
    ///
    /// # Errors
    /// `BadSnapshotPoint` or `Overloaded`; nothing changed.
    pub fn handle_snapshot_taken(
        &mut self,
        last_included: Seq,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<(), OrderingError> {
        let bad = OrderingError::BadSnapshotPoint { last_included, applied: self.core.applied };
        if last_included > self.core.applied || last_included < self.core.log.base().seq {
            return Err(bad);
        }
        let Some(term) = self.core.log.term_at(last_included) else { return Err(bad) };
        if bytes.len() > self.core.config.max_snapshot_bytes {
            let limit = self.core.config.max_snapshot_bytes;
            return Err(OrderingError::Overloaded { bound: Bound::SnapshotBytes, limit });
        }
        let members = self.core.log.members_at(last_included).to_vec();
        self.core.snapshot = Some(Snapshot {
            last_included: LogPosition { term, seq: last_included },
            members,
            bytes,
        });
        self.core.log.compact(last_included);
        self.finish(now);
        Ok(())
    }

    /// The clock reached [`Ordering::poll_timeout`] (early and repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.core.tick_at {
            self.core.tick_at = now + self.core.config.tick;
            match self.as_leader() {
                Ok(mut l) => l.tick(now),
                Err(NotLeading) => {
                    self.core.resend_forwarded(now, false);
                    self.follower().tick(now);
                }
            }
        }
        self.finish(now);
    }

    // ----- learners (see `leader::learners`) -----

    /// Leader: replicate to `learners` (servers outside the configuration; members, this node
    /// and any past [`MAX_LEARNERS`] are ignored) from now on, and to no other non-member.
    /// Returns whether the set changed. A follower ignores it and returns `false`.
    pub fn handle_learners(&mut self, learners: &[NodeId], now: Instant) -> bool {
        let me = self.core.me;
        let wanted: Vec<NodeId> = learners
            .iter()
            .copied()
            .filter(|n| *n != me && !self.core.log.is_member(*n))
            .take(MAX_LEARNERS)
            .collect();
        let before = self.learners();
        let Ok(mut l) = self.as_leader() else { return false };
        l.set_learners(&wanted);
        self.finish(now);
        self.leading.as_ref().is_some_and(|ls| ls.learners().nodes() != before)
    }

    /// Leader: the learners it replicates to.
    pub fn learners(&self) -> Vec<NodeId> {
        self.leading.as_ref().map(|ls| ls.learners().nodes()).unwrap_or_default()
    }

    /// Leader: whether `learner` has been caught up (within `max_lag` entries of the commit
    /// point) continuously for `stable` as of `now`: ready to be promoted to voter.
    pub fn learner_ready(&self, learner: NodeId, stable: Duration, now: Instant) -> bool {
        self.active_leader().is_some_and(|ls| ls.learners().ready(learner, stable, now))
    }

    /// Leader: whether the member `voter` has stored everything committed and answered within
    /// the last three ticks: it could take over at once (`admin move-leader`). `false` on a
    /// follower and for this node.
    pub fn voter_caught_up(&self, voter: NodeId, now: Instant) -> bool {
        let recent = self.core.config.tick * 3;
        let commit = self.core.commit;
        self.active_leader().is_some_and(|ls| {
            self.core.log.is_member(voter) && ls.caught_up(voter, commit, recent, now)
        })
    }

    fn active_leader(&self) -> Option<&LeaderState> {
        self.leading.as_ref().filter(|ls| ls.is_active())
    }

    /// The messages refused so far, per kind.
    pub fn stats(&self) -> OrderingStats {
        OrderingStats { catch_up_refused: self.follower.refused_catch_up(), ..self.stats }
    }

    // ----- roles -----

    /// The leader's handler, if this node leads its term: the one place the role is checked.
    fn as_leader(&mut self) -> Result<LeaderHandler<'_>, NotLeading> {
        match self.leading.as_mut() {
            Some(ls) => Ok(LeaderHandler::new(&mut self.core, ls)),
            None => Err(NotLeading),
        }
    }

    /// The follower's handler (only for a node that does not lead).
    fn follower(&mut self) -> FollowerHandler<'_> {
        debug_assert!(self.leading.is_none(), "following while leading");
        FollowerHandler::new(&mut self.core, &mut self.follower)
    }

    /// Drops the leader state if a leader handler asked to step down.
    fn obey(&mut self, flow: Flow) {
        if flow.is_break() {
            self.stop_leading();
        }
    }

    /// Becomes leader of `core.term`: starts the view change; the forwarded proposals are
    /// buffered to be sequenced once it ends.
    fn start_leading(&mut self, now: Instant) {
        let pending: VecDeque<Command> =
            std::mem::take(&mut self.core.forwarded).into_values().map(|f| f.cmd).collect();
        self.follower.start_leading();
        self.leading = Some(LeaderState::new(&self.core, pending, now));
        if let Ok(mut l) = self.as_leader() {
            let flow = l.start_view_change(now);
            self.obey(flow);
        }
    }

    /// Stops leading; pending proposals go back to the forward table for the next leader.
    fn stop_leading(&mut self) {
        if let Some(ls) = self.leading.take() {
            for cmd in ls.into_pending() {
                if let Some(id) = cmd.origin {
                    if self.core.forwarded.len() < self.core.config.max_pending {
                        let f = Forwarded { cmd, seen: false, sent_at: None };
                        self.core.forwarded.insert(id, f);
                    }
                }
            }
        }
        self.core.leader = None;
        self.core.no_lead_upto = self.core.no_lead_upto.max(self.core.term);
    }

    /// Moves to `term` (persisting it if it grew) under `leader`; a leader of an older term,
    /// or one replaced by another node, steps down.
    fn observe_term(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.core.term {
            self.core.term = term;
            self.core.actions.push_back(Action::PersistTerm(term));
            self.follower.new_term();
            for f in self.core.forwarded.values_mut() {
                f.seen = false;
            }
        }
        if self.leading.is_some() && leader != Some(self.core.me) {
            self.stop_leading();
        }
        self.core.leader = leader;
    }

    // ----- messages -----

    fn dispatch(&mut self, from: NodeId, msg: OrderingMsg, now: Instant) {
        match msg {
            OrderingMsg::Propose { term, commands } => self.on_propose(from, term, commands, now),
            OrderingMsg::Ack { term, stored } => {
                if let Some(mut l) = self.leader_for(term) {
                    let flow = l.on_ack(from, stored, now);
                    self.obey(flow);
                }
            }
            OrderingMsg::Nack { term, from: lo, to } => {
                if let Some(mut l) = self.leader_for(term) {
                    l.on_nack(from, lo, to, now);
                    if l.is_gathering() {
                        self.stats.nack_while_gathering += 1;
                    }
                }
            }
            OrderingMsg::LogState { term, last, commit, suffix } => {
                if let Some(mut l) = self.leader_for(term) {
                    let flow = l.on_log_state(from, last, commit, suffix, now);
                    self.obey(flow);
                }
            }
            OrderingMsg::NotLeader { term, leader } => self.on_not_leader(term, leader, now),
            OrderingMsg::Order { term, prev, entries, commit } => {
                if self.accept_leader(from, term, now) {
                    self.follower().on_order(prev, entries, commit, now);
                }
            }
            OrderingMsg::Commit { term, commit } => {
                if self.accept_leader(from, term, now) {
                    self.follower().on_commit(commit, now);
                }
            }
            OrderingMsg::StartView { term, commit } => {
                if self.accept_leader(from, term, now) {
                    self.follower().on_start_view(commit);
                }
            }
            OrderingMsg::NewView { term, from: lo, prev, entries, commit } => {
                if self.accept_leader(from, term, now) {
                    self.follower().on_new_view(lo, prev, entries, commit, now);
                }
            }
            OrderingMsg::Snapshot { term, last_included, members, offset, chunk, done } => {
                if self.accept_leader(from, term, now) {
                    let part = Incoming { last_included, members, bytes: chunk };
                    self.follower().on_snapshot_chunk(part, offset, done);
                }
            }
        }
    }

    /// The leader's handler for a member-to-leader message of `term`, or `None` (counted):
    /// a higher term deposes this node (and the message is dropped), an older one is stale,
    /// and this node may not lead the term.
    fn leader_for(&mut self, term: Term) -> Option<LeaderHandler<'_>> {
        if term > self.core.term {
            self.observe_term(term, None);
            return None;
        }
        if term < self.core.term {
            self.stats.stale_member_msg += 1;
            return None;
        }
        if self.leading.is_none() {
            self.stats.not_leading += 1;
            return None;
        }
        self.as_leader().ok()
    }

    /// Proposals forwarded by a member: sequenced if this node leads, else answered with
    /// `NotLeader`.
    fn on_propose(&mut self, from: NodeId, term: Term, cmds: Vec<Command>, now: Instant) {
        if term > self.core.term {
            self.observe_term(term, None);
        }
        match self.as_leader() {
            Ok(mut l) => l.on_propose(cmds, now),
            Err(NotLeading) => {
                self.stats.propose_not_leading += 1;
                let (term, leader) = (self.core.term, self.core.leader);
                self.core.send(from, OrderingMsg::NotLeader { term, leader });
            }
        }
    }

    /// Checks a leader-to-member message: refuses older terms (telling the sender), follows a
    /// higher term's leader, and refuses a second leader in one term (or any, while leading).
    fn accept_leader(&mut self, from: NodeId, term: Term, now: Instant) -> bool {
        if term < self.core.term {
            self.stats.stale_leader_msg += 1;
            let (term, leader) = (self.core.term, self.core.leader);
            self.core.send(from, OrderingMsg::NotLeader { term, leader });
            return false;
        }
        if term > self.core.term {
            self.observe_term(term, Some(from));
            self.core.resend_forwarded(now, true);
            return true;
        }
        let accepted = match self.core.leader {
            Some(l) => l == from,
            None if self.leading.is_none() => {
                self.core.leader = Some(from);
                self.core.resend_forwarded(now, true);
                true
            }
            None => false,
        };
        if !accepted {
            self.stats.not_from_leader += 1;
        }
        accepted
    }

    /// `NotLeader`: learn a higher term or the leader's identity.
    fn on_not_leader(&mut self, term: Term, leader: Option<NodeId>, now: Instant) {
        let hint = leader.filter(|l| *l != self.core.me);
        if term > self.core.term {
            self.observe_term(term, hint);
            self.core.resend_forwarded(now, true);
        } else if term == self.core.term && self.core.leader.is_none() && self.leading.is_none() {
            if let Some(l) = hint {
                self.core.leader = Some(l);
                self.core.resend_forwarded(now, true);
            }
        }
    }

    // ----- the end of every input -----

    /// Writes became durable: the leader counts them for the commit point, a follower
    /// acknowledges them.
    fn on_durable(&mut self) {
        match self.as_leader() {
            Ok(mut l) => {
                let flow = l.on_durable();
                self.obey(flow);
            }
            Err(NotLeading) => self.follower().ack(),
        }
    }

    /// Emits pending writes, the leader's messages and deliveries, then checks invariants.
    /// Every input ends here.
    fn finish(&mut self, now: Instant) {
        self.core.emit_write();
        if let Ok(mut l) = self.as_leader() {
            let flow = l.flush(now);
            self.obey(flow);
        }
        self.core.deliver();
        debug_assert!({
            self.check_invariants();
            true
        });
    }

    /// Checks every documented invariant; panics on a violation (a bug in this crate).
    pub fn check_invariants(&self) {
        let c = &self.core;
        c.check_invariants();
        self.follower.check_invariants(&c.config, c.commit, c.log.last().seq);
        if let Some(l) = &self.leading {
            assert_eq!(c.leader, Some(c.me), "leading without being the leader");
            assert_eq!(self.follower.matched(), None, "in sync with a leader while leading");
            l.check_invariants(&c.config, c.log.last().seq, c.commit);
        }
    }
}
