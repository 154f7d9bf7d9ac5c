//! The persistent snapshot cache on both backends (`sandbox::NAME`,
//! `docker::NAME`): what hits, what misses and why, what children see,
//! concurrency, crashes and bounds.

mod util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{envelope, sandbox_available, step, Backend, Fixture, Run, Step};

fn write(fx: &Fixture, steps: &[Step], edges: &[(&str, &str, &str)]) {
    fx.write(".hm/pipeline.json", &envelope("ci", steps, edges, None).to_string());
}

fn run(fx: &Fixture) -> Run {
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    run
}

/// Runs and asserts whether the single step `s` hit, and why it missed.
fn expect(fx: &Fixture, hit: bool, reason: Option<&str>) {
    let run = run(fx);
    assert_eq!(run.status("s") == "cache_hit", hit, "{}", run.dump());
    if let Some(reason) = reason {
        assert_eq!(run.miss_reason("s").as_deref(), Some(reason), "{}", run.dump());
    }
}

fn forever_misses_on_its_inputs_and_nothing_else(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("src.txt", "v1\n");
    let forever = json!({"policy": "forever", "env_keys": ["HM_TEST_TOOL_VERSION"]});
    let base = step("s", "echo run").cache(forever.clone());
    write(&fx, std::slice::from_ref(&base), &[]);
    expect(&fx, false, None);
    expect(&fx, true, None);
    fx.write("src.txt", "v2\n");
    expect(&fx, true, None);
    write(&fx, &[step("s", "echo run again").cache(forever.clone())], &[]);
    expect(&fx, false, Some("command changed"));
    write(
        &fx,
        &[step("s", "echo run again").cache(forever.clone()).env("CC", "clang")],
        &[],
    );
    expect(&fx, false, Some("env changed: CC"));
    expect(&fx, true, None);
    let with_tool = fx
        .command(&["run", "--format", "json"])
        .env("HM_TEST_TOOL_VERSION", "2")
        .output()
        .unwrap();
    let with_tool = Run::from(with_tool);
    assert_eq!(with_tool.status("s"), "passed");
    assert_eq!(
        with_tool.miss_reason("s").as_deref(),
        Some("env_keys changed: HM_TEST_TOOL_VERSION")
    );
    // -e overrides are part of the environment too (the explanation
    // compares with the latest entry, made with the variable set).
    let run = fx.run_json(&["-e", "CC=gcc"]);
    assert_eq!(
        run.miss_reason("s").as_deref(),
        Some("env changed: CC; env_keys changed: HM_TEST_TOOL_VERSION")
    );
    // A key from the DSL is one more input.
    let keyed = json!({"policy": "forever", "key": "v2"});
    write(&fx, &[step("s", "echo run again").cache(keyed).env("CC", "clang")], &[]);
    expect(&fx, false, None);
    // `--no-cache` executes and refreshes.
    let run = fx.run_json(&["--no-cache"]);
    assert_eq!(run.status("s"), "passed");
    expect(&fx, true, None);
    fx.assert_clean();
}

fn a_changed_parent_or_image_invalidates(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let forever = json!({"policy": "forever"});
    let chain = |parent_cmd: &str, image: Option<&str>| {
        write(
            &fx,
            &[
                step("p", parent_cmd).cache(forever.clone()).image(image),
                step("s", "echo child").cache(forever.clone()),
            ],
            &[("p", "s", "builds_in")],
        )
    };
    chain("echo parent", Some("host"));
    expect(&fx, false, None);
    expect(&fx, true, None);
    chain("echo parent 2", Some("host"));
    expect(&fx, false, Some("parent changed"));
    let rootfs = fx.dir.path().join("rootfs");
    util::tiny_rootfs(&rootfs, &["/bin/sh"]);
    let tiny = match b {
        Backend::Sandbox => {
            assert!(fx
                .hm(&["image", "import", "tiny", rootfs.to_str().unwrap()])
                .status
                .success());
            "tiny".to_owned()
        }
        Backend::Docker => {
            let name = format!("hm-test/tiny-{}", std::process::id());
            let tar = fx.dir.path().join("tiny.tar");
            util::tar_dir(&rootfs, &tar);
            util::docker(&["import", tar.to_str().unwrap(), &name]);
            name
        }
    };
    chain("echo parent 2", Some(&tiny));
    let run = run(&fx);
    assert_eq!(
        run.miss_reason("p"),
        Some(format!("image changed: {} -> {tiny}", b.image()))
    );
    assert_eq!(run.status("s"), "passed");
    if b == Backend::Docker {
        fx.hm(&["cache", "clean", "--yes"]);
        util::docker(&["rmi", &tiny]);
    }
}

fn ttl_windows(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    write(
        &fx,
        &[step("s", "true").cache(json!({"policy": "ttl", "duration_seconds": 3600}))],
        &[],
    );
    expect(&fx, false, None);
    expect(&fx, true, None);
    write(
        &fx,
        &[step("s", "true").cache(json!({"policy": "ttl", "duration_seconds": 1}))],
        &[],
    );
    expect(&fx, false, None);
    // The next second is the next window.
    std::thread::sleep(Duration::from_millis(1100));
    expect(&fx, false, Some("ttl window passed"));
}

