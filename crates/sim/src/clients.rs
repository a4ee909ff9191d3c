//! The simulated clients: they speak the client protocol (encoded frames) over simulated
//! connections to the server core of the server they talk to, as `auction-client` does.
//!
//! A client opens a connection with `Hello` (its secret id and the newest seq it has seen)
//! and, once registered, `Login`; it has one write in flight, times out, and retries the same
//! request number at another server on a new connection (the server keys requests by the
//! hash of the secret, so the retry is the same `RequestId`). Reads are `ShowAuction`
//! requests; the applied seq of every answer is what the client has seen.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{AuctionSpec, BidKind, BidderName, IncrementRule, Outcome};
use auction_proto::msg::client::{
    ClientError, ClientToServer, Reply, Request, RequestBody, Response, ServerToClient,
};
use auction_proto::msg::log::{Operation, RequestId};
use auction_proto::{Amount, AuctionId, ClientCodec, ClientId, ClusterKey, RequestNo, Seq};
use auction_server::{ConnId, hash, register_token, session_id};
use rand::Rng;

use super::{Sim, addr};
use crate::history::{Invocation, OpResult, Read};

/// How long a client waits for an answer before it retries elsewhere.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1_000);

/// One connection of a client to one boot of a server.
#[derive(Debug)]
struct Conn {
    server: usize,
    boot: u64,
    id: ConnId,
    /// Bytes received, not yet decoded (whole frames, as the core sends them).
    buf: Vec<u8>,
}

/// A client: one request at a time, retried with the same id at another server on timeout.
#[derive(Debug)]
pub(super) struct Client {
    /// What it sends in `Hello`.
    secret: ClientId,
    name: BidderName,
    /// The token of its registration, once answered.
    token: Option<String>,
    next_no: u64,
    /// Auctions it asked to open.
    opens: u32,
    /// Connections opened so far (numbers them).
    conns: u64,
    conn: Option<Conn>,
    /// Index into the history's invocations, the server tried, the attempt deadline.
    pending: Option<(usize, usize, Instant)>,
    /// Whether every attempt of the pending request so far was refused for certain (it may
    /// then be given up: it can never apply).
    refused_so_far: bool,
    server: usize,
    seen: Seq,
    not_before: Instant,
}

impl Client {
    pub(super) fn new(i: usize, server: usize, now: Instant) -> Self {
        Self {
            secret: ClientId::from_bytes([0xC0 + i as u8; 16]),
            name: BidderName::new(format!("c{i}")).unwrap_or_else(|_| unreachable!()),
            token: None,
            next_no: 1,
            opens: 0,
            conns: 0,
            conn: None,
            pending: None,
            refused_so_far: true,
            server,
            seen: Seq::ZERO,
            not_before: now,
        }
    }

    fn number(&mut self) -> RequestNo {
        let no = RequestNo(self.next_no);
        self.next_no += 1;
        no
    }
}

/// How an attempt went, as far as the client can tell at once.
#[allow(clippy::large_enum_variant)] // one per request, consumed at once
enum Sent {
    /// Sent; the answer comes later.
    Waiting,
    /// Answered at once.
    Answered(Response),
    /// No session could be opened (server down, behind, not ready).
    NoSession,
}

fn key() -> ClusterKey {
    ClusterKey::new(&[0x5A; 32]).unwrap_or_else(|_| unreachable!("a 32-byte key is valid"))
}

/// The request that asks for `op` (which the server derives from it again).
fn body_of(op: &Operation) -> RequestBody {
    match op.clone() {
        Operation::RegisterBidder { name, .. } => RequestBody::Register { name },
        Operation::OpenAuction { spec, .. } => RequestBody::Open { spec },
        Operation::PlaceBid { auction, amount, kind: BidKind::Plain, expected, .. } => {
            RequestBody::Bid { auction, amount, expected }
        }
        Operation::PlaceBid { auction, amount: max, expected, .. } => {
            RequestBody::MaxBid { auction, max, expected }
        }
        _ => unreachable!("simulated clients send registrations, openings and bids"),
    }
}

