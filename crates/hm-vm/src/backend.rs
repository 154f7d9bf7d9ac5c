//! The contract between execution and a VM backend.
//!
//! A backend boots a [`Vm`] from an image or from one of its own snapshots,
//! syncs `/workspace` into it, runs one command with its output streamed
//! line by line, and either commits the result as a new snapshot or throws
//! it away. Backends know nothing of pipelines: the caller decides what to
//! boot from, what to sync and what to keep.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::error::{BackendUnavailable, VmError};

/// Stored parts unknown to the registry are collected after this long by
/// default: a live process registers a part within moments of storing it.
pub const DEFAULT_ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

/// An opaque handle to a snapshot kept by a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotId(pub String);

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image resolved by a backend: its name and content identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The name the pipeline used (`host`, `debian:bookworm`).
    pub name: String,
    /// Content identity (a digest), independent of the name.
    pub id: String,
}

/// A snapshot made durable, as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The backend's storage units, top first (the sandbox's layers).
    pub parts: Vec<String>,
    /// What the parts lie on (backend-specific: an image and its identity).
    pub base: String,
}

/// The result of [`VmBackend::persist`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    pub stored: StoredSnapshot,
    /// Sizes in bytes of the parts this call made durable (parts that
    /// already were are left out).
    pub new_parts: Vec<(String, u64)>,
}

/// What a step's network is (DESIGN.md §6): the host's own, or a private
/// namespace with only a loopback interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network namespace: steps reach what the host reaches,
    /// its loopback services included.
    #[default]
    Host,
    /// A network namespace of the step's own with only `lo` up: nothing
    /// outside the step is reachable.
    None,
}

impl Network {
    /// The name users write (`host`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::None => "none",
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a VM boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFrom {
    Image(ImageRef),
    Snapshot(SnapshotId),
}

/// Who will boot from a committed snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Successors {
    /// Exactly one child, and nothing else keeps the snapshot: a backend may
    /// hand the VM itself to that child instead of copying its filesystem
    /// (the child then runs where this step ran).
    One,
    /// Several children, or the cache keeps it.
    Many,
}

/// How a VM should be booted.
#[derive(Debug, Clone)]
pub struct BootRequest {
    pub from: BootFrom,
    /// A short name for the VM, used in paths and labels (the step key).
    pub name: String,
    /// A root step's source layer (see [`VmBackend::source_layer`]), held by
    /// this process: `/workspace` starts as the layer holds it, and the
    /// sync brings it from there to the source.
    pub source_layer: Option<String>,
}

/// One entry the workspace sync writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEntry {
    /// Path relative to the source root and to the target.
    #[serde(with = "crate::os_path")]
    pub path: PathBuf,
    pub kind: SyncKind,
    /// What the caller expects to be copied: BLAKE3 of a file's contents
    /// or of a link's target. What was copied is hashed as it is copied,
    /// and a difference is reported as [`Drift`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<[u8; 32]>,
}

/// A written entry whose source was not what the plan expected when it was
/// copied: edited, replaced or deleted after the caller looked at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Path relative to the source root and to the target.
    #[serde(with = "crate::os_path")]
    pub path: PathBuf,
    /// BLAKE3 of what was copied (a file's contents, a link's target), or
    /// `None` when nothing was: the source was gone, and so is the path in
    /// the VM.
    pub copied: Option<[u8; 32]>,
}

/// The kind of a [`SyncEntry`], with its permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncKind {
    Dir { mode: u32 },
    File { mode: u32 },
    Symlink,
}

/// Brings a directory inside the VM in line with a directory on the host.
///
/// Removals run first (deepest paths first; a directory is only removed
/// when it is empty), then `write` in order (parents before children). A
/// written path that exists with another kind is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPlan {
    /// The host directory files are copied from.
    #[serde(with = "crate::os_path")]
    pub source_root: PathBuf,
    /// The directory inside the VM (absolute, e.g. `/workspace`).
    #[serde(with = "crate::os_path")]
    pub target: PathBuf,
    #[serde(with = "crate::os_path::vec")]
    pub remove: Vec<PathBuf>,
    pub write: Vec<SyncEntry>,
}

impl SyncPlan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.write.is_empty()
    }
}

/// The command a VM runs.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Passed to `sh -c`.
    pub cmd: String,
    /// Set on top of the image's own environment, in order.
    pub env: Vec<(String, String)>,
    /// The working directory inside the VM.
    pub cwd: PathBuf,
    /// What the command may use.
    pub limits: crate::Limits,
    /// Cache volumes mounted read-write for the command (held by the
    /// caller while it runs), outside its snapshot.
    pub volumes: Vec<VolumeBind>,
}

