//! What the live view costs: the 50-step chain of `true` (uncached) and the
//! same chain cached (every step a hit), run by this build with its view in
//! a pseudo-terminal (`script`, so that `hm` sees a terminal and draws the
//! live view), with `--logs` in the same pseudo-terminal, and with `--format
//! json` to /dev/null (the figures of the other benchmarks), in turn. Prints
//! each one's median and the median of the pairwise ratios to the JSON run.
//!
//! `cargo bench -p hm --bench view`; `HM_BENCH_RUNS` (default 15) and
//! `HM_BENCH_STEPS` (default 50).

mod common;

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
    let hm = env!("CARGO_BIN_EXE_hm");
    let mut command = match view {
        View::Json => {
            let mut command = Command::new(hm);
            command.args(["run", "--format", "json"]);
            command
        }
        // `script` runs the command in a new pseudo-terminal and copies
        // what it draws to its stdout (here /dev/null).
        View::Logs | View::Live => {
            let logs = if matches!(view, View::Logs) { " --logs" } else { "" };
            let mut command = Command::new("script");
            command.args(["-qefc", &format!("{hm} run{logs}"), "/dev/null"]);
            command.env("TERM", "xterm-256color");
            command
        }
    };
    command
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let started = Instant::now();
    let status = command.status().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "{command:?} failed");
    elapsed
}

/// Every view in turn, `runs` times after one uncounted run each; each
/// view's median and the median of its ratios to the JSON run beside it.
fn compare(project: &Path, cache: &Path, runs: usize) -> Vec<(Duration, f64)> {
    let views = [View::Json, View::Logs, View::Live];
    for view in views {
        time_run(view, project, cache);
    }
    let mut times = vec![Vec::new(); views.len()];
    let mut ratios = vec![Vec::new(); views.len()];
    for _ in 0..runs {
        let round: Vec<Duration> = views.iter().map(|&v| time_run(v, project, cache)).collect();
        for (i, t) in round.iter().enumerate() {
            times[i].push(*t);
            ratios[i].push(t.as_secs_f64() / round[0].as_secs_f64());
        }
    }
    times
        .into_iter()
        .zip(ratios)
        .map(|(t, mut r)| {
            r.sort_by(f64::total_cmp);
            (median(t), r[r.len() / 2])
        })
        .collect()
}

fn main() {
    if common::time_command("script", &["-qec", "true", "/dev/null"]).is_none() {
        println!("\nview: n/a (`script`, from util-linux, is needed for a pseudo-terminal)");
        return;
    }
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
    println!("| measurement | `--format json` > /dev/null | `--logs` in a pty | live view in a pty | live / json |");
    println!("|---|---:|---:|---:|---:|");
    for (what, row) in [
        ("`hm run`, chain of `true` (uncached)", chain),
        ("`hm run`, the chain cached, every step a hit", hits),
    ] {
        println!(
            "| {what} | {} | {} | {} | {:.2}x |",
            ms(row[0].0),
            ms(row[1].0),
            ms(row[2].0),
            row[2].1
        );
    }
}
