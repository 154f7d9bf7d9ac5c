//! How a build ended, and the exit codes of `hm run` (DESIGN.md §3).

use crate::scheduler::StopReason;
pub use hm_events::exit_codes;
use hm_events::BuildStatus;

/// The result of a build that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOutcome {
    pub status: BuildStatus,
    pub exit_code: i32,
    pub duration_ms: u64,
}

/// The build's status from why it stopped and whether any step failed.
pub(crate) fn build_status(stop: Option<StopReason>, any_failed: bool) -> (BuildStatus, i32) {
    match stop {
        Some(StopReason::Interrupted) => (BuildStatus::Interrupted, exit_codes::INTERRUPTED),
        Some(StopReason::PipelineTimeout) => (BuildStatus::TimedOut, exit_codes::TIMEOUT),
        Some(StopReason::Unavailable) => (BuildStatus::Failed, exit_codes::UNAVAILABLE),
        _ if any_failed => (BuildStatus::Failed, exit_codes::FAILED),
        _ => (BuildStatus::Passed, exit_codes::PASSED),
    }
}
