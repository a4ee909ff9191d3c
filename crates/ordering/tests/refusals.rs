//! A message that does not fit this node's role is refused, explicitly and counted in
//! `Ordering::stats`: one input, the exact outputs, the counter that moved.

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::time::Instant;

use auction_ordering::{Action, Ordering, OrderingConfig, OrderingStats, Persisted};
use auction_proto::msg::log::{Command, Operation, RequestId};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{AuctionId, ClientId, LogPosition, RequestNo, Seq, Term};

mod support;
use support::{drain, info, node};

/// Member `me` of a bootstrapped 3-member cluster, its actions drained.
fn bootstrapped(me: u8, now: Instant) -> Ordering {
    let mut core = Ordering::new(node(me), OrderingConfig::default(), Persisted::default(), now);
    core.handle_bootstrap((1..=3).map(info).collect(), now).unwrap();
    for a in drain(&mut core) {
        if let Action::Store { id, .. } = a {
            core.handle_stored(id, now).unwrap();
        }
    }
    core
}

/// Member 2 following leader 1 in term 1.
fn follower(now: Instant) -> Ordering {
    let mut f = bootstrapped(2, now);
    f.handle_leader(Term(1), node(1), now).unwrap();
    drain(&mut f);
    f
}

/// Leader 1 of term 1, still gathering log states.
fn gathering_leader(now: Instant) -> Ordering {
    let mut l = bootstrapped(1, now);
    l.handle_leader(Term(1), node(1), now).unwrap();
    drain(&mut l);
    l
}

/// No refusals but those `set` counts.
fn counted(set: impl FnOnce(&mut OrderingStats)) -> OrderingStats {
    let mut stats = OrderingStats::default();
    set(&mut stats);
    stats
}

#[test]
fn member_to_leader_messages_at_a_follower_are_counted_not_leading() {
    let now = Instant::now();
    let mut f = follower(now);
    f.handle_message(node(3), OrderingMsg::Ack { term: Term(1), stored: Seq(1) }, now);
    f.handle_message(node(3), OrderingMsg::Nack { term: Term(1), from: Seq(2), to: Seq(3) }, now);
    let last = LogPosition { term: Term(0), seq: Seq(1) };
    let state = OrderingMsg::LogState { term: Term(1), last, commit: Seq(0), suffix: vec![] };
    f.handle_message(node(3), state, now);
    assert_eq!(drain(&mut f), vec![]);
    assert_eq!(f.stats(), counted(|s| s.not_leading = 3));
}

#[test]
fn member_to_leader_messages_of_an_older_term_are_counted_stale() {
    let now = Instant::now();
    let mut f = bootstrapped(1, now);
    f.handle_leader(Term(2), node(1), now).unwrap();
    drain(&mut f);
    f.handle_message(node(2), OrderingMsg::Ack { term: Term(1), stored: Seq(1) }, now);
    assert_eq!(drain(&mut f), vec![]);
    assert_eq!(f.stats(), counted(|s| s.stale_member_msg = 1));
}

#[test]
fn a_proposal_at_a_follower_is_answered_not_leader_and_counted() {
    let now = Instant::now();
    let mut f = follower(now);
    let cmd = Command {
        origin: Some(RequestId { client: ClientId::from_bytes([9; 16]), no: RequestNo(1) }),
        op: Operation::Close { auction: AuctionId(1) },
    };
    f.handle_message(node(3), OrderingMsg::Propose { term: Term(1), commands: vec![cmd] }, now);
    let told = OrderingMsg::NotLeader { term: Term(1), leader: Some(node(1)) };
    assert_eq!(drain(&mut f), vec![Action::Send { to: node(3), msg: told }]);
    assert_eq!(f.stats(), counted(|s| s.propose_not_leading = 1));
}

#[test]
fn leader_to_member_messages_from_a_non_leader_are_counted() {
    let now = Instant::now();
    let mut f = follower(now);
    // Of an older term: answered with the current term, which deposes the sender.
    f.handle_message(node(3), OrderingMsg::Commit { term: Term(0), commit: Seq(0) }, now);
    let told = OrderingMsg::NotLeader { term: Term(1), leader: Some(node(1)) };
    assert_eq!(drain(&mut f), vec![Action::Send { to: node(3), msg: told }]);
    // A second leader of the same term: dropped.
    f.handle_message(node(3), OrderingMsg::StartView { term: Term(1), commit: Seq(0) }, now);
    assert_eq!(drain(&mut f), vec![]);
    let expected = counted(|s| {
        s.stale_leader_msg = 1;
        s.not_from_leader = 1;
    });
    assert_eq!(f.stats(), expected);
    // At the leader of the term, any leader-to-member message is from a non-leader.
    let mut l = gathering_leader(now);
    l.handle_message(node(2), OrderingMsg::Commit { term: Term(1), commit: Seq(0) }, now);
    assert_eq!(drain(&mut l), vec![]);
    assert_eq!(l.stats(), counted(|s| s.not_from_leader = 1));
}

#[test]
fn a_nack_while_gathering_is_counted() {
    let now = Instant::now();
    let mut l = gathering_leader(now);
    l.handle_message(node(2), OrderingMsg::Nack { term: Term(1), from: Seq(1), to: Seq(1) }, now);
    assert_eq!(drain(&mut l), vec![]);
    assert_eq!(l.stats(), counted(|s| s.nack_while_gathering = 1));
}

#[test]
fn a_refused_catch_up_is_counted() {
    let now = Instant::now();
    let mut f = follower(now);
    let prev = LogPosition { term: Term(1), seq: Seq(1) };
    let nv =
        OrderingMsg::NewView { term: Term(1), from: Seq(2), prev, entries: vec![], commit: Seq(0) };
    f.handle_message(node(1), nv, now);
    let last = LogPosition { term: Term(0), seq: Seq(1) };
    let sync = OrderingMsg::LogState { term: Term(1), last, commit: Seq(0), suffix: vec![] };
    assert_eq!(drain(&mut f), vec![Action::Send { to: node(1), msg: sync }]);
    assert_eq!(f.stats(), counted(|s| s.catch_up_refused = 1));
}
