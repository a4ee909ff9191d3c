//! Input: the clock reached a deadline. Every timer is per member (or per relay) and is
//! checked against `now`, so early, late and repeated calls are all harmless.

use std::time::{Duration, Instant};

use auction_proto::NodeId;
use auction_proto::msg::discovery::DiscoveryMsg;
use auction_proto::msg::peer::{MembershipMsg, PeerBody};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};

use crate::table::{Awaiting, Phase, Probing};
use crate::{Action, Membership, MembershipEvent};

impl<R: RngCore> Membership<R> {
    /// The clock reached [`Membership::poll_timeout`] (or any time: nothing is due early).
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.left {
            self.relays.retain(|_, r| r.expires > now);
            for node in self.table.ids() {
                self.member_timers(node, now);
            }
            if self.next_discover <= now {
                self.rediscover(now);
            }
        }
        self.after_input(now);
    }

    /// Fires whichever of one member's timers are due.
    fn member_timers(&mut self, node: NodeId, now: Instant) {
        let Some(m) = self.table.get(&node) else {
            return;
        };
        let (phase, last_heard) = (m.phase, m.last_heard);
        let c = &self.config;
        match phase {
            Phase::Down { since } | Phase::Left { since } => {
                if since + c.tombstone_retention <= now {
                    self.table.remove(&node);
                    self.rumours.forget(&node);
                }
            }
            Phase::Alive(p) if last_heard + c.suspicion_timeout <= now => {
                self.set_phase(node, Phase::Suspect { since: now, probing: p });
                self.emit(MembershipEvent::Suspect(node));
                self.probe_timers(node, now);
            }
            Phase::Suspect { since, .. } if since + c.confirmation_timeout <= now => {
                self.set_phase(node, Phase::Down { since: now });
                self.rumours.forget(&node);
                self.emit(MembershipEvent::Down(node));
                // Look for it (and for the rest of a partition) again soon.
                self.backoff = self.config.rediscover_min;
                self.next_discover = self.next_discover.min(now + self.backoff);
            }
            Phase::Alive(_) | Phase::Suspect { .. } => self.probe_timers(node, now),
        }
    }

    /// A live member's probe timers: indirect probes when the direct ack is late, then the
    /// next `Ping` when its period comes.
    fn probe_timers(&mut self, node: NodeId, now: Instant) {
        let Some(p) = self.table.get(&node).and_then(|m| m.phase.probing()).copied() else {
            return;
        };
        let mut next = p;
        if let Some(a) = p.awaiting.filter(|a| !a.indirect) {
            if a.sent + self.config.probe_timeout <= now {
                self.ping_indirectly(node, a.probe);
                next.awaiting = Some(Awaiting { indirect: true, ..a });
            }
        }
        if p.next_ping <= now {
            let probe = self.take_probe_number();
            next = Probing {
                next_ping: now + self.config.probe_interval,
                awaiting: Some(Awaiting { probe, sent: now, indirect: false }),
            };
            let ping = self.ping(probe, now);
            self.send_to(node, ping);
        }
        if let Some(probing) = self.table.get_mut(&node).and_then(|m| m.phase.probing_mut()) {
            *probing = next;
        }
    }

    /// Asks up to `indirect_probes` random live members to probe `target` for us.
    fn ping_indirectly(&mut self, target: NodeId, probe: u64) {
        let helpers: Vec<NodeId> = self
            .table
            .iter()
            .filter(|(id, m)| **id != target && matches!(m.phase, Phase::Alive(_)))
            .map(|(id, _)| *id)
            .collect();
        let mut chosen: Vec<NodeId> =
            helpers.choose_multiple(&mut self.rng, self.config.indirect_probes).copied().collect();
        chosen.sort_unstable();
        for helper in chosen {
            let req = MembershipMsg::PingReq { probe, target };
            self.send_to(helper, PeerBody::Membership(req));
        }
    }

    /// Sends `Discover` to every discovery target and to every `Down` member, then backs off
    /// (doubling, capped, with up to a quarter of random jitter so nodes do not synchronise).
    fn rediscover(&mut self, now: Instant) {
        let msg = PeerBody::Discovery(DiscoveryMsg::Discover { from: self.me.clone() });
        for to in self.config.discovery_targets.clone() {
            self.push(Action::Broadcast { to, msg: msg.clone() });
        }
        let down: Vec<NodeId> = self
            .table
            .iter()
            .filter(|(_, m)| matches!(m.phase, Phase::Down { .. }))
            .map(|(id, _)| *id)
            .collect();
        for node in down {
            self.send_to(node, msg.clone());
        }
        let jitter = self.backoff / 4;
        let jitter = self.rng.random_range(Duration::ZERO..=jitter);
        self.next_discover = now + self.backoff + jitter;
        self.backoff = (self.backoff * 2).min(self.config.rediscover_max);
    }

    fn set_phase(&mut self, node: NodeId, phase: Phase) {
        if let Some(m) = self.table.get_mut(&node) {
            m.phase = phase;
        }
    }
}
