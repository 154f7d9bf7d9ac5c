//! The `host` image: the host's root filesystem under the step's writable
//! layer.
//!
//! As root, `/` itself is the bottom layer of the root overlay (through a
//! view, see `rootfs`), and the other filesystems mounted below it are
//! bound read-only on top, one bind per mount point.
//!
//! Unprivileged, overlayfs refuses `/` as a lower directory inside a user
//! namespace (its submounts are locked), and host files owned by real root
//! could not be written there anyway. So the bottom layer is a *skeleton*
//! of `/`'s top level (empty directories, the same symlinks, empty
//! placeholders for files), and every top-level directory and file of the
//! host is bound read-only over it, recursively with whatever is mounted
//! below. New top-level entries, `/root` (the caller cannot read the host's)
//! and `/workspace` are writable; the host's own directories are not.
//!
//! `/proc`, `/sys`, `/dev`, `/tmp` and `/run` are never taken from the host.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Top-level directories never taken from the host: those the sandbox
/// mounts afresh, and `/workspace`, which starts empty (see `rootfs`).
const RESERVED: [&str; 6] = ["proc", "sys", "dev", "tmp", "run", "workspace"];

/// How the host's root is put together.
#[derive(Debug, Clone)]
pub(crate) struct HostLayout {
    /// The bottom layer of the root overlay: `/` (as root) or the skeleton.
    pub bottom: PathBuf,
    /// Host paths bound read-only over it, relative to `/`, parents before
    /// children.
    pub binds: Vec<PathBuf>,
    /// Whether each bind also takes the mounts below its source.
    pub recursive: bool,
}

impl HostLayout {
    /// Reads the host's mounts and, when `rootless`, builds the skeleton in
    /// `skeleton` (which must not exist yet).
    pub fn build(skeleton: &Path, rootless: bool) -> io::Result<Self> {
        if rootless {
            Self::unprivileged(skeleton)
        } else {
            Ok(Self::privileged(&mount_points()?))
        }
    }

    /// As root: `/` at the bottom, every other mounted filesystem (outside
    /// the fresh directories) bound read-only.
    fn privileged(mounts: &BTreeSet<PathBuf>) -> Self {
        let mut layout = HostLayout {
            bottom: PathBuf::from("/"),
            binds: Vec::new(),
            recursive: false,
        };
        for mount in mounts {
            let Ok(rel) = mount.strip_prefix("/") else { continue };
            if rel.as_os_str().is_empty() || is_reserved(rel) {
                continue;
            }
            if fs::metadata(mount).is_ok_and(|m| m.is_dir() || m.is_file()) {
                layout.binds.push(rel.to_owned());
            }
        }
        layout
    }

    /// Unprivileged: the skeleton at the bottom, the host's top-level
    /// directories and files bound read-only over it.
    fn unprivileged(skeleton: &Path) -> io::Result<Self> {
        let mut layout = HostLayout {
            bottom: skeleton.to_owned(),
            binds: Vec::new(),
            recursive: true,
        };
        fs::create_dir_all(skeleton)?;
        fs::set_permissions(skeleton, fs::Permissions::from_mode(0o755))?;
        let mut names: Vec<_> = fs::read_dir("/")?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = PathBuf::from(&name);
            let host = Path::new("/").join(&name);
            let skel = skeleton.join(&name);
            let Ok(meta) = fs::symlink_metadata(&host) else {
                continue;
            };
            let mode = fs::Permissions::from_mode(meta.permissions().mode() & 0o7777);
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&host)?, &skel)?;
            } else if meta.is_dir() {
                fs::create_dir(&skel)?;
                fs::set_permissions(&skel, mode)?;
                // A directory the caller cannot read stays an empty, writable
                // one (the host's `/root`, typically).
                if !is_reserved(&rel) && readable(&host) {
                    layout.binds.push(rel);
                }
            } else if meta.is_file() {
                fs::write(&skel, [])?;
                fs::set_permissions(&skel, mode)?;
                layout.binds.push(rel);
            }
        }
        Ok(layout)
    }
}

/// Whether `rel` is, or is inside, a directory never taken from the host.
fn is_reserved(rel: &Path) -> bool {
    rel.components()
        .next()
        .is_some_and(|c| RESERVED.iter().any(|d| c.as_os_str() == *d))
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
    fn unprivileged_binds_the_top_level_over_a_skeleton() {
        let dir = tempfile::tempdir().unwrap();
        let layout = HostLayout::build(&dir.path().join("skel"), true).unwrap();
        assert!(layout.recursive);
        assert!(layout.binds.iter().any(|l| l == Path::new("usr")));
        for fresh in RESERVED {
            assert!(layout.bottom.join(fresh).is_dir() || !Path::new("/").join(fresh).exists());
            assert!(!layout.binds.iter().any(|l| l.starts_with(fresh)));
        }
        assert!(layout.binds.iter().all(|b| b.components().count() == 1));
    }

    #[test]
    fn as_root_other_filesystems_are_bound() {
        let mounts: BTreeSet<PathBuf> = ["/", "/proc", "/dev/pts", "/home", "/home/data", "/run/user/1"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let layout = HostLayout::privileged(&mounts);
        assert_eq!(layout.bottom, Path::new("/"));
        assert!(!layout.recursive);
        // Only paths that exist on this machine are kept.
        assert!(layout.binds.iter().all(|l| l.starts_with("home")));
    }
}
