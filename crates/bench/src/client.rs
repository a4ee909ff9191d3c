//! A lean client of the auction protocol for load generation: one TCP connection at a time, one
//! request in flight, reused buffers (encoding a `Bid` allocates nothing), and failover that
//! re-sends the *same* request number at the next server, as a real client does.
//!
//! The client shell's session (`auction_client::session`) does the same for people, but it
//! clones every request, hands responses through a channel from a reader task and backs off
//! exponentially (up to 2 s) between attempts; a load generator wants none of that on its path,
//! and the back-off would inflate the failover gap it measures.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use auction_proto::msg::auction::BidderName;
use auction_proto::msg::client::{
    ClientError, ClientToServer, Reply, Request, RequestBody, Response, ServerToClient,
};
use auction_proto::{ClientCodec, ClientId, RequestNo, Seq};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a client connects and retries.
#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    /// The servers, tried in turn starting at `first`.
    pub(crate) servers: Vec<SocketAddr>,
    /// Index of the first server to use (spreads clients over servers).
    pub(crate) first: usize,
    /// Wait for one answer this long before trying the next server with the same number.
    pub(crate) attempt_timeout: Duration,
    /// Give up on a request after this long.
    pub(crate) give_up: Duration,
    /// Pause before re-sending after `Unavailable`/`Behind`/`Overloaded`.
    pub(crate) pause: Duration,
}

/// One client session (one `ClientId`) with failover.
#[derive(Debug)]
pub(crate) struct Client {
    config: ClientConfig,
    current: usize,
    stream: Option<TcpStream>,
    id: ClientId,
    next: u64,
    seen: Seq,
    login: Option<(BidderName, String)>,
    codec: ClientCodec,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Attempts that were re-sent (connection loss, timeout, unavailable).
    pub(crate) retries: u64,
}

/// Why one attempt did not produce an answer.
enum Miss {
    /// Try again at the next server.
    Failover,
    /// Try again after a pause (same or next server).
    Pause,
}

impl Client {
    /// A client that has not connected yet.
    pub(crate) fn new(config: ClientConfig) -> Self {
        let current = config.first % config.servers.len().max(1);
        Self {
            config,
            current,
            stream: None,
            id: ClientId::random(),
            next: 1,
            seen: Seq(0),
            login: None,
            codec: ClientCodec::default(),
            out: Vec::with_capacity(256),
            buf: Vec::with_capacity(4096),
            retries: 0,
        }
    }

    /// Sends `body` with the next request number until it gets an answer that is not a
    /// transient error, failing over between servers; returns that answer.
    pub(crate) async fn call(&mut self, body: &RequestBody) -> anyhow::Result<Response> {
        let no = RequestNo(self.next);
        self.next += 1;
        let give_up = Instant::now() + self.config.give_up;
        loop {
            match self.attempt(no, body).await {
                Ok(r) => return Ok(r),
                Err(miss) => {
                    if Instant::now() >= give_up {
                        bail!("no answer to request {} within {:?}", no.0, self.config.give_up);
                    }
                    self.retries += 1;
                    if let Miss::Pause = miss {
                        tokio::time::sleep(self.config.pause).await;
                    }
                }
            }
        }
    }

    /// Registers `name`, logs in, and remembers the login for reconnects.
    pub(crate) async fn register_and_login(&mut self, name: &str) -> anyhow::Result<()> {
        let name = BidderName::new(name).map_err(|e| anyhow!("{e}"))?;
        let r = self.call(&RequestBody::Register { name: name.clone() }).await?;
        let token = match r.result {
            Ok(Reply::Registered { token, .. }) => token,
            other => bail!("register {}: {other:?}", name.as_str()),
        };
        self.login = Some((name, token));
        // Log in on the current connection; later connections log in during `connect`.
        let (name, token) = self.login.clone().context("login")?;
        let r = self.call(&RequestBody::Login { name, token }).await?;
        r.result.map(drop).map_err(|e| anyhow!("login: {e:?}"))
    }

