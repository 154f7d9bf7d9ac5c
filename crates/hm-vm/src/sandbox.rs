//! The `sandbox` backend: each step in fresh Linux namespaces on an
//! overlayfs root, with no daemon, as root or as an ordinary user.
//!
//! A snapshot is a stack of layers (committed upper directories) over a
//! base (the host's root or an imported image). Booting prepares a step
//! directory; `exec` runs the helper (`hm __sandbox SPEC`, see
//! [`helper`]) that mounts and runs everything inside the namespaces;
//! `commit` renames the upper directory into a layer. All of a process's
//! layers and step directories live in its [`Session`], so whatever a
//! killed `hm` leaves is collected by the next one.

mod helper;
mod host;
mod rootfs;
mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

pub use helper::{helper_main, is_helper_invocation, HELPER_ARG};

use crate::backend::{
    BootFrom, BootRequest, ExecOutcome, ExecRequest, ImageRef, KillSignal, LogLine, LogSink, LogStream, SnapshotId,
    SyncPlan, Vm, VmBackend,
};
use crate::error::{BackendUnavailable, VmError};
use crate::fsutil::{self, random_id, remove_tree};
use crate::images::{ImageStore, DEFAULT_PATH, HOST_IMAGE};
use crate::session::Session;
use host::HostLayout;
pub(crate) use rootfs::{is_opaque, OPAQUE_XATTR};
use rootfs::{Base, UPPER};
use spec::{ExecSpec, IdMap, Report, Spec};

/// Layers a snapshot may stack before it is flattened into one.
pub const DEFAULT_MAX_LAYERS: usize = 128;

/// How long a cancelled helper gets to take its namespace down before it is
/// killed outright.
const KILL_GRACE: Duration = Duration::from_secs(10);

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
}

#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    host: Option<Arc<HostLayout>>,
    snapshots: HashMap<SnapshotId, Snapshot>,
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

    fn session(&self) -> Result<Arc<Session>, VmError> {
        let mut state = self.state();
        if let Some(session) = &state.session {
            return Ok(session.clone());
        }
        let session = Arc::new(
            Session::create(&self.config.cache_dir)
                .map_err(VmError::io("create a session in", &self.config.cache_dir))?,
        );
        state.session = Some(session.clone());
        Ok(session)
    }

    fn host_layout(&self) -> Result<Arc<HostLayout>, VmError> {
        let session = self.session()?;
        let mut state = self.state();
        if let Some(host) = &state.host {
            return Ok(host.clone());
        }
        let skeleton = session.dir().join("host");
        let layout = Arc::new(
            HostLayout::build(&skeleton, self.rootless)
                .map_err(VmError::io("map the host filesystem into", &skeleton))?,
        );
        state.host = Some(layout.clone());
        Ok(layout)
    }

    fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot, VmError> {
        self.state()
            .snapshots
            .get(id)
            .cloned()
            .ok_or_else(|| VmError::UnknownSnapshot(id.clone()))
    }

    /// Replaces a snapshot's layers by one equivalent layer.
    fn flatten(&self, id: &SnapshotId, snapshot: &Snapshot) -> Result<Snapshot, VmError> {
        let session = self.session()?;
        let dest = session.dir().join("layers").join(random_id(8));
        crate::flatten::flatten(&snapshot.layers, &dest).map_err(VmError::io("flatten layers into", &dest))?;
        let flat = Snapshot {
            layers: vec![dest],
            base: snapshot.base.clone(),
        };
        let mut state = self.state();
        state.snapshots.insert(id.clone(), flat.clone());
        let unused = unused_layers(&state.snapshots, &snapshot.layers, session.dir());
        drop(state);
        for layer in unused {
            let _ = remove_tree(&layer);
        }
        Ok(flat)
    }
}

