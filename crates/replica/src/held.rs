//! Learners an operator holds: `admin demote` commits `ConfigChange::Demote(n)`, after which
//! no leader promotes `n` automatically, only `admin promote` (an `AddMember`). The set is
//! replicated state: every replica derives it from the configuration entries it applies,
//! and it travels in the snapshot beside the auction state, so a leader elected after the
//! entry was compacted still knows it.
//!
//! Snapshot bytes: [`MAGIC`], the count (u32 little-endian), the held node ids (16 bytes
//! each), then the auction machine's own snapshot. A snapshot without the magic is the
//! machine's snapshot alone (as written before the hold existed): its first byte is the
//! machine snapshot's version as a postcard varint, below 0x80, never the magic's first byte.

use std::collections::BTreeSet;

use auction_proto::NodeId;
use auction_proto::msg::log::ConfigChange;

/// Marks a snapshot that carries the held set.
const MAGIC: [u8; 4] = [0xF0, b'H', b'L', 1];
/// Most held servers kept (a bound on what a snapshot can make this node allocate).
pub(crate) const MAX_HELD: usize = 1_024;

/// The held set after `change`.
pub(crate) fn apply(held: &mut BTreeSet<NodeId>, change: &ConfigChange) {
    match change {
        ConfigChange::Demote(n) => {
            if held.len() < MAX_HELD {
                held.insert(*n);
            }
        }
        ConfigChange::AddMember(info) => {
            held.remove(&info.node);
        }
        ConfigChange::RemoveMember(n) => {
            held.remove(n);
        }
        ConfigChange::Bootstrap { .. } => held.clear(),
    }
}

/// The replica's snapshot bytes: the held set, then the machine's bytes.
pub(crate) fn wrap(held: &BTreeSet<NodeId>, machine: Vec<u8>) -> Vec<u8> {
    if held.is_empty() {
        return machine;
    }
    let count = u32::try_from(held.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + held.len() * 16 + machine.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    for n in held.iter().take(count as usize) {
        out.extend_from_slice(n.0.as_bytes());
    }
    out.extend_from_slice(&machine);
    out
}

/// Splits snapshot bytes into the held set and the machine's bytes; `None` if they carry the
/// magic but are cut short or hold more than [`MAX_HELD`].
pub(crate) fn unwrap(bytes: &[u8]) -> Option<(BTreeSet<NodeId>, &[u8])> {
    let Some(rest) = bytes.strip_prefix(&MAGIC) else {
        return Some((BTreeSet::new(), bytes));
    };
    let (count, mut rest) = rest.split_first_chunk::<4>()?;
    let count = usize::try_from(u32::from_le_bytes(*count)).ok()?;
    if count > MAX_HELD {
        return None;
    }
    let mut held = BTreeSet::new();
    for _ in 0..count {
        let (id, tail) = rest.split_first_chunk::<16>()?;
        held.insert(NodeId::from_bytes(*id));
        rest = tail;
    }
    Some((held, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes([b; 16])
    }

    #[test]
    fn snapshot_bytes_round_trip_and_old_snapshots_still_read() {
        let held: BTreeSet<NodeId> = [node(3), node(1)].into();
        let bytes = wrap(&held, vec![2, 9, 9]);
        assert_eq!(unwrap(&bytes), Some((held, &[2u8, 9, 9][..])));
        // Nothing held: the machine's bytes as they are (the format before the hold).
        assert_eq!(wrap(&BTreeSet::new(), vec![2, 9]), vec![2, 9]);
        assert_eq!(unwrap(&[2, 9]), Some((BTreeSet::new(), &[2u8, 9][..])));
        // Cut short, or claiming too many: refused, never a partial set.
        assert_eq!(unwrap(&bytes[..10]), None);
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(unwrap(&huge), None);
    }

    #[test]
    fn demote_holds_until_added_or_removed() {
        let mut held = BTreeSet::new();
        apply(&mut held, &ConfigChange::Demote(node(2)));
        apply(&mut held, &ConfigChange::Demote(node(3)));
        assert_eq!(held, [node(2), node(3)].into());
        apply(&mut held, &ConfigChange::RemoveMember(node(3)));
        assert_eq!(held, [node(2)].into());
        let info = auction_proto::msg::discovery::NodeInfo {
            node: node(2),
            incarnation: auction_proto::Incarnation(1),
            peer_addr: std::net::SocketAddr::from(([10, 0, 0, 2], 7000)),
            client_addr: std::net::SocketAddr::from(([10, 0, 0, 2], 7001)),
        };
        apply(&mut held, &ConfigChange::AddMember(info));
        assert!(held.is_empty());
    }
}
