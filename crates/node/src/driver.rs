//! The driver: one task owns the server core (all protocol state, `auction_server::Server`).
//! It `select!`s over the peer sockets, client connections, storage completions, the core's
//! next deadline and shutdown; feeds what arrives into the core; then carries out the core's
//! actions strictly in order (STYLE.md point 4). It decides nothing: sockets, timers, the
//! disk and signals only.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::ConfigChange;
use auction_proto::{Channel, InstanceId, Keyring, PeerCodec, PeerSeal, Timestamp};
use auction_replica::{Durable, Replica, ReplicaConfig, Start};
use auction_server::{Action, ConnId, Server, ServerConfig, Stop};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::clients::{self, ClientEvent, ConnHandle};
use crate::metrics::MetricsHandle;
use crate::settings::NodeSettings;
use crate::storage::{Done, FsyncPolicy, Job, Storage, StorageError, WriterHandle, spawn_writer};
use crate::transport::{PeerNet, PeerSockets, TransportLimits};

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

/// How often the metrics page is rendered.
const METRICS_EVERY: Duration = Duration::from_millis(250);

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
    let seed: u64 = rand::random();
    let replica = Replica::new(info, start, durable, replica_config(&settings), seed, now)?;

    let codec = PeerCodec::new(settings.cluster, Keyring::new(settings.key.clone()));
    let seal = PeerSeal::new(codec, meta.node, meta.incarnation, instance);
    let (net, sockets) = PeerNet::bind(
        &seal,
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let accept = tokio::spawn(clients::serve(listener, client_tx, stop_rx));
    let (writer, done_rx) = spawn_writer(storage);
    let metrics = MetricsHandle::start(settings.metrics_addr).await;
    info!(peer = %settings.peer_addr, client = %settings.client_addr, "listening");

    let server = Server::new(replica, seal, server_config(&settings));
    let mut driver =
        Driver { server, net, writer, jobs: Vec::new(), metrics, conns: HashMap::new() };
    let result = driver.run(sockets, client_rx, done_rx, shutdown).await;
    // Messages held for the turn's end still go out (a leaving leader's last commit point,
    // say); the peer writer tasks send them while the storage writer below finishes.
    driver.server.flush();
    let _ = driver.carry_out().await;
    // Every listener closed before `run` returns, so the ports can be bound again at once;
    // the connection tasks close their sockets on the same signal.
    let _ = stop_tx.send(true);
    let _ = accept.await;
    driver.net.close().await;
    driver.metrics.close().await;
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

fn server_config(s: &NodeSettings) -> ServerConfig {
    ServerConfig {
        max_clients: s.max_clients,
        client_idle: s.client_idle,
        hello_timeout: s.hello_timeout,
        max_clients_per_source: s.max_clients_per_ip,
        ..ServerConfig::new(s.cluster, s.key.clone(), s.admin_token.clone())
    }
}

/// The local wall clock as a sequencer timestamp.
pub fn wall_clock() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

struct Driver {
    server: Server,
    net: PeerNet,
    writer: WriterHandle,
    /// Writes of this turn, not yet handed to the writer.
    jobs: Vec<Job>,
    metrics: MetricsHandle,
    conns: HashMap<ConnId, ConnHandle>,
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
        let mut metrics_tick = tokio::time::interval(METRICS_EVERY);
        // One timer for the core's deadline, moved only when the deadline moves (a new
        // `sleep_until` per turn would insert and remove a timer entry on every input).
        let timer = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        let mut shutting_down = false;
        self.server.handle_timeout(Instant::now());
        loop {
            let now = Instant::now();
            self.server.handle_wall_clock(wall_clock(), now);
            if let Some(stop) = self.carry_out().await? {
                return stopped(stop);
            }
            // Without a deadline of the core's, wake within a second anyway (kept, not
            // moved every turn).
            let deadline = match (self.server.poll_timeout(), armed) {
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
                () = &mut shutdown, if !shutting_down => {
                    woke = Instant::now();
                    shutting_down = true;
                    self.server.handle_shutdown(woke);
                }
                Some(d) = done.recv() => {
                    woke = Instant::now();
                    match d {
                        Done::Stored(id) => self.server.handle_stored(id, woke),
                        Done::Failed(e) => return Err(NodeError::StorageFailed(e)),
                    }
                }
                () = &mut timer => {
                    woke = Instant::now();
                    // Fired: rearm on the next turn even if the deadline is unchanged.
                    armed = None;
                    self.server.handle_timeout(woke);
                }
                _ = metrics_tick.tick() => {
                    woke = Instant::now();
                    self.publish();
                }
                Ok((n, from)) = sockets.udp.recv_from(&mut udp_buf) => {
                    woke = Instant::now();
                    let _span = tracing::trace_span!("peer_frame", %from, len = n).entered();
                    let _ = self.server.handle_peer_bytes(&udp_buf[..n], Channel::Datagram, from, woke);
                }
                // Authenticated by the reader task; the batch's bytes are released when it
                // drops, after its frames are handled.
                Some(mut batch) = sockets.tcp_in.recv() => {
                    woke = Instant::now();
                    for frame in batch.take() {
                        let _ = self.server.handle_peer_frame(frame, woke);
                    }
                }
                Some(ev) = clients.recv() => {
                    woke = Instant::now();
                    self.client(ev, woke);
                }
                Ok((n, from)) = sockets.discovery.recv_from(&mut disc_buf) => {
                    woke = Instant::now();
                    let _span = tracing::trace_span!("discovery", %from).entered();
                    self.server.handle_discovery(&disc_buf[..n], from, woke);
                }
                // Last, so only when no input is ready: the writes of every input handled
                // since the last hand-over go to the writer together (one wake-up, one
                // sync), and the held peer messages are sealed, merged, together. Tokio's
                // cooperative budget makes the inputs above yield after a bounded burst, so
                // this runs at least that often under a flood.
                () = std::future::ready(()), if !self.jobs.is_empty() || self.server.has_held() => {
                    woke = Instant::now();
                    self.writer.submit_all(&mut self.jobs)?;
                    self.server.flush();
                }
            }
            if let Some(stop) = self.carry_out().await? {
                return stopped(stop);
            }
            let took = woke.elapsed();
            if took >= SLOW_TURN {
                warn!(ms = took.as_millis() as u64, "slow driver turn (one input and its actions)");
            }
        }
    }

    fn client(&mut self, ev: ClientEvent, now: Instant) {
        match ev {
            ClientEvent::Opened { conn, addr, handle } => {
                self.conns.insert(conn, handle);
                self.server.handle_client_connected(conn, addr, now);
            }
            ClientEvent::Bytes { conn, bytes } => {
                self.server.handle_client_bytes(conn, &bytes, now)
            }
            ClientEvent::Closed { conn } => {
                self.conns.remove(&conn);
                self.server.handle_client_closed(conn, now);
            }
        }
    }

    fn publish(&self) {
        let stats = self.net.stats(self.server.peer_stats());
        let s = &self.server;
        let admission = s.admission_stats();
        self.metrics.publish(s.replica(), s.clients(), s.pending_writes(), &stats, &admission);
    }

    /// Carries out the core's actions, in order; the reason to stop, if one came.
    async fn carry_out(&mut self) -> Result<Option<Stop>, NodeError> {
        while let Some(action) = self.server.poll_action() {
            match action {
                Action::ToClient { conn, bytes } => {
                    let Some(c) = self.conns.get(&conn) else { continue };
                    if let Err(mpsc::error::TrySendError::Full(_)) = c.out.try_send(bytes) {
                        self.server.handle_client_stalled(conn, Instant::now());
                    }
                }
                Action::ReadClient { conn, bytes } => {
                    if let Some(c) = self.conns.get(&conn) {
                        c.credit.add_permits(bytes);
                    }
                }
                Action::CloseClient { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        let _ = c.close.send(());
                    }
                }
                Action::PeerDatagram { to, bytes } => self.net.send_datagram(to, &bytes),
                Action::PeerStream { to, bytes } => self.net.send_stream(to, bytes),
                Action::DiscoveryReply { to, bytes } => self.net.send_discovery(to, &bytes),
                Action::PersistInstance { instance } => {
                    self.writer.submit_all(&mut self.jobs)?;
                    self.writer.save_instance(instance).await.map_err(NodeError::StorageFailed)?;
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
                Action::WriteApplied { waited } => {
                    self.metrics.applied_write();
                    if let Some(waited) = waited {
                        self.metrics.observe_write(waited);
                    }
                }
                Action::Log(action) => self.log(action),
                // Only emitted when observation is switched on (simulations); the node is not.
                Action::Applied { .. } => {}
                Action::Stop(stop) => return Ok(Some(stop)),
            }
        }
        Ok(None)
    }

    fn log(&mut self, action: auction_replica::Action) {
        use auction_replica::Action as R;
        match action {
            R::Configuration { seq, change, voters } => {
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
            R::Learners { learners } => {
                let learners: Vec<String> = learners.iter().map(|n| n.short()).collect();
                info!(?learners, "learners (replicated to, not voting yet)");
            }
            R::Role { role, term, leader } => {
                info!(?role, term = term.0, leader = ?leader, "role");
                self.metrics.role(role, term);
            }
            _ => {}
        }
    }
}

/// What `run` returns for the core's reason to stop.
fn stopped(stop: Stop) -> Result<(), NodeError> {
    match stop {
        Stop::Shutdown { .. } | Stop::Left => Ok(()),
        Stop::BootstrapRefused { instance } => Err(NodeError::BootstrapRefused { instance }),
        Stop::Halted { reason } => Err(NodeError::Halted(reason)),
    }
}
