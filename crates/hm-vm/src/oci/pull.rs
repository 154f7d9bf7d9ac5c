//! Pulling an image from a registry into the image store.
//!
//! The manifest is resolved first (an index narrowed to this machine's
//! platform), from the registry's mirrors in order and then the registry
//! itself. Layers missing from the blob store are then downloaded, three at
//! a time, each verified against its digest before it is stored; layer
//! `n` is unpacked as soon as it and the layers under it are there, so
//! unpacking goes on while later layers download. The root filesystem is
//! assembled in a locked temporary directory and renamed into place at the
//! end: an interrupted or failed pull stores no image and no unverified
//! blob.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde::Deserialize;
use tokio::sync::{oneshot, AcquireError, Semaphore};
use tokio::task::JoinError;

use super::blobs::{digest_of, BlobError, BlobStore, DigestError};
use super::platform::{pick, IndexEntry, NoPlatformImage, Platform};
use super::reference::{endpoint, is_loopback, ImageName, ReferenceError};
use super::unpack::{apply_layer, UnpackError, UnpackOptions, UnpackReport};
use crate::credentials::{self, Credentials};
use crate::images::{ImageInfo, ImageStore};
use crate::ImageError;

/// Layers downloaded at once (as `docker pull` does).
const CONCURRENT_DOWNLOADS: usize = 3;

/// The media types a manifest request accepts.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Where and how images are pulled.
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// Registries (`host:port`) that may be reached over plain HTTP;
    /// loopback ones always may.
    pub insecure: Vec<String>,
    /// Mirrors per registry (as references name it: `docker.io`), tried in
    /// order before the registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// The platform picked from an index.
    pub platform: Platform,
    /// The Docker client's configuration directory, whose `config.json`
    /// has the credentials (`$DOCKER_CONFIG`, else `~/.docker`).
    pub client_config: Option<PathBuf>,
}

impl Default for PullSettings {
    fn default() -> Self {
        PullSettings {
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            platform: Platform::host(),
            client_config: None,
        }
    }
}

/// What a pull is doing, for a progress display or events.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The manifest is known; `layers` are (digest, size, already stored).
    Resolved {
        image: String,
        digest: String,
        source: String,
        layers: Vec<(String, u64, bool)>,
    },
    /// Bytes of a layer downloaded so far.
    Downloading { layer: String, done: u64, total: u64 },
    /// A layer is downloaded and verified.
    Downloaded { layer: String },
    /// A layer is applied to the root filesystem.
    Unpacked { layer: String },
}

/// Watches a pull, and may stop it.
pub trait PullObserver: Send + Sync {
    fn event(&self, event: PullEvent);
    /// Whether to stop: the pull then stores nothing and returns
    /// [`PullError::Interrupted`].
    fn stopped(&self) -> bool;
}

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub info: ImageInfo,
    /// False when the local image already was this one.
    pub fetched: bool,
    /// Device nodes left out (they need root), over all layers.
    pub skipped_devices: u64,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("invalid image reference `{reference}`: {detail}")]
    BadReference {
        reference: String,
        #[source]
        detail: ReferenceError,
    },
    #[error("cannot pull `{image}`: {detail}{}", after(tried))]
    Registry {
        image: String,
        #[source]
        detail: RemoteError,
        /// What the mirrors said before the registry itself failed (as
        /// `mirror HOST`).
        tried: Vec<(String, RemoteError)>,
    },
    #[error("cannot pull `{image}`: layer {layer}: {detail}")]
    Layer {
        image: String,
        layer: String,
        #[source]
        detail: LayerError,
    },
    #[error("cannot pull `{image}`: {detail}")]
    Store {
        image: String,
        #[source]
        detail: StoreError,
    },
    #[error("the pull of `{image}` was interrupted; nothing of it is stored")]
    Interrupted { image: String },
}

/// ` (after what the mirrors said)`, or nothing.
fn after(tried: &[(String, RemoteError)]) -> String {
    if tried.is_empty() {
        return String::new();
    }
    let tried: Vec<String> = tried.iter().map(|(from, err)| format!("{from}: {err}")).collect();
    format!(" (after {})", tried.join("; "))
}

