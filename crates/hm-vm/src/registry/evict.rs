//! What leaves the registry, and how much it holds: eviction within the
//! bounds (ancestors of kept entries first, then the least recently used
//! ends of chains), removal on request (never of what a running build
//! uses), and sizes counted once per part.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::collect::sweep;
use super::{collect, forget_dead_holds, now, totals, Bounds, Doomed, Registry, RegistryError};

/// What [`Registry::remove_unused`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The storage to delete.
    pub doomed: Doomed,
    /// Entries asked for that stay because a running build uses them (or
    /// an entry below them, which is only reachable through them).
    pub in_use: Vec<String>,
}

/// The cache's size, in total and by project, pipeline and backend; every
/// part counts once, for the entry whose own part it is (the one it is the
/// top of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
    pub pipelines: Vec<PipelineUsage>,
}

/// One pipeline's share of [`Usage`]: its project's scope (the project's
/// path, or the configured scope), its slug, and the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineUsage {
    pub project: String,
    pub pipeline: String,
    pub backend: String,
    pub entries: u64,
    pub bytes: u64,
}

impl Registry {
    /// Evicts entries until the cache is within `bounds` (see
    /// [`evict_in`]), never one a live process holds.
    pub fn evict(&self, bounds: Bounds) -> Result<Doomed, RegistryError> {
        self.evicting(bounds, None, true, false)
    }

    /// Like [`Registry::evict`], also evicting entries not used for
    /// `older_than` seconds, and collecting every part and blob nothing
    /// needs (not only what this eviction let go). Without `apply`,
    /// nothing changes: the result says what would go (to free storage
    /// first on a full disk, where the registry cannot be written until
    /// some is free).
    pub fn evict_where(&self, bounds: Bounds, older_than: Option<u64>, apply: bool) -> Result<Doomed, RegistryError> {
        self.evicting(bounds, older_than, apply, true)
    }

