//! The remote cache (issue 16): a 50-step chain, each step cached and
//! writing 100 KB, run on a fresh cache directory whose every step is a
//! hit in a loopback registry, beside the same chain with local hits and
//! beside running it uncached (with and without pushing what it stores).
//! Prints a Markdown table of medians and ratios.
//!
//! Needs `docker-registry` (as `.ci/run` installs it) and the sandbox.
//! `cargo bench -p hm --bench remote`; `HM_BENCH_RUNS` (default 5),
//! `HM_BENCH_STEPS` (default 50).

mod common;
#[path = "../tests/util/registry.rs"]
mod registry;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{chain_project, env_usize, hm_run, median, ms, time};
use registry::{tools_missing, Registry, RegistryOptions};

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(1);
    if let Some(reason) = tools_missing() {
        println!("\nremote cache: n/a ({reason})");
        return;
    }
    let root = tempfile::Builder::new().prefix("hm-bench-remote-").tempdir().unwrap();
    let project = root.path().join("project");
    chain_project(&project, steps, |i| {
        serde_json::json!({"key": format!("s{i}"), "image": "host", "cmd": format!("head -c 100000 /dev/urandom > out{i}"),
            "cache": {"policy": "forever"}})
    });
    let registry = Registry::start(&RegistryOptions::default());
    let cache = |name: &str| {
        let dir = root.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    };
    let run = |cache: &Path, remote: Option<(&str, &str)>| -> Command {
        let mut command = hm_run(&project, cache);
        command.env("HM_CACHE_SCOPE", "bench").env("HM_BACKEND", "sandbox");
        match remote {
            Some((repo, mode)) => {
                command
                    .env("HM_CACHE_REMOTE", format!("{}/{repo}", registry.host()))
                    .env("HM_CACHE_REMOTE_MODE", mode);
            }
            None => {
                command.env_remove("HM_CACHE_REMOTE");
            }
        }
        command
    };
    // The entries every round's remote hits take in, and the local ones.
    time(run(&cache("seeded"), Some(("bench/seeded", "write"))));
    let warm = cache("warm");
    time(run(&warm, None));

    let (mut uncached, mut pushing, mut remote, mut local) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        uncached.push(time(run(&cache("uncached"), None)));
        pushing.push(time(run(
            &cache("pushing"),
            Some((&format!("bench/round{i}"), "write")),
        )));
        remote.push(time(run(&cache("remote"), Some(("bench/seeded", "read")))));
        local.push(time(run(&warm, None)));
    }
    let (uncached, pushing, remote, local) = (median(uncached), median(pushing), median(remote), median(local));
    let ratio = |a: Duration, b: Duration| format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64());
    println!("\nremote cache, {steps}-step chain, 100 KB per step, loopback registry (median of {runs})\n");
    println!("| run | wall | vs local hits | vs uncached |");
    println!("|---|---:|---:|---:|");
    for (name, d) in [
        ("uncached, no remote", uncached),
        ("uncached, pushing every entry", pushing),
        ("remote hits on an empty cache", remote),
        ("local hits", local),
    ] {
        println!("| {name} | {} | {} | {} |", ms(d), ratio(d, local), ratio(d, uncached));
    }
}
