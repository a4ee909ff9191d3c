//! What can go wrong with the data directory, and what each failure leaves behind.

use std::path::PathBuf;

use auction_proto::Seq;

/// A storage failure. Every variant says what state it leaves; after `SyncFailed` (and any
/// error out of [`super::Storage::sync`]) the storage is poisoned and the node must stop.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation other than an fsync failed (open, read, write, rename, remove).
    ///
    /// State: during [`super::Storage::open`] nothing was recovered and the lock is released.
    /// During a write the storage is poisoned: what reached disk is whatever recovery finds,
    /// and every later call returns [`StorageError::Poisoned`].
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file holds bytes that cannot be what this program wrote: a bad checksum, magic,
    /// length or encoding before the end of the log, or a gap in the sequence numbers.
    ///
    /// State: the damaged file is left as it is, for an operator to inspect (or to remove the
    /// data directory and let the node catch up from its peers); only the incarnation in
    /// `meta` was already incremented.
    #[error("corrupt data in {} at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first bad record (0 for a whole-file problem).
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// Another process holds the data directory's lock.
    ///
    /// State: nothing was read or changed.
    #[error(
        "data directory {} is in use by another process{}",
        dir.display(),
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it into the lock file (if readable).
        pid: Option<u32>,
    },
    /// An fsync failed. The kernel may have dropped the dirty pages, so retrying cannot make
    /// the data durable: the node must stop and recover from what is on disk.
    ///
    /// State: poisoned; every later call returns [`StorageError::Poisoned`].
    #[error("fsync of {} failed (the node must stop): {source}", path.display())]
    SyncFailed {
        /// The file or directory being synced.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory holds log or snapshot files but no metadata file: it was not made by
    /// this program, or the metadata was deleted by hand.
    ///
    /// State: nothing was changed.
    #[error("data directory {} has log files but no metadata file", dir.display())]
    MissingMeta {
        /// The data directory.
        dir: PathBuf,
    },
    /// `store` was called with entries that do not continue the log at `from` (a caller
    /// bug: entries must be contiguous and `from` at most one past the last entry).
    ///
    /// State: nothing was written.
    #[error("store does not continue the log: expected seq {expected}, got {got}")]
    NotContiguous {
        /// The seq that would have been valid here.
        expected: Seq,
        /// The seq given.
        got: Seq,
    },
    /// One log entry encodes to more than [`super::MAX_RECORD_BYTES`] (a caller bug).
    ///
    /// State: nothing was written.
    #[error("log entry {seq} encodes to {len} bytes, above the record limit")]
    TooLarge {
        /// The entry.
        seq: Seq,
        /// Its encoded size.
        len: usize,
    },
    /// An earlier write or sync failed; this storage accepts nothing more.
    ///
    /// State: unchanged since the failure.
    #[error("storage stopped after an earlier failure")]
    Poisoned,
    /// The writer thread is gone (it stopped after a failure, or panicked).
    ///
    /// State: whatever it had synced is durable; nothing more will be.
    #[error("the storage writer thread has stopped")]
    WriterStopped,
}

/// Why bytes on disk were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// The file does not start with this program's magic and version.
    #[error("bad magic or unsupported format version")]
    BadMagic,
    /// A checksum does not match.
    #[error("checksum mismatch")]
    BadChecksum,
    /// A length field is impossible (too large, or beyond the end of a file that is not the
    /// log's tail).
    #[error("impossible length {len}")]
    BadLength {
        /// The length read.
        len: u64,
    },
    /// The checksum matched but the content does not decode.
    #[error("undecodable content")]
    Decode,
    /// The file ends in the middle of a record, and it is not the log's last segment.
    #[error("truncated record in a sealed segment")]
    Truncated,
    /// A record's sequence number does not follow the previous one.
    #[error("expected seq {expected}, found {found}")]
    OutOfSequence {
        /// The seq that should follow.
        expected: Seq,
        /// The seq found.
        found: Seq,
    },
    /// Entries after the snapshot are missing: the log resumes at `first` but the snapshot
    /// ends at `snapshot`.
    #[error("log resumes at seq {first} but the snapshot ends at {snapshot}")]
    MissingEntries {
        /// The snapshot's last seq.
        snapshot: Seq,
        /// The first seq the log holds after it.
        first: Seq,
    },
    /// A file name does not match its header.
    #[error("file name does not match its header")]
    NameMismatch,
}

impl StorageError {
    /// An [`StorageError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// A [`StorageError::SyncFailed`] for `path`.
    pub(crate) fn sync(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::SyncFailed { path, source }
    }

    /// A [`StorageError::Corrupt`].
    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: u64, reason: CorruptReason) -> Self {
        Self::Corrupt { file: file.into(), offset, reason }
    }
}
