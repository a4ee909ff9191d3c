//! Measures how long `Storage::open` takes to recover a WAL of N entries (default 1,000,000).
//!
//! ```sh
//! cargo run --release -p auction-node --example wal_recovery -- 1000000
//! ```

#![allow(clippy::print_stdout)]

use std::time::Instant;

use auction_node::storage::{FsyncPolicy, Storage};
use auction_proto::msg::auction::{BidKind, BidderName};
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation, RequestId};
use auction_proto::{Amount, AuctionId, ClientId, RequestNo, Seq, Term, Timestamp};

fn bid(seq: u64, bidder: &BidderName) -> LogEntry {
    let origin = Some(RequestId { client: ClientId::from_bytes([7; 16]), no: RequestNo(seq) });
    let op = Operation::PlaceBid {
        auction: AuctionId(seq % 10_000),
        bidder: bidder.clone(),
        amount: Amount::from_minor(1_000 + seq),
        kind: BidKind::Plain,
        expected: None,
    };
    LogEntry {
        term: Term(1),
        seq: Seq(seq),
        timestamp: Timestamp(1_700_000_000_000 + seq),
        payload: EntryPayload::Command(Command { origin, op }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let bidder = BidderName::new("bidder_0042")?;
    {
        let (mut s, _) = Storage::open(dir.path(), FsyncPolicy::Never)?;
        let mut next = 1;
        while next <= n {
            let last = (next + 999).min(n);
            let batch: Vec<LogEntry> = (next..=last).map(|seq| bid(seq, &bidder)).collect();
            s.store(Seq(next), &batch)?;
            next = last + 1;
        }
        s.sync()?;
        let stats = s.stats();
        println!(
            "wrote {n} bid entries: {} bytes in {} segment(s)",
            stats.wal_bytes, stats.segments
        );
    }
    let t = Instant::now();
    let (_, recovered) = Storage::open(dir.path(), FsyncPolicy::Always)?;
    let took = t.elapsed();
    assert_eq!(recovered.entries.len() as u64, n);
    println!("recovered {n} entries in {took:?}");
    Ok(())
}
