//! Run history: `hm runs` lists past runs, `hm logs` prints a step's whole
//! output byte for byte, and the history keeps within its bounds.

mod util;

use serde_json::Value;
use util::{envelope, sandbox_available, step, Fixture};

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn runs_and_their_logs_are_kept() {
    if !sandbox_available() {
        return;
    }
    let steps = [
        step("binary", r"printf 'a\000b\377\r\nline2'"),
        step("bad", "echo about to fail; echo oops >&2; exit 3"),
    ];
    let fx = Fixture::with(&envelope("ci", &steps, &[], None));
    fx.write(".hm/config.toml", "[history]\nruns = 2\n");
    let first = fx.run_json(&["-k"]);
    assert_eq!(first.code, 1, "{}", first.dump());

    let runs = json(&fx.hm(&["runs", "--format", "json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["pipeline"], "ci");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["exit_code"], 1);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let table = String::from_utf8_lossy(&fx.hm(&["runs"]).stdout).into_owned();
    assert!(
        table.starts_with("RUN ") && table.contains(&id) && table.contains("failed"),
        "{table}"
    );

    // Without arguments: the last run's failed step, both streams.
    let failed = fx.hm(&["logs"]);
    assert!(failed.status.success(), "{}", String::from_utf8_lossy(&failed.stderr));
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(text.contains("about to fail\n") && text.contains("oops\n"), "{text:?}");
    // A step by name, its bytes exactly as written.
    let binary = fx.hm(&["logs", &id, "binary"]);
    assert_eq!(binary.stdout, b"a\x00b\xff\r\nline2");
    assert_eq!(
        fx.hm(&["logs", "binary"]).stdout,
        binary.stdout,
        "the last run by default"
    );
    let as_json = json(&fx.hm(&["logs", &id[..4], "bad", "--format", "json"]));
    assert_eq!(as_json["status"], "failed");

    let unknown = fx.hm(&["logs", &id, "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no step `nope`"));

    // At most two runs are kept.
    for _ in 0..2 {
        fx.run_json(&["-k"]);
    }
    let runs = json(&fx.hm(&["runs", "--format", "json"]));
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert!(
        runs.as_array().unwrap().iter().all(|r| r["id"] != id.as_str()),
        "the oldest went"
    );
}
