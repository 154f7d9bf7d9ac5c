//! `hm cache save` and `hm cache restore` (issue 17): a 50-step chain,
//! each step cached and writing 100 KB, saved into an empty directory,
//! saved again into the directory that holds it (what a CI build whose
//! steps were all hits does), and restored into an empty cache; beside
//! `tar` of the whole cache directory and its extraction, which is what a
//! CI cache of the cache directory itself would cost. Prints a Markdown
//! table of medians.
//!
//! Needs the sandbox. `cargo bench -p hm --bench save`; `HM_BENCH_RUNS`
//! (default 5), `HM_BENCH_STEPS` (default 50).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{chain_project, env_usize, hm_run, median, ms, time, time_command};

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(1);
    let root = tempfile::Builder::new().prefix("hm-bench-save-").tempdir().unwrap();
    let project = root.path().join("project");
    chain_project(&project, steps, |i| {
        serde_json::json!({"key": format!("s{i}"), "image": "host", "cmd": format!("head -c 100000 /dev/urandom > out{i}"),
            "cache": {"policy": "forever"}})
    });
    let fresh = |name: &str| -> PathBuf {
        let dir = root.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        dir
    };
    let hm = |cache: &Path, args: &[&str]| -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hm"));
        command
            .args(args)
            .current_dir(&project)
            .env("HM_CACHE_DIR", cache)
            .env("HM_BACKEND", "sandbox")
            .env_remove("HM_CACHE_REMOTE")
            .stderr(std::process::Stdio::null());
        command
    };
    let seeded = fresh("seeded");
    time(hm_run(&project, &seeded));
    let arg = |p: &Path| p.to_str().unwrap().to_owned();

    let mut samples: [Vec<Duration>; 5] = Default::default();
    for _ in 0..runs {
        let dir = fresh("saved");
        samples[0].push(time(hm(&seeded, &["cache", "save", &arg(&dir)])));
        samples[1].push(time(hm(&seeded, &["cache", "save", &arg(&dir)])));
        let empty = fresh("restored");
        samples[2].push(time(hm(&empty, &["cache", "restore", &arg(&dir)])));

        let tarball = root.path().join("cache.tar");
        let _ = std::fs::remove_file(&tarball);
        let tar = ["-cf", &arg(&tarball), "-C", &arg(&seeded), "."];
        samples[3].push(time_command("tar", &tar).expect("tar -c"));
        let untarred = fresh("untarred");
        std::fs::create_dir(&untarred).unwrap();
        let untar = ["-xf", &arg(&tarball), "-C", &arg(&untarred)];
        samples[4].push(time_command("tar", &untar).expect("tar -x"));
    }
    let size = |path: &Path| -> u64 {
        let out = Command::new("du").args(["-sb", &arg(path)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let saved_size = size(&root.path().join("saved"));
    let tar_size = size(&root.path().join("cache.tar"));
    let [save, again, restore, tar, untar] = samples.map(median);
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    println!("\nsave and restore, {steps}-step chain, 100 KB per step (median of {runs})\n");
    println!("| operation | wall | vs tar | size |");
    println!("|---|---:|---:|---:|");
    let ratio = |a: Duration, b: Duration| format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64());
    for (name, d, vs, bytes) in [
        ("`hm cache save` into an empty directory", save, tar, mb(saved_size)),
        ("`hm cache save` again, nothing new", again, tar, String::new()),
        ("`hm cache restore` into an empty cache", restore, untar, String::new()),
        ("`tar -c` of the cache directory", tar, tar, mb(tar_size)),
        ("`tar -x` into an empty directory", untar, untar, String::new()),
    ] {
        println!("| {name} | {} | {} | {bytes} |", ms(d), ratio(d, vs));
    }
}
