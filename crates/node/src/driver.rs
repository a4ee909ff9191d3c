//! The driver: one task owns the replica (all protocol state) and the client sessions. It
//! `select!`s over the peer sockets, client connections, storage completions, the replica's
//! next deadline and shutdown; feeds what arrives into the replica; then carries out the
//! replica's actions strictly in order (STYLE.md point 4).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use auction_proto::msg::client::{ClientToServer, ServerInfo, ServerToClient};
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::ConfigChange;
use auction_proto::msg::peer::{MemberState, PeerBody};
use auction_proto::{ClientCodec, InstanceId, Keyring, Opened, PeerCodec, PeerSeal, Refusal};
use auction_replica::{Action, Durable, Replica, ReplicaConfig, Start};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::clients::{self, ClientEvent};
use crate::metrics::MetricsHandle;
use crate::session::{Effect, Sessions, wall_clock};
use crate::settings::NodeSettings;
use crate::storage::{Done, FsyncPolicy, Job, Storage, StorageError, WriterHandle, spawn_writer};
use crate::transport::{Channel, PeerNet, PeerSockets, TransportLimits};

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be opened or recovered.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A socket could not be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The storage writer failed (a failed fsync cannot be retried safely): the node stops.
    #[error("storage failed: {0}")]
    StorageFailed(std::sync::Arc<StorageError>),
    /// The replica cannot go on without diverging; the node stops.
    #[error("halted: {0}")]
    Halted(&'static str),
    /// Told to bootstrap on an empty data directory, the node found a running instance of
    /// the cluster: founding a second one would fork the service.
    #[error(
        "a cluster instance ({instance}) already runs with this key: refusing to found a second \
         cluster, which would fork the service (bids acknowledged by one would be lost). Start \
         this server again without --bootstrap: it joins the running cluster"
    )]
    BootstrapRefused {
        /// The instance found.
        instance: auction_proto::InstanceId,
    },
    /// The protocol state could not be built from what was recovered.
    #[error("cannot start the replica: {0}")]
    Replica(#[from] auction_replica::ReplicaError),
}

/// A driver turn (one input, its actions) taking this long is logged as a warning: the node
/// answers nothing meanwhile.
const SLOW_TURN: Duration = Duration::from_millis(100);

/// How long a leader shutting down waits for another leader before it stops anyway.
const HANDOFF_WAIT: Duration = Duration::from_secs(5);

/// At most one WARN line per this long for frames of another cluster instance.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How long a leaving node waits for its removal to commit before it stops anyway.
const LEAVE_GRACE: Duration = Duration::from_secs(10);

