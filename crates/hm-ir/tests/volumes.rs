//! Cache volumes in the IR: both written forms read, the short one written
//! back when it says everything, a step's volumes layered over its
//! pipeline's at absolute paths, and every refusal named.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hm_ir::{
    effective_volumes, MountPathError, Pipeline, Plan, Sharing, Step, ValidationErrorKind, VolumeMount, VolumeOrigin,
};
use serde_json::{json, Value};

/// A pipeline `ci` of steps `a` and `b`, with `definition.volumes` and
/// step `b`'s `volumes` as given (left out when null).
fn pipeline(shared: Value, own: Value) -> Pipeline {
    let mut b = json!({"key": "b", "cmd": "true"});
    if !own.is_null() {
        b["volumes"] = own;
    }
    let mut definition = json!({
        "version": "0",
        "graph": {"nodes": [{"step": {"key": "a", "cmd": "true"}, "env": {}}, {"step": b, "env": {}}],
                  "node_holes": [], "edge_property": "directed", "edges": [[0, 1, "builds_in"]]}
    });
    if !shared.is_null() {
        definition["volumes"] = shared;
    }
    serde_json::from_value(json!({"slug": "ci", "definition": definition})).unwrap()
}

fn mount(name: &str, sharing: Sharing) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        sharing,
    }
}

fn resolved(entries: &[(&str, VolumeMount)]) -> BTreeMap<PathBuf, VolumeMount> {
    entries
        .iter()
        .map(|(path, mount)| (PathBuf::from(path), mount.clone()))
        .collect()
}

fn refusal(p: &Pipeline) -> (Option<String>, ValidationErrorKind) {
    let err = Plan::new(p).unwrap_err();
    assert_eq!(hm_ir::validate_pipeline(p).unwrap_err(), err);
    (err.step, err.kind)
}

#[test]
fn both_forms_read() {
    let read: hm_ir::Volumes = serde_json::from_value(json!({
        "/root/.cargo/registry": "cargo-registry",
        "target": {"name": "cargo-target", "sharing": "locked"},
        "/tmp/a": {"name": "a", "sharing": "private"},
        "/tmp/b": {"name": "b", "sharing": "shared"},
        "/tmp/c": {"name": "c"},
    }))
    .unwrap();
    assert_eq!(read["/root/.cargo/registry"], VolumeMount::shared("cargo-registry"));
    assert_eq!(read["target"], mount("cargo-target", Sharing::Locked));
    assert_eq!(read["/tmp/a"], mount("a", Sharing::Private));
    assert_eq!(read["/tmp/b"], VolumeMount::shared("b"));
    assert_eq!(read["/tmp/c"], VolumeMount::shared("c"));
}

#[test]
fn the_short_form_is_written_when_sharing_is_shared() {
    let p = pipeline(
        json!({"/cache": {"name": "c", "sharing": "shared"}}),
        json!({"target": {"name": "t", "sharing": "locked"}, "/root/.npm": "npm"}),
    );
    let written = serde_json::to_value(&p).unwrap();
    assert_eq!(written["definition"]["volumes"], json!({"/cache": "c"}));
    assert_eq!(
        written["definition"]["graph"]["nodes"][1]["step"]["volumes"],
        json!({"/root/.npm": "npm", "target": {"name": "t", "sharing": "locked"}})
    );
    // Left out where not given, so Harmont's IR is written as it was read.
    assert!(written["definition"]["graph"]["nodes"][0]["step"]
        .get("volumes")
        .is_none());
    let none = serde_json::to_value(pipeline(Value::Null, Value::Null)).unwrap();
    assert!(none["definition"].get("volumes").is_none());
    assert_eq!(serde_json::from_value::<Pipeline>(written).unwrap(), p);
}

#[test]
fn malformed_volumes_are_refused_when_read() {
    for (bad, expected) in [
        (
            json!({"name": "x", "sharing": "exclusive"}),
            "unknown variant `exclusive`",
        ),
        (json!({"name": "x", "sharng": "locked"}), "unknown field `sharng`"),
        (json!({"sharing": "locked"}), "missing field `name`"),
        (json!(7), "a volume name or an object"),
        (json!(["x"]), "a volume name or an object"),
    ] {
        let err = serde_json::from_value::<VolumeMount>(bad.clone()).unwrap_err();
        assert!(err.to_string().contains(expected), "{bad}: {err}");
    }
}

#[test]
fn a_steps_volumes_are_layered_over_its_pipelines_at_absolute_paths() {
    let p = pipeline(
        json!({"target": "shared-target", "/root/.cargo/registry": "registry", "/cache/": "c"}),
        json!({"/workspace/target": {"name": "b-target", "sharing": "locked"}, "./node_modules": "nm"}),
    );
    let def = &p.definition;
    let step = |i: usize| -> &Step { &def.graph.nodes[i].step };
    let pipeline_only = resolved(&[
        ("/cache", VolumeMount::shared("c")),
        ("/root/.cargo/registry", VolumeMount::shared("registry")),
        ("/workspace/target", VolumeMount::shared("shared-target")),
    ]);
    assert_eq!(effective_volumes(def, step(0)), pipeline_only);
    let layered = resolved(&[
        ("/cache", VolumeMount::shared("c")),
        ("/root/.cargo/registry", VolumeMount::shared("registry")),
        ("/workspace/node_modules", VolumeMount::shared("nm")),
        ("/workspace/target", mount("b-target", Sharing::Locked)),
    ]);
    assert_eq!(effective_volumes(def, step(1)), layered);

    let plan = Plan::new(&p).unwrap();
    assert_eq!(plan.volumes(0), pipeline_only);
    assert_eq!(plan.volumes(1), layered);

    let plain = pipeline(Value::Null, Value::Null);
    assert!(effective_volumes(&plain.definition, &plain.definition.graph.nodes[1].step).is_empty());
    let own_only = pipeline(Value::Null, json!({"target": "t"}));
    assert_eq!(
        Plan::new(&own_only).unwrap().volumes(1),
        resolved(&[("/workspace/target", VolumeMount::shared("t"))])
    );
}

