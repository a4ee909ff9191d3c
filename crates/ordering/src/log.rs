//! The in-memory replicated log: a snapshot base, the entries after it, and the configuration
//! history derived from them.

use std::collections::VecDeque;

use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::log::{ConfigChange, EntryPayload, LogEntry};
use auction_proto::{LogPosition, NodeId, Seq, Term, Timestamp};

/// A snapshot of the state machine as the ordering core sees it: where it ends, the voting
/// members at that point, and the node's opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last entry the snapshot covers.
    pub last_included: LogPosition,
    /// Voting members at `last_included`.
    pub members: Vec<NodeInfo>,
    /// The state machine's serialized state (opaque to this crate).
    pub bytes: Vec<u8>,
}

/// The log of one member.
///
/// Invariants: `entries[i].seq == base.seq + 1 + i`; terms and timestamps never decrease along
/// the log; `configs` lists exactly the config entries of `entries`, in seq order, each with
/// the members in force from that entry on.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    base: LogPosition,
    base_members: Vec<NodeInfo>,
    base_timestamp: Timestamp,
    entries: VecDeque<LogEntry>,
    configs: Vec<(Seq, Vec<NodeInfo>)>,
}

impl Log {
    /// An empty log (no configuration yet).
    pub(crate) fn new() -> Self {
        Self {
            base: LogPosition::default(),
            base_members: Vec::new(),
            base_timestamp: Timestamp::default(),
            entries: VecDeque::new(),
            configs: Vec::new(),
        }
    }

    /// A log that starts after a snapshot.
    pub(crate) fn from_snapshot(last_included: LogPosition, members: Vec<NodeInfo>) -> Self {
        Self { base: last_included, base_members: sorted(members), ..Self::new() }
    }

    /// The snapshot point (`(0, 0)` without a snapshot).
    pub(crate) fn base(&self) -> LogPosition {
        self.base
    }

    /// Position of the last entry (the base if there is none).
    pub(crate) fn last(&self) -> LogPosition {
        self.entries.back().map_or(self.base, |e| LogPosition { term: e.term, seq: e.seq })
    }

    /// Timestamp of the last entry, never lower than any timestamp this log ever held.
    pub(crate) fn last_timestamp(&self) -> Timestamp {
        self.entries.back().map_or(self.base_timestamp, |e| e.timestamp.max(self.base_timestamp))
    }

