//! `hm cache save DIR` and `hm cache restore DIR` (issue 17): a project's
//! entries through a directory, as a CI cache action keeps it between
//! builds on fresh machines (here: fresh cache directories, the restoring
//! one an unprivileged user's, on the same checkout path as CI has).
//!
//! - saved on one cache, restored on a fresh one: `hm run` executes
//!   nothing, and both print the same key;
//! - one byte of a blob changed: that entry is refused (and re-run), the
//!   others are used, and nothing of the refused one is left;
//! - a directory that is not a save is refused whole (exit 2); a missing
//!   one restores nothing;
//! - a save holds what the project's pipelines would use, or every entry
//!   with `--all`, and writes only what the directory lacks.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use util::{envelope, sandbox_available, step, Backend, Fixture, Run};

/// Four cached steps: `deps` → `build` → `test`, and `lint` on its own.
fn pipeline() -> Value {
    envelope(
        "ci",
        &[
            step("deps", "cat deps.txt > /opt/deps").cache(json!({"policy": "on_change", "paths": ["deps.txt"]})),
            step("build", "cat /opt/deps src.txt > out.txt")
                .cache(json!({"policy": "on_change", "paths": ["src.txt"]})),
            step("test", "cat out.txt > tested.txt").cache(json!({"policy": "forever"})),
            step("lint", "cat lint.txt > linted.txt").cache(json!({"policy": "on_change", "paths": ["lint.txt"]})),
        ],
        &[("deps", "build", "builds_in"), ("build", "test", "builds_in")],
        None,
    )
}

fn project(backend: Backend) -> Fixture {
    let fx = Fixture::with_on(backend, &pipeline());
    fx.write("deps.txt", "serde 1.0\n");
    fx.write("src.txt", "fn main() {}\n");
    fx.write("lint.txt", "clippy\n");
    fx
}

/// The directory saves go to, beside the fixture's project.
fn saved(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("ci-cache")
}

/// Gives the fixture a fresh, empty cache directory (a fresh CI machine
/// on the same checkout path); the old one is kept as `cache-NAME`.
fn fresh_cache(fx: &Fixture, name: &str) {
    fs::rename(fx.cache(), fx.dir.path().join(format!("cache-{name}"))).unwrap();
    fs::create_dir(fx.cache()).unwrap();
    fs::set_permissions(fx.cache(), fs::Permissions::from_mode(0o700)).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The key a save or restore printed: 16 hex digits alone on stdout.
fn key_of(out: &Output) -> String {
    let key = text(&out.stdout).trim().to_owned();
    assert!(
        key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "no key on stdout: {out:?}"
    );
    key
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
}

/// The saved blob holding the layer of `step`'s own part.
fn layer_of(dir: &Path, step: &str) -> PathBuf {
    let blob = |digest: &str| dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let read = |digest: &str| -> Value { serde_json::from_slice(&fs::read(blob(digest)).unwrap()).unwrap() };
    let index = serde_json::from_slice::<Value>(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = read(entry["digest"].as_str().unwrap());
        let config = read(manifest["config"]["digest"].as_str().unwrap());
        if config["step"] == step {
            let own = config["parts"][0].as_str().unwrap();
            let layer = manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["annotations"]["dev.hm.part"] == own)
                .unwrap();
            return blob(layer["digest"].as_str().unwrap());
        }
    }
    panic!("no saved entry of `{step}` in {index}");
}

/// Changes one byte in the middle of `file`.
fn damage(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(file, bytes).unwrap();
}

/// Runs the project (every step executes), then saves; the directory and
/// the key the save printed.
fn run_and_save(fx: &Fixture) -> (PathBuf, String) {
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.executed(), ["build", "deps", "lint", "test"]);
    let dir = saved(fx);
    let out = fx.hm(&["cache", "save", dir.to_str().unwrap()]);
    assert_ok(&out, "save");
    assert!(text(&out.stderr).contains("saved 4 entries"), "{}", text(&out.stderr));
    let key = key_of(&out);
    (dir, key)
}

