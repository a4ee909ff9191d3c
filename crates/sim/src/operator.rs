//! Operator faults (a wiped data directory, restarted with the original flags), the fault
//! budget that keeps a majority of the configuration alive, and the attacker's turn.
//!
//! A wipe replaces a server's disk with an empty one: the restarted node generates a new node
//! id (the real node keeps its id in its data directory) and starts as it was first started,
//! so the founder (index 0) starts with `Start::Bootstrap`. While the cluster is alive it
//! must find it during its bootstrap probe and refuse ([`auction_replica::Action::BootstrapRefused`]);
//! the node stops, and the operator, told so by the error, restarts it later without
//! `--bootstrap` (`Start::Join`) on the same (no longer empty) data directory.
//!
//! The old node id of a wiped server stays in the configuration until the leader removes it,
//! and never answers again. So a wipe is allowed only while no earlier wiped id is still a
//! member and the lost ids (crashed, stopped, wiped) stay a minority of the configuration,
//! and while a wiped id is a member, crashes obey the same bound: a majority always keeps
//! its disk, and acknowledged bids survive.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auction_proto::{InstanceId, NodeId};
use auction_replica::Start;
use auction_testkit::NetConfig;
use rand::Rng;

use super::{Sim, addr};
use crate::disk::Disk;
use crate::server::SimServer;

/// Address the attacker sends from (not a server: no partition blocks it).
const ATTACKER: [u8; 4] = [10, 0, 0, 250];

impl Sim {
    /// The node id server `i` runs (or ran before it went down) with.
    fn id_of(&self, i: usize) -> Option<NodeId> {
        match self.net.node(&addr(i)) {
            Some(s) => Some(s.disk.node),
            None => self.down.get(&i).map(|d| d.node),
        }
    }

    /// Whether the latest configuration would keep a live majority with server `i` lost
    /// too: the ids lost are those of crashed or stopped servers and every wiped id it
    /// still holds (those never come back).
    fn minority_with(&self, i: usize) -> bool {
        let mut lost: BTreeSet<NodeId> = self.down.values().map(|d| d.node).collect();
        lost.extend(self.wiped.iter().copied());
        lost.extend(self.id_of(i));
        let minority = |members: &[NodeId]| {
            let dead = members.iter().filter(|m| lost.contains(m)).count();
            dead * 2 < members.len()
        };
        // The applied configuration, and each running server's latest one (a leader's may
        // hold an `AddMember` nobody applied yet).
        let views = self.net.nodes().map(|(_, s)| s.replica().members());
        let applied = self.configs.values().next_back().cloned();
        applied.is_some() && applied.into_iter().chain(views).all(|m| m.is_empty() || minority(&m))
    }

    /// Whether server `i` is not a voter while the configuration has fewer than three: then
    /// it may be the learner the leader is promoting, and a cluster growing from one voter to
    /// two stops for good if the new voter dies before the next one joins (the configuration
    /// needs both). That is a double fault no protocol of single-server changes avoids (Raft's
    /// and etcd's neither; an operator must re-found from the survivor's data), so the
    /// operator does not wipe such a server (sim seeds 711, 2532: the leader appended
    /// `AddMember` of a learner wiped a tick earlier).
    fn growing_from_one(&self, i: usize) -> bool {
        let voters = self.configs.values().next_back().cloned().unwrap_or_default();
        voters.len() < 3 && self.id_of(i).is_none_or(|id| !voters.contains(&id))
    }

    /// A crash keeps the disk, so crashes are free unless a wiped id is still a member.
    pub(super) fn may_crash(&self, i: usize) -> bool {
        !self.wiped_member() || self.minority_with(i)
    }

    /// Whether a wiped id is still in the latest configuration.
    fn wiped_member(&self) -> bool {
        let views = self.net.nodes().map(|(_, s)| s.replica().members());
        let mut members = self.configs.values().next_back().cloned().into_iter().chain(views);
        members.any(|m| self.wiped.iter().any(|old| m.contains(old)))
    }

    /// Whether a server is probing for an existing cluster before it bootstraps.
    pub(super) fn probing(&self) -> bool {
        self.net.nodes().any(|(_, s)| s.replica().is_probing())
    }

