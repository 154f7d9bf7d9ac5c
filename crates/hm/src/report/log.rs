//! A step's kept output as the report embeds it: its last bytes only, and
//! shown as a terminal would have (carriage returns redraw the line,
//! colours kept, other escape sequences and control characters dropped,
//! bytes that are not UTF-8 shown as `�`), escaped for HTML.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use hm_render::line::Piece;

use super::page::escape;

/// Bytes of one step's log the report embeds at most.
pub const STEP_LIMIT: u64 = 64 << 10;
/// Bytes of all steps' logs the report embeds at most, shared among them
/// (but each gets at least [`STEP_MIN`]).
pub const TOTAL_LIMIT: u64 = 8 << 20;
/// Bytes of one step's log the report embeds however many steps there are.
pub const STEP_MIN: u64 = 4 << 10;

/// The bytes each of `steps` logs may embed.
pub fn limit_per_step(steps: usize) -> u64 {
    (TOTAL_LIMIT / steps.max(1) as u64).clamp(STEP_MIN, STEP_LIMIT)
}

/// The end of a step's log, as kept in the run's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The log's last bytes, from the start of a line when one starts
    /// within them.
    pub bytes: Vec<u8>,
    /// The whole log's size.
    pub total: u64,
    /// Why the log could not be read.
    pub error: Option<String>,
}

impl LogTail {
    /// The last `limit` bytes (or fewer) of the log at `path`; a missing
    /// log is an empty one (the step wrote nothing, or never ran).
    pub fn read(path: &Path, limit: u64) -> Self {
        match read_tail(path, limit) {
            Ok(tail) => tail,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => LogTail::default(),
            Err(err) => LogTail {
                error: Some(format!("cannot read `{}`: {err}", path.display())),
                ..LogTail::default()
            },
        }
    }

    /// Whether the beginning of the log was left out.
    pub fn is_cut(&self) -> bool {
        (self.bytes.len() as u64) < self.total
    }
}

fn read_tail(path: &Path, limit: u64) -> std::io::Result<LogTail> {
    let mut file = std::fs::File::open(path)?;
    let total = file.metadata()?.len();
    let from = total.saturating_sub(limit);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::with_capacity((total - from) as usize);
    file.take(limit).read_to_end(&mut bytes)?;
    if from > 0 {
        // Start at a whole line when the tail holds one.
        if let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            if newline + 1 < bytes.len() {
                bytes.drain(..=newline);
            }
        }
    }
    Ok(LogTail {
        bytes,
        total,
        error: None,
    })
}

/// `bytes` of a log as HTML text for a `<pre>`: each line as a terminal
/// would show it, colours as `<span class="…">`, everything escaped.
pub fn to_html(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    let mut sgr = Sgr::default();
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let text = String::from_utf8_lossy(line);
        sgr.line(&text, &mut out);
    }
    out
}

/// The colour state of a log (SGR: `ESC [ … m`), carried from line to
/// line as a terminal does; each line's text is closed in its own span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sgr {
    bold: bool,
    /// The ANSI colour (0-15) of the text.
    fg: Option<u8>,
}

impl Sgr {
    /// Appends what a terminal shows of `line` to `out`.
    fn line(&mut self, line: &str, out: &mut String) {
        let mut open = self.open(out);
        for piece in hm_render::line::pieces(line) {
            match piece {
                Piece::Text(text) => out.push_str(&escape(text)),
                Piece::Color(params) => {
                    let before = *self;
                    self.apply(params);
                    if *self != before {
                        if open {
                            out.push_str("</span>");
                        }
                        open = self.open(out);
                    }
                }
            }
        }
        if open {
            out.push_str("</span>");
        }
    }

    /// Opens a span for the current colours, if they are not the default;
    /// says whether it did.
    fn open(&self, out: &mut String) -> bool {
        let mut classes = Vec::new();
        if self.bold {
            classes.push("b".to_owned());
        }
        if let Some(fg) = self.fg {
            classes.push(format!("c{fg}"));
        }
        if classes.is_empty() {
            return false;
        }
        out.push_str(&format!("<span class=\"{}\">", classes.join(" ")));
        true
    }

    /// Applies the parameters of one SGR sequence.
    fn apply(&mut self, params: &str) {
        let codes: Vec<Option<u16>> = params.split([';', ':']).map(|p| p.parse().ok()).collect();
        let mut codes = codes.into_iter();
        while let Some(code) = codes.next() {
            match code.unwrap_or(0) {
                0 => *self = Sgr::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                c @ 30..=37 => self.fg = Some((c - 30) as u8),
                c @ 90..=97 => self.fg = Some((c - 90 + 8) as u8),
                39 => self.fg = None,
                // 256 colours: the first 16 are the palette; others show
                // plain. Truecolour shows plain.
                38 => match codes.next().flatten() {
                    Some(5) => {
                        self.fg = codes.next().flatten().filter(|&c| c < 16).map(|c| c as u8);
                    }
                    Some(2) => {
                        codes.by_ref().take(3).for_each(drop);
                        self.fg = None;
                    }
                    _ => {}
                },
                48 => match codes.next().flatten() {
                    Some(5) => {
                        codes.next();
                    }
                    Some(2) => codes.by_ref().take(3).for_each(drop),
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_log_comes_out_inert() {
        let html = to_html(b"</script><b>bold?</b> & \"quotes\" 'too'\n");
        assert_eq!(
            html,
            "&lt;/script&gt;&lt;b&gt;bold?&lt;/b&gt; &amp; &quot;quotes&quot; &#39;too&#39;"
        );
    }

    #[test]
    fn a_log_shows_as_a_terminal_would() {
        assert_eq!(to_html(b"progress 10\rprogress 100\r\ndone\n"), "progress 100\ndone");
        assert_eq!(to_html(b"a\x00b\xffc\x07\td"), "ab\u{fffd}c\td");
        assert_eq!(to_html(b"\x1b[2K\x1b[1Gmoved\x1b]0;title\x07"), "moved");
        assert_eq!(
            to_html(b"\x1b[1;31merror\x1b[0m: <x>\n\x1b[32mok"),
            "<span class=\"b c1\">error</span>: &lt;x&gt;\n<span class=\"c2\">ok</span>"
        );
        // Colour goes on over a newline, closed and opened again.
        assert_eq!(
            to_html(b"\x1b[93mone\ntwo\x1b[39m three"),
            "<span class=\"c11\">one</span>\n<span class=\"c11\">two</span> three"
        );
        assert_eq!(
            to_html(b"\x1b[38;5;4mblue\x1b[38;2;1;2;3m plain"),
            "<span class=\"c4\">blue</span> plain"
        );
    }

    #[test]
    fn only_the_end_of_a_long_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = Vec::new();
        for i in 0..1000 {
            log.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        std::fs::write(&path, &log).unwrap();
        let tail = LogTail::read(&path, 100);
        assert!(tail.is_cut());
        assert_eq!(tail.total, log.len() as u64);
        assert!(tail.bytes.starts_with(b"line 9") && tail.bytes.ends_with(b"line 999\n"));
        assert!(tail.bytes.len() <= 100);
        let whole = LogTail::read(&path, 1 << 20);
        assert!(!whole.is_cut());
        assert_eq!(whole.bytes, log);
        assert_eq!(LogTail::read(&dir.path().join("none.log"), 100), LogTail::default());
        assert_eq!(limit_per_step(1), STEP_LIMIT);
        assert_eq!(limit_per_step(100_000), STEP_MIN);
    }
}
