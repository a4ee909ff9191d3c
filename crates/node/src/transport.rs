//! Peer transport: UDP for discovery, failure detection and election; TCP for ordering.
//!
//! Frames are built and checked by `auction_proto::PeerCodec` (HMAC with the cluster key).
//! Replay protection: the sender's counter space is split by channel (top bit clear for UDP,
//! set for TCP), and the receiver keeps one `ReplayWindow` per sender and channel, so TCP
//! frames queued behind a reconnect never fall out of the UDP window and a frame captured on
//! one channel cannot be replayed on the other.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::{DecodeError, Incarnation, NodeId, PeerCodec, PeerFrame, ReplayWindow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest UDP payload we send; bigger frames go over TCP.
const MAX_UDP_FRAME: usize = 60 * 1024;
/// Frames queued per outbound TCP connection before new ones are dropped (ordering resends).
const WRITER_QUEUE: usize = 4096;
/// Most outbound TCP connections kept.
const MAX_WRITERS: usize = 256;
/// Most senders whose replay windows are kept.
const MAX_WINDOWS: usize = 1024;
/// Most inbound peer TCP connections at once (more are closed at once).
const MAX_INBOUND: usize = 256;
/// An inbound peer connection silent this long is closed; an outbound writer with nothing to
/// send this long ends (and is removed from the table).
const PEER_IDLE: Duration = Duration::from_secs(60);
/// The counter bit that marks TCP frames.
const TCP_BIT: u64 = 1 << 63;
/// Most commands (or entries) one merged `Propose` (or `Order`) carries: each is at most a
/// client frame, 64 KiB, so a merged frame stays below the 4 MiB peer payload limit.
const MAX_MERGED_COMMANDS: usize = 32;

/// How a frame arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A UDP datagram on the peer or discovery socket.
    Udp,
    /// A TCP stream.
    Tcp,
}

/// Counters of refused input, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct TransportStats {
    /// Frames refused by the codec (bad tag, wrong cluster, junk...).
    pub rejected: u64,
    /// Frames refused as replays.
    pub replayed: u64,
    /// Outbound frames dropped (queue full, too big, socket busy).
    pub dropped: u64,
}

/// The peer side of one node: sockets, signing, replay windows, outbound TCP writers.
#[derive(Debug)]
pub struct PeerNet {
    codec: PeerCodec,
    me: NodeId,
    incarnation: Incarnation,
    udp_counter: u64,
    tcp_counter: u64,
    udp: Arc<UdpSocket>,
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// TCP messages not yet encoded, in send order (see [`PeerNet::flush`]).
    pending: Vec<(SocketAddr, PeerBody)>,
    windows: HashMap<(NodeId, Channel), ReplayWindow>,
    /// Refusal counters.
    pub stats: TransportStats,
}

/// The sockets the driver polls.
#[derive(Debug)]
pub struct PeerSockets {
    /// Peer UDP socket (same port as the TCP listener).
    pub udp: Arc<UdpSocket>,
    /// Discovery socket: broadcast `Discover` from servers, `FindServers` from clients.
    pub discovery: Arc<UdpSocket>,
    /// Runs of whole frames read by the TCP reader tasks (split them with [`frames`]).
    pub tcp_in: mpsc::Receiver<Vec<u8>>,
}

impl PeerNet {
    /// Binds the peer UDP socket, the peer TCP listener and the discovery socket.
    pub async fn bind(
        codec: PeerCodec,
        me: NodeId,
        incarnation: Incarnation,
        peer_addr: SocketAddr,
        discovery_port: u16,
    ) -> io::Result<(Self, PeerSockets)> {
        let udp = Arc::new(bind_udp(peer_addr, false)?);
        let discovery =
            Arc::new(bind_udp(SocketAddr::from((Ipv4Addr::UNSPECIFIED, discovery_port)), true)?);
        let listener = TcpListener::bind(peer_addr).await?;
        let (tcp_tx, tcp_in) = mpsc::channel(WRITER_QUEUE);
        let max = codec_max(&codec);
        tokio::spawn(accept_peers(listener, tcp_tx, max));
        let net = Self {
            codec,
            me,
            incarnation,
            udp_counter: 0,
            tcp_counter: TCP_BIT,
            udp: udp.clone(),
            writers: HashMap::new(),
            pending: Vec::new(),
            windows: HashMap::new(),
            stats: TransportStats::default(),
        };
        Ok((net, PeerSockets { udp, discovery, tcp_in }))
    }

