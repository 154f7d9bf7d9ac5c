//! This build against another `hm` (`HM_BENCH_BASELINE`, e.g. a release
//! build of an earlier commit), run in turn on the same projects: a
//! 50-step uncached chain of `true` (per-step overhead) and the same chain
//! cached `forever`, re-run with every step a hit. Prints each one's median
//! and the median of the pairwise ratios (this build / the baseline), so
//! that drift of the machine's speed during the run cancels out.
//!
//! `HM_BENCH_BASELINE=/path/to/old/hm cargo bench -p hm --bench baseline`;
//! `HM_BENCH_RUNS` (default 15) and `HM_BENCH_STEPS` (default 50).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_usize, median, ms};

/// Wall time of `hm run` with `binary` in `project`.
fn time_run(binary: &Path, project: &Path, cache: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["run", "--format", "json"])
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "{} failed in {}", binary.display(), project.display());
    elapsed
}

/// Runs both binaries in turn `runs` times (after one run each that is not
/// counted); their medians and the median of the pairwise ratios.
fn compare(binaries: [&Path; 2], project: &Path, caches: [&Path; 2], runs: usize) -> (Duration, Duration, f64) {
    for (binary, cache) in binaries.iter().zip(caches) {
        time_run(binary, project, cache);
    }
    let (mut new, mut old, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let a = time_run(binaries[0], project, caches[0]);
        let b = time_run(binaries[1], project, caches[1]);
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
        new.push(a);
        old.push(b);
    }
    ratios.sort_by(f64::total_cmp);
    (median(new), median(old), ratios[ratios.len() / 2])
}

fn main() {
    let Some(baseline) = std::env::var_os("HM_BENCH_BASELINE").map(PathBuf::from) else {
        println!("\nbaseline: n/a (set HM_BENCH_BASELINE to another hm binary)");
        return;
    };
    let runs = env_usize("HM_BENCH_RUNS", 15).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(2);
    let root = tempfile::Builder::new().prefix("hm-bench-baseline-").tempdir().unwrap();
    let this = PathBuf::from(env!("CARGO_BIN_EXE_hm"));
    let binaries = [this.as_path(), baseline.as_path()];
    let caches = [root.path().join("cache-new"), root.path().join("cache-old")];
    let caches = [caches[0].as_path(), caches[1].as_path()];

    let uncached = root.path().join("uncached");
    common::chain_project(
        &uncached,
        steps,
        |i| serde_json::json!({"key": format!("s{i}"), "cmd": "true", "image": "host"}),
    );
    let cached = root.path().join("cached");
    common::chain_project(
        &cached,
        steps,
        |i| serde_json::json!({"key": format!("s{i}"), "cmd": "true", "image": "host", "cache": {"policy": "forever"}}),
    );
    let chain = compare(binaries, &uncached, caches, runs);
    let hits = compare(binaries, &cached, caches, runs);

    println!(
        "\nthis build against {} ({steps}-step chains, image `host`, median of {runs} pairs)\n",
        baseline.display()
    );
    println!("| measurement | this build | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    for (what, (new, old, ratio)) in [
        ("`hm run`, chain of `true` (uncached)", chain),
        ("`hm run`, the chain cached, every step a hit", hits),
    ] {
        println!("| {what} | {} | {} | {ratio:.2}x |", ms(new), ms(old));
    }
}
