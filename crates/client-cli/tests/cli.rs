//! The `auction-client` binary against fake servers: one-shot commands, `--json`, exit codes,
//! and the shell driven through standard input.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auction_proto::msg::auction::{
    AuctionEvent, AuctionState, AuctionSummary, AuctionView, Bidder, BidderAlias, BidderName,
    IncrementRule, Outcome, RejectReason,
};
use auction_proto::msg::client::{
    ClientError, PushEvent, Reply, Request, RequestBody, ServerToClient,
};
use auction_proto::{Amount, AuctionId, Seq, Timestamp};
use common::{Act, Fake, answer, ok, welcome};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_auction-client");

fn name(s: &str) -> BidderName {
    BidderName::new(s).unwrap()
}

/// #1 as `show` gives it: "Old bike" by sam, buy now for 60.00.
fn bike() -> AuctionView {
    AuctionView {
        summary: AuctionSummary {
            id: AuctionId(1),
            title: "Old bike".into(),
            seller: name("sam"),
            state: AuctionState::Open,
            price: Amount::from_minor(1000),
            leader: None,
            bids: 0,
            ends_at: Timestamp(2_000_000),
            ended_at: None,
            reserve_met: None,
        },
        description: String::new(),
        starting_price: Amount::from_minor(1000),
        increment: IncrementRule::Fixed(Amount::from_minor(100)),
        minimum_bid: Some(Amount::from_minor(1000)),
        your_minimum: None,
        buy_now: Some(Amount::from_minor(6000)),
        soft_close: None,
        opened_at: Timestamp(0),
    }
}

/// #2 as `show` gives it: bought by bidder 1 for 60.00, 3 minutes before the server's `now`
/// (1,000 s), with a reserve of 20.00 and the deadline it no longer has 16 minutes later.
fn bought_lamp() -> AuctionView {
    let mut view = bike();
    view.summary = AuctionSummary {
        id: AuctionId(2),
        title: "Lamp".into(),
        state: AuctionState::Bought,
        price: Amount::from_minor(6000),
        leader: Some(Bidder::Alias(BidderAlias(1))),
        bids: 1,
        ended_at: Some(Timestamp(1_000_000 - 180_000)),
        reserve_met: Some(true),
        ..view.summary
    };
    view.minimum_bid = None;
    view.buy_now = None;
    view
}

