//! Removing what steps wrote. Rootless with subordinate ids, a step's
//! files may belong to ids other than the caller's (apt's `_apt`, uid 42
//! inside, is the first subordinate id + 41 outside), in directories the
//! caller may not even enter; what a plain removal cannot remove, the
//! helper removes as root of a user namespace with the steps' map.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::helper::HELPER_ARG;
use super::spec::{IdMap, Job, RemoveSpec, Report};
use crate::fsutil::remove_tree;

/// How this process removes trees its steps wrote.
#[derive(Debug, Clone, Default)]
pub(super) struct Remover {
    /// The helper and the map to remove in, when steps may leave files of
    /// subordinate ids (rootless, with a range); otherwise every file a
    /// step leaves is the caller's (or the caller is root).
    helper: Option<(PathBuf, IdMap)>,
}

impl Remover {
    /// A remover for steps run with `id_map` by `helper`.
    pub(super) fn new(helper: &Path, id_map: Option<IdMap>) -> Self {
        Remover {
            helper: id_map
                .filter(|map| map.sub.is_some())
                .map(|map| (helper.to_owned(), map)),
        }
    }

    /// Removes `path` and everything below it (a missing path is fine);
    /// blocks until it is gone.
    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        match (remove_tree(path), &self.helper) {
            (Err(err), Some((helper, map))) if err.kind() == io::ErrorKind::PermissionDenied => {
                let job = Job::Remove(RemoveSpec {
                    id_map: map.clone(),
                    paths: vec![path.to_owned()],
                });
                run_helper(helper, &job)
            }
            (result, _) => result,
        }
    }
}

impl Remover {
    /// Removes the directory of a dead session, after taking down what its
    /// steps' disks could still hold (see [`super::disk::release_under`]).
    pub(super) fn remove_dead_session(&self, path: &Path) -> io::Result<()> {
        super::disk::release_under(path);
        self.remove(path)
    }
}

/// Runs the helper on `job` and waits for it, from a blocking thread (the
/// thread waits for the helper, so its parent-death signal, which follows
/// the spawning thread, only fires if `hm` dies).
fn run_helper(helper: &Path, job: &Job) -> io::Result<()> {
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut command = Command::new(helper);
    crate::child::die_with_parent(&mut command);
    let mut child = command
        .arg(HELPER_ARG)
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // The helper's end of the socket: held by the command until dropped,
    // and the answer ends only when every holder has closed it.
    drop(command);
    let mut bytes = Vec::new();
    let talked = super::spec::send_job(&mut ours, job).and_then(|()| ours.read_to_end(&mut bytes));
    let status = child.wait()?;
    talked?;
    match serde_json::from_slice::<Report>(&bytes) {
        Ok(Report::Exited(0)) => Ok(()),
        Ok(Report::SetupFailed { stage, message }) => Err(io::Error::other(format!(
            "the sandbox helper failed at `{stage}`: {message}"
        ))),
        _ => Err(io::Error::other(format!(
            "the sandbox helper ended ({status}) without removing it"
        ))),
    }
}
