//! Learners: replicated to, never counted for a quorum, ready once caught up for a while.

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::time::{Duration, Instant};

use auction_ordering::{Action, Ordering, OrderingConfig, Persisted};
use auction_proto::msg::log::{Command, Operation, RequestId};
use auction_proto::msg::peer::OrderingMsg;

mod support;
use auction_proto::{AuctionId, ClientId, LogPosition, NodeId, RequestNo, Seq, Term, Timestamp};
use support::{info, node};

/// Carries out the core's actions: every write is durable at once; the messages are returned.
fn run(core: &mut Ordering, now: Instant) -> Vec<(NodeId, OrderingMsg)> {
    let mut sent = Vec::new();
    while let Some(a) = core.poll_action() {
        match a {
            Action::Store { id, .. } | Action::InstallSnapshot { id, .. } => {
                core.handle_stored(id, now).unwrap();
            }
            Action::Send { to, msg } => sent.push((to, msg)),
            _ => {}
        }
    }
    sent
}

/// A leader of a configuration of one (node 1), active in term 1.
fn leader(now: Instant) -> Ordering {
    let mut core = Ordering::new(node(1), OrderingConfig::default(), Persisted::default(), now);
    core.handle_wall_clock(Timestamp(1_000), now);
    core.handle_bootstrap(vec![info(1)], now).unwrap();
    core.handle_leader(Term(1), node(1), now).unwrap();
    run(&mut core, now);
    core.handle_timeout(now + Duration::from_millis(50));
    run(&mut core, now);
    assert!(core.is_leading());
    core
}

fn cmd(no: u64) -> Command {
    Command {
        origin: Some(RequestId { client: ClientId::from_bytes([9; 16]), no: RequestNo(no) }),
        op: Operation::Close { auction: AuctionId(no) },
    }
}

#[test]
fn a_learner_is_synced_never_counted_and_ready_once_caught_up_long_enough() {
    let t0 = Instant::now();
    let mut l = leader(t0);
    assert!(l.handle_learners(&[node(2), node(1)], t0), "itself is ignored");
    assert_eq!(l.learners(), vec![node(2)]);
    let sent = run(&mut l, t0);
    assert!(
        sent.contains(&(node(2), OrderingMsg::StartView { term: Term(1), commit: l.commit() })),
        "{sent:?}"
    );
    // Its log state: empty. It gets the log from the start.
    let state = OrderingMsg::LogState {
        term: Term(1),
        last: LogPosition::default(),
        commit: Seq::ZERO,
        suffix: vec![],
    };
    l.handle_message(node(2), state, t0);
    let sent = run(&mut l, t0);
    assert!(
        sent.iter().any(|(to, m)| *to == node(2) && matches!(m, OrderingMsg::NewView { .. })),
        "{sent:?}"
    );
    // Commands commit on the leader alone: the learner is not in the quorum.
    l.handle_propose(cmd(1), t0).unwrap();
    run(&mut l, t0);
    let last = l.last_log().seq;
    assert_eq!(l.commit(), last, "committed without the learner's ack");
    // Not caught up yet: it acknowledged nothing.
    let t1 = t0 + Duration::from_secs(20);
    l.handle_timeout(t1);
    run(&mut l, t1);
    assert!(!l.learner_ready(node(2), Duration::from_secs(10), t1));
    // It acknowledges everything: caught up from the next tick on, ready 10 s later.
    l.handle_message(node(2), OrderingMsg::Ack { term: Term(1), stored: last }, t1);
    let t2 = t1 + Duration::from_millis(60);
    l.handle_timeout(t2);
    run(&mut l, t2);
    assert!(!l.learner_ready(node(2), Duration::from_secs(10), t2 + Duration::from_secs(9)));
    assert!(l.learner_ready(node(2), Duration::from_secs(10), t2 + Duration::from_secs(10)));
    // Dropped from the set, it is not replicated to any more.
    assert!(l.handle_learners(&[], t2));
    assert!(l.learners().is_empty());
    assert!(!l.learner_ready(node(2), Duration::ZERO, t2));
}

#[test]
fn a_learner_that_falls_behind_starts_its_stabilization_again() {
    let t0 = Instant::now();
    let mut l = leader(t0);
    l.handle_learners(&[node(2)], t0);
    run(&mut l, t0);
    let last = l.last_log().seq;
    l.handle_message(node(2), OrderingMsg::Ack { term: Term(1), stored: last }, t0);
    let t1 = t0 + Duration::from_millis(60);
    l.handle_timeout(t1);
    run(&mut l, t1);
    // Far more than the lag bound gets committed without it.
    let lag = OrderingConfig::default().learner_lag;
    for no in 0..=lag + 1 {
        l.handle_propose(cmd(10 + no), t1).unwrap();
        run(&mut l, t1);
    }
    let t2 = t1 + Duration::from_secs(11);
    l.handle_timeout(t2);
    run(&mut l, t2);
    assert!(!l.learner_ready(node(2), Duration::from_secs(10), t2), "behind: not ready");
}

#[test]
fn a_learner_that_went_silent_is_not_promoted_whatever_it_acknowledged_before() {
    // Sim seed 156: a learner wiped right after catching up was promoted; with one voter the
    // configuration then needed the dead server for every commit.
    let t0 = Instant::now();
    let mut l = leader(t0);
    l.handle_learners(&[node(2)], t0);
    run(&mut l, t0);
    let last = l.last_log().seq;
    l.handle_message(node(2), OrderingMsg::Ack { term: Term(1), stored: last }, t0);
    let tick = OrderingConfig::default().tick;
    l.handle_timeout(t0 + tick);
    run(&mut l, t0 + tick);
    // It never answers again; nothing new is committed, so its last ack still matches.
    let mut at = t0 + tick;
    for _ in 0..400 {
        at += tick;
        l.handle_timeout(at);
        run(&mut l, at);
    }
    assert!(at >= t0 + Duration::from_secs(10));
    assert!(!l.learner_ready(node(2), Duration::from_secs(10), at), "a silent learner is ready");
}
