//! Pipelines written in Python, as Harmont users write them, evaluated by
//! the real `python3` with the SDK `hm` carries and run in the sandbox.

mod util;

use std::collections::BTreeMap;

use serde_json::Value;
use util::{python_available, sandbox_available, Fixture, Run};

/// A fixture whose `.hm/pipeline.py` is `text`.
fn python(text: &str) -> Fixture {
    let fx = Fixture::new();
    fx.write(".hm/pipeline.py", text);
    fx
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How many times each key was queued.
fn queued(run: &Run) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in run.events.iter().filter(|e| e["kind"] == "step_queued") {
        *counts.entry(event["key"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

const TARGETS_FORKS_WAITS: &str = r#"
from typing import Annotated

import harmont as hm


@hm.target()
def toolchain(base: Annotated[hm.Step, hm.BaseImage("host")]) -> hm.Step:
    return base.sh("mkdir -p /opt/tool && echo v1 > /opt/tool/version", label="install tool")


@hm.target()
def deps(toolchain: hm.Target[hm.Step]) -> hm.Step:
    return toolchain.sh("echo deps > /opt/tool/deps", label="deps")


@hm.target()
def docs(toolchain: hm.Target) -> hm.Step:
    return toolchain.sh("test ! -e /opt/tool/deps && echo docs", label="docs")


@hm.pipeline("ci", env={"STAGE": "ci"})
def ci(deps: hm.Target[hm.Step], docs: hm.Target[hm.Step]):
    print("user output goes to stderr")
    fork = deps.fork()
    left = fork.sh("echo left > side && cat /opt/tool/version /opt/tool/deps", label="left")
    right = fork.sh("test ! -e side && echo right sees no side", label="right")
    after = left.sh('echo "after $STAGE $GREETING"', label="after", env={"GREETING": "hi"})
    return [left, right, docs, hm.wait(), after]


@hm.pipeline("slow-build")
def slow_build():
    quick = hm.sh("echo quick", label="quick", image="host")
    return [quick, hm.timeout("1s", quick.sh("sleep 30", label="slow"))]


@hm.pipeline
def lenient():
    broken = hm.sh("exit 3", label="broken", image="host")
    return [broken, hm.wait(continue_on_failure=True), hm.sh("echo cleanup", label="cleanup", image="host")]


@hm.pipeline
def strict():
    broken = hm.sh("exit 3", label="broken", image="host")
    return [broken, hm.wait(), hm.sh("echo cleanup", label="cleanup", image="host")]
"#;

#[test]
fn targets_forks_waits_and_env_run_in_the_sandbox() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let fx = python(TARGETS_FORKS_WAITS);
    let run = fx.run_json(&["ci"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(run.stderr.contains("user output goes to stderr"), "{}", run.dump());
    // The shared target is evaluated once: one install step for two users.
    let counts = queued(&run);
    assert_eq!(counts.get("install-tool"), Some(&1), "{counts:?}");
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert_eq!(run.logs("left"), ["v1", "deps"]);
    assert_eq!(
        run.logs("right"),
        ["right sees no side"],
        "a fork branch sees its sibling's write"
    );
    assert_eq!(run.logs("docs"), ["docs"], "a target sees another target's step");
    assert_eq!(run.logs("after"), ["after ci hi"]);
    // The wait: `after` starts only once every step before it ended.
    let start = run.position("step_start", "after");
    for key in ["left", "right", "docs"] {
        assert!(
            run.position("step_end", key) < start,
            "{key} had not ended: {}",
            run.dump()
        );
    }
    fx.assert_clean();
}

#[test]
fn timeouts_and_waits_decide_the_outcome() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let fx = python(TARGETS_FORKS_WAITS);
    let slow = fx.run_json(&["slow-build"]);
    assert_eq!(slow.code, 1, "{}", slow.dump());
    assert_eq!(slow.end("slow")["exit_code"], 124, "{}", slow.dump());
    assert_eq!(slow.status("quick"), "passed");

    let lenient = fx.run_json(&["lenient"]);
    assert_eq!(lenient.code, 1, "{}", lenient.dump());
    assert_eq!(lenient.status("broken"), "failed");
    assert_eq!(lenient.status("cleanup"), "passed", "{}", lenient.dump());

    let strict = fx.run_json(&["strict"]);
    assert_eq!(strict.code, 1, "{}", strict.dump());
    assert_eq!(strict.status("cleanup"), "skipped", "{}", strict.dump());
    fx.assert_clean();
}

const POLICIES: &str = r#"
from datetime import timedelta
from typing import Annotated

import harmont as hm


@hm.pipeline("cached")
def cached(root: Annotated[hm.Step, hm.BaseImage("host")]) -> list[hm.Step]:
    return [
        root.sh("echo forever", label="forever", cache=hm.forever(env_keys=["HM_TEST_TOOL"])),
        root.sh("echo ttl", label="ttl", cache=hm.ttl(timedelta(hours=6))),
        root.sh("cat src/a.txt", label="on change", cache=hm.on_change("src/*.txt")).sh("echo child", label="child"),
        root.sh("echo compose", label="compose", cache=hm.compose(hm.forever(), hm.on_change("lock"))),
        root.sh("echo none", label="uncached"),
    ]
"#;

#[test]
fn every_cache_policy_hits_and_misses_as_it_says() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let fx = python(POLICIES);
    fx.write("src/a.txt", "one\n");
    fx.write("lock", "v1\n");
    let everything = ["child", "compose", "forever", "on-change", "ttl", "uncached"];
    let first = fx.run_json(&[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.executed(), everything);

    let second = fx.run_json(&[]);
    assert_eq!(second.code, 0, "{}", second.dump());
    assert_eq!(second.executed(), ["child", "uncached"], "{}", second.dump());
    for key in ["forever", "ttl", "on-change", "compose"] {
        assert_eq!(second.status(key), "cache_hit", "{key}: {}", second.dump());
    }

    fx.write("src/a.txt", "two\n");
    fx.write("lock", "v2\n");
    let changed = fx.run_json(&[]);
    assert_eq!(changed.code, 0, "{}", changed.dump());
    assert_eq!(changed.executed(), ["child", "compose", "on-change", "uncached"]);
    assert_eq!(changed.logs("on-change"), ["two"]);
    assert_eq!(
        changed.miss_reason("on-change").as_deref(),
        Some("files changed: src/a.txt")
    );

    let tool = Run::from(
        fx.command(&["run", "--format", "json"])
            .env("HM_TEST_TOOL", "2")
            .output()
            .unwrap(),
    );
    assert_eq!(tool.code, 0, "{}", tool.dump());
    assert_eq!(tool.executed(), ["child", "forever", "uncached"]);
    fx.assert_clean();
}

#[test]
fn a_raising_file_shows_only_the_users_frames() {
    if !python_available() {
        return;
    }
    let fx = python(
        "import harmont as hm\n\n\ndef helper():\n    return {}['missing']\n\n\n@hm.pipeline\ndef ci():\n    return helper()\n",
    );
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: .hm/pipeline.py:5:12: the pipeline file raised an error\n"),
        "{err}"
    );
    assert!(err.contains("File \".hm/pipeline.py\", line 10, in ci"), "{err}");
    assert!(err.contains("File \".hm/pipeline.py\", line 5, in helper"), "{err}");
    assert!(err.contains("KeyError: 'missing'"), "{err}");
    assert!(
        !err.contains("harmont/") && !err.contains("importlib"),
        "SDK frames shown: {err}"
    );
    assert!(out.stdout.is_empty());

    // A mistake the SDK reports points at the user's line.
    fx.write(".hm/pipeline.py", "import harmont as hm\n\nhm.sh('make', cwd='')\n");
    let err = stderr(&fx.hm(&["run"]));
    assert!(err.contains("File \".hm/pipeline.py\", line 3, in <module>"), "{err}");
    assert!(err.starts_with("error: .hm/pipeline.py:3:1: "), "{err}");
    assert!(err.contains("ValueError: hm: cwd must be a non-empty path"), "{err}");
    fx.assert_clean();
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    if !python_available() {
        return;
    }
    let fx = python("import harmont as hm\n\n@hm.pipeline\ndef ci(:\n    pass\n");
    let out = fx.hm(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: .hm/pipeline.py:4:8: the pipeline file has a syntax error\n"),
        "{err}"
    );
    assert!(err.contains("File \".hm/pipeline.py\", line 4"), "{err}");
    assert!(err.contains("SyntaxError"), "{err}");
    assert!(!err.contains("Traceback"), "{err}");
    fx.assert_clean();
}

#[test]
fn python_and_json_files_merge_and_slugs_stay_unique() {
    if !python_available() {
        return;
    }
    let fx = python("import harmont as hm\n\n@hm.pipeline\ndef build():\n    return hm.sh('true', image='host')\n");
    let json = util::envelope("check", &[util::step("s", "true")], &[], None);
    fx.write(".hm/a.json", &json.to_string());
    let out = fx.hm(&["pipelines"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    let slugs: Vec<_> = envelope["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["slug"])
        .collect();
    assert_eq!(slugs, ["check", "build"]);

    let clash = util::envelope("build", &[util::step("s", "true")], &[], None);
    fx.write(".hm/a.json", &clash.to_string());
    let err = stderr(&fx.hm(&["pipelines"]));
    assert!(
        err.contains("error: .hm/pipeline.py:3:1: pipeline `build` is defined twice (first at .hm/a.json)"),
        "{err}"
    );
}

#[test]
fn a_missing_or_old_python_is_a_clear_error() {
    if !python_available() {
        return;
    }
    let fx = python("import harmont as hm\n");
    let missing = fx
        .command(&["pipelines"])
        .env("HM_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("needs `python3` 3.10 or newer, and `/nonexistent/python3` was not found"),
        "{}",
        stderr(&missing)
    );

    // The real interpreter, made to report 3.8 before the bootstrap runs.
    let old = fx.dir.path().join("python3.8");
    std::fs::write(
        &old,
        "#!/bin/sh\nwhile [ \"$1\" != -c ]; do shift; done\nshift\nexec python3 -I -c 'import sys; sys.version_info = (3, 8, 10, \"final\", 0); exec(sys.argv.pop(1))' \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = fx.command(&["pipelines"]).env("HM_PYTHON", &old).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs Python 3.10 or newer"), "{}", stderr(&out));
    assert!(stderr(&out).contains("is Python 3.8.10"), "{}", stderr(&out));
}

/// `hm` starts Python without `site`; a pipeline file that imports an
/// installed package (pytest, which CI installs) still finds it.
#[test]
fn a_pipeline_file_imports_installed_packages() {
    if !python_available() {
        return;
    }
    let has_pytest = std::process::Command::new("python3")
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pytest {
        util::skip("pytest is not installed for python3");
        return;
    }
    let fx = python(
        "import pytest\nimport harmont as hm\n\n@hm.pipeline\ndef ci():\n    return hm.sh('echo ' + pytest.__name__)\n",
    );
    let out = fx.hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("echo pytest"));
}

#[test]
fn concurrent_first_runs_unpack_the_sdk_once() {
    if !python_available() {
        return;
    }
    let fx = python("import harmont as hm\n\n@hm.pipeline\ndef ci():\n    return hm.sh('true')\n");
    let children: Vec<_> = (0..4)
        .map(|_| {
            fx.command(&["pipelines"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let sdk: Vec<_> = std::fs::read_dir(fx.cache().join("sdk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "pycache")
        .collect();
    assert_eq!(sdk.len(), 1, "one unpacked SDK and no temporary copies: {sdk:?}");
    assert!(sdk[0].starts_with("python-"));
    assert!(
        !fx.project().join(".hm/__pycache__").exists(),
        "bytecode written into .hm/"
    );
}

/// Cache volumes, a pipeline's and a step's, in Python and in TypeScript.
const VOLUMES_PY: &str = r#"
import harmont as hm


@hm.pipeline("ci", volumes={"/root/.cargo/registry": "cargo-registry"})
def ci():
    base = hm.sh("echo base", label="base")
    build = base.sh(
        "cargo build",
        label="build",
        volumes={
            "target": hm.volume("cargo-target", sharing="locked"),
            "/root/.cargo/registry": hm.volume("own-registry", sharing="private"),
        },
    )
    return [build, base.sh("echo docs", label="docs")]
"#;

const VOLUMES_TS: &str = r#"
import { pipeline, sh, volume } from "@harmont/hm";

const base = sh("echo base", { label: "base" });
const build = base.sh("cargo build", {
  label: "build",
  volumes: {
    target: volume("cargo-target", { sharing: "locked" }),
    "/root/.cargo/registry": volume("own-registry", { sharing: "private" }),
  },
});
export default {
  slug: "ci",
  pipeline: pipeline([build, base.sh("echo docs", { label: "docs" })], {
    volumes: { "/root/.cargo/registry": "cargo-registry" },
  }),
};
"#;

/// The volumes a Python pipeline declares reach `hm` as written (its
/// `render` prints the IR it read and validated), alike from TypeScript;
/// a bad one is refused naming the Python file, the step and the field.
#[test]
fn volumes_reach_hm_as_written_and_alike_from_typescript() {
    if !python_available() {
        return;
    }
    let mut rendered = Vec::new();
    for (file, text) in [(".hm/pipeline.py", VOLUMES_PY), (".hm/pipeline.ts", VOLUMES_TS)] {
        let fx = Fixture::new();
        fx.write(file, text);
        let out = fx.hm(&["render", "ci"]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        let definition: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            definition["volumes"],
            serde_json::json!({"/root/.cargo/registry": "cargo-registry"}),
            "{file}"
        );
        let steps: BTreeMap<&str, &Value> = definition["graph"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["step"]["key"].as_str().unwrap(), &n["step"]))
            .collect();
        assert_eq!(
            steps["build"]["volumes"],
            serde_json::json!({
                "/root/.cargo/registry": {"name": "own-registry", "sharing": "private"},
                "target": {"name": "cargo-target", "sharing": "locked"},
            }),
            "{file}"
        );
        assert!(steps["base"].get("volumes").is_none() && steps["docs"].get("volumes").is_none());
        rendered.push(definition);
    }
    assert_eq!(
        rendered[0], rendered[1],
        "Python and TypeScript render the volumes differently"
    );

    let fx = python(&VOLUMES_PY.replace("\"cargo-target\"", "\"cargo/target\""));
    let out = fx.hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: .hm/pipeline.py")
            && err.contains("pipeline `ci`, step `build`: `volumes.target` has an invalid volume name `cargo/target`"),
        "{err}"
    );
}

const TEMPLATES: &[&str] = &[
    "rust", "go", "python", "uv", "js", "ts", "cmake", "zig", "elixir", "shell",
];

/// Every template renders and validates, in Python and in TypeScript, and
/// the two render the same pipeline; the cache volumes a stack wants are in
/// a `.hm/config.toml` the configuration reader takes.
#[test]
fn every_init_template_renders_and_validates() {
    if !python_available() {
        return;
    }
    for template in TEMPLATES {
        let mut rendered = Vec::new();
        for lang in ["py", "ts"] {
            let fx = Fixture::new();
            std::fs::remove_dir(fx.project().join(".hm")).unwrap();
            let out = fx.hm(&["init", "-t", template, "--lang", lang]);
            assert_eq!(out.status.code(), Some(0), "{template} {lang}: {}", stderr(&out));
            assert!(fx.project().join(format!(".hm/pipeline.{lang}")).is_file());
            let config = std::fs::read_to_string(fx.project().join(".hm/config.toml"));
            match *template {
                "zig" | "elixir" | "shell" => assert!(config.is_err(), "{template}: no volumes"),
                _ => {
                    let config = config.unwrap();
                    assert!(config.contains("\n[volumes]\n"), "{template}: {config}");
                    // `prune` reads the configuration: a bad one is exit 2.
                    let out = fx.hm(&["cache", "prune"]);
                    assert_eq!(out.status.code(), Some(0), "{template} {lang}: {}", stderr(&out));
                }
            }
            let out = fx.hm(&["render", "ci"]);
            assert_eq!(out.status.code(), Some(0), "{template} {lang}: {}", stderr(&out));
            let definition: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                definition["graph"]["nodes"].as_array().unwrap().len() >= 2,
                "{template} {lang}"
            );
            rendered.push(definition);
        }
        assert_eq!(
            rendered[0], rendered[1],
            "the {template} templates differ between Python and TypeScript"
        );
    }
}

#[test]
fn init_detects_the_stack_and_never_overwrites_without_force() {
    if !python_available() {
        return;
    }
    let fx = Fixture::new();
    std::fs::remove_dir(fx.project().join(".hm")).unwrap();
    fx.write("Cargo.toml", "[package]\nname = \"x\"\n");
    let out = fx.hm(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the rust template, for `Cargo.toml`"),
        "{}",
        stderr(&out)
    );
    let file = fx.project().join(".hm/pipeline.py");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("hm.rust.project(path=\".\")"));
    let config = fx.project().join(".hm/config.toml");
    let rust_config = std::fs::read_to_string(&config).unwrap();
    assert!(
        rust_config.contains("\"/root/.cargo/registry\" = \"cargo-registry\"\n")
            && rust_config.contains("\"target\" = \"cargo-target\"\n"),
        "{rust_config}"
    );

    std::fs::write(&file, "# mine\n").unwrap();
    let out = fx.hm(&["init", "-t", "go"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exists; pass --force to overwrite it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");

    let out = fx.hm(&["init", "-t", "go", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&file).unwrap().contains("hm.go(path=\".\")"));
    // The settings are the user's: kept, even with `--force`.
    assert!(stderr(&out).contains("kept "), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), rust_config);

    // `--lang ts` beside a `pipeline.py` wrote a second `ci` without a word.
    let out = fx.hm(&["init", "--lang", "ts"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pipeline.py` exists: a project's pipelines are in one language"),
        "{}",
        stderr(&out)
    );
    assert!(!fx.project().join(".hm/pipeline.ts").exists());
}

#[test]
fn the_shell_template_runs_as_written() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let fx = Fixture::new();
    std::fs::remove_dir(fx.project().join(".hm")).unwrap();
    assert_eq!(fx.hm(&["init"]).status.code(), Some(0));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.executed(), ["build", "test"]);
    fx.assert_clean();
}
