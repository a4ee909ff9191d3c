//! Message counts of whole elections on a clean network with a fixed delay, for the table in
//! docs/election.md (run with `--nocapture` to print it).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use auction_election::ElectionConfig;
use auction_proto::{LogPosition, Seq, Term};
use auction_testkit::NetConfig;
use common::Cluster;

/// `(tokens, electeds)` of an election where `initiators` (ring positions) start together,
/// without the pre-vote (the bare ring election; a node behind could not start one at all
/// with it). `seqs[i]` is the log position's seq of the `i`-th node in ring order.
fn count(seqs: &[u64], initiators: &[usize]) -> (u64, u64) {
    let (tokens, electeds, _) = count_with(seqs, initiators, false);
    (tokens, electeds)
}

/// `(tokens, electeds, pre-vote messages)`, with the pre-vote on or off.
fn count_with(seqs: &[u64], initiators: &[usize], pre_vote: bool) -> (u64, u64, u64) {
    let one_ms = Duration::from_millis(1);
    let net = NetConfig { delay_min: one_ms, delay_max: one_ms, ..NetConfig::default() };
    let logs: Vec<_> = seqs.iter().map(|s| LogPosition { term: Term(1), seq: Seq(*s) }).collect();
    let mut c =
        Cluster::new(1, net, &logs, ElectionConfig { pre_vote, ..ElectionConfig::default() });
    for &i in initiators {
        let id = c.ids[i];
        c.with(id, |e, now| e.start(now));
    }
    c.net.run_for(Duration::from_millis(50));
    c.check_safety().unwrap();
    assert!(c.settled_leader().is_some());
    let log = c.log.borrow();
    assert_eq!(log.leaders.len(), 1);
    (log.tokens, log.electeds, log.pre_votes)
}

/// The pre-vote costs one request and one answer per other member, before the same ring
/// election.
#[test]
fn the_pre_vote_adds_two_messages_per_other_member() {
    for n in [3u64, 5, 9] {
        let increasing: Vec<u64> = (0..n).collect();
        let last = usize::try_from(n - 1).unwrap();
        assert_eq!(count_with(&increasing, &[last], true), (n, n, 2 * (n - 1)));
    }
}

#[test]
fn message_counts() {
    let mut table = Vec::new();
    for n in [3u64, 5, 9] {
        let len = usize::try_from(n).unwrap();
        let increasing: Vec<u64> = (0..n).collect(); // the max is the last node in ring order
        let decreasing: Vec<u64> = (0..n).rev().collect(); // the max is the first
        let everyone: Vec<usize> = (0..len).collect();
        // Best: one initiator, the maximum candidate itself.
        let best = count(&increasing, &[len - 1]);
        // One initiator just after the maximum: its token is replaced at each larger node.
        let single_far = count(&increasing, &[0]);
        // Everyone, candidates increasing along the ring: each token dies after one hop.
        let all_good = count(&increasing, &everyone);
        // Everyone, candidates decreasing along the ring: LCR's worst case.
        let all_bad = count(&decreasing, &everyone);
        assert_eq!(best, (n, n));
        assert_eq!(single_far, (2 * n - 1, n));
        assert_eq!(all_good, (2 * n - 1, n));
        assert_eq!(all_bad, (n * (n + 1) / 2, n));
        table.push((n, best, single_far, all_good, all_bad));
    }
    println!(
        "| n | one initiator, the max | one initiator, after the max | all, good order | all, bad order | LCR O(n) = n | LCR O(n²) = n(n+1)/2 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, a, b, c, d) in table {
        let f = |(t, e): (u64, u64)| format!("{} ({t} + {e})", t + e);
        println!("| {n} | {} | {} | {} | {} | {n} | {} |", f(a), f(b), f(c), f(d), n * (n + 1) / 2);
    }
}
