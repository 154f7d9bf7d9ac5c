//! `hm run --watch`: an edit runs again what it affects and nothing else;
//! ignored files and saves that change nothing run nothing; the pipeline is
//! reloaded (and one with an error waits for the next edit); Ctrl-C while
//! waiting ends with the last run's exit code, leaving nothing behind.

mod util;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{envelope, sandbox_available, step, Fixture, Run};

/// Long enough for any run here; a test that waits longer has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Longer than the watcher's longest debounce (2 s) and a scan.
const QUIET: Duration = Duration::from_secs(3);

/// `hm run --watch --format json` running in the background.
struct Watching {
    child: Child,
    /// stdout, line by line.
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Watching {
    fn start(fx: &Fixture) -> Self {
        let mut child = fx
            .command(&["run", "--watch", "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let text = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                text.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watching { child, lines, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills `hm` and fails the test.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        panic!("{why}\nstderr:\n{}", self.stderr());
    }

    /// The events of the next run, up to its `build_end`.
    fn next_run(&mut self) -> Run {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let mut events: Vec<Value> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    let end = event["kind"] == "build_end";
                    events.push(event);
                    if end {
                        let code = events.last().unwrap()["exit_code"].as_i64().unwrap() as i32;
                        return Run {
                            code,
                            events,
                            stderr: self.stderr(),
                        };
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no build_end within {RUN_TIMEOUT:?}: {events:#?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("hm ended before its build_end: {events:#?}"))
                }
            }
        }
    }

    /// Waits until stderr says `needle` `times` times.
    fn said(&mut self, needle: &str, times: usize) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        while self.stderr().matches(needle).count() < times {
            if Instant::now() > deadline {
                self.fail(&format!("`{needle}` not said {times} times"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails if anything is printed on stdout within `wait`.
    fn quiet(&mut self, wait: Duration, after: &str) {
        match self.lines.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(line) => self.fail(&format!("{after} started a run: {line}")),
            Err(RecvTimeoutError::Disconnected) => self.fail(&format!("hm ended after {after}")),
        }
    }

    /// Ctrl-C: the exit code, and whatever stdout still had.
    fn interrupt(mut self) -> (i32, Vec<String>, String) {
        let status = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + RUN_TIMEOUT;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                self.fail("still running after Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        std::thread::sleep(Duration::from_millis(100));
        (code, rest, self.stderr())
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_change(path: &str) -> Value {
    json!({"policy": "on_change", "paths": [path]})
}

fn status_of(run: &Run, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| format!("{k}: {}", run.status(k))).collect()
}

#[test]
fn an_edit_runs_again_what_it_affects_and_nothing_else() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("a", "cat a.txt").cache(on_change("a.txt")),
        // Built in `a`: its key follows `a`'s.
        step("after-a", "! grep -q broken a.txt").cache(json!({"policy": "forever"})),
        step("b", "cat b.txt").cache(on_change("b.txt")),
        step("c", "echo c").cache(json!({"policy": "forever"})),
    ];
    let fx = Fixture::with(&envelope("ci", &steps, &[("a", "after-a", "builds_in")], None));
    fx.write("a.txt", "v1\n");
    fx.write("b.txt", "b\n");
    fx.write(".gitignore", "*.log\n");
    let mut watching = Watching::start(&fx);

    let first = watching.next_run();
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.executed(), ["a", "after-a", "b", "c"]);
    watching.said("watching for changes (Ctrl-C to stop)", 1);

    fx.write("a.txt", "v2 broken\n");
    let second = watching.next_run();
    assert_eq!(
        second.executed(),
        ["a", "after-a"],
        "only the edited file's step and the one built in it: {}",
        second.dump()
    );
    assert_eq!(
        status_of(&second, &["a", "after-a", "b", "c"]),
        ["a: passed", "after-a: failed", "b: cache_hit", "c: cache_hit"]
    );
    assert_eq!(second.miss_reason("a").as_deref(), Some("files changed: a.txt"));
    assert_eq!(second.code, 1);
    watching.said("watching for changes (Ctrl-C to stop)", 2);
    assert!(
        watching.stderr().contains("hm: changed: a.txt; running again"),
        "{}",
        watching.stderr()
    );

    // An ignored file, and a save that leaves the content as it was.
    fx.write("debug.log", "noise\n");
    fx.write("b.txt", "b\n");
    watching.quiet(QUIET, "an ignored file or an unchanged save");

    // Ctrl-C while waiting: the last run's code (it failed), no third run.
    let (code, rest, stderr) = watching.interrupt();
    assert_eq!(code, 1, "{stderr}");
    assert!(rest.is_empty(), "after the second run: {rest:#?}");
    assert_eq!(stderr.matches("running again").count(), 1, "{stderr}");
    fx.assert_clean();
}

#[test]
fn the_pipeline_is_reloaded_and_one_with_an_error_waits_for_the_next_edit() {
    if !sandbox_available() {
        return;
    }
    let one = [step("one", "echo one").cache(json!({"policy": "forever"}))];
    let fx = Fixture::with(&envelope("ci", &one, &[], None));
    let mut watching = Watching::start(&fx);
    let first = watching.next_run();
    assert_eq!(first.executed(), ["one"], "{}", first.dump());
    watching.said("watching for changes", 1);

    fx.write(".hm/pipeline.json", "{ not json");
    watching.said("changed: .hm/pipeline.json", 1);
    watching.said("watching for changes", 2);
    assert!(watching.stderr().contains("error:"), "{}", watching.stderr());
    watching.quiet(Duration::from_millis(500), "a broken pipeline");

    let two = [
        step("one", "echo one").cache(json!({"policy": "forever"})),
        step("two", "echo two").cache(json!({"policy": "forever"})),
    ];
    fx.write(
        ".hm/pipeline.json",
        &serde_json::to_string_pretty(&envelope("ci", &two, &[], None)).unwrap(),
    );
    let second = watching.next_run();
    assert_eq!(second.executed(), ["two"], "{}", second.dump());
    assert_eq!(second.status("one"), "cache_hit");
    watching.said("watching for changes", 3);

    let (code, rest, stderr) = watching.interrupt();
    assert_eq!(code, 0, "the last run passed: {stderr}");
    assert!(rest.is_empty(), "{rest:#?}");
    fx.assert_clean();
}

#[test]
fn ctrl_c_during_a_run_interrupts_it_and_ends_the_watch() {
    if !sandbox_available() {
        return;
    }
    let steps = [step("slow", "echo started; sleep 60")];
    let fx = Fixture::with(&envelope("ci", &steps, &[], None));
    let mut watching = Watching::start(&fx);
    // Wait for the step to be running.
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        match watching
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) if line.contains("\"line\":\"started\"") => break,
            Ok(_) => {}
            Err(_) => watching.fail("the step never started"),
        }
    }
    let (code, rest, stderr) = watching.interrupt();
    assert_eq!(code, 130, "{stderr}");
    let ends = rest.iter().filter(|l| l.contains("\"build_end\"")).count();
    assert_eq!(ends, 1, "{rest:#?}");
    assert!(!stderr.contains("watching for changes"), "{stderr}");
    fx.assert_clean();
}
