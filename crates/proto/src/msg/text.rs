//! Text that cannot act: which characters the service refuses in stored text, and the bidder
//! name rules.
//!
//! Both are pure functions of the text (no locale, no clock), so every replica decides alike.
//! The server (`auction-core`) refuses titles and descriptions holding a [`CharClass`]
//! character; [`BidderName`](super::auction::BidderName) applies [`check_name`] on
//! construction and on decoding. The client uses [`classify`] to neutralise whatever it prints,
//! whatever an older server may have stored.
//!
//! The normalisation tables come from the `unicode-normalization` crate; its version is part of
//! the replicated rules (Unicode's stability policy keeps NFKC of assigned characters fixed).

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Why a character is refused in stored text.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CharClass {
    /// A C0 or C1 control, DEL, or the line and paragraph separators U+2028/U+2029 (a newline
    /// is allowed in descriptions only).
    Control,
    /// A bidirectional override, embedding, isolate or mark (U+061C, U+200E/F, U+202A..E,
    /// U+2066..9): they reorder what the terminal shows.
    Bidi,
    /// An invisible format character or other default-ignorable code point: zero-width space,
    /// joiners, word joiner, soft hyphen, BOM, tags, fillers, variation selectors other than
    /// the emoji ones (U+FE0E, U+FE0F).
    Invisible,
}

/// The class of `c` if the service refuses it in stored text (newline included: callers that
/// allow it check it first).
pub fn classify(c: char) -> Option<CharClass> {
    let u = u32::from(c);
    if c.is_control() || matches!(u, 0x2028 | 0x2029) {
        return Some(CharClass::Control);
    }
    if matches!(u, 0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069) {
        return Some(CharClass::Bidi);
    }
    let invisible = matches!(
        u,
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200D
            | 0x2060..=0x2065
            | 0x206A..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0D
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    );
    invisible.then_some(CharClass::Invisible)
}

/// The first refused character of `text`: its position (in characters), the character and its
/// class. `newline` allows `'\n'` (descriptions).
pub fn first_refused(text: &str, newline: bool) -> Option<(usize, char, CharClass)> {
    text.chars()
        .enumerate()
        .filter(|&(_, c)| !(newline && c == '\n'))
        .find_map(|(i, c)| classify(c).map(|class| (i, c, class)))
}

/// Longest bidder name, in characters (after normalisation).
pub const MAX_NAME_CHARS: usize = 32;

/// Why a string is not a bidder name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BidderNameError {
    /// Empty, or longer than [`MAX_NAME_CHARS`] characters after normalisation.
    #[error("a bidder name has 1 to {MAX_NAME_CHARS} characters (got {len})")]
    Length {
        /// The length given, in characters.
        len: usize,
    },
    /// A character outside letters (Latin, Greek or Cyrillic), digits `0`-`9`, `_`, `-`, `.`.
    #[error(
        "invalid character {found:?} (U+{:04X}) in bidder name (use letters, digits, '_', '-', '.')",
        u32::from(*found)
    )]
    InvalidCharacter {
        /// The first offending character.
        found: char,
    },
    /// Starts with something other than a letter or digit (so no `.`, `..`, `-x`), or ends
    /// with `.`.
    #[error("a bidder name starts with a letter or digit and does not end with '.'")]
    Edge,
    /// Letters of more than one script (Latin, Greek, Cyrillic), as in a look-alike.
    #[error("a bidder name uses letters of one alphabet only (not Latin with Greek or Cyrillic)")]
    MixedScripts,
}

/// The alphabets names may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
}

fn script(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    match u32::from(c) {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F => {
            Some(Script::Latin)
        }
        0xA720..=0xA7FF => Some(Script::Latin),
        0x370..=0x3FF | 0x1F00..=0x1FFF => Some(Script::Greek),
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => {
            Some(Script::Cyrillic)
        }
        _ => None,
    }
}

