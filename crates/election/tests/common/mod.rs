//! A cluster of election cores on the testkit's seeded network, with a global checker.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use auction_election::{Action, Election, ElectionConfig, PersistentState, Status};
use auction_proto::msg::peer::{Candidate, ElectionMsg};
use auction_proto::{LogPosition, NodeId, Term};
use auction_testkit::{Dest, NetConfig, Network, Outgoing, SimNode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Everything the cluster did that the checker looks at, across crashes.
#[derive(Debug, Default)]
pub struct Log {
    /// `(term, leader, participants)` for every `Action::Elected`.
    pub leaders: Vec<(Term, NodeId, Vec<NodeId>)>,
    /// Tokens sent.
    pub tokens: u64,
    /// `Elected` messages sent.
    pub electeds: u64,
    /// `Heartbeat` messages sent.
    pub heartbeats: u64,
    /// `PreVote` and `PreVoteReply` messages sent.
    pub pre_votes: u64,
    /// Every durable vote: `(voter, term) -> leader`.
    pub votes: BTreeMap<(NodeId, Term), NodeId>,
    /// Broken rules seen while draining actions.
    pub violations: Vec<String>,
}

/// One node: the core, its "disk", and its outbox.
#[derive(Debug)]
pub struct SimElection {
    pub core: Election<ChaCha8Rng>,
    pub disk: PersistentState,
    out: Vec<Outgoing<NodeId, ElectionMsg>>,
    log: Rc<RefCell<Log>>,
}

impl SimElection {
    /// Carries out the core's actions: persist, queue sends, record events.
    pub fn drain(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::PersistTerm { term, accepted } => self.persist(term, accepted),
                Action::Send { to, msg } => {
                    let mut log = self.log.borrow_mut();
                    match msg {
                        ElectionMsg::Token { .. } => log.tokens += 1,
                        ElectionMsg::Elected { .. } => log.electeds += 1,
                        ElectionMsg::Heartbeat { .. } | ElectionMsg::TimeoutNow { .. } => {
                            log.heartbeats += 1;
                        }
                        ElectionMsg::PreVote { .. } | ElectionMsg::PreVoteReply { .. } => {
                            log.pre_votes += 1;
                        }
                    }
                    self.out.push(Outgoing { to: Dest::To(to), msg });
                }
                Action::Elected { term, leader, participants } => {
                    self.log.borrow_mut().leaders.push((term, leader, participants));
                }
                Action::FollowLeader { .. } | Action::StepDown { .. } => {}
            }
        }
    }

    fn persist(&mut self, term: Term, accepted: Option<NodeId>) {
        let me = self.core.id();
        let mut log = self.log.borrow_mut();
        if term < self.disk.term {
            log.violations.push(format!("{me:?} persisted {term:?} after {:?}", self.disk.term));
        }
        if let Some(leader) = accepted {
            let vote = *log.votes.entry((me, term)).or_insert(leader);
            if vote != leader {
                log.violations.push(format!("{me:?} voted {vote:?} and {leader:?} in {term:?}"));
            }
        }
        self.disk = PersistentState { term, accepted };
    }
}

impl SimNode for SimElection {
    type Addr = NodeId;
    type Msg = ElectionMsg;
    fn handle_message(&mut self, from: NodeId, msg: ElectionMsg, now: Instant) {
        let _ignored = self.core.handle_message(from, msg, now);
        self.drain();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.drain();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }
    fn drain_outgoing(&mut self) -> Vec<Outgoing<NodeId, ElectionMsg>> {
        std::mem::take(&mut self.out)
    }
}

/// A cluster under test.
#[derive(Debug)]
pub struct Cluster {
    pub net: Network<SimElection>,
    pub log: Rc<RefCell<Log>>,
    /// Members in ring order.
    pub ids: Vec<NodeId>,
    pub last_logs: BTreeMap<NodeId, LogPosition>,
    /// Disks of crashed nodes.
    crashed: BTreeMap<NodeId, PersistentState>,
    restarts: u64,
    pub config: ElectionConfig,
}

