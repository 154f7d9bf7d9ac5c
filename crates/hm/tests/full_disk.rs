//! A full disk under the cache (issue 11, item 6), on both backends
//! (`sandbox::NAME`, `docker::NAME`): the cache directory is a small tmpfs
//! of the test's own (root only, as CI runs), filled by a step or by a
//! file.

mod util;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use util::disk::SmallDisk;
use util::{envelope, step, Backend, Fixture, Run, Step};

const MIB: u64 = 1 << 20;

fn write(fx: &Fixture, steps: &[Step], edges: &[(&str, &str, &str)]) {
    fx.write(".hm/pipeline.json", &envelope("ci", steps, edges, None).to_string());
}

/// `hm ARGS` with its cache on `cache`.
fn hm(fx: &Fixture, cache: &Path, args: &[&str]) -> std::process::Output {
    fx.command(args).env("HM_CACHE_DIR", cache).output().unwrap()
}

fn run(fx: &Fixture, cache: &Path) -> Run {
    Run::from(hm(fx, cache, &["run", "--format", "json"]))
}

fn entries(fx: &Fixture, cache: &Path) -> Vec<Value> {
    util::json_list(&hm(fx, cache, &["cache", "ls", "--format", "json"]))
}

fn layers(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("layers"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Fills the disk, after emptying the registry's write-ahead log (as a
/// checkpoint leaves it): the next write to the registry needs room, which
/// a log with slack in its last page would not. The log and its index are
/// there, as `hm` leaves them.
fn fill(fx: &Fixture, disk: &SmallDisk, cache: &Path) -> PathBuf {
    let db = cache.join("registry.db");
    let script = "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(hm(fx, cache, &["cache", "ls"]).status.success());
    disk.fill()
}

/// Nothing of `hm` is left on `cache`, its registry is sound, and every
/// stored part belongs to an entry.
fn assert_clean(fx: &Fixture, cache: &Path) {
    util::assert_nothing_left(cache);
    let registry = hm_vm::Registry::open(cache).unwrap();
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
    if fx.backend == Backend::Sandbox {
        let known = registry.known_parts("sandbox").unwrap();
        for layer in layers(cache) {
            let name = layer.file_name().unwrap().to_string_lossy().into_owned();
            assert!(known.contains(&name), "a layer no entry knows: {layer:?}");
        }
    }
}

/// Removes the docker images of a cache that is not the fixture's own.
struct DockerImagesOf(PathBuf, Backend);

impl Drop for DockerImagesOf {
    fn drop(&mut self) {
        if self.1 == Backend::Docker {
            util::remove_docker_images(&self.0);
        }
    }
}

/// A full cache disk fails the run (exit 1) with one message naming the
/// cache directory, keeps nothing half written, and `hm cache clean` and
/// `prune` still work; once there is room again, the run passes. On the
/// sandbox the step fills the disk itself (its files live there).
fn a_full_cache_disk_fails_the_run_with_a_message_naming_it(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 24 * MIB) else {
        return;
    };
    let cache = disk.cache();
    let _images = DockerImagesOf(cache.clone(), b);
    fx.write("src.txt", "source\n");
    // The command passes whether or not its writes fit.
    let steps = [
        step("big", "head -c 40M /dev/zero > /opt/big; echo wrote").cache(json!({"policy": "forever"})),
        step("after", "echo after"),
    ];
    write(&fx, &steps, &[("big", "after", "builds_in")]);
    // The registry exists (a cache in use) when the disk fills up.
    assert!(entries(&fx, &cache).is_empty());
    let filler = (b == Backend::Docker).then(|| fill(&fx, &disk, &cache));
    let full = run(&fx, &cache);
    assert_eq!(full.code, 1, "{}", full.dump());
    assert_eq!(full.status("big"), "failed", "{}", full.dump());
    assert_eq!(full.status("after"), "skipped");
    let message = full.end("big")["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains(&format!("the cache directory `{}` is full", cache.display())),
        "{}",
        full.dump()
    );
    assert!(!full.stderr.contains("error"), "no second message: {}", full.stderr);
    assert!(entries(&fx, &cache).is_empty());
    assert!(
        layers(&cache).is_empty(),
        "a half-written layer is deleted at once: {:?}",
        layers(&cache)
    );
    assert_clean(&fx, &cache);
    // The human view says it once, with the step.
    let human = hm(&fx, &cache, &["run"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&human.stdout),
        String::from_utf8_lossy(&human.stderr)
    );
    assert_eq!(human.status.code(), Some(1), "{text}");
    assert!(text.contains("is full"), "{text}");
    for command in [&["cache", "clean", "--yes"][..], &["cache", "prune"]] {
        let out = hm(&fx, &cache, command);
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(filler) = filler {
        std::fs::remove_file(filler).unwrap();
    } else {
        write(
            &fx,
            &[
                step("big", "head -c 4M /dev/zero > /opt/big; echo wrote").cache(json!({"policy": "forever"})),
                step("after", "echo after"),
            ],
            &[("big", "after", "builds_in")],
        );
    }
    let roomy = run(&fx, &cache);
    assert_eq!(roomy.code, 0, "{}", roomy.dump());
    assert_eq!(roomy.stdout("after"), ["after"]);
    assert_eq!(entries(&fx, &cache).len(), 1);
    assert_clean(&fx, &cache);
}

/// `hm cache prune` and `clean` free a cache whose layers filled its disk
/// (where the registry itself cannot be written until something is
/// freed). The sandbox only: the docker backend's layers are the daemon's.
#[test]
fn prune_and_clean_work_on_a_full_disk() {
    let b = Backend::Sandbox;
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 24 * MIB) else {
        return;
    };
    let cache = disk.cache();
    let steps: Vec<Step> = (0..3)
        .map(|i| {
            step(&format!("s{i}"), &format!("head -c 4M /dev/urandom > /opt/s{i}")).cache(json!({"policy": "forever"}))
        })
        .collect();
    write(&fx, &steps, &[]);
    let stored = run(&fx, &cache);
    assert_eq!(stored.code, 0, "{}", stored.dump());
    assert_eq!(entries(&fx, &cache).len(), 3);
    let filler = fill(&fx, &disk, &cache);
    assert!(disk.free() < MIB);
    let pruned = hm(&fx, &cache, &["cache", "prune", "--max-entries", "1"]);
    assert!(pruned.status.success(), "{}", String::from_utf8_lossy(&pruned.stderr));
    assert_eq!(entries(&fx, &cache).len(), 1);
    assert!(disk.free() > 7 * MIB, "two layers freed: {} bytes free", disk.free());
    std::fs::remove_file(&filler).unwrap();
    fill(&fx, &disk, &cache);
    let cleaned = hm(&fx, &cache, &["cache", "clean", "--yes"]);
    assert!(cleaned.status.success(), "{}", String::from_utf8_lossy(&cleaned.stderr));
    assert!(entries(&fx, &cache).is_empty());
    assert!(disk.free() > 3 * MIB);
    assert_clean(&fx, &cache);
}

/// With the disk full, a build of hits still hits: the registry is read
/// without being written (no holds, no last-used times).
fn hits_keep_working_when_the_registry_cannot_be_written(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 16 * MIB) else {
        return;
    };
    let cache = disk.cache();
    let _images = DockerImagesOf(cache.clone(), b);
    let steps = [
        step("a", "echo a > /opt/a").cache(json!({"policy": "forever"})),
        step("b", "cat /opt/a").cache(json!({"policy": "forever"})),
    ];
    write(&fx, &steps, &[("a", "b", "builds_in")]);
    let first = run(&fx, &cache);
    assert_eq!(first.code, 0, "{}", first.dump());
    // A later second: marking the entries used is a write.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fill(&fx, &disk, &cache);
    let hits = run(&fx, &cache);
    assert_eq!(hits.code, 0, "{}", hits.dump());
    assert_eq!(hits.status("a"), "cache_hit", "{}", hits.dump());
    assert_eq!(hits.status("b"), "cache_hit", "{}", hits.dump());
    util::assert_nothing_left(&cache);
}

