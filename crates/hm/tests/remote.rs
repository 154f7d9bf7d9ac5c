//! The remote cache (issue 16) between "machines" that share nothing but a
//! real `docker-registry` on loopback with basic authentication: each
//! machine is its own project directory and cache directory, machine B an
//! unprivileged user where the tests run as root.
//!
//! - B runs what A ran with every cached step a remote hit, and its steps
//!   see what A's made;
//! - B changes one file: only the steps that depend on it run;
//! - the registry going away mid-run, or never there: one warning, exit 0;
//! - a damaged layer or a foreign image under a key's tag is refused, and
//!   the step runs.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use util::registry::{auths, docker_config, file, push, ImageSpec, Layer, OciLayout, Registry, RegistryOptions};
use util::{envelope, registry_available, sandbox_available, step, Fixture, Run};

/// One machine: a project with its own cache, run as root or as nobody.
struct Machine {
    fx: Fixture,
    remote: String,
    unprivileged: bool,
}

impl Machine {
    fn new(registry: &str, pipeline: &Value, unprivileged: bool) -> Self {
        let fx = Fixture::with(pipeline);
        docker_config(&fx.dir.path().join("docker"), &auths(registry, "hm", "s3cret"));
        Machine {
            fx,
            remote: format!("{registry}/team/hm-cache"),
            unprivileged: unprivileged && util::is_root(),
        }
    }

    fn command(&self) -> Command {
        let mut command = match self.unprivileged {
            true => util::hm_as_nobody(&self.fx),
            false => Command::new(util::hm_bin()),
        };
        command
            .current_dir(self.fx.project())
            .env("HM_CACHE_DIR", self.fx.cache())
            .env("HM_BACKEND", "sandbox")
            .env("HM_CACHE_REMOTE", &self.remote)
            .env("DOCKER_CONFIG", self.fx.dir.path().join("docker"))
            .env("HOME", self.fx.dir.path())
            .env_remove("HM_PARALLELISM")
            .env_remove("HM_CACHE_SCOPE")
            .stdin(std::process::Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command()
            .args(["run", "--format", "json"])
            .args(args)
            .output()
            .unwrap();
        Run::from(output)
    }
}

fn available() -> bool {
    registry_available() && sandbox_available()
}

fn registry() -> Registry {
    Registry::start(&RegistryOptions::auth("hm", "s3cret"))
}

/// Two chains and an observer: `deps` (cached on `deps.txt`) → `build`
/// (cached on `src.txt`) → `show` (not cached: it prints what the cached
/// steps made, each with a stamp of when it ran); `lint` (cached on
/// `lint.txt`) on its own.
fn pipeline() -> Value {
    envelope(
        "ci",
        &[
            step("deps", "cat deps.txt > /opt/deps; date +%s%N > /opt/deps.stamp")
                .cache(json!({"policy": "on_change", "paths": ["deps.txt"]})),
            step("build", "cat /opt/deps src.txt > out.txt; date +%s%N > build.stamp")
                .cache(json!({"policy": "on_change", "paths": ["src.txt"]})),
            step("show", "cat out.txt /opt/deps.stamp build.stamp"),
            step("lint", "cat lint.txt; date +%s%N").cache(json!({"policy": "on_change", "paths": ["lint.txt"]})),
        ],
        &[("deps", "build", "builds_in"), ("build", "show", "builds_in")],
        None,
    )
}

fn write_sources(fx: &Fixture) {
    fx.write("deps.txt", "serde 1.0\n");
    fx.write("src.txt", "fn main() {}\n");
    fx.write("lint.txt", "clippy\n");
}

fn events_of<'a>(run: &'a Run, kind: &str) -> Vec<&'a Value> {
    run.events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn machine_b_runs_what_machine_a_ran_from_the_registry() {
    if !available() {
        return;
    }
    let registry = registry();
    let a = Machine::new(&registry.host(), &pipeline(), false);
    let b = Machine::new(&registry.host(), &pipeline(), true);
    write_sources(&a.fx);
    write_sources(&b.fx);

    let on_a = a.run(&[]);
    assert_eq!(on_a.code, 0, "{}", on_a.dump());
    assert_eq!(on_a.executed(), ["build", "deps", "lint", "show"]);
    assert!(events_of(&on_a, "cache_remote_error").is_empty(), "{}", on_a.dump());

    // B runs the cached steps: every one a remote hit, nothing executes.
    let on_b = b.run(&["build", "lint"]);
    assert_eq!(on_b.code, 0, "{}", on_b.dump());
    assert!(on_b.executed().is_empty(), "{}", on_b.dump());
    assert_eq!(on_b.remote_hits(), ["build", "deps", "lint"]);
    assert!(events_of(&on_b, "cache_remote_error").is_empty(), "{}", on_b.dump());

    // Then the whole pipeline: local hits now, and only the uncached
    // observer runs; it sees what A's steps made.
    let again = b.run(&[]);
    assert_eq!(again.executed(), ["show"], "{}", again.dump());
    assert!(again.remote_hits().is_empty(), "{}", again.dump());
    assert_eq!(again.logs("show"), on_a.logs("show"));
    assert_eq!(again.logs("show"), on_a.logs("show"));

    // B changes one file: only what depends on it runs, on what A made.
    b.fx.write("src.txt", "fn main() { edited() }\n");
    let edited = b.run(&[]);
    assert_eq!(edited.code, 0, "{}", edited.dump());
    assert_eq!(edited.executed(), ["build", "show"], "{}", edited.dump());
    let shown = edited.logs("show");
    assert_eq!(shown[..2], ["serde 1.0", "fn main() { edited() }"]);
    assert_eq!(shown[2], on_a.logs("show")[2], "deps' stamp is A's");

    // A takes B's edit from the registry in turn.
    a.fx.write("src.txt", "fn main() { edited() }\n");
    let back = a.run(&[]);
    assert_eq!(back.executed(), ["show"], "{}", back.dump());
    assert_eq!(back.remote_hits(), ["build"]);
    assert_eq!(back.logs("show"), edited.logs("show"));
    a.fx.assert_parts_stored("after taking B's entry in");
    a.fx.assert_clean();
    b.fx.assert_clean();
}

