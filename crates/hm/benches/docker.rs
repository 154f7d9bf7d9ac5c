//! The docker backend's per-step overhead, in one run: a chain of `true`
//! steps, uncached, on the docker backend (whole `hm` process), against
//! `docker run --rm IMAGE true` as many times, and against the sandbox.
//! Prints a Markdown table.
//!
//! Needs a daemon and an image (`HM_TEST_DOCKER_IMAGE`, default
//! `hm-test/bookworm`; `.ci/run` imports one). `cargo bench -p hm --bench
//! docker`; `HM_BENCH_RUNS` (default 5) and `HM_BENCH_STEPS` (default 20).

mod common;

use std::time::Duration;

use common::{chain_project, docker_up, env_usize, hm_run, median, ms, time, time_command};

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 5).max(1);
    let steps = env_usize("HM_BENCH_STEPS", 20).max(2);
    let image = std::env::var("HM_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "hm-test/bookworm".to_owned());
    if !docker_up() || time_command("docker", &["image", "inspect", &image]).is_none() {
        println!("\ndocker backend: n/a (no Docker daemon with `{image}`)");
        return;
    }
    let root = tempfile::Builder::new().prefix("hm-bench-docker-").tempdir().unwrap();
    let cache = root.path().join("cache");
    let project = |name: &str, steps: usize, image: &str| {
        let dir = root.path().join(name);
        chain_project(
            &dir,
            steps,
            |i| serde_json::json!({"key": format!("s{i}"), "cmd": "true", "image": image}),
        );
        dir
    };
    let docker_chain = project("docker-chain", steps, &image);
    let docker_one = project("docker-one", 1, &image);
    let sandbox_chain = project("sandbox-chain", steps, "host");
    let run = |dir: &std::path::Path, backend: &str| {
        let mut command = hm_run(dir, &cache);
        command.env("HM_BACKEND", backend);
        time(command)
    };
    let sample = |f: &dyn Fn() -> Duration| {
        f(); // warm-up
        median((0..runs).map(|_| f()).collect())
    };
    let chain = sample(&|| run(&docker_chain, "docker"));
    let one = sample(&|| run(&docker_one, "docker"));
    let sandbox = sample(&|| run(&sandbox_chain, "sandbox"));
    let docker_runs = sample(&|| {
        (0..steps)
            .map(|_| time_command("docker", &["run", "--rm", &image, "true"]).expect("docker run"))
            .sum()
    });

    let per_step = chain / steps as u32;
    let per_run = docker_runs / steps as u32;
    println!(
        "\ndocker backend per-step overhead, {steps}-step chain of `true`, image `{image}` (median of {runs} runs)\n"
    );
    println!("| measurement | total | per step |");
    println!("|---|---:|---:|");
    println!(
        "| `hm run --backend docker`, {steps}-step chain (uncached) | {} | {} |",
        ms(chain),
        ms(per_step)
    );
    println!("| `hm run --backend docker`, 1 step (fixed cost) | {} | |", ms(one));
    println!(
        "| `docker run --rm IMAGE true`, {steps} times | {} | {} |",
        ms(docker_runs),
        ms(per_run)
    );
    println!(
        "| `hm run --backend sandbox`, {steps}-step chain, image `host` | {} | {} |",
        ms(sandbox),
        ms(sandbox / steps as u32)
    );
    println!(
        "| docker backend per step / one `docker run` | | {:.2}x |",
        per_step.as_secs_f64() / per_run.as_secs_f64()
    );
}