/// A cache volume mounted into a step (see [`crate::volumes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeBind {
    /// The volume instance's id ([`crate::volumes::VolumeKey::id`]).
    pub id: String,
    /// Where the step sees it: an absolute path.
    pub target: PathBuf,
}

/// The shell [`ShellRequest::interactive`] runs: `bash` where the image
/// has it, else `sh`, both interactive.
pub const INTERACTIVE_SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash -i; fi; exec sh -i";

/// An interactive command, given the caller's terminal (see [`Vm::shell`]).
#[derive(Debug)]
pub struct ShellRequest {
    /// Passed to `sh -c`.
    pub cmd: String,
    /// Set on top of the image's own environment, in order; `TERM` is the
    /// terminal's own type when it has one.
    pub env: Vec<(String, String)>,
    /// The working directory inside the VM.
    pub cwd: PathBuf,
    /// Its standard input, output and error.
    pub terminal: crate::terminal::Terminal,
    /// The step's limits, which the shell runs within too.
    pub limits: crate::Limits,
}

impl ShellRequest {
    /// [`INTERACTIVE_SHELL`] in `cwd` with `env`, on `terminal`, within
    /// `limits`.
    pub fn interactive(
        env: Vec<(String, String)>,
        cwd: PathBuf,
        terminal: crate::terminal::Terminal,
        limits: crate::Limits,
    ) -> Self {
        ShellRequest {
            cmd: INTERACTIVE_SHELL.to_owned(),
            env,
            cwd,
            terminal,
            limits,
        }
    }

    /// The environment with the terminal's type last.
    pub fn env_with_term(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        if let Some(term) = self.terminal.term() {
            env.push(("TERM".to_owned(), term.to_owned()));
        }
        env
    }
}

/// Which stream a log line came from (the event stream's own type).
pub use hm_events::LogStream;

/// One line of output, without its line terminator, or a piece of a line
/// longer than [`crate::lines::MAX_LINE_BYTES`]: the bytes as the step
/// wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStream,
    pub bytes: Vec<u8>,
    /// The line goes on in the next `LogLine` of this stream.
    pub partial: bool,
    /// A newline ended it (the output's last line may have none).
    pub eol: bool,
}

impl LogLine {
    /// The line as text (bytes that are not UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Where a VM sends its output; lines of one stream arrive in order.
pub type LogSink = tokio::sync::mpsc::Sender<LogLine>;

/// Resolves when the command must be killed (cancel or timeout).
pub type KillSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with this status.
    Exited(i32),
    /// It was ended by this signal, not by us.
    Signaled(i32),
    /// We killed it because the [`KillSignal`] fired.
    Killed,
}

impl ExecOutcome {
    /// The shell-style exit code: the status, or 128 + the signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(sig) => 128 + sig,
            Self::Killed => 128 + libc::SIGKILL,
        }
    }
}

/// A VM backend (DESIGN.md §6).
#[async_trait::async_trait]
pub trait VmBackend: Send + Sync {
    /// The name users select it by (`sandbox`, `docker`).
    fn name(&self) -> &'static str;

    /// The network every step of this backend gets. It changes what a step
    /// can produce, so it is one of a cache key's inputs.
    fn network(&self) -> Network {
        Network::Host
    }

    /// The directory on whose filesystem steps' files are written (the
    /// sandbox's cache directory), if this process writes them: when it is
    /// full, a step's failure is that, and what it wrote is cut short.
    fn storage(&self) -> Option<&std::path::Path> {
        None
    }

    /// Checks, before any step starts, that this backend can run VMs here.
    async fn check(&self) -> Result<(), BackendUnavailable>;

    /// Resolves an image name; an unknown image is an error that says how to
    /// get it.
    async fn resolve_image(&self, name: &str) -> Result<ImageRef, BackendUnavailable>;

    /// Source layer `name` for root steps on `image` (DESIGN.md §4): a
    /// read-only copy of the source at one state, stacked under each root
    /// step that sees that state instead of a copy of the tree in each.
    /// `Ok(true)`: it is there and held by this process until
    /// [`VmBackend::shutdown`]. When it is not and `make` is given (a sync of
    /// the whole source into an empty `/workspace`), it is made from that
    /// first. `Ok(false)`: there is none to boot on (a source that changed
    /// while it was copied makes none; a backend without source layers never
    /// has one), and root steps sync the source themselves.
    async fn source_layer(&self, name: &str, image: &ImageRef, make: Option<SyncPlan>) -> Result<bool, VmError> {
        let _ = (name, image, make);
        Ok(false)
    }

