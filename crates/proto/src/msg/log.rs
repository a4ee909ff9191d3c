//! The replicated log: entries, commands and configuration changes.

use serde::{Deserialize, Serialize};

use super::auction::{AuctionSpec, BidKind, BidderName, Expected};
use super::discovery::NodeInfo;
use crate::{Amount, AuctionId, ClientId, NodeId, RequestNo, Seq, Term, Timestamp};

/// A client request's unique identity: the state machine applies each at most once.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The client session.
    pub client: ClientId,
    /// Its request counter.
    pub no: RequestNo,
}

/// SHA-256 of a bidder's secret token; the replicated state never holds the token itself.
pub type TokenHash = [u8; 32];

/// An auction operation, validated only when applied in log order.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Register a bidder name with the hash of its secret token.
    RegisterBidder {
        /// The name.
        name: BidderName,
        /// SHA-256 of the token.
        token_hash: TokenHash,
    },
    /// Open an auction.
    OpenAuction {
        /// The seller (authenticated by the node that accepted the request).
        seller: BidderName,
        /// What to sell and how.
        spec: AuctionSpec,
    },
    /// Bid (plain) or set a maximum (proxy).
    PlaceBid {
        /// The auction.
        auction: AuctionId,
        /// The bidder.
        bidder: BidderName,
        /// The amount (plain) or maximum (proxy).
        amount: Amount,
        /// Plain or proxy.
        kind: BidKind,
        /// What the bidder saw; the bid is refused if the price or leader moved.
        expected: Option<Expected>,
    },
    /// Buy at the buy-now price.
    BuyNow {
        /// The auction.
        auction: AuctionId,
        /// The buyer.
        bidder: BidderName,
        /// The buy-now price the buyer expects; refused unless it is the auction's.
        price: Amount,
    },
    /// Withdraw an auction with no bids.
    Cancel {
        /// The auction.
        auction: AuctionId,
        /// Who asks (must be the seller).
        seller: BidderName,
    },
    /// End an auction whose end time has passed (sequenced by the leader).
    Close {
        /// The auction.
        auction: AuctionId,
    },
}

/// A state-machine command: an operation and, for client requests, its identity.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// `Some` for client requests (deduplicated); `None` for commands the leader makes itself.
    pub origin: Option<RequestId>,
    /// What to do.
    pub op: Operation,
}

/// A change to the voting configuration; one at a time, each committed by a majority of the
/// configuration in force.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// The first entry of a new cluster: its initial members.
    Bootstrap {
        /// The founding members.
        members: Vec<NodeInfo>,
    },
    /// Add a voting member.
    AddMember(NodeInfo),
    /// Remove a voting member (graceful leave or long-term failure).
    RemoveMember(NodeId),
    /// Remove a voting member and hold it as a learner: it is not promoted again except by
    /// an operator's `AddMember` (`admin promote`). For the voters, the same as
    /// `RemoveMember`.
    Demote(NodeId),
}

/// What a log entry carries.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Nothing: a new leader commits one to learn its commit point.
    Noop,
    /// A configuration change.
    Config(ConfigChange),
    /// A state-machine command.
    Command(Command),
}

/// One entry of the replicated log, as sequenced by the leader of `term`.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The term of the leader that sequenced it.
    pub term: Term,
    /// Its position.
    pub seq: Seq,
    /// Sequencer time: the only clock the state machine sees.
    pub timestamp: Timestamp,
    /// The content.
    pub payload: EntryPayload,
}