/// A registry's or mirror's answer, explained as a user can act on it.
/// The explanation says all the answer does (the causes of a request
/// that failed included), so the answer is no `#[source]` to print again.
#[derive(Debug, thiserror::Error)]
#[error("{}", explain(answer, from))]
pub struct ProtocolError {
    /// Who answered, as the message names it (`docker.io`, `mirror HOST`).
    pub from: String,
    pub answer: OciDistributionError,
}

/// Why a registry or mirror did not give the image's manifest or config.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The Docker configuration's credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the registry sent manifest {digest} for {pinned}")]
    NotPinned { digest: String, pinned: String },
    #[error("its manifest {digest} is not valid: {source}")]
    InvalidManifest {
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Platform(#[from] NoPlatformImage),
    #[error("the registry sent manifest {digest} for {wanted} of index {index}")]
    NotListed {
        digest: String,
        wanted: String,
        index: String,
    },
    #[error("its manifest {digest} for {platform} is not valid: {source}")]
    InvalidPlatformManifest {
        digest: String,
        platform: Platform,
        #[source]
        source: serde_json::Error,
    },
    #[error("its index {index} lists another index for {platform}")]
    NestedIndex { index: String, platform: Platform },
    #[error("its manifest {digest} has no config (is it an image?)")]
    NoConfig { digest: String },
    #[error("layer {digest} has media type `{media_type}`, which is not an image layer")]
    NotALayer { digest: String, media_type: String },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("its config {digest}: {source}")]
    ConfigDownload {
        digest: String,
        #[source]
        source: ProtocolError,
    },
    #[error("its config {digest}: {source}")]
    ConfigStore {
        digest: String,
        #[source]
        source: BlobError,
    },
    #[error("its config {digest} is not valid: {source}")]
    InvalidConfig {
        digest: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why one layer could not be downloaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("interrupted")]
    Interrupted,
    #[error("the download broke off after {written} of {total} bytes: {source}")]
    BrokeOff {
        written: u64,
        total: u64,
        #[source]
        source: io::Error,
    },
    #[error("the download broke off after {written} of {total} bytes")]
    Short { written: u64, total: u64 },
    #[error("cannot write it to the blob store: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Permit(#[source] AcquireError),
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

/// Why the pulled image could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    LockTask(#[source] JoinError),
    #[error("cannot lock the image store: {source}")]
    ImageLock {
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Images(#[from] ImageError),
    #[error("cannot lock the blob store in {}: {source}", dir.display())]
    BlobLock {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write blobs in {}: {source}", dir.display())]
    Staging {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a download failed: {0}")]
    Download(#[source] JoinError),
    #[error("unpacking failed: {0}")]
    Unpack(#[source] JoinError),
    #[error("a layer's download stopped")]
    DownloadStopped,
}

/// The parts of an image manifest a pull needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    config: Option<OciDescriptor>,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

/// One place to fetch from: a mirror, or the registry itself (`None`).
struct Source {
    mirror: Option<String>,
    auth: RegistryAuth,
}

impl Source {
    fn describe(&self, name: &ImageName) -> String {
        match &self.mirror {
            Some(mirror) => format!("mirror {mirror}"),
            None => name.registry().to_owned(),
        }
    }

    /// What this source answered, as an error.
    fn refused(&self, name: &ImageName, answer: OciDistributionError) -> ProtocolError {
        ProtocolError {
            from: self.describe(name),
            answer,
        }
    }
}

/// Pulls `name` into the image store of `cache_dir`, unless the stored
/// image already has the registry's current manifest.
pub async fn pull(
    cache_dir: &Path,
    name: &ImageName,
    settings: &PullSettings,
    observer: Arc<dyn PullObserver>,
) -> Result<Pulled, PullError> {
    let image = name.canonical();
    let client = client_for(name, settings);
    let sources = sources_for(name, settings).map_err(|detail| PullError::Registry {
        image: image.clone(),
        detail,
        tried: Vec::new(),
    })?;
    let (source, digest, manifest) = resolve(&client, name, &sources, &settings.platform).await?;
    let images = ImageStore::new(cache_dir);
    let store_err = |detail: StoreError| PullError::Store {
        image: image.clone(),
        detail,
    };
    let current = |images: &ImageStore| {
        images
            .get(&image)
            .ok()
            .flatten()
            .filter(|info| info.digest.as_deref() == Some(digest.as_str()))
    };
    if let Some(info) = current(&images) {
        return Ok(Pulled {
            info,
            fetched: false,
            skipped_devices: 0,
        });
    }
    // One process pulls an image at a time; the next finds it done.
    let lock = {
        let images = images.clone();
        let image = image.clone();
        tokio::task::spawn_blocking(move || images.pull_lock(&image))
            .await
            .map_err(|err| store_err(StoreError::LockTask(err)))?
            .map_err(|source| store_err(StoreError::ImageLock { source }))?
    };
    if let Some(info) = current(&images) {
        return Ok(Pulled {
            info,
            fetched: false,
            skipped_devices: 0,
        });
    }
    let pulled = fetch(&client, name, &sources[source], digest, manifest, cache_dir, observer).await;
    drop(lock);
    pulled
}

/// The client for a pull: plain HTTP for loopback and configured
/// registries and mirrors, HTTPS for the rest.
pub(crate) fn client_for(name: &ImageName, settings: &PullSettings) -> Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // Another part of the process may have installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut hosts: Vec<&str> = settings
        .mirrors
        .get(name.registry())
        .map(|m| m.iter().map(String::as_str).collect())
        .unwrap_or_default();
    hosts.push(endpoint(name.registry()));
    let plain: Vec<String> = hosts
        .into_iter()
        .filter(|host| is_loopback(host) || settings.insecure.iter().any(|i| i == host))
        .map(str::to_owned)
        .collect();
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("hm/", env!("CARGO_PKG_VERSION")),
        // One request per blob where a chunked upload takes two (the
        // remote cache's pushes; a registry's request rate is what bounds
        // them).
        use_monolithic_push: true,
        ..ClientConfig::default()
    })
}

/// The credentials the Docker configuration has for `host`.
pub(crate) fn registry_auth(settings: &PullSettings, host: &str) -> Result<RegistryAuth, RemoteError> {
    let found = credentials::for_registry(settings.client_config.as_deref(), host)?;
    Ok(match found {
        None => RegistryAuth::Anonymous,
        Some(Credentials::Basic { username, password }) => RegistryAuth::Basic(username, password),
        // Registries that issue refresh tokens take them as the password
        // of the `<token>` user at their token endpoint.
        Some(Credentials::IdentityToken(token)) => RegistryAuth::Basic("<token>".to_owned(), token),
    })
}

/// The mirrors of the registry, then the registry, each with the
/// credentials the Docker configuration has for it.
fn sources_for(name: &ImageName, settings: &PullSettings) -> Result<Vec<Source>, RemoteError> {
    let auth = |host: &str| registry_auth(settings, host);
    let mut sources = Vec::new();
    for mirror in settings.mirrors.get(name.registry()).into_iter().flatten() {
        sources.push(Source {
            mirror: Some(mirror.clone()),
            auth: auth(mirror)?,
        });
    }
    sources.push(Source {
        mirror: None,
        auth: auth(name.registry())?,
    });
    Ok(sources)
}

/// The image manifest (and its digest) for the platform, from the first
/// source that has it.
async fn resolve(
    client: &Client,
    name: &ImageName,
    sources: &[Source],
    platform: &Platform,
) -> Result<(usize, String, Manifest), PullError> {
    let image = name.canonical();
    let mut tried = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match resolve_at(client, name, source, platform).await {
            Ok((digest, manifest)) => return Ok((i, digest, manifest)),
            // The registry itself has the last word.
            Err(detail) if source.mirror.is_some() => tried.push((source.describe(name), detail)),
            Err(detail) => return Err(PullError::Registry { image, detail, tried }),
        }
    }
    unreachable!("the registry itself is always the last source")
}

async fn resolve_at(
    client: &Client,
    name: &ImageName,
    source: &Source,
    platform: &Platform,
) -> Result<(String, Manifest), RemoteError> {
    let host = source.mirror.as_deref();
    let reference = name.via(host);
    client
        .auth(&reference, &source.auth, RegistryOperation::Pull)
        .await
        .map_err(|err| source.refused(name, err))?;
    let (bytes, digest) = manifest_at(client, &reference, source, name).await?;
    if let Some(pinned) = name.digest() {
        if digest != pinned {
            return Err(RemoteError::NotPinned {
                digest,
                pinned: pinned.to_owned(),
            });
        }
    }
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(manifest) => manifest,
        Err(source) => return Err(RemoteError::InvalidManifest { digest, source }),
    };
    let Some(entries) = &manifest.manifests else {
        return Ok((digest, manifest));
    };
    let entry = pick(entries, platform)?;
    let child = name.at(&entry.digest, host);
    let (bytes, child_digest) = manifest_at(client, &child, source, name).await?;
    if child_digest != entry.digest {
        return Err(RemoteError::NotListed {
            digest: child_digest,
            wanted: entry.digest.clone(),
            index: digest,
        });
    }
    let manifest: Manifest = match serde_json::from_slice(&bytes) {
        Ok(manifest) => manifest,
        Err(source) => {
            return Err(RemoteError::InvalidPlatformManifest {
                digest: child_digest,
                platform: platform.clone(),
                source,
            })
        }
    };
    if manifest.manifests.is_some() {
        return Err(RemoteError::NestedIndex {
            index: digest,
            platform: platform.clone(),
        });
    }
    Ok((child_digest, manifest))
}

/// A manifest's bytes and their digest, computed here (not taken from a
/// header).
async fn manifest_at(
    client: &Client,
    reference: &Reference,
    source: &Source,
    name: &ImageName,
) -> Result<(bytes::Bytes, String), ProtocolError> {
    let (bytes, _) = client
        .pull_manifest_raw(reference, &source.auth, MANIFEST_TYPES)
        .await
        .map_err(|err| source.refused(name, err))?;
    let digest = digest_of(&bytes);
    Ok((bytes, digest))
}

/// A registry error as a user can act on it.
fn explain(err: &OciDistributionError, from: &str) -> String {
    let text = match err {
        OciDistributionError::AuthenticationFailure(reason) => {
            format!("authentication failed at {from}: {}", reason.trim())
        }
        OciDistributionError::UnauthorizedError { .. } => format!(
            "{from} refused access (unauthorized): log in with `docker login`, or add credentials for it to ~/.docker/config.json"
        ),
        OciDistributionError::ImageManifestNotFoundError(_) => format!("{from} has no such image"),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope.errors.iter().map(|e| format!("{:?}: {}", e.code, e.message)).collect();
            let joined = codes.join("; ");
            if joined.contains("UNAUTHORIZED") || joined.contains("DENIED") {
                format!(
                    "{from} refused access ({joined}): log in with `docker login`, or add credentials for it to ~/.docker/config.json"
                )
            } else if joined.contains("MANIFEST_UNKNOWN") || joined.contains("NAME_UNKNOWN") {
                format!("{from} has no such image ({joined})")
            } else {
                format!("{from} answered: {joined}")
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            format!("{from} answered HTTP {code}: {}", message.trim())
        }
        OciDistributionError::RequestError(source) => {
            let mut text = format!("cannot reach {from}: {source}");
            let mut cause = std::error::Error::source(source);
            while let Some(inner) = cause {
                text.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            text
        }
        other => format!("{from}: {other}"),
    };
    text
}

/// Downloads what is missing and assembles the image.
async fn fetch(
    client: &Client,
    name: &ImageName,
    source: &Source,
    digest: String,
    manifest: Manifest,
    cache_dir: &Path,
    observer: Arc<dyn PullObserver>,
) -> Result<Pulled, PullError> {
    let image = name.canonical();
    let registry_err = |detail: RemoteError| PullError::Registry {
        image: image.clone(),
        detail,
        tried: Vec::new(),
    };
    let store_err = |detail: StoreError| PullError::Store {
        image: image.clone(),
        detail,
    };
    let host = source.mirror.as_deref();
    let config = manifest
        .config
        .clone()
        .ok_or_else(|| registry_err(RemoteError::NoConfig { digest: digest.clone() }))?;
    for layer in &manifest.layers {
        if !is_layer_type(&layer.media_type) {
            return Err(registry_err(RemoteError::NotALayer {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            }));
        }
        super::blobs::check_digest(&layer.digest).map_err(|err| registry_err(err.into()))?;
    }
    let blobs = BlobStore::new(cache_dir);
    let _shared = blobs.lock(false).map_err(|source| {
        store_err(StoreError::BlobLock {
            dir: cache_dir.to_owned(),
            source,
        })
    })?;
    let staging = blobs.staging().map_err(|source| {
        store_err(StoreError::Staging {
            dir: cache_dir.to_owned(),
            source,
        })
    })?;
    let images = ImageStore::new(cache_dir);
    let assembly = images.begin().map_err(|err| store_err(err.into()))?;
    let rootfs = assembly.path().join("rootfs");
    std::fs::create_dir(&rootfs).map_err(|source| {
        store_err(StoreError::Create {
            path: rootfs.clone(),
            source,
        })
    })?;

    // The configuration: small, read whole.
    let config_bytes = match blobs.path(&config.digest).map_err(|err| registry_err(err.into()))? {
        path if path.is_file() => match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(source) => return Err(store_err(StoreError::Read { path, source })),
        },
        _ => {
            let mut bytes = Vec::new();
            client
                .pull_blob(&name.via(host), &config, &mut bytes)
                .await
                .map_err(|err| {
                    registry_err(RemoteError::ConfigDownload {
                        digest: config.digest.clone(),
                        source: source.refused(name, err),
                    })
                })?;
            blobs.put(staging.path(), &config.digest, &bytes).map_err(|source| {
                registry_err(RemoteError::ConfigStore {
                    digest: config.digest.clone(),
                    source,
                })
            })?;
            bytes
        }
    };
    let image_config: super::layout::ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| {
        registry_err(RemoteError::InvalidConfig {
            digest: config.digest.clone(),
            source,
        })
    })?;

    observer.event(PullEvent::Resolved {
        image: image.clone(),
        digest: digest.clone(),
        source: source.describe(name),
        layers: manifest
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size.max(0) as u64, blobs.has(&l.digest)))
            .collect(),
    });

    // Downloads, three at a time; each layer's path reaches the unpacker
    // through its own channel, in layer order.
    let permits = Arc::new(Semaphore::new(CONCURRENT_DOWNLOADS));
    let mut downloads = tokio::task::JoinSet::new();
    let mut ready = Vec::new();
    for layer in &manifest.layers {
        let (tx, rx) = oneshot::channel();
        ready.push((layer.digest.clone(), rx));
        let path = blobs.path(&layer.digest).map_err(|err| registry_err(err.into()))?;
        if path.is_file() {
            let _ = tx.send(path);
            continue;
        }
        let job = Download {
            client: client.clone(),
            reference: name.via(host),
            layer: layer.clone(),
            blobs: blobs.clone(),
            staging: staging.path().to_owned(),
            observer: observer.clone(),
        };
        let permits = permits.clone();
        downloads.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| (job.layer.digest.clone(), LayerError::Permit(e)))?;
            let layer = job.layer.digest.clone();
            let path = job.run().await.map_err(|detail| (layer.clone(), detail))?;
            let _ = tx.send(path);
            Ok::<(), (String, LayerError)>(())
        });
    }

    let unpack_observer = observer.clone();
    let unpack_root = rootfs.clone();
    let mut unpacking = tokio::task::spawn_blocking(move || unpack_all(ready, &unpack_root, &*unpack_observer));
    let unpacked = loop {
        tokio::select! {
            biased;
            Some(joined) = downloads.join_next() => match joined {
                Ok(Ok(())) => {}
                Ok(Err((layer, detail))) => {
                    downloads.abort_all();
                    // The unpacker stops at the closed channel.
                    let _ = (&mut unpacking).await;
                    return Err(layer_error(&image, layer, detail, &*observer));
                }
                Err(err) => return Err(store_err(StoreError::Download(err))),
            },
            joined = &mut unpacking => break joined.map_err(|err| store_err(StoreError::Unpack(err)))?,
        }
    };
    let report = match unpacked {
        Ok(report) => report,
        Err(UnpackFailure::Stopped) => return Err(PullError::Interrupted { image }),
        Err(UnpackFailure::Layer(layer, detail)) => return Err(layer_error(&image, layer, detail, &*observer)),
        Err(UnpackFailure::NotDownloaded) => {
            // A download failed; its own error says why.
            while let Some(joined) = downloads.join_next().await {
                if let Ok(Err((layer, detail))) = joined {
                    return Err(layer_error(&image, layer, detail, &*observer));
                }
            }
            return Err(store_err(StoreError::DownloadStopped));
        }
    };
    drop(staging);

    let pulled_at = now();
    let mut blob_list = vec![config.digest.clone()];
    blob_list.extend(manifest.layers.iter().map(|l| l.digest.clone()));
    let env = image_config.env();
    let info = ImageInfo {
        name: image.clone(),
        id: digest.clone(),
        created: pulled_at,
        source: match host {
            Some(mirror) => format!("{image} (through {mirror})"),
            None => image.clone(),
        },
        size_bytes: report.bytes,
        files: report.entries,
        env,
        digest: Some(digest),
        pulled: Some(pulled_at),
        blobs: blob_list,
    };
    images.install(assembly, &info).map_err(|err| store_err(err.into()))?;
    Ok(Pulled {
        info,
        fetched: true,
        skipped_devices: report.skipped_devices,
    })
}