/// A server with a small auction world: `alice`/`secret` can log in; bids on #1 of at least
/// 5.00 are accepted at their amount with alice leading ("you" to her session, bidder 1 to
/// others), lower ones are too low; #1 can be bought for exactly 60.00, #2 was bought; #9
/// does not exist; buying #2 needs a login.
fn world() -> common::Script {
    let alice_on: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
    Arc::new(move |req: &Request, conn| {
        let reply = match &req.body {
            RequestBody::Hello { .. } => return vec![welcome(req, 1, vec![])],
            RequestBody::Login { name, token } if token == "secret" => {
                alice_on.lock().unwrap().insert(conn);
                Reply::Identity { name: Some(name.clone()) }
            }
            RequestBody::Login { .. } => {
                return vec![answer(req, 1, Err(ClientError::BadCredentials))];
            }
            RequestBody::Register { name } => {
                Reply::Registered { name: name.clone(), token: "secret".into() }
            }
            RequestBody::Whoami => Reply::Identity { name: None },
            RequestBody::Bid { auction: AuctionId(9), .. } => {
                return vec![answer(req, 1, Err(ClientError::UnknownAuction))];
            }
            RequestBody::Bid { auction, amount, .. } if *amount >= Amount::from_minor(500) => {
                let alias = BidderAlias(1);
                let leader = if alice_on.lock().unwrap().contains(&conn) {
                    Bidder::You { alias, name: name("alice") }
                } else {
                    Bidder::Alias(alias)
                };
                Reply::Outcome(Outcome::Accepted { auction: *auction, price: *amount, leader })
            }
            RequestBody::Bid { .. } => Reply::Outcome(Outcome::Rejected {
                reason: RejectReason::TooLow { minimum: Amount::from_minor(500) },
            }),
            RequestBody::ShowAuction { auction: AuctionId(1) } => Reply::Auction(bike()),
            RequestBody::ShowAuction { auction: AuctionId(2) } => Reply::Auction(bought_lamp()),
            RequestBody::BuyNow { auction: AuctionId(1), price } => {
                Reply::Outcome(if *price == Amount::from_minor(6000) {
                    Outcome::Bought { auction: AuctionId(1), price: *price }
                } else {
                    let buy_now = Amount::from_minor(6000);
                    Outcome::Rejected { reason: RejectReason::BuyNowPriceDiffers { buy_now } }
                })
            }
            RequestBody::BuyNow { .. } => {
                return vec![answer(req, 1, Err(ClientError::NotLoggedIn))];
            }
            RequestBody::Cancel { .. } => {
                return vec![answer(
                    req,
                    1,
                    Err(ClientError::Unavailable {
                        retry_after: Duration::from_millis(1),
                        leader: None,
                    }),
                )];
            }
            RequestBody::Subscribe { .. } => {
                let ev = PushEvent {
                    seq: Seq(3),
                    at: Timestamp(1_000_000),
                    event: AuctionEvent::NewHighBid {
                        auction: AuctionId(1),
                        price: Amount::from_minor(700),
                        leader: Bidder::Alias(BidderAlias(2)),
                    },
                };
                return vec![ok(req, Reply::Subscribed), Act::Send(ServerToClient::Event(ev))];
            }
            _ => Reply::Done,
        };
        vec![ok(req, reply)]
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(fake: &Fake, args: &[&str], stdin: &str) -> Run {
    let dir = std::env::temp_dir().join(format!("auction-client-test-{}", rand_suffix()));
    let r = run_in(fake, args, stdin, &[], &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// As [`run`], with environment variables, in `dir` (kept).
async fn run_in(
    fake: &Fake,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
    dir: &std::path::Path,
) -> Run {
    let mut child = Command::new(BIN)
        .arg("--server")
        .arg(fake.addr.to_string())
        .args(["--timeout", "1s", "--attempts", "2"])
        .arg("--token-dir")
        .arg(dir.join("tokens"))
        .arg("--history")
        .arg(dir.join("history"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("AUCTION_USER")
        .env_remove("AUCTION_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rand_suffix() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_success_prints_text_and_exits_0() {
    let fake = Fake::start(1, world()).await;
    let r = run(&fake, &["bid", "1", "12.50"], "").await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The fake accepts at the bid's own amount with alice leading: under the real rules, a tie.
    // Not logged in as alice, the session knows her only as bidder 1.
    let tie = "bid accepted on #1: price 12.50, bidder 1 leads (an equal maximum, placed earlier)";
    assert_eq!(r.stdout.trim(), tie);
    assert!(!r.stdout.contains('\x1b'), "no colour when stdout is not a terminal");
}

#[tokio::test(flavor = "multi_thread")]
async fn show_says_when_a_bought_auction_was_bought() {
    let fake = Fake::start(1, world()).await;
    let r = run(&fake, &["show", "2"], "").await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("bought 3m 0s ago"), "{}", r.stdout);
    assert!(!r.stdout.contains(" in "), "no countdown to the old deadline: {}", r.stdout);
    assert!(r.stdout.contains("reserve met"), "{}", r.stdout);
    assert!(r.stdout.contains("leader bidder 1"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_json_and_exit_codes_per_class() {
    let fake = Fake::start(1, world()).await;
    for (args, code, error) in [
        (&["--json", "bid", "1", "12.50"][..], 0, None),
        (&["--json", "bid", "1", "1"][..], 3, None),
        (&["--json", "bid", "9", "10"][..], 3, Some("rejected")),
        (&["--json", "buy", "2", "50"][..], 5, Some("auth")),
        (&["--json", "buy", "2"][..], 1, Some("usage")),
        (&["--json", "cancel", "1"][..], 4, Some("unavailable")),
        (&["--json", "bid", "1", "1.234"][..], 1, Some("usage")),
        (&["--json", "frobnicate"][..], 1, Some("usage")),
    ] {
        let r = run(&fake, args, "").await;
        assert_eq!(r.code, code, "{args:?}: {} {}", r.stdout, r.stderr);
        let text = if r.stdout.is_empty() { &r.stderr } else { &r.stdout };
        let v = json(text.trim());
        assert_eq!(v["exit"], code, "{args:?}");
        if let Some(error) = error {
            assert_eq!(v["error"], error, "{args:?}");
        }
    }
    let r = run(&fake, &["--json", "bid", "1", "12.50"], "").await;
    let v = json(r.stdout.trim());
    assert_eq!(v["reply"]["Outcome"]["Accepted"]["price"], 1250);
    assert_eq!(v["command"], "bid");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_exits_2_and_bad_usage_exits_1() {
    let fake = Fake::start(1, world()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out =
        Command::new(BIN).args(["--server", &closed.to_string(), "whoami"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach any server"));

    let r = run(&fake, &["bid", "1", "-3"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("bad amount \"-3\""), "{}", r.stderr);
    assert!(r.stderr.contains("usage: bid ID AMOUNT"), "{}", r.stderr);
    assert!(fake.requests().is_empty(), "nothing is sent for a usage error");

    let r = run(&fake, &["--no-such-flag"], "").await;
    assert_eq!(r.code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_documents_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit codes"));
    assert!(text.contains("4  unavailable"));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_flag_logs_in_first() {
    let fake = Fake::start(1, world()).await;
    let dir = std::env::temp_dir().join(format!("auction-client-test-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alice.token");
    std::fs::write(&file, "secret\n").unwrap();
    let file = file.to_str().unwrap();
    let args = ["--user", "alice", "--token-file", file, "bid", "1", "6"];
    let r = run_in(&fake, &args, "", &[], &dir).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bodies: Vec<RequestBody> = fake.requests().into_iter().map(|r| r.body).collect();
    assert!(matches!(&bodies[1], RequestBody::Login { token, .. } if token == "secret"));
    assert!(r.stdout.contains("you lead"), "{}", r.stdout);

    let env = [("AUCTION_TOKEN", "secret")];
    let r = run_in(&fake, &["--user", "alice", "whoami"], "", &env, &dir).await;
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let env = [("AUCTION_TOKEN", "wrong")];
    let r = run_in(&fake, &["--user", "alice", "whoami"], "", &env, &dir).await;
    assert_eq!(r.code, 5, "{} {}", r.stdout, r.stderr);
    let _ = std::fs::remove_dir_all(&dir);

    // A token on the command line is refused before anything is sent (`ps` shows it).
    let before = fake.requests().len();
    let r = run(&fake, &["--user", "alice", "--token", "secret", "whoami"], "").await;
    assert_eq!(r.code, 1, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--token-file"), "{}", r.stderr);
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_runs_commands_from_stdin() {
    let fake = Fake::start(1, world()).await;
    let script = "help bid\nwhoami\nregister alice\nbid 1 4\nbid 1 x\nnonsense\nbid 1 5\nexit\n";
    let r = run(&fake, &[], script).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for expected in [
        "usage: bid ID AMOUNT",
        "not logged in",
        "token: secret",
        "token saved to",
        "logged in as alice",
        "rejected: too low; the minimum bid is 5.00",
        "bad amount \"x\"",
        "unknown command \"nonsense\"",
        "bid accepted on #1: price 5.00, you lead",
    ] {
        assert!(r.stdout.contains(expected), "missing {expected:?} in:\n{}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_prints_pushed_events() {
    let fake = Fake::start(1, world()).await;
    let mut child = Command::new(BIN)
        .args(["--server", &fake.addr.to_string(), "--history", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"watch 1\n").await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("#1: new price 7.00, bidder 2 leads") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found);
    input.write_all(b"exit\n").await.unwrap();
    drop(input);
    let status =
        tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_watch_streams_json_events() {
    let fake = Fake::start(1, world()).await;
    let mut child = Command::new(BIN)
        .args(["--server", &fake.addr.to_string(), "--json", "watch", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = json(&lines.next_line().await.unwrap().unwrap());
    assert_eq!((first["command"].as_str(), first["ok"].as_bool()), (Some("watch"), Some(true)));
    let event = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap();
    let event = json(&event.unwrap().unwrap());
    assert_eq!(event["event"]["event"]["NewHighBid"]["price"], 700);
    child.kill().await.unwrap();
}

fn buys(fake: &Fake) -> Vec<Amount> {
    let bodies = fake.requests().into_iter().map(|r| r.body);
    bodies
        .filter_map(|b| if let RequestBody::BuyNow { price, .. } = b { Some(price) } else { None })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_buy_pays_the_price_given_or_shown() {
    let fake = Fake::start(1, world()).await;
    let r = run(&fake, &["buy", "1"], "").await;
    assert_eq!(r.code, 1, "no price and no --yes: {}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(buys(&fake).is_empty());
    let r = run(&fake, &["buy", "1", "5"], "").await;
    assert_eq!(r.code, 3, "a stale price is refused: {}", r.stderr);
    assert!(r.stderr.contains("the buy-now price is 60.00"), "{}", r.stderr);
    let r = run(&fake, &["buy", "1", "60"], "").await;
    assert_eq!((r.code, r.stdout.trim()), (0, "bought #1 for 60.00"), "{}", r.stderr);
    let r = run(&fake, &["buy", "1", "--yes"], "").await;
    assert_eq!((r.code, r.stdout.trim()), (0, "bought #1 for 60.00"), "{}", r.stderr);
    assert_eq!(buys(&fake), [500, 6000, 6000].map(Amount::from_minor));
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_buy_shows_the_price_and_asks() {
    let fake = Fake::start(1, world()).await;
    let r = run(&fake, &[], "buy 1\nn\nbuy 1 50\nbuy 1\ny\nexit\n").await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for expected in [
        "buy #1 \"Old bike\" from sam for 60.00?",
        "not bought",
        "buy #1 \"Old bike\" from sam for 60.00, not 50.00: nothing bought",
        "bought #1 for 60.00",
    ] {
        assert!(r.stdout.contains(expected), "missing {expected:?} in:\n{}", r.stdout);
    }
    assert_eq!(buys(&fake), [Amount::from_minor(6000)], "one purchase, at the price shown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_with_a_token_is_not_saved_in_the_history() {
    let fake = Fake::start(1, world()).await;
    let dir = std::env::temp_dir().join(format!("auction-client-test-{}", rand_suffix()));
    let r = run_in(&fake, &[], "login alice secret\nwhoami\nexit\n", &[], &dir).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let history = std::fs::read_to_string(dir.join("history")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(history.contains("whoami"), "{history:?}");
    assert!(!history.contains("secret"), "{history:?}");
}
