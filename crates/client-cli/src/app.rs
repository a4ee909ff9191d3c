//! Carrying out one parsed command against the session, shared by the shell and one-shot mode.
//! Returns what to print; the callers print it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use auction_client::discovery::least_loaded;
use auction_client::exit::Exit;
use auction_client::neutral::clean;
use auction_client::parse::{COMMANDS, Command, help_for};
use auction_client::render::{self, Ctx};
use auction_client::session::{Answer, Session, SessionError};
use auction_proto::msg::auction::{BidderName, Outcome};
use auction_proto::msg::client::{AdminOp, ListFilter, Reply, RequestBody};
use auction_proto::{Amount, AuctionId};

/// What one command produced.
#[derive(Debug)]
pub(crate) struct Printed {
    /// Its class.
    pub(crate) exit: Exit,
    /// Text (or JSON lines) to print.
    pub(crate) text: String,
}

impl Printed {
    fn ok(text: String) -> Self {
        Self { exit: Exit::Success, text }
    }
}

/// Settings and state around the session that the shell and one-shot mode share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) session: Session,
    pub(crate) json: bool,
    pub(crate) color: bool,
    pub(crate) admin_token: Option<String>,
    pub(crate) token_dir: Option<PathBuf>,
    /// Auction ids seen, for tab completion.
    pub(crate) ids: Arc<Mutex<BTreeSet<AuctionId>>>,
    /// The amount of the bid being answered (to tell a tie from a higher maximum).
    pub(crate) last_bid: Option<Amount>,
}

/// What `buy` would pay: the auction's buy-now price and a line to confirm it by.
#[derive(Debug)]
pub(crate) struct Quote {
    pub(crate) price: Amount,
    pub(crate) text: String,
}

impl App {
    fn ctx(&self) -> Ctx {
        Ctx { color: self.color && !self.json, now: self.session.server_now(), bid: self.last_bid }
    }

    /// Runs one command (not `exit` or `clear`, which the shell handles).
    pub(crate) async fn run(&mut self, cmd: Command) -> Printed {
        let name = command_name(&cmd);
        self.last_bid = match &cmd {
            Command::Bid { amount, .. } => Some(*amount),
            Command::MaxBid { max, .. } => Some(*max),
            _ => None,
        };
        let body = match cmd {
            Command::Help(topic) => return help(topic.as_deref()),
            Command::Exit | Command::Clear => return Printed::ok(String::new()),
            Command::Find => return self.find().await,
            Command::Leave => {
                let was = self.session.server();
                self.session.disconnect();
                return Printed::ok(match was {
                    Some((node, addr)) => format!("left {} at {addr}", node.short()),
                    None => "not connected".to_string(),
                });
            }
            Command::Register { name } => return self.register(name).await,
            Command::Login { name, token } => {
                let token = match token {
                    Some(t) => t,
                    None => match self.saved_token(&name) {
                        Some(t) => t,
                        None => {
                            return self.usage(&format!(
                                "no saved token for {name}; use --token-file FILE or \
                                 AUCTION_TOKEN (a token typed on the command line is visible \
                                 to other users)"
                            ));
                        }
                    },
                };
                RequestBody::Login { name, token }
            }
            Command::Admin { server, op } => {
                let Some(token) = self.admin_token.clone() else {
                    return self.usage("admin needs --admin-token or AUCTION_ADMIN_TOKEN");
                };
                let result = self.session.admin(&server, token, op).await;
                return self.answer(name, result);
            }
            Command::AdminMember { server, op, target } => {
                let Some(token) = self.admin_token.clone() else {
                    return self.usage("admin needs --admin-token or AUCTION_ADMIN_TOKEN");
                };
                let node = match self.session.resolve_node(&target).await {
                    Ok(node) => node,
                    Err(e) => return self.error(name, &e),
                };
                let result = self.session.admin_at_leader(&server, token, op.with(node)).await;
                return self.answer(name, result);
            }
            Command::Whoami => RequestBody::Whoami,
            Command::Report => RequestBody::Report,
            Command::Servers => RequestBody::Servers,
            Command::Clients => return self.operators_view(name, AdminOp::Clients).await,
            Command::Queue => return self.operators_view(name, AdminOp::Queue).await,
            Command::Auctions { filter } => RequestBody::ListAuctions { filter },
            Command::Show { auction } => RequestBody::ShowAuction { auction },
            Command::History { auction } => RequestBody::History { auction },
            Command::Open(spec) => RequestBody::Open { spec: *spec },
            Command::Bid { auction, amount, expected } => {
                RequestBody::Bid { auction, amount, expected }
            }
            Command::MaxBid { auction, max, expected } => {
                RequestBody::MaxBid { auction, max, expected }
            }
            Command::Buy { auction, price: Some(price), .. } => {
                RequestBody::BuyNow { auction, price }
            }
            Command::Buy { auction, price: None, yes: true } => match self.quote(auction).await {
                Ok(q) => RequestBody::BuyNow { auction, price: q.price },
                Err(p) => return p,
            },
            Command::Buy { price: None, yes: false, .. } => {
                return self.usage(
                    "buy: give the buy-now price you expect (`buy ID PRICE`) or --yes to pay \
                     the price `show` gives now",
                );
            }
            Command::Cancel { auction } => RequestBody::Cancel { auction },
            Command::Watch { auction } => RequestBody::Subscribe { auction },
            Command::Unwatch => RequestBody::Unsubscribe,
        };
        let result = self.session.request(body).await;
        self.answer(name, result)
    }

