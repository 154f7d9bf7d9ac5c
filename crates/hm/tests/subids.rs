//! Rootless steps with subordinate ids (issue 12): a user with a range in
//! `/etc/subuid` and `/etc/subgid` gets it mapped into each step's user
//! namespace (ids 1 and up), so steps may switch users, as apt does; the
//! cache removes what such steps leave; a user without a range is told
//! once what to add, and steps run as before.
//!
//! The tests run as root and act as `nobody` (whose range `.ci/run` adds:
//! `nobody:200000:65536` in both files) and as a uid with no range.

mod util;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;
use util::{debian_rootfs, envelope, sandbox_available, skip, step, Fixture, Run};

/// `nobody`, which `.ci/run` gives a range.
const NOBODY: u32 = 65534;
/// A uid with no name and no range.
const NO_RANGE: u32 = 4242;

/// Whether `nobody` has subordinate ids and the tools to map them; where it
/// has not, the test is [`skip`]ped (a failure in CI).
fn nobody_has_a_range() -> bool {
    if !sandbox_available() || !util::root_available("acting as nobody") {
        return false;
    }
    let has = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nobody:") || l.starts_with(&format!("{NOBODY}:")))
    };
    let tool = |name: &str| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(name).exists())
    };
    let reason = match () {
        _ if !has("/etc/subuid") || !has("/etc/subgid") => {
            "nobody has no range in /etc/subuid and /etc/subgid (add `nobody:200000:65536` to both)"
        }
        _ if !tool("newuidmap") || !tool("newgidmap") => "newuidmap and newgidmap are missing (install uidmap)",
        _ => return true,
    };
    skip(&format!("subordinate ids cannot be tested here: {reason}"));
    false
}