/// Normalises `name` (Unicode NFKC) and checks the name rules; returns the canonical name.
///
/// Rules: 1 to [`MAX_NAME_CHARS`] characters; only letters of the Latin, Greek or Cyrillic
/// alphabets, ASCII digits, `_`, `-` and `.`; the first character a letter or digit, the last
/// not `.`; letters of one alphabet only. Everything else (spaces, separators, controls,
/// invisible characters, other scripts) is refused.
pub fn check_name(name: &str) -> Result<String, BidderNameError> {
    let name: String = name.nfkc().collect();
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_CHARS {
        return Err(BidderNameError::Length { len });
    }
    let mut seen: Option<Script> = None;
    let mut mixed = false;
    for c in name.chars() {
        let s = script(c);
        if s.is_none() && !(c.is_ascii_digit() || matches!(c, '_' | '-' | '.')) {
            return Err(BidderNameError::InvalidCharacter { found: c });
        }
        if let Some(s) = s {
            mixed |= seen.is_some_and(|prev| prev != s);
            seen = Some(s);
        }
    }
    let starts_well = name.chars().next().is_some_and(|c| c.is_alphanumeric());
    if !starts_well || name.ends_with('.') {
        return Err(BidderNameError::Edge);
    }
    if mixed {
        return Err(BidderNameError::MixedScripts);
    }
    Ok(name)
}

/// The key under which names must be unique: the lower case of the (normalised) name, with
/// final sigma folded to sigma and `ß` to `ss`, normalised again. `Ann`, `ANN` and `ａｎｎ`
/// share the key `ann`.
pub fn name_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            'ς' => key.push('σ'),
            'ß' | 'ẞ' => key.push_str("ss"),
            c => key.extend(c.to_lowercase()),
        }
    }
    key.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify('\x1b'), Some(CharClass::Control));
        assert_eq!(classify('\u{9b}'), Some(CharClass::Control));
        assert_eq!(classify('\u{202e}'), Some(CharClass::Bidi));
        assert_eq!(classify('\u{200b}'), Some(CharClass::Invisible));
        assert_eq!(classify('\u{e0041}'), Some(CharClass::Invisible));
        for ok in ['a', 'é', ' ', '€', '\u{fe0f}', '日'] {
            assert_eq!(classify(ok), None, "{ok:?}");
        }
        assert_eq!(first_refused("a\nb", true), None);
        assert_eq!(first_refused("a\nb", false), Some((1, '\n', CharClass::Control)));
    }

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(check_name("ａｎｎ").as_deref(), Ok("ann"));
        assert_eq!(check_name("José").as_deref(), Ok("José"));
        assert_eq!(check_name("Юрий").as_deref(), Ok("Юрий"));
        assert_eq!(check_name("."), Err(BidderNameError::Edge));
        assert_eq!(check_name(".."), Err(BidderNameError::Edge));
        assert_eq!(check_name("-rf"), Err(BidderNameError::Edge));
        assert_eq!(check_name("ann."), Err(BidderNameError::Edge));
        assert_eq!(check_name(" ann"), Err(BidderNameError::InvalidCharacter { found: ' ' }));
        assert_eq!(
            check_name("ann\u{2028}"),
            Err(BidderNameError::InvalidCharacter { found: '\u{2028}' })
        );
        // Latin "a" with Cyrillic "а" (U+0430).
        assert_eq!(check_name("\u{430}nn"), Err(BidderNameError::MixedScripts));
        assert_eq!(check_name("pаypal"), Err(BidderNameError::MixedScripts));
        assert!(check_name("שלום").is_err());
    }

    #[test]
    fn keys_fold_case_and_compatibility() {
        assert_eq!(name_key("Ann"), name_key("ann"));
        assert_eq!(name_key(&check_name("ＡＮＮ").unwrap_or_default()), "ann");
        assert_eq!(name_key("ΟΔΟΣ"), name_key("οδος"));
        assert_eq!(name_key("Strauß"), name_key("STRAUSS"));
        assert_ne!(name_key("ann"), name_key("anne"));
    }
}
