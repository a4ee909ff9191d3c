//! The write-ahead log: numbered segment files `wal-<n>.log`, each a header and records.
//!
//! ```text
//! segment header = magic "AUCWAL01" | number: u64 LE | first_seq: u64 LE
//!                  | crc32c(the previous 24 bytes): u32 LE
//! ```
//!
//! The log is append-only: replacing a suffix appends a `Truncate(from)` record and then the new
//! entries, so no byte that was synced is ever overwritten. Replaying the records in segment
//! order rebuilds the log. Invariant: `first_seq` of a segment is one past the log's last seq
//! when the segment was started.
//!
//! Preallocation: the active segment is extended with written zeros in [`PREALLOCATE`] chunks
//! ahead of the records, so a group commit's `fdatasync` writes the records' pages and flushes,
//! without also writing the inode for a grown file size (that was a third synchronous I/O per
//! sync, and a quarter of the writer thread's time). A zero tail holds no record (an all-zero
//! record header has a bad checksum), so recovery treats an all-zero rest of the last segment
//! as its clean end; a sealed segment is cut to its records when the next one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use auction_proto::Seq;
use auction_proto::msg::log::LogEntry;

use super::files::{sub, sync_dir, sync_file, tmp_path};
use super::record::{self, MAX_RECORD_BYTES, Parsed, Record, RecordRef};
use super::{CorruptReason, FsyncPolicy, StorageError};

const SEGMENT_MAGIC: &[u8; 8] = b"AUCWAL01";
const SEGMENT_HEADER: usize = 28;
const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";
/// Write buffer of the active segment.
const WRITE_BUFFER: usize = 1 << 20;
/// The active segment is extended with zeros in chunks of this many bytes, ahead of its records.
pub(crate) const PREALLOCATE: u64 = 1 << 20;

/// What the log knows about one segment file.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub(crate) number: u64,
    /// The highest entry seq written into it (`Seq(0)` if none).
    pub(crate) max_seq: Seq,
    /// Its size in bytes, header and buffered records included.
    pub(crate) bytes: u64,
}

/// The write-ahead log of one data directory.
///
/// Invariants: `segments` is non-empty and ascending by number; the last one is `active`;
/// `end` is the seq of the last entry of the replayed log (or the snapshot's, when empty).
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    fsync: FsyncPolicy,
    segment_bytes: u64,
    segments: Vec<Segment>,
    active: BufWriter<File>,
    /// The active segment's path.
    active_path: PathBuf,
    /// The active segment file's length: its records, then zeros up to here.
    allocated: u64,
    end: Seq,
    /// Written since the last sync.
    dirty: bool,
    buf: Vec<u8>,
    bounds: Vec<usize>,
}

/// The path of segment `number`.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    super::files::numbered_path(dir, PREFIX, SUFFIX, number)
}

/// The segment numbers present in `dir`, ascending.
pub(crate) fn segment_numbers(dir: &Path) -> Result<Vec<u64>, StorageError> {
    super::files::numbered_files(dir, PREFIX, SUFFIX)
}

/// Replay state while reading segments.
struct Replay {
    snapshot: Seq,
    end: Seq,
    /// The entries after the snapshot, contiguous.
    entries: Vec<LogEntry>,
}

impl Replay {
    fn apply(&mut self, record: Record) -> Result<(), CorruptReason> {
        let expected = self.end.next();
        match record {
            Record::Entry(e) => {
                if e.seq != expected {
                    return Err(CorruptReason::OutOfSequence { expected, found: e.seq });
                }
                self.end = e.seq;
                if e.seq > self.snapshot {
                    self.entries.push(e);
                }
            }
            Record::Truncate(from) => {
                if from == Seq::ZERO || from > expected {
                    return Err(CorruptReason::OutOfSequence { expected, found: from });
                }
                self.end = from.prev();
                let keep = from.0.saturating_sub(self.snapshot.0 + 1);
                self.entries.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            }
        }
        Ok(())
    }
}

