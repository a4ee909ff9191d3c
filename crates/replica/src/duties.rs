//! Duties run after every input: start an election when leaderless, and as leader sequence
//! `Close` entries and configuration changes; carry out a graceful leave.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auction_proto::msg::log::{Command, ConfigChange, Operation};
use auction_proto::{AuctionId, NodeId, Timestamp};

use crate::replica::MAX_PENDING_CLOSES;
use crate::{Action, Replica};

/// How long a leaving leader waits for its own removal to commit before leaving anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

impl Replica {
    pub(crate) fn duties(&mut self, now: Instant) {
        if let Some(since) = self.leaderless_since {
            if now >= since + self.config.election.election_timeout {
                self.leaderless_since = None;
                self.election.start(now);
            }
        }
        if self.ordering.is_leading() {
            self.propose_closes(now);
            self.change_config(now);
        }
        self.carry_out_leave(now);
    }

    /// Wall-clock time at `now` from the last reading.
    fn wall_now(&self, now: Instant) -> Option<Timestamp> {
        self.clock.map(|c| c.wall_at(now))
    }

    fn propose_closes(&mut self, now: Instant) {
        let term = self.ordering.term();
        if self.closes_term != term {
            self.closes_term = term;
            self.closes.clear();
        }
        let Some(wall) = self.wall_now(now) else { return };
        let due: BTreeSet<AuctionId> =
            self.machine.due_for_close(wall).take(MAX_PENDING_CLOSES).collect();
        self.closes.retain(|id| due.contains(id));
        for auction in due {
            if self.closes.contains(&auction) {
                continue;
            }
            let cmd = Command { origin: None, op: Operation::Close { auction } };
            if self.ordering.handle_propose(cmd, now).is_err() {
                self.stats.duties_refused += 1;
                return;
            }
            self.closes.insert(auction);
        }
    }

    /// One configuration change at a time: removals of departed members first (an automatic
    /// one never below the quorum floor), then promotions of learners that have been caught
    /// up for the stabilization time, except those an operator holds (`admin demote`). Live
    /// servers outside the configuration that sent this leader an addressed frame are its
    /// learners.
    fn change_config(&mut self, now: Instant) {
        let members = self.members();
        let me = self.me.node;
        let grace = self.config.removal_grace;
        let above_floor = members.len() > self.config.min_voters.max(1);
        let gone = members.iter().copied().find(|n| {
            let left = self.left.contains(n);
            let down = self.down_since.get(n).is_some_and(|since| now >= *since + grace);
            (*n != me && (left || (down && above_floor))) || (*n == me && self.leaving.is_some())
        });
        let learners: Vec<NodeId> = self
            .membership
            .live_members()
            .filter(|n| !members.contains(n) && !self.left.contains(n) && self.peers.is_vouched(*n))
            .collect();
        if self.ordering.handle_learners(&learners, now) {
            self.actions.push_back(Action::Learners { learners: self.ordering.learners() });
        }
        let stable = self.config.promote_after;
        let change = match gone {
            Some(n) => Some(ConfigChange::RemoveMember(n)),
            None => learners
                .iter()
                .copied()
                .filter(|n| !self.held.contains(n))
                .find(|n| self.ordering.learner_ready(*n, stable, now))
                .and_then(|n| self.membership.member(&n))
                .map(|m| ConfigChange::AddMember(m.info)),
        };
        if let Some(change) = change {
            if self.ordering.handle_config_change(change, now).is_err() {
                self.stats.duties_refused += 1;
            }
        }
    }

    fn carry_out_leave(&mut self, now: Instant) {
        let Some(since) = self.leaving else { return };
        if self.membership.has_left() {
            return;
        }
        let leads = self.ordering.leader() == Some(self.me.node);
        if !self.is_member() || !leads || now >= since + LEAVE_WAIT {
            self.membership.leave(now);
        }
    }
}
