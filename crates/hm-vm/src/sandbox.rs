//! The `sandbox` backend: each step in fresh Linux namespaces on an
//! overlayfs root, with no daemon, as root or as an ordinary user.
//!
//! A snapshot is a stack of layers (committed upper directories) over a
//! base (the host's root or an imported image). `exec` creates the step's
//! upper and work directories and runs the helper (`hm __sandbox`, see
//! [`helper`]) that mounts and runs everything inside the namespaces;
//! `commit` renames the upper directory into a layer. All of a process's
//! layers and scratch directories live in its [`Session`], so whatever a
//! killed `hm` leaves is collected by the next one.

mod helper;
mod host;
mod rootfs;
mod spec;
mod vm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use helper::{helper_main, is_helper_invocation, HELPER_ARG};

use crate::backend::{BootFrom, BootRequest, ExecOutcome, ExecRequest, ImageRef, SnapshotId, Vm, VmBackend};
use crate::error::{BackendUnavailable, VmError};
use crate::fsutil::{self, random_id, remove_tree};
use crate::images::{ImageStore, HOST_IMAGE};
use crate::session::Session;
use host::HostLayout;
use rootfs::MountPoints;
pub(crate) use rootfs::{is_opaque, OPAQUE_XATTR};
use vm::SandboxVm;

/// Layers a snapshot may stack before it is flattened into one.
pub const DEFAULT_MAX_LAYERS: usize = 128;

/// Settings of the sandbox backend.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub cache_dir: PathBuf,
    /// The executable that runs the helper when given [`HELPER_ARG`]
    /// (normally `hm` itself).
    pub helper: PathBuf,
    /// Snapshots deeper than this are flattened before a step boots on them.
    pub max_layers: usize,
}

/// The sandbox backend.
#[derive(Clone)]
pub struct SandboxBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    images: ImageStore,
    rootless: bool,
    state: Mutex<State>,
    steps: AtomicU64,
    /// Clean-up running in the background, awaited by `shutdown`.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    session: Option<Arc<Workspace>>,
    host: Option<Arc<HostLayout>>,
    snapshots: HashMap<SnapshotId, Snapshot>,
}

/// A session and the directories in it that every step uses.
struct Workspace {
    session: Session,
    /// The cache directory, canonical (compared with host paths).
    store: PathBuf,
    points: MountPoints,
    /// Steps' upper and work directories.
    scratch: PathBuf,
    layers: PathBuf,
}

