//! File names are bytes: a name that is not UTF-8 is scanned, hashed,
//! stored, synced and shown escaped, on every backend.

mod util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use serde_json::json;
use util::{envelope, step, Backend, Fixture, Run};

contract!(a_name_that_is_not_utf8_is_synced_hashed_and_shown_escaped);

/// The bytes `ls data | od` shows for the two odd names, then for one.
const BOTH: &str = "66 fe 0a 66 ff 0a";
const ONLY_FE: &str = "66 fe 0a";

fn odd(fx: &Fixture, name: &[u8], text: &str) {
    let path = fx.project().join("data").join(OsStr::from_bytes(name));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// One line of hex bytes for `ls`'s output in `data/`.
const LISTING: &str = "ls data | od -An -tx1 | tr -s ' \\n' ' ' | sed 's/^ //; s/ $//'; echo";

/// A project with `data/f\xff` and `data/f\xfe`: `r` (cached forever) and
/// `p` (cached on `data`, on `r`) list them; `p` also reads `f\xff` back.
fn fixture(backend: Backend) -> Fixture {
    let steps = [
        step("r", LISTING).cache(json!({"policy": "forever", "env_keys": []})),
        step(
            "p",
            &format!("{LISTING}; cat \"data/$(printf 'f\\377')\" 2>/dev/null || echo no-ff"),
        )
        .cache(json!({"policy": "on_change", "paths": ["data"]})),
    ];
    let fx = Fixture::with_on(backend, &envelope("odd", &steps, &[("r", "p", "builds_in")], None));
    odd(&fx, b"f\xff", "one\n");
    odd(&fx, b"f\xfe", "two\n");
    fx
}

fn scenario(fx: &Fixture, run: &dyn Fn(&Fixture) -> Run) {
    // The helper refused the name (`path contains invalid UTF-8
    // characters`), blaming the binary: every step failed.
    let first = run(fx);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.stdout("r"), [BOTH]);
    assert_eq!(first.stdout("p"), [BOTH, "one"]);

    let second = run(fx);
    assert_eq!(second.code, 0, "{}", second.dump());
    assert!(second.executed().is_empty(), "{}", second.dump());

    // Both names were hashed under one lossy name (`data/f\u{FFFD}`): a
    // change to one of them went unseen.
    odd(fx, b"f\xfe", "changed\n");
    let third = run(fx);
    assert_eq!(third.code, 0, "{}", third.dump());
    assert_eq!(third.executed(), ["p"], "{}", third.dump());
    assert_eq!(
        third.miss_reason("p").as_deref(),
        Some("files changed: data/f\\xfe"),
        "shown escaped"
    );

    // `r`'s stored manifest named the file lossily, so the sync for `p`
    // (booting from `r`'s stored snapshot) never deleted it.
    std::fs::remove_file(fx.project().join("data").join(OsStr::from_bytes(b"f\xff"))).unwrap();
    let fourth = run(fx);
    assert_eq!(fourth.code, 0, "{}", fourth.dump());
    assert_eq!(fourth.executed(), ["p"], "{}", fourth.dump());
    assert_eq!(fourth.miss_reason("p").as_deref(), Some("files changed: data/f\\xff"));
    assert_eq!(
        fourth.stdout("p"),
        [ONLY_FE, "no-ff"],
        "a deleted file never comes back"
    );
    fx.assert_clean();
}

fn a_name_that_is_not_utf8_is_synced_hashed_and_shown_escaped(backend: Backend) {
    if !backend.available() {
        return;
    }
    scenario(&fixture(backend), &|fx| fx.run_json(&[]));
}

/// The same as an unprivileged user: the names go to the helper of a user
/// namespace.
#[test]
fn a_name_that_is_not_utf8_is_synced_rootless() {
    if !util::sandbox_available() || !util::root_available("acting as nobody") {
        return;
    }
    let fx = fixture(Backend::Sandbox);
    let status = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(fx.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    scenario(&fx, &|fx| {
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", util::hm_bin()])
            .args(["run", "--format", "json"])
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", fx.cache())
            .env("HOME", fx.dir.path())
            .output()
            .unwrap();
        Run::from(output)
    });
}

/// A cache directory whose path holds a byte that is not UTF-8, a comma
/// and a colon: overlayfs options cut paths at `,` and `:` and must be
/// text, so every step failed (`view of /: ENOENT`) and the backend was
/// reported unavailable (exit 4). As root and unprivileged.
#[test]
fn a_cache_directory_with_any_bytes_in_its_path_works() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [
        step("a", "echo one > f").cache(json!({"policy": "forever", "env_keys": []})),
        step("b", "cat f"),
    ];
    let fx = Fixture::with(&envelope("odd", &steps, &[("a", "b", "builds_in")], None));
    let cache = fx.dir.path().join(OsStr::from_bytes(b"c\xff,x:y"));
    let run = |unprivileged: bool| {
        let mut command = match unprivileged {
            false => Command::new(util::hm_bin()),
            true => {
                let mut command = Command::new("setpriv");
                command.args(["--reuid=65534", "--regid=65534", "--clear-groups", util::hm_bin()]);
                command
            }
        };
        let output = command
            .args(["run", "--format", "json"])
            .current_dir(fx.project())
            .env("HM_CACHE_DIR", &cache)
            .env("HOME", fx.dir.path())
            .env_remove("HM_NETWORK")
            .output()
            .unwrap();
        Run::from(output)
    };
    let mut modes = vec![false];
    if util::is_root() {
        modes.push(true);
    }
    for unprivileged in modes {
        if unprivileged {
            let status = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(fx.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::remove_dir_all(&cache).unwrap();
        }
        let first = run(unprivileged);
        assert_eq!(first.code, 0, "unprivileged {unprivileged}: {}", first.dump());
        assert_eq!(first.stdout("b"), ["one"]);
        let second = run(unprivileged);
        assert_eq!(second.code, 0, "unprivileged {unprivileged}: {}", second.dump());
        assert_eq!(second.executed(), ["b"], "a hit boots from the stored layer");
        util::assert_nothing_left(&cache);
    }
}