    /// On a fault turn, now and then, the operator wipes a server (the founder half the
    /// time) within the budget.
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    pub(super) fn maybe_wipe(&mut self) {
        if !self.opts.wipes || !self.wipe_rng.random_bool(0.12) {
            return;
        }
        let n = self.opts.servers;
        let i = if self.wipe_rng.random_bool(0.5) { 0 } else { self.wipe_rng.random_range(0..n) };
        // One wiped id in the configuration at a time: the configuration the run knows
        // (applied) may lag an `AddMember` of the last wiped server's new id.
        if !self.wiped_member() && self.minority_with(i) && !self.growing_from_one(i) {
            self.wipe(i);
        } else if self.opts.trace {
            eprintln!("{:?} operator may not wipe server {i} now", self.net.elapsed());
        }
    }

    /// Wipes server `i`'s data directory and restarts it with its original flags.
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn wipe(&mut self, i: usize) {
        // Judge what the others applied before this disk is gone.
        self.collect();
        let disk = match self.net.crash(&addr(i)) {
            Some(mut s) => {
                self.collect_one(i, &mut s);
                s.disk
            }
            None => match self.down.remove(&i) {
                Some(d) => d,
                None => return,
            },
        };
        let old = disk.node;
        self.wiped_disks.push(disk);
        self.restart_at.remove(&i);
        self.wiped.push(old);
        self.attacks.wipes += 1;
        let node = NodeId::from_bytes(self.wipe_rng.random());
        if self.opts.trace {
            eprintln!("{:?} operator wipes server {i} ({old} -> {node})", self.net.elapsed());
        }
        let start = if i == 0 {
            // The operator restarts it on a healthy network: a founder that cannot reach
            // the cluster during its probe founds a second one, which no protocol can stop.
            self.net.heal();
            self.net.set_config(NetConfig::default());
            Start::Bootstrap { instance: InstanceId::from_bytes(self.wipe_rng.random()) }
        } else {
            Start::Join
        };
        self.start_server(i, Disk::new(node), start);
    }

    /// A server that refused to bootstrap has stopped: the operator restarts it soon as a
    /// joiner (its data directory now holds its id and the instance it found).
    pub(super) fn stop_refused(&mut self, i: usize, s: SimServer) {
        self.attacks.bootstrap_refusals += 1;
        if s.refused != self.instance {
            let msg =
                format!("server {i} found {:?}, the cluster is {:?}", s.refused, self.instance);
            self.violations.push(("instance", msg));
        }
        let delay = Duration::from_millis(self.wipe_rng.random_range(100..600));
        self.restart_at.insert(i, self.net.now() + delay);
        self.down.insert(i, s.disk);
    }

    /// Restarts the stopped servers whose time has come.
    pub(super) fn operator_restarts(&mut self, now: Instant) {
        let due: Vec<usize> =
            self.restart_at.iter().filter(|(_, at)| **at <= now).map(|(i, _)| *i).collect();
        for i in due {
            self.restart(i);
        }
    }

    /// Takes what server `s` sent and what the attacker achieved there.
    pub(super) fn collect_attacks(&mut self, s: &mut SimServer) {
        self.violations.append(&mut s.violations);
        self.attacks.add(&std::mem::take(&mut s.attacks));
        if let Some(mine) = s.disk.instance {
            match self.instance {
                None => self.instance = Some(mine),
                Some(first) if first != mine => {
                    let msg = format!("{} is in instance {mine}, not {first}", s.disk.node);
                    self.violations.push(("instance", msg));
                }
                Some(_) => {}
            }
        }
        let tap = std::mem::take(&mut s.tap);
        if let Some(adv) = &mut self.adversary {
            for w in tap {
                adv.capture(w);
            }
        }
    }

    /// The attacker's turn: inject what it planned.
    pub(super) fn attack(&mut self) {
        let Some(adv) = &mut self.adversary else { return };
        let targets: Vec<_> = (0..self.opts.servers).map(addr).collect();
        let from = std::net::SocketAddr::from((ATTACKER, 7000));
        for (to, w) in adv.plan(&targets) {
            self.attacks.injected += 1;
            self.net.inject(from, to, w);
        }
    }
}
