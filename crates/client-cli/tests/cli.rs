//! The `auction-client` binary against fake servers: one-shot commands, `--json`, exit codes,
//! and the shell driven through standard input.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use auction_proto::msg::auction::{AuctionEvent, BidderName, Outcome, RejectReason};
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

/// A server with a small auction world: `alice`/`secret` can log in; bids on #1 of at least
/// 5.00 are accepted, lower ones are too low; #9 does not exist.
fn world() -> common::Script {
    Arc::new(|req: &Request, _| {
        let reply = match &req.body {
            RequestBody::Hello { .. } => return vec![welcome(req, 1, vec![])],
            RequestBody::Login { name, token } if token == "secret" => {
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
            RequestBody::Bid { auction, amount } if *amount >= Amount::from_minor(500) => {
                Reply::Outcome(Outcome::Accepted {
                    auction: *auction,
                    price: *amount,
                    leader: name("alice"),
                })
            }
            RequestBody::Bid { .. } => Reply::Outcome(Outcome::Rejected {
                reason: RejectReason::TooLow { minimum: Amount::from_minor(500) },
            }),
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
                        leader: name("bob"),
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
    let _ = std::fs::remove_dir_all(&dir);
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
    assert_eq!(r.stdout.trim(), "bid accepted on #1: price 12.50, alice leads (a higher maximum)");
    assert!(!r.stdout.contains('\x1b'), "no colour when stdout is not a terminal");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_json_and_exit_codes_per_class() {
    let fake = Fake::start(1, world()).await;
    for (args, code, error) in [
        (&["--json", "bid", "1", "12.50"][..], 0, None),
        (&["--json", "bid", "1", "1"][..], 3, None),
        (&["--json", "bid", "9", "10"][..], 3, Some("rejected")),
        (&["--json", "buy", "1"][..], 5, Some("auth")),
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
    let r = run(&fake, &["--user", "alice", "--token", "secret", "bid", "1", "6"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bodies: Vec<RequestBody> = fake.requests().into_iter().map(|r| r.body).collect();
    assert!(matches!(bodies[1], RequestBody::Login { .. }));
    assert!(r.stdout.contains("you lead"), "{}", r.stdout);

    let r = run(&fake, &["--user", "alice", "--token", "wrong", "whoami"], "").await;
    assert_eq!(r.code, 5, "{} {}", r.stdout, r.stderr);
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
            if line.contains("#1: new price 7.00, bob leads") {
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
