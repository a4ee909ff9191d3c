//! The view change, step by step with exact outputs: a leader elected with members in given
//! log states, the `StartView` / `LogState` / `NewView` messages and the `Action`s on every
//! side, until the leader's `Noop` commits and it reports `Leading`.

#![allow(clippy::unwrap_used)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests take the real clock as the base of virtual time"
)]

use std::time::{Duration, Instant};

use auction_ordering::{Action, Ordering, OrderingConfig, Persisted, StoreId};
use auction_proto::msg::log::{ConfigChange, EntryPayload, LogEntry};
use auction_proto::msg::peer::OrderingMsg;
use auction_proto::{LogPosition, Seq, Term, Timestamp};

mod support;
use support::{drain, info, node};

fn boot() -> LogEntry {
    LogEntry {
        term: Term(0),
        seq: Seq(1),
        timestamp: Timestamp(0),
        payload: EntryPayload::Config(ConfigChange::Bootstrap {
            members: (1..=3).map(info).collect(),
        }),
    }
}

fn noop(term: u64, seq: u64) -> LogEntry {
    LogEntry {
        term: Term(term),
        seq: Seq(seq),
        timestamp: Timestamp(seq),
        payload: EntryPayload::Noop,
    }
}

fn pos(term: u64, seq: u64) -> LogPosition {
    LogPosition { term: Term(term), seq: Seq(seq) }
}

fn send(to: u8, msg: OrderingMsg) -> Action {
    Action::Send { to: node(to), msg }
}

/// Member `me` restarted in `term` with `entries` durable (after the bootstrap entry) and
/// everything up to `applied` applied (so committed).
fn member(
    me: u8,
    config: &OrderingConfig,
    term: u64,
    entries: &[LogEntry],
    applied: u64,
    now: Instant,
) -> Ordering {
    let mut log = vec![boot()];
    log.extend_from_slice(entries);
    let p = Persisted { term: Term(term), snapshot: None, entries: log, applied: Seq(applied) };
    Ordering::new(node(me), config.clone(), p, now)
}

fn log_state(term: u64, last: LogPosition, commit: u64, suffix: Vec<LogEntry>) -> OrderingMsg {
    OrderingMsg::LogState { term: Term(term), last, commit: Seq(commit), suffix }
}

