//! The snapshot registry: a SQLite database (WAL) in the cache directory
//! that maps cache keys to stored snapshots (DESIGN.md §5).
//!
//! An entry names its snapshot by *parts* (a backend's storage units: the
//! sandbox's layer directories, top first) and a base; parts are shared
//! between entries (a child's stack holds its parent's layers) and a part's
//! storage is deleted only when no entry references it and no live process
//! holds it. An entry also names its *parent* entry (the `builds_in`
//! parent's key). Keys are all known before a build, so a child's entry
//! is reachable without its parent's, and makes it unnecessary: eviction
//! over the entry bound takes such ancestors first, over the byte bound
//! the ends of chains (what frees storage; see [`Registry::store`]). An
//! entry is only stored while its parent is.
//!
//! Processes *hold* what they use until they release it or die (holds of
//! dead sessions do not count): the entries they looked up (a held entry
//! is never evicted or removed, and one replaced while held, `--no-cache`,
//! is kept under a retired key until its holders are done), and the parts
//! of the snapshots they stored for their own steps to boot from (whose
//! entries may be evicted while the build runs, so that the bounds hold
//! during a run, while their storage stays until the build lets go). So
//! eviction or removal by another process never pulls a layer from under a
//! running step. Several processes share the database through SQLite's
//! locking; a process killed at any instant leaves either the old or the
//! new state.
//!
//! Small binary values (the source manifests of snapshots) live in the same
//! database, content-addressed, so they come and go with the entries.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::session::Session;

mod collect;
mod evict;
mod schema;
mod volumes;

use collect::{collect, forget_dead_holds, totals};

pub use evict::{PipelineUsage, Removed, Usage};
pub use volumes::VolumeRecord;

/// The registry's file in the cache directory.
pub const REGISTRY_FILE: &str = "registry.db";
/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the registry could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the cache directory `{}` is full: free some space, or remove cache entries with `hm cache prune` or `hm cache clean`", crate::os_path::escaped(dir))]
    Full {
        dir: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cache registry `{}`", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cache registry `{}` was written by another version of hm (schema {found})", path.display())]
    WrongSchema { path: PathBuf, found: i64 },
    #[error("cannot set aside the damaged cache registry `{}`", path.display())]
    SetAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a session in `{}`", path.display())]
    Session {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether the registry could be read but not written (a full disk, a
    /// read-only cache directory): lookups still work, without holds.
    pub fn is_unwritable(&self) -> bool {
        match self {
            RegistryError::Full { .. } => true,
            RegistryError::Sqlite { source, .. } => is_unwritable(source),
            RegistryError::Session { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EACCES | libc::EPERM)
            ),
            RegistryError::SetAside { .. } | RegistryError::WrongSchema { .. } => false,
        }
    }

    /// Whether the cache directory's filesystem is full.
    pub fn is_full(&self) -> bool {
        match self {
            RegistryError::Full { .. } => true,
            RegistryError::Session { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            _ => false,
        }
    }
}

/// Whether SQLite failed for lack of space: it says so, or it could not
/// write (growing its shared memory, say) on a filesystem that is full.
fn is_full(err: &rusqlite::Error, cache_dir: &Path) -> bool {
    use rusqlite::ErrorCode;
    match err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::DiskFull => true,
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => crate::fsutil::is_full(cache_dir),
            _ => false,
        },
        _ => false,
    }
}

/// Whether SQLite could not write (as opposed to a damaged or busy file).
fn is_unwritable(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match err {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            ErrorCode::DiskFull | ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure
        ),
        _ => false,
    }
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
    /// The `builds_in` parent's entry (`None` for a root's).
    #[serde(default)]
    pub parent: Option<String>,
    /// The backend whose storage the parts are.
    pub backend: String,
    /// Storage units of the snapshot, top first.
    pub parts: Vec<String>,
    /// What the parts lie on (backend-specific, e.g. an image and its id).
    pub base: String,
    /// Digest of the source manifest the snapshot was synced to.
    pub manifest: Option<String>,
    /// Bytes of the entry's own top part.
    pub size: u64,
    pub step: String,
    pub pipeline: String,
    pub project: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub last_used: u64,
    /// The key's inputs, to explain a later miss.
    pub inputs: serde_json::Value,
}

