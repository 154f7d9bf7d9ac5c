//! Local images: import a root filesystem, run steps on it, list, remove.

mod util;

use util::{envelope, sandbox_available, step, tiny_rootfs, Fixture};

#[test]
fn import_run_list_remove() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step(
            "root",
            "echo $PATH; echo from-image > /workspace/made; test ! -e /usr/bin/cargo && echo no-host-tools",
        )
        .image(Some("tiny:1")),
        step(
            "child",
            "read line < /workspace/made; echo $line; read src < /workspace/src.txt; echo $src",
        ),
    ];
    let fx = Fixture::with(&envelope("img", &steps, &[("root", "child", "builds_in")], None));
    fx.write("src.txt", "source\n");
    let rootfs = fx.dir.path().join("rootfs");
    // No /proc, /dev or /tmp in it: the sandbox adds them.
    tiny_rootfs(&rootfs, &["/bin/sh"]);
    let tarball = fx.dir.path().join("rootfs.tar");
    util::tar_dir(&rootfs, &tarball);

    let import = fx.hm(&["image", "import", "tiny:1", tarball.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let ls = fx.hm(&["image", "ls"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listing.lines().nth(1).is_some_and(|l| l.starts_with("tiny:1 ")),
        "{listing}"
    );
    let json: serde_json::Value = serde_json::from_slice(&fx.hm(&["image", "ls", "--format", "json"]).stdout).unwrap();
    assert_eq!(json[0]["name"], "tiny:1");

    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.logs("root"),
        [
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "no-host-tools"
        ]
    );
    assert_eq!(run.logs("child"), ["from-image", "source"]);
    fx.assert_clean();

    // The same tree imported from a directory has the same identity.
    let again = fx.hm(&["image", "import", "tiny:dir", rootfs.to_str().unwrap()]);
    assert!(again.status.success());
    let json: serde_json::Value = serde_json::from_slice(&fx.hm(&["image", "ls", "--format", "json"]).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    assert!(fx.hm(&["image", "rm", "tiny:1"]).status.success());
    let gone = fx.hm(&["image", "rm", "tiny:1"]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("image `tiny:1` not found"));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 4, "{}", run.dump());
}

#[test]
fn bad_imports() {
    let fx = Fixture::new();
    let out = fx.hm(&["image", "import", "host", "/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid image name `host`"));
    let missing = fx.dir.path().join("missing");
    let out = fx.hm(&["image", "import", "x", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let not_tar = fx.dir.path().join("not.tar");
    std::fs::write(&not_tar, "this is not an archive").unwrap();
    let out = fx.hm(&["image", "import", "x", not_tar.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a directory nor a tar archive"));
    assert!(fx.hm(&["image", "ls", "--format", "json"]).stdout.starts_with(b"[]"));
}