    /// The entry at `seq`, if held (not compacted, not beyond the end).
    pub(crate) fn entry(&self, seq: Seq) -> Option<&LogEntry> {
        let i = seq.0.checked_sub(self.base.seq.0 + 1)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// The term at `seq`: the base's term at the base, `None` if compacted or beyond the end.
    pub(crate) fn term_at(&self, seq: Seq) -> Option<Term> {
        if seq == self.base.seq {
            return Some(self.base.term);
        }
        self.entry(seq).map(|e| e.term)
    }

    /// The position at `seq`: the base at the base, `None` if compacted or beyond the end.
    pub(crate) fn position(&self, seq: Seq) -> Option<LogPosition> {
        self.term_at(seq).map(|term| LogPosition { term, seq })
    }

    /// Entries `from..=to`, at most `max` of them, stopping at the end or a compacted seq.
    pub(crate) fn slice(&self, from: Seq, to: Seq, max: usize) -> Vec<LogEntry> {
        let mut out = Vec::new();
        let mut seq = from;
        while seq <= to && out.len() < max {
            let Some(e) = self.entry(seq) else { break };
            out.push(e.clone());
            seq = seq.next();
        }
        out
    }

    /// Appends the next entry.
    pub(crate) fn append(&mut self, entry: LogEntry) {
        let last = self.last();
        assert_eq!(entry.seq, last.seq.next(), "log append must be contiguous");
        assert!(entry.term >= last.term, "log terms never decrease");
        if let EntryPayload::Config(change) = &entry.payload {
            let mut members = self.members().to_vec();
            apply_change(&mut members, change);
            self.configs.push((entry.seq, members));
        }
        self.entries.push_back(entry);
    }

    /// Drops every entry at or after `from` (which must be after the base).
    pub(crate) fn truncate_from(&mut self, from: Seq) {
        assert!(from > self.base.seq, "cannot truncate into the snapshot");
        let keep = usize::try_from(from.0 - self.base.seq.0 - 1).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        self.configs.retain(|(s, _)| *s < from);
    }

    /// Drops entries up to and including `upto` (a seq held in the log).
    pub(crate) fn compact(&mut self, upto: Seq) {
        let Some(term) = self.term_at(upto) else { return };
        if upto <= self.base.seq {
            return;
        }
        self.base_members = self.members_at(upto).to_vec();
        while self.entries.front().is_some_and(|e| e.seq <= upto) {
            if let Some(e) = self.entries.pop_front() {
                self.base_timestamp = self.base_timestamp.max(e.timestamp);
            }
        }
        self.configs.retain(|(s, _)| *s > upto);
        self.base = LogPosition { term, seq: upto };
    }

    /// The latest configuration in the log, committed or not (empty before bootstrap).
    pub(crate) fn members(&self) -> &[NodeInfo] {
        self.configs.last().map_or(&self.base_members, |(_, m)| m)
    }

    /// The configuration in force at `seq` (the latest config entry at or before it).
    pub(crate) fn members_at(&self, seq: Seq) -> &[NodeInfo] {
        self.configs.iter().rev().find(|(s, _)| *s <= seq).map_or(&self.base_members, |(_, m)| m)
    }

    /// The seq of the latest config entry, if it is in the log (not compacted).
    pub(crate) fn last_config_seq(&self) -> Option<Seq> {
        self.configs.last().map(|(s, _)| *s)
    }

    /// Whether `node` is a voting member of the latest configuration.
    pub(crate) fn is_member(&self, node: NodeId) -> bool {
        self.members().iter().any(|m| m.node == node)
    }

    /// Checks the documented invariants.
    pub(crate) fn check_invariants(&self) {
        let mut prev = self.base;
        let mut ts = self.base_timestamp;
        for e in &self.entries {
            assert_eq!(e.seq, prev.seq.next(), "log not contiguous");
            assert!(e.term >= prev.term, "log terms decrease at {:?}", e.seq);
            assert!(e.timestamp >= ts || prev == self.base, "timestamps decrease at {:?}", e.seq);
            prev = LogPosition { term: e.term, seq: e.seq };
            ts = e.timestamp;
        }
        let config_seqs: Vec<Seq> = self
            .entries
            .iter()
            .filter(|e| matches!(e.payload, EntryPayload::Config(_)))
            .map(|e| e.seq)
            .collect();
        let tracked: Vec<Seq> = self.configs.iter().map(|(s, _)| *s).collect();
        assert_eq!(config_seqs, tracked, "config history out of sync with the log");
    }
}

/// The members after applying `change`, sorted by node id, without duplicates.
pub(crate) fn apply_change(members: &mut Vec<NodeInfo>, change: &ConfigChange) {
    match change {
        ConfigChange::Bootstrap { members: m } => *members = m.clone(),
        ConfigChange::AddMember(info) => {
            members.retain(|m| m.node != info.node);
            members.push(info.clone());
        }
        ConfigChange::RemoveMember(node) | ConfigChange::Demote(node) => {
            members.retain(|m| m.node != *node);
        }
    }
    *members = sorted(std::mem::take(members));
}

fn sorted(mut members: Vec<NodeInfo>) -> Vec<NodeInfo> {
    members.sort_by_key(|m| m.node);
    members.dedup_by_key(|m| m.node);
    members
}

/// Whether `voters` holds a majority of `members`.
pub(crate) fn is_majority(members: &[NodeInfo], voters: impl Fn(NodeId) -> bool) -> bool {
    let yes = members.iter().filter(|m| voters(m.node)).count();
    !members.is_empty() && yes * 2 > members.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_proto::Incarnation;

    fn info(b: u8) -> NodeInfo {
        NodeInfo {
            node: NodeId::from_bytes([b; 16]),
            incarnation: Incarnation(1),
            peer_addr: ([127, 0, 0, 1], 7000 + u16::from(b)).into(),
            client_addr: ([127, 0, 0, 1], 8000 + u16::from(b)).into(),
        }
    }

    fn entry(term: u64, seq: u64, payload: EntryPayload) -> LogEntry {
        LogEntry { term: Term(term), seq: Seq(seq), timestamp: Timestamp(seq), payload }
    }

    #[test]
    fn config_history_follows_appends_truncation_and_compaction() {
        let mut log = Log::new();
        let boot = ConfigChange::Bootstrap { members: vec![info(2), info(1)] };
        log.append(entry(0, 1, EntryPayload::Config(boot)));
        log.append(entry(1, 2, EntryPayload::Noop));
        log.append(entry(1, 3, EntryPayload::Config(ConfigChange::AddMember(info(3)))));
        assert_eq!(log.members().len(), 3);
        assert_eq!(log.members_at(Seq(2)).len(), 2);
        log.truncate_from(Seq(3));
        assert_eq!(log.members().len(), 2);
        assert_eq!(log.last(), LogPosition { term: Term(1), seq: Seq(2) });
        log.compact(Seq(2));
        assert_eq!(log.base(), LogPosition { term: Term(1), seq: Seq(2) });
        assert_eq!(log.members().len(), 2);
        assert_eq!(log.entry(Seq(2)), None);
        assert_eq!(log.term_at(Seq(2)), Some(Term(1)));
        assert_eq!(log.last_timestamp(), Timestamp(2));
        log.check_invariants();
    }

    #[test]
    fn majority_needs_more_than_half() {
        let members = vec![info(1), info(2), info(3), info(4)];
        assert!(!is_majority(&members, |n| n == info(1).node || n == info(2).node));
        assert!(is_majority(&members, |n| n != info(4).node));
        assert!(!is_majority(&[], |_| true));
    }
}