impl Sim {
    pub(super) fn clients_step(&mut self, healing: bool) {
        for c in 0..self.clients.len() {
            self.client_step(c, healing);
        }
    }

    fn client_step(&mut self, c: usize, healing: bool) {
        let now = self.net.now();
        let elapsed = self.net.elapsed();
        if let Some((inv, server, deadline)) = self.clients[c].pending {
            let no = self.history.invocations[inv].request.no;
            match self.answer(c, no) {
                Some(Response { applied, result: Ok(reply), .. }) => {
                    self.completed(c, inv, applied, reply);
                }
                // `Timeout` (or a refusal of a retry): the outcome is unknown; retry elsewhere.
                Some(Response { result: Err(_), .. }) => self.retry(c, inv, server),
                None if now >= deadline || !self.connected(c) => self.retry(c, inv, server),
                None => {}
            }
            return;
        }
        if healing || now < self.clients[c].not_before || !self.rng.random_bool(0.3) {
            return;
        }
        if self.clients[c].token.is_some() && self.rng.random_bool(0.3) {
            self.read(c);
            return;
        }
        let op = self.next_op(c);
        let no = self.clients[c].number();
        let request = RequestId { client: session_id(self.clients[c].secret), no };
        let op = match op {
            // The token the server derives for this request, whose hash it commits.
            Operation::RegisterBidder { name, .. } => {
                let token_hash = hash(&register_token(&key(), request));
                Operation::RegisterBidder { name, token_hash }
            }
            op => op,
        };
        self.history.invocations.push(Invocation {
            request,
            op,
            at: elapsed,
            done_at: None,
            attempts: 1,
            result: OpResult::Pending,
        });
        self.send(c, self.history.invocations.len() - 1);
    }

    /// Invocation `inv` of client `c` was answered `reply` at `applied`.
    fn completed(&mut self, c: usize, inv: usize, applied: Seq, reply: Reply) {
        let outcome = match reply {
            Reply::Registered { name, token } => {
                self.clients[c].token = Some(token);
                self.log_in(c);
                Outcome::Registered { bidder: name }
            }
            Reply::Outcome(o) => o,
            other => unreachable!("a write answered {other:?}"),
        };
        let i = &mut self.history.invocations[inv];
        i.result = OpResult::Ok { seq: applied, outcome };
        i.done_at = Some(self.net.elapsed());
        self.clients[c].pending = None;
    }

    /// A timed-out or lost attempt: the same request at another server.
    fn retry(&mut self, c: usize, inv: usize, server: usize) {
        let n = self.opts.servers;
        self.clients[c].server = (server + 1 + self.rng.random_range(0..n - 1)) % n;
        self.history.invocations[inv].attempts += 1;
        self.send(c, inv);
    }

    fn next_op(&mut self, c: usize) -> Operation {
        let name = self.clients[c].name.clone();
        if self.clients[c].token.is_none() {
            return Operation::RegisterBidder { name, token_hash: [0; 32] };
        }
        if c == 0 && self.clients[c].opens < 2 {
            self.clients[c].opens += 1;
            let spec = AuctionSpec {
                title: format!("lot {}", self.clients[c].opens + 1),
                description: String::new(),
                starting_price: Amount::from_minor(100),
                reserve: None,
                increment: IncrementRule::Fixed(Amount::from_minor(10)),
                duration: Duration::from_millis(self.rng.random_range(1_500..5_000)),
                soft_close: None,
                buy_now: None,
            };
            return Operation::OpenAuction { seller: name, spec };
        }
        let auction = AuctionId(self.rng.random_range(1..=2));
        let amount = Amount::from_minor(self.rng.random_range(100..5_000));
        let kind = if self.rng.random_bool(0.5) { BidKind::Plain } else { BidKind::Proxy };
        Operation::PlaceBid { auction, bidder: name, amount, kind, expected: None }
    }

