//! Local images: `host` (the machine's own root filesystem) and root
//! filesystems imported by name from a directory or a tarball.
//!
//! Layout: `images/<dir>/image.json` and `images/<dir>/rootfs/`, where
//! `<dir>` is derived from the name. An import unpacks into a locked
//! `.tmp-` directory (see [`crate::tempdir`]) and renames it into place, so
//! a reader never sees half an image, and the partial copy of an import
//! that was stopped or killed is removed (by the import itself, or by the
//! next `hm` that collects [`ImageStore::collect_abandoned`]).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::backend::ImageRef;
use crate::error::{BadImage, ImageError};
use crate::fsutil::{self, random_id, remove_tree, CopyOptions};
use crate::oci;
use crate::tempdir::{self, TempDir};

/// The name of the image that is the host's own root filesystem.
pub const HOST_IMAGE: &str = "host";

/// The default environment of an imported image that brings none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `image.json` records about an imported image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageInfo {
    pub name: String,
    /// `blake3:<hex>` over the tree's paths, kinds, modes and contents.
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub source: String,
    pub size_bytes: u64,
    pub files: u64,
    /// `KEY=VALUE` entries of the image's own environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// The manifest digest of a pulled image (also its `id`).
    #[serde(default)]
    pub digest: Option<String>,
    /// When it was pulled, in seconds since the epoch.
    #[serde(default)]
    pub pulled: Option<u64>,
    /// The blobs (config and layers) a pulled image was made from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
}

/// Imported images under `<cache>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

/// How far a long import has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub phase: ImportPhase,
    /// Entries (files, directories, links) done so far in this phase.
    pub entries: u64,
    /// Bytes of file contents done so far in this phase.
    pub bytes: u64,
}

/// What an import is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    /// Copying or unpacking the root filesystem.
    Copying,
    /// Hashing the copy into the image's identity.
    Hashing,
}

/// Watches a long import, and may stop it.
pub trait ImportObserver: Sync {
    /// Called after every entry (cheap checks only).
    fn progress(&self, progress: ImportProgress);
    /// Whether to stop: the import then removes its partial copy and
    /// returns [`ImageError::Interrupted`].
    fn stopped(&self) -> bool;
}

/// An observer that sees nothing and never stops.
struct Unobserved;

impl ImportObserver for Unobserved {
    fn progress(&self, _: ImportProgress) {}
    fn stopped(&self) -> bool {
        false
    }
}

/// Calls the observer for each entry; `Err(Interrupted)` once it says stop.
struct Tracker<'a> {
    observer: &'a dyn ImportObserver,
    phase: ImportPhase,
    entries: u64,
    bytes: u64,
}

impl<'a> Tracker<'a> {
    fn new(observer: &'a dyn ImportObserver, phase: ImportPhase) -> Self {
        Tracker {
            observer,
            phase,
            entries: 0,
            bytes: 0,
        }
    }

    fn entry(&mut self, bytes: u64) -> io::Result<()> {
        self.entries += 1;
        self.bytes += bytes;
        self.observer.progress(ImportProgress {
            phase: self.phase,
            entries: self.entries,
            bytes: self.bytes,
        });
        if self.observer.stopped() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the import was stopped"));
        }
        Ok(())
    }
}

/// What an import did, for the user.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub info: ImageInfo,
    /// Device nodes and similar entries left out (they need root).
    pub skipped_special: u64,
}

