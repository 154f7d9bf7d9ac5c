//! The same pipelines written in Python and in TypeScript
//! (`sdk/parity/NAME.py` and `NAME.ts`) render to the same IR, byte for
//! byte once keys are sorted: keys, commands, env, policies, edges,
//! timeouts and triggers.

use std::path::{Path, PathBuf};

use hm_dsl::{EvalOptions, Project};

/// Loads a project whose only pipeline file is `file`, as `pipeline.EXT`.
fn render(file: &Path, cache: &Path) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".hm")).unwrap();
    let ext = file.extension().unwrap().to_str().unwrap();
    std::fs::copy(file, dir.path().join(".hm").join(format!("pipeline.{ext}"))).unwrap();
    let options = EvalOptions::new("python3", Some(cache)).with_env(std::env::vars().collect());
    let loaded = Project::find(dir.path())
        .unwrap()
        .load(&options)
        .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
    // Sorted keys: `Value`'s maps are ordered.
    serde_json::to_value(&loaded.envelope).unwrap()
}

#[test]
fn python_and_typescript_render_the_same_ir() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/parity");
    let cache = tempfile::tempdir().unwrap();
    let mut pairs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    pairs.sort();
    assert!(pairs.len() >= 15, "only {} pairs", pairs.len());
    let mut differ = Vec::new();
    for python in &pairs {
        let typescript = python.with_extension("ts");
        assert!(typescript.exists(), "no {}", typescript.display());
        let (py, ts) = (render(python, cache.path()), render(&typescript, cache.path()));
        assert!(
            !py["pipelines"].as_array().unwrap().is_empty(),
            "{} defines no pipeline",
            python.display()
        );
        if py != ts {
            let py = serde_json::to_string_pretty(&py).unwrap();
            let ts = serde_json::to_string_pretty(&ts).unwrap();
            let first = py.lines().zip(ts.lines()).position(|(a, b)| a != b).unwrap_or(0);
            differ.push(format!(
                "{}: first difference at line {}:\n  python:     {}\n  typescript: {}",
                python.file_stem().unwrap().to_string_lossy(),
                first + 1,
                py.lines().nth(first).unwrap_or(""),
                ts.lines().nth(first).unwrap_or("")
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    println!("{} pairs render alike", pairs.len());
}

/// Every pair's file loads into one project with all the others (their
/// slugs are distinct, and files importing each other's names is not
/// needed), and the two projects render alike as a whole.
#[test]
fn all_pairs_load_into_one_project_per_language() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/parity");
    let cache = tempfile::tempdir().unwrap();
    let options = EvalOptions::new("python3", Some(cache.path())).with_env(std::env::vars().collect());
    let mut rendered = Vec::new();
    for ext in ["py", "ts"] {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir(project.path().join(".hm")).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == ext) {
                std::fs::copy(&path, project.path().join(".hm").join(path.file_name().unwrap())).unwrap();
            }
        }
        let loaded = Project::find(project.path())
            .unwrap()
            .load(&options)
            .unwrap_or_else(|err| panic!("all .{ext} pairs in one project: {err}"));
        rendered.push(serde_json::to_value(&loaded.envelope).unwrap());
    }
    assert!(rendered[0]["pipelines"].as_array().unwrap().len() >= 15);
    assert!(rendered[0] == rendered[1], "the two projects render differently");
}
