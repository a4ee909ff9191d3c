//! Durability: the write-ahead log, the metadata file and snapshots of one node's data
//! directory (design and format in docs/storage.md). Plain blocking file IO, usable and
//! tested alone; the node runs it on a writer thread of its own (`auction-node`'s
//! `storage::spawn_writer`).
//!
//! # Files
//!
//! ```text
//! <dir>/LOCK                      flock'ed by the running node; holds its pid
//! <dir>/meta                      node id, incarnation, instance, term, vote (replaced atomically)
//! <dir>/snapshot-<n>.snap         the newest snapshot (replaced atomically, n grows)
//! <dir>/wal-<n>.log               WAL segments, n grows; records with crc32c checksums
//! ```
//!
//! # Contract with the driver
//!
//! - [`Storage::open`] recovers: meta (incarnation incremented and saved), the newest
//!   snapshot, and the log after it. A torn tail is cut; damage anywhere else is
//!   [`StorageError::Corrupt`] naming the file and offset.
//! - [`Storage::save_term`] is durable when it returns: call it for `PersistTerm` before
//!   sending anything queued after it.
//! - [`Storage::store`] for each `Store` action, then [`Storage::sync`] once (group commit),
//!   then confirm the stores (the node's writer thread does this).
//! - [`Storage::save_snapshot`] / [`Storage::install_snapshot`] are durable when they return.
//! - Any error from a write path poisons the storage: the node must stop (an fsync that failed
//!   cannot be retried safely).

mod error;
mod files;
mod meta;
mod record;
mod snapshot;
mod wal;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use auction_ordering::{Persisted, Snapshot};
use auction_proto::msg::log::LogEntry;
use auction_proto::{Incarnation, InstanceId, NodeId, Seq, Term};

pub use error::{CorruptReason, StorageError};
pub use meta::Meta;
pub use record::MAX_RECORD_BYTES;

use files::DirLock;
use wal::Wal;

/// Default size at which the active WAL segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When writes reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Fsync every group commit, snapshot and metadata change (the default). An acknowledged
    /// write survives power loss.
    #[default]
    Always,
    /// Never fsync: writes reach the OS page cache only, so they survive a process crash but
    /// NOT a power loss or kernel crash. For tests and benchmarks only; unsafe for durability.
    Never,
}

/// How to open a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Seal a WAL segment once it holds this many bytes.
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { fsync: FsyncPolicy::Always, segment_bytes: DEFAULT_SEGMENT_BYTES }
    }
}

/// What [`Storage::open`] found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The metadata, with this boot's incarnation already incremented and durably saved.
    pub meta: Meta,
    /// The newest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot: contiguous from the snapshot's seq + 1 (or 1).
    pub entries: Vec<LogEntry>,
    /// The directory was empty: a new node id was generated.
    pub first_boot: bool,
}

impl Recovered {
    /// The ordering core's restart input, with the state machine restored from the snapshot
    /// (`applied` = the snapshot's seq: the entries after it are delivered again).
    pub fn into_persisted(self) -> (Meta, Persisted) {
        let applied = self.snapshot.as_ref().map_or(Seq::ZERO, |s| s.last_included.seq);
        let persisted = Persisted {
            term: self.meta.term,
            snapshot: self.snapshot,
            entries: self.entries,
            applied,
        };
        (self.meta, persisted)
    }
}

/// Sizes and counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Bytes in WAL segments (buffered writes included).
    pub wal_bytes: u64,
    /// Number of WAL segment files.
    pub segments: usize,
    /// Seq of the last log entry (the snapshot's if the log after it is empty).
    pub last_seq: Seq,
    /// Seq the newest snapshot ends at (`Seq(0)` if none).
    pub snapshot_seq: Seq,
    /// WAL syncs (group commits) done since open.
    pub syncs: u64,
}

/// One node's data directory, opened and locked.
///
/// Invariants: the directory lock is held for the value's whole life; `meta` equals the
/// `meta` file; after any write-path error `poisoned` is set and nothing more is written.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    fsync: FsyncPolicy,
    meta: Meta,
    wal: Wal,
    snapshot_number: u64,
    snapshot_seq: Seq,
    syncs: u64,
    poisoned: bool,
    _lock: DirLock,
}

