//! The election state machine: state, inputs, outputs.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use auction_proto::msg::peer::{Candidate, ElectionMsg};
use auction_proto::{LogPosition, NodeId, Term};
use rand::{Rng, RngCore};

use crate::liveness::Liveness;
use crate::ring::Ring;
use crate::{Action, ElectionConfig, ElectionError, PersistentState};

/// Bound of the action queue. The driver drains it after every input and a handler queues at
/// most a handful of actions, so reaching it is a driver bug (checked as an invariant).
pub const MAX_PENDING_ACTIONS: usize = 256;

/// Most terms a node that stepped down runs with a demoted candidate while it follows no other
/// leader (see [`Election::step_down`]); after them it stands again, so a cluster whose other
/// members cannot win (none reachable, or none a member in its own eyes) still elects. Three:
/// with pre-vote every further term costs a pre-vote round as well, and a longer abstention
/// leaves a cluster whose only other voter has not received its configuration leaderless
/// for seconds after an operator step-down.
pub const MAX_ABSTAIN_TERMS: u64 = 3;

/// The largest configuration a node without one assumes when bounding a message's path
/// (twice this many entries): a member just added, before the configuration reached it,
/// cannot know the real size, and refusing every message would cut the ring.
/// The membership table's default bound.
pub const MAX_MEMBERS: usize = 64;

/// What the node is doing in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// No election running and no leader known (fresh start, or just joined a newer term).
    Idle,
    /// Taking part in the token phase; retries with a higher term at the deadline.
    Electing,
    /// Its own token came back through a majority: it accepted itself and its `Elected` is
    /// circulating to collect acceptances; retries with a higher term at the deadline.
    Announcing,
    /// Knows the leader of the current term.
    Following(NodeId),
    /// Leads the current term.
    Leading,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Idle,
    Electing { deadline: Instant },
    Announcing { deadline: Instant },
    Following { leader: NodeId },
    Leader,
}

/// Volatile per-term state, reset whenever the term changes (and lost on restart).
#[derive(Clone, Debug)]
pub(crate) struct Round {
    /// This node's candidate in the term, fixed when it joined the term.
    pub(crate) own: Candidate,
    /// The largest candidate this node has sent on (its own or another's). Invariant: `>= own`.
    pub(crate) best_sent: Option<Candidate>,
    /// Whether this node already passed an `Elected` on in this term (at most once).
    pub(crate) elected_forwarded: bool,
    /// The last message sent and to whom, resent if that successor is declared down.
    pub(crate) last_sent: Option<(NodeId, ElectionMsg)>,
    /// The largest candidate passed on while this node was outside its own configuration
    /// (see `Election::relay_token`). Kept apart from `best_sent`: a relay has no candidate of
    /// its own to compare with.
    pub(crate) relayed: Option<Candidate>,
}

impl Round {
    fn new(own: Candidate) -> Self {
        Self { own, best_sent: None, elected_forwarded: false, last_sent: None, relayed: None }
    }
}

/// A sans-IO LeLann-Chang-Roberts ring election for one node. See the crate docs for the
/// call-order contract.
///
/// Invariants (checked by [`Election::check_invariants`] after every handler in debug builds):
/// - leading or announcing implies `accepted == Some(me)`;
/// - following `l` implies `l != me` and `accepted` is `None` or `Some(l)`;
/// - the largest candidate sent in this term is at least the node's own;
/// - the ring's silent set lies inside the configuration; its down, silent and foreign sets
///   never hold `me` and are bounded;
/// - a pre-vote runs only while `Idle`; following implies a leader heard in the term;
/// - at most [`MAX_PENDING_ACTIONS`] actions are queued.
#[derive(Debug)]
pub struct Election<R> {
    pub(crate) me: NodeId,
    pub(crate) config: ElectionConfig,
    pub(crate) rng: R,
    pub(crate) ring: Ring,
    /// The ordering layer's last log position (the real one, also while abstaining).
    pub(crate) last_log: LogPosition,
    pub(crate) term: Term,
    pub(crate) accepted: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) round: Round,
    /// Terms up to this one are run with a demoted own candidate (after [`Election::step_down`]).
    pub(crate) abstain_until: Option<Term>,
    /// Whether it stands for leader at all (see [`Election::set_standing`]).
    pub(crate) standing: bool,
    actions: VecDeque<Action>,
    /// Test-only planted bug: accept a leader without the up-to-date check.
    pub(crate) skip_vote_check: bool,
    /// The latest `now` seen by an input.
    pub(crate) clock: Option<Instant>,
    /// Heartbeats, the leader timeout and the pre-vote (`liveness.rs`).
    pub(crate) live: Liveness,
}

