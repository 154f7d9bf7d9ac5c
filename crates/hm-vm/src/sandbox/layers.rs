//! Layers and their lifetime: a layer is shared (`Arc`) by the snapshots
//! and the running VMs that stack it, and its directory is removed when the
//! last of them lets go, never while a step still has it mounted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::fsutil::remove_tree;

/// Directories to remove, removed off the async threads; `drain` waits for
/// all of them.
#[derive(Default)]
pub(super) struct Trash {
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Trash {
    /// Removes `path` in the background (at once, outside a runtime).
    pub(super) fn discard(&self, path: PathBuf) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn_blocking(move || {
                    let _ = remove_tree(&path);
                });
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Err(_) => {
                let _ = remove_tree(&path);
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

/// A committed layer directory. A layer of this process is removed when
/// dropped; a stored one belongs to the registry and stays.
pub(super) struct Layer {
    path: PathBuf,
    trash: Option<Arc<Trash>>,
}

impl Layer {
    /// A layer of this process.
    pub(super) fn new(path: PathBuf, trash: &Arc<Trash>) -> Arc<Self> {
        Arc::new(Layer {
            path,
            trash: Some(trash.clone()),
        })
    }

    /// A layer in the persistent store.
    pub(super) fn stored(path: PathBuf) -> Arc<Self> {
        Arc::new(Layer { path, trash: None })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn is_stored(&self) -> bool {
        self.trash.is_none()
    }

    /// The layer's name: its directory's.
    pub(super) fn name(&self) -> String {
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