fn on_change_follows_its_files(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("Cargo.lock", "v1\n");
    fx.write("src/a.rs", "a\n");
    fx.write("README", "r\n");
    let policy = json!({"policy": "on_change", "paths": ["Cargo.lock", "src/*.rs", "build.rs"]});
    write(&fx, &[step("s", "true").cache(policy)], &[]);
    expect(&fx, false, None);
    expect(&fx, true, None);
    fx.write("README", "edited\n");
    fx.write("src/notes.txt", "not rust\n");
    expect(&fx, true, None);
    fx.write("src/a.rs", "edited\n");
    expect(&fx, false, Some("files changed: src/a.rs"));
    fx.write("Cargo.lock", "v2\n");
    fx.write("src/b.rs", "b\n");
    expect(&fx, false, Some("files changed: Cargo.lock, src/b.rs"));
    // A missing path is an input too: creating it invalidates.
    fx.write("build.rs", "fn main() {}\n");
    expect(&fx, false, Some("files changed: build.rs"));
    std::fs::remove_file(fx.project().join("src/b.rs")).unwrap();
    expect(&fx, false, Some("files changed: src/b.rs"));
    // Ignored files are not source.
    fx.write(".gitignore", "src/generated.rs\n");
    expect(&fx, true, None);
    fx.write("src/generated.rs", "ignored\n");
    expect(&fx, true, None);
}

fn compose_and_none(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("lock", "1\n");
    fx.write("other", "1\n");
    let compose = json!({"policy": "compose", "sub_policies": [
        {"policy": "forever", "env_keys": ["HM_TEST_COMPOSE"]},
        {"policy": "on_change", "paths": ["lock"]}]});
    write(
        &fx,
        &[
            step("s", "true").cache(compose),
            step("n", "true").cache(json!({"policy": "none"})),
        ],
        &[],
    );
    let first = run(&fx);
    assert_eq!(first.executed(), ["n", "s"]);
    fx.write("other", "2\n");
    let second = run(&fx);
    assert_eq!(second.executed(), ["n"], "`none` always runs; the composed policy hit");
    fx.write("lock", "2\n");
    assert_eq!(run(&fx).miss_reason("s").as_deref(), Some("files changed: lock"));
    let with_var = Run::from(
        fx.command(&["run", "--format", "json"])
            .env("HM_TEST_COMPOSE", "x")
            .output()
            .unwrap(),
    );
    assert_eq!(
        with_var.miss_reason("s").as_deref(),
        Some("env_keys changed: HM_TEST_COMPOSE")
    );
}

fn a_child_of_a_hit_sees_todays_source(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("keep.txt", "keep\n");
    fx.write("gone.txt", "gone\n");
    fx.write("edit.txt", "v1\n");
    let steps = [
        step("root", "echo built > /workspace/artifact; echo built-root").cache(json!({"policy": "forever"})),
        step("child", "ls; cat edit.txt artifact"),
    ];
    write(&fx, &steps, &[("root", "child", "builds_in")]);
    let first = run(&fx);
    assert_eq!(
        first.logs("child"),
        ["artifact", "edit.txt", "gone.txt", "keep.txt", "v1", "built"]
    );
    std::fs::remove_file(fx.project().join("gone.txt")).unwrap();
    fx.write("edit.txt", "v2\n");
    fx.write("new.txt", "new\n");
    let second = run(&fx);
    assert_eq!(second.status("root"), "cache_hit");
    assert_eq!(
        second.logs("child"),
        ["artifact", "edit.txt", "keep.txt", "new.txt", "v2", "built"]
    );
    fx.assert_clean();
}

/// Failed once (issue 11) with nothing kept to explain it: every check
/// now reports the run's events and stderr and the cache's entries.
fn a_cached_chain_reruns_from_the_changed_step(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("lock", "1\n");
    fx.write("main.c", "int main;\n");
    let steps = [
        step("toolchain", "echo tools > /opt/tools").cache(json!({"policy": "forever"})),
        step("deps", "cat lock > /opt/deps").cache(json!({"policy": "on_change", "paths": ["lock"]})),
        step("build", "cat /opt/tools /opt/deps > /opt/built").cache(json!({"policy": "forever"})),
        step("test", "cat /opt/built main.c"),
    ];
    let edges = [
        ("toolchain", "deps", "builds_in"),
        ("deps", "build", "builds_in"),
        ("build", "test", "builds_in"),
    ];
    write(&fx, &steps, &edges);
    let explain = |run: &Run| format!("{}\ncache entries: {:#?}", run.dump(), entries(&fx));
    let first = run(&fx);
    assert_eq!(
        first.executed(),
        ["build", "deps", "test", "toolchain"],
        "{}",
        explain(&first)
    );
    fx.write("main.c", "int main(void);\n");
    let second = run(&fx);
    assert_eq!(second.executed(), ["test"], "{}", explain(&second));
    assert_eq!(
        second.stdout("test"),
        ["tools", "1", "int main(void);"],
        "{}",
        explain(&second)
    );
    fx.write("lock", "2\n");
    let third = run(&fx);
    assert_eq!(third.executed(), ["build", "deps", "test"], "{}", explain(&third));
    assert_eq!(
        third.miss_reason("build").as_deref(),
        Some("parent changed"),
        "{}",
        explain(&third)
    );
    assert_eq!(
        third.stdout("test"),
        ["tools", "2", "int main(void);"],
        "{}",
        explain(&third)
    );
    fx.assert_clean();
}

