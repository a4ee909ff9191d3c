//! Discovery, rediscovery with backoff, restarts and graceful leave.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use super::*;
use crate::{AnnounceStatus, MembershipError};
use auction_proto::Term;

#[test]
fn start_up_broadcasts_discover_to_every_target() {
    let t0 = Instant::now();
    let join = addr(9, 7000);
    let config =
        MembershipConfig { discovery_targets: vec![bcast(), join], ..MembershipConfig::default() };
    let mut m = Membership::new(info(1), config, ChaCha8Rng::seed_from_u64(0), t0).unwrap();
    assert_eq!(m.poll_timeout(), Some(t0));
    m.handle_timeout(t0);
    let msg = PeerBody::Discovery(DiscoveryMsg::Discover { from: info(1) });
    assert_eq!(
        drain(&mut m),
        vec![
            Action::Broadcast { to: bcast(), msg: msg.clone() },
            Action::Broadcast { to: join, msg }
        ]
    );
}

#[test]
fn discover_is_answered_by_announce_and_admits_the_sender() {
    let (mut m, t0) = core();
    m.set_announce_status(AnnounceStatus { leader: Some(id(3)), term: Term(4), clients: 2 });
    m.handle_discovery(origin(2), DiscoveryMsg::Discover { from: info(2) }, t0);
    let answer =
        DiscoveryMsg::Announce { from: info(1), leader: Some(id(3)), term: Term(4), clients: 2 };
    assert_eq!(
        drain(&mut m),
        vec![Action::Event(MembershipEvent::Joined(info(2))), send(2, PeerBody::Discovery(answer))]
    );
    assert_eq!(state(&m, 2), Some(MemberState::Alive));
}

#[test]
fn announce_admits_and_the_new_member_is_pinged_at_once() {
    let (mut m, t0) = core();
    m.handle_discovery(origin(2), announce(2), t0);
    assert_eq!(drain(&mut m), vec![Action::Event(MembershipEvent::Joined(info(2)))]);
    assert_eq!(m.poll_timeout(), Some(t0));
    m.handle_timeout(t0);
    // Ourselves, then the rumour of the join; the anti-entropy pick is node 2 again: skipped.
    let updates = vec![MemberUpdate { info: info(1), state: MemberState::Alive }, alive(2)];
    let msg = PeerBody::Membership(MembershipMsg::Ping {
        probe: 1,
        updates,
        wall: auction_proto::Timestamp(0),
    });
    assert_eq!(drain(&mut m), vec![send(2, msg)]);
}

#[test]
fn our_own_broadcast_echo_and_forged_discovers_are_ignored() {
    let (mut m, t0) = core();
    m.handle_discovery(origin(1), DiscoveryMsg::Discover { from: info(1) }, t0);
    // Sender 2 claiming to be node 3.
    m.handle_discovery(origin(2), DiscoveryMsg::Discover { from: info(3) }, t0);
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.members().count(), 0);
}

#[test]
fn a_restarted_node_replaces_its_old_self() {
    let (mut m, t0) = core_knowing(&[2]);
    let new = Origin { node: id(2), incarnation: Incarnation(2) };
    let mut moved = info_inc(2, 2);
    moved.peer_addr = addr(2, 7100);
    let ann =
        DiscoveryMsg::Announce { from: moved.clone(), leader: None, term: Term(0), clients: 0 };
    m.handle_discovery(new, ann, t0 + ms(10));
    assert_eq!(drain(&mut m), vec![Action::Event(MembershipEvent::Joined(moved.clone()))]);
    assert_eq!(m.members().count(), 1);
    assert_eq!(m.member(&id(2)).map(|v| v.info), Some(moved));
    // The old process's late messages are stale now.
    m.handle_membership(origin(2), ping(2, 5), t0 + ms(20));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.stats().stale_messages, 1);
}

