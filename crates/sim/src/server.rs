//! [`SimServer`]: the real server core ([`Server`]: sessions, admission, the seal and
//! batching, the replica) with a simulated disk and simulated client connections, as the
//! testkit network drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use auction_proto::msg::client::{AdminOp, ClientToServer, Request, RequestBody, Response};
use auction_proto::{
    Addressee, Channel, ClientCodec, ClientId, ClusterId, ClusterKey, Envelope, InstanceId,
    Keyring, NodeId, PeerCodec, Refusal, RequestNo, Term, Timestamp,
};
use auction_replica::Replica;
use auction_server::{Action, ConnId, Server, ServerConfig, Stop};
use auction_testkit::{Dest, Outgoing, SimNode};

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

fn sim_key() -> ClusterKey {
    let Ok(key) = ClusterKey::new(&[0x5A; 32]) else { unreachable!("a 32-byte key is valid") };
    key
}

/// The fixed cluster name and key of every simulated server.
pub(crate) fn sim_codec() -> PeerCodec {
    PeerCodec::new(ClusterId::from_name("sim"), Keyring::new(sim_key()))
}

/// The server settings of every simulated server (the admin token is [`ADMIN_TOKEN`]).
pub(crate) fn sim_server_config() -> ServerConfig {
    ServerConfig::new(ClusterId::from_name("sim"), sim_key(), ADMIN_TOKEN.into())
}

/// The simulated operator's admin token.
const ADMIN_TOKEN: &str = "sim-admin";
/// The operator's connections (clients number theirs from 0).
const OPERATOR_CONNS: ConnId = 1 << 62;
/// The operator's session secret.
const OPERATOR: ClientId = ClientId::from_bytes([0x0A; 16]);

