use std::collections::{HashMap, VecDeque};
use std::io::Write;

use hm_events::{BuildStatus, Event, LogStream, StepStatus};

use crate::{Renderer, Style};

/// Lines of a failed step's log repeated in the summary.
const TAIL_LINES: usize = 20;

/// The `--logs` view: `key | line` for every log line (what a terminal
/// would show of it, see [`crate::line`]), a line per step start and end,
/// and a summary at the end. A line too long for one event
/// comes in pieces: each piece that continues the one before is shown as
/// `key + piece`.
pub struct LogsRenderer<W: Write> {
    out: W,
    style: Style,
    steps: Vec<StepView>,
    by_id: HashMap<String, usize>,
    width: usize,
}

struct StepView {
    key: String,
    outcome: Option<Outcome>,
    /// The last lines (pieces of long lines), each marked when it continues
    /// the piece before it.
    tail: VecDeque<(bool, String)>,
    /// Per stream (stdout, stderr): the last piece was partial, so the next
    /// one continues it.
    continuing: [bool; 2],
}

enum Outcome {
    Ended {
        status: StepStatus,
        exit_code: i32,
        duration_ms: u64,
        message: Option<String>,
    },
    Skipped(String),
}

impl<W: Write> LogsRenderer<W> {
    pub fn new(out: W, style: Style) -> Self {
        LogsRenderer {
            out,
            style,
            steps: Vec::new(),
            by_id: HashMap::new(),
            width: 0,
        }
    }

    fn step(&mut self, step_id: &str) -> Option<&mut StepView> {
        let idx = *self.by_id.get(step_id)?;
        self.steps.get_mut(idx)
    }

    fn key(&self, step_id: &str) -> String {
        self.by_id
            .get(step_id)
            .map(|&i| self.steps[i].key.clone())
            .unwrap_or_else(|| step_id.to_owned())
    }

    fn prefix(&self, key: &str) -> String {
        self.prefix_with(key, '|')
    }

    fn prefix_with(&self, key: &str, separator: char) -> String {
        self.style
            .dim(&format!("{key:<width$} {separator}", width = self.width))
    }

    fn status_line(&self, status: StepStatus, exit_code: i32, message: Option<&str>) -> String {
        let s = self.style;
        match status {
            StepStatus::Passed => s.green("passed"),
            StepStatus::CacheHit => s.green("cached"),
            StepStatus::Failed => match message {
                Some(m) => s.red(&format!("failed: {m}")),
                None => s.red(&format!("failed (exit code {exit_code})")),
            },
            StepStatus::TimedOut => s.red(&format!("{} (exit code 124)", message.unwrap_or("timed out"))),
            StepStatus::Canceled => s.yellow("canceled"),
        }
    }

    fn summary(&mut self, status: BuildStatus, duration_ms: u64) -> std::io::Result<()> {
        let s = self.style;
        writeln!(self.out)?;
        writeln!(self.out, "{}", s.bold("Summary"))?;
        for view in &self.steps {
            let line = match &view.outcome {
                Some(Outcome::Ended {
                    status,
                    exit_code,
                    duration_ms,
                    message,
                }) => {
                    format!(
                        "{} {}",
                        self.status_line(*status, *exit_code, message.as_deref()),
                        s.dim(&format_duration(*duration_ms))
                    )
                }
                Some(Outcome::Skipped(reason)) => s.dim(&format!("skipped: {reason}")),
                None => s.dim("not run"),
            };
            writeln!(self.out, "  {:<width$}  {line}", view.key, width = self.width)?;
        }
        for view in &self.steps {
            let failed = matches!(&view.outcome, Some(Outcome::Ended { status, .. }) if !status.is_success() && *status != StepStatus::Canceled);
            if failed && !view.tail.is_empty() {
                writeln!(self.out)?;
                writeln!(self.out, "{}", s.bold(&format!("Last lines of `{}`:", view.key)))?;
                for (continued, line) in &view.tail {
                    let mark = if *continued { '+' } else { ' ' };
                    writeln!(self.out, "{mark} {line}")?;
                }
            }
        }
        writeln!(self.out)?;
        let verdict = match status {
            BuildStatus::Passed => s.green("build passed"),
            BuildStatus::Failed => s.red("build failed"),
            BuildStatus::TimedOut => s.red("build timed out"),
            BuildStatus::Interrupted => s.yellow("build interrupted"),
        };
        writeln!(self.out, "{verdict} in {}", format_duration(duration_ms))
    }
}

