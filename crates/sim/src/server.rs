//! [`SimServer`]: a [`Replica`] with a simulated disk and the real [`PeerSeal`], as the
//! testkit network drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::log::RequestId;
use auction_proto::msg::peer::PeerBody;
use auction_proto::{
    Addressee, Channel, ClusterId, ClusterKey, InstanceId, Keyring, NodeId, Opened, PeerCodec,
    PeerSeal, Refusal, Seq, Term, Timestamp,
};
use auction_replica::{Action, Replica};
use auction_testkit::{Dest, Outgoing, SimNode};
use rand_chacha::ChaCha8Rng;

use crate::adversary::{AttackStats, Injected};
use crate::disk::{Disk, Write};
use crate::history::Applied;

/// What travels on the simulated wire: one sealed frame, the channel it travels on, and
/// bookkeeping of the simulation that the receiving replica never sees.
#[derive(Clone, Debug)]
pub struct Wire {
    /// The sealed frame, exactly as the real node sends it.
    pub bytes: Rc<[u8]>,
    /// UDP or TCP.
    pub channel: Channel,
    /// Simulation-only metadata.
    pub meta: Meta,
}

/// What the simulation knows of a frame (for the attacker's bookkeeping).
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Unique in the run: `(sender index << 48) | (sender boot << 32) | frame number`.
    pub id: u64,
    /// The receiver it was sealed for (`None`: unaddressed discovery).
    pub to: Option<Addressee>,
    /// The address it was first sent to (`None`: a broadcast).
    pub dest: Option<SocketAddr>,
    /// Whether the attacker sent this copy, and how it made it.
    pub injected: Option<Injected>,
}

/// The fixed cluster name and key of every simulated server.
pub(crate) fn sim_codec() -> PeerCodec {
    let Ok(key) = ClusterKey::new(&[0x5A; 32]) else { unreachable!("a 32-byte key is valid") };
    PeerCodec::new(ClusterId::from_name("sim"), Keyring::new(key))
}

/// Ordering traffic goes on the peer stream (TCP), the rest as datagrams, as in the node.
fn channel_of(body: &PeerBody) -> Channel {
    match body {
        PeerBody::Ordering(_) => Channel::Stream,
        _ => Channel::Datagram,
    }
}

