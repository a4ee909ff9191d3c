//! The seeded in-memory network and its virtual clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A sans-IO core as the network drives it.
///
/// The network calls `handle_message` / `handle_timeout` and right after each call drains
/// [`SimNode::drain_outgoing`]. Adapters translate the core's own action enum into
/// [`Outgoing`] messages and keep anything else (events) for the test to inspect.
pub trait SimNode {
    /// How nodes are addressed (`SocketAddr` for membership, `NodeId` for others).
    type Addr: Copy + Ord + Debug;
    /// The message type on the wire.
    type Msg: Clone + Debug;

    /// A message from `from` arrived at `now`.
    fn handle_message(&mut self, from: Self::Addr, msg: Self::Msg, now: Instant);
    /// The clock reached (or passed) the node's [`SimNode::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// The node's next deadline, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Messages the node wants sent, in order.
    fn drain_outgoing(&mut self) -> Vec<Outgoing<Self::Addr, Self::Msg>>;
}

/// Where an outgoing message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest<A> {
    /// One node (dropped if nobody lives at that address).
    To(A),
    /// Every other node currently in the network, each copy faulted independently.
    Broadcast,
}

/// One message a node wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing<A, M> {
    /// Destination.
    pub to: Dest<A>,
    /// Message.
    pub msg: M,
}

/// Fault settings; change them mid-run with [`Network::set_config`].
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest one-way delay (delays are uniform in between, so messages reorder).
    pub delay_max: Duration,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a delivered message arrives twice (the copy gets its own delay).
    pub duplicate: f64,
    /// Bound on messages in flight; more are dropped and counted in [`NetStats::overflow`].
    pub max_in_flight: usize,
}

impl Default for NetConfig {
    /// A clean LAN: 1–5 ms delay, no loss, no duplicates.
    fn default() -> Self {
        Self {
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(5),
            drop: 0.0,
            duplicate: 0.0,
            max_in_flight: 100_000,
        }
    }
}

/// Counters of what happened to messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network (a broadcast counts once per receiver).
    pub sent: u64,
    /// Lost to random drop.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Discarded by a partition at delivery time.
    pub blocked: u64,
    /// Discarded because the receiver was crashed or never existed.
    pub undeliverable: u64,
    /// Discarded because [`NetConfig::max_in_flight`] was reached.
    pub overflow: u64,
    /// Handed to a receiver.
    pub delivered: u64,
}

#[derive(Debug)]
struct InFlight<A, M> {
    at: Instant,
    /// Send order, so equal delivery times stay deterministic.
    seq: u64,
    from: A,
    to: A,
    /// Boxed so the heap moves a pointer, not a possibly large message.
    msg: Box<M>,
}

impl<A, M> PartialEq for InFlight<A, M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<A, M> Eq for InFlight<A, M> {}
impl<A, M> PartialOrd for InFlight<A, M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<A, M> Ord for InFlight<A, M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// How many handler rounds may run without the clock moving before we call it a livelock.
const MAX_STEPS_WITHOUT_PROGRESS: u32 = 10_000;

/// A seeded in-memory network of [`SimNode`]s with a virtual clock.
///
/// Invariants: `in_flight.len() <= config.max_in_flight`; every message in flight is due at or
/// after `now`; `now` never goes backwards.
#[derive(Debug)]
pub struct Network<N: SimNode> {
    seed: u64,
    rng: ChaCha8Rng,
    start: Instant,
    now: Instant,
    config: NetConfig,
    nodes: BTreeMap<N::Addr, N>,
    in_flight: BinaryHeap<Reverse<InFlight<N::Addr, N::Msg>>>,
    blocked: BTreeSet<(N::Addr, N::Addr)>,
    next_seq: u64,
    stats: NetStats,
    steps_without_progress: u32,
}