    /// Signs and sends `body` to a peer: ordering traffic over TCP, the rest over UDP (or TCP
    /// when too big for a datagram). Never blocks; a frame that cannot be queued is dropped
    /// and counted (the protocols retransmit).
    ///
    /// TCP messages are held until [`PeerNet::flush`], which the driver calls before it
    /// yields (the peer writer tasks run only then, so holding them costs no latency).
    /// Meanwhile consecutive messages to one peer that say together what they say one after
    /// the other are merged: `Propose`s of one term (the leader sequences the commands in the
    /// same order, and sends one `Order` and stores once for all of them), `Order`s of one
    /// term whose entries follow on (the member takes the entries in order, then the later
    /// commit point, which a leader never lowers in its term), and `Ack`s of one term (the
    /// highest is kept, as the leader keeps the highest it has heard; an ack it does not see
    /// can only hold the commit point back, never move it).
    pub fn send(&mut self, to: SocketAddr, body: PeerBody) {
        let tcp = matches!(body, PeerBody::Ordering(_));
        if !tcp {
            match self.encode(&body, Channel::Udp) {
                Some(frame) if frame.len() <= MAX_UDP_FRAME => {
                    if self.udp.try_send_to(&frame, to).is_err() {
                        self.stats.dropped += 1;
                    }
                    return;
                }
                Some(_) => {}
                None => return,
            }
        }
        let last = self.pending.iter_mut().rev().find(|(dest, _)| *dest == to);
        if let Some((_, PeerBody::Ordering(prev))) = last {
            if let PeerBody::Ordering(next) = body {
                match merge(prev, next) {
                    None => return,
                    Some(next) => {
                        self.pending.push((to, PeerBody::Ordering(next)));
                        return;
                    }
                }
            }
            self.pending.push((to, body));
            return;
        }
        self.pending.push((to, body));
    }

    /// Whether TCP messages wait for [`PeerNet::flush`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Signs the held TCP messages and queues them to their peers' writers, one buffer per
    /// peer.
    pub fn flush(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for (to, body) in pending.drain(..) {
            let i = match out.iter().position(|(dest, _)| *dest == to) {
                Some(i) => i,
                None => {
                    out.push((to, Vec::new()));
                    out.len() - 1
                }
            };
            self.tcp_counter += 1;
            if let Err(e) = self.codec.encode_into(
                self.me,
                self.incarnation,
                self.tcp_counter,
                &body,
                &mut out[i].1,
            ) {
                warn!(error = %e, "cannot encode a peer message; dropped");
                self.stats.dropped += 1;
            }
        }
        self.pending = pending;
        for (to, frames) in out {
            if !frames.is_empty() {
                self.send_tcp(to, frames);
            }
        }
    }

    fn encode(&mut self, body: &PeerBody, channel: Channel) -> Option<Vec<u8>> {
        let counter = match channel {
            Channel::Udp => &mut self.udp_counter,
            Channel::Tcp => &mut self.tcp_counter,
        };
        *counter += 1;
        match self.codec.encode(self.me, self.incarnation, *counter, body) {
            Ok(frame) => Some(frame),
            Err(e) => {
                warn!(error = %e, "cannot encode a peer message; dropped");
                self.stats.dropped += 1;
                None
            }
        }
    }

    fn send_tcp(&mut self, to: SocketAddr, frame: Vec<u8>) {
        // A writer that ended (idle) is replaced.
        if self.writers.get(&to).is_some_and(mpsc::Sender::is_closed) {
            self.writers.remove(&to);
        }
        if !self.writers.contains_key(&to) && self.writers.len() >= MAX_WRITERS {
            self.writers.retain(|_, tx| !tx.is_closed());
            if self.writers.len() >= MAX_WRITERS {
                self.stats.dropped += 1;
                return;
            }
        }
        let tx = self.writers.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(WRITER_QUEUE);
            tokio::spawn(write_peer(to, rx));
            tx
        });
        if tx.try_send(frame).is_err() {
            self.stats.dropped += 1;
        }
    }

    /// Decodes, authenticates and replay-checks one frame; `None` if refused (logged at
    /// debug level and counted).
    pub fn accept(&mut self, bytes: &[u8], channel: Channel) -> Option<PeerFrame> {
        let frame = match self.codec.decode_datagram(bytes) {
            Ok(frame) => frame,
            Err(e) => {
                self.refuse(&e);
                return None;
            }
        };
        let env = frame.envelope;
        let on_tcp = env.counter & TCP_BIT != 0;
        if on_tcp != (channel == Channel::Tcp) || env.sender == self.me {
            self.stats.replayed += 1;
            return None;
        }
        if !self.windows.contains_key(&(env.sender, channel)) && self.windows.len() >= MAX_WINDOWS {
            self.windows.clear();
        }
        let window = self.windows.entry((env.sender, channel)).or_default();
        if let Err(e) = window.check(env.incarnation, env.counter) {
            debug!(sender = %env.sender, error = %e, "replayed peer frame refused");
            self.stats.replayed += 1;
            return None;
        }
        Some(frame)
    }

    fn refuse(&mut self, e: &DecodeError) {
        self.stats.rejected += 1;
        debug!(error = %e, "peer frame refused");
    }
}

