//! `is_ready`: a node answers clients only once it has caught up with a commit point the
//! leader of its term announced.

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::time::Instant;

use auction_ordering::{Action, Ordering, OrderingConfig, Persisted};
use auction_proto::msg::log::{ConfigChange, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, Seq, Term, Timestamp};

mod support;
use support::{info, node};

fn entry(seq: u64) -> LogEntry {
    let payload = match seq {
        1 => EntryPayload::Config(ConfigChange::Bootstrap { members: (1..=3).map(info).collect() }),
        _ => EntryPayload::Noop,
    };
    LogEntry { term: Term(1), seq: Seq(seq), timestamp: Timestamp(0), payload }
}

fn settle(core: &mut Ordering, now: Instant) {
    while let Some(a) = core.poll_action() {
        if let Action::Store { id, .. } | Action::InstallSnapshot { id, .. } = a {
            core.handle_stored(id, now).unwrap();
        }
    }
}

#[test]
fn a_restarted_follower_is_ready_only_once_it_caught_up_with_the_leaders_commit_point() {
    let now = Instant::now();
    // Restarted with entries 1..=3 of term 1 on disk, 2 of them applied before the crash.
    let persisted = Persisted {
        term: Term(1),
        snapshot: None,
        entries: (1..=3).map(entry).collect(),
        applied: Seq(2),
    };
    let mut f = Ordering::new(node(2), OrderingConfig::default(), persisted, now);
    settle(&mut f, now);
    assert!(!f.is_ready(), "just restarted: no leader heard");
    // The leader's commit point is 5: the follower holds only 3, so it is not ready yet.
    let commit = OrderingMsg::Commit { term: Term(1), commit: Seq(5) };
    f.handle_message(node(1), commit, now);
    settle(&mut f, now);
    assert!(!f.is_ready(), "behind the commit point the leader announced");
    let order = OrderingMsg::Order {
        term: Term(1),
        prev: LogPosition { term: Term(1), seq: Seq(3) },
        entries: vec![entry(4), entry(5)],
        commit: Seq(5),
    };
    f.handle_message(node(1), order, now);
    settle(&mut f, now);
    assert_eq!(f.commit(), Seq(5));
    assert!(f.is_ready(), "caught up");
    // A new term: not ready until its leader is followed again.
    let start = OrderingMsg::StartView { term: Term(2), commit: Seq(5) };
    f.handle_message(node(3), start, now);
    settle(&mut f, now);
    assert!(!f.is_ready(), "a new leader, not yet in sync with it");
}
