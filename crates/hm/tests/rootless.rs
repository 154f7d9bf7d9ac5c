//! The same pipelines run by an unprivileged user: the sandbox maps the
//! caller to root in a user namespace.

mod util;

use std::process::Command;

use util::{envelope, sandbox_available, step, Fixture, Run};

/// An unprivileged uid for the test (nobody).
const UID: u32 = 65534;

/// `hm ARGS` in `project` as the unprivileged user (when root) or as
/// ourselves (already unprivileged), with the fixture's cache.
fn run_unprivileged(fx: &Fixture, project: &std::path::Path, args: &[&str]) -> Run {
    let mut command = Command::new(util::hm_bin());
    if util::is_root() {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{UID}:{UID}"))
            .arg(fx.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        command = Command::new("setpriv");
        command.args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            util::hm_bin(),
        ]);
    }
    let output = command
        .args(args)
        .current_dir(project)
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", fx.dir.path())
        .output()
        .unwrap();
    Run::from(output)
}

#[test]
fn the_sample_pipeline_runs_as_an_unprivileged_user() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let copy = Command::new("cp")
        .arg("-a")
        .arg(sample.join("."))
        .arg(fx.project())
        .status()
        .unwrap();
    assert!(copy.success());
    let run = run_unprivileged(&fx, &fx.project(), &["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("test"), ["greeting ok"]);
    fx.assert_clean();
}

#[test]
fn a_pipeline_runs_as_an_unprivileged_user() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step(
            "build",
            "id -u; mkdir -p out && cp src.txt out/ && echo built > out/artifact",
        ),
        step(
            "test",
            "cat out/artifact out/src.txt; touch /etc/hm-rootless && echo wrote-etc || echo etc-read-only",
        ),
        step("other", "cat src.txt"),
    ];
    let edges = [("build", "test", "builds_in"), ("build", "other", "builds_in")];
    let fx = Fixture::with(&envelope("rootless", &steps, &edges, None));
    fx.write("src.txt", "source\n");
    let run = run_unprivileged(&fx, &fx.project(), &["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("build"), ["0"], "the caller is root inside");
    // `touch`'s complaint goes to stderr, which may arrive before or after.
    assert_eq!(run.stdout("test"), ["built", "source", "etc-read-only"]);
    assert_eq!(run.logs("other"), ["source"]);
    fx.assert_clean();
    if util::is_root() {
        assert!(!std::path::Path::new("/etc/hm-rootless").exists());
    }
}