impl Wal {
    /// Replays the segments numbered `from_segment` and above (removing older ones) after a
    /// snapshot ending at `snapshot`; truncates a torn tail; opens the last segment for
    /// appending. Returns the log and the entries after the snapshot.
    pub(crate) fn recover(
        dir: &Path,
        fsync: FsyncPolicy,
        segment_bytes: u64,
        snapshot: Seq,
        from_segment: u64,
    ) -> Result<(Self, Vec<LogEntry>), StorageError> {
        let mut numbers = segment_numbers(dir)?;
        for &n in numbers.iter().filter(|&&n| n < from_segment) {
            let path = segment_path(dir, n);
            tracing::info!(file = %path.display(), "removing a superseded WAL segment");
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
        numbers.retain(|&n| n >= from_segment);
        let mut replay = Replay { snapshot, end: snapshot, entries: Vec::new() };
        let mut segments = Vec::with_capacity(numbers.len());
        for (i, &number) in numbers.iter().enumerate() {
            let last = i + 1 == numbers.len();
            segments.push(read_segment(dir, number, last, &mut replay)?);
        }
        let first_path = || segment_path(dir, numbers.first().copied().unwrap_or(from_segment));
        if replay.end > snapshot && replay.entries.first().is_none_or(|e| e.seq != snapshot.next())
        {
            let first = replay.entries.first().map_or(replay.end, |e| e.seq);
            let reason = CorruptReason::MissingEntries { snapshot, first };
            return Err(StorageError::corrupt(first_path(), 0, reason));
        }
        let next_number = numbers.last().map_or(from_segment, |n| n + 1);
        let mut wal = match segments.last() {
            Some(seg) if replay.end >= snapshot => {
                let path = segment_path(dir, seg.number);
                let file = open_at(&path, seg.bytes)?;
                Self::with(dir, fsync, segment_bytes, segments, file, replay.end)
            }
            _ => {
                // No segment, or the log ends before the snapshot (its tail was lost with the
                // snapshot durable): the log restarts right after the snapshot.
                let (seg, file) = create_segment(dir, next_number, snapshot.next(), fsync)?;
                segments.push(seg);
                Self::with(dir, fsync, segment_bytes, segments, file, snapshot)
            }
        };
        wal.drop_covered(snapshot)?;
        Ok((wal, replay.entries))
    }

    fn with(
        dir: &Path,
        fsync: FsyncPolicy,
        segment_bytes: u64,
        segments: Vec<Segment>,
        (file, allocated): (File, u64),
        end: Seq,
    ) -> Self {
        let number = segments.last().map_or(0, |s| s.number);
        Self {
            dir: dir.to_path_buf(),
            fsync,
            segment_bytes,
            segments,
            active: BufWriter::with_capacity(WRITE_BUFFER, file),
            active_path: segment_path(dir, number),
            allocated,
            end,
            dirty: false,
            buf: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// The last seq of the log.
    pub(crate) fn end(&self) -> Seq {
        self.end
    }

    /// The segments, oldest first.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The lowest segment number present.
    /// The number the next segment will get.
    pub(crate) fn next_number(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.number + 1)
    }

    pub(crate) fn first_number(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.number)
    }

    /// Discards entries at or after `from`, then appends `entries` (buffered, not synced).
    /// Checks everything before writing anything.
    pub(crate) fn append(&mut self, from: Seq, entries: &[LogEntry]) -> Result<(), StorageError> {
        let expected = self.end.next();
        if from == Seq::ZERO || from > expected {
            return Err(StorageError::NotContiguous { expected, got: from });
        }
        for (e, want) in entries.iter().zip(from.0..) {
            if e.seq != Seq(want) {
                return Err(StorageError::NotContiguous { expected: Seq(want), got: e.seq });
            }
        }
        self.buf.clear();
        self.bounds.clear();
        if from < expected {
            self.push_record(&RecordRef::Truncate(from));
        }
        for e in entries {
            let len = self.push_record(&RecordRef::Entry(e));
            if len > MAX_RECORD_BYTES {
                return Err(StorageError::TooLarge { seq: e.seq, len });
            }
        }
        self.write_buffered(from, entries)
    }

    fn push_record(&mut self, record: &RecordRef<'_>) -> usize {
        let len = record::encode(record, &mut self.buf);
        self.bounds.push(self.buf.len());
        len
    }

    /// Writes the records encoded in `buf`, rotating segments at the size limit.
    fn write_buffered(&mut self, from: Seq, entries: &[LogEntry]) -> Result<(), StorageError> {
        let truncates = usize::from(from < self.end.next());
        let mut start = 0;
        let bounds = std::mem::take(&mut self.bounds);
        let buf = std::mem::take(&mut self.buf);
        let result = (|| {
            for (i, &stop) in bounds.iter().enumerate() {
                if self.segments.last().is_some_and(|s| s.bytes >= self.segment_bytes) {
                    self.rotate()?;
                }
                let at = self.segments.last().map_or(0, |s| s.bytes);
                // The rest of the batch goes into this segment unless it rotates; zeros ahead
                // of all of it keep the segment's size fixed under the next syncs.
                self.preallocate(at + (buf.len() - start) as u64)?;
                let path = &self.active_path;
                self.active.write_all(&buf[start..stop]).map_err(StorageError::io(path))?;
                self.dirty = true;
                let seq = match i.checked_sub(truncates) {
                    Some(k) => entries[k].seq,
                    None => from.prev(),
                };
                self.end = seq;
                if let Some(seg) = self.segments.last_mut() {
                    seg.bytes += (stop - start) as u64;
                    seg.max_seq = seg.max_seq.max(seq);
                }
                start = stop;
            }
            Ok(())
        })();
        self.bounds = bounds;
        self.buf = buf;
        result
    }

    /// Extends the active segment with zeros so that it is at least `upto` bytes long
    /// (rounded up to [`PREALLOCATE`]). Only bytes past every record are written, so no record
    /// is touched; the next sync makes the new size durable once for the whole chunk.
    fn preallocate(&mut self, upto: u64) -> Result<(), StorageError> {
        use std::os::unix::fs::FileExt;
        if upto <= self.allocated {
            return Ok(());
        }
        let target = upto.div_ceil(PREALLOCATE) * PREALLOCATE;
        let zeros = vec![0u8; usize::try_from(target - self.allocated).unwrap_or(usize::MAX)];
        let path = &self.active_path;
        self.active
            .get_ref()
            .write_all_at(&zeros, self.allocated)
            .map_err(StorageError::io(path))?;
        self.allocated = target;
        self.dirty = true;
        Ok(())
    }

    /// Makes everything appended durable (under [`FsyncPolicy::Always`]); returns whether
    /// there was anything to sync.
    pub(crate) fn sync(&mut self) -> Result<bool, StorageError> {
        if !self.dirty {
            return Ok(false);
        }
        let path = &self.active_path;
        self.active.flush().map_err(StorageError::sync(path))?;
        sync_file(self.active.get_ref(), path, self.fsync)?;
        self.dirty = false;
        Ok(true)
    }

    /// Seals the active segment (synced, cut to its records) and starts the next one at
    /// `end + 1`.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.sync()?;
        let bytes = self.segments.last().map_or(SEGMENT_HEADER as u64, |s| s.bytes);
        if self.allocated > bytes {
            let path = &self.active_path;
            let file = self.active.get_ref();
            file.set_len(bytes).map_err(StorageError::io(path))?;
            if self.fsync == FsyncPolicy::Always {
                file.sync_all().map_err(StorageError::sync(path))?;
            }
            self.allocated = bytes;
        }
        let number = self.next_number();
        let (seg, file) = create_segment(&self.dir, number, self.end.next(), self.fsync)?;
        self.segments.push(seg);
        self.active = BufWriter::with_capacity(WRITE_BUFFER, file.0);
        self.active_path = segment_path(&self.dir, number);
        self.allocated = file.1;
        Ok(())
    }

