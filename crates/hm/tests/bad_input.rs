//! Bad input: a short error naming the file, step or field, exit 2 (exit 4
//! for a missing image), and nothing left behind.

mod util;

use serde_json::json;
use util::{envelope, sandbox_available, step, Fixture};

/// Runs `hm ARGS` and returns (exit code, stderr).
fn fails(fx: &Fixture, args: &[&str]) -> (i32, String) {
    let out = fx.hm(args);
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.lines().count() <= 2, "one or two lines: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    fx.assert_clean();
    (out.status.code().unwrap_or(-1), stderr)
}

fn with_text(text: &str) -> Fixture {
    let fx = Fixture::new();
    fx.write(".hm/pipeline.json", text);
    fx
}

#[test]
fn malformed_json() {
    let fx = with_text("{\"schema_version\": \"1\", \"pipelines\": [\n  {\"slug\": \"ci\",,}]}");
    for args in [&["run"][..], &["pipelines"], &["render", "ci"]] {
        let (code, err) = fails(&fx, args);
        assert_eq!(code, 2);
        assert!(err.contains(".hm/pipeline.json:2:"), "{err}");
    }
}

#[test]
fn a_cycle() {
    let steps = [step("a", "true"), step("b", "true"), step("c", "true")];
    let edges = [
        ("a", "b", "depends_on"),
        ("b", "c", "builds_in"),
        ("c", "a", "depends_on"),
    ];
    let fx = Fixture::with(&envelope("ci", &steps, &edges, None));
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "error: .hm/pipeline.json: pipeline `ci`, step `a`: dependency cycle: a -> b -> c -> a"
    );
}

#[test]
fn duplicate_keys() {
    let fx = Fixture::with(&envelope("ci", &[step("a", "true"), step("a", "false")], &[], None));
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert!(err.contains("step `a`: duplicate step key"), "{err}");
    // A key written twice in one JSON object.
    let text = envelope("ci", &[step("a", "true")], &[], None)
        .to_string()
        .replace("\"cmd\":\"true\"", "\"cmd\":\"true\",\"cmd\":\"x\"");
    let (code, err) = fails(&with_text(&text), &["run"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("duplicate field `cmd`") && err.contains("pipelines[0].definition.graph.nodes[0].step"),
        "{err}"
    );
}

#[test]
fn two_builds_in_parents() {
    let steps = [step("a", "true"), step("b", "true"), step("c", "true")];
    let fx = Fixture::with(&envelope(
        "ci",
        &steps,
        &[("a", "c", "builds_in"), ("b", "c", "builds_in")],
        None,
    ));
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert!(err.contains("step `c`: two `builds_in` parents: `a` and `b`"), "{err}");
}

#[test]
fn unknown_image_is_exit_4_before_any_step() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("a", "true").image(Some("debian:bookworm")),
        step("b", "true").image(None),
    ];
    let fx = Fixture::with(&envelope("ci", &steps, &[], None));
    let (code, err) = fails(&fx, &["run", "--format", "json", "--pull", "never"]);
    assert_eq!(code, 4);
    assert!(
        err.contains("image `debian:bookworm` not found")
            && err.contains("hm image pull debian:bookworm")
            && err.contains("hm image import debian:bookworm PATH"),
        "{err}"
    );

    // Pulled by default: a registry that cannot be reached is exit 4 too,
    // naming the image, with nothing but the pull's events on stdout.
    let out = fx
        .command(&["run", "--format", "json"])
        .env("HM_INSECURE_REGISTRIES", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("cannot pull `docker.io/library/debian:bookworm`"), "{err}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(event["kind"].as_str().unwrap().starts_with("image_pull"), "{line}");
    }
    fx.assert_clean();
}

