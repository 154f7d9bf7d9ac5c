//! Source layers on Docker (DESIGN.md §4): per source state and base image,
//! an image `hm-source-<cache>:NAME-IMAGE` holding the base image with the
//! source synced into `/workspace`, made once (one container, one upload,
//! one commit) and reused by every root step on that image while the
//! source is unchanged: a root step's container starts from it, and its
//! sync copies only what differs. Snapshots committed on top share its
//! layers, so removing its tag frees nothing they still use.
//!
//! Every process that uses source images holds a shared `flock` on
//! `<cache>/docker-sources.lock` from before it first looks one up until
//! it ends, and tags are removed only under an exclusive one: never while
//! another process may be starting a container from the image (the daemon
//! does not order a removal against a container being created from it).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use bollard::models::ContainerConfig;
use bollard::query_parameters::CommitContainerOptionsBuilder;

use super::vm::{Chain, DockerVm};
use super::{docker_error, is_not_found, Inner, LABEL_CACHE, LABEL_PROJECT};
use crate::backend::{ImageRef, SyncPlan, Vm};
use crate::error::VmError;
use crate::limits::Limits;

impl Inner {
    /// `hm-source-<id>`: this cache directory's source images.
    pub(super) fn source_repo(&self) -> String {
        format!("hm-source-{}", self.cache_id)
    }

    /// The tag of source layer `name` on `image`.
    fn source_tag(&self, name: &str, image: &ImageRef) -> String {
        let image = image.id.trim_start_matches("sha256:");
        format!("{}:{name}-{}", self.source_repo(), &image[..image.len().min(12)])
    }

    /// The image id of source layer `name` on `image`, when this process
    /// found or made it.
    pub(super) fn source_image(&self, name: &str, image: &ImageRef) -> Option<String> {
        let known = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        known.get(&(name.to_owned(), image.id.clone())).cloned()
    }

    /// See [`crate::VmBackend::source_layer`].
    pub(super) async fn source_layer(
        self: &std::sync::Arc<Self>,
        name: &str,
        image: &ImageRef,
        make: Option<SyncPlan>,
    ) -> Result<bool, VmError> {
        self.hold_sources().await?;
        if self.source_image(name, image).is_some() {
            return Ok(true);
        }
        let docker = self.docker()?;
        let tag = self.source_tag(name, image);
        let id = match docker.inspect_image(&tag).await {
            Ok(inspect) => inspect.id,
            Err(err) if is_not_found(&err) => match make {
                Some(plan) => self.make_source_image(image, plan, &tag).await?,
                None => None,
            },
            Err(err) => return Err(docker_error("inspect a source image")(err)),
        };
        let Some(id) = id else { return Ok(false) };
        let mut known = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        known.insert((name.to_owned(), image.id.clone()), id);
        Ok(true)
    }

    /// Syncs the source into a container of `image` and commits it as
    /// `tag`; `None` when the source changed while it was copied.
    async fn make_source_image(
        self: &std::sync::Arc<Self>,
        image: &ImageRef,
        plan: SyncPlan,
        tag: &str,
    ) -> Result<Option<String>, VmError> {
        let container = self
            .create_container(&image.id, "source", &Limits::default(), &[])
            .await?;
        let chain = Chain {
            origin: image.id.clone(),
            base: image.id.clone(),
            ..Chain::default()
        };
        let mut vm = Box::new(DockerVm::running(
            self.clone(),
            "source".to_owned(),
            container.clone(),
            chain,
            Limits::default(),
        ));
        let synced = vm.sync(plan).await;
        let clean = synced.is_ok() && vm.drift().is_empty();
        let committed = match clean {
            true => {
                let (repo, tag) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
                let options = CommitContainerOptionsBuilder::new()
                    .container(&container)
                    .repo(repo)
                    .tag(tag)
                    .pause(false)
                    .build();
                let config = ContainerConfig {
                    labels: Some(HashMap::from([
                        (LABEL_CACHE.to_owned(), self.cache_label()),
                        (LABEL_PROJECT.to_owned(), self.config.project.clone()),
                    ])),
                    ..Default::default()
                };
                self.docker()?
                    .commit_container(options, config)
                    .await
                    .map(|c| Some(c.id))
                    .map_err(docker_error("commit a source image"))
            }
            false => Ok(None),
        };
        vm.destroy().await?;
        synced?;
        committed
    }

