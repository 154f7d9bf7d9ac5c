//! Run history: every `hm run` keeps its events (but the log lines) and
//! each step's output in `<cache>/history/RUN/` (`run.json`,
//! `events.ndjson`, `plan.json`, `steps/ID.log`), bounded to the last runs
//! and a total size; `hm runs` lists them, `hm logs` prints a step's output
//! and `hm report` draws a run.
//!
//! Each line of `events.ndjson` is an event as `--format json` prints it,
//! plus `t_ms`: when `hm` received it, in milliseconds since the run began
//! (runs recorded before it was added have none). `plan.json` holds each
//! step's id, key and the ids of the steps it needs (builds in or waits
//! for): [`RecordedPlan`].
//!
//! A run's directory is written only by its own `hm`; a run killed before
//! its end stays, marked unfinished, until the bounds remove it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hm_exec::events::Event;
use serde::{Deserialize, Serialize};

/// The history's directory under the cache.
pub const HISTORY_DIR: &str = "history";

/// Runs kept by default.
pub const DEFAULT_RUNS: usize = 50;
/// Bytes the history may take by default (all runs' logs and events).
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
/// Bytes of one step's output kept.
pub const STEP_LOG_LIMIT: u64 = 64 << 20;

/// What `run.json` says of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub pipeline: String,
    /// The project's root.
    pub project: String,
    /// Milliseconds since the epoch.
    pub started_ms: u64,
    /// `passed`, `failed`, `timed_out`, `interrupted`; absent while it runs
    /// (or when it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `hm run -b`: the branch recorded on the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `hm run -m`: the message recorded on the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line of `events.ndjson`: an event and when it was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEvent {
    #[serde(flatten)]
    pub event: Event,
    /// Milliseconds since the run began; `None` in runs recorded before
    /// `hm` kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ms: Option<u64>,
}

/// What `plan.json` says of a run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedPlan {
    pub steps: Vec<RecordedPlanStep>,
}

/// One step of a [`RecordedPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedPlanStep {
    /// Its `step_id` in the run's events.
    pub id: String,
    pub key: String,
    /// The ids of the steps it builds in or waits for.
    pub needs: Vec<String>,
}

impl RecordedPlan {
    pub fn of(plan: &hm_ir::Plan) -> Self {
        let steps = plan
            .steps
            .iter()
            .map(|step| RecordedPlanStep {
                id: step.idx.to_string(),
                key: step.key().to_owned(),
                needs: step
                    .parent
                    .iter()
                    .chain(&step.depends_on)
                    .map(|i| i.to_string())
                    .collect(),
            })
            .collect();
        RecordedPlan { steps }
    }
}

/// The history of one cache directory.
pub struct History {
    dir: PathBuf,
}

/// A run being recorded.
pub struct Recorder {
    dir: PathBuf,
    info: RunInfo,
    events: Option<std::io::BufWriter<std::fs::File>>,
    /// When the run began: events' `t_ms` count from here.
    began: Instant,
}

impl History {
    pub fn new(cache: &Path) -> Self {
        History {
            dir: cache.join(HISTORY_DIR),
        }
    }

    /// Starts recording a run, after making room for it. A history that
    /// cannot be written records nothing; the run goes on.
    pub fn begin(&self, info: RunInfo, runs: usize, max_bytes: u64) -> Option<Recorder> {
        self.prune(runs.saturating_sub(1), max_bytes);
        let dir = self.dir.join(&info.id);
        std::fs::create_dir_all(dir.join("steps")).ok()?;
        let events = std::fs::File::create(dir.join("events.ndjson")).ok()?;
        let recorder = Recorder {
            dir,
            info,
            events: Some(std::io::BufWriter::new(events)),
            began: Instant::now(),
        };
        recorder.save().then_some(recorder)
    }

