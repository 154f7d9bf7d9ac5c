//! Images on disk as tools write them: an OCI image layout directory
//! (`oci-layout`, `index.json`, `blobs/`; `skopeo copy oci:`, `docker save`
//! since Docker 25) and the older `docker save` format (`manifest.json`
//! listing layer tarballs), either as a directory or as one tarball.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::blobs::check_digest;
use super::platform::{pick, IndexEntry, Platform};
use super::unpack::{apply_layer, UnpackOptions, UnpackReport};

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

/// Reads the image in `dir` (for `platform` when it holds several).
pub fn read(dir: &Path, format: Format, platform: &Platform) -> Result<LocalImage, String> {
    match format {
        Format::OciLayout => read_oci(dir, platform),
        Format::DockerSave => read_docker_save(dir),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<(Vec<u8>, T), String> {
    let bytes = fs::read(path).map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
    let value = serde_json::from_slice(&bytes).map_err(|err| format!("`{}` is not valid: {err}", path.display()))?;
    Ok((bytes, value))
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, String> {
    Ok(dir.join("blobs").join("sha256").join(check_digest(digest)?))
}

fn read_oci(dir: &Path, platform: &Platform) -> Result<LocalImage, String> {
    let (_, index): (_, Index) = read_json(&dir.join("index.json"))?;
    let mut entries = index.manifests;
    // Nested indexes (an index of indexes) narrowed one level at a time.
    for _ in 0..4 {
        let entry = match entries.len() {
            0 => return Err(format!("`{}` lists no image", dir.join("index.json").display())),
            1 => entries.remove(0),
            _ => pick(&entries, platform)?.clone(),
        };
        let path = blob_path(dir, &entry.digest)?;
        let (bytes, manifest): (_, Manifest) = read_json(&path)?;
        let digest = super::blobs::digest_of(&bytes);
        if digest != entry.digest {
            return Err(format!(
                "`{}` does not match its digest {}",
                path.display(),
                entry.digest
            ));
        }
        if let Some(children) = manifest.manifests {
            entries = children;
            continue;
        }
        let config = manifest
            .config
            .ok_or_else(|| format!("manifest {digest} has no config (is it an image?)"))?;
        let (_, config): (_, ImageConfig) = read_json(&blob_path(dir, &config.digest)?)?;
        let layers = manifest
            .layers
            .into_iter()
            .map(|l| Ok((blob_path(dir, &l.digest)?, Some(l.digest))))
            .collect::<Result<_, String>>()?;
        return Ok(LocalImage {
            digest,
            layers,
            env: config.env(),
        });
    }
    Err("its indexes nest too deep".to_owned())
}

fn read_docker_save(dir: &Path) -> Result<LocalImage, String> {
    let (bytes, entries): (_, Vec<SaveEntry>) = read_json(&dir.join("manifest.json"))?;
    let entry = match entries.len() {
        1 => &entries[0],
        0 => return Err("its manifest.json lists no image".to_owned()),
        n => return Err(format!("it holds {n} images; save one image per file")),
    };
    let inside = |rel: &str| -> Result<PathBuf, String> {
        let path = Path::new(rel);
        if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(format!("its manifest.json names `{rel}`, outside the image"));
        }
        Ok(dir.join(path))
    };
    let (_, config): (_, ImageConfig) = read_json(&inside(&entry.config)?)?;
    let layers = entry
        .layers
        .iter()
        .map(|l| Ok((inside(l)?, None)))
        .collect::<Result<_, String>>()?;
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

/// Applies the layers of `image` to `rootfs`, each checked against its
/// digest; `progress` may stop it.
pub fn unpack(
    image: &LocalImage,
    rootfs: &Path,
    options: &UnpackOptions,
    progress: &mut dyn FnMut(&UnpackReport) -> io::Result<()>,
) -> Result<UnpackReport, String> {
    let mut report = UnpackReport::default();
    for (path, digest) in &image.layers {
        let name = digest.clone().unwrap_or_else(|| path.display().to_string());
        let file = File::open(path).map_err(|err| format!("layer {name}: cannot read `{}`: {err}", path.display()))?;
        let mut reader = Verified {
            inner: io::BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        apply_layer(&mut reader, rootfs, options, &mut report, progress)
            .map_err(|err| format!("layer {name}: {err}"))?;
        // What the unpacker left unread (tar padding) counts too.
        io::copy(&mut reader, &mut io::sink()).map_err(|err| format!("layer {name}: {err}"))?;
        if let Some(digest) = digest {
            let actual = format!("sha256:{:x}", reader.hasher.finalize());
            if &actual != digest {
                return Err(format!(
                    "layer {digest}: its content does not match its digest (got {actual})"
                ));
            }
        }
    }
    Ok(report)
}
