//! A snapshot cache in an OCI registry (issue 16): each cache entry is an
//! image in one repository, tagged with its cache key. Its config (media
//! type [`CONFIG_TYPE`]) says what the local registry needs to take the
//! entry in (key, parent, backend, base, step, inputs, parts); its layers
//! are the snapshot's parts, each an OCI layer ([`super::pack`]) annotated
//! with the part's name ([`PART_ANNOTATION`]), and one more blob holds the
//! source manifest the snapshot was synced to ([`SOURCE_TYPE`]). Blobs are
//! content-addressed, so a chain pushed by one machine and extended by
//! another shares its common layers, and every blob read is checked
//! against its digest: a damaged or foreign entry is refused, never used.
//!
//! The same client, credentials (the Docker client's configuration) and
//! plain-HTTP rules as image pulls ([`super::pull`]).
//!
//! A directory can stand in for the registry ([`RemoteCache::directory`]):
//! the same images in an OCI image layout, for `hm cache save` and
//! `hm cache restore` ([`dir`]).

mod dir;

pub use dir::DirTotals;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
pub use oci_client::manifest::OciDescriptor;
use oci_client::manifest::{OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::pull::{client_for, registry_auth, PullSettings};
use super::reference::ImageName;

/// The media type of an entry's config.
pub const CONFIG_TYPE: &str = "application/vnd.hm.cache.entry.v1+json";
/// The media type of the source manifest blob.
pub const SOURCE_TYPE: &str = "application/vnd.hm.source.manifest.v1+json";
/// The media type of a part (a gzip-compressed OCI layer).
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation naming a layer's part.
pub const PART_ANNOTATION: &str = "dev.hm.part";

/// What an entry says besides its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteConfig {
    pub key: String,
    pub parent: Option<String>,
    pub backend: String,
    /// The backend's description of the snapshot's base (as stored
    /// locally).
    pub base: String,
    pub step: String,
    pub pipeline: String,
    /// The project scope the key was made in.
    pub project: String,
    pub inputs: serde_json::Value,
    /// The parts, top first (as the local registry lists them).
    pub parts: Vec<String>,
    /// The digest the local registry knows the source manifest by.
    pub manifest: Option<String>,
}

/// A part to push: its name and its packed layer (a file).
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub packed: PathBuf,
}

/// A blob of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
}

impl Layer {
    /// The layer `descriptor` names.
    pub fn of(descriptor: &OciDescriptor) -> Self {
        Layer {
            digest: descriptor.digest.clone(),
            size: descriptor.size.max(0) as u64,
        }
    }
}

/// An entry found in the registry, its config checked.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    pub config: RemoteConfig,
    /// The layer of each part, by part name.
    pub layers: BTreeMap<String, OciDescriptor>,
    pub source: OciDescriptor,
}

/// Why the remote cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("`{remote}` is not a repository reference: {detail}")]
    BadRemote { remote: String, detail: String },
    #[error("the credentials for `{registry}` cannot be read: {detail}")]
    Credentials { registry: String, detail: String },
    #[error("the registry refused or failed: {0}")]
    Registry(#[from] OciDistributionError),
    #[error("the entry `{key}` is not one of hm's: {why}")]
    Foreign { key: String, why: String },
    #[error("a blob does not match its digest `{digest}`")]
    Digest { digest: String },
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a directory `hm cache save` wrote: {why}", dir.display())]
    NotSaved { dir: PathBuf, why: String },
}

impl RemoteError {
    /// Whether the entry itself was refused (damaged, or not one of hm's),
    /// not the registry unusable.
    pub fn is_refused(&self) -> bool {
        matches!(self, RemoteError::Foreign { .. } | RemoteError::Digest { .. })
    }
}

/// One repository of a registry, or a directory, used as a cache.
pub struct RemoteCache {
    store: Store,
}

/// Where a [`RemoteCache`] keeps its images.
enum Store {
    Registry(RegistryStore),
    Dir(dir::DirStore),
}

/// One repository of a registry.
struct RegistryStore {
    client: Client,
    repo: ImageName,
    auth: RegistryAuth,
    push_auth: tokio::sync::OnceCell<()>,
}

