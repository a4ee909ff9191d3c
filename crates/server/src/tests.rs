//! Unit tests: exact output for sessions, admission and batching, on a server that founds a
//! cluster of one (its writes confirmed at once unless a test holds them).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{AuctionSpec, BidderName, IncrementRule, Outcome};
use auction_proto::msg::client::{
    ClientError, ClientToServer, Reply, Request, RequestBody, Response, ServerToClient,
};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::RequestId;
use auction_proto::msg::peer::{MembershipMsg, OrderingMsg, PeerBody};
use auction_proto::{
    Addressee, Amount, Channel, ClientCodec, ClientId, ClusterId, ClusterKey, Incarnation,
    InstanceId, Keyring, NodeId, PeerCodec, PeerSeal, RequestNo, Seq, Term, Timestamp,
};
use auction_replica::{Durable, Replica, ReplicaConfig, Start};

use crate::batch::{Batch, Sealed};
use crate::{
    Action, CLIENT_WINDOW, MAX_PENDING_PER_CONN, Server, ServerConfig, register_token, session_id,
};

const ME: NodeId = NodeId::from_bytes([1; 16]);
const SECRET: ClientId = ClientId::from_bytes([9; 16]);
const BEN: ClientId = ClientId::from_bytes([10; 16]);
const INSTANCE: InstanceId = InstanceId::from_bytes([3; 16]);

fn key() -> ClusterKey {
    ClusterKey::new(&[7; 32]).unwrap_or_else(|e| panic!("{e}"))
}

fn peer_codec() -> PeerCodec {
    PeerCodec::new(ClusterId::from_name("t"), Keyring::new(key()))
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 100], 5000))
}

/// A test server: the core and whether durable writes are confirmed at once.
struct T {
    s: Server,
    now: Instant,
    confirm: bool,
    held: Vec<auction_ordering::StoreId>,
}

impl T {
    /// A founder of a cluster of one, leading and ready.
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        let now = Instant::now();
        let me = NodeInfo {
            node: ME,
            incarnation: Incarnation(1),
            peer_addr: "10.0.0.1:7000".parse().unwrap_or_else(|e| panic!("{e}")),
            client_addr: "10.0.0.1:7001".parse().unwrap_or_else(|e| panic!("{e}")),
        };
        let config = ReplicaConfig { bootstrap_probe: Duration::ZERO, ..ReplicaConfig::default() };
        let start = Start::Bootstrap { instance: InstanceId::from_bytes([3; 16]) };
        let rng = 1;
        let replica = Replica::new(me, start, Durable::default(), config, rng, now)
            .unwrap_or_else(|e| panic!("{e}"));
        let seal = PeerSeal::new(peer_codec(), ME, Incarnation(1), None);
        let mut cfg = ServerConfig::new(ClusterId::from_name("t"), key(), "admin".into());
        f(&mut cfg);
        let mut t =
            Self { s: Server::new(replica, seal, cfg), now, confirm: true, held: Vec::new() };
        t.s.handle_wall_clock(Timestamp(1_000_000), now);
        t.s.handle_timeout(now);
        t.drain();
        assert!(t.s.replica().is_leading() && t.s.replica().is_ready());
        t
    }

    /// The actions, with durable writes confirmed (or held) and left out.
    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::Store { id, .. } | Action::InstallSnapshot { id, .. } => {
                    if self.confirm {
                        self.s.handle_stored(id, self.now);
                    } else {
                        self.held.push(id);
                    }
                }
                Action::PersistTerm { .. }
                | Action::PersistInstance { .. }
                | Action::SaveSnapshot { .. }
                | Action::WriteApplied { .. }
                | Action::Log(_) => {}
                a => out.push(a),
            }
        }
        out
    }

    fn confirm_held(&mut self) -> Vec<Action> {
        self.confirm = true;
        for id in std::mem::take(&mut self.held) {
            self.s.handle_stored(id, self.now);
        }
        self.drain()
    }

    fn connect(&mut self, conn: u64) -> Vec<Action> {
        self.s.handle_client_connected(conn, client_addr(), self.now);
        self.drain()
    }

    fn send(&mut self, conn: u64, bytes: &[u8]) -> Vec<Action> {
        self.s.handle_client_bytes(conn, bytes, self.now);
        self.drain()
    }

    fn request(&mut self, conn: u64, no: u64, body: RequestBody) -> Vec<Action> {
        self.send(conn, &frame(no, body))
    }

    fn applied(&self) -> Seq {
        self.s.replica().applied()
    }

    /// Hello as `secret`, register `name` and log in on `conn`.
    fn session(&mut self, conn: u64, secret: ClientId, name: &str) {
        self.connect(conn);
        self.request(conn, 1, RequestBody::Hello { client: secret, seen: Seq(0) });
        let name = bidder(name);
        self.request(conn, 2, RequestBody::Register { name: name.clone() });
        let token = token(secret, 2);
        let out = self.request(conn, 3, RequestBody::Login { name, token });
        assert!(matches!(&responses(&out)[..], [r] if r.result.is_ok()), "{out:?}");
    }
}

