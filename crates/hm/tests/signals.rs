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

/// `hm ARGS` in the fixture's project, as the unprivileged user when
/// `rootless` (and the tests run as root), with its output discarded.
fn spawn_hm(fx: &Fixture, args: &[&str], rootless: bool) -> Child {
    let mut command = if rootless {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{UID}:{UID}"))
            .arg(fx.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
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
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `hm render` and `hm run` on a pipeline file that never finishes, ended
/// by `signal`: its `python3` must go with it.
fn python_dies_with_hm(signal: &str, args: &[&str], rootless: bool) {
    if !python_available() || (rootless && !util::is_root()) {
        return;
    }
    let fx = Fixture::new();
    fx.write(".hm/pipeline.py", "import harmont as hm\n\nwhile True:\n    pass\n");
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
