//! [`Server`]: the replica, the peer seal and batching, and the client sessions, as one
//! sans-IO state machine.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::client::{ClientToServer, ServerInfo, ServerToClient};
use auction_proto::msg::peer::{MemberState, PeerBody};
use auction_proto::{
    Channel, ClientCodec, ClusterId, ClusterKey, Envelope, Opened, PeerFrame, PeerSeal, Refusal,
    Timestamp,
};
use auction_replica::Replica;
use tracing::{debug, info, warn};

use crate::action::{Action, ConnId, Stop};
use crate::batch::{Batch, MAX_HELD, Sealed};
use crate::limit::RateLimit;
use crate::sessions::{Effect, Sessions};

/// How often the core does its periodic work (expiring writes, idle connections, the client
/// count it announces, the end of a leave).
pub const TICK: Duration = Duration::from_millis(250);
/// How long a leader shutting down waits for another leader before it stops anyway.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(5);
/// How long a leaving node waits for its removal to commit before it stops anyway.
pub const LEAVE_GRACE: Duration = Duration::from_secs(10);
/// At most one WARN line per this long for frames of another cluster instance.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// `Here` answers per second to one source address at most. A shell asks once per discovery.
const HERE_PER_SOURCE: u32 = 8;
/// `Here` answers per second in all at most (also bounds the table of sources).
const HERE_PER_SECOND: u32 = 1024;

/// The server's settings beyond the replica's.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The cluster clients look for with `FindServers`.
    pub cluster: ClusterId,
    /// Bidder tokens are derived with it (every server derives the same one).
    pub token_key: ClusterKey,
    /// Admin requests must present it.
    pub admin_token: String,
    /// Most client connections; more are closed at once.
    pub max_clients: usize,
    /// A client connection that sends nothing this long is closed.
    pub client_idle: Duration,
    /// A client connection that has not said `Hello` this long after it was accepted is
    /// closed, so connections that never start a session cannot hold the client slots.
    pub hello_timeout: Duration,
    /// Most client connections from one IP address (so one host cannot take every slot).
    pub max_clients_per_source: usize,
    /// The client frame codec (its payload limit bounds every client frame).
    pub client_codec: ClientCodec,
}

impl ServerConfig {
    /// The defaults of `auction-node run` for this cluster, key and admin token.
    pub fn new(cluster: ClusterId, token_key: ClusterKey, admin_token: String) -> Self {
        Self {
            cluster,
            token_key,
            admin_token,
            max_clients: 1024,
            client_idle: Duration::from_secs(600),
            hello_timeout: Duration::from_secs(5),
            max_clients_per_source: 128,
            client_codec: ClientCodec::default(),
        }
    }
}

/// Counters of refused peer input and dropped output, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Frames refused by the codec (bad tag, wrong cluster, unknown key, junk...).
    pub rejected: u64,
    /// Frames refused as replays (or own, or on the wrong channel).
    pub replayed: u64,
    /// Authentic frames refused for their envelope: addressed to another node or an earlier
    /// boot of this one, of another cluster instance, or unaddressed and not discovery.
    pub misaddressed: u64,
    /// Outbound messages that could not be encoded.
    pub dropped: u64,
}

/// One server: see the crate documentation.
///
/// Invariants: after every input, the replica's actions are drained into the action queue
/// (the replica holds none) and every client's output, credit and close with them; once a
/// [`Stop`] is queued, no input changes anything. Checked after every input in debug builds
/// with the sessions' bounds (`Sessions::check_invariants`).
#[derive(Debug)]
pub struct Server {
    replica: Replica,
    seal: PeerSeal,
    sessions: Sessions,
    batch: Batch,
    config: ServerConfig,
    here_limit: RateLimit,
    actions: VecDeque<Action>,
    stats: PeerStats,
    next_tick: Option<Instant>,
    leaving: Option<Instant>,
    /// Shutting down as a leader: handing over until then.
    handoff: Option<Instant>,
    stopped: bool,
    other_instance_warned: Option<Instant>,
}

