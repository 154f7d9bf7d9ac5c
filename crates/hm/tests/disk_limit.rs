//! A step's disk limit on the sandbox (issue 18), set in its
//! `runner_args`: a step writing past it sees ENOSPC and the cache's
//! filesystem loses no more than the limit; a step within it passes with
//! its files in its child's snapshot and in the cache; nothing stays
//! mounted or attached after a run, a failed step or a `kill -9` of `hm`.
//! As root the limit is a loop device's filesystem, rootless a tmpfs.

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::disk::SmallDisk;
use util::{envelope, step, Fixture, Run, Step};

const MIB: u64 = 1 << 20;

/// A pipeline whose steps named in `limited` get that disk limit.
fn pipeline(steps: &[Step], edges: &[(&str, &str, &str)], limited: &[(&str, &str)]) -> Value {
    let mut envelope = envelope("ci", steps, edges, None);
    for node in envelope["pipelines"][0]["definition"]["graph"]["nodes"]
        .as_array_mut()
        .unwrap()
    {
        let key = node["step"]["key"].as_str().unwrap().to_owned();
        if let Some((_, disk)) = limited.iter().find(|(k, _)| *k == key) {
            node["step"]["runner_args"] = json!({ "disk": disk });
        }
    }
    envelope
}

/// The loop devices whose files are under `dir`, as `losetup -a` lists
/// them.
fn loops_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let out = Command::new("losetup").arg("-a").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&*dir.to_string_lossy()))
        .map(str::to_owned)
        .collect()
}

/// Nothing of `hm` is left for `cache`: no session, mount, process or loop
/// device.
fn assert_nothing_left(cache: &Path) {
    util::assert_nothing_left(cache);
    let loops = loops_under(cache);
    assert!(loops.is_empty(), "loop devices left attached: {loops:?}");
}

/// Bytes free on the filesystem of `path`, for root.
fn free_bytes(path: &Path) -> u64 {
    let stats = nix::sys::statvfs::statvfs(path).unwrap();
    stats.blocks_free() * stats.fragment_size()
}

/// A step that writes 100 MiB into a 20 MiB limit sees "No space left on
/// device" and fails (exit 1); the cache's filesystem (a small one of the
/// test's own, so that nothing else writes to it) lost less than the limit
/// and some slack while the step's files were there; `hm` does not take
/// the step's full disk for a full cache; nothing is left mounted or
/// attached.
#[test]
fn a_step_writing_past_its_disk_limit_sees_enospc_and_the_cache_disk_keeps_its_room() {
    if !util::sandbox_available() || !util::root_available("a loop device for a step's disk") {
        return;
    }
    let fx = Fixture::new();
    let Some(disk) = SmallDisk::mount(&fx.dir.path().join("disk"), 200 * MIB) else {
        return;
    };
    let cache = disk.cache();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let steps = [
        step(
            "fill",
            "head -c 100M /dev/zero > /opt/fill; echo \"head: $?\"; echo measure; sleep 2; exit 3",
        ),
        step("after", "echo after"),
    ];
    fx.write(
        ".hm/pipeline.json",
        &pipeline(&steps, &[("fill", "after", "builds_in")], &[("fill", "20MiB")]).to_string(),
    );
    let before = free_bytes(&cache);
    let mut during = None;
    let run = run_when(&fx, &cache, "measure", || during = Some(free_bytes(&cache)));
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("fill"), "failed", "{}", run.dump());
    assert_eq!(run.end("fill")["exit_code"], 3, "{}", run.dump());
    assert_eq!(run.status("after"), "skipped");
    let logs = run.logs("fill");
    assert!(logs.iter().any(|l| l.contains("No space left on device")), "{logs:?}");
    assert!(logs.contains(&"head: 1".to_owned()), "{logs:?}");
    assert!(!run.stderr.contains("is full"), "the cache is not full: {}", run.stderr);
    let used = before.saturating_sub(during.unwrap());
    assert!(
        used < 20 * MIB + 8 * MIB,
        "the cache's filesystem lost {} MiB for a step limited to 20 MiB",
        used / MIB
    );
    assert_nothing_left(&cache);
}

