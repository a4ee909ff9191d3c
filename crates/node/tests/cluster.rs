//! Real `auction-node` processes on loopback, driven through the client protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use auction_proto::msg::auction::{
    AuctionEvent, AuctionState, Bidder, BidderAlias, BidderName, Outcome, RejectReason,
};
use auction_proto::msg::client::{ClientError, ListFilter, Reply, RequestBody, ServerToClient};
use auction_proto::{Amount, AuctionId, RequestNo, Seq};
use common::{Client, TestCluster, bid, open_auction, outcome};

/// History of `auction` as server `i` sees it once it has applied `seq`.
fn history_at(
    cluster: &mut TestCluster,
    i: usize,
    auction: AuctionId,
    seq: auction_proto::Seq,
) -> Vec<auction_proto::msg::auction::BidRecord> {
    let addr = cluster.nodes[i].client;
    let mut out = None;
    cluster.wait_for(Duration::from_secs(20), |_| {
        out = common::history_if_applied(addr, auction, seq);
        out.is_some()
    });
    out.unwrap()
}

#[test]
fn every_node_shows_the_same_state_and_a_retry_is_applied_once() {
    let mut cluster = TestCluster::start(3);
    let mut seller = Client::connect(cluster.nodes[0].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "lamp");
    let mut alice = Client::connect(cluster.nodes[1].client).unwrap();
    alice.register_and_login("alice");
    let mut bob = Client::connect(cluster.nodes[2].client).unwrap();
    let bob_token = bob.register_and_login("bob");

    assert!(matches!(bid(&mut alice, auction, 1000), Outcome::Accepted { .. }));
    assert_eq!(
        bid(&mut bob, auction, 1000),
        Outcome::Rejected { reason: RejectReason::TooLow { minimum: Amount::from_minor(1100) } }
    );
    // A retry of bob's next bid with the same request number, on a new connection to
    // another server, returns the first outcome and is not applied twice.
    let body = RequestBody::Bid { auction, amount: Amount::from_minor(1500), expected: None };
    let first = bob.send(RequestNo(100), body.clone()).unwrap();
    assert!(matches!(outcome(&first), Outcome::Accepted { .. }));
    let mut bob_again = Client::connect_as(cluster.nodes[0].client, bob.id, bob.seen).unwrap();
    let name = auction_proto::msg::auction::BidderName::new("bob").unwrap();
    let login = bob_again.request(RequestBody::Login { name, token: bob_token }).unwrap();
    assert!(login.result.is_ok(), "{login:?}");
    let second = bob_again.send(RequestNo(100), body).unwrap();
    assert_eq!(outcome(&second), outcome(&first), "the retry returns the first outcome");

    let seq = bob.seen.max(alice.seen);
    let histories: Vec<_> = (0..3).map(|i| history_at(&mut cluster, i, auction, seq)).collect();
    assert_eq!(histories[0].len(), 2, "alice's bid and bob's one accepted bid: {:?}", histories[0]);
    assert_eq!(histories[0], histories[1]);
    assert_eq!(histories[1], histories[2]);
}

#[test]
fn a_retried_request_from_the_same_session_is_applied_once() {
    let cluster = TestCluster::start(3);
    let mut seller = Client::connect(cluster.nodes[0].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "chair");
    let mut alice = Client::connect(cluster.nodes[1].client).unwrap();
    alice.register_and_login("alice");
    let body = RequestBody::Bid { auction, amount: Amount::from_minor(1200), expected: None };
    let a = alice.send(RequestNo(50), body.clone()).unwrap();
    let b = alice.send(RequestNo(50), body).unwrap();
    assert_eq!(outcome(&a), outcome(&b), "the retry returns the first outcome");
    let h = alice.request(RequestBody::History { auction }).unwrap();
    let Ok(Reply::History(h)) = h.result else { panic!("history: {h:?}") };
    assert_eq!(h.len(), 1, "applied once: {h:?}");
}

#[test]
fn after_the_leader_is_killed_a_new_one_is_elected_and_bidding_continues() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.leader().expect("a leader");
    let other = (leader + 1) % 3;
    let mut seller = Client::connect(cluster.nodes[other].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "bike");
    let mut alice = Client::connect(cluster.nodes[other].client).unwrap();
    alice.register_and_login("alice");
    assert!(matches!(bid(&mut alice, auction, 1000), Outcome::Accepted { .. }));

    cluster.kill(leader);
    // The survivors elect a new leader; the next bid (retried while unavailable) commits.
    assert!(matches!(bid(&mut alice, auction, 2000), Outcome::Accepted { .. }));
    cluster.wait_for(Duration::from_secs(20), |c| c.leader().is_some_and(|l| l != leader));
    let h = history_at(&mut cluster, other, auction, alice.seen);
    assert_eq!(h.len(), 2);
}