/// A looked-up entry and the manifest stored with it.
#[derive(Debug, Clone)]
pub struct Found {
    pub entry: CacheEntry,
    pub manifest: Option<Vec<u8>>,
}

/// A new entry: the entry itself, the size of each of its parts, and the
/// manifest bytes to keep with it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub entry: CacheEntry,
    pub part_sizes: Vec<(String, u64)>,
    pub manifest_bytes: Option<Vec<u8>>,
}

/// Limits on the cache. Bytes are what a disk runs out of, so they are
/// the bound that matters; the entry bound only caps the registry's
/// bookkeeping and is sized for pipelines of thousands of steps (see
/// docs/decisions.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Bounds {
    /// The default entry bound: ten pipelines of 1,000 cached steps.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
    /// The default byte bound.
    pub const DEFAULT_MAX_BYTES: u64 = 20 << 30;
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// What [`Registry::store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Whether the entry is in the registry now: it is not when its parent
    /// entry is gone, or when it was the first to go to keep the bounds.
    pub kept: bool,
    /// Storage to delete (a replaced or evicted entry's, or the new
    /// entry's own when it was not kept and nobody holds it).
    pub doomed: Doomed,
}

/// Storage a caller must delete: parts no entry references and no live
/// process holds any more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doomed {
    /// `(backend, part)`.
    pub parts: Vec<(String, String)>,
    pub entries: Vec<String>,
}

/// The registry of one cache directory.
pub struct Registry {
    path: PathBuf,
    cache_dir: PathBuf,
    conn: Mutex<Connection>,
    /// This process's identity for holds, created on first use.
    lease: OnceLock<Session>,
    rebuilt: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// Opens (or creates) the registry of `cache_dir`. A database that is
    /// damaged is set aside and replaced by an empty one; `rebuilt` then
    /// says so, and every stored part is an orphan to collect.
    pub fn open(cache_dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(cache_dir).map_err(|source| RegistryError::SetAside {
            path: cache_dir.to_owned(),
            source,
        })?;
        let path = cache_dir.join(REGISTRY_FILE);
        let sqlite_err = |source: rusqlite::Error| match is_full(&source, cache_dir) {
            true => RegistryError::Full {
                dir: cache_dir.to_owned(),
                source,
            },
            false => RegistryError::Sqlite {
                path: path.clone(),
                source,
            },
        };
        let open_err = |err: OpenError| match err {
            OpenError::WrongSchema { found } => RegistryError::WrongSchema {
                path: path.clone(),
                found,
            },
            OpenError::Damaged(source) | OpenError::Sqlite(source) => sqlite_err(source),
        };
        let (conn, rebuilt) = match Self::connect_patiently(&path) {
            Ok(conn) => (conn, false),
            // Only a database that is damaged or another hm's is replaced;
            // one that is busy, unreadable or fails a query is an error.
            Err(OpenError::WrongSchema { .. } | OpenError::Damaged(_)) => {
                Self::set_aside(&path)?;
                (Self::connect_patiently(&path).map_err(open_err)?, true)
            }
            Err(err) => return Err(open_err(err)),
        };
        Ok(Registry {
            path,
            cache_dir: cache_dir.to_owned(),
            conn: Mutex::new(conn),
            lease: OnceLock::new(),
            rebuilt,
        })
    }

    /// [`Registry::connect`], retried while another process holds a lock
    /// that SQLite does not wait for by itself (switching to WAL, creating
    /// the schema).
    fn connect_patiently(path: &Path) -> Result<Connection, OpenError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match Self::connect(path) {
                Err(OpenError::Sqlite(rusqlite::Error::SqliteFailure(e, _)))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    fn connect(path: &Path) -> Result<Connection, OpenError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints happen as the WAL grows, not each time `hm` exits
        // (a checkpoint syncs the whole database).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // Room for every statement a build repeats (see `cached`).
        conn.set_prepared_statement_cache_capacity(64);
        schema::prepare(&conn)?;
        Ok(conn)
    }

