//! The workspace source: the project tree as git would see it, its
//! manifest, and the sync plan that brings a snapshot's `/workspace` up to
//! date (DESIGN.md §4).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hm_vm::{Drift, SyncEntry, SyncKind, SyncPlan};

/// Where the source appears inside a VM.
pub const WORKSPACE: &str = "/workspace";

/// Directories that are never part of the source, at the project root.
const EXCLUDED_AT_ROOT: [&str; 1] = [".hm"];

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
        let mut manifest = Manifest::default();
        for Row(path, kind, mode, hash) in rows {
            let kind = match kind {
                0 => EntryKind::Dir,
                1 => EntryKind::File,
                2 => EntryKind::Symlink,
                _ => return None,
            };
            let hash = *blake3::Hash::from_hex(hash).ok()?.as_bytes();
            manifest.entries.insert(path, ManifestEntry { kind, mode, hash });
        }
        Some(manifest)
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

/// The project tree, scanned on demand, remembering the hashes of files
/// whose metadata did not change.
#[derive(Debug)]
pub struct Source {
    root: PathBuf,
    /// Directories inside the tree that are never source (hm's own cache,
    /// when it lives in the project).
    excluded: Vec<PathBuf>,
    hashes: Mutex<HashMap<PathBuf, (FileStamp, [u8; 32])>>,
}

/// What must be unchanged for a stored hash to be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        FileStamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

impl Source {
    pub fn new(root: PathBuf) -> Self {
        Source {
            root,
            excluded: Vec::new(),
            hashes: Mutex::new(HashMap::new()),
        }
    }

    /// Leaves `dirs` (absolute paths) out of the source.
    pub fn excluding(mut self, dirs: Vec<PathBuf>) -> Self {
        self.excluded = dirs;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Walks the tree now, applying `.gitignore`, `.ignore`,
    /// `.git/info/exclude` and the global excludes, leaving out `.git/` and
    /// `.hm/`, keeping symlinks as links.
    pub fn scan(&self) -> Result<Manifest, SourceError> {
        let root = self.root.clone();
        let excluded = self.excluded.clone();
        let walker = ignore::WalkBuilder::new(&root)
            .hidden(false)
            .parents(true)
            .ignore(true)
            .git_ignore(true)
            .git_global(true)
            .git_exclude(true)
            .require_git(false)
            .follow_links(false)
            .filter_entry(move |entry| {
                let name = entry.file_name();
                if name == ".git" || excluded.iter().any(|x| x == entry.path()) {
                    return false;
                }
                !(entry.depth() == 1 && EXCLUDED_AT_ROOT.iter().any(|x| name == *x))
            })
            .build();
        let mut manifest = Manifest::default();
        for entry in walker {
            let entry = entry.map_err(|e| SourceError {
                path: self.root.clone(),
                source: io::Error::other(e),
            })?;
            if entry.depth() == 0 {
                continue;
            }
            let path = entry.path();
            let rel = path.strip_prefix(&self.root).unwrap_or(path).to_owned();
            let meta = fs::symlink_metadata(path).map_err(|source| SourceError {
                path: path.to_owned(),
                source,
            })?;
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            let (kind, hash) = if ft.is_dir() {
                (EntryKind::Dir, [0; 32])
            } else if ft.is_symlink() {
                let target = fs::read_link(path).map_err(|source| SourceError {
                    path: path.to_owned(),
                    source,
                })?;
                (
                    EntryKind::Symlink,
                    *blake3::hash(target.as_os_str().as_encoded_bytes()).as_bytes(),
                )
            } else if ft.is_file() {
                (EntryKind::File, self.file_hash(path, &rel, &meta)?)
            } else {
                // Sockets, fifos and devices are not source.
                continue;
            };
            manifest.entries.insert(rel, ManifestEntry { kind, mode, hash });
        }
        Ok(manifest)
    }

    fn file_hash(&self, path: &Path, rel: &Path, meta: &fs::Metadata) -> Result<[u8; 32], SourceError> {
        let stamp = FileStamp::of(meta);
        let known = self.hashes.lock().unwrap_or_else(|p| p.into_inner()).get(rel).copied();
        if let Some((known_stamp, hash)) = known {
            if known_stamp == stamp {
                return Ok(hash);
            }
        }
        let mut hasher = blake3::Hasher::new();
        let file = fs::File::open(path).and_then(|f| hasher.update_reader(f).map(|_| ()));
        file.map_err(|source| SourceError {
            path: path.to_owned(),
            source,
        })?;
        let hash = *hasher.finalize().as_bytes();
        self.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rel.to_owned(), (stamp, hash));
        Ok(hash)
    }
}

/// The sync that turns a `/workspace` last synced to `before` (nothing, for
/// a fresh image) into one synced to `now`: new and changed entries are
/// written, entries gone from the source removed; anything else in the VM
/// (build outputs) is left alone.
pub fn sync_plan(source_root: &Path, before: Option<&Manifest>, now: &Manifest) -> SyncPlan {
    let empty = Manifest::default();
    let before = before.unwrap_or(&empty);
    let mut remove: Vec<PathBuf> = before
        .entries
        .keys()
        .filter(|path| !now.entries.contains_key(*path))
        .cloned()
        .collect();
    // Children before their parents.
    remove.sort_by(|a, b| {
        b.components()
            .count()
            .cmp(&a.components().count())
            .then_with(|| b.cmp(a))
    });
    let write = now
        .entries
        .iter()
        .filter(|(path, entry)| before.entries.get(*path) != Some(entry))
        .map(|(path, entry)| SyncEntry {
            path: path.clone(),
            kind: match entry.kind {
                EntryKind::Dir => SyncKind::Dir { mode: entry.mode },
                EntryKind::File => SyncKind::File { mode: entry.mode },
                EntryKind::Symlink => SyncKind::Symlink,
            },
            expected: (entry.kind != EntryKind::Dir).then_some(entry.hash),
        })
        .collect();
    SyncPlan {
        source_root: source_root.to_owned(),
        target: PathBuf::from(WORKSPACE),
        remove,
        write,
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