impl<N: SimNode> Network<N> {
    /// An empty network whose every random choice derives from `seed`.
    ///
    /// The clock starts at an arbitrary `Instant` (read once here); only offsets from
    /// [`Network::start`] matter, so runs with the same seed are identical.
    pub fn new(seed: u64, config: NetConfig) -> Self {
        let start = Instant::now();
        Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            start,
            now: start,
            config,
            nodes: BTreeMap::new(),
            in_flight: BinaryHeap::new(),
            blocked: BTreeSet::new(),
            next_seq: 0,
            stats: NetStats::default(),
            steps_without_progress: 0,
        }
    }

    /// The seed this network was built with (print it when an assertion fails).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The virtual time at creation.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time elapsed since creation.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The network's RNG, for tests that want seeded choices of their own (which node to crash).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Message counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// How many messages are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The current fault settings.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Replaces the fault settings from now on (messages in flight keep their fate).
    pub fn set_config(&mut self, config: NetConfig) {
        self.config = config;
    }

    /// Adds a node, or restarts one: a node already at `addr` is replaced (crash + restart).
    /// Its pending outgoing messages are sent at once.
    pub fn add_node(&mut self, addr: N::Addr, node: N) {
        self.nodes.insert(addr, node);
        self.flush(addr);
    }

    /// Crashes the node at `addr`: it stops at once, messages to it are lost until a node is
    /// added there again. Returns the crashed state for inspection.
    pub fn crash(&mut self, addr: &N::Addr) -> Option<N> {
        self.nodes.remove(addr)
    }

    /// The node at `addr`, if it is up.
    pub fn node(&self, addr: &N::Addr) -> Option<&N> {
        self.nodes.get(addr)
    }

    /// The node at `addr`, if it is up. Call [`Network::flush`] after feeding it inputs.
    pub fn node_mut(&mut self, addr: &N::Addr) -> Option<&mut N> {
        self.nodes.get_mut(addr)
    }

    /// All running nodes, in address order.
    pub fn nodes(&self) -> impl Iterator<Item = (&N::Addr, &N)> {
        self.nodes.iter()
    }

    /// Addresses of all running nodes, in order.
    pub fn addrs(&self) -> Vec<N::Addr> {
        self.nodes.keys().copied().collect()
    }

    /// Sends whatever the node at `addr` has queued (after a test fed it an input directly).
    pub fn flush(&mut self, addr: N::Addr) {
        let Some(node) = self.nodes.get_mut(&addr) else {
            return;
        };
        for out in node.drain_outgoing() {
            self.send(addr, out);
        }
    }

    /// Sends `msg` to `to` as if a host at `from` had sent it (an attacker, or anything that
    /// is not a node): it gets a delay and may be dropped, duplicated or blocked like any
    /// other message. `from` need not be a node.
    pub fn inject(&mut self, from: N::Addr, to: N::Addr, msg: N::Msg) {
        self.send_one(from, to, msg);
    }

    /// Blocks traffic from `from` to `to` (one way).
    pub fn block(&mut self, from: N::Addr, to: N::Addr) {
        self.blocked.insert((from, to));
    }

    /// Blocks traffic both ways between every node of `a` and every node of `b`.
    pub fn partition(&mut self, a: &[N::Addr], b: &[N::Addr]) {
        for &x in a {
            for &y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// Cuts `addr` off from every node currently in the network, both ways.
    pub fn isolate(&mut self, addr: N::Addr) {
        let others: Vec<_> = self.addrs().into_iter().filter(|a| *a != addr).collect();
        self.partition(&[addr], &others);
    }

    /// Removes every partition and one-way block.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether traffic from `from` to `to` is blocked.
    pub fn is_blocked(&self, from: N::Addr, to: N::Addr) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// When the next event happens: the earliest delivery or node deadline.
    pub fn next_event(&self) -> Option<Instant> {
        let msg = self.in_flight.peek().map(|Reverse(m)| m.at);
        let timer = self.nodes.values().filter_map(SimNode::poll_timeout).min();
        match (msg, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Jumps the clock to the next event and handles everything due then: deliveries first (in
    /// send order), then the timeouts of every node whose deadline has come (in address order).
    /// Returns `false` if nothing is scheduled at all.
    ///
    /// # Panics
    /// If nodes keep asking for deadlines in the past without the clock moving (a livelock in
    /// the core under test); the message names the seed.
    pub fn step(&mut self) -> bool {
        match self.next_event() {
            Some(next) => {
                self.step_to(next);
                true
            }
            None => false,
        }
    }

    fn step_to(&mut self, next: Instant) {
        if next > self.now {
            self.now = next;
            self.steps_without_progress = 0;
        } else {
            self.steps_without_progress += 1;
            assert!(
                self.steps_without_progress < MAX_STEPS_WITHOUT_PROGRESS,
                "livelock at {:?} after start (seed {})",
                self.elapsed(),
                self.seed
            );
        }
        self.deliver_due();
        self.fire_due_timeouts();
    }

    /// Runs until the clock reaches `deadline` (handling events due at `deadline` too), then
    /// sets the clock to `deadline`.
    pub fn run_until(&mut self, deadline: Instant) {
        while let Some(next) = self.next_event().filter(|at| *at <= deadline) {
            self.step_to(next);
        }
        self.now = self.now.max(deadline);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    fn deliver_due(&mut self) {
        while self.in_flight.peek().is_some_and(|Reverse(m)| m.at <= self.now) {
            let Some(Reverse(m)) = self.in_flight.pop() else {
                break;
            };
            if self.blocked.contains(&(m.from, m.to)) {
                self.stats.blocked += 1;
                continue;
            }
            let Some(node) = self.nodes.get_mut(&m.to) else {
                self.stats.undeliverable += 1;
                continue;
            };
            self.stats.delivered += 1;
            node.handle_message(m.from, *m.msg, self.now);
            self.flush(m.to);
        }
    }

    fn fire_due_timeouts(&mut self) {
        let now = self.now;
        let due: Vec<_> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.poll_timeout().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            if let Some(node) = self.nodes.get_mut(&addr) {
                node.handle_timeout(now);
            }
            self.flush(addr);
        }
    }

    fn send(&mut self, from: N::Addr, out: Outgoing<N::Addr, N::Msg>) {
        match out.to {
            Dest::To(to) => self.send_one(from, to, out.msg),
            Dest::Broadcast => {
                let targets: Vec<_> = self.nodes.keys().copied().filter(|a| *a != from).collect();
                for to in targets {
                    self.send_one(from, to, out.msg.clone());
                }
            }
        }
    }

    fn send_one(&mut self, from: N::Addr, to: N::Addr, msg: N::Msg) {
        self.stats.sent += 1;
        if self.rng.random_bool(self.config.drop.clamp(0.0, 1.0)) {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.random_bool(self.config.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            self.enqueue(from, to, msg.clone());
        }
        self.enqueue(from, to, msg);
    }

    fn enqueue(&mut self, from: N::Addr, to: N::Addr, msg: N::Msg) {
        if self.in_flight.len() >= self.config.max_in_flight {
            self.stats.overflow += 1;
            return;
        }
        let (lo, hi) = (self.config.delay_min, self.config.delay_max.max(self.config.delay_min));
        let delay = if lo == hi { lo } else { self.rng.random_range(lo..=hi) };
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = self.now + delay;
        self.in_flight.push(Reverse(InFlight { at, seq, from, to, msg: Box::new(msg) }));
    }
}
