//! The snapshot registry: a SQLite database (WAL) in the cache directory
//! that maps cache keys to stored snapshots (DESIGN.md §5).
//!
//! An entry names its snapshot by *parts* (a backend's storage units: the
//! sandbox's layer directories, top first) and a base; parts are shared
//! between entries (a child's stack holds its parent's layers) and a part's
//! storage is deleted only when no entry references it. Processes *hold*
//! the entries they looked up (or stored for their own steps to boot from)
//! until they release them or die (holds of dead sessions do not count): a
//! held entry is never evicted, and one replaced while held (`--no-cache`)
//! is kept under a retired key until its holders are done. So eviction by
//! another process never pulls a layer from under a running step. Several
//! processes share the database through SQLite's locking; a process killed
//! at any instant leaves either the old or the new state.
//!
//! Small binary values (the source manifests of snapshots) live in the same
//! database, content-addressed, so they come and go with the entries.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::session::{is_alive, Session};

/// The registry's file in the cache directory.
pub const REGISTRY_FILE: &str = "registry.db";
const SCHEMA_VERSION: i64 = 3;
/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the registry could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cache registry `{}`", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
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

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
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

/// Limits on the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_entries: 256,
            max_bytes: 20 << 30,
        }
    }
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    base TEXT NOT NULL,
    manifest TEXT,
    size INTEGER NOT NULL,
    step TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    project TEXT NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    inputs TEXT NOT NULL
);
-- `inputs` is the digest of a blob: entries stay small, so that marking
-- fifty of them used rewrites a page or two.
CREATE INDEX IF NOT EXISTS entries_by_step ON entries (project, pipeline, step, created);
CREATE TABLE IF NOT EXISTS entry_parts (
    key TEXT NOT NULL REFERENCES entries (key) ON DELETE CASCADE ON UPDATE CASCADE,
    position INTEGER NOT NULL,
    backend TEXT NOT NULL,
    part TEXT NOT NULL,
    PRIMARY KEY (key, position)
);
CREATE INDEX IF NOT EXISTS entry_parts_by_part ON entry_parts (backend, part);
CREATE TABLE IF NOT EXISTS parts (
    backend TEXT NOT NULL,
    part TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (backend, part)
);
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (session, key)
);
";

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
        let sqlite_err = |source| RegistryError::Sqlite {
            path: path.clone(),
            source,
        };
        let (conn, rebuilt) = match Self::connect_patiently(&path) {
            Ok(conn) => (conn, false),
            // Only a database that is damaged is replaced; one that is busy
            // or unreadable for another reason is an error.
            Err(err) if is_damage(&err) => {
                Self::set_aside(&path)?;
                (Self::connect_patiently(&path).map_err(sqlite_err)?, true)
            }
            Err(err) => return Err(sqlite_err(err)),
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
    fn connect_patiently(path: &Path) -> rusqlite::Result<Connection> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match Self::connect(path) {
                Err(rusqlite::Error::SqliteFailure(e, _))
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

    fn connect(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints happen as the WAL grows, not each time `hm` exits
        // (a checkpoint syncs the whole database).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // Damage is found where it is read (see `err`), not by scanning the
        // whole file on every start.
        let version = conn
            .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |row| {
                row.get::<_, i64>(0)
            })
            .optional();
        let version = match version {
            Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.starts_with("no such table") => None,
            other => other?,
        };
        match version {
            Some(SCHEMA_VERSION) => {}
            None => {
                conn.execute_batch(SCHEMA)?;
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            // Another version of hm wrote this cache: start afresh.
            Some(_) => return Err(rusqlite::Error::InvalidQuery),
        }
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

    /// The entry for `key`, if any, with its manifest; it is held for this
    /// process and its last-used time is now.
    pub fn lookup(&self, key: &str) -> Result<Option<Found>, RegistryError> {
        Ok(self.lookup_many(&[(key.to_owned(), true)])?.remove(key))
    }

    /// Holds `key` for this process, if it still exists: for an entry
    /// looked up without a hold that a step now boots from.
    pub fn hold(&self, key: &str) -> Result<bool, RegistryError> {
        let holder = self.holder()?.to_owned();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let exists = tx
            .query_row("SELECT 1 FROM entries WHERE key = ?1", [key], |_| Ok(()))
            .optional()
            .map_err(self.err())?
            .is_some();
        if exists {
            tx.execute(
                "INSERT OR IGNORE INTO holds (session, key) VALUES (?1, ?2)",
                params![holder, key],
            )
            .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        Ok(exists)
    }

    /// [`Registry::lookup`] for many keys in one transaction; each is held
    /// only if its flag says so (see [`Registry::hold`] for later).
    pub fn lookup_many(&self, keys: &[(String, bool)]) -> Result<HashMap<String, Found>, RegistryError> {
        let holder = match keys.iter().any(|(_, hold)| *hold) {
            true => Some(self.holder()?.to_owned()),
            false => None,
        };
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let mut found = HashMap::new();
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
            let manifest = match &entry.manifest {
                Some(digest) => tx
                    .prepare_cached("SELECT data FROM blobs WHERE digest = ?1")
                    .and_then(|mut s| s.query_row([digest], |row| row.get(0)).optional())
                    .map_err(self.err())?,
                None => None,
            };
            found.insert(key.clone(), Found { entry, manifest });
        }
        tx.commit().map_err(self.err())?;
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

    /// Adds (or replaces) an entry; with `hold`, it is held for this
    /// process (which is about to boot from it). An entry replaced while
    /// other processes hold it is retired, not removed. Returns what a
    /// replaced entry leaves unreferenced.
    pub fn insert(&self, new: &NewEntry, hold: bool) -> Result<Doomed, RegistryError> {
        let holder = if hold { Some(self.holder()?.to_owned()) } else { None };
        let me = self.lease.get().map(|l| l.id().to_owned()).unwrap_or_default();
        let entry = &new.entry;
        let inputs_json = serde_json::to_vec(&entry.inputs).unwrap_or_else(|_| b"null".to_vec());
        let inputs = format!("inputs:{}", blake3::hash(&inputs_json).to_hex());
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        let held_by_others: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM holds WHERE key = ?1 AND session != ?2",
                params![entry.key, me],
                |row| row.get(0),
            )
            .map_err(self.err())?;
        if held_by_others > 0 {
            // Keep the old snapshot for its holders, under a key nothing
            // looks up, first in line for eviction once they let go.
            let retired = format!("{}~retired-{}", entry.key, crate::fsutil::random_id(4));
            // Its parts follow the key (ON UPDATE CASCADE).
            for table in ["entries", "holds"] {
                tx.execute(
                    &format!("UPDATE {table} SET key = ?1 WHERE key = ?2"),
                    params![retired, entry.key],
                )
                .map_err(self.err())?;
            }
            tx.execute("UPDATE entries SET last_used = 0 WHERE key = ?1", [&retired])
                .map_err(self.err())?;
        }
        tx.execute("DELETE FROM holds WHERE key = ?1", [&entry.key])
            .map_err(self.err())?;
        tx.execute("DELETE FROM entries WHERE key = ?1", [&entry.key])
            .map_err(self.err())?;
        tx.execute(
            "INSERT INTO entries (key, backend, base, manifest, size, step, pipeline, project, created, last_used, inputs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                inputs
            ],
        )
        .map_err(self.err())?;
        for (position, part) in entry.parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO entry_parts (key, position, backend, part) VALUES (?1, ?2, ?3, ?4)",
                params![entry.key, position as i64, entry.backend, part],
            )
            .map_err(self.err())?;
        }
        if let Some(holder) = &holder {
            tx.execute(
                "INSERT OR IGNORE INTO holds (session, key) VALUES (?1, ?2)",
                params![holder, entry.key],
            )
            .map_err(self.err())?;
        }
        for (part, size) in &new.part_sizes {
            tx.execute(
                "INSERT OR IGNORE INTO parts (backend, part, size) VALUES (?1, ?2, ?3)",
                params![entry.backend, part, *size as i64],
            )
            .map_err(self.err())?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO blobs (digest, data) VALUES (?1, ?2)",
            params![inputs, inputs_json],
        )
        .map_err(self.err())?;
        if let (Some(digest), Some(bytes)) = (&entry.manifest, &new.manifest_bytes) {
            tx.execute(
                "INSERT OR IGNORE INTO blobs (digest, data) VALUES (?1, ?2)",
                params![digest, bytes],
            )
            .map_err(self.err())?;
        }
        let doomed = collect(&tx, &self.cache_dir, Vec::new()).map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(doomed)
    }

    /// Removes entries (whose storage turned out to be missing or damaged,
    /// or that the user removed).
    pub fn remove(&self, keys: &[String]) -> Result<Doomed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        for key in keys {
            tx.execute("DELETE FROM entries WHERE key = ?1", [key])
                .map_err(self.err())?;
        }
        let doomed = collect(&tx, &self.cache_dir, keys.to_vec()).map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(doomed)
    }

    /// Evicts least-recently-used entries until the cache is within
    /// `bounds`, never one a live process holds.
    pub fn evict(&self, bounds: Bounds) -> Result<Doomed, RegistryError> {
        self.evict_where(bounds, None)
    }

    /// Like [`Registry::evict`], also evicting entries not used for
    /// `older_than` seconds.
    pub fn evict_where(&self, bounds: Bounds, older_than: Option<u64>) -> Result<Doomed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        let mut evicted = Vec::new();
        let candidates: Vec<(String, u64)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT key, last_used FROM entries e WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = e.key)
                     ORDER BY last_used ASC, created ASC, rowid ASC",
                )
                .map_err(self.err())?;
            let rows = stmt
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)))
                .map_err(self.err())?;
            rows.collect::<Result<_, _>>().map_err(self.err())?
        };
        let cutoff = older_than.map(|age| now().saturating_sub(age));
        for (key, last_used) in candidates {
            let (count, bytes) = totals(&tx).map_err(self.err())?;
            let stale = cutoff.is_some_and(|c| last_used < c);
            if !stale && count <= bounds.max_entries && bytes <= bounds.max_bytes {
                if cutoff.is_none() {
                    break;
                }
                continue;
            }
            tx.execute("DELETE FROM entries WHERE key = ?1", [&key])
                .map_err(self.err())?;
            evicted.push(key);
        }
        let doomed = collect(&tx, &self.cache_dir, evicted).map_err(self.err())?;
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
        tx.execute("DELETE FROM holds WHERE session = ?1", [lease.id()])
            .map_err(self.err())?;
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

