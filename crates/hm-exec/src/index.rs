//! The persistent source index: what the last scan learnt of each file
//! (its size, times, inode and content hash), kept in a file between runs
//! so that an unchanged file is only `stat`ed, never read (git's index
//! does the same for `git status`).
//!
//! The file is one [`encode`]d block, written whole to a temporary file,
//! synced and renamed over the old one: a reader sees the old index or the
//! new one, never half of either, whatever happens to the writer, and of
//! several writers the last one wins. What [`decode`] does not accept (a
//! truncated, damaged or foreign file, another version) is ignored: the
//! next scan hashes every file and writes a new one.
//!
//! Format, version 1, little-endian:
//!
//! ```text
//! magic    8 bytes  "hm-index"
//! version  u32      1
//! root     u32 length, then the project root's bytes
//! count    u64
//! count entries, each:
//!   path   u32 length, then the path's bytes (relative to the root)
//!   size   u64
//!   mtime  i64 seconds, u32 nanoseconds
//!   ctime  i64 seconds, u32 nanoseconds
//!   inode  u64
//!   flags  u8       bit 0: racy (see below)
//!   hash   32 bytes BLAKE3 of the contents
//! sum      32 bytes BLAKE3 of everything before it
//! ```
//!
//! A *racy* entry is one whose file changed (mtime or ctime) less than
//! [`RACY_MARGIN`] before the scan that hashed it began: a later write
//! within the same timestamp tick would leave its stamp as it was, so its
//! hash is not trusted again; the next scan reads the file once more.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"hm-index";
const VERSION: u32 = 1;
/// Bytes of an entry besides its path.
const ENTRY_FIXED: usize = 4 + 8 + 12 + 12 + 8 + 1 + 32;
const SUM: usize = 32;
const RACY: u8 = 1;

/// How long after a file's last change its stamp is trusted: longer than
/// the coarsest timestamp a filesystem keeps (FAT's 2 s mtime; ext4, xfs,
/// btrfs and tmpfs stamp with the kernel's tick, 1–10 ms) plus the lag of
/// that tick behind the clock the scan reads.
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

/// Temporary files older than this were left by a writer that died.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// What must be unchanged for a stored hash to be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub ino: u64,
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
            ino: meta.ino(),
        }
    }

    /// Whether the file changed too close to `scan_start` for its stamp to
    /// tell a later change apart (see the module's documentation).
    pub fn is_racy(&self, scan_start: SystemTime) -> bool {
        let limit = scan_start
            .checked_sub(RACY_MARGIN)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| (d.as_secs() as i64, d.subsec_nanos()))
            .unwrap_or((0, 0));
        self.mtime >= limit || self.ctime >= limit
    }
}

/// What the index knows of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub stamp: Stamp,
    pub hash: [u8; 32],
    /// Hashed too soon after a change to be trusted again.
    pub racy: bool,
}

impl Entry {
    /// The stored hash, if the file's stamp is still `stamp` and the entry
    /// may be trusted.
    pub fn hash_if(&self, stamp: &Stamp) -> Option<[u8; 32]> {
        (!self.racy && self.stamp == *stamp).then_some(self.hash)
    }
}

/// Every file's entry, by path relative to the project root.
pub type Entries = HashMap<PathBuf, Entry>;

/// The index of one project: loaded from its file (when it has one) on
/// first use, replaced whole after a scan that learnt something. The file
/// is written in the background (its sync waits on the disk, which the
/// scan that learnt something need not do); dropping the index waits for
/// the last write.
#[derive(Debug)]
pub struct SourceIndex {
    root: PathBuf,
    file: Option<PathBuf>,
    entries: OnceLock<Mutex<Arc<Entries>>>,
    /// The last write, under way or done: each write waits for the one
    /// before it, so the file ends as the last [`SourceIndex::replace`]
    /// left the entries.
    writing: Mutex<Option<JoinHandle<()>>>,
}

impl SourceIndex {
    /// An index of the project at `root`, kept in `file` (or only in
    /// memory).
    pub fn new(root: PathBuf, file: Option<PathBuf>) -> Self {
        SourceIndex {
            root,
            file,
            entries: OnceLock::new(),
            writing: Mutex::new(None),
        }
    }

    fn slot(&self) -> &Mutex<Arc<Entries>> {
        self.entries.get_or_init(|| {
            let loaded = self.file.as_deref().and_then(|file| load(&self.root, file));
            Mutex::new(Arc::new(loaded.unwrap_or_default()))
        })
    }

