//! Per-step overhead of the sandbox backend, against the floor
//! (`unshare` + `chroot` of `true`) and, where a Docker daemon answers,
//! `docker run --rm IMAGE true`. Prints a Markdown table.
//!
//! `cargo bench -p hm --bench overhead`; `HM_BENCH_RUNS` sets the number of
//! repetitions (median reported, default 5), `HM_BENCH_STEPS` the chain
//! length (default 50).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_usize, median, ms, time_command};

/// A project whose pipeline is a chain of `steps` steps running `true`.
fn chain_project(root: &Path, steps: usize, image: &str) -> PathBuf {
    let dir = root.join(format!("chain-{steps}-{}", image.replace(':', "_")));
    common::chain_project(
        &dir,
        steps,
        |i| serde_json::json!({"key": format!("s{i}"), "cmd": "true", "image": image}),
    );
    dir
}

/// An unprivileged uid to measure rootless mode with, when running as root.
const NOBODY: &str = "65534";

/// Wall time of `hm run` on a project (whole process), as `user` if given.
fn time_hm(project: &Path, cache: &Path, user: Option<&str>) -> Duration {
    let mut command = match user {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                env!("CARGO_BIN_EXE_hm"),
            ]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hm")),
    };
    let started = Instant::now();
    let status = command
        .args(["run", "--format", "json"])
        .current_dir(project)
        .env("HM_CACHE_DIR", cache)
        .env("HOME", cache)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "hm run failed in {}", project.display());
    elapsed
}

#[path = "../tests/util/rootfs.rs"]
mod rootfs;

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 50).max(2);
    let root = tempfile::Builder::new().prefix("hm-bench-").tempdir().unwrap();
    let cache = root.path().join("cache");
    let rootfs = root.path().join("rootfs");
    rootfs::tiny_rootfs(&rootfs, &["/bin/sh", "/bin/true"]);
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    let import = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["image", "import", "bench-tiny"])
        .arg(&rootfs)
        .env("HM_CACHE_DIR", &cache)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(import.success());

    let rootless = !Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut per_step_host = Duration::ZERO;
    for image in ["host", "bench-tiny"] {
        let chain = chain_project(root.path(), steps, image);
        let single = chain_project(root.path(), 1, image);
        time_hm(&chain, &cache, None); // warm-up
        let total = median((0..runs).map(|_| time_hm(&chain, &cache, None)).collect());
        let one = median((0..runs).map(|_| time_hm(&single, &cache, None)).collect());
        let marginal = total.saturating_sub(one) / (steps as u32 - 1);
        if image == "host" {
            per_step_host = total / steps as u32;
        }
        rows.push((
            format!("`hm run`, {steps}-step chain of `true`, image `{image}`"),
            ms(total),
            ms(total / steps as u32),
        ));
        rows.push((
            format!("`hm run`, 1 step, image `{image}` (fixed cost)"),
            ms(one),
            "".into(),
        ));
        rows.push((
            format!("marginal cost of a step, image `{image}`"),
            "".into(),
            ms(marginal),
        ));
    }

    if !rootless {
        // The same chain as an unprivileged user, with a cache of its own.
        let chain = chain_project(root.path(), steps, "host");
        let user_cache = root.path().join("user-cache");
        std::fs::create_dir_all(&user_cache).unwrap();
        let owned = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(&user_cache)
            .arg(&chain)
            .status();
        if owned.is_ok_and(|s| s.success()) {
            time_hm(&chain, &user_cache, Some(NOBODY));
            let total = median((0..runs).map(|_| time_hm(&chain, &user_cache, Some(NOBODY))).collect());
            rows.push((
                format!("`hm run` as an unprivileged user, {steps}-step chain, image `host`"),
                ms(total),
                ms(total / steps as u32),
            ));
        }
    }

    let rootfs_str = rootfs.to_str().unwrap();
    let mut floor_args = vec!["--mount", "--pid", "--fork"];
    if rootless {
        floor_args.push("--map-root-user");
    }
    floor_args.extend(["chroot", rootfs_str, "/bin/true"]);
    let floor: Vec<Duration> = (0..steps)
        .filter_map(|_| time_command("unshare", &floor_args))
        .collect();
    if floor.len() == steps {
        rows.push((
            "`unshare` + `chroot` of `true` (floor)".into(),
            "".into(),
            ms(median(floor)),
        ));
    } else {
        rows.push((
            "`unshare` + `chroot` of `true` (floor)".into(),
            "".into(),
            "failed".into(),
        ));
    }

    let docker = docker_per_run(&rootfs, runs.max(5));
    match docker {
        Some(d) => {
            rows.push(("`docker run --rm IMAGE true`".into(), "".into(), ms(d)));
            let ratio = d.as_secs_f64() / per_step_host.as_secs_f64();
            rows.push((
                "`docker run` / `hm` per step (image `host`)".into(),
                "".into(),
                format!("{ratio:.1}x"),
            ));
        }
        None => rows.push((
            "`docker run --rm IMAGE true`".into(),
            "".into(),
            "n/a (no Docker daemon)".into(),
        )),
    }

    println!(
        "\nsandbox per-step overhead ({} mode, median of {runs} runs)\n",
        if rootless { "rootless" } else { "root" }
    );
    println!("| measurement | total | per step |");
    println!("|---|---:|---:|");
    for (what, total, per) in rows {
        println!("| {what} | {total} | {per} |");
    }
}

/// Median `docker run --rm IMAGE true` time, with an image imported from
/// the tiny root filesystem; `None` without a daemon.
fn docker_per_run(rootfs: &Path, runs: usize) -> Option<Duration> {
    let ok = Command::new("docker")
        .args(["info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let image = "hm-bench-tiny:latest";
    let tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let imported = Command::new("docker")
        .args(["import", "-", image])
        .stdin(tar.stdout?)
        .stdout(Stdio::null())
        .status()
        .ok()?;
    if !imported.success() {
        return None;
    }
    time_command("docker", &["run", "--rm", image, "/bin/true"])?; // warm-up
    let samples: Vec<Duration> = (0..runs)
        .filter_map(|_| time_command("docker", &["run", "--rm", image, "/bin/true"]))
        .collect();
    let _ = Command::new("docker")
        .args(["rmi", "-f", image])
        .stdout(Stdio::null())
        .status();
    (!samples.is_empty()).then(|| median(samples))
}
