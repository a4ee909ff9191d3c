//! `--local`: a 3-node cluster of real `auction-node` processes on loopback, started from the
//! binary next to the bench's own, with temporary data directories, the development key and
//! free ports. Every child is killed by its pid when the cluster is dropped (also on error
//! and Ctrl-C, which end `main` by dropping the run).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use auction_proto::Seq;
use auction_proto::msg::client::{NodeReport, Reply, RequestBody};
use tokio::time::Instant;

use crate::LeaderSignal;
use crate::client::{Client, ClientConfig};

/// How to start the servers.
#[derive(Clone, Debug)]
pub(crate) struct LocalConfig {
    /// The `auction-node` executable.
    pub(crate) exe: PathBuf,
    /// Keep data here instead of a temporary directory.
    pub(crate) data_dir: Option<PathBuf>,
    /// `--fsync always` (else `never`).
    pub(crate) fsync: bool,
    /// Extra arguments for every `auction-node run` (failure-detector timings, ...).
    pub(crate) node_args: Vec<String>,
}

/// One server process.
#[derive(Debug)]
pub(crate) struct Server {
    /// `n1`, `n2`, `n3`.
    pub(crate) name: String,
    peer: SocketAddr,
    /// Client address.
    pub(crate) client: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

/// A local cluster; its processes die with it.
#[derive(Debug)]
pub(crate) struct LocalCluster {
    config: LocalConfig,
    /// The servers.
    pub(crate) servers: Vec<Server>,
    discovery_port: u16,
    cluster: String,
    /// Servers killed and not yet reaped.
    killed: Vec<Child>,
    _temp: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Starts 3 servers (the first bootstraps, the others join) and waits until all report
    /// the same leader and 3 members.
    pub(crate) async fn start(config: LocalConfig) -> anyhow::Result<Self> {
        if !config.exe.exists() {
            bail!(
                "{} not found: build it first (cargo build --release -p auction-node), \
                 or pass --node-bin",
                config.exe.display()
            );
        }
        let (temp, root) = match &config.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new().prefix("auction-bench-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut servers = Vec::new();
        for i in 1..=3 {
            servers.push(Server {
                name: format!("n{i}"),
                peer: ([127, 0, 0, 1], free_port()?).into(),
                client: ([127, 0, 0, 1], free_port()?).into(),
                dir: root.join(format!("n{i}")),
                child: None,
            });
        }
        let cluster = format!("bench-{}-{}", std::process::id(), free_port()?);
        let discovery_port = free_port()?;
        let killed = Vec::new();
        let mut c = Self { config, servers, discovery_port, cluster, killed, _temp: temp };
        c.spawn(0)?;
        c.wait_until(Duration::from_secs(20), |r| r.first().is_some_and(|r| r.leader.is_some()))
            .await
            .context("the first server did not become leader")?;
        c.spawn(1)?;
        c.spawn(2)?;
        c.wait_until(Duration::from_secs(30), |r| {
            r.len() == 3
                && r.iter().all(|x| x.members.len() == 3 && x.leader.is_some() && x.ready)
                && r.iter().all(|x| x.leader == r[0].leader)
        })
        .await
        .context("the cluster did not form")?;
        Ok(c)
    }

    /// The client addresses of the live servers.
    pub(crate) fn client_addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.client).collect()
    }

    /// Starts (or restarts, with the same addresses and data) server `i`.
    pub(crate) fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let me = self.servers.get(i).context("no such server")?;
        let others: Vec<String> =
            self.servers.iter().filter(|s| s.peer != me.peer).map(|s| s.peer.to_string()).collect();
        // Appended to, so a restart keeps the first run's log.
        let open = || std::fs::OpenOptions::new().create(true).append(true).open(log_path(&me.dir));
        let log = open()
            .or_else(|_| {
                std::fs::create_dir_all(me.dir.parent().unwrap_or(Path::new("/tmp")))?;
                open()
            })
            .context("cannot create the server log")?;
        let mut cmd = Command::new(&self.config.exe);
        cmd.args(["run", "--name", &me.name, "--dev-key", "--no-broadcast"])
            .arg("--data-dir")
            .arg(&me.dir)
            .args(["--peer-addr", &me.peer.to_string(), "--client-addr", &me.client.to_string()])
            .args(["--discovery-port", &self.discovery_port.to_string()])
            .args(["--cluster", &self.cluster])
            .args(["--fsync", if self.config.fsync { "always" } else { "never" }])
            // Start-up only: the joiners become voters 1 s after catching up (10 s by
            // default), and the founder probes its peers for a running cluster for 500 ms.
            .args(["--promote-after", "1s", "--bootstrap-probe", "500ms"])
            // Every bench client connects from loopback: one address, so the per-address
            // cap (128 by default) would turn away runs with more clients per server.
            .args(["--max-clients-per-ip", "100000"])
            .args(&self.config.node_args)
            .env("RUST_LOG", std::env::var("BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if i == 0 && !me.dir.exists() {
            cmd.arg("--bootstrap");
        }
        cmd.args(["--join", &others.join(",")]);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", me.name))?;
        if let Some(s) = self.servers.get_mut(i) {
            s.child = Some(child);
        }
        Ok(())
    }

    /// `kill -9` of server `i` (by pid), for clean-up: an error is ignored. It is reaped
    /// later (`Drop`, or the next kill), so the caller's thread, which runs every client, does
    /// not stop to wait for it.
    pub(crate) fn kill(&mut self, i: usize) {
        self.reap();
        if let Some(mut child) = self.servers.get_mut(i).and_then(|s| s.child.take()) {
            let _ = child.kill();
            self.killed.push(child);
        }
    }

