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
//!
//! Rootless, a step's user namespace maps root to the caller and, when the
//! caller has subordinate ids, ids 1 and up to those (see [`subids`]), so
//! that steps may switch users; what they leave as those ids, the helper
//! removes (see [`remove`]). Without a range, [`VmBackend::notes`] says
//! what to add.

mod disk;
mod helper;
mod host;
mod layers;
mod mounts;
mod remove;
mod rootfs;
mod sources;
mod spec;
mod subids;
mod sync;
mod vm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use helper::{helper_main, is_helper_invocation, HELPER_ARG};

use crate::backend::{
    BootFrom, BootRequest, ExecOutcome, ExecRequest, ImageRef, Network, Persisted, SnapshotId, StoredSnapshot,
    SyncPlan, Vm, VmBackend,
};
use crate::error::{BackendUnavailable, SandboxError, VmError};
use crate::fsutil::{self, random_id};
use crate::images::{ImageStore, HOST_IMAGE};
use crate::session::Session;
use host::HostLayout;
use layers::{Layer, Trash};
use remove::Remover;
use rootfs::MountPoints;
pub(crate) use rootfs::{is_opaque, OPAQUE_XATTR};
use sources::SourceLayers;
use spec::{FlattenSpec, IdMap, Job, PackSpec, Report, UnpackSpec};
use subids::SubIds;
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
    /// Stored parts no entry knows are collected once this old
    /// ([`crate::DEFAULT_ORPHAN_GRACE`]).
    pub orphan_grace: std::time::Duration,
    /// Where `newuidmap` and `newgidmap` are looked for before the usual
    /// directories (`PATH`).
    pub search_path: std::ffi::OsString,
}

/// The sandbox backend.
#[derive(Clone)]
pub struct SandboxBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    network: Network,
    images: ImageStore,
    rootless: bool,
    /// Rootless: the caller's subordinate ids, mapped from 1 up in steps'
    /// user namespaces.
    sub_ids: Option<SubIds>,
    /// Rootless without subordinate ids: what to add (see [`VmBackend::notes`]).
    note: Option<String>,
    /// Where steps' control groups go, or why steps run without limits.
    cgroups: Result<crate::cgroup::Tree, crate::cgroup::Unavailable>,
    /// Removes what steps wrote (with the helper when they may have
    /// written as subordinate ids).
    remover: Remover,
    state: Mutex<State>,
    steps: AtomicU64,
    /// Removals running in the background, awaited by `shutdown`.
    trash: Arc<Trash>,
    /// One flattening at a time, so that steps forking from one deep
    /// snapshot flatten it once.
    flattening: tokio::sync::Mutex<()>,
    /// Stored layers already found intact by this process (a chain of hits
    /// checks each layer once, not once per descendant).
    verified: Mutex<std::collections::HashSet<String>>,
    /// Copies of the source that root steps stack.
    sources: SourceLayers,
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
    remover: Remover,
    /// The session's control groups, where steps get limits.
    groups: Option<crate::cgroup::SessionGroups>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Before the session's own removal, which could not remove what
        // steps left as subordinate ids.
        let _ = self.remover.remove(self.session.dir());
    }
}

/// A committed filesystem: layers (top first) over a base.
#[derive(Debug, Clone)]
struct Snapshot {
    layers: Vec<Arc<Layer>>,
    base: SnapshotBase,
}

impl Snapshot {
    fn layer_paths(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.path().to_owned()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SnapshotBase {
    Host,
    Image { name: String, id: String, rootfs: PathBuf },
}

/// A snapshot's base as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredBase {
    Host,
    Image { name: String, id: String },
}

/// Where stored layers live, under the cache directory.
const STORE_DIR: &str = "layers";

impl SandboxBackend {
    /// A backend whose steps share the host's network.
    pub fn new(config: SandboxConfig) -> Self {
        Self::with_network(config, Network::Host)
    }

