//! The live view of a build on a terminal: each step that ends is printed
//! once, and below the finished steps a few lines are redrawn in place — a
//! header with the counts and the build's elapsed time, and one line per
//! running step with its elapsed time and last line of output. The summary
//! (totals, the last lines of failed steps, the verdict) ends it.
//!
//! Drawing is indicatif's: it rewrites the live lines at a bounded rate,
//! cuts them to the terminal's width (read at every draw, so a resize is
//! followed) and keeps printed lines above them; each redraw is one
//! synchronized update, so nothing flickers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hm_events::{Event, StepStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::board::{format_duration, status_line, verdict, Board, Outcome};
use crate::{Renderer, Style};

/// Where the live view reads the time (a test's clock moves when told).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Redraws per second at most, on a real terminal.
const REFRESH_HZ: u8 = 15;

pub struct LiveRenderer {
    multi: MultiProgress,
    header: Option<ProgressBar>,
    style: Style,
    board: Board,
    clock: Clock,
    pipeline: String,
    started: Option<Instant>,
    /// The running steps, in the order they started.
    running: Vec<Running>,
    /// Steps that ended or were skipped, and how many of them failed.
    done: usize,
    failed: usize,
    /// Something changed since the live lines were last set.
    dirty: bool,
}

struct Running {
    idx: usize,
    bar: ProgressBar,
    since: Instant,
    /// The step's last line of output, cleaned and uncoloured.
    last: String,
    /// Why its cache entry missed, said when it ends.
    miss: Option<String>,
}

