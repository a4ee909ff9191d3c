//! The simulated disk: what a server made durable, and writes still in flight.

use std::collections::VecDeque;
use std::time::Instant;

use auction_ordering::{Persisted, Snapshot, StoreId};
use auction_proto::msg::log::LogEntry;
use auction_proto::{InstanceId, NodeId, Seq, Term};
use auction_replica::Durable;

/// One write the replica asked for.
#[derive(Clone, Debug)]
pub(crate) enum Write {
    Store { from: Seq, entries: Vec<LogEntry> },
    Install(Snapshot),
}

/// Durable content of one data directory: survives a crash, not a wipe.
///
/// Invariant: `entries` is contiguous from the snapshot's next seq (or 1).
#[derive(Clone, Debug)]
pub struct Disk {
    /// The node id, generated when the data directory was created (as the real node does).
    pub(crate) node: NodeId,
    /// Boots of this data directory so far (the incarnation of the last one).
    pub(crate) incarnation: u64,
    /// The cluster instance founded or joined.
    pub(crate) instance: Option<InstanceId>,
    pub(crate) term: Term,
    pub(crate) accepted: Option<NodeId>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<LogEntry>,
    /// Issued, not yet synced: `(due, id, write)`.
    pub(crate) pending: VecDeque<(Instant, StoreId, Write)>,
}

impl Disk {
    /// An empty data directory of node `node`.
    pub(crate) fn new(node: NodeId) -> Self {
        Self {
            node,
            incarnation: 0,
            instance: None,
            term: Term::default(),
            accepted: None,
            snapshot: None,
            entries: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    fn base(&self) -> Seq {
        self.snapshot.as_ref().map_or(Seq::ZERO, |s| s.last_included.seq)
    }

    pub(crate) fn apply(&mut self, w: Write) {
        match w {
            Write::Store { from, entries } => {
                self.entries.retain(|e| e.seq < from);
                let base = self.base();
                let mut next = self.entries.last().map_or(base, |e| e.seq).next();
                for e in entries {
                    if e.seq == next {
                        next = next.next();
                        self.entries.push(e);
                    } else if e.seq > next {
                        break;
                    }
                }
            }
            Write::Install(s) => {
                self.snapshot = Some(s);
                self.entries.clear();
            }
        }
    }

    /// A snapshot taken by the replica (written synchronously).
    pub(crate) fn save_snapshot(&mut self, s: Snapshot) {
        if s.last_included.seq > self.base() {
            let at = s.last_included.seq;
            self.entries.retain(|e| e.seq > at);
            self.snapshot = Some(s);
            // The log after the snapshot must stay contiguous from it.
            if self.entries.first().is_some_and(|e| e.seq != at.next()) {
                self.entries.clear();
            }
        }
    }

    /// Whether the durable state holds `entry` (in the log, or covered by the snapshot).
    pub(crate) fn holds(&self, entry: &LogEntry) -> bool {
        if self.snapshot.as_ref().is_some_and(|s| s.last_included.seq >= entry.seq) {
            return true;
        }
        self.entries.iter().any(|e| e.seq == entry.seq && e == entry)
    }

    /// A crash: the first `survive` pending writes reached the platter, the rest are lost.
    pub(crate) fn crash(&mut self, survive: usize) {
        let pending: Vec<_> = self.pending.drain(..).collect();
        for (_, _, w) in pending.into_iter().take(survive) {
            self.apply(w);
        }
    }

    /// What a restarted replica recovers.
    pub(crate) fn durable(&self) -> Durable {
        let applied = self.base();
        Durable {
            term: self.term,
            accepted: self.accepted,
            ordering: Persisted {
                term: self.term,
                snapshot: self.snapshot.clone(),
                entries: self.entries.clone(),
                applied,
            },
            instance: self.instance,
        }
    }
}
