//! The client protocol: requests, responses with typed errors, and server-pushed events.
//!
//! Client frames are not authenticated with the cluster key (clients do not hold it); bidder
//! identity is a secret token checked by the server, and admin operations carry an admin token.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::auction::{
    AuctionEvent, AuctionSpec, AuctionSummary, AuctionView, BidRecord, BidderName, Expected,
    Outcome,
};
use super::peer::MemberState;
use crate::{Amount, AuctionId, ClientId, ClusterId, Incarnation, NodeId, RequestNo, Seq, Term};
use crate::{Timestamp, msg::log::LogEntry};

/// A message from a client to a server.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientToServer {
    /// A request; answered by exactly one [`Response`] with the same number.
    Request(Request),
    /// Client discovery over UDP broadcast: servers of `cluster` answer [`ServerToClient::Here`].
    FindServers {
        /// The cluster the client looks for.
        cluster: ClusterId,
    },
}

/// A request and its number (unique per client session, reused only for a retry).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The request number.
    pub no: RequestNo,
    /// What to do.
    pub body: RequestBody,
}

/// Which auctions to list.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListFilter {
    /// Only open auctions.
    Open,
    /// Only ended ones.
    Ended,
    /// Everything.
    All,
}

/// The operations a client can ask for.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// First request of a session: who the client is and the newest state it has seen.
    Hello {
        /// The client session (kept across reconnects so retries are recognised).
        client: ClientId,
        /// The highest applied seq the client has seen; the server answers no read older.
        seen: Seq,
    },
    /// Register a new bidder name; the answer carries its secret token.
    Register {
        /// The wanted name.
        name: BidderName,
    },
    /// Act as a registered bidder for the rest of the session.
    Login {
        /// The bidder.
        name: BidderName,
        /// Its secret token.
        token: String,
    },
    /// Who this session acts as.
    Whoami,
    /// List auctions.
    ListAuctions {
        /// Which ones.
        filter: ListFilter,
    },
    /// One auction in detail.
    ShowAuction {
        /// The auction.
        auction: AuctionId,
    },
    /// The bid history of one auction.
    History {
        /// The auction.
        auction: AuctionId,
    },
    /// Open an auction as the logged-in bidder.
    Open {
        /// What and how.
        spec: AuctionSpec,
    },
    /// A plain bid.
    Bid {
        /// The auction.
        auction: AuctionId,
        /// The amount.
        amount: Amount,
        /// The price and leader the bid was placed against; refused if they moved.
        expected: Option<Expected>,
    },
    /// A proxy bid with a maximum.
    MaxBid {
        /// The auction.
        auction: AuctionId,
        /// The maximum.
        max: Amount,
        /// The price and leader the bid was placed against; refused if they moved.
        expected: Option<Expected>,
    },
    /// Buy at the buy-now price.
    BuyNow {
        /// The auction.
        auction: AuctionId,
        /// The buy-now price the buyer saw; refused unless it is the auction's.
        price: Amount,
    },
    /// Cancel one's own auction without bids.
    Cancel {
        /// The auction.
        auction: AuctionId,
    },
    /// Receive events for one auction, or for all with `None`.
    Subscribe {
        /// The auction, or all.
        auction: Option<AuctionId>,
    },
    /// Stop receiving events.
    Unsubscribe,
    /// This server's status.
    Report,
    /// The membership view.
    Servers,
    /// Refused with `NotAuthorized`: the clients' names and addresses are for operators
    /// (`Admin` with `AdminOp::Clients`). Kept so that an old client gets a clear answer.
    Clients,
    /// Refused with `NotAuthorized`: the hold-back queue is for operators (`Admin` with
    /// `AdminOp::Queue`, which never shows amounts, reserves or token hashes).
    Queue,
    /// An administrative operation, allowed only with the admin token.
    Admin {
        /// The admin token (or the cluster key).
        token: String,
        /// The operation.
        op: AdminOp,
    },
}

/// Administrative operations (the seed's `rmi`, made safe). The membership operations
/// (`Promote`, `Demote`, `Remove`, `MoveLeader`) are the leader's to carry out: another
/// server answers [`ClientError::NotLeader`] with the leader it knows of.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    /// The server's report.
    Report,
    /// The hold-back queue.
    Queue,
    /// Leave the cluster (removed from the configuration first), then stop.
    Leave,
    /// Stop leading; let another node be elected.
    StepDown,
    /// Take a snapshot now.
    Snapshot,
    /// The clients connected to this server (names and addresses: operators only).
    Clients,
    /// Make a caught-up learner a voter now, without waiting for the stabilization time;
    /// also releases a learner held by `Demote`.
    Promote(NodeId),
    /// Make a voter a learner and hold it there (it is not promoted again automatically,
    /// only by `Promote`). Not the leader itself: move the leadership first.
    Demote(NodeId),
    /// Remove a server that is down from the configuration now, without waiting for the
    /// removal grace and even below the quorum floor (the operator decides). A server that
    /// is up is refused: stop it, or `Demote` it.
    Remove(NodeId),
    /// Hand the leadership to this voter (which must be caught up): it starts the next
    /// term's election at once and the others stand aside for it.
    MoveLeader(NodeId),
}

