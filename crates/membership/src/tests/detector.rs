//! The failure detector: probes, indirect probes, suspicion, confirmation.

use super::*;

fn ping_req(probe: u64, target: u8) -> PeerBody {
    PeerBody::Membership(MembershipMsg::PingReq { probe, target: id(target) })
}

/// Drained actions without the rediscovery broadcasts.
fn unicasts(m: &mut Core) -> Vec<Action> {
    drain(m).into_iter().filter(|a| !matches!(a, Action::Broadcast { .. })).collect()
}

#[test]
fn a_ping_is_answered_with_an_ack_naming_us() {
    let (mut m, t0) = core_knowing(&[2]);
    m.handle_membership(origin(2), ping(2, 42), t0 + ms(100));
    let acts = drain(&mut m);
    assert!(
        matches!(&acts[..], [Action::Send { node, msg: PeerBody::Membership(MembershipMsg::Ack { probe: 42, target, updates }), .. }]
            if *node == id(2) && *target == id(1) && updates[0] == MemberUpdate { info: info(1), state: MemberState::Alive }),
        "{acts:?}"
    );
}

#[test]
fn a_ping_from_an_unknown_sender_admits_it_from_its_own_update() {
    let (mut m, t0) = core();
    m.handle_membership(origin(2), ping(2, 7), t0);
    let acts = drain(&mut m);
    assert_eq!(acts[0], Action::Event(MembershipEvent::Joined(info(2))));
    assert_eq!(acts.len(), 2);
    // Without its own update there is no address to answer: ignored.
    m.handle_membership(
        origin(3),
        MembershipMsg::Ping { probe: 1, updates: vec![], wall: auction_proto::Timestamp(0) },
        t0,
    );
    assert_eq!(drain(&mut m), vec![]);
}

#[test]
fn unanswered_probe_asks_others_after_the_probe_timeout() {
    let (mut m, t0) = core_knowing(&[2, 3, 4]);
    let t1 = t0 + Duration::from_secs(1);
    m.handle_timeout(t1);
    let sent = pings(&drain(&mut m));
    assert_eq!(sent.iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 3, 4]);
    // 3 and 4 answer, 2 does not.
    for &(n, probe) in &sent[1..] {
        m.handle_membership(origin(n), ack(n, probe, vec![]), t1 + ms(1));
    }
    drain(&mut m);
    m.handle_timeout(t1 + ms(399));
    assert_eq!(unicasts(&mut m), vec![]);
    m.handle_timeout(t1 + ms(400));
    let probe = sent[0].1;
    assert_eq!(unicasts(&mut m), vec![send(3, ping_req(probe, 2)), send(4, ping_req(probe, 2))]);
    // Repeated timeouts do not repeat the requests.
    m.handle_timeout(t1 + ms(400));
    assert_eq!(unicasts(&mut m), vec![]);
}

#[test]
fn an_indirect_ack_counts_as_hearing_the_target() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    let t1 = t0 + Duration::from_secs(1);
    m.handle_timeout(t1);
    let probe = pings(&drain(&mut m))[0].1;
    let via = MembershipMsg::Ack { probe, target: id(2), updates: vec![alive(3)] };
    m.handle_membership(origin(3), via, t1 + ms(500));
    assert_eq!(drain(&mut m), vec![]);
    assert_eq!(m.member(&id(2)).map(|v| v.last_heard), Some(t1 + ms(500)));
    // An indirect ack for a probe we never sent proves nothing.
    let bogus = MembershipMsg::Ack { probe: 999, target: id(2), updates: vec![] };
    m.handle_membership(origin(3), bogus, t1 + ms(900));
    assert_eq!(m.member(&id(2)).map(|v| v.last_heard), Some(t1 + ms(500)));
}

