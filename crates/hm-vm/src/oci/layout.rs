//! Images on disk as tools write them: an OCI image layout directory
//! (`oci-layout`, `index.json`, `blobs/`; `skopeo copy oci:`, `docker save`
//! since Docker 25) and the older `docker save` format (`manifest.json`
//! listing layer tarballs), either as a directory or as one tarball.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::blobs::{check_digest, DigestError};
use super::platform::{pick, IndexEntry, NoPlatformImage, Platform};
use super::unpack::{apply_layer, UnpackError, UnpackOptions, UnpackReport};

/// Why an image on disk could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadImageError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not valid: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("`{}` lists no image", index.display())]
    NoImage { index: PathBuf },
    #[error(transparent)]
    Platform(#[from] NoPlatformImage),
    #[error("`{}` does not match its digest {digest}", path.display())]
    Mismatch { path: PathBuf, digest: String },
    #[error("manifest {digest} has no config (is it an image?)")]
    NoConfig { digest: String },
    #[error("its indexes nest too deep")]
    TooDeep,
    #[error("its manifest.json lists no image")]
    NoSavedImage,
    #[error("it holds {count} images; save one image per file")]
    SeveralImages { count: usize },
    #[error("its manifest.json names `{name}`, outside the image")]
    Outside { name: String },
}

/// Why a layer of an image on disk could not be applied; `layer` is its
/// digest, or its path in a `docker save` of the older format.
#[derive(Debug, thiserror::Error)]
pub enum UnpackImageError {
    #[error("layer {layer}: cannot read `{}`: {source}", path.display())]
    Open {
        layer: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: {source}")]
    Apply {
        layer: String,
        #[source]
        source: UnpackError,
    },
    #[error("layer {layer}: {source}")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: its content does not match its digest (got {actual})")]
    Mismatch { layer: String, actual: String },
}

/// What kind of image a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OciLayout,
    DockerSave,
}

/// The format of the directory `dir`, if it is an image and not a root
/// filesystem.
pub fn format_of_dir(dir: &Path) -> Option<Format> {
    if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
        Some(Format::OciLayout)
    } else if dir.join("manifest.json").is_file() && !dir.join("etc").exists() {
        Some(Format::DockerSave)
    } else {
        None
    }
}

/// Whether the tarball `archive` holds an image (`oci-layout` or
/// `manifest.json` at its top) rather than a root filesystem.
pub fn is_image_archive(archive: &Path) -> bool {
    let Ok(file) = File::open(archive) else { return false };
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let Ok(entries) = tar.entries() else { return false };
    for entry in entries.take(64) {
        let Ok(entry) = entry else { return false };
        let Ok(path) = entry.path() else { return false };
        let path = path.to_string_lossy();
        let top = path.trim_start_matches("./");
        if top == "oci-layout" || top == "manifest.json" {
            return true;
        }
    }
    false
}

/// An image read off disk, ready to unpack.
#[derive(Debug)]
pub struct LocalImage {
    /// The manifest's digest (a content identity for the image).
    pub digest: String,
    /// Layer files, bottom first, with the digest to check each against
    /// (none for `docker save`'s older format, which names layers by path).
    pub layers: Vec<(PathBuf, Option<String>)>,
    /// The image's environment, from its configuration (`PATH` alone when
    /// it sets none).
    pub env: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    layers: Vec<String>,
}

/// The parts of an image configuration a step needs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImageConfig {
    #[serde(default)]
    config: Option<RunConfig>,
}

impl ImageConfig {
    /// The image's environment, or `PATH` alone when it sets none.
    pub(crate) fn env(self) -> Vec<String> {
        self.config
            .and_then(|c| c.env)
            .filter(|env| !env.is_empty())
            .unwrap_or_else(|| vec![format!("PATH={}", crate::images::DEFAULT_PATH)])
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
}

impl LocalImage {
    /// Reads the image in `dir` (for `platform` when it holds several).
    pub fn read(dir: &Path, format: Format, platform: &Platform) -> Result<Self, ReadImageError> {
        match format {
            Format::OciLayout => read_oci(dir, platform),
            Format::DockerSave => read_docker_save(dir),
        }
    }

