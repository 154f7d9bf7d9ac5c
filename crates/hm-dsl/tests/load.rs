use std::path::Path;

use hm_dsl::{EvalOptions, LoadError, Project};

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".hm")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(".hm").join(name), text).unwrap();
    }
    dir
}

fn envelope(slug: &str, keys: &[&str]) -> String {
    let nodes: Vec<_> = keys
        .iter()
        .map(|k| serde_json::json!({"step": {"key": k, "cmd": "true"}, "env": {}}))
        .collect();
    serde_json::json!({"schema_version": "1", "pipelines": [{
        "slug": slug, "name": slug, "allow_manual": true, "triggers": [],
        "definition": {"version": "0", "graph": {"nodes": nodes, "node_holes": [],
                       "edge_property": "directed", "edges": []}}}]})
    .to_string()
}

/// Evaluation options with the SDK unpacked under the project's own
/// temporary directory.
fn options(dir: &Path) -> EvalOptions {
    EvalOptions::new("python3", Some(&dir.join("cache"))).with_env(std::env::vars().collect())
}

fn load_err(dir: &Path) -> String {
    Project::find(dir).unwrap().load(&options(dir)).unwrap_err().to_string()
}

#[test]
fn finds_the_nearest_project_and_merges_files() {
    let dir = project(&[
        ("a.json", &envelope("one", &["x"])),
        ("b.json", &envelope("two", &["y"])),
    ]);
    let sub = dir.path().join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let project = Project::find(&sub).unwrap();
    assert_eq!(project.root, dir.path().canonicalize().unwrap());
    let loaded = project.load(&options(dir.path())).unwrap();
    let slugs: Vec<_> = loaded.envelope.pipelines.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["one", "two"]);
    assert_eq!(loaded.pipeline("two").unwrap().1.file, Path::new(".hm/b.json"));
}

#[test]
fn no_project() {
    let dir = tempfile::tempdir().unwrap();
    let err = Project::find(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::NoProject { .. }));
    assert!(err.to_string().contains("hm init"));
}

#[test]
fn malformed_json_names_file_and_position() {
    let dir = project(&[("ci.json", "{\"schema_version\": \"1\",\n \"pipelines\": [}")]);
    let err = load_err(dir.path());
    assert!(err.starts_with(".hm/ci.json:2:"), "{err}");
}

#[test]
fn wrong_type_names_the_field() {
    let text = envelope("ci", &["a"]).replace("\"cmd\":\"true\"", "\"cmd\":\"true\",\"timeout_seconds\":\"soon\"");
    let dir = project(&[("ci.json", &text)]);
    let err = load_err(dir.path());
    assert!(
        err.contains("pipelines[0].definition.graph.nodes[0].step.timeout_seconds"),
        "{err}"
    );
}

#[test]
fn duplicate_field_is_an_error() {
    let text = envelope("ci", &["a"]).replace("\"cmd\":\"true\"", "\"cmd\":\"true\",\"cmd\":\"false\"");
    let dir = project(&[("ci.json", &text)]);
    assert!(load_err(dir.path()).contains("duplicate field `cmd`"));
}

#[test]
fn duplicate_slug_names_both_files() {
    let dir = project(&[("a.json", &envelope("ci", &["x"])), ("b.json", &envelope("ci", &["y"]))]);
    assert_eq!(
        load_err(dir.path()),
        ".hm/b.json: pipeline `ci` is defined twice (first at .hm/a.json)"
    );
}

#[test]
fn invalid_pipeline_names_file_and_step() {
    let dir = project(&[("ci.json", &envelope("ci", &["x", "x"]))]);
    assert_eq!(
        load_err(dir.path()),
        ".hm/ci.json: pipeline `ci`, step `x`: duplicate step key (nodes 0 and 1)"
    );
}

/// Python files are evaluated by the real `python3` and merged with JSON
/// files in file-name order.
#[test]
fn python_files_merge_with_json_in_file_order() {
    let dir = project(&[
        ("a.json", &envelope("one", &["x"])),
        (
            "b.py",
            "import harmont as hm\n\n@hm.pipeline\ndef two():\n    return hm.sh('true', key='k')\n",
        ),
        ("c.json", &envelope("three", &["y"])),
    ]);
    let project = Project::find(dir.path()).unwrap();
    let loaded = project.load(&options(dir.path())).unwrap();
    let slugs: Vec<_> = loaded.envelope.pipelines.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["one", "two", "three"]);
    assert_eq!(loaded.pipeline("two").unwrap().1.file, Path::new(".hm/b.py"));
    let two = &loaded.envelope.pipelines[1].definition.graph.nodes[0];
    assert_eq!(two.step.image.as_deref(), Some("ubuntu:24.04"));
    assert_eq!(two.env["DEBIAN_FRONTEND"], "noninteractive");
}