#[test]
fn we_relay_a_ping_req_and_forward_the_ack() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    m.handle_membership(origin(2), MembershipMsg::PingReq { probe: 77, target: id(3) }, t0);
    let acts = drain(&mut m);
    let relayed = pings(&acts);
    assert_eq!(relayed.len(), 1);
    let (to, probe) = relayed[0];
    assert_eq!(to, 3);
    m.handle_membership(origin(3), ack(3, probe, vec![]), t0 + ms(3));
    let acts = drain(&mut m);
    assert!(
        matches!(&acts[..], [Action::Send { node, msg: PeerBody::Membership(MembershipMsg::Ack { probe: 77, target, .. }), .. }]
            if *node == id(2) && *target == id(3)),
        "{acts:?}"
    );
    // A second ack for the same relay is not forwarded again.
    m.handle_membership(origin(3), ack(3, probe, vec![]), t0 + ms(4));
    assert_eq!(drain(&mut m), vec![]);
}

#[test]
fn silence_makes_suspect_then_down_then_rediscovery_looks_for_it() {
    let (mut m, t0) = core_knowing(&[2]);
    let c = config();
    let suspect_at = t0 + c.suspicion_timeout;
    let mut now = t0;
    let mut seen = Vec::new();
    while now < suspect_at + c.confirmation_timeout {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        for e in events(&drain(&mut m)) {
            seen.push((e, now - t0));
        }
    }
    assert_eq!(
        seen,
        vec![
            (MembershipEvent::Suspect(id(2)), c.suspicion_timeout),
            (MembershipEvent::Down(id(2)), c.detection_bound())
        ]
    );
    assert_eq!(m.live_members().count(), 0);
    // Rediscovery restarts at the minimum and also asks the down member directly.
    let next = m.poll_timeout().unwrap();
    assert!(next <= now + c.rediscover_min + c.rediscover_min / 4);
    m.handle_timeout(next);
    let discover = PeerBody::Discovery(DiscoveryMsg::Discover { from: info(1) });
    assert_eq!(
        drain(&mut m),
        vec![Action::Broadcast { to: bcast(), msg: discover.clone() }, send(2, discover)]
    );
}

#[test]
fn a_suspect_heard_again_is_alive() {
    let (mut m, t0) = core_knowing(&[2]);
    let t = t0 + config().suspicion_timeout;
    m.handle_timeout(t);
    assert_eq!(events(&drain(&mut m)), vec![MembershipEvent::Suspect(id(2))]);
    m.handle_membership(origin(2), ping(2, 3), t + ms(1));
    assert_eq!(events(&drain(&mut m)), vec![MembershipEvent::Alive(id(2))]);
    assert_eq!(state(&m, 2), Some(MemberState::Alive));
}

#[test]
fn a_down_member_comes_back_only_on_first_hand_evidence() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    let c = config();
    // 3 keeps answering, 2 is silent.
    let mut now = t0;
    while state(&m, 2) != Some(MemberState::Down) {
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        m.handle_membership(origin(3), ping(3, 1), now);
        drain(&mut m);
    }
    assert_eq!(now - t0, c.detection_bound());
    // Hearsay from 3 that 2 is alive changes nothing.
    m.handle_membership(origin(3), ack(3, 1, vec![alive(2)]), now);
    assert_eq!(events(&drain(&mut m)), vec![]);
    // 2's own announce does.
    m.handle_discovery(origin(2), announce(2), now + ms(1));
    assert_eq!(events(&drain(&mut m)), vec![MembershipEvent::Alive(id(2))]);
}

#[test]
fn early_and_repeated_timeouts_do_nothing() {
    let (mut m, t0) = core_knowing(&[2]);
    let due = m.poll_timeout().unwrap();
    m.handle_timeout(due - ms(1));
    m.handle_timeout(t0);
    assert_eq!(drain(&mut m), vec![]);
    m.handle_timeout(due);
    assert!(!drain(&mut m).is_empty());
    m.handle_timeout(due);
    assert_eq!(drain(&mut m), vec![]);
}

