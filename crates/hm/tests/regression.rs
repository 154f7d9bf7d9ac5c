//! Regression tests, each named after the bug it pins down.

mod util;

use std::path::Path;

use util::{envelope, sandbox_available, step, Fixture};

/// A host directory the steps must never reach.
fn host_dir(fx: &Fixture) -> std::path::PathBuf {
    let dir = fx.dir.path().join("host-only");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "host\n").unwrap();
    dir
}

#[test]
fn sync_followed_a_planted_link_out_of_the_sandbox() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    let outside = host_dir(&fx);
    fx.write("src/a.txt", "source\n");
    let plant = format!(
        "rm -rf /workspace/src && ln -s {} /workspace/src; echo started; sleep 2",
        outside.display()
    );
    let steps = [
        step("plant", &plant),
        step("child", "test -d src && test ! -L src && cat src/new.txt"),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("escape", &steps, &[("plant", "child", "builds_in")], None).to_string(),
    );
    let run = fx.run_json_when(&[], "started", || {
        fx.write("src/new.txt", "new\n");
        std::fs::remove_file(fx.project().join("src/a.txt")).unwrap();
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.logs("child"),
        ["new"],
        "the source directory comes back as a directory"
    );
    assert!(!outside.join("new.txt").exists(), "the sync wrote to the host");
    assert!(outside.join("a.txt").exists(), "the sync deleted a host file");
    fx.assert_clean();
}

#[test]
fn sync_failed_when_a_step_removed_a_source_directory() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new();
    fx.write("src/keep.txt", "keep\n");
    fx.write("lib/x", "x\n");
    let steps = [
        step(
            "wipe",
            "rm -rf /workspace/src; rm -rf /workspace/lib && echo file > /workspace/lib; echo started; sleep 2",
        ),
        step(
            "child",
            "cat src/new.txt lib/y; test ! -e src/keep.txt && echo keep-stays-deleted",
        ),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("wipe", &steps, &[("wipe", "child", "builds_in")], None).to_string(),
    );
    let run = fx.run_json_when(&[], "started", || {
        fx.write("src/new.txt", "new\n");
        fx.write("lib/y", "y\n");
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("child"), ["new", "y", "keep-stays-deleted"]);
}

#[test]
fn resolv_conf_link_led_out_of_the_root() {
    if !sandbox_available() {
        return;
    }
    // An image without /etc/resolv.conf, where a step can plant the link.
    let fx = Fixture::new();
    let outside = host_dir(&fx);
    let rootfs = fx.dir.path().join("rootfs");
    util::tiny_rootfs(&rootfs, &["/bin/sh", "/bin/ln", "/bin/mkdir"]);
    let import = fx.hm(&["image", "import", "tiny", rootfs.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let target = format!("/run/../../../../../../../..{}/pwned", outside.display());
    let steps = [
        step("plant", &format!("mkdir -p /etc && ln -s {target} /etc/resolv.conf")).image(Some("tiny")),
        step("child", "echo ran"),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("resolv", &steps, &[("plant", "child", "builds_in")], None).to_string(),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("child"), ["ran"]);
    assert!(!outside.join("pwned").exists(), "a file was created on the host");
}

#[test]
fn steps_could_make_device_nodes() {
    if !sandbox_available() {
        return;
    }
    let steps = [step(
        "mknod",
        "mknod /workspace/kmsg c 1 11 2>/dev/null && echo made || echo refused; \
         mknod /tmp/null2 c 1 3 2>/dev/null && echo made || echo refused; \
         echo ok > /dev/null && echo dev-null-works",
    )];
    let fx = Fixture::with(&envelope("dev", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("mknod"), ["refused", "refused", "dev-null-works"]);
}

#[test]
fn forking_from_a_snapshot_to_flatten_raced() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("a", "echo a > /workspace/a"),
        step("b", "echo b > /workspace/b"),
        step("c", "cat /workspace/a /workspace/b"),
        step("d", "cat /workspace/a /workspace/b"),
    ];
    let edges = [
        ("a", "b", "builds_in"),
        ("b", "c", "builds_in"),
        ("b", "d", "builds_in"),
    ];
    let fx = Fixture::with(&envelope("race", &steps, &edges, None));
    for _ in 0..3 {
        let output = fx
            .command(&["run", "--format", "json", "-j", "2"])
            .env("HM_SANDBOX_MAX_LAYERS", "1")
            .output()
            .unwrap();
        let run = util::Run::from(output);
        assert_eq!(run.code, 0, "{}", run.dump());
        assert_eq!(run.logs("c"), ["a", "b"]);
        assert_eq!(run.logs("d"), ["a", "b"]);
    }
    fx.assert_clean();
}

#[test]
fn flattening_read_only_directories_failed_unprivileged() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step(
            "a",
            "mkdir -p out/ro && echo 1 > out/ro/f && chmod 555 out/ro && chmod 000 out",
        ),
        step("b", "chmod 755 out && echo 2 > out/ro/g && chmod 000 out"),
        step("c", "chmod 755 out && cat out/ro/f out/ro/g"),
    ];
    let fx = Fixture::with(&envelope(
        "ro",
        &steps,
        &[("a", "b", "builds_in"), ("b", "c", "builds_in")],
        None,
    ));
    let run = if util::is_root() {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(fx.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let output = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                util::hm_bin(),
                "run",
                "--format",
                "json",
            ])
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", fx.cache())
            .env("HOME", fx.dir.path())
            .env("HM_SANDBOX_MAX_LAYERS", "1")
            .output()
            .unwrap();
        util::Run::from(output)
    } else {
        util::Run::from(
            fx.command(&["run", "--format", "json"])
                .env("HM_SANDBOX_MAX_LAYERS", "1")
                .output()
                .unwrap(),
        )
    };
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("c"), ["1", "2"]);
    fx.assert_clean();
}