#[test]
fn a_killed_follower_restarts_and_catches_up() {
    let mut cluster = TestCluster::start(3);
    let leader = cluster.leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let mut seller = Client::connect(cluster.nodes[leader].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "desk");
    cluster.kill(follower);
    let mut alice = Client::connect(cluster.nodes[leader].client).unwrap();
    alice.register_and_login("alice");
    for i in 0..5 {
        assert!(matches!(bid(&mut alice, auction, 1000 + i * 100), Outcome::Accepted { .. }));
    }
    cluster.spawn(follower);
    let h = history_at(&mut cluster, follower, auction, alice.seen);
    assert_eq!(h.len(), 5);
}

#[test]
fn a_full_cluster_restart_keeps_every_acknowledged_bid() {
    let mut cluster = TestCluster::start(3);
    let mut seller = Client::connect(cluster.nodes[0].client).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "piano");
    let mut alice = Client::connect(cluster.nodes[1].client).unwrap();
    alice.register_and_login("alice");
    let mut accepted = 0;
    for i in 0..10 {
        if matches!(bid(&mut alice, auction, 1000 + i * 100), Outcome::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 10);
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.spawn(i);
    }
    cluster.wait_for(Duration::from_secs(30), |c| c.converged(3));
    for i in 0..3 {
        let h = history_at(&mut cluster, i, auction, alice.seen);
        assert_eq!(h.len(), 10, "server {i} lost acknowledged bids: {h:?}");
    }
    let mut c = Client::connect(cluster.nodes[2].client).unwrap();
    let r = c.request(RequestBody::ListAuctions { filter: ListFilter::All }).unwrap();
    let Ok(Reply::Auctions(list)) = r.result else { panic!("{r:?}") };
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, AuctionState::Open);
    // One bidder raising their own maximum: the price stays at the start (proxy bidding).
    assert_eq!(list[0].price, Amount::from_minor(1000));
    // Read by nobody in particular: alice is shown as bidder 1.
    assert_eq!(list[0].leader.as_ref().map(ToString::to_string).as_deref(), Some("bidder 1"));
}

#[test]
fn bidders_are_shown_by_alias_except_to_the_seller_and_to_themselves() {
    let cluster = TestCluster::start(1);
    let addr = cluster.nodes[0].client;
    let mut seller = Client::connect(addr).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "globe");
    let mut alice = Client::connect(addr).unwrap();
    alice.register_and_login("alice");
    let mut bob = Client::connect(addr).unwrap();
    bob.register_and_login("bob");
    let mut watcher = Client::connect(addr).unwrap();
    for c in [&mut seller, &mut alice, &mut watcher] {
        let r = c.request(RequestBody::Subscribe { auction: Some(auction) }).unwrap();
        assert!(r.result.is_ok(), "{r:?}");
    }
    let name = |n: &str| BidderName::new(n).unwrap();
    let alias = |n| Bidder::Alias(BidderAlias(n));
    let you = |n, who| Bidder::You { alias: BidderAlias(n), name: name(who) };
    let named = |n, who| Bidder::Named { alias: BidderAlias(n), name: name(who) };
    assert!(matches!(bid(&mut alice, auction, 1000), Outcome::Accepted { .. }));
    let price = Amount::from_minor(1100);
    assert_eq!(
        bid(&mut bob, auction, 1500),
        Outcome::Accepted { auction, price, leader: you(2, "bob") }
    );
    // The events were pushed before the answers to these.
    for c in [&mut seller, &mut alice, &mut watcher] {
        c.request(RequestBody::Whoami).unwrap();
    }
    let outbid = |c: &Client| {
        let mut shown = c.events.iter().filter_map(|e| match &e.event {
            AuctionEvent::Outbid { bidder, .. } => Some(bidder.clone()),
            _ => None,
        });
        shown.next()
    };
    assert_eq!(outbid(&watcher), Some(alias(1)));
    assert_eq!(outbid(&alice), Some(you(1, "alice")));
    assert_eq!(outbid(&seller), Some(named(1, "alice")));
    let history = |c: &mut Client| {
        let r = c.request(RequestBody::History { auction }).unwrap();
        let Ok(Reply::History(h)) = r.result else { panic!("history: {r:?}") };
        h.into_iter().map(|b| b.bidder).collect::<Vec<_>>()
    };
    assert_eq!(history(&mut watcher), [alias(1), alias(2)]);
    assert_eq!(history(&mut alice), [you(1, "alice"), alias(2)]);
    assert_eq!(history(&mut seller), [named(1, "alice"), named(2, "bob")]);
    let leader = |c: &mut Client| {
        let r = c.request(RequestBody::ListAuctions { filter: ListFilter::All }).unwrap();
        let Ok(Reply::Auctions(list)) = r.result else { panic!("list: {r:?}") };
        list[0].leader.clone()
    };
    assert_eq!(leader(&mut watcher), Some(alias(2)));
    assert_eq!(leader(&mut bob), Some(you(2, "bob")));
    assert_eq!(leader(&mut seller), Some(named(2, "bob")));
}

