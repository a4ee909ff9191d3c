//! Prometheus text metrics on an optional HTTP address (`--metrics-addr`).
//!
//! The driver owns the counters and renders the text page on its periodic tick; the HTTP task
//! only serves the last rendered page (a `watch` channel), so scraping never touches protocol
//! state.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use auction_proto::Term;
use auction_proto::msg::client::Role;
use auction_proto::msg::peer::MemberState;
use auction_replica::Replica;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::transport::TransportStats;

/// Upper bounds (seconds) of the write-latency histogram buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

/// The driver's counters and the channel to the HTTP task.
#[derive(Debug)]
pub struct MetricsHandle {
    page: Option<watch::Sender<String>>,
    task: Option<tokio::task::JoinHandle<()>>,
    writes: u64,
    role_changes: u64,
    term: Term,
    role: Option<Role>,
    latency_counts: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_n: u64,
}

impl MetricsHandle {
    /// Starts the HTTP endpoint if `addr` is given (a bind failure is logged, not fatal).
    pub async fn start(addr: Option<SocketAddr>) -> Self {
        let mut page = None;
        let mut task = None;
        if let Some(addr) = addr {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let (tx, rx) = watch::channel(String::new());
                    task = Some(tokio::spawn(serve(listener, rx)));
                    info!(%addr, "metrics endpoint");
                    page = Some(tx);
                }
                Err(e) => warn!(%addr, error = %e, "cannot bind the metrics address; metrics off"),
            }
        }
        Self {
            page,
            task,
            writes: 0,
            role_changes: 0,
            term: Term(0),
            role: None,
            latency_counts: [0; BUCKETS.len()],
            latency_sum: 0.0,
            latency_n: 0,
        }
    }

    /// Closes the endpoint's listener and waits until it is closed.
    pub async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// A client write was applied.
    pub fn applied_write(&mut self) {
        self.writes += 1;
    }

    /// A client write was answered `latency` after it arrived.
    pub fn observe_write(&mut self, latency: Duration) {
        let s = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.latency_counts[i] += 1;
            }
        }
        self.latency_sum += s;
        self.latency_n += 1;
    }

    /// The node's role changed.
    pub fn role(&mut self, role: Role, term: Term) {
        self.role_changes += 1;
        self.role = Some(role);
        self.term = term;
    }

    /// Renders the page for the HTTP task.
    pub fn publish(
        &self,
        replica: &Replica,
        clients: usize,
        pending_writes: usize,
        net: &TransportStats,
        admission: &auction_server::AdmissionStats,
    ) {
        let Some(page) = &self.page else { return };
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n");
        };
        gauge(
            "auction_commit_seq",
            "Highest committed log position known.",
            replica.commit().0 as f64,
        );
        gauge(
            "auction_applied_seq",
            "Highest log position applied to the state machine.",
            replica.applied().0 as f64,
        );
        gauge("auction_term", "Current election term.", replica.term().0 as f64);
        gauge(
            "auction_clock_skew_seconds",
            "This server's wall clock minus the median of the cluster's clocks (measured from heartbeats).",
            replica.clock_skew_ms() as f64 / 1000.0,
        );
        gauge(
            "auction_ready",
            "1 once this server answers clients from its state (caught up with its leader).",
            f64::from(u8::from(replica.is_ready())),
        );
        gauge(
            "auction_is_leader",
            "1 if this node is the sequencer.",
            f64::from(u8::from(replica.is_leading())),
        );
        gauge(
            "auction_role_changes",
            "Role changes (elections seen) since start.",
            self.role_changes as f64,
        );
        gauge("auction_client_sessions", "Connected clients.", clients as f64);
        gauge(
            "auction_client_connections_refused",
            "Client connections closed at once: the server was full (--max-clients).",
            admission.refused_full as f64,
        );
        gauge(
            "auction_client_connections_refused_per_ip",
            "Client connections closed at once: their IP address was at --max-clients-per-ip.",
            admission.refused_per_source as f64,
        );
        gauge(
            "auction_client_hello_timeouts",
            "Client connections closed for not saying Hello within --hello-timeout.",
            admission.hello_timeouts as f64,
        );
        gauge(
            "auction_pending_writes",
            "Client writes waiting for their outcome.",
            pending_writes as f64,
        );
        gauge("auction_applied_writes", "Client writes applied since start.", self.writes as f64);
        gauge(
            "auction_peer_frames_rejected",
            "Peer frames refused by the codec (a refused TCP frame closes its connection).",
            net.rejected as f64,
        );
        gauge(
            "auction_peer_frames_replayed",
            "Peer frames refused as replays.",
            net.replayed as f64,
        );
        gauge("auction_peer_frames_dropped", "Outbound peer frames dropped.", net.dropped as f64);
        gauge(
            "auction_peer_connections_refused",
            "Inbound peer connections closed at once over a cap.",
            net.refused_connections as f64,
        );
        gauge(
            "auction_peer_connections_timed_out",
            "Inbound peer connections closed by a timeout.",
            net.timed_out as f64,
        );
        gauge(
            "auction_peer_buffered_bytes",
            "Bytes read from inbound peer connections, not yet handled.",
            net.buffered_bytes as f64,
        );
        let servers = replica.servers();
        let _ = writeln!(out, "# HELP auction_members Members by failure-detector state.");
        let _ = writeln!(out, "# TYPE auction_members gauge");
        for (state, label) in [
            (MemberState::Alive, "alive"),
            (MemberState::Suspect, "suspect"),
            (MemberState::Down, "down"),
            (MemberState::Left, "left"),
        ] {
            let n = servers.iter().filter(|s| s.state == state).count();
            let _ = writeln!(out, "auction_members{{state=\"{label}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP auction_write_latency_seconds Client write latency.");
        let _ = writeln!(out, "# TYPE auction_write_latency_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "auction_write_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_counts[i]
            );
        }
        let _ =
            writeln!(out, "auction_write_latency_seconds_bucket{{le=\"+Inf\"}} {}", self.latency_n);
        let _ = writeln!(out, "auction_write_latency_seconds_sum {}", self.latency_sum);
        let _ = writeln!(out, "auction_write_latency_seconds_count {}", self.latency_n);
        page.send_replace(out);
    }
}

