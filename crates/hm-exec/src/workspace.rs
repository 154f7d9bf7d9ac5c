//! The workspace source: the project tree as git would see it, its
//! manifest, and the sync plan that brings a snapshot's `/workspace` up to
//! date (DESIGN.md §4).

use std::cmp::Ordering as Order;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use hm_vm::{Drift, SyncEntry, SyncKind, SyncPlan};

use crate::changes::Changes;
use crate::index::{Entry as IndexEntry, SourceIndex, Stamp};

/// Where the source appears inside a VM.
pub const WORKSPACE: &str = "/workspace";

/// Directories that are never part of the source, at the project root.
const EXCLUDED_AT_ROOT: [&str; 1] = [".hm"];

/// Ignore files of hm's own, read as `.gitignore` files are (and over
/// them): what to leave out of `/workspace` that git should still track.
pub const HM_IGNORE: &str = ".hmignore";

/// Threads a scan walks the tree with, at most.
const MAX_SCAN_THREADS: usize = 4;

/// An entry a walk found (see [`Source::visit`]).
struct Visited {
    path: PathBuf,
    entry: ManifestEntry,
    learnt: Option<IndexEntry>,
}

/// What one walking thread found, added to the walk's when it is done.
struct Batch<'a> {
    items: Vec<Visited>,
    into: &'a Mutex<Vec<Visited>>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let mut all = self.into.lock().unwrap_or_else(|p| p.into_inner());
        all.append(&mut self.items);
    }
}

/// The order of relative, normal paths component by component (as `Path`
/// compares them), from their bytes: a separator sorts before any byte.
fn path_order(a: &Path, b: &Path) -> Order {
    use std::os::unix::ffi::OsStrExt;
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(&x), Some(&y)) => key(x).cmp(&key(y)),
        // One is the other's prefix: the shorter first.
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

/// One source entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestEntry {
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// BLAKE3 of a file's contents or a link's target; zero for directories.
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir = 0,
    File = 1,
    Symlink = 2,
}

/// The source as one snapshot saw it: every path (relative to the project
/// root) with its kind, mode and content hash, ordered so that parents come
/// before their children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<PathBuf, ManifestEntry>,
}

/// One stored manifest entry: path (a string, or its bytes when it is not
/// UTF-8), kind, mode and hash in hex.
#[derive(serde::Serialize, serde::Deserialize)]
struct Row(#[serde(with = "hm_vm::os_path")] PathBuf, u8, u32, String);

impl Manifest {
    /// The manifest as bytes, to store with a snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        let rows: Vec<Row> = self
            .entries
            .iter()
            .map(|(path, e)| {
                let hash = blake3::Hash::from(e.hash).to_hex().to_string();
                Row(path.clone(), e.kind as u8, e.mode, hash)
            })
            .collect();
        serde_json::to_vec(&rows).unwrap_or_default()
    }

    /// A manifest stored with [`Manifest::to_bytes`]; `None` if damaged.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let rows: Vec<Row> = serde_json::from_slice(bytes).ok()?;
        let entries = rows
            .into_iter()
            .map(|Row(path, kind, mode, hash)| {
                let kind = match kind {
                    0 => EntryKind::Dir,
                    1 => EntryKind::File,
                    2 => EntryKind::Symlink,
                    _ => return None,
                };
                let hash = *blake3::Hash::from_hex(hash).ok()?.as_bytes();
                Some((path, ManifestEntry { kind, mode, hash }))
            })
            // Stored in order: the map is built in one pass.
            .collect::<Option<Vec<_>>>()?;
        Some(Manifest {
            entries: entries.into_iter().collect(),
        })
    }

    /// The manifest of what a sync planned from `self` actually copied:
    /// entries edited since the scan get the hash of what was copied, and
    /// entries gone since are gone (as they are in the VM). The snapshot
    /// records this, so a child's sync and a cache key made from it agree
    /// with the snapshot's files.
    pub fn with_drift(mut self, drift: &[Drift]) -> Self {
        for Drift { path, copied } in drift {
            match copied {
                Some(hash) => {
                    if let Some(entry) = self.entries.get_mut(path) {
                        entry.hash = *hash;
                    }
                }
                None => {
                    self.entries.remove(path);
                }
            }
        }
        self
    }

    /// A content hash of the whole manifest.
    pub fn digest(&self) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        for (path, entry) in &self.entries {
            hasher.update(path.as_os_str().as_encoded_bytes());
            hasher.update(&[0, entry.kind as u8]);
            hasher.update(&entry.mode.to_le_bytes());
            hasher.update(&entry.hash);
        }
        hasher.finalize()
    }
}

