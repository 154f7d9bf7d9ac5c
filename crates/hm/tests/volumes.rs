//! Cache volumes on the sandbox (issue 19): what a step writes to one is
//! there in the next run, outside its snapshot and its key; `locked` and
//! `private` sharing hold with steps in parallel; a killed `hm` leaves a
//! volume usable; volumes are per project and per image; the cache's byte
//! bound evicts the least recently used.

mod util;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use util::{envelope, sandbox_available, step, Fixture, Run};

/// The keys of the cache entries, by step.
fn entry_keys(fx: &Fixture) -> BTreeMap<String, String> {
    let out = fx.hm(&["cache", "ls", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    entries
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_volume_outlives_the_run_and_stays_out_of_snapshots_and_keys() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step(
            "count",
            "n=$(cat /cache/n 2>/dev/null || echo 0); echo seen-$n; echo $((n+1)) > /cache/n; \
             mkdir -p target && echo built > target/out",
        )
        .cache(json!({"policy": "forever"}))
        .volumes(json!({"/cache": "counter", "target": "build"})),
        step(
            "after",
            "test ! -e /cache/n && echo no-volume-in-the-snapshot; ls -A target | wc -l",
        ),
    ];
    let fx = Fixture::with(&envelope("volumes", &steps, &[("count", "after", "builds_in")], None));
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.logs("count"), ["seen-0"]);
    // The child builds on `count`'s snapshot, which holds neither what it
    // wrote to `/cache` nor to `/workspace/target`: both were volumes.
    assert_eq!(first.logs("after"), ["no-volume-in-the-snapshot", "0"]);
    let keys = entry_keys(&fx);

    let again = fx.run_json(&["--no-cache"]);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.logs("count"), ["seen-1"], "the volume kept its data");
    assert_eq!(entry_keys(&fx), keys, "what a volume holds is in no key");

    let hit = fx.run_json(&[]);
    assert_eq!(hit.status("count"), "cache_hit", "{}", hit.dump());
    fx.assert_clean();
}

/// Each step prints `start NS` and `end NS` around a sleep; the
/// intervals, by step.
fn intervals(run: &Run, keys: &[&str]) -> Vec<(u128, u128)> {
    keys.iter()
        .map(|key| {
            let logs = run.logs(key);
            let at = |what: &str| -> u128 {
                let line = logs
                    .iter()
                    .find(|l| l.starts_with(what))
                    .unwrap_or_else(|| panic!("{logs:?}"));
                line[what.len() + 1..].parse().unwrap()
            };
            (at("start"), at("end"))
        })
        .collect()
}

