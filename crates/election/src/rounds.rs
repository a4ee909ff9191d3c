//! The protocol steps: the LCR token phase and the `Elected` acceptance phase.

use std::time::Instant;

use auction_proto::NodeId;
use auction_proto::msg::peer::{Candidate, ElectionMsg};
use rand::RngCore;

use crate::Action;
use crate::election::{Election, Role};

impl<R: RngCore> Election<R> {
    /// Begins an election for `term + 1` with this node's own candidate.
    pub(crate) fn start_election(&mut self, now: Instant) {
        if !self.ring.is_member(self.me) {
            // Removed from the configuration: a running round is over (its deadline would
            // otherwise stay in the past forever and the driver would spin on it).
            if matches!(self.role, Role::Electing { .. } | Role::Announcing { .. }) {
                self.role = Role::Idle;
            }
            self.live.pre_vote = None;
            return;
        }
        let Some(term) = self.term.checked_next() else {
            return; // u64::MAX terms: unreachable in practice, and never wrap.
        };
        self.enter_term(term);
        self.live.pre_vote = None;
        self.live.failures = 0;
        let deadline = self.deadline(now);
        self.role = Role::Electing { deadline };
        let own = self.round.own;
        self.round.best_sent = Some(own);
        self.pass_token(own, vec![self.me]);
    }

    /// A token of the current term (already adopted if it was newer).
    pub(crate) fn on_token(
        &mut self,
        candidate: Candidate,
        mut visited: Vec<NodeId>,
        now: Instant,
    ) {
        if self.accepted.is_some() || !matches!(self.role, Role::Idle | Role::Electing { .. }) {
            return; // the term's leader is decided for this node: swallow.
        }
        if self.role == Role::Idle {
            let deadline = self.deadline(now);
            self.role = Role::Electing { deadline };
            self.live.pre_vote = None; // it joined a round, whose deadline retries
        }
        if !self.ring.is_member(self.me) {
            self.relay_token(candidate, visited);
            return;
        }
        let own = self.round.own;
        if candidate.node == self.me {
            if candidate == own && self.round.best_sent == Some(own) {
                self.on_own_token(visited);
            }
            return; // an outdated token of ours (earlier candidate, or superseded): swallow.
        }
        let best = candidate.max(own);
        if self.round.best_sent.is_some_and(|sent| sent >= best) {
            return; // LCR: smaller than what we already sent on (or a duplicate): swallow.
        }
        self.round.best_sent = Some(best);
        if best == candidate {
            if !visited.contains(&self.me) {
                visited.push(self.me);
            }
            self.pass_token(candidate, visited);
        } else {
            self.pass_token(own, vec![self.me]);
        }
    }

    /// A node outside its own configuration (removed, or re-added while its log does not show
    /// it yet) passes the largest candidate it has seen in the term on, adding itself to the
    /// path, without comparing it with a candidacy of its own: it has none, since it never
    /// starts an election. The others may route their ring through it, so it must pass tokens
    /// on or the ring is cut. Its place on the path counts as a vote only in the
    /// configurations that hold it (`Ring::is_majority`), exactly as a member's does: the
    /// acceptance it may give later is durable and unique per term like anyone's, and safety
    /// rests on nothing else (docs/election.md).
    fn relay_token(&mut self, candidate: Candidate, mut visited: Vec<NodeId>) {
        if candidate.node == self.me || self.round.relayed.is_some_and(|r| r >= candidate) {
            // Our own token from before the removal, or (LCR) smaller than what we already
            // passed on, or a duplicate.
            return;
        }
        self.round.relayed = Some(candidate);
        if !visited.contains(&self.me) {
            visited.push(self.me);
        }
        self.pass_token(candidate, visited);
    }

    /// Our own token came back having passed through `visited`.
    fn on_own_token(&mut self, visited: Vec<NodeId>) {
        let Role::Electing { deadline } = self.role else {
            return; // already announcing (a duplicate token) or decided.
        };
        if !self.ring.is_majority(&visited) {
            // No majority of this node's configuration on the path: another member's ring
            // can be older (it lacks an `AddMember` this node holds) and have sent the token
            // straight back. Send it on to a member of this ring it has not passed, instead
            // of retrying with a higher term forever; with none left, the deadline retries.
            if let Some(next) = self.ring.next_not_in(&visited) {
                let msg =
                    ElectionMsg::Token { term: self.term, candidate: self.round.own, visited };
                self.send(next, msg);
            }
            return;
        }
        self.accepted = Some(self.me);
        self.push(Action::PersistTerm { term: self.term, accepted: Some(self.me) });
        self.role = Role::Announcing { deadline };
        self.pass_elected(self.me, vec![self.me]);
    }

