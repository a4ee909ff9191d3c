//! The seeded bidding workload shared by `tests/workload.rs` (loopback, `kill -9`) and
//! `tests/netns_workload.rs` (network namespaces, nftables drops, `kill -9`): a seller with two
//! auctions, three bidder threads that record what they see, a caller-supplied fault schedule
//! on the calling thread, then the final state of every node and the checker of
//! `workload_check/mod.rs`.
//!
//! Each bidder has its own `ClientId`, one request in flight, plain and proxy bids whose
//! auction, kind and amount come from a seeded RNG, and now and then a read (`ShowAuction`) or
//! a move to another server. On `Unavailable` it waits and retries the same request number (or,
//! if every attempt so far was refused for certain, sometimes gives the request up: it must
//! then never appear); on a lost connection, no answer within [`RESPONSE_WAIT`], or `Timeout`
//! it reconnects to the next server (`Hello` with the same `ClientId` and its newest seen seq,
//! `Login`) and sends the same request number again.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{BidKind, BidderName, Outcome};
use auction_proto::msg::client::{
    ClientError, ClientToServer, ListFilter, Reply, Request, RequestBody, Response, ServerToClient,
};
use auction_proto::{Amount, AuctionId, ClientCodec, ClientId, RequestNo, Seq, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{Client, outcome, spec};
use crate::workload_check::{
    self, BidOp, FinalState, History, Invocation, Observation, OpResult, Opened, check,
};

/// How long clients keep bidding after the heal.
pub const AFTER_HEAL: Duration = Duration::from_secs(2);
/// Every request completes within this after `max(invoked, heal)` (generous: 2 shared cores).
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);
/// A client waits this long for a response before it tries another server.
pub const RESPONSE_WAIT: Duration = Duration::from_secs(3);
/// The bidders' names, one per client thread.
pub const BIDDERS: [&str; 3] = ["alice", "bob", "carol"];

/// The seed: `SEED` if set, else a random one.
pub fn seed() -> u64 {
    match std::env::var("SEED") {
        Ok(s) => s.parse().expect("SEED is a u64"),
        Err(_) => rand::rng().random(),
    }
}

