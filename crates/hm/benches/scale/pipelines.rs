//! Pipelines of 1,000 steps and registries of 10,000 entries (issue 15).
//!
//! - A 1,000-step pipeline (50 chains of 20, every step cached `forever`,
//!   image `host`, each step `true` with a word of its own so that no two
//!   share a key), cold and fully cached, with the default bounds and with
//!   `max_entries = 100`: the cached run's steps executed, hits and steps
//!   not needed are counted from its events.
//! - A fully cached 50-step chain on a registry that also holds 10,000
//!   unrelated entries (chains of 20, as real pipelines leave them),
//!   against one that holds only its own 50.
//! - The registry's own operations at 1,000 and 10,000 entries: what a
//!   build of a 50-step chain asks (look up and hold its keys, store each
//!   step within bounds that evict an entry each time, let go).
//!
//! `HM_BENCH_RUNS` (default 3) sets the rounds; each round starts with
//! fresh caches.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hm_vm::{Bounds, CacheEntry, NewEntry, Registry};

use crate::common::{env_usize, hm_run, median, ms};

const CHAINS: usize = 50;
const LENGTH: usize = 20;

/// A project whose pipeline is `chains` chains of `length` steps, each
/// cached `forever`.
fn project(dir: &Path, chains: usize, length: usize) {
    std::fs::create_dir_all(dir.join(".hm")).unwrap();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for c in 0..chains {
        for i in 0..length {
            nodes.push(serde_json::json!({"step": {
                "key": format!("c{c}s{i}"), "cmd": format!("true c{c}s{i}"), "image": "host",
                "cache": {"policy": "forever"}}, "env": {}}));
            if i > 0 {
                let idx = c * length + i;
                edges.push(serde_json::json!([idx - 1, idx, "builds_in"]));
            }
        }
    }
    let envelope = serde_json::json!({"schema_version": "1", "pipelines": [{
        "slug": "wide", "name": "wide", "allow_manual": true, "triggers": [],
        "definition": {"version": "0", "graph": {"nodes": nodes, "node_holes": [], "edge_property": "directed", "edges": edges}}}]});
    std::fs::write(dir.join(".hm/pipeline.json"), envelope.to_string()).unwrap();
    std::fs::write(dir.join("README"), "bench\n").unwrap();
}

/// What one run did, from its events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    executed: usize,
    hits: usize,
    not_needed: usize,
}

/// Runs `hm run --format json` to its end: its wall time and counts.
fn run(mut command: Command) -> (Duration, Counts) {
    let started = Instant::now();
    let output = command.output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut counts = Counts::default();
    for line in output.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let event: serde_json::Value = serde_json::from_slice(line).unwrap();
        match event["kind"].as_str() {
            Some("step_start") => counts.executed += 1,
            Some("step_cache_hit") => counts.hits += 1,
            Some("step_skipped") if event["reason"].as_str().is_some_and(|r| r.starts_with("not needed")) => {
                counts.not_needed += 1
            }
            _ => {}
        }
    }
    (elapsed, counts)
}

fn hm(project: &Path, cache: &Path, max_entries: Option<u64>) -> Command {
    let mut command = hm_run(project, cache);
    if let Some(n) = max_entries {
        command.env("HM_CACHE_MAX_ENTRIES", n.to_string());
    }
    command
}

/// The 1,000-step pipeline, cold then cached, under `max_entries`.
fn thousand_steps(root: &Path, project: &Path, runs: usize, max_entries: Option<u64>) -> [(Duration, Counts); 2] {
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    let mut counts = [Counts::default(); 2];
    for round in 0..runs {
        let cache = root.join(format!("cache-{}-{round}", max_entries.unwrap_or(0)));
        let (time, first) = run(hm(project, &cache, max_entries));
        cold.push(time);
        // The first cached run warms the page cache.
        let (_, second) = run(hm(project, &cache, max_entries));
        assert_eq!(second.executed, 0, "the second run executes nothing: {second:?}");
        let times: Vec<Duration> = (0..3).map(|_| run(hm(project, &cache, max_entries)).0).collect();
        cached.push(median(times));
        counts = [first, second];
        std::fs::remove_dir_all(&cache).ok();
    }
    [(median(cold), counts[0]), (median(cached), counts[1])]
}

/// An entry of a bench-made chain: `i`-th entry of chain `chain`, its
/// stack of parts made up (nothing is stored behind it).
fn made_up(chain: usize, i: usize, at: u64) -> NewEntry {
    let key = |i: usize| format!("bench-{chain}-{i}");
    let parts: Vec<String> = (0..=i).rev().map(|j| format!("bench-part-{chain}-{j}")).collect();
    NewEntry {
        entry: CacheEntry {
            key: key(i),
            parent: (i > 0).then(|| key(i - 1)),
            backend: "sandbox".to_owned(),
            parts: parts.clone(),
            base: "host".to_owned(),
            manifest: Some(format!("bench-manifest-{chain}")),
            size: 4096,
            step: format!("s{i}"),
            pipeline: format!("bench-{chain}"),
            project: "/bench/unrelated".to_owned(),
            created: at,
            last_used: at,
            inputs: serde_json::json!({"cmd": key(i)}),
        },
        part_sizes: vec![(parts[0].clone(), 4096)],
        manifest_bytes: Some(vec![b'm'; 2048]),
    }
}

