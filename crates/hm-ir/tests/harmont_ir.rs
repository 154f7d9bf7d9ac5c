//! Harmont's own renders (`compat/harmont/expected/*.json`) read as
//! envelopes, validate and plan, and are written back unchanged: the IR
//! `hm` speaks is Harmont's, field for field.

use std::path::PathBuf;

use hm_ir::{Envelope, Plan, PolicyKind};

fn expected() -> Vec<(String, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat/harmont/expected");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(out.len(), 14, "the corpus has 14 examples");
    out
}

#[test]
fn every_harmont_render_reads_plans_and_writes_back_unchanged() {
    for (name, value) in expected() {
        let envelope: Envelope = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for pipeline in &envelope.pipelines {
            Plan::new(pipeline).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(serde_json::to_value(&envelope).unwrap(), value, "{name}");
    }
}

#[test]
fn cache_policies_keep_their_harmont_fields_and_key() {
    let (_, rust) = expected().into_iter().find(|(name, _)| name == "rust").unwrap();
    let envelope: Envelope = serde_json::from_value(rust).unwrap();
    let steps: Vec<_> = envelope.pipelines[0]
        .definition
        .graph
        .nodes
        .iter()
        .map(|n| &n.step)
        .collect();
    let apt = steps[0].cache.as_ref().unwrap();
    assert!(matches!(&apt.kind, PolicyKind::Ttl { duration_seconds: 86400, env_keys } if env_keys.is_empty()));
    assert_eq!(apt.key.as_deref().map(str::len), Some(64));
    let written = serde_json::to_value(apt).unwrap();
    assert_eq!(
        written["env_keys"],
        serde_json::json!([]),
        "Harmont always writes env_keys"
    );
    assert!(steps.iter().any(|s| matches!(
        s.cache.as_ref().map(|c| &c.kind),
        Some(PolicyKind::OnChange { paths }) if paths.iter().any(|p| p == "**/*.rs")
    )));
}

#[test]
fn triggers_are_kept_as_harmont_writes_them() {
    let (_, go) = expected().into_iter().find(|(name, _)| name == "go").unwrap();
    let envelope: Envelope = serde_json::from_value(go).unwrap();
    assert_eq!(
        envelope.pipelines[0].triggers,
        vec![serde_json::json!({"event": "push", "branches": ["main"]})]
    );
}
