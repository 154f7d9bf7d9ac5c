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
    let (code, err) = fails(&fx, &["run", "--format", "json"]);
    assert_eq!(code, 4);
    assert!(
        err.contains("image `debian:bookworm` not found") && err.contains("hm image import debian:bookworm PATH"),
        "{err}"
    );
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
    assert!(err.contains("not supported"), "{err}");
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
