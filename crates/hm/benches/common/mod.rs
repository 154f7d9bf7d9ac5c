//! What the benchmarks share: settings, timing, medians and chain projects.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A number from the environment (`HM_BENCH_RUNS`, ...), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Wall time of `command` to its exit (stdout discarded); it must succeed.
pub fn time(mut command: Command) -> Duration {
    let started = Instant::now();
    let status = command.stdout(Stdio::null()).status().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "{command:?} failed");
    elapsed
}

/// Wall time of `program ARGS`, or `None` when it fails.
pub fn time_command(program: &str, args: &[&str]) -> Option<Duration> {
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| started.elapsed())
}

/// `hm run --format json` in `project` with the cache in `cache`.
pub fn hm_run(project: &Path, cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hm"));
    command
        .args(["run", "--format", "json"])
        .current_dir(project)
        .env("HM_CACHE_DIR", cache);
    command
}

/// Writes a project in `dir` whose pipeline `chain` has `steps` steps, each
/// building on the one before; `step(i)` is the IR `step` of step `i`.
pub fn chain_project(dir: &Path, steps: usize, step: impl Fn(usize) -> serde_json::Value) {
    std::fs::create_dir_all(dir.join(".hm")).unwrap();
    let nodes: Vec<_> = (0..steps)
        .map(|i| serde_json::json!({"step": step(i), "env": {}}))
        .collect();
    let edges: Vec<_> = (1..steps).map(|i| serde_json::json!([i - 1, i, "builds_in"])).collect();
    let envelope = serde_json::json!({"schema_version": "1", "pipelines": [{
        "slug": "chain", "name": "chain", "allow_manual": true, "triggers": [],
        "definition": {"version": "0", "graph": {"nodes": nodes, "node_holes": [], "edge_property": "directed", "edges": edges}}}]});
    std::fs::write(dir.join(".hm/pipeline.json"), envelope.to_string()).unwrap();
    std::fs::write(dir.join("README"), "bench\n").unwrap();
}

/// Whether a Docker daemon answers.
pub fn docker_up() -> bool {
    time_command("docker", &["info"]).is_some()
}