/// `hm cache ls --format json`.
fn entries(fx: &Fixture) -> Vec<Value> {
    fx.cache_entries()
}

fn chain_of_cached_steps(n: usize) -> (Vec<Step>, Vec<(String, String)>) {
    let steps: Vec<Step> = (0..n)
        .map(|i| {
            let cmd = format!("head -c 200000 /dev/urandom > /opt/blob{i}; cat v.txt");
            step(&format!("s{i}"), &cmd).cache(json!({"policy": "on_change", "paths": ["v.txt"]}))
        })
        .collect();
    let edges = (1..n).map(|i| (format!("s{}", i - 1), format!("s{i}"))).collect();
    (steps, edges)
}

fn write_chain(fx: &Fixture, n: usize) {
    let (steps, edges) = chain_of_cached_steps(n);
    let edges: Vec<(&str, &str, &str)> = edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "builds_in"))
        .collect();
    write(fx, &steps, &edges);
}

fn two_runs_at_once_share_one_cache(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("v.txt", "1\n");
    write_chain(&fx, 4);
    let a = fx
        .command(&["run", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = fx
        .command(&["run", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for child in [a, b] {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{}", run.dump());
        assert!(
            !run.stderr.contains("warning"),
            "both runs use the cache: {}",
            run.stderr
        );
    }
    let third = run(&fx);
    assert!(third.executed().is_empty(), "{}", third.dump());
    assert_eq!(entries(&fx).len(), 4);
    fx.assert_parts_stored("the cache");
    fx.assert_clean();
}

fn a_killed_run_leaves_a_cache_the_next_run_uses_or_repairs(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    write_chain(&fx, 5);
    for round in 0..8u64 {
        fx.write("v.txt", &format!("{round}\n"));
        // Tight bounds: every run commits and evicts.
        let mut child = fx
            .command(&["run", "--format", "json"])
            .env("HM_CACHE_MAX_ENTRIES", "3")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A different instant each round: during boots, commits, evictions.
        std::thread::sleep(Duration::from_millis(40 + round * 47 % 300));
        let _ = std::process::Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !util::processes_with("hm __sandbox").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let next = fx
            .command(&["run", "--format", "json"])
            .env("HM_CACHE_MAX_ENTRIES", "3")
            .env("HM_CACHE_ORPHAN_GRACE", "0")
            .output()
            .unwrap();
        let next = Run::from(next);
        assert_eq!(next.code, 0, "round {round}: {}", next.dump());
        // The killed run may have finished and kept the chain's end, whose
        // key covers this round's `v.txt`: a hit is this round's result too.
        if next.status("s4") != "cache_hit" {
            assert_eq!(next.logs("s4"), [round.to_string()], "round {round}");
        }
        assert!(entries(&fx).len() <= 3);
        fx.assert_parts_stored("the cache");
        fx.assert_clean();
    }
}

fn eviction_spares_what_another_run_holds(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let held = [
        step("held", "head -c 300000 /dev/urandom > /opt/big; echo made").cache(json!({"policy": "forever"})),
        step("user", "echo started; sleep 8; test -s /opt/big && echo still-there"),
    ];
    write(&fx, &held, &[("held", "user", "builds_in")]);
    run(&fx);
    // Another project on the same cache fills it while `user` runs on `held`.
    let other = Fixture::on(b);
    let filler: Vec<Step> = (0..3)
        .map(|i| {
            step(&format!("f{i}"), &format!("head -c 100000 /dev/urandom > /opt/f{i}"))
                .cache(json!({"policy": "forever"}))
        })
        .collect();
    other.write(".hm/pipeline.json", &envelope("filler", &filler, &[], None).to_string());
    let mut other_output = None;
    let run = fx.run_json_when(&[], "started", || {
        let out = other
            .command(&["run", "--format", "json"])
            .env("HM_CACHE_DIR", fx.cache())
            .env("HM_CACHE_MAX_SIZE", "1")
            .output()
            .unwrap();
        other_output = Some(Run::from(out));
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.status("held"), "cache_hit");
    assert_eq!(run.logs("user"), ["started", "still-there"]);
    let other_run = other_output.unwrap();
    assert_eq!(other_run.code, 0, "{}", other_run.dump());
    // The bound was applied to everything but the held entry...
    let left: Vec<String> = entries(&fx)
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["held"]);
    // ...which goes once nobody holds it.
    let pruned = fx.hm(&["cache", "prune", "--max-size", "1"]);
    assert!(pruned.status.success());
    assert!(entries(&fx).is_empty());
    fx.assert_parts_stored("the cache");
}

fn a_layer_removed_by_hand_or_a_damaged_registry_means_a_rerun(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let steps = [
        step("root", "echo root > /opt/root").cache(json!({"policy": "forever"})),
        step("child", "cat /opt/root"),
    ];
    write(&fx, &steps, &[("root", "child", "builds_in")]);
    run(&fx);
    // Someone deletes a stored layer (on docker, the entry's image).
    let part = entries(&fx)[0]["parts"][0].as_str().unwrap().to_owned();
    match b {
        Backend::Sandbox => std::fs::remove_dir_all(fx.cache().join("layers").join(&part)).unwrap(),
        Backend::Docker => {
            let (tag, _) = fx.cache_images().into_iter().find(|(_, id)| *id == part).unwrap();
            util::docker(&["rmi", &tag]);
        }
    }
    let again = run(&fx);
    assert_eq!(again.status("root"), "passed", "never a wrong hit: {}", again.dump());
    assert!(
        again.miss_reason("root").unwrap().contains("incomplete"),
        "{}",
        again.dump()
    );
    assert_eq!(again.logs("child"), ["root"]);
    assert_eq!(run(&fx).status("root"), "cache_hit");
    fx.assert_parts_stored("the cache");

    // Someone scribbles over the registry.
    std::fs::write(fx.cache().join("registry.db"), vec![0x42; 8192]).unwrap();
    let _ = std::fs::remove_file(fx.cache().join("registry.db-wal"));
    let _ = std::fs::remove_file(fx.cache().join("registry.db-shm"));
    let rebuilt = fx.run_json(&[]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.dump());
    assert_eq!(rebuilt.status("root"), "passed");
    assert!(rebuilt.stderr.contains("has been reset"), "{}", rebuilt.stderr);
    assert_eq!(run(&fx).status("root"), "cache_hit");
}

/// Every template names its pipeline `ci`: `hm cache du` summed three
/// projects as `ci: 8 entries`, and a bad entry could only go by key or
/// with the whole cache. Usage is by project, pipeline and backend, and
/// `hm cache rm STEP` removes that step's entries in this project (and
/// what is built on them), nothing of another project's step of the same
/// name.
fn projects_are_told_apart_and_a_step_is_removed_by_name(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let steps = [
        step("prep", "true").cache(json!({"policy": "forever"})),
        step("build", "true").cache(json!({"policy": "forever"})),
    ];
    write(&fx, &steps, &[("prep", "build", "builds_in")]);
    run(&fx);
    let other = fx.dir.path().join("other");
    std::fs::create_dir_all(other.join(".hm")).unwrap();
    std::fs::copy(fx.project().join(".hm/pipeline.json"), other.join(".hm/pipeline.json")).unwrap();
    let in_other = |args: &[&str]| fx.command(args).current_dir(&other).output().unwrap();
    assert!(in_other(&["run", "--format", "json"]).status.success());
    assert_eq!(entries(&fx).len(), 4);

    let du = fx.hm(&["cache", "du", "--format", "json"]);
    let du: Value = serde_json::from_slice(&du.stdout).unwrap();
    let groups = du["pipelines"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{du}");
    assert!(groups
        .iter()
        .all(|g| g["pipeline"] == "ci" && g["entries"] == 2 && g["backend"] == b.name()));
    assert_ne!(groups[0]["project"], groups[1]["project"]);
    let human = String::from_utf8_lossy(&fx.hm(&["cache", "du"]).stdout).into_owned();
    assert!(human.contains(&format!("    ci ({}): 2 entries", b.name())), "{human}");

    // `build` here only; the other project's stays.
    let rm = fx.hm(&["cache", "rm", "build"]);
    assert!(rm.status.success(), "{}", String::from_utf8_lossy(&rm.stderr));
    let left: Vec<Value> = entries(&fx);
    assert_eq!(left.len(), 3);
    assert_eq!(left.iter().filter(|e| e["step"] == "build").count(), 1);
    // A step of no pipeline by that slug is an error naming both.
    let wrong = fx.hm(&["cache", "rm", "prep", "--pipeline", "nightly"]);
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("`prep`") && err.contains("`nightly`"), "{err}");
    // `prep` in the other project takes what is built on it along.
    let rm = in_other(&["cache", "rm", "prep", "--pipeline", "ci"]);
    assert!(rm.status.success(), "{}", String::from_utf8_lossy(&rm.stderr));
    let left: Vec<Value> = entries(&fx);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["step"], "prep");
    fx.assert_parts_stored("the cache");
}

fn cache_commands(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let steps = [
        step("a", "head -c 50000 /dev/urandom > /opt/a").cache(json!({"policy": "forever"})),
        step("b", "true").cache(json!({"policy": "forever"})),
    ];
    write(&fx, &steps, &[("a", "b", "builds_in")]);
    run(&fx);
    let ls = fx.hm(&["cache", "ls"]);
    let table = String::from_utf8_lossy(&ls.stdout).into_owned();
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "STEP",
            "PIPELINE",
            "PROJECT",
            "BACKEND",
            "KEY",
            "SIZE",
            "AGE",
            "LAST USED"
        ]
    );
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains(" ci "), "{table}");
    let du = fx.hm(&["cache", "du", "--format", "json"]);
    let du: Value = serde_json::from_slice(&du.stdout).unwrap();
    assert_eq!(du["entries"], 2);
    assert!(du["bytes"].as_u64().unwrap() >= 50000);
    assert_eq!(du["pipelines"][0]["pipeline"], "ci");
    let human = String::from_utf8_lossy(&fx.hm(&["cache", "du"]).stdout).into_owned();
    assert!(human.starts_with("total: 2 entries"), "{human}");

    // Entries used just now are not older than a day.
    assert!(fx.hm(&["cache", "prune", "--older-than", "1d"]).status.success());
    assert_eq!(entries(&fx).len(), 2);
    let bad = fx.hm(&["cache", "prune", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--older-than"));
    assert!(fx.hm(&["cache", "prune", "--max-entries", "1"]).status.success());
    assert_eq!(entries(&fx).len(), 1);
    fx.assert_parts_stored("the cache");

    // Not a terminal: `clean` does not ask.
    let clean = fx.hm(&["cache", "clean"]);
    assert!(clean.status.success());
    assert!(String::from_utf8_lossy(&clean.stderr).contains("removed 1 entries"));
    assert!(entries(&fx).is_empty());
    fx.assert_parts_stored("the cache");
    assert_eq!(run(&fx).executed(), ["a", "b"]);
    fx.assert_clean();
}

/// Issue 11, item 4: `hm cache clean`, `rm` and `prune` while a build is
/// about to boot from an entry leave that entry (and say so), and the build
/// passes; with `--wait` they remove it once the build is done.
fn cache_commands_never_break_a_running_build(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    let steps = [
        step("held", "head -c 300000 /dev/urandom > /opt/big").cache(json!({"policy": "forever"})),
        step("pause", "echo started; sleep 3"),
        // Boots from `held` only once `pause` is done.
        step("user", "test -s /opt/big && echo still-there"),
    ];
    write(
        &fx,
        &steps,
        &[("held", "user", "builds_in"), ("pause", "user", "depends_on")],
    );
    run(&fx);
    let key = entries(&fx)[0]["key"].as_str().unwrap().to_owned();
    let commands: [&[&str]; 3] = [
        &["cache", "clean", "--yes"],
        &["cache", "rm", &key[..12]],
        &["cache", "prune", "--max-entries", "0"],
    ];
    for command in commands {
        let mut during = None;
        let build = fx.run_json_when(&[], "started", || during = Some(fx.hm(command)));
        let during = during.unwrap();
        let said = String::from_utf8_lossy(&during.stderr).into_owned();
        assert!(during.status.success(), "{command:?}: {said}");
        assert_eq!(build.code, 0, "{command:?}: {}", build.dump());
        assert_eq!(build.status("held"), "cache_hit");
        assert_eq!(build.stdout("user"), ["still-there"], "{command:?}: {}", build.dump());
        assert!(said.contains("running build"), "{command:?} says what it kept: {said}");
        assert_eq!(entries(&fx).len(), 1, "{command:?} kept the entry in use");
        fx.assert_parts_stored("the cache");
    }
    let mut waiting = None;
    let build = fx.run_json_when(&[], "started", || {
        waiting = Some(
            fx.command(&["cache", "clean", "--yes", "--wait"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        )
    });
    assert_eq!(build.code, 0, "{}", build.dump());
    assert_eq!(build.stdout("user"), ["still-there"]);
    let waited = waiting.unwrap().wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&waited.stderr).into_owned();
    assert!(waited.status.success(), "{said}");
    assert!(
        said.contains("waiting for running builds") && said.contains("removed 1 entries"),
        "{said}"
    );
    assert!(entries(&fx).is_empty());
    fx.assert_parts_stored("the cache");
    fx.assert_clean();
}

/// Issue 11, item 5: a hit whose child was expected to hit too, but
/// misses (its source changed while the build ran), is still there when
/// the child boots from it, whatever another process evicts meanwhile.
fn another_process_evicting_never_fails_a_build(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("f", "1\n");
    let steps = [
        step("r", "echo r > /opt/r").cache(json!({"policy": "forever"})),
        step("pause", "echo started; sleep 3"),
        step("a", "cat f /opt/r").cache(json!({"policy": "on_change", "paths": ["f"]})),
    ];
    write(&fx, &steps, &[("r", "a", "builds_in"), ("pause", "a", "depends_on")]);
    run(&fx);
    let mut evicted = None;
    let build = fx.run_json_when(&[], "started", || {
        fx.write("f", "2\n");
        evicted = Some(fx.hm(&["cache", "prune", "--max-entries", "0"]));
    });
    let evicted = evicted.unwrap();
    assert!(evicted.status.success(), "{}", String::from_utf8_lossy(&evicted.stderr));
    assert_eq!(build.code, 0, "{}", build.dump());
    assert_eq!(build.status("r"), "cache_hit");
    assert_eq!(build.status("a"), "passed", "{}", build.dump());
    assert_eq!(build.stdout("a"), ["2", "r"]);
    fx.assert_parts_stored("the cache");
    fx.assert_clean();
}

/// A chain of `n` cached steps, each adding 1 MiB; `s{pause}` says
/// `counting` and waits a moment.
fn write_mib_chain(fx: &Fixture, n: usize, pause: usize) {
    let steps: Vec<Step> = (0..n)
        .map(|i| {
            let mut cmd = format!("head -c 1048576 /dev/urandom > /opt/blob{i}");
            if i == pause {
                cmd.push_str("; echo counting; sleep 1");
            }
            step(&format!("s{i}"), &cmd).cache(json!({"policy": "forever"}))
        })
        .collect();
    let edges: Vec<(String, String)> = (1..n).map(|i| (format!("s{}", i - 1), format!("s{i}"))).collect();
    let edges: Vec<(&str, &str, &str)> = edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "builds_in"))
        .collect();
    write(fx, &steps, &edges);
}

/// The steps of the entries left, in chain order.
fn kept_steps(fx: &Fixture) -> Vec<String> {
    let mut steps: Vec<String> = entries(fx)
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect();
    steps.sort_by_key(|s| s[1..].parse::<usize>().unwrap());
    steps
}

/// Issue 15: with room for 4 entries, a 12-step chain keeps its last 4
/// (each new entry makes its ancestors unnecessary: the oldest goes, not
/// the newest), never holds more than 4 while it runs, and the next run
/// executes nothing: the last step is a hit and what comes before it is
/// not needed. Evicting the chain's ancestors frees no bytes on the
/// sandbox (the last entry's layers stack theirs); `du` and `prune` count
/// each layer once. Over a byte bound, evicting an ancestor would free
/// nothing: the chain's end goes, so the start of the chain stays, within
/// the bound (issue 11, item 12).
fn eviction_keeps_the_end_of_a_chain_within_bounds_during_the_run(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    write_mib_chain(&fx, 12, 9);
    fx.write(".hm/config.toml", "[cache]\nmax_entries = 4\n");
    let mut during = None;
    let build = fx.run_json_when(&[], "counting", || during = Some(entries(&fx).len()));
    assert_eq!(build.code, 0, "{}", build.dump());
    assert!(
        during.unwrap() <= 4,
        "{} entries while the run went on",
        during.unwrap()
    );
    assert_eq!(kept_steps(&fx), ["s8", "s9", "s10", "s11"]);
    let again = run(&fx);
    assert_eq!(again.executed(), Vec::<String>::new(), "{}", again.dump());
    assert_eq!(again.status("s11"), "cache_hit");
    for i in 0..8 {
        assert_eq!(again.status(&format!("s{i}")), "skipped", "s{i} is not needed");
    }
    assert_eq!(kept_steps(&fx), ["s8", "s9", "s10", "s11"]);

    let du: Value = serde_json::from_slice(&fx.hm(&["cache", "du", "--format", "json"]).stdout).unwrap();
    let by_pipeline: u64 = du["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(du["entries"], 4);
    assert_eq!(du["bytes"].as_u64().unwrap(), by_pipeline, "{du}");
    let pruned = fx.hm(&["cache", "prune", "--max-entries", "2"]);
    let said = String::from_utf8_lossy(&pruned.stderr).into_owned();
    assert!(said.starts_with("pruned 2 entries, freed "), "{said}");
    assert_eq!(kept_steps(&fx), ["s10", "s11"]);
    if b == Backend::Sandbox {
        assert!(
            said.starts_with("pruned 2 entries, freed 0 B"),
            "s11's layers are the ancestors' too: {said}"
        );
        let du_after: Value = serde_json::from_slice(&fx.hm(&["cache", "du", "--format", "json"]).stdout).unwrap();
        assert_eq!(du_after["bytes"], du["bytes"]);
    }
    assert!(run(&fx).executed().is_empty());
    fx.assert_parts_stored("the cache");

    // A byte bound of 6.5 MiB: the chain's start stays, within the bound.
    fx.write(".hm/config.toml", "[cache]\nmax_size = \"6.5MiB\"\n");
    assert!(fx.hm(&["cache", "clean", "--yes"]).status.success());
    run(&fx);
    let kept = kept_steps(&fx);
    assert!(kept.len() >= 3, "{kept:?}");
    let start: Vec<String> = (0..kept.len()).map(|i| format!("s{i}")).collect();
    assert_eq!(kept, start);
    let du: Value = serde_json::from_slice(&fx.hm(&["cache", "du", "--format", "json"]).stdout).unwrap();
    assert!(du["bytes"].as_u64().unwrap() <= 6_815_744, "{du}");
    fx.assert_parts_stored("the cache");
    fx.assert_clean();
}

/// Issue 15: the default entry bound (256) made a 1,000-step pipeline run
/// 744 steps again every time, its cache keeping the start of each chain.
/// Bounded to 100 entries, a 1,000-step pipeline (50 chains of 20) keeps
/// every chain's last step, so its second run executes no step: the last
/// steps are hits, and what comes before them is not needed (or a hit,
/// where an ancestor's entry stayed too).
#[test]
fn a_thousand_step_pipeline_bounded_to_100_entries_runs_nothing_the_second_time() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    let mut steps = Vec::new();
    let mut edges = Vec::new();
    for c in 0..50 {
        for i in 0..20 {
            let key = format!("c{c}s{i}");
            steps.push(step(&key, &format!("true {key}")).cache(json!({"policy": "forever"})));
            if i > 0 {
                edges.push((format!("c{c}s{}", i - 1), key));
            }
        }
    }
    let edges: Vec<(&str, &str, &str)> = edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str(), "builds_in"))
        .collect();
    write(&fx, &steps, &edges);
    fx.write(".hm/config.toml", "[cache]\nmax_entries = 100\n");
    let count = |run: &Run, kind: &str| run.events.iter().filter(|e| e["kind"] == kind).count();
    let first = run(&fx);
    assert_eq!(count(&first, "step_start"), 1000);
    let kept: BTreeSet<String> = entries(&fx)
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept.len(), 100);
    for c in 0..50 {
        assert!(kept.contains(&format!("c{c}s19")), "chain {c}'s last step: {kept:?}");
    }
    let second = run(&fx);
    assert_eq!(count(&second, "step_start"), 0, "{}", second.stderr);
    assert_eq!(count(&second, "step_cache_hit"), 100);
    let not_needed = second
        .events
        .iter()
        .filter(|e| e["kind"] == "step_skipped" && e["reason"] == "not needed: what comes after it is cached")
        .count();
    assert_eq!(not_needed, 900);
    assert_eq!(entries(&fx).len(), 100);
    fx.assert_clean();
}

