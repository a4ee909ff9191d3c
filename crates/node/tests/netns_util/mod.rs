//! A small LAN of Linux network namespaces for multi-host tests (root only).
//!
//! Topology, all of it inside namespaces this module creates (nothing touches the host's
//! interfaces or routes):
//!
//! ```text
//!   anx-h1-ID        anx-h2-ID        anx-h3-ID          anx-c-ID
//!   10.199.X.1/24    10.199.X.2/24    10.199.X.3/24      10.199.X.100/24 (test client)
//!       | veth           | veth           | veth               | veth
//!   +---+----------------+----------------+--------------------+---+
//!   |                 br0 in anx-sw-ID (the switch)                |
//!   +--------------------------------------------------------------+
//! ```
//!
//! Each host runs one `auction-node run` under `ip netns exec`, with no `--join`: the nodes
//! find each other by broadcast to the subnet broadcast address. The test talks to the nodes
//! from a thread that entered the client namespace (`setns`), see [`Lan::in_client_ns`].
//! Partitions and loss are nftables rules on the *receiving* side, matched by source address
//! (a destination rule would let broadcast through).
//!
//! Cleanup: [`Lan`]'s `Drop` kills the node processes it started (by their `Child` handles),
//! then any process still inside a namespace it created (by pid, from `ip netns pids`), and
//! deletes those namespaces by name; deleting a namespace removes its veth ends, the bridge
//! and the nftables rules with it. It runs when a test panics too. A test process killed
//! outright cannot run it, so [`Lan::create_as`] first removes the namespaces of its prefix
//! whose creating process is gone.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use auction_proto::msg::client::{NodeReport, Reply, RequestBody};

use crate::common::Client;

/// The key of every namespace cluster.
pub const KEY: &str = "netns-test-cluster-key-0123456789abcdef";
/// Peer port of every node (each has its own address).
pub const PEER_PORT: u16 = 7000;
/// Client port of every node.
pub const CLIENT_PORT: u16 = 7100;
/// Host number of the test client's namespace.
const CLIENT_HOST: u8 = 100;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether these tests can run here: they need root. Prints why not when they cannot.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: network-namespace tests need root (CI runs them as root)");
    false
}

/// The path of a system tool: found on `PATH`, else in the sbin directories (which some
/// root environments leave off `PATH`).
pub fn tool(name: &str) -> String {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map_or_else(|| name.to_string(), |p| p.display().to_string())
}

