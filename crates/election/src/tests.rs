//! Unit tests: one input, the exact actions expected.
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use auction_proto::msg::peer::{Candidate, ElectionMsg};
use auction_proto::{LogPosition, NodeId, Seq, Term};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Action, Election, ElectionConfig, ElectionError, PersistentState, Status};

type Node = Election<ChaCha8Rng>;

const TIMEOUT: Duration = Duration::from_millis(300);
const HEARTBEAT: Duration = Duration::from_millis(20);
const LEADER_TIMEOUT: Duration = Duration::from_millis(120);

fn id(i: u8) -> NodeId {
    NodeId::from_bytes([i; 16])
}

fn cand(i: u8) -> Candidate {
    Candidate { last_log: LogPosition::default(), node: id(i) }
}

/// The bare ring election: no back-off and no pre-vote (the pre-vote tests use
/// [`pre_voting`]).
fn no_backoff() -> ElectionConfig {
    ElectionConfig {
        election_timeout: TIMEOUT,
        max_backoff: Duration::ZERO,
        pre_vote: false,
        ..ElectionConfig::default()
    }
}

fn node_with(me: u8, members: &[u8], persisted: PersistentState, config: ElectionConfig) -> Node {
    let members = members.iter().map(|&i| id(i));
    Election::new(id(me), members, persisted, ChaCha8Rng::seed_from_u64(u64::from(me)), config)
}

fn node(me: u8, members: &[u8]) -> Node {
    node_with(me, members, PersistentState::default(), no_backoff())
}

fn drain(n: &mut Node) -> Vec<Action> {
    std::iter::from_fn(|| n.poll_action()).collect()
}

fn persist(term: u64, accepted: Option<u8>) -> Action {
    Action::PersistTerm { term: Term(term), accepted: accepted.map(id) }
}

fn token(term: u64, c: Candidate, visited: &[u8]) -> ElectionMsg {
    ElectionMsg::Token {
        term: Term(term),
        candidate: c,
        visited: visited.iter().map(|&i| id(i)).collect(),
    }
}

fn elected(term: u64, leader: u8, participants: &[u8]) -> ElectionMsg {
    let participants = participants.iter().map(|&i| id(i)).collect();
    ElectionMsg::Elected { term: Term(term), leader: id(leader), participants }
}

fn send(to: u8, msg: ElectionMsg) -> Action {
    Action::Send { to: id(to), msg }
}

#[test]
fn ring_of_one_elects_itself_at_once() {
    let mut a = node(1, &[1]);
    let now = Instant::now();
    a.start(now);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(1, None),
            persist(1, Some(1)),
            Action::Elected { term: Term(1), leader: id(1), participants: vec![id(1)] },
        ]
    );
    assert_eq!(a.status(), Status::Leading);
    assert_eq!(a.poll_timeout(), Some(now + HEARTBEAT), "its first heartbeat");
    assert_eq!(a.persistent(), PersistentState { term: Term(1), accepted: Some(id(1)) });
}

