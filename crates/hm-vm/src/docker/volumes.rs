//! Cache volumes on the docker backend (see [`crate::volumes`]): each is
//! the named Docker volume `hm-vol-<id>`, created with hm's labels and
//! mounted read-write at its target when a container is created.
//!
//! Mounts are fixed at creation, so a step of a chain whose volumes are
//! not those of the container it was handed commits that container and
//! goes on in a new one from the image ([`super::vm`]); a commit leaves
//! volume contents out, so at most an empty mount point stays in it.
//! A shell holds no volume, so it gets a container without them the same
//! way, as the sandbox mounts none for it.
//!
//! The sandbox syncs the workspace before it mounts a step's volumes, so
//! source files under a mount path lie under the volume, not in it. A
//! container mounts them first: a sync that reaches into one is done in a
//! container without them, which is then moved to one with them
//! ([`reaches`]).
//!
//! A volume's size is read right after the step that used it, by `du` in
//! the step's container, and kept until the runner asks for it
//! ([`super::DockerBackend`]'s `volume_size`): the daemon tells a volume's
//! size only through `/system/df`, which walks every volume and layer.

use std::collections::HashMap;

use bollard::models::{Mount, MountType, MountVolumeOptions, VolumeCreateRequest};

use super::{docker_error, Inner, LABEL_VOLUME};
use crate::backend::{SyncPlan, VolumeBind};
use crate::error::VmError;

/// The Docker volume of cache volume `id`.
pub(crate) fn volume_name(id: &str) -> String {
    format!("hm-vol-{id}")
}

/// The volumes `binds` names in the order a container is compared by:
/// two containers mount the same when these are equal.
pub(super) fn normalized(binds: &[VolumeBind]) -> Vec<VolumeBind> {
    let mut binds = binds.to_vec();
    binds.sort_by(|a, b| a.target.cmp(&b.target));
    binds
}

/// Whether `plan` writes or removes anything at or under a target of
/// `binds`, or removes a directory that holds one: done in a container
/// that mounts them, that would change the volumes, not the workspace.
pub(super) fn reaches(plan: &SyncPlan, binds: &[VolumeBind]) -> bool {
    if binds.is_empty() {
        return false;
    }
    let under = |path: &std::path::Path| {
        let path = plan.target.join(path);
        binds.iter().any(|b| path.starts_with(&b.target))
    };
    plan.write.iter().any(|entry| under(&entry.path))
        || plan.remove.iter().any(|path| {
            let path = plan.target.join(path);
            binds
                .iter()
                .any(|b| path.starts_with(&b.target) || b.target.starts_with(&path))
        })
}