/// One simulated server: a replica, its seal, its disk, its wall clock, and what it told the
/// outside.
#[derive(Debug)]
pub struct SimServer {
    pub(crate) server: Server,
    /// Reads frame headers of what the server sends (the simulation's bookkeeping).
    codec: PeerCodec,
    /// Where `Discover` goes: the simulated network turns it into a broadcast.
    broadcast: SocketAddr,
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
    /// Bytes the server sent to each client connection, not yet read by its client.
    pub(crate) client_out: BTreeMap<ConnId, Vec<u8>>,
    /// Client connections the server closed.
    pub(crate) client_closed: BTreeSet<ConnId>,
    /// Operator connections opened so far.
    operator_conns: u64,
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
        server: Server,
        broadcast: SocketAddr,
        disk: Disk,
        boot: u64,
        start: Instant,
    ) -> Self {
        Self {
            server,
            codec: sim_codec(),
            broadcast,
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
            client_out: BTreeMap::new(),
            client_closed: BTreeSet::new(),
            operator_conns: 0,
            applied: Vec::new(),
            led: BTreeSet::new(),
            trace: false,
        }
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let ms = i64::try_from((now - self.start).as_millis()).unwrap_or(i64::MAX);
        Timestamp(EPOCH_MS.saturating_add_signed(ms.saturating_add(self.skew_ms)))
    }

    /// The replica inside the server core.
    pub(crate) fn replica(&self) -> &Replica {
        self.server.replica()
    }

    /// Feeds the wall clock, as the node does on every loop turn.
    pub(crate) fn tick_clock(&mut self, now: Instant) {
        let wall = self.wall(now);
        self.server.handle_wall_clock(wall, now);
    }

    /// Seals what the core holds for the stream (each input is a burst of its own here) and
    /// carries out the core's actions in order.
    pub(crate) fn drain(&mut self, now: Instant) {
        self.server.flush();
        // Nothing after a refusal to bootstrap is valid: the node stops.
        while self.refused.is_none() {
            let Some(action) = self.server.poll_action() else { break };
            self.carry_out(action, now);
        }
        if self.replica().is_leading() {
            self.led.insert(self.replica().term());
        }
    }

    /// A client connection `conn` opens.
    pub(crate) fn client_connect(&mut self, conn: ConnId, from: SocketAddr, now: Instant) {
        self.tick_clock(now);
        self.server.handle_client_connected(conn, from, now);
        self.drain(now);
    }

    /// A client sends `bytes` on `conn`.
    pub(crate) fn client_send(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        self.tick_clock(now);
        self.server.handle_client_bytes(conn, bytes, now);
        self.drain(now);
    }

    /// A client closes `conn`.
    pub(crate) fn client_close(&mut self, conn: ConnId, now: Instant) {
        self.client_out.remove(&conn);
        self.client_closed.remove(&conn);
        self.server.handle_client_closed(conn, now);
        self.drain(now);
    }

    /// The operator's `auction-client admin SERVER OP`: a connection, `Hello`, the admin
    /// request; its response.
    pub(crate) fn admin(&mut self, op: AdminOp, now: Instant) -> Option<Response> {
        self.operator_conns += 1;
        let conn = OPERATOR_CONNS + self.operator_conns;
        let from = SocketAddr::from(([10, 0, 9, 9], 9000));
        self.client_connect(conn, from, now);
        let codec = ClientCodec::default();
        let mut bytes = Vec::new();
        let hello = RequestBody::Hello { client: OPERATOR, seen: auction_proto::Seq::ZERO };
        let admin = RequestBody::Admin { token: ADMIN_TOKEN.into(), op };
        for (no, body) in [(1, hello), (2, admin)] {
            let msg = ClientToServer::Request(Request { no: RequestNo(no), body });
            if codec.encode_into(&msg, &mut bytes).is_err() {
                return None;
            }
        }
        self.client_send(conn, &bytes, now);
        let out = self.client_out.remove(&conn).unwrap_or_default();
        self.client_close(conn, now);
        let mut at = 0;
        let mut last = None;
        while let Ok(Some((msg, used))) =
            codec.decode_stream::<auction_proto::msg::client::ServerToClient>(&out[at..])
        {
            at += used;
            if let auction_proto::msg::client::ServerToClient::Response(r) = msg {
                last = Some(r);
            }
        }
        last.filter(|r| r.no == RequestNo(2))
    }

    // The message trace of `SEED=n` replays goes to stderr.
    #[allow(clippy::print_stderr)]
    fn carry_out(&mut self, action: Action, now: Instant) {
        match action {
            Action::PeerDatagram { to, bytes } => {
                let dest = if to == self.broadcast { Dest::Broadcast } else { Dest::To(to) };
                self.send(dest, Channel::Datagram, bytes, now);
            }
            Action::PeerStream { to, bytes } => {
                // The wire carries frames; a stream buffer holds whole ones, in order.
                let mut at = 0;
                while let Ok(Some(h)) = self.codec.decode_header(&bytes[at..]) {
                    let Some(frame) = bytes.get(at..at + h.frame_len) else { break };
                    self.send(Dest::To(to), Channel::Stream, frame.to_vec(), now);
                    at += h.frame_len;
                }
                if at != bytes.len() {
                    self.violations
                        .push(("seal", format!("{}: a torn stream buffer", self.name())));
                }
            }
            Action::DiscoveryReply { .. } | Action::ReadClient { .. } => {}
            Action::ToClient { conn, bytes } => {
                self.client_out.entry(conn).or_default().extend_from_slice(&bytes);
            }
            Action::CloseClient { conn } => {
                self.client_closed.insert(conn);
            }
            Action::PersistInstance { instance } => {
                if self.disk.instance.is_some_and(|i| i != instance) {
                    let msg = format!("{} founded {instance} inside another instance", self.name());
                    self.violations.push(("instance", msg));
                }
                self.disk.instance = Some(instance);
            }
            Action::Stop(Stop::BootstrapRefused { instance }) => {
                if self.trace {
                    eprintln!("{:?} {} refused to bootstrap", now - self.start, self.name());
                }
                self.refused = Some(instance);
            }
            // Snapshots in the simulation come from real replicas and always decode.
            Action::Stop(stop) => panic!("{} stopped: {stop:?}", self.name()),
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
            Action::Applied { entry } => self.applied.push(Applied::Entry(entry)),
            Action::WriteApplied { .. } => {}
            Action::Log(auction_replica::Action::Role { role, term, leader }) => {
                if self.trace {
                    eprintln!(
                        "{:?} {} role {role:?} {term:?} {leader:?}",
                        now - self.start,
                        self.name()
                    );
                }
            }
            Action::Log(_) => {}
        }
    }

    fn write(&mut self, id: auction_ordering::StoreId, w: Write, now: Instant) {
        self.disk.pending.push_back((now + self.fsync, id, w));
        if self.lying_disk {
            self.server.handle_stored(id, now);
        }
    }

    /// Queues one sealed frame.
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn send(&mut self, to: Dest<SocketAddr>, channel: Channel, bytes: Vec<u8>, now: Instant) {
        let receiver = match self.codec.decode_header(&bytes) {
            Ok(Some(h)) => h.envelope.to,
            _ => {
                self.violations
                    .push(("seal", format!("{}: sent an unreadable frame", self.name())));
                return;
            }
        };
        if self.trace {
            eprintln!(
                "{:?} {} -> {to:?}: {channel:?} to {receiver:?}",
                now - self.start,
                self.name()
            );
        }
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
        let (node, incarnation) = self.server.seal().me();
        Addressee { node, incarnation }
    }

    /// Hands one frame off the wire to the server core, as the node does.
    #[allow(clippy::print_stderr)] // the message trace of `SEED=n` replays
    fn receive(&mut self, from: SocketAddr, wire: &Wire, now: Instant) {
        let result = self.server.handle_peer_bytes(&wire.bytes, wire.channel, from, now);
        self.judge(&wire.meta, &result);
        if self.trace {
            let (t, me, how) = (now - self.start, self.name(), wire.meta.injected);
            match &result {
                Err(r) => eprintln!("{t:?} {me} refused {:x} ({how:?}): {r}", wire.meta.id),
                Ok(env) => eprintln!("{t:?} {me} <- {}: {:x}", env.sender, wire.meta.id),
            }
        }
    }

    /// The attacker's bookkeeping of one opened (or refused) frame; see [`AttackStats`].
    fn judge(&mut self, meta: &Meta, result: &Result<Envelope, Refusal>) {
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
                Ok(env) if env.to.is_some() && self.misaddressed.remove(&env.sender) => {
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
        self.replica().me().peer_addr.to_string()
    }

    /// Completes the syncs due by `now`.
    fn sync_due(&mut self, now: Instant) {
        while self.disk.pending.front().is_some_and(|(due, _, _)| *due <= now) {
            let Some((_, id, w)) = self.disk.pending.pop_front() else { break };
            self.disk.apply(w);
            if !self.lying_disk {
                self.server.handle_stored(id, now);
                self.drain(now);
            }
        }
    }
}

impl SimNode for SimServer {
    type Addr = SocketAddr;
    type Msg = Wire;

    fn handle_message(&mut self, from: SocketAddr, msg: Wire, now: Instant) {
        if self.refused.is_some() {
            return;
        }
        self.tick_clock(now);
        self.receive(from, &msg, now);
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.refused.is_some() {
            return;
        }
        self.tick_clock(now);
        self.sync_due(now);
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        self.drain(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.refused.is_some() {
            return None;
        }
        let sync = self.disk.pending.front().map(|(due, _, _)| *due);
        [self.server.poll_timeout(), sync].into_iter().flatten().min()
    }

    fn drain_outgoing(&mut self) -> Vec<Outgoing<SocketAddr, Wire>> {
        std::mem::take(&mut self.out)
    }
}