/// Why the source could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the project source at `{}`", hm_vm::os_path::escaped(path))]
pub struct SourceError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The project tree, scanned on demand. A file's content hash is reused
/// while its stamp (size, mtime, ctime, inode) is unchanged: within this
/// `Source` always, across runs when it has an index file
/// ([`Source::with_index`]).
#[derive(Debug)]
pub struct Source {
    root: PathBuf,
    /// Directories inside the tree that are never source (hm's own cache,
    /// when it lives in the project).
    excluded: Vec<PathBuf>,
    index: SourceIndex,
    /// When a scan starts (tests move it, to make files old or recent).
    clock: fn() -> SystemTime,
    /// Files read and hashed so far.
    hashed: AtomicU64,
    /// Walks of the tree so far.
    walks: AtomicU64,
    /// Watches on the tree, made at the first scan (`None` inside: no
    /// inotify here).
    changes: OnceLock<Option<Changes>>,
    /// The last walk's manifest, while its watches hold.
    last: Mutex<Option<Manifest>>,
    /// One scan at a time: a walk's watches must all be its own.
    scanning: Mutex<()>,
}

impl Source {
    pub fn new(root: PathBuf) -> Self {
        Source {
            index: SourceIndex::new(root.clone(), None),
            root,
            excluded: Vec::new(),
            clock: SystemTime::now,
            hashed: AtomicU64::new(0),
            walks: AtomicU64::new(0),
            changes: OnceLock::new(),
            last: Mutex::default(),
            scanning: Mutex::default(),
        }
    }

    /// Keeps what scans learn in the index file `file` (with `None`, only
    /// in memory, for this `Source`): read at the first scan (ignored if it
    /// is damaged or another project's) and written again, atomically,
    /// after each scan that changed it. Several processes may share one.
    pub fn with_index(mut self, file: Option<PathBuf>) -> Self {
        self.index = SourceIndex::new(self.root.clone(), file);
        self
    }