/// The mounts of a container for `binds`: each volume read-write at its
/// target. Docker would copy what the image holds at the target into an
/// empty volume; `nocopy`, as the sandbox's bind mount copies nothing.
pub(super) fn mounts(binds: &[VolumeBind]) -> Vec<Mount> {
    binds
        .iter()
        .map(|bind| Mount {
            target: Some(bind.target.to_string_lossy().into_owned()),
            source: Some(volume_name(&bind.id)),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// Each volume of `binds` once, at its first target: `du` counts a file
/// once across its arguments, so a volume mounted at two paths would be
/// all at the first and nothing at the second.
fn measured(binds: &[VolumeBind]) -> Vec<&VolumeBind> {
    let mut seen = std::collections::HashSet::new();
    binds.iter().filter(|b| seen.insert(&b.id)).collect()
}

/// The command that prints the KiB each volume of `binds` holds, one
/// `KiB<TAB>path` line each.
pub(super) fn size_command(binds: &[VolumeBind]) -> Vec<String> {
    let mut argv = vec!["du".to_owned(), "-sk".to_owned(), "--".to_owned()];
    argv.extend(measured(binds).iter().map(|b| b.target.to_string_lossy().into_owned()));
    argv
}

/// The bytes of each volume in `binds`, read from the `output` of
/// [`size_command`]; a volume whose line is missing or unreadable is left
/// out.
pub(super) fn sizes(binds: &[VolumeBind], output: &str) -> Vec<(String, u64)> {
    let by_target: HashMap<&str, u64> = output
        .lines()
        .filter_map(|line| {
            let (kib, path) = line.split_once('\t')?;
            Some((path, kib.trim().parse::<u64>().ok()?.saturating_mul(1024)))
        })
        .collect();
    measured(binds)
        .into_iter()
        .filter_map(|bind| {
            let size = by_target.get(bind.target.to_string_lossy().as_ref())?;
            Some((bind.id.clone(), *size))
        })
        .collect()
}

impl Inner {
    /// Creates the Docker volume of each of `binds` that is not there yet,
    /// labelled as everything of run `run` for step `step` is, and with
    /// its id; one that is there is taken as it is.
    pub(super) async fn create_volumes(&self, run: &str, step: &str, binds: &[VolumeBind]) -> Result<(), VmError> {
        let docker = self.docker()?;
        for bind in binds {
            let mut labels = self.labels(run, step);
            labels.insert(LABEL_VOLUME.to_owned(), bind.id.clone());
            let request = VolumeCreateRequest {
                name: Some(volume_name(&bind.id)),
                driver: Some("local".to_owned()),
                labels: Some(labels),
                ..Default::default()
            };
            docker
                .create_volume(request)
                .await
                .map_err(docker_error("create a volume"))?;
        }
        Ok(())
    }

    /// Keeps what a step's volumes held after it, for `volume_size`.
    pub(super) fn volumes_measured(&self, sizes: Vec<(String, u64)>) {
        self.volume_sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(sizes);
    }

    /// The bytes volume `id` held after the last step that used it, once.
    pub(super) fn take_volume_size(&self, id: &str) -> Option<u64> {
        self.volume_sizes.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(id: &str, target: &str) -> VolumeBind {
        VolumeBind {
            id: id.to_owned(),
            target: target.into(),
        }
    }

    #[test]
    fn sizes_are_read_per_target() {
        let binds = [bind("a", "/cache"), bind("b", "/workspace/target"), bind("c", "/gone")];
        let output = "12\t/cache\n4096\t/workspace/target\ndu: cannot access '/gone'\n";
        assert_eq!(
            sizes(&binds, output),
            [("a".to_owned(), 12 * 1024), ("b".to_owned(), 4096 * 1024)]
        );
    }

    #[test]
    fn a_sync_reaches_a_volume_under_or_around_its_target() {
        use crate::backend::{SyncEntry, SyncKind};
        let plan = |write: &[&str], remove: &[&str]| SyncPlan {
            target: "/workspace".into(),
            write: write
                .iter()
                .map(|p| SyncEntry {
                    path: p.into(),
                    kind: SyncKind::File { mode: 0o644 },
                    expected: None,
                })
                .collect(),
            remove: remove.iter().map(Into::into).collect(),
            ..SyncPlan::default()
        };
        let binds = [bind("a", "/workspace/out"), bind("b", "/cache")];
        assert!(reaches(&plan(&["out/a.txt"], &[]), &binds));
        assert!(reaches(&plan(&[], &["out"]), &binds), "the mount point itself");
        assert!(reaches(&plan(&[], &["."]), &binds), "a directory around it");
        assert!(!reaches(&plan(&["outside", "src/out/x"], &["src"]), &binds));
        assert!(!reaches(&plan(&["out/a.txt"], &["out"]), &[]), "no volumes");
    }

    #[test]
    fn a_volume_at_two_paths_is_measured_at_the_first() {
        let binds = [bind("a", "/one"), bind("a", "/two")];
        assert_eq!(size_command(&binds), ["du", "-sk", "--", "/one"]);
        assert_eq!(sizes(&binds, "8\t/one\n"), [("a".to_owned(), 8 * 1024)]);
    }

    #[test]
    fn volume_sets_compare_by_target_not_order() {
        let one = [bind("a", "/x"), bind("b", "/y")];
        let other = [bind("b", "/y"), bind("a", "/x")];
        assert_eq!(normalized(&one), normalized(&other));
        assert_ne!(normalized(&one), normalized(&[bind("a", "/x")]));
        assert_eq!(
            mounts(&one)[0].source.as_deref(),
            Some("hm-vol-a"),
            "the Docker volume of the id"
        );
    }
}
