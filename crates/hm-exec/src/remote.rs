//! The remote cache in a build (issue 16; DESIGN.md §5): after a local
//! miss an entry is looked up in an OCI registry and taken in (the parts
//! this cache lacks downloaded, checked and imported, then the entry, and
//! its ancestors the local registry lacks, registered as if stored here);
//! a stored entry is pushed in the background, and the build waits for its
//! pushes at its end. The registry failing never fails a build: the first
//! failure is said once, in an event, and the build goes on without it.
//! An entry that is damaged or not hm's is refused and its step runs.
//!
//! A part is packed once per machine: the digest of its layer is recorded
//! in `<cache>/remote/layers/`, so a later push of an entry built on it
//! only asks the registry whether it still has the blob.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use hm_vm::oci::remote::{Layer, OciDescriptor, RemoteEntry, RemoteError};
pub use hm_vm::oci::remote::{RemoteCache, RemoteConfig};
use hm_vm::tempdir::TempDir;
use hm_vm::{Bounds, CacheEntry, NewEntry, Registry, VmBackend};
use tokio::sync::mpsc;

use crate::events::Event;
use crate::workspace::Manifest;

/// The directory of the remote cache's files in the cache directory.
pub const REMOTE_DIR: &str = "remote";

/// Work done once per build per name (an entry, a part, a digest), by
/// whichever task wants it first; the others wait for it.
type Cells<T> = Mutex<HashMap<String, Arc<tokio::sync::OnceCell<T>>>>;

/// How a build uses a remote cache.
#[derive(Clone)]
pub struct RemoteSettings {
    pub cache: Arc<RemoteCache>,
    /// Look entries up there after a local miss.
    pub read: bool,
    /// Push the entries this build stores.
    pub write: bool,
}

/// The remote cache of one build.
pub(crate) struct Remote {
    settings: RemoteSettings,
    vm: Arc<dyn VmBackend>,
    registry: Arc<Registry>,
    bounds: Bounds,
    events: Option<mpsc::Sender<Event>>,
    /// The registry failed: it is not asked again in this build.
    down: AtomicBool,
    /// The first failure of the registry, for a command that reports it
    /// itself.
    first_failure: Mutex<Option<String>>,
    /// Entries refused, with why, for a command that reports them.
    refusals: Mutex<Vec<String>>,
    pushes: Mutex<tokio::task::JoinSet<()>>,
    /// Each part's layer, pushed (or found there) once per build.
    layers: Cells<Layer>,
    /// Each part taken in, with its size: once per build, however many
    /// steps want it at once.
    imports: Cells<u64>,
    /// Entries fetched (or being fetched) from the registry, by key.
    entries: Cells<Option<RemoteEntry>>,
    /// Source manifests pushed (or found there), by their local digest.
    pushed_sources: Cells<Layer>,
    /// Source manifests read and checked, by the digest entries know them
    /// by: a build's entries mostly share one.
    sources: Cells<Arc<Vec<u8>>>,
    /// Parts' layers downloaded (or being downloaded), by part.
    blobs: Cells<PathBuf>,
    /// Lookups started before the steps want them ([`Remote::prefetch`]).
    prefetching: Mutex<tokio::task::JoinSet<()>>,
    /// Where layers are packed and downloaded, made when first needed.
    scratch: tokio::sync::OnceCell<TempDir>,
}

