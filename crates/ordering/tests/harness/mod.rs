//! Whole-core simulation support: an adapter running one [`Ordering`] core as a testkit
//! [`SimNode`] with a simulated disk and state machine, an election oracle, and a global
//! checker.
//!
//! The election crate has not landed yet: leaders are announced by [`Cluster::elect`], a
//! deterministic oracle that picks a live member of the majority side (sometimes the most up to
//! date, sometimes a random one, to exercise the view change) in a fresh term.

#![allow(dead_code, unreachable_pub)]

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use auction_ordering::{Action, Ordering, OrderingConfig, Persisted, Snapshot};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{Command, LogEntry, Operation, RequestId};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{AuctionId, ClientId, Incarnation, NodeId, RequestNo, Seq, Term, Timestamp};
use auction_testkit::{Dest, NetConfig, Network, Outgoing, SimNode};
use rand::Rng;

/// What a member has on disk: exactly what survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub term: Term,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<LogEntry>,
}

impl Disk {
    fn apply(&mut self, action: &Action) {
        match action {
            Action::PersistTerm(t) => self.term = *t,
            Action::Store { from, entries, .. } => {
                self.entries.retain(|e| e.seq < *from);
                self.entries.extend(entries.iter().cloned());
            }
            Action::InstallSnapshot { snapshot, .. } => {
                self.snapshot = Some(snapshot.clone());
                self.entries.clear();
            }
            _ => {}
        }
    }
}

/// The simulated state machine: how many entries applied and a hash chain over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    pub applied: Seq,
    pub hash: u64,
}

impl Machine {
    fn apply(&mut self, e: &LogEntry) {
        assert_eq!(e.seq, self.applied.next(), "delivery not contiguous");
        let mut h = DefaultHasher::new();
        (self.hash, e.seq.0, e.term.0, e.timestamp.0, format!("{:?}", e.payload)).hash(&mut h);
        self.hash = h.finish();
        self.applied = e.seq;
    }

    fn encode(&self) -> Vec<u8> {
        [self.applied.0.to_le_bytes(), self.hash.to_le_bytes()].concat()
    }

    fn decode(bytes: &[u8]) -> Self {
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        Self { applied: Seq(word(0)), hash: word(8) }
    }
}

/// One member: the core, its disk (with writes not yet fsynced), its state machine.
#[derive(Debug)]
pub struct Member {
    pub core: Ordering,
    pub disk: Disk,
    unsynced: Vec<Action>,
    fsync_at: Option<Instant>,
    pub machine: Machine,
    /// `(seq, hash)` after each delivery or install, for the checker.
    pub history: Vec<(Seq, u64)>,
    pub out: Vec<Outgoing<NodeId, OrderingMsg>>,
    pub reports: Vec<Action>,
    pub snapshot_every: u64,
    wall_start: Instant,
}

impl Member {
    pub fn start(
        me: NodeId,
        config: OrderingConfig,
        disk: Disk,
        now: Instant,
        t0: Instant,
    ) -> Self {
        let machine =
            disk.snapshot.as_ref().map_or_else(Machine::default, |s| Machine::decode(&s.bytes));
        let persisted = Persisted {
            term: disk.term,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            applied: machine.applied,
        };
        let mut core = Ordering::new(me, config, persisted, now);
        core.handle_wall_clock(wall(t0, now), now);
        let mut m = Self {
            core,
            disk,
            unsynced: Vec::new(),
            fsync_at: None,
            machine,
            history: Vec::new(),
            out: Vec::new(),
            reports: Vec::new(),
            snapshot_every: 0,
            wall_start: t0,
        };
        m.drain(now);
        m
    }