/// Whether an error means the database file is damaged (or not a database,
/// or from a newer hm).
fn is_damage(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match err {
        rusqlite::Error::SqliteFailure(e, _) => {
            matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
        }
        rusqlite::Error::InvalidQuery => true,
        _ => false,
    }
}

/// An entry by key; its `inputs` only when asked for (they only explain
/// misses, and are the largest part to decode).
fn read_entry(conn: &Connection, key: &str, with_inputs: bool) -> rusqlite::Result<Option<CacheEntry>> {
    let entry = conn
        .prepare_cached(
            "SELECT key, backend, base, manifest, size, step, pipeline, project, created, last_used, inputs
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

fn totals(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM entries", [], |row| row.get(0))?;
    let bytes: i64 = conn.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM parts p WHERE EXISTS (
            SELECT 1 FROM entry_parts e WHERE e.backend = p.backend AND e.part = p.part)",
        [],
        |row| row.get(0),
    )?;
    Ok((count as u64, bytes as u64))
}

/// Forgets the holds of processes that are gone.
fn forget_dead_holds(conn: &Connection, cache_dir: &Path) -> rusqlite::Result<()> {
    let sessions: Vec<String> = {
        let mut stmt = conn.prepare("SELECT DISTINCT session FROM holds")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for session in sessions {
        if !is_alive(cache_dir, &session) {
            conn.execute("DELETE FROM holds WHERE session = ?1", [&session])?;
        }
    }
    Ok(())
}

/// Forgets manifests no entry refers to.
fn drop_unreferenced_blobs(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM blobs WHERE digest NOT IN (SELECT manifest FROM entries WHERE manifest IS NOT NULL)
                             AND digest NOT IN (SELECT inputs FROM entries)",
        [],
    )?;
    Ok(())
}

/// Removes the rows of parts that no entry references (a held entry is
/// never removed, so its parts stay referenced), and returns them for their
/// storage to be deleted.
fn collect(conn: &Connection, cache_dir: &Path, entries: Vec<String>) -> rusqlite::Result<Doomed> {
    forget_dead_holds(conn, cache_dir)?;
    // Retired entries live only as long as someone holds them.
    conn.execute(
        "DELETE FROM entries WHERE key LIKE '%~retired-%' AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = entries.key)",
        [],
    )?;
    drop_unreferenced_blobs(conn)?;
    let doomed: Vec<(String, String)> = {
        let mut stmt = conn.prepare(
            "SELECT backend, part FROM parts p
             WHERE NOT EXISTS (SELECT 1 FROM entry_parts e WHERE e.backend = p.backend AND e.part = p.part)",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (backend, part) in &doomed {
        conn.execute(
            "DELETE FROM parts WHERE backend = ?1 AND part = ?2",
            params![backend, part],
        )?;
    }
    Ok(Doomed { parts: doomed, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, parts: &[&str], last_used: u64) -> NewEntry {
        NewEntry {
            entry: CacheEntry {
                key: key.to_owned(),
                backend: "sandbox".to_owned(),
                parts: parts.iter().map(|p| p.to_string()).collect(),
                base: "host".to_owned(),
                manifest: Some(format!("m-{key}")),
                size: 10,
                step: key.to_owned(),
                pipeline: "ci".to_owned(),
                project: "/p".to_owned(),
                created: last_used,
                last_used,
                inputs: serde_json::json!({"cmd": key}),
            },
            part_sizes: parts.iter().map(|p| (p.to_string(), 100)).collect(),
            manifest_bytes: Some(key.as_bytes().to_vec()),
        }
    }

    fn parts(doomed: &Doomed) -> Vec<String> {
        let mut parts: Vec<String> = doomed.parts.iter().map(|(_, p)| p.clone()).collect();
        parts.sort();
        parts
    }

    #[test]
    fn insert_lookup_and_shared_parts() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.insert(&entry("parent", &["l1"], 1), true).unwrap();
        registry.insert(&entry("child", &["l2", "l1"], 2), true).unwrap();
        let found = registry.lookup("child").unwrap().unwrap();
        assert_eq!(found.entry.parts, ["l2", "l1"]);
        assert_eq!(found.manifest.unwrap(), b"child");
        assert_eq!(registry.blob("m-child").unwrap().unwrap(), b"child");
        assert_eq!(registry.totals().unwrap(), (2, 200), "a shared part counts once");
        assert!(registry.lookup("missing").unwrap().is_none());
        assert_eq!(
            registry.latest_for_step("/p", "ci", "parent").unwrap().unwrap().key,
            "parent"
        );
    }

    #[test]
    fn eviction_is_lru_and_spares_held_and_shared_parts() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            registry
                .insert(&entry(key, &[&format!("l{key}")], i as u64), true)
                .unwrap();
        }
        registry.release().unwrap();
        let doomed = registry
            .evict(Bounds {
                max_entries: 2,
                max_bytes: u64::MAX,
            })
            .unwrap();
        assert_eq!(doomed.entries, ["a"]);
        assert_eq!(parts(&doomed), ["la"]);

        // Another process holds `b`: it is skipped, `c` goes instead.
        let other = Registry::open(dir.path()).unwrap();
        other.lookup("b").unwrap().unwrap();
        let doomed = registry
            .evict(Bounds {
                max_entries: 1,
                max_bytes: u64::MAX,
            })
            .unwrap();
        assert_eq!(doomed.entries, ["c"]);
        // Once it lets go, `b` can go too.
        other.release().unwrap();
        let doomed = registry
            .evict(Bounds {
                max_entries: 0,
                max_bytes: u64::MAX,
            })
            .unwrap();
        assert_eq!(doomed.entries, ["b"]);
        assert_eq!(parts(&doomed), ["lb"]);
        assert_eq!(registry.totals().unwrap(), (0, 0));
        assert!(
            registry.blob("m-b").unwrap().is_none(),
            "manifests go with their entries"
        );
    }

    #[test]
    fn a_byte_bound_counts_shared_parts_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.insert(&entry("parent", &["l1"], 1), true).unwrap();
        registry.insert(&entry("child", &["l2", "l1"], 2), true).unwrap();
        registry.release().unwrap();
        let doomed = registry
            .evict(Bounds {
                max_entries: 10,
                max_bytes: 150,
            })
            .unwrap();
        assert_eq!(doomed.entries, ["parent", "child"]);
        let doomed = registry
            .evict(Bounds {
                max_entries: 10,
                max_bytes: 250,
            })
            .unwrap();
        assert!(doomed.entries.is_empty());
    }

    #[test]
    fn an_entry_replaced_while_another_process_holds_it_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.insert(&entry("k", &["old"], 1), false).unwrap();
        let other = Registry::open(dir.path()).unwrap();
        other.lookup("k").unwrap().unwrap();
        // Refreshed (`--no-cache`) while the other process uses `old`.
        let doomed = registry.insert(&entry("k", &["new"], 2), false).unwrap();
        assert!(doomed.parts.is_empty());
        assert_eq!(registry.lookup("k").unwrap().unwrap().entry.parts, ["new"]);
        assert_eq!(registry.list().unwrap().len(), 1, "retired entries are not listed");
        registry.release().unwrap();
        // Held, the retired entry stays whatever the bounds.
        let doomed = registry
            .evict(Bounds {
                max_entries: 0,
                max_bytes: 0,
            })
            .unwrap();
        assert_eq!(parts(&doomed), ["new"]);
        // Once its holder lets go, the retired entry and its parts go.
        let doomed = other.release().unwrap();
        assert_eq!(parts(&doomed), ["old"]);
    }

    #[test]
    fn replacing_an_entry_frees_what_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.insert(&entry("k", &["old"], 1), true).unwrap();
        let doomed = registry.insert(&entry("k", &["new"], 2), true).unwrap();
        assert_eq!(parts(&doomed), ["old"]);
    }

    #[test]
    fn damage_found_later_sets_the_database_aside() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.insert(&entry("k", &["l"], 1), false).unwrap();
        drop(registry);
        // Clobber the pages after the header: the schema and the entries.
        let path = dir.path().join(REGISTRY_FILE);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().skip(100) {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).unwrap();
        let again = Registry::open(dir.path()).unwrap();
        assert!(again.rebuilt(), "the damage shows when the schema is read");
        assert!(again.lookup("k").unwrap().is_none());
    }

    #[test]
    fn a_damaged_database_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(REGISTRY_FILE),
            b"this is not a database, not even close to one",
        )
        .unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        assert!(registry.rebuilt());
        assert_eq!(registry.totals().unwrap(), (0, 0));
        registry.insert(&entry("k", &["l"], 1), true).unwrap();
        drop(registry);
        let again = Registry::open(dir.path()).unwrap();
        assert!(!again.rebuilt());
        assert!(again.lookup("k").unwrap().is_some());
    }
}
