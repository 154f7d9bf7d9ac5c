//! The `docker` backend: each step in a container of a Docker-compatible
//! daemon (Docker, or Podman's API socket), through its Engine API.
//!
//! A root step boots a container from its image; the step runs in it with
//! `docker exec`. Snapshots are made only where one is needed: a step with
//! one uncached child hands its container over (a linear chain runs in one
//! container), other snapshots are `docker commit`s tagged
//! `hm-snapshot-<cache>:<run>-<n>`, and the cache keeps its entries under
//! `hm-cache-<cache>:<image id>`. Every container and image carries labels
//! (cache directory, run, project, step; a committed image also its base
//! image); the run's [`Session`] tells a live run from a killed one, whose
//! leftovers the next run removes. A stored image travels between daemons
//! as one file ([`parts`]).
//!
//! A container is created at its first step's exec, under that step's
//! limits ([`limits`]) and with its cache volumes mounted ([`volumes`]); the
//! command that runs each step also reads what it used from the
//! container's cgroup ([`usage`]).

mod archive;
mod connect;

pub use connect::DockerDaemon;

mod limits;
mod parts;
mod sources;
mod usage;
mod vm;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::auth::DockerCredentials;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::backend::{
    BootFrom, BootRequest, ImageRef, Network, Persisted, SnapshotId, StoredSnapshot, SyncPlan, Vm, VmBackend,
    VolumeBind,
};
use crate::capabilities::STEP_CAPABILITIES;
use crate::credentials::Credentials;
use crate::error::{BackendUnavailable, DockerError, DockerPullError, VmError};
use crate::images::HOST_IMAGE;
use crate::limits::Limits;
use crate::session::{is_alive, Session};
use vm::DockerVm;
use volumes::volume_name;

/// Labels on everything `hm` makes.
const LABEL_CACHE: &str = "dev.hm.cache";
const LABEL_RUN: &str = "dev.hm.run";
const LABEL_PROJECT: &str = "dev.hm.project";
const LABEL_STEP: &str = "dev.hm.step";
/// On a committed image: the id of the image the snapshot lies on (its
/// layers are the bottom ones).
const LABEL_BASE: &str = "dev.hm.base";
/// On a cache volume: its id ([`crate::volumes::VolumeKey::id`]).
const LABEL_VOLUME: &str = "dev.hm.volume";

/// What a container runs so that steps can `exec` into it: a shell as PID 1
/// (it reaps orphans, and `kill -1` in a step cannot reach it).
const KEEPALIVE: &str = "while :; do sleep 86400; done";

/// Settings of the docker backend.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The cache directory: its sessions tell live runs from dead ones.
    pub cache_dir: PathBuf,
    /// The project, for labels.
    pub project: String,
    /// Where the daemon is.
    pub daemon: DockerDaemon,
    /// Images no entry knows are collected once this old
    /// ([`crate::DEFAULT_ORPHAN_GRACE`]).
    pub orphan_grace: std::time::Duration,
    /// The Docker client's configuration directory, whose `config.json`
    /// has registry credentials (`$DOCKER_CONFIG`, else `~/.docker`).
    pub client_config: Option<PathBuf>,
}

/// The docker backend.
#[derive(Clone)]
pub struct DockerBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: DockerConfig,
    network: Network,
    /// `hm-snapshot-<id>` and `hm-cache-<id>`: this cache directory's
    /// repositories, so that caches sharing a daemon never touch each
    /// other's images.
    cache_id: String,
    client: tokio::sync::OnceCell<Docker>,
    /// Made on first use; dead runs are cleaned up at the same time.
    session: tokio::sync::OnceCell<Session>,
    snapshots: Mutex<HashMap<SnapshotId, Snap>>,
    counter: AtomicU64,
    /// Told before the daemon pulls an image.
    pull_notice: std::sync::OnceLock<PullNotice>,
    /// Told, once, what this backend cannot apply.
    note: std::sync::OnceLock<Note>,
    /// The daemon refused a container's size (`disk`): its storage driver
    /// cannot bound one.
    disk_refused: std::sync::atomic::AtomicBool,
    /// Source images found or made by this process, by layer name and base
    /// image id (see [`sources`]).
    sources: Mutex<HashMap<(String, String), String>>,
    /// This process's shared lock on the cache's source images, taken at
    /// their first use (see [`sources`]).
    sources_lock: Mutex<Option<nix::fcntl::Flock<std::fs::File>>>,
    /// The bytes each cache volume held after the last step that mounted
    /// it, until `volume_size` takes them (see [`volumes`]).
    volume_sizes: Mutex<HashMap<String, u64>>,
}