/// Of `candidates`, the layers inside `session_dir` that no snapshot uses.
fn unused_layers(
    snapshots: &HashMap<SnapshotId, Snapshot>,
    candidates: &[PathBuf],
    session_dir: &Path,
) -> Vec<PathBuf> {
    candidates
        .iter()
        .filter(|layer| layer.starts_with(session_dir))
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
                    let id = id.clone();
                    let inner2 = inner.clone();
                    tokio::task::spawn_blocking(move || inner2.flatten(&id, &snapshot))
                        .await
                        .map_err(|e| VmError::io("flatten", PathBuf::new())(std::io::Error::other(e)))??
                } else {
                    snapshot
                }
            }
        };
        let session = inner.session()?;
        let n = inner.steps.fetch_add(1, Ordering::Relaxed);
        let label: String = request
            .name
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let step_dir = session.dir().join("steps").join(format!("{n}-{label}"));
        std::fs::create_dir_all(&step_dir).map_err(VmError::io("create", &step_dir))?;
        Ok(Box::new(SandboxVm {
            inner,
            session,
            step_dir,
            snapshot,
            sync: SyncPlan::default(),
            leaf_uppers: Vec::new(),
            ran: false,
        }))
    }

    async fn release(&self, id: &SnapshotId) -> Result<(), VmError> {
        let mut state = self.inner.state();
        let Some(snapshot) = state.snapshots.remove(id) else {
            return Err(VmError::UnknownSnapshot(id.clone()));
        };
        let Some(session) = state.session.clone() else {
            return Ok(());
        };
        let unused = unused_layers(&state.snapshots, &snapshot.layers, session.dir());
        drop(state);
        for layer in unused {
            remove_tree(&layer).map_err(VmError::io("remove", &layer))?;
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), VmError> {
        let mut state = self.inner.state();
        state.snapshots.clear();
        state.host = None;
        // Dropping the last reference removes the session directory.
        state.session = None;
        Ok(())
    }
}

/// One sandboxed step.
struct SandboxVm {
    inner: Arc<Inner>,
    session: Arc<Session>,
    step_dir: PathBuf,
    snapshot: Snapshot,
    sync: SyncPlan,
    leaf_uppers: Vec<PathBuf>,
    ran: bool,
}

impl SandboxVm {
    fn build_spec(&mut self, request: &ExecRequest) -> Result<Spec, VmError> {
        let host;
        let base = match &self.snapshot.base {
            SnapshotBase::Host => {
                host = self.inner.host_layout()?;
                Base::Host(&host)
            }
            SnapshotBase::Rootfs(rootfs) => Base::Rootfs(rootfs),
        };
        let cache_dir = &self.inner.config.cache_dir;
        let store = std::fs::canonicalize(cache_dir).map_err(VmError::io("resolve", cache_dir))?;
        let plan = rootfs::plan(&self.step_dir, &self.snapshot.layers, &base, &store)
            .map_err(VmError::io("prepare", &self.step_dir))?;
        self.leaf_uppers = plan.leaf_uppers;
        let is_host = self.snapshot.base == SnapshotBase::Host;
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        if let SnapshotBase::Rootfs(rootfs) = &self.snapshot.base {
            env.extend(image_env(rootfs));
        }
        env.extend(request.env.iter().cloned());
        Ok(Spec {
            step_dir: self.step_dir.clone(),
            root: self.step_dir.join(rootfs::ROOT),
            parent_pid: std::process::id(),
            id_map: self.inner.rootless.then(|| IdMap {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
            }),
            rootfs: plan.mounts,
            fresh_run: is_host,
            resolv_conf: std::fs::canonicalize("/etc/resolv.conf").ok(),
            masked: if is_host { vec![store] } else { Vec::new() },
            sync: std::mem::take(&mut self.sync),
            exec: ExecSpec {
                cmd: request.cmd.clone(),
                env: dedup_env(env),
                cwd: request.cwd.clone(),
            },
            report: self.step_dir.join("report.json"),
        })
    }
}

