//! Pure rendering: answers, errors and events to human text (with optional ANSI colours) or
//! to one JSON object each.
//!
//! JSON objects serialize the protocol types as they are: amounts are integer minor units
//! (cents), times are milliseconds of sequencer time since the Unix epoch.

use std::fmt::Write as _;

use auction_proto::msg::auction::{
    AuctionEvent, AuctionState, AuctionSummary, AuctionView, BidKind, BidRecord, BidderName,
    IncrementRule, Outcome, RejectReason,
};
use auction_proto::msg::client::{NodeReport, PushEvent, Reply, Role, ServerInfo};
use auction_proto::msg::peer::MemberState;
use auction_proto::{Seq, Timestamp};
use serde_json::{Value, json};

use crate::exit::Exit;
use crate::session::{Answer, SessionError};
use crate::units::format_duration;

/// What rendering needs to know besides the data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx<'a> {
    /// Use ANSI colours.
    pub color: bool,
    /// The server's clock now, for remaining times.
    pub now: Option<Timestamp>,
    /// Who this session is, to say "you".
    pub me: Option<&'a BidderName>,
}

impl Ctx<'_> {
    fn paint(&self, code: &str, text: impl std::fmt::Display) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    fn good(&self, t: impl std::fmt::Display) -> String {
        self.paint("32", t)
    }
    fn bad(&self, t: impl std::fmt::Display) -> String {
        self.paint("31", t)
    }
    fn warn(&self, t: impl std::fmt::Display) -> String {
        self.paint("33", t)
    }
    fn bold(&self, t: impl std::fmt::Display) -> String {
        self.paint("1", t)
    }
    fn dim(&self, t: impl std::fmt::Display) -> String {
        self.paint("2", t)
    }

    /// `in 4m 12s` / `ended 2m ago` / the raw time without a clock.
    fn until(&self, at: Timestamp) -> String {
        match self.now {
            Some(now) if at > now => format!("in {}", format_duration(at.saturating_since(now))),
            Some(now) => format!("{} ago", format_duration(now.saturating_since(at))),
            None => format!("at t={}ms", at.0),
        }
    }
}

