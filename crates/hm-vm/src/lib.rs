//! VM backends and the storage they run on.
//!
//! The main type is the [`VmBackend`] trait: boot a [`Vm`] from an image
//! or a snapshot, sync `/workspace`, run one command with its output
//! streamed, commit or destroy. [`SandboxBackend`] implements it with Linux
//! namespaces and overlayfs, without a daemon and without root.
//! [`Vm::shell`] lends a VM the caller's [`Terminal`] for an interactive
//! shell.
//! [`ImageStore`] holds imported images, and [`Session`] a process's
//! scratch space in the cache. Nothing here knows about pipelines.

mod backend;
mod cache_dir;
pub mod capabilities;
mod cgroup;
pub mod child;
pub mod credentials;
pub mod docker;
mod error;
mod flatten;
pub mod fsutil;
mod images;
pub mod limits;
pub mod lines;
pub mod oci;
pub mod os_path;
pub mod registry;
pub mod sandbox;
mod session;
mod source_layers;
pub mod tempdir;
mod terminal;
pub mod volumes;

pub use backend::{
    BootFrom, BootRequest, Drift, ExecOutcome, ExecRequest, ImageRef, KillSignal, LogLine, LogSink, LogStream, Network,
    Persisted, ShellRequest, SnapshotId, StoredSnapshot, Successors, SyncEntry, SyncKind, SyncPlan, Vm, VmBackend,
    VolumeBind, DEFAULT_ORPHAN_GRACE, INTERACTIVE_SHELL,
};
pub use cache_dir::{collect_leftovers, ensure_private, CacheDirError, CacheDirState};
pub use docker::{DockerBackend, DockerConfig, DockerDaemon, PullNotice};
pub use error::{BackendUnavailable, BadImage, DockerError, DockerPullError, ImageError, SandboxError, VmError};
pub use images::{
    ImageInfo, ImageStore, ImportObserver, ImportPhase, ImportProgress, ImportSummary, DEFAULT_PATH, HOST_IMAGE,
};
pub use limits::{Limits, StepUsage};
pub use lines::{LineSplitter, MAX_LINE_BYTES};
pub use registry::{
    Bounds, CacheEntry, Doomed, Found, NewEntry, Registry, RegistryError, Removed, Stored, Usage, VolumeRecord,
};
pub use sandbox::{SandboxBackend, SandboxConfig, DEFAULT_MAX_LAYERS};
pub use session::{live_sessions, Session};
pub use terminal::{Hold, Keys, NotATerminal, Terminal};
