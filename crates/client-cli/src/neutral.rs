//! Pure: text from a server made harmless for a terminal, and cut to a display width.
//!
//! Everything the client prints in human form that came from a server (titles, descriptions,
//! names, tokens, messages) goes through [`clean`] (or [`clean_lines`], [`fit`]): a character
//! that could act on a terminal or hide text (a control, an escape, a bidirectional control,
//! an invisible format character; the classes of `auction_proto::msg::text::classify`) is
//! shown as a visible escape such as `\u{1b}`, never sent raw. Current servers refuse such
//! text; this protects against older servers, other clients' data and future fields.

use std::borrow::Cow;

use auction_proto::msg::text::classify;
use unicode_width::UnicodeWidthChar;

/// Whether `c` must not reach the terminal raw.
pub fn is_unsafe(c: char) -> bool {
    classify(c).is_some()
}

/// `text` with every unsafe character (newline included) replaced by its visible escape.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(units(text).map(|(u, _)| u).collect())
}

/// `text` cleaned line by line, each line after the first prefixed by `indent`: a description
/// keeps its newlines but cannot start a line of its own at the left margin.
pub fn clean_lines(text: &str, indent: &str) -> String {
    let lines: Vec<Cow<'_, str>> = text.split('\n').map(clean).collect();
    lines.join(&format!("\n{indent}"))
}

/// `text` cleaned, cut to at most `width` columns (with `…` when cut) and padded with spaces
/// to exactly `width` columns. An escape is never cut in the middle, and a wide character that
/// does not fit is left out whole.
pub fn fit(text: &str, width: usize) -> String {
    let total: usize = units(text).map(|(_, w)| w).sum();
    let mut out = String::new();
    let mut used = 0;
    if total <= width {
        units(text).for_each(|(u, _)| out.push_str(&u));
        used = total;
    } else {
        let room = width.saturating_sub(1);
        for (u, w) in units(text) {
            if used + w > room {
                break;
            }
            out.push_str(&u);
            used += w;
        }
        if width > 0 {
            out.push('…');
            used += 1;
        }
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}

/// The display units of `text`: each safe character with its width, each unsafe one as its
/// escape (as wide as it is long).
fn units(text: &str) -> impl Iterator<Item = (Cow<'static, str>, usize)> + '_ {
    text.chars().map(|c| {
        if is_unsafe(c) {
            let escape = format!("\\u{{{:x}}}", u32::from(c));
            let w = escape.len();
            (Cow::Owned(escape), w)
        } else {
            (Cow::Owned(c.to_string()), c.width().unwrap_or(0))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_are_visible_and_inert() {
        assert_eq!(clean("ok"), "ok");
        assert_eq!(clean("a\x1b]0;x\x07b"), "a\\u{1b}]0;x\\u{7}b");
        assert_eq!(clean("x\u{202e}y\u{200b}"), "x\\u{202e}y\\u{200b}");
        assert_eq!(clean_lines("one\ntwo\r", "  "), "one\n  two\\u{d}");
    }

    #[test]
    fn fit_cuts_by_width_without_splitting() {
        assert_eq!(fit("abc", 5), "abc  ");
        assert_eq!(fit("abcdef", 4), "abc…");
        // Wide characters take two columns; the one that does not fit is left out whole.
        assert_eq!(fit("日本語です", 6), "日本… ");
        // An escape is one unit: kept whole or dropped whole.
        assert_eq!(fit("ab\x1bcdefghijkl", 8), "ab…     ");
        assert_eq!(fit("e\u{301}tude", 3), "e\u{301}t…");
    }

    proptest! {
        #[test]
        fn cleaned_text_holds_no_unsafe_character(s in any::<String>(), w in 0usize..40) {
            prop_assert!(!clean(&s).chars().any(is_unsafe));
            prop_assert!(!fit(&s, w).chars().any(is_unsafe));
            prop_assert!(!clean_lines(&s, "  ").chars().any(|c| c != '\n' && is_unsafe(c)));
        }
    }
}
