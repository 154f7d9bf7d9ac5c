//! What `hm` writes: a step's output of any size with flat memory, and a
//! stdout that is closed or full.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use serde_json::{json, Value};
use util::{envelope, step, Backend, Fixture};

contract!(
    carriage_returns_and_escapes_keep_each_line_behind_its_prefix,
    a_huge_line_arrives_split_marked_and_whole,
    a_closed_stdout_ends_every_command_quietly,
    a_full_stdout_is_one_error_and_exit_1,
);

/// `printf "progress 10\rprogress 100\n"` showed as `progress 100s 10`
/// (the terminal redrew the line over the prefix) and apt's progress lines
/// lost their prefix: the logs view shows what a terminal would show of a
/// line, after its prefix, without colour when not on a terminal, and
/// `--format json` keeps the bytes.
fn carriage_returns_and_escapes_keep_each_line_behind_its_prefix(backend: Backend) {
    if !backend.available() {
        return;
    }
    let cmd = r"printf 'progress 10\rprogress 100\n\033[31mred\033[0m\n\033[2Kclear\r\n'";
    let fx = Fixture::with_on(backend, &envelope("cr", &[step("bar", cmd)], &[], None));
    let human = fx.hm(&["run", "--format", "human"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("bar ")).collect();
    for wanted in ["bar | progress 100", "bar | red", "bar | clear"] {
        assert!(lines.contains(&wanted), "`{wanted}` in {lines:?}");
    }
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    let json = fx.hm(&["run", "--format", "json"]);
    let text = String::from_utf8_lossy(&json.stdout);
    assert!(text.contains(r#""line":"progress 10\rprogress 100""#), "{text}");
}

/// The longest piece of a line in a `step_log` event.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// `hm`'s peak resident memory so far, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One 600 MB output line took 1.18 GB of `hm`'s memory (the whole line was
/// held, then copied): a line without end must arrive in pieces, each
/// marked as continued but the last, complete, with memory staying flat.
fn a_huge_line_arrives_split_marked_and_whole(backend: Backend) {
    if !backend.available() {
        return;
    }
    const TOTAL: usize = 200_000_000;
    let cmd = format!("head -c {TOTAL} /dev/zero | tr '\\0' a");
    let fx = Fixture::with_on(backend, &envelope("huge", &[step("huge", &cmd)], &[], None));
    let mut child = fx
        .command(&["run", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (mut pieces, mut total, mut peak) = (Vec::new(), 0usize, 0u64);
    let mut others = Vec::new();
    for (n, line) in BufReader::new(child.stdout.take().unwrap()).lines().enumerate() {
        let line = line.unwrap();
        if n % 64 == 0 {
            peak = peak.max(peak_rss(pid).unwrap_or(0));
        }
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["kind"] != "step_log" {
            others.push(event);
            continue;
        }
        let text = event["line"].as_str().unwrap();
        assert_eq!(event["stream"], "stdout");
        assert!(text.bytes().all(|b| b == b'a'), "the line is intact");
        total += text.len();
        pieces.push((text.len(), event["partial"] == json!(true)));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{others:#?}");
    assert_eq!(total, TOTAL, "every byte arrives");
    assert_eq!(pieces.len(), TOTAL.div_ceil(MAX_LINE_BYTES));
    let (last, rest) = pieces.split_last().unwrap();
    assert!(
        rest.iter().all(|&(len, partial)| len == MAX_LINE_BYTES && partial),
        "every piece but the last is full and marked partial"
    );
    assert_eq!(*last, (TOTAL % MAX_LINE_BYTES, false), "the last piece ends the line");
    assert!(
        peak > 0 && peak < 256 * 1024 * 1024,
        "hm's memory stays flat: peak {} MiB for a {} MB line",
        peak >> 20,
        TOTAL / 1_000_000
    );
    fx.assert_clean();
}

/// A fixture whose pipeline prints a lot and stores a cache entry (so a
/// finished build can be told from one that stopped early).
fn chatty(backend: Backend) -> Fixture {
    let steps = [step("chatty", "seq 1 20000; seq 1 20000 >&2").cache(json!({"policy": "forever"}))];
    Fixture::with_on(backend, &envelope("chatty", &steps, &[], None))
}

/// `hm ARGS` with stdout a pipe nobody reads (closed before `hm` writes).
fn into_closed_pipe(fx: &Fixture, args: &[&str]) -> Output {
    let mut child = fx
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// `hm ARGS` with stdout `/dev/full`.
fn into_full_device(fx: &Fixture, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    fx.command(args)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn entries(fx: &Fixture) -> usize {
    let out = fx.hm(&["cache", "ls", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len()
}

/// `hm cache ls | head -1` panicked (`failed printing to stdout: Broken
/// pipe`, exit 101): every command ends quietly with exit 0 when nobody
/// reads its output, as `ls | head` does, and a run still finishes its
/// build and cleans up.
fn a_closed_stdout_ends_every_command_quietly(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = chatty(backend);
    for args in [
        &["run", "--format", "json"][..],
        &["run"],
        &["cache", "ls"],
        &["cache", "ls", "--format", "json"],
        &["cache", "du"],
        &["pipelines"],
        &["render", "chatty"],
        &["image", "ls"],
        &["version"],
    ] {
        let out = into_closed_pipe(&fx, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: nothing said: {stderr}");
        fx.assert_clean();
    }
    assert_eq!(entries(&fx), 1, "the run finished its build and stored its entry");
}

/// Writing to `/dev/full` panicked too: it is one error line and exit 1,
/// and a run still finishes its build and cleans up.
fn a_full_stdout_is_one_error_and_exit_1(backend: Backend) {
    if !backend.available() {
        return;
    }
    let fx = chatty(backend);
    for args in [
        &["run", "--format", "json"][..],
        &["run"],
        &["cache", "ls"],
        &["cache", "du", "--format", "json"],
        &["pipelines"],
        &["render", "chatty"],
        &["image", "ls"],
        &["version"],
    ] {
        let out = into_full_device(&fx, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            "error: cannot write to standard output: No space left on device (os error 28)",
            "{args:?}"
        );
        fx.assert_clean();
    }
    assert_eq!(entries(&fx), 1, "the run finished its build and stored its entry");
}