/// Leader 1 holds 2 of term 1, member 2 holds 2..=3 of term 1 (the most up to date), member 3
/// only the committed bootstrap entry. The leader gathers from itself and member 2, adopts
/// member 2's entry 3, appends its `Noop` at 4 and brings both members in sync; the `Noop`
/// commits with member 2's ack, and the leader reports `Leading`.
#[test]
fn the_leader_adopts_the_most_up_to_date_log_of_a_majority() {
    let now = Instant::now();
    let config = OrderingConfig::default();
    let mut l = member(1, &config, 1, &[noop(1, 2)], 1, now);
    let mut m2 = member(2, &config, 1, &[noop(1, 2), noop(1, 3)], 1, now);
    let mut m3 = member(3, &config, 1, &[], 1, now);

    // Elected: persist the term, ask every other member for its log state.
    l.handle_leader(Term(2), node(1), now).unwrap();
    let start = OrderingMsg::StartView { term: Term(2), commit: Seq(1) };
    assert_eq!(
        drain(&mut l),
        vec![Action::PersistTerm(Term(2)), send(2, start.clone()), send(3, start.clone())]
    );
    assert!(!l.is_leading() && !l.is_ready());

    // Member 2 follows, reporting its entries after the leader's commit point.
    m2.handle_message(node(1), start.clone(), now);
    let state2 = log_state(2, pos(1, 3), 1, vec![noop(1, 2), noop(1, 3)]);
    assert_eq!(drain(&mut m2), vec![Action::PersistTerm(Term(2)), send(1, state2.clone())]);

    // A majority (1 and 2) answered: adopt 3, sequence the Noop at 4, send member 2 the view
    // from its commit point on and the commit point, and store the new entries.
    l.handle_message(node(2), state2, now);
    let noop4 = noop(2, 4).with_timestamp(3);
    let view2 = OrderingMsg::NewView {
        term: Term(2),
        from: Seq(2),
        prev: pos(0, 1),
        entries: vec![noop(1, 2), noop(1, 3), noop4.clone()],
        commit: Seq(1),
    };
    let store =
        Action::Store { id: StoreId(1), from: Seq(3), entries: vec![noop(1, 3), noop4.clone()] };
    let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(1) };
    assert_eq!(drain(&mut l), vec![send(2, view2.clone()), store, send(2, commit)]);
    assert_eq!(l.last_log(), pos(2, 4));

    // Member 2 takes the view: entries 2..=3 are identical and kept, 4 is written.
    m2.handle_message(node(1), view2, now);
    let store = Action::Store { id: StoreId(1), from: Seq(4), entries: vec![noop4.clone()] };
    let ack3 = OrderingMsg::Ack { term: Term(2), stored: Seq(3) };
    assert_eq!(drain(&mut m2), vec![send(1, ack3.clone()), store]);
    m2.handle_stored(StoreId(1), now).unwrap();
    let ack4 = OrderingMsg::Ack { term: Term(2), stored: Seq(4) };
    assert_eq!(drain(&mut m2), vec![send(1, ack4.clone())]);

    // Member 3 answers late, with nothing after the commit point: it gets the view from 2.
    m3.handle_message(node(1), start, now);
    let state3 = log_state(2, pos(0, 1), 1, vec![]);
    assert_eq!(drain(&mut m3), vec![Action::PersistTerm(Term(2)), send(1, state3.clone())]);
    l.handle_message(node(3), state3, now);
    let view3 = OrderingMsg::NewView {
        term: Term(2),
        from: Seq(2),
        prev: pos(0, 1),
        entries: vec![noop(1, 2), noop(1, 3), noop4.clone()],
        commit: Seq(1),
    };
    let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(1) };
    assert_eq!(drain(&mut l), vec![send(3, view3), send(3, commit)]);

    // The leader's own store and member 2's ack make a majority hold the Noop: it commits,
    // the view change ends, everything up to it is delivered and the commit point sent.
    l.handle_stored(StoreId(1), now).unwrap();
    assert_eq!(drain(&mut l), vec![]);
    l.handle_message(node(2), ack3, now);
    assert_eq!(drain(&mut l), vec![]);
    l.handle_message(node(2), ack4, now);
    let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(4) };
    let expected = vec![
        Action::Leading { term: Term(2) },
        send(2, commit.clone()),
        send(3, commit),
        Action::Deliver { entries: vec![noop(1, 2), noop(1, 3), noop4] },
    ];
    assert_eq!(drain(&mut l), expected);
    assert!(l.is_leading() && l.is_ready());
}

/// The most up-to-date log is the leader's own: nothing is adopted, and a member's
/// conflicting entry of an older term is replaced by the `NewView`.
#[test]
fn a_members_conflicting_older_entries_are_replaced_by_the_leaders_log() {
    let now = Instant::now();
    let config = OrderingConfig::default();
    let mut l = member(1, &config, 2, &[noop(2, 2)], 1, now);
    let mut m2 = member(2, &config, 1, &[noop(1, 2), noop(1, 3)], 1, now);

    l.handle_leader(Term(3), node(1), now).unwrap();
    let start = OrderingMsg::StartView { term: Term(3), commit: Seq(1) };
    drain(&mut l);
    m2.handle_message(node(1), start, now);
    let state2 = log_state(3, pos(1, 3), 1, vec![noop(1, 2), noop(1, 3)]);
    assert_eq!(drain(&mut m2), vec![Action::PersistTerm(Term(3)), send(1, state2.clone())]);

    // (2, 2) beats (1, 3): the leader keeps its log and appends its Noop at 3.
    l.handle_message(node(2), state2, now);
    let noop3 = noop(3, 3).with_timestamp(2);
    let view2 = OrderingMsg::NewView {
        term: Term(3),
        from: Seq(2),
        prev: pos(0, 1),
        entries: vec![noop(2, 2), noop3.clone()],
        commit: Seq(1),
    };
    let store = Action::Store { id: StoreId(1), from: Seq(3), entries: vec![noop3.clone()] };
    let commit = OrderingMsg::Commit { term: Term(3), commit: Seq(1) };
    assert_eq!(drain(&mut l), vec![send(2, view2.clone()), store, send(2, commit)]);

    // Member 2 truncates its uncommitted 2..=3 of term 1 and writes the leader's 2..=3.
    m2.handle_message(node(1), view2, now);
    let store =
        Action::Store { id: StoreId(1), from: Seq(2), entries: vec![noop(2, 2), noop3.clone()] };
    let ack = OrderingMsg::Ack { term: Term(3), stored: Seq(1) };
    assert_eq!(drain(&mut m2), vec![send(1, ack), store]);
    assert_eq!(m2.last_log(), pos(3, 3));
}

