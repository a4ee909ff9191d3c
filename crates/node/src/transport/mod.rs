//! Peer sockets: UDP for discovery, failure detection and election; TCP for ordering.
//!
//! Frames are sealed, opened and batched by the server core (`auction_server`, with
//! `auction_proto::PeerSeal`; see docs/protocol.md); this module only moves their bytes.
//!
//! Inbound TCP is read by one task per connection (module `inbound`), which authenticates and
//! decrypts every frame before the driver sees it, skips a frame addressed to another node or
//! boot without decrypting its body, and bounds what hosts without the key can
//! cost ([`TransportLimits`]); the server core then runs the seal's remaining checks
//! (`Server::handle_peer_frame`).

mod inbound;

pub use inbound::{InboundFrames, Opener, TransportLimits};

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auction_proto::codec::PEER_HEADER_LEN;
use auction_proto::{DecodeError, Incarnation, NodeId, PeerCodec, PeerFrame, PeerSeal};
use auction_server::PeerStats;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

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

/// The peer sockets of one node: the UDP socket, outbound TCP writers, the inbound readers'
/// counters. Sealing, opening and batching are the server core's.
#[derive(Debug)]
pub struct PeerNet {
    udp: Arc<UdpSocket>,
    discovery: Arc<UdpSocket>,
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Outbound frames dropped here (queue full, socket busy).
    dropped: u64,
    inbound: Arc<inbound::Inbound>,
    accept: tokio::task::JoinHandle<()>,
}

/// The sockets the driver polls.
#[derive(Debug)]
pub struct PeerSockets {
    /// Peer UDP socket (same port as the TCP listener).
    pub udp: Arc<UdpSocket>,
    /// Discovery socket: broadcast `Discover` from servers, `FindServers` from clients.
    pub discovery: Arc<UdpSocket>,
    /// Authenticated frames read by the TCP reader tasks (hand each to the server core, then
    /// drop the batch to release its bytes).
    pub tcp_in: mpsc::Receiver<InboundFrames>,
}

impl PeerNet {
    /// Binds the peer UDP socket, the peer TCP listener (on the UDP socket's port, so port 0
    /// picks one port for both) and the discovery socket (shared with other local servers).
    /// The TCP readers authenticate frames with a clone of `seal`'s codec.
    pub async fn bind(
        seal: &PeerSeal,
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
        let accept = tokio::spawn(inbound::accept_peers(listener, opener, tcp_tx, inbound.clone()));
        let net = Self {
            udp: udp.clone(),
            discovery: discovery.clone(),
            writers: HashMap::new(),
            dropped: 0,
            inbound,
            accept,
        };
        Ok((net, PeerSockets { udp, discovery, tcp_in }))
    }

    /// Sends one datagram from the peer socket; never blocks (a busy socket drops it, counted:
    /// the protocols retransmit).
    pub fn send_datagram(&mut self, to: SocketAddr, frame: &[u8]) {
        if self.udp.try_send_to(frame, to).is_err() {
            self.dropped += 1;
        }
    }

    /// Sends one datagram from the discovery socket (an answer to a client's `FindServers`).
    pub fn send_discovery(&mut self, to: SocketAddr, frame: &[u8]) {
        let _ = self.discovery.try_send_to(frame, to);
    }

    /// Queues whole frames to the peer's outbound TCP writer (started on first use); never
    /// blocks (a full queue drops them, counted).
    pub fn send_stream(&mut self, to: SocketAddr, frames: Vec<u8>) {
        // A writer that ended (idle) is replaced.
        if self.writers.get(&to).is_some_and(mpsc::Sender::is_closed) {
            self.writers.remove(&to);
        }
        if !self.writers.contains_key(&to) && self.writers.len() >= MAX_WRITERS {
            self.writers.retain(|_, tx| !tx.is_closed());
            if self.writers.len() >= MAX_WRITERS {
                self.dropped += 1;
                return;
            }
        }
        let tx = self.writers.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(WRITER_QUEUE);
            tokio::spawn(write_peer(to, rx));
            tx
        });
        if tx.try_send(frames).is_err() {
            self.dropped += 1;
        }
    }

    /// Counters of refused input and dropped output: the server core's (`core`), the
    /// readers' and the sockets'.
    pub fn stats(&self, core: PeerStats) -> TransportStats {
        let i = &self.inbound;
        TransportStats {
            rejected: core.rejected + i.rejected.load(Ordering::Relaxed),
            replayed: core.replayed,
            misaddressed: core.misaddressed + i.skipped.load(Ordering::Relaxed),
            dropped: core.dropped + self.dropped,
            refused_connections: i.refused.load(Ordering::Relaxed),
            timed_out: i.timed_out.load(Ordering::Relaxed),
            buffered_bytes: i.buffered() as u64,
        }
    }

    /// Closes the peer listener and waits until it is closed (the port is free at once).
    pub async fn close(&mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
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
