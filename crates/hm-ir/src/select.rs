//! Running part of a pipeline: the steps asked for, and what they need.
//!
//! A [`Selection`] names steps by key or label: targets (run them and what
//! they need, nothing after them), `from` (that step and everything after
//! it), `until` (that step and what it needs). [`Selection::apply`] gives a
//! pipeline of the selected steps and every step they build in or wait for
//! (a selected step cannot run without its parent's snapshot; a parent
//! that is cached is a hit), with their edges; planning it plans only them.

use std::collections::BTreeSet;

use crate::envelope::{EdgeKind, Graph, Pipeline};
use crate::plan::{Plan, StepIdx};

/// Which steps of a pipeline to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Run these and what they need.
    pub targets: Vec<String>,
    /// Run this step, everything after it, and what they need.
    pub from: Option<String>,
    /// Run this step and what it needs (as a target).
    pub until: Option<String>,
}

/// A step name that is neither a key nor a label of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline `{pipeline}` has no step `{name}`{}", did_you_mean(.closest))]
pub struct UnknownStep {
    pub pipeline: String,
    pub name: String,
    /// The nearest key or label, when one is near.
    pub closest: Option<String>,
}

fn did_you_mean(closest: &Option<String>) -> String {
    closest
        .as_ref()
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.from.is_none() && self.until.is_none()
    }

    /// The part of `pipeline` (planned as `plan`) this selection runs; the
    /// whole pipeline when it selects nothing in particular.
    pub fn apply(&self, pipeline: &Pipeline, plan: &Plan) -> Result<Pipeline, UnknownStep> {
        if self.is_empty() {
            return Ok(pipeline.clone());
        }
        let find = |name: &str| find_step(pipeline, plan, name);
        let mut keep: BTreeSet<StepIdx> = (0..plan.steps.len()).collect();
        if let Some(from) = &self.from {
            let start = find(from)?;
            keep = closure(plan, [start], |idx| plan.successors(idx).collect());
        }
        let ends: Vec<&String> = self.targets.iter().chain(&self.until).collect();
        if !ends.is_empty() {
            let ends = ends.into_iter().map(|name| find(name)).collect::<Result<Vec<_>, _>>()?;
            let up_to = closure(plan, ends, |idx| predecessors(plan, idx));
            keep.retain(|idx| up_to.contains(idx));
        }
        // What the kept steps need comes along.
        let keep = closure(plan, keep, |idx| predecessors(plan, idx));
        Ok(subset(pipeline, plan, &keep))
    }
}

/// `hm run --step KEY`: the part of `pipeline` (planned as `plan`) that
/// runs the one step `name` (a key or label) on its parents' snapshots: it
/// and the steps it builds in, up to its root (the steps it only waits for
/// are an outside scheduler's to have run), with its key.
pub fn chain_to(pipeline: &Pipeline, plan: &Plan, name: &str) -> Result<(Pipeline, String), UnknownStep> {
    let target = find_step(pipeline, plan, name)?;
    let keep = closure(plan, [target], |idx| plan.steps[idx].parent.into_iter().collect());
    Ok((subset(pipeline, plan, &keep), plan.steps[target].key().to_owned()))
}

/// The steps `idx` builds in or waits for.
fn predecessors(plan: &Plan, idx: StepIdx) -> Vec<StepIdx> {
    let step = &plan.steps[idx];
    step.parent.into_iter().chain(step.depends_on.iter().copied()).collect()
}

/// `start` and every step `next` reaches from it.
fn closure(
    plan: &Plan,
    start: impl IntoIterator<Item = StepIdx>,
    next: impl Fn(StepIdx) -> Vec<StepIdx>,
) -> BTreeSet<StepIdx> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<StepIdx> = start.into_iter().collect();
    while let Some(idx) = pending.pop() {
        if idx < plan.steps.len() && seen.insert(idx) {
            pending.extend(next(idx));
        }
    }
    seen
}

/// The step whose key is `name`, else the one whose label is.
fn find_step(pipeline: &Pipeline, plan: &Plan, name: &str) -> Result<StepIdx, UnknownStep> {
    let by_key = plan.steps.iter().find(|s| s.key() == name);
    let by_label = || plan.steps.iter().find(|s| s.node.step.label.as_deref() == Some(name));
    if let Some(step) = by_key.or_else(by_label) {
        return Ok(step.idx);
    }
    let names = plan
        .steps
        .iter()
        .flat_map(|s| std::iter::once(s.key()).chain(s.node.step.label.as_deref()));
    let closest = closest(name, names).map(str::to_owned);
    Err(UnknownStep {
        pipeline: pipeline.slug.clone(),
        name: name.to_owned(),
        closest,
    })
}

