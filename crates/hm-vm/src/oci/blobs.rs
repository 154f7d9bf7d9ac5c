//! The content-addressed blob store shared by all pulled images:
//! `<cache>/blobs/sha256/<hex>`. A blob is written into a locked temporary
//! directory (see [`crate::tempdir`]), its digest checked, and only then
//! renamed into place, so a file under `sha256/` is always whole and
//! verified: an interrupted or killed download leaves at most a temporary
//! directory that the next `hm` removes. Two processes storing the same
//! blob both rename a verified copy to the same name; either wins.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::fsutil::random_id;
use crate::tempdir::{self, TempDir};

/// Blobs under `<cache>/blobs`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

/// A digest that cannot name a blob here.
#[derive(Debug, thiserror::Error)]
#[error("`{digest}` is not a sha256 digest")]
pub struct DigestError {
    pub digest: String,
}

/// Why a blob could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("cannot create `{}`: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("its content does not match its digest (got {actual} after {written} bytes)")]
    Mismatch { actual: String, written: u64 },
    #[error("cannot store `{}`: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The hex part of `digest`, if it can name a blob here.
pub(crate) fn check_digest(digest: &str) -> Result<&str, DigestError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        _ => Err(DigestError {
            digest: digest.to_owned(),
        }),
    }
}

impl BlobStore {
    pub fn new(cache_dir: &Path) -> Self {
        BlobStore {
            dir: cache_dir.join("blobs"),
        }
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn path(&self, digest: &str) -> Result<PathBuf, DigestError> {
        Ok(self.dir.join("sha256").join(check_digest(digest)?))
    }

    /// Whether the blob is stored.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// The store's lock: shared by pulls while they use blobs they did not
    /// download, exclusive for removing blobs.
    pub(crate) fn lock(&self, exclusive: bool) -> io::Result<nix::fcntl::Flock<File>> {
        fs::create_dir_all(&self.dir)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        let arg = match exclusive {
            true => nix::fcntl::FlockArg::LockExclusive,
            false => nix::fcntl::FlockArg::LockShared,
        };
        nix::fcntl::Flock::lock(file, arg).map_err(|(_, e)| io::Error::from(e))
    }

    /// A locked directory to write new blobs in, removed when dropped.
    pub(crate) fn staging(&self) -> io::Result<TempDir> {
        fs::create_dir_all(self.dir.join("sha256"))?;
        tempdir::collect(&self.dir);
        TempDir::create(&self.dir)
    }

    /// A writer for the blob `digest` in `staging`.
    pub(crate) fn writer(&self, staging: &Path, digest: &str) -> Result<BlobWriter, BlobError> {
        let target = self.path(digest)?;
        let path = staging.join(random_id(8));
        let file = match File::create(&path) {
            Ok(file) => file,
            Err(source) => return Err(BlobError::Create { path, source }),
        };
        Ok(BlobWriter {
            file,
            path,
            target,
            digest: digest.to_owned(),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Stores `bytes` (a manifest or config) as the blob `digest`, if they
    /// are that blob.
    pub(crate) fn put(&self, staging: &Path, digest: &str, bytes: &[u8]) -> Result<PathBuf, BlobError> {
        let mut writer = self.writer(staging, digest)?;
        if let Err(source) = writer.write_all(bytes) {
            return Err(BlobError::Write {
                path: writer.path.clone(),
                source,
            });
        }
        writer.finish()
    }

    /// Removes the blobs of `doomed` that are not in `keep`; returns the
    /// bytes freed.
    pub fn remove_only(&self, doomed: &[String], keep: &HashSet<String>) -> u64 {
        let mut freed = 0;
        for digest in doomed.iter().filter(|d| !keep.contains(*d)) {
            let Ok(path) = self.path(digest) else { continue };
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(&path).is_ok() {
                freed += size;
            }
        }
        freed
    }
}

/// Writes one blob, hashing as it goes.
pub(crate) struct BlobWriter {
    file: File,
    path: PathBuf,
    target: PathBuf,
    digest: String,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Checks the digest and moves the blob into the store.
    pub(crate) fn finish(self) -> Result<PathBuf, BlobError> {
        let actual = format!("sha256:{:x}", self.hasher.finalize());
        if actual != self.digest {
            let _ = fs::remove_file(&self.path);
            return Err(BlobError::Mismatch {
                actual,
                written: self.written,
            });
        }
        drop(self.file);
        match fs::rename(&self.path, &self.target) {
            Ok(()) => Ok(self.target),
            Err(source) => Err(BlobError::Store {
                path: self.target,
                source,
            }),
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The sha256 digest of `bytes`, as OCI writes it.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Every stored digest (for `hm cache du`-like accounting and tests).
pub fn stored(store: &BlobStore) -> HashSet<String> {
    fs::read_dir(store.dir.join("sha256"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_blobs_are_stored() {
        let cache = tempfile::tempdir().unwrap();
        let store = BlobStore::new(cache.path());
        let staging = store.staging().unwrap();
        let good = digest_of(b"hello");
        let path = store.put(staging.path(), &good, b"hello").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert!(store.has(&good));

        let wrong = digest_of(b"other");
        let err = store.put(staging.path(), &wrong, b"hello").unwrap_err();
        assert!(err.to_string().contains("does not match its digest"), "{err}");
        assert!(!store.has(&wrong));
        assert!(store.path("sha256:zz").is_err());
        assert!(store.path("md5:00").is_err());

        let staged = staging.path().to_owned();
        drop(staging);
        assert!(!staged.exists());
        assert_eq!(stored(&store), HashSet::from([good.clone()]));
        assert_eq!(
            store.remove_only(std::slice::from_ref(&good), &HashSet::from([good.clone()])),
            0
        );
        assert_eq!(store.remove_only(std::slice::from_ref(&good), &HashSet::new()), 5);
        assert!(!store.has(&good));
    }
}
