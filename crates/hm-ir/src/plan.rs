//! The planned DAG: a validated pipeline with compact step indices, edges
//! resolved both ways, chains numbered and the longest remaining path of
//! every step precomputed for the scheduler.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use crate::envelope::{EdgeKind, Network, Node, Pipeline, VolumeMount, Volumes, DEFAULT_IMAGE};
use crate::validate::{check_header, check_step, error, ValidationError, ValidationErrorKind};

/// Index of a step in [`Plan::steps`].
pub type StepIdx = usize;

/// A pipeline ready to execute.
#[derive(Debug, Clone)]
pub struct Plan {
    pub slug: String,
    pub steps: Vec<PlannedStep>,
    /// Number of chains (maximal runs of single `builds_in` links).
    pub chain_count: usize,
    /// The pipeline's own timeout.
    pub timeout_seconds: Option<u64>,
    /// The pipeline's own network mode (`definition.network`), if it sets one.
    pub network: Option<Network>,
    /// The cache volumes of every step (`definition.volumes`), if it gives
    /// any; [`Plan::volumes`] layers a step's own over them.
    pub volumes: Option<Volumes>,
    /// Step indices in a topological order (parents before children).
    pub topo_order: Vec<StepIdx>,
}

/// One step of a [`Plan`].
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub idx: StepIdx,
    pub node: Node,
    /// The step it boots from (`builds_in` source).
    pub parent: Option<StepIdx>,
    /// Steps it only runs after (`depends_on` sources).
    pub depends_on: Vec<StepIdx>,
    /// Steps that boot from it.
    pub children: Vec<StepIdx>,
    /// Steps that run after it.
    pub dependents: Vec<StepIdx>,
    pub chain_idx: usize,
    /// Steps on the longest path from this one to the end, itself included.
    pub remaining: usize,
    /// The image its chain's root boots from.
    pub base_image: String,
}

impl PlannedStep {
    pub fn key(&self) -> &str {
        &self.node.step.key
    }

    /// Whether the step's cache policy caches at all.
    pub fn is_cached(&self) -> bool {
        is_cached(&self.node)
    }
}

/// The links of one step, worked out before any node is copied.
#[derive(Default)]
struct Shape {
    parent: Option<StepIdx>,
    depends_on: Vec<StepIdx>,
    children: Vec<StepIdx>,
    dependents: Vec<StepIdx>,
    chain_idx: usize,
    remaining: usize,
    base_image: String,
}

/// A pipeline's graph, validated: every step's links, the chain count and
/// a topological order.
struct Skeleton {
    shapes: Vec<Shape>,
    chain_count: usize,
    topo_order: Vec<StepIdx>,
}

fn key(pipeline: &Pipeline, idx: StepIdx) -> &str {
    &pipeline.definition.graph.nodes[idx].step.key
}

