//! The fault suite (issue 11), on both backends (`sandbox::NAME`,
//! `docker::NAME`): `hm run` killed (SIGKILL) and interrupted (SIGINT) at
//! random moments, `hm cache clean` and an eviction by another process at
//! random moments, a full disk at random points, and a source file
//! rewritten every few milliseconds while runs go on. After each: nothing
//! left behind, a sound registry whose entries and stored parts agree, and
//! no wrong result (the next run prints what the source says).
//!
//! Moments are random but seeded: the seed is printed first, and
//! `HM_FAULT_SEED=N` replays a failure. The whole suite takes about a
//! minute (both backends, two at a time).

mod util;

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::disk::SmallDisk;
use util::rng::Rng;
use util::{envelope, step, Backend, Fixture, Run};

/// The pipeline every fault hits: a cached chain with a fork, the hits
/// that children boot from, and uncached leaves that print what they see
/// (in `/root`, which steps may write rootless too).
fn write_pipeline(fx: &Fixture) {
    let steps = [
        step(
            "tools",
            "head -c 200000 /dev/urandom > /root/tools; echo tools > /root/tools.txt",
        )
        .cache(json!({"policy": "forever"})),
        step("deps", "cat v.txt > /root/deps; sleep 0.1").cache(json!({"policy": "on_change", "paths": ["v.txt"]})),
        step("build", "cat /root/tools.txt /root/deps > /root/built").cache(json!({"policy": "forever"})),
        step("lint", "cat /root/deps"),
        step("test", "cat /root/built v.txt"),
    ];
    let edges = [
        ("tools", "deps", "builds_in"),
        ("deps", "build", "builds_in"),
        ("deps", "lint", "builds_in"),
        ("build", "test", "builds_in"),
    ];
    fx.write(".hm/pipeline.json", &envelope("ci", &steps, &edges, None).to_string());
}

/// Asserts that `run` passed and printed what the source `v` says.
fn assert_right(run: &Run, v: &str, context: &str) {
    assert_eq!(run.code, 0, "{context}: {}", run.dump());
    assert_eq!(
        run.stdout("test"),
        ["tools", v, v],
        "{context}: a wrong result: {}",
        run.dump()
    );
    assert_eq!(run.stdout("lint"), [v], "{context}: a wrong result: {}", run.dump());
}

/// `hm run --format json` with the orphan grace off (a killed run's
/// unregistered layers are collected at once).
fn run(fx: &Fixture) -> Run {
    Run::from(
        fx.command(&["run", "--format", "json"])
            .env("HM_CACHE_ORPHAN_GRACE", "0")
            .output()
            .unwrap(),
    )
}