/// A committed filesystem: layers (top first) over a base.
#[derive(Debug, Clone)]
struct Snapshot {
    layers: Vec<PathBuf>,
    base: SnapshotBase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SnapshotBase {
    Host,
    Rootfs(PathBuf),
}

impl SandboxBackend {
    pub fn new(config: SandboxConfig) -> Self {
        let images = ImageStore::new(&config.cache_dir);
        SandboxBackend {
            inner: Arc::new(Inner {
                config,
                images,
                rootless: !fsutil::is_root(),
                state: Mutex::new(State::default()),
                steps: AtomicU64::new(0),
                background: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Whether steps run in a user namespace (the caller is not root).
    pub fn rootless(&self) -> bool {
        self.inner.rootless
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn workspace(&self) -> Result<Arc<Workspace>, VmError> {
        let mut state = self.state();
        if let Some(workspace) = &state.session {
            return Ok(workspace.clone());
        }
        let cache = &self.config.cache_dir;
        let session = Session::create(cache).map_err(VmError::io("create a session in", cache))?;
        let dir = session.dir();
        let mnt = dir.join("mnt");
        let workspace = Workspace {
            store: std::fs::canonicalize(cache).map_err(VmError::io("resolve", cache))?,
            points: MountPoints::create(&mnt).map_err(VmError::io("create", &mnt))?,
            scratch: dir.join("steps"),
            layers: dir.join("layers"),
            session,
        };
        for path in [&workspace.scratch, &workspace.layers] {
            std::fs::create_dir_all(path).map_err(VmError::io("create", path))?;
        }
        let workspace = Arc::new(workspace);
        state.session = Some(workspace.clone());
        Ok(workspace)
    }

    fn host_layout(&self) -> Result<Arc<HostLayout>, VmError> {
        let workspace = self.workspace()?;
        let mut state = self.state();
        if let Some(host) = &state.host {
            return Ok(host.clone());
        }
        let skeleton = workspace.session.dir().join("host");
        let layout = Arc::new(
            HostLayout::build(&skeleton, self.rootless)
                .map_err(VmError::io("map the host filesystem into", &skeleton))?,
        );
        state.host = Some(layout.clone());
        Ok(layout)
    }

    /// Runs blocking clean-up off the step's path; `shutdown` waits for it.
    fn in_background(&self, work: impl FnOnce() + Send + 'static) {
        let handle = tokio::task::spawn_blocking(work);
        let mut background = self.background.lock().unwrap_or_else(|p| p.into_inner());
        background.retain(|h| !h.is_finished());
        background.push(handle);
    }

    fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot, VmError> {
        self.state()
            .snapshots
            .get(id)
            .cloned()
            .ok_or_else(|| VmError::UnknownSnapshot(id.clone()))
    }

    /// Records a new snapshot.
    fn add_snapshot(&self, snapshot: Snapshot) -> SnapshotId {
        let id = SnapshotId(random_id(8));
        self.state().snapshots.insert(id.clone(), snapshot);
        id
    }

    /// Replaces a snapshot's layers by one equivalent layer.
    fn flatten(&self, id: &SnapshotId, snapshot: &Snapshot) -> Result<Snapshot, VmError> {
        let workspace = self.workspace()?;
        let dest = workspace.layers.join(random_id(8));
        crate::flatten::flatten(&snapshot.layers, &dest).map_err(VmError::io("flatten layers into", &dest))?;
        let flat = Snapshot {
            layers: vec![dest],
            base: snapshot.base.clone(),
        };
        let mut state = self.state();
        state.snapshots.insert(id.clone(), flat.clone());
        let unused = unused_layers(&state.snapshots, &snapshot.layers, &workspace.layers);
        drop(state);
        for layer in unused {
            let _ = remove_tree(&layer);
        }
        Ok(flat)
    }
}

/// Of `candidates`, the layers inside `layers_dir` that no snapshot uses.
fn unused_layers(snapshots: &HashMap<SnapshotId, Snapshot>, candidates: &[PathBuf], layers_dir: &Path) -> Vec<PathBuf> {
    candidates
        .iter()
        .filter(|layer| layer.starts_with(layers_dir))
        .filter(|layer| !snapshots.values().any(|s| s.layers.contains(layer)))
        .cloned()
        .collect()
}

#[async_trait::async_trait]
impl VmBackend for SandboxBackend {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn check(&self) -> Result<(), BackendUnavailable> {
        let unavailable = |what: &str, source: Option<VmError>| BackendUnavailable::Namespaces {
            what: what.to_owned(),
            source,
        };
        std::fs::create_dir_all(&self.inner.config.cache_dir).map_err(|source| BackendUnavailable::CacheDir {
            path: self.inner.config.cache_dir.clone(),
            source,
        })?;
        // A real step on the host image, the cheapest complete proof.
        let image = ImageRef {
            name: HOST_IMAGE.to_owned(),
            id: HOST_IMAGE.to_owned(),
        };
        let mut vm = self
            .boot(BootRequest {
                from: BootFrom::Image(image),
                name: "probe".to_owned(),
            })
            .await
            .map_err(|e| unavailable("preparing a sandbox", Some(e)))?;
        let (logs, _rx) = tokio::sync::mpsc::channel(1);
        let request = ExecRequest {
            cmd: "true".to_owned(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
        };
        let outcome = vm.exec(request, logs, Box::pin(std::future::pending())).await;
        let _ = vm.destroy().await;
        match outcome {
            Ok(ExecOutcome::Exited(0)) => Ok(()),
            Ok(other) => Err(unavailable(&format!("a probe step ({other:?})"), None)),
            Err(e) => Err(unavailable("a probe step", Some(e))),
        }
    }

    async fn resolve_image(&self, name: &str) -> Result<ImageRef, BackendUnavailable> {
        match self.inner.images.resolve(name) {
            Ok(Some(image)) => Ok(image),
            Ok(None) => Err(BackendUnavailable::ImageNotFound { name: name.to_owned() }),
            Err(source) => Err(BackendUnavailable::ImageDamaged {
                name: name.to_owned(),
                source,
            }),
        }
    }

    async fn boot(&self, request: BootRequest) -> Result<Box<dyn Vm>, VmError> {
        let inner = self.inner.clone();
        let snapshot = match &request.from {
            BootFrom::Image(image) if image.name == HOST_IMAGE => Snapshot {
                layers: Vec::new(),
                base: SnapshotBase::Host,
            },
            BootFrom::Image(image) => Snapshot {
                layers: Vec::new(),
                base: SnapshotBase::Rootfs(inner.images.rootfs(&image.name)),
            },
            BootFrom::Snapshot(id) => {
                let snapshot = inner.snapshot(id)?;
                if snapshot.layers.len() > inner.config.max_layers {
                    let (id, flattener) = (id.clone(), inner.clone());
                    tokio::task::spawn_blocking(move || flattener.flatten(&id, &snapshot))
                        .await
                        .map_err(|e| VmError::io("flatten", PathBuf::new())(std::io::Error::other(e)))??
                } else {
                    snapshot
                }
            }
        };
        let workspace = inner.workspace()?;
        let n = inner.steps.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(SandboxVm::new(inner, workspace, n, snapshot)))
    }

    async fn release(&self, id: &SnapshotId) -> Result<(), VmError> {
        let unused = {
            let mut state = self.inner.state();
            let Some(snapshot) = state.snapshots.remove(id) else {
                return Err(VmError::UnknownSnapshot(id.clone()));
            };
            let Some(workspace) = state.session.clone() else {
                return Ok(());
            };
            unused_layers(&state.snapshots, &snapshot.layers, &workspace.layers)
        };
        tokio::task::spawn_blocking(move || {
            for layer in unused {
                remove_tree(&layer).map_err(VmError::io("remove", &layer))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| VmError::io("remove layers", PathBuf::new())(std::io::Error::other(e)))?
    }

    async fn shutdown(&self) -> Result<(), VmError> {
        let pending = std::mem::take(&mut *self.inner.background.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in pending {
            let _ = handle.await;
        }
        let workspace = {
            let mut state = self.inner.state();
            state.snapshots.clear();
            state.host = None;
            state.session.take()
        };
        // The session directory goes with the last reference to it.
        if let Some(workspace) = workspace {
            tokio::task::spawn_blocking(move || drop(workspace))
                .await
                .map_err(|e| VmError::io("remove the session", PathBuf::new())(std::io::Error::other(e)))?;
        }
        Ok(())
    }
}
