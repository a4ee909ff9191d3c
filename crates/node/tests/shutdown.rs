//! `driver::run` in-process: it returns only once its listeners are closed, so the same ports
//! can be bound again at once (a restart on the same addresses never fails with "address in
//! use"), as in mini-redis's `run(listener, shutdown)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use auction_node::cli::{Cli, Command};
use auction_node::settings::NodeSettings;
use clap::Parser;

mod common;

#[tokio::test(flavor = "current_thread")]
async fn run_returns_with_its_ports_free() {
    let dir = tempfile::tempdir().unwrap();
    let (peer, client, metrics) = (common::free_port(), common::free_port(), common::free_port());
    let discovery = common::free_port();
    let args = [
        "auction-node",
        "run",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--peer-addr",
        &format!("127.0.0.1:{peer}"),
        "--client-addr",
        &format!("127.0.0.1:{client}"),
        "--metrics-addr",
        &format!("127.0.0.1:{metrics}"),
        "--discovery-port",
        &discovery.to_string(),
        "--no-broadcast",
        "--cluster-key",
        common::KEY,
        "--bootstrap",
        "--bootstrap-probe",
        "10ms",
    ];
    let Command::Run(run) = Cli::try_parse_from(args).unwrap().command else { panic!("run") };
    let settings = NodeSettings::from_args(&run).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(auction_node::driver::run(settings, async {
        let _ = stopped.await;
    }));
    // A client connected when the node stops must not keep the port either.
    let addr: SocketAddr = format!("127.0.0.1:{client}").parse().unwrap();
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            connected = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(connected.is_some(), "the node never listened");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), node).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    for port in [client, peer, metrics] {
        let bound = TcpListener::bind(("127.0.0.1", port));
        assert!(bound.is_ok(), "tcp port {port} still taken: {bound:?}");
    }
    let bound = UdpSocket::bind(("127.0.0.1", peer));
    assert!(bound.is_ok(), "udp port {peer} still taken: {bound:?}");
}
