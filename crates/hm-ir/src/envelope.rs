//! Serde types for the envelope (`schema_version "1"`) and the IR graph
//! (`version "0"`, petgraph's `StableGraph` layout).
//!
//! Fields Harmont may omit are optional here; fields we add (for example
//! [`Step::continue_on_failure`]) are optional and skipped when unset, so IR
//! we print still reads in older tools.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The envelope schema version this build reads and writes.
pub const ENVELOPE_SCHEMA_VERSION: &str = "1";
/// The IR version this build reads and writes.
pub const IR_VERSION: &str = "0";
/// The image of a root step that names none, as in Harmont.
pub const DEFAULT_IMAGE: &str = "ubuntu:24.04";

/// Every pipeline of a project, as evaluated from its `.hm/` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: String,
    pub pipelines: Vec<Pipeline>,
}

impl Envelope {
    /// An empty envelope of the current schema version.
    pub fn new() -> Self {
        Self {
            schema_version: ENVELOPE_SCHEMA_VERSION.to_owned(),
            pipelines: Vec::new(),
        }
    }

    /// The pipeline with this slug, if any.
    pub fn pipeline(&self, slug: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.slug == slug)
    }
}

impl Default for Envelope {
    fn default() -> Self {
        Self::new()
    }
}

/// One pipeline: its identity, triggers and IR graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_true")]
    pub allow_manual: bool,
    /// Trigger objects (`push`, `pull_request`); kept as written, they only
    /// matter to hosted CI.
    #[serde(default)]
    pub triggers: Vec<serde_json::Value>,
    pub definition: Definition,
}

fn default_true() -> bool {
    true
}

/// The IR graph of one pipeline, in petgraph's `StableGraph` serde layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub version: String,
    /// Present node weights, in index order with the holes left out.
    pub nodes: Vec<Node>,
    /// Indices of vacant node slots.
    #[serde(default)]
    pub node_holes: Vec<u32>,
    pub edge_property: String,
    /// `[source, target, kind]` by raw node index; `null` for a vacant slot.
    pub edges: Vec<Option<(u32, u32, EdgeKind)>>,
    /// Cancels the whole build after this many seconds (our addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

/// A node: the step and its fully layered environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub step: Step,
    /// The node's full environment (SDK defaults, then pipeline, then step).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One shell step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub key: String,
    pub cmd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_args: Option<serde_json::Value>,
    /// Set on the steps after a `wait(continue_on_failure=True)`: their
    /// `depends_on` edges only order them (our addition).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

impl Step {
    /// What progress output calls the step: its label, else its command cut
    /// to 40 characters.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(label) if !label.is_empty() => label.clone(),
            _ => self.cmd.chars().take(40).collect(),
        }
    }
}

/// A cache policy as the SDKs emit it; which fields matter depends on
/// `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    pub policy: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_policies: Vec<CachePolicy>,
    /// An extra key input from the DSL; never trusted alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl CachePolicy {
    /// The policy names this build understands.
    pub const KNOWN: [&'static str; 5] = ["none", "forever", "ttl", "on_change", "compose"];

    /// Whether this policy caches at all (`none` does not).
    pub fn is_cached(&self) -> bool {
        self.policy != "none"
    }
}

/// The kind of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The target boots from the source's snapshot.
    BuildsIn,
    /// The target only runs after the source.
    DependsOn,
}