/// Why an entry could not be taken in or pushed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Vm(#[from] hm_vm::VmError),
    #[error(transparent)]
    Registry(#[from] hm_vm::RegistryError),
    #[error("the {0} backend cannot push its parts")]
    Unsupported(String),
    #[error("its source manifest does not match its digest")]
    Manifest,
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cache task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl Failure {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Failure {
        let path = path.to_owned();
        move |source| Failure::Io { op, path, source }
    }

    /// Whether the entry is at fault, not the registry or this machine.
    fn is_refused(&self) -> bool {
        match self {
            Failure::Remote(err) => err.is_refused(),
            Failure::Manifest => true,
            _ => false,
        }
    }
}

impl Remote {
    pub(crate) fn new(
        settings: RemoteSettings,
        vm: Arc<dyn VmBackend>,
        registry: Arc<Registry>,
        bounds: Bounds,
        events: Option<mpsc::Sender<Event>>,
    ) -> Self {
        Remote {
            settings,
            vm,
            registry,
            bounds,
            events,
            down: AtomicBool::new(false),
            first_failure: Mutex::default(),
            refusals: Mutex::default(),
            pushes: Mutex::default(),
            layers: Mutex::default(),
            imports: Mutex::default(),
            entries: Mutex::default(),
            blobs: Mutex::default(),
            sources: Mutex::default(),
            pushed_sources: Mutex::default(),
            prefetching: Mutex::default(),
            scratch: tokio::sync::OnceCell::new(),
        }
    }

    fn usable(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }

    /// Says what failed: a refused entry each time, the registry once
    /// (it is not used again in this build).
    async fn failed(&self, op: &str, key: &str, failure: &Failure) {
        let refused = failure.is_refused();
        if !refused && self.down.swap(true, Ordering::SeqCst) {
            return;
        }
        let message = crate::runner::error_chain(failure);
        match refused {
            true => self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{key}: {message}")),
            false => {
                self.first_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| format!("{key}: {message}"));
            }
        }
        if let Some(events) = &self.events {
            let event = Event::CacheRemoteError {
                op: op.to_owned(),
                key: key.to_owned(),
                message,
                refused,
            };
            let _ = events.send(event).await;
        }
    }

    /// Runs a call on the local registry off the async threads, given
    /// this backend's name.
    async fn on_registry<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Registry, &str) -> Result<T, hm_vm::RegistryError> + Send + 'static,
    ) -> Result<Result<T, hm_vm::RegistryError>, tokio::task::JoinError> {
        let backend = self.vm.name().to_owned();
        crate::store::on_registry(&self.registry, move |r| call(r, &backend)).await
    }

    /// The local registry's entry `key`, if it has one (not held).
    async fn local(&self, key: &str) -> Result<Option<CacheEntry>, Failure> {
        let probe = key.to_owned();
        let mut found = self.on_registry(move |r, _| r.lookup_many(&[(probe, false)])).await??;
        Ok(found.remove(key).map(|f| f.entry))
    }

    async fn is_local(&self, key: &str) -> Result<bool, Failure> {
        Ok(self.local(key).await?.is_some())
    }

    async fn scratch(&self) -> Result<&Path, Failure> {
        let dir = self.registry.cache_dir().join(REMOTE_DIR);
        let made = self
            .scratch
            .get_or_try_init(|| async {
                std::fs::create_dir_all(&dir).map_err(Failure::io("create", &dir))?;
                TempDir::create(&dir).map_err(Failure::io("create a directory in", &dir))
            })
            .await?;
        Ok(made.path())
    }

    /// Takes the entry `key` in from the registry after a local miss: its
    /// ancestors this cache lacks first, each registered, its parts held by
    /// this build. `false`: there is none to use (none there, another
    /// backend's, a chain with a missing link, or refused: said in an
    /// event).
    pub(crate) async fn take(&self, key: &str) -> bool {
        !self.take_keys(key).await.is_empty()
    }

    /// [`Remote::take`], saying which entries were registered: `key`'s and
    /// its ancestors', bottom first; none when there is none to use.
    async fn take_keys(&self, key: &str) -> Vec<String> {
        if !self.settings.read || !self.usable() {
            return Vec::new();
        }
        let mut imported = Vec::new();
        match self.take_chain(key, &mut imported).await {
            Ok(taken) => taken,
            Err(failure) => {
                // Parts that no registered entry names are deleted now;
                // any the registry knew stay.
                if let Ok(Ok(known)) = self.on_registry(|r, backend| r.known_parts(backend)).await {
                    imported.retain(|p| !known.contains(p));
                }
                if !imported.is_empty() {
                    let _ = self.vm.delete_parts(&imported).await;
                    // Another entry that names them imports them again.
                    let mut imports = self.imports.lock().unwrap_or_else(|p| p.into_inner());
                    imported.iter().for_each(|p| drop(imports.remove(p)));
                }
                self.failed("pull", key, &failure).await;
                Vec::new()
            }
        }
    }

    async fn take_chain(&self, key: &str, imported: &mut Vec<String>) -> Result<Vec<String>, Failure> {
        // The entry and the ancestors this cache lacks, top first.
        let mut chain: Vec<RemoteEntry> = Vec::new();
        let mut next = Some(key.to_owned());
        while let Some(wanted) = next.take() {
            if wanted != key && self.is_local(&wanted).await? {
                break;
            }
            let Some(entry) = self.entry(&wanted).await? else {
                return Ok(Vec::new());
            };
            if entry.config.backend != self.vm.name() {
                return Ok(Vec::new());
            }
            next = entry.config.parent.clone();
            chain.push(entry);
        }
        let mut known: HashSet<String> = self.on_registry(|r, backend| r.known_parts(backend)).await??;
        for entry in chain.iter().rev() {
            let mut part_sizes = Vec::new();
            for part in entry.config.parts.iter().rev() {
                if known.contains(part) {
                    continue;
                }
                let (size, new) = self.import(part, &entry.layers[part]).await?;
                if new {
                    imported.push(part.clone());
                }
                part_sizes.push((part.clone(), size));
                known.insert(part.clone());
            }
            let source = self.source(entry).await?;
            self.register(&entry.config, part_sizes, source.to_vec()).await?;
        }
        Ok(chain.iter().rev().map(|e| e.config.key.clone()).collect())
    }

    /// The entry `key` in the registry, fetched once per build.
    async fn entry(&self, key: &str) -> Result<Option<RemoteEntry>, Failure> {
        let cell = once(&self.entries, key);
        let entry = cell
            .get_or_try_init(|| async { Ok::<_, Failure>(self.settings.cache.fetch(key).await?) })
            .await?;
        Ok(entry.clone())
    }

    /// The layer of `part` downloaded and checked, once per build.
    async fn blob(&self, part: &str, layer: &OciDescriptor) -> Result<PathBuf, Failure> {
        let cell = once(&self.blobs, part);
        let blob = cell
            .get_or_try_init(|| async {
                let blob = self.scratch().await?.join(format!("pull-{part}"));
                self.settings.cache.download(layer, &blob).await?;
                Ok::<_, Failure>(blob)
            })
            .await?;
        Ok(blob.clone())
    }

    /// Starts looking `keys` (the build's cached steps that this cache
    /// lacks) up, and downloading the layers of what is found, a few at a
    /// time, before the steps want them: a chain of remote hits then waits
    /// for the registry once, not once per step.
    pub(crate) fn prefetch(self: &Arc<Self>, keys: Vec<String>) {
        if !self.settings.read || keys.is_empty() {
            return;
        }
        const AT_ONCE: usize = 8;
        let remote = self.clone();
        let mut prefetching = self.prefetching.lock().unwrap_or_else(|p| p.into_inner());
        prefetching.spawn(async move {
            let known = remote.on_registry(|r, backend| r.known_parts(backend)).await;
            let known = known.ok().and_then(Result::ok).unwrap_or_default();
            let lookups = futures_util::stream::iter(keys).map(|key| {
                let (remote, known) = (&remote, &known);
                async move {
                    if !remote.usable() {
                        return;
                    }
                    match remote.entry(&key).await {
                        Ok(Some(entry)) if entry.config.backend == remote.vm.name() => {
                            if remote.source(&entry).await.is_err() {
                                return;
                            }
                            for (part, layer) in entry.layers.iter().filter(|(p, _)| !known.contains(*p)) {
                                // A failure here is met again, and said, when the step takes the entry.
                                if remote.blob(part, layer).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(failure) if failure.is_refused() => {}
                        Err(failure) => remote.failed("pull", &key, &failure).await,
                    }
                }
            });
            lookups.buffer_unordered(AT_ONCE).collect::<Vec<()>>().await;
        });
    }

    /// Downloads and imports `part` from its layer, once per build; its
    /// size, and whether this call imported it.
    async fn import(&self, part: &str, layer: &OciDescriptor) -> Result<(u64, bool), Failure> {
        let cell = once(&self.imports, part);
        let mut new = false;
        let size = cell
            .get_or_try_init(|| async {
                let blob = self.blob(part, layer).await?;
                let size = self.vm.import_part(part, &blob).await;
                let _ = std::fs::remove_file(&blob);
                // Downloaded again if the part is imported again (after a
                // refused entry deleted it).
                self.blobs.lock().unwrap_or_else(|p| p.into_inner()).remove(part);
                let size = size?;
                self.remember(part, &Layer::of(layer));
                new = true;
                Ok::<_, Failure>(size)
            })
            .await?;
        Ok((*size, new))
    }

    /// The source manifest of `entry`, once per build per digest: this
    /// cache's copy when it has one, else the registry's, checked against
    /// the digest it is known by.
    async fn source(&self, entry: &RemoteEntry) -> Result<Arc<Vec<u8>>, Failure> {
        let digest = entry.config.manifest.clone().ok_or(Failure::Manifest)?;
        let cell = once(&self.sources, &digest);
        let bytes = cell
            .get_or_try_init(|| async {
                let wanted = digest.clone();
                if let Ok(Ok(Some(bytes))) = self.on_registry(move |r, _| r.blob(&wanted)).await {
                    return Ok(Arc::new(bytes));
                }
                let bytes = self.settings.cache.source(entry).await?;
                let checked = tokio::task::spawn_blocking(move || {
                    let read = Manifest::from_bytes(&bytes).map(|m| m.digest().to_hex().to_string());
                    (read == Some(digest)).then_some(bytes)
                });
                checked.await?.map(Arc::new).ok_or(Failure::Manifest)
            })
            .await?;
        Ok(bytes.clone())
    }

    /// Registers an entry taken in, its source manifest checked.
    async fn register(
        &self,
        config: &RemoteConfig,
        part_sizes: Vec<(String, u64)>,
        source: Vec<u8>,
    ) -> Result<(), Failure> {
        let top = config.parts.first();
        let size = part_sizes
            .iter()
            .find(|(p, _)| Some(p) == top)
            .map(|(_, s)| *s)
            .unwrap_or(0);
        let at = crate::cache::now();
        let new = NewEntry {
            entry: CacheEntry {
                key: config.key.clone(),
                parent: config.parent.clone(),
                backend: config.backend.clone(),
                parts: config.parts.clone(),
                base: config.base.clone(),
                manifest: config.manifest.clone(),
                size,
                step: config.step.clone(),
                pipeline: config.pipeline.clone(),
                project: config.project.clone(),
                created: at,
                last_used: at,
                inputs: config.inputs.clone(),
            },
            part_sizes,
            manifest_bytes: Some(source),
        };
        let bounds = self.bounds;
        let stored = self
            .on_registry(move |r, _| r.store(&new, true, Some(bounds)))
            .await??;
        crate::store::delete_doomed(self.vm.as_ref(), &stored.doomed).await;
        Ok(())
    }

    /// Pushes a stored entry in the background.
    pub(crate) fn push(self: &Arc<Self>, entry: CacheEntry, source: Vec<u8>) {
        if !self.settings.write || !self.usable() {
            return;
        }
        let remote = self.clone();
        let mut pushes = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
        pushes.spawn(async move {
            if let Err(failure) = remote.push_now(&entry, &source).await {
                remote.failed("push", &entry.key, &failure).await;
            }
        });
    }

    async fn push_now(&self, entry: &CacheEntry, source: &[u8]) -> Result<(), Failure> {
        // At once: each part is pushed once per build, and an entry's own
        // part need not wait for its ancestors'.
        let layers = futures_util::future::try_join_all(entry.parts.iter().map(|part| self.layer(part))).await?;
        if !self.usable() {
            return Ok(());
        }
        let config = RemoteConfig {
            key: entry.key.clone(),
            parent: entry.parent.clone(),
            backend: entry.backend.clone(),
            base: entry.base.clone(),
            step: entry.step.clone(),
            pipeline: entry.pipeline.clone(),
            project: entry.project.clone(),
            inputs: entry.inputs.clone(),
            parts: entry.parts.clone(),
            manifest: entry.manifest.clone(),
        };
        let cell = once(&self.pushed_sources, entry.manifest.as_deref().unwrap_or_default());
        let pushing = || async { self.settings.cache.push_source(source).await };
        let source = cell.get_or_try_init(pushing).await?;
        Ok(self.settings.cache.push_entry(&config, &layers, source).await?)
    }

    /// The layer of `part` in the registry: pushed once per build, packed
    /// once per machine (while the registry keeps the blob).
    async fn layer(&self, part: &str) -> Result<Layer, Failure> {
        let cell = once(&self.layers, part);
        let layer = cell
            .get_or_try_init(|| async {
                if let Some(layer) = self.recalled(part) {
                    if self.settings.cache.has_blob(&layer.digest).await? {
                        return Ok(layer);
                    }
                }
                let packed = self.scratch().await?.join(format!("push-{part}"));
                let exported = self.vm.export_part(part, &packed).await;
                if !exported? {
                    return Err(Failure::Unsupported(self.vm.name().to_owned()));
                }
                let pushed = self.settings.cache.push_layer(&packed).await;
                let _ = std::fs::remove_file(&packed);
                let layer = pushed?;
                self.remember(part, &layer);
                Ok::<_, Failure>(layer)
            })
            .await?;
        Ok(layer.clone())
    }

    fn record(&self, part: &str) -> PathBuf {
        let dir = self.registry.cache_dir().join(REMOTE_DIR).join("layers");
        dir.join(self.vm.name()).join(part)
    }

    /// The layer recorded for `part` on this machine.
    fn recalled(&self, part: &str) -> Option<Layer> {
        let bytes = std::fs::read(self.record(part)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records the layer of `part` (a record that cannot be written only
    /// costs a packing later).
    fn remember(&self, part: &str, layer: &Layer) {
        let record = self.record(part);
        let Some(dir) = record.parent() else { return };
        let _ = std::fs::create_dir_all(dir);
        let temp = dir.join(format!(".{part}.{}", std::process::id()));
        let bytes = serde_json::to_vec(layer).unwrap_or_default();
        if std::fs::write(&temp, bytes)
            .and_then(|()| std::fs::rename(&temp, &record))
            .is_err()
        {
            let _ = std::fs::remove_file(&temp);
        }
    }

    /// Waits for the build's pushes (lookups started early are given up).
    pub(crate) async fn finish(&self) {
        self.prefetching.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
        let mut pushes = std::mem::take(&mut *self.pushes.lock().unwrap_or_else(|p| p.into_inner()));
        while pushes.join_next().await.is_some() {}
    }
}

/// The cell of `name` in `cells`, made empty when there is none.
fn once<T>(cells: &Mutex<HashMap<String, Arc<tokio::sync::OnceCell<T>>>>, name: &str) -> Arc<tokio::sync::OnceCell<T>> {
    let mut cells = cells.lock().unwrap_or_else(|p| p.into_inner());
    cells.entry(name.to_owned()).or_default().clone()
}

/// What `hm cache push` or `hm cache pull` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Entries pushed, or taken in.
    pub entries: usize,
    /// Entries the other side had already.
    pub there: usize,
    /// Entries refused (damaged, or not hm's), with why: each was left out,
    /// and the others moved.
    pub refused: Vec<String>,
    /// The first failure of the registry (or directory), if any: the
    /// entries after it were not moved.
    pub failure: Option<String>,
}

impl Remote {
    fn first_failure(&self) -> Option<String> {
        self.first_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `hm cache push`: pushes `entries` of the local registry, a few at a
/// time (each held meanwhile), skipping those the repository has; after a
/// failure of the repository, no more.
pub async fn push_entries(
    settings: RemoteSettings,
    vm: Arc<dyn VmBackend>,
    registry: Arc<Registry>,
    bounds: Bounds,
    entries: Vec<CacheEntry>,
) -> Moved {
    /// Entries pushed at once: packing a part is mostly waiting for the
    /// backend's helper.
    const AT_ONCE: usize = 4;
    let cache = settings.cache.clone();
    let remote = Remote::new(settings, vm, registry.clone(), bounds, None);
    let pushes = futures_util::stream::iter(entries).map(|entry| {
        let (remote, cache) = (&remote, &cache);
        async move {
            if !remote.usable() {
                return None;
            }
            let key = entry.key.clone();
            let found = remote.on_registry(move |r, _| r.lookup(&key)).await;
            let found = found.ok().and_then(Result::ok).flatten()?;
            match cache.fetch(&entry.key).await {
                Ok(Some(_)) => return Some(false),
                Ok(None) => {}
                // A damaged or foreign entry under the key is replaced.
                Err(err) if err.is_refused() => {}
                Err(err) => {
                    remote.failed("push", &entry.key, &Failure::from(err)).await;
                    return None;
                }
            }
            match remote.push_now(&found.entry, &found.manifest.unwrap_or_default()).await {
                Ok(()) => Some(true),
                Err(failure) => {
                    remote.failed("push", &entry.key, &failure).await;
                    None
                }
            }
        }
    });
    let pushed: Vec<Option<bool>> = pushes.buffer_unordered(AT_ONCE).collect().await;
    let mut moved = Moved {
        entries: pushed.iter().filter(|p| **p == Some(true)).count(),
        there: pushed.iter().filter(|p| **p == Some(false)).count(),
        ..Moved::default()
    };
    finish_command(&remote, &registry, &mut moved).await;
    moved
}

/// `hm cache pull`: takes in every entry of the repository that `wanted`
/// accepts by its project scope and pipeline (and this cache lacks), with
/// what it builds on.
pub async fn pull_entries(
    settings: RemoteSettings,
    vm: Arc<dyn VmBackend>,
    registry: Arc<Registry>,
    bounds: Bounds,
    wanted: impl Fn(&str, &str) -> bool,
) -> Moved {
    let cache = settings.cache.clone();
    let remote = Remote::new(settings, vm, registry.clone(), bounds, None);
    let mut moved = Moved::default();
    let keys = match cache.keys().await {
        Ok(keys) => keys,
        Err(err) => {
            moved.failure = Some(crate::runner::error_chain(&err));
            return moved;
        }
    };
    let mut taken_in = HashSet::new();
    for key in keys {
        // What this cache has is counted by its own record, not fetched;
        // an ancestor this command took in was counted then.
        if let Ok(Some(here)) = remote.local(&key).await {
            let counted = taken_in.contains(&key);
            moved.there += usize::from(!counted && wanted(&here.project, &here.pipeline));
            continue;
        }
        let entry = match cache.fetch(&key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(err) if err.is_refused() => {
                remote.failed("pull", &key, &Failure::from(err)).await;
                continue;
            }
            Err(err) => {
                remote.failed("pull", &key, &Failure::from(err)).await;
                break;
            }
        };
        let config = &entry.config;
        if !wanted(&config.project, &config.pipeline) || config.backend != remote.vm.name() {
            continue;
        }
        let taken = remote.take_keys(&key).await;
        moved.entries += taken.len();
        if taken.is_empty() && !remote.usable() {
            break;
        }
        taken_in.extend(taken);
    }
    finish_command(&remote, &registry, &mut moved).await;
    moved
}

/// Lets go of what a command held, deleting what nothing needs any more.
async fn finish_command(remote: &Remote, registry: &Arc<Registry>, moved: &mut Moved) {
    if let Ok(Ok(doomed)) = crate::store::on_registry(registry, |r| r.release()).await {
        crate::store::delete_doomed(remote.vm.as_ref(), &doomed).await;
    }
    moved.failure = remote.first_failure();
    moved.refused = std::mem::take(&mut *remote.refusals.lock().unwrap_or_else(|p| p.into_inner()));
}
