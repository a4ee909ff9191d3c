//! Membership that cannot hurt, with real processes: a short-lived server with the key never
//! becomes a voter, and a leader stopped with SIGTERM hands its leadership over first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::client::Reply;
use common::{Client, TestCluster, bid, open_auction};

#[test]
fn a_short_lived_server_with_the_key_never_becomes_a_voter() {
    // Promotion after 10 s caught up, the default.
    let mut cluster = TestCluster::start_with(3, "10s");
    let extra = cluster.add_node();
    cluster.spawn(extra);
    let node = {
        let mut id = None;
        cluster.wait_for(Duration::from_secs(20), |c| {
            id = c.report(extra).map(|r| r.node);
            id.is_some()
        });
        id.unwrap()
    };
    // It becomes a learner of the leader (replicated to, not voting) ...
    cluster.wait_for(Duration::from_secs(20), |c| {
        c.leader().and_then(|l| c.report(l)).is_some_and(|r| r.learners.contains(&node))
    });
    // ... and, stopped after a few seconds, it never counted for a quorum.
    std::thread::sleep(Duration::from_secs(4));
    cluster.kill(extra);
    for i in 0..3 {
        let r = cluster.report(i).expect("a member answers");
        assert_eq!(r.members.len(), 3, "server {i}: {r:?}");
        assert!(!r.members.contains(&node), "the short-lived server became a voter: {r:?}");
    }
    // Stopping one real member leaves 2 of 3: writes go on.
    let leader = cluster.leader().expect("a leader");
    let other = (leader + 1) % 3;
    let survivor = (leader + 2) % 3;
    cluster.kill(other);
    let mut seller = Client::connect(cluster.nodes[survivor].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "vase");
    let mut bob = Client::connect(cluster.nodes[survivor].client).unwrap();
    bob.register_and_login("bob");
    assert!(matches!(bid(&mut bob, auction, 1000), Outcome::Accepted { .. }));
}

#[test]
fn a_leader_stopped_with_sigterm_hands_the_leadership_over_first() {
    let mut cluster = TestCluster::start_captured(3);
    let leader = cluster.leader().expect("a leader");
    let other = (leader + 1) % 3;
    let mut alice = Client::connect(cluster.nodes[other].client).unwrap();
    alice.register_and_login("alice");
    let mut seller = Client::connect(cluster.nodes[other].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "lamp");
    cluster.terminate(leader);
    let status = cluster.wait_exit(leader, Duration::from_secs(20)).expect("it stops");
    assert!(status.success(), "a graceful stop: {status:?}");
    let log = cluster.nodes[leader].stderr.clone().unwrap();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("handing the leadership over first"), "{said}");
    assert!(said.contains("handed_over=true"), "another leader before it stopped: {said}");
    // The next write is answered, by the new leader.
    assert!(matches!(bid(&mut alice, auction, 1000), Outcome::Accepted { .. }));
    let new = cluster.leader().expect("a new leader");
    assert_ne!(new, leader);
}

/// `admin promote|demote|remove|move-leader` (issue 16), through the leader, with the
/// refusals an operator meets on the way.
#[test]
fn operators_demote_promote_move_the_leadership_and_remove_servers() {
    use auction_proto::msg::client::{AdminOp, AdminRefusal, ClientError, RequestBody};
    let mut cluster = TestCluster::start(3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .args(["admin-token", "--cluster-key", common::KEY])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let admin = |c: &common::TestCluster, i: usize, op| {
        let mut conn = Client::connect(c.nodes[i].client).unwrap();
        conn.request(RequestBody::Admin { token: token.clone(), op }).unwrap().result
    };
    let refused = |reason| Err(ClientError::AdminRefused { reason });
    let extra = cluster.add_node();
    cluster.spawn(extra);
    // It becomes a voter by itself (promotion after 300 ms here).
    cluster.wait_for(Duration::from_secs(30), |c| c.converged(4));
    let id = |c: &common::TestCluster, i: usize| c.report(i).unwrap().node;
    let x = id(&cluster, extra);
    let leader = cluster.leader().unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let l = id(&cluster, leader);

    // Only the leader does it; another server names the leader.
    let not_leader = admin(&cluster, follower, AdminOp::Demote(x));
    assert_eq!(not_leader, Err(ClientError::NotLeader { leader: Some(l) }));
    assert_eq!(admin(&cluster, leader, AdminOp::Demote(l)), refused(AdminRefusal::IsLeader));
    assert_eq!(admin(&cluster, leader, AdminOp::Remove(x)), refused(AdminRefusal::ServerUp));

    // Demoted: a learner, held, and not promoted again by itself.
    assert_eq!(admin(&cluster, leader, AdminOp::Demote(x)), Ok(Reply::Done));
    cluster.wait_for(Duration::from_secs(10), |c| {
        c.report(leader).is_some_and(|r| r.members.len() == 3 && r.held == [x])
    });
    std::thread::sleep(Duration::from_secs(2));
    let r = cluster.report(leader).unwrap();
    assert!(!r.members.contains(&x) && r.learners.contains(&x), "held as a learner: {r:?}");
    assert_eq!(admin(&cluster, leader, AdminOp::Promote(l)), refused(AdminRefusal::NotALearner));

    // Promoted by the operator: a voter again, no longer held.
    assert_eq!(admin(&cluster, leader, AdminOp::Promote(x)), Ok(Reply::Done));
    cluster.wait_for(Duration::from_secs(10), |c| {
        c.report(leader).is_some_and(|r| r.members.contains(&x) && r.held.is_empty())
    });

    // The leadership moves to the chosen server.
    cluster.wait_for(Duration::from_secs(10), |c| c.converged(4));
    assert_eq!(admin(&cluster, leader, AdminOp::MoveLeader(x)), Ok(Reply::Done));
    cluster.wait_for(Duration::from_secs(10), |c| c.leader() == Some(extra));

    // A server that is down is removed at once, without the removal grace.
    let gone = (0..3).find(|i| *i != leader).unwrap();
    let g = id(&cluster, gone);
    cluster.kill(gone);
    cluster.wait_for(Duration::from_secs(20), |c| {
        admin(c, extra, AdminOp::Remove(g)) == Ok(Reply::Done)
    });
    cluster.wait_for(Duration::from_secs(10), |c| {
        c.report(extra).is_some_and(|r| r.members.len() == 3 && !r.members.contains(&g))
    });
    // Writes go on in the new configuration.
    let mut seller = Client::connect(cluster.nodes[extra].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "clock");
    let mut bob = Client::connect(cluster.nodes[leader].client).unwrap();
    bob.register_and_login("bob");
    assert!(matches!(bid(&mut bob, auction, 1000), Outcome::Accepted { .. }));
}

/// Issue 16: restarting a follower (`kill -9`, then the same data directory) moves nobody
/// through an election: its pre-vote is refused while the others hear the leader, so the
/// term and the leader stay, on every server, and the restarted one keeps its term too.
#[test]
fn a_follower_restart_causes_no_election() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.leader().expect("a leader");
    let before = cluster.report(leader).unwrap();
    let follower = (leader + 1) % 3;
    for _ in 0..2 {
        cluster.kill(follower);
        std::thread::sleep(Duration::from_millis(500));
        cluster.spawn(follower);
        cluster.wait_for(Duration::from_secs(20), |c| {
            c.report(follower).is_some_and(|r| r.ready && r.leader == before.leader)
        });
    }
    for i in 0..3 {
        let r = cluster.report(i).expect("every server answers");
        assert_eq!((r.term, r.leader), (before.term, before.leader), "server {i}: {r:?}");
    }
}