#[test]
fn ring_of_two_needs_both() {
    let now = Instant::now();
    let (mut a, mut b) = (node(1, &[1, 2]), node(2, &[1, 2]));
    a.start(now);
    assert_eq!(drain(&mut a), vec![persist(1, None), send(2, token(1, cand(1), &[1]))]);
    b.handle_message(id(1), token(1, cand(1), &[1]), now).unwrap();
    // b's own candidate is larger: it swallows a's token and sends its own.
    assert_eq!(drain(&mut b), vec![persist(1, None), send(1, token(1, cand(2), &[2]))]);
    a.handle_message(id(2), token(1, cand(2), &[2]), now).unwrap();
    assert_eq!(drain(&mut a), vec![send(2, token(1, cand(2), &[2, 1]))]);
    b.handle_message(id(1), token(1, cand(2), &[2, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(1, Some(2)), send(1, elected(1, 2, &[2]))]);
    assert_eq!(b.status(), Status::Announcing);
    a.handle_message(id(2), elected(1, 2, &[2]), now).unwrap();
    assert_eq!(
        drain(&mut a),
        vec![
            persist(1, Some(2)),
            Action::FollowLeader { term: Term(1), leader: id(2) },
            send(2, elected(1, 2, &[2, 1])),
        ]
    );
    b.handle_message(id(1), elected(1, 2, &[2, 1]), now).unwrap();
    assert_eq!(
        drain(&mut b),
        vec![Action::Elected { term: Term(1), leader: id(2), participants: vec![id(2), id(1)] }]
    );
    assert!(b.is_leader());
    assert_eq!(a.leader(), Some(id(2)));
    // The leader's next heartbeat; the follower's leader timeout, in [T, 2T].
    assert_eq!(b.poll_timeout(), Some(now + HEARTBEAT));
    let patience = a.poll_timeout().map(|t| t - now);
    assert!(patience.is_some_and(|p| (LEADER_TIMEOUT..=2 * LEADER_TIMEOUT).contains(&p)));
}

#[test]
fn ring_of_two_with_the_other_down_never_wins() {
    let now = Instant::now();
    let mut a = node(1, &[1, 2]);
    a.handle_down(id(2));
    a.start(now);
    // No successor: its own token "returns" at once through a minority only.
    assert_eq!(drain(&mut a), vec![persist(1, None)]);
    assert_eq!(a.status(), Status::Electing);
    assert_eq!(a.poll_timeout(), Some(now + TIMEOUT));
}

#[test]
fn ring_of_three_small_initiator_is_replaced_by_the_largest() {
    let now = Instant::now();
    let (mut a, mut b, mut c) = (node(1, &[1, 2, 3]), node(2, &[1, 2, 3]), node(3, &[1, 2, 3]));
    a.start(now);
    assert_eq!(drain(&mut a), vec![persist(1, None), send(2, token(1, cand(1), &[1]))]);
    b.handle_message(id(1), token(1, cand(1), &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(1, None), send(3, token(1, cand(2), &[2]))]);
    c.handle_message(id(2), token(1, cand(2), &[2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![persist(1, None), send(1, token(1, cand(3), &[3]))]);
    a.handle_message(id(3), token(1, cand(3), &[3]), now).unwrap();
    assert_eq!(drain(&mut a), vec![send(2, token(1, cand(3), &[3, 1]))]);
    b.handle_message(id(1), token(1, cand(3), &[3, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, token(1, cand(3), &[3, 1, 2]))]);
    c.handle_message(id(2), token(1, cand(3), &[3, 1, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![persist(1, Some(3)), send(1, elected(1, 3, &[3]))]);
    a.handle_message(id(3), elected(1, 3, &[3]), now).unwrap();
    let follow = Action::FollowLeader { term: Term(1), leader: id(3) };
    assert_eq!(drain(&mut a), vec![persist(1, Some(3)), follow, send(2, elected(1, 3, &[3, 1]))]);
    b.handle_message(id(1), elected(1, 3, &[3, 1]), now).unwrap();
    let follow = Action::FollowLeader { term: Term(1), leader: id(3) };
    assert_eq!(
        drain(&mut b),
        vec![persist(1, Some(3)), follow, send(3, elected(1, 3, &[3, 1, 2]))]
    );
    c.handle_message(id(2), elected(1, 3, &[3, 1, 2]), now).unwrap();
    let participants = vec![id(3), id(1), id(2)];
    assert_eq!(drain(&mut c), vec![Action::Elected { term: Term(1), leader: id(3), participants }]);
}

#[test]
fn more_up_to_date_log_beats_larger_id() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    let ahead = LogPosition { term: Term(1), seq: Seq(5) };
    let a_cand = Candidate { last_log: ahead, node: id(1) };
    b.handle_message(id(1), token(1, a_cand, &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(1, None), send(3, token(1, a_cand, &[1, 2]))]);
}

#[test]
fn smaller_and_duplicate_tokens_are_swallowed() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.start(now);
    drain(&mut b);
    b.handle_message(id(1), token(1, cand(1), &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    b.handle_message(id(1), token(1, cand(3), &[3, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, token(1, cand(3), &[3, 1, 2]))]);
    b.handle_message(id(1), token(1, cand(3), &[3, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![], "a duplicate is forwarded once");
}

/// A stale message is refused, and answered with a token of the newer term while the node
/// knows no leader (sim seed 859 with 8 s of faults: two groups at terms 20 and 43 never met,
/// the lower group's tokens dying at the first node of the higher one).
#[test]
fn stale_terms_are_refused_and_answered_with_the_newer_term() {
    let now = Instant::now();
    let persisted = PersistentState { term: Term(4), accepted: None };
    let mut b = node_with(2, &[1, 2, 3], persisted, no_backoff());
    let err = b.handle_message(id(1), token(3, cand(1), &[1]), now);
    assert_eq!(err, Err(ElectionError::StaleTerm { got: Term(3), current: Term(4) }));
    assert_eq!(drain(&mut b), vec![send(1, token(4, cand(2), &[2]))]);
    assert_eq!((b.term(), b.status()), (Term(4), Status::Electing));
    // The sender adopts the term and runs its own (larger) candidate in it.
    let mut a = node(1, &[1, 2, 3]);
    a.handle_last_log(LogPosition { term: Term(1), seq: Seq(9) });
    a.handle_message(id(2), token(4, cand(2), &[2]), now).unwrap();
    let big = Candidate { last_log: LogPosition { term: Term(1), seq: Seq(9) }, node: id(1) };
    assert_eq!(drain(&mut a), vec![persist(4, None), send(2, token(4, big, &[1]))]);
    // A follower does not answer: its leader's traffic tells the sender.
    let mut f = node(2, &[1, 2, 3]);
    f.handle_leader_heard(id(3), Term(6), now);
    drain(&mut f);
    let err = f.handle_message(id(1), token(3, cand(1), &[1]), now);
    assert_eq!(err, Err(ElectionError::StaleTerm { got: Term(3), current: Term(6) }));
    assert_eq!(drain(&mut f), vec![]);
}

#[test]
fn non_members_and_oversized_paths_are_rejected() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.handle_leader_heard(id(1), Term(1), now);
    drain(&mut b);
    let err = b.handle_message(id(9), token(1, cand(9), &[9]), now);
    assert_eq!(err, Err(ElectionError::NotMember { node: id(9) }));
    let long = [1; 7];
    let err = b.handle_message(id(1), token(1, cand(1), &long), now);
    assert_eq!(err, Err(ElectionError::OversizedPath { len: 7, limit: 6 }));
    assert_eq!(drain(&mut b), vec![]);
    let mut outsider = node(9, &[1, 2, 3]);
    outsider.start(now);
    assert_eq!(drain(&mut outsider), vec![], "a non-member never starts an election");
}

/// Sim seed 19 with 10 s of faults: node 4's log already holds `RemoveMember(3)`, the others'
/// do not, so their ring still runs 2 -> 3 -> 4. What 3 passes on (a member's token of a newer
/// term, an `Elected` of a member) must reach 4, or the nodes with the largest log never
/// learn the term and no election ever completes.
#[test]
fn messages_relayed_by_a_removed_member_are_taken() {
    let now = Instant::now();
    let mut d = node(4, &[1, 2, 4, 5]);
    d.handle_message(id(3), token(7, cand(2), &[2, 3]), now).unwrap();
    assert_eq!(d.term(), Term(7), "the newer term is adopted");
    assert_eq!(drain(&mut d), vec![persist(7, None), send(5, token(7, cand(4), &[4]))]);
    let mut e = node(5, &[1, 2, 4, 5]);
    e.handle_message(id(3), elected(8, 2, &[1, 2, 3]), now).unwrap();
    assert_eq!(e.term(), Term(8));
    let follow = Action::FollowLeader { term: Term(8), leader: id(2) };
    assert_eq!(drain(&mut e), vec![persist(8, None), follow, send(1, elected(8, 2, &[1, 2, 3]))]);
}

/// Sim seeds 23 and 107 with 10 s of faults: a node without a leader takes part in the
/// candidacy of a node outside its configuration (23: node 1's log holds an uncommitted
/// `RemoveMember(3)` while 3, at a higher term, drops every older token; 107: a node behind
/// lacks the re-add of the node with the largest log). A node that follows a leader refuses it,
/// so a node removed without knowing it cannot depose the leader.
#[test]
fn an_outsiders_candidacy_is_taken_only_without_a_leader() {
    let now = Instant::now();
    let mut a = node(1, &[1, 2]);
    a.handle_last_log(LogPosition { term: Term(1), seq: Seq(246) });
    a.start(now);
    drain(&mut a);
    let outsider = Candidate { last_log: LogPosition { term: Term(1), seq: Seq(99) }, node: id(3) };
    a.handle_message(id(3), token(36, outsider, &[3]), now).unwrap();
    assert_eq!(a.term(), Term(36));
    let mine = Candidate { last_log: LogPosition { term: Term(1), seq: Seq(246) }, node: id(1) };
    assert_eq!(drain(&mut a), vec![persist(36, None), send(2, token(36, mine, &[1]))]);
    // A larger outsider is passed on, around the union of the rings: 3 is on someone's ring
    // (it passed the message on), and after 2 in `NodeId` order.
    let mut b = node(2, &[1, 2]);
    b.handle_message(id(3), token(5, cand(3), &[3]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(5, None), send(3, token(5, cand(3), &[3, 2]))]);
    // Without 3 on the path in this term, the ring is 2's own.
    let mut b = node(2, &[1, 2]);
    b.handle_message(id(1), token(5, cand(3), &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(5, None), send(1, token(5, cand(3), &[1, 2]))]);
    // A follower refuses it, whatever its term.
    let mut f = node(2, &[1, 2, 3]);
    f.handle_leader_heard(id(1), Term(8), now);
    drain(&mut f);
    let err = f.handle_message(id(9), token(9, cand(9), &[9]), now);
    assert_eq!(err, Err(ElectionError::NotMember { node: id(9) }));
    assert_eq!((f.term(), f.leader()), (Term(8), Some(id(1))));
    assert_eq!(drain(&mut f), vec![]);
}

/// Sim seed 163 with 8 s of faults: node 3 was removed and re-added, but its own log still
/// ends with the removal, while the others route their ring 2 -> 3 -> 1 through it. It must
/// relay (adding itself to the path) and may accept, or no leader is ever elected; it never
/// puts itself forward, even with a larger candidate than the one it relays, and never starts
/// an election of its own. It accepts only a leader whose log is at least as up to date as its
/// own (Raft's vote rule; without it, two leaders could win a term while logs hold different
/// uncommitted configurations).
#[test]
fn a_node_outside_its_own_configuration_relays_and_accepts() {
    let now = Instant::now();
    let at = |seq| LogPosition { term: Term(5), seq: Seq(seq) };
    let big = Candidate { last_log: at(900), node: id(2) };
    let mut c = node(3, &[1, 2]);
    c.handle_last_log(at(900));
    c.handle_message(id(2), token(7, big, &[2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![persist(7, None), send(1, token(7, big, &[2, 3]))]);
    // A smaller candidate (and a duplicate) of the term is swallowed, as in LCR.
    c.handle_message(id(2), token(7, cand(1), &[1, 2]), now).unwrap();
    c.handle_message(id(2), token(7, big, &[2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![]);
    // It accepts the leader whose token it relayed, and follows it.
    c.handle_message(id(2), elected(7, 2, &[2]), now).unwrap();
    let follow = Action::FollowLeader { term: Term(7), leader: id(2) };
    assert_eq!(drain(&mut c), vec![persist(7, Some(2)), follow, send(1, elected(7, 2, &[2, 3]))]);
    assert_eq!(c.leader(), Some(id(2)));
    // A candidate behind its log is relayed but not accepted: followed, not voted for.
    let mut r = node(3, &[1, 2]);
    r.handle_last_log(at(900));
    let behind = Candidate { last_log: at(899), node: id(2) };
    r.handle_message(id(2), token(7, behind, &[2]), now).unwrap();
    assert_eq!(drain(&mut r), vec![persist(7, None), send(1, token(7, behind, &[2, 3]))]);
    r.handle_message(id(2), elected(7, 2, &[2]), now).unwrap();
    let follow = Action::FollowLeader { term: Term(7), leader: id(2) };
    assert_eq!(drain(&mut r), vec![follow, send(1, elected(7, 2, &[2]))]);
    assert_eq!(r.accepted(), None);
    // Its deadline passing, or a lost leader, starts nothing: it has no candidacy.
    let mut d = node(3, &[1, 2]);
    d.handle_message(id(2), token(4, cand(2), &[2]), now).unwrap();
    drain(&mut d);
    d.handle_timeout(now + TIMEOUT * 2);
    d.handle_leader_lost(now + TIMEOUT * 2);
    assert_eq!(drain(&mut d), vec![]);
    assert_eq!((d.term(), d.status()), (Term(4), Status::Idle));
}

/// Sim seed 403 with 8 s of faults: a leader of term 1 heard of term 23 only through the
/// ordering layer (a peer without a leader answered `NotLeader` in term 23). It must adopt the
/// term before electing, or its tokens of terms 2, 3, ... are refused by every node at 23.
#[test]
fn a_term_seen_elsewhere_is_adopted_before_electing() {
    let now = Instant::now();
    let mut a = node(1, &[1, 2, 3]);
    a.start(now);
    a.handle_message(id(3), token(1, cand(1), &[1, 2, 3]), now).unwrap();
    a.handle_message(id(3), elected(1, 1, &[1, 2, 3]), now).unwrap();
    assert!(a.is_leader());
    drain(&mut a);
    a.handle_term(Term(23));
    assert_eq!(drain(&mut a), vec![persist(23, None), Action::StepDown { term: Term(23) }]);
    assert_eq!((a.term(), a.status()), (Term(23), Status::Idle));
    a.handle_leader_lost(now);
    assert_eq!(drain(&mut a), vec![persist(24, None), send(2, token(24, cand(1), &[1]))]);
    // An older or equal term changes nothing.
    a.handle_term(Term(23));
    a.handle_term(Term(24));
    assert_eq!(drain(&mut a), vec![]);
}

/// Sim seed 937 with 10 s of faults: node 3, behind, lacked node 2's re-add but followed it
/// (taken while it knew no leader). When 2 ran newer elections, 3 refused its tokens as an
/// outsider's and stayed in the old term for good. The followed leader is never refused.
#[test]
fn the_followed_leader_is_taken_even_from_outside_the_configuration() {
    let now = Instant::now();
    let mut c = node(3, &[1, 3]);
    c.handle_message(id(1), elected(28, 2, &[2, 1]), now).unwrap();
    assert_eq!(c.leader(), Some(id(2)));
    drain(&mut c);
    c.handle_message(id(2), token(45, cand(2), &[2]), now).unwrap();
    assert_eq!(c.term(), Term(45));
    let step_down = Action::StepDown { term: Term(45) };
    assert_eq!(
        drain(&mut c),
        vec![persist(45, None), step_down, send(1, token(45, cand(3), &[3]))]
    );
    // Another outsider is still refused by a follower.
    let mut f = node(3, &[1, 3]);
    f.handle_message(id(1), elected(28, 2, &[2, 1]), now).unwrap();
    drain(&mut f);
    let err = f.handle_message(id(9), token(45, cand(9), &[9]), now);
    assert_eq!(err, Err(ElectionError::NotMember { node: id(9) }));
}

#[test]
fn higher_term_makes_a_follower_step_down_and_join() {
    let now = Instant::now();
    let mut a = node(1, &[1, 2, 3]);
    a.handle_message(id(3), elected(1, 3, &[3]), now).unwrap();
    // Never forwarded 3's token in term 1: follows, but does not vote.
    let follow = Action::FollowLeader { term: Term(1), leader: id(3) };
    assert_eq!(drain(&mut a), vec![persist(1, None), follow, send(2, elected(1, 3, &[3]))]);
    a.handle_message(id(3), token(2, cand(2), &[2, 3]), now).unwrap();
    assert_eq!(
        drain(&mut a),
        vec![
            persist(2, None),
            Action::StepDown { term: Term(2) },
            send(2, token(2, cand(2), &[2, 3, 1])),
        ]
    );
    assert_eq!(a.status(), Status::Electing);
}

#[test]
fn a_leader_steps_down_on_a_higher_term() {
    let now = Instant::now();
    let mut a = node(1, &[1]);
    a.start(now);
    drain(&mut a);
    a.handle_members(vec![id(1), id(2)]);
    a.handle_message(id(2), token(5, cand(2), &[2]), now).unwrap();
    assert_eq!(
        drain(&mut a),
        vec![
            persist(5, None),
            Action::StepDown { term: Term(5) },
            send(2, token(5, cand(2), &[2, 1]))
        ]
    );
    assert!(!a.is_leader());
}

#[test]
fn at_most_one_accepted_leader_per_term() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3, 4, 5]);
    b.handle_message(id(1), token(1, cand(4), &[4, 5, 1]), now).unwrap();
    b.handle_message(id(1), elected(1, 4, &[4, 5, 1]), now).unwrap();
    drain(&mut b);
    assert_eq!(b.accepted(), Some(id(4)));
    // Another leader in the same term: never accepted; the message is not even forwarded.
    b.handle_message(id(1), elected(1, 5, &[5, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    // And tokens of a decided term are swallowed.
    b.handle_message(id(1), token(1, cand(5), &[5, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    assert_eq!(b.accepted(), Some(id(4)));
}

#[test]
fn restored_vote_locks_the_term() {
    let now = Instant::now();
    let persisted = PersistentState { term: Term(7), accepted: Some(id(1)) };
    let mut b = node_with(2, &[1, 2, 3], persisted, no_backoff());
    b.handle_message(id(1), token(7, cand(3), &[3, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![], "no token forwarded in a decided term");
    b.handle_message(id(1), elected(7, 3, &[3, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, elected(7, 3, &[3, 1]))], "passed on, not accepted");
    assert_eq!(b.persistent(), persisted);
}

#[test]
fn restored_vote_is_kept_and_the_next_term_is_higher() {
    let now = Instant::now();
    let persisted = PersistentState { term: Term(7), accepted: Some(id(3)) };
    let mut b = node_with(2, &[1, 2, 3], persisted, no_backoff());
    b.handle_message(id(1), elected(7, 1, &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, elected(7, 1, &[1]))], "no second vote, no follow");
    let mut c = node_with(3, &[1, 2, 3], persisted, no_backoff());
    c.start(now);
    assert_eq!(drain(&mut c), vec![persist(8, None), send(1, token(8, cand(3), &[3]))]);
}

#[test]
fn own_elected_without_majority_does_not_lead() {
    let now = Instant::now();
    let mut c = node(3, &[1, 2, 3, 4, 5]);
    c.handle_message(id(2), token(1, cand(5), &[5, 1, 2]), now).unwrap();
    drain(&mut c);
    let mut e = node(5, &[1, 2, 3, 4, 5]);
    e.start(now);
    e.handle_message(id(4), token(1, cand(5), &[5, 1, 2, 3, 4]), now).unwrap();
    drain(&mut e);
    // Back without a majority: on to the first member of its ring the announcement has not
    // reached (another member's older ring may have sent it straight back).
    e.handle_message(id(4), elected(1, 5, &[5, 4]), now).unwrap();
    assert_eq!(drain(&mut e), vec![send(1, elected(1, 5, &[5, 4]))]);
    assert_eq!(e.status(), Status::Announcing);
    e.handle_message(id(4), elected(1, 5, &[5, 4, 1]), now).unwrap();
    let participants = vec![id(5), id(4), id(1)];
    assert_eq!(drain(&mut e), vec![Action::Elected { term: Term(1), leader: id(5), participants }]);
}

#[test]
fn own_token_without_majority_goes_on_to_a_member_it_has_not_passed() {
    // Sim seeds 1947, 2526: a member whose ring lacked an `AddMember` sent the token straight
    // back; waiting for the deadline retried the same lap with a higher term forever.
    let now = Instant::now();
    let mut c = node(3, &[1, 2, 3, 4, 5]);
    c.start(now);
    drain(&mut c);
    c.handle_message(id(2), token(1, cand(3), &[3, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![send(4, token(1, cand(3), &[3, 2]))]);
    assert_eq!(c.status(), Status::Electing);
    // With every member down or on the path, it waits for the deadline.
    c.handle_down(id(4));
    c.handle_down(id(5));
    c.handle_down(id(1));
    drain(&mut c); // ring repair resends its last message
    c.handle_message(id(2), token(1, cand(3), &[3, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn timeout_retries_with_a_higher_term_and_tolerates_early_and_repeated_calls() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.start(now);
    drain(&mut b);
    b.handle_timeout(now + TIMEOUT - Duration::from_millis(1));
    assert_eq!(drain(&mut b), vec![], "early");
    let later = now + TIMEOUT;
    b.handle_timeout(later);
    assert_eq!(drain(&mut b), vec![persist(2, None), send(3, token(2, cand(2), &[2]))]);
    assert_eq!(b.poll_timeout(), Some(later + TIMEOUT));
    b.handle_timeout(later);
    assert_eq!(drain(&mut b), vec![], "repeated");
}

#[test]
fn backoff_is_random_and_bounded() {
    let now = Instant::now();
    let config = ElectionConfig { election_timeout: TIMEOUT, max_backoff: TIMEOUT, ..no_backoff() };
    let deadlines: Vec<_> = (1..=20)
        .map(|seed| {
            let rng = ChaCha8Rng::seed_from_u64(seed);
            let mut n = Election::new(
                id(1),
                [id(1), id(2)],
                PersistentState::default(),
                rng,
                config.clone(),
            );
            n.start(now);
            n.poll_timeout().unwrap() - now
        })
        .collect();
    assert!(deadlines.iter().all(|d| *d >= TIMEOUT && *d <= 2 * TIMEOUT));
    assert!(deadlines.windows(2).any(|w| w[0] != w[1]), "{deadlines:?}");
}

#[test]
fn ring_repair_skips_down_successors_and_resends() {
    let now = Instant::now();
    let mut a = node(1, &[1, 2, 3, 4]);
    a.handle_down(id(2));
    a.start(now);
    assert_eq!(drain(&mut a), vec![persist(1, None), send(3, token(1, cand(1), &[1]))]);
    a.handle_down(id(3));
    assert_eq!(drain(&mut a), vec![send(4, token(1, cand(1), &[1]))], "successor died");
    a.handle_down(id(2));
    a.handle_alive(id(3));
    assert_eq!(drain(&mut a), vec![]);
    a.handle_message(id(4), token(1, cand(4), &[4]), now).unwrap();
    assert_eq!(drain(&mut a), vec![send(3, token(1, cand(4), &[4, 1]))]);
}

#[test]
fn leader_lost_starts_once_and_a_leader_can_abdicate() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.handle_leader_lost(now);
    assert_eq!(drain(&mut b), vec![persist(1, None), send(3, token(1, cand(2), &[2]))]);
    b.handle_leader_lost(now);
    b.start(now);
    assert_eq!(drain(&mut b), vec![], "an election is already running");
    let mut a = node(1, &[1]);
    a.start(now);
    drain(&mut a);
    a.handle_leader_lost(now);
    let actions = drain(&mut a);
    assert_eq!(actions[..2], [persist(2, None), Action::StepDown { term: Term(2) }]);
    assert!(a.is_leader(), "re-elected in term 2");
}

#[test]
fn candidate_is_fixed_per_term() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    let pos = LogPosition { term: Term(1), seq: Seq(3) };
    b.handle_last_log(pos);
    b.start(now);
    assert_eq!(b.candidate(), Candidate { last_log: pos, node: id(2) });
    b.handle_last_log(LogPosition::default());
    assert_eq!(b.candidate().last_log, pos);
}

#[test]
fn restored_node_takes_its_log_position_before_joining_the_term() {
    let now = Instant::now();
    let persisted = PersistentState { term: Term(3), accepted: None };
    let mut b = node_with(2, &[1, 2, 3], persisted, no_backoff());
    let pos = LogPosition { term: Term(2), seq: Seq(9) };
    b.handle_last_log(pos);
    let mine = Candidate { last_log: pos, node: id(2) };
    // a's candidate would beat b's default position, but not its real one.
    let a = Candidate { last_log: LogPosition { term: Term(2), seq: Seq(1) }, node: id(1) };
    b.handle_message(id(1), token(3, a, &[1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, token(3, mine, &[2]))]);
}

#[test]
fn duplicate_elected_and_own_token_after_winning_are_ignored() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2]);
    b.start(now);
    drain(&mut b);
    b.handle_message(id(1), token(1, cand(2), &[2, 1]), now).unwrap();
    drain(&mut b);
    b.handle_message(id(1), token(1, cand(2), &[2, 1]), now).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    b.handle_message(id(1), elected(1, 2, &[2, 1]), now).unwrap();
    b.handle_message(id(1), elected(1, 2, &[2, 1]), now).unwrap();
    assert_eq!(drain(&mut b).len(), 1, "led once");
}

#[test]
fn leader_heard_catches_up_a_skipped_node() {
    let now = Instant::now();
    let mut a = node(1, &[1]);
    a.start(now);
    drain(&mut a);
    a.handle_members(vec![id(1), id(2), id(3)]);
    a.handle_leader_heard(id(3), Term(1), now);
    assert_eq!(drain(&mut a), vec![], "same term, it leads itself");
    a.handle_leader_heard(id(3), Term(4), now);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(4, None),
            Action::StepDown { term: Term(4) },
            Action::FollowLeader { term: Term(4), leader: id(3) },
        ]
    );
    a.handle_leader_heard(id(2), Term(3), now);
    a.handle_leader_heard(id(9), Term(9), now);
    assert_eq!(drain(&mut a), vec![], "stale terms and non-members are ignored");
    assert_eq!(a.leader(), Some(id(3)));
}

/// Regression (found by the whole-cluster simulation, auction-sim seed 11): a node removed from
/// the configuration while electing kept its past deadline, so `poll_timeout` stayed in the
/// past and the driver spun.
#[test]
fn removed_while_electing_stops_its_round() {
    let mut n = node(1, &[1, 2, 3]);
    let t0 = Instant::now();
    n.start(t0);
    drain(&mut n);
    assert_eq!(n.status(), Status::Electing);
    n.handle_members(vec![id(2), id(3)]);
    let late = t0 + Duration::from_secs(10);
    n.handle_timeout(late);
    assert_eq!(n.status(), Status::Idle);
    assert_eq!(n.poll_timeout(), None);
}

#[test]
fn a_leader_that_steps_down_runs_with_a_demoted_candidate() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.handle_last_log(LogPosition { term: Term(1), seq: Seq(9) });
    b.step_down(now);
    assert_eq!(drain(&mut b), vec![], "only a leader steps down");

    let mut a = node(1, &[1]);
    a.handle_last_log(LogPosition { term: Term(1), seq: Seq(9) });
    a.start(now);
    drain(&mut a);
    a.step_down(now);
    let actions = drain(&mut a);
    assert_eq!(actions[..2], [persist(2, None), Action::StepDown { term: Term(2) }]);
    assert_eq!(a.candidate(), Candidate { last_log: LogPosition::default(), node: id(1) });
    assert!(a.is_leader(), "alone in its ring, it is elected again");
    // Later terms use the real log position again.
    a.handle_leader_lost(now);
    drain(&mut a);
    assert_eq!(a.candidate().last_log, LogPosition { term: Term(1), seq: Seq(9) });

    // In a larger ring it stays demoted across failed terms until it follows another leader.
    let pos = LogPosition { term: Term(1), seq: Seq(9) };
    let mut c = node(3, &[1, 2, 3]);
    c.handle_last_log(pos);
    c.start(now);
    c.handle_message(id(2), token(1, c.candidate(), &[3, 1, 2]), now).unwrap();
    c.handle_message(id(2), elected(1, 3, &[3, 1, 2]), now).unwrap();
    assert!(c.is_leader());
    c.step_down(now);
    let demoted = Candidate { last_log: LogPosition::default(), node: id(3) };
    let term = c.term();
    for k in 1..=2 {
        c.handle_timeout(now + TIMEOUT * (10 * k));
        assert_eq!(c.candidate(), demoted, "term {:?}", c.term());
    }
    assert_eq!(c.term(), Term(term.0 + 2), "two more failed terms");
    c.handle_message(id(2), elected(c.term().0, 1, &[1, 2]), now).unwrap();
    assert_eq!(c.leader(), Some(id(1)));
    c.handle_leader_lost(now);
    assert_eq!(c.candidate().last_log, pos, "following another leader ends the abstention");
    drain(&mut c);
}

#[test]
fn a_demoted_candidate_forwards_any_other_members_token() {
    let now = Instant::now();
    // Node 3 has the best log and the largest id but abstains: node 1's token outranks it.
    let pos = LogPosition { term: Term(1), seq: Seq(9) };
    let mut c = node(3, &[1, 2, 3]);
    c.handle_last_log(pos);
    c.abstain_until = Some(Term(1));
    c.start(now);
    let demoted = Candidate { last_log: LogPosition::default(), node: id(3) };
    assert_eq!(drain(&mut c), vec![persist(1, None), send(1, token(1, demoted, &[3]))]);
    let lower = Candidate { last_log: LogPosition { term: Term(1), seq: Seq(2) }, node: id(1) };
    c.handle_message(id(2), token(1, lower, &[1, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![send(1, token(1, lower, &[1, 2, 3]))]);
}

// ---- heartbeats, leader timeout, pre-vote ----------------------------------------------

const MS: Duration = Duration::from_millis(1);

/// The default liveness settings (heartbeat 20 ms, leader timeout 120 ms, pre-vote on) and
/// the legacy round timeout without back-off.
fn pre_voting() -> ElectionConfig {
    ElectionConfig {
        election_timeout: TIMEOUT,
        max_backoff: Duration::ZERO,
        ..ElectionConfig::default()
    }
}

fn pre_vote(term: u64, last_log: LogPosition) -> ElectionMsg {
    ElectionMsg::PreVote { term: Term(term), last_log }
}

fn reply(term: u64, granted: bool, current: u64) -> ElectionMsg {
    ElectionMsg::PreVoteReply { term: Term(term), granted, current: Term(current) }
}

fn heartbeat(term: u64) -> ElectionMsg {
    ElectionMsg::Heartbeat { term: Term(term) }
}

/// `me` in `members` at `term`, following `leader`, last heard at `now`.
fn follower(me: u8, members: &[u8], leader: u8, term: u64, now: Instant) -> Node {
    let persisted = PersistentState { term: Term(term), accepted: None };
    let mut f = node_with(me, members, persisted, pre_voting());
    f.handle_message(id(leader), heartbeat(term), now).unwrap();
    assert_eq!(drain(&mut f), vec![Action::FollowLeader { term: Term(term), leader: id(leader) }]);
    f
}

#[test]
fn a_pre_vote_is_refused_while_the_leader_is_heard() {
    let now = Instant::now();
    let mut b = follower(2, &[1, 2, 3], 1, 5, now);
    let ask = pre_vote(6, LogPosition::default());
    b.handle_message(id(3), ask.clone(), now + LEADER_TIMEOUT - MS).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, reply(6, false, 5))]);
    // A heartbeat renews the lease: refused again a leader timeout later.
    b.handle_message(id(1), heartbeat(5), now + LEADER_TIMEOUT - MS).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    b.handle_message(id(3), ask, now + 2 * LEADER_TIMEOUT - 2 * MS).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, reply(6, false, 5))]);
    assert_eq!((b.term(), b.leader(), b.persistent().term), (Term(5), Some(id(1)), Term(5)));
    // A leader refuses too, and so does anyone asked for a term that is not newer.
    let mut a = node_with(1, &[1], PersistentState::default(), pre_voting());
    a.start(now);
    drain(&mut a);
    a.handle_members(vec![id(1), id(2), id(3)]);
    a.handle_message(id(3), pre_vote(2, LogPosition::default()), now).unwrap();
    assert_eq!(drain(&mut a), vec![send(3, reply(2, false, 1))]);
    let mut c =
        node_with(3, &[1, 2, 3], PersistentState { term: Term(6), accepted: None }, pre_voting());
    c.handle_message(id(2), pre_vote(6, LogPosition::default()), now).unwrap();
    assert_eq!(drain(&mut c), vec![send(2, reply(6, false, 6))]);
}

#[test]
fn a_pre_vote_is_granted_after_the_leader_timeout_and_changes_nothing() {
    let now = Instant::now();
    let mut b = follower(2, &[1, 2, 3], 1, 5, now);
    let pos = LogPosition { term: Term(5), seq: Seq(7) };
    b.handle_last_log(pos);
    let later = now + LEADER_TIMEOUT;
    b.handle_message(id(3), pre_vote(6, pos), later).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, reply(6, true, 5))], "no PersistTerm: no term change");
    assert_eq!((b.term(), b.persistent().term), (Term(5), Term(5)));
    // Not for a candidate whose log is behind.
    let behind = LogPosition { term: Term(5), seq: Seq(6) };
    b.handle_message(id(3), pre_vote(6, behind), later).unwrap();
    assert_eq!(drain(&mut b), vec![send(3, reply(6, false, 5))]);
    // The followed leader giving up is granted at once: it says it no longer leads.
    let mut f = follower(2, &[1, 2, 3], 1, 5, now);
    f.handle_message(id(1), pre_vote(6, LogPosition::default()), now).unwrap();
    assert_eq!(drain(&mut f), vec![send(1, reply(6, true, 5))]);
}

/// The follower's leader timeout (drawn in `[T, 2T]`) passes: it asks the others, keeps its
/// term, and skips the silent leader in the ring; a majority of grants starts the election.
#[test]
fn a_silent_leader_starts_a_pre_vote_then_an_election_around_it() {
    let now = Instant::now();
    let mut b = follower(2, &[1, 2, 3], 3, 5, now);
    let deadline = b.poll_timeout().unwrap();
    assert!((now + LEADER_TIMEOUT..=now + 2 * LEADER_TIMEOUT).contains(&deadline));
    b.handle_timeout(deadline - MS);
    assert_eq!(drain(&mut b), vec![], "early");
    b.handle_timeout(deadline);
    let ask = pre_vote(6, LogPosition::default());
    assert_eq!(drain(&mut b), vec![send(1, ask.clone()), send(3, ask)]);
    assert_eq!((b.term(), b.status(), b.is_pre_voting()), (Term(5), Status::Idle, true));
    b.handle_message(id(1), reply(6, true, 5), deadline + MS).unwrap();
    // Its successor 3 is the silent leader: the token goes to 1.
    assert_eq!(drain(&mut b), vec![persist(6, None), send(1, token(6, cand(2), &[2]))]);
    assert!(!b.is_pre_voting());
}

#[test]
fn a_heartbeat_during_the_pre_vote_ends_it() {
    let now = Instant::now();
    let mut b = follower(2, &[1, 2, 3], 3, 5, now);
    let deadline = b.poll_timeout().unwrap();
    b.handle_timeout(deadline);
    drain(&mut b);
    b.handle_message(id(3), heartbeat(5), deadline + MS).unwrap();
    assert_eq!(drain(&mut b), vec![Action::FollowLeader { term: Term(5), leader: id(3) }]);
    assert!(!b.is_pre_voting());
    // Late grants start nothing.
    b.handle_message(id(1), reply(6, true, 5), deadline + 2 * MS).unwrap();
    assert_eq!(drain(&mut b), vec![]);
    assert_eq!(b.leader(), Some(id(3)));
}

/// The leader's heartbeats, every interval, keep a follower from ever pre-voting; when they
/// stop, it pre-votes within `2T`.
#[test]
fn heartbeats_keep_a_follower_from_pre_voting() {
    let t0 = Instant::now();
    let mut a = node_with(1, &[1], PersistentState::default(), pre_voting());
    a.start(t0);
    drain(&mut a);
    a.handle_members(vec![id(1), id(2), id(3)]);
    let mut b = follower(2, &[1, 2, 3], 1, 1, t0);
    let end = t0 + Duration::from_secs(5);
    let mut beats = 0;
    loop {
        let (ta, tb) = (a.poll_timeout().unwrap(), b.poll_timeout().unwrap());
        let now = ta.min(tb);
        if now > end {
            break;
        }
        a.handle_timeout(now);
        for action in drain(&mut a) {
            assert!(
                matches!(
                    &action,
                    Action::Send { msg: ElectionMsg::Heartbeat { term: Term(1) }, .. }
                ),
                "{action:?}"
            );
            if let Action::Send { to, msg } = action {
                if to == id(2) {
                    beats += 1;
                    b.handle_message(id(1), msg, now).unwrap();
                }
            }
        }
        b.handle_timeout(now);
        assert_eq!(drain(&mut b), vec![], "at {:?}", now - t0);
    }
    assert_eq!(beats, 250, "one every 20 ms for 5 s");
    assert_eq!((b.status(), b.term()), (Status::Following(id(1)), Term(1)));
    // The leader goes silent.
    let deadline = b.poll_timeout().unwrap();
    assert!(deadline <= end + 2 * LEADER_TIMEOUT);
    b.handle_timeout(deadline);
    let ask = pre_vote(2, LogPosition::default());
    assert_eq!(drain(&mut b), vec![send(1, ask.clone()), send(3, ask)]);
}

#[test]
fn a_leader_sends_heartbeats_to_every_other_member() {
    let now = Instant::now();
    let mut a = node_with(1, &[1], PersistentState::default(), pre_voting());
    a.start(now);
    drain(&mut a);
    a.handle_members(vec![id(1), id(2), id(3)]);
    assert_eq!(a.poll_timeout(), Some(now + HEARTBEAT));
    a.handle_timeout(now + HEARTBEAT - MS);
    assert_eq!(drain(&mut a), vec![], "early");
    a.handle_timeout(now + HEARTBEAT);
    assert_eq!(drain(&mut a), vec![send(2, heartbeat(1)), send(3, heartbeat(1))]);
    assert_eq!(a.poll_timeout(), Some(now + 2 * HEARTBEAT));
    a.handle_timeout(now + HEARTBEAT);
    assert_eq!(drain(&mut a), vec![], "repeated");
}

/// A node cut off from everyone drives its timers for a minute: it only ever asks, with a
/// growing back-off capped at `max_pre_vote_backoff`; its term never moves (without the
/// pre-vote it climbs by one per round: the issue measured 1 -> 12 in 10 s).
#[test]
fn a_partitioned_node_never_raises_its_term() {
    fn drive(config: ElectionConfig) -> (Node, Vec<Duration>, Vec<Action>) {
        let t0 = Instant::now();
        let persisted = PersistentState { term: Term(1), accepted: None };
        let mut c = node_with(3, &[1, 2, 3], persisted, config);
        c.handle_message(id(1), heartbeat(1), t0).unwrap();
        drain(&mut c);
        let mut rounds = Vec::new();
        let mut actions = Vec::new();
        while let Some(at) = c.poll_timeout().filter(|t| *t <= t0 + Duration::from_secs(60)) {
            c.handle_timeout(at);
            let out = drain(&mut c);
            if out
                .iter()
                .any(|a| matches!(a, Action::Send { msg: ElectionMsg::PreVote { .. }, .. }))
            {
                rounds.push(at - t0);
            }
            actions.extend(out);
        }
        (c, rounds, actions)
    }
    let (c, rounds, actions) = drive(pre_voting());
    assert_eq!(c.term(), Term(1));
    let ask = pre_vote(2, LogPosition::default());
    assert!(
        actions.iter().all(|a| *a == send(1, ask.clone()) || *a == send(2, ask.clone())),
        "{actions:?}"
    );
    assert!(rounds.len() >= 30, "it keeps asking: {} rounds", rounds.len());
    let gaps: Vec<Duration> = rounds.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g <= Duration::from_secs(2)), "{gaps:?}");
    assert!(gaps.last() > gaps.first(), "the back-off grows: {gaps:?}");
    // The same node without the pre-vote.
    let (bare, _, _) = drive(ElectionConfig { pre_vote: false, ..pre_voting() });
    assert!(bare.term() > Term(100), "{:?}", bare.term());
}

/// A newer term in a refusal is adopted (catching up, not raising) and the pre-vote goes on
/// for the term after it.
#[test]
fn a_newer_term_in_a_pre_vote_reply_is_adopted() {
    let now = Instant::now();
    let mut a = node_with(1, &[1, 2, 3], PersistentState::default(), pre_voting());
    a.start(now);
    let ask = pre_vote(1, LogPosition::default());
    assert_eq!(drain(&mut a), vec![send(2, ask.clone()), send(3, ask)]);
    a.handle_message(id(2), reply(1, false, 7), now).unwrap();
    assert_eq!(drain(&mut a), vec![persist(7, None)]);
    assert!(a.is_pre_voting());
    // A grant for the old pre-vote's term no longer counts; the retry asks for term 8.
    a.handle_message(id(3), reply(1, true, 0), now).unwrap();
    assert_eq!(drain(&mut a), vec![]);
    let retry = a.poll_timeout().unwrap();
    a.handle_timeout(retry);
    let ask = pre_vote(8, LogPosition::default());
    assert_eq!(drain(&mut a), vec![send(2, ask.clone()), send(3, ask)]);
    a.handle_message(id(3), reply(8, true, 7), retry).unwrap();
    assert_eq!(drain(&mut a), vec![persist(8, None), send(2, token(8, cand(1), &[1]))]);
}

/// A node that follows no leader and gets a heartbeat of an older term cannot follow it:
/// it tells the stale leader its term (found by `tests/sim.rs`: two nodes at term 2, whose
/// term-2 election failed, were refused by a term-1 majority forever).
/// Sim seed 761 of `SEEDS=300..3000`: node 3's log lacks `AddMember(4)`, so its ring was
/// 1 -> 2 -> 3 -> 1 while the others' was 1 -> 2 -> 3 -> 4; node 4's token came to 3 and went
/// to 2, which had sent it on already, every lap, and node 3 (behind) could not win the vote:
/// no election completed. A node outside the configuration that passed on a message of the
/// term is routed through, until the term changes.
#[test]
fn the_ring_runs_through_members_of_a_newer_configuration() {
    let now = Instant::now();
    let mut c = node(3, &[1, 2, 3]);
    let four = Candidate { last_log: LogPosition { term: Term(3), seq: Seq(82) }, node: id(4) };
    c.handle_message(id(2), token(5, four, &[4, 1, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![persist(5, None), send(4, token(5, four, &[4, 1, 2, 3]))]);
    // A newer term forgets it.
    c.handle_message(id(2), token(6, cand(2), &[2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![persist(6, None), send(1, token(6, cand(3), &[3]))]);
}

#[test]
fn a_stale_heartbeat_is_answered_with_the_newer_term() {
    let now = Instant::now();
    let mut c =
        node_with(3, &[1, 2, 3], PersistentState { term: Term(2), accepted: None }, pre_voting());
    let err = c.handle_message(id(1), heartbeat(1), now);
    assert_eq!(err, Err(ElectionError::StaleTerm { got: Term(1), current: Term(2) }));
    assert_eq!(drain(&mut c), vec![send(1, token(2, cand(3), &[3]))]);
}

/// Issue 16 item 3 (sim seed 179 with a 200 ms fsync climbed to term 80 without a leader):
/// node 4 was added, but its configuration has not reached it when the leader (3) dies. With
/// a path limit of `2 × 0` it refused every token, and the others (2 of 4) could never make a
/// majority. It relays, to every node it saw in election traffic, and votes; the election
/// completes.
#[test]
fn a_member_without_its_configuration_relays_and_the_election_completes() {
    let t0 = Instant::now();
    let all = [1, 2, 3, 4];
    let mut nodes: BTreeMap<u8, Node> = BTreeMap::new();
    for me in [1u8, 2] {
        nodes.insert(me, follower(me, &all, 3, 1, t0));
    }
    // Node 4 holds no configuration; it heard the leader's heartbeat, and its failure
    // detector knows the others (the replica passes them on).
    let mut d = node_with(4, &[], PersistentState::default(), pre_voting());
    d.handle_known([id(1), id(2), id(3)]);
    d.handle_message(id(3), heartbeat(1), t0).unwrap();
    let follow = Action::FollowLeader { term: Term(1), leader: id(3) };
    assert_eq!(drain(&mut d), vec![persist(1, None), follow]);
    nodes.insert(4, d);
    // One input, exactly: a token of a newer term is relayed to every node it knows.
    {
        let mut probe = node_with(4, &[], PersistentState::default(), pre_voting());
        probe.handle_message(id(3), heartbeat(1), t0).unwrap();
        probe.handle_message(id(2), pre_vote(2, LogPosition::default()), t0).unwrap();
        drain(&mut probe);
        probe.handle_message(id(2), token(2, cand(2), &[2]), t0).unwrap();
        let relayed = token(2, cand(2), &[2, 4]);
        assert_eq!(
            drain(&mut probe),
            vec![
                persist(2, None),
                Action::StepDown { term: Term(2) },
                send(2, relayed.clone()),
                send(3, relayed)
            ]
        );
    }
    // Node 3 is dead: run everyone's timers and deliver at once, dropping what goes to 3.
    let mut queue: VecDeque<(u8, u8, ElectionMsg)> = VecDeque::new();
    let mut leaders = Vec::new();
    let mut now = t0;
    while leaders.is_empty() && now < t0 + Duration::from_secs(10) {
        now = nodes.values().filter_map(Node::poll_timeout).min().unwrap();
        for (&me, n) in &mut nodes {
            n.handle_timeout(now);
            collect(me, n, &mut queue, &mut leaders);
        }
        while let Some((from, to, msg)) = queue.pop_front() {
            if let Some(n) = nodes.get_mut(&to) {
                let _ = n.handle_message(id(from), msg, now);
                collect(to, n, &mut queue, &mut leaders);
            }
        }
    }
    assert_eq!(leaders.len(), 1, "one leader within 10 s: {leaders:?}");
    let (term, leader, participants) = &leaders[0];
    assert!(participants.contains(&id(4)), "node 4 voted: {participants:?}");
    assert_eq!(participants.len(), 3, "a majority of the four");
    assert_eq!(*term, Term(2), "in the first term tried");
    assert!(nodes[&4].leader() == Some(*leader));
}

fn collect(
    me: u8,
    n: &mut Node,
    queue: &mut VecDeque<(u8, u8, ElectionMsg)>,
    leaders: &mut Vec<(Term, NodeId, Vec<NodeId>)>,
) {
    for action in drain(n) {
        match action {
            Action::Send { to, msg } => queue.push_back((me, to.as_bytes()[0], msg)),
            Action::Elected { term, leader, participants } => {
                leaders.push((term, leader, participants));
            }
            _ => {}
        }
    }
}
