//! Finding servers: `FindServers` broadcast over UDP, `Here` answers, and the seed's load
//! balancing (the least-loaded live server).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use auction_proto::msg::client::{ClientToServer, ServerInfo, ServerToClient};
use auction_proto::msg::peer::MemberState;
use auction_proto::{ClientCodec, ClusterId, NodeId};
use tokio::net::UdpSocket;

/// Where and how long to look for servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The cluster name (its id is derived with [`ClusterId::from_name`]).
    pub cluster: String,
    /// The UDP discovery port of the servers.
    pub port: u16,
    /// Where to send `FindServers` (broadcast or unicast addresses).
    pub targets: Vec<IpAddr>,
    /// How long to collect answers.
    pub window: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            cluster: "auction".to_string(),
            port: 7946,
            targets: vec![IpAddr::V4(Ipv4Addr::BROADCAST)],
            window: Duration::from_millis(500),
        }
    }
}

/// Broadcasts `FindServers` and collects the `Here` answers for the configured window, one
/// per server (the last answer of a node wins).
pub async fn find_servers(config: &DiscoveryConfig) -> io::Result<Vec<ServerInfo>> {
    let codec = ClientCodec::default();
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.set_broadcast(true)?;
    let msg = ClientToServer::FindServers { cluster: ClusterId::from_name(&config.cluster) };
    let frame = codec.encode(&msg).map_err(io::Error::other)?;
    let mut sent = 0;
    let mut last_err = None;
    for ip in &config.targets {
        match socket.send_to(&frame, SocketAddr::new(*ip, config.port)).await {
            Ok(_) => sent += 1,
            Err(e) => last_err = Some(e),
        }
    }
    if sent == 0 {
        if let Some(e) = last_err {
            return Err(e);
        }
    }
    let mut found: BTreeMap<NodeId, ServerInfo> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + config.window;
    let mut buf = vec![0u8; 64 * 1024 + 64];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let Ok((n, _from)) = received else { continue };
        if let Ok(ServerToClient::Here(info)) = codec.decode_datagram::<ServerToClient>(&buf[..n]) {
            found.insert(info.node, info);
        }
    }
    Ok(found.into_values().collect())
}

/// The servers in the order a client should try them: live ones first, fewest clients first,
/// then by node id so the order is stable.
pub fn by_preference(servers: &[ServerInfo]) -> Vec<ServerInfo> {
    let mut sorted = servers.to_vec();
    sorted.sort_by_key(|s| (rank(s.state), s.clients, s.node));
    sorted
}

/// The least-loaded live server (the seed's load balancing), if any is alive.
pub fn least_loaded(servers: &[ServerInfo]) -> Option<ServerInfo> {
    by_preference(servers).into_iter().find(|s| s.state == MemberState::Alive)
}

fn rank(state: MemberState) -> u8 {
    match state {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Down => 2,
        MemberState::Left => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_proto::Incarnation;

    fn info(n: u8, clients: u32, state: MemberState) -> ServerInfo {
        ServerInfo {
            node: NodeId::from_bytes([n; 16]),
            incarnation: Incarnation(1),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(n))),
            state,
            clients,
        }
    }

    #[test]
    fn picks_the_least_loaded_live_server() {
        let servers = [
            info(1, 5, MemberState::Alive),
            info(2, 0, MemberState::Down),
            info(3, 2, MemberState::Alive),
            info(4, 1, MemberState::Suspect),
        ];
        assert_eq!(least_loaded(&servers), Some(servers[2].clone()));
        let order: Vec<u8> = by_preference(&servers).iter().map(|s| s.node.as_bytes()[0]).collect();
        assert_eq!(order, [3, 1, 4, 2]);
        assert_eq!(least_loaded(&[info(9, 0, MemberState::Left)]), None);
    }

    #[tokio::test]
    async fn collects_here_answers() {
        let responder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = responder.local_addr().unwrap().port();
        let answers = [info(1, 5, MemberState::Alive), info(2, 1, MemberState::Alive)];
        let sent = answers.clone();
        tokio::spawn(async move {
            let codec = ClientCodec::default();
            let mut buf = [0u8; 1024];
            let (n, from) = responder.recv_from(&mut buf).await.unwrap();
            let msg: ClientToServer = codec.decode_datagram(&buf[..n]).unwrap();
            assert_eq!(msg, ClientToServer::FindServers { cluster: ClusterId::from_name("t") });
            for a in sent {
                let frame = codec.encode(&ServerToClient::Here(a)).unwrap();
                responder.send_to(&frame, from).await.unwrap();
            }
            responder.send_to(b"junk", from).await.unwrap();
        });
        let config = DiscoveryConfig {
            cluster: "t".into(),
            port,
            targets: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            window: Duration::from_millis(300),
        };
        let found = find_servers(&config).await.unwrap();
        assert_eq!(found, answers);
        assert_eq!(least_loaded(&found), Some(answers[1].clone()));
    }
}
