//! Throughput of `apply` on a realistic mix, with 10,000 open auctions.
//!
//! Run with `cargo bench -p auction-core`. The mix, per bid entry: a random auction among
//! 10,000 (a few hot ones get a quarter of the traffic), a random bidder among 2,000, a client
//! request id (5 % of entries are retries of an earlier request), 70 % plain / 30 % proxy,
//! amounts around the auction's current price so that some bids are too low or lose to a
//! hidden maximum. Soft close is on for a tenth of the auctions.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use auction_core::AuctionMachine;
use auction_proto::msg::auction::*;
use auction_proto::msg::log::*;
use auction_proto::{Amount, AuctionId, ClientId, RequestNo, Seq, Term, Timestamp};
use divan::{AllocProfiler, Bencher, black_box, counter::ItemsCount};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const AUCTIONS: u64 = 10_000;
const BIDDERS: u64 = 2_000;
const CLIENTS: u64 = 2_000;
const BIDS: usize = 200_000;

fn main() {
    divan::main();
}

/// A small deterministic generator (xorshift64*), so the bench needs no RNG crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn bidder(i: u64) -> BidderName {
    BidderName::new(format!("bidder{i}")).unwrap()
}

fn spec(i: u64) -> AuctionSpec {
    AuctionSpec {
        title: format!("Item number {i}"),
        description: "A realistic short description of the item for sale.".into(),
        starting_price: Amount::from_minor(100 + i % 1000),
        reserve: (i % 3 == 0).then(|| Amount::from_minor(5_000)),
        increment: if i % 2 == 0 {
            IncrementRule::Fixed(Amount::from_minor(50))
        } else {
            IncrementRule::Tiered(vec![
                IncrementTier { from: Amount::ZERO, increment: Amount::from_minor(25) },
                IncrementTier {
                    from: Amount::from_minor(2_500),
                    increment: Amount::from_minor(100),
                },
                IncrementTier {
                    from: Amount::from_minor(10_000),
                    increment: Amount::from_minor(250),
                },
            ])
        },
        duration: Duration::from_secs(7 * 24 * 3600),
        soft_close: (i % 10 == 0).then(|| SoftClose {
            window: Duration::from_secs(120),
            extension: Duration::from_secs(120),
            max_extension: Duration::from_secs(3600),
        }),
        buy_now: (i % 4 == 0).then(|| Amount::from_minor(1_000_000)),
    }
}

fn entry(seq: &mut u64, at: u64, origin: Option<RequestId>, op: Operation) -> LogEntry {
    *seq += 1;
    LogEntry {
        term: Term(1),
        seq: Seq(*seq),
        timestamp: Timestamp(at),
        payload: EntryPayload::Command(Command { origin, op }),
    }
}

/// The machine with bidders and open auctions, and the bid entries to apply to it.
fn setup() -> (AuctionMachine, Vec<LogEntry>) {
    let mut m = AuctionMachine::new();
    let mut seq = 0;
    for i in 0..BIDDERS {
        let op = Operation::RegisterBidder { name: bidder(i), token_hash: [0; 32] };
        m.apply(&entry(&mut seq, 1_000, None, op));
    }
    for i in 0..AUCTIONS {
        let op = Operation::OpenAuction { seller: bidder(i % BIDDERS), spec: spec(i) };
        m.apply(&entry(&mut seq, 1_000, None, op));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut price = vec![0u64; AUCTIONS as usize];
    let mut next_no = vec![0u64; CLIENTS as usize];
    let mut sent: Vec<(RequestId, Operation)> = Vec::new();
    let mut entries = Vec::with_capacity(BIDS);
    for n in 0..BIDS {
        let at = 2_000 + n as u64; // one bid per sequencer millisecond
        if !sent.is_empty() && rng.below(20) == 0 {
            let (origin, op) = sent[rng.below(sent.len() as u64) as usize].clone();
            entries.push(entry(&mut seq, at, Some(origin), op));
            continue;
        }
        let a = if rng.below(4) == 0 { rng.below(100) } else { rng.below(AUCTIONS) };
        let p = &mut price[a as usize];
        *p = (*p).max(100 + a % 1000) + rng.below(300);
        let proxy = rng.below(10) < 3;
        let amount = Amount::from_minor(if proxy { *p + rng.below(2_000) } else { *p });
        let kind = if proxy { BidKind::Proxy } else { BidKind::Plain };
        let op = Operation::PlaceBid {
            auction: AuctionId(a + 1),
            bidder: bidder(rng.below(BIDDERS)),
            amount,
            kind,
            expected: None,
        };
        let c = rng.below(CLIENTS);
        next_no[c as usize] += 1;
        let origin =
            RequestId { client: ClientId::from_bytes(pad(c)), no: RequestNo(next_no[c as usize]) };
        sent.push((origin, op.clone()));
        entries.push(entry(&mut seq, at, Some(origin), op));
    }
    (m, entries)
}

fn pad(c: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&c.to_be_bytes());
    b
}

/// Applies 200,000 bid entries to a machine holding 10,000 open auctions.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn apply_bids(bencher: Bencher<'_, '_>) {
    let (machine, entries) = setup();
    bencher
        .counter(ItemsCount::new(entries.len()))
        .with_inputs(|| machine.clone())
        .bench_local_values(|mut m| {
            for e in &entries {
                black_box(m.apply(e));
            }
            m
        });
}

/// Opens 10,000 auctions: the allocation profile divided by 10,000 is the memory per auction
/// before bids.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn open_auctions(bencher: Bencher<'_, '_>) {
    let mut seq = 0;
    let mut m = AuctionMachine::new();
    for i in 0..BIDDERS {
        let op = Operation::RegisterBidder { name: bidder(i), token_hash: [0; 32] };
        m.apply(&entry(&mut seq, 1_000, None, op));
    }
    let opens: Vec<_> = (0..AUCTIONS)
        .map(|i| {
            entry(
                &mut seq,
                1_000,
                None,
                Operation::OpenAuction { seller: bidder(i % BIDDERS), spec: spec(i) },
            )
        })
        .collect();
    bencher.counter(ItemsCount::new(opens.len())).with_inputs(|| m.clone()).bench_local_values(
        |mut m| {
            for e in &opens {
                black_box(m.apply(e));
            }
            m
        },
    );
}