/// Adds `count` unrelated entries in chains of 20, used long ago.
fn fill(registry: &Registry, first_chain: usize, count: usize) {
    for n in 0..count {
        registry
            .insert(&made_up(first_chain + n / LENGTH, n % LENGTH, 1_000 + n as u64), false)
            .unwrap();
    }
}

/// A fully cached 50-step chain with and without 10,000 unrelated entries.
fn big_registry(root: &Path, runs: usize) -> [Duration; 2] {
    let project = root.join("chain50");
    self::project(&project, 1, 50);
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..runs {
        for (which, filled) in [(0, false), (1, true)] {
            let cache = root.join(format!("cache-chain50-{which}-{round}"));
            run(hm(&project, &cache, None));
            if filled {
                fill(&Registry::open(&cache).unwrap(), 0, 10_000);
            }
            run(hm(&project, &cache, None));
            times[which].push(median((0..5).map(|_| run(hm(&project, &cache, None)).0).collect()));
            std::fs::remove_dir_all(&cache).ok();
        }
    }
    times.map(median)
}

/// The registry's operations for a build of a 50-step chain on a registry
/// of `size` entries at its entry bound: medians of `rounds` builds.
fn registry_ops(root: &Path, size: usize, rounds: usize) -> [Duration; 3] {
    let dir = root.join(format!("registry-{size}"));
    let registry = Registry::open(&dir).unwrap();
    fill(&registry, 0, size);
    let bounds = Bounds {
        max_entries: size as u64,
        max_bytes: u64::MAX,
    };
    let build = |chain: usize| {
        for i in 0..50 {
            assert!(
                registry
                    .store(&made_up(chain, i, 1 << 40), true, Some(bounds))
                    .unwrap()
                    .kept
            );
        }
    };
    build(1_000_000);
    registry.release().unwrap();
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Each build finds the one before (hits), then stores its own.
        let chain = 1_000_001 + round;
        let wanted: Vec<(String, bool)> = (0..50).map(|i| (format!("bench-{}-{i}", chain - 1), true)).collect();
        let started = Instant::now();
        assert_eq!(registry.lookup_many(&wanted).unwrap().len(), 50);
        times[0].push(started.elapsed());
        let started = Instant::now();
        build(chain);
        times[1].push(started.elapsed() / 50);
        let started = Instant::now();
        registry.release().unwrap();
        times[2].push(started.elapsed());
    }
    assert_eq!(registry.totals().unwrap().0, size as u64);
    drop(registry);
    std::fs::remove_dir_all(&dir).ok();
    times.map(median)
}

pub fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 3).max(1);
    let root = tempfile::Builder::new().prefix("hm-bench-scale-").tempdir().unwrap();
    let project = root.path().join("thousand");
    self::project(&project, CHAINS, LENGTH);

    let default = thousand_steps(root.path(), &project, runs, None);
    let bounded = thousand_steps(root.path(), &project, runs, Some(100));
    println!(
        "\n{} steps ({CHAINS} chains of {LENGTH}, every step `forever`, image `host`), median of {runs} rounds\n",
        CHAINS * LENGTH
    );
    println!("| bounds | run | wall time | steps executed | cache hits | not needed |");
    println!("|---|---|---:|---:|---:|---:|");
    let default_bounds = format!("default ({} entries)", Bounds::default().max_entries);
    for (bounds, [cold, cached]) in [(default_bounds.as_str(), default), ("`max_entries = 100`", bounded)] {
        for (what, (time, counts)) in [("cold", cold), ("fully cached", cached)] {
            println!(
                "| {bounds} | {what} | {} | {} | {} | {} |",
                ms(time),
                counts.executed,
                counts.hits,
                counts.not_needed
            );
        }
    }

    let [alone, filled] = big_registry(root.path(), runs);
    println!("\nfully cached 50-step chain (`forever`, image `host`), median of {runs} rounds\n");
    println!("| registry | wall time |");
    println!("|---|---:|");
    println!("| its own 50 entries | {} |", ms(alone));
    println!("| and 10,000 unrelated entries | {} |", ms(filled));
    println!(
        "| 10,050 / 50 entries | {:.2}x |",
        filled.as_secs_f64() / alone.as_secs_f64()
    );

    let rounds = 5 * runs;
    let small = registry_ops(root.path(), 1_000, rounds);
    let large = registry_ops(root.path(), 10_000, rounds);
    println!("\nregistry operations of a 50-step build on a full registry, median of {rounds} builds\n");
    println!("| operation | 1,000 entries | 10,000 entries |");
    println!("|---|---:|---:|");
    let us = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    for (i, what) in ["look up and hold 50 keys", "store one entry, evicting one", "let go"]
        .iter()
        .enumerate()
    {
        println!("| {what} | {} | {} |", us(small[i]), us(large[i]));
    }
}
