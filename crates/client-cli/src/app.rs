//! Carrying out one parsed command against the session, shared by the shell and one-shot mode.
//! Returns what to print; the callers print it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use auction_client::discovery::least_loaded;
use auction_client::exit::Exit;
use auction_client::parse::{COMMANDS, Command, help_for};
use auction_client::render::{self, Ctx};
use auction_client::session::{Answer, Session, SessionError};
use auction_proto::AuctionId;
use auction_proto::msg::auction::{BidderName, Outcome};
use auction_proto::msg::client::{ListFilter, Reply, RequestBody};

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
    /// Who this session is logged in as, for the event printer.
    pub(crate) me: Arc<Mutex<Option<BidderName>>>,
}

impl App {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            color: self.color && !self.json,
            now: self.session.server_now(),
            me: self.session.login_name(),
        }
    }

    /// Runs one command (not `exit` or `clear`, which the shell handles).
    pub(crate) async fn run(&mut self, cmd: Command) -> Printed {
        let name = command_name(&cmd);
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
                                "no saved token for {name}; use `login {name} TOKEN`"
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
            Command::Whoami => RequestBody::Whoami,
            Command::Report => RequestBody::Report,
            Command::Servers => RequestBody::Servers,
            Command::Clients => RequestBody::Clients,
            Command::Queue => RequestBody::Queue,
            Command::Auctions { filter } => RequestBody::ListAuctions { filter },
            Command::Show { auction } => RequestBody::ShowAuction { auction },
            Command::History { auction } => RequestBody::History { auction },
            Command::Open(spec) => RequestBody::Open { spec: *spec },
            Command::Bid { auction, amount } => RequestBody::Bid { auction, amount },
            Command::MaxBid { auction, max } => RequestBody::MaxBid { auction, max },
            Command::Buy { auction } => RequestBody::BuyNow { auction },
            Command::Cancel { auction } => RequestBody::Cancel { auction },
            Command::Watch { auction } => RequestBody::Subscribe { auction },
            Command::Unwatch => RequestBody::Unsubscribe,
        };
        let result = self.session.request(body).await;
        self.answer(name, result)
    }

    /// Logs in as `name` with `token`, or the saved token.
    pub(crate) async fn login(&mut self, name: BidderName, token: Option<String>) -> Printed {
        self.run(Command::Login { name, token }).await
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

    /// Remembers auction ids and who we are.
    fn note(&self, reply: &Reply) {
        let mut new_ids = Vec::new();
        match reply {
            Reply::Auctions(list) => new_ids.extend(list.iter().map(|s| s.id)),
            Reply::Auction(view) => new_ids.push(view.summary.id),
            Reply::Outcome(Outcome::Opened { auction, .. } | Outcome::Accepted { auction, .. }) => {
                new_ids.push(*auction);
            }
            Reply::Identity { name } => {
                if let Ok(mut me) = self.me.lock() {
                    me.clone_from(name);
                }
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
        let path = self.token_dir.as_ref()?.join(name.as_str());
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }
}

fn save_token(dir: &Path, name: &BidderName, token: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name.as_str());
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
        Command::Admin { .. } => "admin",
    }
}

/// The default list filter, for completion.
pub(crate) const FILTERS: [(&str, ListFilter); 3] =
    [("open", ListFilter::Open), ("ended", ListFilter::Ended), ("all", ListFilter::All)];
