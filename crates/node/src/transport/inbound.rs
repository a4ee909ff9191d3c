//! Inbound peer TCP: the accept loop and one reader task per connection.
//!
//! The peer port is open to any host, so nothing a host without the cluster key sends may cost
//! more than a bounded amount of memory or time:
//!
//! - connections are capped per source address and in all; over a cap a connection is closed at
//!   once;
//! - the reader holds its own [`Opener`] (a clone of the codec) and authenticates every whole
//!   frame itself; the driver only sees authenticated frames. The first frame that fails (junk,
//!   another cluster, an unknown key, an oversized length, a bad tag) closes the connection;
//! - a frame's declared length is never allocated up front: the buffer grows as bytes arrive,
//!   one chunk at a time, and every chunk is paid for first with byte permits from three pools
//!   (all connections, connections not yet authenticated, this connection). Permits are held
//!   until the driver has handled the frames read with them; a reader that cannot get permits
//!   stops reading, and TCP flow control pushes back on the sender;
//! - a connection is closed when it has not delivered its first valid frame in
//!   [`TransportLimits::first_frame`], when no whole valid frame arrived in
//!   [`TransportLimits::idle`], or when one frame takes longer than
//!   [`TransportLimits::frame_time`] to arrive (slowloris).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use auction_proto::{DecodeError, PeerCodec, PeerFrame};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, warn};

/// Bounds on inbound peer connections. The defaults suit a LAN cluster; tests shorten the
/// timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// Most inbound peer connections at once.
    pub max_inbound: usize,
    /// Most inbound peer connections at once from one source IP address.
    pub max_inbound_per_source: usize,
    /// Bytes read from all inbound connections and not yet handled by the driver.
    pub inbound_bytes: usize,
    /// Of those, bytes held by connections that have not yet delivered an authenticated frame
    /// (so hosts without the key can never take the whole budget).
    pub unauthenticated_bytes: usize,
    /// Bytes one connection may hold (raised to one largest frame plus a read chunk).
    pub connection_bytes: usize,
    /// Bytes read from a socket at a time, at most.
    pub read_chunk: usize,
    /// A connection without a valid frame this long after it was accepted is closed.
    pub first_frame: Duration,
    /// A connection whose current frame has not arrived in full this long after its first
    /// byte is closed.
    pub frame_time: Duration,
    /// A connection without a whole valid frame this long is closed.
    pub idle: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_inbound: 256,
            max_inbound_per_source: 8,
            inbound_bytes: 64 * 1024 * 1024,
            unauthenticated_bytes: 16 * 1024 * 1024,
            connection_bytes: 8 * 1024 * 1024 + 64 * 1024,
            read_chunk: 64 * 1024,
            first_frame: Duration::from_secs(5),
            frame_time: Duration::from_secs(10),
            idle: super::PEER_IDLE,
        }
    }
}

impl TransportLimits {
    /// The limits made consistent for frames of up to `max_frame` bytes: one such frame (plus a
    /// read chunk) always fits in each pool, so a lone honest connection can never deadlock.
    fn fit(mut self, max_frame: usize) -> Self {
        self.max_inbound = self.max_inbound.max(1);
        self.max_inbound_per_source = self.max_inbound_per_source.max(1);
        self.read_chunk = self.read_chunk.clamp(1, u32::MAX as usize / 2);
        let one = max_frame.saturating_add(self.read_chunk);
        self.connection_bytes = self.connection_bytes.max(one);
        self.unauthenticated_bytes = self.unauthenticated_bytes.max(self.connection_bytes);
        self.inbound_bytes = self.inbound_bytes.max(self.unauthenticated_bytes);
        self
    }
}

/// What a reader needs of the codec: check a header, open a whole frame. A small trait so the
/// reader does not depend on how frames are sealed.
pub trait Opener: Clone + Send + Sync + 'static {
    /// Checks what is present of a frame header at the start of `buf`: `Ok(None)` until the
    /// header is complete, then the length of the whole frame. Errors on junk, another
    /// cluster, an unknown key or a length over the limit.
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError>;
    /// Authenticates and decodes one whole frame (exactly `frame_len` bytes); `Ok(None)` for
    /// an authentic frame this reader skips unread (addressed to another node or boot: the
    /// connection goes on, as frames for this node may follow on it).
    fn open(&mut self, frame: &[u8]) -> Result<Option<PeerFrame>, DecodeError>;
    /// The length of the largest frame [`Opener::frame_len`] accepts.
    fn max_frame_len(&self) -> usize;
}

