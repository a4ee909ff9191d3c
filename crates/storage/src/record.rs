//! WAL record framing.
//!
//! ```text
//! record  = len: u32 LE | body_crc: u32 LE | header_crc: u32 LE | body (len bytes)
//! body_crc   = crc32c(body)
//! header_crc = crc32c(len | body_crc)      -- a damaged length is caught before it is used
//! body    = postcard(Record)               -- Entry(LogEntry) | Truncate(Seq)
//! ```

use auction_proto::Seq;
use auction_proto::msg::log::LogEntry;
use serde::{Deserialize, Serialize};

use super::CorruptReason;
use super::files::sub;

/// Bytes before a record's body.
pub(crate) const RECORD_HEADER: usize = 12;

/// The largest record body accepted, in bytes (a log entry is bounded far below this by the
/// peer frame limit; the bound stops a damaged length from asking for a huge read).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// A record as written (borrowing the entry).
#[derive(Serialize)]
pub(crate) enum RecordRef<'a> {
    /// The next log entry.
    Entry(&'a LogEntry),
    /// Discard every entry at or after this seq.
    Truncate(Seq),
}

/// A record as read (same encoding as [`RecordRef`]).
#[derive(Debug, Deserialize)]
#[allow(clippy::large_enum_variant)] // transient, one at a time
pub(crate) enum Record {
    /// The next log entry.
    Entry(LogEntry),
    /// Discard every entry at or after this seq.
    Truncate(Seq),
}

/// The outcome of reading one record at the start of a buffer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // transient, one at a time
pub(crate) enum Parsed {
    /// A whole, valid record of `size` bytes (header included).
    Valid { record: Record, size: usize },
    /// The buffer ends before the record does.
    Incomplete,
    /// The bytes are not a valid record.
    Bad(CorruptReason),
}

/// Appends the framed `record` to `out`; returns the body length.
pub(crate) fn encode(record: &RecordRef<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    let mut buf = std::mem::take(out);
    // Serializing plain data into a Vec cannot fail (no I/O, no size limit).
    buf = match postcard::to_extend(record, buf) {
        Ok(b) => b,
        Err(e) => unreachable!("postcard into a Vec failed: {e}"),
    };
    *out = buf;
    let len = out.len() - start - RECORD_HEADER;
    let body_crc = crc32c::crc32c(&out[start + RECORD_HEADER..]);
    let mut header = [0u8; RECORD_HEADER];
    header[..4].copy_from_slice(&(len as u32).to_le_bytes());
    header[4..8].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..8]);
    header[8..].copy_from_slice(&header_crc.to_le_bytes());
    out[start..start + RECORD_HEADER].copy_from_slice(&header);
    len
}

/// Reads the record at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < RECORD_HEADER {
        return Parsed::Incomplete;
    }
    let len = u32::from_le_bytes(sub::<4>(buf, 0));
    let body_crc = u32::from_le_bytes(sub::<4>(buf, 4));
    let header_crc = u32::from_le_bytes(sub::<4>(buf, 8));
    if crc32c::crc32c(&buf[..8]) != header_crc {
        return Parsed::Bad(CorruptReason::BadChecksum);
    }
    let len = len as usize;
    if len > MAX_RECORD_BYTES {
        return Parsed::Bad(CorruptReason::BadLength { len: len as u64 });
    }
    let size = RECORD_HEADER + len;
    let Some(body) = buf.get(RECORD_HEADER..size) else { return Parsed::Incomplete };
    if crc32c::crc32c(body) != body_crc {
        return Parsed::Bad(CorruptReason::BadChecksum);
    }
    match postcard::from_bytes(body) {
        Ok(record) => Parsed::Valid { record, size },
        Err(_) => Parsed::Bad(CorruptReason::Decode),
    }
}

/// Whether a whole valid record starts anywhere in `buf` after its first byte.
///
/// Used to tell a torn tail (garbage up to the end of the file: an interrupted write) from
/// damage in the middle (good records follow the bad one, so data after it had been written
/// and possibly acknowledged). The header checksum makes each candidate offset cheap to reject.
pub(crate) fn valid_record_after(buf: &[u8]) -> bool {
    (1..buf.len()).any(|at| matches!(parse(&buf[at..]), Parsed::Valid { .. }))
}
