//! Filesystem helpers shared by the image store, the layer store and the
//! sandbox: removal that copes with read-only directories, copies that keep
//! links, modes and (as root) owners, and extended attributes.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Removes `path` and everything below it. Directories a step made
/// unreadable or unwritable are opened up first; a missing path is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_dir() => return ignore_missing(fs::remove_file(path)),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    open_up(path)?;
    ignore_missing(fs::remove_dir_all(path))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Gives the owner full access to every directory below `dir`.
fn open_up(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() | 0o700))?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_up(&entry.path())?;
        }
    }
    Ok(())
}

/// Whether the current process runs as real root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// How [`copy_tree`] treats what only root may create, and whom it tells
/// about each entry.
pub struct CopyOptions<'a> {
    /// Copy owners and create device nodes (needs root).
    pub privileged: bool,
    /// Called with the bytes of each entry copied; an error stops the copy.
    pub progress: Option<&'a mut dyn FnMut(u64) -> io::Result<()>>,
}

/// What [`copy_tree`] left out.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopySummary {
    pub entries: u64,
    pub bytes: u64,
    /// Device nodes and sockets skipped because they need root.
    pub skipped_special: u64,
}

/// Copies the tree at `src` to `dst` (which must not exist), keeping
/// symlinks as links, modes and modification times, and owners and device
/// nodes when privileged.
pub fn copy_tree(src: &Path, dst: &Path, mut options: CopyOptions<'_>) -> io::Result<CopySummary> {
    let mut summary = CopySummary::default();
    copy_entry(src, dst, &mut options, &mut summary)?;
    Ok(summary)
}

/// An entry of the source [`copy_tree`] may not read: the error it returns
/// then wraps this, so that the caller can name the entry, not only the tree.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}`: permission denied", crate::os_path::escaped(path))]
pub struct Unreadable {
    pub path: PathBuf,
}

impl Unreadable {
    /// The entry `err` (from [`copy_tree`]) could not read, if that is why
    /// it failed.
    pub fn of(err: &io::Error) -> Option<&Unreadable> {
        err.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

fn copy_entry(src: &Path, dst: &Path, options: &mut CopyOptions<'_>, summary: &mut CopySummary) -> io::Result<()> {
    let unreadable = |err: io::Error| match err.kind() {
        io::ErrorKind::PermissionDenied => {
            io::Error::new(io::ErrorKind::PermissionDenied, Unreadable { path: src.to_owned() })
        }
        _ => err,
    };
    let meta = fs::symlink_metadata(src).map_err(unreadable)?;
    let ft = meta.file_type();
    summary.entries += 1;
    if let Some(progress) = options.progress.as_mut() {
        progress(if ft.is_file() { meta.len() } else { 0 })?;
    }
    if ft.is_dir() {
        fs::create_dir(dst)?;
        // Writable while we fill it; its own mode is set afterwards.
        fs::set_permissions(dst, fs::Permissions::from_mode(0o700))?;
        let mut names: Vec<_> = fs::read_dir(src)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<Vec<_>>>()
            })
            .map_err(unreadable)?;
        names.sort();
        for name in names {
            copy_entry(&src.join(&name), &dst.join(&name), options, summary)?;
        }
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).map_err(unreadable)?, dst)?;
    } else if ft.is_file() {
        // The copy is new in a directory of ours: a denial is the source's.
        summary.bytes += fs::copy(src, dst).map_err(unreadable)?;
    } else {
        use std::os::unix::fs::FileTypeExt;
        let is_fifo = ft.is_fifo();
        if !options.privileged && !is_fifo {
            summary.skipped_special += 1;
            return Ok(());
        }
        let kind = if is_fifo {
            nix::sys::stat::SFlag::S_IFIFO
        } else if ft.is_char_device() {
            nix::sys::stat::SFlag::S_IFCHR
        } else if ft.is_block_device() {
            nix::sys::stat::SFlag::S_IFBLK
        } else {
            summary.skipped_special += 1;
            return Ok(());
        };
        nix::sys::stat::mknod(dst, kind, nix::sys::stat::Mode::from_bits_truncate(0o600), meta.rdev())?;
    }
    apply_metadata(dst, &meta, options.privileged)
}

