//! A client session: one `ClientId`, increasing request numbers, the newest applied seq seen,
//! and failover.
//!
//! [`Session::request`] gives a request its number once and sends that same request until it
//! gets an answer: when the connection breaks or the client-side timeout passes, or the server
//! says `Timeout` (outcome unknown), the session reconnects — to the least-loaded live server it
//! knows of, the failed one last — says `Hello` with the same client id, logs in again,
//! subscribes again, and re-sends the request with the same number. The servers' exactly-once
//! table makes the retry return the first outcome instead of applying twice.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use auction_proto::msg::auction::BidderName;
use auction_proto::msg::client::{
    AdminOp, ClientError, ClientToServer, PushEvent, Reply, Request, RequestBody, ServerInfo,
};
use auction_proto::{
    AuctionId, ClientCodec, ClientId, EncodeError, NodeId, RequestNo, Seq, Timestamp,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conn::{Conn, Lost};
use crate::discovery::{DiscoveryConfig, by_preference, find_servers};

/// How a session connects and retries.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Servers given on the command line, tried first (in order).
    pub servers: Vec<SocketAddr>,
    /// Broadcast discovery, used when no server was given or none of the known ones answers.
    pub discovery: Option<DiscoveryConfig>,
    /// Connect timeout per server.
    pub connect_timeout: Duration,
    /// How long to wait for one answer before trying another server.
    pub request_timeout: Duration,
    /// Attempts per request (each connection loss, timeout or `Unavailable` is one).
    pub attempts: u32,
    /// Rounds over all known servers before giving up on connecting.
    pub connect_rounds: u32,
    /// Upper bound on one wait before a retry.
    pub max_backoff: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            discovery: Some(DiscoveryConfig::default()),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            attempts: 8,
            connect_rounds: 3,
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The applied seq of the state the answer reflects.
    pub applied: Seq,
    /// The reply.
    pub reply: Reply,
}

/// Why a request has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No server could be reached (or every one was behind). The request may have been applied
    /// if a connection broke after sending it.
    #[error("cannot reach any server (tried {tried})")]
    NoServer {
        /// Addresses tried.
        tried: usize,
    },
    /// The cluster has no majority or no leader; nothing changed.
    #[error("the cluster is unavailable (no majority or no leader); try again later")]
    Unavailable,
    /// The server refused the request; nothing changed.
    #[error("{0}")]
    Server(ClientErrorText),
    /// The outcome stayed unknown after every attempt.
    #[error("no answer after {attempts} attempts; the request may or may not have been applied")]
    Unknown {
        /// Attempts made.
        attempts: u32,
    },
    /// The request does not fit in a client frame; nothing was sent.
    #[error("the request is too large ({len} bytes; the limit is {max})")]
    TooLarge {
        /// Its encoded size.
        len: usize,
        /// The frame limit.
        max: usize,
    },
    /// `admin` named a server the session does not know.
    #[error("unknown server {0:?} (give its address, or a node id from `servers`)")]
    UnknownServer(String),
}

/// A [`ClientError`] with a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientErrorText(pub ClientError);

impl std::fmt::Display for ClientErrorText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match &self.0 {
            ClientError::Unavailable { .. } => "the cluster is unavailable",
            ClientError::Overloaded => "the server is overloaded",
            ClientError::NotLoggedIn => "log in first (`login NAME` or `register NAME`)",
            ClientError::BadCredentials => "unknown name or wrong token",
            ClientError::NotAuthorized => "wrong admin token (--admin-token / AUCTION_ADMIN_TOKEN)",
            ClientError::UnknownAuction => "no such auction",
            ClientError::Behind { .. } => "the server is behind what this client has seen",
            ClientError::HelloFirst => "protocol error: the server wanted Hello first",
            ClientError::BadRequest => "the server did not understand the request",
            ClientError::Timeout => "the server timed out; the outcome is unknown",
            ClientError::NotLeader { .. } => "only the leader can do that (see `servers`)",
            ClientError::TooLarge => "the answer is too large for one frame; ask for less",
            ClientError::AdminRefused { reason } => return write!(f, "refused: {reason}"),
        };
        f.write_str(text)
    }
}

