//! The [`Ordering`] state machine: state, construction, inputs shared by every role, and the
//! bookkeeping of durability, delivery and terms.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{Command, ConfigChange, EntryPayload, LogEntry, RequestId};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, NodeId, Seq, Term, Timestamp};

use crate::holdback::HoldBack;
use crate::leader::LeaderState;
use crate::log::Log;
use crate::{Action, Bound, OrderingConfig, OrderingError, Snapshot, StoreId};

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

/// A proposal this member submitted and has not seen delivered yet (JGroups' forward table).
#[derive(Clone, Debug)]
pub(crate) struct Forwarded {
    pub(crate) cmd: Command,
    /// Seen in the log in the current term (not resent on ticks; resent on leader change).
    pub(crate) seen: bool,
    /// When it was last sent to a leader.
    pub(crate) sent_at: Option<Instant>,
}

/// A snapshot being reassembled from chunks.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    pub(crate) last_included: LogPosition,
    pub(crate) members: Vec<NodeInfo>,
    pub(crate) bytes: Vec<u8>,
}

/// One member's total-order multicast core. See the crate documentation for the contract.
///
/// Invariants (checked by [`Ordering::check_invariants`] after every input):
/// - `applied <= commit <= last log seq`, `log.base.seq <= applied`-or-installing;
/// - every log entry's term is at most `term`; the log's own invariants hold;
/// - `matched`, when set, lies between `commit` and the last log seq;
/// - `durable <= last log seq`; pending stores are in id order;
/// - the hold-back queue holds only entries after `matched`, within its bound;
/// - `forwarded`, the leader's pending proposals and the snapshot buffer stay within bounds;
/// - a leader state exists only when `leader == Some(me)`.
#[derive(Debug)]
pub struct Ordering {
    pub(crate) me: NodeId,
    pub(crate) config: OrderingConfig,
    pub(crate) term: Term,
    pub(crate) leader: Option<NodeId>,
    /// This node may not lead any term up to here (it restarted or stepped down in it).
    pub(crate) no_lead_upto: Term,
    pub(crate) log: Log,
    pub(crate) commit: Seq,
    pub(crate) applied: Seq,
    /// The durable log equals the in-memory log up to here.
    pub(crate) durable: Seq,
    /// Issued, unconfirmed writes: id and the seq the durable log will match up to.
    pub(crate) stores: VecDeque<(StoreId, Seq)>,
    pub(crate) next_store: u64,
    /// Log changes of the current input not yet emitted as a `Store`: `(from, entries)`.
    pub(crate) write: Option<(Seq, Vec<LogEntry>)>,
    /// Follower: the log up to here equals the log of the leader of `term`.
    pub(crate) matched: Option<Seq>,
    pub(crate) holdback: HoldBack,
    pub(crate) forwarded: BTreeMap<RequestId, Forwarded>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) incoming: Option<Incoming>,
    pub(crate) leading: Option<LeaderState>,
    pub(crate) clock: Option<(Instant, Timestamp)>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) tick_at: Instant,
    pub(crate) nacked: Option<(Seq, Instant)>,
    /// The last `Ack` sent: its term and stored point (see `Ordering::ack_if_moved`).
    pub(crate) last_ack: Option<(Term, Seq)>,
    /// Follower: the term in which it caught up with the leader's commit point while in sync.
    pub(crate) commit_learned: Option<Term>,
    pub(crate) faults: Faults,
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
        let matched = (term > Term::ZERO && last.term == term).then_some(last.seq);
        let core = Self {
            me,
            holdback: HoldBack::new(config.max_held_back),
            tick_at: now + config.tick,
            config,
            term,
            leader: None,
            no_lead_upto: term,
            log,
            commit: applied,
            applied,
            durable: last.seq,
            stores: VecDeque::new(),
            next_store: 1,
            write: None,
            matched,
            forwarded: BTreeMap::new(),
            snapshot,
            incoming: None,
            leading: None,
            clock: None,
            actions: VecDeque::new(),
            nacked: None,
            last_ack: None,
            commit_learned: None,
            faults: Faults::default(),
        };
        core.check_invariants();
        core
    }

    // ----- accessors -----

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The highest term seen (persisted through [`Action::PersistTerm`]).
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader of [`Ordering::term`], if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    #[doc(hidden)]
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Whether this follower's leader has removed itself: the latest configuration, which
    /// does not hold the leader, is in the part of the log known to equal the leader's and
    /// not yet known to be committed. Such
    /// a leader stops leading once the removal commits, perhaps before this follower learns
    /// of the commit, so the follower should elect a new leader (whose view change adopts the
    /// removal from a majority and commits it). `false` while the follower is not yet in sync
    /// with the leader: a follower behind may lack the re-adding of its leader.
    pub fn leader_removed(&self) -> bool {
        let Some(l) = self.leader.filter(|l| *l != self.me) else { return false };
        let Some(matched) = self.matched else { return false };
        // A removal above this follower's commit point: a re-add can only follow a committed
        // removal, and the follower learns that commit with the entries that carry it, so a
        // follower whose first batch ends between a removal and a re-add does not depose a
        // re-added leader (found by review).
        let commit = self.commit;
        !self.log.is_member(l)
            && self.log.last_config_seq().is_some_and(|s| s <= matched && s > commit)
    }

    /// Whether this node leads and has finished its view change.
    pub fn is_leading(&self) -> bool {
        self.leading.as_ref().is_some_and(LeaderState::is_active)
    }

    /// Position of the last log entry: the election's candidate rule compares these.
    pub fn last_log(&self) -> LogPosition {
        self.log.last()
    }

    /// The highest seq known committed.
    pub fn commit(&self) -> Seq {
        self.commit
    }

    /// The highest seq delivered.
    pub fn applied(&self) -> Seq {
        self.applied
    }

    /// The voting members of the latest configuration in the log (committed or not).
    pub fn members(&self) -> &[NodeInfo] {
        self.log.members()
    }

    /// Whether this node can answer clients from its state: it leads and finished its view
    /// change, or it follows the leader of the current term in sync and has caught up with
    /// a commit point that leader announced (everything committed up to it is applied). A node that has just
    /// started or lost its leader is not ready: its state may be older than what a client
    /// already saw elsewhere.
    pub fn is_ready(&self) -> bool {
        match &self.leading {
            Some(ls) => ls.is_active() && !ls.unavailable,
            None => {
                self.leader.is_some_and(|l| l != self.me)
                    && self.matched.is_some()
                    && self.commit_learned == Some(self.term)
            }
        }
    }

    /// The voters of the configuration in force at `seq` (after the entry there).
    pub fn members_at(&self, seq: Seq) -> Vec<NodeId> {
        self.log.members_at(seq).iter().map(|m| m.node).collect()
    }

    /// The entry at `seq`, if still in the log.
    pub fn entry(&self, seq: Seq) -> Option<&LogEntry> {
        self.log.entry(seq)
    }

    /// The snapshot point (`(0, 0)` without a snapshot).
    pub fn snapshot_point(&self) -> LogPosition {
        self.log.base()
    }

    /// The latest snapshot taken or installed (persist it with the log for [`Persisted`]).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    // ----- outputs -----

    /// The next output, if any. Drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Ordering::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.tick_at)
    }

    // ----- inputs -----

    /// The wall clock reads `wall` at `now`; sequencer timestamps derive from this anchor.
    pub fn handle_wall_clock(&mut self, wall: Timestamp, now: Instant) {
        self.clock = Some((now, wall));
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
        if self.log.last().seq != Seq::ZERO {
            return Err(OrderingError::InvalidConfigChange { node: self.me });
        }
        let entry = LogEntry {
            term: Term::ZERO,
            seq: Seq(1),
            timestamp: self.wall_now(now),
            payload: EntryPayload::Config(ConfigChange::Bootstrap { members }),
        };
        self.append(entry);
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
        if term < self.term {
            return Err(OrderingError::StaleTerm { term, current: self.term });
        }
        if term == self.term {
            match self.leader {
                Some(known) if known == leader => return Ok(()),
                Some(known) => {
                    return Err(OrderingError::ConflictingLeader { term, known, claimed: leader });
                }
                None => {}
            }
        }
        if leader == self.me && (term <= self.no_lead_upto || !self.log.is_member(self.me)) {
            return Err(OrderingError::CannotLead { term });
        }
        self.observe_term(term, Some(leader));
        if leader == self.me {
            self.start_leading(now);
        } else {
            self.resend_forwarded(now, true);
        }
        self.finish(now);
        Ok(())
    }

    /// The election started for `term` (or this leader must stop): forget the leader; a
    /// leader of `term` steps down and will not lead `term` again.
    pub fn handle_step_down(&mut self, term: Term, now: Instant) {
        if term > self.term {
            self.observe_term(term, None);
        } else if term == self.term && self.leading.is_some() {
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
        if self.leading.is_some() {
            self.leader_propose(cmd, now)?;
        } else {
            self.forward(cmd, now)?;
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
        let seq = self.leader_config_change(change, now)?;
        self.finish(now);
        Ok(seq)
    }

    /// A message from member `from`.
    pub fn handle_message(&mut self, from: NodeId, msg: OrderingMsg, now: Instant) {
        if from != self.me {
            self.dispatch(from, msg, now);
        }
        self.finish(now);
    }

    /// Writes up to `id` are durable (stores complete in order).
    ///
    /// # Errors
    /// `UnknownStore` if `id` was never issued or is already confirmed; nothing changed.
    pub fn handle_stored(&mut self, id: StoreId, now: Instant) -> Result<(), OrderingError> {
        if !self.stores.iter().any(|(s, _)| *s == id) {
            return Err(OrderingError::UnknownStore { id: id.0 });
        }
        while let Some(&(s, upto)) = self.stores.front() {
            if s > id {
                break;
            }
            self.stores.pop_front();
            self.durable = self.durable.max(upto);
        }
        self.on_durable(now);
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
        let bad = OrderingError::BadSnapshotPoint { last_included, applied: self.applied };
        if last_included > self.applied || last_included < self.log.base().seq {
            return Err(bad);
        }
        let Some(term) = self.log.term_at(last_included) else { return Err(bad) };
        if bytes.len() > self.config.max_snapshot_bytes {
            let limit = self.config.max_snapshot_bytes;
            return Err(OrderingError::Overloaded { bound: Bound::SnapshotBytes, limit });
        }
        let members = self.log.members_at(last_included).to_vec();
        self.snapshot = Some(Snapshot {
            last_included: LogPosition { term, seq: last_included },
            members,
            bytes,
        });
        self.log.compact(last_included);
        self.finish(now);
        Ok(())
    }

    /// The clock reached [`Ordering::poll_timeout`] (early and repeated calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.tick_at {
            self.tick_at = now + self.config.tick;
            if self.leading.is_some() {
                self.leader_tick(now);
            } else {
                self.follower_tick(now);
            }
        }
        self.finish(now);
    }

    // ----- shared machinery -----

    fn dispatch(&mut self, from: NodeId, msg: OrderingMsg, now: Instant) {
        match msg {
            OrderingMsg::Propose { term, commands } => self.on_propose(from, term, commands, now),
            OrderingMsg::Ack { term, stored } => self.on_ack(from, term, stored, now),
            OrderingMsg::Nack { term, from: lo, to } => self.on_nack(from, term, lo, to, now),
            OrderingMsg::LogState { term, last, commit, suffix } => {
                self.on_log_state(from, term, last, commit, suffix, now);
            }
            OrderingMsg::NotLeader { term, leader } => self.on_not_leader(term, leader, now),
            OrderingMsg::Order { term, prev, entries, commit } => {
                if self.accept_leader(from, term, now) {
                    self.on_order(prev, entries, commit, now);
                }
            }
            OrderingMsg::Commit { term, commit } => {
                if self.accept_leader(from, term, now) {
                    self.on_commit(commit, now);
                }
            }
            OrderingMsg::StartView { term, commit } => {
                if self.accept_leader(from, term, now) {
                    self.on_start_view(commit);
                }
            }
            OrderingMsg::NewView { term, from: lo, prev, entries, commit } => {
                if self.accept_leader(from, term, now) {
                    self.on_new_view(lo, prev, entries, commit, now);
                }
            }
            OrderingMsg::Snapshot { term, last_included, members, offset, chunk, done } => {
                if self.accept_leader(from, term, now) {
                    let part = Incoming { last_included, members, bytes: chunk };
                    self.on_snapshot_chunk(part, offset, done);
                }
            }
        }
    }

    /// Moves to `term` (persisting it if it grew) under `leader`; a leader of an older term,
    /// or one replaced by another node, steps down.
    pub(crate) fn observe_term(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.actions.push_back(Action::PersistTerm(term));
            self.matched = None;
            self.holdback.clear();
            self.incoming = None;
            self.nacked = None;
            for f in self.forwarded.values_mut() {
                f.seen = false;
            }
        }
        if self.leading.is_some() && leader != Some(self.me) {
            self.stop_leading();
        }
        self.leader = leader;
    }

    /// The sequencer's clock at `now`, never below the log's last timestamp.
    pub(crate) fn wall_now(&self, now: Instant) -> Timestamp {
        let clock = self.clock.map_or(Timestamp::default(), |(at, wall)| {
            wall.saturating_add(now.saturating_duration_since(at))
        });
        clock.max(self.log.last_timestamp())
    }

    /// Appends to the log and to the pending write.
    pub(crate) fn append(&mut self, entry: LogEntry) {
        if let EntryPayload::Command(Command { origin: Some(id), .. }) = &entry.payload {
            if let Some(f) = self.forwarded.get_mut(id) {
                f.seen = true;
            }
        }
        match &mut self.write {
            Some((_, entries)) => entries.push(entry.clone()),
            None => self.write = Some((entry.seq, vec![entry.clone()])),
        }
        self.log.append(entry);
    }

    /// Drops the log from `from` on (never a committed entry).
    pub(crate) fn truncate(&mut self, from: Seq) {
        assert!(from > self.commit, "truncating committed entry {from:?}");
        self.log.truncate_from(from);
        self.durable = self.durable.min(from.prev());
        for (_, upto) in &mut self.stores {
            *upto = (*upto).min(from.prev());
        }
        self.write = match self.write.take() {
            Some((start, mut entries)) if start < from => {
                let keep = usize::try_from(from.0 - start.0).unwrap_or(usize::MAX);
                entries.truncate(keep);
                Some((start, entries))
            }
            _ => Some((from, Vec::new())),
        };
    }

    /// A fresh store id whose completion makes the durable log match up to `upto`.
    pub(crate) fn issue_store(&mut self, upto: Seq) -> StoreId {
        let id = StoreId(self.next_store);
        self.next_store += 1;
        self.stores.push_back((id, upto));
        id
    }

    /// Emits pending writes and deliveries, then checks invariants. Every input ends here.
    pub(crate) fn finish(&mut self, now: Instant) {
        if let Some((from, entries)) = self.write.take() {
            let upto = entries.last().map_or(from.prev(), |e| e.seq);
            let id = self.issue_store(upto);
            self.actions.push_back(Action::Store { id, from, entries });
        }
        if self.leading.is_some() {
            self.leader_flush(now);
        }
        self.deliver();
        debug_assert!({
            self.check_invariants();
            true
        });
    }

    /// Delivers committed, durable entries in order.
    fn deliver(&mut self) {
        let upto = self.commit.min(self.durable);
        while self.applied < upto {
            let entries = self.log.slice(self.applied.next(), upto, self.config.max_batch);
            let Some(last) = entries.last().map(|e| e.seq) else { break };
            for e in &entries {
                if let EntryPayload::Command(Command { origin: Some(id), .. }) = &e.payload {
                    self.forwarded.remove(id);
                }
            }
            self.applied = last;
            self.actions.push_back(Action::Deliver { entries });
        }
    }

    /// Queues a message.
    pub(crate) fn send(&mut self, to: NodeId, msg: OrderingMsg) {
        self.actions.push_back(Action::Send { to, msg });
    }

    /// Checks every documented invariant; panics on a violation (a bug in this crate).
    pub fn check_invariants(&self) {
        let last = self.log.last();
        self.log.check_invariants();
        assert!(self.applied <= self.commit, "applied beyond commit");
        assert!(self.commit <= last.seq, "commit beyond the log");
        assert!(self.log.base().seq <= self.commit, "snapshot beyond commit");
        assert!(last.term <= self.term, "log entry from a future term");
        assert!(self.durable <= last.seq, "durable beyond the log");
        assert!(self.stores.iter().zip(self.stores.iter().skip(1)).all(|(a, b)| a.0 < b.0));
        if let Some(m) = self.matched {
            assert!(self.commit <= m && m <= last.seq, "matched {m:?} out of range");
            self.holdback.check_invariants(m);
        } else {
            assert_eq!(self.holdback.len(), 0, "holding back while unsynced");
        }
        assert!(self.forwarded.len() <= self.config.max_pending, "forward table over bound");
        if let Some(inc) = &self.incoming {
            assert!(inc.bytes.len() <= self.config.max_snapshot_bytes, "snapshot buffer");
        }
        if let Some(l) = &self.leading {
            assert_eq!(self.leader, Some(self.me), "leading without being the leader");
            l.check_invariants(&self.config, self.log.last().seq, self.commit);
        }
    }
}