impl<R: RngCore> Election<R> {
    /// A node `me` in a configuration of `members` (which should include `me`), restoring the
    /// `persisted` term and vote. It starts idle: call [`Election::start`] when no leader is
    /// known. `rng` draws the back-off; seed it in tests.
    pub fn new(
        me: NodeId,
        members: impl IntoIterator<Item = NodeId>,
        persisted: PersistentState,
        rng: R,
        config: ElectionConfig,
    ) -> Self {
        let last_log = LogPosition::default();
        let this = Self {
            me,
            config,
            rng,
            ring: Ring::new(me, members),
            last_log,
            term: persisted.term,
            accepted: persisted.accepted,
            role: Role::Idle,
            round: Round::new(Candidate { last_log, node: me }),
            abstain_until: None,
            standing: true,
            actions: VecDeque::new(),
            skip_vote_check: false,
            clock: None,
            live: Liveness::default(),
        };
        this.debug_check();
        this
    }

    // ---- inputs -------------------------------------------------------------------------

    /// No leader is known at start: begin an election (with a pre-vote, see
    /// [`ElectionConfig::pre_vote`]) unless one or a pre-vote is running or a leader is known.
    /// Idempotent.
    pub fn start(&mut self, now: Instant) {
        self.tick(now);
        if self.role == Role::Idle && self.live.pre_vote.is_none() {
            self.try_elect(now);
        }
        self.debug_check();
    }

    /// The failure detector (or the ordering layer) lost the leader: begin an election for
    /// `term + 1`, after a pre-vote, unless one or a pre-vote is already running. A leader
    /// calling this abdicates ([`Action::StepDown`] of its term while its pre-vote runs).
    pub fn handle_leader_lost(&mut self, now: Instant) {
        self.tick(now);
        let running = matches!(self.role, Role::Electing { .. } | Role::Announcing { .. });
        if !running && self.live.pre_vote.is_none() {
            self.try_elect(now);
        }
        self.debug_check();
    }

    /// An operator asked this leader to step down: it starts an election for `term + 1` in
    /// which its own candidate carries an empty log position, so any other member that takes
    /// part outranks it (LCR forwards the larger candidate). It keeps the demoted candidate
    /// until it follows another leader, for at most [`MAX_ABSTAIN_TERMS`] terms: one failed
    /// term (a token lost while a member's failure is being detected) would otherwise elect
    /// it again at once. Demoting the candidate is safe: the node still votes only for a
    /// candidate at least as up to date as its real log, and the ordering view change adopts
    /// the most up-to-date log of a majority. In a one-member ring the node is elected again.
    /// Ignored unless this node leads.
    /// A deliberate hand-over, so it skips the pre-vote (as Raft's leadership transfer).
    pub fn step_down(&mut self, now: Instant) {
        self.tick(now);
        if self.role != Role::Leader {
            return;
        }
        self.abstain_until = self.term.0.checked_add(MAX_ABSTAIN_TERMS).map(Term);
        self.start_election(now);
        self.debug_check();
    }