/// The one of `candidates` nearest to `name`, a misspelling of it (within
/// a third of the longer's length, plus one), for a "did you mean".
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (distance(name, candidate), candidate))
        .filter(|(d, candidate)| *d <= candidate.chars().count().max(name.chars().count()) / 3 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `pipeline` with only the steps in `keep`, and the edges between them.
fn subset(pipeline: &Pipeline, plan: &Plan, keep: &BTreeSet<StepIdx>) -> Pipeline {
    let new_index = |idx: StepIdx| keep.iter().position(|&k| k == idx).map(|n| n as u32);
    let mut edges = Vec::new();
    for &idx in keep {
        let step = &plan.steps[idx];
        let to = new_index(idx).unwrap_or_default();
        if let Some(from) = step.parent.and_then(new_index) {
            edges.push(Some((from, to, EdgeKind::BuildsIn)));
        }
        for from in step.depends_on.iter().filter_map(|&d| new_index(d)) {
            edges.push(Some((from, to, EdgeKind::DependsOn)));
        }
    }
    let mut selected = pipeline.clone();
    selected.definition.graph = Graph {
        nodes: keep.iter().map(|&idx| plan.steps[idx].node.clone()).collect(),
        node_holes: Vec::new(),
        edge_property: pipeline.definition.graph.edge_property.clone(),
        edges,
    };
    selected
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// lint; build -> test -> package; docs waits for build.
    fn pipeline() -> (Pipeline, Plan) {
        let step = |key: &str, label: Option<&str>| json!({"step": {"key": key, "cmd": "true", "label": label}});
        let pipeline: Pipeline = serde_json::from_value(json!({
            "slug": "ci",
            "definition": {"version": "0", "graph": {
                "nodes": [step("lint", None), step("build", Some("Build it")), step("test", None),
                          step("package", None), step("docs", None)],
                "edge_property": "directed",
                "edges": [[1, 2, "builds_in"], [2, 3, "builds_in"], [1, 4, "depends_on"]]}}
        }))
        .unwrap();
        let plan = Plan::new(&pipeline).unwrap();
        (pipeline, plan)
    }

    fn keys(selection: Selection) -> Vec<String> {
        let (pipeline, plan) = pipeline();
        let selected = selection.apply(&pipeline, &plan).unwrap();
        let plan = Plan::new(&selected).unwrap();
        plan.steps.iter().map(|s| s.key().to_owned()).collect()
    }

    #[test]
    fn a_target_brings_what_it_needs_and_nothing_after_it() {
        let targets = |t: &[&str]| Selection {
            targets: t.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        };
        assert_eq!(keys(targets(&["test"])), ["build", "test"]);
        assert_eq!(keys(targets(&["docs", "lint"])), ["lint", "build", "docs"]);
        assert_eq!(keys(targets(&["Build it"])), ["build"], "labels name steps too");
        assert_eq!(keys(Selection::default()).len(), 5);
    }

    #[test]
    fn one_step_brings_its_chain_and_not_what_it_waits_for() {
        let (pipeline, plan) = pipeline();
        let (selected, key) = chain_to(&pipeline, &plan, "package").unwrap();
        let plan_of =
            |p: &Pipeline| -> Vec<String> { Plan::new(p).unwrap().steps.iter().map(|s| s.key().to_owned()).collect() };
        assert_eq!(
            (plan_of(&selected), key.as_str()),
            (vec!["build".into(), "test".into(), "package".into()], "package")
        );
        let (selected, key) = chain_to(&pipeline, &plan, "docs").unwrap();
        assert_eq!((plan_of(&selected), key.as_str()), (vec!["docs".to_owned()], "docs"));
        let (_, key) = chain_to(&pipeline, &plan, "Build it").unwrap();
        assert_eq!(key, "build");
        assert!(chain_to(&pipeline, &plan, "nope").is_err());
    }

    #[test]
    fn from_and_until_cut_the_pipeline() {
        let from = Selection {
            from: Some("test".into()),
            ..Selection::default()
        };
        assert_eq!(keys(from), ["build", "test", "package"]);
        let until = Selection {
            until: Some("test".into()),
            ..Selection::default()
        };
        assert_eq!(keys(until), ["build", "test"]);
        let between = Selection {
            from: Some("build".into()),
            until: Some("test".into()),
            ..Selection::default()
        };
        assert_eq!(keys(between), ["build", "test"]);
        // The selected plan keeps its links: test still builds in build.
        let (pipeline, plan) = pipeline();
        let selected = Selection {
            targets: vec!["package".into()],
            ..Selection::default()
        };
        let plan = Plan::new(&selected.apply(&pipeline, &plan).unwrap()).unwrap();
        let test = plan.step_by_key("test").unwrap();
        assert_eq!(plan.steps[test.parent.unwrap()].key(), "build");
    }

    #[test]
    fn an_unknown_step_says_what_was_meant() {
        let (pipeline, plan) = pipeline();
        let wrong = |name: &str| {
            Selection {
                targets: vec![name.into()],
                ..Selection::default()
            }
            .apply(&pipeline, &plan)
            .unwrap_err()
            .to_string()
        };
        assert_eq!(wrong("tset"), "pipeline `ci` has no step `tset`; did you mean `test`?");
        assert_eq!(wrong("deploy"), "pipeline `ci` has no step `deploy`");
    }

    #[test]
    fn a_near_name_is_suggested() {
        let known = ["cargo-registry", "cargo-target"];
        assert_eq!(closest("cargo-targt", known), Some("cargo-target"));
        assert_eq!(closest("cargo-regsitry", known), Some("cargo-registry"));
        assert_eq!(closest("npm", known), None);
    }
}
