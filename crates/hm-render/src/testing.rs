//! Builds event streams for the views' tests, one build at a time.

use hm_events::{BuildStatus, Event, LogStream, PlanSummary, StepStatus};

const TS: &str = "2026-01-01T00:00:00.000Z";

/// A build's events: steps named by their keys, their ids the order they
/// were queued in.
pub struct Script {
    keys: Vec<String>,
}

impl Script {
    /// `build_start` and a `step_queued` per key.
    pub fn new(keys: &[&str]) -> (Self, Vec<Event>) {
        let mut events = vec![Event::BuildStart {
            run_id: "r1".into(),
            pipeline: "ci".into(),
            plan: PlanSummary {
                step_count: keys.len(),
                chain_count: 1,
                default_runner: "vm".into(),
            },
            started_at: TS.into(),
            branch: None,
            message: None,
        }];
        for (i, key) in keys.iter().enumerate() {
            events.push(Event::StepQueued {
                step_id: i.to_string(),
                key: (*key).into(),
                chain_idx: 0,
                parent_key: None,
                display_name: (*key).into(),
            });
        }
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        (Script { keys }, events)
    }

    fn id(&self, key: &str) -> String {
        self.keys
            .iter()
            .position(|k| k == key)
            .expect("a queued key")
            .to_string()
    }

    pub fn start(&self, key: &str) -> Event {
        Event::StepStart {
            step_id: self.id(key),
            runner: "vm".into(),
            image: None,
            cache_miss: None,
        }
    }

    /// A start after a cache miss, with its reason.
    pub fn start_missed(&self, key: &str, why: &str) -> Event {
        let mut event = self.start(key);
        if let Event::StepStart { cache_miss, .. } = &mut event {
            *cache_miss = Some(why.into());
        }
        event
    }

    pub fn out(&self, key: &str, line: &str) -> Event {
        self.log(key, LogStream::Stdout, line)
    }

    pub fn err(&self, key: &str, line: &str) -> Event {
        self.log(key, LogStream::Stderr, line)
    }

    fn log(&self, key: &str, stream: LogStream, line: &str) -> Event {
        Event::StepLog {
            step_id: self.id(key),
            stream,
            line: line.into(),
            partial: false,
            ts: TS.into(),
        }
    }

    pub fn end(&self, key: &str, status: StepStatus, exit_code: i32, duration_ms: u64) -> Event {
        let message = (status == StepStatus::TimedOut).then(|| "timed out after 5s".to_owned());
        Event::StepEnd {
            step_id: self.id(key),
            exit_code,
            duration_ms,
            snapshot: None,
            status,
            message,
            peak_memory_bytes: None,
            cpu_ms: None,
        }
    }

    /// A cache hit: `step_cache_hit`, then its `step_end`.
    pub fn hit(&self, key: &str) -> [Event; 2] {
        [
            Event::StepCacheHit {
                step_id: self.id(key),
                key: "k".into(),
                tag: "t".into(),
                remote: false,
            },
            self.end(key, StepStatus::CacheHit, 0, 2),
        ]
    }

    pub fn skip(&self, key: &str, reason: &str) -> Event {
        Event::StepSkipped {
            step_id: self.id(key),
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub fn build_end(&self, status: BuildStatus, exit_code: i32, duration_ms: u64) -> Event {
        Event::BuildEnd {
            exit_code,
            duration_ms,
            status,
        }
    }
}
