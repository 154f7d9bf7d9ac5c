//! What only the docker backend does: reaching (or not) the daemon, chains
//! in one container, source images, the image's own environment, labels,
//! resource limits, cache volumes as Docker volumes, and pulling from a
//! registry with the Docker client's credentials. The shared behaviour is
//! the contract in `sandbox.rs` and `cache.rs`.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{docker, docker_image, envelope, step, Backend, Fixture};

fn available() -> bool {
    Backend::Docker.available()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_stopped_daemon_is_exit_4_before_any_step() {
    // What a stopped daemon leaves: a socket file nobody listens on.
    let fx = Fixture::on(Backend::Docker);
    let socket = fx.dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    fx.write(
        ".hm/pipeline.json",
        &envelope("down", &[step("s", "true")], &[], None).to_string(),
    );
    let out = fx
        .command(&["run", "--format", "json"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "no step started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach a Docker daemon") && err.contains(&socket.display().to_string()),
        "{err}"
    );
    assert!(err.contains("DOCKER_HOST"), "{err}");

    // No socket at all: the same error, naming the address.
    let missing = fx
        .command(&["run"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4));
    assert!(
        stderr(&missing).contains("/nonexistent/docker.sock"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn the_host_image_is_refused_with_exit_4() {
    if !available() {
        return;
    }
    let fx = Fixture::on(Backend::Docker);
    // Written as it is: `Fixture::write` maps `host` to the test image.
    std::fs::write(
        fx.project().join(".hm/pipeline.json"),
        envelope("host", &[step("s", "true")], &[], None).to_string(),
    )
    .unwrap();
    let out = fx.hm(&["run"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("only for the sandbox backend"),
        "{}",
        stderr(&out)
    );
}

/// The container as a step sees it, equal in two steps exactly when they ran
/// in the same container: its mount namespace (unique among containers
/// alive at once; numbers are reused later) and when its init started.
const CONTAINER: &str = "echo $(readlink /proc/self/ns/mnt) $(cut -d' ' -f22 /proc/1/stat)";

#[test]
fn root_steps_start_from_one_source_image_per_source() {
    if !available() {
        return;
    }
    let steps = [
        step("a", "cat f00; echo changed > f00; ls | wc -l"),
        step("b", "cat f00; ls | wc -l"),
    ];
    let fx = Fixture::with_on(Backend::Docker, &envelope("roots", &steps, &[], None));
    for i in 0..20 {
        fx.write(&format!("f{i:02}"), &format!("{i}\n"));
    }
    let run = |want: [&str; 2]| {
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        assert_eq!(run.logs("a"), want);
        assert_eq!(run.logs("b"), want);
        fx.assert_clean();
    };
    run(["0", "20"]);
    let first = fx.source_images();
    assert_eq!(first.len(), 1, "{first:?}");
    // Unchanged: the same image; one file edited: synced on top of it.
    run(["0", "20"]);
    fx.write("f00", "edited\n");
    run(["edited", "20"]);
    assert_eq!(fx.source_images(), first);
    // Most of the tree changed: a new image for it.
    for i in 0..20 {
        fx.write(&format!("f{i:02}"), "new\n");
    }
    run(["new", "20"]);
    assert_eq!(fx.source_images().len(), 2);
    let clean = fx.hm(&["cache", "clean", "--yes"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert_eq!(fx.source_images(), Vec::new());
}

#[test]
fn a_linear_chain_runs_in_one_container() {
    if !available() {
        return;
    }
    let steps = [
        step("one", &format!("{CONTAINER}; echo 1 > /opt/one")),
        step("two", &format!("{CONTAINER}; cat /opt/one")),
        step("three", CONTAINER),
        step("left", CONTAINER),
        step("right", CONTAINER),
    ];
    let edges = [
        ("one", "two", "builds_in"),
        ("two", "three", "builds_in"),
        ("three", "left", "builds_in"),
        ("three", "right", "builds_in"),
    ];
    let fx = Fixture::with_on(Backend::Docker, &envelope("chain", &steps, &edges, None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let init = |key: &str| run.logs(key)[0].clone();
    assert_eq!(run.logs("two")[1], "1");
    assert_eq!(init("one"), init("two"), "the chain went on in the same container");
    assert_eq!(init("two"), init("three"));
    // A fork point is committed; each branch boots its own container.
    assert_ne!(init("left"), init("three"));
    assert_ne!(init("right"), init("three"));
    assert_ne!(init("left"), init("right"));
    fx.assert_clean();
}

#[test]
fn steps_see_the_images_environment_then_their_own() {
    if !available() {
        return;
    }
    let fx = Fixture::on(Backend::Docker);
    let image = format!("hm-test/env-{}", std::process::id());
    docker(&["tag", &docker_image(), &format!("{image}-base")]);
    // An image whose config sets PATH and a variable, as Dockerfiles do.
    let container = docker(&["create", &format!("{image}-base"), "true"])[0].clone();
    docker(&[
        "commit",
        "--change",
        "ENV PATH=/opt/tool/bin:/usr/local/bin:/usr/bin:/bin",
        "--change",
        "ENV FROM_IMAGE=image",
        "--change",
        "ENV OVERRIDDEN=image",
        &container,
        &image,
    ]);
    docker(&["rm", &container]);
    let steps = [step("env", "echo $PATH; echo $FROM_IMAGE $OVERRIDDEN $HOME; id -u")
        .image(Some(&image))
        .env("OVERRIDDEN", "node")];
    fx.write(".hm/pipeline.json", &envelope("env", &steps, &[], None).to_string());
    let run = fx.run_json(&[]);
    docker(&["rmi", &image, &format!("{image}-base")]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.logs("env"),
        ["/opt/tool/bin:/usr/local/bin:/usr/bin:/bin", "image node /root", "0"]
    );
    fx.assert_clean();
}

#[test]
fn containers_carry_the_run_project_and_step() {
    if !available() {
        return;
    }
    let fx = Fixture::on(Backend::Docker);
    fx.write(".hm/config.toml", "[cache]\nscope = \"labelled-project\"\n");
    let steps = [step("labelled", "echo started; sleep 3")];
    fx.write(".hm/pipeline.json", &envelope("labels", &steps, &[], None).to_string());
    let cache = fx.cache().canonicalize().unwrap();
    let mut labels = Vec::new();
    let run = fx.run_json_when(&[], "started", || {
        labels = docker(&[
            "ps",
            "--filter",
            &format!("label=dev.hm.cache={}", cache.display()),
            "--format",
            "{{.Label \"dev.hm.step\"}} {{.Label \"dev.hm.project\"}} {{.Label \"dev.hm.run\"}}",
        ]);
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(labels.len(), 1, "{labels:?}");
    let fields: Vec<&str> = labels[0].split(' ').collect();
    assert_eq!(&fields[..2], ["labelled", "labelled-project"]);
    assert_eq!(fields[2].len(), 16, "a run id: {labels:?}");
    fx.assert_clean();
}

/// What a step reads of its container's limits (cgroup v2, else v1):
/// memory, CPU quota and period, processes; `none` for no limit.
const LIMITS: &str =
    "m=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes); \
    c=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || \
        echo \"$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\"); \
    p=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max); \
    [ ${#m} -ge 16 ] && m=none; [ \"$m\" = max ] && m=none; \
    case \"$c\" in -1*|max*) c=none ;; esac; [ \"$p\" = max ] && p=none; \
    echo \"$m $c $p\"";

/// A pipeline whose step `key` has `runner_args`.
fn with_runner_args(mut envelope: serde_json::Value, key: &str, args: serde_json::Value) -> serde_json::Value {
    let nodes = envelope["pipelines"][0]["definition"]["graph"]["nodes"]
        .as_array_mut()
        .unwrap();
    let node = nodes.iter_mut().find(|n| n["step"]["key"] == key).unwrap();
    node["step"]["runner_args"] = args;
    envelope
}

/// `[resources]` applies to every container, a step's `runner_args` over
/// it; a chain runs in one container, whose limits change with each
/// step's (and `none` lifts one).
#[test]
fn limits_from_config_and_runner_args_are_applied_per_step() {
    if !available() {
        return;
    }
    let steps = [
        step("one", &format!("{CONTAINER}; {LIMITS}")),
        step("two", &format!("{CONTAINER}; {LIMITS}")),
        step("three", &format!("{CONTAINER}; {LIMITS}")),
        step("four", &format!("{CONTAINER}; {LIMITS}")),
    ];
    let edges = [
        ("one", "two", "builds_in"),
        ("two", "three", "builds_in"),
        ("three", "four", "builds_in"),
    ];
    let envelope = with_runner_args(
        envelope("limits", &steps, &edges, None),
        "two",
        serde_json::json!({"memory": "128MiB", "cpus": 1, "pids": 100}),
    );
    let envelope = with_runner_args(
        envelope,
        "four",
        serde_json::json!({"memory": "none", "cpus": "none", "pids": 0}),
    );
    let fx = Fixture::with_on(Backend::Docker, &envelope);
    fx.write(
        ".hm/config.toml",
        "[resources]\nmemory = \"256MiB\"\ncpus = 0.5\npids = 300\n",
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let limits = |key: &str| run.logs(key)[1].clone();
    assert_eq!(limits("one"), "268435456 50000 100000 300");
    assert_eq!(limits("two"), "134217728 100000 100000 100");
    assert_eq!(limits("three"), "268435456 50000 100000 300");
    assert_eq!(limits("four"), "none none none");
    let container = |key: &str| run.logs(key)[0].clone();
    assert_eq!(container("one"), container("four"), "one container for the chain");
    // Flags win over the configuration.
    let run = fx.run_json(&["--memory", "200MiB", "--pids", "none", "one"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("one")[1], "209715200 50000 100000 none");
    fx.assert_clean();
}

/// A step that allocates past its memory limit is killed by the kernel
/// and ends `oom`, saying its limit and peak; a step on another branch
/// passes, and the build exits 1.
#[test]
fn a_step_over_its_memory_limit_ends_oom() {
    if !available() {
        return;
    }
    let steps = [
        // `tail` holds the whole line: 300 MiB without a newline.
        step(
            "big",
            "echo allocating; head -c 300M /dev/zero | tail > /dev/null; echo survived",
        ),
        step("small", "sleep 1; echo fine"),
    ];
    let envelope = with_runner_args(
        envelope("oom", &steps, &[], None),
        "big",
        serde_json::json!({"memory": "64MiB"}),
    );
    let fx = Fixture::with_on(Backend::Docker, &envelope);
    let run = fx.run_json(&["-k"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("big"), "oom", "{}", run.dump());
    let end = run.end("big");
    let message = end["message"].as_str().unwrap();
    assert!(
        message.starts_with("killed: out of memory, limit 64 MiB, peak "),
        "{message}"
    );
    let peak = end["peak_memory_bytes"].as_u64().unwrap();
    assert!((60 << 20..=64 << 20).contains(&peak), "{peak}");
    // The kernel killed `tail`, not the step: it is `oom` all the same.
    assert_eq!(run.stdout("big"), ["allocating", "survived"]);
    assert_eq!(run.status("small"), "passed");
    assert_eq!(run.logs("small"), ["fine"]);
    // Under the default limit (8 GiB), nothing is killed.
    assert!(run.end("small")["message"].is_null(), "{}", run.dump());
    fx.assert_clean();
}

/// `--pids` bounds a step's processes: forks past it are refused (the
/// step sees them fail, and fails), what it started is gone after it.
#[test]
fn a_step_past_its_process_limit_sees_forks_fail() {
    if !available() {
        return;
    }
    let cmd = "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; echo started $i";
    let fx = Fixture::with_on(Backend::Docker, &envelope("pids", &[step("many", cmd)], &[], None));
    let started = Instant::now();
    let run = fx.run_json(&["--pids", "24"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("many"), "failed", "{}", run.dump());
    let logs = run.logs("many").join("\n");
    assert!(logs.contains("fork"), "{logs}");
    let message = run.end("many")["message"].as_str().unwrap_or_default();
    assert!(message.contains("process limit"), "{}", run.dump());
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "its sleeps did not outlive it"
    );
    fx.assert_clean();
}

/// `step_end` carries the CPU time and the peak memory of a step, and a
/// CPU limit holds: half a CPU busy for 2 s of wall time is about 1 s of
/// CPU.
#[test]
fn step_end_carries_cpu_time_and_peak_memory() {
    if !available() {
        return;
    }
    let cmd = "timeout 2 sh -c 'while :; do :; done'; true";
    let fx = Fixture::with_on(Backend::Docker, &envelope("cpu", &[step("busy", cmd)], &[], None));
    let run = fx.run_json(&["--cpus", "0.5"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let end = run.end("busy");
    let cpu_ms = end["cpu_ms"].as_u64().unwrap_or_else(|| panic!("{}", run.dump()));
    // The limit bounds it from above (1 s +20%); a loaded host may give less.
    assert!((400..=1200).contains(&cpu_ms), "{cpu_ms} ms of CPU");
    let peak = end["peak_memory_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", run.dump()));
    assert!(peak > 0 && peak < 1 << 30, "{peak}");
    fx.assert_clean();
}

/// A disk limit is the storage driver's size option: where the daemon's
/// driver refuses it (overlay2 on ext4, as here), steps run without one
/// and `hm` says so once; where it takes it, the step's root filesystem
/// is that size.
#[test]
fn a_disk_limit_is_applied_or_its_refusal_said_once() {
    if !available() {
        return;
    }
    let steps = [step("a", "df -k / | tail -1"), step("b", "df -k / | tail -1")];
    let fx = Fixture::with_on(Backend::Docker, &envelope("disk", &steps, &[], None));
    let run = fx.run_json(&["--disk", "1GiB"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let notes = run.stderr.matches("runs steps without a disk limit").count();
    if notes == 0 {
        for key in ["a", "b"] {
            let line = run.logs(key).join(" ");
            let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(kib <= 1 << 20, "{key}: {line}");
        }
    } else {
        assert_eq!(notes, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(
                "note: the docker backend runs steps without a disk limit: the daemon's storage driver refuses one ("
            ),
            "{}",
            run.stderr
        );
    }
    // Without one asked for, the default is left to the daemon, unsaid.
    let run = fx.run_json(&["--no-cache"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(!run.stderr.contains("disk limit"), "{}", run.stderr);
    fx.assert_clean();
}

/// `envelope` with `volumes` (an IR `volumes` object) set on the steps
/// named in `per_step`.
fn with_volumes(mut envelope: serde_json::Value, per_step: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let nodes = envelope["pipelines"][0]["definition"]["graph"]["nodes"]
        .as_array_mut()
        .unwrap();
    for node in nodes {
        let key = node["step"]["key"].as_str().unwrap().to_owned();
        if let Some((_, volumes)) = per_step.iter().find(|(k, _)| *k == key) {
            node["step"]["volumes"] = volumes.clone();
        }
    }
    envelope
}

/// The Docker volumes of a fixture's cache, found by their labels and
/// removed when the test ends (a volume outlives `hm` by design).
struct Volumes {
    label: String,
}

impl Volumes {
    fn of(fx: &util::Fixture) -> Self {
        Volumes {
            label: format!("label=dev.hm.cache={}", fx.cache().canonicalize().unwrap().display()),
        }
    }

    /// Each volume's name and the id its label carries, by name.
    fn list(&self) -> Vec<(String, String)> {
        let mut volumes: Vec<(String, String)> = docker(&[
            "volume",
            "ls",
            "--filter",
            &self.label,
            "--format",
            "{{.Name}} {{.Label \"dev.hm.volume\"}}",
        ])
        .into_iter()
        .map(|line| {
            let (name, id) = line.split_once(' ').unwrap();
            (name.to_owned(), id.to_owned())
        })
        .collect();
        volumes.sort();
        volumes
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        for (name, _) in self.list() {
            let _ = Command::new("docker").args(["volume", "rm", &name]).output();
        }
    }
}

/// The images of a fixture's cache that no tag names (an image a chain
/// went through, left behind).
fn untagged_images(fx: &util::Fixture) -> Vec<String> {
    docker(&[
        "images",
        "-a",
        "--filter",
        &format!("label=dev.hm.cache={}", fx.cache().canonicalize().unwrap().display()),
        "--filter",
        "dangling=true",
        "--format",
        "{{.ID}}",
    ])
}

/// The counter a step keeps in its volume at `/cache`.
const COUNT: &str = "n=$(cat /cache/n 2>/dev/null || echo 0); echo seen-$n; echo $((n+1)) > /cache/n";

#[test]
fn a_volume_outlives_the_run_and_stays_out_of_the_committed_image() {
    if !available() {
        return;
    }
    let steps = [
        step("count", &format!("{COUNT}; mkdir -p target && echo built > target/out"))
            .cache(serde_json::json!({"policy": "forever"})),
        step(
            "after",
            "test ! -e /cache/n && echo no-volume-in-the-snapshot; ls -A target | wc -l",
        ),
    ];
    let volumes = serde_json::json!({"/cache": "counter", "target": "build"});
    let pipeline = with_volumes(
        envelope("volumes", &steps, &[("count", "after", "builds_in")], None),
        &[("count", volumes)],
    );
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let docker_volumes = Volumes::of(&fx);
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.logs("count"), ["seen-0"]);
    assert_eq!(first.logs("after"), ["no-volume-in-the-snapshot", "0"]);
    // Two Docker volumes, each named after the id its label carries.
    let made = docker_volumes.list();
    assert_eq!(made.len(), 2, "{made:?}");
    for (name, id) in &made {
        assert_eq!(name, &format!("hm-vol-{id}"));
        assert_eq!(id.len(), 16, "{made:?}");
    }
    // The cached step's image holds the mount points, empty, and nothing
    // the step wrote to them.
    let entries = fx.cache_entries();
    let entry = entries.iter().find(|e| e["step"] == "count").expect("count is cached");
    let image = entry["parts"][0].as_str().unwrap();
    let inside = docker(&[
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "test -d /cache && test -d /workspace/target && find /cache /workspace/target -mindepth 1 | wc -l",
    ]);
    assert_eq!(inside, ["0"], "the volumes' contents are not in the image");

    let again = fx.run_json(&["--no-cache"]);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert_eq!(again.logs("count"), ["seen-1"], "the volume kept its data");
    assert_eq!(docker_volumes.list(), made, "the same volumes, not new ones");
    let hit = fx.run_json(&[]);
    assert_eq!(hit.status("count"), "cache_hit", "{}", hit.dump());
    fx.assert_clean();
}

/// A step of a chain whose volumes are not its container's goes on in a
/// new container made from the old one's state: it sees its own volume,
/// the files of the steps before, and of their volumes at most empty
/// mount points; a step with the same volumes stays in its container,
/// and nothing of the images the chain went through is left.
#[test]
fn a_chain_step_with_other_volumes_gets_a_container_of_its_own() {
    if !available() {
        return;
    }
    let steps = [
        step(
            "one",
            &format!("{CONTAINER}; echo 1 > /opt/one; echo first > /cache/mark"),
        ),
        step(
            "two",
            &format!(
                "{CONTAINER}; cat /opt/one; find /cache -mindepth 1 | wc -l; \
                 n=$(cat /other/n 2>/dev/null || echo 0); echo seen-$n; echo $((n+1)) > /other/n"
            ),
        ),
        step("three", &format!("{CONTAINER}; cat /other/n")),
        step("four", &format!("{CONTAINER}; test -e /other/n || echo no-volume")),
    ];
    let edges = [
        ("one", "two", "builds_in"),
        ("two", "three", "builds_in"),
        ("three", "four", "builds_in"),
    ];
    let pipeline = with_volumes(
        envelope("remount", &steps, &edges, None),
        &[
            ("one", serde_json::json!({"/cache": "first"})),
            ("two", serde_json::json!({"/other": "second"})),
            ("three", serde_json::json!({"/other": "second"})),
        ],
    );
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let docker_volumes = Volumes::of(&fx);
    for (seen, count) in [("seen-0", "1"), ("seen-1", "2")] {
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        let init = |key: &str| run.logs(key)[0].clone();
        assert_eq!(run.logs("two")[1..], ["1", "0", seen]);
        assert_ne!(init("one"), init("two"), "other volumes, another container");
        assert_eq!(init("two"), init("three"), "the same volumes, the same container");
        assert_eq!(run.logs("three")[1], count);
        assert_ne!(init("three"), init("four"), "no volumes, another container");
        assert_eq!(run.logs("four")[1..], ["no-volume"]);
        fx.assert_clean();
        let images = untagged_images(&fx);
        assert!(images.is_empty(), "images the chain went through are left: {images:?}");
    }
    assert_eq!(docker_volumes.list().len(), 2);
}

/// A step killed in the container it was moved to for its volumes (a
/// timeout) leaves neither that container nor the image it came from.
#[test]
fn a_step_killed_after_its_volumes_changed_leaves_nothing() {
    if !available() {
        return;
    }
    let steps = [
        step("one", "echo first > /cache/mark"),
        step("two", "echo started; sleep 30").timeout(2),
    ];
    let pipeline = with_volumes(
        envelope("killed", &steps, &[("one", "two", "builds_in")], None),
        &[
            ("one", serde_json::json!({"/cache": "first"})),
            ("two", serde_json::json!({"/other": "second"})),
        ],
    );
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let _volumes = Volumes::of(&fx);
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("two"), "timed_out", "{}", run.dump());
    fx.assert_clean();
    let images = untagged_images(&fx);
    assert!(images.is_empty(), "{images:?}");
}

/// `--shell-on-failure` after a step with a volume: the shell has what
/// the step wrote to its files, but not the volume (the step let go of
/// it), as on the sandbox; the volume keeps what the step wrote.
#[test]
fn a_shell_after_a_failed_step_has_its_files_but_not_its_volume() {
    if !available() {
        return;
    }
    let steps = [step(
        "bad",
        "echo partial > partial.txt; echo kept > /cache/mark; exit 3",
    )];
    let volume = serde_json::json!({"/cache": "c"});
    let pipeline = with_volumes(envelope("shell", &steps, &[], None), &[("bad", volume.clone())]);
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let _volumes = Volumes::of(&fx);
    let mut command = fx.command(&["run", "--logs", "--shell-on-failure"]);
    command.env("TERM", "vt100");
    let pty = util::pty::Pty::spawn(command, 24, 80);
    let wait_for = |needle: &str| {
        if let Err(output) = pty.wait_for(needle, Duration::from_secs(60)) {
            panic!("{output}");
        }
    };
    wait_for("hm: shell in `bad` after it failed (exit code 3)");
    // A marker the shell computes, never the echo of what was typed.
    pty.write(b"echo \"[$(cat partial.txt)] [$(ls -A /cache | wc -l)] [$((4+1))]\"\r");
    wait_for("[partial] [0] [5]");
    pty.write(b"exit 0\r");
    wait_for("hm: left the shell in `bad` (exit 0)");
    assert_eq!(pty.wait(Duration::from_secs(60)).code(), Some(1), "the build failed");
    fx.assert_clean();
    assert_eq!(untagged_images(&fx), Vec::<String>::new());
    let steps = [step("read", "cat /cache/mark")];
    fx.write(
        ".hm/pipeline.json",
        &with_volumes(envelope("shell", &steps, &[], None), &[("read", volume)]).to_string(),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("read"), ["kept"]);
    fx.assert_clean();
}

/// Source files under a volume's mount path lie under the volume, as on
/// the sandbox (which syncs before it mounts): a step sees only what the
/// volume holds, a child without it sees the source, and neither an
/// edit nor a removal of them reaches the volume.
#[test]
fn source_files_under_a_volume_path_stay_under_the_volume() {
    if !available() {
        return;
    }
    let steps = [
        step("s", "echo in-volume: $(ls -A out); echo mine > out/own"),
        step(
            "after",
            "cat out/a.txt 2>/dev/null || echo gone; test -e out/own || echo no-own",
        ),
    ];
    let pipeline = with_volumes(
        envelope("under", &steps, &[("s", "after", "builds_in")], None),
        &[("s", serde_json::json!({"out": "build"}))],
    );
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let _volumes = Volumes::of(&fx);
    // Enough other files that an edit is synced on top of the source
    // image rather than making a new one.
    for i in 0..20 {
        fx.write(&format!("f{i:02}"), "\n");
    }
    fx.write("out/a.txt", "one\n");
    let run = |volume: &str, after: &str| {
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        assert_eq!(run.logs("s"), [volume]);
        assert_eq!(run.logs("after"), [after, "no-own"]);
    };
    // On the source image; then edited, and removed, on top of it.
    run("in-volume:", "one");
    fx.write("out/a.txt", "two\n");
    run("in-volume: own", "two");
    std::fs::remove_file(fx.project().join("out/a.txt")).unwrap();
    run("in-volume: own", "gone");
    fx.assert_clean();
}

#[test]
fn private_volumes_are_docker_volumes_of_their_own() {
    if !available() {
        return;
    }
    let mine = |key: &str| {
        step(
            key,
            "echo $HM_KEY > /v/owner; echo started; sleep 1; echo owner-$(cat /v/owner)",
        )
        .env("HM_KEY", key)
    };
    let volume = serde_json::json!({"/v": {"name": "v", "sharing": "private"}});
    let pipeline = with_volumes(
        envelope("private", &[mine("a"), mine("b")], &[], None),
        &[("a", volume.clone()), ("b", volume)],
    );
    let fx = Fixture::with_on(Backend::Docker, &pipeline);
    let docker_volumes = Volumes::of(&fx);
    let run = fx.run_json(&["--parallelism", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("a"), ["started", "owner-a"]);
    assert_eq!(run.logs("b"), ["started", "owner-b"]);
    assert_eq!(docker_volumes.list().len(), 2, "one volume each");
    fx.assert_clean();
}

/// A volume a killed `hm` made is there under the name the next step that
/// takes it uses: that step has what was written.
#[test]
fn a_killed_hm_leaves_a_volume_the_next_run_takes() {
    if !available() {
        return;
    }
    let volume = serde_json::json!({"/v": {"name": "v", "sharing": "locked"}});
    let writer = [step("w", "echo partial > /v/file; echo started; sleep 60")];
    let fx = Fixture::with_on(
        Backend::Docker,
        &with_volumes(envelope("killed", &writer, &[], None), &[("w", volume.clone())]),
    );
    let docker_volumes = Volumes::of(&fx);
    let ((), code) = fx.run_and_signal(&[], "started", "KILL", || ());
    assert_eq!(code, None, "killed");
    let left = docker_volumes.list();
    assert_eq!(left.len(), 1, "{left:?}");
    let reader = [step("r", "cat /v/file; echo again > /v/file; cat /v/file")];
    fx.write(
        ".hm/pipeline.json",
        &with_volumes(envelope("killed", &reader, &[], None), &[("r", volume)]).to_string(),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("r"), ["partial", "again"]);
    assert_eq!(docker_volumes.list(), left, "the same volume");
    fx.assert_clean();
}

/// Volumes' sizes are known (counted in the step's container after it),
/// so the cache's byte bound evicts the least recently used one, and its
/// Docker volume goes.
#[test]
fn over_the_byte_bound_the_least_recently_used_docker_volume_goes() {
    if !available() {
        return;
    }
    let fx = Fixture::on(Backend::Docker);
    let docker_volumes = Volumes::of(&fx);
    fx.write(".hm/config.toml", "[cache]\nmax_size = \"2500KB\"\n");
    let fill = |name: &str| {
        let steps = [step(
            "fill",
            "test -e /v/blob && echo kept || echo empty; head -c 1000000 /dev/urandom > /v/blob",
        )];
        fx.write(
            ".hm/pipeline.json",
            &with_volumes(
                envelope("fill", &steps, &[], None),
                &[("fill", serde_json::json!({"/v": name}))],
            )
            .to_string(),
        );
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "{}", run.dump());
        // Last use is kept to the second.
        std::thread::sleep(Duration::from_millis(1100));
        run.logs("fill")
    };
    assert_eq!(fill("one"), ["empty"]);
    assert_eq!(fill("two"), ["empty"]);
    assert_eq!(docker_volumes.list().len(), 2);
    // Three of about 1 MB are over 2.5 MB: `one` goes after this run.
    assert_eq!(fill("three"), ["empty"]);
    assert_eq!(docker_volumes.list().len(), 2, "one evicted");
    assert_eq!(fill("two"), ["kept"], "used more recently than `one`");
    assert_eq!(fill("one"), ["empty"], "evicted");
    fx.assert_clean();
}

/// A `docker-registry` on 127.0.0.1 with one user, and the test image
/// pushed to it (then untagged here, so that `hm` has to pull it).
struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    address: String,
    image: String,
}

impl Registry {
    fn start() -> Option<Self> {
        if !util::registry_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "hm", "secret"])
            .output()
            .unwrap();
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n\
             auth:\n  htpasswd:\n    realm: hm-test\n    path: {}\n",
            dir.path().join("data").display(),
            dir.path().join("htpasswd").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let image = format!("{address}/hm-test/pulled:{}", std::process::id());
        let registry = Registry {
            child,
            dir,
            address,
            image,
        };
        // The CLI pushes with its own login, in a config of its own.
        let cli_config = registry.dir.path().join("cli");
        let cli = |args: &[&str]| {
            let out = Command::new("docker")
                .args(args)
                .env("DOCKER_CONFIG", &cli_config)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        };
        cli(&["login", &registry.address, "-u", "hm", "-p", "secret"]);
        cli(&["tag", &docker_image(), &registry.image]);
        cli(&["push", &registry.image]);
        cli(&["rmi", &registry.image]);
        Some(registry)
    }

    /// A Docker client configuration holding `config.json`.
    fn client_config(&self, name: &str, config: &serde_json::Value) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        dir
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("docker").args(["rmi", &self.image]).output();
    }
}

fn pull_run(fx: &Fixture, config: &Path, path: Option<&Path>) -> std::process::Output {
    let mut command = fx.command(&["run", "--format", "json"]);
    command.env("DOCKER_CONFIG", config);
    if let Some(bin) = path {
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        command.env("PATH", path);
    }
    command.output().unwrap()
}

#[test]
fn images_are_pulled_with_the_docker_clients_credentials() {
    if !available() {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    let fx = Fixture::on(Backend::Docker);
    let steps = [step("pulled", "cat /etc/debian_version >/dev/null && echo ran").image(Some(&registry.image))];
    fx.write(".hm/pipeline.json", &envelope("pull", &steps, &[], None).to_string());

    // No credentials: the registry refuses, and that is exit 4 before any step.
    let anonymous = registry.client_config("anonymous", &serde_json::json!({}));
    let refused = pull_run(&fx, &anonymous, None);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("could not be pulled"), "{}", stderr(&refused));
    assert!(refused.stdout.is_empty());

    // `auths` in config.json.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("hm:secret");
    let with_auths = registry.client_config(
        "auths",
        &serde_json::json!({"auths": {(format!("http://{}", registry.address)): {"auth": auth}}}),
    );
    let pulled = pull_run(&fx, &with_auths, None);
    assert_eq!(pulled.status.code(), Some(0), "{}", stderr(&pulled));
    assert!(stderr(&pulled).contains("pulling image"), "{}", stderr(&pulled));
    assert!(String::from_utf8_lossy(&pulled.stdout).contains("\"line\":\"ran\""));
    docker(&["rmi", &registry.image]);

    // A credential helper, as `credsStore` names it.
    let bin = registry.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-hmtest");
    let mut script = std::fs::File::create(&helper).unwrap();
    writeln!(
        script,
        "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = {} ] || exit 1\n\
         echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"hm\",\"Secret\":\"secret\"}}'",
        registry.address
    )
    .unwrap();
    drop(script);
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let with_helper = registry.client_config("helper", &serde_json::json!({"credsStore": "hmtest"}));
    let pulled = pull_run(&fx, &with_helper, Some(&bin));
    assert_eq!(pulled.status.code(), Some(0), "{}", stderr(&pulled));
    fx.assert_clean();
}
