//! The workspace sync, run by init after `pivot_root`: every path in the
//! sandbox resolves inside the sandbox, so a symlink a step planted can
//! only ever point at the sandbox's own files. The source is reached
//! through a directory descriptor opened before the pivot, with `openat2`
//! refusing symlinks and anything outside it.
//!
//! What is copied is hashed as it is copied, and every entry that differs
//! from what the plan expected (the source was edited since it was
//! scanned) is reported: the snapshot's recorded source, and any cache key
//! made from it, must be what the step saw.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::backend::{Drift, SyncKind, SyncPlan};

/// The source tree, by descriptor.
pub(super) struct SourceDir(OwnedFd);

impl SourceDir {
    /// Opens the source root; call before `pivot_root`.
    pub(super) fn open(root: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(SourceDir(fd))
    }

    /// Opens `rel` below the source root, refusing symlinks on the way.
    fn open_beneath(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let strict = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS;
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(strict);
        match nix::fcntl::openat2(self.0.as_fd(), rel, how) {
            // Kernels before 5.6: the plain open still refuses a link as
            // the last component, and the paths come from our own scan.
            Err(Errno::ENOSYS) => {
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                }
                Ok(nix::fcntl::openat(
                    self.0.as_fd(),
                    rel,
                    flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )?)
            }
            other => Ok(other?),
        }
    }

    fn open_file(&self, rel: &Path) -> io::Result<File> {
        // Non-blocking: a fifo put in a file's place must not stall the sync.
        Ok(File::from(self.open_beneath(rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?))
    }

    fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let parent = rel
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dir = self.open_beneath(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok(PathBuf::from(nix::fcntl::readlinkat(dir.as_fd(), name)?))
    }

    /// The permission bits of the source directory `rel`.
    fn dir_mode(&self, rel: &Path) -> io::Result<u32> {
        let fd = self.open_beneath(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok(nix::sys::stat::fstat(fd.as_fd())?.st_mode & 0o7777)
    }
}

/// Brings `plan.target` (a path inside the sandbox) in line with the
/// source (see [`SyncPlan`]); returns the entries copied other than the
/// plan expected.
pub(super) fn sync(source: &SourceDir, plan: &SyncPlan) -> io::Result<Vec<Drift>> {
    let target = &plan.target;
    fs::create_dir_all(target)?;
    for rel in &plan.remove {
        remove_entry(&target.join(rel))?;
    }
    let mut dirs_ok: HashSet<PathBuf> = HashSet::new();
    let mut drift = Vec::new();
    for entry in &plan.write {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("`{}`: {e}", crate::os_path::escaped(&entry.path)));
        ensure_parents(source, target, &entry.path, &mut dirs_ok).map_err(named)?;
        let copied = write_entry(source, &entry.path, &target.join(&entry.path), entry.kind).map_err(named)?;
        if let Some(copied) = copied.filter(|c| entry.expected.is_some_and(|e| c.as_ref() != Some(&e))) {
            drift.push(Drift {
                path: entry.path.clone(),
                copied,
            });
        }
    }
    Ok(drift)
}

fn remove_entry(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e),
    };
    let result = if meta.is_dir() {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        // A directory that still holds build outputs stays.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes sure every parent of `rel` is a directory in the target, creating
/// (with the source's modes) or replacing whatever a step put there.
fn ensure_parents(source: &SourceDir, target: &Path, rel: &Path, dirs_ok: &mut HashSet<PathBuf>) -> io::Result<()> {
    let mut prefix = PathBuf::new();
    let parents: Vec<&OsStr> = rel.parent().map(|p| p.iter().collect()).unwrap_or_default();
    for name in parents {
        prefix.push(name);
        if dirs_ok.contains(&prefix) {
            continue;
        }
        let path = target.join(&prefix);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            existing => {
                if existing.is_ok() {
                    fs::remove_file(&path)?;
                }
                fs::create_dir(&path)?;
                let mode = source.dir_mode(&prefix).unwrap_or(0o755);
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
        }
        dirs_ok.insert(prefix.clone());
    }
    Ok(())
}

/// Writes one entry; for a file or a link, returns the hash of what was
/// copied (`Some(None)`: the source was gone, and so is `dest` now).
fn write_entry(source: &SourceDir, rel: &Path, dest: &Path, kind: SyncKind) -> io::Result<Option<Option<[u8; 32]>>> {
    let existing = fs::symlink_metadata(dest).ok();
    match kind {
        SyncKind::Dir { mode } => {
            match existing {
                Some(meta) if meta.is_dir() => {}
                Some(_) => {
                    fs::remove_file(dest)?;
                    fs::create_dir(dest)?;
                }
                None => fs::create_dir(dest)?,
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
            Ok(None)
        }
        SyncKind::File { mode } => {
            let mut from = match source.open_file(rel) {
                Ok(file) => file,
                // Gone (or replaced by a link) since the manifest was taken:
                // so it is in the sandbox, and the next sync sees it as it
                // is then.
                Err(e) if gone(&e) => {
                    clear(dest, existing.as_ref())?;
                    return Ok(Some(None));
                }
                Err(e) => return Err(e),
            };
            let meta = from.metadata()?;
            if !meta.is_file() {
                clear(dest, existing.as_ref())?;
                return Ok(Some(None));
            }
            clear(dest, existing.as_ref())?;
            let mut to = File::options().write(true).create_new(true).open(dest)?;
            let hash = copy_hashing(&mut from, &mut to)?;
            to.set_permissions(fs::Permissions::from_mode(mode))?;
            let times = [
                nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
                nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
            ];
            nix::sys::stat::futimens(to.as_fd(), &times[0], &times[1])?;
            Ok(Some(Some(hash)))
        }
        SyncKind::Symlink => {
            let link = match source.read_link(rel) {
                Ok(link) => link,
                Err(e) if gone(&e) => {
                    clear(dest, existing.as_ref())?;
                    return Ok(Some(None));
                }
                Err(e) => return Err(e),
            };
            clear(dest, existing.as_ref())?;
            std::os::unix::fs::symlink(&link, dest)?;
            Ok(Some(Some(
                *blake3::hash(link.as_os_str().as_encoded_bytes()).as_bytes(),
            )))
        }
    }
}

/// Copies `from` to `to`, returning the BLAKE3 of the bytes written.
fn copy_hashing(from: &mut File, to: &mut File) -> io::Result<[u8; 32]> {
    use std::io::{Read, Write};
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(*hasher.finalize().as_bytes())
}

fn gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
        || matches!(
            err.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV)
        )
}

/// Removes whatever is at `dest` so a new entry can take its place.
fn clear(dest: &Path, existing: Option<&fs::Metadata>) -> io::Result<()> {
    match existing {
        None => Ok(()),
        Some(meta) if meta.is_dir() => fs::remove_dir_all(dest),
        Some(_) => fs::remove_file(dest),
    }
}