/// Called with an image's name before the daemon pulls it: the caller says
/// so (a line, an event); the backend prints nothing.
pub type PullNotice = Arc<dyn Fn(&str) + Send + Sync>;

/// Called with a one-line note on how steps run here that the backend
/// learns from the daemon (once per note); the caller says it.
pub type Note = Arc<dyn Fn(&str) + Send + Sync>;

/// A snapshot this process holds.
#[derive(Debug, Clone)]
enum Snap {
    /// A container handed from a step to its only child, with the limits
    /// it runs under and what it carries along its chain (its volumes
    /// among them).
    Container {
        id: String,
        limits: Limits,
        chain: vm::Chain,
    },
    /// A committed image; `tag` is this run's own reference to it (none for
    /// a snapshot restored from the cache, whose tag is the cache's).
    Image {
        id: String,
        tag: Option<String>,
        base: String,
        size: u64,
    },
}

/// Maps a bollard error to a [`VmError`] for `op`.
pub(crate) fn docker_error(op: &'static str) -> impl FnOnce(bollard::errors::Error) -> VmError {
    move |source| DockerError::Api { op, source }.into()
}

/// A [`VmError`] for an answer of the daemon that makes no sense for `op`.
pub(crate) fn unexpected(op: &'static str, why: &'static str) -> VmError {
    DockerError::Unexpected { op, why }.into()
}

fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

impl DockerBackend {
    /// A backend whose containers share the host's network.
    pub fn new(config: DockerConfig) -> Self {
        Self::with_network(config, Network::Host)
    }

    /// Calls `notice` before the daemon pulls an image.
    pub fn on_pull(self, notice: PullNotice) -> Self {
        let _ = self.inner.pull_notice.set(notice);
        self
    }

    /// Calls `note` with what the backend learns it cannot apply (a disk
    /// limit the storage driver refuses), once.
    pub fn on_note(self, note: Note) -> Self {
        let _ = self.inner.note.set(note);
        self
    }

    /// A backend whose containers get `network` (`none`: Docker's `none`
    /// network, loopback only).
    pub fn with_network(config: DockerConfig, network: Network) -> Self {
        let (canonical, cache_id) = cache_id(&config.cache_dir);
        DockerBackend {
            inner: Arc::new(Inner {
                config: DockerConfig {
                    cache_dir: canonical,
                    ..config
                },
                network,
                cache_id,
                client: tokio::sync::OnceCell::new(),
                session: tokio::sync::OnceCell::new(),
                snapshots: Mutex::new(HashMap::new()),
                counter: AtomicU64::new(0),
                pull_notice: std::sync::OnceLock::new(),
                note: std::sync::OnceLock::new(),
                disk_refused: std::sync::atomic::AtomicBool::new(false),
                sources: Mutex::default(),
                sources_lock: Mutex::default(),
                volume_sizes: Mutex::default(),
            }),
        }
    }

    /// The repository the cache entries of `cache_dir` are tagged in.
    pub fn cache_repository(cache_dir: &std::path::Path) -> String {
        format!("hm-cache-{}", cache_id(cache_dir).1)
    }
}

/// The canonical cache directory, and the id its docker names carry.
fn cache_id(cache_dir: &std::path::Path) -> (PathBuf, String) {
    let canonical = std::fs::canonicalize(cache_dir).unwrap_or_else(|_| cache_dir.to_owned());
    let id = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex()[..12].to_owned();
    (canonical, id)
}