/// Runs one node until `shutdown` resolves, an admin `leave` completes, or storage fails.
pub async fn run(
    settings: NodeSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let fsync = if settings.fsync { FsyncPolicy::Always } else { FsyncPolicy::Never };
    let dir = settings.data_dir.clone();
    let (storage, recovered) =
        tokio::task::spawn_blocking(move || Storage::open(&dir, fsync)).await.map_err(|e| {
            StorageError::Io { path: settings.data_dir.clone(), source: std::io::Error::other(e) }
        })??;
    let meta = recovered.meta;
    let info = NodeInfo {
        node: meta.node,
        incarnation: meta.incarnation,
        peer_addr: settings.peer_addr,
        client_addr: settings.client_addr,
    };
    let label = settings.name.clone().unwrap_or_else(|| meta.node.short());
    let span = tracing::info_span!("node", name = %label);
    let _enter = span.enter();
    info!(node = %meta.node, incarnation = meta.incarnation.0, entries = recovered.entries.len(),
        snapshot = recovered.snapshot.is_some(), "recovered");

    // A fresh id in case this boot founds a cluster (after its probe found none running).
    let start = if settings.bootstrap && recovered.first_boot {
        Start::Bootstrap { instance: InstanceId::random() }
    } else {
        Start::Join
    };
    let instance = meta.instance;
    if matches!(start, Start::Bootstrap { .. }) && instance.is_none() {
        if settings.discovery_targets.is_empty() {
            warn!(
                "--bootstrap with --no-broadcast and no --join: the probe cannot find a \
                running instance of this cluster; founding one after the probe"
            );
        } else {
            info!(probe = ?settings.bootstrap_probe, "empty data directory: looking for a \
                running instance of the cluster before founding one");
        }
    }
    let durable = Durable {
        instance,
        term: meta.term,
        accepted: meta.accepted,
        ordering: auction_ordering::Persisted {
            term: meta.term,
            applied: recovered.snapshot.as_ref().map(|s| s.last_included.seq).unwrap_or_default(),
            snapshot: recovered.snapshot,
            entries: recovered.entries,
        },
    };
    let now = Instant::now();
    let rng = ChaCha8Rng::from_rng(&mut rand::rng());
    let replica = Replica::new(info.clone(), start, durable, replica_config(&settings), rng, now)?;

    let codec = PeerCodec::new(settings.cluster, Keyring::new(settings.key.clone()));
    let seal = PeerSeal::new(codec, meta.node, meta.incarnation, instance);
    let (net, sockets) = PeerNet::bind(
        seal,
        settings.peer_addr,
        settings.discovery_addr,
        TransportLimits::default(),
    )
    .await
    .map_err(|source| NodeError::Bind {
        what: "peer address",
        addr: settings.peer_addr,
        source,
    })?;
    let listener = TcpListener::bind(settings.client_addr).await.map_err(|source| {
        NodeError::Bind { what: "client address", addr: settings.client_addr, source }
    })?;
    let (client_tx, client_rx) = mpsc::channel(4096);
    tokio::spawn(clients::serve(listener, client_tx, settings.max_clients, settings.client_idle));
    let (writer, done_rx) = spawn_writer(storage);
    let metrics = MetricsHandle::start(settings.metrics_addr).await;
    info!(peer = %settings.peer_addr, client = %settings.client_addr, "listening");

    let sessions = Sessions::new(&settings.admin_token, settings.key.clone());
    let mut driver = Driver {
        settings,
        info,
        replica,
        sessions,
        net,
        writer,
        jobs: Vec::new(),
        metrics,
        leaving: None,
        other_instance_warned: None,
        here_limit: RateLimit::new(HERE_PER_SOURCE, HERE_PER_SECOND, Duration::from_secs(1)),
    };
    let result = driver.run(sockets, client_rx, done_rx, shutdown).await;
    // Messages held for the turn's end still go out (a leaving leader's last commit point,
    // say); the peer writer tasks send them while the storage writer below finishes.
    driver.net.flush();
    // Let the writer finish and sync what is queued before the process exits.
    let Driver { writer, mut jobs, .. } = driver;
    let _ = writer.submit_all(&mut jobs);
    let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
    info!("stopped");
    result
}

fn replica_config(s: &NodeSettings) -> ReplicaConfig {
    let mut c = ReplicaConfig::default();
    c.membership.discovery_targets = s.discovery_targets.clone();
    c.membership.probe_interval = s.probe_interval;
    // An indirect probe must have time to happen within the interval.
    c.membership.probe_timeout = c.membership.probe_timeout.min(s.probe_interval / 5 * 2);
    c.membership.suspicion_timeout = s.suspect_after;
    c.membership.confirmation_timeout = s.down_after;
    c.election.election_timeout = s.election_timeout;
    c.election.heartbeat_interval = s.heartbeat_interval;
    c.election.leader_timeout = s.leader_timeout;
    c.bootstrap_probe = s.bootstrap_probe;
    c.promote_after = s.promote_after;
    c.min_voters = s.min_voters;
    c.max_clock_skew = s.max_clock_skew;
    c
}

struct Driver {
    settings: NodeSettings,
    info: NodeInfo,
    replica: Replica<ChaCha8Rng>,
    sessions: Sessions,
    net: PeerNet,
    writer: WriterHandle,
    /// Writes of this turn, not yet handed to the writer.
    jobs: Vec<Job>,
    metrics: MetricsHandle,
    leaving: Option<Instant>,
    /// When a frame of another cluster instance was last logged at WARN.
    other_instance_warned: Option<Instant>,
    /// Bounds the `Here` answers to `FindServers`, which go to whatever source address the
    /// datagram claims: a spoofed flood gets little reflected towards any one address.
    here_limit: RateLimit,
}

/// `Here` answers per second to one source address at most. A shell asks once per discovery.
const HERE_PER_SOURCE: u32 = 8;
/// `Here` answers per second in all at most (also bounds the table of sources).
const HERE_PER_SECOND: u32 = 1024;

/// At most `per_source` events per source address and `total` in all in each `window` (fixed
/// windows: the budgets refill at once, so a sliding window can see up to twice as many).
#[derive(Debug)]
struct RateLimit {
    window: Duration,
    per_source: u32,
    total: u32,
    started: Option<Instant>,
    used: HashMap<IpAddr, u32>,
    used_total: u32,
}