    /// Moves a damaged database (and its WAL files) out of the way, keeping
    /// only the latest one set aside (for a post-mortem).
    fn set_aside(path: &Path) -> Result<(), RegistryError> {
        if let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) {
            let prefix = format!("{stem}.damaged-");
            for old in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if old.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(old.path());
                }
            }
        }
        let aside = path.with_extension(format!("damaged-{}", now()));
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", path.display()));
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(RegistryError::SetAside { path: from, source }),
            }
        }
        Ok(())
    }

    /// Whether `open` found the database damaged and started afresh.
    pub fn rebuilt(&self) -> bool {
        self.rebuilt
    }

    /// Wraps a SQLite error; an error that shows the file damaged sets it
    /// aside, so that the next `hm` starts with an empty registry.
    fn err(&self) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
        |source| {
            if is_damage(&source) {
                let _ = Self::set_aside(&self.path);
            }
            if is_full(&source, &self.cache_dir) {
                return RegistryError::Full {
                    dir: self.cache_dir.clone(),
                    source,
                };
            }
            RegistryError::Sqlite {
                path: self.path.clone(),
                source,
            }
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This process's hold identity.
    fn holder(&self) -> Result<&str, RegistryError> {
        if self.lease.get().is_none() {
            let session = Session::create(&self.cache_dir).map_err(|source| RegistryError::Session {
                path: self.cache_dir.clone(),
                source,
            })?;
            let _ = self.lease.set(session);
        }
        Ok(self.lease.get().map(|s| s.id()).unwrap_or_default())
    }

    /// The cache directory the registry is in.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The entry for `key`, if any, with its manifest; it is held for this
    /// process and its last-used time is now.
    pub fn lookup(&self, key: &str) -> Result<Option<Found>, RegistryError> {
        Ok(self.lookup_many(&[(key.to_owned(), true)])?.remove(key))
    }

    /// [`Registry::lookup`] for many keys in one transaction; each is held
    /// only if its flag says so. When the registry cannot be written (a
    /// full disk, a read-only cache) the entries are still found, without
    /// holds and without marking them used.
    pub fn lookup_many(&self, keys: &[(String, bool)]) -> Result<HashMap<String, Found>, RegistryError> {
        match self.lookup_writing(keys) {
            Err(err) if err.is_unwritable() => self.lookup_reading(keys),
            other => other,
        }
    }

    fn lookup_writing(&self, keys: &[(String, bool)]) -> Result<HashMap<String, Found>, RegistryError> {
        let holder = match keys.iter().any(|(_, hold)| *hold) {
            true => Some(self.holder()?.to_owned()),
            false => None,
        };
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let mut found = HashMap::new();
        let mut manifests = Manifests::default();
        for (key, hold) in keys {
            let Some(mut entry) = read_entry(&tx, key, false).map_err(self.err())? else {
                continue;
            };
            if let (true, Some(holder)) = (*hold, &holder) {
                tx.prepare_cached("INSERT OR IGNORE INTO holds (session, key) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![holder, key]))
                    .map_err(self.err())?;
            }
            let now = now();
            tx.prepare_cached("UPDATE entries SET last_used = ?1 WHERE key = ?2")
                .and_then(|mut s| s.execute(params![now as i64, key]))
                .map_err(self.err())?;
            entry.last_used = now;
            let manifest = manifests.read(&tx, entry.manifest.as_deref()).map_err(self.err())?;
            found.insert(key.clone(), Found { entry, manifest });
        }
        tx.commit().map_err(self.err())?;
        Ok(found)
    }

    /// [`Registry::lookup_many`] without writing anything.
    fn lookup_reading(&self, keys: &[(String, bool)]) -> Result<HashMap<String, Found>, RegistryError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        let mut found = HashMap::new();
        let mut manifests = Manifests::default();
        for (key, _) in keys {
            if let Some(entry) = read_entry(&tx, key, false).map_err(self.err())? {
                let manifest = manifests.read(&tx, entry.manifest.as_deref()).map_err(self.err())?;
                found.insert(key.clone(), Found { entry, manifest });
            }
        }
        drop(tx);
        Ok(found)
    }

    /// The most recent entry of a step, to explain why it missed.
    pub fn latest_for_step(
        &self,
        project: &str,
        pipeline: &str,
        step: &str,
    ) -> Result<Option<CacheEntry>, RegistryError> {
        let conn = self.conn();
        let key: Option<String> = conn
            .query_row(
                "SELECT key FROM entries WHERE project = ?1 AND pipeline = ?2 AND step = ?3 ORDER BY created DESC, rowid DESC LIMIT 1",
                params![project, pipeline, step],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.err())?;
        match key {
            Some(key) => read_entry(&conn, &key, true).map_err(self.err()),
            None => Ok(None),
        }
    }

    /// A stored manifest.
    pub fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        self.conn()
            .query_row("SELECT data FROM blobs WHERE digest = ?1", [digest], |row| row.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Adds (or replaces) an entry (see [`Registry::store`]), without
    /// bounds.
    pub fn insert(&self, new: &NewEntry, hold_parts: bool) -> Result<Doomed, RegistryError> {
        Ok(self.store(new, hold_parts, None)?.doomed)
    }

    /// Adds (or replaces) an entry, then brings the cache within `bounds`
    /// (see [`evict::evict_in`]: over the entry bound, ancestors of kept
    /// entries first; over the byte bound, the least recently used ends
    /// of chains, the new entry included: it is newest, but if only it can
    /// go, it goes). Over the entry bound alone the new entry stays when
    /// every other entry is held: it goes before the next one does, or
    /// when the build lets go of the others (else a step whose parent is
    /// held would run again on every build). With `hold_parts`, this
    /// process keeps the entry's parts until it lets go, whatever becomes
    /// of the entry (its steps boot from them). An entry whose parent
    /// entry is gone is not kept: under a byte bound the parent went to
    /// free its layers, which the child's stack holds too. An entry
    /// replaced while other processes hold it is retired, not removed.
    pub fn store(&self, new: &NewEntry, hold_parts: bool, bounds: Option<Bounds>) -> Result<Stored, RegistryError> {
        let holder = if hold_parts {
            Some(self.holder()?.to_owned())
        } else {
            None
        };
        let me = self.lease.get().map(|l| l.id().to_owned()).unwrap_or_default();
        let entry = &new.entry;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        let parent_there = match &entry.parent {
            Some(parent) => tx
                .prepare_cached("SELECT 1 FROM entries WHERE key = ?1")
                .and_then(|mut s| s.query_row([parent], |_| Ok(())).optional())
                .map_err(self.err())?
                .is_some(),
            None => true,
        };
        for (part, size) in &new.part_sizes {
            cached(
                &tx,
                "INSERT OR IGNORE INTO parts (backend, part, size) VALUES (?1, ?2, ?3)",
                params![entry.backend, part, *size as i64],
            )
            .map_err(self.err())?;
        }
        if let Some(holder) = &holder {
            for part in &entry.parts {
                cached(
                    &tx,
                    "INSERT OR IGNORE INTO part_holds (session, backend, part) VALUES (?1, ?2, ?3)",
                    params![holder, entry.backend, part],
                )
                .map_err(self.err())?;
            }
        }
        let mut evicted = Vec::new();
        if parent_there {
            put_entry(&tx, new, &me).map_err(self.err())?;
            if let Some(bounds) = bounds {
                evicted = evict::evict_in(&tx, bounds, None, Some(&entry.key)).map_err(self.err())?;
            }
        }
        let kept = parent_there && !evicted.contains(&entry.key);
        let doomed = collect(&tx, &self.cache_dir, evicted).map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(Stored { kept, doomed })
    }

    /// Removes entries whose storage turned out to be missing or damaged,
    /// held or not (nobody can boot from them).
    pub fn remove(&self, keys: &[String]) -> Result<Doomed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        for key in keys {
            cached(&tx, "DELETE FROM entries WHERE key = ?1", [key]).map_err(self.err())?;
        }
        let doomed = collect(&tx, &self.cache_dir, keys.to_vec()).map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(doomed)
    }

    /// Lets go of everything this process holds; returns the storage that
    /// nothing needs any more.
    pub fn release(&self) -> Result<Doomed, RegistryError> {
        let Some(lease) = self.lease.get() else {
            return Ok(Doomed::default());
        };
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        for sql in [
            "DELETE FROM holds WHERE session = ?1",
            "DELETE FROM part_holds WHERE session = ?1",
        ] {
            cached(&tx, sql, [lease.id()]).map_err(self.err())?;
        }
        let doomed = collect(&tx, &self.cache_dir, Vec::new()).map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(doomed)
    }

    /// Every entry, most recently used first (retired ones left out).
    pub fn list(&self) -> Result<Vec<CacheEntry>, RegistryError> {
        let conn = self.conn();
        let keys: Vec<String> = {
            let mut stmt = conn
                .prepare(
                    "SELECT key FROM entries WHERE key NOT LIKE '%~retired-%' ORDER BY last_used DESC, created DESC",
                )
                .map_err(self.err())?;
            let rows = stmt.query_map([], |row| row.get(0)).map_err(self.err())?;
            rows.collect::<Result<_, _>>().map_err(self.err())?
        };
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(entry) = read_entry(&conn, &key, true).map_err(self.err())? {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// The number of entries and the bytes of all stored parts.
    pub fn totals(&self) -> Result<(u64, u64), RegistryError> {
        totals(&self.conn()).map_err(self.err())
    }

    /// Whether it is time to look for stored parts the registry does not
    /// know (left by a process killed between storing a part and
    /// registering it): true at most once per `every`, whichever process
    /// asks (asking counts as looking). Such a look lists every part the
    /// registry knows, and a build of cache hits need not pay for that
    /// each time; orphans are young when found anyway (they are only
    /// collected after a grace period).
    pub fn orphans_due(&self, every: Duration) -> Result<bool, RegistryError> {
        let changed = cached(
            &self.conn(),
            "INSERT INTO meta (name, value) VALUES ('orphans_looked_for', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE value <= ?1 - ?2",
            params![now() as i64, every.as_secs() as i64],
        )
        .map_err(self.err())?;
        Ok(changed > 0)
    }

    /// Every part of `backend` the registry knows (referenced or held).
    pub fn known_parts(&self, backend: &str) -> Result<HashSet<String>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT part FROM parts WHERE backend = ?1")
            .map_err(self.err())?;
        let rows = stmt.query_map([backend], |row| row.get(0)).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

/// Why [`Registry::connect`] gave no connection: the first two set the file
/// aside for an empty one, the last is an error to report.
#[derive(Debug)]
enum OpenError {
    /// Another version of hm wrote the database.
    WrongSchema { found: i64 },
    /// The file is not a sound database.
    Damaged(rusqlite::Error),
    /// Anything else: busy, unreadable, a query that failed.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for OpenError {
    fn from(err: rusqlite::Error) -> Self {
        match is_damage(&err) {
            true => OpenError::Damaged(err),
            false => OpenError::Sqlite(err),
        }
    }
}

/// Whether an error means the database file is damaged (or not a
/// database); a query that fails on a sound file is not damage.
fn is_damage(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
        ),
        _ => false,
    }
}

/// Writes `new` (its entry, parts and blobs), replacing an entry with the
/// same key; one that sessions other than `me` hold is retired instead.
fn put_entry(tx: &Connection, new: &NewEntry, me: &str) -> rusqlite::Result<()> {
    let entry = &new.entry;
    let inputs_json = serde_json::to_vec(&entry.inputs).unwrap_or_else(|_| b"null".to_vec());
    let inputs = format!("inputs:{}", blake3::hash(&inputs_json).to_hex());
    let held_by_others: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM holds WHERE key = ?1 AND session != ?2")?
        .query_row(params![entry.key, me], |row| row.get(0))?;
    if held_by_others > 0 {
        // Keep the old snapshot for its holders, under a key nothing
        // looks up, first in line for eviction once they let go.
        let retired = format!("{}~retired-{}", entry.key, crate::fsutil::random_id(4));
        // Its parts follow the key (ON UPDATE CASCADE).
        for table in ["entries", "holds"] {
            tx.execute(
                &format!("UPDATE {table} SET key = ?1 WHERE key = ?2"),
                params![retired, entry.key],
            )?;
        }
        tx.execute("UPDATE entries SET last_used = 0 WHERE key = ?1", [&retired])?;
    }
    cached(tx, "DELETE FROM holds WHERE key = ?1", [&entry.key])?;
    cached(tx, "DELETE FROM entries WHERE key = ?1", [&entry.key])?;
    cached(
        tx,
        "INSERT INTO entries (key, backend, base, manifest, size, step, pipeline, project, created, last_used, inputs, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            entry.key,
            entry.backend,
            entry.base,
            entry.manifest,
            entry.size as i64,
            entry.step,
            entry.pipeline,
            entry.project,
            entry.created as i64,
            entry.last_used as i64,
            inputs,
            entry.parent,
        ],
    )?;
    for (position, part) in entry.parts.iter().enumerate() {
        cached(
            tx,
            "INSERT INTO entry_parts (key, position, backend, part) VALUES (?1, ?2, ?3, ?4)",
            params![entry.key, position as i64, entry.backend, part],
        )?;
    }
    cached(
        tx,
        "INSERT OR IGNORE INTO blobs (digest, data) VALUES (?1, ?2)",
        params![inputs, inputs_json],
    )?;
    if let (Some(digest), Some(bytes)) = (&entry.manifest, &new.manifest_bytes) {
        cached(
            tx,
            "INSERT OR IGNORE INTO blobs (digest, data) VALUES (?1, ?2)",
            params![digest, bytes],
        )?;
    }
    Ok(())
}

