//! Pure rendering: answers, errors and events to human text (with optional ANSI colours) or
//! to one JSON object each.
//!
//! JSON objects serialize the protocol types as they are: amounts are integer minor units
//! (cents), times are milliseconds of sequencer time since the Unix epoch. An integer beyond
//! 2^53 - 1, which a JavaScript consumer would round, is written as a decimal string instead
//! (see [`exact_json`]).
//!
//! Human text never carries a server's text raw: titles, descriptions, names and messages go
//! through [`crate::neutral`], so only this module's own colour codes reach the terminal.
//!
//! Bidders come from the server already as this session may see them ([`Bidder`]): `bidder 3`
//! for others, names for the seller, and "you" for the session's own bidder. The client never
//! works out "you" itself by comparing names.

use std::borrow::Cow;
use std::fmt::Write as _;

use auction_proto::msg::auction::{
    AuctionEvent, AuctionState, AuctionSummary, AuctionView, BidKind, BidRecord, Bidder,
    BidderName, IncrementRule, Outcome, RejectReason,
};
use auction_proto::msg::client::{NodeReport, PushEvent, Reply, Role, ServerInfo};
use auction_proto::msg::peer::MemberState;
use auction_proto::{Amount, Seq, Timestamp};
use serde_json::{Value, json};

use crate::neutral::{clean, clean_lines, fit};

use crate::exit::Exit;
use crate::session::{Answer, SessionError};
use crate::units::format_duration;

/// What rendering needs to know besides the data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    /// Use ANSI colours.
    pub color: bool,
    /// The server's clock now, for remaining times.
    pub now: Option<Timestamp>,
    /// The amount of the bid an outcome answers, to tell a tie from a higher maximum.
    pub bid: Option<Amount>,
}

impl Ctx {
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

    /// `2m ago` for a time in the past (`0s ago` if the clock estimate is a little behind it),
    /// the raw time without a clock.
    fn since(&self, at: Timestamp) -> String {
        match self.now {
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
pub fn reply_text(command: &str, reply: &Reply, ctx: &Ctx) -> String {
    match reply {
        Reply::Welcome { server, servers, .. } => {
            format!("connected to {} ({} servers known)", server.short(), servers.len())
        }
        Reply::Registered { name, token } => format!(
            "{} {}\ntoken: {}\n(keep the token secret; on another machine put it in a file for \
             `--token-file` or in AUCTION_TOKEN)",
            ctx.good("registered"),
            who(name),
            clean(token)
        ),
        Reply::Identity { name: Some(name) } => format!("logged in as {}", ctx.bold(who(name))),
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
                let name = c.bidder.as_ref().map_or("-".to_string(), who);
                let _ = write!(out, "\n  {}  {:<21}  {name}", c.client.short(), c.addr);
            }
            out
        }
        Reply::Queue(entries) => {
            let mut out = format!("{} entr{} held back", entries.len(), plural_y(entries.len()));
            for e in entries {
                let what = format!("{:?}", e.what);
                let _ = write!(out, "\n  seq {} term {}  {}", e.seq, e.term.0, clean(&what));
            }
            out
        }
        Reply::Done => ctx.good("done"),
    }
}

/// A name from a server, made inert (names are validated, but the data may be older).
fn who(name: &BidderName) -> String {
    clean(name.as_str()).into_owned()
}

/// A bidder as the server showed them to this session, before neutralising: `you`, the name
/// (for the seller), `bidder 3`.
fn party_raw(b: &Bidder) -> Cow<'_, str> {
    match b {
        Bidder::You { .. } => Cow::Borrowed("you"),
        Bidder::Named { name, .. } => Cow::Borrowed(name.as_str()),
        Bidder::Alias(alias) => Cow::Owned(alias.to_string()),
    }
}

/// A bidder, made inert.
fn party(b: &Bidder) -> String {
    clean(&party_raw(b)).into_owned()
}

