//! The hold-back queue: entries that arrived before their predecessors.

use std::collections::BTreeMap;

use auction_proto::Seq;
use auction_proto::msg::log::LogEntry;

/// What [`HoldBack::offer`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// The entry is the next expected one: append it, then [`HoldBack::take`] the followers.
    Ready,
    /// Early: held until the gap before it is filled.
    Held,
    /// Already delivered or already held: dropped.
    Duplicate,
    /// Early, but the queue is full: dropped (the sender resends it).
    Full,
}

/// Entries after a gap, keyed by seq, at most `capacity` of them.
///
/// The expected next seq is not stored here: the caller owns it (its log end) and passes it in,
/// so the queue can never disagree with the log. Invariant: `held.len() <= capacity`.
#[derive(Clone, Debug)]
pub(crate) struct HoldBack {
    held: BTreeMap<Seq, LogEntry>,
    capacity: usize,
}

impl HoldBack {
    /// An empty queue holding at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { held: BTreeMap::new(), capacity }
    }

    /// Offers an entry while `next` is the seq the log expects.
    pub(crate) fn offer(&mut self, entry: LogEntry, next: Seq) -> Offer {
        if entry.seq < next || self.held.contains_key(&entry.seq) {
            return Offer::Duplicate;
        }
        if entry.seq == next {
            return Offer::Ready;
        }
        if self.held.len() >= self.capacity {
            return Offer::Full;
        }
        self.held.insert(entry.seq, entry);
        Offer::Held
    }

    /// Removes and returns the held entry at `next`, discarding anything held below it.
    pub(crate) fn take(&mut self, next: Seq) -> Option<LogEntry> {
        while let Some((&seq, _)) = self.held.first_key_value() {
            if seq >= next {
                break;
            }
            self.held.pop_first();
        }
        self.held.remove(&next)
    }

    /// The first gap `(from, to)` before the held entries, if any, when `next` is expected.
    pub(crate) fn gap(&self, next: Seq) -> Option<(Seq, Seq)> {
        let (&first, _) = self.held.range(next..).next()?;
        (first > next).then(|| (next, first.prev()))
    }

    /// Forgets every held entry (on a term change: they may come from a deposed leader).
    pub(crate) fn clear(&mut self) {
        self.held.clear();
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Checks the bound and that every held entry is still early.
    pub(crate) fn check_invariants(&self, next: Seq) {
        assert!(self.held.len() <= self.capacity, "hold-back queue over its bound");
        assert!(self.held.keys().all(|s| *s > next), "hold-back holds a deliverable entry");
        assert!(self.held.iter().all(|(s, e)| *s == e.seq), "hold-back key mismatch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_proto::msg::log::EntryPayload;
    use auction_proto::{Term, Timestamp};
    use proptest::prelude::*;

    fn entry(seq: u64) -> LogEntry {
        LogEntry {
            term: Term(1),
            seq: Seq(seq),
            timestamp: Timestamp(seq),
            payload: EntryPayload::Noop,
        }
    }

    /// A receiver: a log end, a hold-back queue, and what it delivered.
    struct Receiver {
        next: Seq,
        queue: HoldBack,
        delivered: Vec<u64>,
    }

    impl Receiver {
        fn new(capacity: usize) -> Self {
            Self { next: Seq(1), queue: HoldBack::new(capacity), delivered: Vec::new() }
        }

        fn receive(&mut self, e: LogEntry) {
            if self.queue.offer(e.clone(), self.next) == Offer::Ready {
                self.deliver(e);
                while let Some(e) = self.queue.take(self.next) {
                    self.deliver(e);
                }
            }
            self.queue.check_invariants(self.next.prev());
        }

        fn deliver(&mut self, e: LogEntry) {
            assert_eq!(e.seq, self.next);
            self.delivered.push(e.seq.0);
            self.next = self.next.next();
        }

        /// What a `Nack` would ask for: the first gap, or the tail after the last delivery.
        fn missing(&self, last: u64) -> Vec<u64> {
            match self.queue.gap(self.next) {
                Some((from, to)) => (from.0..=to.0).collect(),
                None => (self.next.0..=last).collect(),
            }
        }
    }

    /// A stream of `1..=n` where each copy may be lost, duplicated or reordered; lost entries are
    /// resent on the receiver's request until it has everything.
    fn scenario() -> impl Strategy<Value = (u64, Vec<(u64, bool)>, usize)> {
        (1u64..60).prop_flat_map(|n| {
            let sends = proptest::collection::vec((1..=n, any::<bool>()), 0..(3 * n as usize));
            (Just(n), sends, 1usize..16)
        })
    }

    proptest! {
        #[test]
        fn any_permutation_duplication_and_loss_delivers_the_stream_once(
            (n, sends, cap) in scenario()
        ) {
            let mut r = Receiver::new(cap);
            // First pass: arbitrary order, arbitrary duplicates, some entries never sent.
            for (seq, dup) in sends {
                r.receive(entry(seq));
                if dup { r.receive(entry(seq)); }
            }
            // Resend on request (Nack of the gap, or of the tail) until done.
            let mut rounds = 0;
            while r.next.0 <= n {
                for seq in r.missing(n).into_iter().rev() {
                    r.receive(entry(seq));
                }
                rounds += 1;
                prop_assert!(rounds <= n + 1, "no progress");
            }
            prop_assert_eq!(r.delivered, (1..=n).collect::<Vec<_>>());
            prop_assert_eq!(r.queue.len(), 0);
        }
    }

    #[test]
    fn full_queue_drops_early_entries_but_not_the_next_one() {
        let mut q = HoldBack::new(1);
        assert_eq!(q.offer(entry(3), Seq(1)), Offer::Held);
        assert_eq!(q.offer(entry(4), Seq(1)), Offer::Full);
        assert_eq!(q.offer(entry(3), Seq(1)), Offer::Duplicate);
        assert_eq!(q.gap(Seq(1)), Some((Seq(1), Seq(2))));
        assert_eq!(q.offer(entry(1), Seq(1)), Offer::Ready);
        assert_eq!(q.take(Seq(2)), None);
        assert_eq!(q.take(Seq(3)).map(|e| e.seq), Some(Seq(3)));
    }
}