/// Merges `next` into `prev` (the last message held for the same peer) if together they say
/// what they say one after the other; gives `next` back otherwise.
fn merge(prev: &mut OrderingMsg, next: OrderingMsg) -> Option<OrderingMsg> {
    match (prev, next) {
        (
            OrderingMsg::Propose { term, commands },
            OrderingMsg::Propose { term: t, commands: more },
        ) if *term == t && commands.len() + more.len() <= MAX_MERGED_COMMANDS => {
            commands.extend(more);
            None
        }
        (OrderingMsg::Ack { term, stored }, OrderingMsg::Ack { term: t, stored: s })
            if *term == t =>
        {
            // The highest, as the leader keeps anyway (a later ack can be lower: a snapshot
            // install resets what is durable).
            *stored = (*stored).max(s);
            None
        }
        (
            OrderingMsg::Order { term, entries, commit },
            OrderingMsg::Order { term: t, entries: more, commit: c },
        ) if *term == t
            && entries.len() + more.len() <= MAX_MERGED_COMMANDS
            && entries.last().zip(more.first()).is_some_and(|(a, b)| a.seq.next() == b.seq) =>
        {
            entries.extend(more);
            *commit = (*commit).max(c);
            None
        }
        (_, next) => Some(next),
    }
}

fn codec_max(_codec: &PeerCodec) -> usize {
    auction_proto::codec::DEFAULT_MAX_PEER_PAYLOAD
}

