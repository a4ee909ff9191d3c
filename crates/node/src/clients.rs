//! Client connections: one task per connection that frames requests in and responses and
//! events out. Sessions and request handling live in the driver (`session.rs`); these tasks
//! only move bytes, so a slow or hostile client can stall nothing but itself.
//!
//! Bounds: at most `max_clients` connections (more are closed at once); frames at most
//! `ClientCodec`'s 64 KiB; at most [`OUT_QUEUE`] messages queued to a client (a client that
//! does not read is disconnected by the driver); connections idle for `idle` are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auction_proto::msg::client::{ClientError, ClientToServer, Request, Response, ServerToClient};
use auction_proto::{ClientCodec, RequestNo, Seq};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// Messages queued to one client before it counts as too slow.
pub const OUT_QUEUE: usize = 1024;
/// Requests one connection may have unanswered; at the limit its socket is not read (TCP
/// back-pressure on that client alone), so one client cannot fill the driver's queue.
pub const MAX_IN_FLIGHT: usize = 128;

/// Identifies one connection for the node's lifetime.
pub type ConnId = u64;

/// What connection tasks tell the driver.
#[derive(Debug)]
pub enum ClientEvent {
    /// A new connection.
    Opened {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        addr: SocketAddr,
        /// Where to send its responses and events.
        tx: mpsc::Sender<ServerToClient>,
        /// Closes the connection (a client too slow to read what it is sent).
        kill: oneshot::Sender<()>,
    },
    /// A request.
    Request {
        /// The connection.
        conn: ConnId,
        /// The request.
        req: Request,
    },
    /// The connection ended.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// Accepts client connections until the driver goes away.
pub async fn serve(
    listener: TcpListener,
    events: mpsc::Sender<ClientEvent>,
    max_clients: usize,
    idle: Duration,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut next: ConnId = 0;
    loop {
        let (stream, addr) = match listener.accept().await {
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
        if active.load(Ordering::Relaxed) >= max_clients {
            debug!(%addr, "too many clients; connection refused");
            drop(stream);
            continue;
        }
        next += 1;
        active.fetch_add(1, Ordering::Relaxed);
        let (events, active) = (events.clone(), active.clone());
        let conn = next;
        tokio::spawn(async move {
            connection(conn, stream, addr, events, idle).await;
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<ClientEvent>,
    idle: Duration,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<ServerToClient>(OUT_QUEUE);
    let (kill, mut killed) = oneshot::channel();
    if events.send(ClientEvent::Opened { conn, addr, tx: tx.clone(), kill }).await.is_err() {
        return;
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let answered = slots.clone();
    let writer = tokio::spawn(async move {
        let codec = ClientCodec::default();
        let mut buf = Vec::with_capacity(16 * 1024);
        // The highest applied seq this connection was given (in a response or as an event's
        // seq). Everything sent passes here in order, so raising each response to it keeps
        // the promise that a response never carries a lower one, also for the refusals this
        // task makes itself (which know no seq).
        let mut applied = Seq(0);
        while let Some(msg) = rx.recv().await {
            buf.clear();
            let mut responses = 0;
            let mut next = Some(msg);
            while let Some(mut m) = next.take() {
                match &mut m {
                    ServerToClient::Response(r) => {
                        responses += 1;
                        applied = applied.max(r.applied);
                        r.applied = applied;
                    }
                    ServerToClient::Event(e) => applied = applied.max(e.seq),
                    ServerToClient::Here(_) => {}
                }
                encode_or_refuse(&codec, &m, &mut buf);
                if buf.len() < 64 * 1024 {
                    next = rx.try_recv().ok();
                }
            }
            if wr.write_all(&buf).await.is_err() {
                return;
            }
            answered.add_permits(responses);
        }
        let _ = wr.shutdown().await;
    });
    tokio::select! {
        () = read_requests(conn, &mut rd, &events, &tx, &slots, idle) => {}
        _ = &mut killed => {}
    }
    drop(tx);
    let _ = events.send(ClientEvent::Closed { conn }).await;
    // The writer ends when the driver drops its sender (on Closed) and the queue is drained.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(5), &mut writer).await.is_err() {
        writer.abort();
    }
}

async fn read_requests(
    conn: ConnId,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    events: &mpsc::Sender<ClientEvent>,
    tx: &mpsc::Sender<ServerToClient>,
    slots: &tokio::sync::Semaphore,
    idle: Duration,
) {
    let codec = ClientCodec::default();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            match codec.decode_stream::<ClientToServer>(&buf) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    let ClientToServer::Request(req) = msg else { continue };
                    let no = req.no;
                    // Every request gets exactly one response; the writer returns the slot.
                    match slots.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                    if events.try_send(ClientEvent::Request { conn, req }).is_err() {
                        // The driver is saturated: refuse instead of queueing without bound.
                        let _ = tx.try_send(error(no, ClientError::Overloaded));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(conn, error = %e, "bad client frame; connection closed");
                    let _ = tx.try_send(error(RequestNo(0), ClientError::BadRequest));
                    return;
                }
            }
        }
        match tokio::time::timeout(idle, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                debug!(conn, "idle client disconnected");
                return;
            }
        }
    }
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

/// A refusal made by the connection task; the writer raises its `applied` to the highest the
/// connection was given.
fn error(no: RequestNo, e: ClientError) -> ServerToClient {
    ServerToClient::Response(Response { no, applied: Seq(0), result: Err(e) })
}
