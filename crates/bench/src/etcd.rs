//! The comparison backend: the same clients, auctions and window against a 3-member etcd
//! cluster (scripts/etcd-cluster.sh). An auction is one key holding the high bid as 20 zero-
//! padded decimal digits (so etcd's byte-wise comparison is numeric); a bid is one transaction
//! "if the stored high is below the amount, put it, else read it" — a single round trip that,
//! like our `TooLow { minimum }`, tells a losing bidder the price to beat.
//!
//! [`Members`] stops etcd's leader for a failover run, by the pid the script recorded, and
//! restarts it with the script afterwards.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::LeaderSignal;
use crate::load::{ATTEMPT_TIMEOUT, ClientsDone, INCREMENT, Shape, SplitMix};
use crate::stats::{Recorder, Window};

fn value(amount: u64) -> String {
    format!("{amount:020}")
}

/// Runs the workload against etcd at `endpoints`; `on_window` gets the measured window as
/// soon as it is fixed (as [`crate::load::run`]'s does).
pub(crate) async fn run(
    endpoints: &[String],
    tag: &str,
    shape: &Shape,
    on_window: impl FnOnce(Window),
) -> anyhow::Result<ClientsDone> {
    // A request gets the same time as one attempt of our client before it is re-sent. It
    // matters after a leader crash: etcd 3.4 loses a proposal a follower had forwarded to
    // the dead leader and never fails it on the leader change (the server would wait 7 s),
    // so only the client's timeout ends that request.
    let options = || {
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(ATTEMPT_TIMEOUT)
    };
    let mut setup = Client::connect(endpoints, Some(options()))
        .await
        .context("cannot connect to etcd (scripts/etcd-cluster.sh start DIR)")?;
    let keys: Vec<String> = (0..shape.auctions).map(|k| format!("bench/{tag}/{k}")).collect();
    for k in &keys {
        setup.put(k.as_str(), value(1_000), None).await.context("etcd put")?;
    }
    // Every client has its own etcd-client (its own HTTP/2 channels), as our clients have
    // their own TCP connection. etcd-client balances each client's requests over all the
    // endpoints it is given, so the rotation below only changes their order.
    let mut clients = Vec::with_capacity(shape.clients);
    for i in 0..shape.clients {
        let mut eps = endpoints.to_vec();
        eps.rotate_left(i % endpoints.len().max(1));
        clients.push(Client::connect(eps, Some(options())).await.context("etcd connect")?);
    }
    let window = Window::after(shape.warmup, shape.duration);
    on_window(window);
    let mut running = JoinSet::new();
    for (i, c) in clients.into_iter().enumerate() {
        running.spawn(bidder(c, keys.clone(), window, i as u64));
    }
    ClientsDone::collect(running, window).await
}

async fn bidder(
    mut c: Client,
    keys: Vec<String>,
    window: Window,
    seed: u64,
) -> anyhow::Result<(Recorder, u64)> {
    let mut rec = Recorder::new(window);
    let mut rng = SplitMix(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    let mut next = vec![1_000 + INCREMENT; keys.len()];
    let mut retries = 0;
    while Instant::now() < window.end {
        let k = (rng.next() % keys.len() as u64) as usize;
        let amount = next[k] + INCREMENT * (rng.next() % 4);
        let key = keys[k].as_str();
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Less, value(amount))])
            .and_then([TxnOp::put(key, value(amount), None)])
            .or_else([TxnOp::get(key, None)]);
        let sent = Instant::now();
        let resp = loop {
            match tokio::time::timeout_at(window.end, c.txn(txn.clone())).await {
                Err(_) => return Ok((rec, retries)),
                Ok(Ok(r)) => break r,
                Ok(Err(e)) if transient(&e) => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Err(e)) => return Err(e).context("etcd transaction"),
            }
        };
        let done = Instant::now();
        if resp.succeeded() {
            next[k] = amount + INCREMENT;
        } else if let Some(TxnOpResponse::Get(g)) = resp.op_responses().first() {
            let high = g
                .kvs()
                .first()
                .and_then(|kv| kv.value_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(next[k]);
            next[k] = high + INCREMENT;
        }
        rec.complete(sent, done, resp.succeeded());
    }
    Ok((rec, retries))
}

/// Whether an etcd error can go away by retrying (a member down, an election, a timeout),
/// as opposed to a setup error that would make every retry fail until the window ends.
fn transient(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) => true,
        // gRPC codes: 1 cancelled, 2 unknown, 4 deadline exceeded, 8 resource exhausted,
        // 10 aborted, 13 internal, 14 unavailable.
        E::GRpcStatus(s) => matches!(i32::from(s.code()), 1 | 2 | 4 | 8 | 10 | 13 | 14),
        _ => false,
    }
}