/// Whether to colour: only on a terminal, and never when `NO_COLOR` is set and not empty.
pub fn use_color(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Human text of a successful answer to `command`.
pub fn reply_text(command: &str, reply: &Reply, ctx: &Ctx<'_>) -> String {
    match reply {
        Reply::Welcome { server, servers, .. } => {
            format!("connected to {} ({} servers known)", server.short(), servers.len())
        }
        Reply::Registered { name, token } => format!(
            "{} {name}\ntoken: {token}\n(keep the token secret; `login {name} TOKEN` on another machine)",
            ctx.good("registered")
        ),
        Reply::Identity { name: Some(name) } => format!("logged in as {}", ctx.bold(name)),
        Reply::Identity { name: None } => "not logged in".to_string(),
        Reply::Auctions(list) => auctions_text(list, ctx),
        Reply::Auction(view) => auction_text(view, ctx),
        Reply::History(bids) => history_text(bids, ctx),
        Reply::Outcome(outcome) => outcome_text(outcome, ctx),
        Reply::Subscribed if command == "unwatch" => "stopped watching".to_string(),
        Reply::Subscribed => "watching; events appear as they happen".to_string(),
        Reply::Report(report) => report_text(report),
        Reply::Servers(servers) => servers_text(servers, None),
        Reply::Clients(clients) => {
            let mut out = format!("{} client(s)", clients.len());
            for c in clients {
                let who = c.bidder.as_ref().map_or("-".to_string(), ToString::to_string);
                let _ = write!(out, "\n  {}  {:<21}  {who}", c.client.short(), c.addr);
            }
            out
        }
        Reply::Queue(entries) => {
            let mut out = format!("{} entr{} held back", entries.len(), plural_y(entries.len()));
            for e in entries {
                let _ = write!(out, "\n  seq {} term {}  {:?}", e.seq, e.term.0, e.payload);
            }
            out
        }
        Reply::Done => ctx.good("done"),
    }
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

/// Human text of an auction outcome.
pub fn outcome_text(outcome: &Outcome, ctx: &Ctx<'_>) -> String {
    match outcome {
        Outcome::Registered { bidder } => format!("{} {bidder}", ctx.good("registered")),
        Outcome::Opened { auction, ends_at } => {
            format!("{} auction #{auction}, ends {}", ctx.good("opened"), ctx.until(*ends_at))
        }
        Outcome::Accepted { auction, price, leader } => {
            let lead = if ctx.me == Some(leader) {
                ctx.good("you lead")
            } else {
                ctx.warn(format!("{leader} leads (a higher maximum)"))
            };
            format!("{} on #{auction}: price {price}, {lead}", ctx.good("bid accepted"))
        }
        Outcome::Bought { auction, price } => {
            format!("{} #{auction} for {price}", ctx.good("bought"))
        }
        Outcome::Cancelled { auction } => format!("{} auction #{auction}", ctx.good("cancelled")),
        Outcome::Closed { auction, winner, price } => closed_text(*auction, winner, *price, ctx),
        Outcome::Unchanged => "nothing changed".to_string(),
        Outcome::Rejected { reason } => format!("{}: {}", ctx.bad("rejected"), reason_text(reason)),
    }
}

fn closed_text(
    auction: auction_proto::AuctionId,
    winner: &Option<BidderName>,
    price: Option<auction_proto::Amount>,
    ctx: &Ctx<'_>,
) -> String {
    match (winner, price) {
        (Some(w), Some(p)) if ctx.me == Some(w) => {
            format!("#{auction} {}: {} won at {p}", ctx.bold("closed"), ctx.good("you"))
        }
        (Some(w), Some(p)) => format!("#{auction} {}: {w} won at {p}", ctx.bold("closed")),
        _ => format!("#{auction} {}: no sale", ctx.bold("closed")),
    }
}

/// Why the auction rules refused.
pub fn reason_text(reason: &RejectReason) -> String {
    match reason {
        RejectReason::TooLow { minimum } => format!("too low; the minimum bid is {minimum}"),
        RejectReason::AuctionClosed => "the auction is no longer open".into(),
        RejectReason::UnknownAuction => "no such auction".into(),
        RejectReason::SellerCannotBid => "sellers cannot bid on their own auction".into(),
        RejectReason::NotSeller => "only the seller can do that".into(),
        RejectReason::InvalidAmount => "that amount is not valid here".into(),
        RejectReason::HasBids => "the auction has bids and cannot be cancelled".into(),
        RejectReason::BuyNowUnavailable => "buy-now is not available".into(),
        RejectReason::NameTaken => "that name is taken".into(),
        RejectReason::UnknownBidder => "unknown bidder (register first)".into(),
        RejectReason::InvalidSpec => {
            "invalid auction (see docs/auction-rules.md: title, prices, duration)".into()
        }
        RejectReason::RequestExpired => {
            "retry too old to know its outcome; check the auction with `show`".into()
        }
    }
}

fn state_text(state: AuctionState) -> &'static str {
    match state {
        AuctionState::Open => "open",
        AuctionState::Closed => "closed",
        AuctionState::Bought => "bought",
        AuctionState::Cancelled => "cancelled",
    }
}

fn ends_text(s: &AuctionSummary, ctx: &Ctx<'_>) -> String {
    match s.state {
        AuctionState::Open => format!("ends {}", ctx.until(s.ends_at)),
        other => format!("{} {}", state_text(other), ctx.until(s.ends_at)),
    }
}

fn auctions_text(list: &[AuctionSummary], ctx: &Ctx<'_>) -> String {
    if list.is_empty() {
        return "no auctions".to_string();
    }
    let mut out = String::new();
    for s in list {
        let leader = s.leader.as_ref().map_or("-".to_string(), ToString::to_string);
        let _ = writeln!(
            out,
            "{:>5}  {:<24}  {:>10}  {:<12}  {:>3} bid(s)  {}",
            ctx.dim(format!("#{}", s.id)),
            truncate(&s.title, 24),
            s.price,
            leader,
            s.bids,
            ends_text(s, ctx)
        );
    }
    out.truncate(out.trim_end().len());
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn auction_text(v: &AuctionView, ctx: &Ctx<'_>) -> String {
    let s = &v.summary;
    let mut out = format!("#{} {}  (seller {})", s.id, ctx.bold(&s.title), s.seller);
    if !v.description.is_empty() {
        let _ = write!(out, "\n  {}", v.description);
    }
    let leader = s.leader.as_ref().map_or("no bids yet".to_string(), |l| format!("leader {l}"));
    let _ = write!(out, "\n  price {}  {leader}  {} bid(s)", s.price, s.bids);
    if s.state == AuctionState::Open {
        let _ = write!(out, "\n  next bid at least {}", v.minimum_bid);
    }
    match s.reserve_met {
        Some(true) => out.push_str("\n  reserve met"),
        Some(false) => out.push_str("\n  reserve not met"),
        None => {}
    }
    if let Some(b) = v.buy_now {
        let _ = write!(out, "\n  buy now for {b}");
    }
    let increment = match &v.increment {
        IncrementRule::Fixed(a) => format!("{a}"),
        IncrementRule::Tiered(t) => t
            .iter()
            .map(|t| format!("{} from {}", t.increment, t.from))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = write!(out, "\n  starting price {}, increment {increment}", v.starting_price);
    if let Some(sc) = &v.soft_close {
        let _ = write!(
            out,
            "\n  soft close: a bid in the last {} extends to {} after it (at most {} in all)",
            format_duration(sc.window),
            format_duration(sc.extension),
            format_duration(sc.max_extension)
        );
    }
    let _ = write!(out, "\n  {}", ends_text(s, ctx));
    out
}

fn history_text(bids: &[BidRecord], ctx: &Ctx<'_>) -> String {
    if bids.is_empty() {
        return "no bids".to_string();
    }
    let lines: Vec<String> = bids
        .iter()
        .map(|b| {
            let kind = match b.kind {
                BidKind::Plain => "bid",
                BidKind::Proxy => "maxbid",
            };
            format!("  {:>10}  {:<12}  {kind:<6}  {}", b.price, b.bidder, ctx.dim(ctx.until(b.at)))
        })
        .collect();
    lines.join("\n")
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Joining => "joining",
    }
}

fn report_text(r: &NodeReport) -> String {
    let leader = r.leader.map_or("none".to_string(), |l| l.short());
    let members: Vec<String> = r.members.iter().map(|m| m.short()).collect();
    format!(
        "node {} (incarnation {})\n  role {}, term {}, leader {leader}\n  commit {}, applied {}, \
         {} held back\n  members {}\n  clients {}",
        r.node.short(),
        r.incarnation.0,
        role_text(r.role),
        r.term.0,
        r.commit,
        r.applied,
        r.holdback,
        members.join(" "),
        r.clients
    )
}

fn member_state_text(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Down => "down",
        MemberState::Left => "left",
    }
}

/// A server table; `current` is marked with `*`.
pub fn servers_text(servers: &[ServerInfo], current: Option<auction_proto::NodeId>) -> String {
    if servers.is_empty() {
        return "no servers".to_string();
    }
    let lines: Vec<String> = servers
        .iter()
        .map(|s| {
            let mark = if Some(s.node) == current { "*" } else { " " };
            format!(
                "{mark} {}  {:<21}  {:<7}  {} client(s)",
                s.node.short(),
                s.client_addr,
                member_state_text(s.state),
                s.clients
            )
        })
        .collect();
    lines.join("\n")
}

/// Human text of a pushed event.
pub fn event_text(e: &PushEvent, ctx: &Ctx<'_>) -> String {
    match &e.event {
        AuctionEvent::NewHighBid { auction, price, leader } => {
            format!("#{auction}: new price {price}, {leader} leads")
        }
        AuctionEvent::Outbid { auction, bidder, price } if ctx.me == Some(bidder) => {
            ctx.warn(format!("#{auction}: you were outbid; price now {price}"))
        }
        AuctionEvent::Outbid { auction, bidder, price } => {
            format!("#{auction}: {bidder} was outbid; price now {price}")
        }
        AuctionEvent::Extended { auction, new_end } => {
            ctx.warn(format!("#{auction}: extended, now ends {}", ctx.until(*new_end)))
        }
        AuctionEvent::Closed { auction, winner, price, .. } => {
            closed_text(*auction, winner, *price, ctx)
        }
    }
}

/// Human text of a failed request.
pub fn error_text(err: &SessionError, ctx: &Ctx<'_>) -> String {
    format!("{}: {err}", ctx.bad("error"))
}

/// One JSON object for a successful answer.
pub fn reply_json(command: &str, answer: &Answer) -> Value {
    let exit = Exit::of_reply(&answer.reply);
    json!({
        "ok": exit == Exit::Success,
        "command": command,
        "applied": answer.applied,
        "reply": answer.reply,
        "exit": exit.code(),
    })
}

/// One JSON object for a failed request.
pub fn error_json(command: &str, err: &SessionError) -> Value {
    let exit = Exit::of_error(err);
    let mut v = json!({
        "ok": false,
        "command": command,
        "error": exit.name(),
        "message": err.to_string(),
        "exit": exit.code(),
    });
    if let SessionError::Server(e) = err {
        v["detail"] = json!(e.0);
    }
    v
}

/// One JSON object for a usage error.
pub fn usage_json(message: &str) -> Value {
    json!({ "ok": false, "error": "usage", "message": message, "exit": Exit::Usage.code() })
}

/// One JSON object for a pushed event.
pub fn event_json(e: &PushEvent) -> Value {
    json!({ "event": e })
}

/// Drops events already shown: after a failover the new server may repeat some.
#[derive(Debug, Default)]
pub struct EventFilter {
    last: Seq,
    at_last: Vec<AuctionEvent>,
}

impl EventFilter {
    /// Whether `e` is new (and remembers it).
    pub fn admit(&mut self, e: &PushEvent) -> bool {
        if e.seq < self.last || (e.seq == self.last && self.at_last.contains(&e.event)) {
            return false;
        }
        if e.seq > self.last {
            self.last = e.seq;
            self.at_last.clear();
        }
        self.at_last.push(e.event.clone());
        true
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
