//! The interactive shell: rustyline with history, completion of commands and auction ids, and
//! pushed events printed above the line being typed.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use auction_client::exit::Exit;
use auction_client::parse::{COMMANDS, Command, ParseError, help_for, parse_line};
use auction_client::render::{self, Ctx, EventFilter};
use auction_proto::AuctionId;
use auction_proto::msg::client::PushEvent;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use crate::app::{App, FILTERS, Printed};

/// A parse error with the usage of its command (named by the error or the line's first word).
pub(crate) fn usage_message(e: &ParseError, first_word: Option<&str>) -> String {
    let word = first_word.map(str::to_ascii_lowercase);
    match e.command().or(word.as_deref()).and_then(help_for) {
        Some(help) => format!("{e}\nusage: {}", help.usage),
        None => e.to_string(),
    }
}

/// Runs the shell until `exit` or end of input; the exit code is that of the last command.
pub(crate) fn run(
    mut app: App,
    runtime: &tokio::runtime::Runtime,
    events: mpsc::UnboundedReceiver<PushEvent>,
    history: Option<PathBuf>,
) -> Exit {
    let helper = ShellHelper { ids: Arc::clone(&app.ids) };
    let mut editor: Editor<ShellHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot start the line editor: {e}");
            return Exit::Other;
        }
    };
    editor.set_helper(Some(helper));
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    let printer: Box<dyn FnMut(String) + Send> = match editor.create_external_printer() {
        Ok(mut p) => Box::new(move |s| {
            if p.print(format!("{s}\n")).is_err() {
                println!("{s}");
            }
        }),
        Err(_) => Box::new(|s| println!("{s}")),
    };
    let color = app.color && !app.json;
    let json = app.json;
    let printing = runtime.spawn(print_events(events, printer, color, json));
    if !app.json {
        match runtime.block_on(app.session.connect()) {
            Ok(()) => {
                if let Some((node, addr)) = app.session.server() {
                    println!("connected to {} at {addr}; `help` lists commands", node.short());
                }
            }
            Err(e) => println!("{} (commands will try again)", app.error("connect", &e).text),
        }
    }
    let mut last = Exit::Success;
    loop {
        let prompt = prompt(&app);
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("input error: {e}");
                last = Exit::Other;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(&line);
        // A token typed on the line stays out of the history file (as redis-cli does with
        // AUTH).
        if !matches!(parsed, Ok(Command::Login { token: Some(_), .. })) {
            let _ = editor.add_history_entry(line.as_str());
        }
        let cmd = match parsed {
            Ok(cmd) => cmd,
            Err(e) => {
                let first = line.split_whitespace().next();
                println!("{}", app.usage(&usage_message(&e, first)).text);
                last = Exit::Usage;
                continue;
            }
        };
        match cmd {
            Command::Exit => break,
            Command::Clear => {
                let _ = editor.clear_screen();
                continue;
            }
            Command::Buy { auction, price, yes: false } => {
                let p = runtime.block_on(confirm_buy(&mut app, &mut editor, auction, price));
                if !p.text.is_empty() {
                    println!("{}", p.text);
                }
                last = p.exit;
            }
            cmd => {
                let p = runtime.block_on(app.run(cmd));
                if !p.text.is_empty() {
                    println!("{}", p.text);
                }
                last = p.exit;
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    printing.abort();
    last
}

/// `buy` in the shell: shows the buy-now price it will pay and asks; buys only on `y`, at
/// exactly that price (the server refuses it if it is not the auction's).
async fn confirm_buy(
    app: &mut App,
    editor: &mut Editor<ShellHelper, DefaultHistory>,
    auction: AuctionId,
    price: Option<auction_proto::Amount>,
) -> Printed {
    let quote = match app.quote(auction).await {
        Ok(q) => q,
        Err(p) => return p,
    };
    if let Some(given) = price.filter(|p| *p != quote.price) {
        let text = format!("{}, not {given}: nothing bought", quote.text);
        return Printed { exit: Exit::Rejected, text };
    }
    // Printed, not only prompted: without a terminal the line editor shows no prompt.
    println!("{}?", quote.text);
    let answer = editor.readline("[y/N] ");
    if !matches!(answer.as_deref().map(str::trim), Ok("y" | "Y" | "yes")) {
        return Printed { exit: Exit::Success, text: "not bought".into() };
    }
    app.run(Command::Buy { auction, price: Some(quote.price), yes: true }).await
}

fn prompt(app: &App) -> String {
    let who = app.session.login_name().map_or(String::new(), |n| format!("{n}@"));
    let server = app.session.server().map_or("-".to_string(), |(node, _)| node.short());
    if app.json { String::new() } else { format!("{who}{server}> ") }
}

async fn print_events(
    mut events: mpsc::UnboundedReceiver<PushEvent>,
    mut print: Box<dyn FnMut(String) + Send>,
    color: bool,
    json: bool,
) {
    let mut filter = EventFilter::default();
    while let Some(ev) = events.recv().await {
        if !filter.admit(&ev) {
            continue;
        }
        let text = if json {
            render::event_json(&ev).to_string()
        } else {
            // The server says "you" in the event itself: no name to compare here.
            let ctx = Ctx { color, now: Some(ev.at), bid: None };
            render::event_text(&ev, &ctx)
        };
        print(text);
    }
}

/// Completion of command names, auction ids, list filters, help topics and admin operations.
#[derive(Debug)]
struct ShellHelper {
    ids: Arc<Mutex<BTreeSet<AuctionId>>>,
}

const ID_COMMANDS: [&str; 7] = ["show", "bid", "maxbid", "buy", "cancel", "history", "watch"];
const ADMIN_OPS: [&str; 5] = ["report", "queue", "leave", "step-down", "snapshot"];

impl ShellHelper {
    fn candidates(&self, words: &[&str], partial: &str) -> Vec<String> {
        let options: Vec<String> = match words {
            [] => COMMANDS.iter().map(|c| c.name.to_string()).chain(["quit".into()]).collect(),
            [cmd] if ID_COMMANDS.contains(cmd) => {
                let ids = self.ids.lock().map(|ids| ids.clone()).unwrap_or_default();
                let mut v: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                if *cmd == "watch" {
                    v.push("all".into());
                }
                v
            }
            ["auctions"] => FILTERS.iter().map(|(w, _)| w.to_string()).collect(),
            ["help"] => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            ["admin", _] => ADMIN_OPS.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        };
        options.into_iter().filter(|o| o.starts_with(partial)).collect()
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rfind(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let words: Vec<&str> = before[..start].split_whitespace().collect();
        let partial = before[start..].trim_start_matches('#');
        let pairs = self
            .candidates(&words, partial)
            .into_iter()
            .map(|c| Pair { display: c.clone(), replacement: format!("{c} ") })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_ids_and_words() {
        let ids = Arc::new(Mutex::new(BTreeSet::from([AuctionId(3), AuctionId(12)])));
        let h = ShellHelper { ids };
        assert_eq!(h.candidates(&[], "b"), ["bid", "buy"]);
        assert_eq!(h.candidates(&["bid"], "1"), ["12"]);
        assert_eq!(h.candidates(&["watch"], ""), ["3", "12", "all"]);
        assert_eq!(h.candidates(&["auctions"], "e"), ["ended"]);
        assert_eq!(h.candidates(&["admin", "abc"], "st"), ["step-down"]);
        assert!(h.candidates(&["bid", "3"], "").is_empty());
    }
}