impl Storage {
    /// Opens (creating if missing) the data directory with default options; see
    /// [`Storage::open_with`].
    ///
    /// # Errors
    /// See [`Storage::open_with`].
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<(Self, Recovered), StorageError> {
        Self::open_with(dir, Options { fsync, ..Options::default() })
    }

    /// Opens (creating if missing) the data directory: locks it, generates and saves a
    /// [`NodeId`] on first boot, loads the newest snapshot and replays the WAL after it
    /// (cutting a torn tail, with a warning). The incarnation is incremented and durably
    /// saved first, so every boot attempt has its own.
    ///
    /// # Errors
    /// `Locked` if another process has the directory (nothing read or changed); `Corrupt` for
    /// damaged files (they are left as they are); `MissingMeta` for log files without metadata; `Io` / `SyncFailed`.
    pub fn open_with(dir: &Path, options: Options) -> Result<(Self, Recovered), StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        let lock = DirLock::acquire(dir)?;
        files::remove_tmp_files(dir)?;
        let loaded = Meta::load(dir)?;
        let has_data =
            !wal::segment_numbers(dir)?.is_empty() || !snapshot::snapshot_numbers(dir)?.is_empty();
        if loaded.is_none() && has_data {
            return Err(StorageError::MissingMeta { dir: dir.to_path_buf() });
        }
        let first_boot = loaded.is_none();
        let mut meta = loaded.unwrap_or(Meta {
            node: NodeId::random(),
            incarnation: Incarnation::ZERO,
            term: Term::ZERO,
            accepted: None,
            instance: None,
        });
        // Saved before anything else is written: a directory with log files always has a
        // meta (a crash during the first boot must not leave it unopenable), and every boot
        // attempt gets its own incarnation.
        meta.incarnation = meta.incarnation.next();
        meta.save(dir, options.fsync)?;
        let snap = snapshot::load_latest(dir)?;
        let snapshot_seq = snap.as_ref().map_or(Seq::ZERO, |s| s.snapshot.last_included.seq);
        let from_segment = snap.as_ref().map_or(0, |s| s.wal_from_segment);
        let (wal, entries) =
            Wal::recover(dir, options.fsync, options.segment_bytes, snapshot_seq, from_segment)?;
        let snapshot_number = snap.as_ref().map_or(0, |s| s.number);
        if let Some(s) = &snap {
            snapshot::remove_older(dir, s.number)?;
        }
        tracing::info!(
            dir = %dir.display(),
            node = %meta.node,
            incarnation = meta.incarnation.0,
            snapshot = snapshot_seq.0,
            entries = entries.len(),
            first_boot,
            "storage recovered"
        );
        let storage = Self {
            dir: dir.to_path_buf(),
            fsync: options.fsync,
            meta: meta.clone(),
            wal,
            snapshot_number,
            snapshot_seq,
            syncs: 0,
            poisoned: false,
            _lock: lock,
        };
        let recovered = Recovered { meta, snapshot: snap.map(|s| s.snapshot), entries, first_boot };
        Ok((storage, recovered))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The metadata as last saved.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Saves the term and the vote of that term atomically and durably (tmp file, fsync,
    /// rename, fsync of the directory). Blocking: when it returns `Ok` the term is on disk.
    ///
    /// # Errors
    /// `Io` / `SyncFailed`: poisoned; the file holds the old or the new meta.
    pub fn save_term(&mut self, term: Term, accepted: Option<NodeId>) -> Result<(), StorageError> {
        self.check()?;
        let meta = Meta { term, accepted, ..self.meta };
        let r = meta.save(&self.dir, self.fsync);
        self.poison_on_err(r)?;
        self.meta = meta;
        Ok(())
    }

    /// Saves the cluster instance atomically and durably, as [`Storage::save_term`] does.
    ///
    /// # Errors
    /// `Io` / `SyncFailed`: poisoned; the file holds the old or the new meta.
    pub fn save_instance(&mut self, instance: InstanceId) -> Result<(), StorageError> {
        self.check()?;
        let meta = Meta { instance: Some(instance), ..self.meta };
        let r = meta.save(&self.dir, self.fsync);
        self.poison_on_err(r)?;
        self.meta = meta;
        Ok(())
    }

    /// Discards the entries at or after `from` (if `from` is not past the end), then appends
    /// `entries` (contiguous from `from`). Buffered: durable only after [`Storage::sync`].
    ///
    /// # Errors
    /// `NotContiguous` / `TooLarge` (caller bugs): nothing written. `Io`: poisoned.
    pub fn store(&mut self, from: Seq, entries: &[LogEntry]) -> Result<(), StorageError> {
        self.check()?;
        match self.wal.append(from, entries) {
            Err(e @ (StorageError::NotContiguous { .. } | StorageError::TooLarge { .. })) => Err(e),
            r => self.poison_on_err(r),
        }
    }

    /// Makes everything [`Storage::store`]d so far durable: one fsync for any number of
    /// stores (group commit). A no-op if nothing was stored since the last sync.
    ///
    /// # Errors
    /// `SyncFailed`: poisoned; the node must stop.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        let r = self.wal.sync();
        if self.poison_on_err(r)? {
            self.syncs += 1;
        }
        Ok(())
    }