/// The client's session state; see the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    client: ClientId,
    next_no: RequestNo,
    seen: Seq,
    known: Vec<ServerInfo>,
    conn: Option<Conn>,
    server: Option<NodeId>,
    clock: Option<(Timestamp, Instant)>,
    login: Option<(BidderName, String)>,
    watching: Option<Option<AuctionId>>,
    events: mpsc::UnboundedSender<PushEvent>,
}

impl Session {
    /// A session with a fresh random client id; pushed events go to `events`.
    pub fn new(config: SessionConfig, events: mpsc::UnboundedSender<PushEvent>) -> Self {
        Self {
            config,
            client: ClientId::random(),
            next_no: RequestNo(1),
            seen: Seq::ZERO,
            known: Vec::new(),
            conn: None,
            server: None,
            clock: None,
            login: None,
            watching: None,
            events,
        }
    }

    /// This session's client id.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The highest applied seq seen in any answer.
    pub fn seen(&self) -> Seq {
        self.seen
    }

    /// The connected server, if any.
    pub fn server(&self) -> Option<(NodeId, SocketAddr)> {
        Some((self.server?, self.conn.as_ref()?.addr()))
    }

    /// The servers the last `Welcome` or `find` listed.
    pub fn known_servers(&self) -> &[ServerInfo] {
        &self.known
    }

    /// The bidder this session logs in as.
    pub fn login_name(&self) -> Option<&BidderName> {
        self.login.as_ref().map(|(n, _)| n)
    }

    /// The server's clock now: its `Welcome` time plus the time elapsed here since.
    pub fn server_now(&self) -> Option<Timestamp> {
        let (at, here) = self.clock?;
        Some(at.saturating_add(here.elapsed()))
    }

    /// Moves the server clock forward to an event's time.
    pub fn observe_time(&mut self, at: Timestamp) {
        if self.server_now().is_none_or(|now| at > now) {
            self.clock = Some((at, Instant::now()));
        }
    }

    /// Closes the connection; the next request connects again.
    pub fn disconnect(&mut self) {
        self.conn = None;
        self.server = None;
    }

    /// Connects now (if not connected) instead of at the first request.
    pub async fn connect(&mut self) -> Result<(), SessionError> {
        self.ensure_connected().await
    }

    /// Broadcasts for servers, remembers them, and returns them.
    pub async fn find(&mut self) -> Result<Vec<ServerInfo>, SessionError> {
        let config = self.config.discovery.clone().unwrap_or_default();
        let found = find_servers(&config).await.map_err(|_| SessionError::NoServer { tried: 0 })?;
        for info in &found {
            self.known.retain(|k| k.node != info.node);
            self.known.push(info.clone());
        }
        Ok(found)
    }

    /// Sends one request until it is answered; see the module docs.
    pub async fn request(&mut self, body: RequestBody) -> Result<Answer, SessionError> {
        let probe = ClientToServer::Request(Request { no: self.next_no, body: body.clone() });
        if let Err(EncodeError::Oversize { len, max }) = ClientCodec::default().encode(&probe) {
            return Err(SessionError::TooLarge { len, max });
        }
        // The number is taken once connected, so that it follows the Hello's on the wire.
        let mut body = Some(body);
        let mut pending: Option<Request> = None;
        let mut attempts = 0;
        let mut unavailable = false;
        let mut backoff = Duration::from_millis(50);
        while attempts < self.config.attempts {
            attempts += 1;
            self.ensure_connected().await?;
            if let Some(body) = body.take() {
                pending = Some(Request { no: self.take_no(), body });
            }
            let (Some(req), Some(conn)) = (&pending, self.conn.as_mut()) else { continue };
            let resp = match conn.call(req, self.config.request_timeout).await {
                Ok(resp) => resp,
                Err(Lost::Closed | Lost::TimedOut) => {
                    self.fail_current();
                    continue;
                }
            };
            self.seen = self.seen.max(resp.applied);
            match resp.result {
                Ok(reply) => {
                    self.remember(&req.body, &reply);
                    return Ok(Answer { applied: resp.applied, reply });
                }
                Err(ClientError::Unavailable { retry_after, .. }) => {
                    unavailable = true;
                    tokio::time::sleep(retry_after.clamp(backoff, self.config.max_backoff)).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    // Every other attempt, ask another server: this one may be cut off.
                    if attempts % 2 == 0 {
                        self.fail_current();
                    }
                }
                Err(ClientError::Timeout) => unavailable = false,
                Err(ClientError::Overloaded | ClientError::Behind { .. }) => self.fail_current(),
                Err(ClientError::HelloFirst) => self.disconnect(),
                Err(e) => return Err(SessionError::Server(ClientErrorText(e))),
            }
        }
        Err(if unavailable {
            SessionError::Unavailable
        } else {
            SessionError::Unknown { attempts }
        })
    }

