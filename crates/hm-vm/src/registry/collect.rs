//! What is left when entries and holds go: the registry's totals, the
//! holds of processes that died, and the parts and blobs nothing needs any
//! more. Each looks only at what a transaction let go (recorded as it went,
//! see `schema::LOOSE`), so it costs the same in a registry of 50 entries
//! and one of 10,000; the cache commands sweep everything.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{params, Connection};

use super::Doomed;
use crate::session::is_alive;

/// The number of entries and the bytes of the parts they reference (each
/// part once).
pub(super) fn totals(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM entries")?
        .query_row([], |row| row.get(0))?;
    // A running total (see `schema::BOOKKEEPING`), not a sum over parts.
    let bytes: i64 = conn
        .prepare_cached("SELECT COALESCE((SELECT value FROM meta WHERE name = 'bytes'), 0)")?
        .query_row([], |row| row.get(0))?;
    Ok((count as u64, bytes.max(0) as u64))
}

/// Forgets the holds of processes that are gone.
pub(super) fn forget_dead_holds(conn: &Connection, cache_dir: &Path) -> rusqlite::Result<()> {
    let mut sessions = BTreeSet::new();
    for table in ["holds", "part_holds"] {
        // Each distinct session by one index seek from the last, rather
        // than a pass over every hold (a build holds one per step).
        let mut stmt = conn.prepare_cached(&format!(
            "WITH RECURSIVE s(session) AS (
                 SELECT MIN(session) FROM {table}
                 UNION ALL SELECT (SELECT MIN(session) FROM {table} WHERE session > s.session) FROM s
                 WHERE s.session IS NOT NULL
             ) SELECT session FROM s WHERE session IS NOT NULL"
        ))?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        for session in rows {
            sessions.insert(session?);
        }
    }
    for session in sessions {
        if !is_alive(cache_dir, &session) {
            conn.prepare_cached("DELETE FROM holds WHERE session = ?1")?
                .execute([&session])?;
            conn.prepare_cached("DELETE FROM part_holds WHERE session = ?1")?
                .execute([&session])?;
        }
    }
    Ok(())
}

/// Marks every part and blob as let go, so that the next [`collect`]
/// looks at all of them (what the cache commands do, in case anything was
/// missed: a database another `hm` wrote, say).
pub(super) fn sweep(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO temp.loose_parts (backend, part) SELECT backend, part FROM parts",
        [],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO temp.loose_blobs (digest) SELECT digest FROM blobs",
        [],
    )?;
    Ok(())
}

/// Removes retired entries nobody holds, and of the parts and blobs that
/// this connection let go, those that no entry references and no live
/// process holds (a held entry is never removed, so its parts stay
/// referenced); returns the parts, for their storage to be deleted, with
/// `entries` (the keys the caller removed).
pub(super) fn collect(conn: &Connection, cache_dir: &Path, entries: Vec<String>) -> rusqlite::Result<Doomed> {
    forget_dead_holds(conn, cache_dir)?;
    // Retired entries live only as long as someone holds them; they are
    // leaves used at time 0 (an index range, not a pass over entries).
    conn.prepare_cached(
        "DELETE FROM entries WHERE children = 0 AND last_used = 0 AND key LIKE '%~retired-%'
           AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.key = entries.key)",
    )?
    .execute([])?;
    conn.prepare_cached(
        "DELETE FROM blobs WHERE digest IN (SELECT digest FROM temp.loose_blobs)
           AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.manifest = blobs.digest)
           AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.inputs = blobs.digest)",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM temp.loose_blobs")?.execute([])?;
    let doomed: Vec<(String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT l.backend, l.part FROM temp.loose_parts l
             WHERE EXISTS (SELECT 1 FROM parts p WHERE p.backend = l.backend AND p.part = l.part)
               AND NOT EXISTS (SELECT 1 FROM entry_parts e WHERE e.backend = l.backend AND e.part = l.part)
               AND NOT EXISTS (SELECT 1 FROM part_holds h WHERE h.backend = l.backend AND h.part = l.part)
             ORDER BY l.backend, l.part",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (backend, part) in &doomed {
        conn.prepare_cached("DELETE FROM parts WHERE backend = ?1 AND part = ?2")?
            .execute(params![backend, part])?;
    }
    conn.prepare_cached("DELETE FROM temp.loose_parts")?.execute([])?;
    Ok(Doomed { parts: doomed, entries })
}
