//! The `host` image: the host's root filesystem, read-only under the
//! step's writable layer.
//!
//! Inside a user namespace overlayfs refuses a lower directory that has
//! mounts below it (they are locked), and `/` always has some. So the host
//! is split: every directory with no mount below it becomes a *leaf*, an
//! overlay of its own with the host directory as the bottom layer, and the
//! directories above the leaves are recreated as a *skeleton* (empty
//! directories, the same symlinks, placeholders for files that are bound
//! read-only from the host). `/proc`, `/sys`, `/dev`, `/tmp` and `/run`
//! are never taken from the host.
//!
//! Running as root nothing is locked, so `/` itself is the bottom layer and
//! only the other filesystems mounted below it get overlays of their own:
//! the same tree with far fewer mounts (each overlay costs about half a
//! millisecond to mount and to tear down).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Top-level directories the sandbox always mounts afresh.
pub(crate) const FRESH_DIRS: [&str; 5] = ["proc", "sys", "dev", "tmp", "run"];

/// How the host's root is split into overlays.
#[derive(Debug, Clone)]
pub(crate) struct HostLayout {
    /// The bottom layer of the root overlay: `/` (as root) or the skeleton.
    pub bottom: PathBuf,
    /// Directories mounted as overlays over the host directory, relative to
    /// `/`, sorted.
    pub leaves: Vec<PathBuf>,
    /// Files above the leaves, bound read-only from the host, relative to
    /// `/`.
    pub files: Vec<PathBuf>,
}

impl HostLayout {
    /// Reads the host's mounts and, when `rootless`, builds the skeleton in
    /// `skeleton` (which must not exist yet), leaving out directories the
    /// caller cannot read, which would only fail later.
    pub fn build(skeleton: &Path, rootless: bool) -> io::Result<Self> {
        let mounts = mount_points()?;
        if !rootless {
            return Ok(Self::privileged(&mounts));
        }
        let mut layout = HostLayout {
            bottom: skeleton.to_owned(),
            leaves: Vec::new(),
            files: Vec::new(),
        };
        fs::create_dir_all(skeleton)?;
        fs::set_permissions(skeleton, fs::Permissions::from_mode(0o755))?;
        layout.split(Path::new(""), &mounts, rootless)?;
        Ok(layout)
    }

    /// As root: `/` at the bottom, every other mounted filesystem (outside
    /// the fresh directories) as a leaf, parents before children.
    fn privileged(mounts: &BTreeSet<PathBuf>) -> Self {
        let mut layout = HostLayout {
            bottom: PathBuf::from("/"),
            leaves: Vec::new(),
            files: Vec::new(),
        };
        for mount in mounts {
            let Ok(rel) = mount.strip_prefix("/") else { continue };
            let fresh = rel
                .components()
                .next()
                .is_some_and(|c| FRESH_DIRS.iter().any(|d| c.as_os_str() == *d));
            if rel.as_os_str().is_empty() || fresh {
                continue;
            }
            match fs::metadata(mount) {
                Ok(meta) if meta.is_dir() => layout.leaves.push(rel.to_owned()),
                Ok(meta) if meta.is_file() => layout.files.push(rel.to_owned()),
                _ => {}
            }
        }
        layout
    }

    fn split(&mut self, rel: &Path, mounts: &BTreeSet<PathBuf>, rootless: bool) -> io::Result<()> {
        let host_dir = Path::new("/").join(rel);
        let mut entries: Vec<_> = fs::read_dir(&host_dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for name in entries {
            let rel = rel.join(&name);
            let host = Path::new("/").join(&rel);
            let skel = self.bottom.join(&rel);
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            let top_level = rel.components().count() == 1;
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&host)?, &skel)?;
                copy_owner(&skel, &meta, rootless)?;
            } else if meta.is_dir() {
                fs::create_dir(&skel)?;
                fs::set_permissions(&skel, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                copy_owner(&skel, &meta, rootless)?;
                let fresh = top_level && FRESH_DIRS.iter().any(|d| name == *d);
                if fresh || (rootless && !readable(&host)) {
                    continue;
                }
                if mounts.iter().any(|m| m.starts_with(&host) && m != &host) {
                    self.split(&rel, mounts, rootless)?;
                } else {
                    self.leaves.push(rel);
                }
            } else if meta.is_file() {
                fs::write(&skel, [])?;
                fs::set_permissions(&skel, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                copy_owner(&skel, &meta, rootless)?;
                self.files.push(rel);
            }
        }
        Ok(())
    }
}

fn copy_owner(path: &Path, meta: &fs::Metadata, rootless: bool) -> io::Result<()> {
    if rootless {
        Ok(())
    } else {
        std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
    }
}

fn readable(dir: &Path) -> bool {
    use nix::unistd::{access, AccessFlags};
    access(dir, AccessFlags::R_OK | AccessFlags::X_OK).is_ok()
}

/// Every mount point of this mount namespace.
fn mount_points() -> io::Result<BTreeSet<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect())
}

/// Undoes mountinfo's `\040`-style escapes.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_fields() {
        assert_eq!(unescape_octal("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }

    #[test]
    fn splits_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let layout = HostLayout::build(&dir.path().join("skel"), true).unwrap();
        assert!(layout
            .leaves
            .iter()
            .any(|l| l == Path::new("usr") || l.starts_with("usr")));
        for fresh in FRESH_DIRS {
            assert!(layout.bottom.join(fresh).is_dir() || !Path::new("/").join(fresh).exists());
            assert!(!layout.leaves.iter().any(|l| l.starts_with(fresh)));
        }
        let mounts = mount_points().unwrap();
        for leaf in &layout.leaves {
            let host = Path::new("/").join(leaf);
            assert!(
                !mounts.iter().any(|m| m.starts_with(&host) && m != &host),
                "{leaf:?} has mounts below"
            );
        }
    }

    #[test]
    fn as_root_only_other_filesystems_are_leaves() {
        let mounts: BTreeSet<PathBuf> = ["/", "/proc", "/dev/pts", "/home", "/home/data", "/run/user/1"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let layout = HostLayout::privileged(&mounts);
        assert_eq!(layout.bottom, Path::new("/"));
        // Only paths that exist on this machine are kept.
        assert!(layout.leaves.iter().all(|l| l.starts_with("home")));
    }
}
