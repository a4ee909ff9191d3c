//! The client shell (`auction-client`) against a real local cluster of `auction-node`
//! processes: a seller and two bidders through the shell, and a shell whose server is killed
//! mid-session fails over without losing or doubling its bid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use auction_proto::AuctionId;
use auction_proto::msg::client::{Reply, RequestBody};
use common::{Client, TestCluster};

/// The `auction-client` binary next to `auction-node` (built on demand: a dependency's
/// binaries are not built for another package's tests).
fn client_bin() -> PathBuf {
    let node = PathBuf::from(env!("CARGO_BIN_EXE_auction-node"));
    let bin = node.with_file_name("auction-client");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "auction-client", "--bin", "auction-client"]);
        if node.to_string_lossy().contains("/release/") {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "cannot build auction-client");
    }
    bin
}

/// A shell process with piped stdin, whose stdout lines arrive on a channel.
struct Shell {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Shell {
    fn start(server: std::net::SocketAddr, state: &std::path::Path, extra: &[String]) -> Self {
        let mut child = Command::new(client_bin())
            .args(["--server", &server.to_string(), "--history", "/dev/null", "--timeout", "2s"])
            .args(extra)
            .env("XDG_STATE_HOME", state)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self { child, lines, seen: Vec::new() }
    }

    /// Types `command` again every half second until a line contains `expect` (for a read
    /// of another session's write: this shell's server may not have applied it yet, and
    /// only a session's own writes are guaranteed to be visible to its reads at once).
    fn run_until(&mut self, command: &str, expect: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            self.type_line(command);
            if let Some(line) = self.wait_for(expect, Duration::from_millis(500)) {
                return line;
            }
        }
        self.fail(command, expect)
    }

    /// Types a command and waits for a line containing `expect`.
    fn run(&mut self, command: &str, expect: &str) -> String {
        self.type_line(command);
        match self.wait_for(expect, Duration::from_secs(30)) {
            Some(line) => line,
            None => self.fail(command, expect),
        }
    }

    fn type_line(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first line within `limit` that contains `expect`.
    fn wait_for(&mut self, expect: &str, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else { break };
            self.seen.push(line.clone());
            if line.contains(expect) {
                return Some(line);
            }
        }
        None
    }

    fn fail(&self, command: &str, expect: &str) -> ! {
        panic!(
            "{command:?}: no line containing {expect:?}; output so far:\n{}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn history_len(addr: std::net::SocketAddr, auction: AuctionId) -> usize {
    let mut c = Client::connect(addr).unwrap();
    match c.request(RequestBody::History { auction }).unwrap().result {
        Ok(Reply::History(h)) => h.len(),
        other => panic!("history: {other:?}"),
    }
}

#[test]
fn a_seller_and_two_bidders_through_the_shell() {
    let cluster = TestCluster::start(3);
    let state = tempfile::tempdir().unwrap();
    let mut sam = Shell::start(cluster.nodes[0].client, state.path(), &[]);
    sam.run("register sam", "logged in as sam");
    sam.run("open \"Old bike\" --start 10 --duration 5m --reserve 25", "opened auction #1");
    let mut ann = Shell::start(cluster.nodes[1].client, state.path(), &[]);
    ann.run("register ann", "logged in as ann");
    ann.run("watch 1", "watching");
    ann.run("maxbid 1 30", "bid accepted on #1: price 25.00, you lead");
    let mut ben = Shell::start(cluster.nodes[2].client, state.path(), &[]);
    ben.run("register ben", "logged in as ben");
    ben.run("bid 1 20", "too low; the minimum bid is 26.00");
    ben.run("maxbid 1 40", "bid accepted on #1: price 31.00, you lead");
    ann.run("whoami", "outbid");
    // Sam's server may apply ben's bid a moment after ben's server answered him.
    sam.run_until("show 1", "price 31.00  leader ben");
}

#[test]
fn a_shell_fails_over_when_its_server_is_killed() {
    let mut cluster = TestCluster::start(3);
    let state = tempfile::tempdir().unwrap();
    let mut seller = Shell::start(cluster.nodes[0].client, state.path(), &[]);
    seller.run("register sam", "logged in as sam");
    seller.run("open lamp --start 10 --duration 10m", "opened auction #1");

    // The bidder's shell knows every server (as the servers' Welcome tells it).
    let victim = 1;
    let mut bidder = Shell::start(cluster.nodes[victim].client, state.path(), &[]);
    bidder.run("register ann", "logged in as ann");
    bidder.run("bid 1 10", "bid accepted on #1");
    cluster.kill(victim);
    // The next command finds its server gone, reconnects elsewhere, logs in again and
    // re-sends the same request: applied exactly once.
    bidder.run("bid 1 12", "bid accepted on #1");
    // (One bidder raising their own maximum: the price stays 10.00, a second history line.)
    // A fresh reader (it has seen nothing) may hit a server that has not applied the bid yet;
    // wait until it has, then it must show the bid once.
    let alive = (victim + 1) % 3;
    let addr = cluster.nodes[alive].client;
    cluster.wait_for(Duration::from_secs(10), |_| history_len(addr, AuctionId(1)) >= 2);
    assert_eq!(history_len(addr, AuctionId(1)), 2, "the re-sent bid is applied exactly once");
}