impl RateLimit {
    fn new(per_source: u32, total: u32, window: Duration) -> Self {
        Self { window, per_source, total, started: None, used: HashMap::new(), used_total: 0 }
    }

    /// Whether one more event from `source` is allowed at `now` (and counts it if so).
    fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let fresh = self.started.is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if fresh {
            self.started = Some(now);
            self.used.clear();
            self.used_total = 0;
        }
        if self.used_total >= self.total {
            return false;
        }
        let used = self.used.entry(source).or_insert(0);
        if *used >= self.per_source {
            return false;
        }
        *used += 1;
        self.used_total += 1;
        true
    }
}

impl Driver {
    async fn run(
        &mut self,
        mut sockets: PeerSockets,
        mut clients: mpsc::Receiver<ClientEvent>,
        mut done: mpsc::UnboundedReceiver<Done>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        let mut udp_buf = vec![0u8; 64 * 1024];
        let mut disc_buf = vec![0u8; 64 * 1024];
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        // One timer for the replica's deadline, moved only when the deadline moves (a new
        // `sleep_until` per turn would insert and remove a timer entry on every input).
        let timer = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        // Shutting down as a leader: handing over until then.
        let mut handoff: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if let Some(until) = handoff {
                let other = self.replica.leader().is_some_and(|l| l != self.info.node);
                if other || now >= until {
                    info!(handed_over = other, leader = ?self.replica.leader(), "shutting down");
                    return Ok(());
                }
            }
            self.replica.handle_wall_clock(wall_clock(), now);
            self.drain().await?;
            // Without a deadline of the replica's, wake within a second anyway (kept, not
            // moved every turn).
            let deadline = match (self.replica.poll_timeout(), armed) {
                (Some(d), _) => d,
                (None, Some(a)) if a > now => a,
                (None, _) => now + Duration::from_secs(1),
            };
            if armed != Some(deadline) {
                timer.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            let woke: Instant;
            tokio::select! {
                // Timers and completions first, so a flood of peer or client input cannot
                // starve heartbeats, elections, expiry or shutdown.
                biased;
                () = &mut shutdown, if handoff.is_none() => {
                    woke = Instant::now();
                    // A leader hands its leadership to the most up-to-date voter before it
                    // goes (etcd does the same): a planned restart then costs one election
                    // round trip, not a failure detection.
                    if self.replica.members().len() > 1 && self.replica.step_down(woke) {
                        info!("shutting down: handing the leadership over first");
                        handoff = Some(woke + HANDOFF_WAIT);
                    } else {
                        info!("shutting down");
                        return Ok(());
                    }
                }
                Some(d) = done.recv() => {
                    woke = Instant::now();
                    match d {
                        Done::Stored(id) => self.replica.handle_stored(id, woke),
                        Done::Failed(e) => return Err(NodeError::StorageFailed(e)),
                    }
                }
                () = &mut timer => {
                    woke = Instant::now();
                    // Fired: rearm on the next turn even if the deadline is unchanged.
                    armed = None;
                    self.replica.handle_timeout(woke);
                }
                _ = tick.tick() => {
                    woke = Instant::now();
                    if self.tick() {
                        return Ok(());
                    }
                }
                Ok((n, from)) = sockets.udp.recv_from(&mut udp_buf) => {
                    woke = Instant::now();
                    self.peer(&udp_buf[..n], from).await?;
                }
                // Authenticated by the reader task; the batch's bytes are released when it
                // drops, after its frames are handled.
                Some(mut batch) = sockets.tcp_in.recv() => {
                    woke = Instant::now();
                    for frame in batch.take() {
                        let opened = self.net.admit(frame, Channel::Tcp);
                        self.deliver(opened).await?;
                    }
                }
                Some(ev) = clients.recv() => {
                    woke = Instant::now();
                    self.client(ev);
                }
                Ok((n, from)) = sockets.discovery.recv_from(&mut disc_buf) => {
                    woke = Instant::now();
                    if disc_buf[..n].starts_with(&auction_proto::codec::PEER_MAGIC) {
                        self.peer(&disc_buf[..n], from).await?;
                    } else {
                        self.discovery(&sockets, &disc_buf[..n], from);
                    }
                }
                // Last, so only when no input is ready: the writes of every input handled
                // since the last hand-over go to the writer together (one wake-up, one
                // sync). Tokio's cooperative budget makes the inputs above yield after a
                // bounded burst, so this runs at least that often under a flood.
                () = std::future::ready(()), if !self.jobs.is_empty() || self.net.has_pending() => {
                    woke = Instant::now();
                    self.writer.submit_all(&mut self.jobs)?;
                    self.net.flush();
                }
            }
            self.drain().await?;
            let took = woke.elapsed();
            if took >= SLOW_TURN {
                warn!(ms = took.as_millis() as u64, "slow driver turn (one input and its actions)");
            }
        }
    }