    /// An `Elected` of the current term (already adopted if it was newer).
    pub(crate) fn on_elected(&mut self, leader: NodeId, mut participants: Vec<NodeId>) {
        if leader == self.me {
            self.on_own_elected(participants);
            return;
        }
        if self.round.elected_forwarded {
            return; // a duplicate, or a second lap after ring repair.
        }
        self.round.elected_forwarded = true;
        if self.try_accept(leader) && !participants.contains(&self.me) {
            participants.push(self.me);
        }
        let idle = matches!(self.role, Role::Idle | Role::Electing { .. });
        if idle && self.accepted.is_none_or(|a| a == leader) {
            self.follow(leader);
        }
        self.pass_elected(leader, participants);
    }

    /// Accepts `leader` for the term if this node has not accepted another, sent on `leader`'s
    /// token as its best candidate (or relayed it as the largest while outside its
    /// configuration), and `leader`'s log is at least as up to date as this node's real log.
    /// A member's best candidate is at least its own, so for it the last check is implied;
    /// it matters for a relay and for a node that stepped down, which forward candidates
    /// without comparing them with their real log. Without it, two leaders could win one term
    /// while logs hold different uncommitted configurations (Raft's vote rule closes exactly
    /// that; see docs/election.md). Returns whether `leader` is the accepted one.
    fn try_accept(&mut self, leader: NodeId) -> bool {
        let candidate = [self.round.best_sent, self.round.relayed]
            .into_iter()
            .flatten()
            .find(|c| c.node == leader);
        match (self.accepted, candidate) {
            (Some(accepted), _) => accepted == leader,
            (None, Some(c)) if c.last_log >= self.last_log || self.skips_vote_check() => {
                self.accepted = Some(leader);
                self.push(Action::PersistTerm { term: self.term, accepted: Some(leader) });
                true
            }
            (None, _) => false,
        }
    }

    /// Our own `Elected` came back with the acceptors in `participants`.
    fn on_own_elected(&mut self, participants: Vec<NodeId>) {
        if !matches!(self.role, Role::Announcing { .. }) {
            return; // not ours to take (restarted, already leading).
        }
        if !self.ring.is_majority(&participants) {
            // As for the token: on to a member of this ring the announcement has not reached.
            if let Some(next) = self.ring.next_not_in(&participants) {
                let msg = ElectionMsg::Elected { term: self.term, leader: self.me, participants };
                self.send(next, msg);
            }
            return;
        }
        self.role = Role::Leader;
        self.abstain_until = None;
        self.start_heartbeats();
        self.push(Action::Elected { term: self.term, leader: self.me, participants });
    }

    /// Sends a token to the successor; with none, our own token has come full circle.
    fn pass_token(&mut self, candidate: Candidate, visited: Vec<NodeId>) {
        match self.ring.successor() {
            Some(to) => {
                let msg = ElectionMsg::Token { term: self.term, candidate, visited };
                self.send(to, msg);
            }
            None if candidate.node == self.me => self.on_own_token(visited),
            None if self.ring.is_empty() => {
                let msg = ElectionMsg::Token { term: self.term, candidate, visited };
                self.relay_to_known(&msg);
            }
            None => {} // nobody believed alive to pass it to: the deadline retries.
        }
    }

    /// Sends an `Elected` to the successor; with none, our own has come full circle.
    fn pass_elected(&mut self, leader: NodeId, participants: Vec<NodeId>) {
        match self.ring.successor() {
            Some(to) => {
                let msg = ElectionMsg::Elected { term: self.term, leader, participants };
                self.send(to, msg);
            }
            None if leader == self.me => self.on_own_elected(participants),
            None if self.ring.is_empty() => {
                let msg = ElectionMsg::Elected { term: self.term, leader, participants };
                self.relay_to_known(&msg);
            }
            None => {}
        }
    }

    fn send(&mut self, to: NodeId, msg: ElectionMsg) {
        self.round.last_sent = Some((to, msg.clone()));
        self.push(Action::Send { to, msg });
    }

    /// Resends the term's last message to the (new) successor after the old one went down.
    pub(crate) fn resend_last(&mut self) {
        let Some((_, msg)) = self.round.last_sent.take() else {
            return;
        };
        match msg {
            ElectionMsg::Token { candidate, visited, .. } => self.pass_token(candidate, visited),
            ElectionMsg::Elected { leader, participants, .. } => {
                self.pass_elected(leader, participants);
            }
            ElectionMsg::Heartbeat { .. }
            | ElectionMsg::PreVote { .. }
            | ElectionMsg::PreVoteReply { .. }
            | ElectionMsg::TimeoutNow { .. } => {}
        }
    }
}
