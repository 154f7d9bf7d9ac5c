//! A directory as the remote cache (`hm cache save DIR`, `hm cache restore
//! DIR`): an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`) holding the same images a registry would, each
//! `index.json` entry naming its key in `org.opencontainers.image.ref.name`.
//! It also holds a `.hmignore` and a `.gitignore` that leave it out of
//! the project's source when it lies inside the project.
//! Every file but the small ones is content-addressed, so a CI cache
//! action can keep and bring back the directory as it is, and a save into
//! a directory that holds an earlier save writes only the blobs it lacks.
//!
//! A save starts from an empty index and writes it once, whole, at its
//! end ([`DirStore::finish`]), then deletes the blobs no entry names: a
//! save that is killed leaves the directory's earlier index, and the blobs
//! it names, as they were. Every blob read is checked against its digest,
//! and a blob reused by a save is checked first, so a damaged file is
//! never passed on.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oci_client::manifest::{OciDescriptor, OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::RemoteError;

/// The annotation an OCI layout's index names an image's tag with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The media type of the layout's index.
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<OciDescriptor>,
}

/// How many entries and bytes a directory holds, and what this process
/// wrote to it or read from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirTotals {
    pub entries: usize,
    /// The blobs the entries name, in bytes.
    pub bytes: u64,
    /// Bytes of blobs this process wrote.
    pub written: u64,
    /// Bytes of blobs this process read (and checked).
    pub read: u64,
}

/// A directory the remote cache's images are kept in.
pub(super) struct DirStore {
    root: Arc<PathBuf>,
    /// The entries: key, and its manifest.
    index: Mutex<BTreeMap<String, OciDescriptor>>,
    /// Blobs this process checked against their digest, or wrote.
    checked: Arc<Mutex<HashSet<String>>>,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
}