impl LiveRenderer {
    /// The view on this process's stdout, or `None` when stdout is not a
    /// terminal. (The caller knows whether the terminal can be redrawn at
    /// all: not when `TERM` is unset or `dumb`.)
    pub fn stdout(style: Style) -> Option<Self> {
        let term = console::Term::buffered_stdout();
        if !term.is_term() {
            return None;
        }
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(Synchronized::new(term)), REFRESH_HZ);
        Some(Self::new(target, style, Arc::new(Instant::now)))
    }

    pub fn new(target: ProgressDrawTarget, style: Style, clock: Clock) -> Self {
        LiveRenderer {
            multi: MultiProgress::with_draw_target(target),
            header: None,
            style,
            board: Board::default(),
            clock,
            pipeline: String::new(),
            started: None,
            running: Vec::new(),
            done: 0,
            failed: 0,
            dirty: false,
        }
    }

    fn bar(&self) -> ProgressBar {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        bar
    }

    /// Prints `line` above the live lines.
    fn print(&self, line: &str) -> std::io::Result<()> {
        self.multi.println(line)
    }

    /// Sets the live lines' text from the state and the clock.
    fn refresh(&mut self) {
        self.dirty = false;
        let now = (self.clock)();
        let s = self.style;
        if let (Some(header), Some(started)) = (&self.header, self.started) {
            let total = self.board.steps.len();
            let running = self.running.len();
            let queued = total.saturating_sub(self.done + running);
            let failed = format!("{} failed", self.failed);
            let failed = if self.failed > 0 { s.red(&failed) } else { failed };
            header.set_message(format!(
                "{} {}/{total} done · {running} running · {queued} queued · {failed}  {}",
                s.bold(&format!("running `{}`", self.pipeline)),
                self.done,
                s.dim(&elapsed(now - started)),
            ));
        }
        let width = self.board.width;
        for step in &self.running {
            let name = &self.board.steps[step.idx].name;
            step.bar.set_message(format!(
                "  {name:<width$}  {:>6}  {}",
                elapsed(now - step.since),
                s.dim(&step.last)
            ));
        }
    }

    fn ended(&mut self, step_id: &str, outcome: Outcome) -> std::io::Result<()> {
        let s = self.style;
        let Some(idx) = self.board.index(step_id) else {
            return Ok(());
        };
        let mut miss = None;
        if let Some(at) = self.running.iter().position(|r| r.idx == idx) {
            let step = self.running.remove(at);
            step.bar.finish_and_clear();
            self.multi.remove(&step.bar);
            miss = step.miss;
        }
        let (mark, text) = match &outcome {
            Outcome::Ended {
                status,
                exit_code,
                duration_ms,
                message,
                ..
            } => {
                let mark = match status {
                    StepStatus::Passed => s.green("✓"),
                    StepStatus::CacheHit => s.green("≡"),
                    StepStatus::Failed | StepStatus::TimedOut | StepStatus::Oom => s.red("✗"),
                    StepStatus::Canceled => s.yellow("○"),
                };
                let mut text = format!(
                    "{} {}",
                    status_line(s, *status, *exit_code, message.as_deref()),
                    s.dim(&format!("in {}", format_duration(*duration_ms)))
                );
                if let Some(why) = miss {
                    text.push_str(&s.dim(&format!(" (cache miss: {why})")));
                }
                (mark, text)
            }
            Outcome::Skipped(reason) => (s.dim("-"), s.dim(&format!("skipped: {reason}"))),
        };
        if matches!(&outcome, Outcome::Ended { status, .. } if !status.is_success() && *status != StepStatus::Canceled)
        {
            self.failed += 1;
        }
        self.done += 1;
        let width = self.board.width;
        let name = &self.board.steps[idx].name;
        let line = format!("{mark} {name:<width$}  {text}");
        self.board.steps[idx].outcome = Some(outcome);
        self.dirty = true;
        self.print(&line)
    }

    fn summary(&mut self, status: hm_events::BuildStatus, duration_ms: u64) -> std::io::Result<()> {
        for step in self.running.drain(..) {
            step.bar.finish_and_clear();
            self.multi.remove(&step.bar);
        }
        if let Some(header) = self.header.take() {
            header.finish_and_clear();
            self.multi.remove(&header);
        }
        let s = self.style;
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for view in &self.board.steps {
            let word = match &view.outcome {
                Some(Outcome::Ended { status, .. }) => match status {
                    StepStatus::Passed => "passed",
                    StepStatus::CacheHit => "cached",
                    StepStatus::Failed => "failed",
                    StepStatus::TimedOut => "timed out",
                    StepStatus::Canceled => "canceled",
                    StepStatus::Oom => "out of memory",
                },
                Some(Outcome::Skipped(_)) => "skipped",
                None => "not run",
            };
            match counts.iter_mut().find(|(w, _)| *w == word) {
                Some((_, n)) => *n += 1,
                None => counts.push((word, 1)),
            }
        }
        let total = self.board.steps.len();
        let totals: Vec<String> = counts.iter().map(|(word, n)| format!("{n} {word}")).collect();
        let steps = if total == 1 { "step" } else { "steps" };
        let mut text = Vec::new();
        text.extend_from_slice(format!("\n{} {total} {steps}: {}\n", s.bold("Summary:"), totals.join(", ")).as_bytes());
        self.board.write_slowest(&mut text, s)?;
        self.board.write_tails(&mut text, s)?;
        text.extend_from_slice(format!("\n{}", verdict(s, status, duration_ms)).as_bytes());
        self.print(&String::from_utf8_lossy(&text))
    }
}

/// A terminal whose every redraw is one synchronized update (DEC mode
/// 2026): a terminal that knows the mode shows the redraw at once, never
/// the live lines half cleared, so nothing flickers; one that does not
/// ignores it.
#[derive(Debug)]
struct Synchronized {
    term: console::Term,
    /// An update was begun and not yet ended.
    open: AtomicBool,
}

impl Synchronized {
    fn new(term: console::Term) -> Self {
        Synchronized {
            term,
            open: AtomicBool::new(false),
        }
    }

    /// Begins an update, unless one is open.
    fn begin(&self) -> std::io::Result<()> {
        if self.open.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        self.term.write_str("\x1b[?2026h")
    }
}

impl TermLike for Synchronized {
    fn width(&self) -> u16 {
        self.term.size().1
    }

    fn height(&self) -> u16 {
        self.term.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.begin()?;
        self.term.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.begin()?;
        self.term.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.begin()?;
        self.term.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.begin()?;
        self.term.move_cursor_left(n)
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.begin()?;
        self.term.write_line(line)
    }

    fn write_str(&self, text: &str) -> std::io::Result<()> {
        self.begin()?;
        self.term.write_str(text)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.begin()?;
        self.term.clear_line()
    }

    /// Ends the update: the terminal shows it.
    fn flush(&self) -> std::io::Result<()> {
        if self.open.swap(false, Ordering::Relaxed) {
            self.term.write_str("\x1b[?2026l")?;
        }
        self.term.flush()
    }
}

