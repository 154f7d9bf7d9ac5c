//! A recorded run as a timeline: each step with when it was queued,
//! started and finished, how it ended, what it needed, and whether it lies
//! on the critical path.

use std::collections::HashMap;

use hm_exec::events::{Event, StepStatus};

use crate::history::{RecordedPlan, TimedEvent};

/// How a step of a recorded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    CacheHit,
    Failed,
    TimedOut,
    Canceled,
    Skipped,
    /// No end was recorded: the run was killed.
    Unfinished,
}

impl Outcome {
    /// Its CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::CacheHit => "cache-hit",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Canceled => "canceled",
            Outcome::Skipped => "skipped",
            Outcome::Unfinished => "unfinished",
        }
    }

    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::CacheHit => "cache hit",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Canceled => "canceled",
            Outcome::Skipped => "skipped",
            Outcome::Unfinished => "unfinished",
        }
    }

    /// Every outcome, in the order the report's legend lists them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Passed,
        Outcome::CacheHit,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Canceled,
        Outcome::Skipped,
        Outcome::Unfinished,
    ];
}

impl From<StepStatus> for Outcome {
    fn from(status: StepStatus) -> Self {
        match status {
            StepStatus::Passed => Outcome::Passed,
            StepStatus::CacheHit => Outcome::CacheHit,
            StepStatus::Failed | StepStatus::Oom => Outcome::Failed,
            StepStatus::TimedOut => Outcome::TimedOut,
            StepStatus::Canceled => Outcome::Canceled,
        }
    }
}

/// One step of a [`Timeline`]. Times are milliseconds since the run
/// began, `None` when the run did not record them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub key: String,
    pub name: String,
    /// Indices (into [`Timeline::steps`]) of the steps it builds in or
    /// waits for.
    pub needs: Vec<usize>,
    pub queued_ms: Option<u64>,
    /// When it got a slot to run in (its cache is consulted first).
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// How long it took, as its `step_end` says.
    pub duration_ms: Option<u64>,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    /// Why it was skipped, or what went wrong around its command.
    pub message: Option<String>,
    /// Why a cached step missed.
    pub cache_miss: Option<String>,
    /// Where its `step_end` came among the run's events.
    end_order: Option<usize>,
}

impl Step {
    /// When everything it needs had finished (or when it was queued).
    pub fn ready_ms(&self, steps: &[Step]) -> Option<u64> {
        let needs = self.needs.iter().filter_map(|&n| steps[n].ended_ms);
        needs.chain(self.queued_ms).max()
    }
}

/// A recorded run's steps, in the order they were queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub steps: Vec<Step>,
    /// The critical path: indices into `steps`, first step first.
    pub critical: Vec<usize>,
    /// The milliseconds the timeline spans.
    pub span_ms: u64,
    /// Whether the events carry their times (runs recorded before they
    /// did have only durations).
    pub timed: bool,
}