/// Why the leader refused a membership operation; nothing changed.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRefusal {
    /// The server is not a learner of this leader (unknown, not heard lately, or a voter).
    NotALearner,
    /// The server is not a voter.
    NotAVoter,
    /// The server has not caught up with the log yet.
    NotCaughtUp,
    /// The operation cannot target the leader itself (move the leadership first, or use
    /// `leave` on it).
    IsLeader,
    /// The server is up: stop it first (or demote it).
    ServerUp,
    /// Another configuration change has not committed yet; retry shortly.
    ChangeInProgress,
}

impl std::fmt::Display for AdminRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotALearner => "that server is not a learner here (see `servers` and `report`)",
            Self::NotAVoter => "that server is not a voter",
            Self::NotCaughtUp => "that server has not caught up with the log yet; retry shortly",
            Self::IsLeader => "that server is the leader; move the leadership first",
            Self::ServerUp => "that server is up; stop it first, or demote it",
            Self::ChangeInProgress => "another configuration change is committing; retry shortly",
        })
    }
}

/// The answer to one request.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request answered.
    pub no: RequestNo,
    /// The applied seq of the state this answer reflects. On one connection it never goes
    /// down: a refusal that reflects no state (a bad frame, an overloaded server) carries the
    /// highest seq the connection was given before.
    pub applied: Seq,
    /// The result.
    pub result: Result<Reply, ClientError>,
}

/// A successful answer.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Session accepted.
    Welcome {
        /// This server.
        server: NodeId,
        /// The servers to fail over to.
        servers: Vec<ServerInfo>,
        /// The server's clock (sequencer time of the last applied entry).
        now: Timestamp,
    },
    /// A bidder was registered; keep the token secret.
    Registered {
        /// The name.
        name: BidderName,
        /// The secret token for `Login`.
        token: String,
    },
    /// The session now acts as this bidder (or as nobody).
    Identity {
        /// The bidder, if logged in.
        name: Option<BidderName>,
    },
    /// A list of auctions.
    Auctions(Vec<AuctionSummary>),
    /// One auction.
    Auction(AuctionView),
    /// Bid history.
    History(Vec<BidRecord>),
    /// The state machine's outcome of a committed command.
    Outcome(Outcome),
    /// Subscribed or unsubscribed.
    Subscribed,
    /// Server status.
    Report(NodeReport),
    /// Membership view.
    Servers(Vec<ServerInfo>),
    /// Connected clients.
    Clients(Vec<ClientInfo>),
    /// Hold-back queue contents.
    Queue(Vec<QueuedEntry>),
    /// An admin operation was carried out.
    Done,
}

/// A request that failed. Each variant says whether anything changed.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// No majority is reachable (or no leader yet); nothing changed. Retry after the hint,
    /// possibly at another server.
    Unavailable {
        /// When to retry.
        retry_after: Duration,
        /// A leader the server knows of.
        leader: Option<NodeId>,
    },
    /// The server is overloaded (too many pending requests); nothing changed.
    Overloaded,
    /// The request needs a logged-in bidder; nothing changed.
    NotLoggedIn,
    /// Unknown name or wrong token; nothing changed.
    BadCredentials,
    /// The admin token is wrong; nothing changed.
    NotAuthorized,
    /// No such auction; nothing changed.
    UnknownAuction,
    /// The server has not yet applied the state the client has seen; nothing changed.
    Behind {
        /// What the server has applied.
        applied: Seq,
        /// What the client has seen.
        seen: Seq,
    },
    /// The first request of a session must be `Hello`; nothing changed.
    HelloFirst,
    /// The request was not understood; nothing changed.
    BadRequest,
    /// The outcome is unknown: the command may or may not commit. Retry with the same number.
    Timeout,
    /// An operation only the leader can do (admin `step-down`) reached another server;
    /// nothing changed.
    NotLeader {
        /// The leader this server knows of.
        leader: Option<NodeId>,
    },
    /// The answer would exceed the client frame limit; nothing changed. Ask for less (e.g.
    /// open auctions only).
    TooLarge,
    /// The leader refused a membership operation; nothing changed.
    AdminRefused {
        /// Why.
        reason: AdminRefusal,
    },
}

/// An event pushed to a subscribed client.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEvent {
    /// Log position of the entry that caused it.
    pub seq: Seq,
    /// Its sequencer time.
    pub at: Timestamp,
    /// What happened.
    pub event: AuctionEvent,
}