/// A Python pipeline that fails validation is reported against its file.
#[test]
fn invalid_python_pipelines_name_their_file() {
    let dir = project(&[(
        "ci.py",
        "import harmont as hm\n\n@hm.pipeline\ndef ci():\n    return hm.sh('true', cache=hm.forever()).sh('x').sh('y', cache=hm.forever())\n",
    )]);
    let err = load_err(dir.path());
    assert!(err.starts_with(".hm/ci.py:"), "{err}");
}

/// One language per project, as Harmont's `hm run` decides it: with a
/// TypeScript file, the Python files are left out (never evaluated) and
/// named; with Python files and no TypeScript, JavaScript files are left
/// out (Harmont reads none); JSON envelopes are read either way.
#[test]
fn one_language_is_evaluated_and_the_others_are_named() {
    let ts = "import { pipeline, sh } from \"@harmont/hm\";\nexport default [{ slug: \"ts\", pipeline: pipeline([sh(\"x\")]) }];\n";
    let js = "import { pipeline, sh } from \"@harmont/hm\";\nexport default [{ slug: \"js\", pipeline: pipeline([sh(\"x\")]) }];\n";
    let never = "raise SystemExit('evaluated')\n";
    let slugs =
        |loaded: &hm_dsl::Loaded| -> Vec<String> { loaded.envelope.pipelines.iter().map(|p| p.slug.clone()).collect() };
    let load = |dir: &Path| Project::find(dir).unwrap().load(&options(dir)).unwrap();

    let dir = project(&[
        ("a.py", never),
        ("b.ts", ts),
        ("c.js", js),
        ("d.json", &envelope("json", &["x"])),
    ]);
    let loaded = load(dir.path());
    let left_out = loaded.left_out.clone().unwrap();
    assert_eq!(
        (left_out.evaluated, left_out.files),
        ("TypeScript", vec![Path::new(".hm/a.py").to_owned()])
    );
    assert_eq!(slugs(&loaded), ["ts", "js", "json"]);

    let dir = project(&[
        ("a.py", "import harmont as hm\n"),
        ("c.js", "throw new Error('evaluated');\n"),
    ]);
    let loaded = load(dir.path());
    let left_out = loaded.left_out.clone().unwrap();
    assert_eq!(
        (left_out.evaluated, left_out.files.clone()),
        ("Python", vec![Path::new(".hm/c.js").to_owned()])
    );
    assert!(
        left_out
            .to_string()
            .contains("evaluates the Python ones and leaves out .hm/c.js"),
        "{left_out}"
    );

    let dir = project(&[("c.js", js), ("d.json", &envelope("json", &["x"]))]);
    let loaded = load(dir.path());
    assert_eq!(loaded.left_out, None);
    assert_eq!(slugs(&loaded), ["js", "json"]);
}

/// JSON tooling files kept beside TypeScript pipelines (`tsconfig.json`,
/// `package.json`) are not envelopes; a file meant as one still reports its
/// mistakes.
#[test]
fn json_files_that_are_not_envelopes_are_not_pipeline_files() {
    let dir = project(&[
        (
            "package.json",
            "{\"name\": \"ci\", \"devDependencies\": {\"@harmont/hm\": \"*\"}}",
        ),
        ("tsconfig.json", "{\"compilerOptions\": {\"strict\": true}}"),
        ("z.json", &envelope("json", &["x"])),
    ]);
    let loaded = Project::find(dir.path()).unwrap().load(&options(dir.path())).unwrap();
    let slugs: Vec<_> = loaded.envelope.pipelines.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["json"]);

    for broken in [
        "{\"pipelines\": 3}",
        "{\"schema_version\": \"1\"}",
        "[1, 2]",
        "{not json",
    ] {
        let dir = project(&[("ci.json", broken)]);
        let err = load_err(dir.path());
        assert!(err.starts_with(".hm/ci.json:1:"), "{broken}: {err}");
    }
}
