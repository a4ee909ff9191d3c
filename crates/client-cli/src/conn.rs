//! One TCP connection to one server: framed writes, and a reader task that hands responses to
//! the session and pushed events to the event sink.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use auction_proto::ClientCodec;
use auction_proto::msg::client::{ClientToServer, PushEvent, Request, Response, ServerToClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Responses waiting to be read; more is a misbehaving server.
const RESPONSE_QUEUE: usize = 64;

/// Why no response came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The connection closed or broke, or the server sent junk.
    Closed,
    /// No answer within the request timeout.
    TimedOut,
}

/// A live connection. Dropping it closes the socket and stops its reader.
#[derive(Debug)]
pub(crate) struct Conn {
    addr: SocketAddr,
    writer: OwnedWriteHalf,
    responses: mpsc::Receiver<Response>,
    reader: JoinHandle<()>,
    codec: ClientCodec,
}

impl Conn {
    /// Connects within `timeout`; events the server pushes go to `events`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        events: mpsc::UnboundedSender<PushEvent>,
    ) -> io::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let codec = ClientCodec::default();
        let (tx, responses) = mpsc::channel(RESPONSE_QUEUE);
        let reader = tokio::spawn(read_frames(read, codec, tx, events));
        Ok(Self { addr, writer, responses, reader, codec })
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` and waits for the response with its number; responses to other numbers
    /// (late answers to an abandoned attempt) are skipped.
    pub(crate) async fn call(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, Lost> {
        let frame =
            self.codec.encode(&ClientToServer::Request(req.clone())).map_err(|_| Lost::Closed)?;
        let wait = async {
            self.writer.write_all(&frame).await.map_err(|_| Lost::Closed)?;
            loop {
                let resp = self.responses.recv().await.ok_or(Lost::Closed)?;
                if resp.no == req.no {
                    return Ok(resp);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| Lost::TimedOut)?
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_frames(
    mut read: tokio::net::tcp::OwnedReadHalf,
    codec: ClientCodec,
    responses: mpsc::Sender<Response>,
    events: mpsc::UnboundedSender<PushEvent>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        loop {
            match codec.decode_stream::<ServerToClient>(&buf) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    match msg {
                        ServerToClient::Response(r) => {
                            if responses.send(r).await.is_err() {
                                return;
                            }
                        }
                        // A closed event sink only means nobody listens any more.
                        ServerToClient::Event(e) => drop(events.send(e)),
                        ServerToClient::Here(_) => {}
                    }
                }
                Ok(None) => break,
                // Junk from the server: drop the connection; the session fails over.
                Err(_) => return,
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
