//! Tests of the storage crate: recovery, torn tails, corruption, snapshots, meta, the lock,
//! and a model-based property test.

use std::fs;
use std::path::{Path, PathBuf};

use auction_ordering::Snapshot;
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation, RequestId};
use auction_proto::{AuctionId, ClientId, LogPosition, NodeId, RequestNo, Seq, Term, Timestamp};
use proptest::prelude::*;
use tempfile::TempDir;

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

fn open_small(dir: &Path) -> Result<(Storage, Recovered), StorageError> {
    Storage::open_with(dir, Options { fsync: FsyncPolicy::Never, segment_bytes: 512 })
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    wal::segment_numbers(dir).unwrap().into_iter().map(|n| wal::segment_path(dir, n)).collect()
}

fn only_wal(dir: &Path) -> PathBuf {
    let files = wal_files(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn round_trip_keeps_entries_node_id_and_counts_incarnations() {
    let dir = TempDir::new().unwrap();
    let (mut s, r) = open(dir.path());
    assert!(r.first_boot);
    assert_eq!(r.meta.incarnation.0, 1);
    assert!(r.entries.is_empty() && r.snapshot.is_none());
    s.store(Seq(1), &entries(1, 1..=10)).unwrap();
    s.store(Seq(11), &entries(1, 11..=12)).unwrap();
    s.sync().unwrap();
    assert_eq!(s.stats().last_seq, Seq(12));
    let node = r.meta.node;
    drop(s);
    for incarnation in 2..=4 {
        let (s, r) = open(dir.path());
        assert!(!r.first_boot);
        assert_eq!(r.meta.node, node);
        assert_eq!(r.meta.incarnation.0, incarnation);
        assert_eq!(r.entries, entries(1, 1..=12));
        assert_eq!(s.stats().last_seq, Seq(12));
    }
}

#[test]
fn store_below_the_end_replaces_the_suffix() {
    let dir = TempDir::new().unwrap();
    let (mut s, _) = open(dir.path());
    s.store(Seq(1), &entries(1, 1..=10)).unwrap();
    s.store(Seq(6), &entries(2, 6..=7)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (mut s, r) = open(dir.path());
    let mut want = entries(1, 1..=5);
    want.extend(entries(2, 6..=7));
    assert_eq!(r.entries, want);
    // A pure truncation, then more.
    s.store(Seq(4), &[]).unwrap();
    s.store(Seq(4), &entries(3, 4..=4)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, r) = open(dir.path());
    let mut want = entries(1, 1..=3);
    want.push(entry(3, 4));
    assert_eq!(r.entries, want);
}

#[test]
fn store_refuses_gaps_and_holes_without_writing() {
    let dir = TempDir::new().unwrap();
    let (mut s, _) = open(dir.path());
    s.store(Seq(1), &entries(1, 1..=3)).unwrap();
    let gap = s.store(Seq(5), &entries(1, 5..=5));
    assert!(matches!(gap, Err(StorageError::NotContiguous { expected: Seq(4), got: Seq(5) })));
    let hole = s.store(Seq(4), &[entry(1, 4), entry(1, 6)]);
    assert!(matches!(hole, Err(StorageError::NotContiguous { expected: Seq(5), got: Seq(6) })));
    // Not poisoned: the log goes on.
    s.store(Seq(4), &entries(1, 4..=4)).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(open(dir.path()).1.entries, entries(1, 1..=4));
}

/// Stores `1..=n` one entry per sync; returns the segment file and each record's offset
/// (plus the end of the last record; the file goes on with preallocated zeros).
fn log_with_offsets(dir: &Path, n: u64) -> (PathBuf, Vec<u64>) {
    let (mut s, _) = open(dir);
    let path = only_wal(dir);
    let mut offsets = vec![s.stats().wal_bytes];
    for seq in 1..=n {
        s.store(Seq(seq), &[entry(1, seq)]).unwrap();
        s.sync().unwrap();
        offsets.push(s.stats().wal_bytes);
    }
    (path, offsets)
}

#[test]
fn a_torn_tail_is_cut_at_every_byte() {
    let orig = TempDir::new().unwrap();
    let (path, offsets) = log_with_offsets(orig.path(), 5);
    let name = path.file_name().unwrap().to_owned();
    let (start, end) = (offsets[4], offsets[5]);
    for cut in start..end {
        let dir = TempDir::new().unwrap();
        copy_dir(orig.path(), dir.path());
        let file = dir.path().join(&name);
        fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(cut).unwrap();
        let (mut s, r) = open(dir.path());
        assert_eq!(r.entries, entries(1, 1..=4), "cut at {cut}");
        assert_eq!(fs::metadata(&file).unwrap().len(), start, "cut at {cut}");
        s.store(Seq(5), &[entry(2, 5)]).unwrap();
        s.sync().unwrap();
        drop(s);
        let (_, r) = open(dir.path());
        assert_eq!(r.entries.last(), Some(&entry(2, 5)));
    }
}

#[test]
fn the_active_segment_is_preallocated_and_its_zero_tail_is_a_clean_end() {
    let dir = TempDir::new().unwrap();
    let (path, offsets) = log_with_offsets(dir.path(), 3);
    let len = fs::metadata(&path).unwrap().len();
    assert_eq!(len, wal::PREALLOCATE, "zeros ahead of the records");
    let (mut s, r) = open(dir.path());
    assert_eq!(r.entries, entries(1, 1..=3));
    // Nothing was cut, and appending goes on right after the last record.
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(s.stats().wal_bytes, offsets[3]);
    s.store(Seq(4), &[entry(1, 4)]).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(open(dir.path()).1.entries, entries(1, 1..=4));
}

/// Entries 1..=60 in small segments (more than two), synced after each entry or once at the
/// end; returns the segment files in order.
fn sixty_entries_in_small_segments(dir: &Path, sync_each: bool) -> Vec<PathBuf> {
    let (mut s, _) = open_small(dir).unwrap();
    for seq in 1..=60 {
        s.store(Seq(seq), &[entry(1, seq)]).unwrap();
        if sync_each {
            s.sync().unwrap();
        }
    }
    s.sync().unwrap();
    drop(s);
    let files = wal_files(dir);
    assert!(files.len() > 2, "{files:?}");
    files
}

#[test]
fn a_sealed_segment_is_cut_to_its_records() {
    let dir = TempDir::new().unwrap();
    let files = sixty_entries_in_small_segments(dir.path(), true);
    // A zero tail in a sealed segment would be damage (recovery refuses it): only the active
    // segment keeps its preallocated zeros.
    let (_, r) = open_small(dir.path()).unwrap();
    assert_eq!(r.entries, entries(1, 1..=60));
    for f in &files[..files.len() - 1] {
        assert!(fs::metadata(f).unwrap().len() < 1024, "{f:?}");
    }
    assert!(fs::metadata(&files[files.len() - 1]).unwrap().len() >= 512);
}

#[test]
fn a_zeroed_or_garbled_last_record_is_a_torn_tail() {
    for fill in [0u8, 0xa5] {
        let dir = TempDir::new().unwrap();
        let (path, offsets) = log_with_offsets(dir.path(), 5);
        let mut bytes = fs::read(&path).unwrap();
        for b in &mut bytes[offsets[4] as usize..] {
            *b = fill;
        }
        // Trailing zeroes beyond the record, as a preallocated page would leave.
        bytes.extend_from_slice(&[0; 100]);
        fs::write(&path, &bytes).unwrap();
        let (_, r) = open(dir.path());
        assert_eq!(r.entries, entries(1, 1..=4));
    }
}

#[test]
fn damage_in_the_middle_is_an_error_naming_file_and_offset() {
    let orig = TempDir::new().unwrap();
    let (path, offsets) = log_with_offsets(orig.path(), 6);
    let name = path.file_name().unwrap().to_owned();
    // Flip one byte in the length, the checksums and the body of record 3.
    let rec = offsets[2];
    for at in [rec, rec + 5, rec + 9, rec + 14, offsets[3] - 1] {
        let dir = TempDir::new().unwrap();
        copy_dir(orig.path(), dir.path());
        let file = dir.path().join(&name);
        let mut bytes = fs::read(&file).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(&file, &bytes).unwrap();
        match Storage::open(dir.path(), FsyncPolicy::Always) {
            Err(StorageError::Corrupt { file: f, offset, .. }) => {
                assert_eq!((f, offset), (file.clone(), rec), "flip at {at}");
            }
            other => panic!("flip at {at}: {other:?}"),
        }
        // Nothing was cut.
        assert_eq!(fs::read(&file).unwrap(), bytes);
    }
}

#[test]
fn damage_in_a_sealed_segment_is_an_error() {
    let dir = TempDir::new().unwrap();
    let files = sixty_entries_in_small_segments(dir.path(), false);
    // Cut the tail of the first (sealed) segment: not a torn tail.
    let len = fs::metadata(&files[0]).unwrap().len();
    fs::OpenOptions::new().write(true).open(&files[0]).unwrap().set_len(len - 3).unwrap();
    let err = open_small(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { ref file, .. } if *file == files[0]), "{err:?}");
}

#[test]
fn snapshots_keep_only_the_suffix_and_remove_covered_segments() {
    let dir = TempDir::new().unwrap();
    let (mut s, _) = open_small(dir.path()).unwrap();
    s.store(Seq(1), &entries(1, 1..=100)).unwrap();
    s.sync().unwrap();
    let before = s.stats().segments;
    s.save_snapshot(&snap(1, 60)).unwrap();
    let after = s.stats();
    assert!(after.segments < before, "{before} -> {after:?}");
    assert_eq!((after.snapshot_seq, after.last_seq), (Seq(60), Seq(100)));
    drop(s);
    let (mut s, r) = open_small(dir.path()).unwrap();
    assert_eq!(r.snapshot, Some(snap(1, 60)));
    assert_eq!(r.entries, entries(1, 61..=100));
    // A second snapshot replaces the first file.
    s.save_snapshot(&snap(1, 90)).unwrap();
    assert_eq!(snapshot::snapshot_numbers(dir.path()).unwrap().len(), 1);
    drop(s);
    let (_, r) = open_small(dir.path()).unwrap();
    assert_eq!(r.snapshot, Some(snap(1, 90)));
    assert_eq!(r.entries, entries(1, 91..=100));
}

#[test]
fn install_snapshot_replaces_the_whole_log() {
    let dir = TempDir::new().unwrap();
    let (mut s, _) = open_small(dir.path()).unwrap();
    s.store(Seq(1), &entries(1, 1..=100)).unwrap();
    s.sync().unwrap();
    // Behind the log's end: the divergent suffix must go too.
    s.install_snapshot(&snap(2, 50)).unwrap();
    assert_eq!(s.stats().segments, 1);
    assert_eq!(wal_files(dir.path()).len(), 1);
    assert_eq!(s.stats().last_seq, Seq(50));
    drop(s);
    let (mut s, r) = open_small(dir.path()).unwrap();
    assert_eq!(r.snapshot, Some(snap(2, 50)));
    assert!(r.entries.is_empty());
    // Ahead of the log's end, then the log continues after it.
    s.install_snapshot(&snap(3, 500)).unwrap();
    s.store(Seq(501), &entries(3, 501..=503)).unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, r) = open_small(dir.path()).unwrap();
    assert_eq!(r.snapshot, Some(snap(3, 500)));
    assert_eq!(r.entries, entries(3, 501..=503));
}

#[test]
fn a_snapshot_ahead_of_a_lost_log_tail_restarts_the_log_after_it() {
    let dir = TempDir::new().unwrap();
    let (mut s, _) = open(dir.path());
    s.store(Seq(1), &entries(1, 1..=10)).unwrap();
    s.save_snapshot(&snap(1, 10)).unwrap();
    drop(s);
    // Lose the log's tail behind the durable snapshot.
    let path = only_wal(dir.path());
    fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(200).unwrap();
    let (mut s, r) = open(dir.path());
    assert_eq!((r.snapshot, r.entries.len()), (Some(snap(1, 10)), 0));
    s.store(Seq(11), &entries(1, 11..=12)).unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(open(dir.path()).1.entries, entries(1, 11..=12));
}

#[test]
fn save_term_survives_reopen_and_stray_tmp_files_are_ignored() {
    let dir = TempDir::new().unwrap();
    let (mut s, r) = open(dir.path());
    let leader = NodeId::from_bytes([9; 16]);
    s.save_term(Term(5), Some(leader)).unwrap();
    drop(s);
    fs::write(dir.path().join("meta.tmp"), b"half a meta fi").unwrap();
    fs::write(dir.path().join("snapshot-00000000000000000007.snap.tmp"), b"junk").unwrap();
    let (_, r2) = open(dir.path());
    assert_eq!((r2.meta.term, r2.meta.accepted), (Term(5), Some(leader)));
    assert_eq!(r2.meta.node, r.meta.node);
    assert!(!dir.path().join("meta.tmp").exists());
    assert!(r2.snapshot.is_none());
}

#[test]
fn a_damaged_meta_file_is_an_error_and_log_without_meta_is_refused() {
    let dir = TempDir::new().unwrap();
    drop(open(dir.path()));
    let meta = dir.path().join("meta");
    let mut bytes = fs::read(&meta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&meta, &bytes).unwrap();
    let err = Storage::open(dir.path(), FsyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { offset: 0, .. }), "{err:?}");
    fs::remove_file(&meta).unwrap();
    let err = Storage::open(dir.path(), FsyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StorageError::MissingMeta { .. }), "{err:?}");
}

