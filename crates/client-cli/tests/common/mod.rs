//! A scripted fake server speaking the client protocol, for tests without a real cluster.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::large_enum_variant
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use auction_proto::msg::client::{
    ClientError, ClientToServer, Reply, Request, RequestBody, Response, ServerInfo, ServerToClient,
};
use auction_proto::msg::peer::MemberState;
use auction_proto::{ClientCodec, Incarnation, NodeId, Seq, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake does in answer to one request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Send a message.
    Send(ServerToClient),
    /// Close the connection without answering.
    Close,
}

/// `(request, connection number) -> actions`.
pub type Script = Arc<dyn Fn(&Request, usize) -> Vec<Act> + Send + Sync>;

/// A fake server on a loopback port.
pub struct Fake {
    pub addr: SocketAddr,
    pub node: NodeId,
    /// Every request received, with its connection number.
    pub log: Arc<Mutex<Vec<(usize, Request)>>>,
}

impl Fake {
    pub async fn start(n: u8, script: Script) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        tokio::spawn(async move {
            let mut conns = 0;
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                conns += 1;
                tokio::spawn(serve(stream, conns, Arc::clone(&script), Arc::clone(&log2)));
            }
        });
        Fake { addr, node: node(n), log }
    }

    pub fn info(&self, clients: u32) -> ServerInfo {
        ServerInfo {
            node: self.node,
            incarnation: Incarnation(1),
            client_addr: self.addr,
            state: MemberState::Alive,
            clients,
        }
    }

    /// The requests received (without their connection numbers).
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().iter().map(|(_, r)| r.clone()).collect()
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    conn: usize,
    script: Script,
    log: Arc<Mutex<Vec<(usize, Request)>>>,
) {
    let codec = ClientCodec::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((msg, used)) = codec.decode_stream::<ClientToServer>(&buf).unwrap() {
            buf.drain(..used);
            let ClientToServer::Request(req) = msg else { continue };
            log.lock().unwrap().push((conn, req.clone()));
            for act in script(&req, conn) {
                match act {
                    Act::Send(m) => {
                        let frame = codec.encode(&m).unwrap();
                        if stream.write_all(&frame).await.is_err() {
                            return;
                        }
                    }
                    Act::Close => return,
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn node(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

/// An answer to `req`.
pub fn answer(req: &Request, applied: u64, result: Result<Reply, ClientError>) -> Act {
    Act::Send(ServerToClient::Response(Response { no: req.no, applied: Seq(applied), result }))
}

/// A successful answer.
pub fn ok(req: &Request, reply: Reply) -> Act {
    answer(req, 1, Ok(reply))
}

/// The Welcome to a Hello, listing `servers`.
pub fn welcome(req: &Request, n: u8, servers: Vec<ServerInfo>) -> Act {
    ok(req, Reply::Welcome { server: node(n), servers, now: Timestamp(1_000_000) })
}

/// Whether `req` is a Hello.
pub fn is_hello(req: &Request) -> bool {
    matches!(req.body, RequestBody::Hello { .. })
}
