//! The snapshot cache: a 50-step chain, every step cached `forever`, run
//! once cold and again fully cached. Prints a Markdown table.
//!
//! `cargo bench -p hm --bench cache`; `HM_BENCH_RUNS` (default 5) and
//! `HM_BENCH_STEPS` (default 50) as in the overhead benchmark.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{env_usize, hm_run, median, ms, time};

/// A chain of `steps` steps, each cached `forever`, each writing a file.
fn chain_project(dir: &Path, steps: usize) {
    common::chain_project(dir, steps, |i| {
        serde_json::json!({"key": format!("s{i}"), "cmd": format!("echo {i} > /opt/step{i}"), "image": "host",
                           "cache": {"policy": "forever"}})
    });
}

fn time_hm(project: &Path, cache: &Path) -> Duration {
    time(hm_run(project, cache))
}

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(2);
    let root = tempfile::Builder::new().prefix("hm-bench-cache-").tempdir().unwrap();
    let project = root.path().join("project");
    chain_project(&project, steps);

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..runs {
        let cache = root.path().join(format!("cache-{round}"));
        cold.push(time_hm(&project, &cache));
        time_hm(&project, &cache); // first fully cached run: page cache warm
        warm.push(median((0..3).map(|_| time_hm(&project, &cache)).collect()));
    }
    let (cold, warm) = (median(cold), median(warm));
    println!("\nsnapshot cache, {steps}-step chain cached `forever` (median of {runs} rounds)\n");
    println!("| measurement | wall time |");
    println!("|---|---:|");
    println!("| first run (every step executes and is stored) | {} |", ms(cold));
    println!("| re-run (every step a cache hit), whole `hm` process | {} |", ms(warm));
    println!(
        "| first run / re-run | {:.1}x |",
        cold.as_secs_f64() / warm.as_secs_f64()
    );
}
