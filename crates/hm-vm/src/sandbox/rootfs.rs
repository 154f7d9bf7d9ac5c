//! Plans the root filesystem of one sandboxed step: which overlays to
//! mount, over which layers, with which upper and work directories.
//!
//! Every path handed to the kernel is a short name inside the step
//! directory (a symlink to the real layer), because the overlay mount
//! options must fit in one page however deep the stack and however long the
//! cache path.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::host::HostLayout;
use super::spec::MountOp;
use crate::fsutil::get_xattr;

/// The upper directory, relative to the step directory; it becomes the
/// step's layer on commit.
pub(crate) const UPPER: &str = "u";
const WORK: &str = "w";
const LINKS: &str = "l";
/// Where the root is assembled, relative to the step directory.
pub(crate) const ROOT: &str = "root";
const EMPTY: &str = "e";
const VIEWS: &str = "v";

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

/// The mounts of a step's root, and the upper directories created for the
/// host's leaves (removed again at commit when the step left them empty).
#[derive(Debug, Clone)]
pub(crate) struct RootfsPlan {
    pub mounts: Vec<MountOp>,
    pub leaf_uppers: Vec<PathBuf>,
}

/// Prepares `step_dir` (upper, work and link directories) and returns the
/// mounts for a root made of `layers` (top first) over `base`. `store` is
/// the directory the layers live in: overlayfs refuses a lower directory
/// inside another, so a host directory that contains it is stacked through
/// a view.
pub(crate) fn plan(step_dir: &Path, layers: &[PathBuf], base: &Base<'_>, store: &Path) -> io::Result<RootfsPlan> {
    for dir in [UPPER, WORK, LINKS, ROOT] {
        fs::create_dir(step_dir.join(dir))?;
    }
    let mut planner = Planner {
        step_dir,
        store,
        mounts: Vec::new(),
        views: 0,
    };
    let mut leaf_uppers = Vec::new();

    let bottom = match base {
        Base::Host(layout) => planner.host_lower(&layout.bottom)?,
        Base::Rootfs(rootfs) => rootfs.to_path_buf(),
    };
    let lowers: Vec<PathBuf> = layers.iter().cloned().chain([bottom]).collect();
    planner.overlay(0, Path::new(ROOT), &lowers, Path::new(UPPER))?;

    if let Base::Host(layout) = base {
        for (n, leaf) in layout.leaves.iter().enumerate() {
            let Some(mut lowers) = host_visible(layers, leaf)? else {
                continue;
            };
            lowers.push(planner.host_lower(&Path::new("/").join(leaf))?);
            let upper = Path::new(UPPER).join(leaf);
            fs::create_dir_all(step_dir.join(&upper))?;
            planner.overlay(n + 1, &Path::new(ROOT).join(leaf), &lowers, &upper)?;
            leaf_uppers.push(upper);
        }
        for file in &layout.files {
            if host_visible(layers, file)?.is_some_and(|l| l.is_empty()) {
                planner.mounts.push(MountOp::BindReadOnly {
                    source: Path::new("/").join(file),
                    target: Path::new(ROOT).join(file),
                });
            }
        }
    }
    Ok(RootfsPlan {
        mounts: planner.mounts,
        leaf_uppers,
    })
}

struct Planner<'a> {
    step_dir: &'a Path,
    store: &'a Path,
    mounts: Vec<MountOp>,
    views: usize,
}

impl Planner<'_> {
    /// The host directory `dir` as a lower: itself, or a view of it when it
    /// contains the layer store.
    fn host_lower(&mut self, dir: &Path) -> io::Result<PathBuf> {
        if !self.store.starts_with(dir) {
            return Ok(dir.to_owned());
        }
        if self.views == 0 {
            fs::create_dir(self.step_dir.join(EMPTY))?;
            fs::create_dir(self.step_dir.join(VIEWS))?;
            self.mounts.push(MountOp::EmptyTmpfs {
                target: PathBuf::from(EMPTY),
            });
        }
        let target = Path::new(VIEWS).join(self.views.to_string());
        self.views += 1;
        fs::create_dir(self.step_dir.join(&target))?;
        self.mounts.push(MountOp::View {
            target: target.clone(),
            empty: PathBuf::from(EMPTY),
            lower: dir.to_owned(),
        });
        Ok(self.step_dir.join(target))
    }

    /// Adds overlay number `n`: symlinks `l/<n>/<i>` to each lower and
    /// `l/<n>/u` to the upper, and a work directory `w/<n>`.
    fn overlay(&mut self, n: usize, target: &Path, lowers: &[PathBuf], upper: &Path) -> io::Result<()> {
        let step_dir = self.step_dir;
        let links = Path::new(LINKS).join(n.to_string());
        fs::create_dir(step_dir.join(&links))?;
        let mut short = Vec::with_capacity(lowers.len());
        for (i, lower) in lowers.iter().enumerate() {
            let link = links.join(i.to_string());
            std::os::unix::fs::symlink(lower, step_dir.join(&link))?;
            short.push(link);
        }
        let upper_link = links.join("u");
        std::os::unix::fs::symlink(step_dir.join(upper), step_dir.join(&upper_link))?;
        let work = Path::new(WORK).join(n.to_string());
        fs::create_dir(step_dir.join(&work))?;
        self.mounts.push(MountOp::Overlay {
            target: target.to_owned(),
            lowers: short,
            upper: upper_link,
            work,
        });
        Ok(())
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
