//! Auction data as it crosses the wire: what a seller asks for, what a bid is, what the state
//! machine answers and what it tells watchers.
//!
//! The rules live in the `auction-core` crate; these are only the shapes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Amount, AuctionId, Seq, Timestamp};

pub use super::text::{BidderNameError, CharClass, MAX_NAME_CHARS as MAX_BIDDER_NAME};

/// The largest amount the auction rules accept: 2^53 - 1 minor units (about 90 trillion), so
/// every amount is exact as a JSON number in JavaScript (an IEEE double).
pub const MAX_PRICE: Amount = Amount::from_minor((1 << 53) - 1);

/// A registered bidder's (or seller's) public name: 1 to 32 characters, Unicode NFKC
/// normalised, of letters of one alphabet (Latin, Greek or Cyrillic), digits, `_`, `-` and `.`,
/// starting with a letter or digit and not ending with `.` (see [`super::text::check_name`]).
/// Normalised and validated on construction and on deserialization, so a name in memory is
/// always canonical. Names are unique by [`BidderName::key`] (case-insensitively).
///
/// Shared, not copied: the text lives in an `Arc<str>`, so the state machine's outcomes and
/// events name bidders without allocating. It travels as a plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct BidderName(Arc<str>);

impl Serialize for BidderName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl BidderName {
    /// Normalises (NFKC) and validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, BidderNameError> {
        let name = super::text::check_name(&name.into())?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key names are unique by: case-folded (`Ann` and `ann` share one), see
    /// [`super::text::name_key`].
    pub fn key(&self) -> String {
        super::text::name_key(&self.0)
    }
}

impl TryFrom<String> for BidderName {
    type Error = BidderNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<BidderName> for String {
    fn from(n: BidderName) -> String {
        n.0.to_string()
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for BidderName {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;
    fn arbitrary_with((): ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        "[a-zA-Z0-9_.-]{1,32}"
            .prop_filter_map("valid bidder name", |s| BidderName::new(s).ok())
            .boxed()
    }
}

impl fmt::Display for BidderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for BidderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A bidder's number in one auction, shown as `bidder 3`: 1 for the first bidder to bid on it,
/// 2 for the next new one, and so on. Assigned by the state machine at a bidder's first
/// accepted bid and never changed, so every replica (and every snapshot) agrees on it. The
/// same bidder has unrelated numbers in different auctions.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BidderAlias(pub u32);

impl fmt::Display for BidderAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bidder {}", self.0)
    }
}

/// A bidder of one auction as one viewer may see them: by alias for everybody, by name for the
/// auction's seller, and as themself ("you") for the bidder. Public histories, events, lists
/// and answers name bidders only through this type; the state machine picks the variant for
/// the viewer (`auction-core`'s `history_for`, `Event::for_viewer`).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bidder {
    /// Another bidder, known to this viewer only by their alias.
    Alias(BidderAlias),
    /// A bidder named to the auction's seller.
    Named {
        /// Their alias in this auction.
        alias: BidderAlias,
        /// Their name.
        name: BidderName,
    },
    /// The viewer themself.
    You {
        /// The viewer's alias in this auction.
        alias: BidderAlias,
        /// The viewer's name.
        name: BidderName,
    },
}

impl Bidder {
    /// The alias in this auction, whichever the viewer.
    pub fn alias(&self) -> BidderAlias {
        match self {
            Self::Alias(alias) | Self::Named { alias, .. } | Self::You { alias, .. } => *alias,
        }
    }

    /// The name, when this viewer may know it.
    pub fn name(&self) -> Option<&BidderName> {
        match self {
            Self::Alias(_) => None,
            Self::Named { name, .. } | Self::You { name, .. } => Some(name),
        }
    }

    /// Whether this is the viewer.
    pub fn is_you(&self) -> bool {
        matches!(self, Self::You { .. })
    }
}

/// `bidder 3`, the name for the seller, `you` for the viewer. The name is shown as stored: a
/// terminal client neutralises it first.
impl fmt::Display for Bidder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alias(alias) => write!(f, "{alias}"),
            Self::Named { name, .. } => write!(f, "{name}"),
            Self::You { .. } => f.write_str("you"),
        }
    }
}

/// One step of a tiered increment table: from `from` (inclusive) upwards the minimum increment
/// is `increment`, until the next tier.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementTier {
    /// The current price at which this tier starts.
    pub from: Amount,
    /// The minimum raise while the price is in this tier.
    pub increment: Amount,
}

/// How much a new bid must beat the current price by.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncrementRule {
    /// The same minimum raise at every price.
    Fixed(Amount),
    /// A table by current price, tiers sorted by `from`, the first starting at zero.
    Tiered(Vec<IncrementTier>),
}

/// Soft close ("anti-sniping"): a bid in the last `window` before the end moves the end to
/// `extension` after the bid, never more than `max_extension` past the original end.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftClose {
    /// How close to the end a bid must be to extend it.
    pub window: Duration,
    /// How far past the bid the end moves.
    pub extension: Duration,
    /// The cap on the total extension past the original end.
    pub max_extension: Duration,
}

