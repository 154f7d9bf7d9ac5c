//! Source layers (DESIGN.md §4): a read-only copy of the project's source
//! at one state, made once and stacked under every root step that sees
//! that state, in every run, instead of a copy of the tree in each step's
//! own layer.
//!
//! A layer is `<cache>/sources/NAME/` holding `tree/workspace/…` (the
//! lower directory steps stack), `size` (its bytes on disk) and `lock`.
//! Names are content addresses the caller gives (project, then the digest
//! of the source), so a layer is never changed once made: it is copied
//! into a directory of its own and renamed into place. A process holds
//! each layer it uses with a shared `flock` on `lock` (a killed process
//! lets go with its last descriptor); a layer is deleted only under an
//! exclusive one, renamed out of place first, so a process that locked it
//! meanwhile sees it is gone. A layer's last use is its `lock`'s mtime.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use super::sync::{self, SourceDir};
use crate::backend::SyncPlan;
use crate::fsutil::{changed_before, random_id, remove_tree};

/// Where source layers live, under the cache directory.
pub(super) const SOURCES_DIR: &str = "sources";
/// Stored parts that are source layers: `src-NAME`.
pub(super) const PART_PREFIX: &str = "src-";
/// What makes leave in place of a layer while copying.
const MAKING: &str = ".making-";

/// The source layers of one cache directory, and those this process holds.
pub(super) struct SourceLayers {
    dir: PathBuf,
    held: Mutex<HashMap<String, Flock<File>>>,
}

impl SourceLayers {
    pub(super) fn new(cache_dir: &Path) -> Self {
        SourceLayers {
            dir: cache_dir.join(SOURCES_DIR),
            held: Mutex::default(),
        }
    }

    /// The directory a step stacks for layer `name`.
    pub(super) fn tree(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("tree")
    }

    /// The layer's bytes on disk, as measured when it was made.
    pub(super) fn size(&self, name: &str) -> u64 {
        let text = fs::read_to_string(self.dir.join(name).join("size")).unwrap_or_default();
        text.trim().parse().unwrap_or(0)
    }

