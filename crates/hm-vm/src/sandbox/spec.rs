//! What the sandbox backend hands its helper process: everything decided
//! up front, so the helper only carries it out (and reports which stage
//! failed).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::subids::SubIds;
use crate::backend::{Drift, Network, SyncPlan};

/// What the helper is asked to do, sent as JSON on its standard input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Job {
    Step(Box<Spec>),
    Flatten(FlattenSpec),
    Remove(RemoveSpec),
    Pack(PackSpec),
    Unpack(UnpackSpec),
}

/// Write the layer `layer` as an OCI layer to the new file `dest` (see
/// [`crate::oci::pack`]), as root of a user namespace with `id_map` when
/// not root: a step's files may be unreadable to the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PackSpec {
    pub id_map: Option<IdMap>,
    #[serde(with = "crate::os_path")]
    pub layer: PathBuf,
    #[serde(with = "crate::os_path")]
    pub dest: PathBuf,
}

/// Make the new directory `dest` a layer from the OCI layer `blob`,
/// whiteouts kept (see [`crate::oci::unpack::UnpackOptions::keep_whiteouts`]),
/// owners as packed where every owner is mapped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UnpackSpec {
    pub id_map: Option<IdMap>,
    #[serde(with = "crate::os_path")]
    pub blob: PathBuf,
    #[serde(with = "crate::os_path")]
    pub dest: PathBuf,
}

/// Remove `paths` (and everything below them) as root of a user namespace
/// with `id_map`: steps leave files of subordinate ids, in directories the
/// caller itself may not enter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RemoveSpec {
    pub id_map: IdMap,
    #[serde(with = "crate::os_path::vec")]
    pub paths: Vec<PathBuf>,
}

/// Merge `layers` (top first) into the new directory `dest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FlattenSpec {
    /// Set when not root: flatten as root of a user namespace.
    pub id_map: Option<IdMap>,
    #[serde(with = "crate::os_path::vec")]
    pub layers: Vec<PathBuf>,
    #[serde(with = "crate::os_path")]
    pub dest: PathBuf,
}

/// A step to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// Where the new root is assembled.
    #[serde(with = "crate::os_path")]
    pub root: PathBuf,
    /// The pid of `hm`; the helper exits at once if its parent is another.
    pub parent_pid: u32,
    /// Set when running unprivileged: map root inside to this uid and gid.
    pub id_map: Option<IdMap>,
    /// `None`: a network namespace of its own, with only loopback up.
    #[serde(default)]
    pub network: Network,
    /// Filesystems making up the root, mounted in order.
    pub rootfs: Vec<MountOp>,
    /// The step's control group, which the helper puts the step in before
    /// it starts anything of it.
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::Entry>,
    /// Cache volumes: host directories bound read-write on paths inside,
    /// after the workspace sync (see [`crate::volumes`]).
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// The filesystem of its own that holds the step's upper and work
    /// directories, when its disk is limited (see [`super::disk`]).
    #[serde(default)]
    pub disk: Option<DiskSpec>,
    /// Give the sandbox a fresh tmpfs on `/run` (for the host image).
    pub fresh_run: bool,
    /// The host file bound (read-only) onto `/etc/resolv.conf`.
    #[serde(with = "crate::os_path::option")]
    pub resolv_conf: Option<PathBuf>,
    /// Paths inside the root hidden under an empty read-only tmpfs (the
    /// cache directory, when the root shows the host's filesystem).
    #[serde(with = "crate::os_path::vec")]
    pub masked: Vec<PathBuf>,
    pub sync: SyncPlan,
    pub exec: ExecSpec,
    /// The helper's standard output and error are a terminal, which the
    /// command gets as its standard input too, as its controlling terminal
    /// and in the foreground (an interactive shell).
    #[serde(default)]
    pub terminal: bool,
}

/// A cache volume: the host directory `source` on `target` inside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeSpec {
    #[serde(with = "crate::os_path")]
    pub source: PathBuf,
    #[serde(with = "crate::os_path")]
    pub target: PathBuf,
}