    async fn attempt(&mut self, no: RequestNo, body: &RequestBody) -> Result<Response, Miss> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let timeout = self.config.attempt_timeout;
        match tokio::time::timeout(timeout, self.exchange(no, body)).await {
            Ok(Ok(r)) => self.judge(r),
            Ok(Err(())) | Err(_) => Err(self.fail_over()),
        }
    }

    /// Sorts an answer: transient errors are retried with the same number.
    fn judge(&mut self, r: Response) -> Result<Response, Miss> {
        self.seen = self.seen.max(r.applied);
        match &r.result {
            // Outcome unknown or nothing done: the same number again, elsewhere.
            Err(ClientError::Unavailable { .. } | ClientError::Timeout) => {
                self.drop_connection();
                Err(Miss::Pause)
            }
            Err(ClientError::Overloaded | ClientError::Behind { .. }) => Err(Miss::Pause),
            _ => Ok(r),
        }
    }

    fn fail_over(&mut self) -> Miss {
        self.drop_connection();
        Miss::Failover
    }

    fn drop_connection(&mut self) {
        self.stream = None;
        self.buf.clear();
        self.current = (self.current + 1) % self.config.servers.len().max(1);
    }

    /// Connects to the current server, says `Hello` and logs in again if logged in.
    async fn connect(&mut self) -> Result<(), Miss> {
        let addr = *self.config.servers.get(self.current).ok_or(Miss::Pause)?;
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(self.config.attempt_timeout, connect).await {
            Ok(Ok(s)) => s,
            _ => return Err(self.fail_over()),
        };
        stream.set_nodelay(true).map_err(|_| self.fail_over())?;
        self.stream = Some(stream);
        self.buf.clear();
        let hello = RequestBody::Hello { client: self.id, seen: self.seen };
        let no = RequestNo(self.next);
        self.next += 1;
        let r = self.exchange_timed(no, &hello).await?;
        if let Err(e) = r.result {
            self.drop_connection();
            return Err(if matches!(e, ClientError::Behind { .. }) {
                Miss::Pause
            } else {
                Miss::Failover
            });
        }
        if let Some((name, token)) = self.login.clone() {
            let no = RequestNo(self.next);
            self.next += 1;
            let r = self.exchange_timed(no, &RequestBody::Login { name, token }).await?;
            if r.result.is_err() {
                self.drop_connection();
                return Err(Miss::Pause);
            }
        }
        Ok(())
    }

    async fn exchange_timed(
        &mut self,
        no: RequestNo,
        body: &RequestBody,
    ) -> Result<Response, Miss> {
        match tokio::time::timeout(self.config.attempt_timeout, self.exchange(no, body)).await {
            Ok(Ok(r)) => Ok(r),
            _ => Err(self.fail_over()),
        }
    }

    /// Writes one request and reads until the response with its number.
    async fn exchange(&mut self, no: RequestNo, body: &RequestBody) -> Result<Response, ()> {
        let stream = self.stream.as_mut().ok_or(())?;
        self.out.clear();
        // Encoding needs an owned request; bodies of bids hold no heap data, so the clone is
        // a copy of a few words.
        let msg = ClientToServer::Request(Request { no, body: body.clone() });
        self.codec.encode_into(&msg, &mut self.out).map_err(drop)?;
        stream.write_all(&self.out).await.map_err(drop)?;
        loop {
            match self.codec.decode_stream::<ServerToClient>(&self.buf) {
                Ok(Some((msg, used))) => {
                    self.buf.drain(..used);
                    if let ServerToClient::Response(r) = msg {
                        if r.no == no {
                            return Ok(r);
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(_) => return Err(()),
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            let n = stream.read_buf(&mut self.buf).await.map_err(drop)?;
            if n == 0 {
                return Err(());
            }
        }
    }
}
