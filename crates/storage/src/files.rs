//! File helpers: the directory lock, atomic replacement, and checksummed whole-file blobs
//! (used by the metadata and snapshot files).
//!
//! A blob file is `magic (8 bytes) | body length (u64 LE) | crc32c(body) (u32 LE) | body`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use super::{CorruptReason, FsyncPolicy, StorageError};

/// Bytes before a blob's body.
const BLOB_HEADER: usize = 8 + 8 + 4;

/// The held lock on a data directory: an `flock` on `dir/LOCK`, released by the kernel when
/// the process exits (also on `kill -9`), so a crash never leaves a stale lock behind.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock, or fails with [`StorageError::Locked`] naming the holder's pid.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        let locked = FileExt::try_lock_exclusive(&file).map_err(StorageError::io(&path))?;
        if !locked {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
            return Err(StorageError::Locked { dir: dir.to_path_buf(), pid });
        }
        // The pid is informational (for the error above); the flock is the lock.
        file.set_len(0).map_err(StorageError::io(&path))?;
        write!(file, "{}", std::process::id()).map_err(StorageError::io(&path))?;
        Ok(Self { _file: file })
    }
}

/// Fsyncs a directory, making renames, creations and removals in it durable.
pub(crate) fn sync_dir(dir: &Path, fsync: FsyncPolicy) -> Result<(), StorageError> {
    if fsync == FsyncPolicy::Never {
        return Ok(());
    }
    let d = File::open(dir).map_err(StorageError::io(dir))?;
    d.sync_all().map_err(StorageError::sync(dir))
}

/// Fsyncs a file's data (and the size needed to read it).
pub(crate) fn sync_file(file: &File, path: &Path, fsync: FsyncPolicy) -> Result<(), StorageError> {
    if fsync == FsyncPolicy::Never {
        return Ok(());
    }
    file.sync_data().map_err(StorageError::sync(path))
}

/// Replaces `path` atomically with `bytes`: write `path.tmp`, fsync it, rename over `path`,
/// fsync the directory. A crash leaves either the old or the new file (plus maybe a stray
/// tmp file, which [`remove_tmp_files`] clears on the next open).
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    fsync: FsyncPolicy,
) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
    file.write_all(bytes).map_err(StorageError::io(&tmp))?;
    sync_file(&file, &tmp, fsync)?;
    drop(file);
    fs::rename(&tmp, path).map_err(StorageError::io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir, fsync)
}

/// `path` with `.tmp` appended.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Removes leftover `*.tmp` files of interrupted atomic writes; they were never renamed into
/// place, so they hold nothing that was durable.
pub(crate) fn remove_tmp_files(dir: &Path) -> Result<(), StorageError> {
    for name in list(dir)? {
        if name.ends_with(".tmp") {
            let path = dir.join(&name);
            tracing::info!(file = %path.display(), "removing leftover temporary file");
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
    }
    Ok(())
}

/// The names of the files in `dir` (non-UTF-8 names are skipped: we never make them).
pub(crate) fn list(dir: &Path) -> Result<Vec<String>, StorageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Frames `body` as a blob with `magic`.
pub(crate) fn encode_blob(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOB_HEADER + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads a blob file written by [`write_atomic`] with `magic`, returning its body.
pub(crate) fn read_blob(path: &Path, magic: &[u8; 8]) -> Result<Vec<u8>, StorageError> {
    let mut bytes = fs::read(path).map_err(StorageError::io(path))?;
    let bad = |reason| StorageError::corrupt(path, 0, reason);
    let Some((header, _)) = bytes.split_first_chunk::<BLOB_HEADER>() else {
        return Err(bad(CorruptReason::Truncated));
    };
    if &header[..8] != magic {
        return Err(bad(CorruptReason::BadMagic));
    }
    let len = u64::from_le_bytes(sub::<8>(header, 8));
    let crc = u32::from_le_bytes(sub::<4>(header, 16));
    if len != (bytes.len() - BLOB_HEADER) as u64 {
        return Err(bad(CorruptReason::BadLength { len }));
    }
    let body = bytes.split_off(BLOB_HEADER);
    if crc32c::crc32c(&body) != crc {
        return Err(bad(CorruptReason::BadChecksum));
    }
    Ok(body)
}

/// `N` bytes of `bytes` at `at` (the caller checked the length).
pub(crate) fn sub<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// `dir/<prefix><number, 20 digits><suffix>`: the name of a numbered file (WAL segment,
/// snapshot), zero-padded so names sort like numbers.
pub(crate) fn numbered_path(dir: &Path, prefix: &str, suffix: &str, number: u64) -> PathBuf {
    dir.join(format!("{prefix}{number:020}{suffix}"))
}

/// The numbers of the files `<prefix><number><suffix>` in `dir`, ascending.
pub(crate) fn numbered_files(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<u64>, StorageError> {
    let mut numbers: Vec<u64> = list(dir)?
        .iter()
        .filter_map(|n| n.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}
