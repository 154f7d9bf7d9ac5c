//! What the human views know of a build, kept from its events: each step's
//! name, how it ended and its last lines of output; and the parts of the
//! summary both views print.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use hm_events::{BuildStatus, LogStream, StepStatus};

use crate::Style;

/// Lines of a failed step's log repeated in the summary.
const TAIL_LINES: usize = 20;
/// Steps that ran listed with what they used in the summary.
const SLOWEST: usize = 3;

#[derive(Default)]
pub(crate) struct Board {
    pub steps: Vec<StepView>,
    by_id: HashMap<String, usize>,
    /// The widest step name, for aligning.
    pub width: usize,
}

pub(crate) struct StepView {
    pub name: String,
    pub outcome: Option<Outcome>,
    /// The last lines (pieces of long lines), each marked when it continues
    /// the piece before it.
    tail: VecDeque<(bool, String)>,
    /// Per stream (stdout, stderr): the last piece was partial, so the next
    /// one continues it.
    continuing: [bool; 2],
}

pub(crate) enum Outcome {
    Ended {
        status: StepStatus,
        exit_code: i32,
        duration_ms: u64,
        message: Option<String>,
        /// What its command used, where measured.
        peak_memory_bytes: Option<u64>,
        cpu_ms: Option<u64>,
    },
    Skipped(String),
}

impl Outcome {
    /// The outcome a `step_end` event tells.
    pub fn of_end(event: &hm_events::Event) -> Option<Self> {
        match event {
            hm_events::Event::StepEnd {
                exit_code,
                duration_ms,
                status,
                message,
                peak_memory_bytes,
                cpu_ms,
                ..
            } => Some(Outcome::Ended {
                status: *status,
                exit_code: *exit_code,
                duration_ms: *duration_ms,
                message: message.clone(),
                peak_memory_bytes: *peak_memory_bytes,
                cpu_ms: *cpu_ms,
            }),
            _ => None,
        }
    }

    /// A failure worth its log's tail in the summary (not a cancellation).
    fn failed(&self) -> bool {
        matches!(self, Outcome::Ended { status, .. } if !status.is_success() && *status != StepStatus::Canceled)
    }
}

impl Board {
    /// Adds a queued step; returns its index.
    pub fn queued(&mut self, step_id: &str, key: &str, display_name: &str) -> usize {
        let name = step_name(key, display_name);
        self.width = self.width.max(name.chars().count());
        let idx = self.steps.len();
        self.by_id.insert(step_id.to_owned(), idx);
        self.steps.push(StepView {
            name: name.to_owned(),
            outcome: None,
            tail: VecDeque::new(),
            continuing: [false; 2],
        });
        idx
    }

    pub fn index(&self, step_id: &str) -> Option<usize> {
        self.by_id.get(step_id).copied()
    }

    /// The step's name (its id when it was never queued).
    pub fn name(&self, step_id: &str) -> String {
        self.index(step_id)
            .map(|i| self.steps[i].name.clone())
            .unwrap_or_else(|| step_id.to_owned())
    }

