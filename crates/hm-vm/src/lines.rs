//! A step's output cut into lines of bounded size: memory stays flat
//! whatever a step prints, even one endless line.
//!
//! A line longer than [`MAX_LINE_BYTES`] arrives in pieces of at most that
//! many bytes, each but the last marked [`LogLine::partial`]; a piece never
//! ends inside a UTF-8 character, so joining the pieces gives the line
//! back exactly.

use crate::backend::{LogLine, LogStream};

/// The longest piece of a line: 64 KiB (a line longer than that is split).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Assembles one stream's chunks of bytes into lines and pieces of lines.
#[derive(Debug)]
pub struct LineSplitter {
    stream: LogStream,
    /// The line being assembled; never longer than [`MAX_LINE_BYTES`].
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: LogStream) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
        }
    }

    /// The lines and pieces `chunk` completes, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<LogLine> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            if self.buf.len() >= MAX_LINE_BYTES {
                // Full: a newline next ends the line here, anything else
                // continues it in another piece.
                if chunk[0] == b'\n' {
                    out.push(self.take(self.buf.len(), false, true));
                    chunk = &chunk[1..];
                } else {
                    let cut = char_boundary(&self.buf);
                    out.push(self.take(cut, true, false));
                }
                continue;
            }
            let room = MAX_LINE_BYTES - self.buf.len();
            let window = &chunk[..room.min(chunk.len())];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.buf.extend_from_slice(&window[..end]);
                    out.push(self.take(self.buf.len(), false, true));
                    chunk = &chunk[end + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    chunk = &chunk[window.len()..];
                }
            }
        }
        out
    }

    /// The last line, when the output did not end with a newline.
    pub fn finish(&mut self) -> Option<LogLine> {
        (!self.buf.is_empty()).then(|| self.take(self.buf.len(), false, false))
    }

    /// The first `len` bytes of the buffer as a line or a piece.
    fn take(&mut self, len: usize, partial: bool, eol: bool) -> LogLine {
        let bytes = self.buf.drain(..len).collect();
        LogLine {
            stream: self.stream,
            bytes,
            partial,
            eol,
        }
    }
}

/// Where to cut a full buffer: before a UTF-8 character its end leaves
/// incomplete, else at its end.
fn char_boundary(buf: &[u8]) -> usize {
    let len = buf.len();
    for start in (len.saturating_sub(3)..len).rev() {
        let byte = buf[start];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character starts earlier
        }
        let width = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if start + width > len && start > 0 { start } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<(usize, bool)> {
        lines.iter().map(|l| (l.bytes.len(), l.partial)).collect()
    }

    #[test]
    fn lines_split_across_chunks_arrive_whole() {
        let mut lines = LineSplitter::new(LogStream::Stdout);
        assert!(lines.push(b"hel").is_empty());
        let got: Vec<String> = lines
            .push(b"lo\nwor")
            .into_iter()
            .map(|l| l.text().into_owned())
            .collect();
        assert_eq!(got, ["hello"]);
        let got: Vec<String> = lines
            .push(b"ld\n\nlast")
            .into_iter()
            .map(|l| l.text().into_owned())
            .collect();
        assert_eq!(got, ["world", ""]);
        assert_eq!(lines.finish().map(|l| l.text().into_owned()).as_deref(), Some("last"));
        assert!(lines.finish().is_none());
        // A character split between chunks is not mangled.
        let snowman = "☃".as_bytes();
        assert!(lines.push(&snowman[..1]).is_empty());
        let mut rest = snowman[1..].to_vec();
        rest.push(b'\n');
        assert_eq!(lines.push(&rest)[0].text(), "☃");
    }

    #[test]
    fn a_long_line_comes_in_marked_pieces() {
        let mut lines = LineSplitter::new(LogStream::Stderr);
        let mut got = Vec::new();
        for _ in 0..5 {
            got.extend(lines.push(&vec![b'a'; 50_000]));
        }
        got.extend(lines.push(b"\nnext\n"));
        assert_eq!(
            texts(&got),
            [
                (MAX_LINE_BYTES, true),
                (MAX_LINE_BYTES, true),
                (MAX_LINE_BYTES, true),
                (250_000 - 3 * MAX_LINE_BYTES, false),
                (4, false)
            ]
        );
        assert!(got.iter().all(|l| l.stream == LogStream::Stderr));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_one_line() {
        let mut lines = LineSplitter::new(LogStream::Stdout);
        assert!(lines.push(&vec![b'x'; MAX_LINE_BYTES]).is_empty());
        assert_eq!(texts(&lines.push(b"\n")), [(MAX_LINE_BYTES, false)]);
        assert!(lines.push(&vec![b'x'; MAX_LINE_BYTES]).is_empty());
        assert_eq!(
            texts(&lines.finish().into_iter().collect::<Vec<_>>()),
            [(MAX_LINE_BYTES, false)]
        );
    }

    #[test]
    fn pieces_never_cut_a_character() {
        let text = "é☃😀".repeat(20_000);
        let mut lines = LineSplitter::new(LogStream::Stdout);
        let mut got = lines.push(text.as_bytes());
        got.extend(lines.finish());
        assert!(got.len() > 1);
        assert!(got
            .iter()
            .all(|l| l.bytes.len() <= MAX_LINE_BYTES && !l.text().contains('\u{FFFD}')));
        assert!(got[..got.len() - 1].iter().all(|l| l.partial));
        assert_eq!(got.iter().map(|l| l.text()).collect::<String>(), text);
    }
}
