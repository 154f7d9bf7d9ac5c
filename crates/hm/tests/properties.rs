//! Property tests of the loaders: random and mutated envelopes, manifests
//! and pipeline files never make `hm` panic; what it cannot use is an error
//! with a message (exit 2 through the binary). Configuration files have
//! their own in `src/config.rs`.
//!
//! `PROPTEST_CASES` sets how many cases each property tries (default 256;
//! the ones that spawn `hm` try an eighth of that).

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hm_exec::workspace::{EntryKind, Manifest, ManifestEntry};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// Envelopes as Harmont's SDKs write them (the conformance corpus) and one
/// of ours with every field we add.
fn seeds() -> Vec<Value> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/harmont/expected");
    let mut seeds: Vec<Value> = std::fs::read_dir(corpus)
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    seeds.sort_by_key(|v| v.to_string());
    let steps = [
        util::step("build", "make")
            .cache(json!({"policy": "compose", "sub_policies": [
                {"policy": "on_change", "paths": ["src/**"]},
                {"policy": "ttl", "duration_seconds": 60, "env_keys": ["CC"]}]}))
            .timeout(30),
        util::step("test", "make test").continue_on_failure().env("A", "b"),
        util::step("lint", "make lint"),
    ];
    let mut ours = util::envelope(
        "ours",
        &steps,
        &[("build", "test", "builds_in"), ("build", "lint", "depends_on")],
        Some(600),
    );
    ours["pipelines"][0]["definition"]["network"] = json!("none");
    seeds.push(ours);
    seeds
}

/// Any JSON value, a few levels deep, with the awkward scalars loaders
/// meet: huge and negative numbers, NUL bytes, `=` and non-ASCII text.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(String::new()),
            Just("\0".to_owned()),
            Just("A=B".to_owned()),
            Just("builds_in".to_owned()),
            Just("depends_on".to_owned()),
            Just("forever".to_owned()),
            Just("none".to_owned()),
            Just("0".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One change somewhere in a JSON tree: a value replaced, a key removed or
/// added, an array entry duplicated or dropped.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Insert(String, Value),
    Duplicate,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let key = prop_oneof![
        Just("network".to_owned()),
        Just("timeout_seconds".to_owned()),
        Just("cache".to_owned()),
        Just("env".to_owned()),
        Just("continue_on_failure".to_owned()),
        Just("node_holes".to_owned()),
        "[a-z_]{1,12}",
    ];
    prop_oneof![
        3 => any_json().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        2 => (key, any_json()).prop_map(|(k, v)| Mutation::Insert(k, v)),
        1 => Just(Mutation::Duplicate),
    ]
}