/// Rootless: an unprivileged user's run on a full cache disk fails the
/// same way (exit 1, one message naming the directory, nothing kept).
#[test]
fn a_full_cache_disk_fails_an_unprivileged_run_the_same_way() {
    const NOBODY: u32 = 65534;
    if !Backend::Sandbox.available() || !util::root_available("acting as nobody") {
        // Unprivileged already: the sandbox tests above are rootless.
        return;
    }
    let fx = Fixture::new();
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 24 * MIB) else {
        return;
    };
    let cache = disk.cache();
    let steps = [step("big", "head -c 40M /dev/zero > /root/big; echo wrote").cache(json!({"policy": "forever"}))];
    write(&fx, &steps, &[]);
    std::fs::create_dir_all(&cache).unwrap();
    for path in [fx.dir.path(), &fx.dir.path().join("disk")] {
        let status = std::process::Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            util::hm_bin(),
        ])
        .args(["run", "--format", "json"])
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", &cache)
        .env("HOME", fx.dir.path())
        .env_remove("HM_BACKEND")
        .env_remove("HM_NETWORK")
        .output()
        .unwrap();
    let full = Run::from(out);
    assert_eq!(full.code, 1, "{}", full.dump());
    let message = full.end("big")["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("is full"), "{}", full.dump());
    assert!(layers(&cache).is_empty(), "{:?}", layers(&cache));
    util::assert_nothing_left(&cache);
}

contract!(
    a_full_cache_disk_fails_the_run_with_a_message_naming_it,
    hits_keep_working_when_the_registry_cannot_be_written,
);
