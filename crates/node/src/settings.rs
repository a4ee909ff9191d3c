//! Validated node settings, built from the command line: keys loaded, addresses checked,
//! broadcast targets resolved.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use auction_proto::{ClusterId, ClusterKey, KeyError};

use crate::cli::{FsyncArg, KeyArgs, RunArgs};

/// The public key of `--dev-key`: never use it outside loopback.
pub const DEV_KEY: &str = "auction-dev-cluster-key-do-not-use-in-production";

/// Why the settings are refused. Nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No key given outside dev mode.
    #[error(
        "no cluster key: pass --cluster-key-file FILE (or AUCTION_CLUSTER_KEY), or --dev-key on loopback"
    )]
    NoKey,
    /// The key file could not be read.
    #[error("cannot read the cluster key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is unusable.
    #[error("bad cluster key: {0}")]
    BadKey(#[from] KeyError),
    /// The development key (public, so anyone could join) with an address other hosts can
    /// reach.
    #[error(
        "--dev-key is a public key, so every address must be loopback: {what} {addr} is not \
         (give a 127.x.x.x address, or a real key with --cluster-key-file)"
    )]
    DevKeyOffLoopback {
        /// Which flag.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
    },
    /// The leader timeout leaves too little room for lost heartbeats.
    #[error(
        "--leader-timeout {leader_timeout:?} must be at least 3 x --heartbeat-interval \
         {heartbeat_interval:?}, or a few lost heartbeats start an election"
    )]
    LeaderTimeout {
        /// The leader timeout given.
        leader_timeout: Duration,
        /// The heartbeat interval given.
        heartbeat_interval: Duration,
    },
    /// An unspecified advertised address.
    #[error("{what} {addr} is not an address other hosts can reach (give a concrete IP)")]
    Unspecified {
        /// Which flag.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
    },
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Name for logs.
    pub name: Option<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Peer address (UDP + TCP), advertised as is.
    pub peer_addr: SocketAddr,
    /// Client address (TCP), advertised as is.
    pub client_addr: SocketAddr,
    /// Discovery port.
    pub discovery_port: u16,
    /// Where the discovery socket binds: every interface, or with the development key the
    /// loopback broadcast address `127.255.255.255` (which receives the broadcasts of other
    /// local servers and nothing from other hosts).
    pub discovery_addr: SocketAddr,
    /// Where `Discover` goes: broadcast addresses on the discovery port, then `--join` peers.
    pub discovery_targets: Vec<SocketAddr>,
    /// Start a new cluster (after probing for a running one).
    pub bootstrap: bool,
    /// How long the bootstrap probe lasts.
    pub bootstrap_probe: Duration,
    /// How long a learner stays caught up before promotion.
    pub promote_after: Duration,
    /// The quorum floor of automatic removals.
    pub min_voters: usize,
    /// The clock-skew bound for standing as leader.
    pub max_clock_skew: Duration,
    /// The cluster.
    pub cluster: ClusterId,
    /// The cluster's name.
    pub cluster_name: String,
    /// The signing key.
    pub key: ClusterKey,
    /// The admin token.
    pub admin_token: String,
    /// Failure-detector probe interval.
    pub probe_interval: Duration,
    /// Suspicion timeout.
    pub suspect_after: Duration,
    /// Confirmation timeout.
    pub down_after: Duration,
    /// Election round timeout.
    pub election_timeout: Duration,
    /// The leader's heartbeat interval.
    pub heartbeat_interval: Duration,
    /// The followers' leader timeout (the lower end of its random range).
    pub leader_timeout: Duration,
    /// Whether to fsync.
    pub fsync: bool,
    /// Metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// Most client connections.
    pub max_clients: usize,
    /// Client idle timeout.
    pub client_idle: Duration,
    /// How long a new client connection may take to say Hello.
    pub hello_timeout: Duration,
    /// Most client connections from one IP address.
    pub max_clients_per_ip: usize,
}