/// The environment an imported image brings (`image.json`'s `env`).
fn image_env(rootfs: &Path) -> Vec<(String, String)> {
    let Some(dir) = rootfs.parent() else { return Vec::new() };
    let Ok(bytes) = std::fs::read(dir.join("image.json")) else {
        return Vec::new();
    };
    let Ok(info) = serde_json::from_slice::<crate::images::ImageInfo>(&bytes) else {
        return Vec::new();
    };
    info.env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// Keeps the last value of every name, in the order names first appeared.
fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

#[async_trait::async_trait]
impl Vm for SandboxVm {
    async fn sync(&mut self, plan: SyncPlan) -> Result<(), VmError> {
        self.sync = plan;
        Ok(())
    }

    async fn exec(
        &mut self,
        request: ExecRequest,
        logs: LogSink,
        mut kill: KillSignal,
    ) -> Result<ExecOutcome, VmError> {
        if self.ran {
            return Err(VmError::Setup {
                stage: "exec".to_owned(),
                message: "a sandbox runs one command".to_owned(),
            });
        }
        self.ran = true;
        let spec = self.build_spec(&request)?;
        let spec_path = self.step_dir.join("spec.json");
        let json = serde_json::to_vec(&spec).map_err(|e| VmError::io("write", &spec_path)(std::io::Error::other(e)))?;
        std::fs::write(&spec_path, json).map_err(VmError::io("write", &spec_path))?;

        let helper = &self.inner.config.helper;
        // Spawned from a runtime worker thread, which lives as long as the
        // process: the helper's parent-death signal follows the spawning
        // thread, not the process.
        let mut child = tokio::process::Command::new(helper)
            .arg(HELPER_ARG)
            .arg(&spec_path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| VmError::Spawn {
                helper: helper.clone(),
                source,
            })?;
        let stdout = forward_lines(child.stdout.take(), LogStream::Stdout, logs.clone());
        let stderr = forward_lines(child.stderr.take(), LogStream::Stderr, logs);
        let mut killed = false;
        let status = tokio::select! {
            biased;
            status = child.wait() => status,
            () = &mut kill => {
                killed = true;
                if let Some(pid) = child.id() {
                    // The helper kills init and waits for the namespace to go.
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
                }
                match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                }
            }
        };
        let status = status.map_err(VmError::io("wait for the sandbox helper", helper))?;
        let _ = tokio::join!(stdout, stderr);

        let report_path = self.step_dir.join("report.json");
        let report = std::fs::read(&report_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Report>(&b).ok());
        match report {
            _ if killed => Ok(ExecOutcome::Killed),
            Some(Report::Exited(code)) => Ok(ExecOutcome::Exited(code)),
            Some(Report::Signaled(sig)) => Ok(ExecOutcome::Signaled(sig)),
            Some(Report::SetupFailed { stage, message }) => Err(VmError::Setup { stage, message }),
            None => Err(VmError::NoResult {
                status: status.to_string(),
            }),
        }
    }

    async fn commit(self: Box<Self>) -> Result<SnapshotId, VmError> {
        if !self.ran {
            return Err(VmError::Setup {
                stage: "commit".to_owned(),
                message: "nothing ran in this sandbox".to_owned(),
            });
        }
        let upper = self.step_dir.join(UPPER);
        // Upper directories made for the host's leaves and left empty are
        // noise in every later lookup.
        for leaf in self.leaf_uppers.iter().rev() {
            let mut dir = self.step_dir.join(leaf);
            while dir != upper && std::fs::remove_dir(&dir).is_ok() {
                dir.pop();
            }
        }
        let layers_dir = self.session.dir().join("layers");
        std::fs::create_dir_all(&layers_dir).map_err(VmError::io("create", &layers_dir))?;
        let id = random_id(8);
        let layer = layers_dir.join(&id);
        std::fs::rename(&upper, &layer).map_err(VmError::io("commit", &upper))?;
        let mut layers = vec![layer];
        layers.extend(self.snapshot.layers.iter().cloned());
        let snapshot_id = SnapshotId(id);
        self.inner.state().snapshots.insert(
            snapshot_id.clone(),
            Snapshot {
                layers,
                base: self.snapshot.base.clone(),
            },
        );
        remove_tree(&self.step_dir).map_err(VmError::io("remove", &self.step_dir))?;
        Ok(snapshot_id)
    }

    async fn destroy(self: Box<Self>) -> Result<(), VmError> {
        remove_tree(&self.step_dir).map_err(VmError::io("remove", &self.step_dir))
    }
}

/// Reads `pipe` line by line into `logs`; runs until the pipe closes.
fn forward_lines(
    pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
    stream: LogStream,
    logs: LogSink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::with_capacity(64 * 1024, pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    // A closed sink still drains the pipe, so the step never blocks.
                    let _ = logs.send(LogLine { stream, line }).await;
                }
            }
        }
    })
}
