//! The workload against our cluster: a seller opens A auctions, C bidders register, then each
//! bidder bids on a random auction, one request after another, until the window ends.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use auction_proto::msg::auction::{AuctionSpec, IncrementRule, Outcome, RejectReason};
use auction_proto::msg::client::{Reply, RequestBody};
use auction_proto::{Amount, AuctionId};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Client, ClientConfig};
use crate::stats::{Recorder, Window};

/// Cents between two bids (the auctions' fixed increment).
pub(crate) const INCREMENT: u64 = 100;
/// Starting price of every auction, in cents.
const START: u64 = 1_000;

/// A run's shape.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    /// Concurrent clients.
    pub(crate) clients: usize,
    /// Auctions.
    pub(crate) auctions: usize,
    /// Warm-up before measuring.
    pub(crate) warmup: Duration,
    /// Measured time.
    pub(crate) duration: Duration,
}

/// What the clients measured, and how often they re-sent.
#[derive(Debug)]
pub(crate) struct ClientsDone {
    /// One recorder per client.
    pub(crate) recorders: Vec<Recorder>,
    /// Attempts re-sent in total.
    pub(crate) retries: u64,
    /// The measured window.
    pub(crate) window: Window,
}

impl ClientsDone {
    /// Waits for every client task of the measured window and gathers what they recorded.
    pub(crate) async fn collect(
        mut running: JoinSet<anyhow::Result<(Recorder, u64)>>,
        window: Window,
    ) -> anyhow::Result<Self> {
        let mut done = Self { recorders: Vec::new(), retries: 0, window };
        while let Some(r) = running.join_next().await {
            let (rec, retries) = r.context("client task")??;
            done.recorders.push(rec);
            done.retries += retries;
        }
        Ok(done)
    }
}

/// How long a client waits for one answer before it re-sends (the etcd backend's clients use
/// the same per-request timeout).
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client config for the `i`-th client.
pub(crate) fn client_config(servers: &[SocketAddr], i: usize) -> ClientConfig {
    ClientConfig {
        servers: servers.to_vec(),
        first: i,
        attempt_timeout: ATTEMPT_TIMEOUT,
        give_up: Duration::from_secs(30),
        pause: Duration::from_millis(10),
    }
}

/// Opens `shape.auctions` auctions as a fresh seller; returns their ids.
pub(crate) async fn open_auctions(
    servers: &[SocketAddr],
    tag: &str,
    n: usize,
) -> anyhow::Result<Vec<AuctionId>> {
    let mut seller = Client::new(client_config(servers, 0));
    seller.register_and_login(&format!("s{tag}")).await.context("seller")?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let spec = AuctionSpec {
            title: format!("bench {tag} {i}"),
            description: "auction-bench".into(),
            starting_price: Amount::from_minor(START),
            reserve: None,
            increment: IncrementRule::Fixed(Amount::from_minor(INCREMENT)),
            duration: Duration::from_secs(30 * 24 * 3600),
            soft_close: None,
            buy_now: None,
        };
        match seller.call(&RequestBody::Open { spec }).await?.result {
            Ok(Reply::Outcome(Outcome::Opened { auction, .. })) => ids.push(auction),
            other => bail!("open: {other:?}"),
        }
    }
    Ok(ids)
}

/// Registers the bidders, then runs them for the window that starts once all are ready.
pub(crate) async fn run(
    servers: &[SocketAddr],
    tag: &str,
    auctions: &[AuctionId],
    shape: &Shape,
    on_window: impl FnOnce(Window),
) -> anyhow::Result<ClientsDone> {
    let mut ready = JoinSet::new();
    for i in 0..shape.clients {
        let cfg = client_config(servers, i);
        let name = format!("b{tag}-{i}");
        ready.spawn(async move {
            let mut c = Client::new(cfg);
            c.register_and_login(&name).await.map(|()| c)
        });
    }
    let mut clients = Vec::with_capacity(shape.clients);
    while let Some(r) = ready.join_next().await {
        clients.push(r.context("client task")??);
    }
    let window = Window::after(shape.warmup, shape.duration);
    on_window(window);
    let mut running = JoinSet::new();
    for (i, c) in clients.into_iter().enumerate() {
        let auctions = auctions.to_vec();
        running.spawn(bidder(c, auctions, window, i as u64));
    }
    ClientsDone::collect(running, window).await
}

/// One bidder's loop: a random auction, an amount just above the last price it saw there.
async fn bidder(
    mut c: Client,
    auctions: Vec<AuctionId>,
    window: Window,
    seed: u64,
) -> anyhow::Result<(Recorder, u64)> {
    let mut rec = Recorder::new(window);
    let mut rng = SplitMix(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    // The smallest amount this client believes would win, per auction.
    let mut next = vec![START; auctions.len()];
    while Instant::now() < window.end {
        let k = (rng.next() % auctions.len() as u64) as usize;
        // A small random jump over the known minimum beats most concurrent bids.
        let amount = next[k] + INCREMENT * (rng.next() % 4);
        let body = RequestBody::Bid {
            auction: auctions[k],
            amount: Amount::from_minor(amount),
            expected: None,
        };
        let sent = Instant::now();
        let r = match tokio::time::timeout_at(window.end, c.call(&body)).await {
            Ok(r) => r?,
            Err(_) => break, // the window ended with this request in flight
        };
        let done = Instant::now();
        let accepted = match r.result {
            Ok(Reply::Outcome(Outcome::Accepted { price, .. })) => {
                next[k] = price.minor() + INCREMENT;
                true
            }
            Ok(Reply::Outcome(Outcome::Rejected { reason: RejectReason::TooLow { minimum } })) => {
                next[k] = minimum.minor();
                false
            }
            Ok(Reply::Outcome(_)) => false,
            other => bail!("bid: unexpected answer {other:?}"),
        };
        rec.complete(sent, done, accepted);
    }
    Ok((rec, c.retries))
}

/// A tiny deterministic generator (SplitMix64): the bench needs spread, not quality.
#[derive(Debug)]
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
