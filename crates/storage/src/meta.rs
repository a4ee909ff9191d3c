//! The metadata file `meta`: node id, incarnation, cluster instance, term and the vote of that
//! term.

use std::path::Path;

use auction_proto::{Incarnation, InstanceId, NodeId, Term};
use serde::{Deserialize, Serialize};

use super::files::{encode_blob, read_blob, write_atomic};
use super::{CorruptReason, FsyncPolicy, StorageError};

/// File name of the metadata in the data directory.
pub(crate) const META_FILE: &str = "meta";
/// Version 2 added the cluster instance (a version-1 file is refused as corrupt: data
/// directories of protocol 1 are not carried over).
const META_MAGIC: &[u8; 8] = b"AUCMETA2";

/// What a node keeps about itself across restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// This node's identity, generated on first boot and never changed.
    pub node: NodeId,
    /// This boot's number: incremented and saved by every [`super::Storage::open`].
    pub incarnation: Incarnation,
    /// The highest term this node has seen (saved before it is used).
    pub term: Term,
    /// The node this one accepted as leader (voted for) in `term`, if any.
    pub accepted: Option<NodeId>,
    /// The cluster instance this node founded or joined (saved before it is used).
    pub instance: Option<InstanceId>,
}

impl Meta {
    /// Reads `dir/meta`, or `None` if it does not exist (without taking the directory's
    /// lock: a tool or a test may read what a running node made durable).
    ///
    /// # Errors
    /// The file cannot be read, or is damaged ([`StorageError::Corrupt`]).
    pub fn load(dir: &Path) -> Result<Option<Self>, StorageError> {
        let path = dir.join(META_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let body = read_blob(&path, META_MAGIC)?;
        postcard::from_bytes(&body)
            .map(Some)
            .map_err(|_| StorageError::corrupt(&path, 0, CorruptReason::Decode))
    }

    /// Replaces `dir/meta` atomically with `self`.
    pub(crate) fn save(&self, dir: &Path, fsync: FsyncPolicy) -> Result<(), StorageError> {
        let path = dir.join(META_FILE);
        let body = postcard::to_stdvec(self)
            .map_err(|e| StorageError::io(&path)(std::io::Error::other(e)))?;
        write_atomic(&path, &encode_blob(META_MAGIC, &body), fsync)
    }
}