fn frame(no: u64, body: RequestBody) -> Vec<u8> {
    let msg = ClientToServer::Request(Request { no: RequestNo(no), body });
    ClientCodec::default().encode(&msg).unwrap_or_else(|e| panic!("{e}"))
}

fn bidder(name: &str) -> BidderName {
    BidderName::new(name).unwrap_or_else(|e| panic!("{e}"))
}

fn token(secret: ClientId, no: u64) -> String {
    register_token(&key(), RequestId { client: session_id(secret), no: RequestNo(no) })
}

/// The messages in the `ToClient` actions, in order.
fn messages(actions: &[Action]) -> Vec<ServerToClient> {
    let codec = ClientCodec::default();
    let mut out = Vec::new();
    for a in actions {
        if let Action::ToClient { bytes, .. } = a {
            let mut at = 0;
            while let Ok(Some((m, used))) = codec.decode_stream::<ServerToClient>(&bytes[at..]) {
                out.push(m);
                at += used;
            }
            assert_eq!(at, bytes.len(), "whole frames only");
        }
    }
    out
}

fn responses(actions: &[Action]) -> Vec<Response> {
    messages(actions)
        .into_iter()
        .filter_map(|m| match m {
            ServerToClient::Response(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn spec() -> AuctionSpec {
    AuctionSpec {
        title: "lot".into(),
        description: String::new(),
        starting_price: Amount::from_minor(100),
        reserve: None,
        increment: IncrementRule::Fixed(Amount::from_minor(10)),
        duration: Duration::from_secs(60),
        soft_close: None,
        buy_now: None,
    }
}

#[test]
fn a_connection_starts_with_one_window_of_credit_and_gets_back_what_was_consumed() {
    let mut t = T::new();
    assert_eq!(t.connect(1), vec![Action::ReadClient { conn: 1, bytes: CLIENT_WINDOW }]);
    let hello = frame(1, RequestBody::Whoami);
    // Half a frame: nothing decoded, no credit back.
    assert_eq!(t.send(1, &hello[..5]), vec![]);
    let out = t.send(1, &hello[5..]);
    let applied = t.applied();
    let answer = Response { no: RequestNo(1), applied, result: Err(ClientError::HelloFirst) };
    let mut bytes = Vec::new();
    let codec = ClientCodec::default();
    codec
        .encode_into(&ServerToClient::Response(answer), &mut bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        vec![
            Action::ToClient { conn: 1, bytes },
            Action::ReadClient { conn: 1, bytes: hello.len() }
        ]
    );
}

#[test]
fn hello_welcomes_and_a_client_ahead_of_this_server_is_told_behind() {
    let mut t = T::new();
    t.connect(1);
    let applied = t.applied();
    let out = t.request(1, 1, RequestBody::Hello { client: SECRET, seen: applied.next() });
    assert_eq!(
        responses(&out),
        vec![Response {
            no: RequestNo(1),
            applied,
            result: Err(ClientError::Behind { applied, seen: applied.next() })
        }]
    );
    let out = t.request(1, 2, RequestBody::Hello { client: SECRET, seen: applied });
    let [Response { no: RequestNo(2), result: Ok(Reply::Welcome { server, now, .. }), .. }] =
        &responses(&out)[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!((*server, *now), (ME, Timestamp(1_000_000)));
}

#[test]
fn a_bid_is_answered_once_applied_at_its_seq_and_a_retry_elsewhere_gets_the_answer() {
    let mut t = T::new();
    t.session(1, SECRET, "ann");
    let out = t.request(1, 4, RequestBody::Open { spec: spec() });
    let [Response { result: Ok(Reply::Outcome(Outcome::Opened { .. })), .. }] =
        &responses(&out)[..]
    else {
        panic!("{out:?}")
    };
    // A bid whose write is held: no answer until it is durable and applied.
    t.session(2, BEN, "ben");
    t.confirm = false;
    let bid = RequestBody::Bid {
        auction: auction_proto::AuctionId(1),
        amount: Amount::from_minor(150),
        expected: None,
    };
    let out = t.request(2, 7, bid.clone());
    assert_eq!(responses(&out), vec![]);
    assert_eq!(t.s.pending_writes(), 1);
    // The client gives up on connection 2 and retries the same request on 3: the pending
    // write moves there, and is not submitted again.
    t.s.handle_client_closed(2, t.now);
    t.connect(3);
    t.request(3, 1, RequestBody::Hello { client: BEN, seen: Seq(0) });
    let name = bidder("ben");
    t.request(3, 2, RequestBody::Login { name, token: token(BEN, 2) });
    let out = t.request(3, 7, bid);
    assert_eq!(responses(&out), vec![]);
    assert_eq!(t.s.pending_writes(), 1);
    let out = t.confirm_held();
    let applied = t.applied();
    let r = responses(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!((r[0].no, r[0].applied), (RequestNo(7), applied));
    assert!(matches!(r[0].result, Ok(Reply::Outcome(Outcome::Accepted { .. }))), "{r:?}");
    assert!(out.iter().all(|a| !matches!(a, Action::ToClient { conn: 2, .. })));
}

#[test]
fn writes_over_the_per_connection_bound_are_refused_overloaded() {
    let mut t = T::new();
    t.session(1, SECRET, "ann");
    t.confirm = false;
    let mut bytes = Vec::new();
    let n = MAX_PENDING_PER_CONN as u64 + 2;
    for no in 10..10 + n {
        bytes.extend(frame(no, RequestBody::Open { spec: spec() }));
    }
    let out = t.send(1, &bytes);
    let applied = t.applied();
    let refused: Vec<Response> = (10 + MAX_PENDING_PER_CONN as u64..10 + n)
        .map(|no| Response { no: RequestNo(no), applied, result: Err(ClientError::Overloaded) })
        .collect();
    assert_eq!(responses(&out), refused);
    assert_eq!(t.s.pending_writes(), MAX_PENDING_PER_CONN);
    assert!(out.contains(&Action::ReadClient { conn: 1, bytes: bytes.len() }));
}

#[test]
fn a_bad_frame_is_refused_with_the_seq_the_connection_was_given_then_closed() {
    let mut t = T::new();
    t.connect(1);
    let applied = t.applied();
    assert!(applied > Seq(0));
    t.request(1, 1, RequestBody::Hello { client: SECRET, seen: Seq(0) });
    let out = t.send(1, b"junk that is no frame");
    let [Action::ToClient { conn: 1, .. }, Action::CloseClient { conn: 1 }] = &out[..] else {
        panic!("{out:?}")
    };
    // Not seq 0: a refusal never carries a lower seq than the connection was given.
    assert_eq!(
        responses(&out),
        vec![Response { no: RequestNo(0), applied, result: Err(ClientError::BadRequest) }]
    );
    assert_eq!(t.s.clients(), 0);
}

#[test]
fn connections_over_the_limit_are_closed_at_once_and_idle_ones_on_the_tick() {
    let mut t = T::with(|c| {
        c.max_clients = 1;
        c.client_idle = Duration::from_secs(5);
    });
    t.connect(1);
    assert_eq!(t.connect(2), vec![Action::CloseClient { conn: 2 }]);
    t.now += Duration::from_secs(6);
    t.s.handle_timeout(t.now);
    assert_eq!(t.drain(), vec![Action::CloseClient { conn: 1 }]);
    assert_eq!(t.s.clients(), 0);
}

#[test]
fn a_stalled_client_is_disconnected_without_more_output() {
    let mut t = T::new();
    t.connect(1);
    t.s.handle_client_stalled(1, t.now);
    assert_eq!(t.drain(), vec![Action::CloseClient { conn: 1 }]);
    assert_eq!(t.request(1, 1, RequestBody::Whoami), vec![]);
}

#[test]
fn find_servers_is_answered_within_the_rate_limit() {
    let mut t = T::new();
    let codec = ClientCodec::default();
    let ask = codec
        .encode(&ClientToServer::FindServers { cluster: ClusterId::from_name("t") })
        .unwrap_or_else(|e| panic!("{e}"));
    let from = client_addr();
    for _ in 0..20 {
        t.s.handle_discovery(&ask, from, t.now);
    }
    let out = t.drain();
    assert_eq!(out.len(), 8, "8 a second per source");
    let Action::DiscoveryReply { to, bytes } = &out[0] else { panic!("{out:?}") };
    let Ok(ServerToClient::Here(info)) = codec.decode_datagram::<ServerToClient>(bytes) else {
        panic!("{bytes:?}")
    };
    assert_eq!((*to, info.node), (from, ME));
}

#[test]
fn held_ordering_messages_merge_and_are_sealed_into_one_stream_buffer_per_peer() {
    let mut seal = PeerSeal::new(peer_codec(), ME, Incarnation(1), Some(INSTANCE));
    let peer = NodeId::from_bytes([2; 16]);
    let to: SocketAddr = "10.0.0.2:7000".parse().unwrap_or_else(|e| panic!("{e}"));
    let other: SocketAddr = "10.0.0.3:7000".parse().unwrap_or_else(|e| panic!("{e}"));
    let receiver = Some(Addressee { node: peer, incarnation: Incarnation(1) });
    let ack = |n| PeerBody::Ordering(OrderingMsg::Ack { term: Term(1), stored: Seq(n) });
    let mut batch = Batch::default();
    assert_eq!(batch.send(&mut seal, to, receiver, ack(1)), Sealed::Held);
    assert_eq!(batch.send(&mut seal, other, receiver, ack(5)), Sealed::Held);
    assert_eq!(batch.send(&mut seal, to, receiver, ack(3)), Sealed::Held);
    let ping = PeerBody::Membership(MembershipMsg::Ping {
        probe: 1,
        updates: Vec::new(),
        wall: Timestamp(0),
    });
    assert!(matches!(batch.send(&mut seal, to, receiver, ping), Sealed::Datagram(_)));
    assert_eq!(batch.len(), 2, "the acks to one peer merged");
    let (out, dropped) = batch.flush(&mut seal);
    assert_eq!((out.len(), dropped, batch.len()), (2, 0, 0));
    assert_eq!((out[0].0, out[1].0), (to, other));
    // What the peer reads: one frame, the highest ack.
    let mut reader = PeerSeal::new(peer_codec(), peer, Incarnation(1), Some(INSTANCE));
    let opened = reader.open(&out[0].1, Channel::Stream).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opened.frame.body, ack(3));
}

/// Issue 18: the hold-back queue and the client list are operators' views. Without the admin
/// token both are refused; with it the queue shows each entry's kind and whom it concerns,
/// never the amount (a bidder's secret maximum).
#[test]
fn queue_and_clients_need_the_admin_token_and_the_queue_hides_amounts() {
    use auction_proto::AuctionId;
    use auction_proto::msg::client::{AdminOp, QueuedEntry, QueuedOp};
    let mut t = T::new();
    t.session(1, SECRET, "ann");
    t.confirm = false; // the bid stays uncommitted, so it is in the queue
    let bid = RequestBody::Bid {
        auction: AuctionId(1),
        amount: auction_proto::Amount::from_minor(4242),
        expected: None,
    };
    t.request(1, 4, bid);
    t.connect(2);
    let other = ClientId::from_bytes([0x0E; 16]);
    t.request(2, 1, RequestBody::Hello { client: other, seen: Seq(0) });
    for (no, body) in [(2, RequestBody::Queue), (3, RequestBody::Clients)] {
        let out = t.request(2, no, body);
        let [r] = &responses(&out)[..] else { panic!("{out:?}") };
        assert_eq!(r.result, Err(ClientError::NotAuthorized));
    }
    let admin = |op| RequestBody::Admin { token: "admin".into(), op };
    let out = t.request(2, 4, admin(AdminOp::Queue));
    let [r] = &responses(&out)[..] else { panic!("{out:?}") };
    let Ok(Reply::Queue(queue)) = &r.result else { panic!("{r:?}") };
    let bids: Vec<&QueuedEntry> =
        queue.iter().filter(|e| matches!(e.what, QueuedOp::Bid { .. })).collect();
    let [one] = &bids[..] else { panic!("{queue:?}") };
    assert_eq!(one.what, QueuedOp::Bid { auction: AuctionId(1), bidder: bidder("ann") });
    let shown = format!("{queue:?}");
    assert!(!shown.contains("4242") && !shown.contains("42.42"), "{shown}");
    let out = t.request(2, 5, admin(AdminOp::Clients));
    let [r] = &responses(&out)[..] else { panic!("{out:?}") };
    let Ok(Reply::Clients(list)) = &r.result else { panic!("{r:?}") };
    assert_eq!(list.len(), 2);
    t.confirm_held();
}

/// Issue 18 point 4: one host cannot take every client slot, and connections that never say
/// `Hello` are closed after the hello timeout (idle ones much later); both are counted.
#[test]
fn one_address_cannot_fill_the_server_and_silent_connections_are_closed() {
    let mut t = T::with(|c| {
        c.max_clients_per_source = 2;
        c.hello_timeout = Duration::from_secs(5);
    });
    t.connect(1);
    t.connect(2);
    assert_eq!(t.connect(3), vec![Action::CloseClient { conn: 3 }], "a third from one address");
    // Another address still gets in.
    t.s.handle_client_connected(4, SocketAddr::from(([10, 0, 0, 101], 5000)), t.now);
    assert!(t.drain().iter().all(|a| *a != Action::CloseClient { conn: 4 }));
    // Conn 1 says Hello; 2 and 4 only trickle bytes of a frame that never completes.
    t.request(1, 1, RequestBody::Hello { client: SECRET, seen: Seq(0) });
    t.now += Duration::from_secs(3);
    t.send(2, &[0]);
    t.s.handle_client_bytes(4, &[0], t.now);
    t.drain();
    t.now += Duration::from_secs(3);
    t.s.handle_timeout(t.now);
    let mut closed: Vec<u64> = t
        .drain()
        .into_iter()
        .filter_map(|a| if let Action::CloseClient { conn } = a { Some(conn) } else { None })
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, [2, 4], "the silent ones, not the one in session");
    let stats = t.s.admission_stats();
    assert_eq!((stats.refused_per_source, stats.hello_timeouts, stats.refused_full), (1, 2, 0));
}
