//! Where `hm` keeps its state (DESIGN.md §5), and keeping it private.
//!
//! The cache holds what steps left, setuid files of root steps included,
//! and code `hm` runs (the unpacked SDKs), so it is its owner's alone:
//! created `0700`, and checked before every command that uses it. Every
//! path in it is reached through its root, so the root's mode protects
//! everything below; layers keep their own modes, which are their content.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What [`ensure_private`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheDirState {
    /// It did not exist and was created `0700`.
    Created,
    /// It was private already.
    Private,
    /// Other users could read or enter it (its mode was `was`); it is
    /// `0700` now.
    Repaired { was: u32 },
}

/// A cache directory that cannot be used safely.
#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("cannot create the cache directory `{}`", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the cache directory `{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "the cache directory `{}` belongs to uid {owner}, not to you (uid {uid}); set HM_CACHE_DIR to a directory of your own",
        path.display()
    )]
    NotOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "the cache directory `{}` is writable by other users (mode {mode:04o}), so anything in it may have been put there by them; remove it, or `chmod 700` it if you trust what it holds",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "the cache directory `{}` is readable by other users (mode {mode:04o}) and does not look like hm's; `chmod 700` it, or set HM_CACHE_DIR to a directory of hm's own",
        path.display()
    )]
    Foreign { path: PathBuf, mode: u32 },
    #[error("the cache directory `{}` is readable by other users (mode {mode:04o}) and cannot be made private", path.display())]
    Repair {
        path: PathBuf,
        mode: u32,
        #[source]
        source: io::Error,
    },
}

/// Entries `hm` makes at the top of a cache; a directory holding one of
/// them (or nothing) is taken for a cache and repaired.
const OWN_ENTRIES: [&str; 5] = ["registry.db", "layers", "runs", "images", "sdk"];

/// Makes sure `dir` exists and only its owner, the caller, can reach what
/// is in it: a missing directory is created `0700` (with any missing
/// parents); one that other users can read or enter is made `0700` when it
/// is recognisably a cache (empty, or holding hm's own entries); one they
/// can write to, one owned by someone else, and anything else are refused.
pub fn ensure_private(dir: &Path) -> Result<CacheDirState, CacheDirError> {
    let path = dir.to_owned();
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| CacheDirError::Create { path, source })?;
            return Ok(CacheDirState::Created);
        }
        Err(source) => return Err(CacheDirError::Create { path, source }),
    };
    if !meta.is_dir() {
        return Err(CacheDirError::NotADirectory { path });
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(CacheDirError::NotOwner {
            path,
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(CacheDirState::Private);
    }
    if mode & 0o022 != 0 {
        return Err(CacheDirError::Writable { path, mode });
    }
    if !looks_like_a_cache(dir) {
        return Err(CacheDirError::Foreign { path, mode });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| CacheDirError::Repair {
        path,
        mode,
        source,
    })?;
    Ok(CacheDirState::Repaired { was: mode })
}

/// Whether `dir` is empty or holds one of hm's own entries.
fn looks_like_a_cache(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        empty = false;
        if OWN_ENTRIES.iter().any(|own| entry.file_name() == *own) {
            return true;
        }
    }
    empty
}

/// Removes what `hm`s killed on `cache_dir` left (SIGKILL gives them no
/// chance): their session directories, partial image copies and images
/// half removed. Only what no live process holds (its lock tells) goes;
/// every command that uses the cache calls this first.
pub fn collect_leftovers(cache_dir: &std::path::Path) {
    crate::session::collect_dead(&cache_dir.join(crate::session::RUNS_DIR));
    crate::images::ImageStore::new(cache_dir).collect_abandoned();
    crate::tempdir::collect(&cache_dir.join("remote"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_cache_and_its_missing_parents_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/hm");
        assert_eq!(ensure_private(&cache).unwrap(), CacheDirState::Created);
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(ensure_private(&cache).unwrap(), CacheDirState::Private);
    }

    #[test]
    fn a_readable_cache_is_repaired_and_anything_else_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hm");
        std::fs::create_dir(&cache).unwrap();
        std::fs::create_dir(cache.join("layers")).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ensure_private(&cache).unwrap(), CacheDirState::Repaired { was: 0o755 });
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&cache.join("layers")), 0o755, "what is below keeps its mode");

        // Writable by others: anything may have been planted.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = ensure_private(&cache).unwrap_err();
        assert!(matches!(err, CacheDirError::Writable { mode: 0o1777, .. }), "{err}");
        assert!(err.to_string().contains("writable by other users"), "{err}");

        // Readable, and not a cache (a home directory given by mistake).
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join(".profile"), "").unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private(&home).unwrap_err();
        assert!(matches!(err, CacheDirError::Foreign { .. }), "{err}");
        assert_eq!(mode(&home), 0o755, "a directory that is not a cache is left alone");

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            ensure_private(&file).unwrap_err(),
            CacheDirError::NotADirectory { .. }
        ));
    }
}