impl NodeSettings {
    /// Validates the flags of `auction-node run`.
    pub fn from_args(args: &RunArgs) -> Result<Self, SettingsError> {
        for (what, addr) in [("--peer-addr", args.peer_addr), ("--client-addr", args.client_addr)] {
            if addr.ip().is_unspecified() {
                return Err(SettingsError::Unspecified { what, addr });
            }
        }
        let (heartbeat_interval, leader_timeout) = (args.heartbeat_interval, args.leader_timeout);
        if leader_timeout < heartbeat_interval.saturating_mul(3) {
            return Err(SettingsError::LeaderTimeout { leader_timeout, heartbeat_interval });
        }
        let (key, dev_key) = load_key(args)?;
        let discovery_ip = if dev_key { LOOPBACK_BROADCAST } else { Ipv4Addr::UNSPECIFIED };
        let broadcast_ips = if args.no_broadcast {
            Vec::new()
        } else if args.broadcast.is_empty() {
            default_broadcast_addresses(args.peer_addr.ip())
        } else {
            args.broadcast.clone()
        };
        let mut discovery_targets: Vec<SocketAddr> =
            broadcast_ips.into_iter().map(|ip| SocketAddr::new(ip, args.discovery_port)).collect();
        discovery_targets.extend(args.join.iter().copied().filter(|a| *a != args.peer_addr));
        Ok(Self {
            name: args.name.clone(),
            data_dir: args.data_dir.clone(),
            peer_addr: args.peer_addr,
            client_addr: args.client_addr,
            discovery_port: args.discovery_port,
            discovery_addr: SocketAddr::from((discovery_ip, args.discovery_port)),
            discovery_targets,
            bootstrap: args.bootstrap,
            bootstrap_probe: args.bootstrap_probe,
            promote_after: args.promote_after,
            min_voters: args.min_voters,
            max_clock_skew: args.max_clock_skew,
            cluster: ClusterId::from_name(&args.cluster),
            cluster_name: args.cluster.clone(),
            admin_token: args.admin_token.clone().unwrap_or_else(|| default_admin_token(&key)),
            key,
            probe_interval: args.probe_interval,
            suspect_after: args.suspect_after,
            down_after: args.down_after,
            election_timeout: args.election_timeout,
            heartbeat_interval: args.heartbeat_interval,
            leader_timeout: args.leader_timeout,
            fsync: args.fsync == FsyncArg::Always,
            metrics_addr: args.metrics_addr,
            max_clients: args.max_clients.max(1),
            client_idle: args.client_idle,
            hello_timeout: args.hello_timeout,
            max_clients_per_ip: args.max_clients_per_ip.max(1),
        })
    }
}

/// The admin token a node uses when `--admin-token` is not given: derived from the cluster key
/// (HMAC-SHA256 of a fixed label, 32 hex digits), so admin requests, which carry their token in
/// clear on the client connection, never carry the key itself. `auction-node admin-token`
/// prints it.
pub fn default_admin_token(key: &ClusterKey) -> String {
    key.tag(b"auction admin token")[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The cluster key from a file, the value itself, or the development key, in that order.
///
/// # Errors
/// The file cannot be read, no key is given, or the key is too short.
pub fn key_from(args: &KeyArgs) -> Result<ClusterKey, SettingsError> {
    let secret = match (args.cluster_key_file.as_deref(), args.cluster_key.as_deref()) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|source| SettingsError::KeyFile { path: path.to_path_buf(), source })?
            .trim()
            .to_string(),
        (None, Some(v)) => v.trim().to_string(),
        (None, None) if args.dev_key => DEV_KEY.to_string(),
        (None, None) => return Err(SettingsError::NoKey),
    };
    Ok(ClusterKey::new(secret.as_bytes())?)
}

/// The key, and whether it is the development key. With the development key every socket
/// binds loopback only: any address another host can reach is refused.
fn load_key(args: &RunArgs) -> Result<(ClusterKey, bool), SettingsError> {
    let k = &args.key;
    let explicit = k.cluster_key_file.is_some() || k.cluster_key.is_some();
    let dev_key = k.dev_key && !explicit;
    if dev_key {
        let binds =
            [("--peer-addr", Some(args.peer_addr)), ("--client-addr", Some(args.client_addr))];
        for (what, addr) in binds.into_iter().chain([("--metrics-addr", args.metrics_addr)]) {
            if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                return Err(SettingsError::DevKeyOffLoopback { what, addr });
            }
        }
    }
    Ok((key_from(k)?, dev_key))
}