impl Opener for PeerCodec {
    fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        // Checks the header's own tag too, so a forged header is refused before its body.
        Ok(self.decode_header(buf)?.map(|h| h.frame_len))
    }

    fn open(&mut self, frame: &[u8]) -> Result<Option<PeerFrame>, DecodeError> {
        self.decode_datagram(frame).map(Some)
    }

    fn max_frame_len(&self) -> usize {
        PeerCodec::max_frame_len(self)
    }
}

/// Authenticated frames read from one connection, handed to the driver. The bytes they were
/// read with stay counted against the budgets until this is dropped: drop it after handling
/// the frames.
#[derive(Debug)]
pub struct InboundFrames {
    frames: Vec<PeerFrame>,
    _permits: Permits,
}

impl InboundFrames {
    /// Takes the frames out (the budget is released when `self` is dropped).
    pub fn take(&mut self) -> Vec<PeerFrame> {
        std::mem::take(&mut self.frames)
    }
}

/// State shared by the accept loop, the readers and the driver (counters only; no protocol
/// state).
#[derive(Debug)]
pub(super) struct Inbound {
    limits: TransportLimits,
    total: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    warned: Mutex<WarnLimit>,
    /// Frames refused by a reader (each closed its connection).
    pub(super) rejected: AtomicU64,
    /// Connections closed at once over a cap.
    pub(super) refused: AtomicU64,
    /// Connections closed by a timeout.
    pub(super) timed_out: AtomicU64,
    /// Authentic frames skipped unread: addressed to another node or boot.
    pub(super) skipped: AtomicU64,
}

impl Inbound {
    pub(super) fn new(limits: TransportLimits, max_frame: usize) -> Self {
        let limits = limits.fit(max_frame);
        let pool = |n: usize| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)));
        Self {
            total: pool(limits.inbound_bytes),
            unauthenticated: pool(limits.unauthenticated_bytes),
            limits,
            per_source: Mutex::new(HashMap::new()),
            warned: Mutex::new(WarnLimit::default()),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Bytes read from inbound connections and not yet handled.
    pub(super) fn buffered(&self) -> usize {
        let total = self.limits.inbound_bytes.min(Semaphore::MAX_PERMITS);
        total.saturating_sub(self.total.available_permits())
    }

    /// Logs a refused frame: a WARN at most once a minute per source for a bad tag or an
    /// unknown key (a wrong key on a real node is an operator mistake worth seeing), debug
    /// otherwise.
    pub(super) fn log_refused(&self, from: SocketAddr, e: &DecodeError) {
        let keyed = matches!(e, DecodeError::BadTag | DecodeError::UnknownKey { .. });
        let warn_now = keyed && lock(&self.warned).allow(from.ip(), Instant::now());
        if warn_now {
            warn!(%from, error = %e, "peer frame refused: is this host using another cluster key? \
                (logged once a minute per source)");
        } else {
            debug!(%from, error = %e, "peer frame refused");
        }
    }

    /// Takes a connection slot of `ip`, or `None` over its cap.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut per_source = lock(&self.per_source);
        let n = per_source.entry(ip).or_insert(0);
        if *n >= self.limits.max_inbound_per_source {
            return None;
        }
        *n += 1;
        Some(SourceSlot { inbound: Arc::clone(self), ip })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection counted against its source's cap until dropped.
#[derive(Debug)]
struct SourceSlot {
    inbound: Arc<Inbound>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut per_source = lock(&self.inbound.per_source);
        if let Some(n) = per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&self.ip);
            }
        }
    }
}

/// At most one warning a minute per source address (the table is bounded).
#[derive(Debug, Default)]
struct WarnLimit {
    last: HashMap<IpAddr, Instant>,
}

const WARN_EVERY: Duration = Duration::from_secs(60);
const WARN_SOURCES: usize = 1024;

