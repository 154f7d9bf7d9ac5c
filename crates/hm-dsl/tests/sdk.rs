//! The Python SDK's own test suite (pytest, in `sdk/python/tests`), run as
//! part of `cargo test` so that one command tests everything.

#[path = "../../hm/tests/util/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;

#[test]
fn python_sdk_suite_passes() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python");
    let probe = Command::new("python3").args(["-m", "pytest", "--version"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        skip::skip("pytest is not installed for python3 (`python3 -m pip install pytest`)");
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the SDK's pytest suite failed:\n{report}");
    println!("{report}");
}
