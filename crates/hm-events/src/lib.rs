//! The event stream of a build: plain data, the only path from execution
//! to output (DESIGN.md §7); with the statuses it carries and the exit
//! codes of `hm` ([`exit_codes`]).
//!
//! `--format json` prints each [`Event`] as one JSON object per line, with
//! the variant name in `kind`:
//!
//! | kind | fields |
//! |---|---|
//! | `build_start` | `run_id`, `pipeline`, `plan {step_count, chain_count, default_runner}`, `started_at`, `branch?`, `message?` |
//! | `step_queued` | `step_id`, `key`, `chain_idx`, `parent_key?`, `display_name` |
//! | `step_start` | `step_id`, `runner`, `image?`, `cache_miss?` |
//! | `step_log` | `step_id`, `stream` (`stdout`/`stderr`), `line`, `partial?`, `ts` |
//! | `step_cache_hit` | `step_id`, `key`, `tag` |
//! | `step_end` | `step_id`, `exit_code`, `duration_ms`, `snapshot?`, `status`, `message?`, `peak_memory_bytes?`, `cpu_ms?` |
//! | `step_skipped` | `step_id`, `key`, `reason` |
//! | `chain_failed` | `chain_idx`, `failed_step_id`, `failed_step_key`, `exit_code`, `message`, `ts` |
//! | `build_end` | `exit_code`, `duration_ms`, `status` |
//!
//! A `line` holds at most 64 KiB (`hm_vm::MAX_LINE_BYTES`): a longer line
//! arrives in several `step_log` events, each but the last with
//! `"partial": true`, meaning that the next `step_log` of the same step and
//! stream continues the same line (pieces never split a UTF-8 character, so
//! joining them gives the line back).
//!
//! Times are RFC 3339 UTC with milliseconds. `step_id` is the step's index
//! in the pipeline, as a string, unique within a run. `exit_code` is the
//! command's exit status; a step ended by a signal has 128 + the signal
//! (a cancelled step: 137), a timed-out step 124, and a step whose VM
//! failed before or around its command -1, with the reason in `message`.
//! Every queued step ends with exactly one `step_end` or `step_skipped`.
//! A cache hit has no `step_start`: `step_cache_hit` (`key` is the cache
//! key, `tag` the stored snapshot's top layer), then `step_end` with status
//! `cache_hit`. A cached step that missed says why in `step_start`'s
//! `cache_miss` when an earlier entry of the same step exists (`command
//! changed`, `env changed: NAME`, `env_keys changed: NAME`, `image
//! changed`, `parent changed`, `files changed: PATH, ...`, `ttl window
//! passed`).

pub mod units;

use serde::{Deserialize, Serialize};

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One event of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    BuildStart {
        run_id: String,
        pipeline: String,
        plan: PlanSummary,
        started_at: String,
        /// The branch recorded on the build (`hm run -b`), as Harmont's
        /// builds carry one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// The build's message (`hm run -m`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    StepQueued {
        step_id: String,
        key: String,
        chain_idx: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_key: Option<String>,
        display_name: String,
    },
    StepStart {
        step_id: String,
        runner: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// Why a cached step missed, when an earlier entry of it exists.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_miss: Option<String>,
    },
    StepLog {
        step_id: String,
        stream: LogStream,
        line: String,
        /// The line was longer than 64 KiB and goes on in the next
        /// `step_log` of this step and stream.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        partial: bool,
        ts: String,
    },
    StepCacheHit {
        step_id: String,
        key: String,
        tag: String,
        /// The entry came from the remote cache (issue 16).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remote: bool,
    },
    StepEnd {
        step_id: String,
        exit_code: i32,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
        status: StepStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The most memory the step's command held at once, where the
        /// backend measures it (our addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peak_memory_bytes: Option<u64>,
        /// The CPU time of the step's command, user and system (our
        /// addition).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_ms: Option<u64>,
    },
    StepSkipped {
        step_id: String,
        key: String,
        reason: String,
    },
    ChainFailed {
        chain_idx: usize,
        failed_step_id: String,
        failed_step_key: String,
        exit_code: i32,
        message: String,
        ts: String,
    },
    BuildEnd {
        exit_code: i32,
        duration_ms: u64,
        status: BuildStatus,
    },
    /// The remote cache could not be used for an entry: `op` is `pull` (the
    /// step ran instead) or `push` (the entry stays local). `refused`: the
    /// registry's entry was damaged or not one of hm's, and is never used;
    /// otherwise the registry failed, and the build stops using it.
    CacheRemoteError {
        op: String,
        key: String,
        message: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refused: bool,
    },
    /// `hm run` checks or pulls an image the pipeline names (before
    /// `build_start`; sandbox backend).
    ImagePullStart { image: String },
    /// A layer of it is downloaded and verified.
    ImagePullLayer { image: String, layer: String, bytes: u64 },
    /// The image is there: `fetched` is false when the stored one was
    /// already the registry's.
    ImagePullEnd {
        image: String,
        digest: String,
        fetched: bool,
        duration_ms: u64,
    },
}