#[test]
fn a_save_restored_on_a_fresh_cache_runs_nothing() {
    if !sandbox_available() {
        return;
    }
    let fx = project(Backend::Sandbox);
    let (dir, key) = run_and_save(&fx);

    // A second save writes nothing new: every blob is there, and right.
    let again = fx.hm(&["cache", "save", dir.to_str().unwrap()]);
    assert_ok(&again, "save again");
    assert_eq!(key_of(&again), key);
    assert!(text(&again.stderr).contains("0 B written"), "{}", text(&again.stderr));

    // A fresh machine, as an unprivileged user: restore, then run.
    fresh_cache(&fx, "a");
    let nobody = |args: &[&str]| {
        let mut command = util::hm_as_nobody(&fx);
        command
            .args(args)
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", fx.cache())
            .env("HM_BACKEND", "sandbox")
            .env("HOME", fx.dir.path())
            .stdin(std::process::Stdio::null());
        command.output().unwrap()
    };
    let restore = || nobody(&["cache", "restore", dir.to_str().unwrap()]);
    let out = restore();
    assert_ok(&out, "restore");
    assert_eq!(key_of(&out), key, "restore prints the key the save printed");
    assert!(
        text(&out.stderr).contains("restored 4 entries"),
        "{}",
        text(&out.stderr)
    );

    let run = Run::from(nobody(&["run", "--format", "json"]));
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(run.executed().is_empty(), "{}", run.dump());

    // Restoring again takes nothing in.
    let out = restore();
    assert_ok(&out, "restore again");
    assert!(
        text(&out.stderr).contains("restored 0 entries") && text(&out.stderr).contains("had 4 already"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_damaged_blob_refuses_its_entry_and_the_others_are_used() {
    if !sandbox_available() {
        return;
    }
    let fx = project(Backend::Sandbox);
    let (dir, _) = run_and_save(&fx);

    damage(&layer_of(&dir, "lint"));
    fresh_cache(&fx, "a");
    let out = fx.hm(&["cache", "restore", dir.to_str().unwrap()]);
    assert_ok(&out, "restore");
    let said = text(&out.stderr);
    assert!(
        said.contains("warning: refused entry") && said.contains("digest"),
        "{said}"
    );
    assert!(said.contains("restored 3 entries"), "{said}");
    // Nothing of the refused entry is left: every stored part is an entry's.
    fx.assert_parts_stored("after a refused entry");
    assert!(fx.cache_entries().iter().all(|e| e["step"] != "lint"));

    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.executed(), ["lint"]);

    // One byte of the middle of a chain: it and what builds on it run.
    damage(&layer_of(&dir, "build"));
    fresh_cache(&fx, "b");
    let out = fx.hm(&["cache", "restore", dir.to_str().unwrap()]);
    assert_ok(&out, "restore");
    fx.assert_parts_stored("after refused entries");
    let run = fx.run_json(&[]);
    assert_eq!(run.executed(), ["build", "lint", "test"], "{}", run.dump());
}

#[test]
fn a_directory_that_is_not_a_save_is_refused_and_a_missing_one_restores_nothing() {
    if !sandbox_available() {
        return;
    }
    let fx = project(Backend::Sandbox);
    let foreign = fx.dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("index.json"), "{}").unwrap();
    let out = fx.hm(&["cache", "restore", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = text(&out.stderr);
    assert!(
        said.contains(foreign.to_str().unwrap()) && said.contains("hm cache save"),
        "{said}"
    );

    fs::write(foreign.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let out = fx.hm(&["cache", "restore", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("index.json"), "{}", text(&out.stderr));

    // A save inside the project (GitLab keeps only those) is not source:
    // keys and hits stay as they were.
    assert_eq!(fx.run_json(&[]).code, 0);
    let inside = fx.project().join(".hm-ci-cache");
    let out = fx.hm(&["cache", "save", inside.to_str().unwrap()]);
    assert_ok(&out, "save inside the project");
    assert_eq!(
        key_of(&fx.hm(&["cache", "save", inside.to_str().unwrap()])),
        key_of(&out)
    );
    assert!(fx.run_json(&[]).executed().is_empty());
    fs::remove_dir_all(&inside).unwrap();

    // A CI cache that missed: nothing to restore, and the key to save under.
    let missing = fx.dir.path().join("missing");
    let out = fx.hm(&["cache", "restore", missing.to_str().unwrap()]);
    assert_ok(&out, "restore of a missing directory");
    assert!(
        text(&out.stderr).contains("nothing to restore"),
        "{}",
        text(&out.stderr)
    );
    let key = key_of(&out);
    fs::create_dir(&missing).unwrap();
    let out = fx.hm(&["cache", "restore", missing.to_str().unwrap()]);
    assert_ok(&out, "restore of an empty directory");
    assert!(
        text(&out.stderr).contains("nothing to restore"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(key_of(&fx.hm(&["cache", "save", missing.to_str().unwrap()])), key);

    // A pipeline without cached steps: one key for nothing to look up, the
    // same from both.
    let plain = Fixture::with(&envelope("plain", &[step("say", "echo hi")], &[], None));
    let nothing = plain.dir.path().join("saved");
    let restored = key_of(&plain.hm(&["cache", "restore", nothing.to_str().unwrap()]));
    assert_eq!(plain.run_json(&[]).code, 0);
    let out = plain.hm(&["cache", "save", nothing.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("saved 0 entries"), "{}", text(&out.stderr));
    assert_eq!(key_of(&out), restored);
}

#[test]
fn a_save_holds_what_the_pipelines_would_use_or_everything_with_all() {
    if !sandbox_available() {
        return;
    }
    let fx = project(Backend::Sandbox);
    assert_eq!(fx.run_json(&[]).code, 0);
    fx.write("lint.txt", "clippy -D warnings\n");
    assert_eq!(fx.run_json(&[]).executed(), ["lint"]);
    assert_eq!(fx.cache_entries().len(), 5);

    let dir = saved(&fx);
    let out = fx.hm(&["cache", "save", dir.to_str().unwrap()]);
    assert_ok(&out, "save");
    assert!(text(&out.stderr).contains("saved 4 entries"), "{}", text(&out.stderr));
    let key = key_of(&out);

    // The key follows what a run would look up.
    fx.write("lint.txt", "clippy\n");
    let out = fx.hm(&["cache", "save", "--all", dir.to_str().unwrap()]);
    assert_ok(&out, "save --all");
    assert!(text(&out.stderr).contains("saved 5 entries"), "{}", text(&out.stderr));
    assert_ne!(key_of(&out), key);

    // What the directory held and no entry names any more is gone.
    let out = fx.hm(&["cache", "save", dir.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("saved 4 entries"), "{}", text(&out.stderr));
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4);
    let mut named = std::collections::BTreeSet::new();
    for entry in manifests {
        let digest = entry["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        let manifest: Value =
            serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(&digest)).unwrap()).unwrap();
        named.insert(digest);
        for blob in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap()) {
            named.insert(
                blob["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
                    .to_owned(),
            );
        }
    }
    let files: std::collections::BTreeSet<String> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, named, "the directory holds exactly the blobs its entries name");
}

#[test]
fn a_save_restores_on_the_docker_backend() {
    if !Backend::Docker.available() {
        return;
    }
    let fx = project(Backend::Docker);
    let (dir, key) = run_and_save(&fx);

    // A fresh machine: no entry, and none of their images in the daemon.
    assert_ok(&fx.hm(&["cache", "clean", "--yes"]), "clean");
    assert!(fx.cache_images().is_empty(), "{:?}", fx.cache_images());
    let out = fx.hm(&["cache", "restore", dir.to_str().unwrap()]);
    assert_ok(&out, "restore");
    assert_eq!(key_of(&out), key);
    assert!(
        text(&out.stderr).contains("restored 4 entries"),
        "{}",
        text(&out.stderr)
    );
    fx.assert_parts_stored("after a docker restore");

    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(run.executed().is_empty(), "{}", run.dump());

    // One byte of a layer: that entry is refused, and its image is not left.
    damage(&layer_of(&dir, "lint"));
    assert_ok(&fx.hm(&["cache", "clean", "--yes"]), "clean");
    let out = fx.hm(&["cache", "restore", dir.to_str().unwrap()]);
    assert_ok(&out, "restore");
    assert!(
        text(&out.stderr).contains("warning: refused entry"),
        "{}",
        text(&out.stderr)
    );
    fx.assert_parts_stored("after a refused docker entry");
    assert_eq!(fx.run_json(&[]).executed(), ["lint"]);
}
