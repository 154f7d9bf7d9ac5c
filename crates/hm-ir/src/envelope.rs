//! Serde types for the envelope (`schema_version "1"`) and the IR graph
//! (`version "0"`, petgraph's `StableGraph` layout).
//!
//! Fields Harmont may omit are optional here; fields we add (for example
//! [`Step::continue_on_failure`] and [`Step::volumes`]) are optional and
//! skipped when unset, so IR we print still reads in older tools.

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

/// The IR of one pipeline (`version "0"`): its graph, the pipeline
/// timeout, and our network mode and cache volumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub version: String,
    /// Cancels the whole build after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The network its steps get unless the run says otherwise (our
    /// addition; absent means the run's setting, by default `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Cache volumes mounted into every step of the pipeline (our
    /// addition); a step's own entry for the same mount path wins. See
    /// [`crate::effective_volumes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Volumes>,
    pub graph: Graph,
}

/// A pipeline's network mode (`definition.network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network: steps reach what the host reaches.
    Host,
    /// A private network namespace with only loopback.
    None,
}

/// Cache volumes by mount path, as written: an absolute path, or one
/// relative to the workspace (`"target"` is `/workspace/target`).
///
/// A cache volume is a named directory that `hm` keeps across runs and
/// mounts read-write into a step: what the step writes there (a compiler's
/// cache, a package registry) is there for the next run, but it is not part
/// of the step's snapshot nor of any cache key, so it never decides whether
/// a step is a cache hit. Our addition: Harmont has nothing like it.
pub type Volumes = BTreeMap<String, VolumeMount>;

/// One cache volume mounted into a step: which volume, and how steps running
/// at the same time share it.
///
/// Written as the bare name when `sharing` is `shared`
/// (`"cargo-registry"`), else as an object (`{"name": "cargo-target",
/// "sharing": "locked"}`); either form is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeMount {
    /// The volume: steps and pipelines that give one name share one
    /// directory. It matches `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}` (checked by
    /// validation; see [`crate::is_volume_name`]).
    pub name: String,
    pub sharing: Sharing,
}

impl VolumeMount {
    /// The volume `name`, shared.
    pub fn shared(name: impl Into<String>) -> Self {
        VolumeMount {
            name: name.into(),
            sharing: Sharing::Shared,
        }
    }
}

/// How steps that run at the same time use one volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Every step that mounts it uses it at once: for tools that lock what
    /// they write themselves (cargo's registry, pip's cache).
    #[default]
    Shared,
    /// One step at a time: a step waits while another has it mounted. For
    /// tools that expect a directory to themselves (a cargo `target`).
    Locked,
    /// A step that finds it in use gets a directory of its own instead of
    /// waiting.
    Private,
}

impl Serialize for VolumeMount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if self.sharing == Sharing::Shared {
            return serializer.serialize_str(&self.name);
        }
        let mut object = serializer.serialize_struct("VolumeMount", 2)?;
        object.serialize_field("name", &self.name)?;
        object.serialize_field("sharing", &self.sharing)?;
        object.end()
    }
}

impl<'de> Deserialize<'de> for VolumeMount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The object form; a field it does not know is refused, since
        /// ignoring a misspelt `sharing` would quietly share a volume.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            name: String,
            #[serde(default)]
            sharing: Sharing,
        }

        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = VolumeMount;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a volume name or an object {\"name\": ..., \"sharing\": ...}")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<VolumeMount, E> {
                Ok(VolumeMount::shared(name))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<VolumeMount, A::Error> {
                let Object { name, sharing } = Object::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(VolumeMount { name, sharing })
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The step graph, in petgraph's `StableGraph` serde layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Present node weights, in index order with the holes left out.
    pub nodes: Vec<Node>,
    /// Indices of vacant node slots.
    #[serde(default)]
    pub node_holes: Vec<u32>,
    pub edge_property: String,
    /// `[source, target, kind]` by raw node index; `null` for a vacant slot.
    pub edges: Vec<Option<(u32, u32, EdgeKind)>>,
}

/// A node: the step and its fully layered environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub step: Step,
    /// The node's full environment (SDK defaults, then pipeline, then step).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One shell step; fields in the order Harmont's SDKs write them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub key: String,
    pub cmd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_args: Option<serde_json::Value>,
    /// The step's own environment, when a writer gives it apart from the
    /// node's layered one (Harmont's SDKs do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Set on the steps after a `wait(continue_on_failure=True)`: their
    /// `depends_on` edges only order them (our addition).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
    /// Cache volumes mounted into the step, over its pipeline's (our
    /// addition). See [`crate::effective_volumes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Volumes>,
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

/// A step's cache policy: what decides whether its stored snapshot is still
/// good, and the key Harmont's SDKs compute from it when they render one
/// (`hm` computes its own, see DESIGN.md §5, and takes this as one more
/// input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    #[serde(flatten)]
    pub kind: PolicyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The kinds of cache policy, as `{"policy": ...}` objects with exactly the
/// fields Harmont's SDKs write for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum PolicyKind {
    /// Never cached: the snapshot lives only for this run.
    None,
    /// Valid until an input changes.
    Forever {
        #[serde(default)]
        env_keys: Vec<String>,
    },
    /// Valid within one window of `duration_seconds`.
    Ttl {
        duration_seconds: u64,
        #[serde(default)]
        env_keys: Vec<String>,
    },
    /// Valid while the files matching `paths` keep their contents.
    OnChange { paths: Vec<String> },
    /// Valid while every one of `sub_policies` is.
    Compose { sub_policies: Vec<CachePolicy> },
}

impl CachePolicy {
    /// A policy of `kind` with no SDK key.
    pub fn new(kind: PolicyKind) -> Self {
        CachePolicy { kind, key: None }
    }

    /// Whether this policy caches at all (`none` does not).
    pub fn is_cached(&self) -> bool {
        !matches!(self.kind, PolicyKind::None)
    }

    /// The `env_keys` this policy itself names (not its sub-policies').
    pub fn env_keys(&self) -> &[String] {
        match &self.kind {
            PolicyKind::Forever { env_keys } | PolicyKind::Ttl { env_keys, .. } => env_keys,
            _ => &[],
        }
    }

    /// Whether this policy or one of its sub-policies depends on files.
    pub fn uses_files(&self) -> bool {
        match &self.kind {
            PolicyKind::OnChange { .. } => true,
            PolicyKind::Compose { sub_policies } => sub_policies.iter().any(CachePolicy::uses_files),
            _ => false,
        }
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