    /// An operator asked this leader to hand its leadership to `nominee` (`admin
    /// move-leader`, Raft's leadership transfer): every member is sent
    /// [`ElectionMsg::TimeoutNow`], the nominee last; the nominee then starts the election
    /// for the next term at once and every other member, this one included, stands aside in
    /// that term (its candidate is demoted, as after [`Election::step_down`]). This node keeps
    /// leading until that election reaches it, so if the nominee never starts one (the
    /// message was lost, it went down) nothing changes. Returns `false`, changing nothing,
    /// unless this node leads and `nominee` is another member of its ring.
    pub fn transfer(&mut self, nominee: NodeId, now: Instant) -> bool {
        self.tick(now);
        if self.role != Role::Leader || nominee == self.me || !self.ring.is_member(nominee) {
            return false;
        }
        self.abstain_until =
            self.abstain_until.max(self.term.0.checked_add(MAX_ABSTAIN_TERMS).map(Term));
        let msg = ElectionMsg::TimeoutNow { term: self.term, nominee };
        let others: Vec<NodeId> = self.ring.others().filter(|n| *n != nominee).collect();
        for to in others.into_iter().chain([nominee]) {
            self.push(Action::Send { to, msg: msg.clone() });
        }
        self.debug_check();
        true
    }

    /// A `TimeoutNow` of `term` from `from`: heeded only from the leader this node follows in
    /// its current term (anything else is refused, so a replayed or stale one changes
    /// nothing). The nominee starts the next term's election now, skipping the pre-vote (the
    /// leader itself asked); the others demote their candidacy for that term.
    fn on_timeout_now(&mut self, from: NodeId, term: Term, nominee: NodeId, now: Instant) -> bool {
        if term != self.term || self.role != (Role::Following { leader: from }) {
            return false;
        }
        if nominee == self.me {
            if self.standing {
                self.abstain_until = None;
                self.start_election(now);
            }
        } else {
            // For as many terms as a step-down: LCR swallows a token that reaches a node a
            // second time, so the first round can fail (a token sent on two ways while the
            // ring is being repaired); in the next round, started by whoever's deadline
            // fires, the nominee is still the only candidate standing.
            self.abstain_until =
                self.abstain_until.max(term.0.checked_add(MAX_ABSTAIN_TERMS).map(Term));
        }
        true
    }

    fn abstaining(&self) -> bool {
        !self.standing || self.abstain_until.is_some_and(|t| self.term <= t)
    }

    /// Whether this node puts its own candidacy forward (`true` at start). A node that may not
    /// lead (its clock is too far from the cluster's) runs with a demoted candidate, which
    /// every other candidate outranks and no voter with a log accepts, but still relays and
    /// votes.
    pub fn set_standing(&mut self, standing: bool) {
        self.standing = standing;
    }

    /// The configuration changed (committed through the log). Majorities count the new
    /// members from now on.
    pub fn handle_members(&mut self, members: Vec<NodeId>) {
        self.ring.set_members(members);
        if !self.ring.is_empty() {
            self.live.known.clear();
        }
        self.debug_check();
    }

    /// Peers this node can reach, while it holds no configuration yet (a member just added,
    /// before the configuration reached it); ignored once it has one. It knows no ring, so it
    /// relays election messages to these and to every node seen in election traffic (at most
    /// [`MAX_MEMBERS`]). They count for nothing else: majorities count configured members.
    pub fn handle_known(&mut self, peers: impl IntoIterator<Item = NodeId>) {
        if self.ring.is_empty() {
            for n in peers {
                if n != self.me && self.live.known.len() < crate::liveness::MAX_KNOWN {
                    self.live.known.insert(n);
                }
            }
        }
        self.debug_check();
    }

    /// The failure detector suggests `node` is down: skip it in the ring. If the last message
    /// of this term went to it, it is resent to the new successor.
    pub fn handle_down(&mut self, node: NodeId) {
        let resend = self.ring.set_down(node)
            && self.role != Role::Leader
            && self.round.last_sent.as_ref().is_some_and(|(to, _)| *to == node);
        if resend {
            self.resend_last();
        }
        self.debug_check();
    }

    /// The failure detector suggests `node` is alive again: put it back in the ring.
    pub fn handle_alive(&mut self, node: NodeId) {
        self.ring.set_alive(node);
        self.debug_check();
    }

    /// The ordering layer's last log position: the node's candidate in the current term until
    /// it has sent a token in it (then fixed for the term), and in later terms.
    pub fn handle_last_log(&mut self, last_log: LogPosition) {
        self.last_log = last_log;
        if self.round.best_sent.is_none() && !self.abstaining() {
            self.round.own.last_log = last_log;
        }
        self.debug_check();
    }

