//! Cache volumes in a build (issue 19; see [`hm_vm::volumes`]): which a
//! step mounts (configuration's, then its pipeline's, then its own), taking
//! them as their sharing says before it runs, recording their use after,
//! and the eviction that keeps them within the cache's byte bound.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hm_ir::{Sharing as IrSharing, VolumeMount};
use hm_vm::volumes::{Lease, Sharing, VolumeKey, VolumeStore};
use hm_vm::{Registry, VmBackend, VolumeBind};

/// The volumes of a build.
#[derive(Debug, Clone)]
pub struct VolumeSettings {
    pub store: VolumeStore,
    /// The project's cache scope: volumes are never shared across scopes.
    pub scope: String,
    /// Mounted into every step (`[volumes]` in configuration), by
    /// absolute mount path; a pipeline's or a step's own win.
    pub configured: BTreeMap<PathBuf, VolumeMount>,
}

impl VolumeSettings {
    /// What a step whose pipeline and own volumes are `declared` (see
    /// [`hm_ir::Plan::volumes`]) mounts.
    pub(crate) fn mounts(&self, declared: BTreeMap<PathBuf, VolumeMount>) -> BTreeMap<PathBuf, VolumeMount> {
        let mut mounts = self.configured.clone();
        mounts.extend(declared);
        mounts
    }
}

/// The volumes one step holds while it runs, and where it mounts each (a
/// name mounted at two paths is taken once: a second `locked` lease
/// would wait for the first forever).
#[derive(Debug, Default)]
pub(crate) struct Held {
    leases: Vec<(Lease, Vec<PathBuf>)>,
}

/// Takes the volumes of `mounts` for a step whose chain boots from
/// `image`; waits while a `locked` one is in use.
pub(crate) async fn acquire(
    settings: &VolumeSettings,
    image: &str,
    mounts: BTreeMap<PathBuf, VolumeMount>,
) -> std::io::Result<Held> {
    if mounts.is_empty() {
        return Ok(Held::default());
    }
    let store = settings.store.clone();
    let keys: Vec<(VolumeKey, Sharing, PathBuf)> = mounts
        .into_iter()
        .map(|(target, mount)| {
            let key = VolumeKey {
                scope: settings.scope.clone(),
                image: image.to_owned(),
                name: mount.name,
            };
            (key, sharing(mount.sharing), target)
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut leases: Vec<(Lease, Vec<PathBuf>)> = Vec::with_capacity(keys.len());
        for (key, sharing, target) in keys {
            match leases.iter_mut().find(|(lease, _)| lease.key == key) {
                Some((_, targets)) => targets.push(target),
                None => leases.push((store.acquire(&key, sharing)?, vec![target])),
            }
        }
        Ok(Held { leases })
    })
    .await
    .map_err(std::io::Error::other)?
}

fn sharing(sharing: IrSharing) -> Sharing {
    match sharing {
        IrSharing::Shared => Sharing::Shared,
        IrSharing::Locked => Sharing::Locked,
        IrSharing::Private => Sharing::Private,
    }
}

impl Held {
    /// What the step's VM mounts.
    pub(crate) fn binds(&self) -> Vec<VolumeBind> {
        self.leases
            .iter()
            .flat_map(|(lease, targets)| {
                targets.iter().map(|target| VolumeBind {
                    id: lease.id.clone(),
                    target: target.clone(),
                })
            })
            .collect()
    }

    /// Records each volume's use before the step makes or mounts it, so
    /// that every volume there is has a record (a killed `hm` leaves none
    /// that `hm cache` and eviction do not know).
    pub(crate) fn record(&self, backend: &dyn VmBackend, registry: Option<&Registry>) {
        for (lease, _) in &self.leases {
            Self::used(lease, backend, registry, None);
        }
    }

    /// Records each volume's use and size, then lets go of them.
    pub(crate) async fn release(self, backend: &dyn VmBackend, registry: Option<&Registry>) {
        for (lease, _) in &self.leases {
            if registry.is_some() {
                let size = backend.volume_size(&lease.id).await;
                Self::used(lease, backend, registry, size);
            }
        }
    }

    fn used(lease: &Lease, backend: &dyn VmBackend, registry: Option<&Registry>, size: Option<u64>) {
        let Some(registry) = registry else { return };
        if let Err(err) = registry.volume_used(&lease.id, backend.name(), &lease.key, lease.instance, size) {
            tracing::warn!(volume = lease.key.name, error = %err, "cannot record a volume's use");
        }
    }
}

/// What removing volumes did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VolumesRemoved {
    pub count: u64,
    pub bytes: u64,
    /// Volumes left because a step was using them.
    pub in_use: u64,
}

/// Removes the volumes of `backend` that `pick` chooses, given them least
/// recently used first, until it says to stop (`None`); a volume in use
/// is left. `pick` gets each volume and the bytes removed so far.
pub async fn remove_volumes(
    backend: &dyn VmBackend,
    registry: &Registry,
    store: &VolumeStore,
    mut pick: impl FnMut(&hm_vm::VolumeRecord, u64) -> Option<bool>,
) -> Result<VolumesRemoved, hm_vm::RegistryError> {
    let mut records = registry.volumes()?;
    records.reverse();
    let mut removed = VolumesRemoved::default();
    for record in records.iter().filter(|r| r.backend == backend.name()) {
        match pick(record, removed.bytes) {
            None => break,
            Some(false) => continue,
            Some(true) => {}
        }
        let taken = match store.try_exclusive(&record.id) {
            Ok(Some(taken)) => taken,
            Ok(None) => {
                removed.in_use += 1;
                continue;
            }
            Err(err) => {
                tracing::warn!(volume = record.key.name, error = %err, "cannot lock a volume to remove it");
                continue;
            }
        };
        if let Err(err) = backend.remove_volume(&record.id).await {
            tracing::warn!(volume = record.key.name, error = %err, "cannot remove a volume");
            continue;
        }
        registry.forget_volume(&record.id)?;
        taken.done();
        removed.count += 1;
        removed.bytes += record.size;
    }
    Ok(removed)
}

/// Evicts `backend`'s least recently used volumes, not in use, while the
/// cache's stored parts and volumes together exceed `max_bytes`: volumes
/// give way to entries, whose own bound is enforced as they are stored.
pub async fn evict_volumes(
    backend: &dyn VmBackend,
    registry: &Registry,
    store: &VolumeStore,
    max_bytes: u64,
) -> Result<VolumesRemoved, hm_vm::RegistryError> {
    let (_, parts) = registry.totals()?;
    let volumes: u64 = registry.volumes()?.iter().map(|v| v.size).sum();
    let over = (parts + volumes).saturating_sub(max_bytes);
    if over == 0 {
        return Ok(VolumesRemoved::default());
    }
    remove_volumes(backend, registry, store, |_, freed| (freed < over).then_some(true)).await
}