#[test]
fn a_huge_pipeline_timeout_panicked() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::with(&envelope("huge", &[step("a", "true")], &[], Some(u64::MAX)));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(!run.stderr.contains("panicked"));
    assert!(Path::new(&fx.cache()).exists());
}

/// With Docker running beside `hm`, container roots are mounted and
/// unmounted on the host all the time; a step booting after one went away
/// failed to bind it into the `host` image.
#[test]
fn a_host_mount_that_went_away_broke_the_host_image() {
    if !sandbox_available() {
        return;
    }
    if !util::root_available("mounting a tmpfs on the host") {
        return;
    }
    let fx = Fixture::new();
    // Outside /tmp, which steps never take from the host.
    let mount_point = std::path::PathBuf::from(format!("/var/tmp/hm-transient-mount-{}", std::process::id()));
    std::fs::create_dir_all(&mount_point).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "hm-test", mount_point.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success());
    let steps = [step("first", "echo started; sleep 1"), step("second", "echo booted")];
    fx.write(
        ".hm/pipeline.json",
        &envelope("transient", &steps, &[("first", "second", "depends_on")], None).to_string(),
    );
    // The host's mounts are listed when `first` boots; the tmpfs is gone
    // by the time `second` does.
    let run = fx.run_json_when(&[], "started", || {
        let unmounted = std::process::Command::new("umount").arg(&mount_point).status().unwrap();
        assert!(unmounted.success());
        std::fs::remove_dir(&mount_point).unwrap();
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("second"), ["booted"]);
    fx.assert_clean();
}

#[test]
fn stderr_written_after_stdout_came_first() {
    if !sandbox_available() {
        return;
    }
    // Two readers raced each other: `oops` could come before the line the
    // step wrote first. Several steps at once, so that the readers are
    // often late and both pipes have output waiting.
    let steps: Vec<_> = (0..8)
        .map(|i| step(&format!("s{i}"), "echo about to fail; echo oops >&2; exit 3"))
        .collect();
    let fx = Fixture::with(&envelope("order", &steps, &[], None));
    let run = fx.run_json(&["-k", "-j", "8"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    for i in 0..8 {
        assert_eq!(run.logs(&format!("s{i}")), ["about to fail", "oops"], "{}", run.dump());
    }
}
