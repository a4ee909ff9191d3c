//! The inbound peer port against real loopback sockets: what a host without the cluster key
//! can cost, and that frames of the cluster still go through. Timeouts are shortened through
//! [`TransportLimits`]; the only timing assertions are "closed within a generous bound".

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::codec::PEER_HEADER_LEN;
use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::{
    Addressee, ClusterId, ClusterKey, Envelope, Incarnation, InstanceId, KeyId, Keyring, NodeId,
    PeerCodec, PeerSeal, Seq, Term,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use auction_proto::{Channel, Opened, PeerFrame, Refusal};
use auction_server::PeerStats;

use super::{PeerNet, PeerSockets, TransportLimits, TransportStats};

const ME: NodeId = NodeId::from_bytes([1; 16]);
const PEER: NodeId = NodeId::from_bytes([2; 16]);
const INSTANCE: InstanceId = InstanceId::from_bytes([3; 16]);
/// The counter bit of TCP frames.
const TCP_BIT: u64 = 1 << 63;
/// Far beyond any timeout a test sets.
const GENEROUS: Duration = Duration::from_secs(5);
/// Timeouts of tests that must not time out.
const LONG: Duration = Duration::from_secs(60);

fn codec_of(cluster: &str, key: &[u8]) -> PeerCodec {
    let key = ClusterKey::new(key).unwrap_or_else(|e| panic!("test key: {e}"));
    PeerCodec::new(ClusterId::from_name(cluster), Keyring::new(key))
}

fn codec() -> PeerCodec {
    codec_of("t", b"transport-test-cluster-key")
}

fn ack(n: u64) -> PeerBody {
    PeerBody::Ordering(OrderingMsg::Ack { term: Term(1), stored: Seq(n) })
}

/// The `n`th TCP frame of `PEER` to `to`.
fn frame_to(codec: &PeerCodec, n: u64, to: NodeId, inc: u64) -> Vec<u8> {
    let env = Envelope {
        cluster: codec.cluster(),
        instance: Some(INSTANCE),
        key: KeyId(0),
        sender: PEER,
        incarnation: Incarnation(1),
        to: Some(Addressee { node: to, incarnation: Incarnation(inc) }),
        counter: TCP_BIT | n,
    };
    codec.clone().encode(&env, &ack(n)).unwrap_or_else(|e| panic!("{e}"))
}

/// The `n`th TCP frame of `PEER` to this node.
fn frame(codec: &PeerCodec, n: u64) -> Vec<u8> {
    frame_to(codec, n, ME, 1)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Limits whose timeouts never fire within a test, changed by `f`.
fn limits(f: impl FnOnce(&mut TransportLimits)) -> TransportLimits {
    let mut l =
        TransportLimits { first_frame: LONG, frame_time: LONG, idle: LONG, ..Default::default() };
    f(&mut l);
    l
}

/// The sockets, with the seal checks the server core runs after the readers (counted as it
/// counts them).
#[derive(Debug)]
struct Node {
    net: PeerNet,
    seal: PeerSeal,
    core: PeerStats,
}

impl Node {
    fn admit(&mut self, frame: PeerFrame) -> Result<Opened, Refusal> {
        let r = self.seal.admit(frame, Channel::Stream);
        match &r {
            Err(Refusal::Replayed(_)) => self.core.replayed += 1,
            Err(_) => self.core.misaddressed += 1,
            Ok(_) => {}
        }
        r
    }

    fn stats(&self) -> TransportStats {
        self.net.stats(self.core)
    }
}

async fn node_with(codec: PeerCodec, limits: TransportLimits) -> (Node, PeerSockets, SocketAddr) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    let seal = PeerSeal::new(codec, ME, Incarnation(1), Some(INSTANCE));
    let (net, sockets) =
        PeerNet::bind(&seal, any, any, limits).await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = sockets.udp.local_addr().unwrap_or_else(|e| panic!("{e}"));
    (Node { net, seal, core: PeerStats::default() }, sockets, addr)
}

async fn node(limits: TransportLimits) -> (Node, PeerSockets, SocketAddr) {
    node_with(codec(), limits).await
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Whether the node closes `stream` within `within`: a read sees the end or a reset (the node
/// never writes on an inbound connection).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(tokio::time::timeout(within, stream.read(&mut b)).await, Ok(Ok(0) | Err(_)))
}

/// The frames the driver is handed within `within`, until `n` have arrived.
async fn received(sockets: &mut PeerSockets, n: usize, within: Duration) -> Vec<PeerBody> {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline.into(), sockets.tcp_in.recv()).await {
            Ok(Some(mut batch)) => out.extend(batch.take().into_iter().map(|f| f.body)),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn a_trickled_near_max_frame_is_closed_after_the_frame_time_and_costs_what_was_sent() {
    let (net, _sockets, addr) = node(limits(|l| l.frame_time = ms(300))).await;
    // A host without the key cannot announce a big frame: the length is under the header's
    // tag, so a forged one is refused at once.
    let mut forged = frame(&codec(), 1)[..PEER_HEADER_LEN].to_vec();
    let near_max = u32::try_from(codec().max_payload() - 1).unwrap_or(u32::MAX);
    forged[4..8].copy_from_slice(&near_max.to_be_bytes());
    let mut s = connect(addr).await;
    s.write_all(&forged).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(closed_within(&mut s, GENEROUS).await, "a forged length is refused");
    assert_eq!(net.stats().rejected, 1);
    // It can replay the header of a real big frame, though, and trickle the body.
    let env = Envelope {
        cluster: codec().cluster(),
        instance: Some(INSTANCE),
        key: KeyId(0),
        sender: PEER,
        incarnation: Incarnation(1),
        to: Some(Addressee { node: ME, incarnation: Incarnation(1) }),
        counter: TCP_BIT | 1,
    };
    let big = PeerBody::Ordering(OrderingMsg::Snapshot {
        term: Term(1),
        last_included: auction_proto::LogPosition::default(),
        members: Vec::new(),
        offset: 0,
        chunk: vec![0; codec().max_payload() - 64],
        done: true,
    });
    let real = codec().encode(&env, &big).unwrap_or_else(|e| panic!("{e}"));
    let header = real[..PEER_HEADER_LEN].to_vec();
    let (mut rd, mut wr) = connect(addr).await.into_split();
    wr.write_all(&header).await.unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut read = Box::pin(async move { rd.read(&mut [0u8; 1]).await });
    let mut peak = 0;
    let closed = loop {
        tokio::select! {
            r = &mut read => break matches!(r, Ok(0) | Err(_)),
            () = tokio::time::sleep(ms(10)) => {
                peak = peak.max(net.stats().buffered_bytes);
                if started.elapsed() > GENEROUS {
                    break false;
                }
                // A write after the close may fail; the read above sees it.
                let _ = wr.write_all(&[0u8; 100]).await;
            }
        }
    };
    assert!(closed, "a frame trickled for {:?} is still being read", started.elapsed());
    let stats = net.stats();
    assert_eq!(stats.timed_out, 1);
    // What was sent (a few KiB) plus one read chunk, not the 4 MiB announced.
    assert!(peak <= 128 * 1024, "{peak} bytes held for a trickled frame");
    assert_eq!(stats.buffered_bytes, 0, "the closed connection's bytes are released");
}

#[tokio::test]
async fn a_connection_without_a_valid_first_frame_is_closed() {
    let (net, _sockets, addr) = node(limits(|l| l.first_frame = ms(200))).await;
    let mut silent = connect(addr).await;
    assert!(closed_within(&mut silent, GENEROUS).await, "a silent connection stays open");
    assert_eq!(net.stats().timed_out, 1);
}

#[tokio::test]
async fn a_bad_first_frame_closes_the_connection_and_reaches_nothing() {
    let (net, mut sockets, addr) = node(limits(|_| {})).await;
    let mut forged = frame(&codec(), 1);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // Junk, a forged tag, a header of another cluster or key (refused before its body).
    let other_cluster = frame(&codec_of("other", b"transport-test-cluster-key"), 1);
    let other_key = frame(&codec_of("t", b"another-transport-test-key"), 1);
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &forged,
        &other_cluster[..PEER_HEADER_LEN],
        &other_key[..PEER_HEADER_LEN],
    ];
    for (i, bytes) in cases.into_iter().enumerate() {
        let mut s = connect(addr).await;
        s.write_all(bytes).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(closed_within(&mut s, GENEROUS).await, "case {i}: still open");
        assert_eq!(net.stats().rejected, i as u64 + 1, "case {i}");
    }
    assert!(sockets.tcp_in.try_recv().is_err(), "a refused frame reached the driver");
    let stats = net.stats();
    assert_eq!((stats.timed_out, stats.buffered_bytes), (0, 0));
}

#[tokio::test]
async fn the_ninth_connection_from_one_source_is_closed_at_once() {
    let (net, mut sockets, addr) = node(limits(|_| {})).await;
    let mut eight = Vec::new();
    for _ in 0..8 {
        eight.push(connect(addr).await);
    }
    let mut ninth = connect(addr).await;
    assert!(closed_within(&mut ninth, GENEROUS).await, "the 9th connection stays open");
    assert_eq!(net.stats().refused_connections, 1);
    assert!(!closed_within(&mut eight[7], ms(50)).await, "the 8th was closed");

    // Another source address is not affected.
    let other = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    let local: SocketAddr = "127.0.0.2:0".parse().unwrap_or_else(|e| panic!("{e}"));
    other.bind(local).unwrap_or_else(|e| panic!("{e}"));
    let mut other = other.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    other.write_all(&frame(&codec(), 1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received(&mut sockets, 1, GENEROUS).await, vec![ack(1)]);

    // Closed connections give their slots back.
    drop(eight);
    let mut n = 2;
    let delivered = loop {
        let mut s = connect(addr).await;
        let _ = s.write_all(&frame(&codec(), n)).await;
        if received(&mut sockets, 1, ms(300)).await == vec![ack(n)] {
            break true;
        }
        n += 1;
        if n > 20 {
            break false;
        }
    };
    assert!(delivered, "no slot came back after the connections closed");
}

#[tokio::test]
async fn good_frames_go_through_however_they_are_split() {
    let (mut net, mut sockets, addr) = node(limits(|_| {})).await;
    let c = codec();
    let mut s = connect(addr).await;
    let two = [frame(&c, 1), frame(&c, 2)].concat();
    s.write_all(&two).await.unwrap_or_else(|e| panic!("{e}"));
    let third = frame(&c, 3);
    s.write_all(&third[..7]).await.unwrap_or_else(|e| panic!("{e}"));
    s.flush().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(ms(20)).await;
    s.write_all(&third[7..]).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let deadline = Instant::now() + GENEROUS;
    while got.len() < 3 {
        let Ok(Some(mut batch)) =
            tokio::time::timeout_at(deadline.into(), sockets.tcp_in.recv()).await
        else {
            break;
        };
        for f in batch.take() {
            got.extend(net.admit(f).ok().map(|o| o.frame.body));
        }
    }
    assert_eq!(got, vec![ack(1), ack(2), ack(3)]);
    // Authentic but replayed (on another connection): through the reader, refused by the
    // driver's replay window.
    let mut again = connect(addr).await;
    again.write_all(&frame(&c, 2)).await.unwrap_or_else(|e| panic!("{e}"));
    let Ok(Some(mut batch)) = tokio::time::timeout(GENEROUS, sockets.tcp_in.recv()).await else {
        panic!("the replayed frame did not reach the driver");
    };
    let replayed: Vec<_> = batch.take().into_iter().filter_map(|f| net.admit(f).ok()).collect();
    assert!(replayed.is_empty());
    let stats = net.stats();
    assert_eq!((stats.rejected, stats.replayed), (0, 1));
}

#[tokio::test]
async fn a_reader_out_of_budget_stops_reading_until_the_driver_catches_up() {
    // Small frames and budgets: 100 frames of about 150 bytes are many times the budget.
    let small = || codec().with_max_payload(256);
    let (net, mut sockets, addr) = node_with(
        small(),
        limits(|l| {
            l.read_chunk = 256;
            l.inbound_bytes = 0;
            l.unauthenticated_bytes = 0;
            l.connection_bytes = 0;
        }),
    )
    .await;
    let frames: Vec<u8> = (1..=100).flat_map(|n| frame(&small(), n)).collect();
    let mut s = connect(addr).await;
    s.write_all(&frames).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(ms(200)).await;
    let held = net.stats().buffered_bytes;
    // One largest frame plus one chunk: the limits were raised to that.
    let one = (small().max_frame_len() + 256) as u64;
    assert!(held <= one, "{held} bytes held, more than the budget of {one}");
    assert!(held > 0, "nothing read");
    let got = received(&mut sockets, 100, GENEROUS).await;
    assert_eq!(got, (1..=100).map(ack).collect::<Vec<_>>());
    assert_eq!(net.stats().buffered_bytes, 0);
}

#[tokio::test]
async fn frames_for_another_node_or_boot_are_skipped_and_the_connection_goes_on() {
    let (mut net, mut sockets, addr) = node(limits(|_| {})).await;
    let c = codec();
    // A node that had this address before (another id), an earlier boot of this one, then
    // this node: on one connection, as a peer's writer sends them.
    let stream = [frame_to(&c, 1, PEER, 1), frame_to(&c, 2, ME, 2), frame(&c, 3)].concat();
    let mut s = connect(addr).await;
    s.write_all(&stream).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let deadline = Instant::now() + GENEROUS;
    while got.is_empty() {
        let Ok(Some(mut batch)) =
            tokio::time::timeout_at(deadline.into(), sockets.tcp_in.recv()).await
        else {
            break;
        };
        for f in batch.take() {
            got.push(net.admit(f).map(|o| o.frame.body));
        }
    }
    assert_eq!(got, vec![Ok(ack(3))], "only the frame for this boot is handed over");
    let stats = net.stats();
    assert_eq!((stats.misaddressed, stats.rejected), (2, 0));
    assert!(!closed_within(&mut s, ms(100)).await, "the connection stays open");
}