    /// Sends (or resends) invocation `inv` of client `c` to the client's current server.
    fn send(&mut self, c: usize, inv: usize) {
        let now = self.net.now();
        let server = self.clients[c].server;
        let i = &self.history.invocations[inv];
        let (no, first, body) = (i.request.no, i.attempts == 1, body_of(&i.op));
        if first {
            self.clients[c].refused_so_far = true;
        }
        self.clients[c].pending = Some((inv, server, now + CLIENT_TIMEOUT));
        let sent = self.call(c, no, body);
        self.net.flush(addr(server));
        let certain =
            matches!(&sent, Sent::Answered(Response { result: Err(e), .. }) if certain(e));
        if !certain && !matches!(sent, Sent::NoSession) {
            self.clients[c].refused_so_far = false;
        }
        match sent {
            Sent::Waiting => {}
            // Answered at once (a planted bug acknowledges on sequencing).
            Sent::Answered(Response { applied, result: Ok(reply), .. }) => {
                self.completed(c, inv, applied, reply);
            }
            // Connection refused, or no session: try another server at the next step.
            Sent::NoSession => self.clients[c].pending = Some((inv, server, now)),
            // Refused for certain on every attempt: sometimes given up (it must then never
            // appear), else retried elsewhere, as a real client does on `Unavailable`.
            Sent::Answered(_)
                if certain && self.clients[c].refused_so_far && self.rng.random_bool(0.5) =>
            {
                let i = &mut self.history.invocations[inv];
                i.result = OpResult::Failed;
                i.done_at = Some(self.net.elapsed());
                self.clients[c].pending = None;
                self.clients[c].not_before = now + Duration::from_millis(100);
            }
            Sent::Answered(_) => {
                // Refused here: try another server soon (an earlier attempt may apply).
                self.clients[c].pending = Some((inv, server, now + Duration::from_millis(100)));
            }
        }
    }

    fn read(&mut self, c: usize) {
        let auction = AuctionId(1);
        let server = self.clients[c].server;
        let no = self.clients[c].number();
        let answer = match self.call(c, no, RequestBody::ShowAuction { auction }) {
            Sent::Answered(r) => r,
            // Behind what the client has seen, or not ready: another server next time.
            Sent::NoSession | Sent::Waiting => {
                self.clients[c].server = (server + 1) % self.opts.servers;
                return;
            }
        };
        let view = match answer.result {
            Ok(Reply::Auction(v)) => Some((
                v.summary.price.minor(),
                v.summary.leader.map(|l| l.to_string()),
                v.summary.bids,
            )),
            Err(ClientError::UnknownAuction) => None,
            _ => {
                self.clients[c].server = (server + 1) % self.opts.servers;
                return;
            }
        };
        let reader = self.clients[c].name.clone();
        self.history.reads.push(Read { client: c, applied: answer.applied, auction, reader, view });
        if self.rng.random_bool(0.3) {
            self.clients[c].server = self.rng.random_range(0..self.opts.servers);
        }
    }

    /// Sends one request on a session at the client's server (opened first if needed) and
    /// returns its answer if it came at once.
    fn call(&mut self, c: usize, no: RequestNo, body: RequestBody) -> Sent {
        if !self.session(c) {
            return Sent::NoSession;
        }
        self.transmit(c, no, body);
        match self.answer(c, no) {
            Some(r) => Sent::Answered(r),
            None => Sent::Waiting,
        }
    }