impl RemoteCache {
    /// The cache at `remote` (`registry/repository`, no tag).
    pub fn new(remote: &str, settings: &PullSettings) -> Result<Self, RemoteError> {
        let bad = |detail: String| RemoteError::BadRemote {
            remote: remote.to_owned(),
            detail,
        };
        let repo = ImageName::parse(remote).map_err(|e| bad(e.to_string()))?;
        if repo.digest().is_some() || remote.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(bad("it names a tag or digest; give the repository alone".to_owned()));
        }
        let auth = registry_auth(settings, repo.registry()).map_err(|e| RemoteError::Credentials {
            registry: repo.registry().to_owned(),
            detail: e.to_string(),
        })?;
        Ok(RemoteCache {
            store: Store::Registry(RegistryStore {
                client: client_for(&repo, settings),
                repo,
                auth,
                push_auth: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The directory `dir` as the cache: to save into (`create`: made if
    /// missing, its entries starting empty), or to restore from.
    pub fn directory(dir: &Path, create: bool) -> Result<Self, RemoteError> {
        let store = match create {
            true => dir::DirStore::create(dir)?,
            false => dir::DirStore::open(dir)?,
        };
        Ok(RemoteCache {
            store: Store::Dir(store),
        })
    }

    /// For a directory: writes its index and deletes what no entry names
    /// (after a save); what it holds, and what this process moved.
    pub async fn finish(&self) -> Result<DirTotals, RemoteError> {
        match &self.store {
            Store::Dir(dir) => dir.finish().await,
            Store::Registry(_) => Ok(DirTotals::default()),
        }
    }

    /// For a directory: what this process wrote and read so far.
    pub fn totals(&self) -> DirTotals {
        match &self.store {
            Store::Dir(dir) => dir.totals(),
            Store::Registry(_) => DirTotals::default(),
        }
    }

    /// Whether the repository has the blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RemoteError> {
        match &self.store {
            Store::Registry(registry) => registry.has_blob(digest).await,
            Store::Dir(dir) => dir.has_blob(digest).await,
        }
    }

    /// Pushes the packed layer `packed` unless the repository has it.
    pub async fn push_layer(&self, packed: &Path) -> Result<Layer, RemoteError> {
        let (digest, size) = file_digest(packed).await?;
        match &self.store {
            Store::Registry(registry) => registry.push_blob_file(packed, &digest).await?,
            Store::Dir(dir) => dir.put_file(packed, &digest).await?,
        }
        Ok(Layer { digest, size })
    }

    /// Pushes a source manifest unless the repository has it.
    pub async fn push_source(&self, source: &[u8]) -> Result<Layer, RemoteError> {
        let digest = match &self.store {
            Store::Registry(registry) => registry.push_bytes(source.to_vec()).await?,
            Store::Dir(dir) => dir.put_bytes(source.to_vec()).await?,
        };
        Ok(Layer {
            digest,
            size: source.len() as u64,
        })
    }

    /// Pushes an entry whose parts' layers (top first, as `config.parts`)
    /// and source manifest ([`RemoteCache::push_source`]) are in the
    /// repository already: its config, then its manifest tagged with the
    /// key.
    pub async fn push_entry(&self, config: &RemoteConfig, layers: &[Layer], source: &Layer) -> Result<(), RemoteError> {
        let mut descriptors = Vec::with_capacity(layers.len() + 1);
        // Bottom first, as images list their layers.
        for (part, layer) in config.parts.iter().zip(layers).rev() {
            descriptors.push(descriptor(LAYER_TYPE, layer.digest.clone(), layer.size, Some(part)));
        }
        descriptors.push(descriptor(SOURCE_TYPE, source.digest.clone(), source.size, None));
        let config_bytes = serde_json::to_vec(config).expect("a config serializes");
        let size = config_bytes.len() as u64;
        // Each entry's config is its own: pushed without asking.
        let config_digest = match &self.store {
            Store::Registry(registry) => registry.push_config(config_bytes).await?,
            Store::Dir(dir) => dir.put_bytes(config_bytes).await?,
        };
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
            config: descriptor(CONFIG_TYPE, config_digest, size, None),
            layers: descriptors,
            ..OciImageManifest::default()
        };
        match &self.store {
            Store::Registry(registry) => registry.push_manifest(&config.key, manifest).await,
            Store::Dir(dir) => dir.put_manifest(&config.key, &manifest).await,
        }
    }

    /// Pushes an entry with its parts ([`RemoteCache::push_layer`], then
    /// [`RemoteCache::push_entry`]).
    pub async fn push(&self, config: &RemoteConfig, parts: &[Part], source: &[u8]) -> Result<(), RemoteError> {
        let mut layers = Vec::with_capacity(parts.len());
        for part in parts {
            layers.push(self.push_layer(&part.packed).await?);
        }
        let source = self.push_source(source).await?;
        self.push_entry(config, &layers, &source).await
    }

    /// The entry tagged `key`, its config read and checked (its digest,
    /// its key, one layer per part); `None` when there is none.
    pub async fn fetch(&self, key: &str) -> Result<Option<RemoteEntry>, RemoteError> {
        let manifest = match &self.store {
            Store::Registry(registry) => registry.manifest(key).await?,
            Store::Dir(dir) => dir.manifest(key).await?,
        };
        let Some(manifest) = manifest else { return Ok(None) };
        let foreign = |why: &str| RemoteError::Foreign {
            key: key.to_owned(),
            why: why.to_owned(),
        };
        if manifest.config.media_type != CONFIG_TYPE {
            return Err(foreign("its config is not an hm cache entry's"));
        }
        let bytes = self.read(key, &manifest.config).await?;
        let config: RemoteConfig =
            serde_json::from_slice(&bytes).map_err(|e| foreign(&format!("unreadable config: {e}")))?;
        if config.key != key {
            return Err(foreign("its config is another key's"));
        }
        let mut layers = BTreeMap::new();
        let mut source = None;
        for layer in manifest.layers {
            let part = layer.annotations.as_ref().and_then(|a| a.get(PART_ANNOTATION)).cloned();
            match (layer.media_type.as_str(), part) {
                (SOURCE_TYPE, None) => source = Some(layer),
                (LAYER_TYPE, Some(part)) => {
                    layers.insert(part, layer);
                }
                _ => return Err(foreign("a layer is neither a part nor the source manifest")),
            }
        }
        let source = source.ok_or_else(|| foreign("it has no source manifest"))?;
        if layers.len() != config.parts.len() || !config.parts.iter().all(|p| layers.contains_key(p)) {
            return Err(foreign("its layers are not its parts"));
        }
        Ok(Some(RemoteEntry { config, layers, source }))
    }

    /// The small blob `descriptor` of entry `key`, read whole and checked.
    async fn read(&self, key: &str, descriptor: &OciDescriptor) -> Result<Vec<u8>, RemoteError> {
        let bytes = match &self.store {
            Store::Registry(registry) => {
                let mut bytes = Vec::new();
                let reference = registry.reference(key);
                registry.client.pull_blob(&reference, descriptor, &mut bytes).await?;
                bytes
            }
            Store::Dir(dir) => dir.read_blob(descriptor).await?,
        };
        if sha256(&bytes) != descriptor.digest {
            return Err(RemoteError::Digest {
                digest: descriptor.digest.clone(),
            });
        }
        Ok(bytes)
    }

    /// Downloads the blob `descriptor` of the repository to `dest`,
    /// checking its digest; a blob that cannot be had whole and right
    /// leaves nothing.
    pub async fn download(&self, descriptor: &OciDescriptor, dest: &Path) -> Result<(), RemoteError> {
        let downloaded = match &self.store {
            Store::Registry(registry) => registry.download_to(descriptor, dest).await,
            Store::Dir(dir) => dir.copy_blob(descriptor, dest).await,
        };
        if downloaded.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        downloaded
    }

    /// The keys of the repository's entries (its tags that are cache keys).
    pub async fn keys(&self) -> Result<Vec<String>, RemoteError> {
        let keys = match &self.store {
            Store::Registry(registry) => registry.tags().await?,
            Store::Dir(dir) => dir.keys(),
        };
        Ok(keys.into_iter().filter(|t| is_key(t)).collect())
    }

    /// The source manifest of `entry`, checked.
    pub async fn source(&self, entry: &RemoteEntry) -> Result<Vec<u8>, RemoteError> {
        self.read(&entry.config.key, &entry.source).await
    }
}

/// Whether a tag is a cache key.
fn is_key(tag: &str) -> bool {
    tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit())
}

impl RegistryStore {
    /// The reference of the entry `key` (or of the repository's blobs).
    fn reference(&self, key: &str) -> Reference {
        Reference::with_tag(
            self.repo.registry().to_owned(),
            self.repo.repository().to_owned(),
            key.to_owned(),
        )
    }

    /// Authenticates for pushing, once per client.
    async fn push_auth(&self) -> Result<Reference, RemoteError> {
        let reference = self.reference("latest");
        self.push_auth
            .get_or_try_init(|| async {
                self.client
                    .auth(&reference, &self.auth, oci_client::RegistryOperation::Push)
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(reference)
    }

    async fn has_blob(&self, digest: &str) -> Result<bool, RemoteError> {
        let reference = self.push_auth().await?;
        Ok(self.client.blob_exists(&reference, digest).await?)
    }

    /// Pushes the file `packed`, whose digest is `digest`, unless the
    /// repository has it.
    async fn push_blob_file(&self, packed: &Path, digest: &str) -> Result<(), RemoteError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let data = tokio::fs::read(packed).await.map_err(|source| RemoteError::Io {
            op: "read",
            path: packed.to_owned(),
            source,
        })?;
        let reference = self.push_auth().await?;
        self.client.push_blob(&reference, data, digest).await?;
        Ok(())
    }

    /// Pushes `bytes` unless the repository has them; their digest.
    async fn push_bytes(&self, bytes: Vec<u8>) -> Result<String, RemoteError> {
        let digest = sha256(&bytes);
        if !self.has_blob(&digest).await? {
            let reference = self.push_auth().await?;
            self.client.push_blob(&reference, bytes, &digest).await?;
        }
        Ok(digest)
    }

    /// Pushes an entry's config without asking; its digest.
    async fn push_config(&self, bytes: Vec<u8>) -> Result<String, RemoteError> {
        let reference = self.push_auth().await?;
        let digest = sha256(&bytes);
        self.client.push_blob(&reference, bytes, &digest).await?;
        Ok(digest)
    }

    async fn push_manifest(&self, key: &str, manifest: OciImageManifest) -> Result<(), RemoteError> {
        self.push_auth().await?;
        self.client
            .push_manifest(&self.reference(key), &manifest.into())
            .await?;
        Ok(())
    }

    /// The manifest tagged `key`; `None` when there is none.
    async fn manifest(&self, key: &str) -> Result<Option<OciImageManifest>, RemoteError> {
        match self.client.pull_image_manifest(&self.reference(key), &self.auth).await {
            Ok((manifest, _)) => Ok(Some(manifest)),
            Err(err) if not_found(&err) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn download_to(&self, descriptor: &OciDescriptor, dest: &Path) -> Result<(), RemoteError> {
        let reference = self.reference("latest");
        let io = |op: &'static str| {
            let path = dest.to_owned();
            move |source| RemoteError::Io { op, path, source }
        };
        let mismatch = || RemoteError::Digest {
            digest: descriptor.digest.clone(),
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io("create"))?;
        let mut hasher = Sha256::new();
        let mut stream = self.client.pull_blob_stream(&reference, descriptor).await?.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // The client checks the digest too, as the stream ends.
                Err(e) if e.get_ref().is_some_and(|e| e.is::<oci_client::errors::DigestError>()) => {
                    return Err(mismatch())
                }
                Err(e) => return Err(io("download")(e)),
            };
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io("write"))?;
        }
        file.flush().await.map_err(io("write"))?;
        if format!("sha256:{:x}", hasher.finalize()) != descriptor.digest {
            return Err(mismatch());
        }
        Ok(())
    }

    /// The repository's tags, page by page.
    async fn tags(&self) -> Result<Vec<String>, RemoteError> {
        const PAGE: usize = 1000;
        let reference = self.reference("latest");
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_tags(&reference, &self.auth, Some(PAGE), last.as_deref())
                .await
            {
                Ok(page) => page,
                // A repository nothing was pushed to yet has no tags.
                Err(err) if not_found(&err) => return Ok(tags),
                Err(err) => return Err(err.into()),
            };
            let count = page.tags.len();
            last = page.tags.last().cloned();
            tags.extend(page.tags);
            if count < PAGE || last.is_none() {
                return Ok(tags);
            }
        }
    }
}

/// Whether the registry said there is no such manifest.
fn not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                oci_client::errors::OciErrorCode::ManifestUnknown | oci_client::errors::OciErrorCode::NameUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}

fn descriptor(media_type: &str, digest: String, size: u64, part: Option<&str>) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.to_owned(),
        digest,
        size: size as i64,
        urls: None,
        artifact_type: None,
        annotations: part.map(|p| BTreeMap::from([(PART_ANNOTATION.to_owned(), p.to_owned())])),
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The digest and size of a file.
async fn file_digest(path: &Path) -> Result<(String, u64), RemoteError> {
    let path = path.to_owned();
    let io_path = path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher)?;
        Ok((format!("sha256:{:x}", hasher.finalize()), size))
    })
    .await
    .map_err(|e| RemoteError::Io {
        op: "read",
        path: io_path.clone(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| RemoteError::Io {
        op: "read",
        path: io_path,
        source,
    })
}
