//! Validation of an [`AuctionSpec`] and the increment rule.
//!
//! A spec is checked once, when `OpenAuction` is applied; every later computation relies on
//! what is checked here (a non-empty, sorted tier table starting at zero, non-zero increments,
//! consistent prices), so the bid path needs no further checks.

use std::time::Duration;

use auction_proto::Amount;
use auction_proto::msg::auction::{AuctionSpec, CharClass, IncrementRule, MAX_PRICE, TextField};
use auction_proto::msg::text::first_refused;

/// Longest title, in bytes.
pub const MAX_TITLE: usize = 120;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 4_000;
/// Most tiers in a tiered increment table.
pub const MAX_TIERS: usize = 32;
/// Longest auction (and longest soft-close window, extension or cap): 90 days.
pub const MAX_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Why a spec is refused; folded into `RejectReason::InvalidSpec` on the wire (except
/// [`SpecError::Text`], which is `RejectReason::UnsafeText`) but kept precise here for tests and
/// logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Empty (or blank) title, or longer than [`MAX_TITLE`].
    #[error("the title must have 1 to {MAX_TITLE} bytes and not be blank")]
    Title,
    /// Description longer than [`MAX_DESCRIPTION`].
    #[error("the description must have at most {MAX_DESCRIPTION} bytes")]
    Description,
    /// A title or description holds a control (a newline is allowed in the description), a
    /// bidirectional control or an invisible format character (see
    /// `auction_proto::msg::text::classify`).
    #[error("the {field:?} holds U+{code_point:04X} ({class:?}) at character {position}")]
    Text {
        /// Which text.
        field: TextField,
        /// Where, in characters.
        position: u32,
        /// The character.
        code_point: u32,
        /// Its class.
        class: CharClass,
    },
    /// An amount (price, reserve, buy-now, increment, tier start) above [`MAX_PRICE`].
    #[error("amounts must be at most {MAX_PRICE}")]
    TooLarge,
    /// Starting price of zero.
    #[error("the starting price must be at least 0.01")]
    StartingPrice,
    /// Reserve below the starting price.
    #[error("the reserve must be at least the starting price")]
    Reserve,
    /// Buy-now below the starting price or the reserve.
    #[error("the buy-now price must be at least the starting price and the reserve")]
    BuyNow,
    /// Zero fixed increment, empty or unsorted tiers, first tier not at zero, a zero tier.
    #[error("the increment rule must have positive increments and sorted tiers from zero")]
    Increment,
    /// Zero duration or longer than [`MAX_DURATION`].
    #[error("the duration must be positive and at most 90 days")]
    Duration,
    /// Soft close with a zero window, extension or cap, or a setting longer than
    /// [`MAX_DURATION`].
    #[error("soft close needs a positive window, extension and cap, each at most 90 days")]
    SoftClose,
}

/// Checks every rule above, in the order of [`SpecError`]'s variants.
pub fn validate(spec: &AuctionSpec) -> Result<(), SpecError> {
    if spec.title.trim().is_empty() || spec.title.len() > MAX_TITLE {
        return Err(SpecError::Title);
    }
    if spec.description.len() > MAX_DESCRIPTION {
        return Err(SpecError::Description);
    }
    check_text(TextField::Title, &spec.title, false)?;
    check_text(TextField::Description, &spec.description, true)?;
    if amounts(spec).any(|a| a > MAX_PRICE) {
        return Err(SpecError::TooLarge);
    }
    if spec.starting_price.is_zero() {
        return Err(SpecError::StartingPrice);
    }
    if spec.reserve.is_some_and(|r| r < spec.starting_price) {
        return Err(SpecError::Reserve);
    }
    if let Some(buy_now) = spec.buy_now {
        if buy_now < spec.starting_price || spec.reserve.is_some_and(|r| buy_now < r) {
            return Err(SpecError::BuyNow);
        }
    }
    validate_increment(&spec.increment)?;
    if spec.duration.as_millis() == 0 || spec.duration > MAX_DURATION {
        return Err(SpecError::Duration);
    }
    if let Some(sc) = &spec.soft_close {
        let positive =
            [sc.window, sc.extension, sc.max_extension].iter().all(|d| d.as_millis() > 0);
        let bounded =
            [sc.window, sc.extension, sc.max_extension].iter().all(|d| *d <= MAX_DURATION);
        if !positive || !bounded {
            return Err(SpecError::SoftClose);
        }
    }
    Ok(())
}