/// Sets owner (when privileged), mode and times of `dst` from `meta`.
pub fn apply_metadata(dst: &Path, meta: &fs::Metadata, privileged: bool) -> io::Result<()> {
    if privileged {
        std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    }
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    set_times(dst, meta)?;
    Ok(())
}

/// Sets the access and modification times of `path` itself from `meta`.
pub fn set_times(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let atime = nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Reads an extended attribute of `path` itself (not following links);
/// `None` when it is not set, or the filesystem has none.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match xattr::get(path, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(None),
        other => other,
    }
}

/// Sets an extended attribute of `path` itself (not following links).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    xattr::set(path, name, value)
}

/// Below this much free space (for this user: root may use the blocks a
/// filesystem reserves for it), a filesystem counts as full.
const FULL_BELOW: u64 = 1 << 20;

/// Whether the filesystem holding `path` is full (or out of inodes): a
/// write that needed room may have been cut short. A path that cannot be
/// examined is not full.
pub fn is_full(path: &Path) -> bool {
    let Ok(stats) = nix::sys::statvfs::statvfs(path) else {
        return false;
    };
    let (blocks, inodes) = match is_root() {
        true => (stats.blocks_free(), stats.files_free()),
        false => (stats.blocks_available(), stats.files_available()),
    };
    // A filesystem without inode accounting (btrfs) reports no files at all.
    let out_of_inodes = stats.files() > 0 && inodes == 0;
    blocks.saturating_mul(stats.fragment_size()) < FULL_BELOW || out_of_inodes
}

/// Bytes `path` and everything below it take on disk (hard links counted
/// once per name).
pub fn disk_usage(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            total += disk_usage(&entry?.path())?;
        }
    }
    Ok(total)
}

/// Whether `path`'s status last changed (a rename counts) longer than `age`
/// ago.
pub fn changed_before(path: &Path, age: std::time::Duration) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    let changed =
        std::time::UNIX_EPOCH + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    std::time::SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|d| d > age)
}

/// A random identifier of `bytes` bytes, hex-encoded.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(err) = getrandom::fill(&mut buf) {
        // The kernel's generator is always there on Linux; fall back to
        // time and pid.
        let seed = format!("{err}{:?}{}", std::time::SystemTime::now(), std::process::id());
        buf.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..bytes]);
    }
    hex::encode(buf)
}

/// A mount point as `/proc/self/mountinfo` writes it: space, tab, newline
/// and backslash as octal escapes.
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                out.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_opens_locked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("a/b");
        fs::create_dir_all(&locked).unwrap();
        fs::write(locked.join("f"), "x").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(dir.path().join("a"), fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&dir.path().join("a")).unwrap();
        assert!(!dir.path().join("a").exists());
        remove_tree(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn xattrs_round_trip_and_an_unset_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert_eq!(get_xattr(&file, "user.hm.unset").unwrap(), None);
        // tmpfs before 6.6 has no user attributes: nothing more to see there.
        if set_xattr(&file, "user.hm", &[0, 1, 255]).is_ok() {
            assert_eq!(get_xattr(&file, "user.hm").unwrap().as_deref(), Some(&[0, 1, 255][..]));
        }
        assert!(set_xattr(&dir.path().join("missing"), "user.hm", b"y").is_err());
    }

    #[test]
    fn random_ids_are_hex_of_their_length() {
        let (a, b) = (random_id(8), random_id(8));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn copy_tree_keeps_links_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        fs::set_permissions(src.join("bin"), fs::Permissions::from_mode(0o555)).unwrap();
        let dst = dir.path().join("dst");
        let options = CopyOptions {
            privileged: false,
            progress: None,
        };
        let summary = copy_tree(&src, &dst, options).unwrap();
        assert_eq!(summary.entries, 4);
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("/etc/passwd"));
        let mode = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("bin/tool"), 0o755);
        assert_eq!(mode("bin"), 0o555);
        fs::set_permissions(src.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
        remove_tree(&dst).unwrap();
    }
}
