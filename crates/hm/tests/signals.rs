//! `hm` ended by a signal (SIGINT, SIGTERM, or SIGKILL, which it cannot
//! see): no process it started survives it, and no temporary directory it
//! made outlives the next `hm` on the same cache.

mod util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{python_available, Fixture};

/// An unprivileged uid for the rootless cases (nobody).
const UID: u32 = 65534;

/// Gives the fixture to the unprivileged user.
fn hand_over(fx: &Fixture) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{UID}:{UID}"))
        .arg(fx.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}

/// `hm ARGS` in the fixture's project, as the unprivileged user when
/// `rootless` (the fixture handed over to it), with its output discarded.
fn spawn_hm(fx: &Fixture, args: &[&str], rootless: bool) -> Child {
    hm_command(fx, args, rootless)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `hm ARGS` as the cache's owner: the unprivileged user when `rootless`
/// (hm refuses a cache that belongs to someone else, root included).
fn hm_command(fx: &Fixture, args: &[&str], rootless: bool) -> Command {
    let mut command = if rootless {
        let mut command = Command::new("setpriv");
        command
            .args([
                &format!("--reuid={UID}"),
                &format!("--regid={UID}"),
                "--clear-groups",
                util::hm_bin(),
            ])
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", fx.cache())
            .env("HOME", fx.dir.path());
        command
    } else {
        fx.command(&[])
    };
    command.args(args);
    command
}

/// Sends `signal` (`KILL`, `TERM`, `INT`) to `pid`.
fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The pids of live processes whose program is `program` and whose
/// arguments mention `marker`.
fn processes(program: &str, marker: &Path) -> Vec<u32> {
    let marker = marker.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let mut args = cmdline.split(|b| *b == 0).map(String::from_utf8_lossy);
        let is_program = args.next().is_some_and(|argv0| argv0.contains(program));
        if is_program && args.any(|a| a.contains(&marker)) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `limit` for `check` to hold.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `hm render` and `hm run` on a pipeline file that never finishes, ended
/// by `signal`: its `python3` must go with it.
fn python_dies_with_hm(signal: &str, args: &[&str], rootless: bool) {
    if !python_available() || (rootless && !util::root_available("acting as nobody")) {
        return;
    }
    let fx = Fixture::new();
    fx.write(".hm/pipeline.py", "import harmont as hm\n\nwhile True:\n    pass\n");
    if rootless {
        hand_over(&fx);
    }
    let mut hm = spawn_hm(&fx, args, rootless);
    let project = fx.project();
    let started = eventually(Duration::from_secs(20), || !processes("python", &project).is_empty());
    assert!(started, "python3 never started");
    kill(hm.id(), signal);
    let _ = hm.wait();
    let gone = eventually(Duration::from_secs(5), || processes("python", &project).is_empty());
    let left = processes("python", &project);
    for pid in &left {
        kill(*pid, "KILL");
    }
    assert!(gone, "`{signal}` to hm {args:?} left python3 running: {left:?}");
}

/// `python3` spun at 100% CPU under PID 1 after `hm` was killed.
#[test]
fn the_python_evaluator_died_with_hm() {
    for signal in ["KILL", "TERM", "INT"] {
        python_dies_with_hm(signal, &["render", "ci"], false);
    }
    python_dies_with_hm("KILL", &["run"], false);
    python_dies_with_hm("KILL", &["pipelines"], true);
}

/// `hm run` interrupted while its pipeline file is still evaluating (one
/// that never finishes): exit 130 at once, not a load error and not a wait
/// for the file; `SIGTERM` to `hm` alone, and `SIGINT` to its process
/// group as a terminal's Ctrl-C sends it (which reaches `python3` too).
#[test]
fn an_interrupt_while_the_pipeline_loads_is_exit_130() {
    use std::os::unix::process::CommandExt;
    if !python_available() {
        return;
    }
    for (signal, group) in [("TERM", false), ("INT", true)] {
        let fx = Fixture::new();
        fx.write(".hm/pipeline.py", "import harmont as hm\n\nwhile True:\n    pass\n");
        let mut hm = fx
            .command(&["run"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let project = fx.project();
        let started = eventually(Duration::from_secs(20), || !processes("python", &project).is_empty());
        assert!(started, "python3 never started");
        let target = if group {
            format!("-{}", hm.id())
        } else {
            hm.id().to_string()
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success());
        let ended = eventually(Duration::from_secs(10), || hm.try_wait().unwrap().is_some());
        if !ended {
            let _ = hm.kill();
            for pid in processes("python", &project) {
                kill(pid, "KILL");
            }
        }
        let out = hm.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(ended, "{signal}: hm went on waiting for the pipeline file: {stderr}");
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(
            stderr.contains("interrupted while loading the pipelines"),
            "{signal}: {stderr}"
        );
        assert!(
            !stderr.contains("Traceback") && !stderr.contains("KeyboardInterrupt"),
            "{stderr}"
        );
        let gone = eventually(Duration::from_secs(5), || processes("python", &project).is_empty());
        assert!(gone, "{signal}: python3 left running");
        fx.assert_clean();
    }
}

/// A step's processes (the sandbox helper, its init, the command) go with
/// a killed `hm`, as root and rootless.
#[test]
fn a_step_dies_with_a_killed_hm() {
    if !util::sandbox_available() {
        return;
    }
    for rootless in [false, true] {
        if rootless && !util::is_root() {
            continue;
        }
        let fx = Fixture::new();
        let marker = fx.dir.path().file_name().unwrap().to_string_lossy().into_owned();
        let cmd = format!("sleep 1000; echo {marker}");
        fx.write(
            ".hm/pipeline.json",
            &util::envelope("ci", &[util::step("a", &cmd)], &[], None).to_string(),
        );
        if rootless {
            hand_over(&fx);
        }
        let mut hm = spawn_hm(&fx, &["run"], rootless);
        let started = eventually(Duration::from_secs(20), || {
            !processes("sh", Path::new(&marker)).is_empty()
        });
        assert!(started, "the step never started");
        kill(hm.id(), "KILL");
        let _ = hm.wait();
        let gone = eventually(Duration::from_secs(5), || {
            processes("sh", Path::new(&marker)).is_empty()
        });
        assert!(gone, "rootless: {rootless}: a step outlived hm");
    }
}

/// A source tree big enough that an import takes a moment.
fn big_tree(dir: &Path) {
    for d in 0..20 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            std::fs::write(sub.join(format!("f{f}")), "x").unwrap();
        }
    }
}

/// The temporary entries (`.tmp-`, `.new-`) in the image store.
fn partial_copies(fx: &Fixture) -> Vec<String> {
    std::fs::read_dir(fx.cache().join("images"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp-") || n.starts_with(".new-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `hm image import NAME SOURCE` and returns once its partial copy
/// exists.
fn start_import(fx: &Fixture, name: &str, source: &Path, rootless: bool) -> Child {
    let mut child = spawn_hm(fx, &["image", "import", name, source.to_str().unwrap()], rootless);
    let copying = eventually(Duration::from_secs(20), || !partial_copies(fx).is_empty());
    if !copying {
        let _ = child.kill();
        panic!("the import never started copying");
    }
    child
}

/// 8 SIGKILLed imports left 8 partial copies (383 MB) that nothing ever
/// removed, and an import had no signal handling: SIGINT and SIGTERM stop
/// it (exit 130) with its copy removed, and what a SIGKILL leaves goes with
/// the next `hm` on the cache, while a live import's copy stays.
#[test]
fn a_killed_image_import_leaked_its_partial_copy() {
    for rootless in [false, true] {
        if rootless && !util::is_root() {
            continue;
        }
        let fx = Fixture::new();
        let source = fx.dir.path().join("rootfs");
        big_tree(&source);
        if rootless {
            hand_over(&fx);
        }
        for signal in ["INT", "TERM"] {
            let mut import = start_import(&fx, "big", &source, rootless);
            kill(import.id(), signal);
            let status = import.wait().unwrap();
            assert_eq!(status.code(), Some(130), "{signal}, rootless: {rootless}");
            assert!(partial_copies(&fx).is_empty(), "{signal}: {:?}", partial_copies(&fx));
        }

        let mut import = start_import(&fx, "big", &source, rootless);
        kill(import.id(), "KILL");
        import.wait().unwrap();
        assert_eq!(partial_copies(&fx).len(), 1, "SIGKILL leaves the copy to the next hm");
        let ls = spawn_hm(&fx, &["cache", "ls"], rootless).wait().unwrap();
        assert!(ls.success());
        assert!(partial_copies(&fx).is_empty(), "the next hm removes it");
        // A live import's copy is in use: another hm leaves it alone.
        let mut live = start_import(&fx, "other", &source, rootless);
        let ls = spawn_hm(&fx, &["image", "ls"], rootless).wait().unwrap();
        assert!(ls.success());
        assert!(live.wait().unwrap().success(), "the live import was disturbed");
        assert!(partial_copies(&fx).is_empty());
        let images = hm_command(&fx, &["image", "ls", "--format", "json"], rootless)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let images: Vec<serde_json::Value> = serde_json::from_slice(&images.stdout).unwrap();
        let names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["other"], "rootless: {rootless}");
    }
}
