//! `hm export`: a pipeline as GitHub Actions, GitLab CI and Buildkite
//! configurations. Each is read back as YAML 1.2 (ruamel.yaml) and 1.1
//! (PyYAML), which must agree, checked against the engine's published
//! schema with `check-jsonschema` (`.ci/run` installs both), and its jobs'
//! dependencies compared with the pipeline's edges.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use util::{envelope, step, Fixture};

const ENGINES: [&str; 3] = ["github", "gitlab", "buildkite"];

/// The schema `check-jsonschema` ships for each engine.
fn schema(engine: &str) -> &'static str {
    match engine {
        "github" => "vendor.github-workflows",
        "gitlab" => "vendor.gitlab-ci",
        _ => "vendor.buildkite",
    }
}

/// Whether the checking tools are here; where they are not, the test is
/// skipped (a failure in CI, whose `.ci/run` installs them).
fn tools() -> bool {
    let schema = Command::new("check-jsonschema").arg("--version").output();
    if !schema.is_ok_and(|o| o.status.success()) {
        util::skip("`check-jsonschema` is not on PATH (`python3 -m pip install check-jsonschema`)");
        return false;
    }
    let yaml = Command::new("python3")
        .args(["-c", "import yaml, ruamel.yaml"])
        .output();
    if !yaml.is_ok_and(|o| o.status.success()) {
        util::skip("python3 cannot import `yaml` and `ruamel.yaml` (`python3 -m pip install PyYAML ruamel.yaml`)");
        return false;
    }
    true
}

