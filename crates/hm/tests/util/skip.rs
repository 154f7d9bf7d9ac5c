//! Skipped tests, said out loud. A test that cannot run here (no
//! namespaces, no Docker daemon, not root, ...) calls [`skip`] and returns:
//! outside CI that prints `SKIPPED <test>: <reason>` on the process's own
//! stderr, which libtest does not capture (it captures only the `print!`
//! family), and at the end of the test binary's run a count by reason; in
//! CI (`CI=true`), where nothing may be skipped, the test fails instead.
//! (`#[ignore]` cannot do this: it is fixed when the test is compiled, and
//! what this machine lacks is known only when the test runs.)
//!
//! Nothing here refers to the rest of `util`, so the tests of other crates
//! include this file with `#[path]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, Once, PoisonError};

/// The skipped tests of this binary, by name, with the first reason each
/// gave.
static SKIPPED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Records the running test as skipped (wholly, or the part the reason
/// names) because of `reason`, and says so; in CI panics instead. The
/// caller then returns from the test.
#[track_caller]
pub fn skip(reason: &str) {
    let reason = reason.trim();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true, so no test may be skipped, but {reason}");
    }
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("<unnamed>").to_owned();
    // One write, so that the line is not cut by libtest's own.
    let _ = std::io::stderr().write_all(format!("SKIPPED {test}: {reason}\n").as_bytes());
    SKIPPED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(test)
        .or_insert_with(|| reason.to_owned());
    static SUMMARY: Once = Once::new();
    SUMMARY.call_once(|| {
        // SAFETY: `summary` is a plain function that cannot unwind, and
        // registering it has no other effect.
        unsafe { libc::atexit(summary) };
    });
}

/// Prints, as the test binary exits (after libtest's own summary), how
/// many tests were skipped and why.
extern "C" fn summary() {
    let skipped = SKIPPED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in skipped.values() {
        *reasons.entry(reason).or_default() += 1;
    }
    let tests = if skipped.len() == 1 { "test" } else { "tests" };
    let mut text = format!("{} {tests} skipped in this binary:\n", skipped.len());
    for (reason, count) in reasons {
        text.push_str(&format!("  {count} × {reason}\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}
