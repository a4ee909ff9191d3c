//! Client sessions: the hello handshake, bidder login, reads served from the local state
//! machine, writes submitted to the replica and answered once applied, and events pushed to
//! subscribers. Answers are encoded into each connection's output buffer, which
//! [`crate::Server`] hands to the driver as [`crate::Action::ToClient`].
//!
//! Invariants: every pending write belongs to a live connection or is answered `Timeout` by
//! [`Sessions::expire`]; a connection has at most [`MAX_PENDING_PER_CONN`] pending writes and
//! at most [`MAX_IN_FLIGHT`] unanswered requests; a response never carries an applied seq
//! lower than one the connection was already given (refusals included).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_core::{Event, token_hash_matches};
use auction_proto::msg::auction::{AuctionEvent, BidKind, BidderName, Outcome};
use auction_proto::msg::client::{
    AdminOp, ClientError, ClientInfo, PushEvent, QueuedEntry, Reply, Request, RequestBody,
    Response, ServerToClient,
};
use auction_proto::msg::log::{Command, Operation, RequestId, TokenHash};
use auction_proto::{AuctionId, ClientCodec, ClientId, ClusterKey, RequestNo, Seq, Timestamp};
use auction_replica::{AdminError, Replica, SubmitError};
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::action::ConnId;

/// Most writes one connection may have waiting for their outcome.
pub const MAX_PENDING_PER_CONN: usize = 64;
/// How long a write may wait for its outcome before the client is told `Timeout` (the
/// outcome is then unknown: the client retries with the same request number).
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one connection may have unanswered; at the limit the core reads no more of its
/// bytes (and grants the driver no more to read: TCP back-pressure on that client alone).
pub const MAX_IN_FLIGHT: usize = 128;

#[derive(Debug)]
enum Watch {
    All,
    One(AuctionId),
}

#[derive(Debug)]
pub(crate) struct Conn {
    addr: SocketAddr,
    client: Option<ClientId>,
    bidder: Option<BidderName>,
    seen: Seq,
    watch: Option<Watch>,
    pending: usize,
    /// Requests decoded and not yet answered.
    pub(crate) unanswered: usize,
    /// Encoded frames not yet handed to the driver.
    pub(crate) out: Vec<u8>,
    /// Bytes received and not yet decoded (at most a partial frame, or whole frames held
    /// while the connection is at [`MAX_IN_FLIGHT`]).
    pub(crate) inbuf: Vec<u8>,
    /// Bytes consumed from `inbuf` and not yet granted back to the driver.
    pub(crate) credit: usize,
    /// When bytes last arrived.
    pub(crate) last_read: Instant,
    /// When the connection was accepted (a connection that has not said `Hello` within the
    /// hello timeout is closed).
    pub(crate) opened: Instant,
}

impl Conn {
    /// Whether the connection has said `Hello`.
    pub(crate) fn greeted(&self) -> bool {
        self.client.is_some()
    }

    /// Where it comes from.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The highest applied seq this connection was given.
    pub(crate) fn seen(&self) -> Seq {
        self.seen
    }
}

#[derive(Debug)]
struct Pending {
    conn: ConnId,
    no: RequestNo,
    since: Instant,
    /// For `Register`: the secret token to hand back once the name is committed.
    token: Option<String>,
}

/// What the server must do after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing more.
    None,
    /// An admin asked this node to leave: stop once the leave has been carried out.
    Leave,
}

/// Planted bugs in session handling, for the simulation to show that its checker catches
/// them. Off everywhere else.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFaults {
    /// Stale reads: `Hello` ignores the seq the client has seen (no `Behind` check), and
    /// reads skip the readiness gate, so a client failing over can read a state older than
    /// one it was shown.
    pub stale_reads: bool,
    /// Requests are keyed by the connection as well as the client's secret, so a retry on
    /// another connection (after a failover) is a new request: exactly-once is lost.
    pub per_connection_ids: bool,
}

impl SessionFaults {
    /// Whether the planted stale-read bug is on: never without the `faults` feature.
    fn stale(&self) -> bool {
        cfg!(feature = "faults") && self.stale_reads
    }

    /// The session id of a client that sent `secret` in `Hello` on `conn`.
    fn session_of(&self, secret: ClientId, conn: ConnId) -> ClientId {
        if !(cfg!(feature = "faults") && self.per_connection_ids) {
            return session_id(secret);
        }
        let mut bytes = *secret.as_bytes();
        for (b, c) in bytes.iter_mut().zip(conn.to_be_bytes()) {
            *b ^= c;
        }
        session_id(ClientId::from_bytes(bytes))
    }
}

