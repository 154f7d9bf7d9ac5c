//! What the live view costs: the 50-step chain of `true` (uncached) and the
//! same chain cached (every step a hit), run by this build with its view in
//! a pseudo-terminal (the tests' driver: `hm` sees a terminal and draws the
//! live view, a thread reads what it draws), with `--logs` in the same kind
//! of pseudo-terminal, and with `--format json` to /dev/null (the figures of
//! the other benchmarks), in turn. Prints each one's median and the median
//! of the pairwise ratios to the JSON run.
//!
//! `cargo bench -p hm --bench view`; `HM_BENCH_RUNS` (default 15) and
//! `HM_BENCH_STEPS` (default 50).

mod common;
#[path = "../tests/util/pty.rs"]
#[allow(dead_code)]
mod pty;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_usize, median, ms};

#[derive(Clone, Copy)]
enum View {
    Json,
    Logs,
    Live,
}

/// Wall time of one `hm run` in `project`.
fn time_run(view: View, project: &Path, cache: &Path) -> Duration {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hm"));
    command
        .arg("run")
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .env("TERM", "xterm-256color");
    let started = Instant::now();
    let status = match view {
        View::Json => command
            .args(["--format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap(),
        View::Logs | View::Live => {
            if matches!(view, View::Logs) {
                command.arg("--logs");
            }
            pty::Pty::spawn(command, 40, 120).finish(Duration::from_secs(600)).0
        }
    };
    let elapsed = started.elapsed();
    assert!(status.success(), "hm run ({}) failed", project.display());
    elapsed
}

/// Every view in turn, `runs` times after one uncounted run each; each
/// view's median, the median of the live view's ratios to the JSON run
/// beside it, and to the `--logs` run beside it.
fn compare(project: &Path, cache: &Path, runs: usize) -> ([Duration; 3], f64, f64) {
    let views = [View::Json, View::Logs, View::Live];
    for view in views {
        time_run(view, project, cache);
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    let (mut to_json, mut to_logs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let round = views.map(|v| time_run(v, project, cache));
        for (all, t) in times.iter_mut().zip(round) {
            all.push(t);
        }
        to_json.push(round[2].as_secs_f64() / round[0].as_secs_f64());
        to_logs.push(round[2].as_secs_f64() / round[1].as_secs_f64());
    }
    let middle = |mut ratios: Vec<f64>| {
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    };
    (times.map(median), middle(to_json), middle(to_logs))
}

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 15).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(2);
    let root = tempfile::Builder::new().prefix("hm-bench-view-").tempdir().unwrap();
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
    let cache = root.path().join("cache");
    let chain = compare(&uncached, &cache, runs);
    let hits = compare(&cached, &cache, runs);

    println!("\nthe views' cost ({steps}-step chains, image `host`, median of {runs} rounds)\n");
    println!("| measurement | `--format json` > /dev/null | `--logs` in a pty | live view in a pty | live / json | live / logs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (what, (times, to_json, to_logs)) in [
        ("`hm run`, chain of `true` (uncached)", chain),
        ("`hm run`, the chain cached, every step a hit", hits),
    ] {
        println!(
            "| {what} | {} | {} | {} | {to_json:.2}x | {to_logs:.2}x |",
            ms(times[0]),
            ms(times[1]),
            ms(times[2]),
        );
    }
}