    /// An election message passed on by `from` (an authenticated peer, which may be outside
    /// this node's configuration: see `accept_message`). A node outside its own configuration
    /// takes part as a relay: it passes tokens on without a candidacy of its own and may
    /// accept a leader, but never starts an election or leads. A node without any
    /// configuration yet relays to every node it has seen in election traffic.
    ///
    /// `Heartbeat` counts as hearing the leader (as [`Election::handle_leader_heard`]);
    /// `PreVote` is answered and changes nothing; `PreVoteReply` may start the election.
    ///
    /// # Errors
    /// The message is ignored (state unchanged, no action) if the node follows or leads in
    /// its term and the message's candidate or leader is neither a member nor the followed
    /// leader, or if its path is oversized. A message of an older term is refused too, but
    /// it is answered while this node knows no leader (see `answer_stale`: that answer
    /// changes state).
    pub fn handle_message(
        &mut self,
        from: NodeId,
        msg: ElectionMsg,
        now: Instant,
    ) -> Result<(), ElectionError> {
        self.tick(now);
        self.note_known(from, &msg);
        if from != self.me {
            // It is alive: a leader we gave up on is routed through again.
            self.ring.heard(from);
        }
        match msg {
            ElectionMsg::Heartbeat { term } => {
                if term < self.term {
                    // A leader of an older term: this node cannot follow it (terms only
                    // grow) nor win without its followers, so tell it the newer term, as for
                    // any stale message (etcd answers a stale heartbeat the same way).
                    self.answer_stale(from, now);
                    self.debug_check();
                    return Err(ElectionError::StaleTerm { got: term, current: self.term });
                }
                self.leader_heard(from, term, now);
                self.debug_check();
                return Ok(());
            }
            ElectionMsg::PreVote { term, last_log } => {
                self.on_pre_vote(from, term, last_log, now);
                self.debug_check();
                return Ok(());
            }
            ElectionMsg::PreVoteReply { term, granted, current } => {
                self.on_pre_vote_reply(from, term, granted, current, now);
                self.debug_check();
                return Ok(());
            }
            ElectionMsg::TimeoutNow { term, nominee } => {
                let heeded = self.on_timeout_now(from, term, nominee, now);
                self.debug_check();
                return if heeded { Ok(()) } else { Err(ElectionError::NotFromLeader { from }) };
            }
            ElectionMsg::Token { .. } | ElectionMsg::Elected { .. } => {}
        }
        if let Err(err) = self.accept_message(&msg) {
            if matches!(err, ElectionError::StaleTerm { .. }) {
                self.answer_stale(from, now);
            }
            self.debug_check();
            return Err(err);
        }
        let term = message_term(&msg);
        if term > self.term {
            self.enter_term(term);
        }
        // Whoever passed this term's message on is alive and on someone's ring.
        self.ring.note_foreign(from);
        if let ElectionMsg::Token { visited: path, .. }
        | ElectionMsg::Elected { participants: path, .. } = &msg
        {
            for n in path {
                self.ring.note_foreign(*n);
            }
        }
        match msg {
            ElectionMsg::Token { candidate, visited, .. } => {
                self.on_token(candidate, visited, now);
            }
            ElectionMsg::Elected { leader, participants, .. } => {
                self.on_elected(leader, participants);
            }
            ElectionMsg::Heartbeat { .. }
            | ElectionMsg::PreVote { .. }
            | ElectionMsg::PreVoteReply { .. }
            | ElectionMsg::TimeoutNow { .. } => {}
        }
        self.debug_check();
        Ok(())
    }

    /// The ordering layer heard `from` act as the leader of `term` at `now` (a view change,
    /// entries, a commit heartbeat); a `Heartbeat` counts the same. A newer term is adopted
    /// (stepping down); in the current term the node follows `from` unless it voted for
    /// someone else or runs its own announcement, and a follower of `from` restarts its leader
    /// timeout. This is how a node that the ring skipped (falsely believed down) catches up.
    pub fn handle_leader_heard(&mut self, from: NodeId, term: Term, now: Instant) {
        self.tick(now);
        self.leader_heard(from, term, now);
        self.debug_check();
    }

