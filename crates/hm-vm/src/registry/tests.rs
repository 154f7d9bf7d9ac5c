use super::schema::{SCHEMA, SCHEMA_VERSION};
use super::*;

fn entry(key: &str, parts: &[&str], last_used: u64) -> NewEntry {
    NewEntry {
        entry: CacheEntry {
            key: key.to_owned(),
            parent: None,
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

/// An entry on `parent`, its own part on top of the parent's parts.
fn child(key: &str, parent: &NewEntry, last_used: u64) -> NewEntry {
    let own = format!("l-{key}");
    let mut parts = vec![own.as_str()];
    parts.extend(parent.entry.parts.iter().map(String::as_str));
    let mut new = entry(key, &parts, last_used);
    new.entry.parent = Some(parent.entry.key.clone());
    new.part_sizes = vec![(own, 100)];
    new
}

fn parts(doomed: &Doomed) -> Vec<String> {
    let mut parts: Vec<String> = doomed.parts.iter().map(|(_, p)| p.clone()).collect();
    parts.sort();
    parts
}

fn keys(registry: &Registry) -> Vec<String> {
    let mut keys: Vec<String> = registry.list().unwrap().into_iter().map(|e| e.key).collect();
    keys.sort();
    keys
}

fn bounds(max_entries: u64, max_bytes: u64) -> Bounds {
    Bounds { max_entries, max_bytes }
}

#[test]
fn insert_lookup_and_shared_parts() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let parent = entry("parent", &["l1"], 1);
    registry.insert(&parent, true).unwrap();
    let mut child = entry("child", &["l2", "l1"], 2);
    child.entry.parent = Some("parent".to_owned());
    registry.insert(&child, true).unwrap();
    let found = registry.lookup("child").unwrap().unwrap();
    assert_eq!(found.entry.parts, ["l2", "l1"]);
    assert_eq!(found.entry.parent.as_deref(), Some("parent"));
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
    let doomed = registry.evict(bounds(2, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["a"]);
    assert_eq!(parts(&doomed), ["la"]);

    // Another process holds `b`: it is skipped, `c` goes instead.
    let other = Registry::open(dir.path()).unwrap();
    other.lookup("b").unwrap().unwrap();
    let doomed = registry.evict(bounds(1, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["c"]);
    // Once it lets go, `b` can go too.
    other.release().unwrap();
    let doomed = registry.evict(bounds(0, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["b"]);
    assert_eq!(parts(&doomed), ["lb"]);
    assert_eq!(registry.totals().unwrap(), (0, 0));
    assert!(
        registry.blob("m-b").unwrap().is_none(),
        "manifests go with their entries"
    );
}

/// Issue 11, item 12: a parent is needed to reach its child, so eviction
/// takes a chain from its end, and a byte bound frees what it counts.
#[test]
fn eviction_takes_chains_from_their_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let parent = entry("parent", &["l-parent"], 1);
    registry.insert(&parent, false).unwrap();
    // The child was used more recently, yet goes first.
    let kid = child("child", &parent, 2);
    registry.insert(&kid, false).unwrap();
    let doomed = registry.evict(bounds(10, 150)).unwrap();
    assert_eq!(doomed.entries, ["child"]);
    assert_eq!(parts(&doomed), ["l-child"], "the child's own layer is freed");
    assert_eq!(registry.totals().unwrap(), (1, 100));
    assert!(registry.evict(bounds(10, 150)).unwrap().entries.is_empty());
    let doomed = registry.evict(bounds(0, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["parent"]);
}

/// Issue 15: a 20-step chain with room for 5 entries keeps its last 5
/// while it runs (each new entry makes its ancestors unnecessary: the
/// oldest goes), so the next run's hit of the last step runs nothing; the
/// evicted ancestors' layers are the last entry's too, so nothing is
/// freed. Issue 11, item 12: the bounds hold all along, and the parts stay
/// for the run's own steps until it lets go.
#[test]
fn the_bounds_hold_while_a_chain_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let mut previous = entry("s0", &["l-s0"], 100);
    assert!(registry.store(&previous, true, Some(bounds(5, u64::MAX))).unwrap().kept);
    for i in 1..20 {
        let next = child(&format!("s{i}"), &previous, 100 + i);
        let stored = registry.store(&next, true, Some(bounds(5, u64::MAX))).unwrap();
        assert!(stored.kept, "s{i}");
        assert!(stored.doomed.parts.is_empty(), "held parts stay: {:?}", stored.doomed);
        assert!(registry.totals().unwrap().0 <= 5);
        previous = next;
    }
    assert_eq!(keys(&registry), ["s15", "s16", "s17", "s18", "s19"]);
    assert_eq!(registry.totals().unwrap(), (5, 2000), "every layer is s19's");
    assert!(parts(&registry.release().unwrap()).is_empty());
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    // With a byte bound of 8 parts, the chain's first 8 entries stay:
    // evicting an ancestor frees nothing, so the end goes, and a child
    // whose parent went is not stored.
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let mut previous = entry("s0", &["l-s0"], 100);
    registry.store(&previous, false, Some(bounds(100, 800))).unwrap();
    for i in 1..20 {
        let next = child(&format!("s{i}"), &previous, 100 + i);
        registry.store(&next, false, Some(bounds(100, 800))).unwrap();
        previous = next;
    }
    assert_eq!(registry.totals().unwrap(), (8, 800));
    assert_eq!(keys(&registry), ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

/// Stores `new` without bounds or holds.
fn put(registry: &Registry, new: &NewEntry) {
    registry.insert(new, false).unwrap();
}

/// Issue 15: over the entry bound, the entries other entries build on go
/// first (least recently used first), even when a leaf was used less
/// recently; leaves go only when no ancestor can.
#[test]
fn over_the_entry_bound_ancestors_go_before_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    // A lone leaf, used longest ago; then a -> b -> c and x -> y.
    put(&registry, &entry("lone", &["l-lone"], 1));
    let a = entry("a", &["l-a"], 10);
    let b = child("b", &a, 11);
    let x = entry("x", &["l-x"], 12);
    let c = child("c", &b, 13);
    let y = child("y", &x, 14);
    for new in [&a, &b, &x, &c, &y] {
        put(&registry, new);
    }
    let doomed = registry.evict(bounds(4, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["a", "b"], "the ancestors least recently used");
    assert!(parts(&doomed).is_empty(), "their layers are their descendants'");
    let doomed = registry.evict(bounds(2, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["x", "lone"], "the last ancestor, then leaves");
    assert_eq!(parts(&doomed), ["l-lone"]);
    assert_eq!(keys(&registry), ["c", "y"]);
    // c's stack holds a's and b's layers until c goes.
    let doomed = registry.evict(bounds(1, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["c"]);
    assert_eq!(parts(&doomed), ["l-a", "l-b", "l-c"]);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

/// Issue 15: over the byte bound, evicting an ancestor would free nothing,
/// so leaves go, least recently used first; a leaf whose ancestors were
/// evicted takes their layers with it (the whole chain goes).
#[test]
fn over_the_byte_bound_the_ends_of_chains_go() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    let c = child("c", &b, 3);
    let x = entry("x", &["l-x"], 4);
    let y = child("y", &x, 5);
    for new in [&a, &b, &c, &x, &y] {
        put(&registry, new);
    }
    assert_eq!(registry.totals().unwrap(), (5, 500));
    // The chain's end goes first, its own layer freed.
    let doomed = registry.evict(bounds(100, 450)).unwrap();
    assert_eq!(doomed.entries, ["c"]);
    assert_eq!(parts(&doomed), ["l-c"]);
    // The entry bound takes a (an ancestor: b's stack holds its layer),
    // then x: no bytes freed.
    let doomed = registry.evict(bounds(3, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["a"]);
    assert!(parts(&doomed).is_empty());
    assert_eq!(registry.totals().unwrap(), (3, 400));
    let doomed = registry.evict(bounds(2, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["x"]);
    assert_eq!(registry.totals().unwrap(), (2, 400), "ancestors free no bytes");
    // Now b (whose parent went) is least recently used: it takes a's
    // layer along; then y takes x's.
    let doomed = registry.evict(bounds(100, 250)).unwrap();
    assert_eq!(doomed.entries, ["b"]);
    assert_eq!(parts(&doomed), ["l-a", "l-b"]);
    let doomed = registry.evict(bounds(100, 0)).unwrap();
    assert_eq!(doomed.entries, ["y"]);
    assert_eq!(parts(&doomed), ["l-x", "l-y"]);
    assert_eq!(registry.totals().unwrap(), (0, 0));
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

/// Issue 15: held entries never go, ancestors or leaves, whatever the
/// bound; the entry just stored stays when every other entry is held (or
/// a step whose parent is held would run again on every build) and goes
/// before the next one does.
#[test]
fn held_entries_stay_and_the_entry_just_stored_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    let lone = entry("lone", &["l-lone"], 3);
    for new in [&a, &b, &lone] {
        put(&registry, new);
    }
    // A build found all three.
    let build = Registry::open(dir.path()).unwrap();
    let wanted: Vec<(String, bool)> = ["a", "b", "lone"].iter().map(|k| (k.to_string(), true)).collect();
    assert_eq!(build.lookup_many(&wanted).unwrap().len(), 3);
    let c = child("c", &b, 4);
    let stored = build.store(&c, true, Some(bounds(3, u64::MAX))).unwrap();
    assert!(stored.kept, "every other entry is held");
    assert_eq!(keys(&registry), ["a", "b", "c", "lone"]);
    // The next entry stored makes c an ancestor: c goes.
    let d = child("d", &c, 5);
    let stored = build.store(&d, true, Some(bounds(3, u64::MAX))).unwrap();
    assert!(stored.kept);
    assert!(stored.doomed.parts.is_empty(), "the build holds c's layer");
    assert_eq!(keys(&registry), ["a", "b", "d", "lone"]);
    // A byte bound spares nobody but held entries: the chain's end goes,
    // the new entry first.
    let e = child("e", &d, 6);
    let stored = build.store(&e, true, Some(bounds(100, 100))).unwrap();
    assert!(!stored.kept);
    assert_eq!(stored.doomed.entries, ["e", "d"]);
    // Once the build lets go, the bound holds: ancestors first.
    build.release().unwrap();
    let doomed = registry.evict(bounds(1, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["a", "b"]);
    assert_eq!(keys(&registry), ["lone"]);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

#[test]
fn an_entry_whose_parent_is_gone_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let parent = entry("parent", &["l-parent"], 1);
    let stored = registry.store(&child("child", &parent, 2), false, None).unwrap();
    assert!(!stored.kept);
    assert_eq!(parts(&stored.doomed), ["l-child"], "nobody holds its layer");
    assert!(registry.lookup("child").unwrap().is_none());
}

/// Issue 11, item 4: what a running build uses stays, and so do the
/// entries above it; the entries below a removed one go with it.
#[test]
fn removal_spares_what_a_running_build_uses() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    let c = child("c", &b, 3);
    let other = entry("other", &["l-other"], 4);
    for new in [&a, &b, &c, &other] {
        registry.insert(new, false).unwrap();
    }
    let build = Registry::open(dir.path()).unwrap();
    build.lookup("b").unwrap().unwrap();
    // A dry run changes nothing.
    let would = registry.remove_unused(None, false).unwrap();
    assert_eq!(keys(&registry), ["a", "b", "c", "other"]);
    let removed = registry.remove_unused(None, true).unwrap();
    assert_eq!(removed, would);
    let mut in_use = removed.in_use.clone();
    in_use.sort();
    assert_eq!(in_use, ["a", "b"]);
    assert_eq!(parts(&removed.doomed), ["l-c", "l-other"]);
    assert_eq!(keys(&registry), ["a", "b"]);
    build.release().unwrap();
    // Removing `a` takes `b` (reachable only through it) along.
    let removed = registry.remove_unused(Some(&["a".to_owned()]), true).unwrap();
    assert!(removed.in_use.is_empty());
    assert_eq!(parts(&removed.doomed), ["l-a", "l-b"]);
    assert!(keys(&registry).is_empty());
}

/// Issue 11, item 12: `du` counts each part once, for the entry it is the
/// top of, so the pipelines add up to the total.
#[test]
fn usage_counts_each_part_once() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    let mut other = entry("other", &["l-other"], 3);
    other.entry.pipeline = "nightly".to_owned();
    for new in [&a, &b, &other] {
        registry.insert(new, false).unwrap();
    }
    let usage = registry.usage().unwrap();
    assert_eq!((usage.entries, usage.bytes), (3, 300));
    assert_eq!(usage.bytes, registry.totals().unwrap().1);
    let by: Vec<(String, u64, u64)> = usage
        .pipelines
        .iter()
        .map(|p| (p.pipeline.clone(), p.entries, p.bytes))
        .collect();
    assert_eq!(by, [("ci".to_owned(), 2, 200), ("nightly".to_owned(), 1, 100)]);
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
    let doomed = registry.evict(bounds(0, 0)).unwrap();
    assert_eq!(parts(&doomed), ["new"]);
    // Once its holder lets go, the retired entry and its parts go.
    let doomed = other.release().unwrap();
    assert_eq!(parts(&doomed), ["old"]);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

/// Issue 15: the children counts and the byte total stay right through
/// replacing a parent that other processes hold (retired under another
/// key) and removing entries.
#[test]
fn the_bookkeeping_follows_retired_and_removed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    let c = child("c", &b, 3);
    for new in [&a, &b, &c] {
        put(&registry, new);
    }
    let other = Registry::open(dir.path()).unwrap();
    other.lookup("b").unwrap().unwrap();
    // b is stored again (`--no-cache`) with a new layer: the old b is
    // retired, c counts as the new b's child.
    let mut again = child("b", &a, 4);
    again.entry.parts = vec!["l-b2".to_owned(), "l-a".to_owned()];
    again.part_sizes = vec![("l-b2".to_owned(), 100)];
    put(&registry, &again);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    assert_eq!(registry.totals().unwrap(), (4, 400), "a, the old b, the new b, c");
    other.release().unwrap();
    assert_eq!(registry.totals().unwrap(), (3, 400), "c still stacks the old b's layer");
    // Over an entry bound of 2, the ancestor a goes (b has a child too,
    // but a is older).
    assert_eq!(registry.evict(bounds(2, u64::MAX)).unwrap().entries, ["a"]);
    registry.remove(&["c".to_owned()]).unwrap();
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    assert_eq!(registry.totals().unwrap(), (1, 200), "the new b and a's layer");
}

#[test]
fn replacing_an_entry_frees_what_nobody_holds() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    registry.insert(&entry("k", &["old"], 1), false).unwrap();
    let doomed = registry.insert(&entry("k", &["new"], 2), false).unwrap();
    assert_eq!(parts(&doomed), ["old"]);
}

#[test]
fn a_version_3_registry_keeps_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(REGISTRY_FILE);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    // Version 3: entries without a parent, no part holds.
    conn.execute_batch(&SCHEMA.replace(",\n    parent TEXT\n", "\n"))
        .unwrap();
    conn.execute("INSERT INTO meta (name, value) VALUES ('schema', 3)", [])
        .unwrap();
    conn.execute(
        "INSERT INTO entries (key, backend, base, manifest, size, step, pipeline, project, created, last_used, inputs)
         VALUES ('k', 'sandbox', 'host', NULL, 1, 's', 'ci', '/p', 1, 1, 'inputs:x')",
        [],
    )
    .unwrap();
    drop(conn);
    let registry = Registry::open(dir.path()).unwrap();
    assert!(!registry.rebuilt());
    let found = registry.lookup("k").unwrap().unwrap();
    assert_eq!(found.entry.parent, None);
    let a = entry("a", &["l-a"], 1);
    registry.insert(&a, false).unwrap();
    registry.insert(&child("b", &a, 2), false).unwrap();
    assert_eq!(
        registry.lookup("b").unwrap().unwrap().entry.parent.as_deref(),
        Some("a")
    );
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

#[test]
fn a_sound_registry_has_no_problems_and_a_broken_one_says_what() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let a = entry("a", &["l-a"], 1);
    registry.insert(&a, false).unwrap();
    registry.insert(&child("b", &a, 2), false).unwrap();
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    registry
        .conn()
        .execute("DELETE FROM parts WHERE part = 'l-b'", [])
        .unwrap();
    assert_eq!(
        registry.problems().unwrap(),
        [
            "entry b names unknown part l-b",
            "the running total is 200 bytes, not 100"
        ]
    );
}

/// The files a registry was set aside as.
fn set_aside(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".damaged-"))
        .collect()
}

#[test]
fn a_registry_of_another_version_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    registry.insert(&entry("k", &["l"], 1), false).unwrap();
    registry
        .conn()
        .execute("UPDATE meta SET value = ?1 WHERE name = 'schema'", [SCHEMA_VERSION + 1])
        .unwrap();
    drop(registry);
    let again = Registry::open(dir.path()).unwrap();
    assert!(again.rebuilt());
    assert!(again.lookup("k").unwrap().is_none());
    assert!(!set_aside(dir.path()).is_empty());
}

/// Regression: `InvalidQuery` stood for "another schema version", so any
/// error of that kind counted as damage and set the registry aside.
#[test]
fn a_query_error_is_reported_not_taken_for_damage() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    registry.insert(&entry("k", &["l"], 1), false).unwrap();
    // The schema version is ours, but the entries table lacks a column.
    let rename = |from: &str, to: &str| {
        registry
            .conn()
            .execute_batch(&format!("ALTER TABLE entries RENAME COLUMN {from} TO {to}"))
            .unwrap();
    };
    rename("parent", "mother");
    let err = registry.list().unwrap_err();
    assert!(matches!(err, RegistryError::Sqlite { .. }), "{err:?}");
    let err = (registry.err())(rusqlite::Error::InvalidQuery);
    assert!(matches!(err, RegistryError::Sqlite { .. }), "{err:?}");
    assert_eq!(set_aside(dir.path()), Vec::<String>::new());
    rename("mother", "parent");
    drop(registry);
    let again = Registry::open(dir.path()).unwrap();
    assert!(!again.rebuilt());
    assert!(again.lookup("k").unwrap().is_some());
}

/// Issue 15: a version 4 registry written before the bookkeeping existed
/// gets it on first open, its counts made from what it holds.
#[test]
fn a_version_4_registry_gets_the_bookkeeping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(REGISTRY_FILE);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(super::schema::SCHEMA_4).unwrap();
    conn.execute("INSERT INTO meta (name, value) VALUES ('schema', 4)", [])
        .unwrap();
    let a = entry("a", &["l-a"], 1);
    let b = child("b", &a, 2);
    for new in [&a, &b] {
        for (part, size) in &new.part_sizes {
            conn.execute(
                "INSERT INTO parts (backend, part, size) VALUES ('sandbox', ?1, ?2)",
                params![part, *size as i64],
            )
            .unwrap();
        }
        put_entry(&conn, new, "").unwrap();
    }
    drop(conn);
    let registry = Registry::open(dir.path()).unwrap();
    assert!(!registry.rebuilt());
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    assert_eq!(registry.totals().unwrap(), (2, 200));
    let doomed = registry.evict(bounds(1, u64::MAX)).unwrap();
    assert_eq!(doomed.entries, ["a"], "a is known to be b's ancestor");
    // A second process opening it finds it done.
    drop(Registry::open(dir.path()).unwrap());
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

/// `n` entries in chains of 20 (keys `{prefix}{i}`, used at time `i`),
/// written in one transaction: what is measured is what comes after.
fn fill(registry: &Registry, n: usize, prefix: &str) {
    let mut conn = registry.conn();
    let tx = conn.transaction().unwrap();
    let mut parent: Option<NewEntry> = None;
    for i in 0..n {
        let key = format!("{prefix}{i}");
        let new = match (i % 20, &parent) {
            (1.., Some(parent)) => child(&key, parent, i as u64),
            _ => entry(&key, &[&format!("l-{key}")], i as u64),
        };
        for (part, size) in &new.part_sizes {
            tx.execute(
                "INSERT OR IGNORE INTO parts (backend, part, size) VALUES ('sandbox', ?1, ?2)",
                params![part, *size as i64],
            )
            .unwrap();
        }
        put_entry(&tx, &new, "").unwrap();
        parent = Some(new);
    }
    tx.commit().unwrap();
    // The filling's pages go to the database now, not during what is
    // measured.
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
}

/// What a build of a 40-step chain asks of a full registry: look its keys
/// up (held), store the steps within the bounds (each evicts an entry),
/// let go. Returns the median time of `rounds` builds.
fn build_on_a_full_registry(n: usize, rounds: usize) -> std::time::Duration {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    fill(&registry, n, "old-");
    let bounds = bounds(n as u64, u64::MAX);
    let mut times: Vec<std::time::Duration> = (0..rounds)
        .map(|round| {
            let started = std::time::Instant::now();
            let wanted: Vec<(String, bool)> = (0..40).map(|i| (format!("r{round}-{i}"), true)).collect();
            registry.lookup_many(&wanted).unwrap();
            let mut previous = entry(&format!("r{round}-0"), &[&format!("l-r{round}-0")], 1 << 40);
            registry.store(&previous, true, Some(bounds)).unwrap();
            for i in 1..40 {
                let next = child(&format!("r{round}-{i}"), &previous, 1 << 40);
                assert!(registry.store(&next, true, Some(bounds)).unwrap().kept);
                previous = next;
            }
            registry.release().unwrap();
            started.elapsed()
        })
        .collect();
    assert_eq!(registry.totals().unwrap().0, n as u64);
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    times.sort();
    times[times.len() / 2]
}

/// Issue 15: no registry operation a build uses costs in proportion to
/// the entries the registry holds. They did: the eviction query sorted
/// every entry, the byte total summed every part, collecting looked at
/// every part and blob against an unindexed list of holds, so a build
/// on a registry of 10,000 entries took ten times as long as on one of
/// 1,000 (and a 1,000-step build's own holds made each store slower).
#[test]
fn a_build_on_10000_entries_costs_what_it_costs_on_1000() {
    let small = build_on_a_full_registry(1_000, 5);
    let large = build_on_a_full_registry(10_000, 5);
    assert!(large < small * 3, "1,000 entries: {small:?}; 10,000 entries: {large:?}");
}

/// Issue 15: looking for orphans lists every part the registry knows, so
/// it is due at most once per period, whichever process asks.
#[test]
fn orphans_are_due_once_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let other = Registry::open(dir.path()).unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert!(registry.orphans_due(hour).unwrap(), "never looked");
    assert!(!registry.orphans_due(hour).unwrap());
    assert!(!other.orphans_due(hour).unwrap(), "another process looked");
    assert!(other.orphans_due(std::time::Duration::ZERO).unwrap());
}
