//! Client connections: one task per connection that moves bytes in (as far as the server
//! core grants credit) and bytes out. Framing, sessions, admission and limits are the server
//! core's (`auction_server`); these tasks decide nothing, so a slow or hostile client can
//! stall nothing but itself.
//!
//! Bounds: the bytes read and not yet consumed by the core are at most its credit (one
//! largest frame and a chunk); at most [`OUT_QUEUE`] chunks queued to a client (over it the
//! driver reports the client stalled, and the core disconnects it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auction_server::ConnId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::debug;

/// Requests one connection may have unanswered (the server core's bound, re-exported).
pub use auction_server::MAX_IN_FLIGHT;

/// Chunks of output queued to one client before it counts as too slow.
pub const OUT_QUEUE: usize = 1024;
/// Bytes read from a socket at a time, at most.
const READ_CHUNK: usize = 16 * 1024;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum ClientEvent {
    /// A new connection.
    Opened {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        addr: SocketAddr,
        /// Its handle: output, credit and close.
        handle: ConnHandle,
    },
    /// Bytes read (never more than the credit granted).
    Bytes {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The connection ended.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// The driver's side of one connection.
#[derive(Debug)]
pub struct ConnHandle {
    /// Output chunks for the writer.
    pub out: mpsc::Sender<Vec<u8>>,
    /// Bytes the reader may read (the core's credit).
    pub credit: Arc<Semaphore>,
    /// Dropped or fired: the connection closes (after the queued output is written).
    pub close: oneshot::Sender<()>,
}

/// Accepts client connections until `stop` turns true; returns once the listener is closed.
pub async fn serve(
    listener: TcpListener,
    events: mpsc::Sender<ClientEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next: ConnId = 0;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "client accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if events.is_closed() {
            return;
        }
        next += 1;
        tokio::spawn(connection(next, stream, addr, events.clone(), stop.clone()));
    }
}

async fn connection(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<ClientEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (out, rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let credit = Arc::new(Semaphore::new(0));
    let (close, mut closed) = oneshot::channel();
    let handle = ConnHandle { out, credit: credit.clone(), close };
    if events.send(ClientEvent::Opened { conn, addr, handle }).await.is_err() {
        return;
    }
    let mut writer = tokio::spawn(write_out(wr, rx));
    tokio::select! {
        () = read_in(conn, &mut rd, &events, &credit) => {}
        _ = &mut closed => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    let _ = events.send(ClientEvent::Closed { conn }).await;
    // The writer ends when the driver drops its sender (on close) and the queue is drained.
    if tokio::time::timeout(Duration::from_secs(5), &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Reads as far as the credit allows and hands the bytes to the driver.
async fn read_in(
    conn: ConnId,
    rd: &mut OwnedReadHalf,
    events: &mpsc::Sender<ClientEvent>,
    credit: &Semaphore,
) {
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        // Wait until some credit is there (the permit only shows it; the bytes read take it).
        match credit.acquire().await {
            Ok(p) => drop(p),
            Err(_) => return,
        }
        let allowed = credit.available_permits().min(chunk.len());
        let n = match rd.read(&mut chunk[..allowed]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(n32) = u32::try_from(n) else { return };
        match credit.acquire_many(n32).await {
            Ok(p) => p.forget(),
            Err(_) => return,
        }
        if events.send(ClientEvent::Bytes { conn, bytes: chunk[..n].to_vec() }).await.is_err() {
            debug!(conn, "driver gone; client connection closed");
            return;
        }
    }
}

/// Writes what the driver queues, coalescing queued chunks into one write.
async fn write_out(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut buf = Vec::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}