    /// Starts an empty log after `snapshot` in a new segment (durable); returns its number.
    /// Older segments stay until [`Wal::remove_before`].
    pub(crate) fn restart_after(&mut self, snapshot: Seq) -> Result<u64, StorageError> {
        self.sync()?;
        self.end = snapshot;
        self.rotate()?;
        Ok(self.segments.last().map_or(0, |s| s.number))
    }

    /// Removes the segments numbered below `number`.
    pub(crate) fn remove_before(&mut self, number: u64) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.segments[0].number < number {
            self.remove_first()?;
        }
        Ok(())
    }

    /// Removes the oldest segments (never the active one) whose entries are all at or below
    /// `snapshot`. Only a prefix is removed, so the rest still replays from its first header.
    pub(crate) fn drop_covered(&mut self, snapshot: Seq) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.segments[0].max_seq <= snapshot {
            self.remove_first()?;
        }
        Ok(())
    }

    fn remove_first(&mut self) -> Result<(), StorageError> {
        let seg = self.segments.remove(0);
        let path = segment_path(&self.dir, seg.number);
        fs::remove_file(&path).map_err(StorageError::io(&path))
    }
}

/// Opens a segment for writing at `at` (the end of its records); returns the file and its
/// length (records plus any zero tail).
fn open_at(path: &Path, at: u64) -> Result<(File, u64), StorageError> {
    use std::io::{Seek, SeekFrom};
    let mut file = OpenOptions::new().write(true).open(path).map_err(StorageError::io(path))?;
    let len = file.metadata().map_err(StorageError::io(path))?.len();
    file.seek(SeekFrom::Start(at)).map_err(StorageError::io(path))?;
    Ok((file, len.max(at)))
}

