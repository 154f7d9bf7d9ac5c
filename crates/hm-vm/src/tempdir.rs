//! Temporary directories in the cache that never outlive their process
//! for long: removed when dropped (a command interrupted by SIGINT or
//! SIGTERM unwinds to that), and after a SIGKILL by the next `hm` that
//! uses the cache, which tells a dead creator's directory from a live one
//! by its lock, not by its age.
//!
//! A directory is made as `.new-<id>`, locked (`flock` on the directory
//! itself, held for the creator's lifetime) and only then renamed to
//! `.tmp-<id>`: a collector removes a `.tmp-` directory whose lock it can
//! take, and a `.new-` one (a creator killed in the instant between) once
//! it is a minute old.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::fsutil::{changed_before, random_id, remove_tree};

const TMP_PREFIX: &str = ".tmp-";
const NEW_PREFIX: &str = ".new-";
/// A `.new-` directory older than this was abandoned before it was locked.
const NEW_GRACE: Duration = Duration::from_secs(60);

/// A locked temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    lock: Option<Flock<File>>,
}

impl TempDir {
    /// Creates `parent/.tmp-<id>`, locked for as long as it lives.
    pub fn create(parent: &Path) -> io::Result<Self> {
        let id = random_id(8);
        let new = parent.join(format!("{NEW_PREFIX}{id}"));
        fs::create_dir(&new)?;
        let locked = File::open(&new)
            .and_then(|dir| Flock::lock(dir, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io::Error::from(e)));
        let lock = match locked {
            Ok(lock) => lock,
            Err(err) => {
                let _ = fs::remove_dir(&new);
                return Err(err);
            }
        };
        let path = parent.join(format!("{TMP_PREFIX}{id}"));
        if let Err(err) = fs::rename(&new, &path) {
            let _ = fs::remove_dir(&new);
            return Err(err);
        }
        Ok(TempDir { path, lock: Some(lock) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the directory to `dest`, where it is no longer temporary.
    pub fn rename_to(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.lock = None;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Removes, directly under `parent`, the temporary directories of
/// processes that are gone.
pub fn collect(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let dead = if name.starts_with(TMP_PREFIX) {
            // Held while it is being removed, so no one else starts on it.
            match File::open(&path).map(|dir| Flock::lock(dir, FlockArg::LockExclusiveNonblock)) {
                Ok(Ok(_held)) => {
                    let _ = remove_tree(&path);
                    continue;
                }
                // Held: in use. Not ours to open, or gone already: left.
                Ok(Err(_)) | Err(_) => false,
            }
        } else {
            name.starts_with(NEW_PREFIX) && changed_before(&path, NEW_GRACE)
        };
        if dead {
            let _ = remove_tree(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_directory_stays_and_a_dead_one_goes() {
        let parent = tempfile::tempdir().unwrap();
        let live = TempDir::create(parent.path()).unwrap();
        fs::write(live.path().join("f"), "x").unwrap();
        // A directory whose creator died: nobody holds its lock.
        let dead = parent.path().join(".tmp-deadbeef");
        fs::create_dir_all(dead.join("rootfs/bin")).unwrap();
        let fresh = parent.path().join(".new-cafe");
        fs::create_dir(&fresh).unwrap();
        let kept = parent.path().join("image");
        fs::create_dir(&kept).unwrap();
        collect(parent.path());
        assert!(live.path().join("f").exists(), "a live directory is never collected");
        assert!(!dead.exists());
        assert!(fresh.exists(), "a `.new-` directory may be about to be locked");
        assert!(kept.exists());
        let path = live.path().to_owned();
        drop(live);
        assert!(!path.exists(), "dropped, it is removed");
    }

    #[test]
    fn a_renamed_directory_is_no_longer_temporary() {
        let parent = tempfile::tempdir().unwrap();
        let tmp = TempDir::create(parent.path()).unwrap();
        fs::write(tmp.path().join("f"), "x").unwrap();
        let dest = parent.path().join("done");
        tmp.rename_to(&dest).unwrap();
        collect(parent.path());
        assert!(dest.join("f").exists());
    }
}