pub fn node_id(i: usize) -> NodeId {
    let mut bytes = [0u8; 16];
    bytes[0] = u8::try_from(i + 1).unwrap();
    NodeId::from_bytes(bytes)
}

impl Cluster {
    /// `last_logs[i]` is the log position of the `i`-th node in ring order.
    pub fn new(
        seed: u64,
        net: NetConfig,
        last_logs: &[LogPosition],
        config: ElectionConfig,
    ) -> Self {
        let ids: Vec<_> = (0..last_logs.len()).map(node_id).collect();
        let mut this = Self {
            net: Network::new(seed, net),
            log: Rc::default(),
            last_logs: ids.iter().copied().zip(last_logs.iter().copied()).collect(),
            ids,
            crashed: BTreeMap::new(),
            restarts: 0,
            config,
        };
        for id in this.ids.clone() {
            this.boot(id, PersistentState::default());
        }
        this
    }

    fn boot(&mut self, id: NodeId, disk: PersistentState) {
        self.restarts += 1;
        let seed = self.net.seed() ^ (u64::from(id.as_bytes()[0]) << 32) ^ self.restarts;
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let mut core = Election::new(id, self.ids.clone(), disk, rng, self.config.clone());
        core.handle_last_log(self.last_logs[&id]);
        let node = SimElection { core, disk, out: Vec::new(), log: Rc::clone(&self.log) };
        self.net.add_node(id, node);
    }

    /// Feeds `node` an input (if it is up) and sends what it queued.
    pub fn with(&mut self, id: NodeId, f: impl FnOnce(&mut Election<ChaCha8Rng>, Instant)) {
        let now = self.net.now();
        if let Some(node) = self.net.node_mut(&id) {
            f(&mut node.core, now);
            node.drain();
            self.net.flush(id);
        }
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.net.node(&id).is_some()
    }

    pub fn live(&self) -> Vec<NodeId> {
        self.net.addrs()
    }

    pub fn crash(&mut self, id: NodeId) {
        if let Some(node) = self.net.crash(&id) {
            self.crashed.insert(id, node.disk);
        }
    }

    /// Restarts a crashed node from its disk; it starts an election (no leader known).
    pub fn restart(&mut self, id: NodeId) {
        if let Some(disk) = self.crashed.remove(&id) {
            self.boot(id, disk);
            self.with(id, |c, now| c.start(now));
        }
    }

    /// Crashes and at once restarts a live node from its disk, without `start`: it loses its
    /// volatile round state in the middle of whatever it was doing.
    pub fn bounce(&mut self, id: NodeId) {
        self.crash(id);
        if let Some(disk) = self.crashed.remove(&id) {
            self.boot(id, disk);
        }
    }

    pub fn status(&self, id: NodeId) -> Option<(Term, Status)> {
        self.net.node(&id).map(|n| (n.core.term(), n.core.status()))
    }

    pub fn majority(&self) -> usize {
        self.ids.len() / 2 + 1
    }

    fn candidate(&self, id: NodeId) -> Candidate {
        Candidate { last_log: self.last_logs[&id], node: id }
    }

