//! Where a step's cache volumes are mounted: mount paths made absolute, a
//! step's volumes layered over its pipeline's, and the rules names and
//! paths follow (checked when a pipeline loads, before anything runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::envelope::{Definition, Step, VolumeMount, Volumes};
use crate::validate::{printable, ValidationErrorKind, VolumeOrigin};

/// Where a step's workspace is: a relative mount path is under it.
pub const WORKSPACE: &str = "/workspace";

/// The kernel's filesystems: no volume is mounted at or under them.
const KERNEL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The longest volume name.
const MAX_NAME: usize = 64;

/// `written`, a mount path as the IR gives it, made absolute (a relative
/// path is under [`WORKSPACE`]) and normalised lexically: repeated `/`, `.`
/// and a trailing `/` are dropped. `..` is kept as it is (validation
/// refuses it).
pub fn mount_path(written: &str) -> PathBuf {
    let mut path = PathBuf::from(if written.starts_with('/') { "/" } else { WORKSPACE });
    for part in written.split('/').filter(|part| !part.is_empty() && *part != ".") {
        path.push(part);
    }
    path
}

/// The cache volumes step `step` of the pipeline `definition` mounts, by
/// absolute mount path: the pipeline's, then the step's own over them (the
/// step's wins where both give one path).
///
/// Meant for a validated pipeline, whose mount paths are all valid and do
/// not nest; see [`crate::Plan::volumes`] for a planned one.
pub fn effective_volumes(definition: &Definition, step: &Step) -> BTreeMap<PathBuf, VolumeMount> {
    layered(definition.volumes.as_ref(), step.volumes.as_ref())
}

/// `step`'s volumes over `pipeline`'s, by absolute mount path.
pub(crate) fn layered(pipeline: Option<&Volumes>, step: Option<&Volumes>) -> BTreeMap<PathBuf, VolumeMount> {
    pipeline
        .into_iter()
        .chain(step)
        .flatten()
        .map(|(path, mount)| (mount_path(path), mount.clone()))
        .collect()
}

/// Whether `name` can name a volume: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
/// It becomes a directory name, so it holds no `/` and is neither `.` nor
/// `..`.
pub fn is_volume_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.len() <= MAX_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Why a mount path cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MountPathError {
    #[error("a mount path cannot be empty")]
    Empty,
    #[error("it contains a NUL byte")]
    Nul,
    #[error("`..` is not allowed in a mount path")]
    ParentDir,
    #[error("a volume at `/` would hide the whole filesystem")]
    Root,
    #[error("a volume at the workspace would hide the sources (mount one inside it, such as `target`)")]
    Workspace,
    #[error("`{0}` and what is under it belong to the kernel")]
    Kernel(&'static str),
}

/// Checks one mount path as written.
pub fn check_mount_path(written: &str) -> Result<(), MountPathError> {
    if written.is_empty() {
        return Err(MountPathError::Empty);
    }
    if written.contains('\0') {
        return Err(MountPathError::Nul);
    }
    if written.split('/').any(|part| part == "..") {
        return Err(MountPathError::ParentDir);
    }
    let path = mount_path(written);
    if path == Path::new("/") {
        return Err(MountPathError::Root);
    }
    if path == Path::new(WORKSPACE) {
        return Err(MountPathError::Workspace);
    }
    if let Some(dir) = KERNEL_DIRS.into_iter().find(|dir| path.starts_with(dir)) {
        return Err(MountPathError::Kernel(dir));
    }
    Ok(())
}

/// Checks one table of volumes on its own (a pipeline's or a step's): every
/// name and path valid, and no two paths that resolve to one or nest.
pub(crate) fn check_table(volumes: &Volumes) -> Result<(), ValidationErrorKind> {
    for (written, mount) in volumes {
        check_mount_path(written).map_err(|reason| ValidationErrorKind::VolumePath {
            path: written.clone(),
            reason,
        })?;
        if !is_volume_name(&mount.name) {
            return Err(ValidationErrorKind::VolumeName {
                path: written.clone(),
                name: mount.name.clone(),
            });
        }
    }
    let mut seen: BTreeMap<PathBuf, &str> = BTreeMap::new();
    for written in volumes.keys() {
        if let Some(first) = seen.insert(mount_path(written), written) {
            return Err(ValidationErrorKind::VolumeSamePath {
                first: first.to_owned(),
                second: written.clone(),
            });
        }
    }
    check_nesting(volumes.keys().map(|written| (written, VolumeOrigin::Own)))
}

/// Checks that no volume a step mounts (its pipeline's and its own, both
/// valid on their own) is inside another.
pub(crate) fn check_layered(pipeline: &Volumes, step: &Volumes) -> Result<(), ValidationErrorKind> {
    // The step's entry replaces the pipeline's at the same path.
    let replaced: Vec<PathBuf> = step.keys().map(|written| mount_path(written)).collect();
    let pipeline = pipeline
        .keys()
        .filter(|written| !replaced.contains(&mount_path(written)))
        .map(|written| (written, VolumeOrigin::Pipeline));
    check_nesting(pipeline.chain(step.keys().map(|written| (written, VolumeOrigin::Own))))
}

/// Refuses two mount paths of which one is inside the other (distinct
/// paths, all valid).
fn check_nesting<'a>(paths: impl Iterator<Item = (&'a String, VolumeOrigin)>) -> Result<(), ValidationErrorKind> {
    let mut resolved: Vec<(PathBuf, VolumeOrigin)> =
        paths.map(|(written, origin)| (mount_path(written), origin)).collect();
    // Component order: a path comes before those inside it.
    resolved.sort();
    for (i, (inner, inner_origin)) in resolved.iter().enumerate() {
        if let Some((outer, outer_origin)) = resolved[..i].iter().find(|(outer, _)| inner.starts_with(outer)) {
            return Err(ValidationErrorKind::VolumesNest {
                outer: shown(outer),
                outer_origin: *outer_origin,
                inner: shown(inner),
                inner_origin: *inner_origin,
            });
        }
    }
    Ok(())
}