    fn leader_heard(&mut self, from: NodeId, term: Term, now: Instant) {
        if term == self.term && self.role == (Role::Following { leader: from }) {
            // The followed leader is never refused, even from outside the configuration.
            self.refresh_leader(from, now);
            return;
        }
        // A node without a configuration has none to check against (a member just added).
        let member = self.ring.is_member(from) || self.ring.is_empty();
        if term < self.term || from == self.me || !member {
            return;
        }
        if term > self.term {
            self.enter_term(term);
        }
        let open = matches!(self.role, Role::Idle | Role::Electing { .. });
        if open && self.accepted.is_none_or(|a| a == from) {
            self.follow(from);
            self.refresh_leader(from, now);
        }
    }

    /// A newer `term` was seen outside the election, with no leader known for it (the
    /// ordering layer heard it from a peer that has no leader either). The node adopts it:
    /// its vote is reset, it steps down if it led or followed, and it is `Idle`, so its next
    /// election (or the next token it sees) runs in `term + 1` or later: a leader deposed by a
    /// newer term that kept electing from its own stale term would send tokens every node at
    /// the newer term refuses.
    pub fn handle_term(&mut self, term: Term) {
        // (No pre-vote here: adopting a term someone else already holds raises nothing.)
        if term > self.term {
            self.enter_term(term);
        }
        self.debug_check();
    }