    /// Saves `snapshot` durably (tmp, fsync, rename), after syncing the WAL; then removes
    /// the older snapshot and the WAL segments wholly covered by it.
    ///
    /// # Errors
    /// `Io` / `SyncFailed`: poisoned; the old or the new snapshot is on disk.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check()?;
        let seq = snapshot.last_included.seq;
        if seq > self.wal.end() {
            // A snapshot past the log's end replaces the log, as an installed one does.
            return self.install_snapshot(snapshot);
        }
        let r = self.write_snapshot(snapshot, false);
        self.poison_on_err(r)
    }

    /// Replaces the state and the whole log with `snapshot` and its (empty) suffix, durably:
    /// a new WAL segment is started after it, the snapshot file names that segment as the
    /// log's start (the commit point), then the old segments are removed.
    ///
    /// # Errors
    /// `Io` / `SyncFailed`: poisoned; recovery finds either the old or the new state.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check()?;
        let r = self.write_snapshot(snapshot, true);
        self.poison_on_err(r)
    }

    fn write_snapshot(
        &mut self,
        snapshot: &Snapshot,
        replace_log: bool,
    ) -> Result<(), StorageError> {
        let seq = snapshot.last_included.seq;
        let number = self.snapshot_number + 1;
        let wal_from = if replace_log {
            // The snapshot names the segment that will start the log after it, and becomes
            // durable first. A crash before that leaves the old snapshot and log (consistent);
            // a crash after it, before that segment exists, leaves a snapshot whose log is
            // missing, which recovery restarts right after the snapshot. (Starting the segment
            // first would leave, after a crash in between, an empty segment out of sequence
            // with the old log, which recovery refuses.)
            let wal_from = self.wal.next_number();
            snapshot::save(&self.dir, number, snapshot, wal_from, self.fsync)?;
            let started = self.wal.restart_after(seq)?;
            debug_assert_eq!(started, wal_from, "restart_after starts the next segment");
            wal_from
        } else {
            if self.wal.sync()? {
                self.syncs += 1;
            }
            let wal_from = self.wal.first_number();
            snapshot::save(&self.dir, number, snapshot, wal_from, self.fsync)?;
            wal_from
        };
        self.snapshot_number = number;
        self.snapshot_seq = seq;
        self.wal.remove_before(wal_from)?;
        self.wal.drop_covered(seq)
    }

    /// Sizes and counters.
    pub fn stats(&self) -> StorageStats {
        let segments = self.wal.segments();
        StorageStats {
            wal_bytes: segments.iter().map(|s| s.bytes).sum(),
            segments: segments.len(),
            last_seq: self.wal.end(),
            snapshot_seq: self.snapshot_seq,
            syncs: self.syncs,
        }
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.poisoned { Err(StorageError::Poisoned) } else { Ok(()) }
    }

    fn poison_on_err<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }
}
