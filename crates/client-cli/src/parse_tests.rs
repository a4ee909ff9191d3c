use super::*;

fn p(line: &str) -> Result<Command, ParseError> {
    parse_line(line)
}

fn name(s: &str) -> BidderName {
    BidderName::new(s).unwrap()
}

fn cents(c: u64) -> Amount {
    Amount::from_minor(c)
}

#[test]
fn words_split_with_quotes_and_escapes() {
    assert_eq!(split_words("  a  b ").unwrap(), ["a", "b"]);
    assert_eq!(split_words(r#"open "Old bike" x"#).unwrap(), ["open", "Old bike", "x"]);
    assert_eq!(split_words("'it''s'").unwrap(), ["its"]);
    assert_eq!(split_words(r#""a \"b\"""#).unwrap(), [r#"a "b""#]);
    assert_eq!(split_words(r"a\ b").unwrap(), ["a b"]);
    assert_eq!(split_words(r#""""#).unwrap(), [""]);
    assert_eq!(split_words(r#"open "Old"#), Err(ParseError::UnclosedQuote));
}

#[test]
fn seed_commands_take_no_arguments() {
    for (line, cmd) in [
        ("find", Command::Find),
        ("report", Command::Report),
        ("servers", Command::Servers),
        ("clients", Command::Clients),
        ("queue", Command::Queue),
        ("leave", Command::Leave),
        ("clear", Command::Clear),
        ("exit", Command::Exit),
        ("quit", Command::Exit),
        ("whoami", Command::Whoami),
        ("unwatch", Command::Unwatch),
        ("  REPORT ", Command::Report),
    ] {
        assert_eq!(p(line), Ok(cmd), "{line}");
        let extra = format!("{line} extra");
        assert!(matches!(p(&extra), Err(ParseError::Unexpected { .. })), "{extra}");
    }
}

#[test]
fn empty_and_unknown() {
    assert_eq!(p(""), Err(ParseError::Empty));
    assert_eq!(p("   "), Err(ParseError::Empty));
    assert_eq!(p("rmi x"), Err(ParseError::UnknownCommand { name: "rmi".into() }));
}

#[test]
fn help_with_and_without_topic() {
    assert_eq!(p("help"), Ok(Command::Help(None)));
    assert_eq!(p("help Bid"), Ok(Command::Help(Some("bid".into()))));
    assert!(p("help a b").is_err());
    for c in COMMANDS {
        assert_eq!(help_for(c.name), Some(c));
        assert!(c.usage.starts_with(c.name));
    }
}

#[test]
fn register_and_login() {
    assert_eq!(p("register alice"), Ok(Command::Register { name: name("alice") }));
    assert_eq!(p("register"), Err(ParseError::Missing { command: "register", what: "NAME" }));
    assert!(matches!(p("register 'a b'"), Err(ParseError::BadName { .. })));
    assert!(matches!(p(&format!("register {}", "x".repeat(33))), Err(ParseError::BadName { .. })));
    assert_eq!(
        p("login bob s3cret"),
        Ok(Command::Login { name: name("bob"), token: Some("s3cret".into()) })
    );
    assert_eq!(p("login bob"), Ok(Command::Login { name: name("bob"), token: None }));
    assert!(matches!(p("login bob t extra"), Err(ParseError::Unexpected { .. })));
}

#[test]
fn auctions_filter() {
    assert_eq!(p("auctions"), Ok(Command::Auctions { filter: ListFilter::Open }));
    assert_eq!(p("auctions ended"), Ok(Command::Auctions { filter: ListFilter::Ended }));
    assert_eq!(p("list all"), Ok(Command::Auctions { filter: ListFilter::All }));
    assert!(matches!(p("auctions closed"), Err(ParseError::NotOneOf { .. })));
}

#[test]
fn auction_ids() {
    assert_eq!(p("show 3"), Ok(Command::Show { auction: AuctionId(3) }));
    assert_eq!(p("show #12"), Ok(Command::Show { auction: AuctionId(12) }));
    assert_eq!(p("history 1"), Ok(Command::History { auction: AuctionId(1) }));
    assert_eq!(p("buy 2"), Ok(Command::Buy { auction: AuctionId(2), price: None, yes: false }));
    assert_eq!(p("cancel 2"), Ok(Command::Cancel { auction: AuctionId(2) }));
    for bad in ["show x", "show -1", "show #", "show 1.5", "show 99999999999999999999"] {
        assert!(matches!(p(bad), Err(ParseError::BadAuctionId { .. })), "{bad}");
    }
    assert_eq!(p("show"), Err(ParseError::Missing { command: "show", what: "auction ID" }));
    assert!(matches!(p("cancel 1 2"), Err(ParseError::Unexpected { .. })));
}

#[test]
fn bid_amounts() {
    let bid = |amount| Ok(Command::Bid { auction: AuctionId(1), amount, expected: None });
    assert_eq!(p("bid 1 12"), bid(cents(1200)));
    assert_eq!(p("bid 1 12.5"), bid(cents(1250)));
    assert_eq!(p("bid 1 12.50"), bid(cents(1250)));
    let max = Ok(Command::MaxBid { auction: AuctionId(4), max: cents(8000), expected: None });
    assert_eq!(p("maxbid 4 80"), max);
    assert!(matches!(
        p("bid 1 1.234"),
        Err(ParseError::BadAmount { source: ParseAmountError::TooPrecise { digits: 3 }, .. })
    ));
    assert!(matches!(
        p("bid 1 -3"),
        Err(ParseError::BadAmount {
            source: ParseAmountError::InvalidCharacter { found: '-' },
            ..
        })
    ));
    assert!(matches!(p("bid 1 abc"), Err(ParseError::BadAmount { .. })));
    assert_eq!(p("bid 1 0"), Err(ParseError::ZeroAmount { what: "amount" }));
    assert_eq!(p("bid 1"), Err(ParseError::Missing { command: "bid", what: "amount" }));
    assert_eq!(p("maxbid 1"), Err(ParseError::Missing { command: "maxbid", what: "maximum" }));
    assert!(matches!(p("bid x 5"), Err(ParseError::BadAuctionId { .. })));
    assert!(matches!(p("bid 1 5 6"), Err(ParseError::Unexpected { .. })));
}

#[test]
fn watch_one_or_all() {
    assert_eq!(p("watch"), Ok(Command::Watch { auction: None }));
    assert_eq!(p("watch all"), Ok(Command::Watch { auction: None }));
    assert_eq!(p("watch 7"), Ok(Command::Watch { auction: Some(AuctionId(7)) }));
    assert!(matches!(p("watch seven"), Err(ParseError::BadAuctionId { .. })));
}

#[test]
fn admin_ops() {
    assert_eq!(
        p("admin 127.0.0.1:7000 step-down"),
        Ok(Command::Admin { server: "127.0.0.1:7000".into(), op: AdminOp::StepDown })
    );
    for (w, op) in [
        ("report", AdminOp::Report),
        ("queue", AdminOp::Queue),
        ("leave", AdminOp::Leave),
        ("snapshot", AdminOp::Snapshot),
    ] {
        assert_eq!(p(&format!("admin ab12 {w}")), Ok(Command::Admin { server: "ab12".into(), op }));
    }
    assert!(matches!(p("admin ab12 reboot"), Err(ParseError::NotOneOf { .. })));
    for (w, op) in [
        ("promote", MemberOp::Promote),
        ("demote", MemberOp::Demote),
        ("remove", MemberOp::Remove),
        ("move-leader", MemberOp::MoveLeader),
    ] {
        let want = Command::AdminMember { server: "ab12".into(), op, target: "cd34".into() };
        assert_eq!(p(&format!("admin ab12 {w} cd34")), Ok(want));
        let missing = ParseError::Missing { command: "admin", what: "NODE" };
        assert_eq!(p(&format!("admin ab12 {w}")), Err(missing));
    }
    let node = auction_proto::NodeId::from_bytes([7; 16]);
    assert_eq!(MemberOp::MoveLeader.with(node), AdminOp::MoveLeader(node));
    assert_eq!(p("admin ab12"), Err(ParseError::Missing { command: "admin", what: "operation" }));
    assert_eq!(p("admin"), Err(ParseError::Missing { command: "admin", what: "SERVER" }));
}

#[test]
fn open_with_defaults() {
    let Ok(Command::Open(spec)) = p(r#"open "Old bike" --start 10"#) else { panic!() };
    assert_eq!(spec.title, "Old bike");
    assert_eq!(spec.starting_price, cents(1000));
    assert_eq!(spec.duration, Duration::from_secs(3600));
    assert_eq!(spec.increment, IncrementRule::Fixed(cents(100)));
    assert_eq!((spec.reserve, spec.buy_now, spec.soft_close), (None, None, None));
}

#[test]
fn open_with_everything() {
    let line = r#"open Lamp --start=1.50 --duration 1h30m --tiers 0:0.25,25:1 --reserve 20
        --buy-now 60 --soft-close 2m/2m/10m --desc "brass, works""#;
    let Ok(Command::Open(spec)) = p(line) else { panic!() };
    assert_eq!(spec.title, "Lamp");
    assert_eq!(spec.description, "brass, works");
    assert_eq!(spec.starting_price, cents(150));
    assert_eq!(spec.duration, Duration::from_secs(5400));
    assert_eq!(
        spec.increment,
        IncrementRule::Tiered(vec![
            IncrementTier { from: cents(0), increment: cents(25) },
            IncrementTier { from: cents(2500), increment: cents(100) },
        ])
    );
    assert_eq!(spec.reserve, Some(cents(2000)));
    assert_eq!(spec.buy_now, Some(cents(6000)));
    assert_eq!(
        spec.soft_close,
        Some(SoftClose {
            window: Duration::from_secs(120),
            extension: Duration::from_secs(120),
            max_extension: Duration::from_secs(600),
        })
    );
}

#[test]
fn open_refuses_bad_input() {
    assert_eq!(p("open --start 5"), Err(ParseError::Missing { command: "open", what: "TITLE" }));
    assert_eq!(
        p("open Lamp"),
        Err(ParseError::Missing { command: "open", what: "--start AMOUNT" })
    );
    assert_eq!(
        p("open Lamp --start"),
        Err(ParseError::Missing { command: "open", what: "starting price" })
    );
    assert!(matches!(p("open Lamp Two --start 5"), Err(ParseError::Unexpected { .. })));
    assert!(matches!(p("open Lamp --start 5 --colour red"), Err(ParseError::UnknownOption { .. })));
    assert!(matches!(p("open Lamp --start 1.234"), Err(ParseError::BadAmount { .. })));
    assert!(matches!(
        p("open Lamp --start 5 --duration 0s"),
        Err(ParseError::BadDuration { source: ParseDurationError::Zero, .. })
    ));
    assert!(matches!(
        p("open Lamp --start 5 --duration 5x"),
        Err(ParseError::BadDuration { source: ParseDurationError::UnknownUnit { .. }, .. })
    ));
    assert!(matches!(p("open Lamp --start 5 --tiers 0-1"), Err(ParseError::BadFormat { .. })));
    assert!(matches!(
        p("open Lamp --start 5 --soft-close 2m/2m"),
        Err(ParseError::BadFormat { .. })
    ));
    assert_eq!(p("open Lamp --start 5 --increment 1 --tiers 0:1"), Err(ParseError::IncrementTwice));
    assert_eq!(p(r#"open "Lamp --start 5"#), Err(ParseError::UnclosedQuote));
}

#[test]
fn errors_name_their_command_for_usage() {
    assert_eq!(p("bid 1").unwrap_err().command(), Some("bid"));
    assert_eq!(p("open Lamp").unwrap_err().command(), Some("open"));
    assert_eq!(p("zzz").unwrap_err().command(), None);
}

#[test]
fn one_shot_words_parse_like_lines() {
    let words = ["open", "Old bike", "--start", "10", "--duration", "5m"];
    assert_eq!(parse_words(&words), p(r#"open "Old bike" --start 10 --duration 5m"#));
}

#[test]
fn parser_never_panics_on_junk() {
    for line in ["\"", "'", "\\", "bid # #", "open --start", "admin '' ''", "show ##1", "bid 1 ."] {
        let _ = p(line);
    }
}

#[test]
fn buy_takes_the_expected_price_or_yes() {
    let buy = |price, yes| Ok(Command::Buy { auction: AuctionId(3), price, yes });
    assert_eq!(p("buy 3 50"), buy(Some(cents(5000)), false));
    assert_eq!(p("buy 3 --yes"), buy(None, true));
    assert_eq!(p("buy #3 50.00 -y"), buy(Some(cents(5000)), true));
    assert!(matches!(p("buy 3 --yes --yes"), Err(ParseError::Repeated { .. })));
    assert!(matches!(p("buy 3 --expect 5"), Err(ParseError::UnknownOption { .. })));
    assert!(matches!(p("buy 3 0"), Err(ParseError::ZeroAmount { .. })));
}

#[test]
fn bids_may_carry_the_price_and_leader_they_expect() {
    let expected = |price, leader: Option<u32>| Expected { price, leader: leader.map(BidderAlias) };
    assert_eq!(
        p("bid 1 12 --expect 11"),
        Ok(Command::Bid {
            auction: AuctionId(1),
            amount: cents(1200),
            expected: Some(expected(cents(1100), None)),
        })
    );
    assert_eq!(
        p("maxbid 1 30 --expect=11 --leader 3"),
        Ok(Command::MaxBid {
            auction: AuctionId(1),
            max: cents(3000),
            expected: Some(expected(cents(1100), Some(3))),
        })
    );
    assert_eq!(
        p("bid 1 12 --leader 2"),
        Err(ParseError::Missing { command: "bid", what: "--expect PRICE" })
    );
    // The leader is given by the number `show` prints (`bidder 3`): names are not public.
    for bad in ["ann", "0", "-1", "+3", "3.0", "bidder"] {
        let line = format!("bid 1 12 --expect 11 --leader {bad}");
        assert_eq!(p(&line), Err(ParseError::BadAlias { got: bad.into() }), "{line}");
    }
    assert!(matches!(p("bid 1 12 --expect 1 --expect 2"), Err(ParseError::Repeated { .. })));
    assert!(matches!(p("bid 1 12 --yes"), Err(ParseError::UnknownOption { .. })));
}

#[test]
fn repeated_open_options_are_refused() {
    for line in [
        "open Lamp --start 5 --start 6",
        "open Lamp --start 5 --reserve 6 --reserve=7",
        "open Lamp --start 5 --desc a --description b",
        "open Lamp --start 5 --increment 1 --increment 2",
    ] {
        assert!(matches!(p(line), Err(ParseError::Repeated { command: "open", .. })), "{line}");
    }
}

#[test]
fn names_are_normalised_and_unsafe_ones_refused() {
    assert_eq!(p("register ＡＮＮ"), Ok(Command::Register { name: name("ANN") }));
    for bad in ["register .", "register ..", "register -x", "register 'a b'", "register pаypal"] {
        assert!(matches!(p(bad), Err(ParseError::BadName { .. })), "{bad}");
    }
}