/// A layer's error, or the interruption that caused it.
fn layer_error(image: &str, layer: String, detail: LayerError, observer: &dyn PullObserver) -> PullError {
    if observer.stopped() {
        return PullError::Interrupted {
            image: image.to_owned(),
        };
    }
    PullError::Layer {
        image: image.to_owned(),
        layer,
        detail,
    }
}

/// Whether a descriptor's media type is a filesystem layer this can apply.
fn is_layer_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// One layer to download into the blob store.
struct Download {
    client: Client,
    reference: Reference,
    layer: OciDescriptor,
    blobs: BlobStore,
    staging: PathBuf,
    observer: Arc<dyn PullObserver>,
}

impl Download {
    async fn run(self) -> Result<PathBuf, LayerError> {
        let total = self.layer.size.max(0) as u64;
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, &self.layer)
            .await
            .map_err(|answer| ProtocolError {
                from: self.reference.resolve_registry().to_owned(),
                answer,
            })?;
        let mut writer = self.blobs.writer(&self.staging, &self.layer.digest)?;
        let mut reported = 0;
        while let Some(chunk) = stream.next().await {
            if self.observer.stopped() {
                return Err(LayerError::Interrupted);
            }
            let chunk = chunk.map_err(|source| LayerError::BrokeOff {
                written: writer.written(),
                total,
                source,
            })?;
            writer
                .write_all(&chunk)
                .map_err(|source| LayerError::Write { source })?;
            if writer.written() - reported >= 256 * 1024 {
                reported = writer.written();
                self.observer.event(PullEvent::Downloading {
                    layer: self.layer.digest.clone(),
                    done: reported,
                    total,
                });
            }
        }
        if total > 0 && writer.written() != total {
            return Err(LayerError::Short {
                written: writer.written(),
                total,
            });
        }
        let path = writer.finish()?;
        self.observer.event(PullEvent::Downloaded {
            layer: self.layer.digest.clone(),
        });
        Ok(path)
    }
}