fn overlap(a: (u128, u128), b: (u128, u128)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
fn locked_volumes_take_turns_and_shared_ones_do_not() {
    if !sandbox_available() {
        return;
    }
    let timed = |key: &str| {
        step(
            key,
            "echo start $(date +%s%N); echo $$ >> /v/users; sleep 0.6; echo end $(date +%s%N)",
        )
    };
    for (sharing, overlapping) in [("locked", false), ("shared", true)] {
        let volume = json!({"/v": {"name": "v", "sharing": sharing}});
        let steps = [timed("a").volumes(volume.clone()), timed("b").volumes(volume)];
        let fx = Fixture::with(&envelope("volumes", &steps, &[], None));
        let run = fx.run_json(&["--parallelism", "2"]);
        assert_eq!(run.code, 0, "{}", run.dump());
        let times = intervals(&run, &["a", "b"]);
        assert_eq!(overlap(times[0], times[1]), overlapping, "{sharing}: {times:?}");
        fx.assert_clean();
    }
}

#[test]
fn private_volumes_give_each_running_step_its_own() {
    if !sandbox_available() {
        return;
    }
    let mine = |key: &str| {
        step(
            key,
            "echo start $(date +%s%N); echo $HM_KEY > /v/owner; sleep 0.6; echo owner-$(cat /v/owner); echo end $(date +%s%N)",
        )
        .env("HM_KEY", key)
    };
    let volume = json!({"/v": {"name": "v", "sharing": "private"}});
    let steps = [mine("a").volumes(volume.clone()), mine("b").volumes(volume)];
    let fx = Fixture::with(&envelope("volumes", &steps, &[], None));
    let run = fx.run_json(&["--parallelism", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let times = intervals(&run, &["a", "b"]);
    assert!(overlap(times[0], times[1]), "the two ran at once: {times:?}");
    assert!(run.logs("a").contains(&"owner-a".to_owned()), "{:?}", run.logs("a"));
    assert!(run.logs("b").contains(&"owner-b".to_owned()), "{:?}", run.logs("b"));
    let instances = std::fs::read_dir(fx.cache().join("volumes"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(instances, 2, "one volume each");
    fx.assert_clean();
}

#[test]
fn a_killed_hm_leaves_the_volume_usable() {
    if !sandbox_available() {
        return;
    }
    let volume = json!({"/v": {"name": "v", "sharing": "locked"}});
    let writer = [step("w", "echo partial > /v/file; echo started; sleep 60").volumes(volume.clone())];
    let fx = Fixture::with(&envelope("volumes", &writer, &[], None));
    let ((), code) = fx.run_and_signal(&[], "started", "KILL", || ());
    assert_eq!(code, None, "killed");
    // Recorded before the step made it: `hm cache` knows it.
    let listed = fx.hm(&["cache", "ls", "--volumes", "--format", "json"]);
    let volumes: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["v"], "{}", String::from_utf8_lossy(&listed.stderr));
    // The lock died with it: a locked volume is taken at once, and has
    // what was written.
    let reader = [step("r", "cat /v/file; echo again > /v/file; cat /v/file").volumes(volume)];
    fx.write(
        ".hm/pipeline.json",
        &envelope("volumes", &reader, &[], None).to_string(),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("r"), ["partial", "again"]);
    fx.assert_clean();
}

/// `hm run --format json` in `project`, with `fx`'s cache.
fn run_in(fx: &Fixture, project: &Path) -> Run {
    let mut command = fx.command(&["run", "--format", "json"]);
    command.current_dir(project);
    Run::from(command.output().unwrap())
}

#[test]
fn volumes_are_per_project_and_per_image() {
    if !sandbox_available() {
        return;
    }
    let count = "n=$(cat /cache/n 2>/dev/null || echo 0); echo seen-$n; echo $((n+1)) > /cache/n";
    let volume = json!({"/cache": "counter"});
    let pipeline = envelope("volumes", &[step("c", count).volumes(volume.clone())], &[], None);
    let fx = Fixture::with(&pipeline);
    assert_eq!(fx.run_json(&[]).logs("c"), ["seen-0"]);
    assert_eq!(fx.run_json(&[]).logs("c"), ["seen-1"]);

    // Another project, same cache: a volume of its own.
    let other = fx.dir.path().join("other");
    std::fs::create_dir_all(other.join(".hm")).unwrap();
    std::fs::write(other.join(".hm/pipeline.json"), pipeline.to_string()).unwrap();
    let run = run_in(&fx, &other);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("c"), ["seen-0"], "another project's volume");

    // Another image, same project: a volume of its own.
    let rootfs = fx.dir.path().join("tiny");
    util::tiny_rootfs(&rootfs, &["/bin/sh", "/bin/cat", "/bin/echo"]);
    let import = fx.hm(&["image", "import", "tiny:1", rootfs.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let steps = [step("c", count).image(Some("tiny:1")).volumes(volume)];
    fx.write(".hm/pipeline.json", &envelope("volumes", &steps, &[], None).to_string());
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("c"), ["seen-0"], "another image's volume");
    fx.assert_clean();
}

#[test]
fn over_the_byte_bound_the_least_recently_used_volume_goes() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    fx.write(".hm/config.toml", "[cache]\nmax_size = \"2500KB\"\n");
    let fill = |name: &str| {
        let steps = [step(
            "fill",
            "test -e /v/blob && echo kept || echo empty; head -c 1000000 /dev/urandom > /v/blob",
        )
        .volumes(json!({"/v": name}))];
        fx.write(".hm/pipeline.json", &envelope("volumes", &steps, &[], None).to_string());
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        // Last use is kept to the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        run.logs("fill")
    };
    assert_eq!(fill("one"), ["empty"]);
    assert_eq!(fill("two"), ["empty"]);
    // Three of about 1 MB are over 2.5 MB: `one` goes after this run.
    assert_eq!(fill("three"), ["empty"]);
    assert_eq!(fill("two"), ["kept"], "used more recently than `one`");
    assert_eq!(fill("one"), ["empty"], "evicted");
    fx.assert_clean();
}

#[test]
fn rootless_steps_use_volumes() {
    if !sandbox_available() {
        return;
    }
    let count = "n=$(cat /cache/n 2>/dev/null || echo 0); echo seen-$n; echo $((n+1)) > /cache/n";
    let steps = [step("c", count).volumes(json!({"/cache": "counter"}))];
    let fx = Fixture::with(&envelope("volumes", &steps, &[], None));
    for seen in ["seen-0", "seen-1"] {
        let run = fx.run_json_as_nobody(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        assert_eq!(run.logs("c"), [seen]);
    }
    fx.assert_clean();
}

#[test]
fn a_locked_volume_at_two_paths_of_one_step_is_taken_once() {
    if !sandbox_available() {
        return;
    }
    let volume = json!({"name": "v", "sharing": "locked"});
    let steps = [step("s", "echo same > /a/file; cat /b/file").volumes(json!({"/a": volume, "/b": volume}))];
    let fx = Fixture::with(&envelope("volumes", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("s"), ["same"]);
    fx.assert_clean();
}