#[test]
fn unknown_and_missing_slugs() {
    let steps = [step("a", "true")];
    let mut two = envelope("one", &steps, &[], None);
    let second = envelope("two", &steps, &[], None)["pipelines"][0].clone();
    two["pipelines"].as_array_mut().unwrap().push(second);
    let fx = Fixture::with(&two);
    let (code, err) = fails(&fx, &["run", "nope"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "error: unknown pipeline `nope`; the project has: `one`, `two`"
    );
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert!(err.contains("several pipelines; name one"), "{err}");
    let (code, _) = fails(&fx, &["render", "nope"]);
    assert_eq!(code, 2);
}

#[test]
fn other_mistakes() {
    let fx = Fixture::with(&envelope("ci", &[step("a", "true")], &[], None));
    let (code, err) = fails(&fx, &["run", "-e", "NOEQUALS"]);
    assert_eq!(
        (code, err.trim()),
        (2, "error: invalid `-e NOEQUALS`: expected KEY=VALUE")
    );
    let (code, err) = fails(&fx, &["run", "--cloud"]);
    assert_eq!(code, 2);
    assert!(err.contains("not part of this hm"), "{err}");
    let out = fx.hm(&["run", "--parallelism", "many"]);
    assert_eq!(out.status.code(), Some(2), "usage errors are exit 2");

    let fx = Fixture::new();
    std::fs::remove_dir(fx.project().join(".hm")).unwrap();
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert!(err.contains("no `.hm/` folder"), "{err}");

    let mut bad_policy = envelope("ci", &[step("a", "true")], &[], None);
    bad_policy["pipelines"][0]["definition"]["graph"]["nodes"][0]["step"]["cache"] = json!({"policy": "sometimes"});
    let (code, err) = fails(&Fixture::with(&bad_policy), &["run"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("pipelines[0].definition.graph.nodes[0].step.cache")
            && err.contains("unknown variant `sometimes`"),
        "{err}"
    );
}

/// A node env key `PATH=/tmp/evil:...` was accepted (the step saw
/// `PATH=/tmp/evil:/usr/bin:/bin=x`), `A=B` as a key won over `-e A=B=C`,
/// an empty name passed, and a NUL byte anywhere failed only at `exec`
/// (exit 1, after steps had started): every one is exit 2 before anything
/// runs, naming the pipeline, the step and the field, on either backend.
#[test]
fn env_names_and_nul_bytes_are_refused_before_anything_runs() {
    let with_step = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut env = envelope("ci", &[step("a", "true")], &[], None);
        edit(&mut env["pipelines"][0]["definition"]["graph"]["nodes"][0]);
        env
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            with_step(&|n| n["env"]["PATH=/tmp/evil:/usr/bin:/bin"] = json!("x")),
            "`env` has an invalid variable name `PATH=/tmp/evil:/usr/bin:/bin`",
        ),
        (
            with_step(&|n| n["env"]["A=B"] = json!("x")),
            "`env` has an invalid variable name `A=B`",
        ),
        (
            with_step(&|n| n["env"][""] = json!("x")),
            "`env` has an invalid variable name ``",
        ),
        (
            with_step(&|n| n["env"]["1X"] = json!("x")),
            "`env` has an invalid variable name `1X`",
        ),
        (
            with_step(&|n| n["env"]["A\u{0}B"] = json!("x")),
            "`env` has an invalid variable name `A\\u{0}B`",
        ),
        (
            with_step(&|n| n["step"]["env"] = json!({"A-B": "x"})),
            "`step.env` has an invalid variable name `A-B`",
        ),
        (
            with_step(&|n| n["env"]["GREETING"] = json!("a\u{0}b")),
            "`env.GREETING` contains a NUL byte",
        ),
        (
            with_step(&|n| n["step"]["cmd"] = json!("echo a\u{0}b")),
            "`cmd` contains a NUL byte",
        ),
        (
            with_step(&|n| n["step"]["label"] = json!("la\u{0}bel")),
            "`label` contains a NUL byte",
        ),
        (
            with_step(&|n| n["step"]["image"] = json!("host\u{0}")),
            "`image` contains a NUL byte",
        ),
        (
            with_step(&|n| n["step"]["key"] = json!("a\u{0}")),
            "step `a\\u{0}`: `key` contains a NUL byte",
        ),
        (
            with_step(&|n| n["step"]["cache"] = json!({"policy": "forever", "env_keys": ["HOME=x"]})),
            "`cache.env_keys` has an invalid variable name `HOME=x`",
        ),
    ];
    for backend in [util::Backend::Sandbox, util::Backend::Docker] {
        for (envelope, expected) in &cases {
            let fx = Fixture::with_on(backend, envelope);
            for args in [&["run", "--format", "json"][..], &["render", "ci"]] {
                let (code, err) = fails(&fx, args);
                assert_eq!(code, 2, "{args:?}: {err}");
                assert!(
                    err.starts_with("error: .hm/pipeline.json: pipeline `ci`, step `") && err.contains(expected),
                    "{args:?}: expected `{expected}` in: {err}"
                );
            }
        }
    }
}