fn shown(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_made_absolute_and_normalised() {
        for (written, resolved) in [
            ("target", "/workspace/target"),
            ("./target/", "/workspace/target"),
            ("a//b/./c", "/workspace/a/b/c"),
            ("/root/.cargo/registry", "/root/.cargo/registry"),
            ("//cache//", "/cache"),
            ("/workspace/target", "/workspace/target"),
            (".", "/workspace"),
            ("a/../b", "/workspace/a/../b"),
        ] {
            assert_eq!(mount_path(written), Path::new(resolved), "{written}");
        }
    }

    #[test]
    fn volume_names() {
        let longest = format!("a{}", "b".repeat(63));
        for ok in ["a", "0", "cargo-registry", "Cargo_Target.v2", "a-", longest.as_str()] {
            assert!(is_volume_name(ok), "{ok}");
        }
        let too_long = format!("{longest}c");
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "..",
            "a/b",
            "a b",
            "a:b",
            "é",
            "a\0",
            too_long.as_str(),
        ] {
            assert!(!is_volume_name(bad), "{bad}");
        }
    }

    #[test]
    fn mount_paths_that_cannot_be_used() {
        for (written, reason) in [
            ("", MountPathError::Empty),
            ("a\0b", MountPathError::Nul),
            ("..", MountPathError::ParentDir),
            ("target/../..", MountPathError::ParentDir),
            ("/a/../b", MountPathError::ParentDir),
            ("/", MountPathError::Root),
            ("//", MountPathError::Root),
            ("/.", MountPathError::Root),
            (".", MountPathError::Workspace),
            ("./", MountPathError::Workspace),
            ("/workspace", MountPathError::Workspace),
            ("/workspace/", MountPathError::Workspace),
            ("/proc", MountPathError::Kernel("/proc")),
            ("/proc/self", MountPathError::Kernel("/proc")),
            ("/sys/fs/cgroup", MountPathError::Kernel("/sys")),
            ("//dev/shm", MountPathError::Kernel("/dev")),
        ] {
            assert_eq!(check_mount_path(written), Err(reason), "{written:?}");
        }
        for ok in [
            "target",
            "/processes",
            "/device",
            "/workspace2",
            "a..b",
            "/root/.cargo",
            "..a",
        ] {
            assert_eq!(check_mount_path(ok), Ok(()), "{ok:?}");
        }
    }
}