/// A filesystem of `bytes` for the step's writable layer: the helper
/// mounts it on `mount` (in its own mount namespace, never the host's) and
/// makes `mount/upper` and `mount/work` in it, which the root's overlay
/// names. After the step passed, the upper directory is copied to
/// `save_to`, a directory of the session, which `commit` renames into a
/// layer as any other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DiskSpec {
    pub bytes: u64,
    pub kind: DiskKind,
    #[serde(with = "crate::os_path")]
    pub mount: PathBuf,
    #[serde(with = "crate::os_path")]
    pub save_to: PathBuf,
    /// Directories (relative) to make in the upper directory, opaque: the
    /// host's own `/workspace`, hidden as [`super::rootfs::plan`] hides it.
    #[serde(with = "crate::os_path::vec")]
    pub opaque: Vec<PathBuf>,
}

impl DiskSpec {
    /// The loop filesystem's file, if it is one (gone once attached).
    pub(crate) fn image(&self) -> Option<&std::path::Path> {
        match &self.kind {
            DiskKind::Loop { image, .. } => Some(image),
            DiskKind::Tmpfs => None,
        }
    }
}

/// What the filesystem of a limited step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DiskKind {
    /// ext4 in the sparse file `image`, on a loop device (root only): a
    /// copy of `template`, which `mkfs` makes once per size and session.
    /// The file is unlinked once attached.
    Loop {
        #[serde(with = "crate::os_path")]
        image: PathBuf,
        #[serde(with = "crate::os_path")]
        template: PathBuf,
        #[serde(with = "crate::os_path")]
        mkfs: PathBuf,
    },
    /// A tmpfs (in memory).
    Tmpfs,
}

/// Root inside the user namespace is this user outside; with `sub`, ids
/// from 1 up are the user's subordinate ids (see [`super::subids`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdMap {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub sub: Option<SubIds>,
}

/// One filesystem of the root; all paths are absolute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum MountOp {
    /// An empty read-only tmpfs (the second lower a view needs).
    EmptyTmpfs {
        #[serde(with = "crate::os_path")]
        target: PathBuf,
    },
    /// A read-only overlay showing the host directory `lower` over the empty
    /// tmpfs `empty`: the same files on another superblock, so that layers
    /// stored below `lower` may still be stacked above it.
    View {
        #[serde(with = "crate::os_path")]
        target: PathBuf,
        #[serde(with = "crate::os_path")]
        empty: PathBuf,
        #[serde(with = "crate::os_path")]
        lower: PathBuf,
    },
    /// A writable overlay; `lowers` are top first (the helper opens them and
    /// names them by file descriptor).
    Overlay {
        #[serde(with = "crate::os_path")]
        target: PathBuf,
        #[serde(with = "crate::os_path::vec")]
        lowers: Vec<PathBuf>,
        #[serde(with = "crate::os_path")]
        upper: PathBuf,
        #[serde(with = "crate::os_path")]
        work: PathBuf,
    },
    /// A read-only bind mount of a host file or directory, with the mounts
    /// below it when `recursive`.
    BindReadOnly {
        #[serde(with = "crate::os_path")]
        source: PathBuf,
        #[serde(with = "crate::os_path")]
        target: PathBuf,
        recursive: bool,
    },
}

/// The command and its environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExecSpec {
    pub cmd: String,
    /// The complete environment, in order (later entries win).
    pub env: Vec<(String, String)>,
    #[serde(with = "crate::os_path")]
    pub cwd: PathBuf,
}

/// What the helper reports back on its standard input (a socket), once,
/// when it is done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    /// The command exited with this status.
    Exited(i32),
    /// The command was ended by this signal.
    Signaled(i32),
    /// The sandbox could not be set up; the command never ran.
    SetupFailed { stage: String, message: String },
    /// Sent before the others when the workspace sync copied entries other
    /// than the plan expected.
    Drifted(Vec<Drift>),
}

/// Sends `job` to a helper: its length (8 bytes, little-endian), then its
/// JSON, which the helper reads exactly; then closes `hm`'s side for
/// writing.
pub fn send_job(to: &mut std::os::unix::net::UnixStream, job: &Job) -> std::io::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec(job).map_err(std::io::Error::other)?;
    to.write_all(&(json.len() as u64).to_le_bytes())?;
    to.write_all(&json)?;
    to.shutdown(std::net::Shutdown::Write)
}

/// Reads a job [`send_job`] sent.
pub fn read_job(from: &mut impl std::io::Read) -> Result<Job, String> {
    let mut len = [0u8; 8];
    from.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = u64::from_le_bytes(len);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(from, len), &mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 != len {
        return Err(format!("the job ended after {} of {len} bytes", bytes.len()));
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}
