//! Every step in its own control group, with limits (DESIGN.md §6): a
//! step over its memory ends `oom`, a fork bomb stops at the process
//! limit, a CPU quota holds, usage is reported, and no group outlives its
//! run, whether it ended, was interrupted or killed.
//!
//! The tests here take turns ([`serial`]): CPU figures mean nothing while
//! a fork bomb runs beside them.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use util::{envelope, root_available, sandbox_available, step, Fixture, Run};

fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether limits can be tested here: namespaces, and root (cgroup v1, as
/// these machines have, is root's only).
fn limits_testable() -> bool {
    sandbox_available() && root_available("applying cgroup limits")
}

/// The groups live sessions of `cache` recorded.
fn recorded_groups(cache: &Path) -> Vec<PathBuf> {
    let mut groups = Vec::new();
    for session in fs::read_dir(cache.join("runs")).into_iter().flatten().flatten() {
        let record = fs::read_to_string(session.path().join("cgroups")).unwrap_or_default();
        groups.extend(record.lines().filter(|l| !l.is_empty()).map(PathBuf::from));
    }
    groups
}

fn assert_gone(groups: &[PathBuf], context: &str) {
    assert!(!groups.is_empty(), "{context}: no control group was recorded");
    let left: Vec<_> = groups.iter().filter(|g| g.exists()).collect();
    assert!(left.is_empty(), "{context}: control groups left behind: {left:?}");
}

#[test]
fn a_step_over_its_memory_limit_ends_oom_and_another_branch_passes() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    let steps = [
        step("hog", "head -c 300000000 /dev/zero | tail").runner_args(json!({"memory": "64MiB"})),
        step("other", "head -c 30000000 /dev/zero | tail | wc -c"),
    ];
    let fx = Fixture::with(&envelope("memory", &steps, &[], None));
    let run = fx.run_json(&["--keep-going"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("hog"), "oom", "{}", run.dump());
    let end = run.end("hog");
    assert_eq!(end["exit_code"], 137, "{}", run.dump());
    let message = end["message"].as_str().unwrap();
    assert!(
        message.starts_with("killed: out of memory, limit 64 MiB, peak "),
        "{message}"
    );
    let peak = end["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak > 60 << 20 && peak <= 64 << 20, "peak {peak}");
    // The other branch held 30 MB under the default 8 GiB.
    assert_eq!(run.status("other"), "passed", "{}", run.dump());
    assert_eq!(run.stdout("other"), ["30000000"]);
    assert!(run.end("other")["peak_memory_bytes"].as_u64().unwrap() > 30_000_000);

    // The human view says it, and lists the slowest steps with their use.
    let out = fx.hm(&["run", "--keep-going"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("killed: out of memory, limit 64 MiB, peak "),
        "{stdout}"
    );
    assert!(stdout.contains("Slowest steps:") && stdout.contains("CPU "), "{stdout}");
    fx.assert_clean();
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit_and_the_host_stays_responsive() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    // The bomb goes on in the background while the step's own shell spins
    // without forking.
    let cmd =
        "bomb() { bomb | bomb & }; bomb; echo bombed; i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo spun";
    let steps = [step("bomb", cmd).runner_args(json!({"pids": 200}))];
    let fx = Fixture::with(&envelope("bomb", &steps, &[], None));
    let mut slowest = Duration::ZERO;
    let run = fx.run_json_when(&[], "bombed", || {
        for _ in 0..5 {
            let started = Instant::now();
            assert!(Command::new("true").status().unwrap().success());
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(
        slowest < Duration::from_secs(1),
        "`true` took {slowest:?} during the bomb"
    );
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("bomb"), "failed", "{}", run.dump());
    let message = run.end("bomb")["message"].as_str().unwrap().to_owned();
    assert!(message.contains("reached its process limit of 200"), "{message}");
    assert!(run.stdout("bomb").contains(&"spun".to_owned()), "{}", run.dump());
    fx.assert_clean();
}

#[test]
fn half_a_cpu_gives_half_the_cpu_time() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    let busy = "timeout 2 sh -c 'while :; do :; done'; true";
    let steps = [step("busy", busy).runner_args(json!({"cpus": 0.5}))];
    let fx = Fixture::with(&envelope("cpu", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let cpu = run.end("busy")["cpu_ms"].as_u64().unwrap();
    assert!((800..=1200).contains(&cpu), "2 s at half a CPU used {cpu} ms of CPU");
}

#[test]
fn defaults_apply_and_usage_is_reported_for_steps_that_ran() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    let steps = [step("s", "echo ready; sleep 1").cache(json!({"policy": "ttl", "duration_seconds": 3600}))];
    let fx = Fixture::with(&envelope("defaults", &steps, &[], None));
    let mut seen = Vec::new();
    let run = fx.run_json_when(&[], "ready", || {
        for group in recorded_groups(&fx.cache()) {
            for step in fs::read_dir(&group).unwrap().flatten().filter(|e| e.path().is_dir()) {
                for file in ["memory.limit_in_bytes", "memory.max", "pids.max"] {
                    if let Ok(value) = fs::read_to_string(step.path().join(file)) {
                        seen.push((file, value.trim().to_owned()));
                    }
                }
            }
        }
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    seen.sort();
    let memory = seen
        .iter()
        .find(|(f, _)| f.starts_with("memory."))
        .map(|(_, v)| v.as_str());
    assert_eq!(memory, Some("8589934592"), "8 GiB: {seen:?}");
    assert!(seen.contains(&("pids.max", "4096".to_owned())), "{seen:?}");
    let end = run.end("s");
    assert!(end["peak_memory_bytes"].as_u64().is_some_and(|b| b > 0), "{end}");
    assert!(end["cpu_ms"].as_u64().is_some(), "{end}");
    // A hit ran nothing: it has no figures.
    let again = fx.run_json(&[]);
    assert_eq!(again.status("s"), "cache_hit", "{}", again.dump());
    let end = again.end("s");
    assert!(
        end.get("peak_memory_bytes").is_none() && end.get("cpu_ms").is_none(),
        "{end}"
    );
}

#[test]
fn no_group_outlives_a_run_an_interrupt_or_a_killed_hm() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    let steps = [step("s", "echo started; sleep 1")];
    let fx = Fixture::with(&envelope("ends", &steps, &[], None));
    let mut groups = Vec::new();
    let run = fx.run_json_when(&[], "started", || groups = recorded_groups(&fx.cache()));
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_gone(&groups, "after a run");

    let steps = [step("s", "echo started; sleep 60")];
    fx.write(".hm/pipeline.json", &envelope("ends", &steps, &[], None).to_string());
    let (groups, code) = fx.run_and_signal(&[], "started", "INT", || recorded_groups(&fx.cache()));
    assert_eq!(code, Some(130));
    assert_gone(&groups, "after an interrupt");
    fx.assert_clean();

    let (groups, code) = fx.run_and_signal(&[], "started", "KILL", || recorded_groups(&fx.cache()));
    assert_eq!(code, None, "killed");
    // The next run removes what the killed one left.
    let steps = [step("s", "true")];
    fx.write(".hm/pipeline.json", &envelope("ends", &steps, &[], None).to_string());
    let run: Run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_gone(&groups, "after hm was killed and ran again");
    fx.assert_clean();
}

/// A shell after a failed step runs in a group of its own with the step's
/// limits, removed when the shell ends.
#[test]
fn a_shell_runs_within_its_steps_limits() {
    let _turn = serial();
    if !limits_testable() {
        return;
    }
    let steps = [step("bad", "exit 3").runner_args(json!({"pids": 77}))];
    let fx = Fixture::with(&envelope("shell", &steps, &[], None));
    let mut command = fx.command(&["run", "--shell-on-failure"]);
    command.env("TERM", "vt100");
    let pty = util::pty::Pty::spawn(command, 24, 80);
    let wait_for = |needle: &str| pty.wait_for(needle, Duration::from_secs(60)).unwrap();
    wait_for("hm: shell in `bad` after it failed (exit code 3)");
    // Computed by the shell, so never the echo of what was typed.
    pty.write(b"grep -q /hm/ /proc/self/cgroup && echo in-a-group-$((1+1))\r");
    wait_for("in-a-group-2");
    let groups = recorded_groups(&fx.cache());
    let mut pids_max = Vec::new();
    for group in &groups {
        for step in fs::read_dir(group).unwrap().flatten().filter(|e| e.path().is_dir()) {
            pids_max.extend(fs::read_to_string(step.path().join("pids.max")).ok());
        }
    }
    assert_eq!(
        pids_max,
        ["77\n"],
        "the shell's group alone is left, with the step's limit"
    );
    pty.write(b"exit 0\r");
    assert_eq!(pty.wait(Duration::from_secs(60)).code(), Some(1), "the build failed");
    assert_gone(&groups, "after the shell");
    fx.assert_clean();
}

/// Unprivileged on cgroup v1 there is nothing to delegate: the run goes
/// on without limits and says so in one line.
#[test]
fn without_a_delegated_group_a_run_says_it_has_no_limits() {
    let _turn = serial();
    if !sandbox_available() || !root_available("running hm as another user") {
        return;
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        util::skip::skip("this machine has cgroup v2, whose delegation systemd decides");
        return;
    }
    let fx = Fixture::with(&envelope("nobody", &[step("s", "echo ok")], &[], None));
    let run = fx.run_json_as_nobody(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let notes: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("without memory, CPU and process limits"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", run.stderr);
    assert!(notes[0].contains("cgroup v1"), "{}", notes[0]);
    assert!(run.end("s").get("peak_memory_bytes").is_none());
}
