//! Source layers on Docker (DESIGN.md §4): per source state and base image,
//! an image `hm-source-<cache>:NAME-IMAGE` holding the base image with the
//! source synced into `/workspace`, made once (one container, one upload,
//! one commit) and reused by every root step on that image while the
//! source is unchanged: a root step's container starts from it, and its
//! sync copies only what differs. Snapshots committed on top share its
//! layers, so removing its tag frees nothing they still use.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bollard::models::ContainerConfig;
use bollard::query_parameters::CommitContainerOptionsBuilder;

use super::vm::DockerVm;
use super::{docker_error, is_not_found, Inner, LABEL_CACHE, LABEL_PROJECT};
use crate::backend::{ImageRef, SyncPlan, Vm};
use crate::error::VmError;

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
        let container = self.create_container(&image.id, "source").await?;
        let mut vm = Box::new(DockerVm {
            inner: self.clone(),
            container: container.clone(),
            origin: image.id.clone(),
            base: image.id.clone(),
            done: false,
            drift: Vec::new(),
        });
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
}