impl Inner {
    fn snapshot_repo(&self) -> String {
        format!("hm-snapshot-{}", self.cache_id)
    }

    fn cache_repo(&self) -> String {
        format!("hm-cache-{}", self.cache_id)
    }

    /// The cache tag of a stored image id.
    fn cache_tag(&self, image: &str) -> String {
        format!("{}:{}", self.cache_repo(), image.trim_start_matches("sha256:"))
    }

    fn cache_label(&self) -> String {
        self.config.cache_dir.display().to_string()
    }

    fn docker(&self) -> Result<&Docker, VmError> {
        self.client
            .get()
            .ok_or_else(|| unexpected("be reached", "the backend was not checked before use"))
    }

    async fn connect(&self) -> Result<&Docker, BackendUnavailable> {
        self.client
            .get_or_try_init(|| connect::connect(&self.config.daemon))
            .await
    }

    /// This process's session, made (and the leftovers of dead runs
    /// removed) on first use.
    async fn session(&self) -> Result<&Session, VmError> {
        self.session
            .get_or_try_init(|| async {
                let cache = self.config.cache_dir.clone();
                let session = tokio::task::spawn_blocking(move || Session::create(&cache))
                    .await
                    .map_err(|e| VmError::io("create a session in", &self.config.cache_dir)(std::io::Error::other(e)))?
                    .map_err(VmError::io("create a session in", &self.config.cache_dir))?;
                self.remove_dead_runs().await;
                Ok(session)
            })
            .await
    }