impl ImageStore {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("images"),
        }
    }

    fn image_dir(&self, name: &str) -> PathBuf {
        let readable: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = blake3::hash(name.as_bytes()).to_hex();
        self.dir.join(format!("{readable}-{}", &hash[..8]))
    }

    /// The root filesystem directory of an imported image.
    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.image_dir(name).join("rootfs")
    }

    /// The record of an imported image, or `None` if there is none.
    pub fn get(&self, name: &str) -> io::Result<Option<ImageInfo>> {
        let path = self.image_dir(name).join("image.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The image a pipeline means by `name`: one imported under that name,
    /// else one pulled under its canonical reference (`ubuntu:24.04` is
    /// `docker.io/library/ubuntu:24.04`).
    pub fn lookup(&self, name: &str) -> io::Result<Option<ImageInfo>> {
        if let Some(info) = self.get(name)? {
            return Ok(Some(info));
        }
        match crate::oci::ImageName::parse(name) {
            Ok(reference) if reference.canonical() != name => self.get(&reference.canonical()),
            _ => Ok(None),
        }
    }

    /// Resolves a name to an image reference (`host` included).
    pub fn resolve(&self, name: &str) -> io::Result<Option<ImageRef>> {
        if name == HOST_IMAGE {
            return Ok(Some(ImageRef {
                name: HOST_IMAGE.to_owned(),
                id: host_identity(),
            }));
        }
        Ok(self.lookup(name)?.map(|info| ImageRef {
            name: info.name,
            id: info.id,
        }))
    }

    /// Every imported image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io("read", &self.dir)(e)),
        };
        let mut images = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("image.json");
            if let Ok(bytes) = fs::read(&path) {
                if let Ok(info) = serde_json::from_slice::<ImageInfo>(&bytes) {
                    images.push(info);
                }
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Removes an image (`name` as [`ImageStore::lookup`] finds it), and
    /// the blobs no other pulled image was made from; returns the bytes of
    /// blobs freed.
    pub fn remove(&self, name: &str) -> Result<u64, ImageError> {
        let Some(info) = self.lookup(name).ok().flatten() else {
            return Err(ImageError::NotFound(name.to_owned()));
        };
        let dir = self.image_dir(&info.name);
        let doomed = self.dir.join(format!(".rm-{}", random_id(6)));
        fs::rename(&dir, &doomed).map_err(ImageError::io("remove", &dir))?;
        remove_tree(&doomed).map_err(ImageError::io("remove", &doomed))?;
        let _ = fs::remove_file(self.pull_lock_path(&info.name));
        if info.blobs.is_empty() {
            return Ok(0);
        }
        // A pull in progress holds the store's lock shared until its image
        // is installed (and lists its blobs): it keeps what it uses.
        let blobs = crate::oci::BlobStore::new(self.dir.parent().unwrap_or(&self.dir));
        let _lock = blobs.lock(true).map_err(ImageError::io("lock", &self.dir))?;
        let keep: std::collections::HashSet<String> = self.list()?.into_iter().flat_map(|other| other.blobs).collect();
        Ok(blobs.remove_only(&info.blobs, &keep))
    }

    /// Imports a root filesystem from a directory or a tar archive
    /// (optionally gzip-compressed) under `name`, replacing any image of
    /// that name.
    pub fn import(&self, name: &str, source: &Path) -> Result<ImportSummary, ImageError> {
        self.import_observed(name, source, &Unobserved)
    }

    /// [`ImageStore::import`], telling `observer` how far it got and
    /// stopping when it says so. Whatever happens, nothing of a failed or
    /// stopped import is left.
    pub fn import_observed(
        &self,
        name: &str,
        source: &Path,
        observer: &dyn ImportObserver,
    ) -> Result<ImportSummary, ImageError> {
        validate_name(name)?;
        let meta = fs::metadata(source).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::Missing(source.to_owned()),
            _ => ImageError::io("read", source)(e),
        })?;
        fs::create_dir_all(&self.dir).map_err(ImageError::io("create", &self.dir))?;
        self.collect_abandoned();
        // Removed when dropped, on every path out of here but the rename.
        let staging = TempDir::create(&self.dir).map_err(ImageError::io("create a directory in", &self.dir))?;
        self.import_into(name, source, &meta, staging, observer)
            .map_err(|err| match err {
                ImageError::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted => ImageError::Interrupted,
                other => other,
            })
    }

    fn import_into(
        &self,
        name: &str,
        source: &Path,
        meta: &fs::Metadata,
        staging: TempDir,
        observer: &dyn ImportObserver,
    ) -> Result<ImportSummary, ImageError> {
        let rootfs = staging.path().join("rootfs");
        let privileged = fsutil::is_root();
        let mut copying = Tracker::new(observer, ImportPhase::Copying);
        if let Some(layout) = self.image_layout(source, meta, &staging)? {
            return self.import_layout(name, source, &layout, staging, &mut copying);
        }
        let skipped_special = if meta.is_dir() {
            let mut tick = |bytes| copying.entry(bytes);
            let options = CopyOptions {
                privileged,
                progress: Some(&mut tick),
            };
            fsutil::copy_tree(source, &rootfs, options)
                .map_err(|err| match fsutil::Unreadable::of(&err) {
                    Some(entry) => ImageError::Unreadable {
                        path: entry.path.clone(),
                        dir: source.to_owned(),
                    },
                    None => ImageError::io("copy", source)(err),
                })?
                .skipped_special
        } else if meta.is_file() {
            unpack_tar(source, &rootfs, privileged, &mut copying)?
        } else {
            return Err(ImageError::NotARootfs(source.to_owned()));
        };
        let mut hashing = Tracker::new(observer, ImportPhase::Hashing);
        let (id, size_bytes, files) = tree_digest(&rootfs, &mut hashing).map_err(ImageError::io("read", &rootfs))?;
        let info = ImageInfo {
            name: name.to_owned(),
            id,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            source: source.display().to_string(),
            size_bytes,
            files,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            digest: None,
            pulled: None,
            blobs: Vec::new(),
        };
        self.install(staging, &info)?;
        Ok(ImportSummary { info, skipped_special })
    }

    /// The image directory `source` is or holds, if it is an image (OCI
    /// layout or `docker save`) rather than a root filesystem; a tarball is
    /// extracted into `staging` first.
    fn image_layout(
        &self,
        source: &Path,
        meta: &fs::Metadata,
        staging: &TempDir,
    ) -> Result<Option<(PathBuf, oci::layout::Format)>, ImageError> {
        if meta.is_dir() {
            return Ok(oci::layout::format_of_dir(source).map(|f| (source.to_owned(), f)));
        }
        if !meta.is_file() || !oci::layout::is_image_archive(source) {
            return Ok(None);
        }
        let dir = staging.path().join("image");
        let file = fs::File::open(source).map_err(ImageError::io("read", source))?;
        tar::Archive::new(io::BufReader::new(file))
            .unpack(&dir)
            .map_err(ImageError::io("unpack", source))?;
        Ok(oci::layout::format_of_dir(&dir).map(|f| (dir, f)))
    }

    /// Imports the image in `layout`: its layers applied in order.
    fn import_layout(
        &self,
        name: &str,
        source: &Path,
        (dir, format): &(PathBuf, oci::layout::Format),
        staging: TempDir,
        tracker: &mut Tracker<'_>,
    ) -> Result<ImportSummary, ImageError> {
        let bad = |err: BadImage| ImageError::BadImage {
            path: source.to_owned(),
            source: err,
        };
        let image = oci::layout::LocalImage::read(dir, *format, &oci::Platform::host());
        let image = image.map_err(|err| bad(err.into()))?;
        let rootfs = staging.path().join("rootfs");
        fs::create_dir(&rootfs).map_err(ImageError::io("create", &rootfs))?;
        let root = fsutil::is_root();
        let options = oci::unpack::UnpackOptions {
            chown: root,
            devices: root,
            keep_whiteouts: false,
        };
        let mut seen = 0;
        let mut progress = |report: &oci::unpack::UnpackReport| {
            let bytes = report.bytes - seen;
            seen = report.bytes;
            tracker.entry(bytes)
        };
        let report =
            image
                .unpack(&rootfs, &options, &mut progress)
                .map_err(|err| match tracker.observer.stopped() {
                    true => ImageError::Interrupted,
                    false => bad(err.into()),
                })?;
        if dir.starts_with(staging.path()) {
            remove_tree(dir).map_err(ImageError::io("remove", dir))?;
        }
        let info = ImageInfo {
            name: name.to_owned(),
            id: image.digest.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            source: source.display().to_string(),
            size_bytes: report.bytes,
            files: report.entries,
            env: image.env,
            digest: Some(image.digest),
            pulled: None,
            blobs: Vec::new(),
        };
        self.install(staging, &info)?;
        Ok(ImportSummary {
            info,
            skipped_special: report.skipped_devices,
        })
    }

    /// A locked directory to assemble a new image in (`rootfs/` inside),
    /// removed when dropped.
    pub(crate) fn begin(&self) -> Result<TempDir, ImageError> {
        fs::create_dir_all(&self.dir).map_err(ImageError::io("create", &self.dir))?;
        self.collect_abandoned();
        TempDir::create(&self.dir).map_err(ImageError::io("create a directory in", &self.dir))
    }

    /// Records `info` in `staging` and puts it in place of any image of
    /// that name, at once.
    pub(crate) fn install(&self, staging: TempDir, info: &ImageInfo) -> Result<(), ImageError> {
        let record = staging.path().join("image.json");
        let json =
            serde_json::to_vec_pretty(info).map_err(|e| ImageError::io("write", &record)(io::Error::other(e)))?;
        fs::write(&record, json).map_err(ImageError::io("write", &record))?;

        let target = self.image_dir(&info.name);
        let old = self.dir.join(format!(".rm-{}", random_id(6)));
        let had_old = fs::rename(&target, &old).is_ok();
        staging.rename_to(&target).map_err(ImageError::io("rename", &target))?;
        if had_old {
            let _ = remove_tree(&old);
        }
        Ok(())
    }

    fn pull_lock_path(&self, name: &str) -> PathBuf {
        let dir = self.image_dir(name);
        let file = format!(".pull-{}.lock", dir.file_name().unwrap_or_default().to_string_lossy());
        self.dir.join(file)
    }

    /// A lock held while `name` is pulled, so that two processes pulling
    /// it store it once (the second finds it done).
    pub(crate) fn pull_lock(&self, name: &str) -> io::Result<nix::fcntl::Flock<fs::File>> {
        fs::create_dir_all(&self.dir)?;
        let path = self.pull_lock_path(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
    }

    /// Removes what stopped or killed imports and removals left: partial
    /// copies whose process is gone (a running import holds its copy's
    /// lock), and images half removed (`.rm-`, renamed away whole first).
    pub fn collect_abandoned(&self) {
        tempdir::collect(&self.dir);
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".rm-") {
                let _ = remove_tree(&entry.path());
            }
        }
    }
}