/// All client sessions of this node.
#[derive(Debug)]
pub(crate) struct Sessions {
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pending: BTreeMap<RequestId, Pending>,
    admin_hash: TokenHash,
    /// Makes bidder tokens: a keyed hash of the request id (the cluster key, so every server
    /// derives the same token for the same request and nobody without the key can).
    token_key: ClusterKey,
    pub(crate) codec: ClientCodec,
    /// The wall clock last fed in (the `Welcome`'s `now`).
    pub(crate) wall: Timestamp,
    /// Connections with output or credit for the driver.
    pub(crate) dirty: BTreeSet<ConnId>,
    /// Connections closed by the core, for the driver to close.
    pub(crate) closed: Vec<ConnId>,
    /// Connections at [`MAX_IN_FLIGHT`] with bytes left to decode.
    pub(crate) blocked: BTreeSet<ConnId>,
    pub(crate) faults: SessionFaults,
    pub(crate) admission: AdmissionStats,
}

/// Client connections the edge turned away, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Closed at once: the server held `max_clients` connections.
    pub refused_full: u64,
    /// Closed at once: its address held `max_clients_per_source` connections.
    pub refused_per_source: u64,
    /// Closed for not saying `Hello` within the hello timeout.
    pub hello_timeouts: u64,
}

impl Sessions {
    /// No sessions; admin requests must present `admin_token`; bidder tokens are derived
    /// with `key`.
    pub(crate) fn new(admin_token: &str, key: ClusterKey, codec: ClientCodec) -> Self {
        Self {
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            admin_hash: hash(admin_token),
            token_key: key,
            codec,
            wall: Timestamp(0),
            dirty: BTreeSet::new(),
            closed: Vec::new(),
            blocked: BTreeSet::new(),
            faults: SessionFaults::default(),
            admission: AdmissionStats::default(),
        }
    }

    /// Number of connected clients.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Writes waiting for their outcome.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A new connection.
    pub(crate) fn open(&mut self, conn: ConnId, addr: SocketAddr, now: Instant) {
        let c = Conn {
            addr,
            client: None,
            bidder: None,
            seen: Seq(0),
            watch: None,
            pending: 0,
            unanswered: 0,
            out: Vec::new(),
            inbuf: Vec::new(),
            credit: 0,
            last_read: now,
            opened: now,
        };
        self.conns.insert(conn, c);
    }