#[test]
fn bad_names_are_refused() {
    for name in ["", "-x", ".cache", "a/b", "a b", "a\0"] {
        let (step, kind) = refusal(&pipeline(Value::Null, json!({"target": name})));
        assert_eq!(step.as_deref(), Some("b"));
        assert_eq!(
            kind,
            ValidationErrorKind::VolumeName {
                path: "target".into(),
                name: name.into()
            }
        );
    }
    let long = "v".repeat(65);
    let (step, kind) = refusal(&pipeline(
        json!({"/cache": {"name": long, "sharing": "locked"}}),
        Value::Null,
    ));
    assert_eq!(step, None, "the pipeline's own table names no step");
    assert!(matches!(kind, ValidationErrorKind::VolumeName { .. }), "{kind:?}");
    assert_eq!(
        kind.to_string(),
        format!(
            "`volumes./cache` has an invalid volume name `{long}`: a name is a letter or digit, then up to 63 \
             letters, digits, `_`, `.` or `-`"
        )
    );
}

#[test]
fn bad_paths_are_refused() {
    for (path, reason) in [
        ("", MountPathError::Empty),
        ("../cache", MountPathError::ParentDir),
        ("/a/../b", MountPathError::ParentDir),
        ("/", MountPathError::Root),
        ("/workspace", MountPathError::Workspace),
        (".", MountPathError::Workspace),
        ("/proc", MountPathError::Kernel("/proc")),
        ("/sys/kernel", MountPathError::Kernel("/sys")),
        ("/dev/shm", MountPathError::Kernel("/dev")),
        ("/x\0", MountPathError::Nul),
    ] {
        let expected = ValidationErrorKind::VolumePath {
            path: path.into(),
            reason,
        };
        assert_eq!(
            refusal(&pipeline(Value::Null, json!({path: "v"}))),
            (Some("b".into()), expected.clone())
        );
        assert_eq!(refusal(&pipeline(json!({path: "v"}), Value::Null)), (None, expected));
    }
    let (_, kind) = refusal(&pipeline(Value::Null, json!({"/dev/shm": "v"})));
    assert_eq!(
        kind.to_string(),
        "`volumes` has an invalid mount path `/dev/shm`: `/dev` and what is under it belong to the kernel"
    );
    let err = Plan::new(&pipeline(Value::Null, json!({"..": "v"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline `ci`, step `b`: `volumes` has an invalid mount path `..`: `..` is not allowed in a mount path"
    );
}

#[test]
fn two_entries_for_one_path_are_refused() {
    let (step, kind) = refusal(&pipeline(
        Value::Null,
        json!({"target": "a", "/workspace/target/": "b"}),
    ));
    assert_eq!(step.as_deref(), Some("b"));
    assert_eq!(
        kind.to_string(),
        "`volumes` gives one mount path twice, as `/workspace/target/` and `target`"
    );
    let (step, _) = refusal(&pipeline(json!({"/c": "a", "//c": "b"}), Value::Null));
    assert_eq!(step, None);
}

#[test]
fn nested_paths_are_refused() {
    // Within one table, relative paths resolved first.
    let (step, kind) = refusal(&pipeline(
        Value::Null,
        json!({"target": "t", "/workspace/target/debug": "d"}),
    ));
    assert_eq!(step.as_deref(), Some("b"));
    assert_eq!(
        kind,
        ValidationErrorKind::VolumesNest {
            outer: "/workspace/target".into(),
            outer_origin: VolumeOrigin::Own,
            inner: "/workspace/target/debug".into(),
            inner_origin: VolumeOrigin::Own,
        }
    );
    assert_eq!(
        kind.to_string(),
        "`volumes` mounts `/workspace/target/debug` inside `/workspace/target`: one volume would hide part of the other"
    );
    let (step, _) = refusal(&pipeline(json!({"/a": "a", "/a/b/c": "c"}), Value::Null));
    assert_eq!(step, None);

    // Across a step and its pipeline, either way round.
    let (step, kind) = refusal(&pipeline(json!({"/a": "a"}), json!({"/a/b": "b"})));
    assert_eq!(step.as_deref(), Some("b"));
    assert_eq!(
        kind.to_string(),
        "`volumes` mounts `/a/b` inside `/a` (the pipeline's): one volume would hide part of the other"
    );
    let (_, kind) = refusal(&pipeline(json!({"/a/b": "b"}), json!({"/a": "a"})));
    assert_eq!(
        kind.to_string(),
        "`volumes` mounts `/a/b` (the pipeline's) inside `/a`: one volume would hide part of the other"
    );

    // Neighbours and a step's replacement of its pipeline's entry are fine.
    for (shared, own) in [
        (json!({"/a": "a", "/ab": "ab", "/a-b": "x"}), Value::Null),
        (json!({"target": "shared"}), json!({"/workspace/target": "own"})),
    ] {
        Plan::new(&pipeline(shared, own)).unwrap();
    }
}