impl WarnLimit {
    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.last.get(&ip).is_some_and(|t| now.saturating_duration_since(*t) < WARN_EVERY) {
            return false;
        }
        if self.last.len() >= WARN_SOURCES {
            self.last.retain(|_, t| now.saturating_duration_since(*t) < WARN_EVERY);
            if self.last.len() >= WARN_SOURCES {
                return false;
            }
        }
        self.last.insert(ip, now);
        true
    }
}

/// Byte permits from the pools: all connections, this connection and, until the connection
/// has authenticated a frame, the unauthenticated pool. Invariant: the parts hold equal
/// counts, except `unauthenticated`, which is empty once the connection is trusted.
#[derive(Debug)]
struct Permits {
    total: OwnedSemaphorePermit,
    conn: OwnedSemaphorePermit,
    unauthenticated: Option<OwnedSemaphorePermit>,
}

impl Permits {
    fn len(&self) -> usize {
        self.total.num_permits()
    }

    /// Splits `n` permits off (`n <= self.len()`).
    fn split(&mut self, n: usize) -> Option<Permits> {
        Some(Permits {
            total: self.total.split(n)?,
            conn: self.conn.split(n)?,
            unauthenticated: match self.unauthenticated.as_mut() {
                Some(u) => Some(u.split(n)?),
                None => None,
            },
        })
    }

    fn merge(&mut self, more: Permits) {
        self.total.merge(more.total);
        self.conn.merge(more.conn);
        match (self.unauthenticated.as_mut(), more.unauthenticated) {
            (Some(u), Some(m)) => u.merge(m),
            (_, m) => drop(m),
        }
    }
}