    /// A connection ended; its pending writes stay pending until they complete or expire, so
    /// that a client retrying on another connection (same request id) is answered there.
    pub(crate) fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.blocked.remove(&conn);
        self.dirty.remove(&conn);
    }

    /// Handles one request.
    pub(crate) fn handle(
        &mut self,
        replica: &mut Replica,
        conn: ConnId,
        req: Request,
        now: Instant,
    ) -> Effect {
        let Some(c) = self.conns.get_mut(&conn) else { return Effect::None };
        let applied = replica.applied();
        let result = match (&req.body, c.client) {
            (RequestBody::Hello { client, seen }, _) => {
                let stale = self.faults.stale();
                if *seen > applied && !stale {
                    Err(ClientError::Behind { applied, seen: *seen })
                } else {
                    // The id a client sends is its secret: requests are keyed by its hash, so
                    // no one who sees a session's id (e.g. in `clients`) can act as it.
                    c.client = Some(self.faults.session_of(*client, conn));
                    if !stale {
                        c.seen = c.seen.max(*seen);
                    }
                    Ok(Reply::Welcome {
                        server: replica.me().node,
                        servers: replica.servers(),
                        now: self.wall,
                    })
                }
            }
            (_, None) => Err(ClientError::HelloFirst),
            (_, Some(client)) => {
                let id = RequestId { client, no: req.no };
                return self.handle_in_session(replica, conn, id, req.body, now);
            }
        };
        self.respond(conn, req.no, applied, result);
        Effect::None
    }

    fn handle_in_session(
        &mut self,
        replica: &mut Replica,
        conn: ConnId,
        id: RequestId,
        body: RequestBody,
        now: Instant,
    ) -> Effect {
        let applied = replica.applied();
        let stale_read = self.faults.stale()
            && !is_write(&body)
            && !matches!(body, RequestBody::Register { .. });
        if needs_ready(&body) && !replica.is_ready() && !stale_read {
            // A node that has just started (or lost its leader) would answer from a state
            // that may be older than what the client saw: "wrong token" or "no such auction"
            // would look final. Unavailable sends the client to another server.
            let leader = replica.leader().filter(|l| *l != replica.me().node);
            let retry_after = Duration::from_millis(100);
            self.respond(
                conn,
                id.no,
                applied,
                Err(ClientError::Unavailable { retry_after, leader }),
            );
            return Effect::None;
        }
        let result = match body {
            RequestBody::Admin { token, op } => {
                return self.admin(replica, conn, id.no, &token, op, now);
            }
            RequestBody::Register { name } => {
                // The same request (a retry, on any server) gets the same token, so the one
                // whose hash was committed is the one the client is given.
                let token = register_token(&self.token_key, id);
                let op = Operation::RegisterBidder { name, token_hash: hash(&token) };
                return self.submit(replica, conn, id, op, Some(token), now);
            }
            body if is_write(&body) => {
                let bidder = self.conns.get(&conn).and_then(|c| c.bidder.clone());
                let Some(bidder) = bidder else {
                    self.respond(conn, id.no, applied, Err(ClientError::NotLoggedIn));
                    return Effect::None;
                };
                let Some(op) = operation(body, bidder) else { return Effect::None };
                return self.submit(replica, conn, id, op, None, now);
            }
            body => self.read(replica, conn, body),
        };
        self.respond(conn, id.no, applied, result);
        Effect::None
    }

    fn read(
        &mut self,
        replica: &Replica,
        conn: ConnId,
        body: RequestBody,
    ) -> Result<Reply, ClientError> {
        let machine = replica.machine();
        let Some(c) = self.conns.get_mut(&conn) else { return Err(ClientError::BadRequest) };
        match body {
            RequestBody::Login { name, token } => {
                let ok =
                    machine.token_hash(&name).is_some_and(|h| token_hash_matches(h, &hash(&token)));
                if !ok {
                    return Err(ClientError::BadCredentials);
                }
                c.bidder = Some(name.clone());
                Ok(Reply::Identity { name: Some(name) })
            }
            RequestBody::Whoami => Ok(Reply::Identity { name: c.bidder.clone() }),
            RequestBody::ListAuctions { filter } => {
                Ok(Reply::Auctions(machine.auctions_for(filter, c.bidder.as_ref())))
            }
            RequestBody::ShowAuction { auction } => machine
                .auction_for(auction, c.bidder.as_ref())
                .map(Reply::Auction)
                .ok_or(ClientError::UnknownAuction),
            RequestBody::History { auction } => machine
                .history_for(auction, c.bidder.as_ref())
                .map(Reply::History)
                .ok_or(ClientError::UnknownAuction),
            RequestBody::Subscribe { auction } => {
                c.watch = Some(auction.map_or(Watch::All, Watch::One));
                Ok(Reply::Subscribed)
            }
            RequestBody::Unsubscribe => {
                c.watch = None;
                Ok(Reply::Subscribed)
            }
            RequestBody::Report => Ok(Reply::Report(replica.report())),
            RequestBody::Servers => Ok(Reply::Servers(replica.servers())),
            // Names, addresses and uncommitted entries are for operators (`admin`).
            RequestBody::Clients | RequestBody::Queue => Err(ClientError::NotAuthorized),
            _ => Err(ClientError::BadRequest),
        }
    }

    fn admin(
        &mut self,
        replica: &mut Replica,
        conn: ConnId,
        no: RequestNo,
        token: &str,
        op: AdminOp,
        now: Instant,
    ) -> Effect {
        let applied = replica.applied();
        if !token_hash_matches(&self.admin_hash, &hash(token)) {
            self.respond(conn, no, applied, Err(ClientError::NotAuthorized));
            return Effect::None;
        }
        let (result, effect) = match op {
            AdminOp::Report => (Ok(Reply::Report(replica.report())), Effect::None),
            AdminOp::Queue => {
                let queue = replica.holdback().iter().map(QueuedEntry::from).collect();
                (Ok(Reply::Queue(queue)), Effect::None)
            }
            AdminOp::Clients => (Ok(Reply::Clients(self.client_list())), Effect::None),
            AdminOp::Leave => {
                replica.leave(now);
                (Ok(Reply::Done), Effect::Leave)
            }
            AdminOp::StepDown => {
                let led = replica.step_down(now);
                let leader = replica.leader();
                (
                    if led { Ok(Reply::Done) } else { Err(ClientError::NotLeader { leader }) },
                    Effect::None,
                )
            }
            AdminOp::Snapshot => {
                // `false` only means nothing new was applied since the last snapshot.
                replica.snapshot_now(now);
                (Ok(Reply::Done), Effect::None)
            }
            AdminOp::Promote(n) => (admin_result(replica.promote(n, now)), Effect::None),
            AdminOp::Demote(n) => (admin_result(replica.demote(n, now)), Effect::None),
            AdminOp::Remove(n) => (admin_result(replica.remove(n, now)), Effect::None),
            AdminOp::MoveLeader(n) => (admin_result(replica.move_leader(n, now)), Effect::None),
        };
        self.respond(conn, no, applied, result);
        effect
    }

    fn submit(
        &mut self,
        replica: &mut Replica,
        conn: ConnId,
        id: RequestId,
        op: Operation,
        token: Option<String>,
        now: Instant,
    ) -> Effect {
        let applied = replica.applied();
        let busy = self.conns.get(&conn).is_some_and(|c| c.pending >= MAX_PENDING_PER_CONN);
        if busy || (self.pending.len() >= MAX_PENDING_PER_CONN * self.conns.len().max(1)) {
            self.respond(conn, id.no, applied, Err(ClientError::Overloaded));
            return Effect::None;
        }
        // A retry of a request still pending (perhaps from a dropped connection) moves it here
        // and is not submitted again: the first submission is still on its way (it is resent
        // to a new leader), so answering `Unavailable` now could be false.
        if let Some(old) = self.pending.remove(&id) {
            if let Some(c) = self.conns.get_mut(&old.conn) {
                c.pending = c.pending.saturating_sub(1);
                // Its answer goes to the retry's connection: the old one stops waiting.
                c.unanswered = c.unanswered.saturating_sub(1);
            }
            let moved = Pending { conn, no: id.no, since: old.since, token: old.token };
            self.pending.insert(id, moved);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.pending += 1;
            }
            return Effect::None;
        }
        let pending = Pending { conn, no: id.no, since: now, token };
        self.pending.insert(id, pending);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending += 1;
        }
        if let Err(e) = replica.submit(Command { origin: Some(id), op }, now) {
            self.finish(id);
            let err = match e {
                SubmitError::Unavailable { leader, retry_after } => {
                    ClientError::Unavailable { retry_after, leader }
                }
                SubmitError::Overloaded => ClientError::Overloaded,
                _ => ClientError::Unavailable {
                    retry_after: Duration::from_millis(500),
                    leader: None,
                },
            };
            self.respond(conn, id.no, applied, Err(err));
        }
        Effect::None
    }

    fn finish(&mut self, id: RequestId) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(c) = self.conns.get_mut(&p.conn) {
            c.pending = c.pending.saturating_sub(1);
        }
        Some(p)
    }

    /// A command was applied at `seq`: answer its client if it is waiting here, and return
    /// how long it waited.
    pub(crate) fn complete(
        &mut self,
        request: RequestId,
        seq: Seq,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        let p = self.finish(request)?;
        let waited = now.saturating_duration_since(p.since);
        let reply = match (outcome, p.token) {
            (Outcome::Registered { bidder }, Some(token)) => {
                Reply::Registered { name: bidder, token }
            }
            (outcome, _) => Reply::Outcome(outcome),
        };
        self.respond(p.conn, p.no, seq, Ok(reply));
        Some(waited)
    }

    /// Pushes events applied at `seq` to the subscribed clients.
    pub(crate) fn push(&mut self, seq: Seq, at: Timestamp, events: &[Event]) {
        for (id, c) in &mut self.conns {
            let Some(watch) = &c.watch else { continue };
            for event in events {
                let event = event.for_viewer(c.bidder.as_ref());
                let wanted = match watch {
                    Watch::All => true,
                    Watch::One(a) => event_auction(&event) == *a,
                };
                if !wanted {
                    continue;
                }
                let msg = ServerToClient::Event(PushEvent { seq, at, event });
                encode_or_refuse(&self.codec, &msg, &mut c.out);
                self.dirty.insert(*id);
                c.seen = c.seen.max(seq);
            }
        }
    }

    /// Answers `Timeout` to writes that waited longer than [`PENDING_TIMEOUT`].
    pub(crate) fn expire(&mut self, now: Instant, applied: Seq) {
        let old: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) > PENDING_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            if let Some(p) = self.finish(id) {
                self.respond(p.conn, p.no, applied, Err(ClientError::Timeout));
            }
        }
    }

    pub(crate) fn respond(
        &mut self,
        conn: ConnId,
        no: RequestNo,
        applied: Seq,
        result: Result<Reply, ClientError>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let applied = applied.max(c.seen);
        c.seen = applied;
        c.unanswered = c.unanswered.saturating_sub(1);
        let msg = ServerToClient::Response(Response { no, applied, result });
        encode_or_refuse(&self.codec, &msg, &mut c.out);
        self.dirty.insert(conn);
    }

    /// Closes `conn` from this side; `flush`: what was queued to it still goes out first.
    pub(crate) fn disconnect(&mut self, conn: ConnId, why: &str, flush: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            debug!(conn, addr = %c.addr, why, "client disconnected");
            if !flush {
                c.out.clear();
            }
            c.credit = 0;
            self.closed.push(conn);
        }
    }

    fn client_list(&self) -> Vec<ClientInfo> {
        let mut list: Vec<ClientInfo> = self
            .conns
            .values()
            .filter_map(|c| {
                Some(ClientInfo { client: c.client?, bidder: c.bidder.clone(), addr: c.addr })
            })
            .collect();
        list.sort_by_key(|c| c.client);
        list
    }
}

