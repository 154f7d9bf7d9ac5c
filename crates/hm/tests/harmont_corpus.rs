//! Harmont's own pipeline files (`compat/harmont/examples`) render exactly
//! as Harmont renders them (`compat/harmont/expected`), in both languages
//! and as shipped, and envelopes Harmont renders load and run here.

mod util;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use util::{python_available, Fixture};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/harmont")
}

/// The examples' names, sorted.
fn examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 14, "the corpus has 14 examples");
    names
}

/// `envelope` without the `cache.key` Harmont's SDKs compute at render
/// time (`hm` computes its own cache keys when it runs).
fn without_sdk_keys(mut envelope: Value) -> Value {
    fn strip(policy: &mut Value) {
        if let Some(policy) = policy.as_object_mut() {
            policy.remove("key");
            if let Some(Value::Array(subs)) = policy.get_mut("sub_policies") {
                subs.iter_mut().for_each(strip);
            }
        }
    }
    for pipeline in envelope["pipelines"].as_array_mut().unwrap() {
        for node in pipeline["definition"]["graph"]["nodes"].as_array_mut().unwrap() {
            if let Some(cache) = node["step"].get_mut("cache") {
                strip(cache);
            }
        }
    }
    envelope
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus().join("expected").join(format!("{name}.json"))).unwrap();
    without_sdk_keys(serde_json::from_str(&text).unwrap())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `hm pipelines` in a copy of example `name` whose `.hm/` keeps only the
/// pipeline files ending in `keep` (all of them with `None`): the printed
/// envelope, and stderr.
fn render(name: &str, keep: Option<&str>) -> (Result<Value, String>, String) {
    let fx = Fixture::new();
    copy_tree(&corpus().join("examples").join(name), &fx.project());
    if let Some(keep) = keep {
        for entry in std::fs::read_dir(fx.project().join(".hm")).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if (file.ends_with(".py") || file.ends_with(".ts")) && !file.ends_with(keep) {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    let out = fx.hm(&["pipelines"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rendered = if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(stderr.clone())
    };
    (rendered, stderr)
}

/// Renders every example one way and checks each against Harmont's render;
/// all mismatches are reported together.
fn check_all(keep: Option<&str>) {
    let mut failures = Vec::new();
    for name in examples() {
        match render(&name, keep) {
            (Ok(ours), _) if without_sdk_keys(ours.clone()) == expected(&name) => {}
            (Ok(ours), _) => failures.push(format!(
                "{name}: renders differently\n  ours:    {}\n  harmont: {}",
                serde_json::to_string(&without_sdk_keys(ours)).unwrap(),
                serde_json::to_string(&expected(&name)).unwrap()
            )),
            (Err(err), _) => failures.push(format!("{name}: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 14 differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_python_example_renders_as_harmont_renders_it() {
    if !python_available() {
        return;
    }
    check_all(Some(".py"));
}

#[test]
fn every_typescript_example_renders_as_harmont_renders_it() {
    check_all(Some(".ts"));
}

/// Shipped with both files, an example evaluates its TypeScript one (as
/// Harmont's `hm` does) and says in one line that the Python one was left
/// out.
#[test]
fn every_example_as_shipped_renders_as_harmont_renders_it() {
    check_all(None);
    let (_, stderr) = render("go", None);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains(".hm/pipeline.py")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with("note: ") && notes[0].contains("leaves out .hm/pipeline.py"),
        "{stderr}"
    );
}

/// Harmont's renders, as files in `.hm/`, go through the same loader as
/// every pipeline file and come out unchanged (their `cache.key`s included).
#[test]
fn harmont_renders_load_as_pipeline_files() {
    for name in examples() {
        let text = std::fs::read_to_string(corpus().join("expected").join(format!("{name}.json"))).unwrap();
        let fx = Fixture::new();
        fx.write(".hm/pipeline.json", &text);
        let out = fx.hm(&["pipelines"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(printed, serde_json::from_str::<Value>(&text).unwrap(), "{name}");
        let out = fx.hm(&["render", "ci"]);
        let definition: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(definition, printed["pipelines"][0]["definition"], "{name}");
    }
}

/// An envelope as Harmont's SDKs write it (SDK cache keys, `env_keys: []`,
/// `{event}` triggers, a pipeline timeout) runs, and its cached steps hit
/// the second time.
#[test]
fn an_envelope_harmont_renders_runs() {
    let fx = Fixture::new();
    let env = json!({"CI": "true", "DEBIAN_FRONTEND": "noninteractive", "TERM": "dumb"});
    let envelope = json!({"schema_version": "1", "pipelines": [{
        "slug": "ci", "name": "ci", "allow_manual": true,
        "triggers": [{"event": "push", "branches": ["main"]}, {"event": "pull_request", "types": ["opened"]}],
        "definition": {"version": "0", "timeout_seconds": 600, "graph": {
            "nodes": [
                {"env": env, "step": {"key": "apt-base", "label": ":go: apt-base", "cmd": "echo base > /base.txt",
                    "image": "host",
                    "cache": {"policy": "ttl", "duration_seconds": 86400, "env_keys": [],
                              "key": "b30cd8a14b0b7f2e161c69215df39851f145c5eb43da31541e5312e5f6f12ad7"}}},
                {"env": env, "step": {"key": "install", "label": ":go: install", "cmd": "cat /base.txt",
                    "cache": {"policy": "forever", "env_keys": [],
                              "key": "9ae18140488a6f319aecaa032f7ad2f727f63bb9bc0a3100c58635e188f45667"}}},
                {"env": env, "step": {"key": "test", "label": ":go: test", "cmd": "echo CI=$CI"}}
            ],
            "node_holes": [], "edge_property": "directed",
            "edges": [[0, 1, "builds_in"], [1, 2, "builds_in"]]}}
    }]});
    fx.write(".hm/pipeline.json", &envelope.to_string());
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout("install"), vec!["base"]);
    assert_eq!(first.stdout("test"), vec!["CI=true"]);
    let second = fx.run_json(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.executed(), vec!["test"], "the cached steps hit");
    fx.assert_clean();
}

/// Harmont's `.hm/config.toml` (its own repository has `backend =
/// "cloud"`): read, the hosted service noted in one line, the run local,
/// and `[preferences] format` the default output format.
#[test]
fn harmont_config_files_are_read_and_the_run_stays_local() {
    let fx = Fixture::with(&util::envelope("ci", &[util::step("a", "echo local")], &[], None));
    fx.write(
        ".hm/config.toml",
        "backend = \"cloud\"\n\n[cloud]\norg = \"acme\"\npipeline = \"ci\"\n\n[preferences]\nformat = \"json\"\nauto_watch = false\n",
    );
    let out = fx.hm(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("hosted service")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with("note: ") && notes[0].contains("running locally"),
        "{stderr}"
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON: {l}: {e}")))
        .collect();
    assert!(
        events.iter().any(|e| e["kind"] == "step_log" && e["line"] == "local"),
        "{events:?}"
    );
    // A flag still wins over the preference.
    let out = fx.hm(&["run", "--format", "human"]);
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_err());
    fx.assert_clean();
}
