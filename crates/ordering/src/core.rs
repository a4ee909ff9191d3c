//! [`Core`]: the state every role shares (term, log, durability, the forward table, the
//! outbox) and the bookkeeping on it. The role handlers ([`crate::leader::LeaderHandler`],
//! [`crate::follower::FollowerHandler`]) borrow it next to their own state; it knows
//! neither of them.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use auction_proto::msg::log::{Command, EntryPayload, LogEntry, RequestId};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{NodeId, Seq, Term, Timestamp};

use crate::log::Log;
use crate::ordering::Faults;
use crate::{Action, Bound, OrderingConfig, OrderingError, Snapshot, StoreId};

/// A proposal this member submitted and has not seen delivered yet (JGroups' forward table).
#[derive(Clone, Debug)]
pub(crate) struct Forwarded {
    pub(crate) cmd: Command,
    /// Seen in the log in the current term (not resent on ticks; resent on leader change).
    pub(crate) seen: bool,
    /// When it was last sent to a leader.
    pub(crate) sent_at: Option<Instant>,
}

/// The state of one member that does not depend on its role.
///
/// Invariants (checked by [`Core::check_invariants`]): `applied <= commit <= last log seq`;
/// the snapshot point is at most `commit`; every log entry's term is at most `term`;
/// `durable <= last log seq`; pending stores are in id order; `forwarded` within its bound.
#[derive(Debug)]
pub(crate) struct Core {
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
    next_store: u64,
    /// Log changes of the current input not yet emitted as a `Store`: `(from, entries)`.
    pub(crate) write: Option<(Seq, Vec<LogEntry>)>,
    pub(crate) forwarded: BTreeMap<RequestId, Forwarded>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) clock: Option<auction_proto::WallAnchor>,
    /// The outbox, drained by `Ordering::poll_action`.
    pub(crate) actions: VecDeque<Action>,
    pub(crate) tick_at: Instant,
    pub(crate) faults: Faults,
}

impl Core {
    /// A core holding `log` in `term`, with everything up to `applied` delivered.
    pub(crate) fn new(
        me: NodeId,
        config: OrderingConfig,
        term: Term,
        log: Log,
        snapshot: Option<Snapshot>,
        applied: Seq,
        now: Instant,
    ) -> Self {
        Self {
            me,
            tick_at: now + config.tick,
            config,
            term,
            leader: None,
            no_lead_upto: term,
            commit: applied,
            applied,
            durable: log.last().seq,
            log,
            stores: VecDeque::new(),
            next_store: 1,
            write: None,
            forwarded: BTreeMap::new(),
            snapshot,
            clock: None,
            actions: VecDeque::new(),
            faults: Faults::default(),
        }
    }

    /// The sequencer's clock at `now`, never below the log's last timestamp.
    pub(crate) fn wall_now(&self, now: Instant) -> Timestamp {
        let clock = self.clock.map_or(Timestamp::default(), |c| c.wall_at(now));
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

    /// Confirms every store up to `id`.
    ///
    /// # Errors
    /// `UnknownStore` if `id` was never issued or is already confirmed; nothing changed.
    pub(crate) fn confirm_store(&mut self, id: StoreId) -> Result<(), OrderingError> {
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
        Ok(())
    }

    /// Emits the pending write of this input as one `Store`.
    pub(crate) fn emit_write(&mut self) {
        if let Some((from, entries)) = self.write.take() {
            let upto = entries.last().map_or(from.prev(), |e| e.seq);
            let id = self.issue_store(upto);
            self.actions.push_back(Action::Store { id, from, entries });
        }
    }

    /// Delivers committed, durable entries in order.
    pub(crate) fn deliver(&mut self) {
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

    // ----- the forward table (JGroups SEQUENCER) -----

    /// A proposal at a member that does not lead: tracked until delivered, sent to the leader.
    ///
    /// # Errors
    /// `Unavailable` (an untracked command and no leader) or `Overloaded`; nothing changed.
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

    /// Checks the invariants above; panics on a violation (a bug in this crate).
    pub(crate) fn check_invariants(&self) {
        let last = self.log.last();
        self.log.check_invariants();
        assert!(self.applied <= self.commit, "applied beyond commit");
        assert!(self.commit <= last.seq, "commit beyond the log");
        assert!(self.log.base().seq <= self.commit, "snapshot beyond commit");
        assert!(last.term <= self.term, "log entry from a future term");
        assert!(self.durable <= last.seq, "durable beyond the log");
        assert!(self.stores.iter().zip(self.stores.iter().skip(1)).all(|(a, b)| a.0 < b.0));
        assert!(self.forwarded.len() <= self.config.max_pending, "forward table over bound");
    }
}
