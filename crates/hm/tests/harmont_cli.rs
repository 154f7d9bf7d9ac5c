//! Harmont's command line as its users type it (issue 17): every flag and
//! subcommand of Harmont's `hm` that this `hm` accepts, each driven through
//! the real binary and checked by what it does here — its exit code, what
//! it says, and its effect on the run, the history or the cache.

mod util;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::pty::Pty;
use util::{envelope, json_list, sandbox_available, step, Fixture, Run};

/// A pipeline of one cached step and one uncached step built on it.
fn cached_pair() -> Fixture {
    let steps = [
        step("build", "echo built").cache(json!({"policy": "forever"})),
        step("test", "echo tested"),
    ];
    Fixture::with(&envelope("ci", &steps, &[("build", "test", "builds_in")], None))
}

/// `cmd`'s output, or a panic naming `what` when it has not exited within
/// `limit` (it is killed first).
fn output_within(mut cmd: Command, limit: Duration, what: &str) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The runs `hm runs --format json` lists, newest first.
fn runs(fx: &Fixture) -> Vec<Value> {
    json_list(&fx.hm(&["runs", "--format", "json"]))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hm version` prints `hm VERSION` on stdout, as Harmont's does.
#[test]
fn version_prints_the_version() {
    let fx = Fixture::new();
    let out = fx.hm(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("hm {}\n", env!("CARGO_PKG_VERSION")));
}

/// `hm plugin list` answers Harmont's "Registered runners:" with the step
/// runner, then the backends (sandbox the default) and the pipeline
/// languages, on stdout.
#[test]
fn plugin_list_names_the_runner_backends_and_languages() {
    let fx = Fixture::new();
    let out = fx.hm(&["plugin", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0], "Registered runners:", "{listed}");
    for wanted in [
        "  vm (default, built-in): ",
        "  sandbox (default, built-in): ",
        "  docker (built-in): ",
        "  python (built-in): ",
        "  typescript (built-in): ",
        "  json (built-in): ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(wanted)),
            "no {wanted:?} in:\n{listed}"
        );
    }
    let (sandbox, docker) = (listed.find("  sandbox ").unwrap(), listed.find("  docker ").unwrap());
    assert!(
        listed.find("Backends:").unwrap() < sandbox && sandbox < docker,
        "{listed}"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// `--org`, `--cloud`, `--backend cloud` (also as `HM_BACKEND`) and `hm
/// cloud ...` ask for Harmont's hosted service: one line saying it is not
/// part of this hm, exit 2, nothing run and no run recorded.
#[test]
fn the_hosted_service_is_refused_in_one_line_and_nothing_runs() {
    let fx = cached_pair();
    let asked: [(&[&str], &str); 5] = [
        (&["run", "--org", "acme"], "`--org`"),
        (&["run", "--cloud"], "`--cloud`"),
        (&["run", "--backend", "cloud"], "`--backend cloud`"),
        (&["cloud", "login"], "`hm cloud login`"),
        (&["cloud"], "`hm cloud`"),
    ];
    for (args, named) in asked {
        let out = fx.hm(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("error: {named} is for Harmont's hosted service"))
                && err.contains("not part of this hm"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
    let from_env = fx.command(&["run"]).env("HM_BACKEND", "cloud").output().unwrap();
    assert_eq!(from_env.status.code(), Some(2));
    assert!(text(&from_env.stderr).contains("`--backend cloud`"));
    assert_eq!(runs(&fx), Vec::<Value>::new(), "no run was recorded");
    assert!(fx.cache_entries().is_empty(), "no step ran");
}

/// `-b/--branch` and `-m/--message` are recorded on the build: in its
/// `build_start` event and its history (`hm runs`, human and JSON). A build
/// without them has neither, in either place.
#[test]
fn branch_and_message_are_recorded_on_the_build() {
    if !sandbox_available() {
        return;
    }
    let fx = cached_pair();
    let plain = fx.run_json(&[]);
    assert_eq!(plain.code, 0, "{}", plain.dump());
    let start = &plain.events[0];
    assert_eq!(start["kind"], "build_start");
    assert!(
        start.get("branch").is_none() && start.get("message").is_none(),
        "{start}"
    );
    let header = text(&fx.hm(&["runs"]).stdout);
    assert_eq!(
        header.lines().next().unwrap().split_whitespace().last(),
        Some("PROJECT"),
        "{header}"
    );

    let short = fx.run_json(&["-b", "feat/cli", "-m", "fix: the flags\nsecond line"]);
    assert_eq!(short.code, 0, "{}", short.dump());
    let start = &short.events[0];
    assert_eq!(start["kind"], "build_start");
    assert_eq!(start["branch"], "feat/cli");
    assert_eq!(start["message"], "fix: the flags\nsecond line");
    let long = fx.run_json(&["--branch", "main", "--message", "nightly"]);
    assert_eq!(long.code, 0, "{}", long.dump());
    assert_eq!(
        (&long.events[0]["branch"], &long.events[0]["message"]),
        (&json!("main"), &json!("nightly"))
    );

    let recorded = runs(&fx);
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        (&recorded[0]["branch"], &recorded[0]["message"]),
        (&json!("main"), &json!("nightly"))
    );
    assert_eq!(recorded[1]["branch"], "feat/cli");
    assert_eq!(recorded[1]["message"], "fix: the flags\nsecond line");
    assert!(recorded[2].get("branch").is_none() && recorded[2].get("message").is_none());
    // The human list grows the two columns, one line per run.
    let listed = text(&fx.hm(&["runs"]).stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[5..], ["PROJECT", "BRANCH", "MESSAGE"], "{listed}");
    assert!(lines[1].ends_with("main      nightly"), "{listed}");
    assert!(lines[2].ends_with("feat/cli  fix: the flags second line"), "{listed}");
}

/// `-v/--verbose` (before or after the subcommand) prints debug lines on
/// stderr: the settings, the pipeline files, each step's cache lookup and
/// its VM; stdout stays the events alone. Without it stderr says nothing.
#[test]
fn verbose_prints_debug_lines_on_stderr_only() {
    if !sandbox_available() {
        return;
    }
    let fx = cached_pair();
    let first = Run::from(fx.hm(&["-v", "run", "--format", "json"]));
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.executed(), ["build", "test"]);
    for wanted in [
        "DEBUG",
        "pipeline files evaluated in",
        "cache directory",
        "run settings resolved",
        "backend=Sandbox",
        "parallelism=",
        "cache miss step=\"build\" key=",
        "not cached: runs every time step=\"test\"",
        "VM boots step=\"build\"",
        "command ended step=\"build\"",
        "VM snapshotted step=\"build\"",
        "cache entry stored step=\"build\"",
        "build ended",
    ] {
        assert!(first.stderr.contains(wanted), "no {wanted:?} in:\n{}", first.stderr);
    }
    assert!(first.stderr.lines().all(|l| l.contains("DEBUG")), "{}", first.stderr);

    let second = Run::from(fx.hm(&["run", "--verbose", "--format", "json"]));
    assert_eq!(second.code, 0, "{}", second.dump());
    assert!(second.stderr.contains("cache hit step=\"build\""), "{}", second.stderr);

    let quiet = Run::from(fx.hm(&["run", "--format", "json"]));
    assert_eq!(quiet.code, 0, "{}", quiet.dump());
    assert_eq!(quiet.stderr, "", "nothing on stderr without -v");
    assert_eq!(
        quiet.events.len(),
        second.events.len(),
        "the same events with -v and without"
    );
}

/// `--no-color` turns colour off as `NO_COLOR` does: on a terminal the log
/// stream is coloured, but not with either; and it wins over `--color
/// always`.
#[test]
fn no_color_turns_colour_off_as_no_color_does() {
    if !sandbox_available() {
        return;
    }
    let fx = cached_pair();
    let on_terminal = |args: &[&str], no_color_env: bool| {
        let mut command = fx.command(args);
        command.env("TERM", "xterm-256color").env_remove("NO_COLOR");
        if no_color_env {
            command.env("NO_COLOR", "1");
        }
        let (status, raw) = Pty::spawn(command, 40, 100).finish(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{args:?}: {}", text(&raw));
        assert!(text(&raw).contains("build passed"), "{args:?}: {}", text(&raw));
        raw.windows(2).any(|w| w == b"\x1b[")
    };
    assert!(on_terminal(&["run", "--logs"], false), "colour on a terminal");
    assert!(!on_terminal(&["run", "--logs"], true), "NO_COLOR");
    assert!(!on_terminal(&["run", "--logs", "--no-color"], false), "--no-color");
    assert!(
        !on_terminal(&["--no-color", "run", "--logs"], false),
        "--no-color first"
    );

    let escapes = |args: &[&str]| {
        let out = fx.hm(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        out.stdout.windows(2).any(|w| w == b"\x1b[")
    };
    assert!(escapes(&["run", "--color", "always"]));
    assert!(!escapes(&["run", "--color", "always", "--no-color"]));
}

/// `--no-watch` is accepted and changes nothing: the run goes to its end,
/// once, and `hm` exits (with `--watch` it is a usage error).
#[test]
fn no_watch_runs_once_and_exits() {
    if !sandbox_available() {
        return;
    }
    let fx = cached_pair();
    let out = output_within(
        fx.command(&["run", "--no-watch", "--format", "json"]),
        Duration::from_secs(120),
        "hm run --no-watch",
    );
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.dump());
    let kinds: Vec<&Value> = run.events.iter().map(|e| &e["kind"]).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "build_start").count(), 1);
    assert_eq!(kinds.last().unwrap().as_str(), Some("build_end"));
    assert!(!run.stderr.contains("watching"), "{}", run.stderr);
    assert_eq!(runs(&fx).len(), 1);

    let both = fx.hm(&["run", "--no-watch", "--watch"]);
    assert_eq!(both.status.code(), Some(2));
}