impl Skeleton {
    /// Validates `pipeline` (DESIGN.md §2) and works out its graph.
    fn new(pipeline: &Pipeline) -> Result<Self, ValidationError> {
        check_header(pipeline)?;
        let def = &pipeline.definition;
        let raw_to_idx = raw_indices(pipeline)?;

        let mut keys: HashMap<&str, StepIdx> = HashMap::with_capacity(def.graph.nodes.len());
        for (idx, node) in def.graph.nodes.iter().enumerate() {
            check_step(pipeline, node)?;
            if let Some(first) = keys.insert(&node.step.key, idx) {
                return Err(error(
                    pipeline,
                    Some(&node.step.key),
                    ValidationErrorKind::DuplicateKey { first, second: idx },
                ));
            }
        }

        let mut steps: Vec<Shape> = def.graph.nodes.iter().map(|_| Shape::default()).collect();
        let mut seen = BTreeSet::new();
        for (edge, (src, dst, kind)) in def.graph.edges.iter().enumerate().filter_map(|(i, e)| Some((i, (*e)?))) {
            let resolve = |raw: u32| {
                raw_to_idx
                    .get(&raw)
                    .copied()
                    .ok_or_else(|| error(pipeline, None, ValidationErrorKind::DanglingEdge { edge, node: raw }))
            };
            let (src, dst) = (resolve(src)?, resolve(dst)?);
            if src == dst {
                return Err(error(
                    pipeline,
                    Some(key(pipeline, src)),
                    ValidationErrorKind::SelfEdge { edge },
                ));
            }
            if !seen.insert((src, dst, kind)) {
                continue;
            }
            match kind {
                EdgeKind::BuildsIn => {
                    if let Some(first) = steps[dst].parent {
                        return Err(error(
                            pipeline,
                            Some(key(pipeline, dst)),
                            ValidationErrorKind::TwoParents {
                                first: key(pipeline, first).to_owned(),
                                second: key(pipeline, src).to_owned(),
                            },
                        ));
                    }
                    steps[dst].parent = Some(src);
                    steps[src].children.push(dst);
                }
                EdgeKind::DependsOn => {
                    steps[dst].depends_on.push(src);
                    steps[src].dependents.push(dst);
                }
            }
        }

        let topo_order = topological_order(pipeline, &steps)?;
        let mut chain_count = 0;
        for &idx in &topo_order {
            let (chain_idx, base_image) = match steps[idx].parent {
                Some(p) if steps[p].children.len() == 1 => (steps[p].chain_idx, steps[p].base_image.clone()),
                Some(p) => {
                    chain_count += 1;
                    (chain_count - 1, steps[p].base_image.clone())
                }
                None => {
                    chain_count += 1;
                    let image = def.graph.nodes[idx].step.image.clone();
                    (chain_count - 1, image.unwrap_or_else(|| DEFAULT_IMAGE.to_owned()))
                }
            };
            steps[idx].chain_idx = chain_idx;
            steps[idx].base_image = base_image;
            if is_cached(&def.graph.nodes[idx]) {
                check_cached_ancestors(pipeline, &steps, idx)?;
            }
        }
        for &idx in topo_order.iter().rev() {
            let step = &steps[idx];
            let longest_after = step
                .children
                .iter()
                .chain(&step.dependents)
                .map(|&s| steps[s].remaining)
                .max()
                .unwrap_or(0);
            steps[idx].remaining = longest_after + 1;
        }
        Ok(Skeleton {
            shapes: steps,
            chain_count,
            topo_order,
        })
    }
}

/// Whether a node's cache policy caches at all.
fn is_cached(node: &Node) -> bool {
    node.step.cache.as_ref().is_some_and(|c| c.is_cached())
}

/// Checks `pipeline` completely without copying it: what [`Plan::new`]
/// checks.
pub(crate) fn validate(pipeline: &Pipeline) -> Result<(), ValidationError> {
    Skeleton::new(pipeline).map(drop)
}

impl Plan {
    /// Validates `pipeline` (DESIGN.md §2) and plans it.
    pub fn new(pipeline: &Pipeline) -> Result<Self, ValidationError> {
        let skeleton = Skeleton::new(pipeline)?;
        let steps = skeleton
            .shapes
            .into_iter()
            .zip(&pipeline.definition.graph.nodes)
            .enumerate()
            .map(|(idx, (shape, node))| PlannedStep {
                idx,
                node: node.clone(),
                parent: shape.parent,
                depends_on: shape.depends_on,
                children: shape.children,
                dependents: shape.dependents,
                chain_idx: shape.chain_idx,
                remaining: shape.remaining,
                base_image: shape.base_image,
            })
            .collect();
        Ok(Plan {
            slug: pipeline.slug.clone(),
            steps,
            chain_count: skeleton.chain_count,
            timeout_seconds: pipeline.definition.timeout_seconds,
            network: pipeline.definition.network,
            volumes: pipeline.definition.volumes.clone(),
            topo_order: skeleton.topo_order,
        })
    }