/// Requests answered from the replicated state (or changing it): refused while the node is
/// not ready. Status views (report, servers, clients, queue), `whoami`, subscriptions and
/// admin operations are answered at once.
fn needs_ready(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Login { .. }
            | RequestBody::ListAuctions { .. }
            | RequestBody::ShowAuction { .. }
            | RequestBody::History { .. }
            | RequestBody::Register { .. }
    ) || is_write(body)
}

fn is_write(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Open { .. }
            | RequestBody::Bid { .. }
            | RequestBody::MaxBid { .. }
            | RequestBody::BuyNow { .. }
            | RequestBody::Cancel { .. }
    )
}

fn operation(body: RequestBody, bidder: BidderName) -> Option<Operation> {
    Some(match body {
        RequestBody::Open { spec } => Operation::OpenAuction { seller: bidder, spec },
        RequestBody::Bid { auction, amount, expected } => {
            Operation::PlaceBid { auction, bidder, amount, kind: BidKind::Plain, expected }
        }
        RequestBody::MaxBid { auction, max, expected } => {
            Operation::PlaceBid { auction, bidder, amount: max, kind: BidKind::Proxy, expected }
        }
        RequestBody::BuyNow { auction, price } => Operation::BuyNow { auction, bidder, price },
        RequestBody::Cancel { auction } => Operation::Cancel { auction, seller: bidder },
        _ => return None,
    })
}