/// `hm run --format json` with its cache on `cache`; `action` runs when a
/// step prints `trigger`.
fn run_when(fx: &Fixture, cache: &Path, trigger: &str, action: impl FnOnce()) -> Run {
    let mut child = fx
        .command(&["run", "--format", "json"])
        .env("HM_CACHE_DIR", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let needle = format!("\"line\":{}", serde_json::to_string(trigger).unwrap());
    let mut lines = Vec::new();
    let mut action = Some(action);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains(&needle) {
            if let Some(action) = action.take() {
                action();
            }
        }
        lines.push(line);
    }
    let output = child.wait_with_output().unwrap();
    assert!(action.is_none(), "no step printed `{trigger}`: {lines:#?}");
    Run {
        code: output.status.code().unwrap_or(-1),
        events: lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What a limited parent leaves, its child checks: contents, a hard link,
/// an owner, a mode, a symlink, a deleted source file (a whiteout) and a
/// directory made again (opaque).
const PARENT: &str = "set -e
mkdir -p /opt/kept
head -c 5M /dev/urandom > /opt/kept/data
echo a > /opt/kept/a && ln /opt/kept/a /opt/kept/b
touch /opt/kept/owned && chown 1234:1234 /opt/kept/owned
ln -s a /opt/kept/link
touch /opt/kept/mode && chmod 750 /opt/kept/mode
rm gone.txt
rm -rf dir && mkdir dir && touch dir/new
echo parent-ok";

const CHILD: &str = "set -e
test \"$(wc -c < /opt/kept/data)\" = 5242880
test \"$(stat -c %h /opt/kept/a)\" = 2
test \"$(stat -c %u:%g /opt/kept/owned)\" = 1234:1234
test \"$(stat -c %a /opt/kept/mode)\" = 750
test \"$(readlink /opt/kept/link)\" = a
test ! -e gone.txt
test \"$(ls dir)\" = new
echo child-ok";

/// A step within its limit passes; its child sees its files; the parent
/// is cached, and the next run restores them for the child from the
/// cache. Nothing is left mounted or attached.
#[test]
fn a_step_within_its_disk_limit_keeps_its_files_for_its_child_and_the_cache() {
    if !util::sandbox_available() || !util::root_available("a loop device for a step's disk") {
        return;
    }
    let steps = [
        step("parent", PARENT).cache(json!({"policy": "forever"})),
        step("child", CHILD),
    ];
    let fx = Fixture::with(&pipeline(
        &steps,
        &[("parent", "child", "builds_in")],
        &[("parent", "20MiB")],
    ));
    fx.write("gone.txt", "soon gone\n");
    fx.write("dir/old.txt", "old\n");
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.logs("parent"), ["parent-ok"]);
    assert_eq!(first.logs("child"), ["child-ok"]);
    assert_nothing_left(&fx.cache());
    let second = fx.run_json(&[]);
    assert_eq!(second.code, 0, "{}", second.dump());
    assert_eq!(second.status("parent"), "cache_hit", "{}", second.dump());
    assert_eq!(second.logs("child"), ["child-ok"]);
    fx.assert_parts_stored("after a limited step was cached");
    assert_nothing_left(&fx.cache());
}

/// A failed limited step, then a `kill -9` of `hm` while a limited step
/// runs: nothing stays mounted or attached, and the next run passes and
/// leaves nothing either.
#[test]
fn nothing_of_a_limited_step_is_left_after_a_failure_or_a_killed_hm() {
    if !util::sandbox_available() || !util::root_available("a loop device for a step's disk") {
        return;
    }
    let fx = Fixture::new();
    let write = |cmd: &str| {
        let steps = [step("a", cmd)];
        fx.write(
            ".hm/pipeline.json",
            &pipeline(&steps, &[], &[("a", "20MiB")]).to_string(),
        );
    };
    write("head -c 5M /dev/zero > /opt/x; exit 1");
    let failed = fx.run_json(&[]);
    assert_eq!(failed.code, 1, "{}", failed.dump());
    assert_eq!(failed.status("a"), "failed");
    assert_nothing_left(&fx.cache());

    write("head -c 5M /dev/zero > /opt/x; echo ready; sleep 600");
    let (loops, _) = fx.run_and_signal(&[], "ready", "KILL", || loops_under(&fx.cache()));
    assert!(!loops.is_empty(), "the step's disk is a loop device");
    // The kernel takes the helper's namespace and its mounts down with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loops_under(&fx.cache()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(loops_under(&fx.cache()), Vec::<String>::new());

    write("echo next");
    let next = fx.run_json(&[]);
    assert_eq!(next.code, 0, "{}", next.dump());
    assert_nothing_left(&fx.cache());
}

/// Rootless, the limit is a tmpfs in the step's user namespace: a step
/// writing past it sees ENOSPC, one within it hands its files to its
/// child, and nothing is left. (Rootless, the host image's system
/// directories are read-only: the steps write in `/workspace`.)
#[test]
fn a_rootless_step_is_limited_too() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [
        step("fill", "head -c 100M /dev/zero > fill"),
        step("keep", "head -c 1M /dev/zero > kept && echo kept"),
        step("child", "wc -c < kept"),
    ];
    let fx = Fixture::with(&pipeline(
        &steps,
        &[("keep", "child", "builds_in")],
        &[("fill", "20MiB"), ("keep", "20MiB")],
    ));
    let run = fx.run_json_as_nobody(&["-k"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("fill"), "failed", "{}", run.dump());
    let logs = run.logs("fill");
    assert!(logs.iter().any(|l| l.contains("No space left on device")), "{logs:?}");
    assert_eq!(run.logs("keep"), ["kept"]);
    assert_eq!(run.logs("child"), ["1048576"]);
    fx.assert_clean();
}
