//! A step's output line made safe to print after a prefix: what a terminal
//! would show of it, with nothing that moves the cursor.
//!
//! A carriage return redraws the line (progress bars, apt's `0% [Working]`):
//! only the text after the last one is shown (a line ending in `\r\n` keeps
//! its text). Colour (SGR, `ESC [ ... m`) is kept when the view is
//! coloured and dropped otherwise; every other escape sequence (cursor
//! movement, erasing, titles) and control character but the tab is
//! dropped, so that the prefix stays where it is.

use std::borrow::Cow;

/// `line` as the logs view prints it.
pub fn clean(line: &str, color: bool) -> Cow<'_, str> {
    let line = line.trim_end_matches('\r');
    let line = match line.rfind('\r') {
        Some(at) => &line[at + 1..],
        None => line,
    };
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    let mut sequence = String::from("\x1b[");
                    for next in chars.by_ref() {
                        sequence.push(next);
                        if ('\x40'..='\x7e').contains(&next) {
                            break;
                        }
                    }
                    if color && sequence.ends_with('m') {
                        out.push_str(&sequence);
                    }
                }
                // OSC (a title, a hyperlink): up to BEL or ESC \.
                Some(']') => {
                    while let Some(next) = chars.next() {
                        if next == '\x07' || (next == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // Any other escape is two characters.
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn a_carriage_return_shows_what_a_terminal_would() {
        assert_eq!(clean("progress 10\rprogress 100", false), "progress 100");
        assert_eq!(clean("windows line\r", false), "windows line");
        assert_eq!(
            clean("0% [Working]\r             \rGet:1 http://deb", false),
            "Get:1 http://deb"
        );
        assert_eq!(clean("plain\tline", false), "plain\tline");
    }

    #[test]
    fn colour_is_kept_only_in_colour_and_cursor_moves_never() {
        let coloured = "\x1b[31merror\x1b[0m: bad";
        assert_eq!(clean(coloured, true), coloured);
        assert_eq!(clean(coloured, false), "error: bad");
        assert_eq!(clean("\x1b[2K\x1b[1Gdone\x1b[1A", true), "done");
        assert_eq!(
            clean("\x1b]0;title\x07text\x1b]8;;http://x\x1b\\link", true),
            "textlink"
        );
        assert_eq!(clean("bell\x07 and back\x08space", false), "bell and backspace");
    }
}