    /// A backend whose steps get `network` (see [`Network`]).
    pub fn with_network(config: SandboxConfig, network: Network) -> Self {
        let images = ImageStore::new(&config.cache_dir);
        let rootless = !fsutil::is_root();
        let (sub_ids, note) = match rootless.then(|| SubIds::find(nix::unistd::getuid().as_raw(), &config.search_path))
        {
            Some(Ok(ids)) => (Some(ids), None),
            Some(Err(note)) => (None, Some(note.to_string())),
            None => (None, None),
        };
        let id_map = id_map(rootless, &sub_ids);
        let remover = Remover::new(&config.helper, id_map);
        SandboxBackend {
            inner: Arc::new(Inner {
                network,
                images,
                rootless,
                sub_ids,
                note,
                cgroups: crate::cgroup::Tree::detect(!rootless),
                remover: remover.clone(),
                state: Mutex::new(State::default()),
                steps: AtomicU64::new(0),
                trash: Arc::new(Trash::new(remover)),
                flattening: tokio::sync::Mutex::new(()),
                verified: Mutex::new(std::collections::HashSet::new()),
                sources: SourceLayers::new(&config.cache_dir),
                config,
            }),
        }
    }

    /// Whether steps run in a user namespace (the caller is not root).
    pub fn rootless(&self) -> bool {
        self.inner.rootless
    }
}

/// The user namespace mapping of a step or helper job, when not root.
fn id_map(rootless: bool, sub_ids: &Option<SubIds>) -> Option<IdMap> {
    rootless.then(|| IdMap {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        sub: sub_ids.clone(),
    })
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
        // Dead sessions first, with what their steps left as other ids.
        let runs = cache.join(crate::session::RUNS_DIR);
        crate::session::collect_dead_with(&runs, |path| self.remover.remove_dead_session(path));
        let session = Session::create(cache).map_err(VmError::io("create a session in", cache))?;
        let dir = session.dir();
        let mnt = dir.join("mnt");
        let groups = match &self.cgroups {
            Ok(tree) => {
                let record = dir.join(crate::cgroup::RECORD);
                Some(
                    tree.session(session.id(), &record)
                        .map_err(VmError::io("create control groups for", &record))?,
                )
            }
            Err(_) => None,
        };
        let workspace = Workspace {
            groups,
            store: std::fs::canonicalize(cache).map_err(VmError::io("resolve", cache))?,
            points: MountPoints::create(&mnt).map_err(VmError::io("create", &mnt))?,
            scratch: dir.join("steps"),
            layers: dir.join("layers"),
            session,
            remover: self.remover.clone(),
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
        let layout = HostLayout::build(&skeleton, self.rootless)
            .map_err(VmError::io("map the host filesystem into", &skeleton))?;
        let layout = Arc::new(layout);
        state.host = Some(layout.clone());
        Ok(layout)
    }

    /// Source layer `name`, which this process holds (see
    /// [`VmBackend::source_layer`]); a missing one is an error.
    fn source_layer(&self, name: &str) -> Result<Arc<Layer>, VmError> {
        let tree = self.sources.tree(name);
        match self.sources.hold(name) {
            Ok(true) => Ok(Layer::named(tree, format!("{}{name}", sources::PART_PREFIX))),
            Ok(false) => Err(VmError::io("use the source layer", &tree)(
                std::io::ErrorKind::NotFound.into(),
            )),
            Err(e) => Err(VmError::io("use the source layer", &tree)(e)),
        }
    }

    /// The directory of stored layers.
    fn store_dir(&self) -> PathBuf {
        self.config.cache_dir.join(STORE_DIR)
    }

    /// The user namespace mapping of a step or helper job, when not root.
    fn id_map(&self) -> Option<IdMap> {
        id_map(self.rootless, &self.sub_ids)
    }

    fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot, VmError> {
        let snapshot = self.state().snapshots.get(id).cloned();
        snapshot.ok_or_else(|| VmError::UnknownSnapshot(id.clone()))
    }

    /// Records a new snapshot.
    fn add_snapshot(&self, snapshot: Snapshot) -> SnapshotId {
        let id = SnapshotId(random_id(8));
        self.state().snapshots.insert(id.clone(), snapshot);
        id
    }

    /// Runs a helper job to its end.
    async fn run_job(&self, job: &Job) -> Result<(), VmError> {
        if let Some(work) = helper::in_process(job) {
            let done = tokio::task::spawn_blocking(work).await;
            let done = done.map_err(|e| VmError::io("run a job", &self.config.helper)(std::io::Error::other(e)))?;
            return Ok(done?);
        }
        let helper = &self.config.helper;
        let (mut child, report) = vm::spawn_helper(helper, job, false)?;
        let status = child
            .wait()
            .await
            .map_err(VmError::io("wait for the sandbox helper", helper))?;
        match report.await.ok().flatten() {
            Some(Report::Exited(0)) => Ok(()),
            Some(Report::SetupFailed { stage, message }) => Err(SandboxError::Setup { stage, message }.into()),
            _ => Err(SandboxError::NoResult {
                status: status.to_string(),
            }
            .into()),
        }
    }

    /// Where stored part `part` lives: a layer, or a source layer's tree.
    fn part_path(&self, part: &str) -> PathBuf {
        match part.strip_prefix(sources::PART_PREFIX) {
            Some(name) => self.sources.tree(name),
            None => self.store_dir().join(part),
        }
    }

    /// The snapshot `id`, its layers replaced by one equivalent layer when
    /// the stack is deeper than the limit. The old layers go once no running
    /// step stacks them any more.
    async fn flattened(&self, id: &SnapshotId) -> Result<Snapshot, VmError> {
        let _one_at_a_time = self.flattening.lock().await;
        let snapshot = self.snapshot(id)?;
        if snapshot.layers.len() <= self.config.max_layers {
            return Ok(snapshot);
        }
        let workspace = self.workspace()?;
        let dest = workspace.layers.join(random_id(8));
        let job = Job::Flatten(FlattenSpec {
            id_map: self.id_map(),
            layers: snapshot.layer_paths(),
            dest: dest.clone(),
        });
        if let Err(err) = self.run_job(&job).await {
            self.trash.discard(dest);
            return Err(err);
        }
        let flat = Snapshot {
            layers: vec![Layer::new(dest, &self.trash)],
            base: snapshot.base.clone(),
        };
        self.state().snapshots.insert(id.clone(), flat.clone());
        Ok(flat)
    }
}

#[async_trait::async_trait]
impl VmBackend for SandboxBackend {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn network(&self) -> Network {
        self.inner.network
    }

