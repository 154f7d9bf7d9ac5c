//! [`SnapshotCache`]: the snapshot cache as a build and `hm cache` use it.
//! Looking entries up (and holding them), restoring their snapshots,
//! storing new ones, dropping those whose storage is gone, and tidying up
//! when a build ends: the registry's bookkeeping and the backend's storage
//! kept in step, in one place.

use std::collections::HashMap;
use std::sync::Arc;

use hm_vm::{
    CacheEntry, Doomed, Found, NewEntry, Registry, RegistryError, SnapshotId, StoredSnapshot, VmBackend, VmError,
};

use crate::cache::{CacheSettings, KeyInputs};
use crate::events::Event;
use crate::remote::Remote;
use crate::workspace::Manifest;

/// The cache of one build, on one backend.
pub struct SnapshotCache {
    settings: CacheSettings,
    vm: Arc<dyn VmBackend>,
    /// Source manifests read for restored snapshots, by digest: a build's
    /// hits mostly share one, of tens of thousands of files.
    manifests: std::sync::Mutex<HashMap<String, Arc<Manifest>>>,
    /// The remote cache, when one is configured.
    remote: Option<Arc<Remote>>,
}

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the cache task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl CacheError {
    /// Whether the cache directory's filesystem is full.
    pub fn is_full(&self) -> bool {
        match self {
            CacheError::Vm(VmError::DiskFull { .. }) => true,
            CacheError::Registry(err) => err.is_full(),
            _ => false,
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// An entry, `tag` its top part; its snapshot, with the source it saw,
    /// when it was restored for children to boot from.
    Hit {
        tag: String,
        snapshot: Option<(SnapshotId, Arc<Manifest>)>,
        /// Taken in from the remote cache.
        remote: bool,
    },
    /// No usable entry; `reason` when one was there but had to go.
    Miss { reason: Option<String> },
}

/// A cached step's key and what it was made of.
pub(crate) struct Keyed {
    pub key: String,
    pub inputs: KeyInputs,
}

/// Who a new entry is.
pub(crate) struct EntryName<'a> {
    pub step: &'a str,
    pub pipeline: &'a str,
}

impl SnapshotCache {
    /// The cache of a build whose events (the remote cache's warnings) go
    /// to `events`.
    pub fn new(
        settings: CacheSettings,
        vm: Arc<dyn VmBackend>,
        events: Option<tokio::sync::mpsc::Sender<Event>>,
    ) -> Self {
        let remote = settings.remote.clone().map(|remote| {
            let (registry, bounds) = (settings.registry.clone(), settings.bounds);
            Arc::new(Remote::new(remote, vm.clone(), registry, bounds, events))
        });
        SnapshotCache {
            settings,
            vm,
            manifests: std::sync::Mutex::default(),
            remote,
        }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// Runs a registry call off the async threads.
    async fn registry<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, CacheError> {
        Ok(on_registry(&self.settings.registry, call).await??)
    }

    /// Looks every key up in one transaction and holds what it finds, so
    /// that another process may not evict an entry this build will use.
    pub(crate) async fn lookup_many(&self, keys: Vec<String>) -> Result<HashMap<String, Found>, CacheError> {
        let wanted: Vec<(String, bool)> = keys.into_iter().map(|k| (k, true)).collect();
        self.registry(move |r| r.lookup_many(&wanted)).await
    }

    /// Looks `key` up (see [`SnapshotCache::restore`]).
    pub(crate) async fn lookup(&self, key: &str, keep: bool) -> Result<Lookup, CacheError> {
        let key = key.to_owned();
        let found = self.registry(move |r| r.lookup(&key)).await?;
        self.restore(found, keep).await
    }

    /// A found entry's snapshot is restored (when `keep`: children will boot
    /// from it) with the source it saw. An entry whose storage is gone or
    /// damaged is dropped, and the step runs.
    pub(crate) async fn restore(&self, found: Option<Found>, keep: bool) -> Result<Lookup, CacheError> {
        let Some(Found { entry, manifest }) = found.filter(|f| f.entry.backend == self.vm.name()) else {
            return Ok(Lookup::Miss { reason: None });
        };
        let stored = StoredSnapshot {
            parts: entry.parts.clone(),
            base: entry.base.clone(),
        };
        // Only children sync against the manifest: it is read when they
        // will boot from the snapshot.
        let manifest = match (manifest, keep) {
            (None, _) => None,
            (Some(_), false) => Some(None),
            (Some(bytes), true) => self.manifest(entry.manifest.as_deref(), &bytes).map(Some),
        };
        let restored = match manifest {
            Some(manifest) => self.vm.restore(&stored).await.map(|snapshot| (snapshot, manifest)),
            None => Err(VmError::StoredMissing("its source manifest is gone".to_owned())),
        };
        match restored {
            Ok((snapshot, manifest)) => {
                let tag = entry.parts.first().cloned().unwrap_or_default();
                let snapshot = match manifest {
                    Some(manifest) => Some((snapshot, manifest)),
                    None => {
                        let _ = self.vm.release(&snapshot).await;
                        None
                    }
                };
                Ok(Lookup::Hit {
                    tag,
                    snapshot,
                    remote: false,
                })
            }
            Err(VmError::StoredMissing(why)) => {
                self.forget(vec![entry.key.clone()]).await?;
                Ok(Lookup::Miss {
                    reason: Some(format!("the stored snapshot was incomplete ({why}); it was dropped")),
                })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// After a local miss, the entry `key` taken in from the remote cache
    /// (when there is one) and restored as a local hit would be.
    pub(crate) async fn or_remote(&self, looked_up: Lookup, key: &str, keep: bool) -> Result<Lookup, CacheError> {
        let Some(remote) = &self.remote else {
            return Ok(looked_up);
        };
        if matches!(looked_up, Lookup::Hit { .. }) || !remote.take(key).await {
            return Ok(looked_up);
        }
        Ok(match self.lookup(key, keep).await? {
            Lookup::Hit { tag, snapshot, .. } => Lookup::Hit {
                tag,
                snapshot,
                remote: true,
            },
            miss => miss,
        })
    }

    /// Starts looking up in the remote cache the keys this cache lacks.
    pub(crate) fn prefetch_remote(&self, keys: Vec<String>) {
        if let Some(remote) = &self.remote {
            remote.prefetch(keys);
        }
    }

    /// The manifest stored as `bytes` under `digest`, read once per build.
    fn manifest(&self, digest: Option<&str>, bytes: &[u8]) -> Option<Arc<Manifest>> {
        let mut read = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(manifest) = digest.and_then(|d| read.get(d)) {
            return Some(manifest.clone());
        }
        let manifest = Arc::new(Manifest::from_bytes(bytes)?);
        if let Some(digest) = digest {
            read.insert(digest.to_owned(), manifest.clone());
        }
        Some(manifest)
    }

    /// Removes entries and deletes the storage nothing needs any more.
    async fn forget(&self, keys: Vec<String>) -> Result<(), CacheError> {
        let doomed = self.registry(move |r| r.remove(&keys)).await?;
        delete_doomed(self.vm.as_ref(), &doomed).await;
        Ok(())
    }

    /// Why a cached step missed, from the step's latest entry.
    pub(crate) async fn explain_miss(&self, name: EntryName<'_>, now: &KeyInputs) -> Option<String> {
        let (scope, pipeline, step) = (
            self.settings.scope.clone(),
            name.pipeline.to_owned(),
            name.step.to_owned(),
        );
        let latest = self
            .registry(move |r| r.latest_for_step(&scope, &pipeline, &step))
            .await
            .ok()??;
        let previous: KeyInputs = serde_json::from_value(latest.inputs).ok()?;
        previous.explain_change(now)
    }

    /// Stores a passed step's snapshot under its key, keeping the cache
    /// within its bounds; `hold`: children are about to boot from it, so
    /// its storage stays until they are done, whether or not its entry
    /// does. On a full disk the storage it made durable is deleted at once:
    /// the step fails, and nothing boots from it.
    pub(crate) async fn store(
        &self,
        name: EntryName<'_>,
        keyed: Keyed,
        snapshot: &SnapshotId,
        manifest: &Manifest,
        hold: bool,
    ) -> Result<(), CacheError> {
        let persisted = self.vm.persist(snapshot).await?;
        let top = persisted.stored.parts.first().cloned().unwrap_or_default();
        let size = persisted
            .new_parts
            .iter()
            .find(|(p, _)| *p == top)
            .map(|(_, s)| *s)
            .unwrap_or(0);
        let new_parts: Vec<String> = persisted.new_parts.iter().map(|(p, _)| p.clone()).collect();
        let at = crate::cache::now();
        let new = NewEntry {
            entry: CacheEntry {
                key: keyed.key,
                parent: keyed.inputs.parent.clone(),
                backend: self.vm.name().to_owned(),
                parts: persisted.stored.parts,
                base: persisted.stored.base,
                manifest: Some(manifest.digest().to_hex().to_string()),
                size,
                step: name.step.to_owned(),
                pipeline: name.pipeline.to_owned(),
                project: self.settings.scope.clone(),
                created: at,
                last_used: at,
                inputs: serde_json::to_value(&keyed.inputs).unwrap_or_default(),
            },
            part_sizes: persisted.new_parts,
            manifest_bytes: Some(manifest.to_bytes()),
        };
        let bounds = self.settings.bounds;
        let pushed = self.remote.as_ref().map(|remote| {
            (
                remote.clone(),
                new.entry.clone(),
                new.manifest_bytes.clone().unwrap_or_default(),
            )
        });
        match self.registry(move |r| r.store(&new, hold, Some(bounds))).await {
            Ok(stored) => {
                delete_doomed(self.vm.as_ref(), &stored.doomed).await;
                if let (true, Some((remote, entry, source))) = (stored.kept, pushed) {
                    remote.push(entry, source);
                }
                Ok(())
            }
            Err(err) => {
                if err.is_full() && !new_parts.is_empty() {
                    let _ = self.vm.delete_parts(&new_parts).await;
                }
                Err(err)
            }
        }
    }

    /// At the end of a build: lets go of the entries it held, brings the
    /// cache within its bounds when the build `stored` an entry (entries
    /// it held could not go before), deletes what nothing needs any more,
    /// and collects stored parts no entry knows (left by a killed
    /// process). Failures only leave work for a later run.
    pub async fn finish(&self, stored: bool) {
        // Pushes read parts the build holds.
        if let Some(remote) = &self.remote {
            remote.finish().await;
        }
        let bounds = self.settings.bounds;
        let doomed = self
            .registry(move |r| {
                let mut doomed = r.release()?;
                if stored {
                    let evicted = r.evict(bounds)?;
                    doomed.parts.extend(evicted.parts);
                    doomed.entries.extend(evicted.entries);
                }
                Ok(doomed)
            })
            .await;
        let Ok(doomed) = doomed else { return };
        delete_doomed(self.vm.as_ref(), &doomed).await;
        // Listing every known part is the slow part of a build of hits on
        // a large cache: once per interval, whichever process looks.
        let interval = self.settings.orphan_interval;
        if self.registry(move |r| r.orphans_due(interval)).await.unwrap_or(true) {
            collect(self.vm.as_ref(), &self.settings.registry).await;
        }
    }
}

/// Runs a registry call off the async threads (SQLite blocks).
pub(crate) async fn on_registry<T: Send + 'static>(
    registry: &Arc<Registry>,
    call: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<Result<T, RegistryError>, tokio::task::JoinError> {
    let registry = registry.clone();
    tokio::task::spawn_blocking(move || call(&registry)).await
}

/// Deletes the parts of `vm`'s backend in `doomed`; a part that cannot be
/// deleted now becomes an orphan that a later run collects.
pub async fn delete_doomed(vm: &dyn VmBackend, doomed: &Doomed) {
    let parts: Vec<String> = doomed
        .parts
        .iter()
        .filter(|(b, _)| b == vm.name())
        .map(|(_, p)| p.clone())
        .collect();
    if !parts.is_empty() {
        let _ = vm.delete_parts(&parts).await;
    }
}

/// Deletes the parts of `vm`'s backend in `doomed`, then the stored parts
/// of that backend the registry does not know.
pub async fn delete_and_collect(vm: &dyn VmBackend, registry: &Registry, doomed: &Doomed) {
    delete_doomed(vm, doomed).await;
    collect(vm, registry).await;
}

/// Deletes the stored parts of `vm`'s backend the registry does not know.
async fn collect(vm: &dyn VmBackend, registry: &Registry) {
    if let Ok(known) = registry.known_parts(vm.name()) {
        let _ = vm.collect_orphans(&known).await;
    }
}