/// Why unpacking stopped.
enum UnpackFailure {
    Stopped,
    NotDownloaded,
    Layer(String, LayerError),
}

/// Applies the layers in order, each once its download is done.
fn unpack_all(
    ready: Vec<(String, oneshot::Receiver<PathBuf>)>,
    rootfs: &Path,
    observer: &dyn PullObserver,
) -> Result<UnpackReport, UnpackFailure> {
    let root = crate::fsutil::is_root();
    let options = UnpackOptions {
        chown: root,
        devices: root,
        keep_whiteouts: false,
    };
    let mut report = UnpackReport::default();
    for (layer, rx) in ready {
        let path = rx.blocking_recv().map_err(|_| UnpackFailure::NotDownloaded)?;
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(source) => return Err(UnpackFailure::Layer(layer, LayerError::Open { path, source })),
        };
        let mut progress = |_: &UnpackReport| -> io::Result<()> {
            match observer.stopped() {
                true => Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted")),
                false => Ok(()),
            }
        };
        if let Err(err) = apply_layer(
            io::BufReader::with_capacity(1 << 20, file),
            rootfs,
            &options,
            &mut report,
            &mut progress,
        ) {
            if observer.stopped() {
                return Err(UnpackFailure::Stopped);
            }
            return Err(UnpackFailure::Layer(layer, err.into()));
        }
        observer.event(PullEvent::Unpacked { layer });
    }
    Ok(report)
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
