//! The merge rules of held ordering messages.
use auction_proto::msg::log::{Command, EntryPayload, LogEntry, Operation};
use auction_proto::{AuctionId, Seq, Term, Timestamp};

use auction_proto::msg::peer::OrderingMsg;

use crate::batch::{MAX_MERGED_COMMANDS, merge};

fn propose(term: u64, n: usize) -> OrderingMsg {
    let cmd = Command { origin: None, op: Operation::Close { auction: AuctionId(1) } };
    OrderingMsg::Propose { term: Term(term), commands: vec![cmd; n] }
}

#[test]
fn proposes_of_one_term_merge_up_to_the_bound() {
    let mut prev = propose(3, 2);
    assert_eq!(merge(&mut prev, propose(3, 1)), None);
    assert_eq!(prev, propose(3, 3));
    assert_eq!(merge(&mut prev, propose(4, 1)), Some(propose(4, 1)));
    let big = propose(3, MAX_MERGED_COMMANDS - 2);
    assert_eq!(merge(&mut prev, big.clone()), Some(big));
}

#[test]
fn acks_of_a_term_merge_into_the_highest_and_nothing_else_merges() {
    let ack = |term, stored| OrderingMsg::Ack { term: Term(term), stored: Seq(stored) };
    let mut prev = ack(2, 10);
    assert_eq!(merge(&mut prev, ack(2, 12)), None);
    assert_eq!(prev, ack(2, 12));
    // A lower later ack (after a snapshot install reset what is durable) keeps the highest.
    assert_eq!(merge(&mut prev, ack(2, 0)), None);
    assert_eq!(prev, ack(2, 12));
    assert_eq!(merge(&mut prev, ack(3, 1)), Some(ack(3, 1)));
    let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(12) };
    assert_eq!(merge(&mut prev, commit.clone()), Some(commit));
    assert_eq!(merge(&mut propose(2, 1), ack(2, 1)), Some(ack(2, 1)));
}

#[test]
fn orders_of_one_term_merge_only_when_their_entries_follow_on() {
    let entry = |seq| LogEntry {
        term: Term(2),
        seq: Seq(seq),
        timestamp: Timestamp(0),
        payload: EntryPayload::Noop,
    };
    let order = |term, seqs: std::ops::RangeInclusive<u64>, commit| OrderingMsg::Order {
        term: Term(term),
        prev: auction_proto::LogPosition { term: Term(2), seq: Seq(seqs.start() - 1) },
        entries: seqs.map(entry).collect(),
        commit: Seq(commit),
    };
    let mut prev = order(2, 5..=6, 4);
    assert_eq!(merge(&mut prev, order(2, 7..=7, 6)), None);
    assert_eq!(prev, order(2, 5..=7, 6));
    // A resend (not following on), another term: kept apart.
    assert_eq!(merge(&mut prev, order(2, 3..=4, 6)), Some(order(2, 3..=4, 6)));
    assert_eq!(merge(&mut prev, order(3, 8..=8, 6)), Some(order(3, 8..=8, 6)));
}