    /// What `buy auction` would pay now, with a line saying so; an error to print otherwise
    /// (unknown auction, buy-now not offered, no server).
    pub(crate) async fn quote(&mut self, auction: AuctionId) -> Result<Quote, Printed> {
        let result = self.session.request(RequestBody::ShowAuction { auction }).await;
        let view = match result {
            Ok(Answer { reply: Reply::Auction(view), .. }) => view,
            Ok(_) => {
                let text = "the server did not answer with the auction; nothing bought";
                return Err(Printed { exit: Exit::Other, text: text.into() });
            }
            Err(e) => return Err(self.error("buy", &e)),
        };
        let Some(price) = view.buy_now else {
            let text = format!("buy-now is not available on #{auction}");
            return Err(Printed { exit: Exit::Rejected, text: self.plain_or_json("buy", text) });
        };
        let s = &view.summary;
        let text = format!(
            "buy #{auction} \"{}\" from {} for {price}",
            clean(&s.title),
            clean(s.seller.as_str())
        );
        Ok(Quote { price, text })
    }

    fn plain_or_json(&self, command: &str, text: String) -> String {
        if !self.json {
            return text;
        }
        let v = serde_json::json!({
            "ok": false, "command": command, "error": "rejected", "message": text,
            "exit": Exit::Rejected.code(),
        });
        v.to_string()
    }

    /// Logs in as `name` with `token`, or the saved token.
    pub(crate) async fn login(&mut self, name: BidderName, token: Option<String>) -> Printed {
        self.run(Command::Login { name, token }).await
    }

    /// `clients` and `queue`: operators' views, the admin operation at the server this
    /// session uses (other clients' names and addresses, uncommitted entries).
    async fn operators_view(&mut self, name: &str, op: AdminOp) -> Printed {
        let Some(token) = self.admin_token.clone() else {
            return self.usage(&format!(
                "{name} shows what only operators may see: it needs --admin-token or \
                 AUCTION_ADMIN_TOKEN"
            ));
        };
        let server = match self.session.current_server().await {
            Ok(addr) => addr.to_string(),
            Err(e) => return self.error(name, &e),
        };
        let result = self.session.admin(&server, token, op).await;
        self.answer(name, result)
    }

    fn answer(&mut self, command: &str, result: Result<Answer, SessionError>) -> Printed {
        match result {
            Ok(answer) => {
                self.note(&answer.reply);
                let exit = Exit::of_reply(&answer.reply);
                let text = if self.json {
                    render::reply_json(command, &answer).to_string()
                } else if let Reply::Servers(list) = &answer.reply {
                    render::servers_text(list, self.session.server().map(|(n, _)| n))
                } else {
                    render::reply_text(command, &answer.reply, &self.ctx())
                };
                Printed { exit, text }
            }
            Err(err) => self.error(command, &err),
        }
    }

    pub(crate) fn error(&self, command: &str, err: &SessionError) -> Printed {
        let text = if self.json {
            render::error_json(command, err).to_string()
        } else {
            render::error_text(err, &self.ctx())
        };
        Printed { exit: Exit::of_error(err), text }
    }

    pub(crate) fn usage(&self, message: &str) -> Printed {
        let text =
            if self.json { render::usage_json(message).to_string() } else { message.to_string() };
        Printed { exit: Exit::Usage, text }
    }

    /// Remembers auction ids.
    fn note(&self, reply: &Reply) {
        let mut new_ids = Vec::new();
        match reply {
            Reply::Auctions(list) => new_ids.extend(list.iter().map(|s| s.id)),
            Reply::Auction(view) => new_ids.push(view.summary.id),
            Reply::Outcome(Outcome::Opened { auction, .. } | Outcome::Accepted { auction, .. }) => {
                new_ids.push(*auction);
            }
            _ => {}
        }
        if let Ok(mut ids) = self.ids.lock() {
            ids.extend(new_ids);
        }
    }

    async fn find(&mut self) -> Printed {
        match self.session.find().await {
            Ok(found) if found.is_empty() => Printed {
                exit: Exit::NoServer,
                text: if self.json {
                    render::error_json("find", &SessionError::NoServer { tried: 0 }).to_string()
                } else {
                    "no servers answered (check --cluster, --discovery-port, --broadcast)".into()
                },
            },
            Ok(found) => {
                let best = least_loaded(&found);
                if self.json {
                    let v = serde_json::json!({
                        "ok": true, "command": "find", "servers": found,
                        "choice": best.as_ref().map(|b| b.node), "exit": 0,
                    });
                    return Printed::ok(v.to_string());
                }
                let mut text = render::servers_text(&found, best.as_ref().map(|b| b.node));
                if let Some(b) = best {
                    text.push_str(&format!(
                        "\nleast loaded: {} at {}",
                        b.node.short(),
                        b.client_addr
                    ));
                }
                Printed::ok(text)
            }
            Err(e) => self.error("find", &e),
        }
    }