impl Server {
    /// A server around `replica` (built from what the disk holds), sealing peer frames with
    /// `seal`.
    pub fn new(replica: Replica, seal: PeerSeal, config: ServerConfig) -> Self {
        let sessions =
            Sessions::new(&config.admin_token, config.token_key.clone(), config.client_codec);
        Self {
            replica,
            seal,
            sessions,
            batch: Batch::default(),
            config,
            here_limit: RateLimit::new(HERE_PER_SOURCE, HERE_PER_SECOND, Duration::from_secs(1)),
            actions: VecDeque::new(),
            stats: PeerStats::default(),
            next_tick: None,
            leaving: None,
            handoff: None,
            stopped: false,
            other_instance_warned: None,
        }
    }

    /// The replica (reads: state machine, role, report...).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The replica, to change it directly: for simulations and tests (an operator's
    /// step-down, planted faults). Call [`Server::handle_timeout`] or another input after,
    /// so its actions are drained.
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// The seal's node, boot and instance.
    pub fn seal(&self) -> &PeerSeal {
        &self.seal
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.sessions.len()
    }

    /// Client writes waiting for their outcome.
    pub fn pending_writes(&self) -> usize {
        self.sessions.pending()
    }

    /// Counters of refused peer input.
    pub fn peer_stats(&self) -> PeerStats {
        self.stats
    }

    /// Client connections turned away at the edge.
    pub fn admission_stats(&self) -> crate::AdmissionStats {
        self.sessions.admission
    }

    /// Planted bugs in session handling (simulations only).
    #[doc(hidden)]
    #[cfg(feature = "faults")]
    pub fn set_session_faults(&mut self, faults: crate::SessionFaults) {
        self.sessions.faults = faults;
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Server::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        [self.replica.poll_timeout(), self.next_tick, self.handoff].into_iter().flatten().min()
    }

    /// Whether stream messages wait for [`Server::flush`].
    pub fn has_held(&self) -> bool {
        self.batch.len() > 0
    }

    /// The wall clock, on every loop turn.
    pub fn handle_wall_clock(&mut self, wall: Timestamp, now: Instant) {
        self.sessions.wall = wall;
        self.replica.handle_wall_clock(wall, now);
        self.after(now);
    }

