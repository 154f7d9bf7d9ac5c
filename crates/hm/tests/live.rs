//! The live view, from the outside: `hm run` in a pseudo-terminal draws it
//! (read back as a screen through a vt100 parser); the same run without a
//! terminal, or with `--logs`, prints the log stream.

mod util;

use std::time::Duration;

use util::pty::Pty;
use util::{envelope, sandbox_available, step, Fixture};

const ROWS: u16 = 40;
const COLS: u16 = 100;

fn fixture() -> Fixture {
    let steps = [
        step("slow", "echo warming up; sleep 2; echo warm"),
        step(
            "quick",
            r"printf 'progress 10\rprogress 100\n'; printf '\033[31mred\033[0m\n'; seq 20000",
        ),
        step("bad", "echo about to fail; echo oops >&2; exit 3"),
        step("after", "true"),
    ];
    Fixture::with(&envelope(
        "ci",
        &steps,
        &[("slow", "bad", "builds_in"), ("bad", "after", "builds_in")],
        None,
    ))
}

/// What the terminal shows once `bytes` were drawn on it.
fn screen(bytes: &[u8]) -> String {
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    parser.process(bytes);
    parser.screen().contents()
}

#[test]
fn on_a_terminal_the_build_is_shown_live() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let mut command = fx.command(&["run", "-k"]);
    command.env("TERM", "xterm-256color").env_remove("NO_COLOR");
    let pty = Pty::spawn(command, ROWS, COLS);
    // While `slow` sleeps: the header and its live line.
    pty.wait_for("warming up", Duration::from_secs(60)).unwrap();
    let during = screen(&pty.output());
    assert!(
        during.contains("running `ci`") && during.contains("running ·"),
        "{during}"
    );
    let (status, raw) = pty.finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1));
    let end = screen(&raw);
    // Each finished step once, distinct; the summary; no log stream.
    for line in [
        "✓ slow",
        "✓ quick",
        "✗ bad",
        "failed (exit code 3)",
        "- after",
        "skipped",
    ] {
        assert!(end.contains(line), "no {line:?} in:\n{end}");
    }
    assert_eq!(end.matches("✓ slow").count(), 1, "{end}");
    assert!(!end.contains("slow  | ") && !end.contains("running `ci`"), "{end}");
    let tail = end.find("Last lines of `bad`:").expect(&end);
    let (first, second) = (end[tail..].find("about to fail"), end[tail..].find("oops"));
    assert!(first.is_some() && first < second, "{end}");
    assert!(end.contains("Summary: 4 steps: 2 passed, 1 failed, 1 skipped"), "{end}");
    assert!(end.contains("build failed in"), "{end}");
    // Colour on a terminal; the live lines were redrawn in place, each
    // redraw one synchronized update, at a bounded rate (20,000 lines of
    // output are not 20,000 redraws).
    assert!(raw.windows(5).any(|w| w == b"\x1b[32m"), "no colour");
    assert!(
        raw.windows(4).any(|w| w == b"\x1b[1A" || w == b"\x1b[2K"),
        "nothing redrawn"
    );
    let count = |what: &[u8]| raw.windows(what.len()).filter(|w| *w == what).count();
    let updates = count(b"\x1b[?2026h");
    assert_eq!(updates, count(b"\x1b[?2026l"), "an update left open");
    assert!((5..200).contains(&updates), "{updates} redraws");
    fx.assert_clean();
}

#[test]
fn without_a_terminal_or_with_logs_the_log_stream_is_printed() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let piped = fx.hm(&["run", "-k"]);
    assert_eq!(piped.status.code(), Some(1));
    let text = String::from_utf8_lossy(&piped.stdout);
    for line in [
        "slow  | warming up",
        "quick | progress 100",
        "quick | red",
        "quick | 20000",
        "bad   | oops",
        "Summary",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(!text.contains('\x1b'), "escape sequences without a terminal: {text:?}");

    let mut command = fx.command(&["run", "-k", "--logs"]);
    command.env("TERM", "xterm-256color");
    let pty = Pty::spawn(command, ROWS, COLS);
    let (status, raw) = pty.finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1));
    let shown = screen(&raw);
    assert!(
        shown.contains("bad   | about to fail") && !shown.contains(" done · "),
        "{shown}"
    );

    // Colour when asked for, whatever stdout is; none when asked not to,
    // on a terminal too (`--no-color`, as Harmont's, or `NO_COLOR`), where
    // the view is still live.
    let coloured = fx.hm(&["run", "-k", "--color", "always"]);
    assert!(coloured.stdout.windows(5).any(|w| w == b"\x1b[32m"));
    for (flag, no_color) in [("--no-color", None), ("--color=auto", Some("1"))] {
        let mut command = fx.command(&["run", "-k", flag]);
        command.env("TERM", "xterm-256color").env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let (status, raw) = Pty::spawn(command, ROWS, COLS).finish(Duration::from_secs(120));
        assert_eq!(status.code(), Some(1));
        assert!(
            !raw.windows(5).any(|w| w == b"\x1b[32m" || w == b"\x1b[31m"),
            "{flag}: colour"
        );
        assert!(raw.windows(8).any(|w| w == b"\x1b[?2026h"), "{flag}: not live");
    }

    // `TERM=dumb` cannot be redrawn: the log stream.
    let mut command = fx.command(&["run", "-k"]);
    command.env("TERM", "dumb");
    let pty = Pty::spawn(command, ROWS, COLS);
    let (status, raw) = pty.finish(Duration::from_secs(120));
    assert_eq!(status.code(), Some(1));
    assert!(screen(&raw).contains("bad   | about to fail"));
    fx.assert_clean();
}

#[test]
fn a_resized_terminal_gets_lines_cut_to_its_new_width() {
    if !sandbox_available() {
        return;
    }
    let long = "y".repeat(150);
    let steps = [step("wide", &format!("echo {long}; sleep 3"))];
    let fx = Fixture::with(&envelope("ci", &steps, &[], None));
    let mut command = fx.command(&["run"]);
    command.env("TERM", "xterm-256color");
    let pty = Pty::spawn(command, ROWS, COLS);
    pty.wait_for(&long[..60], Duration::from_secs(60)).unwrap();
    // Drawn at 100 columns; from here on the terminal has 40.
    std::thread::sleep(Duration::from_millis(600));
    let before = pty.output().len();
    pty.resize(ROWS, 40);
    std::thread::sleep(Duration::from_millis(1000));
    let during = pty.output().len();
    let (status, raw) = pty.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    parser.process(&raw[..before]);
    parser.screen_mut().set_size(ROWS, 40);
    // Redrawn at 40 columns: the live line cut to fit, not wrapped (a
    // wrapped line would leave pieces behind when redrawn), the header once.
    parser.process(&raw[before..during]);
    let live = parser.screen().contents();
    assert_eq!(live.lines().filter(|l| l.contains("yyyy")).count(), 1, "{live}");
    assert_eq!(live.matches("running `ci`").count(), 1, "{live}");
    parser.process(&raw[during..]);
    let end = parser.screen().contents();
    assert!(end.contains("✓ wide") && end.contains("build passed"), "{end}");
    assert!(!end.contains("yyyy") && !end.contains("running `ci`"), "{end}");
    fx.assert_clean();
}