    /// Carries out the core's actions; durable writes wait for the next fsync.
    pub fn drain(&mut self, now: Instant) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Send { to, msg } => self.out.push(Outgoing { to: Dest::To(to), msg }),
                Action::PersistTerm(_) => self.disk.apply(&a),
                Action::Store { .. } | Action::InstallSnapshot { .. } => {
                    if let Action::InstallSnapshot { snapshot, .. } = &a {
                        self.machine = Machine::decode(&snapshot.bytes);
                        self.history.push((self.machine.applied, self.machine.hash));
                    }
                    self.unsynced.push(a);
                    self.fsync_at.get_or_insert(now + Duration::from_millis(1));
                }
                Action::Deliver { entries } => {
                    for e in &entries {
                        self.machine.apply(e);
                        self.history.push((e.seq, self.machine.hash));
                    }
                }
                other => self.reports.push(other),
            }
        }
        self.maybe_snapshot(now);
    }

    fn maybe_snapshot(&mut self, now: Instant) {
        let point = self.core.snapshot_point().seq;
        if self.snapshot_every == 0 || self.machine.applied.0 < point.0 + self.snapshot_every {
            return;
        }
        let bytes = self.machine.encode();
        if self.core.handle_snapshot_taken(self.machine.applied, bytes, now).is_ok() {
            self.disk.snapshot = self.core.snapshot().cloned();
            self.disk.entries.retain(|e| e.seq > self.machine.applied);
            self.drain(now);
        }
    }

    fn fsync(&mut self, now: Instant) {
        let mut last = None;
        for a in std::mem::take(&mut self.unsynced) {
            self.disk.apply(&a);
            if let Action::Store { id, .. } | Action::InstallSnapshot { id, .. } = a {
                last = Some(id);
            }
        }
        self.fsync_at = None;
        if let Some(id) = last {
            self.core.handle_stored(id, now).unwrap();
            self.drain(now);
        }
    }
}

fn wall(t0: Instant, now: Instant) -> Timestamp {
    Timestamp(1_000_000 + (now - t0).as_millis() as u64)
}

impl SimNode for Member {
    type Addr = NodeId;
    type Msg = OrderingMsg;