#[test]
fn tombstones_are_forgotten_after_retention() {
    let (mut m, t0) = core_knowing(&[2]);
    m.handle_discovery(
        origin(2),
        DiscoveryMsg::Leave { node: id(2), incarnation: Incarnation(1) },
        t0,
    );
    drain(&mut m);
    m.handle_timeout(t0 + config().tombstone_retention - ms(1));
    assert_eq!(state(&m, 2), Some(MemberState::Left));
    m.handle_timeout(t0 + config().tombstone_retention);
    assert_eq!(state(&m, 2), None);
}

#[test]
fn other_traffic_counts_as_a_heartbeat() {
    let (mut m, t0) = core_knowing(&[2]);
    m.handle_heard(origin(2), t0 + Duration::from_secs(2));
    m.handle_timeout(t0 + config().suspicion_timeout);
    assert_eq!(events(&drain(&mut m)), vec![]);
}

#[test]
fn a_suspected_member_is_not_gossiped() {
    let (mut m, t0) = core_knowing(&[2, 3]);
    let c = config();
    // Node 3 keeps pinging us; node 2 falls silent until it is suspected.
    let mut t = t0;
    while state(&m, 2) != Some(MemberState::Suspect) {
        t += c.probe_interval;
        m.handle_membership(origin(3), ping(3, 1), t);
        m.handle_timeout(t);
        drain(&mut m);
    }
    // Several rounds, so the anti-entropy rotation would have reached node 2.
    for k in 0..4 {
        m.handle_membership(origin(3), ping(3, 10 + k), t);
        for a in drain(&mut m) {
            if let Action::Send { msg: PeerBody::Membership(msg), .. } = a {
                let updates = match msg {
                    MembershipMsg::Ping { updates, .. } | MembershipMsg::Ack { updates, .. } => {
                        updates
                    }
                    MembershipMsg::PingReq { .. } => vec![],
                };
                assert!(updates.iter().all(|u| u.info.node != id(2)), "vouched for a suspect");
            }
        }
    }
}

#[test]
fn a_configured_member_never_heard_of_is_probed_and_declared_down() {
    // Sim seed 629: a node that restarted after a member died never learned of the death, so
    // its election ring routed every token to the dead member.
    let (mut m, t0) = core_knowing(&[2]);
    m.handle_configured(&[info(1), info(2), info(3)], t0);
    let acts = drain(&mut m);
    assert!(events(&acts).contains(&MembershipEvent::Joined(info(3))), "{acts:?}");
    let c = config();
    let mut t = t0;
    let mut down = false;
    for _ in 0..100 {
        t += c.probe_interval;
        m.handle_membership(origin(2), ping(2, 1), t);
        m.handle_timeout(t);
        if events(&drain(&mut m)).contains(&MembershipEvent::Down(id(3))) {
            down = true;
            break;
        }
    }
    assert!(down, "the silent configured member was never declared down");
    assert_eq!(state(&m, 2), Some(MemberState::Alive));
}

#[test]
fn pings_measure_each_members_clock_offset() {
    use auction_proto::Timestamp;
    let (mut m, t0) = core_knowing(&[2, 3]);
    m.handle_wall_clock(Timestamp(1_000_000), t0);
    let t = t0 + ms(100);
    let ahead =
        MembershipMsg::Ping { probe: 5, updates: vec![alive(2)], wall: Timestamp(1_002_100) };
    m.handle_membership(origin(2), ahead, t);
    let behind =
        MembershipMsg::Ping { probe: 6, updates: vec![alive(3)], wall: Timestamp(999_600) };
    m.handle_membership(origin(3), behind, t);
    drain(&mut m);
    let mut offsets = m.clock_offsets();
    offsets.sort();
    assert_eq!(offsets, vec![(id(2), 2_000), (id(3), -500)]);
    // Smoothed: a second sample moves it a quarter of the way.
    let again =
        MembershipMsg::Ping { probe: 7, updates: vec![alive(2)], wall: Timestamp(1_000_100) };
    m.handle_membership(origin(2), again, t);
    assert!(m.clock_offsets().contains(&(id(2), 1_500)));
}