#[test]
fn configuration_sets_the_bounds_and_the_scope() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    // Different commands: identical steps would share one entry.
    let steps: Vec<Step> = (0..3)
        .map(|i| step(&format!("s{i}"), &format!("echo {i}")).cache(json!({"policy": "forever"})))
        .collect();
    write(&fx, &steps, &[]);
    fx.write(
        ".hm/config.toml",
        "[cache]\nmax_entries = 2\nscope = \"shared-scope\"\n",
    );
    run(&fx);
    let left = entries(&fx);
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e["project"] == "shared-scope"));
    // A clone elsewhere with the same scope shares the entries.
    let clone = Fixture::new();
    write(&clone, &steps, &[]);
    clone.write(
        ".hm/config.toml",
        "[cache]\nmax_entries = 2\nscope = \"shared-scope\"\n",
    );
    let shared = Run::from(
        clone
            .command(&["run", "--format", "json"])
            .env("HM_CACHE_DIR", fx.cache())
            .output()
            .unwrap(),
    );
    assert_eq!(shared.executed().len(), 1, "{}", shared.dump());
    // A bad configuration is exit 2, naming the file and the field.
    fx.write(".hm/config.toml", "[cache]\nmax_size = \"lots\"\n");
    let bad = fx.hm(&["run"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(".hm/config.toml") && err.contains("cache.max_size"),
        "{err}"
    );
}