    fn handle_message(&mut self, from: NodeId, msg: OrderingMsg, now: Instant) {
        self.core.handle_message(from, msg, now);
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.fsync_at.is_some_and(|t| t <= now) {
            self.fsync(now);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            self.drain(now);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.core.poll_timeout(), self.fsync_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain_outgoing(&mut self) -> Vec<Outgoing<NodeId, OrderingMsg>> {
        std::mem::take(&mut self.out)
    }
}

pub fn node(i: u8) -> NodeId {
    NodeId::from_bytes([i + 1; 16])
}

pub fn info(i: u8) -> NodeInfo {
    NodeInfo {
        node: node(i),
        incarnation: Incarnation(1),
        peer_addr: ([10, 0, 0, i], 7000).into(),
        client_addr: ([10, 0, 0, i], 7001).into(),
    }
}

pub fn command(client: u8, no: u64) -> Command {
    Command {
        origin: Some(RequestId { client: ClientId::from_bytes([client; 16]), no: RequestNo(no) }),
        op: Operation::Close { auction: AuctionId(no) },
    }
}

/// A simulated cluster plus the oracle's and the checker's state.
pub struct Cluster {
    pub net: Network<Member>,
    pub config: OrderingConfig,
    pub t0: Instant,
    /// Disks of crashed members.
    pub down: BTreeMap<NodeId, Disk>,
    /// Members cut off from the rest (the minority side of a partition).
    pub cut: BTreeSet<NodeId>,
    pub leader: Option<(Term, NodeId)>,
    /// The agreed `(seq -> hash)` chain: the first member to reach a seq fixes it.
    pub chain: BTreeMap<Seq, u64>,
    /// Highest commit point any member reported.
    pub max_commit: Seq,
    next_no: u64,
    pub snapshot_every: u64,
}

impl Cluster {
    pub fn new(seed: u64, n: u8, net: NetConfig, snapshot_every: u64) -> Self {
        let mut net = Network::new(seed, net);
        let t0 = net.now();
        let config = OrderingConfig {
            tick: Duration::from_millis(20),
            unavailable_after: Duration::from_millis(200),
            max_batch: 16,
            ..OrderingConfig::default()
        };
        let members: Vec<NodeInfo> = (0..n).map(info).collect();
        for i in 0..n {
            let mut m = Member::start(node(i), config.clone(), Disk::default(), t0, t0);
            m.snapshot_every = snapshot_every;
            m.core.handle_bootstrap(members.clone(), t0).unwrap();
            m.drain(t0);
            net.add_node(node(i), m);
        }
        let chain = BTreeMap::new();
        Self {
            net,
            config,
            t0,
            down: BTreeMap::new(),
            cut: BTreeSet::new(),
            leader: None,
            chain,
            max_commit: Seq::ZERO,
            next_no: 0,
            snapshot_every,
        }
    }

    pub fn seed(&self) -> u64 {
        self.net.seed()
    }

    /// Adds a brand-new member (empty disk).
    pub fn add_fresh(&mut self, i: u8) {
        let now = self.net.now();
        let mut m = Member::start(node(i), self.config.clone(), Disk::default(), now, self.t0);
        m.snapshot_every = self.snapshot_every;
        self.net.add_node(node(i), m);
    }

    pub fn crash(&mut self, id: NodeId) {
        if let Some(m) = self.net.crash(&id) {
            self.down.insert(id, m.disk);
        }
    }

    pub fn restart(&mut self, id: NodeId) {
        if let Some(disk) = self.down.remove(&id) {
            let now = self.net.now();
            let mut m = Member::start(id, self.config.clone(), disk, now, self.t0);
            m.snapshot_every = self.snapshot_every;
            self.net.add_node(id, m);
        }
    }

    pub fn isolate(&mut self, id: NodeId) {
        self.net.isolate(id);
        self.cut.insert(id);
    }

    pub fn heal(&mut self) {
        self.net.heal();
        self.cut.clear();
    }

    /// Live members on the majority side, by the latest configuration of any live member.
    fn electable(&self) -> Vec<NodeId> {
        self.net
            .addrs()
            .into_iter()
            .filter(|a| !self.cut.contains(a))
            .filter(|a| {
                self.net.node(a).is_some_and(|m| m.core.members().iter().any(|i| i.node == *a))
            })
            .collect()
    }

    /// The election oracle: keeps a reachable, working leader, or announces a new one.
    pub fn elect(&mut self) {
        let ok = self.leader.is_some_and(|(term, l)| {
            !self.cut.contains(&l)
                && self
                    .net
                    .node(&l)
                    .is_some_and(|m| m.core.term() == term && m.core.leader() == Some(l))
        });
        if ok {
            return;
        }
        let mut candidates = self.electable();
        if candidates.is_empty() {
            return;
        }
        let term = self.net.nodes().map(|(_, m)| m.core.term()).max().unwrap_or_default().next();
        let term = term.max(self.down.values().map(|d| d.term.next()).max().unwrap_or_default());
        candidates.sort_by_key(|a| std::cmp::Reverse(self.net.node(a).map(|m| m.core.last_log())));
        if self.net.rng().random_bool(0.5) {
            let k = self.net.rng().random_range(0..candidates.len());
            candidates.swap(0, k);
        }
        let now = self.net.now();
        for cand in candidates.clone() {
            let Some(m) = self.net.node_mut(&cand) else { continue };
            if m.core.handle_leader(term, cand, now).is_ok() {
                m.drain(now);
                self.net.flush(cand);
                self.leader = Some((term, cand));
                for other in candidates.iter().filter(|o| **o != cand) {
                    if let Some(m) = self.net.node_mut(other) {
                        let _ = m.core.handle_leader(term, cand, now);
                        m.drain(now);
                    }
                    self.net.flush(*other);
                }
                return;
            }
        }
    }

    /// Submits a new command at member `at` (if it is up); returns whether it was accepted.
    pub fn propose(&mut self, at: NodeId) -> bool {
        self.next_no += 1;
        let cmd = command(200, self.next_no);
        let now = self.net.now();
        let Some(m) = self.net.node_mut(&at) else { return false };
        let ok = m.core.handle_propose(cmd, now).is_ok();
        m.drain(now);
        self.net.flush(at);
        ok
    }

    /// Runs `d` of virtual time, re-running the oracle and the checker every 10 ms.
    pub fn run(&mut self, d: Duration) {
        let end = self.net.now() + d;
        while self.net.now() < end {
            let next = (self.net.now() + Duration::from_millis(10)).min(end);
            self.net.run_until(next);
            self.elect();
            self.check();
        }
    }

    /// Safety: every member's delivered history agrees with the global chain; commit points
    /// never exceed what every member's chain can hold.
    pub fn check(&mut self) {
        let seed = self.seed();
        for (id, m) in self.net.nodes() {
            m.core.check_invariants();
            self.max_commit = self.max_commit.max(m.core.commit());
            for &(seq, hash) in &m.history {
                let agreed = *self.chain.entry(seq).or_insert(hash);
                assert_eq!(agreed, hash, "seed {seed}: {id:?} diverges at {seq:?}");
            }
        }
        for a in self.net.addrs() {
            if let Some(m) = self.net.node_mut(&a) {
                m.history.clear();
            }
        }
    }

    /// Liveness after healing: every live member delivered at least `upto`.
    pub fn assert_all_applied(&self, upto: Seq) {
        for (id, m) in self.net.nodes() {
            if m.machine.applied < upto && std::env::var("SEED").is_ok() {
                for (_, n) in self.net.nodes() {
                    eprintln!("{:#?}", n.core);
                }
            }
            assert!(
                m.machine.applied >= upto,
                "seed {}: {id:?} applied {:?} < {upto:?} (commit {:?}, leader {:?}, term {:?})",
                self.seed(),
                m.machine.applied,
                m.core.commit(),
                m.core.leader(),
                m.core.term(),
            );
        }
    }
}
