//! A step's output line made safe to print after a prefix: what a terminal
//! would show of it, with nothing that moves the cursor.
//!
//! A carriage return redraws the line (progress bars, apt's `0% [Working]`):
//! only the text after the last one is shown (a line ending in `\r\n` keeps
//! its text). Colour (SGR, `ESC [ ... m`) is kept when the view is
//! coloured and dropped otherwise; every other escape sequence (cursor
//! movement, erasing, titles) and control character but the tab is
//! dropped, so that the prefix stays where it is. [`pieces`] is the same
//! reading, for a view that shows colour its own way (the HTML report).

use std::borrow::Cow;

/// A piece of what a terminal shows of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text, with no control character but tabs.
    Text(&'a str),
    /// A change of colour: the parameters of an SGR sequence (`1;31` of
    /// `ESC [ 1;31 m`).
    Color(&'a str),
}

/// What a terminal shows of `line`, in pieces: the text after its last
/// carriage return, colour changes, and nothing else (other escape
/// sequences and control characters are left out).
pub fn pieces(line: &str) -> Pieces<'_> {
    let line = line.trim_end_matches('\r');
    let rest = match line.rfind('\r') {
        Some(at) => &line[at + 1..],
        None => line,
    };
    Pieces { rest }
}

/// The iterator of [`pieces`].
pub struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        loop {
            let mut chars = self.rest.char_indices();
            let (_, first) = chars.next()?;
            if !first.is_control() || first == '\t' {
                let end = self
                    .rest
                    .find(|c: char| c.is_control() && c != '\t')
                    .unwrap_or(self.rest.len());
                let (text, rest) = self.rest.split_at(end);
                self.rest = rest;
                return Some(Piece::Text(text));
            }
            if first != '\x1b' {
                self.rest = chars.as_str();
                continue;
            }
            match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some((at, '[')) => {
                    let params = &self.rest[at + 1..];
                    match params.find(|c: char| ('\x40'..='\x7e').contains(&c)) {
                        Some(end) => {
                            self.rest = &params[end + 1..];
                            if params[end..].starts_with('m') {
                                return Some(Piece::Color(&params[..end]));
                            }
                        }
                        None => self.rest = "",
                    }
                }
                // OSC (a title, a hyperlink): up to BEL or ESC \.
                Some((at, ']')) => {
                    let body = &self.rest[at + 1..];
                    self.rest = match (body.find('\x07'), body.find("\x1b\\")) {
                        (Some(bel), Some(st)) if st < bel => &body[st + 2..],
                        (Some(bel), _) => &body[bel + 1..],
                        (None, Some(st)) => &body[st + 2..],
                        (None, None) => "",
                    };
                }
                // Any other escape is two characters.
                Some(_) => self.rest = chars.as_str(),
                None => self.rest = "",
            }
        }
    }
}

/// `line` as the logs view prints it.
pub fn clean(line: &str, color: bool) -> Cow<'_, str> {
    let mut parts = pieces(line);
    let shown = parts.rest;
    if !shown.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(shown);
    }
    let mut out = String::with_capacity(shown.len());
    for piece in parts.by_ref() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Color(params) if color => {
                out.push_str("\x1b[");
                out.push_str(params);
                out.push('m');
            }
            Piece::Color(_) => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{clean, pieces, Piece};

    #[test]
    fn pieces_are_text_and_colour() {
        let all: Vec<_> = pieces("x\rred \x1b[1;31mbold\x1b[0m\x1b[2K\x07 \x1b]0;t\x1b\\end\x1b[").collect();
        assert_eq!(
            all,
            [
                Piece::Text("red "),
                Piece::Color("1;31"),
                Piece::Text("bold"),
                Piece::Color("0"),
                Piece::Text(" "),
                Piece::Text("end"),
            ]
        );
    }

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
