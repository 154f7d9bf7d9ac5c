//! What leaves the registry, and how much it holds: eviction within the
//! bounds (least recently used leaves first), removal on request (never of
//! what a running build uses), and sizes counted once per part.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

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
    /// Evicts least-recently-used entries until the cache is within
    /// `bounds`, never one a live process holds.
    pub fn evict(&self, bounds: Bounds) -> Result<Doomed, RegistryError> {
        self.evict_where(bounds, None, true)
    }

    /// Like [`Registry::evict`], also evicting entries not used for
    /// `older_than` seconds. Without `apply`, nothing changes: the result
    /// says what would go (to free storage first on a full disk, where the
    /// registry cannot be written until some is free).
    pub fn evict_where(&self, bounds: Bounds, older_than: Option<u64>, apply: bool) -> Result<Doomed, RegistryError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        forget_dead_holds(&tx, &self.cache_dir).map_err(self.err())?;
        let cutoff = older_than.map(|age| now().saturating_sub(age));
        let evicted = evict_in(&tx, bounds, cutoff).map_err(self.err())?;
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
        let mut kept = Vec::new();
        for key in asked {
            for doomed in with_descendants(&tx, &key).map_err(self.err())? {
                if in_use.contains(&doomed) {
                    if doomed == key {
                        kept.push(key.clone());
                    }
                } else if !removed.contains(&doomed) {
                    tx.execute("DELETE FROM entries WHERE key = ?1", [&doomed])
                        .map_err(self.err())?;
                    removed.push(doomed);
                }
            }
        }
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
/// and nothing is older than `cutoff` (seconds since the epoch): always a
/// leaf (an entry no other entry builds on), the least recently used
/// first, never a held one. An entry's parent is needed to reach it, so a
/// chain goes from its end. Returns the evicted keys.
pub(super) fn evict_in(tx: &Connection, bounds: Bounds, cutoff: Option<u64>) -> rusqlite::Result<Vec<String>> {
    let mut evicted = Vec::new();
    loop {
        let (count, bytes) = totals(tx)?;
        let over = count > bounds.max_entries || bytes > bounds.max_bytes;
        let stale_before = match (over, cutoff) {
            (true, _) => i64::MAX,
            (false, Some(cutoff)) => cutoff as i64,
            (false, None) => break,
        };
        let next: Option<String> = tx
            .prepare_cached(
                "SELECT key FROM entries e
                 WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = e.key)
                   AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.parent = e.key)
                   AND last_used < ?1
                 ORDER BY last_used ASC, created ASC, rowid ASC LIMIT 1",
            )?
            .query_row(params![stale_before], |row| row.get(0))
            .optional()?;
        let Some(key) = next else { break };
        tx.execute("DELETE FROM entries WHERE key = ?1", [&key])?;
        evicted.push(key);
    }
    Ok(evicted)
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