/// `7s`, `2m05s`: a running time, to the second.
fn elapsed(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

impl Renderer for LiveRenderer {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::BuildStart { pipeline, .. } => {
                self.pipeline = pipeline.clone();
                self.started = Some((self.clock)());
                self.header = Some(self.multi.add(self.bar()));
                self.dirty = true;
            }
            Event::StepQueued {
                step_id,
                key,
                display_name,
                ..
            } => {
                self.board.queued(step_id, key, display_name);
                self.dirty = true;
            }
            Event::StepStart {
                step_id, cache_miss, ..
            } => {
                if let Some(idx) = self.board.index(step_id) {
                    let bar = self.multi.add(self.bar());
                    self.running.push(Running {
                        idx,
                        bar,
                        since: (self.clock)(),
                        last: String::new(),
                        miss: cache_miss.clone(),
                    });
                    self.dirty = true;
                }
            }
            Event::StepLog {
                step_id,
                stream,
                line,
                partial,
                ..
            } => {
                // The summary's tail keeps colour; the live line does not.
                let shown = crate::line::clean(line, self.style.color);
                self.board.log(step_id, *stream, &shown, *partial);
                if let Some(idx) = self.board.index(step_id) {
                    if let Some(step) = self.running.iter_mut().find(|r| r.idx == idx) {
                        let plain = crate::line::clean(line, false);
                        if !plain.trim().is_empty() {
                            step.last = plain.into_owned();
                            self.dirty = true;
                        }
                    }
                }
            }
            Event::StepCacheHit { .. } => {}
            Event::StepEnd { step_id, .. } => {
                if let Some(outcome) = Outcome::of_end(event) {
                    self.ended(step_id, outcome)?;
                }
            }
            Event::StepSkipped { step_id, reason, .. } => self.ended(step_id, Outcome::Skipped(reason.clone()))?,
            Event::CacheRemoteError { .. } => {
                if let Some(warning) = crate::remote_warning(event) {
                    self.print(&self.style.yellow(&warning))?;
                }
            }
            Event::ChainFailed { .. }
            | Event::ImagePullStart { .. }
            | Event::ImagePullLayer { .. }
            | Event::ImagePullEnd { .. } => {}
            Event::BuildEnd {
                status, duration_ms, ..
            } => self.summary(*status, *duration_ms)?,
        }
        Ok(())
    }

    /// Sets the live lines (indicatif redraws them at its own bounded
    /// rate).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.refresh();
        }
        Ok(())
    }

    fn tick(&mut self) -> std::io::Result<()> {
        if self.header.is_some() {
            self.refresh();
        }
        Ok(())
    }

    fn note(&mut self, text: &str) -> std::io::Result<bool> {
        self.print(text).map(|()| true)
    }

    fn pause(&mut self) -> std::io::Result<()> {
        self.multi.clear()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use hm_events::{BuildStatus, StepStatus};
    use indicatif::InMemoryTerm;

    use super::*;
    use crate::testing::Script;

    /// The live view drawn into a virtual terminal (a vt100 parser), on a
    /// clock that moves only when told.
    struct Screen {
        term: InMemoryTerm,
        view: LiveRenderer,
        ms: Arc<AtomicU64>,
    }

    impl Screen {
        fn new(rows: u16, cols: u16) -> Self {
            let term = InMemoryTerm::new(rows, cols);
            let base = Instant::now();
            let ms = Arc::new(AtomicU64::new(0));
            let at = ms.clone();
            let clock: Clock = Arc::new(move || base + Duration::from_millis(at.load(Ordering::SeqCst)));
            let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
            let view = LiveRenderer::new(target, Style { color: false }, clock);
            Screen { term, view, ms }
        }

        fn feed(&mut self, events: impl IntoIterator<Item = Event>) -> &mut Self {
            for event in events {
                self.view.event(&event).unwrap();
            }
            self.view.flush().unwrap();
            self
        }

        /// Lets `secs` pass and ticks.
        fn wait(&mut self, secs: u64) -> &mut Self {
            self.ms.fetch_add(secs * 1000, Ordering::SeqCst);
            self.view.tick().unwrap();
            self
        }

        fn screen(&self) -> String {
            self.term.contents()
        }
    }

    #[test]
    fn a_parallel_build() {
        let (b, start) = Script::new(&["build-a", "build-b", "test"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start).feed([
            b.start("build-a"),
            b.start("build-b"),
            b.out("build-a", "compiling a"),
            b.out("build-b", "compiling b"),
        ]);
        screen.wait(3).feed([b.out("build-b", "linking b")]);
        insta::assert_snapshot!("parallel_running", screen.screen());
        screen.wait(1).feed([b.end("build-a", StepStatus::Passed, 0, 4000)]);
        insta::assert_snapshot!("parallel_one_done", screen.screen());
        screen.feed([
            b.end("build-b", StepStatus::Passed, 0, 4100),
            b.start("test"),
            b.end("test", StepStatus::Passed, 0, 900),
            b.build_end(BuildStatus::Passed, 0, 5200),
        ]);
        insta::assert_snapshot!("parallel_end", screen.screen());
    }

    #[test]
    fn a_failing_step() {
        let (b, start) = Script::new(&["build", "test", "deploy"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start).feed([
            b.start("build"),
            b.end("build", StepStatus::Passed, 0, 1500),
            b.start_missed("test", "files changed: src/lib.rs"),
            b.out("test", "about to fail"),
            b.err("test", "oops"),
        ]);
        insta::assert_snapshot!("failing_running", screen.screen());
        screen.feed([
            b.end("test", StepStatus::Failed, 3, 20),
            b.skip("deploy", "`test` failed"),
            b.build_end(BuildStatus::Failed, 1, 1600),
        ]);
        insta::assert_snapshot!("failing_end", screen.screen());
    }

    #[test]
    fn a_timeout() {
        let (b, start) = Script::new(&["slow"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start).feed([b.start("slow")]);
        screen.wait(5);
        insta::assert_snapshot!("timeout_running", screen.screen());
        screen.feed([
            b.end("slow", StepStatus::TimedOut, 124, 5000),
            b.build_end(BuildStatus::Failed, 1, 5100),
        ]);
        insta::assert_snapshot!("timeout_end", screen.screen());
    }

    #[test]
    fn an_interrupt() {
        let (b, start) = Script::new(&["a", "b", "c"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start).feed([b.start("a"), b.start("b")]).wait(2);
        assert!(screen
            .view
            .note("hm: interrupted; stopping every step and cleaning up...")
            .unwrap());
        screen.feed([
            b.end("a", StepStatus::Canceled, 137, 2100),
            b.end("b", StepStatus::Canceled, 137, 2100),
            b.skip("c", "the build was interrupted"),
            b.build_end(BuildStatus::Interrupted, 130, 2200),
        ]);
        insta::assert_snapshot!("interrupt_end", screen.screen());
    }

    #[test]
    fn cached_and_skipped_steps() {
        let (b, start) = Script::new(&["deps", "build", "deploy"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start);
        screen.feed(b.hit("deps")).feed(b.hit("build"));
        screen.feed([
            b.skip("deploy", "`when` is false"),
            b.build_end(BuildStatus::Passed, 0, 40),
        ]);
        insta::assert_snapshot!("cached_end", screen.screen());
    }

    #[test]
    fn carriage_returns_and_colours() {
        let (b, start) = Script::new(&["apt"]);
        let mut screen = Screen::new(24, 80);
        screen.feed(start).feed([
            b.start("apt"),
            b.out("apt", "\x1b[31mred\x1b[0m text"),
            b.out("apt", "progress 10\rprogress 100"),
        ]);
        insta::assert_snapshot!("carriage_running", screen.screen());
        screen.feed([
            b.out("apt", "0% [Working]\r\x1b[2K\x1b[1Adone"),
            b.end("apt", StepStatus::Failed, 1, 300),
            b.build_end(BuildStatus::Failed, 1, 310),
        ]);
        insta::assert_snapshot!("carriage_end", screen.screen());
    }

    #[test]
    fn live_lines_are_cut_to_the_terminal_width() {
        let (b, start) = Script::new(&["wide"]);
        let mut screen = Screen::new(10, 30);
        screen
            .feed(start)
            .feed([b.start("wide"), b.out("wide", &"x".repeat(200))]);
        let text = screen.screen();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
    }
}
