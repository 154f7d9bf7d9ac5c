use std::io::Write;

use hm_events::{BuildStatus, Event};

use crate::board::{format_duration, status_line, verdict, Board, Outcome};
use crate::{Renderer, Style};

/// The `--logs` view (and the view when stdout is not a terminal):
/// `key | line` for every log line (what a terminal would show of it, see
/// [`crate::line`]), a line per step start and end, and a summary at the
/// end. A line too long for one event comes in pieces: each piece that
/// continues the one before is shown as `key + piece`.
pub struct LogsRenderer<W: Write> {
    out: W,
    style: Style,
    board: Board,
}

impl<W: Write> LogsRenderer<W> {
    pub fn new(out: W, style: Style) -> Self {
        LogsRenderer {
            out,
            style,
            board: Board::default(),
        }
    }

    fn prefix(&self, key: &str, separator: char) -> String {
        let width = self.board.width;
        self.style.dim(&format!("{key:<width$} {separator}"))
    }

    fn summary(&mut self, status: BuildStatus, duration_ms: u64) -> std::io::Result<()> {
        let s = self.style;
        let width = self.board.width;
        writeln!(self.out)?;
        writeln!(self.out, "{}", s.bold("Summary"))?;
        for view in &self.board.steps {
            let line = match &view.outcome {
                Some(Outcome::Ended {
                    status,
                    exit_code,
                    duration_ms,
                    message,
                    ..
                }) => format!(
                    "{} {}",
                    status_line(s, *status, *exit_code, message.as_deref()),
                    s.dim(&format_duration(*duration_ms))
                ),
                Some(Outcome::Skipped(reason)) => s.dim(&format!("skipped: {reason}")),
                None => s.dim("not run"),
            };
            writeln!(self.out, "  {:<width$}  {line}", view.name)?;
        }
        self.board.write_slowest(&mut self.out, s)?;
        self.board.write_tails(&mut self.out, s)?;
        writeln!(self.out)?;
        writeln!(self.out, "{}", verdict(s, status, duration_ms))
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
                self.board.queued(step_id, key, display_name);
            }
            Event::StepStart {
                step_id, cache_miss, ..
            } => {
                let started = match cache_miss {
                    Some(why) => format!("started (cache miss: {why})"),
                    None => "started".to_owned(),
                };
                let key = self.board.name(step_id);
                writeln!(self.out, "{} {}", self.prefix(&key, '|'), s.dim(&started))?;
            }
            Event::StepLog {
                step_id,
                stream,
                line,
                partial,
                ..
            } => {
                let line = crate::line::clean(line, s.color);
                let continued = self.board.log(step_id, *stream, &line, *partial);
                let separator = if continued { '+' } else { '|' };
                let key = self.board.name(step_id);
                writeln!(self.out, "{} {line}", self.prefix(&key, separator))?;
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
                let line = format!(
                    "{} {}",
                    status_line(s, *status, *exit_code, message.as_deref()),
                    s.dim(&format!("in {}", format_duration(*duration_ms)))
                );
                let key = self.board.name(step_id);
                writeln!(self.out, "{} {line}", self.prefix(&key, '|'))?;
                if let Some(outcome) = Outcome::of_end(event) {
                    self.board.set_outcome(step_id, outcome);
                }
            }
            Event::StepSkipped { step_id, reason, .. } => {
                let key = self.board.name(step_id);
                writeln!(
                    self.out,
                    "{} {}",
                    self.prefix(&key, '|'),
                    s.dim(&format!("skipped: {reason}"))
                )?;
                self.board.set_outcome(step_id, Outcome::Skipped(reason.clone()));
            }
            Event::CacheRemoteError { .. } => {
                if let Some(warning) = crate::remote_warning(event) {
                    writeln!(self.out, "{}", s.yellow(&warning))?;
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
    use hm_events::{LogStream, PlanSummary, StepStatus};

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
                branch: None,
                message: None,
            },
            queued("0", "build"),
            queued("1", "test"),
            queued("2", "deploy"),
            queued("3", "lint"),
            Event::StepCacheHit {
                step_id: "3".into(),
                key: "k".into(),
                tag: "t".into(),
                remote: false,
            },
            Event::StepEnd {
                step_id: "3".into(),
                exit_code: 0,
                duration_ms: 3,
                snapshot: None,
                status: StepStatus::CacheHit,
                message: None,
                peak_memory_bytes: None,
                cpu_ms: None,
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
                peak_memory_bytes: Some(512 << 20),
                cpu_ms: Some(2900),
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
                peak_memory_bytes: Some(3 << 20),
                cpu_ms: Some(18),
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
    }
}
