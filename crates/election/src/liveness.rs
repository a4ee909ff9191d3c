//! Leader liveness: the leader's heartbeats, the followers' leader timeout, and the pre-vote
//! that runs before every election a node starts on its own (Raft §9.6), so that a node that
//! merely lost touch never raises its term. See `docs/election.md` ("Heartbeats and
//! pre-vote").

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auction_proto::msg::peer::ElectionMsg;
use auction_proto::{LogPosition, NodeId, Term};
use rand::{Rng, RngCore};

use crate::Action;
use crate::election::{Election, Role};

/// Most nodes an election core without a configuration remembers as relay targets.
pub(crate) const MAX_KNOWN: usize = crate::MAX_MEMBERS;

/// Liveness state. Volatile: a restart starts without a leader and without a pre-vote.
#[derive(Clone, Debug, Default)]
pub(crate) struct Liveness {
    /// When a leader of the current term was last heard (its heartbeat, its ordering traffic,
    /// its `Elected`); `None` while no leader of the term was heard.
    pub(crate) heard: Option<Instant>,
    /// How long this follower waits for its leader: drawn in `T..=2T` when it starts
    /// following (T = `ElectionConfig::leader_timeout`).
    pub(crate) patience: Duration,
    /// Leader: when the next `Heartbeat` goes out.
    pub(crate) next_heartbeat: Option<Instant>,
    /// The running pre-vote, if any. Invariant: only while the node is `Idle`.
    pub(crate) pre_vote: Option<PreVote>,
    /// Pre-vote attempts in a row that started no election (the back-off's exponent).
    pub(crate) failures: u32,
    /// Nodes seen in election traffic while this node holds no configuration: where it relays
    /// (it knows no ring). Empty while it has a configuration; at most [`MAX_KNOWN`].
    pub(crate) known: BTreeSet<NodeId>,
}

/// A pre-vote for `term` (this node's term + 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PreVote {
    pub(crate) term: Term,
    /// The members that granted it, this node included.
    pub(crate) grants: BTreeSet<NodeId>,
    /// When it is retried if no majority granted it.
    pub(crate) retry: Instant,
}

impl<R: RngCore> Election<R> {
    /// Records the latest time seen by an input (time never goes back).
    pub(crate) fn tick(&mut self, now: Instant) {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// Begins an election the node decided on by itself (no leader at start, leader lost or
    /// silent, a round that failed): with a pre-vote if configured, else at once.
    pub(crate) fn try_elect(&mut self, now: Instant) {
        if self.config.pre_vote {
            self.begin_pre_vote(now);
        } else {
            self.start_election(now);
        }
    }

    /// Gives up on the leader (or on leading, or on the failed round) and asks every other
    /// member whether it lost its leader too, for `term + 1`. The term does not change. A
    /// node alone in its ring has its majority already and elects at once.
    pub(crate) fn begin_pre_vote(&mut self, now: Instant) {
        if !self.ring.is_member(self.me) {
            // A relay never stands; its round (if any) is over, its leader gone.
            self.live.pre_vote = None;
            if let Role::Following { leader } = self.role {
                self.ring.set_silent(leader);
            }
            if self.role != Role::Leader {
                self.role = Role::Idle;
            }
            return;
        }
        if self.ring.is_majority(&[self.me]) {
            self.start_election(now);
            return;
        }
        let Some(target) = self.term.checked_next() else {
            return; // u64::MAX terms: unreachable in practice, and never wrap.
        };
        match self.role {
            Role::Leader => {
                // Abdicates: the ordering layer stops sequencing in this term.
                self.live.next_heartbeat = None;
                self.push(Action::StepDown { term: self.term });
            }
            Role::Following { leader } => {
                self.ring.set_silent(leader);
            }
            Role::Idle | Role::Electing { .. } | Role::Announcing { .. } => {}
        }
        self.role = Role::Idle;
        let wait = self.pre_vote_wait();
        let msg = ElectionMsg::PreVote { term: target, last_log: self.last_log };
        let others: Vec<NodeId> = self.ring.others().collect();
        for to in others {
            self.push(Action::Send { to, msg: msg.clone() });
        }
        let grants = BTreeSet::from([self.me]);
        self.live.pre_vote = Some(PreVote { term: target, grants, retry: now + wait });
    }

    /// The wait before the next pre-vote attempt: uniform in `base/2..=base`, where `base`
    /// doubles from `leader_timeout` with every failed attempt up to `max_pre_vote_backoff`.
    fn pre_vote_wait(&mut self) -> Duration {
        let doubled = 1u32.checked_shl(self.live.failures.min(16)).unwrap_or(u32::MAX);
        let base = self
            .config
            .leader_timeout
            .saturating_mul(doubled)
            .min(self.config.max_pre_vote_backoff.max(self.config.leader_timeout));
        let half = base / 2;
        if half.is_zero() { base } else { self.rng.random_range(half..=base) }
    }

    /// A pre-vote request from `from` for `term`: granted only if `term` is newer than ours,
    /// this node does not hear a leader of its term (or `from` is that very leader, giving
    /// up), and `from`'s log is at least as up to date as ours. Nothing changes here.
    pub(crate) fn on_pre_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_log: LogPosition,
        now: Instant,
    ) {
        if from == self.me {
            return;
        }
        let granted = term > self.term
            && !self.hears_leader_other_than(from, now)
            && (last_log >= self.last_log || self.skips_vote_check());
        let msg = ElectionMsg::PreVoteReply { term, granted, current: self.term };
        self.push(Action::Send { to: from, msg });
    }

