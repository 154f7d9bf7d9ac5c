//! Cache volumes (issue 19): named directories that persist across runs,
//! mounted read-write into a step at a path, and part of neither its
//! snapshot nor its cache key. They hold caches (a cargo registry,
//! `target/`), never results: a step must be right with an empty one.
//!
//! A volume is known by its [`VolumeKey`]: the project's cache scope, the
//! image its step's chain boots from (a cache built against one libc is
//! no use to another), its name and an instance number (`private` sharing
//! makes more than one). A digest of those is its id, which names its
//! storage (the sandbox's `<cache>/volumes/<id>/`, Docker's volume
//! `hm-vol-<id>`) and its lock file, `<cache>/volumes/<id>.lock`.
//!
//! A step holds the lock of each volume it mounts while it runs
//! ([`Lease`]):
//! - `shared`: a shared `flock`; any number of steps at once.
//! - `locked`: an exclusive one, waited for: one step at a time.
//! - `private`: the first instance nobody holds, exclusively, or a new one
//!   when all are held (BuildKit's `sharing=private`).
//!
//! Removal and eviction take the lock exclusively without waiting, so a
//! volume in use is never removed; a killed `hm`'s locks go with it. The
//! registry records each volume (its size and last use) for `hm cache ls`
//! and for eviction, least recently used first
//! ([`crate::Registry::volume_used`]).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

/// The directory, in the cache directory, of volumes and their locks.
pub const VOLUMES_DIR: &str = "volumes";

/// How steps share a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Every step at once.
    #[default]
    Shared,
    /// One step at a time; the others wait.
    Locked,
    /// A volume of its own for each step running at once.
    Private,
}

/// What a volume is, apart from its instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VolumeKey {
    /// The project's cache scope.
    pub scope: String,
    /// The image the step's chain boots from, as the pipeline names it.
    pub image: String,
    pub name: String,
}

impl VolumeKey {
    /// The id of instance `instance` of this volume: 16 hex digits.
    pub fn id(&self, instance: u32) -> String {
        let mut hasher = blake3::Hasher::new();
        for part in [
            "hm-volume-1",
            &self.scope,
            &self.image,
            &self.name,
            &instance.to_string(),
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().to_hex()[..16].to_owned()
    }
}

/// The volumes of one cache directory: where their locks and (on the
/// sandbox) their directories are.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    dir: PathBuf,
}

/// A volume a step holds while it runs: dropping it lets go.
#[derive(Debug)]
pub struct Lease {
    pub key: VolumeKey,
    pub instance: u32,
    pub id: String,
    _lock: Flock<File>,
}

impl VolumeStore {
    /// The volumes of the cache directory `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        VolumeStore {
            dir: cache_dir.join(VOLUMES_DIR),
        }
    }

    /// The directory of volumes and their locks.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the sandbox keeps volume `id`'s files.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.lock"))
    }

    /// Takes `key` for a step, as `sharing` says; blocks while a `locked`
    /// user, or a removal, holds it (see the module's documentation).
    pub fn acquire(&self, key: &VolumeKey, sharing: Sharing) -> io::Result<Lease> {
        fs::create_dir_all(&self.dir)?;
        let lease = |instance: u32, lock| Lease {
            key: key.clone(),
            instance,
            id: key.id(instance),
            _lock: lock,
        };
        match sharing {
            Sharing::Shared => Ok(lease(0, self.lock(&key.id(0), FlockArg::LockShared)?.expect("waited"))),
            Sharing::Locked => Ok(lease(
                0,
                self.lock(&key.id(0), FlockArg::LockExclusive)?.expect("waited"),
            )),
            Sharing::Private => {
                for instance in 0.. {
                    if let Some(lock) = self.lock(&key.id(instance), FlockArg::LockExclusiveNonblock)? {
                        return Ok(lease(instance, lock));
                    }
                }
                unreachable!("an instance is free before u32::MAX steps run at once")
            }
        }
    }

    /// Takes volume `id` exclusively if nobody holds it, to remove it:
    /// `None` when it is in use.
    pub fn try_exclusive(&self, id: &str) -> io::Result<Option<Removal>> {
        fs::create_dir_all(&self.dir)?;
        Ok(self.lock(id, FlockArg::LockExclusiveNonblock)?.map(|lock| Removal {
            path: self.lock_path(id),
            _lock: lock,
        }))
    }

    /// Locks `id`'s lock file as `how` says: `None` when a non-blocking
    /// lock is held by another. A lock file a removal unlinked between
    /// the open and the lock is opened afresh, so that every holder holds
    /// the file that is there.
    fn lock(&self, id: &str, how: FlockArg) -> io::Result<Option<Flock<File>>> {
        let path = self.lock_path(id);
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            let lock = match Flock::lock(file, how) {
                Ok(lock) => lock,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, err)) => return Err(err.into()),
            };
            let held = lock.metadata()?;
            match fs::metadata(&path) {
                Ok(there) if there.ino() == held.ino() && there.dev() == held.dev() => return Ok(Some(lock)),
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            }
        }
    }
}

/// A volume taken for removal: its lock file goes with it, once its
/// storage is gone ([`Removal::done`]).
#[derive(Debug)]
pub struct Removal {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Removal {
    /// The volume's storage is gone: its lock file goes too (still held,
    /// so that nobody takes the volume in between).
    pub fn done(self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> VolumeKey {
        VolumeKey {
            scope: "/src/project".into(),
            image: "debian:bookworm".into(),
            name: name.into(),
        }
    }

    #[test]
    fn ids_differ_by_scope_image_name_and_instance() {
        let base = key("cargo");
        let mut other_scope = base.clone();
        other_scope.scope = "/src/other".into();
        let mut other_image = base.clone();
        other_image.image = "alpine:3".into();
        let ids = [
            base.id(0),
            base.id(1),
            other_scope.id(0),
            other_image.id(0),
            key("cargo-target").id(0),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(base.id(0), key("cargo").id(0), "stable");
        assert!(ids.iter().all(|id| id.len() == 16));
    }

    #[test]
    fn shared_leases_coexist_and_keep_removal_out() {
        let cache = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(cache.path());
        let a = store.acquire(&key("v"), Sharing::Shared).unwrap();
        let b = store.acquire(&key("v"), Sharing::Shared).unwrap();
        assert_eq!((a.instance, b.instance), (0, 0));
        assert!(store.try_exclusive(&a.id).unwrap().is_none(), "in use");
        drop((a, b));
        let removal = store.try_exclusive(&key("v").id(0)).unwrap().expect("free");
        removal.done();
        assert!(!cache
            .path()
            .join("volumes")
            .join(format!("{}.lock", key("v").id(0)))
            .exists());
    }

    #[test]
    fn private_leases_take_instances_nobody_holds() {
        let cache = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(cache.path());
        let a = store.acquire(&key("v"), Sharing::Private).unwrap();
        let b = store.acquire(&key("v"), Sharing::Private).unwrap();
        assert_eq!((a.instance, b.instance), (0, 1));
        drop(a);
        let c = store.acquire(&key("v"), Sharing::Private).unwrap();
        assert_eq!(c.instance, 0, "the first free one again");
    }

    #[test]
    fn a_locked_lease_waits_for_the_holder() {
        let cache = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(cache.path());
        let first = store.acquire(&key("v"), Sharing::Locked).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = {
            let store = store.clone();
            std::thread::spawn(move || {
                let lease = store.acquire(&key("v"), Sharing::Locked).unwrap();
                tx.send(()).unwrap();
                drop(lease);
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
            "still waiting"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("taken once let go");
        waiting.join().unwrap();
    }
}