    /// Runs an admin operation on one server, over a connection of its own.
    pub async fn admin(
        &mut self,
        server: &str,
        token: String,
        op: AdminOp,
    ) -> Result<Answer, SessionError> {
        let addr = self.resolve(server).await?;
        let unknown = || SessionError::NoServer { tried: 1 };
        let mut conn = Conn::connect(addr, self.config.connect_timeout, self.events.clone())
            .await
            .map_err(|_| unknown())?;
        let timeout = self.config.request_timeout;
        // `seen: 0`: an admin may want to look at a server that is behind.
        let hello = Request {
            no: self.take_no(),
            body: RequestBody::Hello { client: self.client, seen: Seq::ZERO },
        };
        let resp = conn.call(&hello, timeout).await.map_err(|_| unknown())?;
        resp.result.map_err(|e| SessionError::Server(ClientErrorText(e)))?;
        let req = Request { no: self.take_no(), body: RequestBody::Admin { token, op } };
        let resp =
            conn.call(&req, timeout).await.map_err(|_| SessionError::Unknown { attempts: 1 })?;
        match resp.result {
            Ok(reply) => Ok(Answer { applied: resp.applied, reply }),
            Err(e) => Err(SessionError::Server(ClientErrorText(e))),
        }
    }

    /// Runs a membership operation (which only the leader carries out) at `server`, and
    /// once more at the leader it names if `server` is not the leader.
    pub async fn admin_at_leader(
        &mut self,
        server: &str,
        token: String,
        op: AdminOp,
    ) -> Result<Answer, SessionError> {
        match self.admin(server, token.clone(), op).await {
            Err(SessionError::Server(ClientErrorText(ClientError::NotLeader {
                leader: Some(leader),
            }))) => {
                let leader = leader.0.simple().to_string();
                self.admin(&leader, token, op).await
            }
            other => other,
        }
    }

    /// The client address of the server this session uses, connecting first if need be.
    pub async fn current_server(&mut self) -> Result<SocketAddr, SessionError> {
        self.ensure_connected().await?;
        match self.server() {
            Some((_, addr)) => Ok(addr),
            None => Err(SessionError::NoServer { tried: 0 }),
        }
    }

    /// The node id a full id or an unambiguous prefix names, among the servers known.
    pub async fn resolve_node(
        &mut self,
        server: &str,
    ) -> Result<auction_proto::NodeId, SessionError> {
        if let Ok(node) = server.parse::<auction_proto::NodeId>() {
            return Ok(node);
        }
        self.find_server(server).await.map(|s| s.node)
    }

    async fn resolve(&mut self, server: &str) -> Result<SocketAddr, SessionError> {
        if let Ok(addr) = server.parse::<SocketAddr>() {
            return Ok(addr);
        }
        self.find_server(server).await.map(|s| s.client_addr)
    }