/// The members of the cluster `scripts/etcd-cluster.sh start DIR` runs: member `eN` keeps its
/// data in `DIR/eN.etcd` and its pid in `DIR/eN.pid`.
#[derive(Debug)]
pub(crate) struct Members {
    /// DIR, absolute (as the script passes it to etcd).
    dir: PathBuf,
    script: PathBuf,
    endpoints: Vec<String>,
}

/// A member found leading (and then stopped).
#[derive(Debug)]
pub(crate) struct Member {
    /// `e1`, `e2`, `e3`.
    pub(crate) name: String,
    pid: u32,
}

/// How long one call of the leader search may take.
const ASK: Duration = Duration::from_secs(1);

impl Members {
    /// The cluster in `dir`, restarted with `script`, its clients at `endpoints`.
    pub(crate) fn new(dir: &Path, script: &Path, endpoints: &[String]) -> anyhow::Result<Self> {
        let abs = std::fs::canonicalize(dir)
            .with_context(|| format!("--etcd-dir {}: no such directory", dir.display()))?;
        if !script.is_file() {
            bail!("--etcd-script {} not found (run from the repository root)", script.display());
        }
        Ok(Self { dir: abs, script: script.to_path_buf(), endpoints: endpoints.to_vec() })
    }

    /// The leader: the endpoint whose maintenance status names its own member id as the
    /// leader; its name from the member list, its pid from the script's pid file.
    pub(crate) async fn leader(&self) -> anyhow::Result<Member> {
        for ep in &self.endpoints {
            let options = ConnectOptions::new().with_connect_timeout(ASK).with_timeout(ASK);
            let connect = Client::connect([ep.as_str()], Some(options));
            let Ok(Ok(mut c)) = tokio::time::timeout(ASK, connect).await else { continue };
            let Ok(Ok(status)) = tokio::time::timeout(ASK, c.status()).await else { continue };
            let Some(me) = status.header().map(|h| h.member_id()) else { continue };
            if status.leader() != me {
                continue;
            }
            let list = tokio::time::timeout(ASK, c.member_list())
                .await
                .context("etcd member list: no answer")?
                .context("etcd member list")?;
            let name = list
                .members()
                .iter()
                .find(|m| m.id() == me)
                .map(|m| m.name().to_string())
                .with_context(|| format!("the leader {me:x} is not in the member list"))?;
            let pid = self.pid(&name)?;
            return Ok(Member { name, pid });
        }
        bail!("no etcd endpoint of {} says it leads", self.endpoints.join(","))
    }

    /// The pid in `DIR/<name>.pid`, if that process is member `name` of DIR.
    fn pid(&self, name: &str) -> anyhow::Result<u32> {
        let file = self.dir.join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let pid: u32 =
            text.trim().parse().with_context(|| format!("{} holds no pid", file.display()))?;
        if !self.is_member(pid, name) {
            bail!("pid {pid} in {} is not etcd member {name} of that directory", file.display());
        }
        Ok(pid)
    }

    /// Whether `pid` is a live process whose command line holds `DIR/<name>.etcd`, the data
    /// directory the script gives member `name` (a stale pid file's reused pid is not).
    fn is_member(&self, pid: u32, name: &str) -> bool {
        let data = self.dir.join(format!("{name}.etcd"));
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0).any(|arg| Path::new(OsStr::from_bytes(arg)) == data)
        })
    }

    /// Sends `how` to the member (checked again just before).
    pub(crate) fn stop(&self, m: &Member, how: LeaderSignal) -> anyhow::Result<()> {
        if !self.is_member(m.pid, &m.name) {
            bail!("etcd member {} (pid {}) is gone before the signal", m.name, m.pid);
        }
        crate::cluster::signal(m.pid, how)
    }

    /// Waits up to 10 s for the stopped member to exit (then kills it), and starts it again
    /// ([`Self::start`]).
    pub(crate) async fn restart(&self, m: &Member) -> anyhow::Result<()> {
        if !self.exited(m, Duration::from_secs(10)).await {
            crate::cluster::signal(m.pid, LeaderSignal::Kill)?;
            if !self.exited(m, Duration::from_secs(5)).await {
                bail!("etcd member {} (pid {}) does not exit", m.name, m.pid);
            }
        }
        self.start().await
    }

    /// `SCRIPT start DIR`: starts the members that are not running (none, when the cluster is
    /// whole) and returns once all three answer their health check.
    pub(crate) async fn start(&self) -> anyhow::Result<()> {
        let out = tokio::process::Command::new(&self.script)
            .arg("start")
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", self.script.display()))?;
        if !out.status.success() {
            bail!(
                "{} start {} failed ({}): {}",
                self.script.display(),
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Whether the member's process is gone (or a zombie) within `limit`.
    async fn exited(&self, m: &Member, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.is_member(m.pid, &m.name) {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}
