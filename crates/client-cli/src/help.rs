//! Help text: a synopsis, a summary and details for every shell command.

/// Help for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// Its synopsis.
    pub usage: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Details and examples.
    pub details: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "help",
        usage: "help [COMMAND]",
        summary: "list commands, or explain one",
        details: "",
    },
    CommandHelp {
        name: "find",
        usage: "find",
        summary: "broadcast for servers; connect to the least-loaded live one",
        details: "Uses --cluster, --discovery-port and --broadcast.",
    },
    CommandHelp {
        name: "report",
        usage: "report",
        summary: "status of the connected server (role, term, commit, clients)",
        details: "",
    },
    CommandHelp {
        name: "servers",
        usage: "servers",
        summary: "the cluster's servers as the connected server sees them",
        details: "",
    },
    CommandHelp {
        name: "clients",
        usage: "clients",
        summary: "clients connected to the connected server (operators: needs --admin-token)",
        details: "Other clients' names and addresses are for operators only.",
    },
    CommandHelp {
        name: "queue",
        usage: "queue",
        summary: "the connected server's hold-back queue (operators: needs --admin-token)",
        details: "Each entry's kind and whom it concerns; never an amount, a reserve or a token hash.",
    },
    CommandHelp {
        name: "leave",
        usage: "leave",
        summary: "disconnect from the current server",
        details: "The next command connects again, to the least-loaded live server.",
    },
    CommandHelp { name: "clear", usage: "clear", summary: "clear the screen", details: "" },
    CommandHelp {
        name: "exit",
        usage: "exit",
        summary: "leave the shell (also `quit` or Ctrl-D)",
        details: "",
    },
    CommandHelp {
        name: "register",
        usage: "register NAME",
        summary: "register a bidder name; prints and saves its secret token, then logs in",
        details: "NAME: 1 to 32 letters (of one alphabet: Latin, Greek or Cyrillic), digits, '_', '-', '.'; starting with a letter or digit, not ending with '.'. Names are compared ignoring case (`Ann` is taken if `ann` is). The token is saved under the token directory (see --token-dir) so that `login NAME` finds it.",
    },
    CommandHelp {
        name: "login",
        usage: "login NAME [TOKEN]",
        summary: "act as a registered bidder",
        details: "Without TOKEN the saved token of NAME is used. A line with a TOKEN is not saved in the shell history; prefer the saved token, --token-file or AUCTION_TOKEN. The login is repeated automatically after a failover.",
    },
    CommandHelp {
        name: "whoami",
        usage: "whoami",
        summary: "the bidder this session acts as",
        details: "",
    },
    CommandHelp {
        name: "auctions",
        usage: "auctions [open|ended|all]",
        summary: "list auctions (default: open)",
        details: "",
    },
    CommandHelp {
        name: "show",
        usage: "show ID",
        summary: "one auction in detail, with its remaining time",
        details: "ID: an auction number, e.g. 3 or #3.",
    },
    CommandHelp {
        name: "open",
        usage: "open TITLE --start AMOUNT [--duration DUR] [--increment AMOUNT | --tiers FROM:STEP,...] [--reserve AMOUNT] [--buy-now AMOUNT] [--soft-close WINDOW/EXTENSION/CAP] [--desc TEXT]",
        summary: "open an auction as the logged-in bidder",
        details: "Quote a TITLE with spaces. Defaults: --duration 1h, --increment 1.00.\nExample: open \"Old bike\" --start 10 --duration 5m --reserve 25 --buy-now 60\nTiers: --tiers 0:0.25,25:1,100:2.50 (price from which each step applies).\nSoft close: --soft-close 2m/2m/10m (window/extension/cap).",
    },
    CommandHelp {
        name: "bid",
        usage: "bid ID AMOUNT [--expect PRICE [--leader N]]",
        summary: "bid up to AMOUNT (e.g. 12.50): you pay only what it takes to lead",
        details: "AMOUNT is your maximum, not the new price: the price becomes just enough for you to lead (the next highest maximum plus one increment, or the starting price), at most AMOUNT, and AMOUNT stays secret. If another bidder's secret maximum is higher (or as high and placed earlier), they keep the lead and the price rises to meet your AMOUNT. `bid` and `maxbid` place the same bid; only the history lists it as `bid`. If you lead already, it raises your maximum without raising the price (unless that meets the reserve).\n--expect PRICE: refused unless the current price is still PRICE (and, with --leader N, bidder N as `show` names them still leads), so a bid is never placed against a price you did not see.",
    },
    CommandHelp {
        name: "maxbid",
        usage: "maxbid ID AMOUNT [--expect PRICE [--leader N]]",
        summary: "proxy bid: the system bids for you, up to AMOUNT, just enough to lead",
        details: "The same bid as `bid` (every bid is a maximum; see `help bid`), listed in the history as `maxbid`. If you lead already, it raises your maximum without raising the price (unless that meets the reserve). --expect as for `bid`.",
    },
    CommandHelp {
        name: "buy",
        usage: "buy ID [PRICE] [--yes]",
        summary: "buy at the buy-now price",
        details: "The buy is refused unless PRICE is the buy-now price. The shell shows the price and asks before buying (--yes: no question). One-shot mode needs PRICE or --yes (pay the price `show` gives now).",
    },
    CommandHelp {
        name: "cancel",
        usage: "cancel ID",
        summary: "cancel your own auction (only without bids)",
        details: "",
    },
    CommandHelp {
        name: "history",
        usage: "history ID",
        summary: "the bids of an auction",
        details: "",
    },
    CommandHelp {
        name: "watch",
        usage: "watch [ID|all]",
        summary: "print live events (outbid, extended, closed) of one auction or all",
        details: "In the shell events appear above the prompt; one-shot `watch` prints them until interrupted.",
    },
    CommandHelp { name: "unwatch", usage: "unwatch", summary: "stop live events", details: "" },
    CommandHelp {
        name: "admin",
        usage: "admin SERVER report|queue|clients|leave|step-down|snapshot|promote NODE|demote NODE|remove NODE|move-leader NODE",
        summary: "administer one server, or the membership through the leader (needs --admin-token)",
        details: "SERVER: its client address, or its node id (a prefix is enough).\n\
                  promote NODE: a caught-up learner becomes a voter now (also releases a demoted one).\n\
                  demote NODE: a voter becomes a learner, held there until `promote`.\n\
                  remove NODE: a voter that is down leaves the configuration now (even below the quorum floor).\n\
                  move-leader NODE: the leadership moves to this caught-up voter.\n\
                  The membership operations go to the leader: sent to another server, they are passed on to it.",
    },
];

/// The help entry of `name`.
pub fn help_for(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_and_maxbid_say_that_every_bid_is_a_maximum() {
        let (bid, maxbid) = (help_for("bid").unwrap(), help_for("maxbid").unwrap());
        let bid_text = format!("{} {}", bid.summary, bid.details);
        assert!(!bid_text.contains("exactly"), "a plain bid is not a bid of exactly AMOUNT");
        assert!(bid_text.contains("up to AMOUNT") && bid_text.contains("maximum"), "{bid_text}");
        assert!(bid_text.contains("same bid") && maxbid.details.contains("same bid"));
        assert!(maxbid.details.contains("history") && bid.details.contains("history"));
    }
}
