//! The view change of a new leader (VR's): gather the log state of a majority, adopt the most
//! up-to-date log, sequence a `Noop` of the term and bring every member in sync; the view
//! change ends when the `Noop` commits (`LeaderHandler::flush`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use auction_proto::msg::log::{Command, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, NodeId, Seq};

use super::{Flow, LeaderHandler, LeaderState, StepDown};
use crate::Action;
use crate::core::Core;
use crate::log::{apply_change, is_majority};

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
    last: LogPosition,
    commit: Seq,
    /// Its entries after the leader's commit point; `None` if it could not send them all.
    suffix: Option<Vec<LogEntry>>,
}

impl LeaderState {
    /// The state of a leader of `core.term` starting its view change at `now`, with its own
    /// log state gathered and `pending` proposals buffered.
    pub(crate) fn new(core: &Core, pending: VecDeque<Command>, now: Instant) -> Self {
        let own = Gathered { last: core.log.last(), commit: core.commit, suffix: Some(Vec::new()) };
        Self {
            phase: Phase::Gathering { states: BTreeMap::from([(core.me, own)]) },
            since: now,
            gather_commit: core.commit,
            progress: super::ProgressTracker::default(),
            pending,
            learners: super::Learners::default(),
            unavailable: false,
            quorum_lost: false,
        }
    }
}

impl LeaderHandler<'_> {
    /// Starts the view change: asks every other member for its log state (a configuration
    /// of one is done at once).
    pub(crate) fn start_view_change(&mut self, now: Instant) -> Flow {
        let core = &mut *self.core;
        let members: Vec<NodeId> = core.log.members().iter().map(|m| m.node).collect();
        let me = core.me;
        for n in members.into_iter().filter(|n| *n != me) {
            core.send(n, OrderingMsg::StartView { term: core.term, commit: core.commit });
        }
        self.try_finish_gather(now)
    }

    /// A `LogState` of this term: a view-change answer, or later a request to be brought in
    /// sync (answered with a `NewView` from its commit point).
    pub(crate) fn on_log_state(
        &mut self,
        from: NodeId,
        last: LogPosition,
        commit: Seq,
        suffix: Vec<LogEntry>,
        now: Instant,
    ) -> Flow {
        self.ls.progress.heard(from, now);
        let gc = self.ls.gather_commit;
        let member = self.core.log.is_member(from);
        let Phase::Gathering { states } = &mut self.ls.phase else {
            self.send_new_view(from, commit);
            return Flow::Continue(());
        };
        if !member {
            // A learner's log never decides the view change; it is synced afterwards.
            return Flow::Continue(());
        }
        let complete = last.seq <= gc
            || (suffix.first().map(|e| e.seq) == Some(gc.next())
                && suffix.last().map(|e| e.seq) == Some(last.seq));
        let suffix = complete.then_some(suffix);
        states.insert(from, Gathered { last, commit, suffix });
        self.try_finish_gather(now)
    }

    /// Ends the view change once a majority answered: adopts the best log, sequences a `Noop`.
    fn try_finish_gather(&mut self, now: Instant) -> Flow {
        let core = &mut *self.core;
        let Phase::Gathering { states } = &self.ls.phase else { return Flow::Continue(()) };
        let skip = core.faults.skips_view_change();
        if !skip && !is_majority(core.log.members(), |n| states.contains_key(&n)) {
            return Flow::Continue(());
        }
        let me = core.me;
        let chosen = match skip {
            true => states.get_key_value(&me),
            false => states.iter().max_by_key(|(n, g)| (g.last, **n == me)),
        };
        let Some((&best, chosen)) = chosen else {
            return Flow::Continue(());
        };
        let Some(suffix) = chosen.suffix.clone() else {
            core.actions.push_back(Action::Abdicate { term: core.term, ahead: best });
            return Flow::Break(StepDown);
        };
        let best_last = chosen.last;
        let gather_commit = self.ls.gather_commit;
        // The chosen log's configuration must also have answered by a majority.
        let mut members = core.log.members_at(gather_commit).to_vec();
        for e in &suffix {
            if let EntryPayload::Config(change) = &e.payload {
                apply_change(&mut members, change);
            }
        }
        if best != me && !is_majority(&members, |n| states.contains_key(&n)) {
            let missing: Vec<NodeId> =
                members.iter().map(|m| m.node).filter(|n| !states.contains_key(n)).collect();
            for n in missing {
                core.send(n, OrderingMsg::StartView { term: core.term, commit: gather_commit });
            }
            return Flow::Continue(());
        }
        let Phase::Gathering { states } = std::mem::replace(&mut self.ls.phase, Phase::Active)
        else {
            return Flow::Continue(());
        };
        if best != me {
            adopt(core, suffix, best_last);
        }
        let noop = self.sequence(EntryPayload::Noop, now);
        self.ls.phase = Phase::Adopting { noop };
        for (n, g) in states {
            if n != me {
                self.send_new_view(n, g.commit);
            }
        }
        Flow::Continue(())
    }
}

/// Makes the leader's log the chosen one: `suffix` follows the gather commit point and ends
/// at `best_last`.
fn adopt(core: &mut Core, suffix: Vec<LogEntry>, best_last: LogPosition) {
    for e in suffix {
        if e.seq <= core.commit || e.seq <= core.log.base().seq {
            continue;
        }
        match core.log.term_at(e.seq) {
            Some(t) if t == e.term => {}
            Some(_) => {
                core.truncate(e.seq);
                core.append(e);
            }
            None => core.append(e),
        }
    }
    if core.log.last().seq > best_last.seq && best_last.seq >= core.commit {
        core.truncate(best_last.seq.next());
    }
}