    fn storage(&self) -> Option<&std::path::Path> {
        Some(&self.inner.config.cache_dir)
    }

    /// Rootless without subordinate ids: what to add so that steps may
    /// switch users.
    fn notes(&self) -> Vec<String> {
        let limits = self
            .inner
            .cgroups
            .as_ref()
            .err()
            .map(|why| format!("steps run without memory, CPU and process limits: {why}"));
        self.inner.note.iter().cloned().chain(limits).collect()
    }

    async fn check(&self) -> Result<(), BackendUnavailable> {
        let unavailable = |what: &str, source: Option<VmError>| BackendUnavailable::Namespaces {
            what: what.to_owned(),
            source,
        };
        let cache = &self.inner.config.cache_dir;
        std::fs::create_dir_all(cache).map_err(|source| BackendUnavailable::CacheDir {
            path: cache.clone(),
            source,
        })?;
        // A real step on the host image, the cheapest complete proof.
        let image = ImageRef {
            name: HOST_IMAGE.to_owned(),
            id: HOST_IMAGE.to_owned(),
        };
        let request = BootRequest {
            from: BootFrom::Image(image),
            name: "probe".to_owned(),
            source_layer: None,
        };
        let mut vm = self
            .boot(request)
            .await
            .map_err(|e| unavailable("preparing a sandbox", Some(e)))?;
        let (logs, _rx) = tokio::sync::mpsc::channel(1);
        let request = ExecRequest {
            cmd: "true".to_owned(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            limits: Default::default(),
            volumes: Vec::new(),
        };
        let outcome = vm.exec(request, logs, Box::pin(std::future::pending())).await;
        let _ = vm.destroy().await;
        tracing::debug!(rootless = self.rootless(), ?outcome, "sandbox probe step");
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

    async fn source_layer(&self, name: &str, image: &ImageRef, make: Option<SyncPlan>) -> Result<bool, VmError> {
        // A host with a `/workspace` of its own hides it under an opaque
        // directory in each root step's layer (see `rootfs`), which would
        // hide the source layer too.
        if image.name == HOST_IMAGE && std::fs::symlink_metadata("/workspace").is_ok() {
            return Ok(false);
        }
        let inner = self.inner.clone();
        let name = name.to_owned();
        let tree = inner.sources.tree(&name);
        tokio::task::spawn_blocking(move || match make {
            Some(plan) => inner.sources.make(&name, &plan),
            None => inner.sources.hold(&name),
        })
        .await
        .map_err(|e| VmError::io("make a source layer", &tree)(std::io::Error::other(e)))?
        .map_err(VmError::io("make the source layer", &tree))
    }

    async fn export_part(&self, part: &str, dest: &std::path::Path) -> Result<bool, VmError> {
        let layer = self.inner.part_path(part);
        if !layer.is_dir() {
            return Err(VmError::StoredMissing(format!("part `{part}` is gone")));
        }
        let job = Job::Pack(PackSpec {
            id_map: self.inner.id_map(),
            layer,
            dest: dest.to_owned(),
        });
        self.inner.run_job(&job).await?;
        Ok(true)
    }

    async fn import_part(&self, part: &str, blob: &std::path::Path) -> Result<u64, VmError> {
        let inner = &self.inner;
        let workspace = inner.workspace()?;
        // Unpacked in this process's session, then moved into place whole.
        let made = workspace.layers.join(random_id(8));
        let source = part.strip_prefix(sources::PART_PREFIX);
        let dest = match source {
            Some(_) => {
                std::fs::create_dir(&made).map_err(VmError::io("create", &made))?;
                made.join("tree")
            }
            None => made.clone(),
        };
        let job = Job::Unpack(UnpackSpec {
            id_map: inner.id_map(),
            blob: blob.to_owned(),
            dest: dest.clone(),
        });
        let imported = async {
            inner.run_job(&job).await?;
            let size = layers::layer_size(&dest).map_err(VmError::io("measure", &dest))?;
            match source {
                Some(name) => inner
                    .sources
                    .install(name, &made, size)
                    .map_err(VmError::io("store the source layer", &made))?,
                None => {
                    let stored = inner.store_dir().join(part);
                    std::fs::create_dir_all(inner.store_dir()).map_err(VmError::io("create", &stored))?;
                    match std::fs::rename(&made, &stored) {
                        Ok(()) => {}
                        // Another process imported it first: the same files.
                        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {}
                        Err(e) => return Err(VmError::io("store", &stored)(e)),
                    }
                }
            }
            Ok(size)
        }
        .await;
        if made.exists() {
            inner.trash.discard(made);
        }
        imported
    }

    async fn remove_source_layers(&self, known: &std::collections::HashSet<String>) -> Result<(), VmError> {
        let inner = self.inner.clone();
        let known = known.clone();
        let dir = inner.config.cache_dir.join(sources::SOURCES_DIR);
        tokio::task::spawn_blocking(move || inner.sources.remove_unused(&known))
            .await
            .map_err(|e| VmError::io("remove the copies of sources in", &dir)(std::io::Error::other(e)))?
            .map_err(VmError::io("remove the copies of sources in", &dir))
    }

    async fn boot(&self, request: BootRequest) -> Result<Box<dyn Vm>, VmError> {
        let inner = self.inner.clone();
        let snapshot = match &request.from {
            BootFrom::Image(image) if image.name == HOST_IMAGE => Snapshot {
                layers: Vec::new(),
                base: SnapshotBase::Host,
            },
            BootFrom::Image(image) => {
                // The image must still be the one resolved for this build.
                let current = inner.images.get(&image.name).ok().flatten();
                if current.is_none_or(|info| info.id != image.id) {
                    return Err(VmError::ImageChanged {
                        name: image.name.clone(),
                    });
                }
                Snapshot {
                    layers: Vec::new(),
                    base: SnapshotBase::Image {
                        name: image.name.clone(),
                        id: image.id.clone(),
                        rootfs: inner.images.rootfs(&image.name),
                    },
                }
            }
            BootFrom::Snapshot(id) => inner.flattened(id).await?,
        };
        let snapshot = match (&request.source_layer, &request.from) {
            (Some(name), BootFrom::Image(_)) => Snapshot {
                layers: vec![inner.source_layer(name)?],
                ..snapshot
            },
            _ => snapshot,
        };
        let workspace = inner.workspace()?;
        let n = inner.steps.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            step = %request.name,
            n,
            base = ?snapshot.base,
            layers = snapshot.layers.len(),
            "sandbox: root filesystem of overlay layers"
        );
        Ok(Box::new(SandboxVm::new(inner, workspace, n, snapshot)))
    }

    async fn release(&self, id: &SnapshotId) -> Result<(), VmError> {
        // Its layers go with the last snapshot or step that stacks them.
        match self.inner.state().snapshots.remove(id) {
            Some(_) => Ok(()),
            None => Err(VmError::UnknownSnapshot(id.clone())),
        }
    }

    async fn shutdown(&self) -> Result<(), VmError> {
        let workspace = {
            let mut state = self.inner.state();
            state.snapshots.clear();
            state.host = None;
            state.session.take()
        };
        self.inner.sources.release_all();
        self.inner.trash.drain().await;
        // The session directory goes with the last reference to it.
        if let Some(workspace) = workspace {
            tokio::task::spawn_blocking(move || drop(workspace))
                .await
                .map_err(|e| VmError::io("remove the session", PathBuf::new())(std::io::Error::other(e)))?;
        }
        Ok(())
    }

    async fn persist(&self, id: &SnapshotId) -> Result<Persisted, VmError> {
        let snapshot = self.inner.snapshot(id)?;
        let store = self.inner.store_dir();
        let inner = self.inner.clone();
        let blocking = self.inner.clone();
        let (layers, new_parts) = tokio::task::spawn_blocking(move || -> Result<_, VmError> {
            let inner = blocking;
            std::fs::create_dir_all(&store).map_err(VmError::io("create", &store))?;
            let mut layers = Vec::with_capacity(snapshot.layers.len());
            let mut new_parts = Vec::new();
            for layer in &snapshot.layers {
                if layer.is_stored() {
                    if let Some(name) = layer.name().strip_prefix(sources::PART_PREFIX) {
                        new_parts.push((layer.name(), inner.sources.size(name)));
                    }
                    layers.push(layer.clone());
                    continue;
                }
                let size = layers::layer_size(layer.path()).map_err(VmError::io("measure", layer.path()))?;
                let dest = store.join(layer.name());
                // The move is atomic: the store never holds half a layer.
                std::fs::rename(layer.path(), &dest).map_err(VmError::io("store", layer.path()))?;
                new_parts.push((layer.name(), size));
                layers.push(Layer::stored(dest));
            }
            Ok((layers, new_parts))
        })
        .await
        .map_err(|e| VmError::io("store layers", PathBuf::new())(std::io::Error::other(e)))??;
        let base = match &inner.snapshot(id)?.base {
            SnapshotBase::Host => StoredBase::Host,
            SnapshotBase::Image { name, id, .. } => StoredBase::Image {
                name: name.clone(),
                id: id.clone(),
            },
        };
        let stored = StoredSnapshot {
            parts: layers.iter().map(|l| l.name()).collect(),
            base: serde_json::to_string(&base).unwrap_or_default(),
        };
        tracing::debug!(
            snapshot = %id,
            parts = stored.parts.len(),
            new_bytes = new_parts.iter().map(|(_, size)| size).sum::<u64>(),
            "sandbox: snapshot's layers moved into the store"
        );
        let mut state = inner.state();
        if let Some(snapshot) = state.snapshots.get_mut(id) {
            snapshot.layers = layers;
        }
        Ok(Persisted { stored, new_parts })
    }

    async fn restore(&self, stored: &StoredSnapshot) -> Result<SnapshotId, VmError> {
        let inner = &self.inner;
        let base: StoredBase = serde_json::from_str(&stored.base)
            .map_err(|e| VmError::StoredMissing(format!("unreadable base `{}`: {e}", stored.base)))?;
        let base = match base {
            StoredBase::Host => SnapshotBase::Host,
            StoredBase::Image { name, id } => {
                let current = inner.images.get(&name).ok().flatten();
                if current.is_none_or(|info| info.id != id) {
                    return Err(VmError::StoredMissing(format!(
                        "image `{name}` is no longer the one it was built on"
                    )));
                }
                let rootfs = inner.images.rootfs(&name);
                SnapshotBase::Image { name, id, rootfs }
            }
        };
        let store = inner.store_dir();
        let mut layers = Vec::with_capacity(stored.parts.len());
        for part in &stored.parts {
            if let Some(name) = part.strip_prefix(sources::PART_PREFIX) {
                match inner.source_layer(name) {
                    Ok(layer) => layers.push(layer),
                    Err(_) => return Err(VmError::StoredMissing(format!("source layer `{name}` is gone"))),
                }
                continue;
            }
            let path = store.join(part);
            let known = inner.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(part);
            if !known {
                if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    return Err(VmError::StoredMissing(format!("layer `{part}` is gone")));
                }
                inner
                    .verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(part.clone());
            }
            layers.push(Layer::stored(path));
        }
        tracing::debug!(parts = stored.parts.len(), "sandbox: stored snapshot restored");
        Ok(inner.add_snapshot(Snapshot { layers, base }))
    }