    /// Removes the tags of source images this process does not use and
    /// no project needs (see [`crate::source_layers::unneeded`]), or all
    /// of them with `all`; images still under a snapshot keep their layers.
    pub(super) async fn collect_sources(&self, grace: Duration, all: bool) {
        // Another process holding the lock may be about to use any of them.
        let Some(_exclusive) = self.sources_exclusive() else {
            return;
        };
        let used: Vec<String> = {
            let known = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            known.values().cloned().collect()
        };
        let repo = self.source_repo();
        let tags: Vec<(String, SystemTime)> = self
            .tags_with_age(&repo)
            .await
            .into_iter()
            .filter(|(_, id, _)| !used.contains(id))
            .map(|(tag, _, created)| {
                let created = SystemTime::UNIX_EPOCH + Duration::from_secs(created.max(0) as u64);
                let name = tag.rsplit_once(':').map_or(tag.as_str(), |(_, t)| t).to_owned();
                (name, created)
            })
            .collect();
        let doomed = match all {
            true => tags.into_iter().map(|(name, _)| name).collect(),
            false => crate::source_layers::unneeded(tags, grace),
        };
        for name in doomed {
            self.remove_tag(&format!("{repo}:{name}")).await;
        }
    }

    fn sources_lock_file(&self) -> std::io::Result<File> {
        std::fs::create_dir_all(&self.config.cache_dir)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.config.cache_dir.join(SOURCES_LOCK))
    }

    /// Takes this process's shared lock on source images unless it has
    /// it, waiting out a collection in another process.
    pub(super) async fn hold_sources(&self) -> Result<(), VmError> {
        let path = self.config.cache_dir.join(SOURCES_LOCK);
        while !self.try_hold_sources().map_err(VmError::io("lock", &path))? {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Whether this process holds the shared lock now.
    fn try_hold_sources(&self) -> std::io::Result<bool> {
        let mut held = self.sources_lock.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_some() {
            return Ok(true);
        }
        match Flock::lock(self.sources_lock_file()?, FlockArg::LockSharedNonblock) {
            Ok(lock) => {
                *held = Some(lock);
                Ok(true)
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(false),
            Err((_, err)) => Err(err.into()),
        }
    }

    /// The exclusive lock on source images, when no other process holds
    /// it; this process's own shared lock, if it had it, comes back when
    /// that is dropped.
    fn sources_exclusive(&self) -> Option<Exclusive<'_>> {
        let mut held = self.sources_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (lock, shared) = match held.take() {
            Some(lock) => (lock, true),
            None => (
                Flock::lock(self.sources_lock_file().ok()?, FlockArg::LockSharedNonblock).ok()?,
                false,
            ),
        };
        if lock.relock(FlockArg::LockExclusiveNonblock).is_err() {
            // A failed conversion may leave no lock: take it back now if
            // it can be, else the next use waits for it.
            if shared && lock.relock(FlockArg::LockSharedNonblock).is_ok() {
                *held = Some(lock);
            }
            return None;
        }
        Some(Exclusive {
            inner: self,
            lock: Some(lock),
            shared,
        })
    }
}

/// Under the cache directory: see the module's comment.
const SOURCES_LOCK: &str = "docker-sources.lock";

/// An exclusive hold on source images; back to shared when dropped, if
/// the process held them.
struct Exclusive<'a> {
    inner: &'a Inner,
    lock: Option<Flock<File>>,
    shared: bool,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        if self.shared && lock.relock(FlockArg::LockSharedNonblock).is_ok() {
            let mut held = self.inner.sources_lock.lock().unwrap_or_else(|p| p.into_inner());
            held.get_or_insert(lock);
        }
    }
}
