//! Money as an integer count of minor units (cents), never a float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An amount of money in minor units (hundredths of the currency unit).
///
/// Arithmetic is checked: an overflow is a `None`, never a wrap. `Display` and `FromStr` use
/// the decimal form with exactly two fractional digits on output (`12.50`) and at most two on
/// input (`12`, `12.5`, `12.50`).
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Amount(u64);

/// Minor units per major unit.
const MINOR_PER_MAJOR: u64 = 100;

impl Amount {
    /// Zero.
    pub const ZERO: Self = Self(0);
    /// The largest representable amount.
    pub const MAX: Self = Self(u64::MAX);

    /// An amount of `minor` minor units (cents).
    pub const fn from_minor(minor: u64) -> Self {
        Self(minor)
    }

    /// The amount in minor units.
    pub const fn minor(self) -> u64 {
        self.0
    }

    /// `major` whole units and `cents` hundredths, or `None` on overflow or `cents >= 100`.
    pub const fn from_major_minor(major: u64, cents: u64) -> Option<Self> {
        if cents >= MINOR_PER_MAJOR {
            return None;
        }
        match major.checked_mul(MINOR_PER_MAJOR) {
            Some(m) => match m.checked_add(cents) {
                Some(v) => Some(Self(v)),
                None => None,
            },
            None => None,
        }
    }

    /// `self + rhs`, or `None` on overflow.
    pub const fn checked_add(self, rhs: Self) -> Option<Self> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self * n`, or `None` on overflow.
    pub const fn checked_mul(self, n: u64) -> Option<Self> {
        match self.0.checked_mul(n) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// `self + rhs`, saturating at [`Amount::MAX`].
    pub const fn saturating_add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{}.{:02}", self.0 / MINOR_PER_MAJOR, self.0 % MINOR_PER_MAJOR);
        f.pad(&s)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

/// Why a decimal string is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    /// The string was empty.
    #[error("an amount cannot be empty")]
    Empty,
    /// A character other than digits and one decimal point (signs and exponents are refused).
    #[error("invalid character {found:?} in amount (use digits and one '.', e.g. 12.50)")]
    InvalidCharacter {
        /// The first offending character.
        found: char,
    },
    /// More than two digits after the decimal point.
    #[error("at most two digits after the decimal point (got {digits})")]
    TooPrecise {
        /// How many fractional digits were given.
        digits: usize,
    },
    /// The value does not fit in 64 bits of minor units.
    #[error("amount too large")]
    Overflow,
}

impl FromStr for Amount {
    type Err = ParseAmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ParseAmountError::Empty);
        }
        if let Some(found) = s.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
            return Err(ParseAmountError::InvalidCharacter { found });
        }
        let (major, frac) = match s.split_once('.') {
            Some((_, f)) if f.contains('.') => {
                return Err(ParseAmountError::InvalidCharacter { found: '.' });
            }
            Some((m, f)) => (m, f),
            None => (s, ""),
        };
        if major.is_empty() && frac.is_empty() {
            return Err(ParseAmountError::Empty);
        }
        if frac.len() > 2 {
            return Err(ParseAmountError::TooPrecise { digits: frac.len() });
        }
        let major: u64 = if major.is_empty() {
            0
        } else {
            major.parse().map_err(|_| ParseAmountError::Overflow)?
        };
        let cents: u64 = match frac.len() {
            0 => 0,
            1 => u64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse().map_err(|_| ParseAmountError::Overflow)?,
        };
        Self::from_major_minor(major, cents).ok_or(ParseAmountError::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Amount::from_minor(1250).to_string(), "12.50");
        assert_eq!(Amount::from_minor(5).to_string(), "0.05");
        assert_eq!(Amount::ZERO.to_string(), "0.00");
        assert_eq!(format!("{:>8}", Amount::from_minor(100)), "    1.00");
    }

    #[test]
    fn parses_decimal_forms() {
        assert_eq!("12".parse::<Amount>(), Ok(Amount::from_minor(1200)));
        assert_eq!("12.5".parse::<Amount>(), Ok(Amount::from_minor(1250)));
        assert_eq!("12.05".parse::<Amount>(), Ok(Amount::from_minor(1205)));
        assert_eq!(".5".parse::<Amount>(), Ok(Amount::from_minor(50)));
        assert_eq!("7.".parse::<Amount>(), Ok(Amount::from_minor(700)));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert_eq!("".parse::<Amount>(), Err(ParseAmountError::Empty));
        assert_eq!(".".parse::<Amount>(), Err(ParseAmountError::Empty));
        assert_eq!("-1".parse::<Amount>(), Err(ParseAmountError::InvalidCharacter { found: '-' }));
        assert_eq!("1e3".parse::<Amount>(), Err(ParseAmountError::InvalidCharacter { found: 'e' }));
        assert_eq!(
            "1.2.3".parse::<Amount>(),
            Err(ParseAmountError::InvalidCharacter { found: '.' })
        );
        assert_eq!("1.234".parse::<Amount>(), Err(ParseAmountError::TooPrecise { digits: 3 }));
        assert_eq!("184467440737095516.16".parse::<Amount>(), Err(ParseAmountError::Overflow));
        assert_eq!("99999999999999999999999".parse::<Amount>(), Err(ParseAmountError::Overflow));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount::MAX.checked_add(Amount::from_minor(1)), None);
        assert_eq!(Amount::ZERO.checked_sub(Amount::from_minor(1)), None);
        assert_eq!(Amount::MAX.checked_mul(2), None);
        assert_eq!(
            Amount::from_minor(150).checked_add(Amount::from_minor(50)),
            Some(Amount::from_minor(200))
        );
        assert_eq!(Amount::from_major_minor(1, 100), None);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(minor in any::<u64>()) {
            let a = Amount::from_minor(minor);
            prop_assert_eq!(a.to_string().parse::<Amount>(), Ok(a));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<Amount>();
        }
    }
}