/// Creates segment `number` starting at `first_seq` durably (tmp, fsync, rename, fsync dir):
/// a segment file that exists always has a whole header.
fn create_segment(
    dir: &Path,
    number: u64,
    first_seq: Seq,
    fsync: FsyncPolicy,
) -> Result<(Segment, (File, u64)), StorageError> {
    let path = segment_path(dir, number);
    let tmp = tmp_path(&path);
    let mut header = Vec::with_capacity(SEGMENT_HEADER);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&number.to_le_bytes());
    header.extend_from_slice(&first_seq.0.to_le_bytes());
    header.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
    let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
    file.write_all(&header).map_err(StorageError::io(&tmp))?;
    sync_file(&file, &tmp, fsync)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(StorageError::io(&path))?;
    sync_dir(dir, fsync)?;
    let file = open_at(&path, SEGMENT_HEADER as u64)?;
    let seg = Segment { number, max_seq: Seq::ZERO, bytes: SEGMENT_HEADER as u64 };
    Ok((seg, file))
}

/// Reads segment `number` into `replay`. In the last segment, a bad record with no valid
/// record after it is a torn tail: the file is cut there (and synced).
fn read_segment(
    dir: &Path,
    number: u64,
    last: bool,
    replay: &mut Replay,
) -> Result<Segment, StorageError> {
    let path = segment_path(dir, number);
    let bytes = fs::read(&path).map_err(StorageError::io(&path))?;
    let header = bytes
        .get(..SEGMENT_HEADER)
        .ok_or_else(|| StorageError::corrupt(&path, 0, CorruptReason::Truncated))?;
    if &header[..8] != SEGMENT_MAGIC {
        return Err(StorageError::corrupt(&path, 0, CorruptReason::BadMagic));
    }
    if crc32c::crc32c(&header[..24]) != u32::from_le_bytes(sub::<4>(header, 24)) {
        return Err(StorageError::corrupt(&path, 0, CorruptReason::BadChecksum));
    }
    if u64::from_le_bytes(sub::<8>(header, 8)) != number {
        return Err(StorageError::corrupt(&path, 0, CorruptReason::NameMismatch));
    }
    let first_seq = Seq(u64::from_le_bytes(sub::<8>(header, 16)));
    if first_seq == Seq::ZERO {
        return Err(StorageError::corrupt(
            &path,
            0,
            CorruptReason::OutOfSequence { expected: Seq(1), found: first_seq },
        ));
    }
    if first_seq != replay.end.next() {
        // A gap is harmless only while nothing after the snapshot has been replayed: the
        // segments before it then held covered entries only (their removal was interrupted,
        // or the log's tail was lost behind a durable snapshot).
        if !replay.entries.is_empty() {
            let reason =
                CorruptReason::OutOfSequence { expected: replay.end.next(), found: first_seq };
            return Err(StorageError::corrupt(&path, 0, reason));
        }
        replay.end = first_seq.prev();
    }
    let mut seg = Segment { number, max_seq: Seq::ZERO, bytes: SEGMENT_HEADER as u64 };
    let mut at = SEGMENT_HEADER;
    while at < bytes.len() {
        let reason = match record::parse(&bytes[at..]) {
            Parsed::Valid { record, size } => {
                if let Record::Entry(e) = &record {
                    seg.max_seq = seg.max_seq.max(e.seq);
                }
                replay.apply(record).map_err(|r| StorageError::corrupt(&path, at as u64, r))?;
                at += size;
                continue;
            }
            Parsed::Incomplete => CorruptReason::Truncated,
            Parsed::Bad(reason) => reason,
        };
        if last && bytes[at..].iter().all(|&b| b == 0) {
            // The preallocated zeros after the last record: the clean end of the log.
            break;
        }
        if !last || record::valid_record_after(&bytes[at..]) {
            return Err(StorageError::corrupt(&path, at as u64, reason));
        }
        tracing::warn!(
            file = %path.display(),
            offset = at,
            dropped_bytes = bytes.len() - at,
            "truncating torn tail of the write-ahead log"
        );
        let file = OpenOptions::new().write(true).open(&path).map_err(StorageError::io(&path))?;
        file.set_len(at as u64).map_err(StorageError::io(&path))?;
        file.sync_all().map_err(StorageError::sync(&path))?;
        break;
    }
    seg.bytes = at as u64;
    Ok(seg)
}
