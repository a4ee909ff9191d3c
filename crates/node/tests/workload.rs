//! A bidding workload against 3 real `auction-node` processes on loopback while a fault thread
//! `kill -9`s and restarts them, then a heal, then the history checker of
//! `workload_check/mod.rs` over what the clients recorded and what every node shows at the end.
//!
//! Every bid choice comes from a seeded RNG; the seed is printed and `SEED=n` replays the same
//! choices (the timing, and so the interleaving, is the machine's):
//!
//! ```sh
//! SEED=42 cargo test -p auction-node --test workload -- --nocapture
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;
mod workload_check;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{BidKind, BidderName, Outcome};
use auction_proto::msg::client::{
    ClientError, ClientToServer, ListFilter, Reply, Request, RequestBody, Response, ServerToClient,
};
use auction_proto::{Amount, AuctionId, ClientCodec, ClientId, RequestNo, Seq, Timestamp};
use common::{Client, TestCluster, outcome, spec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use workload_check::{
    BidOp, FinalState, History, Invocation, Observation, OpResult, Opened, check,
};

/// How long the fault phase runs.
const FAULT_PHASE: Duration = Duration::from_secs(12);
/// How long clients keep bidding after the heal.
const AFTER_HEAL: Duration = Duration::from_secs(2);
/// Every request completes within this after `max(invoked, heal)` (generous: 2 shared cores).
const LIVENESS_BOUND: Duration = Duration::from_secs(15);
/// A client waits this long for a response before it tries another server.
const RESPONSE_WAIT: Duration = Duration::from_secs(3);

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
struct Phase {
    t0: Instant,
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
    /// Whether a client should stop retrying its request: well past the liveness bound.
    fn give_up(&self) -> bool {
        if self.abort.load(Ordering::SeqCst) {
            return true;
        }
        let now = self.t0.elapsed();
        let heal = *self.heal_at.lock().unwrap();
        match heal {
            Some(h) => now > h + LIVENESS_BOUND + Duration::from_secs(3),
            None => now > FAULT_PHASE + Duration::from_secs(60),
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
                RequestBody::Bid { auction: op.auction, amount: Amount::from_minor(op.amount) }
            }
            BidKind::Proxy => {
                RequestBody::MaxBid { auction: op.auction, max: Amount::from_minor(op.amount) }
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
                let s = &a.summary;
                let view = (s.price.minor(), s.leader.as_ref().map(ToString::to_string), s.bids);
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

fn seed() -> u64 {
    match std::env::var("SEED") {
        Ok(s) => s.parse().expect("SEED is a u64"),
        Err(_) => rand::rng().random(),
    }
}

/// Reads every node's final state once it has applied `target`.
fn final_states(cluster: &TestCluster, target: Seq, auctions: &[AuctionId]) -> Vec<FinalState> {
    let mut out = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let start = Instant::now();
        let state = loop {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {i} did not reach {target:?}: {:?}",
                cluster.report(i)
            );
            let Ok(mut c) = Client::connect_as(node.client, ClientId::random(), target) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let r = c.request(RequestBody::ListAuctions { filter: ListFilter::All }).unwrap();
            let Ok(Reply::Auctions(list)) = r.result else { panic!("list at node {i}: {r:?}") };
            let mut histories = BTreeMap::new();
            for a in auctions {
                let r = c.request(RequestBody::History { auction: *a }).unwrap();
                let Ok(Reply::History(h)) = r.result else { panic!("history at node {i}: {r:?}") };
                histories.insert(*a, h);
            }
            break FinalState { node: i, auctions: list, histories };
        };
        out.push(state);
    }
    out
}

#[test]
fn bidding_through_kill_9_and_restarts_keeps_every_property() {
    let seed = seed();
    eprintln!(
        "workload seed {seed}; replay: SEED={seed} cargo test -p auction-node --test workload"
    );
    let started = Instant::now();
    let mut cluster = TestCluster::start(3);
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();

    // Setup: a seller with two auctions, three bidders.
    let mut seller = Client::connect(addrs[0]).unwrap();
    seller.register_and_login("seller");
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
    let names = ["alice", "bob", "carol"];
    let mut workers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = Client::connect(addrs[i]).unwrap();
        let token = c.register_and_login(name);
        workers.push(Worker {
            index: i,
            id: ClientId::random(),
            name: BidderName::new(*name).unwrap(),
            token,
            addrs: addrs.clone(),
            server: i,
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

    let phase = Arc::new(Phase {
        t0: Instant::now(),
        heal_at: Mutex::new(None),
        stop: false.into(),
        abort: false.into(),
    });
    let mut kills = Vec::new();
    std::thread::scope(|s| {
        let _abort = AbortOnUnwind(&phase);
        let handles: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                let phase = &phase;
                let auctions = &auctions;
                s.spawn(move || w.run(auctions, phase))
            })
            .collect();
        // The fault thread (this one): kill -9 one node, restart it, let it rejoin, repeat.
        let mut faults = ChaCha8Rng::seed_from_u64(seed ^ 0xFA17);
        std::thread::sleep(Duration::from_millis(faults.random_range(500..1500)));
        while phase.t0.elapsed() < FAULT_PHASE {
            let leader = faults.random_bool(0.5);
            let victim = match leader.then(|| cluster.leader()).flatten() {
                Some(l) => l,
                None => faults.random_range(0..3),
            };
            cluster.kill(victim);
            kills.push((phase.t0.elapsed(), victim, leader));
            std::thread::sleep(Duration::from_millis(faults.random_range(800..1300)));
            cluster.spawn(victim);
            // Back in the configuration with a leader before the next fault: one down at most.
            let back = Instant::now();
            while back.elapsed() < Duration::from_secs(10) && !cluster.converged(3) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(faults.random_range(1000..2000)));
        }
        // Heal: every node up, one leader everywhere.
        for i in 0..3 {
            if !cluster.running(i) {
                cluster.spawn(i);
            }
        }
        cluster.wait_for(Duration::from_secs(30), |c| c.converged(3));
        *phase.heal_at.lock().unwrap() = Some(phase.t0.elapsed());
        std::thread::sleep(AFTER_HEAL);
        phase.stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().expect("a client thread panicked");
        }
    });
    let workload_took = phase.t0.elapsed();

    // Final state: every node, once it has applied everything any client saw and the leader
    // had committed when the clients stopped.
    let mut target = workers.iter().map(|w| w.seen).max().unwrap();
    for i in 0..3 {
        if let Some(r) = cluster.report(i) {
            target = target.max(r.commit);
        }
    }
    let finals = final_states(&cluster, target, &auctions);

    let mut history = History {
        seller: "seller".into(),
        bidders: names.iter().map(ToString::to_string).collect(),
        auctions: opened,
        heal_at: *phase.heal_at.lock().unwrap(),
        liveness_bound: LIVENESS_BOUND,
        finals,
        ..History::default()
    };
    let (mut ok, mut accepted, mut rejected, mut refused, mut unknown) = (0, 0, 0, 0, 0);
    for w in &workers {
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
    let reconnects: Vec<u32> = workers.iter().map(|w| w.reconnects).collect();
    let trouble: Vec<[u32; 3]> = workers.iter().map(|w| w.trouble).collect();
    let slowest = history
        .invocations
        .iter()
        .filter_map(|i| Some(i.done_at? - i.at))
        .max()
        .unwrap_or_default();
    let records: usize = history.finals[0].histories.values().map(Vec::len).sum();
    eprintln!(
        "seed {seed}: {ok} bids ({accepted} accepted, {rejected} rejected, {refused} refused, \
         {unknown} unknown), {records} in the final histories, sessions per client \
         {reconnects:?}, attempts lost/timed out/unavailable per client {trouble:?}, kills (at, node, meant the leader) {kills:?}, heal at {:?}, \
         slowest bid {slowest:?}, workload {workload_took:?}, total {:?}",
        history.heal_at,
        started.elapsed()
    );
    let violations = check(&history);
    if !violations.is_empty() {
        for v in &violations {
            eprintln!("VIOLATION {}: {}", v.property, v.detail);
        }
        panic!(
            "seed {seed}: {} violation(s), first {:?}; replay: SEED={seed} cargo test -p \
             auction-node --test workload -- --nocapture",
            violations.len(),
            violations[0]
        );
    }
    assert!(accepted > 10, "the workload should get bids accepted: {accepted}");
    assert!(!kills.is_empty(), "the fault thread should have killed nodes");
}

/// The checker on hand-made histories: a clean one passes, and a planted violation of each
/// property is reported under that property's name.
mod checker {
    use super::*;
    use auction_proto::msg::auction::{AuctionState, AuctionSummary, BidRecord, RejectReason};

    const OPEN_AT: u64 = 1_000_000;

    fn record(seq: u64, bidder: &str, kind: BidKind, price: u64) -> BidRecord {
        BidRecord {
            seq: Seq(seq),
            at: Timestamp(OPEN_AT + seq),
            bidder: BidderName::new(bidder).unwrap(),
            kind,
            price: Amount::from_minor(price),
        }
    }

    fn inv(client: usize, no: u64, amount: u64, seen_before: u64, result: OpResult) -> Invocation {
        Invocation {
            client,
            no,
            op: BidOp { auction: AuctionId(1), kind: BidKind::Plain, amount },
            at: Duration::from_secs(no),
            done_at: Some(Duration::from_secs(no) + Duration::from_millis(10)),
            seen_before: Seq(seen_before),
            uncertain: 1,
            result,
        }
    }

    fn accepted(price: u64, leader: &str, applied: u64) -> OpResult {
        OpResult::Ok {
            outcome: Outcome::Accepted {
                auction: AuctionId(1),
                price: Amount::from_minor(price),
                leader: BidderName::new(leader).unwrap(),
            },
            applied: Seq(applied),
        }
    }

    /// alice bids 1000 (seq 10), bob 1500 (seq 11: price 1100), alice 1200 is too low (seq
    /// 12), bob reads at 11.
    fn clean() -> History {
        let s = spec("lamp", 30);
        let summary = AuctionSummary {
            id: AuctionId(1),
            title: "lamp".into(),
            seller: BidderName::new("seller").unwrap(),
            state: AuctionState::Open,
            price: Amount::from_minor(1100),
            leader: Some(BidderName::new("bob").unwrap()),
            bids: 2,
            ends_at: Timestamp(OPEN_AT + s.duration.as_millis() as u64),
            reserve_met: None,
        };
        let hist = vec![
            record(10, "alice", BidKind::Plain, 1000),
            record(11, "bob", BidKind::Plain, 1100),
        ];
        let fin = |node| FinalState {
            node,
            auctions: vec![summary.clone()],
            histories: BTreeMap::from([(AuctionId(1), hist.clone())]),
        };
        let too_low = OpResult::Ok {
            outcome: Outcome::Rejected {
                reason: RejectReason::TooLow { minimum: Amount::from_minor(1200) },
            },
            applied: Seq(12),
        };
        History {
            seller: "seller".into(),
            bidders: vec!["alice".into(), "bob".into()],
            auctions: vec![Opened { id: AuctionId(1), spec: s, opened_at: Timestamp(OPEN_AT) }],
            invocations: vec![
                inv(0, 1, 1000, 9, accepted(1000, "alice", 10)),
                inv(1, 1, 1500, 9, accepted(1100, "bob", 11)),
                inv(0, 2, 1150, 10, too_low),
            ],
            observations: vec![
                Observation { client: 0, applied: Seq(10), view: None },
                Observation { client: 1, applied: Seq(11), view: None },
                Observation {
                    client: 1,
                    applied: Seq(11),
                    view: Some((AuctionId(1), (1100, Some("bob".into()), 2))),
                },
                Observation { client: 0, applied: Seq(12), view: None },
            ],
            finals: vec![fin(0), fin(1), fin(2)],
            heal_at: Some(Duration::from_secs(1)),
            liveness_bound: Duration::from_secs(10),
        }
    }

    fn properties(h: &History) -> Vec<&'static str> {
        let mut p: Vec<_> = check(h).into_iter().map(|v| v.property).collect();
        p.dedup();
        p
    }

    fn assert_caught(h: &History, property: &str) {
        let violations = check(h);
        assert!(
            violations.iter().any(|v| v.property == property),
            "expected {property}, got {violations:?}"
        );
    }

    #[test]
    fn a_clean_history_passes() {
        assert_eq!(check(&clean()), vec![]);
    }

    #[test]
    fn nodes_that_disagree_are_agreement() {
        let mut h = clean();
        h.finals[2].histories.get_mut(&AuctionId(1)).unwrap().pop();
        assert_caught(&h, "agreement");
        let mut h = clean();
        h.finals[1].auctions[0].bids = 3;
        assert_eq!(properties(&h), vec!["agreement"]);
    }

    #[test]
    fn an_acked_bid_missing_from_the_final_history_is_durability() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap().pop();
        }
        assert_caught(&h, "durability");
    }

    #[test]
    fn an_acked_bid_at_another_position_is_durability() {
        let mut h = clean();
        h.invocations[1].result = accepted(1100, "bob", 13);
        assert_eq!(properties(&h), vec!["durability"]);
    }

    #[test]
    fn a_refused_bid_that_appears_is_durability() {
        let mut h = clean();
        h.invocations[1].result = OpResult::Refused(ClientError::Unavailable {
            retry_after: Duration::from_millis(100),
            leader: None,
        });
        assert_caught(&h, "durability");
    }

    #[test]
    fn a_bid_applied_twice_or_never_sent_is_integrity() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories
                .get_mut(&AuctionId(1))
                .unwrap()
                .insert(1, record(10, "alice", BidKind::Plain, 1000));
        }
        assert_caught(&h, "integrity");
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].kind = BidKind::Proxy;
        }
        assert_caught(&h, "integrity");
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].bidder =
                BidderName::new("mallory").unwrap();
        }
        assert_caught(&h, "integrity");
    }

    #[test]
    fn a_dropping_price_or_the_wrong_leader_is_auction_rules() {
        let mut h = clean();
        for f in &mut h.finals {
            f.histories.get_mut(&AuctionId(1)).unwrap()[1].price = Amount::from_minor(900);
        }
        h.invocations[1].result = accepted(900, "bob", 11);
        assert_caught(&h, "auction-rules");
        let mut h = clean();
        for f in &mut h.finals {
            f.auctions[0].leader = Some(BidderName::new("alice").unwrap());
        }
        assert_eq!(properties(&h), vec!["auction-rules"]);
        // A valid bid answered TooLow.
        let mut h = clean();
        h.invocations[2].op.amount = 1600;
        assert_eq!(properties(&h), vec!["auction-rules"]);
    }

    #[test]
    fn a_stale_or_wrong_read_is_reads() {
        let mut h = clean();
        h.observations.push(Observation { client: 1, applied: Seq(10), view: None });
        assert_eq!(properties(&h), vec!["reads"]);
        let mut h = clean();
        h.observations[2].view = Some((AuctionId(1), (1000, Some("alice".into()), 1)));
        assert_eq!(properties(&h), vec!["reads"]);
    }

    #[test]
    fn a_request_unanswered_after_the_heal_is_liveness() {
        let mut h = clean();
        h.invocations[2].result = OpResult::Unknown;
        h.invocations[2].done_at = None;
        assert_eq!(properties(&h), vec!["liveness"]);
        let mut h = clean();
        h.invocations[2].done_at = Some(Duration::from_secs(30));
        assert_eq!(properties(&h), vec!["liveness"]);
    }
}
