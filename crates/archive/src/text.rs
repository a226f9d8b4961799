//! Text from an archive or a cluster, made safe to show on a terminal.
//!
//! An archive is untrusted input even when it decrypts, and a cluster's strings are only as trustworthy as
//! everyone who may write to it: a name, a warning or a condition message could carry escape sequences that
//! clear the screen or draw a line that was never printed. Everything cmarchive shows from either goes through
//! [`escape_controls`] (one field, one line) or [`escape_controls_keep_lines`] (a whole message).

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1), line and paragraph separator and bidirectional control
/// written as an escape (`\n`, `\t`, `\u{1b}`, …), so that it shows as one inert line.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// [`escape_controls`], but line feeds stay: for messages that are several lines by design, whose fields were
/// escaped one by one.
pub fn escape_controls_keep_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| needs_escape(c) && !(keep_lines && c == '\n');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal acts on instead of showing, or that reorder or break the line around them.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(escape_controls("web-tls.prod é ☃"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\nc\td\u{9b}e\u{202e}f\u{7f}"),
            "a\\u{1b}[2Jb\\nc\\td\\u{9b}e\\u{202e}f\\u{7f}"
        );
        assert_eq!(
            escape_controls_keep_lines("one\u{1b}]0;x\u{7}\ntwo"),
            "one\\u{1b}]0;x\\u{7}\ntwo"
        );
        assert_eq!(escape_controls("\r\u{2028}"), "\\r\\u{2028}");
    }
}