impl DirStore {
    /// A directory to save into, made when missing: its entries start
    /// empty; its blobs are reused when they are right.
    pub(super) fn create(root: &Path) -> Result<Self, RemoteError> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io("create", &blobs))?;
        let layout = root.join("oci-layout");
        write_whole(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        // A directory inside a project (GitLab keeps only those) is not its
        // source, for hm nor for git.
        for ignore in [".hmignore", ".gitignore"] {
            write_whole(&root.join(ignore), b"# written by `hm cache save`\n*\n")?;
        }
        Ok(Self::with(root, BTreeMap::new()))
    }

    /// A directory `hm cache save` wrote, its index read.
    pub(super) fn open(root: &Path) -> Result<Self, RemoteError> {
        let not_saved = |why: String| RemoteError::NotSaved {
            dir: root.to_owned(),
            why,
        };
        if !root.join("oci-layout").is_file() {
            return Err(not_saved("it has no `oci-layout` file".to_owned()));
        }
        let path = root.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| not_saved(format!("cannot read `index.json`: {e}")))?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| not_saved(format!("`index.json` is not valid: {e}")))?;
        let entries = index
            .manifests
            .into_iter()
            .filter_map(|m| Some((m.annotations.as_ref()?.get(REF_NAME)?.clone(), m)))
            .collect();
        Ok(Self::with(root, entries))
    }

    fn with(root: &Path, index: BTreeMap<String, OciDescriptor>) -> Self {
        DirStore {
            root: Arc::new(root.to_owned()),
            index: Mutex::new(index),
            checked: Arc::default(),
            written: Arc::default(),
            read: Arc::default(),
        }
    }

    /// Whether the directory has the blob `digest`, whole and right.
    pub(super) async fn has_blob(&self, digest: &str) -> Result<bool, RemoteError> {
        if self.is_checked(digest) {
            return Ok(true);
        }
        let path = blob_path(&self.root, digest)?;
        let (wanted, read) = (digest.to_owned(), self.read.clone());
        let right = blocking(move || match std::fs::File::open(&path) {
            Ok(file) => {
                let (actual, size) = hash(file).map_err(io("read", &path))?;
                read.fetch_add(size, Ordering::Relaxed);
                Ok(actual == wanted)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("open", &path)(e)),
        })
        .await?;
        if right {
            self.checked(digest);
        }
        Ok(right)
    }

    /// Writes the file `from` as the blob `digest` unless the directory
    /// has it (a damaged copy is replaced).
    pub(super) async fn put_file(&self, from: &Path, digest: &str) -> Result<(), RemoteError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let (path, from, written) = (blob_path(&self.root, digest)?, from.to_owned(), self.written.clone());
        let wanted = digest.to_owned();
        blocking(move || {
            let temp = temp_beside(&path);
            let copied = (|| {
                let mut source = std::fs::File::open(&from).map_err(io("open", &from))?;
                let mut dest = std::fs::File::create(&temp).map_err(io("create", &temp))?;
                let mut hashing = Hashing::new(&mut dest);
                let size = std::io::copy(&mut source, &mut hashing).map_err(io("write", &temp))?;
                let actual = hashing.digest();
                dest.sync_all().map_err(io("write", &temp))?;
                // The file changed since its digest was taken.
                if actual != wanted {
                    return Err(RemoteError::Digest { digest: wanted });
                }
                std::fs::rename(&temp, &path).map_err(io("rename", &temp))?;
                written.fetch_add(size, Ordering::Relaxed);
                Ok(())
            })();
            if copied.is_err() {
                let _ = std::fs::remove_file(&temp);
            }
            copied
        })
        .await?;
        self.checked(digest);
        Ok(())
    }

    /// Writes `bytes` as their blob unless the directory has it; the
    /// digest.
    pub(super) async fn put_bytes(&self, bytes: Vec<u8>) -> Result<String, RemoteError> {
        let digest = super::sha256(&bytes);
        if self.has_blob(&digest).await? {
            return Ok(digest);
        }
        let path = blob_path(&self.root, &digest)?;
        let size = bytes.len() as u64;
        blocking(move || write_whole(&path, &bytes)).await?;
        self.written.fetch_add(size, Ordering::Relaxed);
        self.checked(&digest);
        Ok(digest)
    }

    /// The blob `descriptor` names, read whole and checked.
    pub(super) async fn read_blob(&self, descriptor: &OciDescriptor) -> Result<Vec<u8>, RemoteError> {
        let path = blob_path(&self.root, &descriptor.digest)?;
        let read = self.read.clone();
        let bytes = blocking(move || std::fs::read(&path).map_err(io("read", &path))).await?;
        read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if super::sha256(&bytes) != descriptor.digest {
            return Err(RemoteError::Digest {
                digest: descriptor.digest.clone(),
            });
        }
        Ok(bytes)
    }

    /// Copies the blob `descriptor` names to `dest`, checking it on the way.
    pub(super) async fn copy_blob(&self, descriptor: &OciDescriptor, dest: &Path) -> Result<(), RemoteError> {
        let path = blob_path(&self.root, &descriptor.digest)?;
        let (dest, wanted, read) = (dest.to_owned(), descriptor.digest.clone(), self.read.clone());
        blocking(move || {
            let mut source = std::fs::File::open(&path).map_err(io("open", &path))?;
            let mut file = std::fs::File::create(&dest).map_err(io("create", &dest))?;
            let mut hashing = Hashing::new(&mut file);
            let size = std::io::copy(&mut source, &mut hashing).map_err(io("read", &path))?;
            read.fetch_add(size, Ordering::Relaxed);
            if hashing.digest() != wanted {
                return Err(RemoteError::Digest { digest: wanted });
            }
            Ok(())
        })
        .await
    }

    /// Writes the manifest of entry `key` and names it in the index.
    pub(super) async fn put_manifest(&self, key: &str, manifest: &OciImageManifest) -> Result<(), RemoteError> {
        let bytes = serde_json::to_vec(manifest).expect("a manifest serializes");
        let size = bytes.len() as i64;
        let digest = self.put_bytes(bytes).await?;
        let descriptor = OciDescriptor {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
            digest,
            size,
            urls: None,
            artifact_type: None,
            annotations: Some(BTreeMap::from([(REF_NAME.to_owned(), key.to_owned())])),
        };
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), descriptor);
        Ok(())
    }

    /// The manifest of entry `key`, checked; `None` when there is none.
    pub(super) async fn manifest(&self, key: &str) -> Result<Option<OciImageManifest>, RemoteError> {
        let descriptor = self.index.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned();
        let Some(descriptor) = descriptor else { return Ok(None) };
        let bytes = self.read_blob(&descriptor).await?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RemoteError::Foreign {
                key: key.to_owned(),
                why: format!("unreadable manifest: {e}"),
            })
    }

    /// The keys of the entries.
    pub(super) fn keys(&self) -> Vec<String> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Writes the index, whole, then deletes the blobs (and leftovers of
    /// killed saves) that no entry names.
    pub(super) async fn finish(&self) -> Result<DirTotals, RemoteError> {
        let entries: Vec<(String, OciDescriptor)> = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        let mut named: HashSet<String> = HashSet::new();
        let mut bytes = 0;
        for (key, descriptor) in &entries {
            let mut add = |d: &OciDescriptor| {
                if named.insert(d.digest.clone()) {
                    bytes += d.size.max(0) as u64;
                }
            };
            add(descriptor);
            if let Some(manifest) = self.manifest(key).await? {
                add(&manifest.config);
                manifest.layers.iter().for_each(add);
            }
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(INDEX_TYPE.to_owned()),
            manifests: entries.into_iter().map(|(_, d)| d).collect(),
        };
        let text = serde_json::to_vec_pretty(&index).expect("an index serializes");
        let root = self.root.clone();
        blocking(move || {
            write_whole(&root.join("index.json"), &text)?;
            let blobs = root.join("blobs").join("sha256");
            for file in std::fs::read_dir(&blobs).map_err(io("read", &blobs))?.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if !named.contains(&format!("sha256:{name}")) {
                    let _ = std::fs::remove_file(file.path());
                }
            }
            Ok(())
        })
        .await?;
        Ok(DirTotals {
            entries: index.manifests.len(),
            bytes,
            written: self.written.load(Ordering::Relaxed),
            read: self.read.load(Ordering::Relaxed),
        })
    }

    /// What this process wrote and read so far, and what the index holds
    /// (its blobs' bytes are counted by [`DirStore::finish`]).
    pub(super) fn totals(&self) -> DirTotals {
        DirTotals {
            entries: self.index.lock().unwrap_or_else(|p| p.into_inner()).len(),
            bytes: 0,
            written: self.written.load(Ordering::Relaxed),
            read: self.read.load(Ordering::Relaxed),
        }
    }

    fn is_checked(&self, digest: &str) -> bool {
        self.checked.lock().unwrap_or_else(|p| p.into_inner()).contains(digest)
    }

    fn checked(&self, digest: &str) {
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_owned());
    }
}

