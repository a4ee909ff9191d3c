//! Pure command parsing: a shell line (or one-shot arguments) to a typed [`Command`].
//!
//! The shell splits a line into words with [`split_words`] (quotes and backslashes as in a
//! POSIX shell) and one-shot mode takes its words from the process arguments; both then call
//! [`parse_words`], so a command means the same in both.

use std::time::Duration;

use auction_proto::msg::auction::{
    AuctionSpec, BidderAlias, BidderName, BidderNameError, Expected, IncrementRule, IncrementTier,
    SoftClose,
};
use auction_proto::msg::client::{AdminOp, ListFilter};
use auction_proto::{Amount, AuctionId, ParseAmountError};

pub use crate::help::{COMMANDS, CommandHelp, help_for};
use crate::units::{ParseDurationError, parse_duration};

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help [COMMAND]`.
    Help(Option<String>),
    /// `find`: broadcast for servers.
    Find,
    /// `report`: the server's status.
    Report,
    /// `servers`: the membership view.
    Servers,
    /// `clients`: clients of the server.
    Clients,
    /// `queue`: the server's hold-back queue.
    Queue,
    /// `leave`: disconnect from the current server.
    Leave,
    /// `clear`: clear the screen.
    Clear,
    /// `exit`.
    Exit,
    /// `register NAME`.
    Register {
        /// The name.
        name: BidderName,
    },
    /// `login NAME [TOKEN]`.
    Login {
        /// The name.
        name: BidderName,
        /// The token, or `None` to use the saved one.
        token: Option<String>,
    },
    /// `whoami`.
    Whoami,
    /// `auctions [open|ended|all]`.
    Auctions {
        /// Which.
        filter: ListFilter,
    },
    /// `show ID`.
    Show {
        /// The auction.
        auction: AuctionId,
    },
    /// `open TITLE --start AMOUNT ...`.
    Open(Box<AuctionSpec>),
    /// `bid ID AMOUNT [--expect PRICE [--leader N]]`.
    Bid {
        /// The auction.
        auction: AuctionId,
        /// The amount.
        amount: Amount,
        /// The price (and leader) the bid is placed against; the server refuses it if they
        /// moved.
        expected: Option<Expected>,
    },
    /// `maxbid ID AMOUNT [--expect PRICE [--leader N]]`.
    MaxBid {
        /// The auction.
        auction: AuctionId,
        /// The maximum.
        max: Amount,
        /// As for `bid`.
        expected: Option<Expected>,
    },
    /// `buy ID [PRICE] [--yes]`.
    Buy {
        /// The auction.
        auction: AuctionId,
        /// The buy-now price the buyer expects; `None`: look it up (and confirm).
        price: Option<Amount>,
        /// `--yes`: no confirmation question.
        yes: bool,
    },
    /// `cancel ID`.
    Cancel {
        /// The auction.
        auction: AuctionId,
    },
    /// `history ID`.
    History {
        /// The auction.
        auction: AuctionId,
    },
    /// `watch [ID|all]`.
    Watch {
        /// The auction, or all.
        auction: Option<AuctionId>,
    },
    /// `unwatch`.
    Unwatch,
    /// `admin SERVER OP`.
    Admin {
        /// A server address, node id or node id prefix.
        server: String,
        /// The operation.
        op: AdminOp,
    },
    /// `admin SERVER promote|demote|remove|move-leader NODE`: a membership operation, sent
    /// to SERVER (and on to the leader if SERVER is not it).
    AdminMember {
        /// A server address, node id or node id prefix to send it to.
        server: String,
        /// The operation.
        op: MemberOp,
        /// The server it is about: a node id or node id prefix.
        target: String,
    },
}

/// A membership operation before its target is resolved to a node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    /// `promote`: a caught-up learner becomes a voter now.
    Promote,
    /// `demote`: a voter becomes a held learner.
    Demote,
    /// `remove`: a voter that is down leaves the configuration now.
    Remove,
    /// `move-leader`: the leadership moves to this voter.
    MoveLeader,
}

impl MemberOp {
    /// The wire operation for `node`.
    pub fn with(self, node: auction_proto::NodeId) -> AdminOp {
        match self {
            Self::Promote => AdminOp::Promote(node),
            Self::Demote => AdminOp::Demote(node),
            Self::Remove => AdminOp::Remove(node),
            Self::MoveLeader => AdminOp::MoveLeader(node),
        }
    }
}

/// Why a line is not a command. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A blank line (the shell ignores it).
    #[error("no command given (try `help`)")]
    Empty,
    /// A quote was opened and never closed.
    #[error("unclosed quote")]
    UnclosedQuote,
    /// Not a command name.
    #[error("unknown command {name:?} (try `help`)")]
    UnknownCommand {
        /// The word given.
        name: String,
    },
    /// A required argument is missing.
    #[error("{command}: missing {what}")]
    Missing {
        /// The command.
        command: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// More arguments than the command takes.
    #[error("{command}: unexpected argument {arg:?}")]
    Unexpected {
        /// The command.
        command: &'static str,
        /// The first extra argument.
        arg: String,
    },
    /// An option the command does not know.
    #[error("{command}: unknown option {option:?}")]
    UnknownOption {
        /// The command.
        command: &'static str,
        /// The option.
        option: String,
    },
    /// Not an auction id.
    #[error("{got:?} is not an auction id (a number such as 3 or #3)")]
    BadAuctionId {
        /// The word given.
        got: String,
    },
    /// Not an amount.
    #[error("bad {what} {got:?}: {source}")]
    BadAmount {
        /// Which amount.
        what: &'static str,
        /// The word given.
        got: String,
        /// Why.
        source: ParseAmountError,
    },
    /// Zero where money must be positive.
    #[error("{what} must be more than 0.00")]
    ZeroAmount {
        /// Which amount.
        what: &'static str,
    },
    /// Not a duration.
    #[error("bad {what} {got:?}: {source}")]
    BadDuration {
        /// Which duration.
        what: &'static str,
        /// The word given.
        got: String,
        /// Why.
        source: ParseDurationError,
    },
    /// Not a bidder's number (`--leader 3` for `bidder 3`).
    #[error("bad --leader {got:?}: expected a bidder number such as 3 (shown as `bidder 3`)")]
    BadAlias {
        /// The word given.
        got: String,
    },
    /// Not a bidder name.
    #[error("bad name {got:?}: {source}")]
    BadName {
        /// The word given.
        got: String,
        /// Why.
        source: BidderNameError,
    },
    /// A word outside a fixed set.
    #[error("{command}: {got:?} is not one of {expected}")]
    NotOneOf {
        /// The command.
        command: &'static str,
        /// The word given.
        got: String,
        /// The allowed words.
        expected: &'static str,
    },
    /// A malformed `--tiers` or `--soft-close` value.
    #[error("bad {what} {got:?}: expected {expected}")]
    BadFormat {
        /// Which option.
        what: &'static str,
        /// The value given.
        got: String,
        /// The expected form.
        expected: &'static str,
    },
    /// Both `--increment` and `--tiers`.
    #[error("open: give either --increment or --tiers, not both")]
    IncrementTwice,
    /// An option given twice (the value would silently be the last).
    #[error("{command}: {option} given twice")]
    Repeated {
        /// The command.
        command: &'static str,
        /// The option.
        option: String,
    },
}

impl ParseError {
    /// The command the error is about, for a usage hint.
    pub fn command(&self) -> Option<&'static str> {
        match self {
            Self::Missing { command, .. }
            | Self::Unexpected { command, .. }
            | Self::UnknownOption { command, .. }
            | Self::NotOneOf { command, .. }
            | Self::Repeated { command, .. } => Some(command),
            Self::IncrementTwice | Self::BadFormat { .. } => Some("open"),
            _ => None,
        }
    }
}

/// Splits a line into words: whitespace separates, `'...'` and `"..."` quote, `\` escapes.
pub fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(ParseError::UnclosedQuote),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => {
                            word.push(chars.next().ok_or(ParseError::UnclosedQuote)?);
                        }
                        Some(other) => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Parses one shell line.
pub fn parse_line(line: &str) -> Result<Command, ParseError> {
    parse_words(&split_words(line)?)
}

/// Parses a command from its words (the first is the command name).
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Command, ParseError> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let Some((&name, args)) = words.split_first() else {
        return Err(ParseError::Empty);
    };
    let mut a = Args { command: "", args, at: 0 };
    let simple = |a: &mut Args<'_>, command: &'static str, cmd: Command| {
        a.command = command;
        a.done().map(|()| cmd)
    };
    let cmd = match name.to_ascii_lowercase().as_str() {
        "help" | "?" => {
            a.command = "help";
            let topic = a.optional().map(str::to_ascii_lowercase);
            a.done()?;
            Command::Help(topic)
        }
        "find" => simple(&mut a, "find", Command::Find)?,
        "report" => simple(&mut a, "report", Command::Report)?,
        "servers" => simple(&mut a, "servers", Command::Servers)?,
        "clients" => simple(&mut a, "clients", Command::Clients)?,
        "queue" => simple(&mut a, "queue", Command::Queue)?,
        "leave" => simple(&mut a, "leave", Command::Leave)?,
        "clear" => simple(&mut a, "clear", Command::Clear)?,
        "exit" | "quit" => simple(&mut a, "exit", Command::Exit)?,
        "whoami" => simple(&mut a, "whoami", Command::Whoami)?,
        "unwatch" => simple(&mut a, "unwatch", Command::Unwatch)?,
        "register" => {
            a.command = "register";
            let name = a.name()?;
            a.done()?;
            Command::Register { name }
        }
        "login" => {
            a.command = "login";
            let name = a.name()?;
            let token = a.optional().map(str::to_string);
            a.done()?;
            Command::Login { name, token }
        }
        "auctions" | "list" => {
            a.command = "auctions";
            let filter = match a.optional() {
                None | Some("open") => ListFilter::Open,
                Some("ended") => ListFilter::Ended,
                Some("all") => ListFilter::All,
                Some(other) => {
                    return Err(ParseError::NotOneOf {
                        command: "auctions",
                        got: other.to_string(),
                        expected: "open, ended, all",
                    });
                }
            };
            a.done()?;
            Command::Auctions { filter }
        }
        "show" => one_id(&mut a, "show", |auction| Command::Show { auction })?,
        "history" => one_id(&mut a, "history", |auction| Command::History { auction })?,
        "buy" => {
            a.command = "buy";
            let auction = a.auction()?;
            let mut opts = BidOptions::parse(&mut a, &["--yes"])?;
            let price = opts.price.take();
            Command::Buy { auction, price, yes: opts.yes }
        }
        "cancel" => one_id(&mut a, "cancel", |auction| Command::Cancel { auction })?,
        "bid" => {
            a.command = "bid";
            let auction = a.auction()?;
            let amount = a.amount("amount")?;
            let expected = BidOptions::parse(&mut a, &["--expect", "--leader"])?.expected()?;
            Command::Bid { auction, amount, expected }
        }
        "maxbid" => {
            a.command = "maxbid";
            let auction = a.auction()?;
            let max = a.amount("maximum")?;
            let expected = BidOptions::parse(&mut a, &["--expect", "--leader"])?.expected()?;
            Command::MaxBid { auction, max, expected }
        }
        "watch" => {
            a.command = "watch";
            let auction = match a.optional() {
                None | Some("all") => None,
                Some(word) => Some(auction_id(word)?),
            };
            a.done()?;
            Command::Watch { auction }
        }
        "admin" => {
            a.command = "admin";
            let server = a.required("SERVER")?.to_string();
            let word = a.required("operation")?;
            let member = match word {
                "promote" => Some(MemberOp::Promote),
                "demote" => Some(MemberOp::Demote),
                "remove" => Some(MemberOp::Remove),
                "move-leader" | "moveleader" => Some(MemberOp::MoveLeader),
                _ => None,
            };
            if let Some(op) = member {
                let target = a.required("NODE")?.to_string();
                a.done()?;
                return Ok(Command::AdminMember { server, op, target });
            }
            let op = match word {
                "report" => AdminOp::Report,
                "queue" => AdminOp::Queue,
                "clients" => AdminOp::Clients,
                "leave" => AdminOp::Leave,
                "step-down" | "stepdown" => AdminOp::StepDown,
                "snapshot" => AdminOp::Snapshot,
                other => {
                    return Err(ParseError::NotOneOf {
                        command: "admin",
                        got: other.to_string(),
                        expected: "report, queue, clients, leave, step-down, snapshot, promote, demote, \
                                   remove, move-leader",
                    });
                }
            };
            a.done()?;
            Command::Admin { server, op }
        }
        "open" => Command::Open(Box::new(parse_open(args)?)),
        _ => return Err(ParseError::UnknownCommand { name: name.to_string() }),
    };
    Ok(cmd)
}

fn one_id(
    a: &mut Args<'_>,
    command: &'static str,
    make: impl FnOnce(AuctionId) -> Command,
) -> Result<Command, ParseError> {
    a.command = command;
    let id = a.auction()?;
    a.done()?;
    Ok(make(id))
}

/// The options of `bid`, `maxbid` (`--expect PRICE`, `--leader N`) and `buy` (`[PRICE]`,
/// `--yes`), each at most once.
#[derive(Debug, Default)]
struct BidOptions {
    command: &'static str,
    price: Option<Amount>,
    leader: Option<BidderAlias>,
    yes: bool,
}

impl BidOptions {
    fn parse(a: &mut Args<'_>, allowed: &[&str]) -> Result<Self, ParseError> {
        let mut o = BidOptions { command: a.command, ..Self::default() };
        let mut seen: Vec<&str> = Vec::new();
        while let Some(word) = a.optional() {
            let (key, inline) = match word.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k, Some(v)),
                _ => (word, None),
            };
            let key = if key == "-y" { "--yes" } else { key };
            let positional_price = !key.starts_with('-') && allowed.contains(&"--yes");
            let key = if positional_price { "PRICE" } else { key };
            if !positional_price && !allowed.contains(&key) {
                let command = a.command;
                if key.starts_with('-') {
                    return Err(ParseError::UnknownOption { command, option: word.to_string() });
                }
                return Err(ParseError::Unexpected { command, arg: word.to_string() });
            }
            if seen.contains(&key) {
                return Err(ParseError::Repeated { command: a.command, option: key.to_string() });
            }
            seen.push(key);
            match key {
                "--yes" => o.yes = true,
                "PRICE" => o.price = Some(positive_amount("price", word)?),
                "--expect" => {
                    let v = match inline {
                        Some(v) => v,
                        None => a.required("--expect PRICE")?,
                    };
                    o.price = Some(amount("expected price", v)?);
                }
                _ => {
                    let v = match inline {
                        Some(v) => v,
                        None => a.required("--leader N")?,
                    };
                    o.leader = Some(alias(v)?);
                }
            }
        }
        Ok(o)
    }

    /// `--leader` only with `--expect`.
    fn expected(self) -> Result<Option<Expected>, ParseError> {
        match (self.price, self.leader) {
            (None, None) => Ok(None),
            (None, Some(_)) => {
                Err(ParseError::Missing { command: self.command, what: "--expect PRICE" })
            }
            (Some(price), leader) => Ok(Some(Expected { price, leader })),
        }
    }
}

/// A bidder's number as `show` and `history` print it (`3` for `bidder 3`): digits only, from 1.
fn alias(word: &str) -> Result<BidderAlias, ParseError> {
    let n = word.parse::<u32>().ok().filter(|n| *n > 0 && word.bytes().all(|b| b.is_ascii_digit()));
    n.map(BidderAlias).ok_or_else(|| ParseError::BadAlias { got: word.into() })
}

/// The words after the command name.
struct Args<'a> {
    command: &'static str,
    args: &'a [&'a str],
    at: usize,
}

impl<'a> Args<'a> {
    fn optional(&mut self) -> Option<&'a str> {
        let word = self.args.get(self.at).copied();
        self.at += usize::from(word.is_some());
        word
    }

    fn required(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        self.optional().ok_or(ParseError::Missing { command: self.command, what })
    }

    fn auction(&mut self) -> Result<AuctionId, ParseError> {
        auction_id(self.required("auction ID")?)
    }

    fn amount(&mut self, what: &'static str) -> Result<Amount, ParseError> {
        positive_amount(what, self.required(what)?)
    }

    fn name(&mut self) -> Result<BidderName, ParseError> {
        let word = self.required("NAME")?;
        BidderName::new(word).map_err(|source| ParseError::BadName { got: word.into(), source })
    }

    fn done(&self) -> Result<(), ParseError> {
        match self.args.get(self.at) {
            None => Ok(()),
            Some(arg) => {
                Err(ParseError::Unexpected { command: self.command, arg: arg.to_string() })
            }
        }
    }
}

/// Parses `3` or `#3`.
pub fn auction_id(word: &str) -> Result<AuctionId, ParseError> {
    let digits = word.strip_prefix('#').unwrap_or(word);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadAuctionId { got: word.to_string() });
    }
    digits.parse().map_err(|_| ParseError::BadAuctionId { got: word.to_string() })
}

