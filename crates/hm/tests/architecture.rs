//! What docs/architecture.md says of the crates, checked: which crate may
//! use which, and that only `hm` reads environment variables.

use std::path::{Path, PathBuf};

/// The crates in the order of docs/architecture.md's table: each may use
/// only crates before it.
const ORDER: [&str; 7] = ["hm-ir", "hm-events", "hm-dsl", "hm-vm", "hm-exec", "hm-render", "hm"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace crates `krate` depends on (not its dev-dependencies).
fn internal_dependencies(krate: &str) -> Vec<String> {
    let path = workspace().join("crates").join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let deps = manifest.get("dependencies").and_then(|d| d.as_table());
    deps.into_iter()
        .flat_map(|d| d.keys())
        .filter(|name| ORDER.contains(&name.as_str()))
        .cloned()
        .collect()
}

#[test]
fn each_crate_uses_only_the_crates_above_it() {
    for (at, krate) in ORDER.iter().enumerate() {
        for dep in internal_dependencies(krate) {
            let dep_at = ORDER.iter().position(|c| *c == dep).unwrap();
            assert!(dep_at < at, "{krate} depends on {dep}, which comes after it");
        }
    }
    assert_eq!(
        internal_dependencies("hm-render"),
        ["hm-events"],
        "the renderer reads events only"
    );
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_cli_reads_environment_variables() {
    let reads = ["env::var(", "env::var_os(", "env::vars(", "env::vars_os("];
    let mut found = Vec::new();
    for krate in ORDER.iter().filter(|c| **c != "hm") {
        let mut files = Vec::new();
        sources(&workspace().join("crates").join(krate).join("src"), &mut files);
        for file in files {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            // A file's unit tests come last, after `#[cfg(test)]`.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                if reads.iter().any(|r| line.contains(r)) && !line.trim_start().starts_with("//") {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "library code reads the environment:\n{}",
        found.join("\n")
    );
}
