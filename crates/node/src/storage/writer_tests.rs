//! Tests of the writer thread: group commit, failure, durable terms.

use auction_ordering::Snapshot;
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation, RequestId};
use std::path::Path;

use auction_proto::{AuctionId, ClientId, LogPosition, RequestNo, Seq, Term, Timestamp};
use tempfile::TempDir;

use super::writer::spawn_gated;
use super::*;

fn entry(term: u64, seq: u64) -> LogEntry {
    let origin = Some(RequestId { client: ClientId::from_bytes([7; 16]), no: RequestNo(seq) });
    let op = Operation::Close { auction: AuctionId(seq) };
    LogEntry {
        term: Term(term),
        seq: Seq(seq),
        timestamp: Timestamp(1_000 + seq),
        payload: EntryPayload::Command(Command { origin, op }),
    }
}

fn entries(term: u64, seqs: std::ops::RangeInclusive<u64>) -> Vec<LogEntry> {
    seqs.map(|s| entry(term, s)).collect()
}

fn snap(term: u64, seq: u64) -> Snapshot {
    Snapshot {
        last_included: LogPosition { term: Term(term), seq: Seq(seq) },
        members: Vec::new(),
        bytes: vec![seq as u8; 100],
    }
}

fn open(dir: &Path) -> (Storage, Recovered) {
    Storage::open(dir, FsyncPolicy::Always).unwrap()
}

fn recv_all(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Done>, n: usize) -> Vec<Done> {
    (0..n).map(|_| rx.blocking_recv().unwrap()).collect()
}

#[test]
fn the_writer_groups_a_batch_under_one_sync_and_confirms_in_order() {
    use auction_ordering::StoreId;
    let dir = TempDir::new().unwrap();
    let (s, _) = open(dir.path());
    let (gate_tx, gate) = std::sync::mpsc::channel();
    let (w, mut rx) = spawn_gated(s, Some(gate));
    for i in 1..=5 {
        w.submit(Job::Store { id: StoreId(i), from: Seq(i), entries: vec![entry(1, i)] }).unwrap();
    }
    w.submit(Job::SaveSnapshot(snap(1, 2))).unwrap();
    w.submit(Job::Store { id: StoreId(6), from: Seq(6), entries: entries(1, 6..=8) }).unwrap();
    gate_tx.send(()).unwrap();
    // One confirmation for the batch: the highest id (stores complete in order).
    let ids: Vec<u64> = recv_all(&mut rx, 1)
        .into_iter()
        .map(|d| match d {
            Done::Stored(id) => id.0,
            Done::Failed(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(ids, [6]);
    let s = w.shutdown().unwrap();
    // One sync inside save_snapshot (the WAL must cover it) and one for the batch.
    assert_eq!(s.stats().syncs, 2);
    drop(s);
    let (_, r) = open(dir.path());
    assert_eq!((r.snapshot, r.entries), (Some(snap(1, 2)), entries(1, 3..=8)));
}

#[test]
fn the_writer_reports_a_failure_and_stops() {
    use auction_ordering::StoreId;
    let dir = TempDir::new().unwrap();
    let (s, _) = open(dir.path());
    let (w, mut rx) = spawn_writer(s);
    w.submit(Job::Store { id: StoreId(1), from: Seq(1), entries: vec![entry(1, 1)] }).unwrap();
    assert!(matches!(recv_all(&mut rx, 1)[0], Done::Stored(StoreId(1))));
    w.submit(Job::Store { id: StoreId(2), from: Seq(9), entries: vec![entry(1, 9)] }).unwrap();
    match rx.blocking_recv() {
        Some(Done::Failed(e)) => assert!(matches!(*e, StorageError::NotContiguous { .. })),
        other => panic!("{other:?}"),
    }
    assert!(rx.blocking_recv().is_none(), "the writer stopped");
    let late = w.submit(Job::Store { id: StoreId(3), from: Seq(2), entries: vec![] });
    assert!(matches!(late, Err(StorageError::WriterStopped)));
    assert!(w.shutdown().is_none());
}

#[tokio::test]
async fn the_writer_saves_terms_durably_before_answering() {
    let dir = TempDir::new().unwrap();
    let (s, _) = open(dir.path());
    let (w, _rx) = spawn_writer(s);
    w.save_term(Term(7), None).await.unwrap();
    // Durable now: the file on disk already says so.
    assert_eq!(Meta::load(dir.path()).unwrap().unwrap().term, Term(7));
    let s = tokio::task::spawn_blocking(move || w.shutdown()).await.unwrap().unwrap();
    assert_eq!(s.meta().term, Term(7));
}
