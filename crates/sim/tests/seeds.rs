//! The simulation over many seeds, replay of one seed, regression seeds, planted bugs.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::ops::Range;
use std::time::{Duration, Instant};

use auction_proto::msg::log::{ConfigChange, EntryPayload};
use auction_sim::{AttackStats, Bug, OpResult, Options, replay_command, run_seed};

/// `Options::mixed(seed)` with the phase lengths from the environment, if set:
/// `SIM_FAULT_SECS` and `SIM_HEAL_SECS` (seconds of virtual time, fractions allowed), and
/// `SIM_ADVERSARY=0` / `SIM_WIPES=0` to leave the attacker or the wipes out.
fn options(seed: u64) -> Options {
    let secs = |var: &str| {
        let v = std::env::var(var).ok()?;
        let s: f64 = v.parse().unwrap_or_else(|_| panic!("{var}={v}: not a number of seconds"));
        Some(Duration::from_secs_f64(s))
    };
    let mut opts = Options::mixed(seed);
    if let Some(d) = secs("SIM_FAULT_SECS") {
        opts.fault_time = d;
    }
    if let Some(d) = secs("SIM_HEAL_SECS") {
        opts.heal_time = d;
    }
    let off = |var: &str| std::env::var(var).is_ok_and(|v| v == "0");
    opts.adversary &= !off("SIM_ADVERSARY");
    opts.wipes &= !off("SIM_WIPES");
    opts
}

/// The `SIM_*_SECS` settings in force, as a prefix of a replay command.
fn env_prefix() -> String {
    ["SIM_FAULT_SECS", "SIM_HEAL_SECS", "SIM_ADVERSARY", "SIM_WIPES"]
        .iter()
        .filter_map(|var| Some(format!("{var}={} ", std::env::var(var).ok()?)))
        .collect()
}

