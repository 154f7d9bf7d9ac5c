//! A process's scratch space in the cache: `runs/<id>/`, locked for as long
//! as the process lives, so that whatever a killed process left behind is
//! recognised as dead and removed by the next one.
//!
//! The lock exists before anything else of the session, so that whatever a
//! process killed at any instant leaves is judged by it, never by its age:
//! the lock file appears already locked as `runs/.lock-<id>` (an unnamed
//! `O_TMPFILE`, locked, then linked in), then `runs/.tmp-<id>/` is made,
//! the lock moves into it, and the directory is renamed into place. A
//! collector judges a `.tmp-` directory by the lock outside it, else the
//! lock inside it (the lock only ever moves inwards), and one with neither
//! is dead.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use crate::fsutil::{random_id, remove_tree};

pub(crate) const RUNS_DIR: &str = "runs";
const LOCK_FILE: &str = "lock";
const TMP_PREFIX: &str = ".tmp-";
/// A lock file that appeared locked.
const LOCK_PREFIX: &str = ".lock-";
/// A lock file made where `O_TMPFILE` is not supported: it exists unlocked
/// for an instant, so one that is unlocked and younger than this is left
/// alone.
const NAMED_LOCK_PREFIX: &str = ".lockn-";
const LOCK_GRACE: Duration = Duration::from_secs(60);

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
        let dir = runs.join(&id);
        let (lock, outside) = new_lock(&runs, &id)?;
        let made = fs::create_dir(&tmp)
            .and_then(|()| fs::rename(&outside, tmp.join(LOCK_FILE)))
            .and_then(|()| fs::rename(&tmp, &dir));
        if let Err(err) = made {
            let _ = fs::remove_file(&outside);
            let _ = remove_tree(&tmp);
            return Err(err);
        }
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

/// A new lock file for session `id` in `runs`, locked, and its path:
/// `.lock-<id>`, which appears already locked, or where the filesystem
/// has no `O_TMPFILE`, `.lockn-<id>`, locked right after it appears.
fn new_lock(runs: &Path, id: &str) -> io::Result<(Flock<File>, PathBuf)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let lock = |file| Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io::Error::from(e));
    let unnamed = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(runs);
    if let Ok(file) = unnamed {
        let file = lock(file)?;
        let path = runs.join(format!("{LOCK_PREFIX}{id}"));
        // Linked by its /proc name: `AT_EMPTY_PATH` needs a privilege.
        let name = format!("/proc/self/fd/{}", file.as_raw_fd());
        let linked = nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            name.as_str(),
            nix::fcntl::AT_FDCWD,
            &path,
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        );
        if linked.is_ok() {
            return Ok((file, path));
        }
    }
    let path = runs.join(format!("{NAMED_LOCK_PREFIX}{id}"));
    let file = lock(File::create(&path)?)?;
    Ok((file, path))
}

/// Removes the session directories whose owner is gone.
pub fn collect_dead(runs: &Path) {
    collect_dead_with(runs, remove_tree);
}

/// [`collect_dead`], removing each with `remove` (the sandbox's removes
/// what its steps left as other ids).
pub(crate) fn collect_dead_with(runs: &Path, remove: impl Fn(&Path) -> io::Result<()>) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_dead(&path) {
            crate::cgroup::remove_recorded(&path);
            let _ = remove(&path);
        }
    }
}

fn is_dead(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let lockable = |file| Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok();
    if name.starts_with(LOCK_PREFIX) {
        return File::open(path).is_ok_and(lockable);
    }
    if name.starts_with(NAMED_LOCK_PREFIX) {
        return File::open(path).is_ok_and(lockable) && older_than(path, LOCK_GRACE);
    }
    if let Some(id) = name.strip_prefix(TMP_PREFIX) {
        // Being made: its lock is outside (taken before the directory was
        // made), or moved inside, or gone with its process. Outside first:
        // it only ever moves inwards.
        let outside = [LOCK_PREFIX, NAMED_LOCK_PREFIX].map(|p| path.with_file_name(format!("{p}{id}")));
        for lock in outside.into_iter().chain([path.join(LOCK_FILE)]) {
            match File::open(&lock) {
                Ok(file) => return lockable(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => return false,
            }
        }
        return true;
    }
    match File::open(path.join(LOCK_FILE)) {
        Ok(file) => lockable(file),
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

    /// A process killed while it made its session leaves what its lock
    /// judges, at once (the fault suite found one left for a minute).
    #[test]
    fn a_session_being_made_is_judged_by_its_lock() {
        let cache = tempfile::tempdir().unwrap();
        let runs = cache.path().join(RUNS_DIR);
        fs::create_dir_all(&runs).unwrap();
        // Killed after the directory was made: its lock is outside, free.
        File::create(runs.join(".lock-dead1")).unwrap();
        fs::create_dir(runs.join(".tmp-dead1")).unwrap();
        // Killed after the lock moved in.
        fs::create_dir(runs.join(".tmp-dead2")).unwrap();
        File::create(runs.join(".tmp-dead2/lock")).unwrap();
        // Killed before the directory was made, and one that never locked.
        File::create(runs.join(".lock-dead3")).unwrap();
        fs::create_dir(runs.join(".tmp-dead4")).unwrap();
        // Alive, being made: its lock is held.
        let held = File::create(runs.join(".lock-alive")).unwrap();
        let _held = Flock::lock(held, FlockArg::LockExclusiveNonblock).unwrap();
        fs::create_dir(runs.join(".tmp-alive")).unwrap();
        collect_dead(&runs);
        let mut left: Vec<String> = fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".lock-alive", ".tmp-alive"]);
        let session = Session::create(cache.path()).unwrap();
        assert!(session.dir().join(LOCK_FILE).is_file());
        assert!(!is_dead(session.dir()));
    }
}