    fn evicting(
        &self,
        bounds: Bounds,
        older_than: Option<u64>,
        apply: bool,
        all: bool,
    ) -> Result<Doomed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        if all {
            sweep(&tx).map_err(self.err())?;
        }
        let cutoff = older_than.map(|age| now().saturating_sub(age));
        let evicted = evict_in(&tx, bounds, cutoff, None).map_err(self.err())?;
        let doomed = collect(&tx, &self.cache_dir, evicted).map_err(self.err())?;
        if apply {
            tx.commit().map_err(self.err())?;
        }
        Ok(doomed)
    }

    /// Removes `keys` (every entry when `None`) and the entries below them
    /// (reachable only through them), except those a live process holds
    /// and the entries above those. Without `apply`, nothing changes (see
    /// [`Registry::evict_where`]).
    pub fn remove_unused(&self, keys: Option<&[String]>, apply: bool) -> Result<Removed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        let in_use = in_use(&tx).map_err(self.err())?;
        let asked: Vec<String> = match keys {
            Some(keys) => keys.to_vec(),
            None => all_keys(&tx).map_err(self.err())?,
        };
        let mut removed = Vec::new();
        let mut gone = HashSet::new();
        let mut kept = Vec::new();
        for key in asked {
            for doomed in with_descendants(&tx, &key).map_err(self.err())? {
                if in_use.contains(&doomed) {
                    if doomed == key {
                        kept.push(key.clone());
                    }
                } else if gone.insert(doomed.clone()) {
                    tx.prepare_cached("DELETE FROM entries WHERE key = ?1")
                        .and_then(|mut s| s.execute([&doomed]))
                        .map_err(self.err())?;
                    removed.push(doomed);
                }
            }
        }
        sweep(&tx).map_err(self.err())?;
        let doomed = collect(&tx, &self.cache_dir, removed).map_err(self.err())?;
        if apply {
            tx.commit().map_err(self.err())?;
        }
        Ok(Removed { doomed, in_use: kept })
    }

    /// The keys of entries that start with `prefix` (at most a few).
    pub fn keys_starting_with(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT key FROM entries WHERE substr(key, 1, length(?1)) = ?1 AND key NOT LIKE '%~retired-%' LIMIT 10",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map([prefix], |row| row.get(0)).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Entries and bytes in total and by pipeline, each part counted once.
    pub fn usage(&self) -> Result<Usage, RegistryError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        let usage = usage(&tx).map_err(self.err())?;
        drop(tx);
        Ok(usage)
    }

    /// What is wrong with the database, if anything: SQLite's own
    /// integrity and foreign-key checks, entries whose parts or blobs are
    /// missing. Empty when it is sound (for tests and post-mortems).
    pub fn problems(&self) -> Result<Vec<String>, RegistryError> {
        let conn = self.conn();
        let mut problems = Vec::new();
        let checks = [
            "SELECT 'integrity: ' || integrity_check FROM pragma_integrity_check WHERE integrity_check != 'ok'",
            "SELECT 'foreign key: ' || \"table\" || ' row ' || rowid FROM pragma_foreign_key_check",
            "SELECT 'entry ' || ep.key || ' names unknown part ' || ep.part FROM entry_parts ep
             WHERE NOT EXISTS (SELECT 1 FROM parts p WHERE p.backend = ep.backend AND p.part = ep.part)",
            "SELECT 'entry ' || key || ' has no parts' FROM entries e
             WHERE NOT EXISTS (SELECT 1 FROM entry_parts ep WHERE ep.key = e.key)",
            "SELECT 'entry ' || key || ' has lost its inputs' FROM entries e
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = e.inputs)",
            "SELECT 'entry ' || key || ' has lost its manifest' FROM entries e
             WHERE manifest IS NOT NULL AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = e.manifest)",
            "SELECT 'entry ' || key || ' counts ' || children || ' children, not ' || n FROM (
                 SELECT key, children, (SELECT COUNT(*) FROM entries c WHERE c.parent = e.key) AS n FROM entries e)
             WHERE children != n",
            "SELECT 'the running total is ' || counted || ' bytes, not ' || actual FROM (
                 SELECT (SELECT value FROM meta WHERE name = 'bytes') AS counted,
                        (SELECT COALESCE(SUM(size), 0) FROM parts p WHERE EXISTS (
                             SELECT 1 FROM entry_parts e WHERE e.backend = p.backend AND e.part = p.part)) AS actual)
             WHERE counted IS NOT actual",
        ];
        for check in checks {
            let mut stmt = conn.prepare(check).map_err(self.err())?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0)).map_err(self.err())?;
            for row in rows {
                problems.push(row.map_err(self.err())?);
            }
        }
        Ok(problems)
    }

    /// Whether a live process holds any entry (what `--wait` waits for).
    pub fn any_in_use(&self) -> Result<bool, RegistryError> {
        let conn = self.conn();
        let sessions: Vec<String> = {
            let mut stmt = conn.prepare("SELECT DISTINCT session FROM holds").map_err(self.err())?;
            let rows = stmt.query_map([], |row| row.get(0)).map_err(self.err())?;
            rows.collect::<Result<_, _>>().map_err(self.err())?
        };
        Ok(sessions.iter().any(|s| crate::session::is_alive(&self.cache_dir, s)))
    }
}

/// Evicts entries within a transaction until the cache is within `bounds`
/// and nothing is older than `cutoff` (seconds since the epoch), never a
/// held one, least recently used first within each kind:
///
/// - over the entry bound, first the *ancestors*: entries another entry
///   builds on. Keys are known before a build, so the kept descendant's
///   hit makes them unnecessary (`hm_exec::scheduler::not_needed`), and
///   on the sandbox its stack holds their layers: evicting them frees
///   entries, not bytes. Only when no ancestor can go, a *leaf* (an entry
///   nothing builds on), except `spare` (the entry just stored: see
///   [`Registry::store`]);
/// - over the byte bound, leaves: evicting an ancestor frees nothing
///   (its layers are its descendants' too), evicting a leaf frees its own
///   layer, and those of the ancestors that went before it: a chain goes
///   from its end, and whole once its ancestors are gone;
/// - entries older than `cutoff`, ancestors and leaves.
///
/// Returns the evicted keys.
pub(super) fn evict_in(
    tx: &Connection,
    bounds: Bounds,
    cutoff: Option<u64>,
    spare: Option<&str>,
) -> rusqlite::Result<Vec<String>> {
    let mut evicted = Vec::new();
    loop {
        let (count, bytes) = totals(tx)?;
        let next = if count > bounds.max_entries {
            match least_recently_used(tx, Kind::Ancestor, i64::MAX, None)? {
                Some(key) => Some(key),
                None => least_recently_used(tx, Kind::Leaf, i64::MAX, spare)?,
            }
        } else if bytes > bounds.max_bytes {
            least_recently_used(tx, Kind::Leaf, i64::MAX, None)?
        } else if let Some(cutoff) = cutoff {
            match least_recently_used(tx, Kind::Ancestor, cutoff as i64, None)? {
                Some(key) => Some(key),
                None => least_recently_used(tx, Kind::Leaf, cutoff as i64, None)?,
            }
        } else {
            None
        };
        let Some(key) = next else { break };
        tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?
            .execute([&key])?;
        evicted.push(key);
    }
    Ok(evicted)
}