/// The path of blob `digest`; a digest that is not a sha256 one is
/// refused (it would name a path outside the blobs).
fn blob_path(root: &Path, digest: &str) -> Result<PathBuf, RemoteError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(root.join("blobs").join("sha256").join(hex))
        }
        _ => Err(RemoteError::Digest {
            digest: digest.to_owned(),
        }),
    }
}

/// A temporary file beside `path`, removed by [`DirStore::finish`] if a
/// killed process left it.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file: `path` is either
/// as it was or whole.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), RemoteError> {
    let temp = temp_beside(path);
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io("write", path)(e)
    })
}

/// The sha256 digest and size of what `reader` reads.
fn hash(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hashing = Hashing::new(std::io::sink());
    let size = std::io::copy(&mut reader, &mut hashing)?;
    Ok((hashing.digest(), size))
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn digest(self) -> String {
        format!("sha256:{:x}", self.hasher.finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError {
    let path = path.to_owned();
    move |source| RemoteError::Io { op, path, source }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RemoteError> + Send + 'static,
) -> Result<T, RemoteError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| RemoteError::Io {
        op: "run",
        path: PathBuf::from("(a blocking task)"),
        source: std::io::Error::other(e),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: &str) -> OciImageManifest {
        let config = OciDescriptor {
            media_type: "application/octet-stream".to_owned(),
            digest: config.to_owned(),
            size: 1,
            ..OciDescriptor::default()
        };
        OciImageManifest {
            config,
            ..OciImageManifest::default()
        }
    }

    #[tokio::test]
    async fn a_save_replaces_the_index_only_when_it_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirStore::create(dir.path()).unwrap();
        let config = first.put_bytes(b"first".to_vec()).await.unwrap();
        first.put_manifest("one", &manifest(&config)).await.unwrap();
        assert_eq!(first.finish().await.unwrap().entries, 1);

        // A second save that never finishes (killed) leaves the first.
        let second = DirStore::create(dir.path()).unwrap();
        let config = second.put_bytes(b"second".to_vec()).await.unwrap();
        second.put_manifest("two", &manifest(&config)).await.unwrap();
        drop(second);
        assert_eq!(DirStore::open(dir.path()).unwrap().keys(), ["one"]);

        // One that finishes holds its own entries, and only their blobs.
        let third = DirStore::create(dir.path()).unwrap();
        let config = third.put_bytes(b"third".to_vec()).await.unwrap();
        third.put_manifest("three", &manifest(&config)).await.unwrap();
        let totals = third.finish().await.unwrap();
        assert_eq!((totals.entries, totals.bytes > 0), (1, true));
        let opened = DirStore::open(dir.path()).unwrap();
        assert_eq!(opened.keys(), ["three"]);
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count();
        assert_eq!(blobs, 2, "the manifest and its config");
    }

    #[tokio::test]
    async fn a_damaged_blob_is_not_reused_and_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::create(dir.path()).unwrap();
        let digest = store.put_bytes(b"a part".to_vec()).await.unwrap();
        let path = blob_path(dir.path(), &digest).unwrap();
        std::fs::write(&path, b"a pArt").unwrap();

        let fresh = DirStore::create(dir.path()).unwrap();
        assert!(!fresh.has_blob(&digest).await.unwrap());
        let descriptor = OciDescriptor {
            digest: digest.clone(),
            ..OciDescriptor::default()
        };
        assert!(matches!(
            fresh.read_blob(&descriptor).await,
            Err(RemoteError::Digest { .. })
        ));
        // Written again, right.
        assert_eq!(fresh.put_bytes(b"a part".to_vec()).await.unwrap(), digest);
        assert_eq!(std::fs::read(&path).unwrap(), b"a part");
        assert!(blob_path(dir.path(), "sha256:../../etc").is_err());
    }
}