    fn labels(&self, run: &str, step: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_CACHE.to_owned(), self.cache_label()),
            (LABEL_RUN.to_owned(), run.to_owned()),
            (LABEL_PROJECT.to_owned(), self.config.project.clone()),
            (LABEL_STEP.to_owned(), step.to_owned()),
        ])
    }

    fn add_snapshot(&self, snap: Snap) -> SnapshotId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = SnapshotId(format!("docker-{n}"));
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), snap);
        id
    }

    fn snapshot(&self, id: &SnapshotId) -> Result<Snap, VmError> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| VmError::UnknownSnapshot(id.clone()))
    }

    /// Creates and starts a container from `image` for the step `name`,
    /// under `limits`, with the cache volumes `volumes` mounted (each made
    /// where it is not there yet). A disk limit the storage driver refuses
    /// is left out, of this container and every later one, and said once.
    async fn create_container(
        &self,
        image: &str,
        name: &str,
        limits: &Limits,
        volumes: &[VolumeBind],
    ) -> Result<String, VmError> {
        let docker = self.docker()?;
        let run = self.session().await?.id().to_owned();
        self.create_volumes(&run, name, volumes).await?;
        let mut host = HostConfig {
            network_mode: Some(self.network.name().to_owned()),
            // The sandbox's capabilities, not Docker's defaults (which add
            // CAP_NET_RAW and CAP_MKNOD), and no new privileges.
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(STEP_CAPABILITIES.iter().map(|(_, name)| (*name).to_owned()).collect()),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            mounts: (!volumes.is_empty()).then(|| volumes::mounts(volumes)),
            ..Default::default()
        };
        limits::apply(limits, &mut host);
        if !self.disk_refused.load(Ordering::Relaxed) {
            host.storage_opt = limits::storage_opt(limits);
        }
        let mut body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec![String::new()]),
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), KEEPALIVE.to_owned()]),
            working_dir: Some("/workspace".to_owned()),
            user: Some("0".to_owned()),
            labels: Some(self.labels(&run, name)),
            host_config: Some(host),
            ..Default::default()
        };
        let created = match docker.create_container(None, body.clone()).await {
            Err(err) if body.host_config.as_ref().is_some_and(|h| h.storage_opt.is_some()) => {
                let Some(refusal) = limits::storage_opt_refused(&err) else {
                    return Err(docker_error("create a container")(err));
                };
                if !self.disk_refused.swap(true, Ordering::Relaxed) {
                    if let Some(note) = self.note.get() {
                        note(&format!(
                            "the docker backend runs steps without a disk limit: the daemon's storage driver refuses one ({})",
                            refusal.trim()
                        ));
                    }
                }
                if let Some(host) = &mut body.host_config {
                    host.storage_opt = None;
                }
                docker.create_container(None, body).await
            }
            created => created,
        }
        .map_err(docker_error("create a container"))?;
        if let Err(err) = docker.start_container(&created.id, None).await {
            self.remove_container(&created.id).await;
            return Err(docker_error("start a container")(err));
        }
        Ok(created.id)
    }

    /// Puts the running container `id` under `limits`.
    async fn update_limits(&self, id: &str, limits: &Limits) -> Result<(), VmError> {
        self.docker()?
            .update_container(id, limits::update(limits))
            .await
            .map_err(docker_error("change a container's limits"))
    }

    /// Removes a container and everything in it; a container already gone
    /// is fine.
    async fn remove_container(&self, id: &str) {
        let Ok(docker) = self.docker() else { return };
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let _ = docker.remove_container(id, Some(options)).await;
    }

    /// Removes an image reference (a tag); the image goes with its last
    /// reference, its layers with the last image using them.
    async fn remove_tag(&self, tag: &str) {
        let Ok(docker) = self.docker() else { return };
        let options = RemoveImageOptionsBuilder::new().force(false).noprune(false).build();
        let _ = docker.remove_image(tag, Some(options), None).await;
    }

    /// The size in bytes of an image with all its layers.
    async fn image_size(&self, image: &str) -> u64 {
        let Ok(docker) = self.docker() else { return 0 };
        match docker.inspect_image(image).await {
            Ok(inspect) => inspect.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Commits `container` as this run's snapshot image.
    async fn commit(&self, container: &str, origin: &str, base: &str) -> Result<Snap, VmError> {
        let (id, tag) = self.commit_image(container, base).await?;
        let size = self.image_size(&id).await.saturating_sub(self.image_size(origin).await);
        Ok(Snap::Image {
            id,
            tag: Some(tag),
            base: base.to_owned(),
            size,
        })
    }

    /// Commits `container`, whose snapshot lies on `base`, as an image of
    /// this run: its id and its tag (`hm-snapshot-<cache>:<run>-<n>`).
    /// The contents of the container's volumes are not in it.
    async fn commit_image(&self, container: &str, base: &str) -> Result<(String, String), VmError> {
        let docker = self.docker()?;
        let run = self.session().await?.id().to_owned();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{run}-{n}");
        let options = CommitContainerOptionsBuilder::new()
            .container(container)
            .repo(&self.snapshot_repo())
            .tag(&tag)
            .pause(false)
            .build();
        let mut labels = self.labels(&run, "");
        labels.insert(LABEL_BASE.to_owned(), base.to_owned());
        let config = ContainerConfig {
            labels: Some(labels),
            ..Default::default()
        };
        let committed = docker
            .commit_container(options, config)
            .await
            .map_err(docker_error("commit a snapshot"))?;
        Ok((committed.id, format!("{}:{tag}", self.snapshot_repo())))
    }

    /// Removes a container, then the tags of the images its chain was
    /// moved through ([`vm::Chain`]): an image goes with its tag once
    /// no container runs from it and no image lies on it.
    async fn remove_chain(&self, container: &str, intermediates: &[String]) {
        if !container.is_empty() {
            self.remove_container(container).await;
        }
        for tag in intermediates {
            self.remove_tag(tag).await;
        }
    }

    /// Removes the containers and snapshot images of this cache's runs
    /// whose process is gone (killed before it could clean up).
    async fn remove_dead_runs(&self) {
        let Ok(docker) = self.docker() else { return };
        let filters = HashMap::from([("label", vec![format!("{LABEL_CACHE}={}", self.cache_label())])]);
        let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let cache = self.config.cache_dir.clone();
        if let Ok(containers) = docker.list_containers(Some(options)).await {
            for container in containers {
                let run = container
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_RUN))
                    .cloned()
                    .unwrap_or_default();
                if !is_alive(&cache, &run) {
                    if let Some(id) = &container.id {
                        self.remove_container(id).await;
                    }
                }
            }
        }
        let repo = self.snapshot_repo();
        for tag in self.tags_of(&repo).await {
            let run = tag
                .rsplit_once(':')
                .and_then(|(_, t)| t.split_once('-'))
                .map(|(run, _)| run);
            if run.is_some_and(|run| !is_alive(&cache, run)) {
                self.remove_tag(&tag).await;
            }
        }
    }

    /// Every `repo:tag` reference in `repo`, with the image's creation time.
    async fn tags_of(&self, repo: &str) -> Vec<String> {
        self.tags_with_age(repo)
            .await
            .into_iter()
            .map(|(tag, _, _)| tag)
            .collect()
    }

    /// `(repo:tag, image id, created)` for every tag in `repo`.
    async fn tags_with_age(&self, repo: &str) -> Vec<(String, String, i64)> {
        let Ok(docker) = self.docker() else { return Vec::new() };
        let filters = HashMap::from([("reference", vec![format!("{repo}:*")])]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        let Ok(images) = docker.list_images(Some(options)).await else {
            return Vec::new();
        };
        images
            .into_iter()
            .flat_map(|image| {
                let (id, created) = (image.id.clone(), image.created);
                image
                    .repo_tags
                    .into_iter()
                    .filter(|t| t.starts_with(&format!("{repo}:")))
                    .map(move |t| (t, id.clone(), created))
            })
            .collect()
    }

    /// Pulls `name` with the credentials the Docker configuration has for
    /// its registry.
    async fn pull(&self, docker: &Docker, name: &str) -> Result<(), DockerPullError> {
        let client_config = self.config.client_config.as_deref();
        let credentials = crate::credentials::credentials(client_config, name)?.map(|found| {
            let server = crate::credentials::server_key(crate::credentials::registry_of(name)).to_owned();
            match found {
                Credentials::Basic { username, password } => DockerCredentials {
                    username: Some(username),
                    password: Some(password),
                    serveraddress: Some(server),
                    ..Default::default()
                },
                Credentials::IdentityToken(token) => DockerCredentials {
                    identitytoken: Some(token),
                    serveraddress: Some(server),
                    ..Default::default()
                },
            }
        });
        let (image, tag) = split_tag(name);
        let options = CreateImageOptionsBuilder::new().from_image(image).tag(tag).build();
        if let Some(notice) = self.pull_notice.get() {
            notice(name);
        }
        let mut progress = docker.create_image(Some(options), None, credentials);
        while let Some(item) = progress.next().await {
            item?;
        }
        Ok(())
    }
}

