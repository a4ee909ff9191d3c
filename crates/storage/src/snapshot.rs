//! Snapshot files `snapshot-<n>.snap`: the latest snapshot and the first WAL segment that
//! belongs with it. Only the newest (highest `n`) counts; older ones are removed once a newer
//! one is durable.

use std::fs;
use std::path::{Path, PathBuf};

use auction_ordering::Snapshot;
use auction_proto::LogPosition;
use auction_proto::msg::discovery::NodeInfo;
use serde::{Deserialize, Serialize};

use super::files::{encode_blob, read_blob, write_atomic};
use super::{CorruptReason, FsyncPolicy, StorageError};

const SNAP_MAGIC: &[u8; 8] = b"AUCSNAP1";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";

/// What a snapshot file holds (the borrowed form, for writing).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    last_included: LogPosition,
    members: &'a [NodeInfo],
    bytes: &'a [u8],
    wal_from_segment: u64,
}

/// What a snapshot file holds (the owned form, for reading; same encoding).
#[derive(Deserialize)]
struct SnapshotOwned {
    last_included: LogPosition,
    members: Vec<NodeInfo>,
    bytes: Vec<u8>,
    wal_from_segment: u64,
}

/// A snapshot as found on disk.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    /// Its number (the `n` of its file name).
    pub(crate) number: u64,
    /// The snapshot.
    pub(crate) snapshot: Snapshot,
    /// WAL segments numbered below this are superseded by the snapshot and ignored.
    pub(crate) wal_from_segment: u64,
}

/// The path of snapshot `number` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, number: u64) -> PathBuf {
    super::files::numbered_path(dir, PREFIX, SUFFIX, number)
}

/// The snapshot numbers present in `dir`, ascending.
pub(crate) fn snapshot_numbers(dir: &Path) -> Result<Vec<u64>, StorageError> {
    super::files::numbered_files(dir, PREFIX, SUFFIX)
}

/// Loads the newest snapshot in `dir`, if any. A damaged newest snapshot is an error (it was
/// written atomically, so damage is not a torn write and older files may already be gone).
pub(crate) fn load_latest(dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
    let Some(&number) = snapshot_numbers(dir)?.last() else { return Ok(None) };
    let path = snapshot_path(dir, number);
    let body = read_blob(&path, SNAP_MAGIC)?;
    let owned: SnapshotOwned = postcard::from_bytes(&body)
        .map_err(|_| StorageError::corrupt(&path, 0, CorruptReason::Decode))?;
    let snapshot =
        Snapshot { last_included: owned.last_included, members: owned.members, bytes: owned.bytes };
    Ok(Some(SnapshotFile { number, snapshot, wal_from_segment: owned.wal_from_segment }))
}

/// Writes snapshot `number` durably, then removes every older snapshot file.
pub(crate) fn save(
    dir: &Path,
    number: u64,
    snapshot: &Snapshot,
    wal_from_segment: u64,
    fsync: FsyncPolicy,
) -> Result<(), StorageError> {
    let path = snapshot_path(dir, number);
    let body = postcard::to_stdvec(&SnapshotRef {
        last_included: snapshot.last_included,
        members: &snapshot.members,
        bytes: &snapshot.bytes,
        wal_from_segment,
    })
    .map_err(|e| StorageError::io(&path)(std::io::Error::other(e)))?;
    write_atomic(&path, &encode_blob(SNAP_MAGIC, &body), fsync)?;
    remove_older(dir, number)
}

/// Removes snapshot files numbered below `number`.
pub(crate) fn remove_older(dir: &Path, number: u64) -> Result<(), StorageError> {
    for old in snapshot_numbers(dir)?.into_iter().filter(|&n| n < number) {
        let path = snapshot_path(dir, old);
        fs::remove_file(&path).map_err(StorageError::io(&path))?;
    }
    Ok(())
}