    /// Writes stored part `part` to the new file `dest`, which a remote
    /// cache or `hm cache save` carries to another machine: the sandbox's
    /// as an OCI layer, docker's as an image archive holding the layers
    /// above its base (docs/decisions.md); `Ok(false)`: this backend cannot.
    async fn export_part(&self, part: &str, dest: &std::path::Path) -> Result<bool, VmError> {
        let _ = (part, dest);
        Ok(false)
    }

    /// Makes stored part `part` from the file `blob` that
    /// [`VmBackend::export_part`] wrote (on this machine or another), as if
    /// this process had stored it; its size. A part already there stays.
    async fn import_part(&self, part: &str, blob: &std::path::Path) -> Result<u64, VmError> {
        let _ = blob;
        Err(VmError::StoredMissing(format!(
            "part `{part}`: the {} backend cannot import parts",
            self.name()
        )))
    }

    /// Deletes the source layers that no stored part in `known` names and
    /// no process uses (`hm cache clean`).
    async fn remove_source_layers(&self, known: &std::collections::HashSet<String>) -> Result<(), VmError> {
        let _ = known;
        Ok(())
    }

    /// Prepares a VM. Backends may defer the actual boot until `exec`.
    async fn boot(&self, request: BootRequest) -> Result<Box<dyn Vm>, VmError>;

    /// Deletes a snapshot this backend made; its storage is gone once no
    /// other snapshot builds on it.
    async fn release(&self, snapshot: &SnapshotId) -> Result<(), VmError>;

    /// Tears down everything this backend still holds for this process.
    async fn shutdown(&self) -> Result<(), VmError>;

    /// Makes a snapshot durable beyond this process. Its parts then belong
    /// to the registry: only [`VmBackend::delete_parts`] removes them.
    async fn persist(&self, snapshot: &SnapshotId) -> Result<Persisted, VmError>;

    /// Makes a stored snapshot bootable in this process. A part or base that
    /// is gone or changed is [`VmError::StoredMissing`]: the entry must go.
    async fn restore(&self, stored: &StoredSnapshot) -> Result<SnapshotId, VmError>;

    /// Deletes the storage of parts the registry no longer needs.
    async fn delete_parts(&self, parts: &[String]) -> Result<(), VmError>;

    /// Deletes stored parts the registry does not know (left by a process
    /// killed between storing a part and registering it) once they are old
    /// enough that no live process can be about to register them.
    async fn collect_orphans(&self, known: &std::collections::HashSet<String>) -> Result<(), VmError>;

    /// The bytes volume `id` holds, where this backend can tell.
    async fn volume_size(&self, _id: &str) -> Option<u64> {
        None
    }

    /// Deletes volume `id`'s storage (the caller holds it exclusively).
    async fn remove_volume(&self, id: &str) -> Result<(), VmError>;

    /// One-line notes for the user about how steps will run here (the
    /// caller says each once per process, as `note: ...`).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One VM, used for one command.
#[async_trait::async_trait]
pub trait Vm: Send {
    /// Records or performs the workspace sync; it happens before `exec`.
    async fn sync(&mut self, plan: SyncPlan) -> Result<(), VmError>;

    /// Runs the command to its end, or until `kill` fires.
    async fn exec(&mut self, request: ExecRequest, logs: LogSink, kill: KillSignal) -> Result<ExecOutcome, VmError>;

    /// Runs an interactive command on the caller's terminal, in the state
    /// the VM is in (before `exec` the sync is done first; after it, the
    /// command's changes are there), and returns its exit status (128 +
    /// the signal when one ended it). The command gets the terminal as its
    /// controlling terminal and its foreground, so that keys such as
    /// Ctrl-C reach it and not the caller; the terminal's modes and
    /// foreground are given back when it ends. What it changes is the
    /// VM's, kept only by a `commit`.
    async fn shell(&mut self, request: ShellRequest) -> Result<i32, VmError>;

    /// The entries the sync copied other than the plan expected (see
    /// [`SyncEntry::expected`]); known once `exec` has returned.
    fn drift(&mut self) -> Vec<Drift>;

    /// What the last `exec` used, where the backend measures it.
    fn usage(&mut self) -> crate::StepUsage {
        crate::StepUsage::default()
    }

    /// Keeps the VM's filesystem as a snapshot for `successors` and tears
    /// the VM down (or hands it over, see [`Successors::One`]).
    async fn commit(self: Box<Self>, successors: Successors) -> Result<SnapshotId, VmError>;

    /// Tears the VM down and throws its changes away.
    async fn destroy(self: Box<Self>) -> Result<(), VmError>;
}
