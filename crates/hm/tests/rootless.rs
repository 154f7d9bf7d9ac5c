//! The same pipelines run by an unprivileged user: the sandbox maps the
//! caller to root in a user namespace.

mod util;

use std::process::Command;

use util::{envelope, sandbox_available, step, Fixture, Run};

/// `hm ARGS` in `project` as the unprivileged user (when root) or as
/// ourselves (already unprivileged), with the fixture's cache.
fn run_unprivileged(fx: &Fixture, project: &std::path::Path, args: &[&str]) -> Run {
    let mut command = util::hm_as_nobody(fx);
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
            "id -u; stat -c %u src.txt; chown 1 src.txt 2>/dev/null; mkdir -p out && cp src.txt out/ && echo built > out/artifact",
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
    assert_eq!(
        run.logs("build"),
        ["0", "0"],
        "the caller is root inside, and owns the source"
    );
    // `touch`'s complaint goes to stderr, which may arrive before or after.
    assert_eq!(run.stdout("test"), ["built", "source", "etc-read-only"]);
    assert_eq!(run.logs("other"), ["source"]);
    // The root step booted on a copy of the source the caller made, which
    // steps saw as root's, and which a step's `chown` could not change.
    let copies: Vec<_> = std::fs::read_dir(fx.cache().join("sources"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = copies[0].path().join("tree/workspace/src.txt");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "source\n");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(fx.cache()).unwrap().uid();
    assert_eq!(std::fs::metadata(&copy).unwrap().uid(), owner);
    fx.assert_clean();
    if util::is_root() {
        assert!(!std::path::Path::new("/etc/hm-rootless").exists());
    }
}

/// An unprivileged import of a root filesystem holding a file only root may
/// read names that file and says how to import it (it named the directory
/// alone: `cannot copy DIR`).
#[test]
fn an_unprivileged_import_names_the_file_it_cannot_read() {
    if !util::root_available("making a file an unprivileged import cannot read") {
        return;
    }
    let fx = Fixture::new();
    let outside = tempfile::Builder::new().prefix("hm-test-rootfs-").tempdir().unwrap();
    let rootfs = outside.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(rootfs.join("etc/shadow"), "root:*:19000::::::\n").unwrap();
    for (path, mode) in [(outside.path(), 0o755), (&rootfs.join("etc/shadow"), 0o640)] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let rootfs_arg = rootfs.to_str().unwrap();
    let run = run_unprivileged(&fx, &fx.project(), &["image", "import", "unreadable", rootfs_arg]);
    assert_eq!(run.code, 1, "{}", run.dump());
    let expected = format!(
        "cannot read `{rootfs_arg}/etc/shadow`: permission denied; import as root, or from a tarball made as root (`sudo tar -C {rootfs_arg} -c . > rootfs.tar`)"
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(!run.stderr.contains("cannot copy"), "{}", run.stderr);
    fx.assert_clean();
}