    /// The clock reached [`Election::poll_timeout`]: the running round failed, or the
    /// followed leader stayed silent for the leader timeout (both try again with a pre-vote
    /// for `term + 1`), or a pre-vote is due for a retry, or a leader's heartbeat is due.
    /// Early and repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        match self.role {
            Role::Electing { deadline } | Role::Announcing { deadline } if deadline <= now => {
                self.try_elect(now);
            }
            Role::Following { .. } if self.leader_deadline().is_some_and(|d| d <= now) => {
                self.try_elect(now);
            }
            Role::Leader => self.heartbeat_due(now),
            _ => {}
        }
        self.retry_pre_vote(now);
        self.debug_check();
    }

    // ---- outputs and queries ------------------------------------------------------------

    /// The next action to carry out, in order (see [`Action`] for the persistence contract).
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Election::handle_timeout`] should be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let role = match self.role {
            Role::Electing { deadline } | Role::Announcing { deadline } => Some(deadline),
            Role::Following { .. } => self.leader_deadline(),
            Role::Leader => self.live.next_heartbeat,
            Role::Idle => None,
        };
        let pre_vote = self.live.pre_vote.as_ref().map(|pv| pv.retry);
        role.into_iter().chain(pre_vote).min()
    }

    /// Whether a pre-vote is running (the node lost its leader and asks the others).
    pub fn is_pre_voting(&self) -> bool {
        self.live.pre_vote.is_some()
    }

    /// Test-only fault injection (a planted bug for the simulation's checker): accept a leader
    /// without checking that its log is at least as up to date as this node's. Never set
    /// outside tests.
    #[doc(hidden)]
    #[cfg(feature = "faults")]
    pub fn set_skip_vote_check(&mut self, on: bool) {
        self.skip_vote_check = on;
    }

    /// Whether the planted bug is on: never without the `faults` feature, so release builds
    /// compile the check away.
    pub(crate) fn skips_vote_check(&self) -> bool {
        cfg!(feature = "faults") && self.skip_vote_check
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The highest term seen.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader accepted in the current term.
    pub fn accepted(&self) -> Option<NodeId> {
        self.accepted
    }

    /// The state to persist (also announced by [`Action::PersistTerm`]).
    pub fn persistent(&self) -> PersistentState {
        PersistentState { term: self.term, accepted: self.accepted }
    }

    /// What the node is doing.
    pub fn status(&self) -> Status {
        match self.role {
            Role::Idle => Status::Idle,
            Role::Electing { .. } => Status::Electing,
            Role::Announcing { .. } => Status::Announcing,
            Role::Following { leader } => Status::Following(leader),
            Role::Leader => Status::Leading,
        }
    }

    /// The leader of the current term as far as this node knows (itself when leading).
    pub fn leader(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader => Some(self.me),
            Role::Following { leader } => Some(leader),
            _ => None,
        }
    }

    /// Whether this node leads the current term.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// This node's candidate in the current term.
    pub fn candidate(&self) -> Candidate {
        self.round.own
    }

    /// Panics if an invariant (see [`Election`]) is broken.
    pub fn check_invariants(&self) {
        self.ring.check_invariants();
        if matches!(self.role, Role::Leader | Role::Announcing { .. }) {
            assert_eq!(self.accepted, Some(self.me), "a leader accepted itself");
        }
        if let Role::Following { leader } = self.role {
            assert_ne!(leader, self.me, "a node does not follow itself");
            assert!(self.accepted.is_none_or(|a| a == leader), "follows whom it accepted");
        }
        if let Some(best) = self.round.best_sent {
            assert!(best >= self.round.own, "never sends a candidate below its own");
        }
        if let Some(pv) = &self.live.pre_vote {
            assert_eq!(self.role, Role::Idle, "a pre-vote runs only without a leader or round");
            assert_eq!(Some(pv.term), self.term.checked_next(), "a pre-vote is for term + 1");
            assert!(pv.grants.contains(&self.me), "a pre-vote counts its own grant");
        }
        if matches!(self.role, Role::Following { .. }) {
            assert!(self.live.heard.is_some(), "a follower heard its leader");
        }
        assert!(self.live.known.len() <= crate::liveness::MAX_KNOWN, "known nodes over bound");
        assert!(self.actions.len() <= MAX_PENDING_ACTIONS, "action queue overflow");
    }

    // ---- shared helpers (the protocol steps live in `rounds.rs`) -------------------------

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    fn accept_message(&self, msg: &ElectionMsg) -> Result<(), ElectionError> {
        let term = message_term(msg);
        if term < self.term {
            return Err(ElectionError::StaleTerm { got: term, current: self.term });
        }
        // Configurations differ between nodes while a change is in some logs only (they are
        // in force on append), and a node that was behind may hold one from before a removal
        // and re-add. The nodes without a `RemoveMember(x)` still route the ring through x and
        // count x's candidacy; those with it must pass such messages on, or the ring is cut
        // for good (the only nodes with the largest log may be the ones holding the removal; x may
        // sit at a higher term; a node behind may lack the re-add of the largest candidate).
        // So the sender is never checked (paths count members only, see
        // `Ring::is_majority`, so a relay adds no vote), and the subject (candidate, leader)
        // only while this node knows a leader in its term: a node removed without knowing it
        // cannot depose a working leader, and a node without one has nothing to protect.
        // Nor is this node's own membership checked: a node re-added while its log still holds
        // its removal is routed through by the others and must relay; outside its configuration it only relays and accepts (`relay_token`).
        let (subject, len) = match msg {
            ElectionMsg::Token { candidate, visited, .. } => (candidate.node, visited.len()),
            ElectionMsg::Elected { leader, participants, .. } => (*leader, participants.len()),
            ElectionMsg::Heartbeat { .. }
            | ElectionMsg::PreVote { .. }
            | ElectionMsg::PreVoteReply { .. }
            | ElectionMsg::TimeoutNow { .. } => return Ok(()),
        };
        // The leader this node follows is never refused, in or out of the configuration: a
        // node behind may follow a leader whose re-add it lacks, and when that leader runs a
        // newer election, refusing it would leave the node following a leader that no longer
        // leads, deaf to every newer term.
        // A node that holds no configuration yet (a member just added) has nothing to check
        // the subject against, and no size to bound the path by: it assumes the largest
        // configuration (a bound of `2 × 0` would refuse every message and cut the ring through
        // it until its configuration arrived, so no election could finish in that window).
        let open = matches!(self.role, Role::Idle | Role::Electing { .. });
        let unconfigured = self.ring.is_empty();
        let outsider = !self.ring.is_member(subject) && self.leader() != Some(subject);
        if !open && !unconfigured && outsider {
            return Err(ElectionError::NotMember { node: subject });
        }
        let limit = if unconfigured { MAX_MEMBERS } else { self.ring.len() } * 2;
        if len > limit {
            return Err(ElectionError::OversizedPath { len, limit });
        }
        Ok(())
    }

    /// `from` sent a message of an older term: it has not heard of this one, and LCR alone
    /// would never tell it (tokens only travel forward and nodes at a newer term drop older
    /// ones). With two groups of nodes at different terms, the lower group's tokens die at
    /// the first node of the higher one, while the higher group's tokens may never reach the
    /// lower group around a ring whose nodes disagree about the configuration, so no election
    /// would complete. So a member that knows no leader in its
    /// term answers with a token of its term: its best candidate so far (its own if none),
    /// with itself as the path. The sender adopts the term and joins, as with any newer
    /// token. A node that knows its leader does not answer: the leader's ordering traffic
    /// reaches every member of its configuration (`handle_leader_heard`).
    /// Each stale message received (duplicates included) gets one answer, so this adds no more
    /// messages than it receives. It is not free of effects: an idle node joins the term and
    /// fixes its candidate. It cannot help a candidate to a majority (the path holds only
    /// this node), so it does not touch safety.
    fn answer_stale(&mut self, from: NodeId, now: Instant) {
        let open =
            matches!(self.role, Role::Idle | Role::Electing { .. } | Role::Announcing { .. });
        if from == self.me || !open || !self.ring.is_member(self.me) {
            return;
        }
        if self.role == Role::Idle && self.accepted.is_none() {
            let deadline = self.deadline(now);
            self.role = Role::Electing { deadline };
            self.live.pre_vote = None; // it joined a round, whose deadline retries
        }
        let candidate = *self.round.best_sent.get_or_insert(self.round.own);
        let msg = ElectionMsg::Token { term: self.term, candidate, visited: vec![self.me] };
        self.push(Action::Send { to: from, msg });
    }

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// A deadline `election_timeout + random(0..=max_backoff)` from `now`.
    pub(crate) fn deadline(&mut self, now: Instant) -> Instant {
        let backoff = if self.config.max_backoff.is_zero() {
            Duration::ZERO
        } else {
            self.rng.random_range(Duration::ZERO..=self.config.max_backoff)
        };
        now + self.config.election_timeout + backoff
    }

    /// Moves to a newer `term`: forget the vote and the round, persist, step down. A leader
    /// followed until now that was not heard within the leader timeout is skipped in the
    /// ring (it is likely the reason for the new term); a running pre-vote is retargeted at
    /// `term + 1`.
    pub(crate) fn enter_term(&mut self, term: Term) {
        assert!(term > self.term, "terms only grow");
        let had_leader = matches!(self.role, Role::Leader | Role::Following { .. });
        if let (Role::Following { leader }, Some(now)) = (self.role, self.clock) {
            if !self.heard_within(self.config.leader_timeout, now) {
                self.ring.set_silent(leader);
            }
        }
        self.live.heard = None;
        self.live.next_heartbeat = None;
        self.ring.clear_foreign();
        if let Some(pv) = self.live.pre_vote.as_mut() {
            match term.checked_next() {
                Some(next) => {
                    pv.term = next;
                    pv.grants = std::collections::BTreeSet::from([self.me]);
                }
                None => self.live.pre_vote = None,
            }
        }
        self.term = term;
        self.accepted = None;
        self.role = Role::Idle;
        let last_log = if self.abstaining() { LogPosition::default() } else { self.last_log };
        self.round = Round::new(Candidate { last_log, node: self.me });
        self.push(Action::PersistTerm { term, accepted: None });
        if had_leader {
            self.push(Action::StepDown { term });
        }
    }
}

/// The term an election message belongs to (for a pre-vote reply: the answerer's).
fn message_term(msg: &ElectionMsg) -> Term {
    match msg {
        ElectionMsg::Token { term, .. }
        | ElectionMsg::Elected { term, .. }
        | ElectionMsg::Heartbeat { term }
        | ElectionMsg::PreVote { term, .. }
        | ElectionMsg::TimeoutNow { term, .. } => *term,
        ElectionMsg::PreVoteReply { current, .. } => *current,
    }
}