/// Gives the fixture (project and cache) to `uid`, once, before its first
/// command (later, the cache holds what steps left as other ids).
fn give(fx: &Fixture, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(fx.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}

fn give_file(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// `hm ARGS` in the fixture's project as `uid`.
fn hm_as(uid: u32, fx: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups"])
        .arg(util::hm_bin())
        .args(args)
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", fx.dir.path())
        .env_remove("HM_PARALLELISM")
        .env_remove("HM_NETWORK")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn run_as(uid: u32, fx: &Fixture, env: &[(&str, &str)]) -> Run {
    Run::from(hm_as(uid, fx, &["run", "--format", "json"], env))
}

/// `hm cache clean --yes` as `uid` succeeds and leaves no stored layer, no
/// session, mount or process.
fn clean_as(uid: u32, fx: &Fixture) {
    let clean = hm_as(uid, fx, &["cache", "clean", "--yes"], &[]);
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "{stderr}");
    let layers: Vec<_> = std::fs::read_dir(fx.cache().join("layers"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(layers.is_empty(), "stored layers left behind: {layers:?}\n{stderr}");
    fx.assert_clean();
}

/// The entries below `dir` whose owner is `uid`.
fn owned_by(dir: &Path, uid: u32) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.uid() == uid {
                found.push(entry.path());
            }
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// The notes about subordinate ids: the one about limits, which a rootless
/// run on cgroup v1 prints too, is `tests/limits.rs`'s to check.
fn notes(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("note: ") && !l.contains("without memory, CPU and process limits"))
        .collect()
}

#[test]
fn a_rootless_step_switches_users_with_subordinate_ids() {
    if !nobody_has_a_range() {
        return;
    }
    let forever = json!({"policy": "forever"});
    let steps = [
        step(
            "switch",
            "tr -s ' ' < /proc/self/uid_map; \
             setpriv --reuid=42 --regid=42 --clear-groups id -u; \
             touch f && chown 42:42 f && stat -c %u f; \
             mkdir private && echo secret > private/file && chown -R 42:42 private && chmod 700 private",
        )
        .cache(forever.clone()),
        step(
            "child",
            "stat -c '%u %a' private; setpriv --reuid=42 --regid=42 --clear-groups cat private/file",
        )
        .cache(forever.clone()),
        // Three layers over the host: flattened (the limit is 1 below).
        step(
            "grandchild",
            "stat -c '%u %a' private f; rm -rf private && echo removed",
        )
        .cache(forever),
    ];
    let edges = [("switch", "child", "builds_in"), ("child", "grandchild", "builds_in")];
    let fx = Fixture::with(&envelope("subids", &steps, &edges, None));
    give(&fx, NOBODY);
    let run = run_as(NOBODY, &fx, &[("HM_SANDBOX_MAX_LAYERS", "1")]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.logs("switch"),
        [" 0 65534 1", " 1 200000 65536", "42", "42"],
        "root is the caller, ids from 1 up are nobody's range"
    );
    assert_eq!(run.logs("child"), ["42 700", "secret"], "a later step sees the owner");
    assert_eq!(
        run.logs("grandchild"),
        ["42 700", "42 644", "removed"],
        "flattening keeps owners"
    );
    assert!(notes(&run.stderr).is_empty(), "{}", run.stderr);
    fx.assert_clean();

    // The layers hold a 0700 directory of host uid 200041 (42 inside),
    // which nobody itself can neither enter nor remove.
    let private = owned_by(&fx.cache().join("layers"), 200_041);
    assert!(private.iter().any(|p| p.ends_with("workspace/private")), "{private:?}");
    clean_as(NOBODY, &fx);
}

/// A run killed while its step holds a directory of a subordinate id
/// leaves a session that no removal of nobody's own can remove; the next
/// run removes it.
#[test]
fn what_a_killed_rootless_run_left_is_removed_by_the_next() {
    if !nobody_has_a_range() {
        return;
    }
    let cmd = "mkdir private && touch private/file && chown -R 42:42 private && chmod 700 private; \
               echo ready; sleep 60";
    let fx = Fixture::with(&envelope("killed", &[step("hold", cmd)], &[], None));
    give(&fx, NOBODY);
    let mut hm = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(util::hm_bin())
        .args(["run", "--format", "json"])
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", fx.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(hm.stdout.take().unwrap()));
    let ready = lines
        .map_while(Result::ok)
        .any(|line| line.contains("\"line\":\"ready\""));
    assert!(ready, "the step never said it was ready");
    hm.kill().unwrap();
    hm.wait().unwrap();
    // The helper dies with hm, and the step with the helper.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !util::processes_with("sleep").is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left = owned_by(&fx.cache().join("runs"), 200_041);
    assert!(!left.is_empty(), "the killed run left nothing of uid 200041");

    fx.write(
        ".hm/pipeline.json",
        &serde_json::to_string(&envelope("next", &[step("next", "true")], &[], None)).unwrap(),
    );
    give_file(&fx.project().join(".hm/pipeline.json"), NOBODY);
    let run = run_as(NOBODY, &fx, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    fx.assert_clean();
}

/// Debian's apt downloads as `_apt` (issue 12: `E: setgroups 65534 failed
/// ... E: seteuid 42 failed ... E: Method http has died unexpectedly!`).
#[test]
fn apt_installs_a_package_in_a_rootless_step() {
    let Some(rootfs) = debian_rootfs() else { return };
    if !nobody_has_a_range() {
        return;
    }
    let fx = Fixture::with(&envelope(
        "apt",
        &[step(
            "apt",
            "apt-get update -qq && apt-get install -y -qq hello >/dev/null && hello",
        )
        .image(Some("bookworm"))
        .cache(json!({"policy": "forever"}))],
        &[],
        None,
    ));
    // As nobody, from a tarball made as root (the directory holds files
    // only root may read).
    let tarball = fx.dir.path().join("rootfs.tar");
    util::tar_dir(&rootfs, &tarball);
    give(&fx, NOBODY);
    let import = hm_as(
        NOBODY,
        &fx,
        &["image", "import", "bookworm", tarball.to_str().unwrap()],
        &[],
    );
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    std::fs::remove_file(&tarball).unwrap();

    let run = run_as(NOBODY, &fx, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.stdout("apt").last().map(String::as_str),
        Some("Hello, world!"),
        "{}",
        run.dump()
    );
    fx.assert_clean();
    clean_as(NOBODY, &fx);
}

#[test]
fn without_subordinate_ids_a_note_says_what_to_add() {
    if !nobody_has_a_range() {
        return;
    }
    let steps = [step(
        "single",
        "tr -s ' ' < /proc/self/uid_map; id -u; setpriv --reuid=42 id -u || echo cannot-switch",
    )];
    let fx = Fixture::with(&envelope("single", &steps, &[], None));
    give(&fx, NO_RANGE);
    let run = run_as(NO_RANGE, &fx, &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.stdout("single"),
        [" 0 4242 1", "0", "cannot-switch"],
        "single-id map, as before"
    );
    let notes = notes(&run.stderr);
    assert_eq!(notes.len(), 1, "one note per process: {}", run.stderr);
    let prefix = "note: no subordinate ids for user 4242 in /etc/subuid and /etc/subgid; steps that switch users \
                  (apt) will fail: add '4242:";
    assert!(notes[0].starts_with(prefix), "{}", notes[0]);
    assert!(notes[0].contains("' to both (usermod --add-subuids "), "{}", notes[0]);
    fx.assert_clean();
    clean_as(NO_RANGE, &fx);
}