/// `repo:tag` split at the tag (`latest` when there is none); a digest
/// reference stays whole.
fn split_tag(name: &str) -> (&str, &str) {
    if name.contains('@') {
        return (name, "");
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

#[async_trait::async_trait]
impl VmBackend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn network(&self) -> Network {
        self.inner.network
    }

    async fn check(&self) -> Result<(), BackendUnavailable> {
        self.inner.connect().await?;
        self.inner.session().await.map_err(|err| BackendUnavailable::Docker {
            detail: format!("cannot start a session: {err}"),
        })?;
        Ok(())
    }

    async fn resolve_image(&self, name: &str) -> Result<ImageRef, BackendUnavailable> {
        if name == HOST_IMAGE {
            return Err(BackendUnavailable::DockerHost);
        }
        let docker = self.inner.connect().await?;
        let inspect = match docker.inspect_image(name).await {
            Ok(inspect) => inspect,
            Err(err) if is_not_found(&err) => {
                self.inner
                    .pull(docker, name)
                    .await
                    .map_err(|source| BackendUnavailable::DockerImage {
                        name: name.to_owned(),
                        source,
                    })?;
                docker
                    .inspect_image(name)
                    .await
                    .map_err(|err| BackendUnavailable::DockerImage {
                        name: name.to_owned(),
                        source: err.into(),
                    })?
            }
            Err(err) => {
                return Err(BackendUnavailable::Docker {
                    detail: err.to_string(),
                })
            }
        };
        let id = inspect.id.ok_or_else(|| BackendUnavailable::DockerImage {
            name: name.to_owned(),
            source: DockerPullError::NoId,
        })?;
        Ok(ImageRef {
            name: name.to_owned(),
            id,
        })
    }

    async fn source_layer(&self, name: &str, image: &ImageRef, make: Option<SyncPlan>) -> Result<bool, VmError> {
        self.inner.source_layer(name, image, make).await
    }

    /// The image's config and its layers above the base image, as an image
    /// archive `docker load` takes (see [`parts`]).
    async fn export_part(&self, part: &str, dest: &std::path::Path) -> Result<bool, VmError> {
        self.inner.export_part(part, dest).await.map(|()| true)
    }

    /// Loads the file [`VmBackend::export_part`] wrote, once it is checked
    /// whole and the base image is found here, and tags the image (the
    /// same id) as this cache's.
    async fn import_part(&self, part: &str, blob: &std::path::Path) -> Result<u64, VmError> {
        self.inner.import_part(part, blob).await
    }

    async fn remove_source_layers(&self, _known: &HashSet<String>) -> Result<(), VmError> {
        self.inner.collect_sources(std::time::Duration::ZERO, true).await;
        Ok(())
    }

    /// A container handed over is taken as it is; any other is created at
    /// the step's exec, under its limits (see [`limits`]).
    async fn boot(&self, request: BootRequest) -> Result<Box<dyn Vm>, VmError> {
        let inner = self.inner.clone();
        let vm = match &request.from {
            BootFrom::Image(image) => {
                // On a source layer, the container starts from its image,
                // and a snapshot's size is what the step added to it.
                let origin = match &request.source_layer {
                    Some(name) => inner
                        .hold_sources()
                        .await
                        .ok()
                        .and_then(|()| inner.source_image(name, image))
                        .ok_or_else(|| {
                            unexpected("boot on a source image", "the source layer was not made or found first")
                        })?,
                    None => image.id.clone(),
                };
                DockerVm::pending(inner, request.name, origin, image.id.clone())
            }
            BootFrom::Snapshot(id) => match inner.snapshot(id)? {
                // The only child takes the container over.
                Snap::Container {
                    id: container,
                    limits,
                    chain,
                } => {
                    inner.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                    DockerVm::handed_over(inner, request.name, container, chain, limits)
                }
                Snap::Image { id: image, base, .. } => DockerVm::pending(inner, request.name, image, base),
            },
        };
        Ok(Box::new(vm))
    }

    async fn release(&self, snapshot: &SnapshotId) -> Result<(), VmError> {
        let snap = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(snapshot);
        match snap {
            Some(Snap::Container { id, chain, .. }) => self.inner.remove_chain(&id, &chain.intermediates).await,
            Some(Snap::Image { tag: Some(tag), .. }) => self.inner.remove_tag(&tag).await,
            Some(Snap::Image { tag: None, .. }) | None => {}
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), VmError> {
        let snaps: Vec<Snap> = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for snap in snaps {
            match snap {
                Snap::Container { id, chain, .. } => self.inner.remove_chain(&id, &chain.intermediates).await,
                Snap::Image { tag: Some(tag), .. } => self.inner.remove_tag(&tag).await,
                Snap::Image { tag: None, .. } => {}
            }
        }
        // What a run killed moments before this one started may have
        // finished making meanwhile (a commit the daemon completed).
        self.inner.remove_dead_runs().await;
        // Anything of this run still there (a VM dropped mid-step).
        if let (Ok(docker), Some(session)) = (self.inner.docker(), self.inner.session.get()) {
            let filters = HashMap::from([("label", vec![format!("{LABEL_RUN}={}", session.id())])]);
            let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
            if let Ok(containers) = docker.list_containers(Some(options)).await {
                for id in containers.into_iter().filter_map(|c| c.id) {
                    self.inner.remove_container(&id).await;
                }
            }
        }
        Ok(())
    }

    async fn persist(&self, snapshot: &SnapshotId) -> Result<Persisted, VmError> {
        let (id, base, size) = match self.inner.snapshot(snapshot)? {
            Snap::Image { id, base, size, .. } => (id, base, size),
            Snap::Container { .. } => {
                return Err(unexpected(
                    "store a snapshot",
                    "a handed-over container cannot be stored",
                ))
            }
        };
        self.inner.tag_entry(&id).await?;
        Ok(Persisted {
            stored: StoredSnapshot {
                parts: vec![id.clone()],
                base,
            },
            new_parts: vec![(id, size)],
        })
    }

    async fn restore(&self, stored: &StoredSnapshot) -> Result<SnapshotId, VmError> {
        let docker = self.inner.docker()?;
        let Some(id) = stored.parts.first() else {
            return Err(VmError::StoredMissing("the entry names no image".to_owned()));
        };
        let tag = self.inner.cache_tag(id);
        match docker.inspect_image(&tag).await {
            Ok(inspect) if inspect.id.as_deref() == Some(id.as_str()) => {}
            Ok(_) => return Err(VmError::StoredMissing(format!("`{tag}` names another image"))),
            Err(err) if is_not_found(&err) => return Err(VmError::StoredMissing(format!("`{tag}` is gone"))),
            Err(err) => return Err(docker_error("inspect a cache entry")(err)),
        }
        Ok(self.inner.add_snapshot(Snap::Image {
            id: id.clone(),
            tag: None,
            base: stored.base.clone(),
            size: 0,
        }))
    }

    async fn delete_parts(&self, parts: &[String]) -> Result<(), VmError> {
        for part in parts {
            self.inner.remove_tag(&self.inner.cache_tag(part)).await;
        }
        Ok(())
    }

    /// What `du` counted in the volume's mount right after the last step
    /// that mounted it (see [`volumes`]); `None` where that step was
    /// killed or the image has no `du`.
    async fn volume_size(&self, id: &str) -> Option<u64> {
        self.inner.take_volume_size(id)
    }

    async fn remove_volume(&self, id: &str) -> Result<(), VmError> {
        let docker = self.inner.docker()?;
        match docker
            .remove_volume(&volume_name(id), None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) | Ok(()) => Ok(()),
            Err(err) => Err(docker_error("remove a volume")(err)),
        }
    }

    async fn collect_orphans(&self, known: &HashSet<String>) -> Result<(), VmError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let grace = self.inner.config.orphan_grace.as_secs() as i64;
        for (tag, id, created) in self.inner.tags_with_age(&self.inner.cache_repo()).await {
            // An image is created when committed, before it is registered;
            // an imported one keeps the time it was committed elsewhere,
            // and its tag says when it came.
            if known.contains(&id) || now - created <= grace {
                continue;
            }
            if self.inner.tagged_at(&tag).await.is_some_and(|at| now - at <= grace) {
                continue;
            }
            self.inner.remove_tag(&tag).await;
        }
        self.inner.collect_sources(self.inner.config.orphan_grace, false).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags_are_split_off_references() {
        assert_eq!(split_tag("debian:bookworm"), ("debian", "bookworm"));
        assert_eq!(
            split_tag("127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000/team/app", "latest")
        );
        assert_eq!(split_tag("127.0.0.1:5000/team/app:1"), ("127.0.0.1:5000/team/app", "1"));
        assert_eq!(split_tag("ubuntu"), ("ubuntu", "latest"));
    }
}
