//! The snapshot cache: a 50-step chain, every step cached `forever`, run
//! once cold and again fully cached. Prints a Markdown table.
//!
//! `cargo bench -p hm --bench cache`; `HM_BENCH_RUNS` (default 5) and
//! `HM_BENCH_STEPS` (default 50) as in the overhead benchmark.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn chain_project(dir: &Path, steps: usize) {
    std::fs::create_dir_all(dir.join(".hm")).unwrap();
    let cache = serde_json::json!({"policy": "forever"});
    let nodes: Vec<_> = (0..steps)
        .map(|i| serde_json::json!({"step": {"key": format!("s{i}"), "cmd": format!("echo {i} > /opt/step{i}"), "image": "host", "cache": cache}, "env": {}}))
        .collect();
    let edges: Vec<_> = (1..steps).map(|i| serde_json::json!([i - 1, i, "builds_in"])).collect();
    let envelope = serde_json::json!({"schema_version": "1", "pipelines": [{
        "slug": "chain", "name": "chain", "allow_manual": true, "triggers": [],
        "definition": {"version": "0", "nodes": nodes, "node_holes": [], "edge_property": "directed", "edges": edges}}]});
    std::fs::write(dir.join(".hm/pipeline.json"), envelope.to_string()).unwrap();
    std::fs::write(dir.join("README"), "bench\n").unwrap();
}

fn time_hm(project: &Path, cache: &Path) -> Duration {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["run", "--format", "json"])
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(output.status.success(), "hm run failed");
    elapsed
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