    /// Leaves `dirs` (absolute paths) out of the source.
    pub fn excluding(mut self, dirs: Vec<PathBuf>) -> Self {
        self.excluded = dirs;
        self
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Waits until the index file holds what this source's scans learnt
    /// (dropping the source waits too).
    pub fn flush(&self) {
        self.index.flush();
    }

    /// How many files this source's scans read and hashed: those whose
    /// index entry was missing, stale or racy.
    pub fn files_hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// How many times this source's scans walked the tree.
    pub fn walks(&self) -> u64 {
        self.walks.load(Ordering::Relaxed)
    }

    /// The source now, applying `.gitignore`, `.ignore`, `.hmignore`,
    /// `.git/info/exclude` and the global excludes, leaving out `.git/` and
    /// `.hm/`, keeping symlinks as links. The tree is walked again unless
    /// nothing in it changed since this source's last walk (see
    /// [`crate::changes`]).
    pub fn scan(&self) -> Result<Manifest, SourceError> {
        let _one_at_a_time = self.scanning.lock().unwrap_or_else(|p| p.into_inner());
        let changes = self.changes.get_or_init(Changes::new);
        if let Some(changes) = changes {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(last) = last.filter(|_| changes.quiet()) {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last.clone());
                return Ok(last);
            }
            changes.begin(&self.root);
        }
        let walked = self.walk(changes.as_ref());
        if let (Some(changes), Err(_)) = (changes, &walked) {
            changes.abandon();
        }
        let manifest = walked?;
        if changes.is_some() {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifest.clone());
        }
        Ok(manifest)
    }

    /// Walks the tree, in parallel, watching each directory for `changes`
    /// before it is read.
    fn walk(&self, changes: Option<&Changes>) -> Result<Manifest, SourceError> {
        self.walks.fetch_add(1, Ordering::Relaxed);
        let started = (self.clock)();
        let known = self.index.current();
        let excluded = self.excluded.clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_SCAN_THREADS));
        let walker = ignore::WalkBuilder::new(&self.root)
            .hidden(false)
            .parents(true)
            .ignore(true)
            .git_ignore(true)
            .git_global(true)
            .git_exclude(true)
            .require_git(false)
            .add_custom_ignore_filename(HM_IGNORE)
            .follow_links(false)
            .threads(threads)
            .filter_entry(move |entry| {
                let name = entry.file_name();
                if name == ".git" || excluded.iter().any(|x| x == entry.path()) {
                    return false;
                }
                !(entry.depth() == 1 && EXCLUDED_AT_ROOT.iter().any(|x| name == *x))
            })
            .build_parallel();
        let visited: Mutex<Vec<Visited>> = Mutex::default();
        let failed: Mutex<Option<SourceError>> = Mutex::default();
        walker.run(|| {
            let mut batch = Batch {
                items: Vec::new(),
                into: &visited,
            };
            let (known, failed) = (&known, &failed);
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(SourceError {
                            path: self.root.clone(),
                            source: io::Error::other(e),
                        });
                        return ignore::WalkState::Quit;
                    }
                };
                match self.visit(&entry, known, started, changes) {
                    Ok(Some(item)) => batch.items.push(item),
                    Ok(None) => {}
                    Err(e) => {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return ignore::WalkState::Quit;
                    }
                }
                ignore::WalkState::Continue
            })
        });
        if let Some(err) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(err);
        }
        let visited = visited.into_inner().unwrap_or_else(|p| p.into_inner());
        // In the manifest's order (paths compare component by component),
        // so that the map is built from it in one pass; the entries are
        // large, so their places are sorted.
        let mut order: Vec<usize> = (0..visited.len()).collect();
        order.sort_unstable_by(|&a, &b| path_order(&visited[a].path, &visited[b].path));
        let files = visited.iter().filter(|v| v.entry.kind == EntryKind::File).count();
        let mut visited: Vec<Option<Visited>> = visited.into_iter().map(Some).collect();
        let mut learnt: HashMap<PathBuf, IndexEntry> = HashMap::new();
        let manifest = Manifest {
            entries: order
                .into_iter()
                .filter_map(|i| visited[i].take())
                .map(|v| {
                    if let Some(fresh) = v.learnt {
                        learnt.insert(v.path.clone(), fresh);
                    }
                    (v.path, v.entry)
                })
                .collect(),
        };
        // Every file was known and trusted, and no known file is gone.
        if learnt.is_empty() && files == known.len() {
            return Ok(manifest);
        }
        let entries = manifest
            .entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .filter_map(|(path, _)| {
                let entry = learnt.remove(path).or_else(|| known.get(path).copied())?;
                Some((path.clone(), entry))
            })
            .collect();
        self.index.replace(entries);
        Ok(manifest)
    }

    /// One entry of the walk: what the manifest holds of it and, for a file
    /// the index did not vouch for, what the index learns.
    fn visit(
        &self,
        entry: &ignore::DirEntry,
        known: &crate::index::Entries,
        started: SystemTime,
        changes: Option<&Changes>,
    ) -> Result<Option<Visited>, SourceError> {
        if entry.depth() == 0 {
            return Ok(None);
        }
        let path = entry.path();
        let failed = |source| SourceError {
            path: path.to_owned(),
            source,
        };
        let rel = path.strip_prefix(&self.root).unwrap_or(path).to_owned();
        let meta = fs::symlink_metadata(path).map_err(failed)?;
        let mode = meta.mode() & 0o7777;
        let ft = meta.file_type();
        let mut learnt = None;
        let (kind, hash) = if ft.is_dir() {
            if let Some(changes) = changes {
                changes.watch(path);
            }
            (EntryKind::Dir, [0; 32])
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(failed)?;
            (
                EntryKind::Symlink,
                *blake3::hash(target.as_os_str().as_encoded_bytes()).as_bytes(),
            )
        } else if ft.is_file() {
            let stamp = Stamp::of(&meta);
            let entry = known.get(&rel);
            let hash = match entry.and_then(|e| e.hash_if(&stamp)) {
                Some(hash) => hash,
                None => {
                    let hash = self.hash_file(path)?;
                    let fresh = IndexEntry {
                        stamp,
                        hash,
                        racy: stamp.is_racy(started),
                    };
                    // A racy entry read again as it was is nothing new.
                    if entry != Some(&fresh) {
                        learnt = Some(fresh);
                    }
                    hash
                }
            };
            (EntryKind::File, hash)
        } else {
            // Sockets, fifos and devices are not source.
            return Ok(None);
        };
        Ok(Some(Visited {
            path: rel,
            entry: ManifestEntry { kind, mode, hash },
            learnt,
        }))
    }

    fn hash_file(&self, path: &Path) -> Result<[u8; 32], SourceError> {
        self.hashed.fetch_add(1, Ordering::Relaxed);
        let mut hasher = blake3::Hasher::new();
        let file = fs::File::open(path).and_then(|f| hasher.update_reader(f).map(|_| ()));
        file.map_err(|source| SourceError {
            path: path.to_owned(),
            source,
        })?;
        Ok(*hasher.finalize().as_bytes())
    }
}