fn spawn_run(fx: &Fixture) -> Child {
    fx.command(&["run", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

/// Waits (a few seconds at most) for the sandbox helpers of a killed `hm`
/// to die with it.
fn wait_for_helpers() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !util::processes_with("hm __sandbox").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries(fx: &Fixture) -> Vec<Value> {
    fx.cache_entries()
}

/// Nothing of `hm` is left, the registry is sound, and its entries' parts
/// are exactly the stored ones.
fn assert_sound(fx: &Fixture, context: &str) {
    fx.assert_clean();
    let registry = hm_vm::Registry::open(&fx.cache()).unwrap();
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new(), "{context}");
    fx.assert_parts_stored(context);
}

/// How long one run takes here, to pick moments within it.
fn measure(fx: &Fixture) -> Duration {
    fx.write("v.txt", "measure\n");
    let started = Instant::now();
    let first = run(fx);
    assert_right(&first, "measure", "a first run");
    started.elapsed()
}

/// `hm run` SIGKILLed at random moments (20 runs): the next run repairs
/// whatever the killed one left and prints the right thing.
fn sigkill_at_random_moments(b: Backend) {
    if !b.available() {
        return;
    }
    let mut rng = Rng::new("sigkill_at_random_moments");
    let fx = Fixture::on(b);
    write_pipeline(&fx);
    let window = measure(&fx).mul_f64(1.2);
    for round in 0..20 {
        let v = rng.pick(&["alpha", "beta", "gamma"]);
        fx.write("v.txt", &format!("{v}\n"));
        let delay = rng.below(window);
        let context = format!("round {round}: SIGKILL after {delay:?}");
        let child = spawn_run(&fx);
        std::thread::sleep(delay);
        signal(&child, "-KILL");
        let _ = child.wait_with_output();
        wait_for_helpers();
        assert_right(&run(&fx), v, &context);
        assert_sound(&fx, &context);
    }
}

/// `hm run` interrupted (SIGINT) at random moments (10 runs): it cleans up
/// after itself and exits 130 (or finished first), and the next run is
/// right.
fn sigint_at_random_moments(b: Backend) {
    if !b.available() {
        return;
    }
    let mut rng = Rng::new("sigint_at_random_moments");
    let fx = Fixture::on(b);
    write_pipeline(&fx);
    let window = measure(&fx).mul_f64(1.2);
    for round in 0..10 {
        let v = rng.pick(&["alpha", "beta", "gamma"]);
        fx.write("v.txt", &format!("{v}\n"));
        let delay = rng.below(window);
        let context = format!("round {round}: SIGINT after {delay:?}");
        let child = spawn_run(&fx);
        std::thread::sleep(delay);
        signal(&child, "-INT");
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        // Before `main` runs (the loader's first milliseconds) no program
        // can handle a signal: dying by it, having said nothing, is right.
        let before_main = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(2)
            && out.stderr.is_empty()
            && delay < Duration::from_millis(10);
        assert!(
            matches!(code, Some(130) | Some(0)) || before_main,
            "{context}: exit {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // An interrupted hm removes everything itself.
        fx.assert_clean();
        assert_right(&run(&fx), v, &context);
        assert_sound(&fx, &context);
    }
}

/// `hm cache clean` (5 runs) and an eviction by another process (5 runs:
/// `hm cache prune`, or another project's run storing with tight bounds)
/// at random moments of a run: the run passes with the right result.
fn cache_changes_by_another_process_at_random_moments(b: Backend) {
    if !b.available() {
        return;
    }
    let mut rng = Rng::new("cache_changes_by_another_process_at_random_moments");
    let fx = Fixture::on(b);
    write_pipeline(&fx);
    let other = Fixture::on(b);
    let filler: Vec<_> = (0..3)
        .map(|i| step(&format!("f{i}"), &format!("echo {i} > /opt/f")).cache(json!({"policy": "forever"})))
        .collect();
    other.write(".hm/pipeline.json", &envelope("other", &filler, &[], None).to_string());
    let window = measure(&fx).mul_f64(1.2);
    let changes = ["clean", "prune", "bounded run"];
    for round in 0..15 {
        // Five of each.
        let change = changes[round % 3];
        let v = rng.pick(&["alpha", "beta", "gamma"]);
        fx.write("v.txt", &format!("{v}\n"));
        let delay = rng.below(window);
        let context = format!("round {round}: {change} after {delay:?}");
        let child = spawn_run(&fx);
        std::thread::sleep(delay);
        let out = match change {
            "clean" => fx.hm(&["cache", "clean", "--yes"]),
            "prune" => fx.hm(&["cache", "prune", "--max-entries", "0"]),
            _ => other
                .command(&["run", "--format", "json"])
                .env("HM_CACHE_DIR", fx.cache())
                .env("HM_CACHE_MAX_ENTRIES", "1")
                .output()
                .unwrap(),
        };
        assert!(
            out.status.success(),
            "{context}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let build = Run::from(child.wait_with_output().unwrap());
        assert_right(&build, v, &context);
        assert_sound(&fx, &context);
    }
}

/// The cache's disk full at random points of a run (5 runs, each with a
/// random amount of room left): the run passes, or fails with the
/// full-disk message, never with a wrong result or anything left; once
/// there is room, the next run is right.
fn a_full_disk_at_random_points(b: Backend) {
    if !b.available() {
        return;
    }
    let mut rng = Rng::new("a_full_disk_at_random_points");
    let fx = Fixture::on(b);
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 16 << 20) else {
        return;
    };
    let cache = disk.cache();
    write_pipeline(&fx);
    let run_on_disk = || {
        Run::from(
            fx.command(&["run", "--format", "json"])
                .env("HM_CACHE_DIR", &cache)
                .env("HM_CACHE_ORPHAN_GRACE", "0")
                .output()
                .unwrap(),
        )
    };
    for round in 0..5 {
        let v = rng.pick(&["alpha", "beta", "gamma"]);
        fx.write("v.txt", &format!("{v}\n"));
        let filler = disk.fill();
        // Leave up to 1.5 MiB: enough for some steps, not for all.
        let room = rng.next() % (3 << 19);
        let len = std::fs::metadata(&filler).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap()
            .set_len(len.saturating_sub(room))
            .unwrap();
        let context = format!("round {round}: {room} bytes free");
        let full = run_on_disk();
        if full.code != 0 {
            assert_eq!(full.code, 1, "{context}: {}", full.dump());
            let messages: String = full
                .events
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
            assert!(messages.contains("is full"), "{context}: {}", full.dump());
        } else {
            assert_right(&full, v, &context);
        }
        util::assert_nothing_left(&cache);
        std::fs::remove_file(&filler).unwrap();
        let roomy = run_on_disk();
        assert_right(&roomy, v, &context);
        util::assert_nothing_left(&cache);
        let registry = hm_vm::Registry::open(&cache).unwrap();
        assert_eq!(registry.problems().unwrap(), Vec::<String>::new(), "{context}");
    }
    if b == Backend::Docker {
        util::remove_docker_images(&cache);
    }
}

/// `echo` of these words, as the shell prints it (empty words vanish).
fn echoed(words: &[&str]) -> String {
    words
        .iter()
        .filter(|w| !w.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A source file rewritten every few milliseconds during 20 runs of a step
/// cached on it (issue 11, item 1): no entry's snapshot disagrees with its
/// key. Afterwards, for every content the file had (and the empty file a
/// rewrite passes through), the step's hit shows that content, and so does
/// its child's sync.
fn a_source_file_rewritten_during_runs_never_poisons_the_cache(b: Backend) {
    if !b.available() {
        return;
    }
    let mut rng = Rng::new("a_source_file_rewritten_during_runs_never_poisons_the_cache");
    let fx = Fixture::on(b);
    fx.write("src/a.txt", "AAAA1\n");
    let steps = [
        step("copy", "cat src/a.txt > copy.txt").cache(json!({"policy": "on_change", "paths": ["src/a.txt"]})),
        step("show", "echo COPY $(cat copy.txt) SRC $(cat src/a.txt)"),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("ci", &steps, &[("copy", "show", "builds_in")], None).to_string(),
    );
    let values = ["BBBBBBBB0", "BBBBBBBB1", "BBBBBBBB2"];
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let path = fx.project().join("src/a.txt");
        let pause = Duration::from_micros(2000 + rng.next() % 3000);
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                // Truncated, then written: readers see the empty file too.
                std::fs::write(&path, values[i % values.len()]).unwrap();
                i += 1;
                std::thread::sleep(pause);
            }
        })
    };
    let mut failures = Vec::new();
    for round in 0..20 {
        let run = run(&fx);
        if run.code != 0 {
            failures.push(format!("round {round}: {}", run.dump()));
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    let mut poisoned = Vec::new();
    for v in values.iter().copied().chain(["", "AAAA1"]) {
        fx.write("src/a.txt", v);
        let run = run(&fx);
        assert_eq!(run.code, 0, "{}", run.dump());
        let shown = run.stdout("show");
        let expected = echoed(&["COPY", v, "SRC", v]);
        if shown != [expected.clone()] {
            poisoned.push(format!(
                "`{v}`: {} shows {shown:?}, not {expected:?}",
                run.status("copy")
            ));
        }
    }
    assert!(
        poisoned.is_empty(),
        "poisoned entries: {poisoned:#?}\nentries: {:#?}",
        entries(&fx)
    );
    assert_sound(&fx, "after the rewrites");
}

/// An unprivileged uid (nobody), for the rootless rounds.
const NOBODY: u32 = 65534;

/// `hm ARGS` as nobody (the sandbox in a user namespace), in the fixture's
/// project, with its cache; the fixture's files are nobody's.
fn as_nobody(fx: &Fixture, args: &[&str]) -> std::process::Command {
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(fx.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut command = std::process::Command::new("setpriv");
    command
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            util::hm_bin(),
        ])
        .args(args)
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HM_CACHE_ORPHAN_GRACE", "0")
        .env("HOME", fx.dir.path())
        .env_remove("HM_BACKEND")
        .env_remove("HM_NETWORK")
        .stdin(Stdio::null());
    command
}

/// An unprivileged user's runs under faults (rootless): SIGKILLed at
/// random moments (10 runs), then a source file rewritten during 10 runs;
/// nothing left, the registry sound, no wrong result, no poisoned entry.
#[test]
fn an_unprivileged_users_runs_under_faults() {
    if !util::sandbox_available() || !util::root_available("acting as nobody") {
        // Unprivileged already: the sandbox tests above are rootless.
        return;
    }
    let mut rng = Rng::new("an_unprivileged_users_runs_under_faults");
    let fx = Fixture::new();
    write_pipeline(&fx);
    fx.write("v.txt", "measure\n");
    let started = Instant::now();
    let first = Run::from(as_nobody(&fx, &["run", "--format", "json"]).output().unwrap());
    assert_right(&first, "measure", "a first run");
    let window = started.elapsed().mul_f64(1.2);
    for round in 0..10 {
        let v = rng.pick(&["alpha", "beta", "gamma"]);
        fx.write("v.txt", &format!("{v}\n"));
        let delay = rng.below(window);
        let context = format!("rootless round {round}: SIGKILL after {delay:?}");
        let child = as_nobody(&fx, &["run", "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        signal(&child, "-KILL");
        let _ = child.wait_with_output();
        wait_for_helpers();
        let next = Run::from(as_nobody(&fx, &["run", "--format", "json"]).output().unwrap());
        assert_right(&next, v, &context);
        fx.assert_clean();
    }

    fx.write("src/a.txt", "AAAA1\n");
    let steps = [
        step("copy", "cat src/a.txt > copy.txt").cache(json!({"policy": "on_change", "paths": ["src/a.txt"]})),
        step("show", "echo COPY $(cat copy.txt) SRC $(cat src/a.txt)"),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("ci", &steps, &[("copy", "show", "builds_in")], None).to_string(),
    );
    let values = ["BBBBBBBB0", "BBBBBBBB1", "BBBBBBBB2"];
    let stop = Arc::new(AtomicBool::new(false));
    // Set up (chowned) before the writer starts.
    let mut command = as_nobody(&fx, &["run", "--format", "json"]);
    let writer = {
        let stop = stop.clone();
        let path = fx.project().join("src/a.txt");
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                std::fs::write(&path, values[i % values.len()]).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    for round in 0..10 {
        let run = Run::from(command.output().unwrap());
        assert_eq!(run.code, 0, "rootless rewrite round {round}: {}", run.dump());
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    for v in values.iter().copied().chain([""]) {
        fx.write("src/a.txt", v);
        let run = Run::from(as_nobody(&fx, &["run", "--format", "json"]).output().unwrap());
        assert_eq!(run.code, 0, "{}", run.dump());
        assert_eq!(
            run.stdout("show"),
            [echoed(&["COPY", v, "SRC", v])],
            "poisoned: {}",
            run.dump()
        );
    }
    fx.assert_clean();
    let registry = hm_vm::Registry::open(&fx.cache()).unwrap();
    assert_eq!(registry.problems().unwrap(), Vec::<String>::new());
}

contract!(
    sigkill_at_random_moments,
    sigint_at_random_moments,
    cache_changes_by_another_process_at_random_moments,
    a_full_disk_at_random_points,
    a_source_file_rewritten_during_runs_never_poisons_the_cache,
);