    /// Applies the layers to `rootfs`, each checked against its digest;
    /// `progress` may stop it.
    pub fn unpack(
        &self,
        rootfs: &Path,
        options: &UnpackOptions,
        progress: &mut dyn FnMut(&UnpackReport) -> io::Result<()>,
    ) -> Result<UnpackReport, UnpackImageError> {
        let mut report = UnpackReport::default();
        for (path, digest) in &self.layers {
            let layer = || digest.clone().unwrap_or_else(|| path.display().to_string());
            let file = File::open(path).map_err(|source| UnpackImageError::Open {
                layer: layer(),
                path: path.clone(),
                source,
            })?;
            let mut reader = Verified {
                inner: io::BufReader::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
            };
            apply_layer(&mut reader, rootfs, options, &mut report, progress)
                .map_err(|source| UnpackImageError::Apply { layer: layer(), source })?;
            // What the unpacker left unread (tar padding) counts too.
            io::copy(&mut reader, &mut io::sink())
                .map_err(|source| UnpackImageError::Read { layer: layer(), source })?;
            if let Some(digest) = digest {
                let actual = format!("sha256:{:x}", reader.hasher.finalize());
                if &actual != digest {
                    return Err(UnpackImageError::Mismatch {
                        layer: digest.clone(),
                        actual,
                    });
                }
            }
        }
        Ok(report)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<(Vec<u8>, T), ReadImageError> {
    let bytes = fs::read(path).map_err(|source| ReadImageError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = serde_json::from_slice(&bytes).map_err(|source| ReadImageError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok((bytes, value))
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, DigestError> {
    Ok(dir.join("blobs").join("sha256").join(check_digest(digest)?))
}

fn read_oci(dir: &Path, platform: &Platform) -> Result<LocalImage, ReadImageError> {
    let (_, index): (_, Index) = read_json(&dir.join("index.json"))?;
    let mut entries = index.manifests;
    // Nested indexes (an index of indexes) narrowed one level at a time.
    for _ in 0..4 {
        let entry = match entries.len() {
            0 => {
                return Err(ReadImageError::NoImage {
                    index: dir.join("index.json"),
                })
            }
            1 => entries.remove(0),
            _ => pick(&entries, platform)?.clone(),
        };
        let path = blob_path(dir, &entry.digest)?;
        let (bytes, manifest): (_, Manifest) = read_json(&path)?;
        let digest = super::blobs::digest_of(&bytes);
        if digest != entry.digest {
            return Err(ReadImageError::Mismatch {
                path,
                digest: entry.digest,
            });
        }
        if let Some(children) = manifest.manifests {
            entries = children;
            continue;
        }
        let config = manifest
            .config
            .ok_or_else(|| ReadImageError::NoConfig { digest: digest.clone() })?;
        let (_, config): (_, ImageConfig) = read_json(&blob_path(dir, &config.digest)?)?;
        let layers = manifest
            .layers
            .into_iter()
            .map(|l| Ok((blob_path(dir, &l.digest)?, Some(l.digest))))
            .collect::<Result<_, DigestError>>()?;
        return Ok(LocalImage {
            digest,
            layers,
            env: config.env(),
        });
    }
    Err(ReadImageError::TooDeep)
}

fn read_docker_save(dir: &Path) -> Result<LocalImage, ReadImageError> {
    let (bytes, entries): (_, Vec<SaveEntry>) = read_json(&dir.join("manifest.json"))?;
    let entry = match entries.len() {
        1 => &entries[0],
        0 => return Err(ReadImageError::NoSavedImage),
        count => return Err(ReadImageError::SeveralImages { count }),
    };
    let inside = |rel: &str| -> Result<PathBuf, ReadImageError> {
        let path = Path::new(rel);
        if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(ReadImageError::Outside { name: rel.to_owned() });
        }
        Ok(dir.join(path))
    };
    let (_, config): (_, ImageConfig) = read_json(&inside(&entry.config)?)?;
    let layers = entry
        .layers
        .iter()
        .map(|l| Ok((inside(l)?, None)))
        .collect::<Result<_, ReadImageError>>()?;
    Ok(LocalImage {
        digest: super::blobs::digest_of(&bytes),
        layers,
        env: config.env(),
    })
}

/// Checks a layer's digest as it is read.
struct Verified<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