fn event_auction(e: &AuctionEvent) -> AuctionId {
    match e {
        AuctionEvent::NewHighBid { auction, .. }
        | AuctionEvent::Outbid { auction, .. }
        | AuctionEvent::Extended { auction, .. }
        | AuctionEvent::Closed { auction, .. } => *auction,
    }
}

/// The session id the server keys a client's requests by: the hash of the id the client
/// sent in `Hello`, which the client keeps secret and re-sends after a failover.
pub fn session_id(secret: ClientId) -> ClientId {
    let digest = Sha256::digest(secret.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    ClientId::from_bytes(bytes)
}

/// The client's answer to a membership operation.
fn admin_result(r: Result<(), AdminError>) -> Result<Reply, ClientError> {
    match r {
        Ok(()) => Ok(Reply::Done),
        Err(AdminError::NotLeader { leader }) => Err(ClientError::NotLeader { leader }),
        Err(AdminError::Unavailable) => {
            Err(ClientError::Unavailable { retry_after: Duration::from_millis(200), leader: None })
        }
        Err(AdminError::Refused(reason)) => Err(ClientError::AdminRefused { reason }),
    }
}

/// SHA-256 of a secret (bidder tokens and the admin token are compared by hash, in constant
/// time).
pub fn hash(secret: &str) -> TokenHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// The secret token of the bidder registered by request `id`: a keyed hash of the request
/// id, so every server derives the same token for the same request (a retry at another
/// server gets the token whose hash was committed) and nobody without the key can.
pub fn register_token(key: &ClusterKey, id: RequestId) -> String {
    let mut input = b"auction bidder token".to_vec();
    input.extend_from_slice(id.client.as_bytes());
    input.extend_from_slice(&id.no.0.to_be_bytes());
    let tag = key.tag(&input);
    tag[..24].iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends `msg`; an answer too large for one frame becomes a `TooLarge` error with the same
/// number, so the client is never left waiting.
fn encode_or_refuse(codec: &ClientCodec, msg: &ServerToClient, buf: &mut Vec<u8>) {
    if codec.encode_into(msg, buf).is_ok() {
        return;
    }
    if let ServerToClient::Response(r) = msg {
        let refusal = ServerToClient::Response(Response {
            no: r.no,
            applied: r.applied,
            result: Err(ClientError::TooLarge),
        });
        let _ = codec.encode_into(&refusal, buf);
    }
}
