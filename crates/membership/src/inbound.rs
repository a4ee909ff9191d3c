//! Inputs: messages from other nodes.

use std::time::Instant;

use auction_proto::Timestamp;
use auction_proto::msg::discovery::{DiscoveryMsg, NodeInfo};
use auction_proto::msg::peer::{MemberState, MemberUpdate, MembershipMsg, PeerBody};
use auction_proto::{Incarnation, NodeId};
use rand::RngCore;

use crate::core::{Origin, Relay};
use crate::table::{Member, Phase, Probing};
use crate::{Membership, MembershipEvent};

/// What a message tells us about its sender.
enum Heard {
    /// The sender is a member of the current incarnation: go on with the message.
    Member,
    /// Stale (an older incarnation), unknown without addresses, ourselves, or a member that
    /// left: ignore the rest of the message.
    Ignore,
}

impl<R: RngCore> Membership<R> {
    /// A discovery message arrived from `from` (the authenticated envelope's sender).
    pub fn handle_discovery(&mut self, from: Origin, msg: DiscoveryMsg, now: Instant) {
        if !self.left {
            self.on_discovery(from, msg, now);
        }
        self.after_input(now);
    }

    /// A failure-detection message arrived from `from` (the authenticated envelope's sender).
    pub fn handle_membership(&mut self, from: Origin, msg: MembershipMsg, now: Instant) {
        if !self.left {
            self.on_membership(from, msg, now);
        }
        self.after_input(now);
    }

    /// The members of the configuration in force: any this node has not heard of is added to
    /// the table as if just heard, so it is probed and, if it stays silent, suspected and
    /// declared down like any member: a node that joined or restarted after a member died must
    /// learn of its death, or its election ring keeps routing every token to it.
    pub fn handle_configured(&mut self, members: &[NodeInfo], now: Instant) {
        if self.left {
            return;
        }
        for info in members {
            if info.node != self.me.node && self.table.get(&info.node).is_none() {
                self.admit(info.clone(), now);
            }
        }
        self.after_input(now);
    }

    /// Any other authenticated peer traffic (election, ordering) arrived from `from`: evidence
    /// of life, like a heartbeat.
    pub fn handle_heard(&mut self, from: Origin, now: Instant) {
        if !self.left {
            self.heard(from, None, now);
        }
        self.after_input(now);
    }

    fn on_discovery(&mut self, from: Origin, msg: DiscoveryMsg, now: Instant) {
        match msg {
            DiscoveryMsg::Discover { from: info } => {
                if !same_sender(&from, &info) {
                    return;
                }
                if let Heard::Member = self.heard(from, Some(&info), now) {
                    let s = self.status;
                    let me = self.me.clone();
                    let answer = DiscoveryMsg::Announce {
                        from: me,
                        leader: s.leader,
                        term: s.term,
                        clients: s.clients,
                    };
                    self.send_to(info.node, PeerBody::Discovery(answer));
                }
            }
            DiscoveryMsg::Announce { from: info, .. } => {
                if same_sender(&from, &info) {
                    self.heard(from, Some(&info), now);
                }
            }
            DiscoveryMsg::Leave { node, incarnation } => {
                if node == from.node && incarnation == from.incarnation {
                    self.mark_left(node, incarnation, now);
                }
            }
        }
    }

    fn on_membership(&mut self, from: Origin, msg: MembershipMsg, now: Instant) {
        match msg {
            MembershipMsg::Ping { probe, updates, wall } => {
                if let Heard::Ignore = self.heard(from, own_info(&from, &updates), now) {
                    return;
                }
                self.measure_clock(from.node, wall, now);
                self.learn(&updates, now);
                let target = self.me.node;
                let updates = self.updates();
                let ack = MembershipMsg::Ack { probe, target, updates };
                self.send_to(from.node, PeerBody::Membership(ack));
            }
            MembershipMsg::Ack { probe, target, updates } => {
                if let Heard::Ignore = self.heard(from, own_info(&from, &updates), now) {
                    return;
                }
                self.learn(&updates, now);
                self.on_ack(from.node, probe, target, now);
            }
            MembershipMsg::PingReq { probe, target } => {
                if let Heard::Member = self.heard(from, None, now) {
                    self.relay(from.node, probe, target, now);
                }
            }
        }
    }

    /// First-hand evidence that `from` is alive. `info` is what the sender says of itself.
    fn heard(&mut self, from: Origin, info: Option<&NodeInfo>, now: Instant) -> Heard {
        if from.node == self.me.node {
            return Heard::Ignore;
        }
        let known = self.table.get(&from.node).map(|m| (m.info.incarnation, m.phase));
        match known {
            Some((inc, _)) if from.incarnation < inc => {
                self.stats.stale_messages += 1;
                Heard::Ignore
            }
            Some((inc, Phase::Left { .. })) if from.incarnation == inc => Heard::Ignore,
            Some((inc, phase)) if from.incarnation == inc => {
                self.revive(from.node, phase, now);
                Heard::Member
            }
            // Unknown, or a newer incarnation: we need its addresses to (re)admit it.
            _ => match info {
                Some(info) if info.incarnation == from.incarnation => {
                    if self.admit(info.clone(), now) { Heard::Member } else { Heard::Ignore }
                }
                _ => Heard::Ignore,
            },
        }
    }

