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
}

impl RemoteError {
    /// Whether the entry itself was refused (damaged, or not one of hm's),
    /// not the registry unusable.
    pub fn is_refused(&self) -> bool {
        matches!(self, RemoteError::Foreign { .. } | RemoteError::Digest { .. })
    }
}

/// One repository of a registry used as a cache.
pub struct RemoteCache {
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
            client: client_for(&repo, settings),
            repo,
            auth,
            push_auth: tokio::sync::OnceCell::new(),
        })
    }

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

    /// Whether the repository has the blob `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RemoteError> {
        let reference = self.push_auth().await?;
        Ok(self.client.blob_exists(&reference, digest).await?)
    }

    /// Pushes the packed layer `packed` unless the repository has it.
    pub async fn push_layer(&self, packed: &Path) -> Result<Layer, RemoteError> {
        let reference = self.push_auth().await?;
        let (digest, size) = file_digest(packed).await?;
        if !self.client.blob_exists(&reference, &digest).await? {
            let data = tokio::fs::read(packed).await.map_err(|source| RemoteError::Io {
                op: "read",
                path: packed.to_owned(),
                source,
            })?;
            self.client.push_blob(&reference, data, &digest).await?;
        }
        Ok(Layer { digest, size })
    }

    /// Pushes a source manifest unless the repository has it.
    pub async fn push_source(&self, source: &[u8]) -> Result<Layer, RemoteError> {
        let reference = self.push_auth().await?;
        let digest = sha256(source);
        if !self.client.blob_exists(&reference, &digest).await? {
            self.client.push_blob(&reference, source.to_vec(), &digest).await?;
        }
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
        let reference = self.push_auth().await?;
        let mut descriptors = Vec::with_capacity(layers.len() + 1);
        // Bottom first, as images list their layers.
        for (part, layer) in config.parts.iter().zip(layers).rev() {
            descriptors.push(descriptor(LAYER_TYPE, layer.digest.clone(), layer.size, Some(part)));
        }
        descriptors.push(descriptor(SOURCE_TYPE, source.digest.clone(), source.size, None));
        // Each entry's config is its own: pushed without asking.
        let config_bytes = serde_json::to_vec(config).expect("a config serializes");
        let config_digest = sha256(&config_bytes);
        self.client
            .push_blob(&reference, config_bytes.clone(), &config_digest)
            .await?;
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
            config: descriptor(CONFIG_TYPE, config_digest, config_bytes.len() as u64, None),
            layers: descriptors,
            ..OciImageManifest::default()
        };
        self.client
            .push_manifest(&self.reference(&config.key), &manifest.into())
            .await?;
        Ok(())
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
        let reference = self.reference(key);
        let manifest = match self.client.pull_image_manifest(&reference, &self.auth).await {
            Ok((manifest, _)) => manifest,
            Err(err) if not_found(&err) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let foreign = |why: &str| RemoteError::Foreign {
            key: key.to_owned(),
            why: why.to_owned(),
        };
        if manifest.config.media_type != CONFIG_TYPE {
            return Err(foreign("its config is not an hm cache entry's"));
        }
        let mut bytes = Vec::new();
        self.client.pull_blob(&reference, &manifest.config, &mut bytes).await?;
        if sha256(&bytes) != manifest.config.digest {
            return Err(RemoteError::Digest {
                digest: manifest.config.digest.clone(),
            });
        }
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

    /// Downloads the blob `descriptor` of the repository to `dest`,
    /// checking its digest; a blob that cannot be had whole and right
    /// leaves nothing.
    pub async fn download(&self, descriptor: &OciDescriptor, dest: &Path) -> Result<(), RemoteError> {
        let downloaded = self.download_to(descriptor, dest).await;
        if downloaded.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        downloaded
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

    /// The keys of the repository's entries (its tags that are cache keys),
    /// page by page.
    pub async fn keys(&self) -> Result<Vec<String>, RemoteError> {
        const PAGE: usize = 1000;
        let reference = self.reference("latest");
        let mut keys = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = match self
                .client
                .list_tags(&reference, &self.auth, Some(PAGE), last.as_deref())
                .await
            {
                Ok(page) => page,
                // A repository nothing was pushed to yet has no tags.
                Err(err) if not_found(&err) => return Ok(keys),
                Err(err) => return Err(err.into()),
            };
            let count = page.tags.len();
            last = page.tags.last().cloned();
            keys.extend(
                page.tags
                    .into_iter()
                    .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())),
            );
            if count < PAGE || last.is_none() {
                return Ok(keys);
            }
        }
    }

    /// The source manifest of `entry`, checked.
    pub async fn source(&self, entry: &RemoteEntry) -> Result<Vec<u8>, RemoteError> {
        let mut bytes = Vec::new();
        self.client
            .pull_blob(&self.reference(&entry.config.key), &entry.source, &mut bytes)
            .await?;
        if sha256(&bytes) != entry.source.digest {
            return Err(RemoteError::Digest {
                digest: entry.source.digest.clone(),
            });
        }
        Ok(bytes)
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