fn amount(what: &'static str, word: &str) -> Result<Amount, ParseError> {
    word.parse().map_err(|source| ParseError::BadAmount { what, got: word.to_string(), source })
}

fn positive_amount(what: &'static str, word: &str) -> Result<Amount, ParseError> {
    let value = amount(what, word)?;
    if value.is_zero() {
        return Err(ParseError::ZeroAmount { what });
    }
    Ok(value)
}

fn duration(what: &'static str, word: &str) -> Result<Duration, ParseError> {
    parse_duration(word).map_err(|source| ParseError::BadDuration {
        what,
        got: word.to_string(),
        source,
    })
}

fn parse_open(args: &[&str]) -> Result<AuctionSpec, ParseError> {
    const CMD: &str = "open";
    let mut title: Option<String> = None;
    let mut description = String::new();
    let mut start = None;
    let mut duration_ = Duration::from_secs(3600);
    let mut increment = None;
    let mut reserve = None;
    let mut buy_now = None;
    let mut soft_close = None;
    let mut seen: Vec<&str> = Vec::new();
    let mut it = args.iter().copied();
    while let Some(word) = it.next() {
        if !word.starts_with("--") {
            if title.is_some() {
                return Err(ParseError::Unexpected { command: CMD, arg: word.to_string() });
            }
            title = Some(word.to_string());
            continue;
        }
        let (key, inline) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let what: &'static str = match key {
            "--start" => "starting price",
            "--duration" => "duration",
            "--increment" => "increment",
            "--tiers" => "tiers",
            "--reserve" => "reserve",
            "--buy-now" => "buy-now price",
            "--soft-close" => "soft close",
            "--desc" | "--description" => "description",
            _ => return Err(ParseError::UnknownOption { command: CMD, option: word.to_string() }),
        };
        let canonical = if key == "--description" { "--desc" } else { key };
        if seen.contains(&canonical) {
            return Err(ParseError::Repeated { command: CMD, option: key.to_string() });
        }
        seen.push(canonical);
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or(ParseError::Missing { command: CMD, what })?,
        };
        match key {
            "--start" => start = Some(positive_amount(what, value)?),
            "--duration" => duration_ = duration(what, value)?,
            "--increment" | "--tiers" if increment.is_some() => {
                return Err(ParseError::IncrementTwice);
            }
            "--increment" => increment = Some(IncrementRule::Fixed(positive_amount(what, value)?)),
            "--tiers" => increment = Some(IncrementRule::Tiered(tiers(value)?)),
            "--reserve" => reserve = Some(positive_amount(what, value)?),
            "--buy-now" => buy_now = Some(positive_amount(what, value)?),
            "--soft-close" => soft_close = Some(parse_soft_close(value)?),
            _ => description = value.to_string(),
        }
    }
    Ok(AuctionSpec {
        title: title.ok_or(ParseError::Missing { command: CMD, what: "TITLE" })?,
        description,
        starting_price: start
            .ok_or(ParseError::Missing { command: CMD, what: "--start AMOUNT" })?,
        reserve,
        increment: increment.unwrap_or(IncrementRule::Fixed(Amount::from_minor(100))),
        duration: duration_,
        soft_close,
        buy_now,
    })
}

/// `0:0.25,25:1,100:2.50`.
fn tiers(value: &str) -> Result<Vec<IncrementTier>, ParseError> {
    let bad = || ParseError::BadFormat {
        what: "--tiers",
        got: value.to_string(),
        expected: "FROM:STEP,... such as 0:0.25,25:1,100:2.50",
    };
    value
        .split(',')
        .map(|tier| {
            let (from, step) = tier.split_once(':').ok_or_else(bad)?;
            Ok(IncrementTier {
                from: amount("tier start", from)?,
                increment: positive_amount("tier step", step)?,
            })
        })
        .collect()
}

/// `2m/2m/10m`.
fn parse_soft_close(value: &str) -> Result<SoftClose, ParseError> {
    let parts: Vec<&str> = value.split('/').collect();
    let [window, extension, max_extension] = parts.as_slice() else {
        return Err(ParseError::BadFormat {
            what: "--soft-close",
            got: value.to_string(),
            expected: "WINDOW/EXTENSION/CAP such as 2m/2m/10m",
        });
    };
    Ok(SoftClose {
        window: duration("soft-close window", window)?,
        extension: duration("soft-close extension", extension)?,
        max_extension: duration("soft-close cap", max_extension)?,
    })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