/// The identity of the `host` image: the machine and its operating system
/// release. A cache key built on it changes when either does; what else on
/// the host a step depends on, its cache policy must say (`env_keys`,
/// `on_change`).
pub fn host_identity() -> String {
    let mut hasher = blake3::Hasher::new();
    for file in ["/etc/machine-id", "/etc/os-release", "/usr/lib/os-release"] {
        hasher.update(file.as_bytes());
        hasher.update(&fs::read(file).unwrap_or_default());
    }
    format!("host:{}", &hasher.finalize().to_hex()[..16])
}

fn validate_name(name: &str) -> Result<(), ImageError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != HOST_IMAGE
        && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:/@".contains(c))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidName(name.to_owned()))
    }
}

/// Unpacks a tar (or tar.gz) archive; returns the number of special files
/// left out because they need root.
fn unpack_tar(archive: &Path, dest: &Path, privileged: bool, tracker: &mut Tracker<'_>) -> Result<u64, ImageError> {
    let io_err = |e| ImageError::io("unpack", archive)(e);
    let mut file = fs::File::open(archive).map_err(io_err)?;
    let mut magic = [0u8; 2];
    let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = fs::File::open(archive).map_err(io_err)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(privileged);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    fs::create_dir(dest).map_err(ImageError::io("create", dest))?;
    let mut skipped = 0;
    let mut dir_modes = Vec::new();
    let mut entries = 0u64;
    for entry in tar.entries().map_err(io_err)? {
        let mut entry = match entry {
            Ok(entry) => entry,
            // Garbage from the first byte on: not an archive at all.
            Err(_) if entries == 0 => return Err(ImageError::NotARootfs(archive.to_owned())),
            Err(e) => return Err(io_err(e)),
        };
        entries += 1;
        tracker.entry(entry.size()).map_err(io_err)?;
        let kind = entry.header().entry_type();
        if !privileged && (kind.is_character_special() || kind.is_block_special()) {
            skipped += 1;
            continue;
        }
        let unpacked = entry.unpack_in(dest).map_err(io_err)?;
        if kind.is_dir() && !privileged && unpacked {
            // Keep directories writable until every entry is in.
            let path = dest.join(entry.path().map_err(io_err)?);
            let mode = entry.header().mode().map_err(io_err)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700)).map_err(io_err)?;
            dir_modes.push((path, mode));
        }
    }
    if entries == 0 {
        return Err(ImageError::NotARootfs(archive.to_owned()));
    }
    for (path, mode) in dir_modes.into_iter().rev() {
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777));
    }
    Ok(skipped)
}