/// What an entry is to the others, for eviction.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Another entry builds on it.
    Ancestor,
    /// No entry builds on it.
    Leaf,
}

/// The least recently used entry of `kind` that nobody holds, that was
/// last used before `before` and is not `except`: the first such row of
/// that kind's index (see `schema::BOOKKEEPING`).
fn least_recently_used(
    tx: &Connection,
    kind: Kind,
    before: i64,
    except: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    let sql = match kind {
        Kind::Ancestor => {
            "SELECT key FROM entries e
             WHERE children > 0 AND last_used < ?1 AND key IS NOT ?2
               AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = e.key)
             ORDER BY last_used ASC, created ASC, rowid ASC LIMIT 1"
        }
        Kind::Leaf => {
            "SELECT key FROM entries e
             WHERE children = 0 AND last_used < ?1 AND key IS NOT ?2
               AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = e.key)
             ORDER BY last_used ASC, created ASC, rowid ASC LIMIT 1"
        }
    };
    tx.prepare_cached(sql)?
        .query_row(params![before, except], |row| row.get(0))
        .optional()
}

/// Held entries and every entry above them.
fn in_use(tx: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = tx.prepare(
        "WITH RECURSIVE used(key) AS (
             SELECT key FROM holds
             UNION SELECT e.parent FROM entries e JOIN used u ON e.key = u.key WHERE e.parent IS NOT NULL
         ) SELECT key FROM used",
    )?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}

/// `key` and every entry below it, `key` first.
fn with_descendants(tx: &Connection, key: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "WITH RECURSIVE below(key, depth) AS (
             SELECT key, 0 FROM entries WHERE key = ?1
             UNION SELECT e.key, b.depth + 1 FROM entries e JOIN below b ON e.parent = b.key
         ) SELECT key FROM below ORDER BY depth",
    )?;
    let rows = stmt.query_map([key], |row| row.get(0))?;
    rows.collect()
}

fn all_keys(tx: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare("SELECT key FROM entries WHERE key NOT LIKE '%~retired-%'")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    rows.collect()
}

/// The usage of `(project, pipeline, backend)`, made empty when new.
fn group_of(
    pipelines: &mut BTreeMap<(String, String, String), PipelineUsage>,
    group: (String, String, String),
) -> &mut PipelineUsage {
    pipelines.entry(group.clone()).or_insert_with(|| {
        let (project, pipeline, backend) = group;
        PipelineUsage {
            project,
            pipeline,
            backend,
            ..PipelineUsage::default()
        }
    })
}

fn usage(tx: &Connection) -> rusqlite::Result<Usage> {
    type Group = (String, String, String);
    let mut pipelines: BTreeMap<Group, PipelineUsage> = BTreeMap::new();
    {
        let mut stmt =
            tx.prepare("SELECT project, pipeline, backend, COUNT(*) FROM entries GROUP BY project, pipeline, backend")?;
        let rows = stmt.query_map([], |row| {
            Ok(((row.get(0)?, row.get(1)?, row.get(2)?), row.get::<_, i64>(3)?))
        })?;
        for row in rows {
            let (group, count) = row?;
            group_of(&mut pipelines, group).entries = count as u64;
        }
    }
    // Each referenced part once, for the entry it lies highest in.
    let mut stmt = tx.prepare(
        "SELECT p.backend, p.part, p.size, e.project, e.pipeline FROM parts p
         JOIN entry_parts ep ON ep.backend = p.backend AND ep.part = p.part
         JOIN entries e ON e.key = ep.key
         ORDER BY p.backend, p.part, ep.position, e.key",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
        ))
    })?;
    let mut last: Option<(String, String)> = None;
    for row in rows {
        let (backend, part, size, project, pipeline) = row?;
        let this = Some((backend.clone(), part));
        if this == last {
            continue;
        }
        last = this;
        group_of(&mut pipelines, (project, pipeline, backend)).bytes += size.max(0) as u64;
    }
    let pipelines: Vec<PipelineUsage> = pipelines.into_values().collect();
    Ok(Usage {
        entries: pipelines.iter().map(|p| p.entries).sum(),
        bytes: pipelines.iter().map(|p| p.bytes).sum(),
        pipelines,
    })
}