    async fn find_server(&mut self, server: &str) -> Result<ServerInfo, SessionError> {
        if self.known.is_empty() {
            self.ensure_connected().await?;
        }
        let wanted = server.to_ascii_lowercase().replace('-', "");
        let matches: Vec<&ServerInfo> = self
            .known
            .iter()
            .filter(|s| !wanted.is_empty() && s.node.0.simple().to_string().starts_with(&wanted))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(SessionError::UnknownServer(server.to_string())),
        }
    }

    fn take_no(&mut self) -> RequestNo {
        let no = self.next_no;
        self.next_no = no.next();
        no
    }

    fn remember(&mut self, body: &RequestBody, reply: &Reply) {
        match (body, reply) {
            (RequestBody::Login { name, token }, Reply::Identity { name: Some(n) })
                if n == name =>
            {
                self.login = Some((name.clone(), token.clone()));
            }
            (RequestBody::Subscribe { auction }, Reply::Subscribed) => {
                self.watching = Some(*auction);
            }
            (RequestBody::Unsubscribe, Reply::Subscribed) => self.watching = None,
            (_, Reply::Servers(servers)) if !servers.is_empty() => self.known.clone_from(servers),
            _ => {}
        }
    }

    /// Drops the connection after a failure, and moves its server to the end of the list.
    fn fail_current(&mut self) {
        if let Some(conn) = self.conn.take() {
            let addr = conn.addr();
            if let Some(i) = self.known.iter().position(|s| s.client_addr == addr) {
                let failed = self.known.remove(i);
                self.known.push(failed);
            }
            self.config.servers.retain(|a| *a != addr);
            self.config.servers.push(addr);
        }
        self.server = None;
    }

    /// The addresses to try, best first.
    fn candidates(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let known = by_preference(&self.known);
        // Servers given explicitly come first until a Welcome lists the cluster; after that
        // the least-loaded live server is preferred.
        let explicit = self.config.servers.iter().copied();
        let listed = known.iter().map(|s| s.client_addr);
        if self.known.is_empty() {
            out.extend(explicit);
        } else {
            let failed_last = self.config.servers.last().copied();
            out.extend(listed.filter(|a| Some(*a) != failed_last));
            out.extend(explicit);
            out.extend(failed_last);
        }
        let mut seen = HashSet::new();
        out.retain(|a| seen.insert(*a));
        out
    }

    async fn ensure_connected(&mut self) -> Result<(), SessionError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut tried = HashSet::new();
        for round in 0..self.config.connect_rounds {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(round))).await;
            }
            let mut candidates = self.candidates();
            let rediscover = candidates.is_empty() || (round > 0 && self.config.servers.is_empty());
            if rediscover && self.config.discovery.is_some() {
                let found = self.find().await.unwrap_or_default();
                candidates.extend(by_preference(&found).iter().map(|s| s.client_addr));
            }
            for addr in candidates {
                tried.insert(addr);
                if self.try_connect(addr).await {
                    return Ok(());
                }
            }
        }
        Err(SessionError::NoServer { tried: tried.len() })
    }

    /// Connects, says Hello, logs in and subscribes again; `false` if this server won't do.
    async fn try_connect(&mut self, addr: SocketAddr) -> bool {
        let timeout = self.config.request_timeout;
        let Ok(mut conn) =
            Conn::connect(addr, self.config.connect_timeout, self.events.clone()).await
        else {
            return false;
        };
        let hello = Request {
            no: self.take_no(),
            body: RequestBody::Hello { client: self.client, seen: self.seen },
        };
        let Ok(resp) = conn.call(&hello, timeout).await else { return false };
        let Ok(Reply::Welcome { server, servers, now }) = resp.result else { return false };
        self.seen = self.seen.max(resp.applied);
        self.server = Some(server);
        if !servers.is_empty() {
            self.known = servers;
        }
        self.clock = Some((now, Instant::now()));
        if let Some((name, token)) = self.login.clone() {
            let login = Request { no: self.take_no(), body: RequestBody::Login { name, token } };
            match conn.call(&login, timeout).await {
                Ok(r) if r.result.is_ok() => {}
                Ok(_) => self.login = None,
                Err(_) => return false,
            }
        }
        if let Some(auction) = self.watching {
            let sub = Request { no: self.take_no(), body: RequestBody::Subscribe { auction } };
            if conn.call(&sub, timeout).await.is_err() {
                return false;
            }
        }
        self.conn = Some(conn);
        true
    }
}
