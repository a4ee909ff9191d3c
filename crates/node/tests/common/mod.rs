//! A harness for tests with real `auction-node` processes on loopback, and a small blocking
//! client that speaks the client protocol.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auction_proto::msg::auction::{AuctionSpec, BidderName, IncrementRule, Outcome};
use auction_proto::msg::client::{
    ClientError, ClientToServer, NodeReport, PushEvent, Reply, Request, RequestBody, Response,
    ServerToClient,
};
use auction_proto::{Amount, ClientCodec, ClientId, RequestNo, Seq};

/// The key every test cluster uses.
pub const KEY: &str = "integration-test-cluster-key-0123456789";

/// One server process.
pub struct TestNode {
    pub name: String,
    pub peer: SocketAddr,
    pub client: SocketAddr,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub bootstrap: bool,
    pub join: Option<SocketAddr>,
    /// Where the process's stderr goes (inherited if `None`).
    pub stderr: Option<PathBuf>,
}

/// A cluster of real processes; killed on drop.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<TestNode>,
    pub cluster: String,
    pub discovery_port: u16,
    /// Every server's `--promote-after`.
    pub promote_after: &'static str,
}

/// A port free for both TCP and UDP on 127.0.0.1, never handed out twice by this process
/// (the OS may offer a port again once the probing socket is closed, and two servers given
/// the same port would fail to start).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl TestCluster {
    /// Starts `n` servers (the first bootstraps, the others join it) and waits until every
    /// server reports `n` members and a leader.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, "300ms")
    }

    /// As [`TestCluster::start`], with the leader's `--promote-after`.
    pub fn start_with(n: usize, promote_after: &'static str) -> Self {
        Self::start_opts(n, promote_after, false)
    }

    /// As [`TestCluster::start`], every server's stderr (at INFO) captured in
    /// `dir/<name>.stderr`.
    pub fn start_captured(n: usize) -> Self {
        Self::start_opts(n, "300ms", true)
    }

    fn start_opts(n: usize, promote_after: &'static str, capture: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cluster = format!("test-{}-{}", std::process::id(), free_port());
        let discovery_port = free_port();
        let mut nodes = Vec::new();
        for i in 0..n {
            let peer: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let client: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let join =
                if i == 0 { None } else { Some(nodes.first().map(|f: &TestNode| f.peer).unwrap()) };
            nodes.push(TestNode {
                name: format!("n{}", i + 1),
                peer,
                client,
                dir: dir.path().join(format!("n{}", i + 1)),
                child: None,
                bootstrap: i == 0,
                join,
                stderr: capture.then(|| dir.path().join(format!("n{}.stderr", i + 1))),
            });
        }
        let mut c = Self { dir, nodes, cluster, discovery_port, promote_after };
        for i in 0..n {
            c.spawn(i);
            if i == 0 {
                c.wait_for(Duration::from_secs(20), |c| {
                    c.report(0).is_some_and(|r| r.leader.is_some())
                });
            }
        }
        c.wait_for(Duration::from_secs(30), |c| c.converged(n));
        c
    }

    /// Starts server `i`'s process.
    pub fn spawn(&mut self, i: usize) {
        let exe = env!("CARGO_BIN_EXE_auction-node");
        let node = &self.nodes[i];
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--name", &node.name])
            .arg("--data-dir")
            .arg(&node.dir)
            .args([
                "--peer-addr",
                &node.peer.to_string(),
                "--client-addr",
                &node.client.to_string(),
            ])
            .args(["--discovery-port", &self.discovery_port.to_string(), "--no-broadcast"])
            .args(["--cluster", &self.cluster, "--cluster-key", KEY])
            .args([
                "--probe-interval",
                "200ms",
                "--suspect-after",
                "600ms",
                "--down-after",
                "600ms",
            ])
            .args(["--election-timeout", "300ms", "--promote-after", self.promote_after])
            .env("RUST_LOG", std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null());
        if node.bootstrap && !node.dir.exists() {
            // On an empty directory the founder first probes its --join list for a running
            // instance (nobody answers on the first start).
            cmd.args(["--bootstrap", "--bootstrap-probe", "500ms"]);
        }
        // Everyone knows everyone's address, as an operator's --join list would.
        let peers: Vec<String> =
            self.nodes.iter().filter(|n| n.peer != node.peer).map(|n| n.peer.to_string()).collect();
        if !peers.is_empty() {
            cmd.args(["--join", &peers.join(",")]);
        }
        if let Some(path) = &self.nodes[i].stderr {
            // Captured output is read by the test: INFO, whatever TEST_NODE_LOG says.
            cmd.stderr(std::fs::File::create(path).unwrap()).env("RUST_LOG", "info");
        }
        self.nodes[i].child = Some(cmd.spawn().unwrap());
    }

    /// Adds a server that joins the cluster (not started).
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(TestNode {
            name: format!("n{}", i + 1),
            peer: ([127, 0, 0, 1], free_port()).into(),
            client: ([127, 0, 0, 1], free_port()).into(),
            dir: self.dir.path().join(format!("n{}", i + 1)),
            child: None,
            bootstrap: false,
            join: self.nodes.first().map(|f| f.peer),
            stderr: None,
        });
        i
    }

    /// SIGTERM to server `i` (a graceful stop).
    pub fn terminate(&mut self, i: usize) {
        if let Some(child) = self.nodes[i].child.as_ref() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
    }

    /// Server `i`'s exit status once it has exited by itself within `limit` (`None` if it
    /// still runs then).
    pub fn wait_exit(&mut self, i: usize, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.nodes[i].child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `kill -9` of server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether server `i`'s process is still running.
    pub fn running(&mut self, i: usize) -> bool {
        self.nodes[i].child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Server `i`'s report, if it answers.
    pub fn report(&self, i: usize) -> Option<NodeReport> {
        let mut c = Client::connect(self.nodes[i].client).ok()?;
        match c.request(RequestBody::Report).ok()?.result {
            Ok(Reply::Report(r)) => Some(r),
            _ => None,
        }
    }

    /// The index of the server that leads, per a majority of reports.
    pub fn leader(&self) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if let Some(r) = self.report(i) {
                if r.leader == Some(r.node) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Every live server knows `n` members and the same leader.
    pub fn converged(&self, n: usize) -> bool {
        let reports: Vec<_> = (0..self.nodes.len()).filter_map(|i| self.report(i)).collect();
        reports.len() == self.nodes.iter().filter(|x| x.child.is_some()).count()
            && !reports.is_empty()
            && reports.iter().all(|r| {
                r.members.len() == n
                    && r.leader.is_some()
                    && r.leader == reports[0].leader
                    && r.ready
            })
    }

    /// Polls `cond` until it holds or `limit` passes (then panics with `what`).
    pub fn wait_for(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let reports: Vec<_> = (0..self.nodes.len()).map(|i| self.report(i)).collect();
        panic!("condition not reached within {limit:?}; reports: {reports:#?}");
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A blocking client for tests.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pub id: ClientId,
    next: u64,
    pub seen: Seq,
    pub events: Vec<PushEvent>,
    /// The token of the last bidder registered through this client.
    pub last_token: Option<String>,
}

impl Client {
    /// Connects and says hello with a fresh client id.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        Self::connect_as(addr, ClientId::random(), Seq(0))
    }

    /// Connects and says hello as `id`, having seen `seen`.
    pub fn connect_as(addr: SocketAddr, id: ClientId, seen: Seq) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        let mut c = Self {
            stream,
            buf: Vec::new(),
            id,
            next: 1,
            seen,
            events: Vec::new(),
            last_token: None,
        };
        let r = c.request(RequestBody::Hello { client: id, seen })?;
        if r.result.is_err() {
            return Err(std::io::Error::other(format!("hello refused: {:?}", r.result)));
        }
        Ok(c)
    }

    /// Sends a request with the next number and waits for its response.
    pub fn request(&mut self, body: RequestBody) -> std::io::Result<Response> {
        let no = RequestNo(self.next);
        self.next += 1;
        self.send(no, body)
    }

    /// Sends a request with a chosen number (a retry) and waits for its response.
    pub fn send(&mut self, no: RequestNo, body: RequestBody) -> std::io::Result<Response> {
        let codec = ClientCodec::default();
        let bytes = codec
            .encode(&ClientToServer::Request(Request { no, body }))
            .map_err(std::io::Error::other)?;
        self.stream.write_all(&bytes)?;
        loop {
            match self.read()? {
                ServerToClient::Response(r) if r.no == no => {
                    self.seen = self.seen.max(r.applied);
                    return Ok(r);
                }
                ServerToClient::Event(e) => self.events.push(e),
                _ => {}
            }
        }
    }

    /// Reads one message.
    pub fn read(&mut self) -> std::io::Result<ServerToClient> {
        let codec = ClientCodec::default();
        let mut chunk = [0u8; 16384];
        loop {
            if let Some((msg, used)) =
                codec.decode_stream::<ServerToClient>(&self.buf).map_err(std::io::Error::other)?
            {
                self.buf.drain(..used);
                return Ok(msg);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes raw bytes (for junk tests).
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Registers `name` and logs in; returns the token.
    pub fn register_and_login(&mut self, name: &str) -> String {
        let name = BidderName::new(name).unwrap();
        let token = match self.retry(RequestBody::Register { name: name.clone() }).result {
            Ok(Reply::Registered { token, .. }) => token,
            other => panic!("register {name}: {other:?}"),
        };
        let r = self.request(RequestBody::Login { name, token: token.clone() }).unwrap();
        assert!(r.result.is_ok(), "login: {:?}", r.result);
        self.last_token = Some(token.clone());
        token
    }

    /// Sends a write, retrying with the same number while the cluster is unavailable.
    pub fn retry(&mut self, body: RequestBody) -> Response {
        let no = RequestNo(self.next);
        self.next += 1;
        let start = Instant::now();
        loop {
            let r = self.send(no, body.clone()).unwrap();
            match &r.result {
                Err(
                    ClientError::Unavailable { .. }
                    | ClientError::Timeout
                    | ClientError::Overloaded,
                ) if start.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => return r,
            }
        }
    }
}

/// The history of `auction` at `addr` if that server answers and has applied `seq`.
pub fn history_if_applied(
    addr: SocketAddr,
    auction: auction_proto::AuctionId,
    seq: Seq,
) -> Option<Vec<auction_proto::msg::auction::BidRecord>> {
    let mut c = Client::connect(addr).ok()?;
    let r = c.request(RequestBody::History { auction }).ok()?;
    match r.result {
        Ok(Reply::History(h)) if r.applied >= seq => Some(h),
        _ => None,
    }
}

/// Opens a 30-minute auction (retrying while unavailable) and returns its id.
pub fn open_auction(c: &mut Client, title: &str) -> auction_proto::AuctionId {
    match outcome(&c.retry(RequestBody::Open { spec: spec(title, 30) })) {
        Outcome::Opened { auction, .. } => auction,
        o => panic!("open: {o:?}"),
    }
}

/// A plain bid of `minor` cents (retrying while unavailable); its outcome.
pub fn bid(c: &mut Client, auction: auction_proto::AuctionId, minor: u64) -> Outcome {
    let body = RequestBody::Bid { auction, amount: Amount::from_minor(minor), expected: None };
    outcome(&c.retry(body))
}

/// A simple auction specification.
pub fn spec(title: &str, minutes: u64) -> AuctionSpec {
    AuctionSpec {
        title: title.into(),
        description: "test".into(),
        starting_price: Amount::from_minor(1000),
        reserve: None,
        increment: IncrementRule::Fixed(Amount::from_minor(100)),
        duration: Duration::from_secs(minutes * 60),
        soft_close: None,
        buy_now: None,
    }
}

/// The outcome of a write response, or a panic.
pub fn outcome(r: &Response) -> Outcome {
    match &r.result {
        Ok(Reply::Outcome(o)) => o.clone(),
        other => panic!("expected an outcome, got {other:?}"),
    }
}