/// `text` read as YAML 1.2 and as YAML 1.1, which must read it the same.
fn read_yaml(text: &str) -> Value {
    const READ: &str = r#"
import json, sys, yaml
from ruamel.yaml import YAML
text = sys.stdin.read()
json.dump([YAML(typ="safe", pure=True).load(text), yaml.safe_load(text)], sys.stdout)
"#;
    let mut child = Command::new("python3")
        .args(["-c", READ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not YAML: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let [v12, v11]: [Value; 2] = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v12, v11, "YAML 1.2 and 1.1 read it differently:\n{text}");
    v12
}

/// Checks `files` against `engine`'s schema.
fn validate(engine: &str, files: &[PathBuf]) {
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", schema(engine)])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{engine}: not valid by its schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `hm export ARGS`: its output, after checking that it succeeded and that
/// a second export printed the same bytes.
fn export(fx: &Fixture, args: &[&str]) -> String {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let out = fx.hm(&all);
    assert!(
        out.status.success(),
        "hm {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout,
        fx.hm(&all).stdout,
        "hm {all:?} printed something else the second time"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The words of a line of `sh` as `hm export` writes them: plain words,
/// single-quoted ones and backslash escapes.
fn sh_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let (mut quoted, mut escaped) = (false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                word.get_or_insert_default().push(c);
                escaped = false;
            }
            '\\' if !quoted => escaped = true,
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_default();
            }
            ' ' if !quoted => words.extend(word.take()),
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// One job, whatever the engine: its steps and the jobs it needs (by their
/// first steps), each either strict (runs only if that one passed) or not.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    steps: Vec<String>,
    needs: BTreeSet<(String, bool)>,
}

/// What a parsed configuration says, engine by engine: the jobs by id,
/// with their name, environment and timeouts.
struct Read {
    jobs: BTreeMap<String, Job>,
    names: BTreeMap<String, String>,
    env: BTreeMap<String, Value>,
    /// The timeout of each job (GitLab, Buildkite) or step (GitHub).
    timeouts: BTreeMap<String, Value>,
}

/// The step a line `hm run ci --step KEY` runs, with the engine's own
/// escapes undone.
fn run_step(engine: &str, line: &str) -> String {
    let line = match engine {
        "github" => line.replace("${{ '${{' }}", "${{"),
        "buildkite" => line.replace("$$", "$"),
        _ => line.to_owned(),
    };
    let words = sh_words(&line);
    assert_eq!(words[..3], ["hm", "run", "ci"], "{line}");
    match words[3].strip_prefix("--step=") {
        Some(key) => key.to_owned(),
        None => {
            assert_eq!(words[3], "--step", "{line}");
            words[4].clone()
        }
    }
}

fn read(engine: &str, doc: &Value) -> Read {
    let mut read = Read {
        jobs: BTreeMap::new(),
        names: BTreeMap::new(),
        env: BTreeMap::new(),
        timeouts: BTreeMap::new(),
    };
    // Each job's needs by id, and whether it only orders after them all.
    let mut needs: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    match engine {
        "github" => {
            for (id, job) in doc["jobs"].as_object().unwrap() {
                let steps = job["steps"].as_array().unwrap();
                assert_eq!(steps[0]["uses"], "actions/checkout@v4");
                assert!(
                    steps[1]["run"].as_str().unwrap().contains("HM_INSTALL"),
                    "{id}: no setup step"
                );
                let mut keys = Vec::new();
                for step in &steps[2..] {
                    let key = run_step(engine, step["run"].as_str().unwrap());
                    if let Some(t) = step.get("timeout-minutes") {
                        read.timeouts.insert(key.clone(), t.clone());
                    }
                    keys.push(key);
                }
                // With an `if`, the needs it names are the strict ones.
                let condition = job.get("if").and_then(Value::as_str);
                let listed = job.get("needs").and_then(Value::as_array).cloned().unwrap_or_default();
                let job_needs = listed
                    .iter()
                    .map(|n| {
                        let n = n.as_str().unwrap().to_owned();
                        let strict = condition.is_none_or(|c| c.contains(&format!("needs['{n}'].result == 'success'")));
                        (n, strict)
                    })
                    .collect();
                if let Some(condition) = condition {
                    assert!(condition.starts_with("${{ !cancelled()"), "{id}: {condition}");
                }
                add(
                    &mut read,
                    &mut needs,
                    id,
                    keys,
                    job_needs,
                    job.get("name"),
                    job.get("env"),
                );
            }
        }
        "gitlab" => {
            assert!(doc["default"]["before_script"][0]
                .as_str()
                .unwrap()
                .contains("HM_INSTALL"));
            for (id, job) in doc.as_object().unwrap() {
                if id == "workflow" || id == "default" {
                    continue;
                }
                let keys = job["script"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| run_step(engine, l.as_str().unwrap()))
                    .collect();
                let lenient = job.get("when").is_some_and(|w| w == "always");
                let listed = job.get("needs").and_then(Value::as_array).cloned().unwrap_or_default();
                let job_needs = listed
                    .iter()
                    .map(|n| (n.as_str().unwrap().to_owned(), !lenient))
                    .collect();
                if let Some(t) = job.get("timeout") {
                    read.timeouts.insert(id.clone(), t.clone());
                }
                let name = Value::String(id.clone());
                add(
                    &mut read,
                    &mut needs,
                    id,
                    keys,
                    job_needs,
                    Some(&name),
                    job.get("variables"),
                );
            }
        }
        _ => {
            for job in doc["steps"].as_array().unwrap() {
                let id = job["key"].as_str().unwrap();
                let commands = job["commands"].as_array().unwrap();
                assert!(
                    commands[0].as_str().unwrap().contains("$$HM_INSTALL"),
                    "{id}: no setup step"
                );
                let keys = commands[1..]
                    .iter()
                    .map(|l| run_step(engine, l.as_str().unwrap()))
                    .collect();
                let listed = job
                    .get("depends_on")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let job_needs = listed
                    .iter()
                    .map(|n| match n {
                        Value::String(s) => (s.clone(), true),
                        n => {
                            assert_eq!(n["allow_failure"], true, "{n}");
                            (n["step"].as_str().unwrap().to_owned(), false)
                        }
                    })
                    .collect();
                if let Some(t) = job.get("timeout_in_minutes") {
                    read.timeouts.insert(id.to_owned(), t.clone());
                }
                add(
                    &mut read,
                    &mut needs,
                    id,
                    keys,
                    job_needs,
                    job.get("label"),
                    job.get("env"),
                );
            }
        }
    }
    // Needs by id become needs by the needed job's first step.
    let first: BTreeMap<String, String> = read
        .jobs
        .iter()
        .map(|(id, j)| (id.clone(), j.steps[0].clone()))
        .collect();
    for (id, job_needs) in needs {
        read.jobs.get_mut(&id).unwrap().needs = job_needs
            .into_iter()
            .map(|(n, strict)| {
                (
                    first
                        .get(&n)
                        .unwrap_or_else(|| panic!("{id} needs unknown `{n}`"))
                        .clone(),
                    strict,
                )
            })
            .collect();
    }
    read
}

fn add(
    read: &mut Read,
    needs: &mut BTreeMap<String, Vec<(String, bool)>>,
    id: &str,
    steps: Vec<String>,
    job_needs: Vec<(String, bool)>,
    name: Option<&Value>,
    env: Option<&Value>,
) {
    needs.insert(id.to_owned(), job_needs);
    if let Some(name) = name {
        read.names.insert(id.to_owned(), name.as_str().unwrap().to_owned());
    }
    read.env.insert(id.to_owned(), env.cloned().unwrap_or(json!({})));
    let job = Job {
        steps,
        needs: BTreeSet::new(),
    };
    assert!(read.jobs.insert(id.to_owned(), job).is_none(), "two jobs `{id}`");
}

/// The edges of [`forks_and_joins`] and [`runnable`].
const FORKS_AND_JOINS: [(&str, &str, &str); 8] = [
    ("setup", "build", "builds_in"),
    ("build", "unit", "builds_in"),
    ("build", "lint", "builds_in"),
    ("unit", "report", "depends_on"),
    ("lint", "report", "depends_on"),
    ("docs", "site", "builds_in"),
    ("site", "publish", "builds_in"),
    ("report", "publish", "depends_on"),
];

/// A pipeline with a chain that forks (`setup` → `build` → `unit`, `lint`),
/// a join behind a wait with `continue_on_failure` (`report`), a second
/// chain (`docs` → `site` → `publish`) whose last step also waits for the
/// join, timeouts, environments and a label.
fn forks_and_joins() -> Value {
    let steps = [
        step("setup", "make deps").timeout(90).env("FOO", "bar"),
        step("build", "make").timeout(30),
        step("unit", "make test").env("GREETING", "hello $USER ${{ github.actor }}"),
        step("lint", "make lint").env("PATH", "/opt/bin:/usr/bin"),
        step("report", "make report").continue_on_failure(),
        step("docs", "make docs"),
        step("site", "make site"),
        step("publish", "make publish"),
    ];
    let mut input = envelope("ci", &steps, &FORKS_AND_JOINS, None);
    let pipeline = &mut input["pipelines"][0];
    pipeline["definition"]["graph"]["nodes"][1]["step"]["label"] = json!("Build it");
    pipeline["triggers"] = json!([
        {"event": "push", "branches": ["main", "release/*"]},
        {"event": "pull_request", "types": ["opened", "synchronize", "reopened"]},
    ]);
    input
}

/// The jobs every engine must have: steps, and needs by first step.
fn expected(per_chain: bool) -> BTreeSet<Job> {
    let job = |steps: &[&str], needs: &[(&str, bool)]| Job {
        steps: steps.iter().map(|s| s.to_string()).collect(),
        needs: needs.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
    };
    let report = job(&["report"], &[("unit", false), ("lint", false)]);
    if per_chain {
        BTreeSet::from([
            job(&["setup", "build"], &[]),
            job(&["unit"], &[("setup", true)]),
            job(&["lint"], &[("setup", true)]),
            report,
            job(&["docs", "site"], &[]),
            job(&["publish"], &[("docs", true), ("report", true)]),
        ])
    } else {
        BTreeSet::from([
            job(&["setup"], &[]),
            job(&["build"], &[("setup", true)]),
            job(&["unit"], &[("build", true)]),
            job(&["lint"], &[("build", true)]),
            report,
            job(&["docs"], &[]),
            job(&["site"], &[("docs", true)]),
            job(&["publish"], &[("site", true), ("report", true)]),
        ])
    }
}

/// The id of the job whose first step is `key`.
fn id_of(read: &Read, key: &str) -> String {
    read.jobs
        .iter()
        .find(|(_, j)| j.steps[0] == key)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no job starts with `{key}`"))
}

#[test]
fn every_engine_gets_the_edges_as_dependencies() {
    if !tools() {
        return;
    }
    let fx = Fixture::with(&forks_and_joins());
    for engine in ENGINES {
        let mut files = Vec::new();
        for per_chain in [false, true] {
            let context = format!("{engine}, per {}", if per_chain { "chain" } else { "step" });
            let mut args = vec![engine, "ci"];
            if per_chain {
                args.extend(["--per", "chain"]);
            }
            let text = export(&fx, &args);
            let path = fx.dir.path().join(format!("{engine}-{}.yml", files.len()));
            std::fs::write(&path, &text).unwrap();
            files.push(path);
            let read = read(engine, &read_yaml(&text));
            let jobs: BTreeSet<Job> = read.jobs.into_values().collect();
            assert_eq!(jobs, expected(per_chain), "{context}");
        }
        validate(engine, &files);
    }
}

#[test]
fn timeouts_env_labels_and_triggers_carry_over() {
    if !tools() {
        return;
    }
    let fx = Fixture::with(&forks_and_joins());
    for engine in ENGINES {
        let step_doc = read_yaml(&export(&fx, &[engine, "ci"]));
        let chain_doc = read_yaml(&export(&fx, &[engine, "ci", "--per", "chain"]));
        let (by_step, by_chain) = (read(engine, &step_doc), read(engine, &chain_doc));
        // Timeouts in whole minutes, rounded up; GitHub's on the step (not
        // counting the setup), the others' on the job (a chain's: the sum).
        let timeouts = |read: &Read, key: &str| match engine {
            "github" => read.timeouts.get(key).cloned(),
            _ => read.timeouts.get(&id_of(read, key)).cloned(),
        };
        let minutes = |m: u64| match engine {
            "gitlab" => json!(format!("{m}m")),
            _ => json!(m),
        };
        assert_eq!(timeouts(&by_step, "setup"), Some(minutes(2)), "{engine}: 90 s");
        assert_eq!(timeouts(&by_step, "build"), Some(minutes(1)), "{engine}: 30 s");
        assert_eq!(timeouts(&by_step, "unit"), None, "{engine}");
        match engine {
            "github" => assert_eq!(timeouts(&by_chain, "build"), Some(minutes(1))),
            _ => assert_eq!(timeouts(&by_chain, "setup"), Some(minutes(2)), "{engine}: 90 s + 30 s"),
        }
        // The job's environment: the step's, less what the runner's own
        // shell runs on (`PATH`); a chain's: what its steps share. Each
        // engine's own expansion is escaped.
        let env = |read: &Read, key: &str| read.env[&id_of(read, key)].clone();
        assert_eq!(
            env(&by_step, "setup"),
            json!({"FOO": "bar", "TERM": "dumb"}),
            "{engine}"
        );
        assert_eq!(env(&by_step, "lint"), json!({"TERM": "dumb"}), "{engine}");
        assert_eq!(env(&by_chain, "setup"), json!({"TERM": "dumb"}), "{engine}");
        let greeting = match engine {
            "github" => json!("hello $USER ${{ '${{' }} github.actor }}"),
            "gitlab" => json!({"value": "hello $USER ${{ github.actor }}", "expand": false}),
            _ => json!("hello $$USER $${{ github.actor }}"),
        };
        assert_eq!(env(&by_step, "unit")["GREETING"], greeting, "{engine}");
        // Labels name jobs; a chain's name is its steps' labels (or keys).
        assert_eq!(by_step.names[&id_of(&by_step, "build")], "Build it", "{engine}");
        assert_eq!(
            by_chain.names[&id_of(&by_chain, "setup")],
            "setup → Build it",
            "{engine}"
        );
        // Triggers and manual runs.
        match engine {
            "github" => {
                assert_eq!(step_doc["on"]["push"], json!({"branches": ["main", "release/**"]}));
                assert_eq!(
                    step_doc["on"]["pull_request"],
                    json!({"types": ["opened", "synchronize", "reopened"]})
                );
                assert_eq!(step_doc["on"]["workflow_dispatch"], json!({}));
                assert_eq!(step_doc["env"]["HM_CACHE_REMOTE"], "${{ secrets.HM_CACHE_REMOTE }}");
            }
            "gitlab" => {
                let rules: Vec<&str> = step_doc["workflow"]["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["if"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    rules,
                    [
                        r#"$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH =~ /^main$/"#,
                        r#"$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH =~ /^release\/.*$/"#,
                        r#"$CI_PIPELINE_SOURCE == "merge_request_event""#,
                        r#"$CI_PIPELINE_SOURCE == "web""#,
                    ]
                );
            }
            _ => {}
        }
    }
    // GitHub: the jobs after the `continue_on_failure` wait say which of
    // their needs must have passed (GitHub would skip them after any
    // failure upstream); the others keep GitHub's default.
    let github = read_yaml(&export(&fx, &["github", "ci"]));
    assert_eq!(github["jobs"]["report"]["if"], "${{ !cancelled() }}");
    assert_eq!(
        github["jobs"]["publish"]["if"],
        "${{ !cancelled() && needs['site'].result == 'success' && needs['report'].result == 'success' }}"
    );
    assert_eq!(github["jobs"]["unit"].get("if"), None);
}

/// Keys, labels and values that each engine (or YAML) would read as
/// something else: every job is still there, runs its own step, and the
/// files are valid.
#[test]
fn awkward_keys_labels_and_values_survive_every_engine() {
    if !tools() {
        return;
    }
    let keys = [
        "a b",
        "a-b",
        "A/B",
        "it's",
        "#x",
        "-dash",
        "9lives",
        "ünï",
        "x:y",
        "${{ evil }}",
        "$HOME",
        "image",
        "on",
        "12345678-1234-1234-1234-123456789abc",
    ];
    let steps: Vec<_> = keys
        .iter()
        .map(|k| {
            step(k, "true")
                .env("Y", "yes")
                .env("NOTE", "two\nlines \"q\" \\ ü \u{2028} $x ${{ y }} \u{7f}")
        })
        .collect();
    let edges: Vec<(&str, &str, &str)> = keys
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[0], w[1], if i % 2 == 0 { "builds_in" } else { "depends_on" }))
        .collect();
    let mut input = envelope("ci", &steps, &edges, None);
    let nodes = &mut input["pipelines"][0]["definition"]["graph"]["nodes"];
    nodes[0]["step"]["label"] = json!("Build: \"all\"\n#1 ${{ x }} $y");
    nodes[1]["step"]["label"] = json!("pages");
    nodes[2]["step"]["label"] = json!(".hidden");
    let fx = Fixture::with(&input);
    for engine in ENGINES {
        let mut files = Vec::new();
        for per in ["step", "chain"] {
            let text = export(&fx, &[engine, "ci", "--per", per]);
            let read = read(engine, &read_yaml(&text));
            let run: Vec<String> = read.jobs.values().flat_map(|j| j.steps.clone()).collect();
            let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            want.sort();
            let mut got = run.clone();
            got.sort();
            assert_eq!(got, want, "{engine} per {per}: every step runs once, under its own key");
            for env in read.env.values() {
                // `Y` is true to YAML 1.1 unless quoted.
                assert_eq!(env["Y"], "yes", "{engine} per {per}");
            }
            let path = fx.dir.path().join(format!("{engine}-{per}.yml"));
            std::fs::write(&path, &text).unwrap();
            files.push(path);
        }
        validate(engine, &files);
    }
}