/// Accepts peer connections until the driver's channel closes.
pub(super) async fn accept_peers<O: Opener>(
    listener: TcpListener,
    opener: O,
    tx: mpsc::Sender<InboundFrames>,
    inbound: Arc<Inbound>,
) {
    let slots = Arc::new(Semaphore::new(inbound.limits.max_inbound));
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    inbound.refused.fetch_add(1, Ordering::Relaxed);
                    debug!(%addr, "too many inbound peer connections; closed");
                    continue;
                };
                let Some(source) = inbound.enter(addr.ip()) else {
                    inbound.refused.fetch_add(1, Ordering::Relaxed);
                    debug!(%addr, "too many inbound peer connections from this source; closed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let reader = Reader::new(stream, addr, opener.clone(), tx.clone(), &inbound);
                tokio::spawn(async move {
                    reader.run().await;
                    drop((slot, source));
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

/// Why a reader stopped.
enum Stop {
    /// The peer closed, the socket failed or the driver is gone.
    Closed,
    /// A frame was refused.
    Refused(DecodeError),
    /// A deadline passed.
    TimedOut(&'static str),
}

/// One inbound connection.
struct Reader<O> {
    stream: TcpStream,
    addr: SocketAddr,
    opener: O,
    tx: mpsc::Sender<InboundFrames>,
    inbound: Arc<Inbound>,
    /// This connection's pool.
    conn: Arc<Semaphore>,
    /// Bytes read and not yet handed over (at most a partial frame between reads).
    buf: Vec<u8>,
    /// Permits covering `buf`'s capacity, at least.
    held: Option<Permits>,
    authenticated: bool,
    accepted: Instant,
    /// When the last whole valid frame arrived (or the connection was accepted).
    progress: Instant,
    /// When the first byte of the partial frame in `buf` arrived.
    frame_started: Option<Instant>,
}

impl<O: Opener> Reader<O> {
    fn new(
        stream: TcpStream,
        addr: SocketAddr,
        opener: O,
        tx: mpsc::Sender<InboundFrames>,
        inbound: &Arc<Inbound>,
    ) -> Self {
        let now = Instant::now();
        let conn =
            Arc::new(Semaphore::new(inbound.limits.connection_bytes.min(Semaphore::MAX_PERMITS)));
        Self {
            stream,
            addr,
            opener,
            tx,
            inbound: Arc::clone(inbound),
            conn,
            buf: Vec::new(),
            held: None,
            authenticated: false,
            accepted: now,
            progress: now,
            frame_started: None,
        }
    }

    async fn run(mut self) {
        let addr = self.addr;
        match self.read_all().await {
            Stop::Closed => {}
            Stop::Refused(e) => {
                self.inbound.rejected.fetch_add(1, Ordering::Relaxed);
                self.inbound.log_refused(addr, &e);
            }
            Stop::TimedOut(why) => {
                self.inbound.timed_out.fetch_add(1, Ordering::Relaxed);
                debug!(%addr, why, "peer connection timed out; closed");
            }
        }
    }

    async fn read_all(&mut self) -> Stop {
        loop {
            let (frames, used) = match self.whole_frames() {
                Ok(found) => found,
                Err(e) => return Stop::Refused(e),
            };
            if used > 0 && !self.hand_over(frames, used).await {
                return Stop::Closed;
            }
            let (deadline, why) = self.deadline();
            let step = tokio::time::timeout_at(deadline.into(), self.read_chunk()).await;
            match step {
                Err(_) => return Stop::TimedOut(why),
                Ok(false) => return Stop::Closed,
                Ok(true) => {}
            }
        }
    }

    /// Authenticates the whole frames at the start of `buf`: them and the bytes they take.
    fn whole_frames(&mut self) -> Result<(Vec<PeerFrame>, usize), DecodeError> {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some(len) = self.opener.frame_len(&self.buf[at..])? {
            let Some(bytes) = self.buf.get(at..at + len) else { break };
            match self.opener.open(bytes)? {
                Some(frame) => frames.push(frame),
                None => {
                    self.inbound.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
            at += len;
        }
        Ok((frames, at))
    }

    /// Hands `frames` (the first `used` bytes of `buf`) to the driver with their permits;
    /// `false` if the driver is gone.
    async fn hand_over(&mut self, frames: Vec<PeerFrame>, used: usize) -> bool {
        let now = Instant::now();
        self.progress = now;
        let rest = self.buf[used..].to_vec();
        self.frame_started = (!rest.is_empty()).then_some(now);
        // The new buffer is only as big as the partial frame it holds.
        self.buf = rest;
        let Some(held) = self.held.as_mut() else { return false };
        if !self.authenticated {
            // Trusted from now on: its bytes leave the unauthenticated pool.
            self.authenticated = true;
            held.unauthenticated = None;
        }
        let Some(permits) = held.split(used) else { return false };
        // Give back what the smaller buffer no longer needs.
        if held.len() > self.buf.capacity() {
            drop(held.split(held.len() - self.buf.capacity()));
        }
        self.tx.send(InboundFrames { frames, _permits: permits }).await.is_ok()
    }

    /// The earliest deadline that applies now, and its name.
    fn deadline(&self) -> (Instant, &'static str) {
        let l = &self.inbound.limits;
        let mut deadline = (self.progress + l.idle, "idle");
        if !self.authenticated {
            deadline = deadline.min((self.accepted + l.first_frame, "no valid first frame"));
        }
        if let Some(started) = self.frame_started {
            deadline = deadline.min((started + l.frame_time, "frame too slow"));
        }
        deadline
    }

    /// Pays for one more chunk of buffer, then reads into it; `false` when the stream ended
    /// or failed.
    async fn read_chunk(&mut self) -> bool {
        let want = self.buf.len() + self.inbound.limits.read_chunk;
        let have = self.held.as_ref().map_or(0, Permits::len);
        if want > have {
            let Some(more) = self.acquire(want - have).await else { return false };
            match self.held.as_mut() {
                Some(held) => held.merge(more),
                None => self.held = Some(more),
            }
        }
        self.buf.reserve_exact(want - self.buf.len());
        let was_empty = self.buf.is_empty();
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => false,
            Ok(_) => {
                if was_empty {
                    self.frame_started = Some(Instant::now());
                }
                true
            }
        }
    }

    /// Waits for `n` permits from every pool that applies (this connection's first, so one
    /// connection waiting on the driver does not hold shared bytes meanwhile).
    async fn acquire(&self, n: usize) -> Option<Permits> {
        let n32 = u32::try_from(n).ok()?;
        let conn = Arc::clone(&self.conn).acquire_many_owned(n32).await.ok()?;
        let unauthenticated = if self.authenticated {
            None
        } else {
            Some(Arc::clone(&self.inbound.unauthenticated).acquire_many_owned(n32).await.ok()?)
        };
        let total = Arc::clone(&self.inbound.total).acquire_many_owned(n32).await.ok()?;
        Some(Permits { total, conn, unauthenticated })
    }
}
