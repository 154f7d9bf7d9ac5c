//! Plans the root filesystem of one sandboxed step: which overlays and
//! binds to mount, over which layers, with which upper and work
//! directories.
//!
//! Creating a directory costs a fraction of a millisecond on some disks, so
//! a step creates as few as possible: its upper and work directories. Mount
//! points are shared by every step of the session (each step mounts in its
//! own namespace), and lower layers are handed to the kernel as
//! `/proc/self/fd/N` of directories the helper opens, which keeps the mount
//! options short however deep the stack and however long the cache path.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::host::HostLayout;
use super::spec::{DiskKind, DiskSpec, MountOp};
use crate::fsutil::get_xattr;

/// The extended attribute overlayfs (with `userxattr`) marks opaque
/// directories with.
pub(crate) const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The bottom of a root filesystem.
#[derive(Debug, Clone)]
pub(crate) enum Base<'a> {
    /// The host's own root filesystem, split as `HostLayout` says.
    Host(&'a HostLayout),
    /// An imported image's root filesystem directory.
    Rootfs(&'a Path),
}

/// Mount points shared by every step of a session.
#[derive(Debug, Clone)]
pub(crate) struct MountPoints {
    /// Where each step's root is assembled.
    pub root: PathBuf,
    /// Where the empty tmpfs under views is mounted.
    pub empty: PathBuf,
    /// Views are mounted on `<views>/<n>`.
    pub views: PathBuf,
}

impl MountPoints {
    /// Creates the shared mount points under `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let points = MountPoints {
            root: dir.join("root"),
            empty: dir.join("empty"),
            views: dir.join("views"),
        };
        for path in [&points.root, &points.empty, &points.views] {
            fs::create_dir_all(path)?;
        }
        Ok(points)
    }
}

/// A step's own directories: `upper` becomes its layer on commit; `work`
/// is removed after it ran. With a limited disk, `work` is where the
/// step's filesystem is mounted (in the helper's namespace) and `upper`
/// is made only when the helper saves the step's files there.
#[derive(Debug, Clone)]
pub(crate) struct RootfsPlan {
    pub mounts: Vec<MountOp>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The filesystem of the step's own that holds its upper and work
    /// directories, when its disk is limited.
    pub disk: Option<DiskSpec>,
}

/// The disk limit of a step and the filesystem that applies it.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub bytes: u64,
    pub kind: DiskKind,
}

/// Creates the step's upper and work directories as `<scratch>/u<n>` and
/// `<scratch>/w<n>`, and returns the mounts for a root made of `layers`
/// (top first) over `base`. `store` is the directory the layers live in:
/// overlayfs refuses a lower directory inside another, so a host directory
/// that contains it is stacked through a view. With `disk`, only
/// `<scratch>/w<n>` is made, the mount point of the step's own filesystem
/// (see [`DiskSpec`]).
pub(crate) fn plan(
    points: &MountPoints,
    scratch: &Path,
    n: u64,
    layers: &[PathBuf],
    base: &Base<'_>,
    store: &Path,
    disk: Option<Bound>,
) -> io::Result<RootfsPlan> {
    let upper = scratch.join(format!("u{n}"));
    let work = scratch.join(format!("w{n}"));
    // The host has a `/workspace` of its own: hide it under an opaque
    // directory, so the step's starts empty.
    let hide_workspace =
        matches!(base, Base::Host(_)) && layers.is_empty() && fs::symlink_metadata("/workspace").is_ok();
    let (overlay_upper, overlay_work, disk) = match disk {
        None => {
            fs::create_dir(&upper)?;
            fs::create_dir(&work)?;
            if hide_workspace {
                let workspace = upper.join("workspace");
                fs::create_dir(&workspace)?;
                crate::fsutil::set_xattr(&workspace, OPAQUE_XATTR, b"y")?;
            }
            (upper.clone(), work.clone(), None)
        }
        Some(bound) => {
            fs::create_dir(&work)?;
            let disk = DiskSpec {
                bytes: bound.bytes,
                kind: bound.kind,
                mount: work.clone(),
                save_to: upper.clone(),
                opaque: hide_workspace.then(|| PathBuf::from("workspace")).into_iter().collect(),
            };
            (work.join("upper"), work.join("work"), Some(disk))
        }
    };
    let mut planner = Planner {
        points,
        store,
        views: 0,
        mounts: Vec::new(),
    };
    let bottom = match base {
        Base::Host(layout) => planner.host_lower(&layout.bottom)?,
        Base::Rootfs(rootfs) => rootfs.to_path_buf(),
    };
    planner.mounts.push(MountOp::Overlay {
        target: points.root.clone(),
        lowers: layers.iter().cloned().chain([bottom]).collect(),
        upper: overlay_upper,
        work: overlay_work,
    });
    if let Base::Host(layout) = base {
        for bind in &layout.binds {
            // A layer that deleted or replaced the path wins over the host.
            if host_visible(layers, bind)?.is_some_and(|l| l.is_empty()) {
                planner.mounts.push(MountOp::BindReadOnly {
                    source: Path::new("/").join(bind),
                    target: points.root.join(bind),
                    recursive: layout.recursive,
                });
            }
        }
    }
    Ok(RootfsPlan {
        mounts: planner.mounts,
        upper,
        work,
        disk,
    })
}