#[test]
fn rediscovery_backs_off_doubling_to_the_cap() {
    let (mut m, t0) = core();
    let mut rounds = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(60) {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        if !drain(&mut m).is_empty() {
            rounds.push(now - t0);
        }
    }
    let gaps: Vec<Duration> = rounds.windows(2).map(|w| w[1] - w[0]).collect();
    // 2 s, 4 s, 8 s, then 10 s, each with up to 25 % jitter.
    let c = config();
    let mut expect = c.rediscover_min * 2;
    for g in gaps {
        let base = expect.min(c.rediscover_max);
        assert!(g >= base && g <= base + base / 4, "gap {g:?} vs base {base:?}");
        expect = base * 2;
    }
}

#[test]
fn leave_message_marks_the_member_left_at_once() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    let leave = DiscoveryMsg::Leave { node: id(2), incarnation: Incarnation(1) };
    m.handle_discovery(origin(2), leave, t0 + ms(5));
    assert_eq!(drain(&mut m), vec![Action::Event(MembershipEvent::Left(id(2)))]);
    assert_eq!(state(&m, 2), Some(MemberState::Left));
    // Late traffic from the departed process does not bring it back.
    m.handle_membership(origin(2), ping(2, 9), t0 + ms(6));
    assert_eq!(drain(&mut m), vec![]);
    // The departure is gossiped on the next probes.
    m.handle_timeout(t0 + Duration::from_secs(1));
    let acts = drain(&mut m);
    let carries_left = acts.iter().any(|a| {
        matches!(a,
        Action::Send { msg: PeerBody::Membership(MembershipMsg::Ping { updates, .. }), .. }
            if updates.contains(&MemberUpdate { info: info(2), state: MemberState::Left }))
    });
    assert!(carries_left, "{acts:?}");
}

#[test]
fn leaving_sends_leave_to_live_members_then_goes_quiet() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    m.leave(t0);
    let leave =
        PeerBody::Discovery(DiscoveryMsg::Leave { node: id(1), incarnation: Incarnation(1) });
    assert_eq!(drain(&mut m), vec![send(2, leave.clone()), send(3, leave)]);
    assert_eq!(m.poll_timeout(), None);
    m.handle_membership(origin(2), ping(2, 1), t0);
    m.handle_timeout(t0 + Duration::from_secs(100));
    m.leave(t0);
    assert_eq!(drain(&mut m), vec![]);
}

#[test]
fn left_rumours_spread_and_new_incarnations_come_back() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    let left = MemberUpdate { info: info(3), state: MemberState::Left };
    m.handle_membership(origin(2), ack(2, 99, vec![left]), t0);
    assert_eq!(drain(&mut m), vec![Action::Event(MembershipEvent::Left(id(3)))]);
    let back = MemberUpdate { info: info_inc(3, 2), state: MemberState::Alive };
    m.handle_membership(origin(2), ack(2, 99, vec![back]), t0);
    assert_eq!(drain(&mut m), vec![Action::Event(MembershipEvent::Joined(info_inc(3, 2)))]);
}

#[test]
fn bad_settings_are_refused() {
    let t0 = Instant::now();
    let build =
        |c: MembershipConfig| Membership::new(info(1), c, ChaCha8Rng::seed_from_u64(0), t0).err();
    let d = MembershipConfig::default();
    assert_eq!(
        build(MembershipConfig { probe_interval: Duration::ZERO, ..d.clone() }),
        Some(MembershipError::ZeroDuration { setting: "probe_interval" })
    );
    assert!(matches!(
        build(MembershipConfig { probe_timeout: d.probe_interval, ..d.clone() }),
        Some(MembershipError::ProbeTimeoutTooLong { .. })
    ));
    assert!(matches!(
        build(MembershipConfig { suspicion_timeout: d.probe_interval, ..d.clone() }),
        Some(MembershipError::SuspicionTooShort { .. })
    ));
    assert!(matches!(
        build(MembershipConfig { rediscover_min: d.rediscover_max * 2, ..d.clone() }),
        Some(MembershipError::RediscoverBackoff { .. })
    ));
    assert_eq!(build(d), None);
}