/// One simulated server: a replica, its seal, its disk, its wall clock, and what it told the
/// outside.
#[derive(Debug)]
pub struct SimServer {
    pub(crate) replica: Replica<ChaCha8Rng>,
    pub(crate) seal: PeerSeal,
    pub(crate) disk: Disk,
    /// Which start of this server index in the run (the history's key; unlike the replica's
    /// incarnation, it keeps counting across a wiped disk).
    pub(crate) boot: u64,
    /// Frames sealed by this boot, and the high bits of their ids (index and boot).
    frames: u32,
    pub(crate) frame_tag: u64,
    out: Vec<Outgoing<SocketAddr, Wire>>,
    /// Frames sent since the run loop last looked (what the attacker may capture).
    pub(crate) tap: Vec<Wire>,
    /// Ids of the frames this boot's seal accepted.
    accepted: BTreeSet<u64>,
    /// Senders whose genuine frames were refused as addressed to an earlier boot of this
    /// node, not yet followed by an accepted addressed frame from them.
    misaddressed: BTreeSet<NodeId>,
    /// What the attacker achieved here, not yet collected.
    pub(crate) attacks: AttackStats,
    /// Broken rules (an injected frame accepted where it must not be), not yet collected.
    pub(crate) violations: Vec<(&'static str, String)>,
    /// The replica refused to bootstrap, having found this instance: it has stopped.
    pub(crate) refused: Option<InstanceId>,
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
        seal: PeerSeal,
        disk: Disk,
        boot: u64,
        start: Instant,
    ) -> Self {
        Self {
            replica,
            seal,
            disk,
            boot,
            frames: 0,
            frame_tag: boot << 32,
            out: Vec::new(),
            tap: Vec::new(),
            accepted: BTreeSet::new(),
            misaddressed: BTreeSet::new(),
            attacks: AttackStats::default(),
            violations: Vec::new(),
            refused: None,
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
        // Nothing after a refusal to bootstrap is valid: the node stops.
        while self.refused.is_none() {
            let Some(action) = self.replica.poll_action() else { break };
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
            Action::Send { to, receiver, body } => {
                if self.trace {
                    eprintln!("{:?} {} -> {to}: {body:?}", now - self.start, self.name());
                }
                self.send(Dest::To(to), receiver, &body);
            }
            Action::Broadcast { body, .. } => self.send(Dest::Broadcast, None, &body),
            Action::PersistInstance { instance } => {
                self.disk.instance = Some(instance);
                if !self.seal.set_instance(instance) {
                    let msg = format!("{} founded {instance} inside another instance", self.name());
                    self.violations.push(("instance", msg));
                }
            }
            Action::BootstrapRefused { instance } => {
                if self.trace {
                    eprintln!("{:?} {} refused to bootstrap", now - self.start, self.name());
                }
                self.refused = Some(instance);
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
            Action::Events { .. } | Action::Learners { .. } | Action::Configuration { .. } => {}
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

    /// Seals `body` for `receiver` and queues it.
    fn send(&mut self, to: Dest<SocketAddr>, receiver: Option<Addressee>, body: &PeerBody) {
        let channel = channel_of(body);
        let bytes = match self.seal.seal(receiver, body, channel) {
            Ok(b) => b,
            Err(e) => {
                self.violations.push(("seal", format!("{}: {e}", self.name())));
                return;
            }
        };
        self.frames += 1;
        let dest = match to {
            Dest::To(a) => Some(a),
            Dest::Broadcast => None,
        };
        let id = self.frame_tag | u64::from(self.frames);
        let meta = Meta { id, to: receiver, dest, injected: None };
        let wire = Wire { bytes: bytes.into(), channel, meta };
        self.tap.push(wire.clone());
        self.out.push(Outgoing { to, msg: wire });
    }

    /// This boot: node id and incarnation.
    fn me(&self) -> Addressee {
        let (node, incarnation) = self.seal.me();
        Addressee { node, incarnation }
    }

    /// Opens one frame off the wire and hands it to the replica as the node does.
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn receive(&mut self, wire: &Wire, now: Instant) {
        let result = self.seal.open(&wire.bytes, wire.channel);
        self.judge(&wire.meta, &result);
        if let (true, Err(r)) = (self.trace, &result) {
            let (t, me, how) = (now - self.start, self.name(), wire.meta.injected);
            eprintln!("{t:?} {me} refused {:x} ({how:?}): {r}", wire.meta.id);
        }
        let Opened { frame, adopted } = match result {
            Ok(o) => o,
            Err(Refusal::StaleReceiver { sender, sender_incarnation, .. }) => {
                self.replica.handle_misaddressed(sender, sender_incarnation, now);
                return;
            }
            Err(_) => return,
        };
        if let Some(instance) = adopted {
            // Persisted before anything acts on it.
            self.disk.instance = Some(instance);
            self.replica.handle_instance(instance, now);
            self.drain(now);
            if self.refused.is_some() {
                return;
            }
        }
        let env = frame.envelope;
        if self.trace {
            let (t, me) = (now - self.start, self.name());
            eprintln!("{t:?} {me} <- {}: {:?}", env.sender, frame.body);
        }
        match (env.to, frame.body) {
            (Some(_), body) => self.replica.handle_peer(env.sender, env.incarnation, body, now),
            (None, PeerBody::Discovery(msg)) => {
                self.replica.handle_unaddressed(env.sender, env.incarnation, msg, now);
            }
            (None, body) => {
                let msg = format!("{} opened unaddressed {body:?}", self.name());
                self.violations.push(("seal", msg));
            }
        }
    }

    /// The attacker's bookkeeping of one opened (or refused) frame; see [`AttackStats`].
    fn judge(&mut self, meta: &Meta, result: &Result<Opened, Refusal>) {
        let me = self.me();
        let accepted = result.is_ok();
        let first = accepted && self.accepted.insert(meta.id);
        if accepted && !first {
            let msg = format!("{} accepted frame {:x} twice", self.name(), meta.id);
            self.violations.push(("adversary", msg));
        }
        let Some(how) = meta.injected else {
            match result {
                Err(Refusal::StaleReceiver { sender, .. }) => {
                    self.attacks.misaddressed += 1;
                    self.misaddressed.insert(*sender);
                }
                Ok(o)
                    if o.frame.envelope.to.is_some()
                        && self.misaddressed.remove(&o.frame.envelope.sender) =>
                {
                    self.attacks.repaired += 1;
                }
                _ => {}
            }
            return;
        };
        let (tally, allowed, what) = match (how, meta.to) {
            (Injected::Garbage, _) => {
                // A flipped bit in the body leaves the header authentic: refusals on the
                // envelope alone (another receiver, its sender, ...) come before decryption.
                // Only the codec may refuse what gets past the envelope.
                let body_decoded = matches!(
                    result,
                    Ok(_) | Err(Refusal::Unaddressed | Refusal::NoInstance | Refusal::Replayed(_))
                );
                if body_decoded {
                    let msg = format!("{}: garbage frame gave {result:?}", self.name());
                    self.violations.push(("adversary", msg));
                }
                (&mut self.attacks.garbage, false, "garbage")
            }
            (Injected::Copy, Some(to)) if to.node != me.node => {
                (&mut self.attacks.wrong_receiver, false, "a copy for another node")
            }
            (Injected::Copy, Some(to)) if to.incarnation != me.incarnation => {
                (&mut self.attacks.old_incarnation, false, "a copy for an earlier boot")
            }
            (Injected::Copy, Some(_)) => (&mut self.attacks.replay, true, "a replay"),
            (Injected::Copy, None) => (&mut self.attacks.other, true, "unaddressed"),
        };
        if accepted {
            tally.accepted += 1;
        } else {
            tally.refused += 1;
        }
        // A copy for this very boot may be accepted once: when the original never arrived.
        if accepted && !(allowed && first) {
            let msg = format!("{} accepted {what} (frame {:x})", self.name(), meta.id);
            self.violations.push(("adversary", msg));
        }
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

    fn handle_message(&mut self, _from: SocketAddr, msg: Wire, now: Instant) {
        if self.refused.is_some() {
            return;
        }
        self.tick_clock(now);
        self.receive(&msg, now);
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.refused.is_some() {
            return;
        }
        self.tick_clock(now);
        self.sync_due(now);
        if self.replica.poll_timeout().is_some_and(|t| t <= now) {
            self.replica.handle_timeout(now);
        }
        self.drain(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.refused.is_some() {
            return None;
        }
        let sync = self.disk.pending.front().map(|(due, _, _)| *due);
        [self.replica.poll_timeout(), sync].into_iter().flatten().min()
    }

    fn drain_outgoing(&mut self) -> Vec<Outgoing<SocketAddr, Wire>> {
        std::mem::take(&mut self.out)
    }
}