/// `you lead` / `bidder 3 leads`.
fn leads(b: &Bidder) -> String {
    if b.is_you() { "you lead".to_string() } else { format!("{} leads", party(b)) }
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

/// Human text of an auction outcome.
pub fn outcome_text(outcome: &Outcome, ctx: &Ctx) -> String {
    match outcome {
        Outcome::Registered { bidder } => format!("{} {}", ctx.good("registered"), who(bidder)),
        Outcome::Opened { auction, ends_at } => {
            format!("{} auction #{auction}, ends {}", ctx.good("opened"), ctx.until(*ends_at))
        }
        Outcome::Accepted { auction, price, leader } => {
            let lead = if leader.is_you() {
                ctx.good("you lead")
            } else if ctx.bid == Some(*price) {
                // The price equals the bid only on a tie: the earlier maximum leads.
                ctx.warn(format!("{} (an equal maximum, placed earlier)", leads(leader)))
            } else {
                ctx.warn(format!("{} (a higher maximum)", leads(leader)))
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
    winner: &Option<Bidder>,
    price: Option<auction_proto::Amount>,
    ctx: &Ctx,
) -> String {
    match (winner, price) {
        (Some(w), Some(p)) if w.is_you() => {
            format!("#{auction} {}: {} won at {p}", ctx.bold("closed"), ctx.good("you"))
        }
        (Some(w), Some(p)) => format!("#{auction} {}: {} won at {p}", ctx.bold("closed"), party(w)),
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
        RejectReason::UnsafeText { field, position, code_point, class } => {
            let field = match field {
                auction_proto::msg::auction::TextField::Title => "title",
                auction_proto::msg::auction::TextField::Description => "description",
            };
            let class = match class {
                auction_proto::msg::auction::CharClass::Control => "a control character",
                auction_proto::msg::auction::CharClass::Bidi => "a bidirectional control",
                auction_proto::msg::auction::CharClass::Invisible => "an invisible character",
            };
            format!(
                "the {field} holds U+{code_point:04X}, {class}, at character {position}; \
                 remove it (see docs/auction-rules.md)"
            )
        }
        RejectReason::BuyNowPriceDiffers { buy_now } => {
            format!("the buy-now price is {buy_now}, not the price you gave; nothing was bought")
        }
        RejectReason::PriceMoved { price, leader } => {
            let leader = leader.as_ref().map_or("no leader".to_string(), leads);
            format!(
                "the auction moved: price now {price}, {leader}; check with `show` and bid again"
            )
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

/// `ends in 4m`, or for an ended auction when it actually ended (`bought 3m ago`), never the
/// deadline it no longer has.
fn ends_text(s: &AuctionSummary, ctx: &Ctx) -> String {
    match (s.state, s.ended_at) {
        (AuctionState::Open, _) => format!("ends {}", ctx.until(s.ends_at)),
        (other, Some(at)) => format!("{} {}", state_text(other), ctx.since(at)),
        (other, None) => state_text(other).to_string(),
    }
}

fn auctions_text(list: &[AuctionSummary], ctx: &Ctx) -> String {
    if list.is_empty() {
        return "no auctions".to_string();
    }
    let mut out = String::new();
    for s in list {
        let leader = s.leader.as_ref().map_or(Cow::Borrowed("-"), party_raw);
        let _ = writeln!(
            out,
            "{:>5}  {}  {:>10}  {}  {:>3} bid(s)  {}",
            ctx.dim(format!("#{}", s.id)),
            fit(&s.title, 24),
            s.price,
            fit(&leader, 12),
            s.bids,
            ends_text(s, ctx)
        );
    }
    out.truncate(out.trim_end().len());
    out
}

fn auction_text(v: &AuctionView, ctx: &Ctx) -> String {
    let s = &v.summary;
    let mut out = format!("#{} {}  (seller {})", s.id, ctx.bold(clean(&s.title)), who(&s.seller));
    if !v.description.is_empty() {
        let _ = write!(out, "\n  {}", clean_lines(&v.description, "  "));
    }
    let leading = s.leader.as_ref().is_some_and(Bidder::is_you);
    let leader = match &s.leader {
        None => "no bids yet".to_string(),
        Some(_) if leading => "you lead".to_string(),
        Some(l) => format!("leader {}", party(l)),
    };
    let _ = write!(out, "\n  price {}  {leader}  {} bid(s)", s.price, s.bids);
    if s.state == AuctionState::Open {
        out.push_str(&next_bid_text(v, leading));
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

/// "next bid at least": the public minimum, and the viewer's own when it differs (the leader
/// must bid above their own maximum); no amount when no bid is possible.
fn next_bid_text(v: &AuctionView, leading: bool) -> String {
    match (v.minimum_bid, v.your_minimum) {
        (_, Some(mine)) if leading => format!("\n  raise your maximum: at least {mine}"),
        (Some(_), Some(mine)) => format!("\n  next bid at least {mine}"),
        (Some(min), None) => format!("\n  next bid at least {min}"),
        (None, _) => "\n  no further bid is possible (the price is at the top of the range)".into(),
    }
}

fn history_text(bids: &[BidRecord], ctx: &Ctx) -> String {
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
            let bidder = fit(&party_raw(&b.bidder), 12);
            format!("  {:>10}  {bidder}  {kind:<6}  {}", b.price, ctx.dim(ctx.until(b.at)))
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
    let learners: Vec<String> = r.learners.iter().map(|m| m.short()).collect();
    let ready = if r.ready { "" } else { " (not ready: catching up; requests get Unavailable)" };
    let mut text = format!(
        "node {} (incarnation {})\n  role {}{ready}, term {}, leader {leader}\n  commit {}, \
         applied {}, {} held back\n  members {}\n  clients {}",
        r.node.short(),
        r.incarnation.0,
        role_text(r.role),
        r.term.0,
        r.commit,
        r.applied,
        r.holdback,
        members.join(" "),
        r.clients
    );
    if !learners.is_empty() {
        text.push_str(&format!("\n  learners {}", learners.join(" ")));
    }
    let held: Vec<String> = r.held.iter().map(|m| m.short()).collect();
    if !held.is_empty() {
        text.push_str(&format!(
            "\n  held (demoted, promoted only by `admin promote`) {}",
            held.join(" ")
        ));
    }
    let offsets: Vec<String> =
        r.clock_offsets.iter().map(|(n, ms)| format!("{} {ms:+}ms", n.short())).collect();
    text.push_str(&format!("\n  clock skew {:+}ms", r.clock_skew_ms));
    if !offsets.is_empty() {
        text.push_str(&format!(" (peers: {})", offsets.join(", ")));
    }
    text
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
pub fn event_text(e: &PushEvent, ctx: &Ctx) -> String {
    match &e.event {
        AuctionEvent::NewHighBid { auction, price, leader } => {
            format!("#{auction}: new price {price}, {}", leads(leader))
        }
        AuctionEvent::Outbid { auction, bidder, price } if bidder.is_you() => {
            ctx.warn(format!("#{auction}: you were outbid; price now {price}"))
        }
        AuctionEvent::Outbid { auction, bidder, price } => {
            format!("#{auction}: {} was outbid; price now {price}", party(bidder))
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
pub fn error_text(err: &SessionError, ctx: &Ctx) -> String {
    format!("{}: {}", ctx.bad("error"), clean(&err.to_string()))
}

/// One JSON object for a successful answer.
pub fn reply_json(command: &str, answer: &Answer) -> Value {
    let exit = Exit::of_reply(&answer.reply);
    exact_json(json!({
        "ok": exit == Exit::Success,
        "command": command,
        "applied": answer.applied,
        "reply": answer.reply,
        "exit": exit.code(),
    }))
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
    exact_json(v)
}

/// The largest integer a JSON consumer using IEEE doubles (JavaScript) reads exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `v` with every integer beyond [`MAX_SAFE_INTEGER`] (in magnitude) written as a decimal
/// string, so no consumer rounds it. Current servers keep amounts within that range
/// (`MAX_PRICE`); this covers other numbers and older data.
pub fn exact_json(v: Value) -> Value {
    match v {
        Value::Number(n) => {
            let safe = n
                .as_u64()
                .map(|u| u <= MAX_SAFE_INTEGER)
                .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER))
                .unwrap_or(true);
            if safe { Value::Number(n) } else { Value::String(n.to_string()) }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(exact_json).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, exact_json(v))).collect()),
        other => other,
    }
}

/// One JSON object for a usage error.
pub fn usage_json(message: &str) -> Value {
    json!({ "ok": false, "error": "usage", "message": message, "exit": Exit::Usage.code() })
}

/// One JSON object for a pushed event.
pub fn event_json(e: &PushEvent) -> Value {
    exact_json(json!({ "event": e }))
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
