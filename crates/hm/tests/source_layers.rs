//! Source layers (issue 15) through the real binary: root steps boot on one
//! read-only copy of the source per source state (`<cache>/sources/`),
//! shared by every chain and run that sees it, which no step can change; a
//! small edit is synced on top of the latest copy, a large one makes a new
//! copy; cached roots keep the copy they were built on; `hm cache clean`
//! removes the copies nothing uses.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use util::{envelope, sandbox_available, step, Fixture, Run, Step};

fn fixture(steps: &[Step], edges: &[(&str, &str, &str)]) -> Fixture {
    Fixture::with(&envelope("ci", steps, edges, None))
}

/// `hm run`, which collects the copies no entry needs at its end.
fn run(fx: &Fixture) -> Run {
    let run = Run::from(
        fx.command(&["run", "--format", "json"])
            .env("HM_CACHE_ORPHAN_GRACE", "0")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.dump());
    run
}

/// The copies of the source in the cache.
fn layers(fx: &Fixture) -> BTreeSet<String> {
    fs::read_dir(fx.cache().join("sources"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// The only copy of the source; its `/workspace`.
fn only_layer(fx: &Fixture) -> (String, PathBuf) {
    let layers = layers(fx);
    assert_eq!(layers.len(), 1, "{layers:?}");
    let name = layers.into_iter().next().unwrap();
    let workspace = fx.cache().join("sources").join(&name).join("tree/workspace");
    (name, workspace)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn roots_share_one_copy_of_the_source_which_no_step_changes() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture(
        &[
            step("r1", "cat a.txt; echo changed > a.txt; rm src/b.txt; echo out > built"),
            step("r2", "cat a.txt; ls src"),
            step("c", "cat a.txt; ls src | wc -l; cat built"),
        ],
        &[("r1", "c", "builds_in")],
    );
    fx.write("a.txt", "one\n");
    fx.write("src/b.txt", "b\n");
    for round in 0..2 {
        let run = run(&fx);
        assert_eq!(run.logs("r1"), ["one"], "round {round}");
        assert_eq!(run.logs("r2"), ["one", "b.txt"], "round {round}");
        // A child builds on what its parent did to the workspace.
        assert_eq!(run.logs("c"), ["changed", "0", "out"], "round {round}");
        let (_, workspace) = only_layer(&fx);
        assert_eq!(read(&workspace.join("a.txt")), "one\n");
        assert_eq!(read(&workspace.join("src/b.txt")), "b\n");
        assert!(!workspace.join("built").exists());
    }
    assert_eq!(
        read(&fx.project().join("a.txt")),
        "one\n",
        "the project itself is untouched"
    );
}

#[test]
fn a_small_edit_is_synced_on_the_copy_and_a_large_one_makes_a_new_copy() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture(
        &[step("s", "cat f00; ls | wc -l; cat f01 2>/dev/null || echo gone")],
        &[],
    );
    for i in 0..40 {
        fx.write(&format!("f{i:02}"), &format!("{i}\n"));
    }
    let first = run(&fx);
    assert_eq!(first.logs("s"), ["0", "40", "1"]);
    let (copy, _) = only_layer(&fx);

    fx.write("f00", "edited\n");
    fs::remove_file(fx.project().join("f01")).unwrap();
    assert_eq!(run(&fx).logs("s"), ["edited", "39", "gone"]);
    assert_eq!(
        only_layer(&fx).0,
        copy,
        "one file edited and one deleted made a new copy"
    );

    for i in 2..22 {
        fx.write(&format!("f{i:02}"), "rewritten\n");
    }
    fx.write("f01", "back\n");
    assert_eq!(run(&fx).logs("s"), ["edited", "40", "back"]);
    let now = layers(&fx);
    assert_eq!(now.len(), 2, "half the tree changed and no new copy: {now:?}");
    assert!(now.contains(&copy), "the last copy but one stays");

    let clean = fx.hm(&["cache", "clean", "--yes"]);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert_eq!(layers(&fx), BTreeSet::new());
    assert_eq!(run(&fx).logs("s"), ["edited", "40", "back"]);
}

#[test]
fn a_cached_root_keeps_the_copy_it_was_built_on() {
    if !sandbox_available() {
        return;
    }
    let on_a = json!({"policy": "on_change", "paths": ["a.txt"]});
    let fx = fixture(
        &[
            step("r", "cat a.txt; echo built > out").cache(on_a.clone()),
            step("c", "cat a.txt out").cache(on_a),
        ],
        &[("r", "c", "builds_in")],
    );
    fx.write("a.txt", "one\n");
    assert_eq!(run(&fx).logs("c"), ["one", "built"]);
    let (copy, _) = only_layer(&fx);
    let entries = fx.cache_entries();
    let root = entries.iter().find(|e| e["step"] == "r").unwrap();
    let parts: Vec<&str> = root["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(parts[1], format!("src-{copy}"));
    // The step's own layer holds what it wrote, not the source.
    let own = fx.cache().join("layers").join(parts[0]).join("workspace");
    assert!(own.join("out").exists());
    assert!(!own.join("a.txt").exists());

    // Three other sources, each far from the last: new copies, each kept
    // (beyond a project's two latest) because an entry needs it.
    for text in ["two\n", "three\n", "four\n"] {
        fx.write("a.txt", text);
        run(&fx);
    }
    let now = layers(&fx);
    assert_eq!(now.len(), 4, "{now:?}");
    assert!(now.contains(&copy));
    fx.assert_parts_stored("after four sources");

    fx.write("a.txt", "one\n");
    let again = run(&fx);
    let hits = again.events.iter().filter(|e| e["kind"] == "step_cache_hit").count();
    assert_eq!(hits, 2, "{}", again.dump());
}
