//! The session against scripted fake servers: hello, matching, events, failover with the same
//! request number, `Behind`, `Unavailable` and client-side timeouts.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use auction_client::session::{Session, SessionConfig, SessionError};
use auction_proto::msg::auction::{AuctionEvent, Bidder, BidderAlias, BidderName, Outcome};
use auction_proto::msg::client::{
    ClientError, PushEvent, Reply, Request, RequestBody, ServerToClient,
};
use auction_proto::{Amount, AuctionId, Seq, Timestamp};
use common::{Act, Fake, answer, is_hello, ok, welcome};
use tokio::sync::mpsc;

fn config(servers: &[&Fake]) -> SessionConfig {
    SessionConfig {
        servers: servers.iter().map(|f| f.addr).collect(),
        discovery: None,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        attempts: 4,
        connect_rounds: 2,
        max_backoff: Duration::from_millis(50),
    }
}

fn alice() -> BidderName {
    BidderName::new("alice").unwrap()
}

/// alice as her own session is shown her.
fn alice_you() -> Bidder {
    Bidder::You { alias: BidderAlias(1), name: alice() }
}

fn bid() -> RequestBody {
    RequestBody::Bid { auction: AuctionId(1), amount: Amount::from_minor(1250), expected: None }
}

fn accepted() -> Reply {
    Reply::Outcome(Outcome::Accepted {
        auction: AuctionId(1),
        price: Amount::from_minor(1250),
        leader: alice_you(),
    })
}

/// A well-behaved server: welcomes, logs in, subscribes, accepts bids.
fn good(n: u8, servers: Vec<auction_proto::msg::client::ServerInfo>) -> common::Script {
    Arc::new(move |req: &Request, _| match &req.body {
        RequestBody::Hello { .. } => vec![welcome(req, n, servers.clone())],
        RequestBody::Login { name, .. } => {
            vec![ok(req, Reply::Identity { name: Some(name.clone()) })]
        }
        RequestBody::Subscribe { .. } => vec![ok(req, Reply::Subscribed)],
        RequestBody::Bid { .. } => vec![answer(req, 9, Ok(accepted()))],
        _ => vec![ok(req, Reply::Identity { name: None })],
    })
}

#[tokio::test]
async fn hello_first_then_matched_answers() {
    let a = Fake::start(1, good(1, vec![])).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    let answer = s.request(RequestBody::Whoami).await.unwrap();
    assert_eq!(answer.reply, Reply::Identity { name: None });
    let answer = s.request(bid()).await.unwrap();
    assert_eq!((answer.applied, answer.reply), (Seq(9), accepted()));
    assert_eq!(s.seen(), Seq(9));
    let reqs = a.requests();
    assert_eq!(reqs[0].body, RequestBody::Hello { client: s.client(), seen: Seq::ZERO });
    assert_eq!(reqs.len(), 3);
    assert!(reqs.windows(2).all(|w| w[0].no < w[1].no), "numbers increase: {reqs:?}");
    assert_eq!(s.server().map(|(n, _)| n), Some(common::node(1)));
    assert!(s.server_now().unwrap() >= Timestamp(1_000_000));
}

#[tokio::test]
async fn failover_resends_the_same_number_after_login_and_subscribe() {
    let b = Fake::start(2, good(2, vec![])).await;
    let b_info = b.info(0);
    let a_script: common::Script = Arc::new(move |req: &Request, _| match &req.body {
        RequestBody::Bid { .. } => vec![Act::Close], // dies mid-request
        _ => good(1, vec![b_info.clone()])(req, 0),
    });
    let a = Fake::start(1, a_script).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    let login = RequestBody::Login { name: alice(), token: "t0k".into() };
    s.request(login.clone()).await.unwrap();
    s.request(RequestBody::Subscribe { auction: Some(AuctionId(1)) }).await.unwrap();
    let answer = s.request(bid()).await.unwrap();
    assert_eq!(answer.reply, accepted());

    let sent_to_a = a.requests().last().cloned().unwrap();
    assert_eq!(sent_to_a.body, bid());
    let b_reqs = b.requests();
    let bodies: Vec<&RequestBody> = b_reqs.iter().map(|r| &r.body).collect();
    assert_eq!(
        bodies,
        [
            &RequestBody::Hello { client: s.client(), seen: Seq(1) },
            &login,
            &RequestBody::Subscribe { auction: Some(AuctionId(1)) },
            &bid(),
        ]
    );
    assert_eq!(b_reqs[3].no, sent_to_a.no, "the retry carries the same request number");
    assert_eq!(s.server().map(|(n, _)| n), Some(common::node(2)));
}

#[tokio::test]
async fn a_silent_server_is_left_after_the_timeout() {
    let b = Fake::start(2, good(2, vec![])).await;
    let silent: common::Script =
        Arc::new(
            |req: &Request, _| {
                if is_hello(req) { vec![welcome(req, 1, vec![])] } else { vec![] }
            },
        );
    let a = Fake::start(1, silent).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut cfg = config(&[&a, &b]);
    cfg.request_timeout = Duration::from_millis(200);
    let mut s = Session::new(cfg, tx);
    assert_eq!(s.request(bid()).await.unwrap().reply, accepted());
    let (a_bid, b_bid) = (a.requests()[1].clone(), b.requests()[1].clone());
    assert_eq!(a_bid, b_bid);
}