    /// Safety: at most one leader per term; a majority of participants, each of which durably
    /// voted for that leader in that term; no participant's log is more up to date than the
    /// winner's; no node voted twice or let its term shrink. (Among equal logs LCR elects the
    /// highest id, but that is not a safety property: a step-down or a leadership hand-over
    /// elects a lower id on purpose.)
    pub fn check_safety(&self) -> Result<(), String> {
        let log = self.log.borrow();
        if let Some(v) = log.violations.first() {
            return Err(v.clone());
        }
        let mut by_term: BTreeMap<Term, NodeId> = BTreeMap::new();
        for (term, leader, participants) in &log.leaders {
            if let Some(other) = by_term.insert(*term, *leader) {
                if other != *leader {
                    return Err(format!("two leaders in {term:?}: {other:?} and {leader:?}"));
                }
            }
            let distinct: BTreeSet<_> =
                participants.iter().filter(|p| self.ids.contains(p)).collect();
            if distinct.len() < self.majority() {
                return Err(format!("{leader:?} led {term:?} with {participants:?}"));
            }
            if let Some(p) =
                participants.iter().find(|p| log.votes.get(&(**p, *term)) != Some(leader))
            {
                return Err(format!("{p:?} listed for {leader:?} in {term:?} without its vote"));
            }
            let best = self.candidate(*leader).last_log;
            if let Some(p) = participants.iter().find(|p| self.candidate(**p).last_log > best) {
                return Err(format!("{leader:?} led {term:?} though {p:?} was more up to date"));
            }
        }
        Ok(())
    }

    /// The settled leader: leads the highest live term, and every live node follows it there.
    pub fn settled_leader(&self) -> Option<NodeId> {
        let statuses: Vec<_> = self.live().into_iter().filter_map(|id| self.status(id)).collect();
        let term = statuses.iter().map(|(t, _)| *t).max()?;
        let leader =
            self.live().into_iter().find(|id| self.status(*id) == Some((term, Status::Leading)))?;
        let settled = statuses
            .iter()
            .all(|(t, s)| *t == term && (*s == Status::Leading || *s == Status::Following(leader)));
        settled.then_some(leader)
    }

    /// Heals and quiets the network, restarts crashed nodes until a majority is up, gives
    /// every node an accurate failure-detector view, then plays the leader-loss detector
    /// (a node without a live leader for two checks in a row calls `handle_leader_lost`)
    /// until a leader is settled. Returns the virtual time it took, or `None` past `bound`.
    pub fn settle(&mut self, bound: Duration) -> Option<Duration> {
        self.net.heal();
        let quiet = NetConfig { drop: 0.0, duplicate: 0.0, ..self.net.config().clone() };
        self.net.set_config(quiet);
        for id in self.ids.clone() {
            if self.live().len() < self.majority() && !self.is_up(id) {
                self.restart(id);
            }
        }
        self.accurate_detector();
        let start = self.net.now();
        let check = Duration::from_millis(100);
        let mut strikes: BTreeMap<NodeId, u32> = BTreeMap::new();
        while self.net.now() - start <= bound {
            if self.settled_leader().is_some() {
                return Some(self.net.now() - start);
            }
            self.leader_heartbeats();
            self.detect_leader_loss(&mut strikes);
            self.net.run_for(check);
        }
        None
    }

    fn accurate_detector(&mut self) {
        let live = self.live();
        for &id in &live {
            for &other in &self.ids.clone() {
                if live.contains(&other) {
                    self.with(id, |c, _| c.handle_alive(other));
                } else {
                    self.with(id, |c, _| c.handle_down(other));
                }
            }
        }
    }

    /// What the ordering layer would report: every live leader's traffic reaches every node.
    fn leader_heartbeats(&mut self) {
        let live = self.live();
        for &leader in &live {
            let Some((term, Status::Leading)) = self.status(leader) else { continue };
            for &other in &live {
                self.with(other, |c, now| c.handle_leader_heard(leader, term, now));
            }
        }
    }

    fn detect_leader_loss(&mut self, strikes: &mut BTreeMap<NodeId, u32>) {
        for id in self.live() {
            let Some((term, status)) = self.status(id) else { continue };
            let ok = match status {
                Status::Leading | Status::Electing | Status::Announcing => true,
                Status::Following(l) => self.status(l) == Some((term, Status::Leading)),
                Status::Idle => false,
            };
            let s = strikes.entry(id).or_default();
            *s = if ok { 0 } else { *s + 1 };
            if *s >= 2 {
                *s = 0;
                self.with(id, |c, now| c.handle_leader_lost(now));
            }
        }
    }
}
