//! Snapshots: the state as deterministic bytes, and back.
//!
//! The bytes are `postcard` of a versioned struct holding only ordered containers (vectors in
//! id order, `BTreeMap`s), so two replicas that applied the same entries produce identical
//! bytes. Derived indexes (name lookup, deadlines, dedup activity) are not stored; `restore`
//! rebuilds them and then checks every invariant, so corrupt bytes give an error, never a
//! panic or a state that breaks later.

use std::collections::BTreeSet;

use auction_proto::msg::auction::AuctionState;
use auction_proto::{Seq, Timestamp};
use serde::{Deserialize, Serialize};

use crate::auction::Auction;
use crate::bidders::Bidders;
use crate::dedup::Dedup;
use crate::invariants::InvariantViolation;
use crate::machine::AuctionMachine;

/// Format version written first in every snapshot.
pub const SNAPSHOT_VERSION: u32 = 3;

/// Why bytes could not be restored. Nothing is changed: `restore` builds a new machine.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a postcard encoding of a snapshot, or trailing bytes after it.
    #[error("snapshot bytes are malformed")]
    Malformed(#[source] Option<postcard::Error>),
    /// Written by another format version.
    #[error("snapshot version {found} is not supported (expected {SNAPSHOT_VERSION})")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Decodes, but the state breaks an invariant (duplicate names, wrong prices...).
    #[error("snapshot state is inconsistent")]
    Inconsistent(#[from] InvariantViolation),
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    last_applied: Seq,
    clock: Timestamp,
    bidders: &'a Bidders,
    auctions: &'a [Auction],
    dedup: &'a Dedup,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    version: u32,
    last_applied: Seq,
    clock: Timestamp,
    bidders: Bidders,
    auctions: Vec<Auction>,
    dedup: Dedup,
}

impl AuctionMachine {
    /// The whole state as bytes, identical on every replica that applied the same entries.
    pub fn snapshot(&self) -> Vec<u8> {
        let snap = SnapshotRef {
            version: SNAPSHOT_VERSION,
            last_applied: self.last_applied,
            clock: self.clock,
            bidders: &self.bidders,
            auctions: &self.auctions,
            dedup: &self.dedup,
        };
        // Serializing plain owned data into a Vec cannot fail.
        postcard::to_stdvec(&snap).unwrap_or_default()
    }

    /// A machine from [`AuctionMachine::snapshot`] bytes. Continue by applying the entries
    /// after [`AuctionMachine::last_applied`].
    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let version: u32 = match postcard::take_from_bytes::<u32>(bytes) {
            Ok((v, _)) => v,
            Err(e) => return Err(SnapshotError::Malformed(Some(e))),
        };
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { found: version });
        }
        let (snap, rest) = postcard::take_from_bytes::<SnapshotOwned>(bytes)
            .map_err(|e| SnapshotError::Malformed(Some(e)))?;
        if !rest.is_empty() || snap.version != version {
            return Err(SnapshotError::Malformed(None));
        }
        let mut bidders = snap.bidders;
        if !bidders.rebuild_index() {
            return Err(InvariantViolation { what: "duplicate bidder names" }.into());
        }
        let mut dedup = snap.dedup;
        dedup.rebuild_index();
        let deadlines: BTreeSet<_> = snap
            .auctions
            .iter()
            .filter(|a| a.state == AuctionState::Open)
            .map(|a| (a.ends_at, a.id))
            .collect();
        let machine = Self {
            bidders,
            auctions: snap.auctions,
            dedup,
            last_applied: snap.last_applied,
            clock: snap.clock,
            deadlines,
        };
        machine.check_invariants()?;
        Ok(machine)
    }
}