#[test]
fn a_registry_that_goes_away_mid_run_costs_one_warning() {
    if !available() {
        return;
    }
    let registry = registry();
    let host = registry.host();
    let chain = envelope(
        "ci",
        &[
            step("one", "echo one > one.txt").cache(json!({"policy": "forever"})),
            step("two", "echo gone; sleep 1; echo two > two.txt").cache(json!({"policy": "forever"})),
            step("three", "cat one.txt two.txt").cache(json!({"policy": "forever"})),
            step("four", "cat one.txt two.txt").cache(json!({"policy": "forever"})),
        ],
        &[
            ("one", "two", "builds_in"),
            ("two", "three", "builds_in"),
            ("two", "four", "builds_in"),
        ],
        None,
    );
    let a = Machine::new(&host, &chain, false);
    let mut registry = Some(registry);
    let output = {
        let mut command = a.command();
        command.args(["run", "--format", "json"]);
        run_when(command, "gone", || drop(registry.take()))
    };
    assert_eq!(output.code, 0, "{}", output.dump());
    assert_eq!(output.executed(), ["four", "one", "three", "two"]);
    let warnings = events_of(&output, "cache_remote_error");
    assert_eq!(warnings.len(), 1, "{}", output.dump());
    assert_eq!(warnings[0]["refused"], Value::Null, "{}", output.dump());
    // The local cache has every entry.
    let again = a.run(&["--cache-remote", "off"]);
    assert!(again.executed().is_empty(), "{}", again.dump());

    // A registry that is not there at all: one warning too.
    let b = Machine::new(&util::registry::dead_host(), &chain, false);
    let offline = b.run(&[]);
    assert_eq!(offline.code, 0, "{}", offline.dump());
    assert_eq!(offline.executed().len(), 4);
    assert_eq!(events_of(&offline, "cache_remote_error").len(), 1, "{}", offline.dump());
    // In a person's view, one line says so.
    let human = b.command().args(["run", "--no-cache"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(0));
    assert_eq!(
        stdout.matches("warning: the remote cache failed").count(),
        1,
        "{stdout}"
    );
    a.fx.assert_clean();
}

/// Runs `command`; when a step prints `trigger`, runs `action`.
fn run_when(mut command: Command, trigger: &str, action: impl FnOnce()) -> Run {
    use std::io::{BufRead, BufReader, Read};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let needle = format!("\"line\":{}", serde_json::to_string(trigger).unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    let mut action = Some(action);
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if line.contains(&needle) {
            if let Some(action) = action.take() {
                action();
            }
        }
        lines.push_str(&line);
        line.clear();
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        events: lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        stderr,
    }
}

/// The blob files of `registry`'s storage whose content is a gzip stream
/// (the parts' layers), largest first.
fn layer_blobs(registry: &Registry) -> Vec<PathBuf> {
    let mut blobs = Vec::new();
    walk(&registry.storage().join("docker/registry/v2/blobs"), &mut blobs);
    blobs.retain(|p| fs::read(p).is_ok_and(|b| b.starts_with(&[0x1f, 0x8b])));
    blobs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    blobs
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if entry.file_name() == "data" {
            out.push(path);
        }
    }
}

