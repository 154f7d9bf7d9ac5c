use hm_ir::{Pipeline, Plan, ValidationErrorKind};
use serde_json::json;

fn node(key: &str) -> serde_json::Value {
    json!({"step": {"key": key, "cmd": format!("echo {key}")}, "env": {}})
}

fn pipeline(nodes: Vec<serde_json::Value>, edges: serde_json::Value) -> Pipeline {
    serde_json::from_value(json!({
        "slug": "ci", "name": "CI", "allow_manual": true, "triggers": [],
        "definition": {"version": "0", "graph": {"nodes": nodes, "node_holes": [],
                        "edge_property": "directed", "edges": edges}}
    }))
    .unwrap()
}

fn kind(p: &Pipeline) -> ValidationErrorKind {
    Plan::new(p).unwrap_err().kind
}

#[test]
fn chains_fork_and_remaining_path() {
    // a -> b -> {c, d}; e depends on c and d
    let p = pipeline(
        ["a", "b", "c", "d", "e"].into_iter().map(node).collect(),
        json!([
            [0, 1, "builds_in"],
            [1, 2, "builds_in"],
            [1, 3, "builds_in"],
            [2, 4, "depends_on"],
            [3, 4, "depends_on"]
        ]),
    );
    let plan = Plan::new(&p).unwrap();
    let chain = |k: &str| plan.step_by_key(k).unwrap().chain_idx;
    assert_eq!(chain("a"), chain("b"));
    assert_ne!(chain("c"), chain("b"));
    assert_ne!(chain("c"), chain("d"));
    assert_eq!(plan.chain_count, 4);
    let remaining: Vec<usize> = plan.steps.iter().map(|s| s.remaining).collect();
    assert_eq!(remaining, vec![4, 3, 2, 2, 1]);
    assert_eq!(plan.steps[2].base_image, hm_ir::DEFAULT_IMAGE);
}

#[test]
fn node_holes_shift_edge_indices() {
    let mut p = pipeline(vec![node("a"), node("b")], json!([[0, 2, "builds_in"], null]));
    p.definition.graph.node_holes = vec![1];
    let plan = Plan::new(&p).unwrap();
    assert_eq!(plan.steps[1].parent, Some(0));
}

#[test]
fn cycle_names_its_steps() {
    let p = pipeline(
        vec![node("a"), node("b"), node("c")],
        json!([[0, 1, "depends_on"], [1, 2, "depends_on"], [2, 1, "builds_in"]]),
    );
    let err = Plan::new(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline `ci`, step `b`: dependency cycle: b -> c -> b"
    );
}

#[test]
fn rejects_bad_graphs() {
    let p = pipeline(vec![node("a"), node("a")], json!([]));
    assert_eq!(kind(&p), ValidationErrorKind::DuplicateKey { first: 0, second: 1 });

    let p = pipeline(
        vec![node("a"), node("b"), node("c")],
        json!([[0, 2, "builds_in"], [1, 2, "builds_in"]]),
    );
    assert!(matches!(kind(&p), ValidationErrorKind::TwoParents { .. }));

    let p = pipeline(vec![node("a")], json!([[0, 5, "depends_on"]]));
    assert_eq!(kind(&p), ValidationErrorKind::DanglingEdge { edge: 0, node: 5 });

    let p = pipeline(vec![node("a")], json!([[0, 0, "depends_on"]]));
    assert_eq!(kind(&p), ValidationErrorKind::SelfEdge { edge: 0 });
}

#[test]
fn rejects_bad_steps() {
    let mut p = pipeline(vec![node("a")], json!([]));
    p.definition.graph.nodes[0].step.timeout_seconds = Some(0);
    assert!(matches!(kind(&p), ValidationErrorKind::ZeroTimeout { .. }));

    let mut p = pipeline(vec![node("a")], json!([]));
    p.definition.timeout_seconds = Some(0);
    assert!(matches!(kind(&p), ValidationErrorKind::ZeroTimeout { .. }));

    let mut p = pipeline(vec![node("a")], json!([]));
    p.slug = "Bad_Slug".into();
    assert_eq!(kind(&p), ValidationErrorKind::Slug);

    let unknown = serde_json::from_value::<hm_ir::CachePolicy>(json!({"policy": "sometimes"})).unwrap_err();
    assert!(unknown.to_string().contains("unknown variant `sometimes`"), "{unknown}");
    let no_duration = serde_json::from_value::<hm_ir::CachePolicy>(json!({"policy": "ttl"})).unwrap_err();
    assert!(no_duration.to_string().contains("duration_seconds"), "{no_duration}");

    let mut p = pipeline(vec![node("a")], json!([]));
    p.definition.graph.nodes[0].step.cache =
        Some(serde_json::from_value(json!({"policy": "ttl", "duration_seconds": 0})).unwrap());
    assert_eq!(kind(&p), ValidationErrorKind::TtlDuration);
}

#[test]
fn cached_step_needs_cached_ancestors() {
    let mut p = pipeline(vec![node("a"), node("b")], json!([[0, 1, "builds_in"]]));
    p.definition.graph.nodes[1].step.cache = Some(serde_json::from_value(json!({"policy": "forever"})).unwrap());
    assert_eq!(kind(&p), ValidationErrorKind::UncachedAncestor("a".into()));
    p.definition.graph.nodes[0].step.cache = Some(serde_json::from_value(json!({"policy": "forever"})).unwrap());
    Plan::new(&p).unwrap();
}

#[test]
fn round_trips_in_the_same_layout() {
    let p = pipeline(vec![node("a"), node("b")], json!([[0, 1, "builds_in"]]));
    let text = serde_json::to_value(&p).unwrap();
    assert_eq!(text["definition"]["graph"]["edges"], json!([[0, 1, "builds_in"]]));
    assert_eq!(text["definition"]["graph"]["edge_property"], json!("directed"));
    assert_eq!(text["definition"]["graph"]["nodes"][0], node("a"));
}
