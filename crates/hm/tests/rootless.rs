//! The same pipelines run by an unprivileged user: the sandbox maps the
//! caller to root in a user namespace.

mod util;

use std::process::Command;

use util::{envelope, sandbox_available, step, Fixture, Run};

/// An unprivileged uid for the test (nobody).
const UID: u32 = 65534;

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
    let mut command = fx.command(&["run", "--format", "json"]);
    if util::is_root() {
        // Hand the fixture to the unprivileged user and drop to it.
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{UID}:{UID}"))
            .arg(fx.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let mut args = vec![
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".to_owned(),
            util::hm_bin().to_owned(),
        ];
        args.extend(["run", "--format", "json"].map(str::to_owned));
        command = Command::new("setpriv");
        command
            .args(args)
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", fx.cache())
            .env("HOME", fx.dir.path());
    }
    let run = Run::from(command.output().unwrap());
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("build"), ["0"], "the caller is root inside");
    assert_eq!(run.logs("test")[..2], ["built", "source"]);
    assert_eq!(run.logs("other"), ["source"]);
    fx.assert_clean();
    if util::is_root() {
        assert!(!std::path::Path::new("/etc/hm-rootless").exists());
    }
}