impl Timeline {
    /// The timeline of a run from its events and, when it was kept, its
    /// plan (else only the `builds_in` links the events name are known);
    /// `duration_ms` is the run's own.
    pub fn new(events: &[TimedEvent], plan: Option<&RecordedPlan>, duration_ms: Option<u64>) -> Self {
        let mut steps: Vec<Step> = Vec::new();
        let mut parents: Vec<Option<String>> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        for (order, TimedEvent { event, t_ms }) in events.iter().enumerate() {
            let t = *t_ms;
            match event {
                Event::StepQueued {
                    step_id,
                    key,
                    parent_key,
                    display_name,
                    ..
                } => {
                    by_id.insert(step_id.clone(), steps.len());
                    parents.push(parent_key.clone());
                    steps.push(Step {
                        id: step_id.clone(),
                        key: key.clone(),
                        name: display_name.clone(),
                        needs: Vec::new(),
                        queued_ms: t,
                        started_ms: None,
                        ended_ms: None,
                        duration_ms: None,
                        outcome: Outcome::Unfinished,
                        exit_code: None,
                        message: None,
                        cache_miss: None,
                        end_order: None,
                    });
                }
                Event::StepStart {
                    step_id, cache_miss, ..
                } => {
                    if let Some(step) = by_id.get(step_id).map(|&i| &mut steps[i]) {
                        step.started_ms = t;
                        step.cache_miss = cache_miss.clone();
                    }
                }
                Event::StepCacheHit { step_id, .. } => {
                    if let Some(step) = by_id.get(step_id).map(|&i| &mut steps[i]) {
                        step.started_ms = t;
                    }
                }
                Event::StepEnd {
                    step_id,
                    exit_code,
                    duration_ms,
                    status,
                    message,
                    ..
                } => {
                    if let Some(step) = by_id.get(step_id).map(|&i| &mut steps[i]) {
                        step.ended_ms = t;
                        // Its duration counts from when it got its slot,
                        // before its cache was consulted: that is when it
                        // started (`step_start` comes after the lookup).
                        step.started_ms = t.map(|t| t.saturating_sub(*duration_ms)).or(step.started_ms);
                        step.duration_ms = Some(*duration_ms);
                        step.outcome = (*status).into();
                        step.exit_code = Some(*exit_code);
                        step.message = message.clone();
                        step.end_order = Some(order);
                    }
                }
                Event::StepSkipped { step_id, reason, .. } => {
                    if let Some(step) = by_id.get(step_id).map(|&i| &mut steps[i]) {
                        step.ended_ms = t;
                        step.outcome = Outcome::Skipped;
                        step.message = Some(reason.clone());
                    }
                }
                _ => {}
            }
        }

        match plan {
            Some(plan) => {
                for planned in &plan.steps {
                    if let Some(&i) = by_id.get(&planned.id) {
                        steps[i].needs = planned.needs.iter().filter_map(|id| by_id.get(id).copied()).collect();
                    }
                }
            }
            None => {
                let by_key: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.key.as_str(), i)).collect();
                let needs: Vec<Vec<usize>> = parents
                    .iter()
                    .map(|parent| {
                        parent
                            .as_deref()
                            .and_then(|k| by_key.get(k).copied())
                            .into_iter()
                            .collect()
                    })
                    .collect();
                for (step, needs) in steps.iter_mut().zip(needs) {
                    step.needs = needs;
                }
            }
        }

        let ends: Vec<Option<usize>> = steps.iter().map(|s| s.end_order).collect();
        let needs: Vec<Vec<usize>> = steps.iter().map(|s| s.needs.clone()).collect();
        let critical = critical_path(&ends, &needs);
        let timed = events.iter().any(|e| e.t_ms.is_some());
        let last = steps
            .iter()
            .flat_map(|s| [s.queued_ms, s.started_ms, s.ended_ms])
            .flatten()
            .max();
        let span_ms = last.into_iter().chain(duration_ms).max().unwrap_or(0);
        Timeline {
            steps,
            critical,
            span_ms,
            timed,
        }
    }

    /// Whether step `i` lies on the critical path.
    pub fn is_critical(&self, i: usize) -> bool {
        self.critical.contains(&i)
    }
}

