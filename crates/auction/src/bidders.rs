//! The registry of bidder names, interned to small integers.
//!
//! Every name a command carries is looked up here once; the rest of the state refers to
//! bidders by [`BidderIx`], so the bid path compares and copies integers, not strings.

use std::collections::HashMap;

use auction_proto::msg::auction::BidderName;
use auction_proto::msg::log::TokenHash;
use serde::{Deserialize, Serialize};

/// A registered bidder's index in the registry (registration order, from zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct BidderIx(pub(crate) u32);

/// Registered bidders.
///
/// Invariants: `names` and `hashes` have the same length; names are unique by
/// [`BidderName::key`] (case-insensitively: `Ann` and `ann` cannot both register); `index` maps
/// each name to its position and `keys` each key (both derived and rebuilt on restore, never
/// serialized). Lookups are by the exact (normalised) name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Bidders {
    names: Vec<BidderName>,
    hashes: Vec<TokenHash>,
    #[serde(skip)]
    index: HashMap<BidderName, BidderIx>,
    #[serde(skip)]
    keys: HashMap<String, BidderIx>,
}

impl Bidders {
    /// Registers `name`; `None` if it or a name with the same key is taken (or the registry
    /// holds `u32::MAX` names).
    pub(crate) fn register(&mut self, name: &BidderName, hash: TokenHash) -> Option<BidderIx> {
        let key = name.key();
        if self.keys.contains_key(&key) {
            return None;
        }
        let ix = BidderIx(u32::try_from(self.names.len()).ok()?);
        self.names.push(name.clone());
        self.hashes.push(hash);
        self.index.insert(name.clone(), ix);
        self.keys.insert(key, ix);
        Some(ix)
    }

    pub(crate) fn lookup(&self, name: &BidderName) -> Option<BidderIx> {
        self.index.get(name).copied()
    }

    /// The name of a registered bidder. Indices come only from this registry, so a miss is a
    /// bug; it panics rather than invent a name.
    #[allow(clippy::indexing_slicing)]
    pub(crate) fn name(&self, ix: BidderIx) -> &BidderName {
        &self.names[ix.0 as usize]
    }

    pub(crate) fn token_hash(&self, name: &BidderName) -> Option<&TokenHash> {
        self.lookup(name).and_then(|ix| self.hashes.get(ix.0 as usize))
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Rebuilds the derived indexes after deserialization; `false` if names (or their keys)
    /// repeat or the two columns differ in length.
    pub(crate) fn rebuild_index(&mut self) -> bool {
        self.index.clear();
        self.keys.clear();
        for (i, name) in self.names.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { return false };
            if self.index.insert(name.clone(), BidderIx(i)).is_some()
                || self.keys.insert(name.key(), BidderIx(i)).is_some()
            {
                return false;
            }
        }
        self.names.len() == self.hashes.len()
    }

    /// Invariants, as an error message for the first one broken.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let n = self.names.len();
        if self.hashes.len() != n || self.index.len() != n || self.keys.len() != n {
            return Err("bidder columns and indexes differ in length (or two names share a key)");
        }
        for (i, name) in self.names.iter().enumerate() {
            if self.index.get(name).map(|ix| ix.0 as usize) != Some(i)
                || self.keys.get(&name.key()).map(|ix| ix.0 as usize) != Some(i)
            {
                return Err("bidder indexes do not match the names");
            }
        }
        Ok(())
    }
}

/// Compares a presented token hash with the stored one in time independent of where they
/// differ, so the node can check a login without leaking the stored hash through timing.
pub fn token_hash_matches(stored: &TokenHash, presented: &TokenHash) -> bool {
    let diff = stored.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}