    async fn peer(&mut self, bytes: &[u8], from: SocketAddr) -> Result<(), NodeError> {
        let opened = {
            let _span = tracing::trace_span!("peer_frame", %from, len = bytes.len()).entered();
            self.net.accept(bytes, from)
        };
        self.deliver(opened).await
    }

    /// Hands what the seal accepted to the replica (an instance adopted from it is made
    /// durable first), and tells it of authentic frames sent to an earlier boot of this node.
    async fn deliver(&mut self, opened: Result<Opened, Refusal>) -> Result<(), NodeError> {
        let now = Instant::now();
        match opened {
            Ok(Opened { frame, adopted }) => {
                if let Some(instance) = adopted {
                    info!(%instance, "joined cluster instance");
                    self.writer.submit_all(&mut self.jobs)?;
                    self.writer.save_instance(instance).await.map_err(NodeError::StorageFailed)?;
                    self.replica.handle_instance(instance, now);
                }
                let env = frame.envelope;
                tracing::trace!(sender = %env.sender, inc = env.incarnation.0, to = ?env.to,
                    body = ?frame.body, "peer frame");
                match (env.to, frame.body) {
                    (None, PeerBody::Discovery(msg)) => {
                        self.replica.handle_unaddressed(env.sender, env.incarnation, msg, now);
                    }
                    (None, _) => {}
                    (Some(_), body) => {
                        self.replica.handle_peer(env.sender, env.incarnation, body, now);
                    }
                }
            }
            Err(Refusal::StaleReceiver { sender, sender_incarnation, .. }) => {
                self.replica.handle_misaddressed(sender, sender_incarnation, now);
            }
            Err(Refusal::OtherInstance { got, mine }) => {
                if self.other_instance_warned.is_none_or(|at| now >= at + WARN_EVERY) {
                    self.other_instance_warned = Some(now);
                    warn!(other = %got, mine = %mine,
                        "frame of another cluster instance with this key and name refused \
                         (a second cluster on the network: a re-bootstrapped server?)");
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// The discovery port carries servers' `Discover` (peer frames, handled as any peer
    /// frame) and clients' `FindServers` (client frames, answered here); anything else is
    /// ignored.
    fn discovery(&mut self, sockets: &PeerSockets, bytes: &[u8], from: SocketAddr) {
        let _span = tracing::trace_span!("discovery", %from).entered();
        let codec = ClientCodec::default();
        let Ok(ClientToServer::FindServers { cluster }) =
            codec.decode_datagram::<ClientToServer>(bytes)
        else {
            return;
        };
        if cluster != self.settings.cluster {
            return;
        }
        if !self.here_limit.allow(from.ip(), Instant::now()) {
            debug!(%from, "FindServers over the rate limit; not answered");
            return;
        }
        let here = ServerToClient::Here(ServerInfo {
            node: self.info.node,
            incarnation: self.info.incarnation,
            client_addr: self.info.client_addr,
            state: MemberState::Alive,
            clients: u32::try_from(self.sessions.len()).unwrap_or(u32::MAX),
        });
        if let Ok(bytes) = codec.encode(&here) {
            let _ = sockets.discovery.try_send_to(&bytes, from);
        }
    }

    fn client(&mut self, ev: ClientEvent) {
        let _span = tracing::debug_span!("client_event").entered();
        match ev {
            ClientEvent::Opened { conn, addr, tx, kill } => {
                self.sessions.open(conn, addr, tx, kill)
            }
            ClientEvent::Closed { conn } => self.sessions.close(conn),
            ClientEvent::Request { conn, req } => {
                let started = Instant::now();
                let effect = self.sessions.handle(&mut self.replica, conn, req, started);
                if effect == Effect::Leave && self.leaving.is_none() {
                    info!("leaving the cluster on an admin request");
                    self.leaving = Some(started);
                }
            }
        }
    }

    /// Periodic work; returns whether the node should stop.
    fn tick(&mut self) -> bool {
        let _span = tracing::trace_span!("tick").entered();
        let now = Instant::now();
        self.sessions.expire(now, self.replica.applied());
        self.replica.set_client_count(u32::try_from(self.sessions.len()).unwrap_or(u32::MAX));
        self.metrics.publish(&self.replica, &self.sessions, &self.net.stats());
        self.leaving.is_some_and(|t| {
            self.replica.has_left() || now.saturating_duration_since(t) >= LEAVE_GRACE
        })
    }

    /// Carries out the replica's actions, in order.
    async fn drain(&mut self) -> Result<(), NodeError> {
        while let Some(action) = self.replica.poll_action() {
            match action {
                Action::Send { to, receiver, body } => {
                    tracing::trace!(%to, ?receiver, ?body, "send");
                    self.net.send(to, receiver, body)
                }
                Action::Broadcast { to, body } => self.net.send(to, None, body),
                Action::PersistInstance { instance } => {
                    info!(%instance, "founded a new cluster instance");
                    self.writer.submit_all(&mut self.jobs)?;
                    self.writer.save_instance(instance).await.map_err(NodeError::StorageFailed)?;
                    self.net.set_instance(instance);
                }
                Action::Configuration { seq, change, voters } => {
                    let voters: Vec<String> = voters.iter().map(|n| n.short()).collect();
                    match &change {
                        ConfigChange::Bootstrap { .. } => {
                            info!(seq = seq.0, ?voters, "configuration: cluster founded");
                        }
                        ConfigChange::AddMember(m) => info!(seq = seq.0, node = %m.node.short(),
                            ?voters, "configuration: server promoted to voter"),
                        ConfigChange::RemoveMember(n) => info!(seq = seq.0, node = %n.short(),
                            ?voters, "configuration: voter removed"),
                        ConfigChange::Demote(n) => info!(seq = seq.0, node = %n.short(),
                            ?voters, "configuration: voter demoted to a held learner"),
                    }
                }
                Action::Learners { learners } => {
                    let learners: Vec<String> = learners.iter().map(|n| n.short()).collect();
                    info!(?learners, "learners (replicated to, not voting yet)");
                }
                Action::BootstrapRefused { instance } => {
                    return Err(NodeError::BootstrapRefused { instance });
                }
                Action::PersistTerm { term, accepted } => {
                    // Durable before anything after it is carried out (the writes queued
                    // before it go first).
                    self.writer.submit_all(&mut self.jobs)?;
                    self.writer
                        .save_term(term, accepted)
                        .await
                        .map_err(NodeError::StorageFailed)?;
                }
                // Handed to the writer together once no input is ready: one wake-up, one sync.
                Action::Store { id, from, entries } => {
                    self.jobs.push(Job::Store { id, from, entries })
                }
                Action::InstallSnapshot { id, snapshot } => {
                    self.jobs.push(Job::Install { id, snapshot })
                }
                Action::SaveSnapshot { snapshot } => self.jobs.push(Job::SaveSnapshot(snapshot)),
                Action::Complete { request, seq, outcome } => {
                    self.metrics.applied_write();
                    if let Some(waited) =
                        self.sessions.complete(request, seq, outcome, Instant::now())
                    {
                        self.metrics.observe_write(waited);
                    }
                }
                Action::Events { seq, at, events } => self.sessions.push(seq, at, &events),
                Action::Halt { reason } => return Err(NodeError::Halted(reason)),
                // Only emitted when observation is switched on (simulations); the node is not.
                Action::Applied { .. } => {}
                Action::Role { role, term, leader } => {
                    info!(?role, term = term.0, leader = ?leader, "role");
                    self.metrics.role(role, term);
                }
            }
        }
        let dropped = self.net.stats().dropped;
        if dropped > 0 && dropped % 1000 == 1 {
            warn!(dropped, "peer frames dropped (slow or unreachable peers)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_its_budgets_per_window_then_refills() {
        let t0 = Instant::now();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), [10, 0, 0, 3].into());
        let mut limit = RateLimit::new(3, 5, Duration::from_secs(1));
        assert_eq!((0..10).filter(|_| limit.allow(a, t0)).count(), 3, "per source");
        assert_eq!((0..10).filter(|_| limit.allow(b, t0)).count(), 2, "the total caps it");
        assert!(!limit.allow(c, t0 + Duration::from_millis(999)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(limit.allow(a, t1), "a new window refills");
        assert_eq!((0..10).filter(|_| limit.allow(a, t1)).count(), 2);
        assert_eq!((0..10).filter(|_| limit.allow(c, t1)).count(), 2);
    }
}
