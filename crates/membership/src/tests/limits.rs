//! Every table and queue has a bound.

use std::num::NonZeroUsize;

use super::*;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

#[test]
fn a_full_table_refuses_new_live_members_but_evicts_tombstones() {
    let (mut m, t0) = core_with(MembershipConfig { max_members: nz(2), ..config() });
    for n in [2, 3, 4] {
        m.handle_discovery(origin(n), announce(n), t0);
    }
    assert_eq!(m.members().count(), 2);
    assert_eq!(m.stats().refused_members, 1);
    m.handle_discovery(
        origin(2),
        DiscoveryMsg::Leave { node: id(2), incarnation: Incarnation(1) },
        t0,
    );
    m.handle_discovery(origin(4), announce(4), t0);
    assert_eq!(m.live_members().collect::<Vec<_>>(), vec![id(3), id(4)]);
    m.check_invariants();
}

#[test]
fn the_action_queue_drops_beyond_its_bound() {
    let (mut m, t0) = core_with(MembershipConfig { max_actions: nz(3), ..config() });
    for n in 2..=9 {
        m.handle_discovery(origin(n), DiscoveryMsg::Discover { from: info(n) }, t0);
    }
    assert_eq!(drain(&mut m).len(), 3);
    assert_eq!(m.stats().dropped_actions, 8 * 2 - 3);
}

#[test]
fn relays_are_bounded() {
    let (mut m, t0) = core_with(MembershipConfig { max_relays: nz(1), ..config() });
    for n in [2, 3] {
        m.handle_discovery(origin(n), announce(n), t0);
    }
    drain(&mut m);
    for probe in [1, 2] {
        m.handle_membership(origin(2), MembershipMsg::PingReq { probe, target: id(3) }, t0);
    }
    assert_eq!(pings(&drain(&mut m)).len(), 1);
    assert_eq!(m.stats().refused_relays, 1);
    // Relays expire after one probe interval, making room again.
    m.handle_timeout(t0 + config().probe_interval);
    drain(&mut m);
    m.handle_membership(
        origin(2),
        MembershipMsg::PingReq { probe: 3, target: id(3) },
        t0 + config().probe_interval,
    );
    assert_eq!(pings(&drain(&mut m)).len(), 1);
}

#[test]
fn piggy_backed_updates_are_bounded_and_every_member_is_eventually_told() {
    let (mut m, t0) = core_with(MembershipConfig { max_updates: nz(3), ..config() });
    for n in 2..=9 {
        m.handle_discovery(origin(n), announce(n), t0);
    }
    drain(&mut m);
    let mut told = std::collections::BTreeSet::new();
    for round in 0..20u32 {
        m.handle_timeout(t0 + config().probe_interval * round);
        for a in drain(&mut m) {
            if let Action::Send {
                msg: PeerBody::Membership(MembershipMsg::Ping { updates, .. }),
                ..
            } = a
            {
                assert!(updates.len() <= 3);
                told.extend(updates.iter().map(|u| u.info.node));
            }
        }
        // Keep everyone alive.
        for n in 2..=9 {
            m.handle_heard(origin(n), t0 + config().probe_interval * round);
        }
    }
    assert_eq!(told.len(), 9);
}

#[test]
fn incoming_updates_beyond_the_bound_are_not_read() {
    let (mut m, t0) = core_with(MembershipConfig { max_updates: nz(2), ..config() });
    let updates = (2..=6).map(alive).collect();
    m.handle_membership(
        origin(2),
        MembershipMsg::Ping { probe: 1, updates, wall: auction_proto::Timestamp(0) },
        t0,
    );
    assert_eq!(m.members().count(), 2);
}
