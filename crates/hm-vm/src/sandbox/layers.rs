//! Layers and their lifetime: a layer is shared (`Arc`) by the snapshots
//! and the running VMs that stack it, and its directory is removed when the
//! last of them lets go, never while a step still has it mounted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::remove::Remover;

/// Directories to remove, removed off the async threads; `drain` waits for
/// all of them.
#[derive(Default)]
pub(super) struct Trash {
    tasks: Mutex<Vec<JoinHandle<()>>>,
    remover: Remover,
}

impl Trash {
    /// Trash whose directories `remover` removes.
    pub(super) fn new(remover: Remover) -> Self {
        Trash {
            tasks: Mutex::default(),
            remover,
        }
    }

    /// Removes `path` in the background (at once, outside a runtime).
    pub(super) fn discard(&self, path: PathBuf) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let remover = self.remover.clone();
                let task = runtime.spawn_blocking(move || {
                    let _ = remover.remove(&path);
                });
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Err(_) => {
                let _ = self.remover.remove(&path);
            }
        }
    }

    /// Waits until everything discarded so far is gone.
    pub(super) async fn drain(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }
}

/// Bytes a layer takes on disk, as far as the caller may look: a directory
/// a step left to a subordinate id (`0700`, apt's `partial/`) counts as
/// itself alone.
pub(super) fn layer_size(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => return Ok(total),
            other => other?,
        };
        for entry in entries {
            total += layer_size(&entry?.path())?;
        }
    }
    Ok(total)
}

/// A committed layer directory. A layer of this process is removed when
/// dropped; a stored one belongs to the registry and stays.
pub(super) struct Layer {
    path: PathBuf,
    /// The part's name, when not its directory's.
    part: Option<String>,
    trash: Option<Arc<Trash>>,
}

impl Layer {
    /// A layer of this process.
    pub(super) fn new(path: PathBuf, trash: &Arc<Trash>) -> Arc<Self> {
        Arc::new(Layer {
            path,
            part: None,
            trash: Some(trash.clone()),
        })
    }

    /// A layer in the persistent store.
    pub(super) fn stored(path: PathBuf) -> Arc<Self> {
        Arc::new(Layer {
            path,
            part: None,
            trash: None,
        })
    }

    /// A stored layer whose part is named `part` (a source layer's).
    pub(super) fn named(path: PathBuf, part: String) -> Arc<Self> {
        Arc::new(Layer {
            path,
            part: Some(part),
            trash: None,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn is_stored(&self) -> bool {
        self.trash.is_none()
    }

    /// The layer's part name: its directory's, unless named otherwise.
    pub(super) fn name(&self) -> String {
        if let Some(part) = &self.part {
            return part.clone();
        }
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        if let Some(trash) = &self.trash {
            trash.discard(std::mem::take(&mut self.path));
        }
    }
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.path.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_layer_goes_with_its_last_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer");
        std::fs::create_dir_all(path.join("a/b")).unwrap();
        let trash = Arc::new(Trash::default());
        let snapshot = Layer::new(path.clone(), &trash);
        let running_vm = snapshot.clone();
        drop(snapshot);
        trash.drain().await;
        assert!(path.exists(), "still stacked by a running step");
        drop(running_vm);
        trash.drain().await;
        assert!(!path.exists());
    }
}