/// The loopback broadcast address, where dev servers' discovery sockets bind.
const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// The subnet broadcast address of every up IPv4 interface (inside a network namespace,
/// 255.255.255.255 fails without a route while the subnet address works). On loopback-only
/// setups this is `127.255.255.255`, which Linux delivers to local sockets.
pub fn default_broadcast_addresses(peer_ip: IpAddr) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(bcast) = ifa.broadcast.as_ref().and_then(|b| b.as_sockaddr_in()) else {
                continue;
            };
            let ip = IpAddr::V4(bcast.ip());
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    if peer_ip.is_loopback() {
        out.retain(|ip| ip.is_loopback());
        let lo = IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255));
        if !out.contains(&lo) {
            out.push(lo);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn run_args(extra: &[&str]) -> Box<RunArgs> {
        let mut argv = vec!["auction-node", "run", "--data-dir", "/tmp/x"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => a,
            other => panic!("run, not {other:?}"),
        }
    }

    #[test]
    fn a_key_is_required_outside_dev_mode() {
        assert!(matches!(NodeSettings::from_args(&run_args(&[])), Err(SettingsError::NoKey)));
        assert!(NodeSettings::from_args(&run_args(&["--dev-key"])).is_ok());
        assert!(matches!(
            NodeSettings::from_args(&run_args(&["--dev-key", "--peer-addr", "10.1.2.3:7000"])),
            Err(SettingsError::DevKeyOffLoopback { what: "--peer-addr", .. })
        ));
        assert!(matches!(
            NodeSettings::from_args(&run_args(&["--cluster-key", "short"])),
            Err(SettingsError::BadKey(_))
        ));
    }

    #[test]
    fn the_dev_key_binds_loopback_only() {
        for (flag, addr) in [
            ("--client-addr", "192.168.1.5:7100"),
            ("--metrics-addr", "0.0.0.0:9100"),
            ("--peer-addr", "[2001:db8::1]:7000"),
        ] {
            let err = NodeSettings::from_args(&run_args(&["--dev-key", flag, addr])).unwrap_err();
            match &err {
                SettingsError::DevKeyOffLoopback { what, addr: a } => {
                    assert_eq!((*what, a.to_string()), (flag, addr.to_string()));
                }
                other => panic!("{flag} {addr}: {other:?}"),
            }
            let text = err.to_string();
            assert!(text.contains(flag) && text.contains("loopback"), "{text}");
        }
        let dev =
            NodeSettings::from_args(&run_args(&["--dev-key", "--metrics-addr", "127.0.0.1:9100"]))
                .unwrap();
        assert_eq!(dev.discovery_addr, "127.255.255.255:7946".parse().unwrap());
        // A real key binds discovery on every interface, and lets addresses be anything.
        let real = NodeSettings::from_args(&run_args(&[
            "--cluster-key",
            "a-real-key-of-enough-bytes",
            "--dev-key",
            "--peer-addr",
            "10.1.2.3:7000",
        ]))
        .unwrap();
        assert_eq!(real.discovery_addr, "0.0.0.0:7946".parse().unwrap());
    }

    #[test]
    fn failover_timing_flags_are_checked_against_each_other() {
        let s = NodeSettings::from_args(&run_args(&["--dev-key"])).unwrap();
        assert_eq!(
            (s.heartbeat_interval, s.leader_timeout),
            (Duration::from_millis(20), Duration::from_millis(120))
        );
        let flags = ["--dev-key", "--heartbeat-interval", "50ms", "--leader-timeout", "400ms"];
        let s = NodeSettings::from_args(&run_args(&flags)).unwrap();
        assert_eq!(
            (s.heartbeat_interval, s.leader_timeout),
            (Duration::from_millis(50), Duration::from_millis(400))
        );
        for (hb, lt) in [("50ms", "100ms"), ("1s", "2s")] {
            let flags = ["--dev-key", "--heartbeat-interval", hb, "--leader-timeout", lt];
            let err = NodeSettings::from_args(&run_args(&flags)).unwrap_err();
            assert!(matches!(err, SettingsError::LeaderTimeout { .. }), "{hb} {lt}: {err:?}");
            assert!(err.to_string().contains("--leader-timeout"), "{err}");
        }
    }

    #[test]
    fn bootstrap_probes_its_join_list() {
        let s = NodeSettings::from_args(&run_args(&[
            "--dev-key",
            "--bootstrap",
            "--bootstrap-probe",
            "700ms",
            "--no-broadcast",
            "--join",
            "127.0.0.1:1",
        ]))
        .unwrap();
        assert!(s.bootstrap);
        assert_eq!(s.bootstrap_probe, Duration::from_millis(700));
        assert_eq!(s.discovery_targets, vec!["127.0.0.1:1".parse().unwrap()]);
    }

    #[test]
    fn discovery_targets_combine_broadcast_and_join() {
        let s = NodeSettings::from_args(&run_args(&[
            "--dev-key",
            "--broadcast",
            "127.255.255.255",
            "--join",
            "127.0.0.1:7001",
        ]))
        .unwrap();
        assert_eq!(
            s.discovery_targets,
            vec!["127.255.255.255:7946".parse().unwrap(), "127.0.0.1:7001".parse().unwrap()]
        );
        // The default admin token is derived from the key, never the key itself.
        let key = ClusterKey::new(DEV_KEY.as_bytes()).unwrap();
        assert_eq!(s.admin_token, default_admin_token(&key));
        assert_ne!(s.admin_token, DEV_KEY);
        assert_eq!(s.admin_token.len(), 32);
    }

    #[test]
    fn loopback_nodes_broadcast_on_loopback() {
        let ips = default_broadcast_addresses("127.0.0.1".parse().unwrap());
        assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255))]);
    }
}
