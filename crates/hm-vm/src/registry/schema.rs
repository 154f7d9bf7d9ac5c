//! The registry's tables, and what a connection adds to them: the version
//! check and upgrades, the bookkeeping that keeps eviction and collection
//! independent of the registry's size (issue 15), and the per-connection
//! record of what a transaction let go.

use rusqlite::{Connection, OptionalExtension};

use super::OpenError;

pub(super) const SCHEMA_VERSION: i64 = 4;

pub(super) const SCHEMA: &str = "
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
    inputs TEXT NOT NULL,
    parent TEXT
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

/// What version 4 added to version 3 (and what a new database gets after
/// [`SCHEMA`]): entries name their parent, and processes hold parts.
pub(super) const SCHEMA_4: &str = "
CREATE INDEX IF NOT EXISTS entries_by_parent ON entries (parent);
CREATE TABLE IF NOT EXISTS part_holds (
    session TEXT NOT NULL,
    backend TEXT NOT NULL,
    part TEXT NOT NULL,
    PRIMARY KEY (session, backend, part)
);
";

/// What keeps the registry's operations independent of its size (issue
/// 15): each entry counts its children (kept by triggers), so that the
/// least recently used ancestor and leaf are each the first row of an
/// index; the bytes of referenced parts are a running total (kept by
/// triggers) instead of a sum over every part; and holds, part holds and
/// blobs are indexed by what they are looked up by. Only additions, made
/// once by whichever `hm` opens the database first: an `hm` that knows
/// nothing of them keeps working on it (its statements name their
/// columns), and the triggers keep the counts right whoever writes.
const BOOKKEEPING: &str = "
ALTER TABLE entries ADD COLUMN children INTEGER NOT NULL DEFAULT 0;
UPDATE entries SET children = (SELECT COUNT(*) FROM entries c WHERE c.parent = entries.key);
CREATE INDEX ancestors_by_use ON entries (last_used, created) WHERE children > 0;
CREATE INDEX leaves_by_use ON entries (last_used, created) WHERE children = 0;
CREATE INDEX entries_by_manifest ON entries (manifest);
CREATE INDEX entries_by_inputs ON entries (inputs);
CREATE INDEX holds_by_key ON holds (key);
CREATE INDEX part_holds_by_part ON part_holds (backend, part);
INSERT OR REPLACE INTO meta (name, value) VALUES ('bytes', (
    SELECT COALESCE(SUM(size), 0) FROM parts p
    WHERE EXISTS (SELECT 1 FROM entry_parts e WHERE e.backend = p.backend AND e.part = p.part)));
CREATE TRIGGER entry_added AFTER INSERT ON entries BEGIN
    UPDATE entries SET children = children + 1 WHERE key = NEW.parent;
    UPDATE entries SET children = (SELECT COUNT(*) FROM entries c WHERE c.parent = NEW.key)
        WHERE key = NEW.key;
END;
CREATE TRIGGER entry_removed AFTER DELETE ON entries BEGIN
    UPDATE entries SET children = children - 1 WHERE key = OLD.parent;
END;
-- A retired entry's children are its successor's (they name the key).
CREATE TRIGGER entry_renamed AFTER UPDATE OF key ON entries BEGIN
    UPDATE entries SET children = (SELECT COUNT(*) FROM entries c WHERE c.parent = NEW.key)
        WHERE key = NEW.key;
END;
CREATE TRIGGER part_referenced AFTER INSERT ON entry_parts
WHEN NOT EXISTS (SELECT 1 FROM entry_parts o
                 WHERE o.backend = NEW.backend AND o.part = NEW.part AND o.rowid != NEW.rowid)
BEGIN
    UPDATE meta SET value = value + COALESCE(
        (SELECT size FROM parts WHERE backend = NEW.backend AND part = NEW.part), 0)
    WHERE name = 'bytes';
END;
CREATE TRIGGER part_unreferenced AFTER DELETE ON entry_parts
WHEN NOT EXISTS (SELECT 1 FROM entry_parts o WHERE o.backend = OLD.backend AND o.part = OLD.part)
BEGIN
    UPDATE meta SET value = value - COALESCE(
        (SELECT size FROM parts WHERE backend = OLD.backend AND part = OLD.part), 0)
    WHERE name = 'bytes';
END;
";

