//! The edit–run loop on a real Rust crate with cache volumes (issue 19):
//! this workspace's `hm-ir`, fetched, built and tested in a chain of three
//! steps on the `host` image with cargo's registry and `target/` as
//! volumes, beside `cargo build` + `cargo test` run directly on a copy of
//! the same source. Each is run first, again with nothing changed, and
//! after a one-line edit of `hm-ir`, in one sitting. Prints a Markdown
//! table.
//!
//! `cargo bench -p hm --bench volumes` (needs namespaces and a `cargo` on
//! the host; the first `hm` run downloads the crates into its volume).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

/// The host's directory holding `cargo`.
fn cargo_dir() -> PathBuf {
    let out = Command::new("sh").args(["-c", "command -v cargo"]).output().unwrap();
    assert!(out.status.success(), "no cargo on the host");
    let cargo = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    cargo.parent().unwrap().to_owned()
}

/// This workspace's committed source, unpacked in `dir`.
fn workspace_copy(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let archive = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git -C '{}' archive HEAD | tar -x -C '{}'",
            repo.display(),
            dir.display()
        ))
        .status()
        .unwrap();
    assert!(archive.success());
}

/// The pipeline: `cargo fetch` (cached while `Cargo.lock` is unchanged),
/// then build, then test `hm-ir`, with the registry and `target/` as
/// volumes of the pipeline when `volumes`.
fn pipeline(cargo: &Path, volumes: bool) -> serde_json::Value {
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        cargo.display()
    );
    let env = json!({"PATH": path, "CARGO_TERM_COLOR": "never"});
    let node = |key: &str, cmd: &str, cache: Option<serde_json::Value>| {
        let mut step = json!({"key": key, "cmd": cmd, "image": "host"});
        if let Some(cache) = cache {
            step["cache"] = cache;
        }
        json!({"step": step, "env": env})
    };
    let nodes = [
        node(
            "fetch",
            "cargo fetch --locked",
            Some(json!({"policy": "on_change", "paths": ["Cargo.lock"]})),
        ),
        node("build", "cargo build -p hm-ir --locked", None),
        node("test", "cargo test -p hm-ir --locked", None),
    ];
    let mut definition = json!({
        "version": "0",
        "graph": {"nodes": nodes, "node_holes": [], "edge_property": "directed",
                  "edges": [[0, 1, "builds_in"], [1, 2, "builds_in"]]}});
    if volumes {
        definition["volumes"] = json!({"/root/.cargo/registry": "cargo-registry", "target": "cargo-target"});
    }
    json!({"schema_version": "1", "pipelines": [{"slug": "crate", "name": "crate", "definition": definition}]})
}

/// A one-line edit of `hm-ir` (a new public constant, `n` apart).
fn edit(project: &Path, n: usize) {
    let lib = project.join("crates/hm-ir/src/lib.rs");
    let mut text = std::fs::read_to_string(&lib).unwrap();
    text.push_str(&format!("\npub const BENCH_EDIT_{n}: u32 = {n};\n"));
    std::fs::write(lib, text).unwrap();
}

fn direct(project: &Path, cargo: &Path) -> Duration {
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "cargo build -p hm-ir --locked -q && cargo test -p hm-ir --locked -q",
        ])
        .current_dir(project)
        .env(
            "PATH",
            format!("{}:{}", cargo.display(), std::env::var("PATH").unwrap_or_default()),
        )
        .stderr(std::process::Stdio::null());
    common::time(command)
}

fn main() {
    let root = tempfile::Builder::new().prefix("hm-bench-volumes-").tempdir().unwrap();
    let cargo = cargo_dir();
    let project = |name: &str, volumes: Option<bool>| {
        let dir = root.path().join(name);
        workspace_copy(&dir);
        if let Some(volumes) = volumes {
            std::fs::create_dir_all(dir.join(".hm")).unwrap();
            std::fs::write(dir.join(".hm/pipeline.json"), pipeline(&cargo, volumes).to_string()).unwrap();
        }
        dir
    };
    let (with, without, direct_project) = (
        project("with", Some(true)),
        project("without", Some(false)),
        project("direct", None),
    );
    let cache = root.path().join("cache");

    let mut rows = Vec::new();
    for (what, n) in [
        ("first run", 0),
        ("again, nothing changed", 0),
        ("after a one-line edit", 1),
    ] {
        if n > 0 {
            for dir in [&with, &without, &direct_project] {
                edit(dir, n);
            }
        }
        let by_hm = common::time(common::hm_run(&with, &cache));
        let by_hm_alone = common::time(common::hm_run(&without, &cache));
        let by_cargo = direct(&direct_project, &cargo);
        rows.push((what, by_hm, by_hm_alone, by_cargo));
    }
    println!(
        "| `hm-ir`: fetch → build → test | `hm run`, volumes | `hm run`, no volumes | `cargo build` + `cargo test` |"
    );
    println!("|---|---:|---:|---:|");
    for (what, by_hm, by_hm_alone, by_cargo) in &rows {
        println!(
            "| {what} | {} | {} | {} |",
            common::ms(*by_hm),
            common::ms(*by_hm_alone),
            common::ms(*by_cargo)
        );
    }
    let (_, edited_hm, _, edited_cargo) = rows[2];
    let goal = edited_cargo.mul_f64(1.5) + Duration::from_millis(100);
    println!();
    println!(
        "edited run: {} against a goal of 1.5 × {} + 100 ms = {} ({:.2}× the direct build)",
        common::ms(edited_hm),
        common::ms(edited_cargo),
        common::ms(goal),
        edited_hm.as_secs_f64() / edited_cargo.as_secs_f64()
    );
}