    /// Whether this node leads, or follows a leader other than `from` that it heard within
    /// the leader timeout.
    fn hears_leader_other_than(&self, from: NodeId, now: Instant) -> bool {
        match self.role {
            Role::Leader => self.ring.is_member(self.me),
            Role::Following { leader } => {
                leader != from && self.heard_within(self.config.leader_timeout, now)
            }
            Role::Idle | Role::Electing { .. } | Role::Announcing { .. } => false,
        }
    }

    /// Whether a leader of the current term was heard less than `window` before `now`.
    pub(crate) fn heard_within(&self, window: Duration, now: Instant) -> bool {
        self.live.heard.is_some_and(|h| now.saturating_duration_since(h) < window)
    }

    /// An answer to our pre-vote. A newer term in it is adopted (catching up, not raising);
    /// a majority of grants for our pre-vote's term starts the real election.
    pub(crate) fn on_pre_vote_reply(
        &mut self,
        from: NodeId,
        term: Term,
        granted: bool,
        current: Term,
        now: Instant,
    ) {
        if self.live.pre_vote.is_none() {
            return; // stale: the pre-vote ended (elected, followed, joined another round).
        }
        if current > self.term {
            self.enter_term(current); // keeps the pre-vote, retargeted at `current + 1`
        }
        let Some(pv) = self.live.pre_vote.as_mut() else { return };
        if !granted || pv.term != term || !self.ring.is_member(from) {
            return;
        }
        pv.grants.insert(from);
        let grants: Vec<NodeId> = pv.grants.iter().copied().collect();
        if self.ring.is_majority(&grants) {
            self.start_election(now);
        }
    }

    /// The running pre-vote's retry time passed without a majority: try again, later each time.
    pub(crate) fn retry_pre_vote(&mut self, now: Instant) {
        if self.live.pre_vote.as_ref().is_some_and(|pv| pv.retry <= now) {
            self.live.pre_vote = None;
            self.live.failures = self.live.failures.saturating_add(1);
            self.begin_pre_vote(now);
        }
    }

    /// Starts following `leader` in the current term, heard at the latest time seen.
    pub(crate) fn follow(&mut self, leader: NodeId) {
        self.role = Role::Following { leader };
        self.abstain_until = None;
        self.live.pre_vote = None;
        self.live.failures = 0;
        self.live.heard = self.clock;
        let t = self.config.leader_timeout;
        self.live.patience = if t.is_zero() { t } else { self.rng.random_range(t..=t * 2) };
        self.ring.heard(leader);
        self.push(Action::FollowLeader { term: self.term, leader });
    }

    /// The followed leader was heard (now).
    pub(crate) fn refresh_leader(&mut self, leader: NodeId, now: Instant) {
        self.live.heard = Some(self.live.heard.map_or(now, |h| h.max(now)));
        self.ring.heard(leader);
    }

    /// When the followed leader counts as lost.
    pub(crate) fn leader_deadline(&self) -> Option<Instant> {
        self.live.heard.map(|h| h + self.live.patience)
    }

    /// Becomes the leader: heartbeats start one interval from now.
    pub(crate) fn start_heartbeats(&mut self) {
        self.live.pre_vote = None;
        self.live.failures = 0;
        self.live.next_heartbeat = self.clock.map(|c| c + self.config.heartbeat_interval);
    }

    /// Sends `Heartbeat` to every other member if due (not when outside its own
    /// configuration: a leader that removed itself must let its followers elect).
    pub(crate) fn heartbeat_due(&mut self, now: Instant) {
        let Some(due) = self.live.next_heartbeat else { return };
        if due > now || self.role != Role::Leader {
            return;
        }
        self.live.next_heartbeat = Some(now + self.config.heartbeat_interval);
        if !self.ring.is_member(self.me) {
            return;
        }
        let msg = ElectionMsg::Heartbeat { term: self.term };
        let others: Vec<NodeId> = self.ring.others().collect();
        for to in others {
            self.push(Action::Send { to, msg: msg.clone() });
        }
    }

    /// Remembers the nodes named in an election message while this node has no
    /// configuration (bounded; the first ones seen are kept).
    pub(crate) fn note_known(&mut self, from: NodeId, msg: &ElectionMsg) {
        if !self.ring.is_empty() {
            return;
        }
        let named: Vec<NodeId> = match msg {
            ElectionMsg::Token { candidate, visited, .. } => {
                visited.iter().copied().chain([candidate.node]).collect()
            }
            ElectionMsg::Elected { leader, participants, .. } => {
                participants.iter().copied().chain([*leader]).collect()
            }
            ElectionMsg::Heartbeat { .. }
            | ElectionMsg::PreVote { .. }
            | ElectionMsg::PreVoteReply { .. } => Vec::new(),
            ElectionMsg::TimeoutNow { nominee, .. } => vec![*nominee],
        };
        for n in std::iter::once(from).chain(named) {
            if n != self.me && self.live.known.len() < MAX_KNOWN {
                self.live.known.insert(n);
            }
        }
    }

    /// Relays `msg` to every node known to this node without a configuration: it knows no
    /// ring, so it cannot pick a successor (a dead one would cut the ring); the receivers
    /// swallow what they already sent on, as in LCR.
    pub(crate) fn relay_to_known(&mut self, msg: &ElectionMsg) {
        let known: Vec<NodeId> = self.live.known.iter().copied().collect();
        for to in known {
            self.push(Action::Send { to, msg: msg.clone() });
        }
    }
}
