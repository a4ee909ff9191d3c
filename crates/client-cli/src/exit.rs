//! Exit codes of one-shot commands, one per class of error (documented in docs/client.md and
//! in `--help`).

use auction_proto::msg::auction::Outcome;
use auction_proto::msg::client::{ClientError, Reply};

use crate::session::SessionError;

/// The class of a command's result, and the process exit code it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    /// 0: success.
    Success = 0,
    /// 1: the command line or the command was not understood.
    Usage = 1,
    /// 2: no server could be reached.
    NoServer = 2,
    /// 3: refused by the auction rules (`Outcome::Rejected`, unknown auction).
    Rejected = 3,
    /// 4: the cluster stayed unavailable (no majority) through the retries.
    Unavailable = 4,
    /// 5: authentication: not logged in, bad credentials, wrong admin token.
    Auth = 5,
    /// 6: any other error (overloaded, protocol error, outcome unknown, local IO).
    Other = 6,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short machine-readable name (the `error` field of JSON output).
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "ok",
            Self::Usage => "usage",
            Self::NoServer => "no_server",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
            Self::Auth => "auth",
            Self::Other => "error",
        }
    }

    /// The class of a successful answer: `Rejected` outcomes are failures.
    pub fn of_reply(reply: &Reply) -> Self {
        match reply {
            Reply::Outcome(Outcome::Rejected { .. }) => Self::Rejected,
            _ => Self::Success,
        }
    }

    /// The class of a failed request.
    pub fn of_error(err: &SessionError) -> Self {
        match err {
            SessionError::NoServer { .. } => Self::NoServer,
            SessionError::Unavailable => Self::Unavailable,
            SessionError::Unknown { .. } => Self::Other,
            SessionError::UnknownServer(_) | SessionError::TooLarge { .. } => Self::Usage,
            SessionError::Server(e) => match e.0 {
                ClientError::UnknownAuction | ClientError::AdminRefused { .. } => Self::Rejected,
                ClientError::Unavailable { .. } => Self::Unavailable,
                ClientError::NotLoggedIn
                | ClientError::BadCredentials
                | ClientError::NotAuthorized => Self::Auth,
                ClientError::Overloaded
                | ClientError::Behind { .. }
                | ClientError::HelloFirst
                | ClientError::BadRequest
                | ClientError::Timeout
                | ClientError::NotLeader { .. }
                | ClientError::TooLarge => Self::Other,
            },
        }
    }
}

/// The table printed in `--help` and docs/client.md.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (one-shot mode):
  0  success
  1  usage: bad command line or command arguments
  2  cannot reach any server
  3  rejected by the auction rules (too low, closed, unknown auction, ...)
  4  unavailable: no majority or no leader, after retries
  5  authentication: not logged in, bad credentials, wrong admin token
  6  other error (overloaded, outcome unknown after retries, local IO)";
