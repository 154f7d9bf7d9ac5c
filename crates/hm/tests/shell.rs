//! `hm shell` and `hm run --shell-on-failure`, driven through a
//! pseudo-terminal as a person would: what the shell sees (the step's
//! files, its environment, the terminal), what Ctrl-C and a resize do, and
//! that nothing done in the shell is kept. Typed commands print markers
//! computed by the shell (`$((1+1))`), so that what is waited for is never
//! the echo of what was typed.

mod util;

use std::time::Duration;

use util::pty::Pty;
use util::{envelope, step, Backend, Fixture};

/// How long one thing a shell is asked may take (a docker exec, a cold
/// sandbox).
const SHORT: Duration = Duration::from_secs(60);

/// `base` (cached) → `build` (cached, with `VAR`) → `bad` (fails after
/// writing).
fn fixture(backend: Backend) -> Fixture {
    let steps = [
        step("base", "echo base > /root/base-file; echo parent > parent.txt")
            .cache(serde_json::json!({"policy": "forever"})),
        step("build", "echo built > built.txt; echo $VAR > /root/var")
            .cache(serde_json::json!({"policy": "forever"}))
            .env("VAR", "hello"),
        step("bad", "echo partial > partial.txt; exit 3"),
    ];
    let edges = [("base", "build", "builds_in"), ("build", "bad", "builds_in")];
    let fx = Fixture::with_on(backend, &envelope("shell", &steps, &edges, None));
    fx.write("src.txt", "source\n");
    fx
}

/// `hm ARGS` on a 24×80 pseudo-terminal whose type is `vt100`.
fn spawn(fx: &Fixture, args: &[&str]) -> Pty {
    let mut command = fx.command(args);
    command.env("TERM", "vt100");
    Pty::spawn(command, 24, 80)
}

/// Types `line` and a return, then waits for `marker`.
fn ask(pty: &Pty, line: &str, marker: &str) {
    pty.write(format!("{line}\r").as_bytes());
    if let Err(output) = pty.wait_for(marker, SHORT) {
        panic!("after `{line}`: {output}");
    }
}

fn wait_for(pty: &Pty, needle: &str) {
    if let Err(output) = pty.wait_for(needle, SHORT) {
        panic!("{output}");
    }
}

/// Asserts that the terminal is as a shell leaves it to a program:
/// echoing, by lines, keys sending signals (the docker backend made it
/// raw while its shell ran).
fn assert_cooked(modes: &nix::sys::termios::Termios) {
    use nix::sys::termios::LocalFlags;
    let wanted = LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG;
    assert!(modes.local_flags.contains(wanted), "{:?}", modes.local_flags);
}