    /// Holds layer `name` for this process if it is there, marking it used
    /// now; whether it is.
    pub(super) fn hold(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains_key(name) {
            return Ok(true);
        }
        let lock_path = self.dir.join(name).join("lock");
        let file = match File::open(&lock_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let lock = Flock::lock(file, FlockArg::LockSharedNonblock).map_err(|(_, e)| io::Error::from(e))?;
        // A deletion renames the layer away under its exclusive lock: the
        // lock taken must still be the layer's.
        let still = fs::metadata(&lock_path).ok();
        let locked = lock.metadata()?;
        if still.is_none_or(|m| (m.dev(), m.ino()) != (locked.dev(), locked.ino())) {
            return Ok(false);
        }
        let now = nix::sys::time::TimeSpec::UTIME_NOW;
        let _ = nix::sys::stat::futimens(lock.as_fd(), &now, &now);
        held.insert(name.to_owned(), lock);
        Ok(true)
    }

    /// Makes layer `name` from `plan` (a full sync of the source into an
    /// empty `/workspace`) unless it is there, and holds it; whether it is
    /// there now. A source that changed while it was copied makes no layer
    /// (its name would not say what it holds).
    pub(super) fn make(&self, name: &str, plan: &SyncPlan) -> io::Result<bool> {
        if self.hold(name)? {
            return Ok(true);
        }
        fs::create_dir_all(&self.dir)?;
        let making = self.dir.join(format!("{MAKING}{}", random_id(8)));
        let made = (|| -> io::Result<bool> {
            fs::create_dir(&making)?;
            File::create(making.join("lock"))?;
            let target = making.join("tree").join(
                plan.target
                    .strip_prefix("/")
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            );
            let plan = SyncPlan { target, ..plan.clone() };
            let source = SourceDir::open(&plan.source_root)?;
            if !sync::sync(&source, &plan)?.is_empty() {
                return Ok(false);
            }
            let size = super::layers::layer_size(&making.join("tree"))?;
            fs::write(making.join("size"), size.to_string())?;
            match fs::rename(&making, self.dir.join(name)) {
                Ok(()) => Ok(true),
                // Another process made it first: the same files.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => Ok(true),
                Err(e) => Err(e),
            }
        })();
        if !matches!(made, Ok(true)) || making.exists() {
            let _ = remove_tree(&making);
        }
        if !made? {
            return Ok(false);
        }
        self.hold(name)
    }

    /// Puts the directory `made` (holding `tree/`, of `size` bytes, made
    /// elsewhere: a layer pulled from a remote cache) in place as layer
    /// `name`, unless there is one; `made` is gone either way.
    pub(super) fn install(&self, name: &str, made: &Path, size: u64) -> io::Result<()> {
        check_name(name)?;
        File::create(made.join("lock"))?;
        fs::write(made.join("size"), size.to_string())?;
        fs::create_dir_all(&self.dir)?;
        match fs::rename(made, self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => remove_tree(made),
            Err(e) => Err(e),
        }
    }

    /// Deletes layer `name` unless a process holds it (it then stays, for
    /// [`SourceLayers::collect`] to reconsider).
    pub(super) fn delete(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        if self.held.lock().unwrap_or_else(|p| p.into_inner()).contains_key(name) {
            return Ok(());
        }
        let path = self.dir.join(name);
        let file = match File::open(path.join("lock")) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return remove_tree(&path),
            Err(e) => return Err(e),
        };
        let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            return Ok(());
        };
        let doomed = self.dir.join(format!("{MAKING}{}", random_id(8)));
        match fs::rename(&path, &doomed) {
            Ok(()) => remove_tree(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the layers no entry in `known` (part names) needs and no
    /// process holds, but for each project's latest ones (see
    /// [`crate::source_layers::unneeded`]); and what makes killed midway
    /// left once `grace` old.
    pub(super) fn collect(&self, known: &HashSet<String>, grace: Duration) -> io::Result<()> {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let mut candidates = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(MAKING) {
                if changed_before(&entry.path(), grace) {
                    remove_tree(&entry.path())?;
                }
                continue;
            }
            if known.contains(&format!("{PART_PREFIX}{name}")) {
                continue;
            }
            let used = fs::metadata(entry.path().join("lock"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            candidates.push((name, used));
        }
        for name in crate::source_layers::unneeded(candidates, grace) {
            self.delete(&name)?;
        }
        Ok(())
    }

    /// Deletes every layer no entry in `known` needs and no process holds.
    pub(super) fn remove_unused(&self, known: &HashSet<String>) -> io::Result<()> {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(MAKING) && !known.contains(&format!("{PART_PREFIX}{name}")) {
                self.delete(&name)?;
            }
        }
        Ok(())
    }

    /// Lets go of every layer this process holds.
    pub(super) fn release_all(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A layer name is one path component of the caller's making.
fn check_name(name: &str) -> io::Result<()> {
    let plain =
        !name.is_empty() && !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a source layer's name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{SyncEntry, SyncKind};

    fn plan(root: &Path, files: &[&str]) -> SyncPlan {
        SyncPlan {
            source_root: root.to_owned(),
            target: PathBuf::from("/workspace"),
            remove: Vec::new(),
            write: files
                .iter()
                .map(|f| SyncEntry {
                    path: PathBuf::from(f),
                    kind: SyncKind::File { mode: 0o644 },
                    expected: Some(*blake3::hash(&fs::read(root.join(f)).unwrap()).as_bytes()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_layer_is_made_once_and_held_by_each_process() {
        let cache = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "a").unwrap();
        let ours = SourceLayers::new(cache.path());
        assert!(!ours.hold("p-1").unwrap());
        assert!(ours.make("p-1", &plan(src.path(), &["a.txt"])).unwrap());
        assert_eq!(fs::read(ours.tree("p-1").join("workspace/a.txt")).unwrap(), b"a");
        assert!(ours.size("p-1") > 0);
        // Another process holds it too; neither can delete it.
        let theirs = SourceLayers::new(cache.path());
        assert!(theirs.hold("p-1").unwrap());
        ours.release_all();
        ours.delete("p-1").unwrap();
        assert!(ours.tree("p-1").exists(), "held by the other");
        theirs.release_all();
        ours.delete("p-1").unwrap();
        assert!(!ours.tree("p-1").exists());
        assert!(!ours.hold("p-1").unwrap());
    }

    #[test]
    fn a_source_that_changed_while_copied_makes_no_layer() {
        let cache = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "a").unwrap();
        let planned = plan(src.path(), &["a.txt"]);
        fs::write(src.path().join("a.txt"), "edited").unwrap();
        let layers = SourceLayers::new(cache.path());
        assert!(!layers.make("p-1", &planned).unwrap());
        assert_eq!(fs::read_dir(cache.path().join(SOURCES_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn collection_keeps_what_entries_need_and_each_projects_latest() {
        let cache = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), "a").unwrap();
        let layers = SourceLayers::new(cache.path());
        for name in ["p-1", "p-2", "p-3", "p-4", "q-1"] {
            assert!(layers.make(name, &plan(src.path(), &["a.txt"])).unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        layers.release_all();
        let known: HashSet<String> = [format!("{PART_PREFIX}p-1")].into();
        layers.collect(&known, Duration::ZERO).unwrap();
        let left: Vec<bool> = ["p-1", "p-2", "p-3", "p-4", "q-1"]
            .iter()
            .map(|n| layers.tree(n).exists())
            .collect();
        assert_eq!(left, [true, false, true, true, true]);
        assert!(layers.hold("nope/..").is_err());
    }
}
