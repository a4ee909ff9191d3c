//! The composition: each core's outputs become the other cores' inputs or replica actions.

use std::time::Instant;

use auction_core::AuctionMachine;
use auction_membership::{AnnounceStatus, MembershipEvent};
use auction_proto::Seq;
use auction_proto::msg::log::{Command, EntryPayload, LogEntry};
use auction_proto::msg::peer::PeerBody;

use crate::replica::MAX_TRACKED_PEERS;
use crate::{Action, Replica};

/// Most rounds of core-to-core propagation per input (each round drains every core).
const MAX_ROUNDS: usize = 64;

impl Replica {
    /// Drains every core until all are quiet, feeding outputs across; then runs the duties
    /// and drains what they caused.
    pub(crate) fn pump(&mut self, now: Instant) {
        let mut duties_done = false;
        let mut quiet = false;
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            while let Some(a) = self.membership.poll_action() {
                busy = true;
                self.on_membership(a, now);
            }
            while let Some(a) = self.election.poll_action() {
                busy = true;
                self.on_election(a, now);
            }
            while let Some(a) = self.ordering.poll_action() {
                busy = true;
                self.on_ordering(a, now);
            }
            self.sync(now);
            if !busy {
                if duties_done {
                    quiet = true;
                    break;
                }
                // Once the cores are quiet: leader duties, whose outputs the next round drains.
                self.duties(now);
                duties_done = true;
            }
        }
        if !quiet {
            // The cores kept feeding each other for MAX_ROUNDS rounds: a livelock between
            // them (a bug of ours). What is left is drained after the next input; counted,
            // and fatal in debug builds (the simulation's), so a seed that reaches it fails.
            self.stats.pump_overruns += 1;
            debug_assert!(false, "the cores did not settle within {MAX_ROUNDS} rounds");
        }
        let role = (self.role(), self.term(), self.leader());
        if role != self.role {
            self.role = role;
            self.actions.push_back(Action::Role { role: role.0, term: role.1, leader: role.2 });
            self.announce_status();
        }
    }

    pub(crate) fn announce_status(&mut self) {
        let status =
            AnnounceStatus { leader: self.leader(), term: self.term(), clients: self.clients };
        self.membership.set_announce_status(status);
    }

    fn on_membership(&mut self, action: auction_membership::Action, now: Instant) {
        match action {
            auction_membership::Action::Send { node, addr, msg } => self.send_to(node, addr, msg),
            auction_membership::Action::Broadcast { to, msg } => {
                self.actions.push_back(Action::Broadcast { to, body: msg });
            }
            auction_membership::Action::Event(e) => self.on_member_event(e, now),
        }
    }

    fn on_member_event(&mut self, event: MembershipEvent, now: Instant) {
        match event {
            MembershipEvent::Joined(info) => {
                self.left.remove(&info.node);
                self.down_since.remove(&info.node);
                self.election.handle_alive(info.node);
            }
            MembershipEvent::Alive(n) => {
                self.down_since.remove(&n);
                self.election.handle_alive(n);
            }
            MembershipEvent::Suspect(_) => {}
            MembershipEvent::Down(n) | MembershipEvent::Left(n) => {
                if matches!(event, MembershipEvent::Left(_)) && self.left.len() < MAX_TRACKED_PEERS
                {
                    self.left.insert(n);
                }
                if self.down_since.len() < MAX_TRACKED_PEERS {
                    self.down_since.entry(n).or_insert(now);
                }
                self.election.handle_down(n);
                if self.leader() == Some(n) {
                    self.election.handle_leader_lost(now);
                }
            }
        }
    }

    fn on_election(&mut self, action: auction_election::Action, now: Instant) {
        use auction_election::Action as E;
        match action {
            E::PersistTerm { .. } => self.persist_term(),
            E::Send { to, msg } => self.route(to, PeerBody::Election(msg)),
            E::Elected { term, .. } => {
                if self.ordering.handle_leader(term, self.me.node, now).is_err() {
                    self.election.handle_leader_lost(now);
                }
            }
            E::FollowLeader { term, leader } => {
                let _ = self.ordering.handle_leader(term, leader, now);
            }
            E::StepDown { term } => self.ordering.handle_step_down(term, now),
        }
    }

    fn on_ordering(&mut self, action: auction_ordering::Action, now: Instant) {
        use auction_ordering::Action as O;
        match action {
            O::PersistTerm(_) => self.persist_term(),
            O::Send { to, msg } => self.route(to, PeerBody::Ordering(msg)),
            O::Store { id, from, entries } => {
                if self.acks_on_sequence() && self.ordering.leader() == Some(self.me.node) {
                    self.ack_early(&entries);
                }
                self.actions.push_back(Action::Store { id, from, entries });
            }
            O::InstallSnapshot { id, snapshot } => {
                let restored = crate::held::unwrap(&snapshot.bytes)
                    .and_then(|(held, bytes)| Some((held, AuctionMachine::restore(bytes).ok()?)));
                match restored {
                    Some((held, m)) => {
                        self.machine = m;
                        self.held = held;
                    }
                    None => {
                        // Installing the log without the state would diverge silently.
                        self.stats.restore_failures += 1;
                        let reason = "a snapshot from a member does not decode";
                        self.actions.push_back(Action::Halt { reason });
                        return;
                    }
                }
                self.last_snapshot = snapshot.last_included.seq;
                self.actions.push_back(Action::InstallSnapshot { id, snapshot });
            }
            O::Deliver { entries } => self.apply(entries, now),
            O::Leading { .. } | O::Unavailable { .. } => {}
            // A leader that has heard no majority for `step_down_after` gives up leading
            // (Raft's CheckQuorum): its pre-vote then finds out whether the others still
            // have it, and its report says `Candidate`, no leader, instead of `Leader`.
            O::QuorumLost { .. } => {
                self.stats.quorum_lost += 1;
                self.election.handle_leader_lost(now);
            }
            O::Abdicate { .. } => self.election.handle_leader_lost(now),
        }
    }

    /// Applies committed entries in order, reports outcomes and events, snapshots.
    fn apply(&mut self, entries: Vec<LogEntry>, now: Instant) {
        for entry in entries {
            let applied = self.machine.apply(&entry);
            if let EntryPayload::Command(Command { origin: Some(request), .. }) = &entry.payload {
                if !self.acks_on_sequence() {
                    let (request, seq) = (*request, entry.seq);
                    let outcome = applied.outcome;
                    self.actions.push_back(Action::Complete { request, seq, outcome });
                }
            }
            if let EntryPayload::Config(change) = &entry.payload {
                crate::held::apply(&mut self.held, change);
                let voters = self.ordering.members_at(entry.seq);
                let (seq, change) = (entry.seq, change.clone());
                self.actions.push_back(Action::Configuration { seq, change, voters });
            }
            if !applied.events.is_empty() {
                let (seq, at, events) = (entry.seq, entry.timestamp, applied.events);
                self.actions.push_back(Action::Events { seq, at, events });
            }
            if self.observe {
                self.actions.push_back(Action::Applied { entry });
            }
        }
        let applied = self.machine.last_applied();
        if applied.0.saturating_sub(self.last_snapshot.0) >= self.config.snapshot_every {
            self.take_snapshot(applied, now);
        }
    }

    pub(crate) fn take_snapshot(&mut self, at: Seq, now: Instant) {
        let bytes = crate::held::wrap(&self.held, self.machine.snapshot());
        if self.ordering.handle_snapshot_taken(at, bytes, now).is_ok() {
            self.last_snapshot = at;
            if let Some(snapshot) = self.ordering.snapshot().cloned() {
                self.actions.push_back(Action::SaveSnapshot { snapshot });
            }
        }
    }

    /// Planted bug: answer clients when the leader sequences (before a majority holds it).
    fn ack_early(&mut self, entries: &[LogEntry]) {
        let mut guess = self.machine.clone();
        let mut seq = guess.last_applied().next();
        let last = entries.last().map_or(Seq::ZERO, |e| e.seq);
        while seq <= last {
            let Some(e) = self.ordering.entry(seq).cloned() else { break };
            let out = guess.apply(&e);
            if let EntryPayload::Command(Command { origin: Some(request), .. }) = &e.payload {
                if entries.iter().any(|x| x.seq == seq) {
                    let (request, outcome) = (*request, out.outcome);
                    self.actions.push_back(Action::Complete { request, seq, outcome });
                }
            }
            seq = seq.next();
        }
    }

    /// Emits the merged `(term, vote)` if it changed.
    fn persist_term(&mut self) {
        let term = self.term();
        let accepted = if self.election.term() == term { self.election.accepted() } else { None };
        if (term, accepted) != self.persisted {
            self.persisted = (term, accepted);
            self.actions.push_back(Action::PersistTerm { term, accepted });
        }
    }

    /// Keeps the election in step with the ordering core: members, last log, term.
    fn sync(&mut self, now: Instant) {
        let members = self.members();
        if members != self.members {
            self.members = members.clone();
            self.election.handle_members(members);
            let infos = self.ordering.members().to_vec();
            self.membership.handle_configured(&infos, now);
        }
        self.feed_relay_targets();
        self.sync_standing(now);
        let last = self.ordering.last_log();
        if last != self.last_log {
            self.last_log = last;
            self.election.handle_last_log(last);
        }
        let term = self.ordering.term();
        if term > self.election.term() {
            match self.ordering.leader().filter(|l| *l != self.me.node) {
                Some(l) => self.election.handle_leader_heard(l, term, now),
                None => {
                    // Adopt the term first: an election from the stale term would only send
                    // tokens the nodes at `term` refuse.
                    let was_leader = self.election.is_leader();
                    self.election.handle_term(term);
                    if was_leader {
                        self.election.handle_leader_lost(now);
                    }
                }
            }
        }
        // A leader that removed itself stops leading once the removal commits, perhaps before
        // its followers learn of the commit; nothing else would tell them to elect, since the
        // old leader is alive: its followers would keep following it for good.
        if self.ordering.leader_removed()
            && matches!(self.election.status(), auction_election::Status::Following(_))
        {
            self.election.handle_leader_lost(now);
        }
        let idle = self.election.status() == auction_election::Status::Idle;
        if self.is_member() && idle && self.leader().is_none() && self.leaving.is_none() {
            self.leaderless_since.get_or_insert(now);
        } else {
            self.leaderless_since = None;
        }
    }
}