/// What a seller asks for when opening an auction.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionSpec {
    /// Short title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// The lowest acceptable first bid.
    pub starting_price: Amount,
    /// Secret minimum for a sale; bidders only learn whether it is met.
    pub reserve: Option<Amount>,
    /// Minimum raise.
    pub increment: IncrementRule,
    /// How long the auction runs, from the sequencer time of the opening entry.
    pub duration: Duration,
    /// Optional anti-sniping extension.
    pub soft_close: Option<SoftClose>,
    /// Optional price at which a bidder can end the auction at once.
    pub buy_now: Option<Amount>,
}

/// Plain or proxy bid.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BidKind {
    /// A bid of this amount. Like every bid it is a maximum: the system bids for the bidder
    /// just enough to lead, up to it; only the history's kind differs from [`BidKind::Proxy`].
    Plain,
    /// A maximum, named as such: the system bids for the bidder just enough to lead, up to it.
    Proxy,
}

/// Lifecycle of an auction.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuctionState {
    /// Accepting bids.
    Open,
    /// Ended at its deadline (sold or not).
    Closed,
    /// Ended by a buy-now purchase.
    Bought,
    /// Withdrawn by the seller before any bid.
    Cancelled,
}

/// Why the state machine refused a command. Nothing changed when one of these is returned.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The bid is below the minimum acceptable amount.
    TooLow {
        /// The smallest amount that would have been accepted.
        minimum: Amount,
    },
    /// The auction is no longer open (closed, bought, cancelled, or past its end).
    AuctionClosed,
    /// No auction has this id.
    UnknownAuction,
    /// The seller may not bid on their own auction.
    SellerCannotBid,
    /// Only the seller may do this.
    NotSeller,
    /// An amount that makes no sense here (zero, overflowing, inconsistent prices).
    InvalidAmount,
    /// The seller cannot cancel an auction that has bids.
    HasBids,
    /// Buy-now is not offered, or no longer available.
    BuyNowUnavailable,
    /// The bidder name is already registered.
    NameTaken,
    /// No bidder has this name.
    UnknownBidder,
    /// The auction specification is invalid (empty title, bad tiers, zero duration...).
    InvalidSpec,
    /// A retried request too old for the exactly-once window: it may or may not have been
    /// applied, and the state machine no longer knows its outcome (query the state instead).
    RequestExpired,
    /// A title or description holds a character that could act on a terminal or hide text (a
    /// control, a bidirectional override, an invisible format character).
    UnsafeText {
        /// Which text.
        field: TextField,
        /// Where, in characters from the start.
        position: u32,
        /// The character's code point.
        code_point: u32,
        /// Its class.
        class: CharClass,
    },
    /// A buy-now whose expected price is not the auction's buy-now price.
    BuyNowPriceDiffers {
        /// The real buy-now price.
        buy_now: Amount,
    },
    /// A bid placed against a price or leader that is no longer current (see [`Expected`]).
    PriceMoved {
        /// The current price.
        price: Amount,
        /// The current leader, as the bidder sees them.
        leader: Option<Bidder>,
    },
}

/// Which text of an auction spec.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextField {
    /// The title.
    Title,
    /// The description.
    Description,
}

/// What a bidder saw when placing a bid: the bid is refused with
/// [`RejectReason::PriceMoved`] unless the current price equals `price` and, when `leader` is
/// given, the current leader is the bidder with that alias (a bidder knows the others only by
/// alias).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The current price the bid was placed against.
    pub price: Amount,
    /// The alias of the leader it was placed against; `None`: not checked.
    pub leader: Option<BidderAlias>,
}

/// The result of applying one command.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A bidder name was registered.
    Registered {
        /// The new bidder.
        bidder: BidderName,
    },
    /// An auction was opened.
    Opened {
        /// Its id.
        auction: AuctionId,
        /// When it ends (sequencer time).
        ends_at: Timestamp,
    },
    /// The bid was accepted; `leader` may be someone else if an earlier proxy maximum beat it.
    Accepted {
        /// The auction.
        auction: AuctionId,
        /// The current price after the bid.
        price: Amount,
        /// Who leads now: [`Bidder::You`], or another bidder's alias.
        leader: Bidder,
    },
    /// The bidder bought the item at the buy-now price; the auction has ended.
    Bought {
        /// The auction.
        auction: AuctionId,
        /// The price paid.
        price: Amount,
    },
    /// The seller cancelled the auction.
    Cancelled {
        /// The auction.
        auction: AuctionId,
    },
    /// The auction closed.
    Closed {
        /// The auction.
        auction: AuctionId,
        /// The winner, if the reserve was met and there were bids (by alias: a `Close` has no
        /// client to answer).
        winner: Option<Bidder>,
        /// The final price, if sold.
        price: Option<Amount>,
    },
    /// A command with no effect (a no-op, or closing an auction already closed).
    Unchanged,
    /// The command was refused; nothing changed.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
}