#[test]
fn a_second_open_of_the_same_dir_is_locked() {
    let dir = TempDir::new().unwrap();
    let (s, _) = open(dir.path());
    match Storage::open(dir.path(), FsyncPolicy::Always) {
        Err(StorageError::Locked { dir: d, pid }) => {
            assert_eq!(d, dir.path());
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    drop(s);
    drop(open(dir.path()));
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    /// Store `n` entries of a new term starting `back` entries before the end.
    Store {
        back: u64,
        n: u64,
    },
    Sync,
    Snapshot {
        back: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u64, 0..12u64).prop_map(|(back, n)| Op::Store { back, n }),
        2 => Just(Op::Sync),
        1 => (0..20u64).prop_map(|back| Op::Snapshot { back }),
        2 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_a_vec_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = TempDir::new().unwrap();
        let (mut s, _) = open_small(dir.path()).unwrap();
        // The model: the snapshot point and the entries after it.
        let mut base = 0u64;
        let mut model: Vec<LogEntry> = Vec::new();
        let mut term = 1;
        for op in ops {
            let end = base + model.len() as u64;
            match op {
                Op::Store { back, n } => {
                    let from = (end + 1).saturating_sub(back).max(base + 1);
                    term += 1;
                    let new = (from..from + n).map(|q| entry(term, q)).collect::<Vec<_>>();
                    s.store(Seq(from), &new).unwrap();
                    model.truncate((from - base - 1) as usize);
                    model.extend(new);
                }
                Op::Sync => s.sync().unwrap(),
                Op::Snapshot { back } => {
                    let at = end.saturating_sub(back).max(base);
                    if at > base {
                        s.save_snapshot(&snap(term, at)).unwrap();
                        model.drain(..(at - base) as usize);
                        base = at;
                    }
                }
                Op::Reopen => {
                    drop(s);
                    let (s2, r) = open_small(dir.path()).unwrap();
                    s = s2;
                    prop_assert_eq!(r.snapshot.map_or(0, |x| x.last_included.seq.0), base);
                    prop_assert_eq!(&r.entries, &model);
                }
            }
            prop_assert_eq!(s.stats().last_seq, Seq(base + model.len() as u64));
        }
        drop(s);
        let (_, r) = open_small(dir.path()).unwrap();
        prop_assert_eq!(r.entries, model);
    }
}

/// A snapshot install must not start the log behind the new snapshot (a new, empty segment)
/// before the snapshot is durable: a crash in between would leave a directory recovery
/// refuses (`OutOfSequence`). The snapshot, naming its segment, is saved first. A crash right
/// after it, before the segment exists, recovers the snapshot with an empty log;
/// a completed install recovers the same.
#[test]
fn a_crash_inside_a_snapshot_install_recovers() {
    for crash_before_segment in [true, false] {
        let dir = TempDir::new().unwrap();
        let (mut s, _) = open(dir.path());
        for seq in 1..=20 {
            s.store(Seq(seq), &[entry(1, seq)]).unwrap();
        }
        s.sync().unwrap();
        let installed = snap(3, 500);
        if crash_before_segment {
            // The install's first step only, then the crash.
            let from = s.wal.next_number();
            snapshot::save(dir.path(), s.snapshot_number + 1, &installed, from, s.fsync).unwrap();
        } else {
            s.install_snapshot(&installed).unwrap();
        }
        drop(s);
        let (mut s, r) = open(dir.path());
        assert_eq!(
            r.snapshot,
            Some(installed.clone()),
            "crash before segment: {crash_before_segment}"
        );
        assert!(r.entries.is_empty());
        s.store(Seq(501), &[entry(3, 501)]).unwrap();
        s.sync().unwrap();
        drop(s);
        assert_eq!(open(dir.path()).1.entries, vec![entry(3, 501)]);
    }
}