/// One connection speaking the client protocol, with short timeouts.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(RESPONSE_WAIT))?;
        stream.set_write_timeout(Some(RESPONSE_WAIT))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::new() })
    }

    fn call(&mut self, no: RequestNo, body: RequestBody) -> std::io::Result<Response> {
        let codec = ClientCodec::default();
        let bytes = codec
            .encode(&ClientToServer::Request(Request { no, body }))
            .map_err(std::io::Error::other)?;
        self.stream.write_all(&bytes)?;
        let mut chunk = [0u8; 16384];
        loop {
            if let Some((msg, used)) =
                codec.decode_stream::<ServerToClient>(&self.buf).map_err(std::io::Error::other)?
            {
                self.buf.drain(..used);
                match msg {
                    ServerToClient::Response(r) if r.no == no => return Ok(r),
                    _ => continue,
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// What the fault thread tells the clients.
pub struct Phase {
    /// When the workload started; every recorded time is since then.
    pub t0: Instant,
    /// How long the fault schedule is meant to run (clients give up 60 s past it if no heal
    /// ever comes).
    pub fault_phase: Duration,
    heal_at: Mutex<Option<Duration>>,
    stop: AtomicBool,
    /// The fault thread failed: clients stop at once.
    abort: AtomicBool,
}

/// Stops the clients if the fault thread unwinds, so the scope does not wait forever.
struct AbortOnUnwind<'a>(&'a Phase);

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort.store(true, Ordering::SeqCst);
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl Phase {
    /// Time since the workload started.
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Whether the fault schedule's time is over.
    pub fn faults_over(&self) -> bool {
        self.t0.elapsed() >= self.fault_phase
    }

    /// The heal time, once set.
    pub fn heal_at(&self) -> Option<Duration> {
        *self.heal_at.lock().unwrap()
    }

    /// Whether a client should stop retrying its request: well past the liveness bound.
    fn give_up(&self) -> bool {
        if self.abort.load(Ordering::SeqCst) {
            return true;
        }
        let now = self.t0.elapsed();
        match self.heal_at() {
            Some(h) => now > h + LIVENESS_BOUND + Duration::from_secs(3),
            None => now > self.fault_phase + Duration::from_secs(60),
        }
    }
}

/// One bidding client: its own session id, one request at a time, failover on its own.
struct Worker {
    index: usize,
    id: ClientId,
    name: BidderName,
    token: String,
    addrs: Vec<SocketAddr>,
    server: usize,
    conn: Option<Conn>,
    next: u64,
    seen: Seq,
    choices: ChaCha8Rng,
    chance: ChaCha8Rng,
    invocations: Vec<Invocation>,
    observations: Vec<Observation>,
    reconnects: u32,
    /// Attempts answered by a lost connection or no answer in time, by `Timeout`, by
    /// `Unavailable`/`Overloaded`.
    trouble: [u32; 3],
}

impl Worker {
    fn number(&mut self) -> RequestNo {
        self.next += 1;
        RequestNo(self.next)
    }

    fn observe(&mut self, applied: Seq, view: Option<(AuctionId, workload_check::View)>) {
        self.seen = self.seen.max(applied);
        self.observations.push(Observation { client: self.index, applied, view });
    }

    fn fail_over(&mut self) {
        self.conn = None;
        self.server = (self.server + 1) % self.addrs.len();
    }

    /// A session at some server: Hello with our id and seen seq, then Login.
    fn connect(&mut self, phase: &Phase) -> bool {
        while self.conn.is_none() {
            if phase.give_up() {
                return false;
            }
            self.reconnects += 1;
            let addr = self.addrs[self.server];
            let Ok(mut c) = Conn::open(addr) else {
                self.fail_over();
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let hello = RequestBody::Hello { client: self.id, seen: self.seen };
            let no = self.number();
            let welcomed = match c.call(no, hello) {
                Ok(r) if r.result.is_ok() => {
                    self.observe(r.applied, None);
                    true
                }
                _ => false,
            };
            let login = RequestBody::Login { name: self.name.clone(), token: self.token.clone() };
            let no = self.number();
            let logged_in = welcomed
                && match c.call(no, login) {
                    Ok(r) if r.result.is_ok() => {
                        self.observe(r.applied, None);
                        true
                    }
                    _ => false,
                };
            if logged_in {
                self.conn = Some(c);
            } else {
                self.fail_over();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        true
    }

    /// Sends one bid until it has a final result, retrying the same request number.
    fn bid(&mut self, op: BidOp, phase: &Phase) {
        let no = self.number();
        let body = match op.kind {
            BidKind::Plain => {
                let amount = Amount::from_minor(op.amount);
                RequestBody::Bid { auction: op.auction, amount, expected: None }
            }
            BidKind::Proxy => {
                let max = Amount::from_minor(op.amount);
                RequestBody::MaxBid { auction: op.auction, max, expected: None }
            }
        };
        let at = phase.t0.elapsed();
        let seen_before = self.seen;
        let mut uncertain = 0;
        let mut unavailable = 0u32;
        let result = loop {
            if !self.connect(phase) {
                break OpResult::Unknown;
            }
            let conn = self.conn.as_mut().unwrap();
            let r = match conn.call(no, body.clone()) {
                Ok(r) => r,
                Err(_) => {
                    // Connection lost or no answer in time: the outcome is unknown.
                    uncertain += 1;
                    self.trouble[0] += 1;
                    self.fail_over();
                    continue;
                }
            };
            match r.result {
                Ok(Reply::Outcome(o)) => {
                    uncertain += 1;
                    self.observe(r.applied, None);
                    break OpResult::Ok { outcome: o, applied: r.applied };
                }
                Err(ClientError::Timeout) => {
                    uncertain += 1;
                    self.trouble[1] += 1;
                    self.fail_over();
                }
                Err(e @ (ClientError::Unavailable { .. } | ClientError::Overloaded)) => {
                    self.observe(r.applied, None);
                    self.trouble[2] += 1;
                    // Refused for certain on every attempt so far: sometimes give it up (it
                    // must then never appear); otherwise wait and retry, elsewhere at times.
                    if uncertain == 0 && self.chance.random_bool(0.2) {
                        break OpResult::Refused(e);
                    }
                    unavailable += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    if unavailable % 4 == 0 {
                        self.fail_over();
                    }
                }
                Err(ClientError::NotLoggedIn) => {
                    // Should not happen (Login precedes every bid); log in again.
                    self.conn = None;
                }
                Err(e) => {
                    if uncertain == 0 {
                        break OpResult::Refused(e);
                    }
                    panic!("client {}: request {no:?} answered {e:?} after a retry", self.index);
                }
                Ok(other) => panic!("client {}: a bid answered {other:?}", self.index),
            }
        };
        let done_at = (result != OpResult::Unknown).then(|| phase.t0.elapsed());
        self.invocations.push(Invocation {
            client: self.index,
            no: no.0,
            op,
            at,
            done_at,
            seen_before,
            uncertain,
            result,
        });
    }

    /// A read of one auction; recorded if answered.
    fn read(&mut self, auction: AuctionId, phase: &Phase) {
        if !self.connect(phase) {
            return;
        }
        let no = self.number();
        let conn = self.conn.as_mut().unwrap();
        match conn.call(no, RequestBody::ShowAuction { auction }) {
            Ok(Response { applied, result: Ok(Reply::Auction(a)), .. }) => {
                let view = workload_check::view_of(&a.summary);
                self.observe(applied, Some((auction, view)));
            }
            Ok(_) => {}
            Err(_) => self.fail_over(),
        }
    }

    fn run(&mut self, auctions: &[AuctionId], phase: &Phase) {
        let mut k: u64 = 0;
        while !phase.stop.load(Ordering::SeqCst) {
            k += 1;
            let auction = auctions[self.choices.random_range(0..auctions.len())];
            let kind = if self.choices.random_bool(0.35) { BidKind::Proxy } else { BidKind::Plain };
            let amount = 1000 + 40 * k + self.choices.random_range(0..=500);
            let read = self.choices.random_bool(0.3);
            let read_auction = auctions[self.choices.random_range(0..auctions.len())];
            let pause = self.choices.random_range(0..30);
            let hop = self.choices.random_bool(0.03);
            self.bid(BidOp { auction, kind, amount }, phase);
            if hop {
                // Move to another server now and then: its reads must not go back in time.
                self.fail_over();
            }
            if read {
                self.read(read_auction, phase);
            }
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
}

/// The workload: its setup, its clients and what they recorded.
pub struct Workload {
    seed: u64,
    opened: Vec<Opened>,
    auctions: Vec<AuctionId>,
    workers: Vec<Worker>,
    heal_at: Option<Duration>,
    took: Duration,
    /// The seller's token: the final state is read as the seller, who sees the bidders' names.
    seller_token: String,
}

impl Workload {
    /// Registers a seller with two auctions and three bidders through `addrs` (the servers'
    /// client addresses, tried in that order by the clients).
    pub fn setup(seed: u64, addrs: &[SocketAddr]) -> Self {
        let mut seller = Client::connect(addrs[0]).unwrap();
        let seller_token = seller.register_and_login("seller");
        let mut opened = Vec::new();
        for title in ["lamp", "clock"] {
            let s = spec(title, 30);
            match outcome(&seller.retry(RequestBody::Open { spec: s.clone() })) {
                Outcome::Opened { auction, ends_at } => opened.push(Opened {
                    id: auction,
                    opened_at: Timestamp(ends_at.0 - s.duration.as_millis() as u64),
                    spec: s,
                }),
                o => panic!("open: {o:?}"),
            }
        }
        let auctions: Vec<AuctionId> = opened.iter().map(|o| o.id).collect();
        let mut workers = Vec::new();
        for (i, name) in BIDDERS.iter().enumerate() {
            let server = i % addrs.len();
            let mut c = Client::connect(addrs[server]).unwrap();
            let token = c.register_and_login(name);
            workers.push(Worker {
                index: i,
                id: ClientId::random(),
                name: BidderName::new(*name).unwrap(),
                token,
                addrs: addrs.to_vec(),
                server,
                conn: None,
                next: 0,
                seen: seller.seen.max(c.seen),
                choices: ChaCha8Rng::seed_from_u64(seed ^ (i as u64 + 1)),
                chance: ChaCha8Rng::seed_from_u64(seed.rotate_left(17) ^ (i as u64 + 1)),
                invocations: Vec::new(),
                observations: Vec::new(),
                reconnects: 0,
                trouble: [0; 3],
            });
        }
        Self { seed, opened, auctions, workers, heal_at: None, took: Duration::ZERO, seller_token }
    }

    /// The auctions the setup opened.
    pub fn auctions(&self) -> &[AuctionId] {
        &self.auctions
    }

    /// Runs the clients on threads spawned from this one (so they share its network
    /// namespace) while `faults` runs here. `faults` injects faults until
    /// [`Phase::faults_over`], then heals and returns once every node is up and agrees on a
    /// leader; that moment is the heal, and the clients bid [`AFTER_HEAL`] more.
    pub fn run(&mut self, fault_phase: Duration, faults: impl FnOnce(&Phase)) {
        let phase = Phase {
            t0: Instant::now(),
            fault_phase,
            heal_at: Mutex::new(None),
            stop: false.into(),
            abort: false.into(),
        };
        std::thread::scope(|s| {
            let _abort = AbortOnUnwind(&phase);
            let handles: Vec<_> = self
                .workers
                .iter_mut()
                .map(|w| {
                    let phase = &phase;
                    let auctions = &self.auctions;
                    s.spawn(move || w.run(auctions, phase))
                })
                .collect();
            faults(&phase);
            *phase.heal_at.lock().unwrap() = Some(phase.t0.elapsed());
            std::thread::sleep(AFTER_HEAL);
            phase.stop.store(true, Ordering::SeqCst);
            for h in handles {
                h.join().expect("a client thread panicked");
            }
        });
        self.heal_at = phase.heal_at();
        self.took = phase.t0.elapsed();
    }

    /// The newest seq any client saw.
    pub fn seen(&self) -> Seq {
        self.workers.iter().map(|w| w.seen).max().unwrap_or_default()
    }

    /// Reads every node's final state once it has applied `target`; `report(i)` describes
    /// node `i` if it does not get there in 20 s.
    pub fn final_states(
        &self,
        addrs: &[SocketAddr],
        target: Seq,
        report: impl Fn(usize) -> String,
    ) -> Vec<FinalState> {
        addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| self.final_state(i, *addr, target, &report))
            .collect()
    }

    fn final_state(
        &self,
        i: usize,
        addr: SocketAddr,
        target: Seq,
        report: &impl Fn(usize) -> String,
    ) -> FinalState {
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {i} did not reach {target:?}: {}",
                report(i)
            );
            let Ok(mut c) = Client::connect_as(addr, ClientId::random(), target) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let name = BidderName::new("seller").unwrap();
            let login = RequestBody::Login { name, token: self.seller_token.clone() };
            if !matches!(c.request(login).map(|r| r.result), Ok(Ok(Reply::Identity { .. }))) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let r = c.request(RequestBody::ListAuctions { filter: ListFilter::All }).unwrap();
            let Ok(Reply::Auctions(list)) = r.result else { panic!("list at node {i}: {r:?}") };
            let mut histories = BTreeMap::new();
            for a in &self.auctions {
                let r = c.request(RequestBody::History { auction: *a }).unwrap();
                let Ok(Reply::History(h)) = r.result else { panic!("history at node {i}: {r:?}") };
                histories.insert(*a, h);
            }
            return FinalState { node: i, auctions: list, histories };
        }
    }

    /// Checks the recorded history against `finals`; prints a summary (with `faults`, a
    /// description of the schedule) and panics with every violation and `replay` if any
    /// property fails. Returns the number of bids acknowledged `Accepted`.
    pub fn check(&self, finals: Vec<FinalState>, faults: &str, replay: &str) -> usize {
        let seed = self.seed;
        let mut history = History {
            seller: "seller".into(),
            bidders: BIDDERS.iter().map(ToString::to_string).collect(),
            auctions: self.opened.clone(),
            heal_at: self.heal_at,
            liveness_bound: LIVENESS_BOUND,
            finals,
            ..History::default()
        };
        let (mut ok, mut accepted, mut rejected, mut refused, mut unknown) = (0, 0, 0, 0, 0);
        for w in &self.workers {
            for inv in &w.invocations {
                ok += 1;
                match &inv.result {
                    OpResult::Ok { outcome: Outcome::Accepted { .. }, .. } => accepted += 1,
                    OpResult::Ok { .. } => rejected += 1,
                    OpResult::Refused(_) => refused += 1,
                    OpResult::Unknown => unknown += 1,
                }
            }
            history.invocations.extend(w.invocations.iter().cloned());
            history.observations.extend(w.observations.iter().cloned());
        }
        let reconnects: Vec<u32> = self.workers.iter().map(|w| w.reconnects).collect();
        let trouble: Vec<[u32; 3]> = self.workers.iter().map(|w| w.trouble).collect();
        let slowest = history
            .invocations
            .iter()
            .filter_map(|i| Some(i.done_at? - i.at))
            .max()
            .unwrap_or_default();
        let records: usize = history.finals[0].histories.values().map(Vec::len).sum();
        eprintln!(
            "seed {seed}: {ok} bids ({accepted} accepted, {rejected} rejected, {refused} \
             refused, {unknown} unknown), {records} in the final histories, sessions per \
             client {reconnects:?}, attempts lost/timed out/unavailable per client {trouble:?}, \
             faults {faults}, heal at {:?}, slowest bid {slowest:?}, workload {:?}",
            history.heal_at, self.took
        );
        let violations = check(&history);
        if !violations.is_empty() {
            for v in &violations {
                eprintln!("VIOLATION {}: {}", v.property, v.detail);
            }
            panic!(
                "seed {seed}: {} violation(s), first {:?}; replay: {replay}",
                violations.len(),
                violations[0]
            );
        }
        accepted
    }
}