fn bind_udp(addr: SocketAddr, shared: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        // Several servers on one host (dev mode) share the discovery port; Linux delivers
        // broadcasts to every socket bound with SO_REUSEADDR.
        socket.set_reuse_address(true)?;
    }
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn accept_peers(listener: TcpListener, tx: mpsc::Sender<Vec<u8>>, max: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                // Unauthenticated hosts can connect: bound how many at once.
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    debug!(%addr, "too many inbound peer connections; closed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                tokio::spawn(async move {
                    read_peer(stream, addr, tx, max).await;
                    drop(permit);
                });
            }
            Err(e) => {
                warn!(error = %e, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Reads a TCP stream and hands the driver every run of whole frames (checked for size from
/// their headers) as one buffer, which [`frames`] splits again; the driver authenticates each.
/// A junk header closes the connection.
async fn read_peer(mut stream: TcpStream, addr: SocketAddr, tx: mpsc::Sender<Vec<u8>>, max: usize) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        let whole = match whole_frames(&buf, max) {
            Ok(whole) => whole,
            Err(why) => {
                debug!(%addr, why, "bad peer stream; connection closed");
                return;
            }
        };
        if whole > 0 {
            // Only the partial frame after the whole ones is copied.
            let rest = buf.split_off(whole);
            let frames = std::mem::replace(&mut buf, rest);
            if tx.send(frames).await.is_err() {
                return;
            }
        }
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout(PEER_IDLE, stream.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// Bytes read from a peer stream at a time (at least).
const READ_CHUNK: usize = 64 * 1024;

/// The length of the longest prefix of `buf` made of whole frames, or why the stream is junk.
fn whole_frames(buf: &[u8], max: usize) -> Result<usize, &'static str> {
    use auction_proto::codec::{PEER_HEADER_LEN, PEER_MAGIC};
    let mut at = 0;
    while let Some(header) = buf.get(at..at + PEER_HEADER_LEN) {
        if header[..2] != PEER_MAGIC {
            return Err("junk");
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > max {
            return Err("oversized frame");
        }
        let total = PEER_HEADER_LEN + len + auction_proto::auth::TAG_LEN;
        if buf.len() - at < total {
            break;
        }
        at += total;
    }
    Ok(at)
}

/// Splits a buffer handed over by a peer reader into its frames (each still to be
/// authenticated by [`PeerNet::accept`]).
pub fn frames(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    use auction_proto::codec::PEER_HEADER_LEN;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let header = rest.get(..PEER_HEADER_LEN)?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let total = (PEER_HEADER_LEN + len + auction_proto::auth::TAG_LEN).min(rest.len());
        let (frame, tail) = rest.split_at(total);
        rest = tail;
        Some(frame)
    })
}

/// One outbound connection: connects lazily, writes queued frames in batches, reconnects with
/// back-off. Frames in flight when a connection breaks are lost; ordering resends.
async fn write_peer(to: SocketAddr, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut backoff = Duration::from_millis(50);
    let mut batch = Vec::with_capacity(64 * 1024);
    // Ends after `PEER_IDLE` with nothing to send, so the table can drop it.
    while let Ok(Some(first)) = tokio::time::timeout(PEER_IDLE, rx.recv()).await {
        let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(to)).await;
        let mut stream = match connect {
            Ok(Ok(s)) => s,
            _ => {
                // Drop what is queued: it is stale by the time the peer is back.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = Duration::from_millis(50);
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            batch.clear();
            batch.extend_from_slice(&frame);
            while batch.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(f) => batch.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            let write = tokio::time::timeout(PEER_IDLE, stream.write_all(&batch)).await;
            if !matches!(write, Ok(Ok(()))) {
                break;
            }
            next = match tokio::time::timeout(PEER_IDLE, rx.recv()).await {
                Ok(next) => next,
                Err(_) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation};
    use auction_proto::{AuctionId, Seq, Term, Timestamp};

    use super::{MAX_MERGED_COMMANDS, OrderingMsg, merge};

    fn propose(term: u64, n: usize) -> OrderingMsg {
        let cmd = Command { origin: None, op: Operation::Close { auction: AuctionId(1) } };
        OrderingMsg::Propose { term: Term(term), commands: vec![cmd; n] }
    }

    #[test]
    fn proposes_of_one_term_merge_up_to_the_bound() {
        let mut prev = propose(3, 2);
        assert_eq!(merge(&mut prev, propose(3, 1)), None);
        assert_eq!(prev, propose(3, 3));
        assert_eq!(merge(&mut prev, propose(4, 1)), Some(propose(4, 1)));
        let big = propose(3, MAX_MERGED_COMMANDS - 2);
        assert_eq!(merge(&mut prev, big.clone()), Some(big));
    }

    #[test]
    fn acks_of_a_term_merge_into_the_highest_and_nothing_else_merges() {
        let ack = |term, stored| OrderingMsg::Ack { term: Term(term), stored: Seq(stored) };
        let mut prev = ack(2, 10);
        assert_eq!(merge(&mut prev, ack(2, 12)), None);
        assert_eq!(prev, ack(2, 12));
        // A lower later ack (after a snapshot install reset what is durable) keeps the highest.
        assert_eq!(merge(&mut prev, ack(2, 0)), None);
        assert_eq!(prev, ack(2, 12));
        assert_eq!(merge(&mut prev, ack(3, 1)), Some(ack(3, 1)));
        let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(12) };
        assert_eq!(merge(&mut prev, commit.clone()), Some(commit));
        assert_eq!(merge(&mut propose(2, 1), ack(2, 1)), Some(ack(2, 1)));
    }

    #[test]
    fn orders_of_one_term_merge_only_when_their_entries_follow_on() {
        let entry = |seq| LogEntry {
            term: Term(2),
            seq: Seq(seq),
            timestamp: Timestamp(0),
            payload: EntryPayload::Noop,
        };
        let order = |term, seqs: std::ops::RangeInclusive<u64>, commit| OrderingMsg::Order {
            term: Term(term),
            entries: seqs.map(entry).collect(),
            commit: Seq(commit),
        };
        let mut prev = order(2, 5..=6, 4);
        assert_eq!(merge(&mut prev, order(2, 7..=7, 6)), None);
        assert_eq!(prev, order(2, 5..=7, 6));
        // A resend (not following on), another term: kept apart.
        assert_eq!(merge(&mut prev, order(2, 3..=4, 6)), Some(order(2, 3..=4, 6)));
        assert_eq!(merge(&mut prev, order(3, 8..=8, 6)), Some(order(3, 8..=8, 6)));
    }
}
