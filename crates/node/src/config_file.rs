//! `auction-node run --config FILE`: a TOML file whose keys are the flags of `run` without the
//! dashes (`peer-addr = "10.0.0.1:7000"`; `peer_addr` is accepted too), so a service manager
//! or a container can keep a node's settings in one file.
//!
//! Precedence, highest first: a flag on the command line, its `AUCTION_*` environment
//! variable, the file, the built-in default. The file is applied by adding the flags it sets
//! to the command line before it is parsed, for every flag the command line and the
//! environment leave unset; so `--help`, validation and error messages are those of the flags.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory};

use crate::cli::Cli;

/// Why the configuration file cannot be used; the node does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("configuration file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key that is not a flag of `auction-node run`.
    #[error(
        "configuration file {path}: unknown key `{key}` (the keys are the flags of \
         `auction-node run --help` without the dashes)"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value of a type the flag cannot take (a table, a date, a list for a single flag).
    #[error("configuration file {path}: `{key}` cannot be {what}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was given.
        what: &'static str,
    },
}

/// `args` (the whole command line, program name first) with the flags the configuration file
/// sets added, if the command is `run` and a file is named by `--config` or `AUCTION_CONFIG`
/// (`env` looks environment variables up; `read` reads the file).
///
/// # Errors
/// The file cannot be read or parsed, or names a key that is not a flag.
pub fn apply(
    mut args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<OsString>, ConfigFileError> {
    if args.get(1).and_then(|a| a.to_str()) != Some("run") {
        return Ok(args);
    }
    let given: Vec<String> = args.iter().filter_map(|a| a.to_str().map(str::to_string)).collect();
    let Some(path) = flag_value(&given, "config").or_else(|| env("AUCTION_CONFIG")) else {
        return Ok(args);
    };
    let path = PathBuf::from(path);
    let text =
        read(&path).map_err(|source| ConfigFileError::Read { path: path.clone(), source })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigFileError::Syntax { path: path.clone(), message: e.to_string() }
    })?;
    let cli = Cli::command();
    let Some(run) = cli.find_subcommand("run") else {
        unreachable!("`run` is a subcommand of the command line")
    };
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) =
            run.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            return Err(ConfigFileError::UnknownKey { path, key });
        };
        let on_line =
            given.iter().any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
        let in_env = arg.get_env().and_then(|e| e.to_str()).is_some_and(|e| env(e).is_some());
        if on_line || in_env {
            continue;
        }
        let bad = |what| ConfigFileError::BadValue { path: path.clone(), key: key.clone(), what };
        let flag = OsString::from(format!("--{long}"));
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if on {
                    args.push(flag);
                }
            }
            (ArgAction::SetTrue, _) => return Err(bad("anything but true or false")),
            (ArgAction::Append, toml::Value::Array(items)) => {
                for item in items {
                    args.push(flag.clone());
                    args.push(scalar(item).ok_or_else(|| bad("a nested list or table"))?);
                }
            }
            (_, toml::Value::Array(_)) => return Err(bad("a list")),
            (_, item) => {
                args.push(flag);
                args.push(scalar(item).ok_or_else(|| bad("a table or a date"))?);
            }
        }
    }
    Ok(args)
}

/// A string, number or boolean as a flag value.
fn scalar(value: toml::Value) -> Option<OsString> {
    match value {
        toml::Value::String(s) => Some(s.into()),
        toml::Value::Integer(i) => Some(i.to_string().into()),
        toml::Value::Float(f) => Some(f.to_string().into()),
        toml::Value::Boolean(b) => Some(b.to_string().into()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// The value of `--name VALUE` or `--name=VALUE` on the command line.
fn flag_value(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let prefix = format!("--{name}=");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == long {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            return Some(v.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    const FILE: &str = r#"
        data-dir = "/var/lib/auction"
        peer_addr = "10.0.0.1:7000"
        bootstrap = true
        no-broadcast = false
        join = ["10.0.0.2:7000", "10.0.0.3:7000"]
        min-voters = 5
        leader-timeout = "200ms"
    "#;

    #[test]
    fn the_file_fills_in_what_the_line_and_the_environment_leave_unset() {
        // Keys come in sorted order; min-voters is set in the environment, no-broadcast false.
        let env = |k: &str| (k == "AUCTION_MIN_VOTERS").then(|| "4".to_string());
        let args = apply(
            argv("auction-node run --config /etc/a.toml --leader-timeout 300ms"),
            env,
            |_| Ok(FILE.to_string()),
        )
        .unwrap();
        let got = strings(args);
        assert_eq!(
            got,
            [
                "auction-node",
                "run",
                "--config",
                "/etc/a.toml",
                "--leader-timeout",
                "300ms",
                "--bootstrap",
                "--data-dir",
                "/var/lib/auction",
                "--join",
                "10.0.0.2:7000",
                "--join",
                "10.0.0.3:7000",
                "--peer-addr",
                "10.0.0.1:7000",
            ]
        );
        // And clap takes the result: the line's timeout, the file's addresses.
        let cli = <Cli as clap::Parser>::try_parse_from(&got).unwrap();
        let crate::cli::Command::Run(run) = cli.command else { panic!("run") };
        assert_eq!(run.leader_timeout, std::time::Duration::from_millis(300));
        assert_eq!(run.join.len(), 2);
        assert!(run.bootstrap && !run.no_broadcast);
    }

    #[test]
    fn the_file_can_be_named_by_the_environment_and_other_commands_ignore_it() {
        let env = |k: &str| (k == "AUCTION_CONFIG").then(|| "/etc/a.toml".to_string());
        let got = strings(apply(argv("auction-node run"), env, |_| Ok(FILE.into())).unwrap());
        assert!(got.contains(&"--bootstrap".to_string()), "{got:?}");
        let dev = strings(apply(argv("auction-node dev"), env, |_| Ok(FILE.into())).unwrap());
        assert_eq!(dev, ["auction-node", "dev"]);
        let none = strings(apply(argv("auction-node run"), |_| None, |_| Ok(FILE.into())).unwrap());
        assert_eq!(none, ["auction-node", "run"]);
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let run = |text: &'static str| {
            apply(argv("auction-node run --config=/etc/a.toml"), |_| None, move |_| Ok(text.into()))
        };
        let err = run("peer-adr = \"x\"").unwrap_err();
        assert!(matches!(&err, ConfigFileError::UnknownKey { key, .. } if key == "peer-adr"));
        assert!(err.to_string().contains("/etc/a.toml"), "{err}");
        assert!(matches!(run("bootstrap = 1"), Err(ConfigFileError::BadValue { .. })));
        assert!(matches!(run("peer-addr = [\"a\"]"), Err(ConfigFileError::BadValue { .. })));
        assert!(matches!(run("config = \"b.toml\""), Err(ConfigFileError::UnknownKey { .. })));
        let err = run("peer-addr = ").unwrap_err();
        assert!(matches!(err, ConfigFileError::Syntax { .. }), "{err}");
        let missing = apply(
            argv("auction-node run --config /nope"),
            |_| None,
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert!(matches!(missing, Err(ConfigFileError::Read { .. })));
    }
}