/// Whether `key` is one Harmont's SDKs generate for a step without one:
/// a SHA-256 in hex.
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

impl<W: Write> Renderer for LogsRenderer<W> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let s = self.style;
        match event {
            Event::BuildStart {
                pipeline, plan, run_id, ..
            } => {
                let steps = if plan.step_count == 1 { "step" } else { "steps" };
                writeln!(
                    self.out,
                    "{} `{pipeline}`: {} {steps} {}",
                    s.bold("running"),
                    plan.step_count,
                    s.dim(&format!("(run {run_id})"))
                )?;
            }
            Event::StepQueued {
                step_id,
                key,
                display_name,
                ..
            } => {
                // A key Harmont's SDK made (a hash) says nothing: the step's
                // label or command does.
                let name = if is_generated(key) { display_name } else { key };
                self.width = self.width.max(name.chars().count());
                self.by_id.insert(step_id.clone(), self.steps.len());
                self.steps.push(StepView {
                    key: name.clone(),
                    outcome: None,
                    tail: VecDeque::new(),
                    continuing: [false; 2],
                });
            }
            Event::StepStart {
                step_id, cache_miss, ..
            } => {
                let key = self.key(step_id);
                let started = match cache_miss {
                    Some(why) => format!("started (cache miss: {why})"),
                    None => "started".to_owned(),
                };
                writeln!(self.out, "{} {}", self.prefix(&key), s.dim(&started))?;
            }
            Event::StepLog {
                step_id,
                stream,
                line,
                partial,
                ..
            } => {
                let key = self.key(step_id);
                let slot = match stream {
                    LogStream::Stdout => 0,
                    LogStream::Stderr => 1,
                };
                let continued = self.step(step_id).is_some_and(|v| v.continuing[slot]);
                let separator = if continued { '+' } else { '|' };
                let line = crate::line::clean(line, s.color);
                writeln!(self.out, "{} {line}", self.prefix_with(&key, separator))?;
                if let Some(view) = self.step(step_id) {
                    view.continuing[slot] = *partial;
                    if view.tail.len() == TAIL_LINES {
                        view.tail.pop_front();
                    }
                    view.tail.push_back((continued, line.into_owned()));
                }
            }
            // Shown with the step's end, `cached`.
            Event::StepCacheHit { .. } => {}
            Event::StepEnd {
                step_id,
                exit_code,
                duration_ms,
                status,
                message,
                ..
            } => {
                let key = self.key(step_id);
                let line = format!(
                    "{} {}",
                    self.status_line(*status, *exit_code, message.as_deref()),
                    s.dim(&format!("in {}", format_duration(*duration_ms)))
                );
                writeln!(self.out, "{} {line}", self.prefix(&key))?;
                if let Some(view) = self.step(step_id) {
                    view.outcome = Some(Outcome::Ended {
                        status: *status,
                        exit_code: *exit_code,
                        duration_ms: *duration_ms,
                        message: message.clone(),
                    });
                }
            }
            Event::StepSkipped { step_id, reason, .. } => {
                let key = self.key(step_id);
                writeln!(
                    self.out,
                    "{} {}",
                    self.prefix(&key),
                    s.dim(&format!("skipped: {reason}"))
                )?;
                if let Some(view) = self.step(step_id) {
                    view.outcome = Some(Outcome::Skipped(reason.clone()));
                }
            }
            // Pulls show their own progress on stderr.
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

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hm_events::PlanSummary;

    fn events() -> Vec<Event> {
        let queued = |id: &str, key: &str| Event::StepQueued {
            step_id: id.into(),
            key: key.into(),
            chain_idx: 0,
            parent_key: None,
            display_name: key.into(),
        };
        let log = |id: &str, line: &str| Event::StepLog {
            step_id: id.into(),
            stream: LogStream::Stdout,
            line: line.into(),
            partial: false,
            ts: "2026-01-01T00:00:00.000Z".into(),
        };
        let piece = |id: &str, line: &str| Event::StepLog {
            step_id: id.into(),
            stream: LogStream::Stdout,
            line: line.into(),
            partial: true,
            ts: "2026-01-01T00:00:00.000Z".into(),
        };
        vec![
            Event::BuildStart {
                run_id: "r1".into(),
                pipeline: "ci".into(),
                plan: PlanSummary {
                    step_count: 3,
                    chain_count: 2,
                    default_runner: "vm".into(),
                },
                started_at: "2026-01-01T00:00:00.000Z".into(),
            },
            queued("0", "build"),
            queued("1", "test"),
            queued("2", "deploy"),
            queued("3", "lint"),
            Event::StepCacheHit {
                step_id: "3".into(),
                key: "k".into(),
                tag: "t".into(),
            },
            Event::StepEnd {
                step_id: "3".into(),
                exit_code: 0,
                duration_ms: 3,
                snapshot: None,
                status: StepStatus::CacheHit,
                message: None,
            },
            Event::StepStart {
                step_id: "0".into(),
                runner: "vm".into(),
                image: Some("host".into()),
                cache_miss: Some("command changed".into()),
            },
            log("0", "compiling"),
            Event::StepEnd {
                step_id: "0".into(),
                exit_code: 0,
                duration_ms: 1500,
                snapshot: Some("s".into()),
                status: StepStatus::Passed,
                message: None,
            },
            Event::StepStart {
                step_id: "1".into(),
                runner: "vm".into(),
                image: None,
                cache_miss: None,
            },
            piece("1", "a line too long"),
            piece("1", " for one event"),
            log("1", " ends here"),
            log("1", "assertion failed"),
            Event::StepEnd {
                step_id: "1".into(),
                exit_code: 3,
                duration_ms: 20,
                snapshot: None,
                status: StepStatus::Failed,
                message: None,
            },
            Event::ChainFailed {
                chain_idx: 1,
                failed_step_id: "1".into(),
                failed_step_key: "test".into(),
                exit_code: 3,
                message: "m".into(),
                ts: "t".into(),
            },
            Event::StepSkipped {
                step_id: "2".into(),
                key: "deploy".into(),
                reason: "`test` failed".into(),
            },
            Event::BuildEnd {
                exit_code: 1,
                duration_ms: 61_000,
                status: BuildStatus::Failed,
            },
        ]
    }

    #[test]
    fn logs_view() {
        let mut out = Vec::new();
        let mut renderer = LogsRenderer::new(&mut out, Style { color: false });
        for event in events() {
            renderer.event(&event).unwrap();
        }
        renderer.flush().unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut out = Vec::new();
        let mut renderer = crate::JsonRenderer::new(&mut out);
        for event in events() {
            renderer.event(&event).unwrap();
        }
        renderer.flush().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), events().len());
        for (line, event) in text.lines().zip(events()) {
            assert_eq!(serde_json::from_str::<Event>(line).unwrap(), event);
        }
    }

    #[test]
    fn a_step_without_a_key_of_its_own_is_shown_by_its_name() {
        let hash = "9ae18140488a6f319aecaa032f7ad2f727f63bb9bc0a3100c58635e188f45667";
        let events = [
            Event::StepQueued {
                step_id: "0".into(),
                key: hash.into(),
                chain_idx: 0,
                parent_key: None,
                display_name: "cargo test".into(),
            },
            Event::StepSkipped {
                step_id: "0".into(),
                key: hash.into(),
                reason: "no".into(),
            },
        ];
        let mut out = Vec::new();
        let mut renderer = LogsRenderer::new(&mut out, Style { color: false });
        for event in &events {
            renderer.event(event).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "cargo test | skipped: no\n");
        assert!(is_generated(hash) && !is_generated("build"));
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(850), "850ms");
        assert_eq!(format_duration(1234), "1.2s");
        assert_eq!(format_duration(125_000), "2m05s");
    }
}