/// The sync that turns a `/workspace` last synced to `before` (nothing, for
/// a fresh image) into one synced to `now`: new and changed entries are
/// written, entries gone from the source removed; anything else in the VM
/// (build outputs) is left alone.
pub fn sync_plan(source_root: &Path, before: Option<&Manifest>, now: &Manifest) -> SyncPlan {
    let empty = Manifest::default();
    let before = before.unwrap_or(&empty);
    let mut remove = Vec::new();
    let mut write = Vec::new();
    // Both in the same order: one pass over the two, paths compared by
    // their bytes first (nearly all are the same).
    let (mut old, mut new) = (before.entries.iter().peekable(), now.entries.iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => Order::Less,
            (None, Some(_)) => Order::Greater,
            (Some((a, _)), Some((b, _))) if a.as_os_str() == b.as_os_str() => Order::Equal,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Order::Less => remove.extend(old.next().map(|(path, _)| path.clone())),
            Order::Greater => write.extend(new.next().map(|(path, entry)| sync_entry(path, entry))),
            Order::Equal => {
                let (_, was) = old.next().expect("peeked");
                let (path, entry) = new.next().expect("peeked");
                if was != entry {
                    write.push(sync_entry(path, entry));
                }
            }
        }
    }
    // Children before their parents.
    remove.sort_by(|a, b| {
        b.components()
            .count()
            .cmp(&a.components().count())
            .then_with(|| b.cmp(a))
    });
    SyncPlan {
        source_root: source_root.to_owned(),
        target: PathBuf::from(WORKSPACE),
        remove,
        write,
    }
}

