//! A process's scratch space in the cache: `runs/<id>/`, locked for as long
//! as the process lives, so that whatever a killed process left behind is
//! recognised as dead and removed by the next one.
//!
//! Creation is race-free against a concurrent collector: the directory is
//! made under a `.tmp-` name, its lock is taken, and only then is it renamed
//! into place.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use crate::fsutil::{random_id, remove_tree};

pub(crate) const RUNS_DIR: &str = "runs";
const LOCK_FILE: &str = "lock";
const TMP_PREFIX: &str = ".tmp-";
/// A `.tmp-` directory without a lock older than this is abandoned.
const TMP_GRACE: Duration = Duration::from_secs(60);

/// A live process's directory under `runs/`, removed when dropped.
#[derive(Debug)]
pub struct Session {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Session {
    /// Creates a new session directory under `cache_dir/runs/`, after
    /// removing those of processes that are gone.
    pub fn create(cache_dir: &Path) -> io::Result<Self> {
        let runs = cache_dir.join(RUNS_DIR);
        fs::create_dir_all(&runs)?;
        collect_dead(&runs);
        let id = random_id(8);
        let tmp = runs.join(format!("{TMP_PREFIX}{id}"));
        fs::create_dir(&tmp)?;
        let file = File::create(tmp.join(LOCK_FILE))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io::Error::from(e))?;
        let dir = runs.join(&id);
        fs::rename(&tmp, &dir)?;
        Ok(Session { dir, _lock: lock })
    }

    /// The session's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The session's identifier (its directory's name).
    pub fn id(&self) -> &str {
        self.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = remove_tree(&self.dir);
    }
}

/// Removes the session directories whose owner is gone.
pub fn collect_dead(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_dead(&path) {
            let _ = remove_tree(&path);
        }
    }
}

fn is_dead(dir: &Path) -> bool {
    let is_tmp = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(TMP_PREFIX));
    if is_tmp {
        // Being created: its lock may be about to be taken, so only age
        // tells.
        return older_than(dir, TMP_GRACE);
    }
    match File::open(dir.join(LOCK_FILE)) {
        Ok(file) => Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok(),
        Err(_) => true,
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d > age)
}

/// Whether the session `id` under `cache_dir` still has a live process.
pub fn is_alive(cache_dir: &Path, id: &str) -> bool {
    let dir = cache_dir.join(RUNS_DIR).join(id);
    dir.is_dir() && !is_dead(&dir)
}

/// The live sessions under `cache_dir` (used by tests and `hm` itself to
/// check that nothing is left behind).
pub fn live_sessions(cache_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(cache_dir.join(RUNS_DIR)) else {
        return Vec::new();
    };
    entries.flatten().map(|e| e.path()).filter(|p| !is_dead(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_session_is_removed_and_a_dead_one_collected() {
        let cache = tempfile::tempdir().unwrap();
        let session = Session::create(cache.path()).unwrap();
        let dir = session.dir().to_owned();
        assert!(dir.is_dir());
        assert_eq!(live_sessions(cache.path()), vec![dir.clone()]);
        // A session whose process died: its lock can be taken.
        let dead = cache.path().join(RUNS_DIR).join("deadbeef");
        fs::create_dir_all(dead.join("layers/x")).unwrap();
        File::create(dead.join(LOCK_FILE)).unwrap();
        let other = Session::create(cache.path()).unwrap();
        assert!(!dead.exists());
        assert!(dir.is_dir(), "a live session is never collected");
        drop(session);
        drop(other);
        assert!(!dir.exists());
    }
}
