//! How a build ended, and the exit codes of `hm run` (DESIGN.md §3).

use crate::events::BuildStatus;
use crate::scheduler::StopReason;

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