/// The shape of the plan, announced at `build_start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub step_count: usize,
    pub chain_count: usize,
    pub default_runner: String,
}

/// How a step that started ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    TimedOut,
    Canceled,
    CacheHit,
    /// Killed by the kernel for going over its memory limit (our
    /// addition).
    Oom,
}

impl StepStatus {
    /// Whether its successors may build on it.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Passed | Self::CacheHit)
    }
}

/// How the build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    Passed,
    Failed,
    TimedOut,
    Interrupted,
}

/// Exit codes of `hm`, in one place.
pub mod exit_codes {
    /// Every step passed or was a cache hit.
    pub const PASSED: i32 = 0;
    /// A step failed (or timed out, or its VM failed).
    pub const FAILED: i32 = 1;
    /// Bad usage, configuration or pipeline definition.
    pub const USAGE: i32 = 2;
    /// The backend is unavailable or an image is missing.
    pub const UNAVAILABLE: i32 = 4;
    /// The pipeline's own timeout expired.
    pub const TIMEOUT: i32 = 124;
    /// Interrupted by SIGINT or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_kind_tags() {
        let event = Event::StepEnd {
            step_id: "3".into(),
            exit_code: 0,
            duration_ms: 12,
            snapshot: None,
            status: StepStatus::Passed,
            message: None,
            peak_memory_bytes: None,
            cpu_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"kind":"step_end","step_id":"3","exit_code":0,"duration_ms":12,"status":"passed"}"#
        );
        let log = Event::StepLog {
            step_id: "0".into(),
            stream: LogStream::Stderr,
            line: "x".into(),
            partial: false,
            ts: "t".into(),
        };
        let text = serde_json::to_string(&log).unwrap();
        assert!(text.contains(r#""stream":"stderr""#) && !text.contains("partial"));
    }

    /// `hm run -b/-m` put `branch` and `message` on `build_start`; a build
    /// without them prints the event as before, and reads it back.
    #[test]
    fn build_start_carries_branch_and_message_only_when_given() {
        let start = |branch: Option<&str>, message: Option<&str>| Event::BuildStart {
            run_id: "r".into(),
            pipeline: "ci".into(),
            plan: PlanSummary {
                step_count: 1,
                chain_count: 1,
                default_runner: "vm".into(),
            },
            started_at: "t".into(),
            branch: branch.map(Into::into),
            message: message.map(Into::into),
        };
        let plain = r#"{"kind":"build_start","run_id":"r","pipeline":"ci","plan":{"step_count":1,"chain_count":1,"default_runner":"vm"},"started_at":"t"}"#;
        assert_eq!(serde_json::to_string(&start(None, None)).unwrap(), plain);
        assert_eq!(serde_json::from_str::<Event>(plain).unwrap(), start(None, None));
        let labelled = start(Some("main"), Some("fix the build"));
        let text = serde_json::to_string(&labelled).unwrap();
        assert!(
            text.ends_with(r#""started_at":"t","branch":"main","message":"fix the build"}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), labelled);
    }
}