    /// Keeps a (cleaned) line of the step's output; returns whether it
    /// continues the stream's previous piece.
    pub fn log(&mut self, step_id: &str, stream: LogStream, line: &str, partial: bool) -> bool {
        let Some(view) = self.index(step_id).map(|i| &mut self.steps[i]) else {
            return false;
        };
        let slot = match stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        };
        let continued = view.continuing[slot];
        view.continuing[slot] = partial;
        if view.tail.len() == TAIL_LINES {
            view.tail.pop_front();
        }
        view.tail.push_back((continued, line.to_owned()));
        continued
    }

    pub fn set_outcome(&mut self, step_id: &str, outcome: Outcome) {
        if let Some(i) = self.index(step_id) {
            self.steps[i].outcome = Some(outcome);
        }
    }

    /// The steps that ran longest, with the memory and CPU time they used
    /// (where the backend measured them).
    pub fn write_slowest(&self, out: &mut impl Write, style: Style) -> std::io::Result<()> {
        let mut ran: Vec<(&str, u64, Option<u64>, Option<u64>)> = self
            .steps
            .iter()
            .filter_map(|view| match &view.outcome {
                Some(Outcome::Ended {
                    duration_ms,
                    peak_memory_bytes,
                    cpu_ms,
                    ..
                }) if peak_memory_bytes.is_some() || cpu_ms.is_some() => {
                    Some((view.name.as_str(), *duration_ms, *peak_memory_bytes, *cpu_ms))
                }
                _ => None,
            })
            .collect();
        if ran.is_empty() {
            return Ok(());
        }
        ran.sort_by_key(|(_, ms, _, _)| std::cmp::Reverse(*ms));
        writeln!(out)?;
        writeln!(out, "{}", style.bold("Slowest steps:"))?;
        let width = ran
            .iter()
            .take(SLOWEST)
            .map(|(n, ..)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, ms, peak, cpu) in ran.into_iter().take(SLOWEST) {
            let mut line = format!("  {name:<width$}  {:>7}", format_duration(ms));
            if let Some(peak) = peak {
                line += &format!("  peak {}", hm_events::units::human_bytes_exact(peak));
            }
            if let Some(cpu) = cpu {
                line += &format!("  CPU {}", format_duration(cpu));
            }
            writeln!(out, "{}", style.dim(&line))?;
        }
        Ok(())
    }

    /// The last lines of every failed step, each under a heading.
    pub fn write_tails(&self, out: &mut impl Write, style: Style) -> std::io::Result<()> {
        for view in &self.steps {
            if view.outcome.as_ref().is_some_and(Outcome::failed) && !view.tail.is_empty() {
                writeln!(out)?;
                writeln!(out, "{}", style.bold(&format!("Last lines of `{}`:", view.name)))?;
                for (continued, line) in &view.tail {
                    let mark = if *continued { '+' } else { ' ' };
                    writeln!(out, "{mark} {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// How a step ended, in words (and colour).
pub(crate) fn status_line(style: Style, status: StepStatus, exit_code: i32, message: Option<&str>) -> String {
    match status {
        StepStatus::Passed => style.green("passed"),
        StepStatus::CacheHit => style.green("cached"),
        StepStatus::Failed => match message {
            Some(m) => style.red(&format!("failed: {m}")),
            None => style.red(&format!("failed (exit code {exit_code})")),
        },
        StepStatus::TimedOut => style.red(&format!("{} (exit code 124)", message.unwrap_or("timed out"))),
        StepStatus::Canceled => style.yellow("canceled"),
        StepStatus::Oom => style.red(message.unwrap_or("killed: out of memory")),
    }
}

/// The summary's last line.
pub(crate) fn verdict(style: Style, status: BuildStatus, duration_ms: u64) -> String {
    let verdict = match status {
        BuildStatus::Passed => style.green("build passed"),
        BuildStatus::Failed => style.red("build failed"),
        BuildStatus::TimedOut => style.red("build timed out"),
        BuildStatus::Interrupted => style.yellow("build interrupted"),
    };
    format!("{verdict} in {}", format_duration(duration_ms))
}

/// What a step is called: its key, unless Harmont's SDKs generated it for
/// a step without one (a SHA-256 in hex, which says nothing), then its
/// label or command.
pub fn step_name<'a>(key: &'a str, display_name: &'a str) -> &'a str {
    match is_generated(key) {
        true => display_name,
        false => key,
    }
}

/// Whether `key` is one Harmont's SDKs generate for a step without one.
fn is_generated(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `850ms`, `1.2s`, `2m05s`.
pub fn format_duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(format_duration(850), "850ms");
        assert_eq!(format_duration(1234), "1.2s");
        assert_eq!(format_duration(125_000), "2m05s");
    }

    #[test]
    fn generated_keys() {
        let hash = "9ae18140488a6f319aecaa032f7ad2f727f63bb9bc0a3100c58635e188f45667";
        assert!(is_generated(hash) && !is_generated("build"));
        assert_eq!(step_name(hash, "cargo test"), "cargo test");
        assert_eq!(step_name("build", "cargo build"), "build");
    }
}