    /// The entries as they are now.
    pub fn current(&self) -> Arc<Entries> {
        self.slot().lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `entries` the index, in memory at once and in its file soon
    /// (see [`SourceIndex::flush`]). A file that cannot be written is left
    /// as it was: the index only saves work.
    pub fn replace(&self, entries: Entries) {
        let entries = Arc::new(entries);
        *self.slot().lock().unwrap_or_else(|p| p.into_inner()) = entries.clone();
        let Some(file) = &self.file else { return };
        let mut writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let before = writing.take();
        let write = {
            let (file, root, entries) = (file.clone(), self.root.clone(), entries.clone());
            move || {
                if let Some(before) = before {
                    let _ = before.join();
                }
                let _ = save(&file, &encode(&root, &entries));
            }
        };
        match std::thread::Builder::new().name("hm-index".into()).spawn(write) {
            Ok(handle) => *writing = Some(handle),
            // No thread to spare: written now (an earlier write may still
            // land after this one; the index is then only older).
            Err(_) => {
                let _ = save(file, &encode(&self.root, &entries));
            }
        }
    }

    /// Waits until the file holds what the last replace left.
    pub fn flush(&self) {
        let last = self.writing.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(last) = last {
            let _ = last.join();
        }
    }
}

impl Drop for SourceIndex {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The entries in `file` if it is an intact index of `root`.
fn load(root: &Path, file: &Path) -> Option<Entries> {
    decode(root, &fs::read(file).ok()?)
}

/// The index of `root` as bytes (the format in the module's documentation).
pub fn encode(root: &Path, entries: &Entries) -> Vec<u8> {
    let root = root.as_os_str().as_bytes();
    let paths: usize = entries.keys().map(|p| p.as_os_str().len()).sum();
    let mut out = Vec::with_capacity(8 + 4 + 4 + root.len() + 8 + entries.len() * ENTRY_FIXED + paths + SUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(root.len() as u32).to_le_bytes());
    out.extend_from_slice(root);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, entry) in entries {
        let path = path.as_os_str().as_bytes();
        let Stamp {
            size,
            mtime,
            ctime,
            ino,
        } = entry.stamp;
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&mtime.0.to_le_bytes());
        out.extend_from_slice(&mtime.1.to_le_bytes());
        out.extend_from_slice(&ctime.0.to_le_bytes());
        out.extend_from_slice(&ctime.1.to_le_bytes());
        out.extend_from_slice(&ino.to_le_bytes());
        out.push(if entry.racy { RACY } else { 0 });
        out.extend_from_slice(&entry.hash);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The entries of an index of `root` stored with [`encode`]; `None` if
/// the bytes are anything else: damaged, cut short, of another version or
/// of another project.
pub fn decode(root: &Path, bytes: &[u8]) -> Option<Entries> {
    let body_len = bytes.len().checked_sub(SUM)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(MAGIC.len())? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let stored_root = r.counted()?;
    if stored_root != root.as_os_str().as_bytes() {
        return None;
    }
    let count = r.u64()?;
    // Each entry takes at least its fixed part: a count beyond what the
    // bytes hold is damage, not a reason to reserve memory.
    if count > (r.0.len() / ENTRY_FIXED) as u64 {
        return None;
    }
    let mut entries = Entries::with_capacity(count as usize);
    for _ in 0..count {
        let path = r.counted()?;
        let path = PathBuf::from(OsStr::from_bytes(path));
        let stamp = Stamp {
            size: r.u64()?,
            mtime: (r.u64()? as i64, r.u32()?),
            ctime: (r.u64()? as i64, r.u32()?),
            ino: r.u64()?,
        };
        let flags = r.take(1)?[0];
        let hash = r.take(32)?.try_into().ok()?;
        entries.insert(
            path,
            Entry {
                stamp,
                hash,
                racy: flags & RACY != 0,
            },
        );
    }
    r.0.is_empty().then_some(entries)
}

/// Reads fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A `u32` length, then that many bytes.
    fn counted(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Writes `bytes` to `file` atomically: a temporary file beside it,
/// synced, then renamed over it. Temporary files that writers killed
/// before their rename left behind are removed first.
pub(crate) fn save(file: &Path, bytes: &[u8]) -> io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file.file_name().unwrap_or_default();
    fs::create_dir_all(dir)?;
    remove_stale_temps(dir, name);
    let mut temp_name = name.to_owned();
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut out = fs::File::options().write(true).create_new(true).open(&temp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        fs::rename(&temp, file)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Removes `NAME.*.tmp` in `dir` that no live writer can still be writing.
fn remove_stale_temps(dir: &Path, name: &OsStr) {
    let Ok(listing) = fs::read_dir(dir) else { return };
    let prefix = [name.as_bytes(), b"."].concat();
    for entry in listing.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_bytes();
        if !(bytes.starts_with(&prefix) && bytes.ends_with(b".tmp")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The name of the index file of the project at `root`: the hex BLAKE3 of
/// its path, so that each project has its own.
pub fn file_name(root: &Path) -> String {
    blake3::hash(root.as_os_str().as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, racy: bool) -> Entry {
        Entry {
            stamp: Stamp {
                size: n as u64,
                mtime: (1_700_000_000 + n as i64, 5),
                ctime: (-(n as i64), 999_999_999),
                ino: 77 + n as u64,
            },
            hash: [n; 32],
            racy,
        }
    }

    fn entries() -> Entries {
        let mut entries = Entries::new();
        entries.insert("src/a.rs".into(), entry(1, false));
        entries.insert("b".into(), entry(2, true));
        entries.insert(PathBuf::from(OsStr::from_bytes(b"odd\xff")), entry(3, false));
        entries
    }

    #[test]
    fn entries_come_back_as_they_went_in() {
        let root = Path::new("/home/me/project");
        let bytes = encode(root, &entries());
        assert_eq!(decode(root, &bytes), Some(entries()));
        assert_eq!(decode(root, &encode(root, &Entries::new())), Some(Entries::new()));
    }

    #[test]
    fn anything_but_an_intact_index_of_this_project_is_refused() {
        let root = Path::new("/home/me/project");
        let bytes = encode(root, &entries());
        // Cut anywhere.
        for len in 0..bytes.len() {
            assert_eq!(decode(root, &bytes[..len]), None, "cut at {len}");
        }
        // Any byte flipped.
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert_eq!(decode(root, &damaged), None, "byte {at} flipped");
        }
        // Another project's, with a sound checksum.
        assert_eq!(decode(Path::new("/home/me/other"), &bytes), None);
        // Another version, with a sound checksum.
        let mut other = bytes[..bytes.len() - SUM].to_vec();
        other[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = blake3::hash(&other);
        other.extend_from_slice(sum.as_bytes());
        assert_eq!(decode(root, &other), None);
        // A count beyond the bytes, with a sound checksum.
        let mut lying = encode(root, &Entries::new());
        lying.truncate(lying.len() - SUM);
        let at = lying.len() - 8;
        lying[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        let sum = blake3::hash(&lying);
        lying.extend_from_slice(sum.as_bytes());
        assert_eq!(decode(root, &lying), None);
    }

    #[test]
    fn racy_means_changed_within_the_margin_before_the_scan() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let stamp = |mtime: (i64, u32), ctime: (i64, u32)| Stamp {
            size: 1,
            mtime,
            ctime,
            ino: 1,
        };
        assert!(!stamp((997, 999_999_999), (997, 0)).is_racy(start));
        assert!(stamp((998, 0), (900, 0)).is_racy(start));
        assert!(stamp((900, 0), (998, 0)).is_racy(start));
        // A time set in the future stays racy.
        assert!(stamp((5_000, 0), (900, 0)).is_racy(start));
        let racy = Entry {
            racy: true,
            ..entry(1, false)
        };
        assert_eq!(racy.hash_if(&racy.stamp), None);
        let trusted = entry(1, false);
        assert_eq!(trusted.hash_if(&trusted.stamp), Some([1; 32]));
        let mut moved = trusted.stamp;
        moved.ino += 1;
        assert_eq!(trusted.hash_if(&moved), None);
        let mut touched = trusted.stamp;
        touched.ctime.1 += 1;
        assert_eq!(trusted.hash_if(&touched), None);
    }

    #[test]
    fn the_file_ends_as_the_last_replace_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let (root, file) = (Path::new("/p"), dir.path().join("index"));
        let index = SourceIndex::new(root.to_owned(), Some(file.clone()));
        for n in 1..=20u8 {
            let entries = (0..n)
                .map(|i| (PathBuf::from(format!("f{i}")), entry(i, false)))
                .collect();
            index.replace(entries);
        }
        drop(index);
        assert_eq!(decode(root, &fs::read(&file).unwrap()).map(|e| e.len()), Some(20));
        assert_eq!(SourceIndex::new(root.to_owned(), Some(file)).current().len(), 20);
    }

    #[test]
    fn saving_replaces_the_file_whole_and_sweeps_only_stale_temps() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("index").join("abc");
        save(&file, b"one").unwrap();
        save(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        // A writer killed before its rename, long ago and just now.
        let old = dir.path().join("index/abc.1.0.tmp");
        let fresh = dir.path().join("index/abc.2.0.tmp");
        let other = dir.path().join("index/abd.3.0.tmp");
        for path in [&old, &fresh, &other] {
            fs::write(path, "half").unwrap();
        }
        let long_ago = SystemTime::now() - 2 * STALE_TEMP;
        for path in [&old, &other] {
            let f = fs::File::options().write(true).open(path).unwrap();
            f.set_modified(long_ago).unwrap();
        }
        save(&file, b"three").unwrap();
        assert!(!old.exists() && fresh.exists() && other.exists());
        let left: Vec<_> = fs::read_dir(dir.path().join("index")).unwrap().flatten().collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }
}
