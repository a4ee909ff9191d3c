//! One seeded run: servers, clients, the fault schedule and the heal phase.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::client::AdminOp;
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{EntryPayload, LogEntry};
use auction_proto::{Incarnation, InstanceId, NodeId, PeerSeal, Seq};
use auction_replica::{Faults, Replica, ReplicaConfig, Start};
use auction_server::{Server, SessionFaults};
use auction_testkit::{NetConfig, Network};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adversary::{Adversary, AttackStats};
use crate::disk::Disk;
use crate::history::{Applied, History};
use crate::server::{SimServer, sim_codec, sim_server_config};
use crate::{Bug, Options, ScriptOp};

#[path = "operator.rs"]
mod operator;

#[path = "clients.rs"]
mod clients;

use clients::Client;

const TICK: Duration = Duration::from_millis(10);
/// Where `Discover` goes: the simulated network turns it into a broadcast.
const BROADCAST: &str = "10.0.255.255:7002";

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 7000))
}

fn node_id(i: usize) -> NodeId {
    NodeId::from_bytes([1 + i as u8; 16])
}

/// Fast timers so a seed covers elections, removals and snapshots in a few virtual seconds.
pub(crate) fn sim_config() -> ReplicaConfig {
    let mut c = ReplicaConfig::default();
    c.membership.discovery_targets = BROADCAST.parse().into_iter().collect();
    c.membership.probe_interval = Duration::from_millis(100);
    c.membership.probe_timeout = Duration::from_millis(40);
    c.membership.suspicion_timeout = Duration::from_millis(300);
    c.membership.confirmation_timeout = Duration::from_millis(300);
    c.membership.rediscover_min = Duration::from_millis(100);
    c.membership.rediscover_max = Duration::from_millis(500);
    c.election.election_timeout = Duration::from_millis(150);
    c.election.max_backoff = Duration::from_millis(150);
    c.ordering.tick = Duration::from_millis(20);
    c.ordering.unavailable_after = Duration::from_millis(300);
    c.snapshot_every = 25;
    c.removal_grace = Duration::from_millis(2_500);
    c.bootstrap_probe = Duration::from_millis(300);
    c.promote_after = Duration::from_millis(300);
    c
}