/// Runs a statement kept prepared on the connection: a statement that
/// fires triggers is costly to prepare, and a build runs the same few
/// for every step.
fn cached(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// The manifests read by one lookup, by digest: the entries of one build
/// mostly share their source's manifest (tens of thousands of files make
/// it megabytes), which is read once, not once per entry.
#[derive(Default)]
struct Manifests(HashMap<String, Option<Vec<u8>>>);

impl Manifests {
    fn read(&mut self, conn: &Connection, digest: Option<&str>) -> rusqlite::Result<Option<Vec<u8>>> {
        let Some(digest) = digest else { return Ok(None) };
        if let Some(bytes) = self.0.get(digest) {
            return Ok(bytes.clone());
        }
        let bytes = read_blob(conn, Some(digest))?;
        self.0.insert(digest.to_owned(), bytes.clone());
        Ok(bytes)
    }
}

/// A stored blob (a manifest), if there is one.
fn read_blob(conn: &Connection, digest: Option<&str>) -> rusqlite::Result<Option<Vec<u8>>> {
    match digest {
        Some(digest) => conn
            .prepare_cached("SELECT data FROM blobs WHERE digest = ?1")?
            .query_row([digest], |row| row.get(0))
            .optional(),
        None => Ok(None),
    }
}

/// An entry by key; its `inputs` only when asked for (they only explain
/// misses, and are the largest part to decode).
fn read_entry(conn: &Connection, key: &str, with_inputs: bool) -> rusqlite::Result<Option<CacheEntry>> {
    let entry = conn
        .prepare_cached(
            "SELECT key, backend, base, manifest, size, step, pipeline, project, created, last_used, inputs, parent
             FROM entries WHERE key = ?1",
        )?
        .query_row([key], |row| {
            let inputs: String = row.get(10)?;
            let inputs = match with_inputs {
                true => conn
                    .prepare_cached("SELECT data FROM blobs WHERE digest = ?1")?
                    .query_row([&inputs], |row| row.get::<_, Vec<u8>>(0))
                    .optional()?
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or(serde_json::Value::Null),
                false => serde_json::Value::Null,
            };
            Ok(CacheEntry {
                key: row.get(0)?,
                parent: row.get(11)?,
                backend: row.get(1)?,
                parts: Vec::new(),
                base: row.get(2)?,
                manifest: row.get(3)?,
                size: row.get::<_, i64>(4)? as u64,
                step: row.get(5)?,
                pipeline: row.get(6)?,
                project: row.get(7)?,
                created: row.get::<_, i64>(8)? as u64,
                last_used: row.get::<_, i64>(9)? as u64,
                inputs,
            })
        })
        .optional()?;
    let Some(mut entry) = entry else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT part FROM entry_parts WHERE key = ?1 ORDER BY position")?;
    entry.parts = stmt.query_map([key], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(Some(entry))
}

#[cfg(test)]
mod tests;
