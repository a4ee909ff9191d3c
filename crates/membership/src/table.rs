//! The member table: one entry per `NodeId`, bounded.

use std::collections::BTreeMap;
use std::time::Instant;

use auction_proto::NodeId;
use auction_proto::msg::discovery::NodeInfo;
use auction_proto::msg::peer::MemberState;

use crate::MembershipConfig;

/// An outstanding probe of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Awaiting {
    /// The probe number sent in the `Ping` (and in any `PingReq` for it).
    pub(crate) probe: u64,
    /// When the `Ping` went out.
    pub(crate) sent: Instant,
    /// Whether the `PingReq`s have been sent already.
    pub(crate) indirect: bool,
}

/// The per-member timers of a member we probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Probing {
    /// When to send the next `Ping`.
    pub(crate) next_ping: Instant,
    /// The last probe, until it is answered or superseded.
    pub(crate) awaiting: Option<Awaiting>,
}

/// Where a member is in its life cycle, with the timers of that state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Probed; becomes `Suspect` at `last_heard + suspicion_timeout`.
    Alive(Probing),
    /// Probed; becomes `Down` at `since + confirmation_timeout`.
    Suspect { since: Instant, probing: Probing },
    /// Not probed (rediscovery reaches it); forgotten at `since + tombstone_retention`.
    Down { since: Instant },
    /// Not probed; forgotten at `since + tombstone_retention`.
    Left { since: Instant },
}

impl Phase {
    pub(crate) fn state(&self) -> MemberState {
        match self {
            Phase::Alive(_) => MemberState::Alive,
            Phase::Suspect { .. } => MemberState::Suspect,
            Phase::Down { .. } => MemberState::Down,
            Phase::Left { .. } => MemberState::Left,
        }
    }

    pub(crate) fn probing_mut(&mut self) -> Option<&mut Probing> {
        match self {
            Phase::Alive(p) | Phase::Suspect { probing: p, .. } => Some(p),
            Phase::Down { .. } | Phase::Left { .. } => None,
        }
    }

    pub(crate) fn probing(&self) -> Option<&Probing> {
        match self {
            Phase::Alive(p) | Phase::Suspect { probing: p, .. } => Some(p),
            Phase::Down { .. } | Phase::Left { .. } => None,
        }
    }

    /// Whether the member counts as live (probed): `Alive` or `Suspect`.
    pub(crate) fn is_live(&self) -> bool {
        self.probing().is_some()
    }
}

/// One member as the table holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) info: NodeInfo,
    /// Last first-hand evidence of life (any message from it, or an indirect ack).
    pub(crate) last_heard: Instant,
    pub(crate) phase: Phase,
    /// Its wall clock minus ours, in milliseconds, smoothed over its pings (none yet).
    pub(crate) clock_offset: Option<i64>,
}

impl Member {
    /// A member just heard of, to be probed at once.
    pub(crate) fn fresh(info: NodeInfo, now: Instant) -> Self {
        let probing = Probing { next_ping: now, awaiting: None };
        Self { info, last_heard: now, phase: Phase::Alive(probing), clock_offset: None }
    }

    /// The member's next deadline.
    pub(crate) fn deadline(&self, config: &MembershipConfig) -> Instant {
        let state_deadline = match self.phase {
            Phase::Alive(_) => self.last_heard + config.suspicion_timeout,
            Phase::Suspect { since, .. } => since + config.confirmation_timeout,
            Phase::Down { since } | Phase::Left { since } => since + config.tombstone_retention,
        };
        let Some(probing) = self.phase.probing() else {
            return state_deadline;
        };
        // Plain comparisons, no iterator chains: this runs for every member on every poll.
        let mut at = state_deadline.min(probing.next_ping);
        if let Some(a) = probing.awaiting {
            if !a.indirect {
                at = at.min(a.sent + config.probe_timeout);
            }
        }
        at
    }

    pub(crate) fn view(&self) -> MemberView {
        MemberView {
            info: self.info.clone(),
            state: self.phase.state(),
            last_heard: self.last_heard,
        }
    }
}

/// A read-only view of one member, for drivers, tests and admin commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Identity, incarnation and addresses.
    pub info: NodeInfo,
    /// What the detector believes.
    pub state: MemberState,
    /// Last first-hand evidence of life.
    pub last_heard: Instant,
}

/// The member table, keyed by `NodeId` so a node appears at most once whatever its incarnation.
///
/// Invariants: `len() <= max`; every key equals its member's `info.node`.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    members: BTreeMap<NodeId, Member>,
    max: usize,
}

impl Table {
    pub(crate) fn new(max: usize) -> Self {
        Self { members: BTreeMap::new(), max }
    }

    pub(crate) fn get(&self, node: &NodeId) -> Option<&Member> {
        self.members.get(node)
    }

    pub(crate) fn get_mut(&mut self, node: &NodeId) -> Option<&mut Member> {
        self.members.get_mut(node)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Member)> {
        self.members.iter()
    }

    pub(crate) fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn remove(&mut self, node: &NodeId) -> Option<Member> {
        self.members.remove(node)
    }

    /// Inserts or replaces a member. When the table is full and `member` is new, the oldest
    /// tombstone (`Down` or `Left`) makes room; with no tombstone the insert is refused
    /// (`false`).
    pub(crate) fn insert(&mut self, member: Member) -> bool {
        let node = member.info.node;
        if !self.members.contains_key(&node) && self.members.len() >= self.max {
            let oldest = self
                .members
                .iter()
                .filter_map(|(id, m)| match m.phase {
                    Phase::Down { since } | Phase::Left { since } => Some((since, *id)),
                    Phase::Alive(_) | Phase::Suspect { .. } => None,
                })
                .min();
            let Some((_, evict)) = oldest else {
                return false;
            };
            self.members.remove(&evict);
        }
        self.members.insert(node, member);
        true
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.members.len() <= self.max, "member table over its bound");
        for (id, m) in &self.members {
            assert_eq!(*id, m.info.node, "table key differs from the member's id");
            if let Phase::Suspect { since, .. } = m.phase {
                assert!(m.last_heard <= since, "suspect heard from after suspicion");
            }
        }
    }
}