    /// Whether the client has a session at its current server: a live connection, or a new
    /// one on which `Hello` (and `Login`, once registered) succeeded.
    fn session(&mut self, c: usize) -> bool {
        let server = self.clients[c].server;
        if self.clients[c].conn.as_ref().is_some_and(|k| k.server != server) {
            self.hang_up(c);
        }
        if self.connected(c) {
            return true;
        }
        self.hang_up(c);
        let now = self.net.now();
        let Some(s) = self.net.node_mut(&addr(server)) else { return false };
        let cl = &mut self.clients[c];
        cl.conns += 1;
        let id = ((c as u64) << 32) | cl.conns;
        let from = SocketAddr::from(([10, 0, 1, 1 + c as u8], 5000));
        s.client_connect(id, from, now);
        cl.conn = Some(Conn { server, boot: s.boot, id, buf: Vec::new() });
        let hello = RequestBody::Hello { client: cl.secret, seen: cl.seen };
        let no = cl.number();
        self.transmit(c, no, hello);
        if self.answer(c, no).is_none_or(|r| r.result.is_err()) {
            self.hang_up(c);
            return false;
        }
        self.log_in(c)
    }

    /// Logs the client's session in, once it is registered; on a refusal the connection is
    /// closed (the next request opens a new session).
    fn log_in(&mut self, c: usize) -> bool {
        let cl = &mut self.clients[c];
        let Some(token) = cl.token.clone() else { return true };
        let login = RequestBody::Login { name: cl.name.clone(), token };
        let no = cl.number();
        self.transmit(c, no, login);
        if self.answer(c, no).is_none_or(|r| r.result.is_err()) {
            self.hang_up(c);
            return false;
        }
        true
    }

    /// Whether the client's connection is still open (its server boot up, not closed).
    fn connected(&self, c: usize) -> bool {
        let Some(k) = &self.clients[c].conn else { return false };
        self.net
            .node(&addr(k.server))
            .is_some_and(|s| s.boot == k.boot && !s.client_closed.contains(&k.id))
    }

    /// Closes the client's connection, if any.
    fn hang_up(&mut self, c: usize) {
        let Some(k) = self.clients[c].conn.take() else { return };
        let now = self.net.now();
        if let Some(s) = self.net.node_mut(&addr(k.server)) {
            if s.boot == k.boot {
                s.client_close(k.id, now);
            }
        }
    }

    /// Writes one request frame on the client's connection.
    fn transmit(&mut self, c: usize, no: RequestNo, body: RequestBody) {
        let Some(k) = &self.clients[c].conn else { return };
        let (server, id) = (k.server, k.id);
        let msg = ClientToServer::Request(Request { no, body });
        let Ok(bytes) = ClientCodec::default().encode(&msg) else {
            unreachable!("simulated requests fit in a frame")
        };
        let now = self.net.now();
        if let Some(s) = self.net.node_mut(&addr(server)) {
            s.client_send(id, &bytes, now);
        }
    }

    /// Reads what the server sent the client; the response numbered `no`, if it came. Every
    /// response's applied seq is what the client has seen.
    fn answer(&mut self, c: usize, no: RequestNo) -> Option<Response> {
        let cl = &mut self.clients[c];
        let k = cl.conn.as_mut()?;
        if let Some(s) = self.net.node_mut(&addr(k.server)) {
            if s.boot == k.boot {
                if let Some(bytes) = s.client_out.remove(&k.id) {
                    k.buf.extend(bytes);
                }
            }
        }
        let codec = ClientCodec::default();
        let mut found = None;
        let mut at = 0;
        while let Ok(Some((msg, used))) = codec.decode_stream::<ServerToClient>(&k.buf[at..]) {
            at += used;
            if let ServerToClient::Response(r) = msg {
                cl.seen = cl.seen.max(r.applied);
                if r.no == no {
                    found = Some(r);
                }
            }
        }
        k.buf.drain(..at);
        found
    }
}

/// Refusals that say for certain that nothing was submitted.
fn certain(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unavailable { .. }
            | ClientError::Overloaded
            | ClientError::NotLoggedIn
            | ClientError::BadRequest
            | ClientError::HelloFirst
    )
}