#[test]
fn garbage_and_oversized_client_frames_get_an_error_and_the_node_stays_up() {
    let mut cluster = TestCluster::start(1);
    let addr = cluster.nodes[0].client;
    let mut junk = Client::connect(addr).unwrap();
    junk.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    match junk.read() {
        Ok(ServerToClient::Response(r)) => assert_eq!(r.result, Err(ClientError::BadRequest)),
        other => panic!("expected an error response, got {other:?}"),
    }
    let mut big = Client::connect(addr).unwrap();
    let mut frame = vec![b'A', b'C', 1, 1];
    frame.extend_from_slice(&(10u32 << 20).to_be_bytes());
    big.write_raw(&frame).unwrap();
    match big.read() {
        Ok(ServerToClient::Response(r)) => assert_eq!(r.result, Err(ClientError::BadRequest)),
        other => panic!("expected an error response, got {other:?}"),
    }
    // Requests before Hello are refused, and the node still serves.
    assert!(cluster.running(0));
    let mut ok = Client::connect(addr).unwrap();
    let r = ok.request(RequestBody::Whoami).unwrap();
    assert_eq!(r.result, Ok(Reply::Identity { name: None }));
}

#[test]
fn a_refusal_by_the_connection_never_lowers_the_applied_seq() {
    let mut cluster = TestCluster::start(1);
    let mut c = Client::connect(cluster.nodes[0].client).unwrap();
    let r = c.retry(RequestBody::Register { name: BidderName::new("carol").unwrap() });
    assert!(matches!(r.result, Ok(Reply::Registered { .. })), "{r:?}");
    assert!(r.applied > Seq(0), "a committed write reports its seq: {r:?}");
    // A bad frame is refused by the connection task itself, which knows no seq.
    c.write_raw(b"not a frame at all").unwrap();
    match c.read() {
        Ok(ServerToClient::Response(bad)) => {
            assert_eq!(bad.result, Err(ClientError::BadRequest));
            assert!(bad.applied >= r.applied, "applied went back: {bad:?} after {r:?}");
        }
        other => panic!("expected an error response, got {other:?}"),
    }
    assert!(cluster.running(0));
}