/// Runs a system tool and panics with its output if it fails.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(tool(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed? see .ci/run)"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `nft -f -` inside namespace `ns` with `script` on stdin.
fn nft(ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new(tool("ip"))
        .args(["netns", "exec", ns, &tool("nft"), "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip netns exec nft");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft in {ns} failed: {}\nscript:\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One host of the LAN.
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its node's data directory.
    pub dir: PathBuf,
}

impl Host {
    /// The node's client address.
    pub fn client(&self) -> SocketAddr {
        SocketAddr::from((self.ip, CLIENT_PORT))
    }
}

/// Namespaces on a bridge, the node processes in them, and their cleanup.
pub struct Lan {
    id: String,
    subnet: u8,
    switch: String,
    client_ns: String,
    /// The hosts, host `k` (from 0) at `10.199.X.(k+1)`.
    pub hosts: Vec<Host>,
    /// Every namespace created so far, deleted on drop.
    created: Vec<String>,
    children: Mutex<Vec<Option<Child>>>,
    /// The nodes' `--fsync` policy (`never` unless set before a node starts).
    pub fsync: &'static str,
    _dir: tempfile::TempDir,
}

impl Lan {
    /// Creates the switch, `n` hosts and the client namespace, all linked to the bridge,
    /// with namespace names starting `anx-`.
    pub fn create(n: usize) -> Self {
        Self::create_as("anx", n)
    }

    /// [`Lan::create`] with namespaces named `PREFIX-h1-PID-N` and so on. Namespaces of this
    /// prefix left behind by a process that no longer exists are removed first.
    pub fn create_as(prefix: &str, n: usize) -> Self {
        remove_stale(prefix);
        let ctr = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let id = format!("{pid}-{ctr}");
        // Every LAN is isolated on its own bridge, so subnets may repeat; varying them only
        // makes logs of concurrent runs easier to tell apart.
        let subnet = u8::try_from((pid + ctr * 37) % 200).unwrap() + 20;
        let dir = tempfile::tempdir().unwrap();
        let hosts = (0..n)
            .map(|k| Host {
                ns: format!("{prefix}-h{}-{id}", k + 1),
                ip: Ipv4Addr::new(10, 199, subnet, u8::try_from(k + 1).unwrap()),
                dir: dir.path().join(format!("h{}", k + 1)),
            })
            .collect();
        let mut lan = Self {
            switch: format!("{prefix}-sw-{id}"),
            client_ns: format!("{prefix}-c-{id}"),
            id,
            subnet,
            hosts,
            created: Vec::new(),
            children: Mutex::new((0..n).map(|_| None).collect()),
            fsync: "never",
            _dir: dir,
        };
        lan.build();
        lan
    }

    fn add_ns(&mut self, ns: &str) {
        sh("ip", &["netns", "add", ns]);
        self.created.push(ns.to_string());
        sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }

    fn build(&mut self) {
        let sw = self.switch.clone();
        self.add_ns(&sw);
        sh("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        sh("ip", &["-n", &sw, "link", "set", "br0", "up"]);
        let mut ends: Vec<(String, Ipv4Addr)> =
            self.hosts.iter().map(|h| (h.ns.clone(), h.ip)).collect();
        ends.push((self.client_ns.clone(), self.addr(CLIENT_HOST)));
        for (k, (ns, ip)) in ends.into_iter().enumerate() {
            self.add_ns(&ns);
            // Both ends are created directly inside their namespaces: interface names only
            // need to be unique per namespace, and the root namespace never sees them.
            let port = format!("p{k}");
            sh(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &sw,
                ],
            );
            sh("ip", &["-n", &sw, "link", "set", &port, "master", "br0"]);
            sh("ip", &["-n", &sw, "link", "set", &port, "up"]);
            let cidr = format!("{ip}/24");
            sh("ip", &["-n", &ns, "addr", "add", &cidr, "broadcast", "+", "dev", "eth0"]);
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }

    /// `10.199.X.host`.
    pub fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 199, self.subnet, host)
    }

    /// This LAN's unique id (pid and counter).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts host `k`'s node: no `--join`, discovery by broadcast; host 0 bootstraps.
    pub fn spawn(&self, k: usize) {
        let host = &self.hosts[k];
        let exe = env!("CARGO_BIN_EXE_auction-node");
        let peer = SocketAddr::from((host.ip, PEER_PORT)).to_string();
        let client = host.client().to_string();
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &host.ns, exe, "run", "--name", &format!("h{}", k + 1)])
            .arg("--data-dir")
            .arg(&host.dir)
            .args(["--peer-addr", &peer, "--client-addr", &client])
            .args(["--cluster", &format!("netns-{}", self.id), "--cluster-key", KEY])
            .args(["--probe-interval", "200ms", "--suspect-after", "600ms"])
            .args(["--down-after", "600ms", "--election-timeout", "300ms"])
            .args(["--promote-after", "300ms", "--bootstrap-probe", "500ms"])
            .args(["--fsync", self.fsync])
            .env("RUST_LOG", std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null());
        if k == 0 && !host.dir.exists() {
            cmd.arg("--bootstrap");
        }
        // `ip netns exec` execs the node in place, so this pid is the node's.
        let child = cmd.spawn().expect("start a node under ip netns exec");
        self.children.lock().unwrap()[k] = Some(child);
    }

    /// `kill -9` of host `k`'s node (the `Child` is the node itself: `ip netns exec` execs it).
    pub fn kill(&self, k: usize) {
        if let Some(mut child) = self.children.lock().unwrap()[k].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Host `k`'s node's report, if it answers (call from the client namespace).
    pub fn report(&self, k: usize) -> Option<NodeReport> {
        let mut c = Client::connect(self.hosts[k].client()).ok()?;
        match c.request(RequestBody::Report).ok()?.result {
            Ok(Reply::Report(r)) => Some(r),
            _ => None,
        }
    }

    /// The reports of every host if all of them know the same `n` members and the same
    /// leader (call from the client namespace).
    pub fn converged(&self, n: usize) -> Option<Vec<NodeReport>> {
        let reports: Vec<NodeReport> =
            (0..self.hosts.len()).map(|k| self.report(k)).collect::<Option<_>>()?;
        let mut members = reports[0].members.clone();
        members.sort();
        let same = reports.iter().all(|r| {
            let mut m = r.members.clone();
            m.sort();
            m == members && r.leader.is_some() && r.leader == reports[0].leader
        });
        (same && members.len() == n).then_some(reports)
    }

    /// The host whose node says it leads, if one answers so (call from the client namespace).
    pub fn leader(&self) -> Option<usize> {
        (0..self.hosts.len()).find(|&k| self.report(k).is_some_and(|r| r.leader == Some(r.node)))
    }

    /// Whether host `k`'s node is still running.
    pub fn running(&self, k: usize) -> bool {
        self.children.lock().unwrap()[k].as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Runs `f` on a thread inside the client namespace (10.199.X.100), from where every
    /// host's client address is reachable, and returns its result (a panic in `f` panics
    /// here).
    pub fn in_client_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.client_ns);
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                let ns = std::fs::File::open(&path).expect("open the client namespace");
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("enter the client namespace");
                f()
            });
            handle.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Cuts host `k` off from the other hosts, symmetrically: host `k` drops what comes from
    /// them, and they drop what comes from it (input hook, by source address, so broadcasts
    /// are dropped too). The test client can still reach everyone.
    pub fn isolate(&self, k: usize) {
        let others: Vec<String> = (0..self.hosts.len())
            .filter(|&j| j != k)
            .map(|j| self.hosts[j].ip.to_string())
            .collect();
        self.drop_from(k, &format!("ip saddr {{ {} }} counter drop", others.join(", ")));
        for j in (0..self.hosts.len()).filter(|&j| j != k) {
            self.drop_from(j, &format!("ip saddr {} counter drop", self.hosts[k].ip));
        }
    }

    /// Host `to` drops everything it receives from host `from`; the other direction still
    /// passes (a one-way partition).
    pub fn drop_one_way(&self, from: usize, to: usize) {
        self.drop_from(to, &format!("ip saddr {} counter drop", self.hosts[from].ip));
    }

    /// Drops about `percent`% of the packets every host receives from the other hosts (not
    /// from the test client), at random (nftables `numgen`).
    pub fn lossy(&self, percent: u8) {
        let client = self.addr(CLIENT_HOST);
        for k in 0..self.hosts.len() {
            self.drop_from(
                k,
                &format!("ip saddr != {client} numgen random mod 100 < {percent} counter drop"),
            );
        }
    }

    /// Packets the rules of [`Lan::isolate`], [`Lan::drop_one_way`] and [`Lan::lossy`] have
    /// dropped since the last [`Lan::heal`], on every host.
    pub fn dropped(&self) -> u64 {
        let mut total = 0;
        for h in &self.hosts {
            let out = Command::new(tool("ip"))
                .args(["netns", "exec", &h.ns, &tool("nft"), "list", "table", "inet", "anx"])
                .output()
                .expect("nft list");
            let text = String::from_utf8_lossy(&out.stdout);
            let mut words = text.split_whitespace();
            while let Some(w) = words.next() {
                if w == "packets" {
                    total += words.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
                }
            }
        }
        total
    }

    fn drop_from(&self, k: usize, rule: &str) {
        let script = format!(
            "table inet anx {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    {rule}\n  }}\n}}\n"
        );
        nft(&self.hosts[k].ns, &script);
    }

    /// Removes every rule [`Lan::isolate`] and [`Lan::lossy`] added.
    pub fn heal(&self) {
        for h in &self.hosts {
            // `add` first: deleting a table that does not exist fails (nft 1.0.6 has no `destroy`).
            nft(&h.ns, "add table inet anx\ndelete table inet anx\n");
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let children = self.children.get_mut().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.created.iter().rev() {
            delete_ns(ns);
        }
    }
}

/// Kills every process inside namespace `ns` (by pid) and deletes it.
fn delete_ns(ns: &str) {
    let quiet = |args: &[&str]| {
        Command::new(tool("ip")).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output()
    };
    if let Ok(out) = quiet(&["netns", "pids", ns]) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        // Their exit frees the namespace; give them a moment before it is unmounted.
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = quiet(&["netns", "del", ns]);
}

/// Removes namespaces named `PREFIX-...-PID-N` whose process `PID` no longer exists (left by a
/// test process that was killed before its `Drop` could run).
fn remove_stale(prefix: &str) {
    let Ok(out) = Command::new(tool("ip")).args(["netns", "list"]).output() else { return };
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('-').collect();
        let [_, pid, _] = parts[..] else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_ns(name);
        }
    }
}