pub(crate) struct Sim {
    opts: Options,
    rng: ChaCha8Rng,
    /// Operator actions (step-downs): a stream of their own, so that enabling them leaves the
    /// seed's other faults as they were.
    ops_rng: ChaCha8Rng,
    net: Network<SimServer>,
    /// Disks of crashed servers, and how many times each server index has started.
    down: BTreeMap<usize, Disk>,
    boots: Vec<u64>,
    /// The attacker, if the run has one.
    adversary: Option<Adversary>,
    /// Operator faults (wipes): a stream of their own, like `ops_rng`.
    wipe_rng: ChaCha8Rng,
    /// The node ids of wiped data directories (gone for good).
    wiped: Vec<NodeId>,
    /// The wiped data directories as they were: a follower may have acknowledged an entry
    /// just before its wipe, and the leader count it after (a commit the disk did back).
    wiped_disks: Vec<Disk>,
    /// Servers that stopped (refused to bootstrap) and when the operator restarts them.
    restart_at: BTreeMap<usize, Instant>,
    /// The cluster instance (the first one founded).
    instance: Option<InstanceId>,
    pub(crate) attacks: AttackStats,
    clients: Vec<Client>,
    pub(crate) history: History,
    /// The first entry seen applied at each seq, and the configurations by seq.
    agreed: BTreeMap<Seq, LogEntry>,
    /// Each seq's commit point and latest configuration as its first applier knew them, and
    /// who held it durably then.
    commits: Vec<(Seq, Seq, Vec<NodeId>, Vec<NodeId>)>,
    configs: BTreeMap<Seq, Vec<NodeId>>,
    pub(crate) violations: Vec<(&'static str, String)>,
}

impl Sim {
    pub(crate) fn new(opts: Options) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5EED);
        let ops_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0DE7_A7E5);
        let wipe_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0057_1BED);
        let adversary = opts
            .adversary
            .then(|| Adversary::new(ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0BAD_F00D)));
        let net = Network::new(opts.seed, NetConfig::default());
        let clients = (0..opts.clients)
            .map(|i| Client::new(i, rng.random_range(0..opts.servers), net.now()))
            .collect();
        let mut sim = Self {
            boots: vec![0; opts.servers],
            opts,
            rng,
            ops_rng,
            net,
            down: BTreeMap::new(),
            adversary,
            wipe_rng,
            wiped: Vec::new(),
            wiped_disks: Vec::new(),
            restart_at: BTreeMap::new(),
            instance: None,
            attacks: AttackStats::default(),
            clients,
            history: History::default(),
            agreed: BTreeMap::new(),
            commits: Vec::new(),
            configs: BTreeMap::new(),
            violations: Vec::new(),
        };
        for i in 0..sim.opts.servers {
            let start = if i == 0 {
                Start::Bootstrap { instance: InstanceId::from_bytes([0xA5; 16]) }
            } else {
                Start::Join
            };
            sim.start_server(i, Disk::new(node_id(i)), start);
        }
        sim
    }

    fn start_server(&mut self, i: usize, mut disk: Disk, start: Start) {
        self.boots[i] += 1;
        let boot = self.boots[i];
        disk.incarnation += 1;
        let inc = Incarnation(disk.incarnation);
        let me = NodeInfo {
            node: disk.node,
            incarnation: inc,
            peer_addr: addr(i),
            client_addr: SocketAddr::from(([10, 0, 0, 1 + i as u8], 7001)),
        };
        let rng: u64 = self.rng.random();
        let now = self.net.now();
        let Ok(mut replica) = Replica::new(me, start, disk.durable(), sim_config(), rng, now)
        else {
            self.violations.push(("restart", format!("server {i} failed to restart")));
            return;
        };
        replica.set_observe(true);
        replica.set_faults(Faults {
            ack_on_sequence: self.opts.bug == Bug::AckOnSequence,
            skip_view_change: matches!(self.opts.bug, Bug::SkipViewChange | Bug::LeaderKeepsOwnLog),
            skip_vote_check: matches!(self.opts.bug, Bug::SkipVoteCheck | Bug::LeaderKeepsOwnLog),
        });
        self.history.restored.insert((i, boot), replica.applied());
        let seal = PeerSeal::new(sim_codec(), disk.node, inc, disk.instance);
        let mut core = Server::new(replica, seal, sim_server_config());
        core.set_session_faults(SessionFaults {
            stale_reads: self.opts.bug == Bug::StaleReads,
            per_connection_ids: self.opts.bug == Bug::PerConnectionIds,
        });
        let broadcast = BROADCAST.parse().unwrap_or_else(|_| unreachable!("a valid address"));
        let mut server = SimServer::new(core, broadcast, disk, boot, self.net.start());
        server.frame_tag = ((i as u64) << 48) | (boot << 32);
        server.lying_disk = self.opts.bug == Bug::LyingDisk;
        server.trace = self.opts.trace;
        server.tick_clock(now);
        server.drain(now);
        self.net.add_node(addr(i), server);
    }

    fn crash(&mut self, i: usize) {
        if let Some(mut s) = self.net.crash(&addr(i)) {
            let survive = self.rng.random_range(0..=s.disk.pending.len());
            s.disk.crash(survive);
            self.collect_one(i, &mut s);
            self.down.insert(i, s.disk);
        }
    }

    fn restart(&mut self, i: usize) {
        if let Some(disk) = self.down.remove(&i) {
            self.restart_at.remove(&i);
            self.start_server(i, disk, Start::Join);
        }
    }

    /// Runs the whole scenario and returns the history.
    pub(crate) fn run(mut self) -> (History, Vec<(&'static str, String)>, AttackStats) {
        let start = self.net.now();
        let fault_end = start + self.opts.fault_time;
        let end = fault_end + self.opts.heal_time;
        let mut next_fault = start + Duration::from_millis(self.rng.random_range(500..1_500));
        let mut script = std::mem::take(&mut self.opts.script);
        script.sort_by_key(|(at, _)| *at);
        let mut script = script.into_iter().peekable();
        while self.net.now() < end {
            self.net.run_for(TICK);
            let now = self.net.now();
            while let Some((_, op)) = script.next_if(|(at, _)| start + *at <= now) {
                self.scripted(op, now);
            }
            if now < fault_end && now >= next_fault && self.opts.faults {
                self.inject_fault();
                next_fault = now + Duration::from_millis(self.rng.random_range(150..700));
                if self.opts.step_downs && self.ops_rng.random_bool(0.2) {
                    self.step_down_leader(now);
                }
            } else if now >= fault_end && self.history.heal_at.is_zero() {
                self.heal();
            }
            self.collect();
            self.operator_restarts(now);
            self.attack();
            self.clients_step(now >= fault_end);
        }
        self.finish();
        (self.history, self.violations, self.attacks)
    }

    fn inject_fault(&mut self) {
        let n = self.opts.servers;
        let i = self.rng.random_range(0..n);
        let kind = self.rng.random_range(0..10);
        // A founder restarted on a wiped disk probes a healthy network (see `wipe`).
        if self.probing() && matches!(kind, 0 | 1 | 4 | 5 | 8 | 9) {
            return;
        }
        match kind {
            0 | 1 if self.may_crash(i) => self.crash(i),
            0 | 1 => {}
            2 | 3 => {
                let downs: Vec<usize> = self.down.keys().copied().collect();
                if let Some(&j) = downs.get(self.rng.random_range(0..downs.len().max(1))) {
                    self.restart(j);
                }
            }
            4 => {
                let cut: Vec<SocketAddr> =
                    (0..n).filter(|_| self.rng.random_bool(0.4)).map(addr).collect();
                let rest: Vec<SocketAddr> = (0..n).map(addr).filter(|a| !cut.contains(a)).collect();
                self.net.partition(&cut, &rest);
            }
            5 => {
                let j = self.rng.random_range(0..n);
                if i != j {
                    self.net.block(addr(i), addr(j));
                }
            }
            6 => self.net.heal(),
            7 => {
                let jump = self.rng.random_range(-3_000i64..=3_000);
                if let Some(s) = self.net.node_mut(&addr(i)) {
                    s.skew_ms += jump;
                }
            }
            _ => {
                let drop = [0.0, 0.02, 0.1][self.rng.random_range(0..3)];
                let duplicate = [0.0, 0.05][self.rng.random_range(0..2)];
                let delay_max = Duration::from_millis([5, 30, 80][self.rng.random_range(0..3)]);
                self.net.set_config(NetConfig {
                    drop,
                    duplicate,
                    delay_max,
                    ..NetConfig::default()
                });
            }
        }
        // Last: a founder's wipe heals the network for its probe.
        self.maybe_wipe();
    }

    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn scripted(&mut self, op: ScriptOp, now: Instant) {
        if self.opts.trace {
            eprintln!("{:?} script {op:?}", now - self.net.start());
        }
        match op {
            ScriptOp::Block { from, to } => self.net.block(addr(from), addr(to)),
            ScriptOp::Crash(i) => self.crash(i),
            ScriptOp::Restart(i) => self.restart(i),
            ScriptOp::Heal => self.net.heal(),
            ScriptOp::StepDownLeader => self.step_down_leader(now),
            ScriptOp::Skew { server, ms } => {
                if let Some(s) = self.net.node_mut(&addr(server)) {
                    s.skew_ms += ms;
                }
            }
        }
    }

    /// An operator asks whichever server leads to step down (as `admin SERVER step-down`).
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn step_down_leader(&mut self, now: Instant) {
        for i in 0..self.opts.servers {
            if let Some(s) = self.net.node_mut(&addr(i)) {
                if !s.replica().is_leading() {
                    continue;
                }
                let done = s.admin(AdminOp::StepDown, now).is_some_and(|r| r.result.is_ok());
                if done && self.opts.trace {
                    eprintln!("{:?} {} operator step-down", now - s.start, addr(i));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.history.heal_at = self.net.elapsed();
        self.net.heal();
        self.net.set_config(NetConfig::default());
        let downs: Vec<usize> = self.down.keys().copied().collect();
        for i in downs {
            self.restart(i);
        }
        for i in 0..self.opts.servers {
            if let Some(s) = self.net.node_mut(&addr(i)) {
                s.skew_ms = 0;
            }
        }
        self.history.majority_up = true;
    }

    /// Collects applied entries and leaders from every running server.
    fn collect(&mut self) {
        for i in 0..self.opts.servers {
            let Some(mut s) = self.net.crash(&addr(i)) else { continue };
            self.collect_one(i, &mut s);
            if s.refused.is_some() {
                self.stop_refused(i, s);
            } else {
                self.net.add_node(addr(i), s);
            }
        }
    }

    fn collect_one(&mut self, i: usize, s: &mut SimServer) {
        let me = s.replica().me().node;
        for term in std::mem::take(&mut s.led) {
            self.history.leaders.entry(term).or_default().insert(me);
        }
        self.collect_attacks(s);
        let entries = std::mem::take(&mut s.applied);
        let known = (s.replica().commit(), s.replica().members());
        for a in &entries {
            if let Applied::Entry(e) = a {
                self.check_commit(e, &known, i, &s.disk);
            }
        }
        self.history.applied.entry((i, s.boot)).or_default().extend(entries);
    }

    /// Agreement with the first entry seen applied at each seq, the configurations by seq,
    /// and who holds the entry durably when it is first applied by a server that knows the
    /// commit point and latest configuration in `known` (judged in `judge_commits`, once
    /// every configuration is known).
    fn check_commit(
        &mut self,
        e: &LogEntry,
        known: &(Seq, Vec<NodeId>),
        applier: usize,
        applier_disk: &Disk,
    ) {
        if let Some(first) = self.agreed.get(&e.seq) {
            if first != e {
                let msg = format!("seq {:?}: {first:?} vs {e:?}", e.seq);
                self.violations.push(("agreement", msg));
            }
            return;
        }
        self.agreed.insert(e.seq, e.clone());
        if let EntryPayload::Config(c) = &e.payload {
            let mut members = self.configs.values().next_back().cloned().unwrap_or_default();
            match c {
                auction_proto::msg::log::ConfigChange::Bootstrap { members: m } => {
                    members = m.iter().map(|x| x.node).collect();
                }
                auction_proto::msg::log::ConfigChange::AddMember(info) => members.push(info.node),
                auction_proto::msg::log::ConfigChange::RemoveMember(n)
                | auction_proto::msg::log::ConfigChange::Demote(n) => {
                    members.retain(|x| x != n);
                }
            }
            self.configs.insert(e.seq, members);
        }
        let holders = (0..self.opts.servers)
            .filter_map(|j| {
                let disk = match self.net.node(&addr(j)) {
                    _ if j == applier => Some(applier_disk),
                    Some(s) => Some(&s.disk),
                    None => self.down.get(&j),
                };
                disk.filter(|d| d.holds(e)).map(|d| d.node)
            })
            .chain(self.wiped_disks.iter().filter(|d| d.holds(e)).map(|d| d.node))
            .collect();
        self.commits.push((e.seq, known.0.max(e.seq), known.1.clone(), holders));
    }

    /// No commit without a majority of a configuration holding the entry durably when it is
    /// first applied. Configurations are in force on append (Raft's single-server changes):
    /// a leader counts every commit in the latest configuration of its log, committed or
    /// not, and the entries below a commit point are committed with it. So a majority of the
    /// configuration at the entry's seq, at the commit point its first applier knew, or the
    /// latest one in that applier's log must hold it. (Only the first was accepted before,
    /// which failed e.g. seeds 39 and 211 with 8-10 s of faults: a leader of `[1, 3]`
    /// appended `RemoveMember(3)` and committed it, with the entries below it, on its own
    /// disk alone, correctly; a leader of `[1, 2, 3, 4]` appended `RemoveMember(1)` at 121
    /// and committed 119 on two disks of `[2, 3, 4]`, correctly.)
    ///
    /// The first applier may not hold the leader's latest configuration yet: seed 5571 with
    /// 12 s of faults had a leader of `[2, 3, 4, 5]` append `RemoveMember(3)` at 218 and
    /// commit 217 on the disks of 2 and 5, a majority of `[2, 4, 5]`, correctly; member 2
    /// learned the commit point before it received 218 and applied 217 first. So the next
    /// configuration after the entry counts too. No later one can: a leader appends a change
    /// only once the one before it is committed, and that commit includes the entry.
    fn judge_commits(&mut self) {
        let at = |seq: Seq| self.configs.range(..=seq).next_back().map(|(_, m)| m.as_slice());
        let after = |seq: Seq| self.configs.range(seq.next()..).next().map(|(_, m)| m.as_slice());
        for (seq, commit, latest, holders) in &self.commits {
            let Some(members) = at(*seq) else { continue };
            let backed =
                |m: &[NodeId]| m.iter().filter(|n| holders.contains(n)).count() * 2 > m.len();
            let at_commit = at(*commit).unwrap_or(members);
            let next = after(*seq).unwrap_or(members);
            if !backed(members) && !backed(at_commit) && !backed(latest) && !backed(next) {
                let held = members.iter().filter(|n| holders.contains(n)).count();
                self.history.unbacked_commits.push((*seq, held, members.len()));
            }
        }
    }

    // The end-of-run state dump of `SEED=n` replays goes to stderr.
    #[allow(clippy::print_stderr)]
    fn finish(&mut self) {
        self.collect();
        self.judge_commits();
        for i in 0..self.opts.servers {
            if let Some(s) = self.net.node(&addr(i)) {
                let r = s.replica();
                if self.opts.trace {
                    eprintln!(
                        "end: server {i} {:?} {:?} leader {:?} applied {:?} commit {:?} members {:?}",
                        r.role(),
                        r.term(),
                        r.leader(),
                        r.applied(),
                        r.commit(),
                        r.members()
                    );
                }
                let m = s.replica().machine();
                self.history.final_states.push((i, m.last_applied(), m.snapshot()));
            }
        }
    }
}
