//! Merges a stack of overlay layers into one equivalent layer, so that deep
//! chains stay under overlayfs' limit on lower layers.
//!
//! The result keeps overlay semantics relative to whatever lies below the
//! stack: whiteouts stay whiteouts, opaque directories stay opaque, and a
//! directory that replaced a deleted entry becomes opaque. File contents are
//! hard-linked (layers never change once committed), so flattening costs one
//! directory entry per file, not a copy.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::fsutil::{apply_metadata, remove_tree, set_xattr};
use crate::sandbox::{is_opaque, OPAQUE_XATTR};

/// Flattens `layers` (top first) into the new directory `dest`, copying
/// owners when `privileged` (real root). Unprivileged, run it as root of a
/// user namespace (the sandbox helper does), so that directories a step
/// made unreadable or read-only are no obstacle.
pub fn flatten(layers: &[std::path::PathBuf], dest: &Path, privileged: bool) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    let result = layers.iter().rev().try_for_each(|layer| apply(layer, dest, privileged));
    if result.is_err() {
        let _ = remove_tree(dest);
    }
    result
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Lays the directory `src` of one layer over `dst`.
fn apply(src: &Path, dst: &Path, privileged: bool) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(src)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let (from, to) = (src.join(&name), dst.join(&name));
        let meta = fs::symlink_metadata(&from)?;
        let below = fs::symlink_metadata(&to).ok();
        if meta.is_dir() {
            let opaque = is_opaque(&from)?;
            let replaces = below.as_ref().is_some_and(|b| !b.is_dir());
            if opaque || replaces {
                remove_tree(&to)?;
            }
            if opaque || replaces || below.is_none() {
                fs::create_dir(&to)?;
            }
            if opaque || replaces {
                set_xattr(&to, OPAQUE_XATTR, b"y")?;
            }
            apply(&from, &to, privileged)?;
            apply_metadata(&to, &meta, privileged)?;
        } else {
            if below.is_some() {
                remove_tree(&to)?;
            }
            if is_whiteout(&meta) {
                nix::sys::stat::mknod(&to, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)?;
            } else {
                fs::hard_link(&from, &to)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    #[test]
    fn keeps_overlay_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let layer = |n: &str| -> PathBuf {
            let p = dir.path().join(n);
            fs::create_dir_all(&p).unwrap();
            p
        };
        let (bottom, middle, top) = (layer("bottom"), layer("middle"), layer("top"));
        fs::create_dir_all(bottom.join("w/sub")).unwrap();
        fs::write(bottom.join("w/a"), "a1").unwrap();
        fs::write(bottom.join("w/sub/x"), "x").unwrap();
        fs::write(bottom.join("gone"), "g").unwrap();
        // middle: edits a, deletes sub and gone
        fs::create_dir_all(middle.join("w")).unwrap();
        fs::write(middle.join("w/a"), "a2").unwrap();
        whiteout(&middle.join("w/sub"));
        whiteout(&middle.join("gone"));
        // top: recreates sub as a directory with other content
        fs::create_dir_all(top.join("w/sub")).unwrap();
        fs::write(top.join("w/sub/y"), "y").unwrap();

        let flat = dir.path().join("flat");
        flatten(&[top, middle, bottom], &flat, crate::fsutil::is_root()).unwrap();
        assert_eq!(fs::read_to_string(flat.join("w/a")).unwrap(), "a2");
        assert!(is_whiteout(&fs::symlink_metadata(flat.join("gone")).unwrap()));
        assert!(!flat.join("w/sub/x").exists());
        assert_eq!(fs::read_to_string(flat.join("w/sub/y")).unwrap(), "y");
        assert!(
            is_opaque(&flat.join("w/sub")).unwrap(),
            "a directory over a whiteout hides what was below"
        );
        assert!(!is_opaque(&flat.join("w")).unwrap());
    }
}
