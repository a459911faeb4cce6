//! Text from the store made safe to print on a terminal. Ids, actions, bodies and statuses
//! are written by producers and guests; printed raw, an escape sequence in one could clear
//! the screen, retitle the window, or hide the rows after it.

use std::borrow::Cow;
use std::iter::Peekable;
use std::str::Chars;

/// `text` without terminal control sequences: escape sequences are removed whole (CSI
/// `ESC [ … final`, the strings OSC, DCS, SOS, PM and APC up to their terminator, and
/// two-character escapes such as `ESC c`), and every other C0 or C1 control character but
/// tab is dropped, newlines included (a value stays on its line).
pub(super) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // A two-character escape, or a lone ESC at the end.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Skips the rest of a control sequence: parameter and intermediate bytes, then its final
/// byte. Anything else ends it unconsumed.
fn skip_csi(chars: &mut Peekable<Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        match c {
            '\u{20}'..='\u{3f}' => {
                chars.next();
            }
            '\u{40}'..='\u{7e}' => {
                chars.next();
                return;
            }
            _ => return,
        }
    }
}

/// Skips a control string up to and including its terminator: BEL, `ESC \` or ST.
fn skip_string(chars: &mut Peekable<Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\x07' | '\u{9c}' => return,
            '\x1b' if chars.peek() == Some(&'\\') => {
                chars.next();
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_are_removed_whole() {
        assert_eq!(printable("a\x1b[31;1mred\x1b[0m"), "ared");
        assert_eq!(printable("\x1b]0;title\x07x\x1b]8;;http://e\x1b\\y"), "xy");
        assert_eq!(printable("\x1bcreset\x1b"), "reset");
        assert_eq!(printable("\u{9b}2Jc1\u{9d}osc\u{9c}!"), "c1!");
    }

    #[test]
    fn other_controls_are_dropped_but_tabs_and_text_stay() {
        assert_eq!(printable("a\tb\r\nc\x08\x07\u{85}d"), "a\tbcd");
        assert_eq!(printable("plain ünïcode ✓"), "plain ünïcode ✓");
    }
}