    /// Every recorded run, newest first.
    pub fn runs(&self) -> Vec<(PathBuf, RunInfo)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut runs: Vec<(PathBuf, RunInfo)> = entries
            .flatten()
            .filter_map(|entry| {
                let text = std::fs::read(entry.path().join("run.json")).ok()?;
                Some((entry.path(), serde_json::from_slice(&text).ok()?))
            })
            .collect();
        runs.sort_by(|a, b| b.1.started_ms.cmp(&a.1.started_ms).then_with(|| b.1.id.cmp(&a.1.id)));
        runs
    }

    /// Removes the oldest runs until at most `keep` are left and they take
    /// at most `max_bytes`.
    fn prune(&self, keep: usize, max_bytes: u64) {
        let runs: Vec<(PathBuf, RunInfo, u64)> = self
            .runs()
            .into_iter()
            .map(|(dir, info)| {
                let size = size_of(&dir);
                (dir, info, size)
            })
            .collect();
        let mut count = runs.len();
        let mut total: u64 = runs.iter().map(|(_, _, size)| size).sum();
        // A run without an end may still be running: it goes only when it
        // is a day old (its `hm` was killed).
        let day_ago = now_ms().saturating_sub(24 * 3600 * 1000);
        for (dir, info, size) in runs.iter().rev() {
            if count <= keep && total <= max_bytes {
                break;
            }
            if info.status.is_none() && info.started_ms > day_ago {
                continue;
            }
            total = total.saturating_sub(*size);
            count -= 1;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Recorder {
    /// Where the run's steps' outputs go.
    pub fn steps_dir(&self) -> PathBuf {
        self.dir.join("steps")
    }

    /// Keeps the run's plan in `plan.json`, for the dependencies the
    /// events do not name; a plan that cannot be written is left out.
    pub fn save_plan(&self, plan: &hm_ir::Plan) {
        let text = serde_json::to_vec(&RecordedPlan::of(plan)).unwrap_or_default();
        let partial = self.dir.join("plan.json.partial");
        if std::fs::write(&partial, text).is_ok() {
            let _ = std::fs::rename(&partial, self.dir.join("plan.json"));
        }
    }

    /// Keeps one event, with when it came; the end of the build completes
    /// `run.json`. Log lines are not kept here: the steps' logs hold them,
    /// byte for byte.
    pub fn record(&mut self, event: &Event) {
        if matches!(event, Event::StepLog { .. }) {
            return;
        }
        if let Some(events) = &mut self.events {
            let timed = TimedEvent {
                event: event.clone(),
                t_ms: Some(self.began.elapsed().as_millis() as u64),
            };
            let line = serde_json::to_string(&timed).unwrap_or_default();
            if writeln!(events, "{line}").is_err() {
                self.events = None;
            }
        }
        if let Event::BuildEnd {
            exit_code,
            duration_ms,
            status,
        } = event
        {
            let status = serde_json::to_value(status)
                .ok()
                .and_then(|s| s.as_str().map(str::to_owned));
            self.info.status = status;
            self.info.exit_code = Some(*exit_code);
            self.info.duration_ms = Some(*duration_ms);
            if let Some(events) = &mut self.events {
                let _ = events.flush();
            }
            self.save();
        }
    }

    /// Writes `run.json` (whole, then renamed into place).
    fn save(&self) -> bool {
        let text = serde_json::to_vec_pretty(&self.info).unwrap_or_default();
        let partial = self.dir.join("run.json.partial");
        std::fs::write(&partial, text).is_ok() && std::fs::rename(&partial, self.dir.join("run.json")).is_ok()
    }
}

/// Bytes of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A run's events, read back (lines that are not events are skipped).
pub fn events(run_dir: &Path) -> Vec<Event> {
    timed_events(run_dir).into_iter().map(|e| e.event).collect()
}

/// A run's events with when each came (lines that are not events are
/// skipped).
pub fn timed_events(run_dir: &Path) -> Vec<TimedEvent> {
    let text = std::fs::read_to_string(run_dir.join("events.ndjson")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A run's plan, if it was kept (runs recorded before `plan.json` have
/// none).
pub fn plan(run_dir: &Path) -> Option<RecordedPlan> {
    let text = std::fs::read(run_dir.join("plan.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, started_ms: u64) -> RunInfo {
        RunInfo {
            id: id.to_owned(),
            pipeline: "ci".to_owned(),
            project: "/p".to_owned(),
            started_ms,
            status: None,
            exit_code: None,
            duration_ms: None,
            branch: None,
            message: None,
        }
    }

    #[test]
    fn runs_are_kept_newest_first_within_their_bounds() {
        let cache = tempfile::tempdir().unwrap();
        let history = History::new(cache.path());
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let mut run = history.begin(info(id, now_ms() + i as u64), 2, u64::MAX).unwrap();
            run.record(&Event::BuildEnd {
                exit_code: 0,
                duration_ms: 5,
                status: hm_exec::events::BuildStatus::Passed,
            });
        }
        let ids: Vec<String> = history.runs().into_iter().map(|(_, i)| i.id).collect();
        assert_eq!(ids, ["c", "b"], "the oldest went");
        let (dir, c) = &history.runs()[0];
        assert_eq!(c.status.as_deref(), Some("passed"));
        assert_eq!(events(dir).len(), 1);
        let mut run = history.begin(info("e", now_ms() + 5), 10, u64::MAX).unwrap();
        run.record(&Event::StepLog {
            step_id: "0".into(),
            stream: hm_exec::events::LogStream::Stdout,
            line: "in the step's log instead".into(),
            partial: false,
            ts: "t".into(),
        });
        assert!(
            events(&history.runs()[0].0).is_empty(),
            "log lines stay out of the events"
        );
        run.record(&Event::BuildEnd {
            exit_code: 0,
            duration_ms: 5,
            status: hm_exec::events::BuildStatus::Passed,
        });

        // A byte bound removes old runs too; the new one always stays.
        std::fs::write(history.runs()[0].0.join("steps/0.log"), vec![b'x'; 1000]).unwrap();
        history.begin(info("d", now_ms() + 9), 10, 500).unwrap();
        let ids: Vec<String> = history.runs().into_iter().map(|(_, i)| i.id).collect();
        assert_eq!(ids, ["d"]);
    }

    #[test]
    fn events_carry_when_they_came_and_old_lines_still_read() {
        let cache = tempfile::tempdir().unwrap();
        let history = History::new(cache.path());
        let mut run = history.begin(info("t", now_ms()), 10, u64::MAX).unwrap();
        run.record(&Event::StepSkipped {
            step_id: "1".into(),
            key: "b".into(),
            reason: "a failed".into(),
        });
        drop(run);
        let dir = &history.runs()[0].0;
        let text = std::fs::read_to_string(dir.join("events.ndjson")).unwrap();
        assert!(
            text.contains(r#""kind":"step_skipped""#) && text.contains(r#""t_ms":"#),
            "{text}"
        );
        let timed = timed_events(dir);
        assert_eq!(timed.len(), 1);
        assert!(timed[0].t_ms.is_some());
        assert_eq!(events(dir), [timed[0].event.clone()]);

        // A line written before `t_ms` existed.
        let old = r#"{"kind":"step_end","step_id":"0","exit_code":0,"duration_ms":3,"status":"passed"}"#;
        std::fs::write(dir.join("events.ndjson"), format!("{old}\n")).unwrap();
        assert_eq!(timed_events(dir)[0].t_ms, None);
        assert!(matches!(events(dir)[..], [Event::StepEnd { duration_ms: 3, .. }]));
    }
}
