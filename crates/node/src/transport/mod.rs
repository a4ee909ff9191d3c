//! Peer transport: UDP for discovery, failure detection and election; TCP for ordering.
//!
//! Frames are sealed and checked by `auction_proto::PeerSeal` (AEAD with keys derived from the
//! cluster key; the envelope binds the receiver's node and boot and the cluster instance; one
//! replay window per sender and channel). See docs/protocol.md.
//!
//! Inbound TCP is read by one task per connection (module `inbound`), which authenticates and
//! decrypts every frame before the driver sees it, skips a frame addressed to another node or
//! boot without decrypting its body, and bounds what hosts without the key can
//! cost ([`TransportLimits`]); the driver then runs the seal's remaining checks
//! ([`PeerNet::admit`]).

mod inbound;

pub use inbound::{InboundFrames, Opener, TransportLimits};

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auction_proto::codec::PEER_HEADER_LEN;
use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::seal::Channel as SealChannel;
use auction_proto::{
    Addressee, DecodeError, Incarnation, NodeId, Opened, PeerCodec, PeerFrame, PeerSeal, Refusal,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest UDP payload we send; bigger frames go over TCP.
const MAX_UDP_FRAME: usize = 60 * 1024;
/// Frames queued per outbound TCP connection before new ones are dropped (ordering resends).
const WRITER_QUEUE: usize = 4096;
/// Most outbound TCP connections kept.
const MAX_WRITERS: usize = 256;
/// Authenticated batches queued from the TCP readers to the driver (their bytes are bounded
/// by [`TransportLimits::inbound_bytes`]).
const INBOUND_QUEUE: usize = 1024;
/// An inbound peer connection silent this long is closed; an outbound writer with nothing to
/// send this long ends (and is removed from the table).
const PEER_IDLE: Duration = Duration::from_secs(60);
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

impl Channel {
    fn seal(self) -> SealChannel {
        match self {
            Channel::Udp => SealChannel::Datagram,
            Channel::Tcp => SealChannel::Stream,
        }
    }
}

/// Counters of refused input, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames refused by the codec (bad tag, wrong cluster, unknown key, junk...), on UDP or
    /// TCP (where each also closed its connection).
    pub rejected: u64,
    /// Frames refused as replays (or own, or on the wrong channel).
    pub replayed: u64,
    /// Authentic frames refused for their envelope: addressed to another node or an earlier
    /// boot of this one, of another cluster instance, or unaddressed and not discovery.
    pub misaddressed: u64,
    /// Outbound frames dropped (queue full, too big, socket busy).
    pub dropped: u64,
    /// Inbound peer connections closed at once, over the per-source or the total cap.
    pub refused_connections: u64,
    /// Inbound peer connections closed by a timeout (no valid first frame, idle, a frame too
    /// slow to arrive).
    pub timed_out: u64,
    /// Bytes read from inbound peer connections and not yet handled (a gauge).
    pub buffered_bytes: u64,
}

/// The peer side of one node: sockets, signing, replay windows, outbound TCP writers.
#[derive(Debug)]
pub struct PeerNet {
    seal: PeerSeal,
    udp: Arc<UdpSocket>,
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// TCP messages not yet sealed, in send order (see [`PeerNet::flush`]).
    pending: Vec<(SocketAddr, Option<Addressee>, PeerBody)>,
    /// Counters of the driver's side (the readers count theirs in `inbound`).
    stats: TransportStats,
    inbound: Arc<inbound::Inbound>,
}

/// The sockets the driver polls.
#[derive(Debug)]
pub struct PeerSockets {
    /// Peer UDP socket (same port as the TCP listener).
    pub udp: Arc<UdpSocket>,
    /// Discovery socket: broadcast `Discover` from servers, `FindServers` from clients.
    pub discovery: Arc<UdpSocket>,
    /// Authenticated frames read by the TCP reader tasks (replay-check each with
    /// [`PeerNet::admit`], then drop the batch to release its bytes).
    pub tcp_in: mpsc::Receiver<InboundFrames>,
}