/// Runs `hm export ARGS` expecting exit 2: its stderr.
fn refused(fx: &Fixture, args: &[&str]) -> String {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    let out = fx.hm(&all);
    assert_eq!(
        out.status.code(),
        Some(2),
        "hm {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "hm {all:?} printed a configuration anyway");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn what_an_engine_cannot_express_is_exit_2() {
    // The whole build's timeout: no engine has one in its file.
    let fx = Fixture::with(&envelope("ci", &[step("a", "true")], &[], Some(600)));
    for engine in ENGINES {
        let err = refused(&fx, &[engine]);
        assert!(
            err.contains("pipeline `ci`") && err.contains("timeout"),
            "{engine}: {err}"
        );
    }
    // GitLab cannot run a job after a failed wait but not after a failed
    // parent; GitHub and Buildkite can.
    let steps = [
        step("base", "true"),
        step("flaky", "false"),
        step("after", "true").continue_on_failure(),
    ];
    let edges = [("base", "after", "builds_in"), ("flaky", "after", "depends_on")];
    let fx = Fixture::with(&envelope("ci", &steps, &edges, None));
    let err = refused(&fx, &["gitlab"]);
    assert!(
        err.contains("step `after`") && err.contains("continue_on_failure") && err.contains("`base`"),
        "{err}"
    );
    for engine in ["github", "buildkite"] {
        assert!(fx.hm(&["export", engine]).status.success(), "{engine}");
    }
    // A one-character wildcard in a trigger: GitHub's filters have none.
    let mut input = envelope("ci", &[step("a", "true")], &[], None);
    input["pipelines"][0]["triggers"] = json!([{"event": "push", "tags": ["v?"]}]);
    let fx = Fixture::with(&input);
    let err = refused(&fx, &["github"]);
    assert!(err.contains("v?") && err.contains("wildcard"), "{err}");
    assert!(fx.hm(&["export", "gitlab"]).status.success());
}

#[test]
fn an_unknown_pipeline_or_engine_is_exit_2() {
    let fx = Fixture::with(&envelope("ci", &[step("a", "true")], &[], None));
    let err = refused(&fx, &["github", "nope"]);
    assert!(err.contains("unknown pipeline `nope`") && err.contains("`ci`"), "{err}");
    let err = refused(&fx, &["jenkins"]);
    assert!(
        err.contains("jenkins") && err.contains("github") && err.contains("buildkite"),
        "{err}"
    );
    let err = refused(&fx, &["github", "ci", "--per", "stage"]);
    assert!(err.contains("stage") && err.contains("chain"), "{err}");
}

/// What each step printed, by key.
type Outputs = BTreeMap<String, Vec<String>>;

/// [`forks_and_joins`] with commands that run here: each step adds its
/// name to `trail.txt` and prints the trail, so its output shows the
/// snapshot it built on; `setup` and `build` are cached, the others are
/// not (they pass their snapshots on within one CI build only).
fn runnable() -> Value {
    let trail = |name: &str| format!("echo {name} >> trail.txt; tr '\\n' ' ' < trail.txt; echo; echo \"${{FOO:-}}\"");
    let steps = [
        step("setup", &trail("setup"))
            .env("FOO", "bar")
            .cache(json!({"policy": "forever"})),
        step("build", &trail("build")).cache(json!({"policy": "forever"})),
        step("unit", &trail("unit")),
        step("lint", &trail("lint")),
        step("report", &trail("report")).continue_on_failure(),
        step("docs", &trail("docs")),
        step("site", &trail("site")),
        step("publish", &trail("publish")),
    ];
    envelope("ci", &steps, &FORKS_AND_JOINS, None)
}

/// Runs the jobs of `read` as a CI engine would: each once the jobs it
/// needs have ended as it requires, several at once, each in a fresh
/// checkout with a cache directory of its own, sharing only the registry;
/// each of its steps is `hm run ci --step KEY`. The output of each step
/// that executed, from the job that ran it.
fn drive(fx: &Fixture, name: &str, read: &Read, env: &[(String, String)]) -> Outputs {
    use std::thread::JoinHandle;
    let id_of_first: BTreeMap<&String, &String> = read.jobs.iter().map(|(id, j)| (&j.steps[0], id)).collect();
    let mut ended: BTreeMap<String, bool> = BTreeMap::new();
    let mut running: Vec<(String, JoinHandle<Result<Outputs, String>>)> = Vec::new();
    let mut started = BTreeSet::new();
    let mut outputs = BTreeMap::new();
    loop {
        for (id, job) in &read.jobs {
            if started.contains(id) || running.len() >= 3 {
                continue;
            }
            let needs: Vec<(bool, bool)> = job
                .needs
                .iter()
                .map(|(first, strict)| (ended.get(id_of_first[first]).copied().unwrap_or(false), *strict))
                .collect();
            let all_ended = job
                .needs
                .iter()
                .all(|(first, _)| ended.contains_key(id_of_first[first]));
            if !all_ended {
                continue;
            }
            started.insert(id.clone());
            if needs.iter().any(|(passed, strict)| *strict && !passed) {
                ended.insert(id.clone(), false);
                continue;
            }
            let dir = fx.dir.path().join("jobs").join(format!("{name}-{id}"));
            let (project, steps, env) = (fx.project(), job.steps.clone(), env.to_vec());
            running.push((
                id.clone(),
                std::thread::spawn(move || run_job(&dir, &project, &steps, &env)),
            ));
        }
        if running.is_empty() {
            break;
        }
        let Some(at) = running.iter().position(|(_, h)| h.is_finished()) else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        let (id, handle) = running.remove(at);
        match handle.join().unwrap() {
            Ok(logs) => {
                outputs.extend(logs);
                ended.insert(id, true);
            }
            Err(why) => panic!("{name}: job `{id}` failed: {why}"),
        }
    }
    assert_eq!(started.len(), read.jobs.len(), "{name}: jobs never started");
    outputs
}

/// One job: a checkout of `project` and a cache of its own in `dir`, then
/// `hm run ci --step KEY` for each of `steps`.
fn run_job(
    dir: &std::path::Path,
    project: &std::path::Path,
    steps: &[String],
    env: &[(String, String)],
) -> Result<Outputs, String> {
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    let checkout = dir.join("checkout");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(project)
        .arg(&checkout)
        .status()
        .unwrap();
    assert!(copied.success());
    let config = dir.join("config/hm");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), "[preferences]\nformat = \"json\"\n").unwrap();
    let mut logs = BTreeMap::new();
    for key in steps {
        let out = Command::new(util::hm_bin())
            .args(["run", "ci", "--step", key])
            .current_dir(&checkout)
            .env("HM_CACHE_DIR", dir.join("cache"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("HOME", dir)
            .env("HM_BACKEND", "sandbox")
            .env_remove("GITHUB_RUN_ID")
            .env_remove("CI_PIPELINE_ID")
            .env_remove("BUILDKITE_BUILD_ID")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("HM_PARALLELISM")
            .env_remove("HM_CACHE_SCOPE")
            .env_remove("HM_BUILD_ID")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let run = util::Run::from(out);
        if run.code != 0 {
            return Err(format!("`{key}` exited {}: {}", run.code, run.dump()));
        }
        // A cached step an earlier build stored is a hit: it prints nothing.
        match run.executed().as_slice() {
            [] => {}
            [one] if one == key => {
                logs.insert(key.clone(), run.logs(key));
            }
            other => return Err(format!("`{key}` executed {other:?}: {}", run.dump())),
        }
    }
    Ok(logs)
}

#[test]
fn exported_jobs_run_one_step_each_on_machines_that_share_a_registry() {
    if !tools() || !util::registry_available() || !util::sandbox_available() {
        return;
    }
    use util::registry::{auths, docker_config, Registry, RegistryOptions};
    let registry = Registry::start(&RegistryOptions::auth("hm", "s3cret"));
    let fx = Fixture::with(&runnable());
    let docker = docker_config(&fx.dir.path().join("docker"), &auths(&registry.host(), "hm", "s3cret"));
    let common = |var: &str, id: &str| {
        vec![
            (
                "HM_CACHE_REMOTE".to_owned(),
                format!("{}/team/hm-cache", registry.host()),
            ),
            ("DOCKER_CONFIG".to_owned(), docker.display().to_string()),
            (var.to_owned(), id.to_owned()),
        ]
    };
    // One machine, one whole run: what every step prints.
    let whole = fx.run_json(&[]);
    assert_eq!(whole.code, 0, "{}", whole.dump());
    let keys = ["setup", "build", "unit", "lint", "report", "docs", "site", "publish"];
    let expected: Outputs = keys.iter().map(|k| (k.to_string(), whole.logs(k))).collect();
    assert_eq!(expected["unit"][0], "setup build unit ");
    assert_eq!(expected["publish"][0], "docs site publish ");

    let builds = [
        ("github", "step", "GITHUB_RUN_ID", "101"),
        ("gitlab", "step", "CI_PIPELINE_ID", "202"),
        ("buildkite", "step", "BUILDKITE_BUILD_ID", "0190-bk"),
        ("github", "chain", "GITHUB_RUN_ID", "102"),
    ];
    for (n, (engine, per, var, id)) in builds.into_iter().enumerate() {
        let text = export(&fx, &[engine, "ci", "--per", per]);
        let read = read(engine, &read_yaml(&text));
        let name = format!("{engine}-{per}");
        let outputs = drive(&fx, &name, &read, &common(var, id));
        // The first build runs everything; later ones take the cached
        // steps from the registry, and run the others again (steps
        // without a cache policy pass snapshots within one build only).
        let mut wanted = expected.clone();
        if n > 0 {
            wanted.retain(|key, _| key != "setup" && key != "build");
        }
        assert_eq!(outputs, wanted, "{name}: the jobs printed what one run does not");
    }
}