/// Every place in `value`, as paths of object keys and array indices.
fn places(value: &Value, here: &mut Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(PathPart::Key(k.clone()));
                places(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(PathPart::Index(i));
                places(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

/// Applies `mutation` at the place `pick` chooses (an index into every
/// place of the tree, wrapped).
fn mutate(mut value: Value, pick: usize, mutation: &Mutation) -> Value {
    let mut all = Vec::new();
    places(&value, &mut Vec::new(), &mut all);
    let path = &all[pick % all.len()];
    let Some((last, parent_path)) = path.split_last() else {
        return match mutation {
            Mutation::Replace(v) => v.clone(),
            _ => value,
        };
    };
    let mut parent = &mut value;
    for part in parent_path {
        parent = match part {
            PathPart::Key(k) => &mut parent[k.as_str()],
            PathPart::Index(i) => &mut parent[*i],
        };
    }
    match (parent, last, mutation) {
        (Value::Object(map), PathPart::Key(k), Mutation::Replace(v)) => {
            map.insert(k.clone(), v.clone());
        }
        (Value::Object(map), PathPart::Key(k), Mutation::Remove) => {
            map.remove(k);
        }
        (Value::Object(map), PathPart::Key(_), Mutation::Insert(k, v)) => {
            map.insert(k.clone(), v.clone());
        }
        (Value::Array(items), PathPart::Index(i), Mutation::Replace(v)) => items[*i] = v.clone(),
        (Value::Array(items), PathPart::Index(i), Mutation::Remove) => {
            items.remove(*i);
        }
        (Value::Array(items), PathPart::Index(i), Mutation::Duplicate) => {
            let copy = items[*i].clone();
            items.push(copy);
        }
        (Value::Array(items), PathPart::Index(i), Mutation::Insert(_, v)) => items.insert(*i, v.clone()),
        _ => {}
    }
    value
}

/// A seed envelope changed in one to four places.
fn mutated_envelope() -> impl Strategy<Value = Value> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec((any::<usize>(), mutation()), 1..5),
    )
        .prop_map(move |(seed, changes)| {
            changes
                .iter()
                .fold(seeds[seed].clone(), |value, (pick, m)| mutate(value, *pick, m))
        })
}

/// What the library makes of an envelope: deserialisation, validation and
/// planning of each pipeline. Every error has a message.
fn load_in_process(value: &Value) -> Result<(), String> {
    let envelope: hm_ir::Envelope = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    for pipeline in &envelope.pipelines {
        hm_ir::validate_pipeline(pipeline).map_err(|e| e.to_string())?;
        hm_ir::Plan::new(pipeline).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn cases(divisor: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256u32);
    Config {
        cases: (cases / divisor).max(1),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Random JSON read as an envelope: an error with a message, or an
/// envelope that validates and plans (or fails to, with a message).
#[test]
fn random_json_never_panics_the_ir_loader() {
    let mut runner = TestRunner::new(cases(1));
    runner
        .run(&any_json(), |value| {
            if let Err(message) = load_in_process(&value) {
                prop_assert!(!message.trim().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

/// Envelopes of Harmont's corpus and ours, mutated: loading, validating
/// and planning never panics, and what fails says why.
#[test]
fn mutated_envelopes_never_panic_the_ir_loader() {
    let mut runner = TestRunner::new(cases(1));
    runner
        .run(&mutated_envelope(), |value| {
            if let Err(message) = load_in_process(&value) {
                prop_assert!(!message.trim().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

/// A project whose only pipeline file holds `bytes`.
fn project_with(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".hm")).unwrap();
    std::fs::write(dir.path().join(".hm/pipeline.json"), bytes).unwrap();
    dir
}

/// The text of a mutated envelope, then mangled as bytes: cut short, a
/// byte changed, bytes inserted.
fn mangled_file() -> impl Strategy<Value = Vec<u8>> {
    (
        mutated_envelope(),
        any::<bool>(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 0..4),
    )
        .prop_map(|(value, pretty, edits)| {
            let mut bytes = if pretty {
                serde_json::to_vec_pretty(&value).unwrap()
            } else {
                serde_json::to_vec(&value).unwrap()
            };
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 => bytes.truncate(at),
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        })
}

/// `.hm/pipeline.json` through `hm_dsl` (finding the project, reading,
/// merging, validating): loaded, or an error with a message.
#[test]
fn mangled_pipeline_files_never_panic_the_dsl_loader() {
    let mut runner = TestRunner::new(cases(4));
    runner
        .run(&mangled_file(), |bytes| {
            let dir = project_with(&bytes);
            let project = hm_dsl::Project::find(dir.path()).unwrap();
            let options = hm_dsl::EvalOptions::new("python3", None);
            if let Err(err) = project.load(&options) {
                prop_assert!(!err.to_string().trim().is_empty());
            }
            Ok(())
        })
        .unwrap();
}

/// What `hm pipelines` and `hm run` make of a pipeline file: the library
/// and the binary agree, a file that does not load is exit 2 with one
/// `error:` and never a panic (a loadable one is not run: its steps are
/// whatever the mutation left).
#[test]
fn the_binary_exits_2_with_a_message_for_files_that_do_not_load() {
    let mut runner = TestRunner::new(cases(8));
    let cache = tempfile::tempdir().unwrap();
    runner
        .run(&mangled_file(), |bytes| {
            let dir = project_with(&bytes);
            let project = hm_dsl::Project::find(dir.path()).unwrap();
            let loads = project
                .load(&hm_dsl::EvalOptions::new("python3", None))
                .is_ok_and(|loaded| loaded.envelope.pipelines.iter().all(|p| hm_ir::Plan::new(p).is_ok()));
            let hm = |args: &[&str]| {
                Command::new(util::hm_bin())
                    .args(args)
                    .current_dir(dir.path())
                    .env("HM_CACHE_DIR", cache.path())
                    .env_remove("HM_NETWORK")
                    .output()
                    .unwrap()
            };
            let out = hm(&["pipelines"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            prop_assert!(!stderr.contains("panicked"), "{}", stderr);
            if !loads {
                // `hm pipelines` validates but does not plan: a pipeline
                // that only planning refuses is printed.
                prop_assert!(matches!(out.status.code(), Some(0 | 2)), "{:?}: {}", out.status, stderr);
                let out = hm(&["run", "--format", "json"]);
                let stderr = String::from_utf8_lossy(&out.stderr);
                prop_assert_eq!(out.status.code(), Some(2), "{}", stderr);
                prop_assert!(stderr.starts_with("error: "), "{}", stderr);
                prop_assert!(out.stdout.is_empty());
            } else {
                prop_assert_eq!(out.status.code(), Some(0), "{}", stderr);
            }
            Ok(())
        })
        .unwrap();
}

/// A manifest of random entries.
fn any_manifest() -> impl Strategy<Value = Manifest> {
    let entry = (0..3u8, any::<u32>(), any::<[u8; 32]>()).prop_map(|(kind, mode, hash)| ManifestEntry {
        kind: match kind {
            0 => EntryKind::Dir,
            1 => EntryKind::File,
            _ => EntryKind::Symlink,
        },
        mode,
        hash,
    });
    let path = prop::collection::vec(any::<u8>().prop_filter("no NUL or /", |b| *b != 0 && *b != b'/'), 1..12)
        .prop_map(|bytes| PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes)));
    prop::collection::btree_map(path, entry, 0..8)
        .prop_map(|entries: BTreeMap<PathBuf, ManifestEntry>| Manifest { entries })
}

/// Stored manifests (the workspace manifest reader): what was written reads
/// back the same, and damaged bytes read as damaged (`None`), never a
/// panic.
#[test]
fn stored_manifests_read_back_or_read_as_damaged() {
    let mut runner = TestRunner::new(cases(1));
    let damage = prop::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 0..4);
    runner
        .run(&(any_manifest(), damage), |(manifest, edits)| {
            let mut bytes = manifest.to_bytes();
            prop_assert_eq!(Manifest::from_bytes(&bytes), Some(manifest));
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                match kind {
                    0 => bytes.truncate(at),
                    1 if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.insert(at, byte),
                }
            }
            let _ = Manifest::from_bytes(&bytes);
            Ok(())
        })
        .unwrap();
    runner
        .run(&any_json(), |value| {
            let _ = Manifest::from_bytes(&serde_json::to_vec(&value).unwrap());
            Ok(())
        })
        .unwrap();
}