/// A cache volume with a bad name or mount path, a step's or its
/// pipeline's, is exit 2 before anything runs, naming the pipeline's file,
/// the step and the field.
#[test]
fn bad_volumes_are_refused_naming_the_step_and_the_field() {
    let with_volumes = |shared: serde_json::Value, own: serde_json::Value| {
        let mut env = envelope("ci", &[step("a", "true"), step("build", "true")], &[], None);
        if !shared.is_null() {
            env["pipelines"][0]["definition"]["volumes"] = shared;
        }
        if !own.is_null() {
            env["pipelines"][0]["definition"]["graph"]["nodes"][1]["step"]["volumes"] = own;
        }
        env
    };
    let cases = [
        (
            with_volumes(
                serde_json::Value::Null,
                json!({"target": {"name": "cargo/target", "sharing": "locked"}}),
            ),
            "pipeline `ci`, step `build`: `volumes.target` has an invalid volume name `cargo/target`: a name is a \
             letter or digit, then up to 63 letters, digits, `_`, `.` or `-`",
        ),
        (
            with_volumes(serde_json::Value::Null, json!({"/proc/cache": "cache"})),
            "pipeline `ci`, step `build`: `volumes` has an invalid mount path `/proc/cache`: `/proc` and what is \
             under it belong to the kernel",
        ),
        (
            with_volumes(json!({"../cache": "cache"}), serde_json::Value::Null),
            "pipeline `ci`: `volumes` has an invalid mount path `../cache`: `..` is not allowed in a mount path",
        ),
    ];
    for (envelope, expected) in &cases {
        let fx = Fixture::with(envelope);
        for args in [&["run", "--format", "json"][..], &["render", "ci"], &["pipelines"]] {
            let (code, err) = fails(&fx, args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert_eq!(err.trim(), format!("error: .hm/pipeline.json: {expected}"), "{args:?}");
        }
    }
    let fine = with_volumes(
        json!({"/root/.cargo/registry": "cargo-registry"}),
        json!({"target": "cargo-target"}),
    );
    let out = Fixture::with(&fine).hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `-e` takes a variable name before the first `=` (its value may hold
/// more); anything else is exit 2 before anything runs.
#[test]
fn env_flags_need_a_variable_name() {
    let fx = Fixture::with(&envelope("ci", &[step("a", "echo \"$A\"")], &[], None));
    for bad in ["1A=x", "A-B=x", "=x", "A B=x"] {
        let (code, err) = fails(&fx, &["run", "-e", bad]);
        assert_eq!(code, 2, "{err}");
        assert!(err.starts_with(&format!("error: invalid `-e {bad}`")), "{err}");
    }
    if !sandbox_available() {
        return;
    }
    let run = fx.run_json(&["-e", "A=B=C"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("a"), ["B=C"]);
}

/// A step's `runner_args` limit that cannot be used is exit 2 before
/// anything runs, naming the pipeline's file, the step and the field, on
/// either backend; so is a bad limit in the configuration, a variable or
/// a flag, each named.
#[test]
fn bad_limits_are_refused_naming_where_they_come_from() {
    let with_args = |args: serde_json::Value| {
        let mut env = envelope("ci", &[step("a", "true"), step("big", "true")], &[], None);
        env["pipelines"][0]["definition"]["graph"]["nodes"][1]["step"]["runner_args"] = args;
        env
    };
    let cases = [
        (
            json!({"memory": "lots"}),
            "runner_args.memory: `lots` is not a size such as `20GiB`",
        ),
        (
            json!({"cpus": -1}),
            "runner_args.cpus: `-1` is not a positive number of CPUs",
        ),
        (json!({"pids": 1.5}), "runner_args.pids: `1.5` is not a whole number"),
        (
            json!({"disk": "5 parsecs"}),
            "runner_args.disk: `5 parsecs` has an unknown unit (use B, kB, MB, GB, KiB, MiB, GiB)",
        ),
    ];
    for backend in [util::Backend::Sandbox, util::Backend::Docker] {
        for (args, expected) in &cases {
            let fx = Fixture::with_on(backend, &with_args(args.clone()));
            let (code, err) = fails(&fx, &["run", "--format", "json"]);
            assert_eq!(code, 2, "{err}");
            assert_eq!(
                err.trim(),
                format!("error: .hm/pipeline.json: pipeline `ci`, step `big`: {expected}")
            );
        }
    }
    // Other keys are the runner's, and `none` lifts a limit: both accepted.
    let fine = with_args(json!({"memory": "none", "cpus": 0.5, "pids": 64, "vm": "large"}));
    let out = Fixture::with(&fine).hm(&["render", "ci"]);
    assert_eq!(out.status.code(), Some(0));

    let fx = Fixture::with(&envelope("ci", &[step("a", "true")], &[], None));
    fx.write(".hm/config.toml", "[resources]\npids = \"many\"\n");
    let (code, err) = fails(&fx, &["run"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(".hm/config.toml") && err.contains("resources.pids: `many` is not a whole number"),
        "{err}"
    );
    std::fs::remove_file(fx.project().join(".hm/config.toml")).unwrap();
    for (var, value) in [
        ("HM_MEMORY", "lots"),
        ("HM_CPUS", "fast"),
        ("HM_PIDS", "-1"),
        ("HM_DISK", "big"),
    ] {
        let out = fx.command(&["run"]).env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with(&format!("error: `{var}`: `{value}`")), "{err}");
    }
    for (flag, value) in [
        ("--memory", "lots"),
        ("--cpus", "fast"),
        ("--pids", "-1"),
        ("--disk", "big"),
    ] {
        let out = fx.hm(&["run", &format!("{flag}={value}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("invalid value '{value}' for '{flag} ")), "{err}");
    }
    fx.assert_clean();
}