/// A notification for watchers, produced when a command is applied, as one viewer sees it
/// (bidders by alias, by name for the seller, "you" for oneself: see [`Bidder`]).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuctionEvent {
    /// A new current price or leader.
    NewHighBid {
        /// The auction.
        auction: AuctionId,
        /// The new current price.
        price: Amount,
        /// Who leads.
        leader: Bidder,
    },
    /// `bidder` was leading and no longer is.
    Outbid {
        /// The auction.
        auction: AuctionId,
        /// The bidder who lost the lead.
        bidder: Bidder,
        /// The new current price.
        price: Amount,
    },
    /// Soft close moved the end.
    Extended {
        /// The auction.
        auction: AuctionId,
        /// The new end (sequencer time).
        new_end: Timestamp,
    },
    /// The auction ended.
    Closed {
        /// The auction.
        auction: AuctionId,
        /// The winner, if any.
        winner: Option<Bidder>,
        /// The final price, if sold.
        price: Option<Amount>,
        /// `None` without a reserve; otherwise whether it was met (the same rule as
        /// [`AuctionSummary::reserve_met`]).
        reserve_met: Option<bool>,
    },
}

/// One line of an auctions list.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionSummary {
    /// The auction.
    pub id: AuctionId,
    /// Its title.
    pub title: String,
    /// The seller.
    pub seller: BidderName,
    /// Lifecycle state.
    pub state: AuctionState,
    /// The current price (the starting price before any bid).
    pub price: Amount,
    /// The current leader, if any bid (the buyer once bought), as the viewer sees them.
    pub leader: Option<Bidder>,
    /// Number of accepted bids.
    pub bids: u32,
    /// Current end time (sequencer time): when bidding stops, unless the auction ended sooner.
    pub ends_at: Timestamp,
    /// When it actually ended (bought, cancelled or closed): the sequencer time of the entry
    /// that ended it. `None` while open.
    pub ended_at: Option<Timestamp>,
    /// `None` without a reserve; otherwise whether it is met.
    pub reserve_met: Option<bool>,
}

/// Everything a bidder may see about one auction.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionView {
    /// The list line.
    pub summary: AuctionSummary,
    /// Free text.
    pub description: String,
    /// Starting price.
    pub starting_price: Amount,
    /// Increment rule.
    pub increment: IncrementRule,
    /// The smallest bid anyone but the leader may place now; `None` when no bid is possible
    /// (the auction has ended, or the minimum would exceed [`MAX_PRICE`]).
    pub minimum_bid: Option<Amount>,
    /// The smallest bid the bidder who asked may place (the leader must raise their own
    /// maximum); `None` when not logged in, for the seller, or when no bid is possible.
    pub your_minimum: Option<Amount>,
    /// Buy-now price, while still available.
    pub buy_now: Option<Amount>,
    /// Soft-close settings.
    pub soft_close: Option<SoftClose>,
    /// When it opened (sequencer time).
    pub opened_at: Timestamp,
}

/// One accepted bid in an auction's history.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidRecord {
    /// Log position of the entry that placed it.
    pub seq: Seq,
    /// Sequencer time.
    pub at: Timestamp,
    /// Who bid, as the viewer sees them.
    pub bidder: Bidder,
    /// Plain or proxy.
    pub kind: BidKind,
    /// The current price right after this bid was applied (never the secret maximum).
    pub price: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidder_names_are_validated() {
        assert!(BidderName::new("alice_01").is_ok());
        assert_eq!(BidderName::new(""), Err(BidderNameError::Length { len: 0 }));
        assert_eq!(BidderName::new("a b"), Err(BidderNameError::InvalidCharacter { found: ' ' }));
        assert!(BidderName::new("x".repeat(33)).is_err());
        assert!(BidderName::new("é".repeat(32)).is_ok());
        assert_eq!(BidderName::new("ｂｏｂ").map(|n| n.to_string()), Ok("bob".to_string()));
        assert_eq!(BidderName::new("Bob").map(|n| n.key()), Ok("bob".to_string()));
    }

    #[test]
    fn bidders_show_as_the_viewer_may_see_them() {
        let ann = BidderName::new("ann").unwrap();
        let alias = BidderAlias(3);
        assert_eq!(Bidder::Alias(alias).to_string(), "bidder 3");
        assert_eq!(Bidder::Named { alias, name: ann.clone() }.to_string(), "ann");
        assert_eq!(Bidder::You { alias, name: ann.clone() }.to_string(), "you");
        assert_eq!(Bidder::Alias(alias).name(), None);
        assert!(Bidder::You { alias, name: ann }.is_you());
    }

    #[test]
    fn invalid_bidder_name_is_refused_on_decode() {
        let bytes = postcard::to_stdvec(&"bad name".to_string()).unwrap();
        assert!(postcard::from_bytes::<BidderName>(&bytes).is_err());
    }
}