/// Runs `seeds` (or `SEEDS=a..b` from the environment) and fails naming every failing seed.
fn run_range(default: Range<u64>) {
    let seeds = std::env::var("SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(default);
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut attacks = AttackStats::default();
    let n = seeds.end - seeds.start;
    for seed in seeds {
        let out = run_seed(options(seed));
        attacks.add(&out.attacks);
        if !out.violations.is_empty() {
            eprintln!("seed {seed} failed: {:?}", out.violations);
            eprintln!("  replay: {}{}", env_prefix(), replay_command(seed));
            failed.push(seed);
        }
    }
    eprintln!("{n} seeds in {:?}, {} failed", started.elapsed(), failed.len());
    eprintln!("{attacks:#?}");
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

// CI runs 300 seeds with the attacker and the wipes (the debug build takes about a second
// per seed on one core; see docs/testing.md). Longer sweeps: `SEEDS=0..20000` in release.
#[test]
fn seeds_a() {
    if std::env::var("SEEDS").is_ok() {
        run_range(0..0);
        return;
    }
    run_range(0..100);
}

#[test]
fn seeds_b() {
    if std::env::var("SEEDS").is_err() {
        run_range(100..200);
    }
}

#[test]
fn seeds_c() {
    if std::env::var("SEEDS").is_err() {
        run_range(200..300);
    }
}

/// Coverage marks: seeds 0..40 exercise every attack and operator fault, so a change that
/// stops reaching one fails here instead of passing silently. (Every accepted copy the
/// rules forbid is a violation of the run, checked by the seed tests.)
#[test]
fn the_attacker_and_the_operator_faults_are_exercised() {
    let mut total = AttackStats::default();
    for seed in 0..40 {
        let out = run_seed(Options::mixed(seed));
        let broken: Vec<_> = out
            .violations
            .iter()
            .filter(|v| matches!(v.property, "adversary" | "instance" | "seal"))
            .collect();
        assert!(broken.is_empty(), "seed {seed}: {broken:#?}");
        total.add(&out.attacks);
    }
    eprintln!("{total:#?}");
    let marks = [
        ("copies for another node refused", total.wrong_receiver.refused),
        ("copies for an earlier boot refused", total.old_incarnation.refused),
        ("replays to the same boot refused", total.replay.refused),
        ("lost originals accepted once from a copy", total.replay.accepted),
        ("unaddressed discovery copies judged", total.other.refused + total.other.accepted),
        ("garbage refused", total.garbage.refused),
        ("genuine frames misaddressed to an old boot", total.misaddressed),
        ("... then repaired", total.repaired),
        ("wipes", total.wipes),
        ("bootstrap refusals", total.bootstrap_refusals),
    ];
    for (what, n) in marks {
        assert!(n > 0, "no {what} in seeds 0..40: {total:#?}");
    }
    assert_eq!(total.wrongly_accepted(), 0, "{total:#?}");
}

/// `SEED=n`: one seed with a message trace (seed 0, untraced, when `SEED` is unset), with the
/// phase lengths of `SIM_FAULT_SECS`/`SIM_HEAL_SECS` if set.
#[test]
fn replay() {
    let seed = std::env::var("SEED")
        .ok()
        .map(|s| s.parse::<u64>().unwrap_or_else(|_| panic!("SEED={s}: not a u64")));
    let mut opts = options(seed.unwrap_or(0));
    opts.trace = seed.is_some();
    let seed = opts.seed;
    let out = run_seed(opts);
    let h = &out.history;
    let acked = h.invocations.iter().filter(|i| matches!(i.result, OpResult::Ok { .. })).count();
    eprintln!(
        "seed {seed}: {} invocations, {acked} acked, {} reads",
        h.invocations.len(),
        h.reads.len()
    );
    eprintln!("{:#?}", out.attacks);
    assert!(out.violations.is_empty(), "{:#?}", out.violations);
}

/// `Options::mixed(seed)` with longer phases, as the sweeps that found the bugs below ran;
/// with the attacker but without wipes, which came later: a wipe changes the whole run from
/// its first one on, so the pinned histories below stay closer to what they pin (wipes have
/// the seed ranges above and the coverage test).
fn long(seed: u64, fault_secs: u64, heal_secs: u64) -> Options {
    let mut opts = Options::mixed(seed);
    opts.wipes = false;
    opts.fault_time = Duration::from_secs(fault_secs);
    opts.heal_time = Duration::from_secs(heal_secs);
    opts
}

fn assert_passes(opts: Options) -> auction_sim::Outcome {
    let seed = opts.seed;
    let out = run_seed(opts);
    assert!(out.violations.is_empty(), "seed {seed}: {:#?}", out.violations);
    out
}

/// Seed 19, 10 s of faults: node 4's log held an uncommitted `RemoveMember(3)`, the others'
/// did not and routed the ring 2 -> 3 -> 4; 4 refused everything 3 passed on, never learned
/// the newer term, and no election completed (every request pending at the end).
#[test]
fn election_takes_messages_relayed_by_a_removed_member() {
    assert_passes(long(19, 10, 5));
}

/// Seed 23, 10 s of faults: node 1's log held an uncommitted `RemoveMember(3)`; 3, at a higher
/// term, dropped every token of 1 and 2, and 1 refused 3's candidacy without learning its term.
#[test]
fn election_without_a_leader_takes_an_outsiders_candidacy() {
    assert_passes(long(23, 10, 5));
}

/// Seed 107, 10 s of faults: a node behind lacked the re-add of the node with the largest log
/// and dropped its token on every lap.
#[test]
fn election_passes_on_a_re_added_members_token() {
    assert_passes(long(107, 10, 5));
}

/// Seed 163, 8 s of faults: node 3 was removed and re-added, but its own log still ended with
/// the removal; it refused every election message while the others routed their ring through
/// it, so no leader was elected (every request pending at the end). Fixed by letting a node
/// outside its own configuration relay; seeds 435 and 659 (10 s), also leaderless at the end,
/// passed with the same fix.
#[test]
fn election_relayed_by_a_node_whose_log_lacks_its_re_add() {
    assert_passes(long(163, 8, 4));
    assert_passes(long(435, 10, 5));
    assert_passes(long(659, 10, 5));
}

/// Seed 403, 8 s of faults: the leader of term 1 learned term 23 from an ordering `NotLeader`
/// only; its election started from term 2 and every token it sent was refused as stale by the
/// nodes at term 23 and above. Fixed by adopting a term the ordering layer saw
/// (`Election::handle_term`); seeds 886 (8 s) and 906 (10 s), still leaderless after the
/// relay fix, passed with this one.
#[test]
fn election_adopts_a_term_seen_by_the_ordering_layer() {
    assert_passes(long(403, 8, 4));
    assert_passes(long(886, 8, 4));
    assert_passes(long(906, 10, 5));
}

/// Seed 859, 8 s of faults (and 107 at 12 s): after the heal, nodes 1 and 5 elected at terms
/// around 20 and nodes 2 and 3 at terms around 43; the lower group's tokens died at node 2
/// as stale, the higher group's never reached the lower one (node 4 followed an old leader and
/// refused node 3's candidacy), so no leader emerged. Fixed by answering a stale message with
/// a token of the newer term (`Election::handle_message`).
#[test]
fn election_answers_a_stale_term() {
    assert_passes(long(859, 8, 4));
    assert_passes(long(107, 12, 6));
}

/// Seed 442, 8 s of faults: the leader of term 14 adopted its own removal in its view change,
/// committed it and stopped leading; its followers had not learned of the commit and followed
/// the live old leader for good. Fixed by `Ordering::leader_removed`: a follower in sync with
/// a leader that its log removes elects. Seed 107 at 8 s checks that a follower *behind* (its
/// log removes the leader, which was re-added since) keeps following.
#[test]
fn followers_of_a_leader_that_removed_itself_elect() {
    assert_passes(long(442, 8, 4));
    assert_passes(long(107, 8, 4));
}

/// Seed 937, 10 s of faults: node 3, behind without node 2's re-add, followed 2 and refused
/// 2's newer tokens as an outsider's, so 3 never left term 28 and 1 and 2 never got its vote.
/// Fixed by never refusing the followed leader's messages.
#[test]
fn election_takes_the_followed_leaders_newer_term() {
    assert_passes(long(937, 10, 5));
}

/// Seeds 39 (10 s of faults) and 211 (8 s): correct commits counted in a configuration
/// appended after the entry (in force on append) were reported as `commit-majority`. Seed
/// 5571 (12 s): the same, seen by a first applier that did not hold that configuration yet.
#[test]
fn commit_majority_counts_the_leaders_latest_configuration() {
    assert_passes(long(39, 10, 5));
    assert_passes(long(211, 8, 4));
    assert_passes(long(5571, 12, 6));
}

/// Seed 11 at 12 s per seed (as it ran when found): a node removed from the configuration
/// while electing kept a past deadline and the driver spun on it (the fix is in
/// `auction_election`'s `start_election`; its unit test is `tests.rs` there). Later changes
/// moved seed 11's history away from a removal, so this runs the first long-fault seeds from
/// 11 on until one applies a removal: such a run must still end, and pass.
#[test]
fn election_spin_during_removal() {
    let removes = |out: &auction_sim::Outcome| {
        out.history.applied.values().flatten().any(|a| {
            matches!(a, auction_sim::Applied::Entry(e)
                if matches!(&e.payload, EntryPayload::Config(ConfigChange::RemoveMember(_))))
        })
    };
    let found = (11..61).find(|&seed| removes(&assert_passes(long(seed, 8, 4))));
    assert!(found.is_some(), "no seed in 11..61 applies a removal any more");
}

/// A fault-free run makes progress: clients get answers and auctions close.
#[test]
fn quiet_run_makes_progress() {
    let mut opts = Options::mixed(0);
    opts.faults = false;
    let out = run_seed(opts);
    assert!(out.violations.is_empty(), "{:#?}", out.violations);
    let acked = out.history.invocations.iter().filter(|i| matches!(i.result, OpResult::Ok { .. }));
    assert!(acked.count() > 20);
}

/// Finds a seed on which `bug` is caught, and checks which properties name it.
/// (Seeds 0..80: with the seal, the attacker and learners, `AckOnSequence` was first caught on
/// seed 45; since the clients speak the protocol to the server core, on seed 6.)
fn caught(bug: Bug, faults: bool, expect: &[&str]) {
    for seed in 0..80 {
        let mut opts = Options::mixed(seed);
        opts.bug = bug;
        opts.faults = faults;
        let out = run_seed(opts);
        if let Some(v) = out.violations.iter().find(|v| expect.contains(&v.property)) {
            eprintln!("{bug:?} caught on seed {seed}: {v:?}");
            return;
        }
    }
    panic!("{bug:?} was never caught");
}

#[test]
fn planted_ack_on_sequence_is_caught() {
    caught(Bug::AckOnSequence, true, &["durability"]);
}

#[test]
fn planted_lying_disk_is_caught() {
    caught(Bug::LyingDisk, true, &["commit-majority", "agreement", "durability"]);
}

#[test]
fn planted_stale_reads_are_caught() {
    caught(Bug::StaleReads, true, &["reads"]);
}

/// A bug in session handling, in the server core every simulated server runs: requests keyed
/// by connection, so a client's retry at another server after a timeout applies again.
#[test]
fn planted_per_connection_session_ids_are_caught() {
    caught(Bug::PerConnectionIds, true, &["integrity", "durability"]);
}

/// The scripted scenario that needs the view change passes as the system is.
#[test]
fn lagging_successor_adopts_the_log_of_a_majority() {
    for seed in 0..5 {
        let out = assert_passes(Options::lagging_successor(seed));
        let acked = out.history.invocations.iter();
        assert!(acked.filter(|i| matches!(i.result, OpResult::Ok { .. })).count() > 20);
    }
}

/// A leader that takes over with its own log is caught: voters skip the up-to-date check and
/// the new leader skips the view change. Each safeguard alone masks the other's absence in
/// this scenario (the lagging server is not voted for; or, elected, it adopts the log of a
/// majority), so each alone passes.
#[test]
fn planted_leader_keeping_its_own_log_is_caught() {
    for bug in [Bug::SkipViewChange, Bug::SkipVoteCheck] {
        assert_passes(Options { bug, ..Options::lagging_successor(0) });
    }
    let out = run_seed(Options { bug: Bug::LeaderKeepsOwnLog, ..Options::lagging_successor(0) });
    let named: Vec<&str> = out.violations.iter().map(|v| v.property).collect();
    assert!(named.contains(&"durability") || named.contains(&"agreement"), "{named:?}");
}
