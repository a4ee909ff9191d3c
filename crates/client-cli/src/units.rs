//! Durations as people type them (`90s`, `5m`, `2h`, `1h30m`, `1d`) and as the shell shows them.

use std::time::Duration;

/// Why text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// Nothing given.
    #[error("a duration cannot be empty (e.g. 90s, 5m, 2h, 1h30m)")]
    Empty,
    /// A number without a unit, e.g. `90`.
    #[error("missing unit after {number} (use s, m, h or d, e.g. {number}s)")]
    MissingUnit {
        /// The number given.
        number: u64,
    },
    /// A unit without a number, or a character that is neither.
    #[error("expected a number before {found:?} (e.g. 90s, 5m, 2h, 1h30m)")]
    MissingNumber {
        /// The offending character.
        found: char,
    },
    /// A unit other than `s`, `m`, `h`, `d`.
    #[error("unknown unit {unit:?} (use s, m, h, d or ms)")]
    UnknownUnit {
        /// The unit given.
        unit: String,
    },
    /// The total is zero.
    #[error("a duration must be more than zero")]
    Zero,
    /// The total does not fit.
    #[error("duration too long")]
    Overflow,
}

/// Parses `90s`, `5m`, `2h`, `1d` (and `500ms`) and sums like `1h30m`. Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, ParseDurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseDurationError::Empty);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            let found = rest.chars().next().unwrap_or(' ');
            return Err(ParseDurationError::MissingNumber { found });
        }
        let number: u64 = rest[..digits].parse().map_err(|_| ParseDurationError::Overflow)?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        if unit_len == 0 {
            if let Some(found) = rest.chars().next() {
                return Err(ParseDurationError::UnknownUnit { unit: found.to_string() });
            }
            return Err(ParseDurationError::MissingUnit { number });
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => return Err(ParseDurationError::UnknownUnit { unit: other.to_string() }),
        };
        let part = number.checked_mul(millis).ok_or(ParseDurationError::Overflow)?;
        total = total.checked_add(part).ok_or(ParseDurationError::Overflow)?;
    }
    if total == 0 {
        return Err(ParseDurationError::Zero);
    }
    Ok(Duration::from_millis(total))
}

/// Shows a duration with its two largest units: `2d 3h`, `1h 30m`, `4m 12s`, `12s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 2m10s "), Ok(Duration::from_secs(130)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn refuses_bad_durations() {
        assert_eq!(parse_duration(""), Err(ParseDurationError::Empty));
        assert_eq!(parse_duration("0s"), Err(ParseDurationError::Zero));
        assert_eq!(parse_duration("90"), Err(ParseDurationError::MissingUnit { number: 90 }));
        assert_eq!(parse_duration("5x"), Err(ParseDurationError::UnknownUnit { unit: "x".into() }));
        assert_eq!(parse_duration("m"), Err(ParseDurationError::MissingNumber { found: 'm' }));
        assert_eq!(parse_duration("-5m"), Err(ParseDurationError::MissingNumber { found: '-' }));
        assert_eq!(parse_duration("5m 3s"), Err(ParseDurationError::MissingNumber { found: ' ' }));
        assert_eq!(parse_duration("99999999999999999999d"), Err(ParseDurationError::Overflow));
        assert_eq!(parse_duration("999999999999999999d"), Err(ParseDurationError::Overflow));
    }

    #[test]
    fn formats_two_units() {
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(252)), "4m 12s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::from_secs(183_600)), "2d 3h");
    }
}
