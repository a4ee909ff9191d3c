//! [`SimServer`]: a [`Replica`] with a simulated disk, as the testkit network drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::log::RequestId;
use auction_proto::msg::peer::PeerBody;
use auction_proto::{Incarnation, NodeId, Seq, Term, Timestamp};
use auction_replica::{Action, Replica};
use auction_testkit::{Dest, Outgoing, SimNode};
use rand_chacha::ChaCha8Rng;

use crate::disk::{Disk, Write};
use crate::history::Applied;

/// What travels on the simulated wire: the authenticated envelope's sender and the body.
#[derive(Clone, Debug)]
pub struct Wire {
    /// Sender.
    pub from: NodeId,
    /// Sender's incarnation.
    pub incarnation: Incarnation,
    /// The body.
    pub body: PeerBody,
}

/// One simulated server: a replica, its disk, its wall clock, and what it told the outside.
#[derive(Debug)]
pub struct SimServer {
    pub(crate) replica: Replica<ChaCha8Rng>,
    pub(crate) disk: Disk,
    pub(crate) incarnation: u64,
    out: Vec<Outgoing<SocketAddr, Wire>>,
    /// Wall clock: `epoch + (now - start) + skew`.
    pub(crate) start: Instant,
    pub(crate) skew_ms: i64,
    pub(crate) fsync: Duration,
    /// Planted bug: confirm writes at once, sync them later (lost on a crash).
    pub(crate) lying_disk: bool,
    /// Requests submitted here and not yet answered.
    pub(crate) mine: BTreeSet<RequestId>,
    /// Answers for requests submitted here.
    pub(crate) answers: BTreeMap<RequestId, (Seq, Outcome)>,
    /// Applied entries not yet collected by the run loop.
    pub(crate) applied: Vec<Applied>,
    /// Terms this server led (finished a view change in).
    pub(crate) led: BTreeSet<Term>,
    /// Message trace (only with `SEED=n`).
    pub(crate) trace: bool,
}

/// Sequencer epoch of the simulation's wall clock.
const EPOCH_MS: u64 = 1_700_000_000_000;

impl SimServer {
    pub(crate) fn new(
        replica: Replica<ChaCha8Rng>,
        disk: Disk,
        incarnation: u64,
        start: Instant,
    ) -> Self {
        Self {
            replica,
            disk,
            incarnation,
            out: Vec::new(),
            start,
            skew_ms: 0,
            fsync: Duration::from_millis(2),
            lying_disk: false,
            mine: BTreeSet::new(),
            answers: BTreeMap::new(),
            applied: Vec::new(),
            led: BTreeSet::new(),
            trace: false,
        }
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let ms = i64::try_from((now - self.start).as_millis()).unwrap_or(i64::MAX);
        Timestamp(EPOCH_MS.saturating_add_signed(ms.saturating_add(self.skew_ms)))
    }

    /// Feeds the wall clock, as the node does on every loop turn.
    pub(crate) fn tick_clock(&mut self, now: Instant) {
        let wall = self.wall(now);
        self.replica.handle_wall_clock(wall, now);
    }

    /// Carries out the replica's actions in order.
    pub(crate) fn drain(&mut self, now: Instant) {
        while let Some(action) = self.replica.poll_action() {
            self.carry_out(action, now);
        }
        if self.replica.is_leading() {
            self.led.insert(self.replica.term());
        }
    }

    // The message trace of `SEED=n` replays goes to stderr.
    #[allow(clippy::print_stderr)]
    fn carry_out(&mut self, action: Action, now: Instant) {
        match action {
            Action::Send { to, body } => {
                if self.trace {
                    eprintln!("{:?} {} -> {to}: {body:?}", now - self.start, self.name());
                }
                self.out.push(Outgoing { to: Dest::To(to), msg: self.wire(body) });
            }
            Action::Broadcast { body, .. } => {
                self.out.push(Outgoing { to: Dest::Broadcast, msg: self.wire(body) });
            }
            Action::PersistTerm { term, accepted } => {
                self.disk.term = term;
                self.disk.accepted = accepted;
            }
            Action::Store { id, from, entries } => {
                self.write(id, Write::Store { from, entries }, now);
            }
            Action::InstallSnapshot { id, snapshot } => {
                self.applied.push(Applied::Installed(snapshot.last_included.seq));
                self.write(id, Write::Install(snapshot), now);
            }
            Action::SaveSnapshot { snapshot } => self.disk.save_snapshot(snapshot),
            Action::Complete { request, seq, outcome } => {
                if self.mine.remove(&request) {
                    self.answers.insert(request, (seq, outcome));
                }
            }
            Action::Applied { entry } => self.applied.push(Applied::Entry(entry)),
            // Snapshots in the simulation come from real replicas and always decode.
            Action::Halt { reason } => panic!("{} halted: {reason}", self.name()),
            Action::Events { .. } => {}
            Action::Role { role, term, leader } => {
                if self.trace {
                    eprintln!(
                        "{:?} {} role {role:?} {term:?} {leader:?}",
                        now - self.start,
                        self.name()
                    );
                }
            }
        }
    }

    fn write(&mut self, id: auction_ordering::StoreId, w: Write, now: Instant) {
        self.disk.pending.push_back((now + self.fsync, id, w));
        if self.lying_disk {
            self.replica.handle_stored(id, now);
        }
    }

    fn wire(&self, body: PeerBody) -> Wire {
        Wire { from: self.replica.me().node, incarnation: Incarnation(self.incarnation), body }
    }

    fn name(&self) -> String {
        self.replica.me().peer_addr.to_string()
    }

    /// Completes the syncs due by `now`.
    fn sync_due(&mut self, now: Instant) {
        while self.disk.pending.front().is_some_and(|(due, _, _)| *due <= now) {
            let Some((_, id, w)) = self.disk.pending.pop_front() else { break };
            self.disk.apply(w);
            if !self.lying_disk {
                self.replica.handle_stored(id, now);
                self.drain(now);
            }
        }
    }
}

impl SimNode for SimServer {
    type Addr = SocketAddr;
    type Msg = Wire;

    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn handle_message(&mut self, _from: SocketAddr, msg: Wire, now: Instant) {
        self.tick_clock(now);
        if self.trace {
            eprintln!("{:?} {} <- {}: {:?}", now - self.start, self.name(), msg.from, msg.body);
        }
        self.replica.handle_peer(msg.from, msg.incarnation, msg.body, now);
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.tick_clock(now);
        self.sync_due(now);
        if self.replica.poll_timeout().is_some_and(|t| t <= now) {
            self.replica.handle_timeout(now);
        }
        self.drain(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let sync = self.disk.pending.front().map(|(due, _, _)| *due);
        [self.replica.poll_timeout(), sync].into_iter().flatten().min()
    }

    fn drain_outgoing(&mut self) -> Vec<Outgoing<SocketAddr, Wire>> {
        std::mem::take(&mut self.out)
    }
}