/// When a step printed `start NS` and `end NS` (nanoseconds), the span
/// between them.
fn span(run: &Run, key: &str) -> (u128, u128) {
    let at = |word: &str| -> u128 {
        let lines = run.stdout(key);
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(word))
            .unwrap_or_else(|| panic!("{}", run.dump()));
        line.trim().parse().unwrap()
    };
    (at("start "), at("end "))
}

/// `--parallelism 0` is taken as 1, as Harmont does: two independent
/// steps run one after the other (with 2 they overlap), and the build
/// ends.
#[test]
fn parallelism_zero_runs_one_step_at_a_time() {
    if !sandbox_available() {
        return;
    }
    let timed = "echo start $(date +%s%N); sleep 1; echo end $(date +%s%N)";
    let fx = Fixture::with(&envelope("par", &[step("a", timed), step("b", timed)], &[], None));
    let run_with = |n: &str| {
        let out = output_within(
            fx.command(&["run", "--format", "json", "--parallelism", n]),
            Duration::from_secs(120),
            "hm run --parallelism",
        );
        let run = Run::from(out);
        assert_eq!(run.code, 0, "{}", run.dump());
        (span(&run, "a"), span(&run, "b"))
    };
    let overlap = |((a0, a1), (b0, b1)): ((u128, u128), (u128, u128))| a0 < b1 && b0 < a1;
    let one = run_with("0");
    assert!(!overlap(one), "with --parallelism 0 the steps overlapped: {one:?}");
    let two = run_with("2");
    assert!(
        overlap(two),
        "with --parallelism 2 the steps ran one at a time: {two:?}"
    );
}

/// `hm cache clean` without `-y`, its standard input not a terminal (a CI
/// script), removes every entry without asking.
#[test]
fn cache_clean_without_yes_from_a_script_empties_the_cache() {
    if !sandbox_available() {
        return;
    }
    let fx = cached_pair();
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(fx.cache_entries().len(), 1);
    // `Fixture::command` gives it /dev/null for standard input.
    let out = fx.hm(&["cache", "clean"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(fx.cache_entries().is_empty());
    let again = fx.run_json(&[]);
    assert_eq!(again.executed(), ["build", "test"], "the entry is gone");
}