    async fn delete_parts(&self, parts: &[String]) -> Result<(), VmError> {
        let (sources, layers): (Vec<&String>, Vec<&String>) =
            parts.iter().partition(|p| p.starts_with(sources::PART_PREFIX));
        let sources: Vec<String> = sources.into_iter().cloned().collect();
        let paths: Vec<PathBuf> = layers.iter().map(|p| self.inner.store_dir().join(p)).collect();
        let remover = self.inner.remover.clone();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            for part in sources {
                let name = &part[sources::PART_PREFIX.len()..];
                inner
                    .sources
                    .delete(name)
                    .map_err(VmError::io("remove", inner.sources.tree(name)))?;
            }
            // Each is tried, whatever became of the others.
            let mut first_err = None;
            for path in paths {
                if let Err(err) = remover.remove(&path) {
                    first_err.get_or_insert_with(|| VmError::io("remove", &path)(err));
                }
            }
            first_err.map_or(Ok(()), Err)
        })
        .await
        .map_err(|e| VmError::io("remove layers", PathBuf::new())(std::io::Error::other(e)))?
    }

    async fn volume_size(&self, id: &str) -> Option<u64> {
        let dir = crate::volumes::VolumeStore::new(&self.inner.config.cache_dir).data_dir(id);
        // Rootless, a directory a step made another id's may be unreadable:
        // then the size is not known.
        tokio::task::spawn_blocking(move || crate::fsutil::disk_usage(&dir).ok())
            .await
            .ok()
            .flatten()
    }

    async fn remove_volume(&self, id: &str) -> Result<(), VmError> {
        let dir = crate::volumes::VolumeStore::new(&self.inner.config.cache_dir).data_dir(id);
        let remover = self.inner.remover.clone();
        tokio::task::spawn_blocking(move || remover.remove(&dir).map_err(VmError::io("remove the volume", &dir)))
            .await
            .map_err(|e| VmError::io("remove a volume", PathBuf::new())(std::io::Error::other(e)))?
    }

    /// Also removes the sessions of dead processes: the sweep every command
    /// starts with cannot remove what their steps left as other ids.
    async fn collect_orphans(&self, known: &std::collections::HashSet<String>) -> Result<(), VmError> {
        let store = self.inner.store_dir();
        let runs = self.inner.config.cache_dir.join(crate::session::RUNS_DIR);
        let known = known.clone();
        let grace = self.inner.config.orphan_grace;
        let remover = self.inner.remover.clone();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            crate::session::collect_dead_with(&runs, |path| remover.remove_dead_session(path));
            let sources_dir = inner.config.cache_dir.join(sources::SOURCES_DIR);
            inner
                .sources
                .collect(&known, grace)
                .map_err(VmError::io("collect source layers in", &sources_dir))?;
            let Ok(entries) = std::fs::read_dir(&store) else {
                return Ok(());
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if known.contains(&name) || !fsutil::changed_before(&entry.path(), grace) {
                    continue;
                }
                remover
                    .remove(&entry.path())
                    .map_err(VmError::io("remove", entry.path()))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| VmError::io("collect layers", PathBuf::new())(std::io::Error::other(e)))?
    }
}
