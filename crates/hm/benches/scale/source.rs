//! Source trees of 100 to 50,000 files (issue 15): the 2-step pipeline
//! (`ls src | wc -l`, then `true` built in it, no cache policy) on git-less
//! trees of small files (200 B, folders of 100), with nothing changed, one
//! file changed and 1% of the files changed before each run. Beside each
//! whole `hm run`, the scan alone: a fresh `Source` (as each run makes one)
//! scanning the tree in this process, with a source index of its own (the
//! index file's write, which goes on in the background, not included), and
//! the size of the run's index file. Then the scans alone, with no run
//! between them: without an index (as before it), and with one.
//!
//! Runs on the `host` image, on an imported Debian image when
//! `HM_TEST_DEBIAN_ROOTFS` names one, and on the docker backend with the
//! image `HM_TEST_DOCKER_IMAGE` when a daemon answers. `HM_BENCH_FILES`
//! (e.g. `100,10000`) sets the tree sizes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hm_exec::workspace::Source;

use crate::common::{docker_up, env_usize, hm_run, median, ms, time};

/// Files per folder.
const PER_DIR: usize = 100;
/// Bytes per file.
const FILE_BYTES: usize = 200;
/// Longer than the source index's racy margin: files older than this are
/// trusted on their stat alone, as a developer's tree mostly is.
const SETTLE: Duration = hm_exec::index::RACY_MARGIN.saturating_add(Duration::from_millis(500));

/// The path of file `i` of a tree, relative to the project.
fn file(i: usize) -> PathBuf {
    PathBuf::from(format!("src/d{:04}/f{:03}.txt", i / PER_DIR, i % PER_DIR))
}

/// `FILE_BYTES` bytes that differ with `i` and `round`.
fn contents(i: usize, round: usize) -> Vec<u8> {
    let mut text = format!("file {i} round {round} ").into_bytes();
    text.resize(FILE_BYTES, b'.');
    text
}

/// A project of `files` files whose pipeline is the 2-step chain on `image`.
fn project(dir: &Path, files: usize, image: &str) {
    crate::common::chain_project(dir, 2, |i| {
        let cmd = if i == 0 { "ls src | wc -l" } else { "true" };
        serde_json::json!({"key": format!("s{i}"), "cmd": cmd, "image": image})
    });
    for d in 0..files.div_ceil(PER_DIR) {
        std::fs::create_dir_all(dir.join(format!("src/d{d:04}"))).unwrap();
    }
    for i in 0..files {
        std::fs::write(dir.join(file(i)), contents(i, 0)).unwrap();
    }
}

/// Rewrites files `which` for round `round`.
fn edit(dir: &Path, which: impl Iterator<Item = usize>, round: usize) {
    for i in which {
        std::fs::write(dir.join(file(i)), contents(i, round)).unwrap();
    }
}

/// A fresh source of `project` (as `hm run` makes it, but with an index
/// of its own at `index`) and how long its scan takes.
fn scan(project: &Path, index: &Path) -> Duration {
    let started = Instant::now();
    let source = Source::new(project.to_owned()).with_index(Some(index.to_owned()));
    source.scan().unwrap();
    started.elapsed()
}

/// One row: the median whole run and the median scan, each after
/// `before(round)`.
struct Figures {
    run: Duration,
    scan: Duration,
}

/// Where a row runs: a backend, and an image of it.
struct Target {
    backend: &'static str,
    image: String,
}

impl Target {
    /// `hm run` of `project` on this target.
    fn run(&self, project: &Path, cache: &Path) -> Command {
        let mut command = hm_run(project, cache);
        command.env("HM_BACKEND", self.backend);
        command
    }
}

fn measure(
    target: &Target,
    project: &Path,
    cache: &Path,
    index: &Path,
    runs: usize,
    mut before: impl FnMut(usize),
) -> Figures {
    let mut run = Vec::new();
    let mut scanned = Vec::new();
    for round in 0..runs {
        before(round);
        scanned.push(scan(project, index));
        run.push(time(target.run(project, cache)));
    }
    Figures {
        run: median(run),
        scan: median(scanned),
    }
}

/// The scans alone, with no `hm run` between them (whose copies and
/// clean-ups keep the disk busy): medians of a fresh source without an
/// index (every file read, as before the index), and with one, after
/// nothing, one file and 1% of the files changed; and how long the index
/// file's write takes (in the background, while the steps go on).
struct Scans {
    no_index: Duration,
    same: Duration,
    one: Duration,
    some: Duration,
    write: Duration,
}