/// Cache volumes (issue 19): one row per volume instance, by id (see
/// [`crate::volumes`]). An addition any `hm` may make: one that knows
/// nothing of it leaves it alone.
const VOLUMES: &str = "
CREATE TABLE IF NOT EXISTS volumes (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    scope TEXT NOT NULL,
    image TEXT NOT NULL,
    name TEXT NOT NULL,
    instance INTEGER NOT NULL,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS volumes_by_use ON volumes (last_used);
";

/// The last object [`BOOKKEEPING`] makes: once it exists, all do.
const BOOKKEEPING_DONE: &str = "part_unreferenced";

/// What this connection's transactions let go, recorded as they go (by
/// temporary triggers, which only this connection sees): parts that lost
/// a reference or a hold or were just added, and the blobs of removed
/// entries. [`super::collect::collect`] looks only at these, so a
/// collection costs what was let go, not what the registry holds.
const LOOSE: &str = "
CREATE TEMP TABLE IF NOT EXISTS loose_parts (backend TEXT NOT NULL, part TEXT NOT NULL, PRIMARY KEY (backend, part));
CREATE TEMP TABLE IF NOT EXISTS loose_blobs (digest TEXT PRIMARY KEY);
CREATE TEMP TRIGGER IF NOT EXISTS unreferenced_part_loose AFTER DELETE ON main.entry_parts BEGIN
    INSERT OR IGNORE INTO loose_parts (backend, part) VALUES (OLD.backend, OLD.part);
END;
CREATE TEMP TRIGGER IF NOT EXISTS released_part_loose AFTER DELETE ON main.part_holds BEGIN
    INSERT OR IGNORE INTO loose_parts (backend, part) VALUES (OLD.backend, OLD.part);
END;
CREATE TEMP TRIGGER IF NOT EXISTS new_part_loose AFTER INSERT ON main.parts BEGIN
    INSERT OR IGNORE INTO loose_parts (backend, part) VALUES (NEW.backend, NEW.part);
END;
CREATE TEMP TRIGGER IF NOT EXISTS removed_entry_blobs_loose AFTER DELETE ON main.entries BEGIN
    INSERT OR IGNORE INTO loose_blobs (digest) VALUES (OLD.inputs);
    INSERT OR IGNORE INTO loose_blobs (digest) SELECT OLD.manifest WHERE OLD.manifest IS NOT NULL;
END;
";

/// Brings a freshly opened connection's database to the current schema
/// (creating it, or upgrading a version 3 one), adds the bookkeeping if it
/// is missing, and sets up the connection's own record of what it lets go.
pub(super) fn prepare(conn: &Connection) -> Result<(), OpenError> {
    // Temporary tables stay in memory: a full or read-only disk must not
    // stop a lookup.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Damage is found where it is read (see `Registry::err`), not by
    // scanning the whole file on every start.
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
            conn.execute_batch(SCHEMA_4)?;
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?1)",
                [SCHEMA_VERSION],
            )?;
        }
        Some(3) => upgrade_from_3(conn)?,
        // Another version of hm wrote this cache: start afresh.
        Some(found) => return Err(OpenError::WrongSchema { found }),
    }
    if !has_bookkeeping(conn)? {
        immediately(conn, |conn| match has_bookkeeping(conn)? {
            true => Ok(()),
            false => conn.execute_batch(BOOKKEEPING),
        })?;
    }
    if !has_object(conn, "table", "volumes")? {
        immediately(conn, |conn| conn.execute_batch(VOLUMES))?;
    }
    conn.execute_batch(LOOSE)?;
    Ok(())
}

fn has_bookkeeping(conn: &Connection) -> rusqlite::Result<bool> {
    has_object(conn, "trigger", BOOKKEEPING_DONE)
}

/// Whether the database has the `kind` (`table`, `trigger`) `name`.
fn has_object(conn: &Connection, kind: &str, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2",
        [kind, name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// Adds what version 4 needs to a version 3 database, keeping its entries
/// (they have no parent: each counts as a root).
fn upgrade_from_3(conn: &Connection) -> rusqlite::Result<()> {
    immediately(conn, |conn| {
        let version: i64 = conn.query_row("SELECT value FROM meta WHERE name = 'schema'", [], |row| row.get(0))?;
        if version == 3 {
            conn.execute_batch("ALTER TABLE entries ADD COLUMN parent TEXT")?;
            conn.execute_batch(SCHEMA_4)?;
            conn.execute("UPDATE meta SET value = ?1 WHERE name = 'schema'", [SCHEMA_VERSION])?;
        }
        Ok(())
    })
}

/// Runs `change` in a write transaction taken at once (another process
/// making the same change waits, then finds it made).
fn immediately(conn: &Connection, change: impl FnOnce(&Connection) -> rusqlite::Result<()>) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match change(conn) {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}