impl PeerNet {
    /// Binds the peer UDP socket, the peer TCP listener (on the UDP socket's port, so port 0
    /// picks one port for both) and the discovery socket (shared with other local servers).
    pub async fn bind(
        seal: PeerSeal,
        peer_addr: SocketAddr,
        discovery_addr: SocketAddr,
        limits: TransportLimits,
    ) -> io::Result<(Self, PeerSockets)> {
        let udp = Arc::new(bind_udp(peer_addr, false)?);
        let discovery = Arc::new(bind_udp(discovery_addr, true)?);
        let listener = TcpListener::bind(udp.local_addr()?).await?;
        let (tcp_tx, tcp_in) = mpsc::channel(INBOUND_QUEUE);
        let (me, incarnation) = seal.me();
        let opener = ReaderOpener { codec: seal.codec().clone(), me, incarnation };
        let inbound = Arc::new(inbound::Inbound::new(limits, opener.max_frame_len()));
        tokio::spawn(inbound::accept_peers(listener, opener, tcp_tx, inbound.clone()));
        let net = Self {
            seal,
            udp: udp.clone(),
            writers: HashMap::new(),
            pending: Vec::new(),
            stats: TransportStats::default(),
            inbound,
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
    ///
    /// `receiver` is the node and boot the frame is sealed for (`None`: unaddressed
    /// discovery).
    pub fn send(&mut self, to: SocketAddr, receiver: Option<Addressee>, body: PeerBody) {
        let tcp = matches!(body, PeerBody::Ordering(_));
        if !tcp {
            match self.encode(receiver, &body, Channel::Udp) {
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
        let last = self.pending.iter_mut().rev().find(|(dest, _, _)| *dest == to);
        if let Some((_, r, PeerBody::Ordering(prev))) = last {
            if *r == receiver {
                if let PeerBody::Ordering(next) = body {
                    match merge(prev, next) {
                        None => return,
                        Some(next) => {
                            self.pending.push((to, receiver, PeerBody::Ordering(next)));
                            return;
                        }
                    }
                }
            }
            self.pending.push((to, receiver, body));
            return;
        }
        self.pending.push((to, receiver, body));
    }

    /// The seal's instance (a founder's, once it has founded one).
    pub fn set_instance(&mut self, instance: auction_proto::InstanceId) -> bool {
        self.seal.set_instance(instance)
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
        for (to, receiver, body) in pending.drain(..) {
            let i = match out.iter().position(|(dest, _)| *dest == to) {
                Some(i) => i,
                None => {
                    out.push((to, Vec::new()));
                    out.len() - 1
                }
            };
            if let Err(e) = self.seal.seal_into(receiver, &body, SealChannel::Stream, &mut out[i].1)
            {
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

    fn encode(
        &mut self,
        receiver: Option<Addressee>,
        body: &PeerBody,
        channel: Channel,
    ) -> Option<Vec<u8>> {
        match self.seal.seal(receiver, body, channel.seal()) {
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

    /// Counters of refused input, the readers' included.
    pub fn stats(&self) -> TransportStats {
        let i = &self.inbound;
        TransportStats {
            rejected: self.stats.rejected + i.rejected.load(Ordering::Relaxed),
            misaddressed: self.stats.misaddressed + i.skipped.load(Ordering::Relaxed),
            refused_connections: i.refused.load(Ordering::Relaxed),
            timed_out: i.timed_out.load(Ordering::Relaxed),
            buffered_bytes: i.buffered() as u64,
            ..self.stats
        }
    }

    /// Authenticates, decrypts and checks one datagram from `from` (see
    /// `auction_proto::PeerSeal::open`); refusals are counted, and logged at debug level
    /// except those the caller acts on (returned as they are).
    pub fn accept(&mut self, bytes: &[u8], from: SocketAddr) -> Result<Opened, Refusal> {
        let result = self.seal.open(bytes, SealChannel::Datagram);
        if let Err(Refusal::Decode(e)) = &result {
            self.stats.rejected += 1;
            self.inbound.log_refused(from, e);
        }
        self.count(result)
    }

    /// Runs the seal's checks on a frame a TCP reader authenticated and decrypted.
    pub fn admit(&mut self, frame: PeerFrame, channel: Channel) -> Result<Opened, Refusal> {
        let result = self.seal.admit(frame, channel.seal());
        self.count(result)
    }

    fn count(&mut self, result: Result<Opened, Refusal>) -> Result<Opened, Refusal> {
        match &result {
            Ok(_) | Err(Refusal::Decode(_)) => {}
            Err(Refusal::Replayed(_) | Refusal::FromSelf | Refusal::WrongChannel) => {
                self.stats.replayed += 1;
            }
            Err(e) => {
                self.stats.misaddressed += 1;
                debug!(error = %e, "peer frame refused");
            }
        }
        result
    }
}

/// What a TCP reader opens frames with: the codec, plus this node's identity so that a frame
/// addressed to another node or boot is refused from its header, before its body is read.
#[derive(Clone, Debug)]
pub struct ReaderOpener {
    codec: PeerCodec,
    me: NodeId,
    incarnation: Incarnation,
}

impl Opener for ReaderOpener {
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        // Checks the header's own tag too, so a forged header is refused before its body.
        Ok(self.codec.decode_header(buf)?.map(|h| h.frame_len))
    }

    fn open(&mut self, frame: &[u8]) -> Result<Option<PeerFrame>, DecodeError> {
        let Some(header) = self.codec.decode_header(frame)? else {
            return Err(DecodeError::Truncated { needed: PEER_HEADER_LEN, got: frame.len() });
        };
        match header.envelope.to {
            // Authentic, but for another node (one that had this address before) or an
            // earlier boot of this one: skipped without decrypting or decoding its body. The
            // connection stays: frames for this node may follow on it. The seal tells the
            // sender this node's boot through the UDP path (`Refusal::StaleReceiver`).
            Some(a) if a.node != self.me || a.incarnation != self.incarnation => Ok(None),
            _ => self.codec.decode_datagram(frame).map(Some),
        }
    }

    fn max_frame_len(&self) -> usize {
        self.codec.max_frame_len()
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
        // The merged `Order` keeps the first one's `prev`: the second one's entries follow on.
        (
            OrderingMsg::Order { term, entries, commit, .. },
            OrderingMsg::Order { term: t, entries: more, commit: c, .. },
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
mod tests;

#[cfg(test)]
mod merge_tests {
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
            prev: auction_proto::LogPosition { term: Term(2), seq: Seq(seqs.start() - 1) },
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
