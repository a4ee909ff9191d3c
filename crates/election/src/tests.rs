//! Unit tests: one input, the exact actions expected.

use std::time::{Duration, Instant};

use auction_proto::msg::peer::{Candidate, ElectionMsg};
use auction_proto::{LogPosition, NodeId, Seq, Term};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Action, Config, Election, ElectionError, PersistentState, Status};

type Node = Election<ChaCha8Rng>;

const TIMEOUT: Duration = Duration::from_millis(300);

fn id(i: u8) -> NodeId {
    NodeId::from_bytes([i; 16])
}

fn cand(i: u8) -> Candidate {
    Candidate { last_log: LogPosition::default(), node: id(i) }
}

fn no_backoff() -> Config {
    Config { election_timeout: TIMEOUT, max_backoff: Duration::ZERO }
}

fn node_with(me: u8, members: &[u8], persisted: PersistentState, config: Config) -> Node {
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
    a.start(Instant::now());
    assert_eq!(
        drain(&mut a),
        vec![
            persist(1, None),
            persist(1, Some(1)),
            Action::Elected { term: Term(1), leader: id(1), participants: vec![id(1)] },
        ]
    );
    assert_eq!(a.status(), Status::Leading);
    assert_eq!(a.poll_timeout(), None);
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
    assert_eq!((a.poll_timeout(), b.poll_timeout()), (None, None));
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
    f.handle_leader_heard(id(3), Term(6));
    drain(&mut f);
    let err = f.handle_message(id(1), token(3, cand(1), &[1]), now);
    assert_eq!(err, Err(ElectionError::StaleTerm { got: Term(3), current: Term(6) }));
    assert_eq!(drain(&mut f), vec![]);
}

#[test]
fn non_members_and_oversized_paths_are_rejected() {
    let now = Instant::now();
    let mut b = node(2, &[1, 2, 3]);
    b.handle_leader_heard(id(1), Term(1));
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
    // A larger outsider is passed on.
    let mut b = node(2, &[1, 2]);
    b.handle_message(id(3), token(5, cand(3), &[3]), now).unwrap();
    assert_eq!(drain(&mut b), vec![persist(5, None), send(1, token(5, cand(3), &[3, 2]))]);
    // A follower refuses it, whatever its term.
    let mut f = node(2, &[1, 2, 3]);
    f.handle_leader_heard(id(1), Term(8));
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
    e.handle_message(id(4), elected(1, 5, &[5, 4]), now).unwrap();
    assert_eq!(drain(&mut e), vec![]);
    assert_eq!(e.status(), Status::Announcing);
    e.handle_message(id(4), elected(1, 5, &[5, 4, 1]), now).unwrap();
    let participants = vec![id(5), id(4), id(1)];
    assert_eq!(drain(&mut e), vec![Action::Elected { term: Term(1), leader: id(5), participants }]);
}

#[test]
fn own_token_without_majority_waits_for_the_deadline() {
    let now = Instant::now();
    let mut c = node(3, &[1, 2, 3, 4, 5]);
    c.start(now);
    drain(&mut c);
    c.handle_message(id(2), token(1, cand(3), &[3, 2]), now).unwrap();
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.status(), Status::Electing);
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
    let config = Config { election_timeout: TIMEOUT, max_backoff: TIMEOUT };
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
    a.handle_leader_heard(id(3), Term(1));
    assert_eq!(drain(&mut a), vec![], "same term, it leads itself");
    a.handle_leader_heard(id(3), Term(4));
    assert_eq!(
        drain(&mut a),
        vec![
            persist(4, None),
            Action::StepDown { term: Term(4) },
            Action::FollowLeader { term: Term(4), leader: id(3) },
        ]
    );
    a.handle_leader_heard(id(2), Term(3));
    a.handle_leader_heard(id(9), Term(9));
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
    for k in 1..=3 {
        c.handle_timeout(now + TIMEOUT * (10 * k));
        assert_eq!(c.candidate(), demoted, "term {:?}", c.term());
    }
    assert_eq!(c.term(), Term(term.0 + 3), "three failed terms");
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