/// A message from a server to a client.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// The large variant is the common one (every answer): boxing it would allocate per answer, and
// a message lives only in a bounded per-connection queue.
#[allow(clippy::large_enum_variant)]
pub enum ServerToClient {
    /// The answer to a request.
    Response(Response),
    /// An event for a subscription.
    Event(PushEvent),
    /// The answer to `FindServers`.
    Here(ServerInfo),
}

/// How a client reaches a server, and how loaded it is.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: Incarnation,
    /// Where clients connect.
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "crate::ids::arb_socket_addr()")
    )]
    pub client_addr: SocketAddr,
    /// Its state as this server sees it.
    pub state: MemberState,
    /// How many clients it holds.
    pub clients: u32,
}

/// A server's role.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The sequencer of the current term.
    Leader,
    /// A member following a leader.
    Follower,
    /// Taking part in an election.
    Candidate,
    /// Not (yet) in the configuration.
    Joining,
}

/// One server's status (the seed's `report`).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The server.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: Incarnation,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it follows.
    pub leader: Option<NodeId>,
    /// Highest committed seq it knows.
    pub commit: Seq,
    /// Highest seq applied to its state machine.
    pub applied: Seq,
    /// Voting members.
    pub members: Vec<NodeId>,
    /// Connected clients.
    pub clients: u32,
    /// Entries waiting in the hold-back queue.
    pub holdback: u32,
    /// Whether it answers from its state: a leader whose view change is over and that hears a
    /// majority, or a server in sync with its leader's commit point. Until then it answers
    /// reads and writes with a retryable `Unavailable`.
    pub ready: bool,
    /// The learners the leader replicates to (servers not yet voters); empty elsewhere.
    pub learners: Vec<NodeId>,
    /// Learners an operator holds (`admin demote`): never promoted automatically. Replicated
    /// state, so every server reports them.
    pub held: Vec<NodeId>,
    /// Its wall clock minus the median of the clocks it knows, in milliseconds (a server
    /// skewed by more than the bound does not stand for leader).
    pub clock_skew_ms: i64,
    /// Each member's wall clock minus its own, in milliseconds, as measured from heartbeats.
    pub clock_offsets: Vec<(NodeId, i64)>,
}

/// One connected client (the seed's `clients`).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The session.
    pub client: ClientId,
    /// The bidder it acts as.
    pub bidder: Option<BidderName>,
    /// Its address.
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "crate::ids::arb_socket_addr()")
    )]
    pub addr: SocketAddr,
}

/// One entry of the hold-back queue as `admin queue` shows it: what kind of operation it is
/// and whom it concerns, never an amount, a reserve or a token hash (a bidder's maximum is
/// secret even from operators, and an uncommitted entry may never be applied).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEntry {
    /// Its log position.
    pub seq: Seq,
    /// Its term.
    pub term: Term,
    /// What it is.
    pub what: QueuedOp,
}

/// The redacted content of a queued entry.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueuedOp {
    /// A new leader's first entry.
    Noop,
    /// A configuration change.
    Config(crate::msg::log::ConfigChange),
    /// A bidder registers.
    Register {
        /// The name.
        name: BidderName,
    },
    /// An auction opens.
    Open {
        /// The seller.
        seller: BidderName,
    },
    /// A bid (its amount is the bidder's secret maximum: not shown).
    Bid {
        /// The auction.
        auction: AuctionId,
        /// The bidder.
        bidder: BidderName,
    },
    /// A buy-now.
    BuyNow {
        /// The auction.
        auction: AuctionId,
        /// The buyer.
        bidder: BidderName,
    },
    /// A withdrawal.
    Cancel {
        /// The auction.
        auction: AuctionId,
    },
    /// A close at the end time.
    Close {
        /// The auction.
        auction: AuctionId,
    },
}

impl From<&LogEntry> for QueuedEntry {
    fn from(e: &LogEntry) -> Self {
        use crate::msg::log::{EntryPayload, Operation};
        let what = match &e.payload {
            EntryPayload::Noop => QueuedOp::Noop,
            EntryPayload::Config(c) => QueuedOp::Config(c.clone()),
            EntryPayload::Command(c) => match &c.op {
                Operation::RegisterBidder { name, .. } => QueuedOp::Register { name: name.clone() },
                Operation::OpenAuction { seller, .. } => QueuedOp::Open { seller: seller.clone() },
                Operation::PlaceBid { auction, bidder, .. } => {
                    QueuedOp::Bid { auction: *auction, bidder: bidder.clone() }
                }
                Operation::BuyNow { auction, bidder, .. } => {
                    QueuedOp::BuyNow { auction: *auction, bidder: bidder.clone() }
                }
                Operation::Cancel { auction, .. } => QueuedOp::Cancel { auction: *auction },
                Operation::Close { auction } => QueuedOp::Close { auction: *auction },
            },
        };
        Self { seq: e.seq, term: e.term, what }
    }
}