#[test]
fn a_forged_peer_frame_changes_nothing() {
    use auction_proto::msg::client::ListFilter;
    use auction_proto::msg::log::{Command, Operation};
    use auction_proto::msg::peer::{OrderingMsg, PeerBody};
    use auction_proto::{
        Addressee, ClusterId, ClusterKey, Envelope, Incarnation, Keyring, NodeId, PeerCodec, Term,
    };
    let mut cluster = TestCluster::start(1);
    // The leader's view change is over (its no-op at seq 2 is committed and applied), so
    // nothing legitimate moves the commit point during the test.
    cluster.wait_for(Duration::from_secs(10), |c| {
        c.report(0).is_some_and(|r| r.commit >= Seq(2) && r.applied == r.commit)
    });
    let node = cluster.report(0).unwrap();
    // Same cluster name, wrong key: a forged order and a forged proposal.
    let mut forger = PeerCodec::new(
        ClusterId::from_name(&cluster.cluster),
        Keyring::new(ClusterKey::new(&[7; 32]).unwrap()),
    );
    let forged = PeerBody::Ordering(OrderingMsg::Propose {
        term: node.term,
        commands: vec![Command { origin: None, op: Operation::Close { auction: AuctionId(1) } }],
    });
    // Addressed to the node's current boot: everything right but the key.
    let env = Envelope {
        cluster: ClusterId::from_name(&cluster.cluster),
        instance: None,
        key: auction_proto::KeyId(0),
        sender: NodeId::random(),
        incarnation: Incarnation(1),
        to: Some(Addressee { node: node.node, incarnation: node.incarnation }),
        counter: 1u64 << 63 | 1,
    };
    let frame = forger.encode(&env, &forged).unwrap();
    let mut tcp = std::net::TcpStream::connect(cluster.nodes[0].peer).unwrap();
    std::io::Write::write_all(&mut tcp, &frame).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stepdown =
        PeerBody::Ordering(OrderingMsg::NotLeader { term: Term(node.term.0 + 5), leader: None });
    udp.send_to(
        &forger.encode(&Envelope { counter: 2, ..env }, &stepdown).unwrap(),
        cluster.nodes[0].peer,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let after = cluster.report(0).unwrap();
    assert_eq!(after.term, node.term, "no forged term change");
    assert_eq!(after.commit, node.commit, "nothing forged was committed");
    assert!(cluster.running(0));
    let mut c = Client::connect(cluster.nodes[0].client).unwrap();
    let r = c.request(RequestBody::ListAuctions { filter: ListFilter::All }).unwrap();
    assert_eq!(r.result, Ok(Reply::Auctions(vec![])));
    cluster.wait_for(Duration::from_secs(5), |c| c.report(0).is_some());
}

#[test]
fn admin_operations_need_the_token_and_step_down_moves_the_leadership() {
    use auction_proto::msg::client::AdminOp;
    let mut cluster = TestCluster::start(3);
    let leader = cluster.leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let admin = |c: &mut Client, token: &str, op| {
        c.request(RequestBody::Admin { token: token.into(), op }).unwrap().result
    };
    // The default token is derived from the cluster key; `auction-node admin-token` prints it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .args(["admin-token", "--cluster-key", common::KEY])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 32, "{token:?}");
    let mut f = Client::connect(cluster.nodes[follower].client).unwrap();
    assert_eq!(admin(&mut f, "wrong", AdminOp::Report), Err(ClientError::NotAuthorized));
    // The key itself is not the admin token: it never has to travel on a client connection.
    assert_eq!(admin(&mut f, common::KEY, AdminOp::Report), Err(ClientError::NotAuthorized));
    assert!(matches!(admin(&mut f, &token, AdminOp::Report), Ok(Reply::Report(_))));
    assert!(matches!(
        admin(&mut f, &token, AdminOp::StepDown),
        Err(ClientError::NotLeader { leader: Some(_) })
    ));
    assert_eq!(admin(&mut f, &token, AdminOp::Snapshot), Ok(Reply::Done));
    let old = cluster.report(leader).unwrap().node;
    let mut l = Client::connect(cluster.nodes[leader].client).unwrap();
    assert_eq!(admin(&mut l, &token, AdminOp::StepDown), Ok(Reply::Done));
    cluster.wait_for(Duration::from_secs(20), |c| {
        c.converged(3) && c.report(0).is_some_and(|r| r.leader.is_some_and(|x| x != old))
    });
}

#[test]
fn the_metrics_endpoint_serves_prometheus_text() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let peer = format!("127.0.0.1:{}", common::free_port());
    let client = format!("127.0.0.1:{}", common::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .args(["run", "--bootstrap", "--dev-key", "--no-broadcast", "--peer-addr", &peer])
        .args(["--client-addr", &client, "--metrics-addr", &metrics.to_string()])
        .args(["--discovery-port", &common::free_port().to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut page = String::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(mut s) = std::net::TcpStream::connect(metrics) else { continue };
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        page.clear();
        let _ = s.read_to_string(&mut page);
        if page.contains("auction_is_leader 1") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    for name in [
        "auction_commit_seq",
        "auction_applied_seq",
        "auction_term",
        "auction_members{state=\"alive\"}",
        "auction_write_latency_seconds_count",
    ] {
        assert!(page.contains(name), "missing {name} in:\n{page}");
    }
    assert!(page.contains("auction_is_leader 1"), "a lone bootstrapped node leads:\n{page}");
}

#[test]
fn another_session_cannot_use_a_client_id_it_has_seen() {
    let cluster = TestCluster::start(1);
    let addr = cluster.nodes[0].client;
    let mut seller = Client::connect(addr).unwrap();
    seller.register_and_login("seller");
    let auction = open_auction(&mut seller, "vase");
    let mut victim = Client::connect(addr).unwrap();
    victim.register_and_login("victim");
    // The attacker learns the victim's session id from `clients` and says hello with it.
    let mut attacker = Client::connect(addr).unwrap();
    attacker.register_and_login("attacker");
    // Without the admin token the list is refused; even with it (a leaked operator token)
    // it shows no session's secret id.
    let r = attacker.request(RequestBody::Clients).unwrap();
    assert_eq!(r.result, Err(ClientError::NotAuthorized));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auction-node"))
        .args(["admin-token", "--cluster-key", common::KEY])
        .output()
        .unwrap();
    let admin_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let op = auction_proto::msg::client::AdminOp::Clients;
    let r = attacker.request(RequestBody::Admin { token: admin_token, op }).unwrap();
    let Ok(Reply::Clients(list)) = r.result else { panic!("{r:?}") };
    let shown: Vec<_> = list.iter().map(|c| c.client).collect();
    assert!(!shown.contains(&victim.id), "the secret id is never shown");
    let attacker_token = attacker_token_of(&mut attacker);
    for id in shown {
        // Under each shown id, the attacker writes with request number 7...
        let mut forger = Client::connect_as(addr, id, attacker.seen).unwrap();
        let name = auction_proto::msg::auction::BidderName::new("attacker").unwrap();
        let login = forger.request(RequestBody::Login { name, token: attacker_token.clone() });
        assert!(login.unwrap().result.is_ok());
        let body = RequestBody::Bid { auction, amount: Amount::from_minor(5000), expected: None };
        let _ = forger.send(RequestNo(7), body).unwrap();
    }
    // ...and the victim's own request 7 is still applied as itself: too low now, not the
    // attacker's "accepted" handed back as if it were the victim's.
    let body = RequestBody::Bid { auction, amount: Amount::from_minor(1000), expected: None };
    let mine = victim.send(RequestNo(7), body).unwrap();
    assert!(
        matches!(outcome(&mine), Outcome::Rejected { reason: RejectReason::TooLow { .. } }),
        "{mine:?}"
    );
}

/// The attacker's token (registered by `register_and_login`), read back from a new login.
fn attacker_token_of(c: &mut Client) -> String {
    c.last_token.clone().expect("registered")
}

#[test]
fn a_retried_register_gives_the_token_that_was_committed() {
    let cluster = TestCluster::start(1);
    let addr = cluster.nodes[0].client;
    let mut a = Client::connect(addr).unwrap();
    let name = auction_proto::msg::auction::BidderName::new("dora").unwrap();
    let first = a.send(RequestNo(3), RequestBody::Register { name: name.clone() }).unwrap();
    // The same request again, on a new connection (as after a lost answer).
    let mut b = Client::connect_as(addr, a.id, a.seen).unwrap();
    let again = b.send(RequestNo(3), RequestBody::Register { name: name.clone() }).unwrap();
    let (Ok(Reply::Registered { token: t1, .. }), Ok(Reply::Registered { token: t2, .. })) =
        (&first.result, &again.result)
    else {
        panic!("{first:?} / {again:?}")
    };
    assert_eq!(t1, t2);
    let login = b.request(RequestBody::Login { name, token: t2.clone() }).unwrap();
    assert!(login.result.is_ok(), "{login:?}");
}

#[test]
fn a_client_pipelining_many_requests_gets_every_answer() {
    use auction_proto::msg::client::{ClientToServer, Request};
    let cluster = TestCluster::start(1);
    let mut c = Client::connect(cluster.nodes[0].client).unwrap();
    // More than one connection may have in flight: the server reads the rest as it answers.
    let n = 3 * auction_node::clients::MAX_IN_FLIGHT as u64;
    let codec = auction_proto::ClientCodec::default();
    let mut bytes = Vec::new();
    for no in 1000..1000 + n {
        let req = ClientToServer::Request(Request { no: RequestNo(no), body: RequestBody::Whoami });
        codec.encode_into(&req, &mut bytes).unwrap();
    }
    c.write_raw(&bytes).unwrap();
    let mut answered = Vec::new();
    while (answered.len() as u64) < n {
        match c.read().unwrap() {
            ServerToClient::Response(r) => {
                assert_eq!(r.result, Ok(Reply::Identity { name: None }));
                answered.push(r.no.0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answered, (1000..1000 + n).collect::<Vec<_>>(), "every request, in order");
}
