//! The comparison backend: the same clients, auctions and window against a 3-member etcd
//! cluster (scripts/etcd-cluster.sh). An auction is one key holding the high bid as 20 zero-
//! padded decimal digits (so etcd's byte-wise comparison is numeric); a bid is one transaction
//! "if the stored high is below the amount, put it, else read it" — a single round trip that,
//! like our `TooLow { minimum }`, tells a losing bidder the price to beat.

use std::time::Duration;

use anyhow::Context;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::load::{ClientsDone, INCREMENT, Shape, SplitMix};
use crate::stats::{Recorder, Window};

fn value(amount: u64) -> String {
    format!("{amount:020}")
}

/// Runs the workload against etcd at `endpoints`.
pub(crate) async fn run(
    endpoints: &[String],
    tag: &str,
    shape: &Shape,
) -> anyhow::Result<ClientsDone> {
    let options = || {
        ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
    };
    let mut setup = Client::connect(endpoints, Some(options()))
        .await
        .context("cannot connect to etcd (scripts/etcd-cluster.sh start DIR)")?;
    let keys: Vec<String> = (0..shape.auctions).map(|k| format!("bench/{tag}/{k}")).collect();
    for k in &keys {
        setup.put(k.as_str(), value(1_000), None).await.context("etcd put")?;
    }
    // Every client has its own etcd-client (its own HTTP/2 channels), as our clients have
    // their own TCP connection. etcd-client balances each client's requests over all the
    // endpoints it is given, so the rotation below only changes their order.
    let mut clients = Vec::with_capacity(shape.clients);
    for i in 0..shape.clients {
        let mut eps = endpoints.to_vec();
        eps.rotate_left(i % endpoints.len().max(1));
        clients.push(Client::connect(eps, Some(options())).await.context("etcd connect")?);
    }
    let window = Window::after(shape.warmup, shape.duration);
    let mut running = JoinSet::new();
    for (i, c) in clients.into_iter().enumerate() {
        running.spawn(bidder(c, keys.clone(), window, i as u64));
    }
    ClientsDone::collect(running, window).await
}

async fn bidder(
    mut c: Client,
    keys: Vec<String>,
    window: Window,
    seed: u64,
) -> anyhow::Result<(Recorder, u64)> {
    let mut rec = Recorder::new(window);
    let mut rng = SplitMix(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
    let mut next = vec![1_000 + INCREMENT; keys.len()];
    let mut retries = 0;
    while Instant::now() < window.end {
        let k = (rng.next() % keys.len() as u64) as usize;
        let amount = next[k] + INCREMENT * (rng.next() % 4);
        let key = keys[k].as_str();
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Less, value(amount))])
            .and_then([TxnOp::put(key, value(amount), None)])
            .or_else([TxnOp::get(key, None)]);
        let sent = Instant::now();
        let resp = loop {
            match tokio::time::timeout_at(window.end, c.txn(txn.clone())).await {
                Err(_) => return Ok((rec, retries)),
                Ok(Ok(r)) => break r,
                Ok(Err(e)) if transient(&e) => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Err(e)) => return Err(e).context("etcd transaction"),
            }
        };
        let done = Instant::now();
        if resp.succeeded() {
            next[k] = amount + INCREMENT;
        } else if let Some(TxnOpResponse::Get(g)) = resp.op_responses().first() {
            let high = g
                .kvs()
                .first()
                .and_then(|kv| kv.value_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(next[k]);
            next[k] = high + INCREMENT;
        }
        rec.complete(sent, done, resp.succeeded());
    }
    Ok((rec, retries))
}

/// Whether an etcd error can go away by retrying (a member down, an election, a timeout),
/// as opposed to a setup error that would make every retry fail until the window ends.
fn transient(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) => true,
        // gRPC codes: 1 cancelled, 2 unknown, 4 deadline exceeded, 8 resource exhausted,
        // 10 aborted, 13 internal, 14 unavailable.
        E::GRpcStatus(s) => matches!(i32::from(s.code()), 1 | 2 | 4 | 8 | 10 | 13 | 14),
        _ => false,
    }
}