fn check_text(field: TextField, text: &str, newline: bool) -> Result<(), SpecError> {
    match first_refused(text, newline) {
        None => Ok(()),
        Some((position, c, class)) => Err(SpecError::Text {
            field,
            position: u32::try_from(position).unwrap_or(u32::MAX),
            code_point: u32::from(c),
            class,
        }),
    }
}

/// Every amount a spec holds.
fn amounts(spec: &AuctionSpec) -> impl Iterator<Item = Amount> + '_ {
    let tiers: &[_] = match &spec.increment {
        IncrementRule::Fixed(_) => &[],
        IncrementRule::Tiered(t) => t,
    };
    let fixed = match spec.increment {
        IncrementRule::Fixed(a) => Some(a),
        IncrementRule::Tiered(_) => None,
    };
    [Some(spec.starting_price), spec.reserve, spec.buy_now, fixed]
        .into_iter()
        .flatten()
        .chain(tiers.iter().flat_map(|t| [t.from, t.increment]))
}

fn validate_increment(rule: &IncrementRule) -> Result<(), SpecError> {
    match rule {
        IncrementRule::Fixed(step) if step.is_zero() => Err(SpecError::Increment),
        IncrementRule::Fixed(_) => Ok(()),
        IncrementRule::Tiered(tiers) => {
            let starts_at_zero = tiers.first().is_some_and(|t| t.from.is_zero());
            let sorted = tiers.windows(2).all(|w| w[0].from < w[1].from);
            let positive = tiers.iter().all(|t| !t.increment.is_zero());
            if starts_at_zero && sorted && positive && tiers.len() <= MAX_TIERS {
                Ok(())
            } else {
                Err(SpecError::Increment)
            }
        }
    }
}

/// The minimum raise when the current price is `price`: the fixed step, or the step of the last
/// tier whose `from` is at or below `price`.
///
/// Relies on a validated rule; an (impossible) empty table yields the smallest step, one cent.
pub fn increment_at(rule: &IncrementRule, price: Amount) -> Amount {
    match rule {
        IncrementRule::Fixed(step) => *step,
        IncrementRule::Tiered(tiers) => {
            let after = tiers.partition_point(|t| t.from <= price);
            after
                .checked_sub(1)
                .and_then(|i| tiers.get(i))
                .map_or(Amount::from_minor(1), |t| t.increment)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_proto::msg::auction::IncrementTier;

    fn tier(from: u64, increment: u64) -> IncrementTier {
        IncrementTier { from: Amount::from_minor(from), increment: Amount::from_minor(increment) }
    }

    #[test]
    fn tiered_increment_uses_the_tier_of_the_current_price() {
        let rule = IncrementRule::Tiered(vec![tier(0, 5), tier(100, 25), tier(1000, 100)]);
        assert_eq!(increment_at(&rule, Amount::from_minor(0)), Amount::from_minor(5));
        assert_eq!(increment_at(&rule, Amount::from_minor(99)), Amount::from_minor(5));
        assert_eq!(increment_at(&rule, Amount::from_minor(100)), Amount::from_minor(25));
        assert_eq!(increment_at(&rule, Amount::from_minor(5000)), Amount::from_minor(100));
    }

    #[test]
    fn bad_tables_are_refused() {
        let bad = [
            IncrementRule::Tiered(vec![]),
            IncrementRule::Tiered(vec![tier(1, 5)]),
            IncrementRule::Tiered(vec![tier(0, 5), tier(0, 6)]),
            IncrementRule::Tiered(vec![tier(0, 5), tier(100, 0)]),
            IncrementRule::Fixed(Amount::ZERO),
        ];
        for rule in bad {
            assert_eq!(validate_increment(&rule), Err(SpecError::Increment), "{rule:?}");
        }
    }
}