    /// Sends `how` to server `i` (by pid), for a measured leader stop; reaped later, as after
    /// [`Self::kill`]. From then on the cluster is not [whole](Self::is_whole).
    pub(crate) fn stop(&mut self, i: usize, how: LeaderSignal) -> anyhow::Result<()> {
        self.reap();
        let s = self.servers.get_mut(i).context("no such server")?;
        let child = s.child.take().with_context(|| format!("{} is not running", s.name))?;
        let sent = signal(child.id(), how);
        self.killed.push(child);
        sent
    }

    /// Whether every server is still the one this cluster started (none was stopped).
    pub(crate) fn is_whole(&self) -> bool {
        self.servers.iter().all(|s| s.child.is_some())
    }

    /// Waits for the servers stopped so far; one sent SIGTERM that is still handing its
    /// leadership over is killed first.
    fn reap(&mut self) {
        for mut child in self.killed.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The pids of the running servers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.as_ref().map(Child::id)).collect()
    }

    /// The report of every server that answers, by index.
    pub(crate) async fn reports(&self) -> Vec<(usize, NodeReport)> {
        let mut out = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            if s.child.is_none() {
                continue;
            }
            if let Some(r) = report(s.client).await {
                out.push((i, r));
            }
        }
        out
    }

    /// The index of the server that says it leads.
    pub(crate) async fn leader(&self) -> Option<usize> {
        self.reports().await.into_iter().find(|(_, r)| r.leader == Some(r.node)).map(|(i, _)| i)
    }

    async fn wait_until(
        &mut self,
        limit: Duration,
        cond: impl Fn(&[NodeReport]) -> bool,
    ) -> anyhow::Result<()> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            self.check_alive()?;
            let reports: Vec<NodeReport> = self.reports().await.into_iter().map(|x| x.1).collect();
            if cond(&reports) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(anyhow!("not reached within {limit:?}"))
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        for s in &mut self.servers {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let log = std::fs::read_to_string(log_path(&s.dir)).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    bail!("server {} exited ({status}); its log ends:\n{}", s.name, {
                        let mut t = tail;
                        t.reverse();
                        t.join("\n")
                    });
                }
            }
        }
        Ok(())
    }

    /// Kills every server, restarts them on their data, and measures, per server, the time
    /// from its restart until it answers `Hello` at the applied seq it had before the kill.
    pub(crate) async fn restart_all(&mut self, limit: Duration) -> anyhow::Result<Vec<Duration>> {
        let before: Vec<Seq> = {
            let mut v = vec![Seq(0); self.servers.len()];
            for (i, r) in self.reports().await {
                v[i] = r.applied;
            }
            v
        };
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        // Gone before their data directories and ports are used again.
        self.reap();
        let started = Instant::now();
        for i in 0..self.servers.len() {
            self.spawn(i)?;
        }
        let mut times = Vec::new();
        for (s, seen) in self.servers.iter().zip(before) {
            times.push(serves_at(s.client, seen, started, started + limit).await?);
        }
        Ok(times)
    }
}

/// Polls `Hello { seen }` at `addr` until it is welcomed; the time since `started`.
async fn serves_at(
    addr: SocketAddr,
    seen: Seq,
    started: Instant,
    end: Instant,
) -> anyhow::Result<Duration> {
    while Instant::now() < end {
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr))
                .await
        {
            if hello_at(&mut stream, seen).await {
                return Ok(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("{addr} did not serve seq {} within the limit", seen.0)
}

async fn hello_at(stream: &mut tokio::net::TcpStream, seen: Seq) -> bool {
    use auction_proto::msg::client::{ClientToServer, Request, ServerToClient};
    use auction_proto::{ClientCodec, ClientId, RequestNo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let codec = ClientCodec::default();
    let req = ClientToServer::Request(Request {
        no: RequestNo(1),
        body: RequestBody::Hello { client: ClientId::random(), seen },
    });
    let Ok(bytes) = codec.encode(&req) else { return false };
    if stream.write_all(&bytes).await.is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if let Ok(Some((ServerToClient::Response(r), _))) =
                codec.decode_stream::<ServerToClient>(&buf)
            {
                return r.result.is_ok();
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_millis(500), read).await.unwrap_or(false)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        self.reap();
    }
}

/// One server's report over a fresh session, if it answers within a second.
pub(crate) async fn report(addr: SocketAddr) -> Option<NodeReport> {
    let mut c = Client::new(ClientConfig {
        servers: vec![addr],
        first: 0,
        attempt_timeout: Duration::from_millis(500),
        give_up: Duration::from_secs(1),
        pause: Duration::from_millis(20),
    });
    match tokio::time::timeout(Duration::from_secs(2), c.call(&RequestBody::Report)).await {
        Ok(Ok(r)) => match r.result {
            Ok(Reply::Report(r)) => Some(r),
            _ => None,
        },
        _ => None,
    }
}

/// Sends `how` to `pid`: a server this bench started, or an etcd member the caller checked
/// is one (never a pid that names a process group or every process).
pub(crate) fn signal(pid: u32, how: LeaderSignal) -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let raw = i32::try_from(pid).ok().filter(|p| *p > 0).context("not a process id")?;
    let sig = match how {
        LeaderSignal::Kill => Signal::SIGKILL,
        LeaderSignal::Term => Signal::SIGTERM,
    };
    kill(Pid::from_raw(raw), sig).with_context(|| format!("cannot send {sig} to pid {pid}"))
}

/// Resident set size of `pid` in KiB, from `/proc/<pid>/status`.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn log_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

/// A port free for both TCP and UDP on 127.0.0.1, never handed out twice by this process (the
/// OS may offer a port again once the probing socket is closed).
fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    bail!("no free port")
}