/// The content identity of a tree, its size and its number of entries.
fn tree_digest(root: &Path, tracker: &mut Tracker<'_>) -> io::Result<(String, u64, u64)> {
    let mut hasher = blake3::Hasher::new();
    digest_entry(root, Path::new(""), &mut hasher, tracker)?;
    Ok((
        format!("blake3:{}", hasher.finalize().to_hex()),
        tracker.bytes,
        tracker.entries,
    ))
}

fn digest_entry(root: &Path, rel: &Path, hasher: &mut blake3::Hasher, tracker: &mut Tracker<'_>) -> io::Result<()> {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path)?;
    let size = if meta.is_file() { meta.len() } else { 0 };
    tracker.entry(size)?;
    // The name's bytes as they are (the same as before for UTF-8 names).
    hasher.update(rel.as_os_str().as_encoded_bytes());
    let header = format!("\0{:o}\0{}\0{}\0", meta.mode(), meta.uid(), meta.gid());
    hasher.update(header.as_bytes());
    let ft = meta.file_type();
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            digest_entry(root, &rel.join(name), hasher, tracker)?;
        }
    } else if ft.is_symlink() {
        hasher.update(fs::read_link(&path)?.as_os_str().as_encoded_bytes());
    } else if ft.is_file() {
        hasher.update_reader(fs::File::open(&path)?)?;
    } else {
        hasher.update(&meta.rdev().to_le_bytes());
    }
    hasher.update(b"\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_rootfs(dir: &Path) -> PathBuf {
        let root = dir.join("rootfs-src");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("hello", root.join("bin/hi")).unwrap();
        root
    }

    #[test]
    fn import_list_resolve_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&dir.path().join("cache"));
        let src = sample_rootfs(dir.path());
        let summary = store.import("local/tiny:1", &src).unwrap();
        assert!(summary.info.id.starts_with("blake3:"));
        assert_eq!(store.list().unwrap().len(), 1);
        let image = store.resolve("local/tiny:1").unwrap().unwrap();
        assert_eq!(image.id, summary.info.id);
        assert!(store.rootfs("local/tiny:1").join("bin/hello").is_file());
        // Same content, same identity.
        assert_eq!(store.import("other", &src).unwrap().info.id, image.id);
        store.remove("local/tiny:1").unwrap();
        assert!(store.resolve("local/tiny:1").unwrap().is_none());
        assert!(matches!(store.remove("local/tiny:1"), Err(ImageError::NotFound(_))));
    }

    #[test]
    fn import_from_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let src = sample_rootfs(dir.path());
        let tarball = dir.path().join("root.tar");
        let mut builder = tar::Builder::new(fs::File::create(&tarball).unwrap());
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &src).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let store = ImageStore::new(&dir.path().join("cache"));
        let from_tar = store.import("t", &tarball).unwrap();
        assert_eq!(
            fs::read_link(store.rootfs("t").join("bin/hi")).unwrap(),
            Path::new("hello")
        );
        let from_dir = store.import("d", &src).unwrap();
        assert_eq!(from_tar.info.files, from_dir.info.files);
    }

    /// Counts entries and stops the import after `stop_after` of them.
    struct StopAfter {
        stop_after: u64,
        seen: std::sync::Mutex<Vec<ImportProgress>>,
    }

    impl ImportObserver for StopAfter {
        fn progress(&self, progress: ImportProgress) {
            self.seen.lock().unwrap().push(progress);
        }
        fn stopped(&self) -> bool {
            self.seen.lock().unwrap().len() as u64 >= self.stop_after
        }
    }

    #[test]
    fn an_import_reports_progress_and_a_stopped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = sample_rootfs(dir.path());
        let store = ImageStore::new(&dir.path().join("cache"));
        let all = StopAfter {
            stop_after: u64::MAX,
            seen: Default::default(),
        };
        let summary = store.import_observed("full", &src, &all).unwrap();
        let seen = all.seen.lock().unwrap().clone();
        let copied: Vec<_> = seen.iter().filter(|p| p.phase == ImportPhase::Copying).collect();
        let hashed: Vec<_> = seen.iter().filter(|p| p.phase == ImportPhase::Hashing).collect();
        assert_eq!(copied.last().unwrap().entries, 4);
        assert_eq!(hashed.last().unwrap().entries, summary.info.files);
        assert_eq!(hashed.last().unwrap().bytes, summary.info.size_bytes);

        let early = StopAfter {
            stop_after: 2,
            seen: Default::default(),
        };
        assert!(matches!(
            store.import_observed("stopped", &src, &early),
            Err(ImageError::Interrupted)
        ));
        assert!(store.get("stopped").unwrap().is_none());
        let names: Vec<_> = fs::read_dir(&store.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "only the full image is left: {names:?}");
    }

    #[test]
    fn bad_names_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        assert!(matches!(
            store.import("host", dir.path()),
            Err(ImageError::InvalidName(_))
        ));
        assert!(matches!(
            store.import("a b", dir.path()),
            Err(ImageError::InvalidName(_))
        ));
        let empty = dir.path().join("empty.tar");
        fs::write(&empty, []).unwrap();
        assert!(store.import("e", &empty).is_err());
        assert!(store.list().unwrap().is_empty());
    }
}