#[test]
fn a_damaged_or_foreign_entry_is_refused_and_the_step_runs() {
    if !available() {
        return;
    }
    let registry = registry();
    let single = envelope(
        "ci",
        &[step("make", "echo made > made.txt; date +%s%N").cache(json!({"policy": "forever"}))],
        &[],
        None,
    );
    let a = Machine::new(&registry.host(), &single, false);
    let on_a = a.run(&[]);
    assert_eq!(on_a.executed(), ["make"], "{}", on_a.dump());

    // One byte of every layer changed in the registry's storage.
    let blobs = layer_blobs(&registry);
    assert!(!blobs.is_empty());
    for blob in &blobs {
        let mut bytes = fs::read(blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(blob, bytes).unwrap();
    }
    let b = Machine::new(&registry.host(), &single, false);
    let on_b = b.run(&[]);
    assert_eq!(on_b.code, 0, "{}", on_b.dump());
    assert_eq!(on_b.executed(), ["make"], "{}", on_b.dump());
    let refused = events_of(&on_b, "cache_remote_error");
    assert_eq!(refused.len(), 1, "{}", on_b.dump());
    assert_eq!(refused[0]["refused"], true);
    assert_eq!(refused[0]["op"], "pull");
    assert!(
        refused[0]["message"].as_str().unwrap().contains("digest"),
        "{}",
        on_b.dump()
    );
    assert_ne!(on_b.logs("make"), on_a.logs("make"), "it ran anew");
    b.fx.assert_parts_stored("after a refused entry");
    b.fx.assert_clean();

    // B pushed its own entry in its place; now a foreign image takes the
    // key's tag.
    let key = b.fx.cache_entries()[0]["key"].as_str().unwrap().to_owned();
    let image = ImageSpec::new(vec![Layer::entries(vec![file("etc/motd", "hi\n")])]);
    let foreign = OciLayout::write(&b.fx.dir.path().join("foreign"), "x", &[image]);
    push(&foreign, &registry, &format!("team/hm-cache:{key}"));
    let c = Machine::new(&registry.host(), &single, false);
    let on_c = c.run(&[]);
    assert_eq!(on_c.executed(), ["make"], "{}", on_c.dump());
    let refused = events_of(&on_c, "cache_remote_error");
    assert_eq!(refused.len(), 1, "{}", on_c.dump());
    assert!(
        refused[0]["message"].as_str().unwrap().contains("not one of hm's"),
        "{}",
        on_c.dump()
    );
    c.fx.assert_clean();
}

#[test]
fn one_step_runs_on_its_parents_snapshot_or_says_why_it_cannot() {
    if !sandbox_available() {
        return;
    }
    let chain = envelope(
        "ci",
        &[step("a", "echo from-a > a.txt"), step("b", "cat a.txt")],
        &[("a", "b", "builds_in")],
        None,
    );
    let fx = Fixture::with(&chain);
    let run = |args: &[&str], build: Option<&str>| {
        let mut command = fx.command(&["run", "--format", "json"]);
        command.args(args).env_remove("HM_BUILD_ID");
        for var in ["GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID"] {
            command.env_remove(var);
        }
        if let Some(build) = build {
            command.env("HM_BUILD_ID", build);
        }
        Run::from(command.output().unwrap())
    };
    // `a` has no cache policy: without a build it is never stored.
    let alone = run(&["--step", "b"], None);
    assert_eq!(alone.code, 1, "{}", alone.dump());
    assert!(alone.executed().is_empty(), "{}", alone.dump());
    let message = alone.end("a")["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("`a` has no snapshot in the cache") && message.contains("HM_BUILD_ID"),
        "{message}"
    );

    let first = run(&["--step", "a"], Some("7"));
    assert_eq!(
        (first.code, first.executed()),
        (0, vec!["a".to_owned()]),
        "{}",
        first.dump()
    );
    let second = run(&["--step", "b"], Some("7"));
    assert_eq!(
        (second.code, second.executed()),
        (0, vec!["b".to_owned()]),
        "{}",
        second.dump()
    );
    assert_eq!(second.logs("b"), ["from-a"]);
    // Another build has not run `a`.
    let other = run(&["--step", "b"], Some("8"));
    assert_eq!(other.code, 1, "{}", other.dump());
    assert!(other.end("a")["message"].as_str().unwrap().contains("for build `8`"));

    let unknown = fx.hm(&["run", "--step", "c"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no step `c`"));
    let stray = fx.hm(&["run", "--build-id", "3"]);
    assert_eq!(stray.status.code(), Some(2));
    fx.assert_clean();
}

#[test]
fn cache_push_warms_the_registry_and_cache_pull_another_machine() {
    if !available() {
        return;
    }
    let registry = registry();
    let a = Machine::new(&registry.host(), &pipeline(), false);
    let b = Machine::new(&registry.host(), &pipeline(), false);
    write_sources(&a.fx);
    write_sources(&b.fx);
    let said = |machine: &Machine, args: &[&str]| {
        let out = machine.command().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };

    // A runs without pushing, then pushes its project's entries.
    let local = a.run(&["--cache-remote", "off"]);
    assert_eq!(local.executed().len(), 4, "{}", local.dump());
    let (code, pushed) = said(&a, &["cache", "push"]);
    assert_eq!(code, Some(0), "{pushed}");
    assert!(pushed.contains("pushed 3 entries to"), "{pushed}");
    let (_, again) = said(&a, &["cache", "push"]);
    assert!(
        again.contains("pushed 0 entries") && again.contains("had 3 already"),
        "{again}"
    );

    // B takes them in, then runs with the remote off: only the uncached
    // observer runs.
    let (code, pulled) = said(&b, &["cache", "pull", "ci"]);
    assert_eq!(code, Some(0), "{pulled}");
    assert!(pulled.contains("took in 3 entries from"), "{pulled}");
    let (_, none) = said(&b, &["cache", "pull", "other"]);
    assert!(none.contains("took in 0 entries"), "{none}");
    let on_b = b.run(&["--cache-remote", "off"]);
    assert_eq!(on_b.executed(), ["show"], "{}", on_b.dump());
    assert_eq!(on_b.logs("show"), local.logs("show"));
    b.fx.assert_parts_stored("after hm cache pull");

    // Without a remote cache there is nothing to push to.
    let out = a
        .command()
        .args(["cache", "push"])
        .env_remove("HM_CACHE_REMOTE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remote cache"));
    a.fx.assert_clean();
    b.fx.assert_clean();
}
