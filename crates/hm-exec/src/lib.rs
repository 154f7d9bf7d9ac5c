//! Executing a planned pipeline: the scheduler, the runner, the workspace
//! source, and the event stream that is the only path to output.
//!
//! The main type is [`LocalBackend`], an [`ExecutionBackend`] built once
//! with a parallelism and an injected [`hm_vm::VmBackend`]; `start` returns
//! a [`BackendHandle`] with the build's [`Event`]s and a [`RunControl`] to
//! interrupt and await it. Scheduling decisions live in the synchronous
//! [`scheduler`], tested without a runtime. A build given a [`ShellHook`]
//! hands its front end a [`ShellSession`] in one step's state. The
//! [`workspace::Source`] is the project tree a build syncs into its steps,
//! with a persistent [`index`] so that unchanged files are not read again.

pub mod cache;
mod changes;
/// The event stream, from its own crate (`hm-render` reads it alone).
pub use hm_events as events;
#[cfg(test)]
mod fake;
pub mod index;
mod local;
mod outcome;
pub mod remote;
mod runner;
pub mod scheduler;
mod shell;
mod source_layers;
pub mod store;
pub mod volumes;
pub mod workspace;

pub use cache::CacheSettings;
pub use changes::watch_mask;
pub use events::{BuildStatus, Event, StepStatus};
pub use local::{
    BackendHandle, Capabilities, ExecutionBackend, Interrupter, LocalBackend, RunControl, RunError, RunRequest,
    StepLogs,
};
pub use outcome::{exit_codes, BuildOutcome};
pub use shell::{ShellHook, ShellPoint, ShellSession, ShellState};
pub use store::{delete_and_collect, delete_doomed, SnapshotCache};