/// How the sync writes a source entry.
fn sync_entry(path: &Path, entry: &ManifestEntry) -> SyncEntry {
    SyncEntry {
        path: path.to_owned(),
        kind: match entry.kind {
            EntryKind::Dir => SyncKind::Dir { mode: entry.mode },
            EntryKind::File => SyncKind::File { mode: entry.mode },
            EntryKind::Symlink => SyncKind::Symlink,
        },
        expected: (entry.kind != EntryKind::Dir).then_some(entry.hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("src/deep")).unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        fs::create_dir_all(root.join(".hm")).unwrap();
        fs::create_dir_all(root.join("target")).unwrap();
        fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        fs::write(root.join("src/deep/run.sh"), "#!/bin/sh").unwrap();
        fs::set_permissions(root.join("src/deep/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("build.log"), "x").unwrap();
        fs::write(root.join("target/out"), "x").unwrap();
        fs::write(root.join(".hm/ci.json"), "{}").unwrap();
        std::os::unix::fs::symlink("../etc/passwd", root.join("link")).unwrap();
        dir
    }

    fn paths(m: &Manifest) -> Vec<String> {
        m.entries.keys().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn scan_applies_ignore_rules_and_keeps_links() {
        let dir = tree();
        let source = Source::new(dir.path().to_owned());
        let m = source.scan().unwrap();
        assert_eq!(
            paths(&m),
            [
                ".gitignore",
                "link",
                "src",
                "src/deep",
                "src/deep/run.sh",
                "src/main.rs"
            ]
        );
        assert_eq!(m.entries[Path::new("link")].kind, EntryKind::Symlink);
        assert_eq!(m.entries[Path::new("src/deep/run.sh")].mode, 0o755);
        // `.hmignore` files, as `.gitignore` ones, but for hm alone.
        fs::write(dir.path().join("src/.hmignore"), "deep/\n").unwrap();
        let m = Source::new(dir.path().to_owned()).scan().unwrap();
        assert_eq!(paths(&m), [".gitignore", "link", "src", "src/.hmignore", "src/main.rs"]);
    }

    #[test]
    fn excluded_directories_are_not_source() {
        let dir = tree();
        fs::create_dir_all(dir.path().join("cache/runs")).unwrap();
        let source = Source::new(dir.path().to_owned()).excluding(vec![dir.path().join("cache")]);
        assert!(!paths(&source.scan().unwrap()).iter().any(|p| p.starts_with("cache")));
    }

    #[test]
    fn unchanged_source_syncs_nothing_and_changes_sync_exactly() {
        let dir = tree();
        let source = Source::new(dir.path().to_owned());
        let first = source.scan().unwrap();
        let full = sync_plan(dir.path(), None, &first);
        assert_eq!(full.write.len(), first.entries.len());
        assert!(sync_plan(dir.path(), Some(&first), &source.scan().unwrap()).is_empty());

        fs::remove_dir_all(dir.path().join("src/deep")).unwrap();
        fs::write(dir.path().join("src/main.rs"), "fn main() { edited() }").unwrap();
        fs::write(dir.path().join("new.txt"), "n").unwrap();
        let now = source.scan().unwrap();
        let plan = sync_plan(dir.path(), Some(&first), &now);
        let removed: Vec<_> = plan.remove.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(removed, ["src/deep/run.sh", "src/deep"]);
        let written: Vec<_> = plan.write.iter().map(|e| e.path.display().to_string()).collect();
        assert_eq!(written, ["new.txt", "src/main.rs"]);
        assert_ne!(first.digest(), now.digest());
        assert_eq!(Manifest::from_bytes(&now.to_bytes()).unwrap(), now);
    }

    /// Issue 11, item 1: the manifest a snapshot records is what the sync
    /// copied, not what the scan saw before the file was edited again.
    #[test]
    fn drift_makes_the_manifest_what_was_copied() {
        let dir = tree();
        let source = Source::new(dir.path().to_owned());
        let scanned = source.scan().unwrap();
        let plan = sync_plan(dir.path(), None, &scanned);
        let main = plan.write.iter().find(|e| e.path == Path::new("src/main.rs")).unwrap();
        assert_eq!(main.expected, Some(scanned.entries[Path::new("src/main.rs")].hash));
        assert!(plan
            .write
            .iter()
            .filter(|e| e.kind == SyncKind::Symlink)
            .all(|e| e.expected.is_some()));
        let drift = [
            Drift {
                path: "src/main.rs".into(),
                copied: Some([9; 32]),
            },
            Drift {
                path: "link".into(),
                copied: None,
            },
        ];
        let copied = scanned.clone().with_drift(&drift);
        assert_eq!(copied.entries[Path::new("src/main.rs")].hash, [9; 32]);
        assert!(!copied.entries.contains_key(Path::new("link")));
        assert_eq!(copied.entries.len(), scanned.entries.len() - 1);
        // A child syncs the file again when the source is back to what was
        // scanned, and the link that vanished comes back.
        let again = sync_plan(dir.path(), Some(&copied), &scanned);
        let written: Vec<_> = again.write.iter().map(|e| e.path.display().to_string()).collect();
        assert_eq!(written, ["link", "src/main.rs"]);
    }

    /// A clock an hour ahead: every file of a test tree is long settled.
    fn later() -> SystemTime {
        SystemTime::now() + std::time::Duration::from_secs(3600)
    }

    /// A fresh source of `dir` (as each run makes one) with the index file
    /// `index`, seeing every file as settled.
    fn indexed(dir: &Path, index: &Path) -> Source {
        Source::new(dir.to_owned())
            .with_index(Some(index.to_owned()))
            .with_clock(later)
    }

    const FILES: u64 = 3; // .gitignore, src/main.rs, src/deep/run.sh

    #[test]
    fn unchanged_files_are_only_stated_by_the_next_source() {
        let dir = tree();
        let cache = tempfile::tempdir().unwrap();
        let index = cache.path().join("index/project");
        let first = indexed(dir.path(), &index);
        let seen = first.scan().unwrap();
        assert_eq!(first.files_hashed(), FILES);
        first.flush();
        let next = indexed(dir.path(), &index);
        assert_eq!(next.scan().unwrap(), seen);
        assert_eq!(next.files_hashed(), 0, "unchanged files were read again");
        // A scan that learns nothing writes nothing.
        let written = fs::metadata(&index).unwrap();
        assert_eq!(next.scan().unwrap(), seen);
        let now = fs::metadata(&index).unwrap();
        assert_eq!((written.ino(), written.mtime_nsec()), (now.ino(), now.mtime_nsec()));
        // An index of another project in its place is not trusted.
        let other = tree();
        let foreign = indexed(other.path(), &index);
        foreign.scan().unwrap();
        assert_eq!(foreign.files_hashed(), FILES);
    }

    #[test]
    fn racy_files_are_hashed_again() {
        let dir = tree();
        let cache = tempfile::tempdir().unwrap();
        let index = cache.path().join("index");
        // Files written just now, scanned with the real clock: racy.
        let now = |dir: &Path| Source::new(dir.to_owned()).with_index(Some(index.clone()));
        let first = now(dir.path());
        first.scan().unwrap();
        assert_eq!(first.files_hashed(), FILES);
        first.flush();
        let next = now(dir.path());
        next.scan().unwrap();
        assert_eq!(next.files_hashed(), FILES, "a racy file was trusted");
        next.flush();
        // Hashed once more when settled, then trusted.
        let settled = indexed(dir.path(), &index);
        settled.scan().unwrap();
        settled.scan().unwrap();
        assert_eq!(settled.files_hashed(), FILES);
        settled.flush();
        let last = indexed(dir.path(), &index);
        last.scan().unwrap();
        assert_eq!(last.files_hashed(), 0);
    }

    /// A file rewritten in the same second at the same size, its mtime put
    /// back as it was: the ctime (or the inode) still tells.
    #[test]
    fn a_same_size_rewrite_with_the_same_mtime_is_seen() {
        let dir = tree();
        let cache = tempfile::tempdir().unwrap();
        let index = cache.path().join("index");
        let main = dir.path().join("src/main.rs");
        let link = dir.path().join("src/deep/run.sh");
        let kept = indexed(dir.path(), &index);
        let before = kept.scan().unwrap();
        kept.flush();
        let rewrite = |path: &Path, text: &str, replace: bool| {
            let old = fs::metadata(path).unwrap();
            assert_eq!(old.len(), text.len() as u64);
            if replace {
                let new = path.with_extension("new");
                fs::write(&new, text).unwrap();
                fs::set_permissions(&new, old.permissions()).unwrap();
                fs::rename(&new, path).unwrap();
            } else {
                fs::write(path, text).unwrap();
            }
            let file = fs::File::options().write(true).open(path).unwrap();
            file.set_modified(old.modified().unwrap()).unwrap();
            let new = fs::metadata(path).unwrap();
            assert_eq!(
                (new.len(), new.mtime(), new.mtime_nsec()),
                (old.len(), old.mtime(), old.mtime_nsec())
            );
        };
        // Past the kernel's timestamp tick (1-10 ms), still in the same
        // second: the scan's clock says none of this is racy.
        std::thread::sleep(std::time::Duration::from_millis(30));
        rewrite(&main, "fn main(){!}", false);
        rewrite(&link, "#!/bin/SH", true);
        for source in [indexed(dir.path(), &index), kept] {
            let hashed = source.files_hashed();
            let after = source.scan().unwrap();
            assert_eq!(source.files_hashed() - hashed, 2, "a rewritten file was not read");
            assert_eq!(
                after.entries[Path::new("src/main.rs")].hash,
                *blake3::hash(b"fn main(){!}").as_bytes()
            );
            assert_eq!(
                after.entries[Path::new("src/deep/run.sh")].hash,
                *blake3::hash(b"#!/bin/SH").as_bytes()
            );
            assert_eq!(sync_plan(dir.path(), Some(&before), &after).write.len(), 2);
        }
    }

    #[test]
    fn a_damaged_index_is_rebuilt_never_trusted() {
        let dir = tree();
        let cache = tempfile::tempdir().unwrap();
        let index = cache.path().join("index");
        let good = indexed(dir.path(), &index).scan().unwrap();
        let intact = fs::read(&index).unwrap();
        let mut other_version = intact[..intact.len() - 32].to_vec();
        other_version[8] += 1;
        let sum = blake3::hash(&other_version);
        other_version.extend_from_slice(sum.as_bytes());
        let mut flipped = intact.clone();
        flipped[intact.len() / 2] ^= 1;
        let damaged: [(&str, Vec<u8>); 5] = [
            ("empty", Vec::new()),
            ("truncated", intact[..intact.len() / 2].to_vec()),
            ("garbage", vec![0x5a; intact.len()]),
            ("a flipped bit", flipped),
            ("another version", other_version),
        ];
        for (what, bytes) in damaged {
            fs::write(&index, bytes).unwrap();
            let source = indexed(dir.path(), &index);
            assert_eq!(source.scan().unwrap(), good, "{what}");
            assert_eq!(source.files_hashed(), FILES, "{what}: a damaged index was used");
            source.flush();
            let rebuilt = crate::index::decode(dir.path(), &fs::read(&index).unwrap());
            assert_eq!(rebuilt.map(|e| e.len()), Some(FILES as usize), "{what}: not rebuilt");
        }
    }

    #[test]
    fn paths_sort_as_the_manifest_orders_them() {
        let mut paths: Vec<PathBuf> = ["a-b", "a/b", "a.b/c", "a", "ab", "a/b/c", "a/b-c", "b", "a/bc"]
            .iter()
            .map(PathBuf::from)
            .collect();
        paths.sort_by(|a, b| path_order(a, b));
        let mut by_path = paths.clone();
        by_path.sort();
        assert_eq!(paths, by_path);
    }

    #[test]
    fn a_scan_with_nothing_changed_since_the_last_walk_does_not_walk() {
        let dir = tree();
        let source = Source::new(dir.path().to_owned());
        let first = source.scan().unwrap();
        assert_eq!(source.scan().unwrap(), first);
        if source.walks() == 2 {
            eprintln!("no inotify here: every scan walks");
            return;
        }
        assert_eq!(source.walks(), 1);
        // Each kind of change is seen, however deep.
        type Change = (&'static str, fn(&Path));
        let changes: [Change; 5] = [
            ("edited", |root| {
                fs::write(root.join("src/main.rs"), "fn main() { 1 }").unwrap()
            }),
            ("created", |root| fs::write(root.join("src/new.rs"), "").unwrap()),
            ("made executable", |root| {
                fs::set_permissions(root.join("src/new.rs"), fs::Permissions::from_mode(0o755)).unwrap()
            }),
            ("new folder", |root| {
                fs::create_dir_all(root.join("src/deep/er")).unwrap()
            }),
            ("deleted", |root| fs::remove_file(root.join("src/main.rs")).unwrap()),
        ];
        let mut before = first;
        for (what, change) in changes {
            change(dir.path());
            let now = source.scan().unwrap();
            assert_ne!(now, before, "{what}: not seen");
            assert_eq!(now, Source::new(dir.path().to_owned()).scan().unwrap(), "{what}");
            before = now;
        }
        let walks = source.walks();
        fs::write(dir.path().join("src/deep/er/x"), "x").unwrap();
        assert!(source.scan().unwrap().entries.contains_key(Path::new("src/deep/er/x")));
        assert_eq!(source.walks(), walks + 1);
        source.scan().unwrap();
        assert_eq!(source.walks(), walks + 1, "walked again with nothing changed");
    }

    #[test]
    fn deleted_files_leave_the_manifest_and_the_index() {
        let dir = tree();
        let cache = tempfile::tempdir().unwrap();
        let index = cache.path().join("index");
        indexed(dir.path(), &index).scan().unwrap();
        fs::remove_dir_all(dir.path().join("src/deep")).unwrap();
        let source = indexed(dir.path(), &index);
        let now = source.scan().unwrap();
        assert_eq!(paths(&now), [".gitignore", "link", "src", "src/main.rs"]);
        assert_eq!(source.files_hashed(), 0);
        source.flush();
        let stored = crate::index::decode(dir.path(), &fs::read(&index).unwrap()).unwrap();
        let mut stored: Vec<_> = stored.keys().map(|p| p.display().to_string()).collect();
        stored.sort();
        assert_eq!(stored, [".gitignore", "src/main.rs"]);
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_byte_for_byte() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tree();
        let odd = std::ffi::OsStr::from_bytes(b"src/f\xff");
        fs::write(dir.path().join(odd), "x").unwrap();
        fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"src/f\xfe")), "y").unwrap();
        let source = Source::new(dir.path().to_owned());
        let m = source.scan().unwrap();
        assert_eq!(m.entries[Path::new(odd)].kind, EntryKind::File);
        let stored = Manifest::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(stored, m);
        // Plain names are stored as before: strings.
        assert!(String::from_utf8_lossy(&m.to_bytes()).contains(r#"["src/main.rs",1,"#));
        assert!(sync_plan(dir.path(), Some(&stored), &source.scan().unwrap()).is_empty());
    }
}