#[tokio::test]
async fn a_server_that_is_behind_is_skipped() {
    let behind: common::Script = Arc::new(|req: &Request, _| {
        vec![answer(req, 0, Err(ClientError::Behind { applied: Seq(0), seen: Seq(0) }))]
    });
    let a = Fake::start(1, behind).await;
    let b = Fake::start(2, good(2, vec![])).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a, &b]), tx);
    assert_eq!(s.request(bid()).await.unwrap().reply, accepted());
    assert!(a.requests().iter().all(is_hello));
    assert_eq!(s.server().map(|(n, _)| n), Some(common::node(2)));
}

#[tokio::test]
async fn unavailable_is_retried_with_the_same_number() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let script: common::Script = Arc::new(move |req: &Request, _| match &req.body {
        RequestBody::Hello { .. } => vec![welcome(req, 1, vec![])],
        _ if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => vec![answer(
            req,
            0,
            Err(ClientError::Unavailable { retry_after: Duration::from_millis(10), leader: None }),
        )],
        _ => vec![answer(req, 9, Ok(accepted()))],
    });
    let a = Fake::start(1, script).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    assert_eq!(s.request(bid()).await.unwrap().reply, accepted());
    let reqs = a.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[1], reqs[2]);
}

#[tokio::test]
async fn unavailable_forever_gives_up_as_unavailable() {
    let script: common::Script = Arc::new(|req: &Request, _| match &req.body {
        RequestBody::Hello { .. } => vec![welcome(req, 1, vec![])],
        _ => vec![answer(
            req,
            0,
            Err(ClientError::Unavailable { retry_after: Duration::from_millis(1), leader: None }),
        )],
    });
    let a = Fake::start(1, script).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    assert_eq!(s.request(bid()).await, Err(SessionError::Unavailable));
}

#[tokio::test]
async fn refusals_are_returned_at_once() {
    let script: common::Script = Arc::new(|req: &Request, _| match &req.body {
        RequestBody::Hello { .. } => vec![welcome(req, 1, vec![])],
        _ => vec![answer(req, 0, Err(ClientError::NotLoggedIn))],
    });
    let a = Fake::start(1, script).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    let err = s.request(bid()).await.unwrap_err();
    assert!(matches!(err, SessionError::Server(ref e) if e.0 == ClientError::NotLoggedIn));
    assert_eq!(a.requests().len(), 2);
}

#[tokio::test]
async fn no_server_is_reported() {
    // Bind and drop: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut cfg = config(&[]);
    cfg.servers = vec![port];
    let mut s = Session::new(cfg, tx);
    assert_eq!(s.request(bid()).await, Err(SessionError::NoServer { tried: 1 }));
}

#[tokio::test]
async fn pushed_events_reach_the_sink() {
    let event = PushEvent {
        seq: Seq(4),
        at: Timestamp(5),
        event: AuctionEvent::Outbid {
            auction: AuctionId(1),
            bidder: alice_you(),
            price: Amount::from_minor(900),
        },
    };
    let ev = event.clone();
    let script: common::Script = Arc::new(move |req: &Request, _| match &req.body {
        RequestBody::Hello { .. } => vec![welcome(req, 1, vec![])],
        // The event may arrive before the answer: the reader must not lose either.
        _ => vec![Act::Send(ServerToClient::Event(ev.clone())), ok(req, Reply::Subscribed)],
    });
    let a = Fake::start(1, script).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    s.request(RequestBody::Subscribe { auction: None }).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap();
    assert_eq!(got, Some(event));
}

#[tokio::test]
async fn welcome_servers_prefer_the_least_loaded_after_a_failure() {
    let c = Fake::start(3, good(3, vec![])).await;
    let b = Fake::start(2, good(2, vec![])).await;
    let list = vec![b.info(7), c.info(1)];
    let a_script: common::Script = Arc::new(move |req: &Request, _| match &req.body {
        RequestBody::Bid { .. } => vec![Act::Close],
        _ => good(1, list.clone())(req, 0),
    });
    let a = Fake::start(1, a_script).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    s.request(bid()).await.unwrap();
    assert_eq!(s.server().map(|(n, _)| n), Some(common::node(3)), "c holds fewer clients");
    assert!(b.requests().is_empty());
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_sending() {
    let a = Fake::start(1, good(1, vec![])).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut s = Session::new(config(&[&a]), tx);
    let spec = auction_proto::msg::auction::AuctionSpec {
        title: "t".into(),
        description: "x".repeat(70_000),
        starting_price: Amount::from_minor(100),
        reserve: None,
        increment: auction_proto::msg::auction::IncrementRule::Fixed(Amount::from_minor(10)),
        duration: Duration::from_secs(60),
        soft_close: None,
        buy_now: None,
    };
    let err = s.request(RequestBody::Open { spec }).await.unwrap_err();
    assert!(matches!(err, SessionError::TooLarge { .. }), "{err:?}");
    assert!(a.requests().is_empty());
}