/// The cache entries of the fixture, `(step, key)`, as `hm cache ls`
/// lists them.
fn entries(fx: &Fixture) -> Vec<(String, String)> {
    let out = fx.hm(&["cache", "ls", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut entries: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    entries.sort();
    entries
}

/// `hm shell build`: the step's files, its parent's, its environment and
/// the terminal's type and size are there; Ctrl-C reaches what the shell
/// runs, not `hm`; the shell's exit status is `hm`'s. A second `hm shell`
/// (the step a cache hit) sees nothing of what the first did, and nothing
/// was stored.
fn a_shell_after_a_step_has_its_state_and_keeps_nothing(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = fixture(backend);
    let pty = spawn(&fx, &["shell", "build"]);
    wait_for(&pty, "hm: shell in `build` after it passed");
    ask(
        &pty,
        r#"test -f built.txt && test -f parent.txt && test -f src.txt && test -f /root/base-file && echo "files-$((1+1))""#,
        "files-2",
    );
    ask(
        &pty,
        r#"echo "[$VAR] [$TERM] [$(pwd)]""#,
        "[hello] [vt100] [/workspace]",
    );
    // A program that looks its terminal up by name finds one.
    ask(&pty, r#"echo "tty-$(tty)""#, "tty-/dev/");
    ask(&pty, r#"echo "size-$(stty size | tr ' ' x)""#, "size-24x80");
    pty.resize(30, 100);
    // The shell's terminal follows (docker: after the resize reached the
    // daemon).
    ask(&pty, r#"sleep 1; echo "size-$(stty size | tr ' ' x)""#, "size-30x100");
    // Ctrl-C stops what the shell runs, and only that.
    pty.write(b"sleep 30\r");
    std::thread::sleep(Duration::from_millis(500));
    pty.write(b"\x03");
    ask(&pty, r#"echo "alive-$((2+1))""#, "alive-3");
    ask(
        &pty,
        r#"touch /root/shell-was-here /workspace/shell-was-here && echo "touched-$((3+1))""#,
        "touched-4",
    );
    pty.write(b"exit 7\r");
    wait_for(&pty, "hm: left the shell in `build` (exit 7)");
    // Said once the terminal is `hm`'s again.
    let modes = pty.modes();
    let text = pty.text();
    assert_eq!(pty.wait(SHORT).code(), Some(7), "{text}");
    assert_cooked(&modes);
    assert!(text.contains("nothing you do here is kept"), "{text}");
    assert!(!text.contains("interrupted"), "hm saw no interrupt: {text}");
    fx.assert_clean();
    let stored = entries(&fx);
    assert_eq!(
        stored.len(),
        2,
        "the two cached steps, nothing of the shell: {stored:#?}"
    );

    let pty = spawn(&fx, &["shell", "build"]);
    wait_for(&pty, "hm: `build` cached");
    wait_for(&pty, "hm: shell in `build` after it (a cache hit)");
    ask(
        &pty,
        r#"echo "left-$(ls /root/shell-was-here /workspace/shell-was-here 2>/dev/null | wc -l | tr -d ' ')-$(cat built.txt /root/var | tr '\n' -)""#,
        "left-0-built-hello-",
    );
    pty.write(b"exit\r");
    wait_for(&pty, "hm: left the shell in `build` (exit 0)");
    assert_eq!(pty.wait(SHORT).code(), Some(0));
    fx.assert_clean();
    assert_eq!(entries(&fx), stored, "the cache is as it was");
}

/// `hm shell --before build`: the parent's state with the workspace
/// synced, the step's environment, and the step not run.
fn a_shell_before_a_step_has_its_parents_state(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = fixture(backend);
    let pty = spawn(&fx, &["shell", "--before", "build"]);
    wait_for(&pty, "hm: `build` skipped: a shell opens in the state before it");
    wait_for(&pty, "hm: shell in `build` before it (it did not run)");
    ask(
        &pty,
        r#"test -f parent.txt && test -f src.txt && test ! -e built.txt && test ! -e /root/var && echo "before-$((1+1))-$VAR""#,
        "before-2-hello",
    );
    pty.write(b"exit 3\r");
    wait_for(&pty, "hm: left the shell in `build` (exit 3)");
    assert_eq!(pty.wait(SHORT).code(), Some(3));
    fx.assert_clean();
    let steps: Vec<String> = entries(&fx).into_iter().map(|(step, _)| step).collect();
    assert_eq!(steps, ["base"], "`build` did not run, so it was not stored");
}

/// `hm run --shell-on-failure`: the failed step's own state, what it wrote
/// before failing included; `hm run`'s exit code stays the build's.
fn a_failed_step_opens_a_shell_in_its_state(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = fixture(backend);
    let pty = spawn(&fx, &["run", "--logs", "--shell-on-failure"]);
    wait_for(&pty, "hm: shell in `bad` after it failed (exit code 3)");
    ask(
        &pty,
        r#"echo "[$(cat partial.txt)] [$(cat built.txt)] [$((4+1))]""#,
        "[partial] [built] [5]",
    );
    pty.write(b"exit 0\r");
    wait_for(&pty, "hm: left the shell in `bad` (exit 0)");
    assert_eq!(pty.wait(SHORT).code(), Some(1), "the build failed");
    fx.assert_clean();
}

/// A SIGTERM to `hm` while its shell is open closes the shell, gives the
/// terminal back and cleans up (exit 130); a Ctrl-C never reached it.
fn a_sigterm_closes_the_shell_and_cleans_up(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = fixture(backend);
    let pty = spawn(&fx, &["shell", "build"]);
    wait_for(&pty, "hm: shell in `build`");
    ask(&pty, r#"sleep 300 & echo "started-$((1+1))""#, "started-2");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pty.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for(&pty, "hm: terminated; the shell in `build` is closed");
    // As `hm` leaves the terminal when it has ended (the message may come
    // before the modes are put back): it is a zombie, or gone.
    let stat = format!("/proc/{}/stat", pty.pid());
    let ended = || {
        std::fs::read_to_string(&stat)
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    };
    let deadline = std::time::Instant::now() + SHORT;
    while !ended() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let modes = pty.modes();
    let text = pty.text();
    assert_eq!(pty.wait(SHORT).code(), Some(130), "{text}");
    assert!(!text.contains("stopping every step"), "{text}");
    assert_cooked(&modes);
    fx.assert_clean();
}

contract!(
    a_shell_after_a_step_has_its_state_and_keeps_nothing,
    a_shell_before_a_step_has_its_parents_state,
    a_failed_step_opens_a_shell_in_its_state,
    a_sigterm_closes_the_shell_and_cleans_up,
);

#[test]
fn hm_shell_without_a_terminal_is_exit_2() {
    let fx = fixture(Backend::Sandbox);
    let out = fx.hm(&["shell", "build"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hm shell needs a terminal"), "{stderr}");
    fx.assert_clean();
}

#[test]
fn shell_on_failure_without_a_terminal_is_said_and_the_run_goes_on() {
    if !util::sandbox_available() {
        return;
    }
    let fx = fixture(Backend::Sandbox);
    let run = fx.run_json(&["--shell-on-failure"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("bad"), "failed");
    assert!(
        run.stderr.contains("--shell-on-failure needs a terminal"),
        "{}",
        run.stderr
    );
    fx.assert_clean();
}

#[test]
fn an_unknown_step_is_named_with_a_did_you_mean() {
    if !util::sandbox_available() {
        return;
    }
    let fx = fixture(Backend::Sandbox);
    let pty = spawn(&fx, &["shell", "biuld"]);
    wait_for(&pty, "has no step `biuld`; did you mean `build`?");
    assert_eq!(pty.wait(SHORT).code(), Some(2));
}

/// As an unprivileged user (the sandbox maps them to root in a user
/// namespace): the same shell, the terminal theirs.
#[test]
fn a_shell_works_rootless() {
    if !util::sandbox_available() {
        return;
    }
    let fx = fixture(Backend::Sandbox);
    let mut command = util::hm_as_nobody(&fx);
    command
        .args(["shell", "build"])
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", fx.dir.path())
        .env("TERM", "vt100");
    let pty = Pty::spawn(command, 24, 80);
    wait_for(&pty, "hm: shell in `build` after it passed");
    ask(
        &pty,
        r#"test -f built.txt && test -f /root/base-file && echo "uid-$(id -u)-$VAR-$(tty)""#,
        "uid-0-hello-/dev/console",
    );
    pty.write(b"sleep 30\r");
    std::thread::sleep(Duration::from_millis(500));
    pty.write(b"\x03");
    ask(&pty, r#"touch /root/x; echo "alive-$((2+1))""#, "alive-3");
    pty.write(b"exit 4\r");
    wait_for(&pty, "hm: left the shell in `build` (exit 4)");
    assert_eq!(pty.wait(SHORT).code(), Some(4));
    fx.assert_clean();
}

/// An image without `bash` gets `sh`, interactive.
#[test]
fn an_image_without_bash_gets_sh() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [step("made", "echo made > /workspace/made").image(Some("tiny:1"))];
    let fx = Fixture::with(&envelope("tiny", &steps, &[], None));
    let rootfs = fx.dir.path().join("rootfs");
    util::tiny_rootfs(&rootfs, &["/bin/sh"]);
    let import = fx.hm(&["image", "import", "tiny:1", rootfs.to_str().unwrap()]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let pty = spawn(&fx, &["shell", "made"]);
    wait_for(&pty, "hm: shell in `made` after it passed (image `tiny:1`, sandbox)");
    ask(
        &pty,
        r#"read line < made; echo "[$0] [$line] [$((1+1))]""#,
        "[sh] [made] [2]",
    );
    pty.write(b"exit 5\r");
    wait_for(&pty, "hm: left the shell in `made` (exit 5)");
    assert_eq!(pty.wait(SHORT).code(), Some(5));
    fx.assert_clean();
}