/// The critical path: the chain of dependencies that ends at the step that
/// finished last, each time following the predecessor that finished last.
/// `ends[i]` orders step `i`'s end among the others' (`None`: it never
/// ran, as a skipped step); `needs[i]` are the steps it needs. The path
/// is returned first step first; it is empty when no step finished.
pub fn critical_path(ends: &[Option<usize>], needs: &[Vec<usize>]) -> Vec<usize> {
    let last = (0..ends.len()).filter(|&i| ends[i].is_some()).max_by_key(|&i| ends[i]);
    let mut path: Vec<usize> = last.into_iter().collect();
    while let Some(&step) = path.last() {
        // A predecessor ends before its successor; following only earlier
        // ends also keeps a malformed plan from looping.
        let before = needs[step]
            .iter()
            .copied()
            .filter(|&n| n < ends.len() && ends[n].is_some() && ends[n] < ends[step])
            .max_by_key(|&n| ends[n]);
        match before {
            Some(n) => path.push(n),
            None => break,
        }
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RecordedPlanStep;

    #[test]
    fn the_critical_path_follows_the_predecessor_that_finished_last() {
        // a ─┬─ b ──┐
        //    └─ c ──┴─ e      d (alone, ends before e)
        // c ends after b, so the path to e goes through c.
        let ends = [Some(0), Some(1), Some(2), Some(3), Some(4)];
        let needs = [vec![], vec![0], vec![0], vec![], vec![1, 2]];
        assert_eq!(critical_path(&ends, &needs), [0, 2, 4]);

        // When d finishes last, the path is d alone.
        let ends = [Some(0), Some(1), Some(2), Some(9), Some(4)];
        assert_eq!(critical_path(&ends, &needs), [3]);
    }

    #[test]
    fn steps_that_never_ran_are_not_on_the_critical_path() {
        // b failed, so c (after b) was skipped: the path ends at b.
        let ends = [Some(0), Some(1), None];
        let needs = [vec![], vec![0], vec![1]];
        assert_eq!(critical_path(&ends, &needs), [0, 1]);
        assert_eq!(critical_path(&[None, None], &[vec![], vec![0]]), Vec::<usize>::new());
        // A cycle in a malformed plan ends the walk.
        assert_eq!(critical_path(&[Some(0), Some(1)], &[vec![1], vec![0]]), [0, 1]);
    }

    fn timed(t_ms: u64, event: Event) -> TimedEvent {
        TimedEvent {
            event,
            t_ms: Some(t_ms),
        }
    }

    fn queued(id: &str, key: &str, parent: Option<&str>) -> Event {
        Event::StepQueued {
            step_id: id.into(),
            key: key.into(),
            chain_idx: 0,
            parent_key: parent.map(Into::into),
            display_name: key.into(),
        }
    }

    fn end(id: &str, ms: u64, status: StepStatus) -> Event {
        Event::StepEnd {
            step_id: id.into(),
            exit_code: if status.is_success() { 0 } else { 1 },
            duration_ms: ms,
            snapshot: None,
            status,
            message: None,
            peak_memory_bytes: None,
            cpu_ms: None,
        }
    }

    fn start(id: &str) -> Event {
        Event::StepStart {
            step_id: id.into(),
            runner: "sandbox".into(),
            image: None,
            cache_miss: None,
        }
    }

    #[test]
    fn a_run_becomes_a_timeline() {
        let events = [
            timed(0, queued("0", "deps", None)),
            timed(0, queued("1", "build", Some("deps"))),
            timed(0, queued("2", "lint", None)),
            timed(1, queued("3", "test", Some("build"))),
            timed(
                2,
                Event::StepCacheHit {
                    step_id: "0".into(),
                    key: "k".into(),
                    tag: "t".into(),
                    remote: false,
                },
            ),
            timed(2, end("0", 0, StepStatus::CacheHit)),
            timed(3, start("1")),
            timed(3, start("2")),
            timed(40, end("2", 37, StepStatus::Passed)),
            timed(90, end("1", 87, StepStatus::Failed)),
            timed(
                90,
                Event::StepSkipped {
                    step_id: "3".into(),
                    key: "test".into(),
                    reason: "`build` failed".into(),
                },
            ),
        ];
        // The plan knows that `build` also waits for `lint`.
        let plan = RecordedPlan {
            steps: vec![
                RecordedPlanStep {
                    id: "1".into(),
                    key: "build".into(),
                    needs: vec!["0".into(), "2".into()],
                },
                RecordedPlanStep {
                    id: "3".into(),
                    key: "test".into(),
                    needs: vec!["1".into()],
                },
            ],
        };
        let timeline = Timeline::new(&events, Some(&plan), Some(95));
        let outcomes: Vec<Outcome> = timeline.steps.iter().map(|s| s.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::CacheHit, Outcome::Failed, Outcome::Passed, Outcome::Skipped]
        );
        let build = &timeline.steps[1];
        assert_eq!(
            (build.queued_ms, build.started_ms, build.ended_ms),
            (Some(0), Some(3), Some(90))
        );
        assert_eq!(build.needs, [0, 2]);
        assert_eq!(build.ready_ms(&timeline.steps), Some(40));
        assert_eq!(timeline.critical, [2, 1], "lint finished after deps");
        assert_eq!(timeline.span_ms, 95);
        assert!(timeline.timed);

        // Without the plan, only `builds_in` links are known; without
        // times, only durations.
        let untimed: Vec<TimedEvent> = events
            .iter()
            .map(|e| TimedEvent {
                event: e.event.clone(),
                t_ms: None,
            })
            .collect();
        let timeline = Timeline::new(&untimed, None, Some(95));
        assert_eq!(timeline.steps[1].needs, [0]);
        assert_eq!(timeline.critical, [0, 1]);
        assert!(!timeline.timed);
        assert_eq!(timeline.steps[1].started_ms, None);
    }
}