struct Planner<'a> {
    points: &'a MountPoints,
    store: &'a Path,
    views: usize,
    mounts: Vec<MountOp>,
}

impl Planner<'_> {
    /// The host directory `dir` as a lower: itself, or a view of it when it
    /// contains the layer store.
    fn host_lower(&mut self, dir: &Path) -> io::Result<PathBuf> {
        if !self.store.starts_with(dir) {
            return Ok(dir.to_owned());
        }
        if self.views == 0 {
            self.mounts.push(MountOp::EmptyTmpfs {
                target: self.points.empty.clone(),
            });
        }
        let target = self.points.views.join(self.views.to_string());
        self.views += 1;
        match fs::create_dir(&target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        self.mounts.push(MountOp::View {
            target: target.clone(),
            empty: self.points.empty.clone(),
            lower: dir.to_owned(),
        });
        Ok(target)
    }
}

/// Whether the host's `rel` still shows through `layers` (top first): it
/// does unless a layer deletes or replaces it or one of its parents, or
/// makes one of them opaque. When it shows, returns the layers' own
/// directories at `rel`, top first, to stack above the host's.
fn host_visible(layers: &[PathBuf], rel: &Path) -> io::Result<Option<Vec<PathBuf>>> {
    let mut stacked = Vec::new();
    for layer in layers {
        let mut path = layer.clone();
        let components: Vec<_> = rel.components().collect();
        for (i, component) in components.iter().enumerate() {
            path.push(component);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            let last = i + 1 == components.len();
            let whiteout = meta.file_type().is_char_device();
            if whiteout || !meta.is_dir() || is_opaque(&path)? {
                return Ok(None);
            }
            if last {
                stacked.push(path.clone());
            }
        }
    }
    Ok(Some(stacked))
}

/// Whether overlayfs marked this directory opaque.
pub(crate) fn is_opaque(dir: &Path) -> io::Result<bool> {
    Ok(get_xattr(dir, OPAQUE_XATTR)?.is_some_and(|v| v == b"y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_leaf_is_hidden_by_whiteouts_files_and_opaque_parents() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |name: &str| {
            let p = dir.path().join(name);
            fs::create_dir_all(&p).unwrap();
            p
        };
        let (top, mid) = (layer("top"), layer("mid"));
        fs::create_dir_all(mid.join("usr/lib")).unwrap();
        assert_eq!(
            host_visible(&[top.clone(), mid.clone()], Path::new("usr/lib")).unwrap(),
            Some(vec![mid.join("usr/lib")])
        );
        // A file where a parent directory was.
        fs::write(top.join("usr"), "").unwrap();
        assert_eq!(
            host_visible(&[top.clone(), mid.clone()], Path::new("usr/lib")).unwrap(),
            None
        );
        fs::remove_file(top.join("usr")).unwrap();
        // An opaque parent.
        fs::create_dir(top.join("usr")).unwrap();
        if crate::fsutil::set_xattr(&top.join("usr"), OPAQUE_XATTR, b"y").is_ok() {
            assert_eq!(host_visible(&[top, mid], Path::new("usr/lib")).unwrap(), None);
        }
    }
}