#[test]
fn clean_asks_on_a_terminal() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    write(&fx, &[step("s", "true").cache(json!({"policy": "forever"}))], &[]);
    run(&fx);
    // `script` gives `hm` a terminal; the answer comes through it.
    let clean = |answer: &str, args: &str| {
        let mut child = std::process::Command::new("script")
            .args(["-qec", &format!("{} cache clean {args}", util::hm_bin()), "/dev/null"])
            .env("HM_CACHE_DIR", fx.cache())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let declined = clean("n\n", "");
    assert!(
        declined.contains("remove all 1 cache entries") && declined.contains("nothing removed"),
        "{declined}"
    );
    assert_eq!(entries(&fx).len(), 1);
    let forced = clean("", "--yes");
    assert!(
        !forced.contains("[y/N]") && forced.contains("removed 1 entries"),
        "{forced}"
    );
    assert!(entries(&fx).is_empty());
}

/// `hm cache ls --volumes --format json`.
fn volumes(fx: &Fixture) -> Vec<Value> {
    util::json_list(&fx.hm(&["cache", "ls", "--volumes", "--format", "json"]))
}

/// Cache volumes in the cache commands (issue 19): `ls` lists them after
/// the entries (the entries' JSON as it was; `--volumes` for theirs), `du`
/// counts them, `rm --volume NAME` removes this project's by name and
/// keeps one a running step uses, an unknown name is exit 2 with the
/// nearest, and `clean` removes them all.
#[test]
fn cache_volumes_are_listed_counted_and_removed() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    let steps = [
        step("count", "head -c 40000 /dev/urandom > /cache/blob")
            .cache(json!({"policy": "forever"}))
            .volumes(json!({"/cache": "counter"})),
        step("tools", "echo hi > /tools/hi").volumes(json!({"/tools": "toolbox"})),
    ];
    write(&fx, &steps, &[]);
    run(&fx);
    let listed = volumes(&fx);
    let names: BTreeSet<&str> = listed.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["counter", "toolbox"]), "{listed:?}");
    let counter = listed.iter().find(|v| v["name"] == "counter").unwrap().clone();
    assert_eq!(counter["image"], "host");
    assert_eq!(counter["backend"], "sandbox");
    assert_eq!(counter["instance"], 0);
    assert!(counter["size"].as_u64().unwrap() >= 40000, "{counter}");
    let counter_dir = fx.cache().join("volumes").join(counter["id"].as_str().unwrap());
    assert!(counter_dir.join("blob").is_file());

    // The entries' JSON is still a bare array of entries.
    assert_eq!(entries(&fx).len(), 1);
    assert!(entries(&fx).iter().all(|e| e["step"] == "count"));
    let human = String::from_utf8_lossy(&fx.hm(&["cache", "ls"]).stdout).into_owned();
    let (entry_table, volume_table) = human.split_once("\n\n").expect("two tables");
    assert!(entry_table.starts_with("STEP "), "{human}");
    let header: Vec<&str> = volume_table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "IMAGE", "PROJECT", "BACKEND", "INSTANCE", "SIZE", "LAST", "USED"]
    );
    assert_eq!(volume_table.lines().count(), 3, "{human}");
    let only = String::from_utf8_lossy(&fx.hm(&["cache", "ls", "--volumes"]).stdout).into_owned();
    assert!(only.starts_with("NAME ") && only.contains("toolbox"), "{only}");

    let du: Value = serde_json::from_slice(&fx.hm(&["cache", "du", "--format", "json"]).stdout).unwrap();
    assert_eq!(du["entries"], 1);
    assert_eq!(du["volumes"], 2);
    assert!(du["volume_bytes"].as_u64().unwrap() >= 40000, "{du}");
    let human = String::from_utf8_lossy(&fx.hm(&["cache", "du"]).stdout).into_owned();
    assert!(
        human.starts_with("total: 1 entries, ") && human.contains("; 2 volumes, "),
        "{human}"
    );

    // A name this project has no volume of: exit 2, the nearest named,
    // nothing removed.
    let wrong = fx.hm(&["cache", "rm", "--volume", "toolbox", "--volume", "countr"]);
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("no volume `countr`; did you mean `counter`?"), "{err}");
    assert_eq!(volumes(&fx).len(), 2);

    // In use by a running step: kept, and said.
    let mut during = None;
    write(
        &fx,
        &[step("hold", "echo started; sleep 3").volumes(json!({"/cache": "counter"}))],
        &[],
    );
    let build = fx.run_json_when(&[], "started", || {
        during = Some(fx.hm(&["cache", "rm", "--volume", "counter"]))
    });
    assert_eq!(build.code, 0, "{}", build.dump());
    let during = during.unwrap();
    let said = String::from_utf8_lossy(&during.stderr).into_owned();
    assert!(during.status.success(), "{said}");
    assert!(
        said.contains("removed 0 volumes") && said.contains("kept 1 volumes a running step uses"),
        "{said}"
    );
    assert!(counter_dir.join("blob").is_file());

    // Not in use: gone from disk and from the listing; the other stays.
    let rm = fx.hm(&["cache", "rm", "--volume", "counter"]);
    let said = String::from_utf8_lossy(&rm.stderr).into_owned();
    assert!(rm.status.success(), "{said}");
    assert!(said.contains("removed 1 volumes, freed "), "{said}");
    assert!(!counter_dir.exists());
    let left = volumes(&fx);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["name"], "toolbox");
    assert_eq!(entries(&fx).len(), 1, "entries are left alone");

    // `clean` removes the entries, then every volume.
    let clean = fx.hm(&["cache", "clean"]);
    let said = String::from_utf8_lossy(&clean.stderr).into_owned();
    assert!(clean.status.success(), "{said}");
    assert!(
        said.contains("removed 1 entries") && said.contains("removed 1 volumes"),
        "{said}"
    );
    assert!(volumes(&fx).is_empty());
    assert!(entries(&fx).is_empty());
    let left: Vec<_> = std::fs::read_dir(fx.cache().join("volumes"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // No volume left: any name is unknown, with nothing to suggest.
    let wrong = fx.hm(&["cache", "rm", "--volume", "counter"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no volume `counter` (it has none)"));
    fx.assert_clean();
}

/// `hm cache prune` leaves volumes alone while the cache is within its
/// byte bound, and evicts them once entries and volumes together are over
/// it.
#[test]
fn prune_evicts_volumes_only_over_the_byte_bound() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    let steps = [step("fill", "head -c 300000 /dev/urandom > /cache/blob").volumes(json!({"/cache": "big"}))];
    write(&fx, &steps, &[]);
    run(&fx);
    assert_eq!(volumes(&fx).len(), 1);
    let prune = fx.hm(&["cache", "prune"]);
    let said = String::from_utf8_lossy(&prune.stderr).into_owned();
    assert!(prune.status.success(), "{said}");
    assert!(said.contains("; 1 volumes, ") && !said.contains("evicted"), "{said}");
    assert_eq!(volumes(&fx).len(), 1, "within the bound");
    let prune = fx.hm(&["cache", "prune", "--max-size", "100KiB"]);
    let said = String::from_utf8_lossy(&prune.stderr).into_owned();
    assert!(prune.status.success(), "{said}");
    assert!(said.contains("evicted 1 volumes, freed "), "{said}");
    assert!(volumes(&fx).is_empty());
    fx.assert_clean();
}

contract!(
    forever_misses_on_its_inputs_and_nothing_else,
    a_changed_parent_or_image_invalidates,
    ttl_windows,
    on_change_follows_its_files,
    compose_and_none,
    a_child_of_a_hit_sees_todays_source,
    a_cached_chain_reruns_from_the_changed_step,
    two_runs_at_once_share_one_cache,
    a_killed_run_leaves_a_cache_the_next_run_uses_or_repairs,
    eviction_spares_what_another_run_holds,
    a_layer_removed_by_hand_or_a_damaged_registry_means_a_rerun,
    cache_commands,
    projects_are_told_apart_and_a_step_is_removed_by_name,
    cache_commands_never_break_a_running_build,
    another_process_evicting_never_fails_a_build,
    eviction_keeps_the_end_of_a_chain_within_bounds_during_the_run,
);