/// A member whose entries after the leader's commit point do not fit in one bounded message
/// reports none; if its log is the most up to date, the leader cannot adopt it and abdicates
/// in its favour.
#[test]
fn a_leader_that_cannot_gather_the_best_log_abdicates() {
    let now = Instant::now();
    let config = OrderingConfig { max_uncommitted: 1, ..OrderingConfig::default() };
    let mut l = member(1, &config, 1, &[], 1, now);
    let mut m2 = member(2, &config, 1, &[noop(1, 2), noop(1, 3)], 1, now);

    l.handle_leader(Term(2), node(1), now).unwrap();
    drain(&mut l);
    m2.handle_message(node(1), OrderingMsg::StartView { term: Term(2), commit: Seq(1) }, now);
    let state2 = log_state(2, pos(1, 3), 1, vec![]);
    assert_eq!(drain(&mut m2), vec![Action::PersistTerm(Term(2)), send(1, state2.clone())]);

    l.handle_message(node(2), state2, now);
    assert_eq!(drain(&mut l), vec![Action::Abdicate { term: Term(2), ahead: node(2) }]);
    assert!(!l.is_leading());
    assert_eq!(l.leader(), None);
}

/// Until a majority answered, each tick asks the members that have not answered again; a view
/// change that takes `unavailable_after` is reported once as `Unavailable`.
#[test]
fn a_gathering_leader_re_asks_silent_members_on_every_tick() {
    let t0 = Instant::now();
    let config = OrderingConfig::default();
    let mut l = member(1, &config, 1, &[], 1, t0);
    l.handle_leader(Term(2), node(1), t0).unwrap();
    drain(&mut l);
    let start = OrderingMsg::StartView { term: Term(2), commit: Seq(1) };
    let tick = t0 + config.tick;
    l.handle_timeout(tick);
    assert_eq!(drain(&mut l), vec![send(2, start.clone()), send(3, start.clone())]);
    let late = t0 + config.unavailable_after + Duration::from_millis(1);
    l.handle_timeout(late);
    let expected =
        vec![Action::Unavailable { term: Term(2) }, send(2, start.clone()), send(3, start.clone())];
    assert_eq!(drain(&mut l), expected);
    l.handle_timeout(late + config.tick);
    assert_eq!(drain(&mut l), vec![send(2, start.clone()), send(3, start)]);
}

trait WithTimestamp {
    fn with_timestamp(self, ts: u64) -> Self;
}

impl WithTimestamp for LogEntry {
    fn with_timestamp(mut self, ts: u64) -> Self {
        self.timestamp = Timestamp(ts);
        self
    }
}

/// A learner's log never decides the view change, however far ahead it claims to be: the
/// leader keeps gathering until members answer, then brings the learner in sync too.
#[test]
fn a_learners_log_state_does_not_decide_the_view_change() {
    let now = Instant::now();
    let config = OrderingConfig::default();
    let mut l = member(1, &config, 1, &[], 1, now);
    l.handle_leader(Term(2), node(1), now).unwrap();
    drain(&mut l);
    assert!(l.handle_learners(&[node(4)], now));
    let start = OrderingMsg::StartView { term: Term(2), commit: Seq(1) };
    assert_eq!(drain(&mut l), vec![send(4, start)]);

    l.handle_message(node(4), log_state(2, pos(1, 9), 1, vec![]), now);
    assert_eq!(drain(&mut l), vec![]);
    assert_eq!(l.last_log(), pos(0, 1), "still gathering");

    l.handle_message(node(2), log_state(2, pos(0, 1), 1, vec![]), now);
    let noop2 = noop(2, 2).with_timestamp(0);
    let view = OrderingMsg::NewView {
        term: Term(2),
        from: Seq(2),
        prev: pos(0, 1),
        entries: vec![noop2.clone()],
        commit: Seq(1),
    };
    let store = Action::Store { id: StoreId(1), from: Seq(2), entries: vec![noop2] };
    let commit = OrderingMsg::Commit { term: Term(2), commit: Seq(1) };
    assert_eq!(drain(&mut l), vec![send(2, view.clone()), store, send(2, commit.clone())]);
    // The learner's next answer (a sync request) gets its view like any member's.
    l.handle_message(node(4), log_state(2, pos(0, 1), 1, vec![]), now);
    assert_eq!(drain(&mut l), vec![send(4, view), send(4, commit)]);
}
