//! A toolchain preset run for real: Harmont's own `c` example
//! (`compat/harmont/examples/c`, `hm.cmake(path=".", ...)`), unchanged, in
//! the sandbox, with apt fetching CMake, Ninja, ccache and the clang tools.
//! (Harmont's other presets download from hosts this machine cannot reach;
//! their commands are checked against Harmont's renders by
//! `harmont_corpus.rs`.)
//!
//! Harmont's pipelines run on `ubuntu:24.04`; no registry is reachable
//! here, so a Debian root filesystem from `HM_TEST_DEBIAN_ROOTFS` (`.ci/run`
//! builds one with `.ci/debian-rootfs.sh`) is imported under that name.

mod util;

use std::path::Path;

use util::{debian_rootfs, python_available, sandbox_available, Fixture, Run};

/// Copies Harmont's example `name` into the fixture's project.
fn copy_example(fx: &Fixture, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../compat/harmont/examples")
        .join(name);
    let mut stack = vec![from.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(&from).unwrap().to_str().unwrap().to_owned();
                fx.write(&rel, &std::fs::read_to_string(&path).unwrap());
            }
        }
    }
}

#[test]
fn harmonts_c_example_builds_and_tests_for_real() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let Some(rootfs) = debian_rootfs() else { return };
    let fx = Fixture::new();
    copy_example(&fx, "c");
    let import = fx.hm(&["image", "import", "ubuntu:24.04", rootfs.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let run = || Run::from(fx.command(&["run", "--format", "json"]).output().unwrap());

    // As shipped: the TypeScript file is evaluated.
    let first = run();
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.executed(), ["apt-base", "build", "fmt", "test", "verify"]);
    assert!(
        first.logs("test").iter().any(|l| l.contains("100% tests passed")),
        "{}",
        first.dump()
    );

    // The Python twin renders the same steps: every cached one hits.
    std::fs::remove_file(fx.project().join(".hm/pipeline.ts")).unwrap();
    let second = run();
    assert_eq!(second.code, 0, "{}", second.dump());
    assert_eq!(second.executed(), ["fmt", "test"], "{}", second.dump());
    for key in ["apt-base", "verify", "build"] {
        assert_eq!(second.status(key), "cache_hit", "{key}: {}", second.dump());
    }

    // A broken test fails the build; the build step sees the edit (it is
    // cached on CMakeLists.txt only, and the test step rebuilds).
    let test = fx.project().join("tests/test_main.c");
    let source = std::fs::read_to_string(&test).unwrap();
    let broken_source = source.replacen("== 5", "== 6", 1);
    assert_ne!(broken_source, source, "the example's test checks add(2, 3) == 5");
    std::fs::write(&test, broken_source).unwrap();
    let broken = run();
    assert_eq!(broken.code, 1, "{}", broken.dump());
    assert_eq!(broken.status("test"), "failed");
    assert_eq!(broken.status("build"), "cache_hit");
    fx.assert_clean();
}