fn scans(project: &Path, index: &Path, files: usize, runs: usize) -> Scans {
    let fresh = || Source::new(project.to_owned()).with_index(Some(index.to_owned()));
    let timed = |source: &Source| {
        let started = Instant::now();
        source.scan().unwrap();
        started.elapsed()
    };
    timed(&fresh());
    let no_index = median((0..runs).map(|_| timed(&Source::new(project.to_owned()))).collect());
    let same = median((0..runs).map(|_| timed(&fresh())).collect());
    let mut one = Vec::new();
    let mut write = Vec::new();
    for round in 0..runs {
        edit(project, std::iter::once(round * 7919 % files), 1000 + round);
        let source = fresh();
        one.push(timed(&source));
        let started = Instant::now();
        source.flush();
        write.push(started.elapsed());
    }
    let mut some = Vec::new();
    for round in 0..runs {
        // The last round's edits are settled, as between a developer's runs.
        std::thread::sleep(SETTLE);
        edit(project, (round % 100..files).step_by(100), 2000 + round);
        some.push(timed(&fresh()));
    }
    Scans {
        no_index,
        same,
        one: median(one),
        some: median(some),
        write: median(write),
    }
}

fn sizes() -> Vec<usize> {
    std::env::var("HM_BENCH_FILES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 10_000, 50_000])
}

/// Imports the Debian root filesystem in `HM_TEST_DEBIAN_ROOTFS` into
/// `cache` as `bench-debian`; whether it did.
fn import_debian(cache: &Path) -> bool {
    let Some(rootfs) = std::env::var_os("HM_TEST_DEBIAN_ROOTFS") else {
        return false;
    };
    let imported = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["image", "import", "bench-debian"])
        .arg(rootfs)
        .env("HM_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    imported.is_ok_and(|s| s.success())
}

pub fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let root = tempfile::Builder::new().prefix("hm-bench-scale-").tempdir().unwrap();
    let cache = root.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let target = |backend, image: &str| Target {
        backend,
        image: image.to_owned(),
    };
    let mut targets = vec![target("sandbox", "host")];
    if import_debian(&cache) {
        targets.push(target("sandbox", "bench-debian"));
    }
    if let Some(image) = std::env::var("HM_TEST_DOCKER_IMAGE").ok().filter(|_| docker_up()) {
        targets.push(target("docker", &image));
    }
    let sizes = sizes();
    let mut rows = Vec::new();
    let mut scan_rows = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let image = target.image.as_str();
        let projects: Vec<(usize, PathBuf)> = sizes
            .iter()
            .map(|&files| {
                let dir = root.path().join(format!("{t}-{files}"));
                project(&dir, files, image);
                (files, dir)
            })
            .collect();
        std::thread::sleep(SETTLE);
        if t == 0 {
            for (files, dir) in &projects {
                let index = root.path().join(format!("scans-{files}"));
                let s = scans(dir, &index, *files, runs);
                scan_rows.push(format!(
                    "| {files} | {} | {} | {} | {} | {} |",
                    ms(s.no_index),
                    ms(s.same),
                    ms(s.one),
                    ms(s.some),
                    ms(s.write)
                ));
            }
            std::thread::sleep(SETTLE);
        }
        for (files, dir) in projects {
            let index = root.path().join(format!("index-{t}-{files}"));
            let first_scan = scan(&dir, &index);
            let first = time(target.run(&dir, &cache));
            let same = measure(target, &dir, &cache, &index, runs, |_| {});
            let one = measure(target, &dir, &cache, &index, runs, |round| {
                edit(&dir, std::iter::once(round * 7919 % files), round + 1)
            });
            let some = measure(target, &dir, &cache, &index, runs, |round| {
                let step = 100;
                edit(&dir, (round % step..files).step_by(step), round + 1)
            });
            let root = dir.canonicalize().unwrap();
            let index_file = cache.join("index").join(hm_exec::index::file_name(&root));
            let index_size = std::fs::metadata(index_file).map(|m| m.len()).unwrap_or(0);
            rows.push(format!(
                "| {} `{image}` | {files} | {} / {} | {} / {} | {} / {} | {} / {} | {} kB |",
                target.backend,
                ms(first),
                ms(first_scan),
                ms(same.run),
                ms(same.scan),
                ms(one.run),
                ms(one.scan),
                ms(some.run),
                ms(some.scan),
                index_size / 1000
            ));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    // The daemon outlives the cache directory: its source images go.
    let _ = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["cache", "clean", "--yes"])
        .env("HM_CACHE_DIR", &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    println!(
        "\nsource trees, 2-step chain, no cache policy (median of {runs} runs; whole `hm run` / a fresh scan alone)\n"
    );
    println!("| backend, image | files | first run | nothing changed | one file changed | 1% changed | index file |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!("\nsource scans alone, a fresh `Source` each (median of {runs})\n");
    println!("| files | no index (every file read) | index, nothing changed | index, one file changed | index, 1% changed | index write (background) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for row in scan_rows {
        println!("{row}");
    }
}