    /// The step with this key.
    pub fn step_by_key(&self, key: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.key() == key)
    }

    /// The cache volumes step `idx` mounts, by absolute mount path: the
    /// pipeline's, with the step's own over them (see
    /// [`crate::effective_volumes`]).
    pub fn volumes(&self, idx: StepIdx) -> BTreeMap<PathBuf, VolumeMount> {
        crate::volumes::layered(self.volumes.as_ref(), self.steps[idx].node.step.volumes.as_ref())
    }

    /// The steps that follow `idx`, by either edge kind.
    pub fn successors(&self, idx: StepIdx) -> impl Iterator<Item = StepIdx> + '_ {
        let step = &self.steps[idx];
        step.children.iter().chain(&step.dependents).copied()
    }
}

/// Maps raw petgraph node indices (holes counted) to compact step indices.
fn raw_indices(pipeline: &Pipeline) -> Result<HashMap<u32, StepIdx>, ValidationError> {
    let def = &pipeline.definition;
    let mut holes = def.graph.node_holes.iter().copied().peekable();
    let mut map = HashMap::with_capacity(def.graph.nodes.len());
    let mut raw = 0u32;
    let mut last_hole = None;
    for idx in 0..def.graph.nodes.len() {
        while holes.peek() == Some(&raw) {
            last_hole = holes.next();
            raw += 1;
        }
        map.insert(raw, idx);
        raw += 1;
    }
    // Holes past the last node are legal; anything out of order is not.
    for hole in holes {
        if last_hole.is_some_and(|l| hole <= l) || hole < raw {
            return Err(error(pipeline, None, ValidationErrorKind::NodeHoles(hole)));
        }
        last_hole = Some(hole);
    }
    Ok(map)
}

/// Kahn's algorithm in node order, so the result is deterministic; a cycle is
/// reported with the steps on it.
fn topological_order(pipeline: &Pipeline, steps: &[Shape]) -> Result<Vec<StepIdx>, ValidationError> {
    let mut indegree: Vec<usize> = steps
        .iter()
        .map(|s| s.depends_on.len() + usize::from(s.parent.is_some()))
        .collect();
    let mut ready: std::collections::VecDeque<StepIdx> = (0..steps.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(idx) = ready.pop_front() {
        order.push(idx);
        for &next in steps[idx].children.iter().chain(&steps[idx].dependents) {
            indegree[next] -= 1;
            if indegree[next] == 0 {
                ready.push_back(next);
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    let cycle = find_cycle(steps, &indegree);
    let names: Vec<String> = cycle.iter().map(|&i| key(pipeline, i).to_owned()).collect();
    let first = names[0].clone();
    Err(error(pipeline, Some(&first), ValidationErrorKind::Cycle(names)))
}

/// Walks backwards from a step left with unmet predecessors until a step
/// repeats; the repeated stretch is a cycle.
fn find_cycle(steps: &[Shape], indegree: &[usize]) -> Vec<StepIdx> {
    let start = (0..steps.len()).find(|&i| indegree[i] > 0).expect("a step in a cycle");
    let mut path = vec![start];
    let mut pos: HashMap<StepIdx, usize> = HashMap::from([(start, 0)]);
    let mut current = start;
    loop {
        let step = &steps[current];
        let pred = step
            .parent
            .into_iter()
            .chain(step.depends_on.iter().copied())
            .find(|&p| indegree[p] > 0)
            .expect("a step in a cycle has a predecessor in it");
        if let Some(&at) = pos.get(&pred) {
            let mut cycle: Vec<StepIdx> = path[at..].to_vec();
            cycle.reverse();
            // Start at the step that comes first in the file, for stable output.
            let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return cycle;
        }
        pos.insert(pred, path.len());
        path.push(pred);
        current = pred;
    }
}

fn check_cached_ancestors(pipeline: &Pipeline, steps: &[Shape], idx: StepIdx) -> Result<(), ValidationError> {
    let mut ancestor = steps[idx].parent;
    while let Some(a) = ancestor {
        if !is_cached(&pipeline.definition.graph.nodes[a]) {
            return Err(error(
                pipeline,
                Some(key(pipeline, idx)),
                ValidationErrorKind::UncachedAncestor(key(pipeline, a).to_owned()),
            ));
        }
        ancestor = steps[a].parent;
    }
    Ok(())
}