    /// Timers: the replica's deadline, the periodic tick, the end of a handoff. Early, late
    /// and repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self.replica.poll_timeout().is_some_and(|t| t <= now) {
            self.replica.handle_timeout(now);
        }
        if self.next_tick.is_none_or(|t| t <= now) {
            self.next_tick = Some(now + TICK);
            self.tick(now);
        }
        self.after(now);
    }

    /// A `Store` or `InstallSnapshot` is durable.
    pub fn handle_stored(&mut self, id: auction_ordering::StoreId, now: Instant) {
        if self.stopped {
            return;
        }
        self.replica.handle_stored(id, now);
        self.after(now);
    }

    /// Shut down: a leader first hands its leadership to the most up-to-date voter (etcd does
    /// the same: a planned restart then costs one election round trip, not a failure
    /// detection) and stops once another leads, or after [`HANDOFF_WAIT`].
    pub fn handle_shutdown(&mut self, now: Instant) {
        if self.stopped || self.handoff.is_some() {
            return;
        }
        if self.replica.members().len() > 1 && self.replica.step_down(now) {
            info!("shutting down: handing the leadership over first");
            self.handoff = Some(now + HANDOFF_WAIT);
        } else {
            info!("shutting down");
            self.stop(Stop::Shutdown { handed_over: false });
        }
        self.after(now);
    }

    /// One datagram from the peer socket (or a stream frame read whole, in simulations):
    /// authenticated, replay-checked and handed to the replica. Returns the accepted frame's
    /// envelope, or why it was refused.
    ///
    /// # Errors
    /// The seal's refusal; nothing changed but the counters (a `StaleReceiver` tells the
    /// replica the sender's boot).
    pub fn handle_peer_bytes(
        &mut self,
        bytes: &[u8],
        channel: Channel,
        from: SocketAddr,
        now: Instant,
    ) -> Result<Envelope, Refusal> {
        let opened = self.seal.open(bytes, channel);
        if let Err(Refusal::Decode(e)) = &opened {
            self.stats.rejected += 1;
            debug!(%from, error = %e, "peer frame refused");
        }
        self.deliver(opened, now)
    }

    /// A stream frame a reader already authenticated and decrypted with a clone of the
    /// seal's codec: the seal's remaining checks, then the replica.
    ///
    /// # Errors
    /// As [`Server::handle_peer_bytes`].
    pub fn handle_peer_frame(
        &mut self,
        frame: PeerFrame,
        now: Instant,
    ) -> Result<Envelope, Refusal> {
        let opened = self.seal.admit(frame, Channel::Stream);
        self.deliver(opened, now)
    }

    /// A datagram on the discovery port: servers' `Discover` (peer frames) or clients'
    /// `FindServers` (answered, within a rate limit per source: the answer goes to whatever
    /// address the datagram claims); anything else is ignored.
    pub fn handle_discovery(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        if bytes.starts_with(&auction_proto::codec::PEER_MAGIC) {
            let _ = self.handle_peer_bytes(bytes, Channel::Datagram, from, now);
            return;
        }
        let codec = self.config.client_codec;
        let Ok(ClientToServer::FindServers { cluster }) =
            codec.decode_datagram::<ClientToServer>(bytes)
        else {
            return;
        };
        if cluster != self.config.cluster || self.stopped {
            return;
        }
        if !self.here_limit.allow(from.ip(), now) {
            debug!(%from, "FindServers over the rate limit; not answered");
            return;
        }
        let me = self.replica.me();
        let here = ServerToClient::Here(ServerInfo {
            node: me.node,
            incarnation: me.incarnation,
            client_addr: me.client_addr,
            state: MemberState::Alive,
            clients: u32::try_from(self.sessions.len()).unwrap_or(u32::MAX),
        });
        if let Ok(bytes) = codec.encode(&here) {
            self.actions.push_back(Action::DiscoveryReply { to: from, bytes });
        }
    }

    /// A client connected from `addr` (the driver numbers connections).
    pub fn handle_client_connected(&mut self, conn: ConnId, addr: SocketAddr, now: Instant) {
        if self.stopped {
            self.actions.push_back(Action::CloseClient { conn });
            return;
        }
        let (max, per_source) = (self.config.max_clients, self.config.max_clients_per_source);
        self.sessions.connect(conn, addr, max, per_source, now);
        self.after(now);
    }

    /// Bytes read from connection `conn` (never more than it was granted with
    /// [`Action::ReadClient`]).
    pub fn handle_client_bytes(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if self.stopped {
            return;
        }
        let effect = self.sessions.intake(&mut self.replica, conn, bytes, now);
        self.effect(effect, now);
        self.after(now);
    }

    /// Connection `conn` ended (either side closed it). Its pending writes stay pending, so a
    /// retry of the same request on another connection is answered there.
    pub fn handle_client_closed(&mut self, conn: ConnId, now: Instant) {
        self.sessions.close(conn);
        self.after(now);
    }

    /// The driver could not queue more output to `conn`: the client does not read what it is
    /// sent, and is disconnected.
    pub fn handle_client_stalled(&mut self, conn: ConnId, now: Instant) {
        self.sessions.disconnect(conn, "does not read what it is sent", false);
        self.after(now);
    }

    /// Seals the held stream messages: one [`Action::PeerStream`] per peer. The driver calls
    /// it when no input is ready (so messages of a burst of inputs merge), and before it
    /// stops.
    pub fn flush(&mut self) {
        let (out, dropped) = self.batch.flush(&mut self.seal);
        self.stats.dropped += dropped;
        for (to, bytes) in out {
            self.actions.push_back(Action::PeerStream { to, bytes });
        }
    }

    fn effect(&mut self, effect: Effect, now: Instant) {
        if effect == Effect::Leave && self.leaving.is_none() {
            info!("leaving the cluster on an admin request");
            self.leaving = Some(now);
        }
    }

    fn stop(&mut self, why: Stop) {
        if !self.stopped {
            self.stopped = true;
            self.actions.push_back(Action::Stop(why));
        }
    }

    /// Periodic work.
    fn tick(&mut self, now: Instant) {
        let applied = self.replica.applied();
        self.sessions.expire(now, applied);
        self.sessions.close_idle(self.config.client_idle, self.config.hello_timeout, now);
        self.replica.set_client_count(u32::try_from(self.sessions.len()).unwrap_or(u32::MAX));
        let left = self.leaving.is_some_and(|t| {
            self.replica.has_left() || now.saturating_duration_since(t) >= LEAVE_GRACE
        });
        if left {
            self.stop(Stop::Left);
        }
    }

    /// Hands what the seal accepted to the replica (an instance adopted from it is made
    /// durable first), and tells it of authentic frames sent to an earlier boot of this node.
    fn deliver(
        &mut self,
        opened: Result<Opened, Refusal>,
        now: Instant,
    ) -> Result<Envelope, Refusal> {
        self.count(&opened);
        if self.stopped {
            return opened.map(|o| o.frame.envelope);
        }
        let result = match opened {
            Ok(Opened { frame, adopted }) => {
                if let Some(instance) = adopted {
                    info!(%instance, "joined cluster instance");
                    self.actions.push_back(Action::PersistInstance { instance });
                    self.replica.handle_instance(instance, now);
                    self.drain_replica(now);
                }
                let env = frame.envelope;
                if !self.stopped {
                    tracing::trace!(sender = %env.sender, inc = env.incarnation.0, to = ?env.to,
                        body = ?frame.body, "peer frame");
                    match (env.to, frame.body) {
                        (None, PeerBody::Discovery(msg)) => {
                            self.replica.handle_unaddressed(env.sender, env.incarnation, msg, now);
                        }
                        // The seal refuses unaddressed frames that are not discovery.
                        (None, _) => {}
                        (Some(_), body) => {
                            self.replica.handle_peer(env.sender, env.incarnation, body, now);
                        }
                    }
                }
                Ok(env)
            }
            Err(Refusal::StaleReceiver { sender, sender_incarnation, got, current }) => {
                self.replica.handle_misaddressed(sender, sender_incarnation, now);
                Err(Refusal::StaleReceiver { sender, sender_incarnation, got, current })
            }
            Err(Refusal::OtherInstance { got, mine }) => {
                if self.other_instance_warned.is_none_or(|at| now >= at + WARN_EVERY) {
                    self.other_instance_warned = Some(now);
                    warn!(other = %got, mine = %mine,
                        "frame of another cluster instance with this key and name refused \
                         (a second cluster on the network: a re-bootstrapped server?)");
                }
                Err(Refusal::OtherInstance { got, mine })
            }
            Err(e) => Err(e),
        };
        self.after(now);
        result
    }

    fn count(&mut self, result: &Result<Opened, Refusal>) {
        match result {
            Ok(_) | Err(Refusal::Decode(_)) => {}
            Err(Refusal::Replayed(_) | Refusal::FromSelf | Refusal::WrongChannel) => {
                self.stats.replayed += 1;
            }
            Err(e) => {
                self.stats.misaddressed += 1;
                debug!(error = %e, "peer frame refused");
            }
        }
    }

    /// After every input: the replica's actions, connections unblocked by answers, the
    /// handoff, then the clients' output.
    fn after(&mut self, now: Instant) {
        self.drain_replica(now);
        while !self.sessions.blocked.is_empty() && !self.stopped {
            let effect = self.sessions.resume(&mut self.replica, now);
            self.effect(effect, now);
            let before = self.actions.len();
            self.drain_replica(now);
            if self.actions.len() == before && effect == Effect::None {
                break;
            }
        }
        if let Some(until) = self.handoff {
            let other = self.replica.leader().is_some_and(|l| l != self.replica.me().node);
            if other || now >= until {
                info!(handed_over = other, leader = ?self.replica.leader(), "shutting down");
                self.stop(Stop::Shutdown { handed_over: other });
            }
        }
        if self.batch.len() >= MAX_HELD {
            self.flush();
        }
        self.emit_clients();
        debug_assert!({
            self.sessions.check_invariants();
            true
        });
    }

    /// Moves the clients' output, credit and closes into the action queue.
    fn emit_clients(&mut self) {
        for conn in std::mem::take(&mut self.sessions.dirty) {
            let Some(c) = self.sessions.conns.get_mut(&conn) else { continue };
            if !c.out.is_empty() {
                let bytes = std::mem::take(&mut c.out);
                self.actions.push_back(Action::ToClient { conn, bytes });
            }
            if c.credit > 0 {
                let bytes = std::mem::take(&mut c.credit);
                self.actions.push_back(Action::ReadClient { conn, bytes });
            }
        }
        for conn in std::mem::take(&mut self.sessions.closed) {
            if let Some(c) = self.sessions.conns.get_mut(&conn) {
                if !c.out.is_empty() {
                    let bytes = std::mem::take(&mut c.out);
                    self.actions.push_back(Action::ToClient { conn, bytes });
                }
            }
            self.sessions.close(conn);
            self.actions.push_back(Action::CloseClient { conn });
        }
    }

    /// Translates the replica's actions, in order.
    fn drain_replica(&mut self, now: Instant) {
        use auction_replica::Action as R;
        while !self.stopped {
            let Some(action) = self.replica.poll_action() else { break };
            match action {
                R::Send { to, receiver, body } => {
                    tracing::trace!(%to, ?receiver, ?body, "send");
                    self.send(to, receiver, body);
                }
                R::Broadcast { to, body } => self.send(to, None, body),
                R::PersistInstance { instance } => {
                    info!(%instance, "founded a new cluster instance");
                    // Frames sealed after this carry it; the driver makes it durable before
                    // it sends any of them.
                    if !self.seal.set_instance(instance) {
                        warn!(%instance, "founded an instance inside another one");
                    }
                    self.actions.push_back(Action::PersistInstance { instance });
                }
                R::BootstrapRefused { instance } => self.stop(Stop::BootstrapRefused { instance }),
                R::Halt { reason } => self.stop(Stop::Halted { reason }),
                R::PersistTerm { term, accepted } => {
                    self.actions.push_back(Action::PersistTerm { term, accepted });
                }
                R::Store { id, from, entries } => {
                    self.actions.push_back(Action::Store { id, from, entries });
                }
                R::InstallSnapshot { id, snapshot } => {
                    self.actions.push_back(Action::InstallSnapshot { id, snapshot });
                }
                R::SaveSnapshot { snapshot } => {
                    self.actions.push_back(Action::SaveSnapshot { snapshot });
                }
                R::Complete { request, seq, outcome } => {
                    let waited = self.sessions.complete(request, seq, outcome, now);
                    self.actions.push_back(Action::WriteApplied { waited });
                }
                R::Events { seq, at, events } => self.sessions.push(seq, at, &events),
                R::Applied { entry } => self.actions.push_back(Action::Applied { entry }),
                log @ (R::Role { .. } | R::Configuration { .. } | R::Learners { .. }) => {
                    self.actions.push_back(Action::Log(log));
                }
            }
        }
    }

    fn send(&mut self, to: SocketAddr, receiver: Option<auction_proto::Addressee>, body: PeerBody) {
        match self.batch.send(&mut self.seal, to, receiver, body) {
            Sealed::Datagram(bytes) => self.actions.push_back(Action::PeerDatagram { to, bytes }),
            Sealed::Held => {}
            Sealed::Dropped => self.stats.dropped += 1,
        }
    }
}