/// Most scrapes served at once; further connections are closed at once.
const MAX_SCRAPES: usize = 16;
/// How long a scrape may take to send its request, and to take the page.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

async fn serve(listener: TcpListener, page: watch::Receiver<String>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: do not spin on the error.
                warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropping the stream closes it
        };
        let page = page.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = [0u8; 4096];
            let read = tokio::time::timeout(SCRAPE_TIMEOUT, stream.read(&mut buf)).await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return;
            }
            let body = page.borrow().clone();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let write = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await
            };
            let _ = tokio::time::timeout(SCRAPE_TIMEOUT, write).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scrapes beyond `MAX_SCRAPES` at once are closed at once; a held slot is given back.
    #[tokio::test]
    async fn scrapes_are_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel("page".to_string());
        tokio::spawn(serve(listener, rx));
        // Connections that never send a request hold their slots (until the 5 s timeout).
        let mut idle = Vec::new();
        for _ in 0..MAX_SCRAPES {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed at once: {n:?}");
        // One idle scraper asks: it gets the page, and its slot is free again.
        let mut first = idle.remove(0);
        first.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut page = Vec::new();
        first.read_to_end(&mut page).await.unwrap();
        assert!(String::from_utf8_lossy(&page).ends_with("page"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
        again.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
        let mut page = Vec::new();
        again.read_to_end(&mut page).await.unwrap();
        assert!(String::from_utf8_lossy(&page).contains("200 OK"));
        drop(tx);
    }
}
