//! Exactly-once: the bounded table of applied client requests and their outcomes.
//!
//! # The rule
//!
//! Each client request carries `(ClientId, RequestNo)`. The table keeps, for each client, the
//! outcomes of its [`PER_CLIENT`] highest-numbered applied requests, and the highest number it
//! has forgotten (the *floor*). For a command with an origin:
//!
//! - a number in the window: the first outcome is returned and nothing changes;
//! - a number at or below the floor, not in the window: `Rejected { RequestExpired }` and
//!   nothing changes (it may have been applied; the client must look at the state);
//! - otherwise the command is applied and its outcome (rejections included) recorded.
//!
//! At most [`MAX_CLIENTS`] clients are remembered. Recording a request for a new client when
//! the table is full forgets the client whose last request has the oldest log position. A
//! forgotten client loses its floor: a retry of one of its old requests is applied as new.
//! Clients keep one session id per process and retry within seconds, so with these bounds
//! that takes thousands of more recent clients between a request and its retry.
//!
//! Everything depends only on the applied entries, so every replica forgets the same things.

use std::collections::{BTreeMap, BTreeSet};

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::log::RequestId;
use auction_proto::{ClientId, RequestNo, Seq};
use serde::{Deserialize, Serialize};

/// Outcomes remembered per client.
pub const PER_CLIENT: usize = 16;
/// Clients remembered.
pub const MAX_CLIENTS: usize = 10_000;

/// What the table knows about a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen<'a> {
    /// Never applied (as far as the window can tell): apply it.
    Fresh,
    /// Applied; here is its first outcome.
    Done(&'a Outcome),
    /// Older than the window.
    Expired,
}

/// One client's window.
///
/// Invariants: `done.len() <= PER_CLIENT`; every key in `done` is above `floor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    last_seq: Seq,
    floor: Option<RequestNo>,
    done: BTreeMap<RequestNo, Outcome>,
}

/// The table. `by_activity` holds `(last_seq, client)` for every client and is derived.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Dedup {
    clients: BTreeMap<ClientId, Window>,
    #[serde(skip)]
    by_activity: BTreeSet<(Seq, ClientId)>,
}

impl Dedup {
    pub(crate) fn seen(&self, id: RequestId) -> Seen<'_> {
        let Some(w) = self.clients.get(&id.client) else { return Seen::Fresh };
        if let Some(outcome) = w.done.get(&id.no) {
            Seen::Done(outcome)
        } else if w.floor.is_some_and(|f| id.no <= f) {
            Seen::Expired
        } else {
            Seen::Fresh
        }
    }

    /// Records the outcome of a fresh request applied at `seq`.
    pub(crate) fn record(&mut self, id: RequestId, seq: Seq, outcome: Outcome) {
        let w = self.clients.entry(id.client).or_insert_with(|| Window {
            last_seq: Seq::ZERO,
            floor: None,
            done: BTreeMap::new(),
        });
        self.by_activity.remove(&(w.last_seq, id.client));
        w.last_seq = seq;
        self.by_activity.insert((seq, id.client));
        w.done.insert(id.no, outcome);
        if w.done.len() > PER_CLIENT {
            if let Some((no, _)) = w.done.pop_first() {
                w.floor = Some(w.floor.map_or(no, |f| f.max(no)));
            }
        }
        if self.clients.len() > MAX_CLIENTS {
            if let Some((_, oldest)) = self.by_activity.pop_first() {
                self.clients.remove(&oldest);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.by_activity = self.clients.iter().map(|(c, w)| (w.last_seq, *c)).collect();
    }

    pub(crate) fn validate(&self, last_applied: Seq) -> Result<(), &'static str> {
        if self.clients.len() > MAX_CLIENTS || self.by_activity.len() != self.clients.len() {
            return Err("dedup table over its bound or its activity index is stale");
        }
        for (client, w) in &self.clients {
            if w.done.len() > PER_CLIENT || w.done.is_empty() {
                return Err("dedup window size out of bounds");
            }
            if w.floor.is_some_and(|f| w.done.keys().next().is_some_and(|k| *k <= f)) {
                return Err("dedup window holds a request at or below its floor");
            }
            if w.last_seq > last_applied || !self.by_activity.contains(&(w.last_seq, *client)) {
                return Err("dedup activity index does not match the windows");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(client: u8, no: u64) -> RequestId {
        RequestId { client: ClientId::from_bytes([client; 16]), no: RequestNo(no) }
    }

    #[test]
    fn window_slides_and_floor_expires_old_requests() {
        let mut d = Dedup::default();
        for no in 1..=(PER_CLIENT as u64 + 2) {
            d.record(rid(1, no), Seq(no), Outcome::Unchanged);
        }
        assert_eq!(d.seen(rid(1, 1)), Seen::Expired);
        assert_eq!(d.seen(rid(1, 2)), Seen::Expired);
        assert_eq!(d.seen(rid(1, 3)), Seen::Done(&Outcome::Unchanged));
        assert_eq!(d.seen(rid(1, 100)), Seen::Fresh);
        assert_eq!(d.seen(rid(2, 1)), Seen::Fresh);
        d.validate(Seq(100)).unwrap();
    }
}