    /// A known member of the current incarnation was heard from.
    fn revive(&mut self, node: NodeId, phase: Phase, now: Instant) {
        let Some(m) = self.table.get_mut(&node) else {
            return;
        };
        m.last_heard = m.last_heard.max(now);
        match phase {
            Phase::Alive(p) => m.phase = Phase::Alive(Probing { awaiting: None, ..p }),
            Phase::Suspect { probing, .. } => {
                m.phase = Phase::Alive(Probing { awaiting: None, ..probing });
                self.emit(MembershipEvent::Alive(node));
            }
            Phase::Down { .. } => {
                m.phase = Phase::Alive(Probing { next_ping: now, awaiting: None });
                self.emit(MembershipEvent::Alive(node));
                self.spread(node);
            }
            Phase::Left { .. } => {}
        }
    }

    /// Adds a new member, or replaces an older incarnation of it. Returns `false` if the table
    /// is full of live members.
    pub(crate) fn admit(&mut self, info: NodeInfo, now: Instant) -> bool {
        let node = info.node;
        if !self.table.insert(Member::fresh(info.clone(), now)) {
            self.stats.refused_members += 1;
            return false;
        }
        self.emit(MembershipEvent::Joined(info));
        self.spread(node);
        true
    }

    /// Second-hand news piggy-backed on a message. Only adds members, replaces older
    /// incarnations and records departures: hearsay never revives a member we think down.
    fn learn(&mut self, updates: &[MemberUpdate], now: Instant) {
        for u in updates.iter().take(self.config.max_updates.get()) {
            if u.info.node == self.me.node {
                continue;
            }
            let known = self.table.get(&u.info.node).map(|m| m.info.incarnation);
            let newer = known.is_none_or(|inc| u.info.incarnation > inc);
            match u.state {
                MemberState::Alive | MemberState::Suspect if newer => {
                    self.admit(u.info.clone(), now);
                }
                MemberState::Left if known.is_some() => {
                    self.mark_left(u.info.node, u.info.incarnation, now);
                }
                _ => {}
            }
        }
    }

    /// `node` left at `incarnation` (its own `Leave`, or a rumour).
    fn mark_left(&mut self, node: NodeId, incarnation: Incarnation, now: Instant) {
        let Some(m) = self.table.get_mut(&node) else {
            return;
        };
        if m.info.incarnation > incarnation || matches!(m.phase, Phase::Left { .. }) {
            return;
        }
        m.info.incarnation = incarnation;
        m.phase = Phase::Left { since: now };
        self.emit(MembershipEvent::Left(node));
        self.spread(node);
    }

    fn on_ack(&mut self, sender: NodeId, probe: u64, target: NodeId, now: Instant) {
        if target == sender {
            if let Some(r) = self.relays.get(&probe).copied().filter(|r| r.target == sender) {
                self.relays.remove(&probe);
                let updates = self.updates();
                let ack = MembershipMsg::Ack { probe: r.asker_probe, target, updates };
                self.send_to(r.asker, PeerBody::Membership(ack));
            }
            return;
        }
        // An indirect ack: `sender` reached `target` for our probe.
        let Some(m) = self.table.get(&target) else {
            return;
        };
        let ours = m.phase.probing().and_then(|p| p.awaiting).is_some_and(|a| a.probe == probe);
        if ours {
            let phase = m.phase;
            self.revive(target, phase, now);
        }
    }

    /// A ping sent at `wall` by `node`'s clock arrived now: one sample of its clock minus ours
    /// (the one-way delay, well under a millisecond on a LAN, counts as skew), smoothed as
    /// `(3 * old + sample) / 4`. Without a wall-clock reading of our own, nothing is measured.
    fn measure_clock(&mut self, node: NodeId, wall: Timestamp, now: Instant) {
        let Some(mine) = self.wall_now(now) else { return };
        if wall == Timestamp(0) {
            return;
        }
        let sample = i64::try_from(wall.0)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(mine.0).unwrap_or(i64::MAX));
        if let Some(m) = self.table.get_mut(&node) {
            m.clock_offset = Some(match m.clock_offset {
                Some(old) => old.saturating_mul(3).saturating_add(sample) / 4,
                None => sample,
            });
        }
    }

    /// Probes `target` for `asker`; the answer is forwarded in `on_ack`.
    fn relay(&mut self, asker: NodeId, asker_probe: u64, target: NodeId, now: Instant) {
        if target == self.me.node || self.addr_of(&target).is_none() {
            return;
        }
        if self.relays.len() >= self.config.max_relays.get() {
            self.stats.refused_relays += 1;
            return;
        }
        let probe = self.take_probe_number();
        let expires = now + self.config.probe_interval;
        self.relays.insert(probe, Relay { target, asker, asker_probe, expires });
        let ping = self.ping(probe, now);
        self.send_to(target, ping);
    }
}

fn same_sender(from: &Origin, info: &NodeInfo) -> bool {
    info.node == from.node && info.incarnation == from.incarnation
}

/// The sender's own entry among the piggy-backed updates (always the first one we send).
fn own_info<'a>(from: &Origin, updates: &'a [MemberUpdate]) -> Option<&'a NodeInfo> {
    updates.iter().map(|u| &u.info).find(|i| same_sender(from, i))
}