    async fn register(&mut self, name: BidderName) -> Printed {
        let result = self.session.request(RequestBody::Register { name: name.clone() }).await;
        let token = match &result {
            Ok(Answer { reply: Reply::Registered { token, .. }, .. }) => Some(token.clone()),
            _ => None,
        };
        let mut out = self.answer("register", result);
        let Some(token) = token else { return out };
        if let Some(dir) = &self.token_dir {
            let note = match save_token(dir, &name, &token) {
                Ok(path) => format!("token saved to {}", path.display()),
                Err(e) => format!("could not save the token: {e}"),
            };
            if !self.json {
                out.text.push('\n');
                out.text.push_str(&note);
            }
        }
        let result = self.session.request(RequestBody::Login { name, token }).await;
        let login = self.answer("login", result);
        out.text.push('\n');
        out.text.push_str(&login.text);
        out.exit = out.exit.max(login.exit);
        out
    }

    fn saved_token(&self, name: &BidderName) -> Option<String> {
        let dir = self.token_dir.as_ref()?;
        // Files saved before the safe names were named after the name itself.
        let legacy = Some(name.as_str())
            .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let text = std::fs::read_to_string(dir.join(token_file_name(name)))
            .or_else(|e| legacy.map_or(Err(e), |l| std::fs::read_to_string(dir.join(l))))
            .ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }
}

/// The token file of `name`: lower-case ASCII letters, digits, `_` and `-` as they are, every
/// other byte of the UTF-8 name (capitals, `.`, non-ASCII) as `%XX`. So no name is `.`, `..`
/// or a path, and two names never share a file even on a case-insensitive or normalising
/// file system (`Ann` is `%41nn`, `ann` is `ann`).
pub(crate) fn token_file_name(name: &BidderName) -> String {
    let mut out = String::new();
    for b in name.as_str().bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn save_token(dir: &Path, name: &BidderName, token: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(token_file_name(name));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    Ok(path)
}

/// `help` and `help COMMAND`.
pub(crate) fn help(topic: Option<&str>) -> Printed {
    match topic {
        None => {
            let mut text = String::from("commands (`help COMMAND` for details):\n");
            for c in COMMANDS {
                text.push_str(&format!("  {:<10} {}\n", c.name, c.summary));
            }
            text.push_str("money: 12, 12.5 or 12.50; durations: 90s, 5m, 2h, 1h30m");
            Printed::ok(text)
        }
        Some(name) => match help_for(name) {
            Some(c) => {
                let mut text = format!("usage: {}\n  {}", c.usage, c.summary);
                if !c.details.is_empty() {
                    text.push_str(&format!("\n\n{}", c.details));
                }
                Printed::ok(text)
            }
            None => Printed { exit: Exit::Usage, text: format!("no command {name:?}; try `help`") },
        },
    }
}

/// The command word, for JSON output and messages.
pub(crate) fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::Help(_) => "help",
        Command::Find => "find",
        Command::Report => "report",
        Command::Servers => "servers",
        Command::Clients => "clients",
        Command::Queue => "queue",
        Command::Leave => "leave",
        Command::Clear => "clear",
        Command::Exit => "exit",
        Command::Register { .. } => "register",
        Command::Login { .. } => "login",
        Command::Whoami => "whoami",
        Command::Auctions { .. } => "auctions",
        Command::Show { .. } => "show",
        Command::Open(_) => "open",
        Command::Bid { .. } => "bid",
        Command::MaxBid { .. } => "maxbid",
        Command::Buy { .. } => "buy",
        Command::Cancel { .. } => "cancel",
        Command::History { .. } => "history",
        Command::Watch { .. } => "watch",
        Command::Unwatch => "unwatch",
        Command::Admin { .. } | Command::AdminMember { .. } => "admin",
    }
}

/// The default list filter, for completion.
pub(crate) const FILTERS: [(&str, ListFilter); 3] =
    [("open", ListFilter::Open), ("ended", ListFilter::Ended), ("all", ListFilter::All)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_named_safely_and_apart() {
        let file = |n: &str| BidderName::new(n).map(|n| token_file_name(&n));
        assert_eq!(file("ann").as_deref(), Ok("ann"));
        assert_eq!(file("Ann").as_deref(), Ok("%41nn"));
        assert_eq!(file("a.b").as_deref(), Ok("a%2Eb"));
        assert_eq!(file("Zoë").as_deref(), Ok("%5Ao%C3%AB"));
        // No name gives `.`, `..` or a path, and case never folds two names into one file.
        assert_ne!(file("ANN"), file("ann"));
        let all = ["x.", "x..", "a/b"].map(|n| file(n).unwrap_or_default());
        assert!(all.iter().all(|f| !f.contains('/') && f != "." && f != ".."));
    }
}
