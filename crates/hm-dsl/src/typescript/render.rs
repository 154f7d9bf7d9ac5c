//! The IR of TypeScript pipelines, made here from the steps the SDK built.
//!
//! The SDK's `pipeline()` checks its arguments and keeps them (its
//! `Lowering`: the leaves, the pipeline's env and default image); the graph
//! is made when somebody reads it. A graph nobody read in JavaScript is
//! made here instead, by the rules of Harmont's SDK (which the SDK's
//! `lowerGraph` follows too, and a test holds the two together): every
//! step the leaves build on once, parents first; keys from `key`, a unique
//! label slug or a hash of the step's place; each node's layered env; a
//! `builds_in` edge from the nearest ancestor that runs a command and
//! `depends_on` edges across `wait()` barriers, node by node.

use std::collections::{BTreeMap, HashMap, HashSet};

use hm_ir::{CachePolicy, Definition, EdgeKind, Graph, Node, Pipeline, PolicyKind, Step};
use rquickjs::{Atom, Ctx, Object, Value};
use sha2::Digest;

use super::{to_json, ToJsonError};

/// The environment every step starts with, before the pipeline's and its own.
const BASE_ENV: [(&str, &str); 2] = [("DEBIAN_FRONTEND", "noninteractive"), ("TERM", "dumb")];

/// Why the SDK's objects could not be made into a pipeline's IR.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error(transparent)]
    Engine(#[from] rquickjs::Error),
    /// A field of the wrong type: `expected` is "a string", "an array"...
    #[error("{what} must be {expected}")]
    Mistyped { what: &'static str, expected: &'static str },
    #[error("{what} must be a whole number of seconds, not {number}")]
    NotWholeSeconds { what: &'static str, number: f64 },
    #[error("{what}: the value of {name} must be a string")]
    NotAStringValue { what: &'static str, name: String },
    #[error("`network` must be \"host\" or \"none\", not {0:?}")]
    Network(String),
    #[error("{what}: {source}")]
    Volumes {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the SDK kept no leaves")]
    NoLeaves,
    #[error("a step is its own ancestor")]
    Cycle,
    #[error("cache policies nest too deep")]
    PoliciesTooDeep,
    #[error("a composed policy's policies must be an array")]
    NotPolicies,
    #[error("unknown cache policy kind `{0}`")]
    UnknownPolicy(String),
    #[error(transparent)]
    Value(#[from] ToJsonError),
    #[error("it is not JSON")]
    NotJson,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl RenderError {
    fn mistyped(what: &'static str, expected: &'static str) -> Self {
        RenderError::Mistyped { what, expected }
    }
}

/// Why a pipeline the SDK prepared could not be made into IR.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    /// Before its slug is known.
    #[error(transparent)]
    Read(#[from] RenderError),
    #[error("pipeline `{slug}`: triggers: {source}")]
    Triggers {
        slug: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("pipeline `{slug}`: no IR")]
    NoIr { slug: String },
    #[error("pipeline `{slug}`: {source}")]
    Lowering {
        slug: String,
        #[source]
        source: RenderError,
    },
    #[error("pipeline `{slug}`: the IR is not valid: {source}")]
    InvalidIr {
        slug: String,
        #[source]
        source: RenderError,
    },
}

/// The property names read from the SDK's objects, made once.
pub(crate) struct Names<'js> {
    cmd: Atom<'js>,
    parent: Atom<'js>,
    is_wait: Atom<'js>,
    continue_on_failure: Atom<'js>,
    label: Atom<'js>,
    cache: Atom<'js>,
    env: Atom<'js>,
    timeout_seconds: Atom<'js>,
    image: Atom<'js>,
    runner: Atom<'js>,
    runner_args: Atom<'js>,
    volumes: Atom<'js>,
    key_override: Atom<'js>,
    kind: Atom<'js>,
    env_keys: Atom<'js>,
    duration_seconds: Atom<'js>,
    paths: Atom<'js>,
    policies: Atom<'js>,
}

impl<'js> Names<'js> {
    pub(crate) fn new(ctx: &Ctx<'js>) -> rquickjs::Result<Self> {
        let atom = |name: &str| Atom::from_str(ctx.clone(), name);
        Ok(Names {
            cmd: atom("_cmd")?,
            parent: atom("_parent")?,
            is_wait: atom("_isWait")?,
            continue_on_failure: atom("_continueOnFailure")?,
            label: atom("_label")?,
            cache: atom("_cache")?,
            env: atom("_env")?,
            timeout_seconds: atom("_timeoutSeconds")?,
            image: atom("_image")?,
            runner: atom("_runner")?,
            runner_args: atom("_runnerArgs")?,
            volumes: atom("_volumes")?,
            key_override: atom("_keyOverride")?,
            kind: atom("kind")?,
            env_keys: atom("envKeys")?,
            duration_seconds: atom("durationSeconds")?,
            paths: atom("paths")?,
            policies: atom("policies")?,
        })
    }
}

/// A definition as the SDK's `prepare` hands it over, made into a pipeline.
pub(crate) fn pipeline<'js>(names: &Names<'js>, prepared: &Object<'js>) -> Result<Pipeline, PipelineError> {
    let get = |name: &str| prepared.get::<_, Value>(name).map_err(RenderError::from);
    let slug = text(get("slug")?, "slug")?.unwrap_or_default();
    let name = text(get("name")?, "name")?.unwrap_or_else(|| slug.clone());
    let allow_manual = get("allowManual")?.as_bool().unwrap_or(true);
    let triggers = text(get("triggers")?, "triggers")?.unwrap_or_else(|| "[]".to_owned());
    let triggers: Vec<serde_json::Value> = match serde_json::from_str(&triggers) {
        Ok(triggers) => triggers,
        Err(source) => return Err(PipelineError::Triggers { slug, source }),
    };
    let Some(ir) = get("ir")?.into_object() else {
        return Err(PipelineError::NoIr { slug });
    };
    let definition = match get("lowering")?.into_object() {
        Some(lowering) => definition(names, &ir, &lowering).map_err(|source| PipelineError::Lowering {
            slug: slug.clone(),
            source,
        })?,
        None => read_ir(&ir).map_err(|source| PipelineError::InvalidIr {
            slug: slug.clone(),
            source,
        })?,
    };
    Ok(Pipeline {
        slug,
        name,
        allow_manual,
        triggers,
        definition,
    })
}

/// An IR object as it is (one whose graph was read, or one the user
/// wrote), through `JSON.stringify` as Harmont's runner reads it.
fn read_ir<'js>(ir: &Object<'js>) -> Result<Definition, RenderError> {
    let json = ir
        .ctx()
        .json_stringify(ir.clone())?
        .ok_or(RenderError::NotJson)?
        .to_string()?;
    Ok(serde_json::from_str(&json)?)
}

/// The IR of a `pipeline()` whose graph nobody read: `ir`'s version,
/// timeout, network and volumes, and the graph made from `lowering`.
pub(crate) fn definition<'js>(
    names: &Names<'js>,
    ir: &Object<'js>,
    lowering: &Object<'js>,
) -> Result<Definition, RenderError> {
    let version = text(ir.get("version")?, "version")?.unwrap_or_default();
    let timeout_seconds = seconds(ir.get("timeout_seconds")?, "timeout_seconds")?;
    let network = match text(ir.get("network")?, "network")? {
        None => None,
        Some(network) if network == "host" => Some(hm_ir::Network::Host),
        Some(network) if network == "none" => Some(hm_ir::Network::None),
        Some(other) => return Err(RenderError::Network(other)),
    };
    let volumes = volumes(ir.get("volumes")?, "pipeline volumes")?;
    let get = |name: &str| lowering.get::<_, Value>(name);
    let leaves = get("leaves")?.into_array().ok_or(RenderError::NoLeaves)?;
    let env = env_of(get("env")?, "pipeline env")?.unwrap_or_default();
    let default_image = text(get("defaultImage")?, "defaultImage")?.unwrap_or_else(|| hm_ir::DEFAULT_IMAGE.to_owned());
    let mut lowerer = Lowerer::new(names);
    for leaf in leaves.iter::<Object>() {
        lowerer.leaf(leaf?)?;
    }
    Ok(Definition {
        version,
        timeout_seconds,
        network,
        volumes,
        graph: lowerer.graph(&env, &default_image),
    })
}

/// A step's fields, read from its object.
struct StepFields {
    cmd: Option<String>,
    is_wait: bool,
    continue_on_failure: bool,
    /// The index of the parent in [`Lowerer::steps`].
    parent: Option<usize>,
    label: Option<String>,
    cache: Option<CachePolicy>,
    env: Option<BTreeMap<String, String>>,
    timeout_seconds: Option<u64>,
    image: Option<String>,
    runner: Option<String>,
    runner_args: Option<serde_json::Value>,
    volumes: Option<hm_ir::Volumes>,
    key: Option<String>,
}

impl StepFields {
    fn runs_command(&self) -> bool {
        self.cmd.is_some() && !self.is_wait
    }
}

/// What a pipeline's leaves are, in the order the graph is made from.
enum Entry {
    /// A step (index in [`Lowerer::steps`]), or a wait met as an ancestor.
    Step(usize),
    /// A `wait()` listed among the leaves (it may be listed twice).
    Wait(bool),
}

struct Lowerer<'a, 'js> {
    names: &'a Names<'js>,
    steps: Vec<StepFields>,
    /// Step index by the identity of its object.
    index: HashMap<usize, usize>,
    ordered: Vec<Entry>,
    /// Policies read so far, by the identity of their object.
    policies: HashMap<usize, CachePolicy>,
}

/// The identity of an object while it is alive: its address in the engine.
fn identity(object: &Object<'_>) -> usize {
    // SAFETY: reading the pointer out of an object value; it is only
    // compared, never dereferenced.
    unsafe { rquickjs::qjs::JS_VALUE_GET_PTR(object.as_raw()) as usize }
}

fn text(value: Value<'_>, what: &'static str) -> Result<Option<String>, RenderError> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value
        .as_string()
        .and_then(|s| s.to_string().ok())
        .map(Some)
        .ok_or(RenderError::mistyped(what, "a string"))
}

fn seconds(value: Value<'_>, what: &'static str) -> Result<Option<u64>, RenderError> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    let number = value.as_number().ok_or(RenderError::mistyped(what, "a number"))?;
    if number < 0.0 || number.fract() != 0.0 || number > u64::MAX as f64 {
        return Err(RenderError::NotWholeSeconds { what, number });
    }
    Ok(Some(number as u64))
}

fn strings(value: Value<'_>, what: &'static str) -> Result<Vec<String>, RenderError> {
    let array = value.into_array().ok_or(RenderError::mistyped(what, "an array"))?;
    array
        .iter::<Value>()
        .map(|item| text(item?, what)?.ok_or(RenderError::mistyped(what, "strings")))
        .collect()
}

/// Volumes as the SDK keeps them, already in their IR form.
fn volumes(value: Value<'_>, what: &'static str) -> Result<Option<hm_ir::Volumes>, RenderError> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    serde_json::from_value(to_json(&value)?)
        .map(Some)
        .map_err(|source| RenderError::Volumes { what, source })
}

/// An object's own enumerable string properties, as an environment.
fn env_of(value: Value<'_>, what: &'static str) -> Result<Option<BTreeMap<String, String>>, RenderError> {
    let Some(object) = value.as_object() else {
        return Ok(None);
    };
    let mut env = BTreeMap::new();
    for prop in object.props::<String, Value>() {
        let (name, value) = prop?;
        match text(value, what)? {
            Some(value) => env.insert(name, value),
            None => return Err(RenderError::NotAStringValue { what, name }),
        };
    }
    Ok(Some(env))
}

impl<'a, 'js> Lowerer<'a, 'js> {
    fn new(names: &'a Names<'js>) -> Self {
        Lowerer {
            names,
            steps: Vec::new(),
            index: HashMap::new(),
            ordered: Vec::new(),
            policies: HashMap::new(),
        }
    }

    fn get(&self, step: &Object<'js>, atom: &Atom<'js>) -> rquickjs::Result<Value<'js>> {
        step.get::<_, Value>(atom.clone())
    }

    /// Adds a leaf: a listed wait, or the leaf and the ancestors not added
    /// yet, oldest first.
    fn leaf(&mut self, leaf: Object<'js>) -> Result<(), RenderError> {
        if self.get(&leaf, &self.names.is_wait)?.as_bool() == Some(true) {
            let lenient = self.get(&leaf, &self.names.continue_on_failure)?.as_bool() == Some(true);
            self.ordered.push(Entry::Wait(lenient));
            return Ok(());
        }
        // The leaf and its ancestors not added yet, each with its parent.
        let mut chain = Vec::new();
        let mut in_chain = HashSet::new();
        let mut walk = Some(leaf);
        while let Some(step) = walk {
            let id = identity(&step);
            if self.index.contains_key(&id) {
                break;
            }
            if !in_chain.insert(id) {
                return Err(RenderError::Cycle);
            }
            walk = self.get(&step, &self.names.parent)?.into_object();
            chain.push((step, walk.as_ref().map(identity)));
        }
        for (step, parent) in chain.into_iter().rev() {
            let parent = parent.map(|p| self.index[&p]);
            let read = self.read(&step, parent)?;
            self.index.insert(identity(&step), self.steps.len());
            self.ordered.push(Entry::Step(self.steps.len()));
            self.steps.push(read);
        }
        Ok(())
    }

    fn read(&mut self, step: &Object<'js>, parent: Option<usize>) -> Result<StepFields, RenderError> {
        let n = self.names;
        let cache = match self.get(step, &n.cache)?.into_object() {
            Some(policy) => Some(self.policy(&policy, 0)?),
            None => None,
        };
        let runner_args = self.get(step, &n.runner_args)?;
        Ok(StepFields {
            cmd: text(self.get(step, &n.cmd)?, "a step's command")?,
            is_wait: self.get(step, &n.is_wait)?.as_bool() == Some(true),
            continue_on_failure: self.get(step, &n.continue_on_failure)?.as_bool() == Some(true),
            parent,
            label: text(self.get(step, &n.label)?, "label")?,
            cache,
            env: env_of(self.get(step, &n.env)?, "env")?,
            timeout_seconds: seconds(self.get(step, &n.timeout_seconds)?, "timeout")?,
            image: text(self.get(step, &n.image)?, "image")?,
            runner: text(self.get(step, &n.runner)?, "runner")?,
            runner_args: if runner_args.is_null() || runner_args.is_undefined() {
                None
            } else {
                Some(to_json(&runner_args)?)
            },
            volumes: volumes(self.get(step, &n.volumes)?, "volumes")?,
            key: text(self.get(step, &n.key_override)?, "key")?,
        })
    }

    /// A cache policy's IR, read once per policy object.
    fn policy(&mut self, policy: &Object<'js>, depth: usize) -> Result<CachePolicy, RenderError> {
        let id = identity(policy);
        if let Some(known) = self.policies.get(&id) {
            return Ok(known.clone());
        }
        if depth > 64 {
            return Err(RenderError::PoliciesTooDeep);
        }
        let n = self.names;
        let get = |atom: &Atom<'js>| policy.get::<_, Value>(atom.clone());
        let kind = text(get(&n.kind)?, "a cache policy's kind")?.unwrap_or_default();
        let kind = match kind.as_str() {
            "forever" => PolicyKind::Forever {
                env_keys: strings(get(&n.env_keys)?, "envKeys")?,
            },
            "ttl" => PolicyKind::Ttl {
                duration_seconds: seconds(get(&n.duration_seconds)?, "ttl")?.unwrap_or_default(),
                env_keys: strings(get(&n.env_keys)?, "envKeys")?,
            },
            "on_change" => PolicyKind::OnChange {
                paths: strings(get(&n.paths)?, "paths")?,
            },
            "compose" => {
                let subs = get(&n.policies)?.into_array().ok_or(RenderError::NotPolicies)?;
                let mut sub_policies = Vec::with_capacity(subs.len());
                for sub in subs.iter::<Object>() {
                    sub_policies.push(self.policy(&sub?, depth + 1)?);
                }
                PolicyKind::Compose { sub_policies }
            }
            _ => return Err(RenderError::UnknownPolicy(kind)),
        };
        let ir = CachePolicy::new(kind);
        self.policies.insert(id, ir.clone());
        Ok(ir)
    }

    /// The nearest ancestor of step `i` that runs a command.
    fn command_parent(&self, i: usize) -> Option<usize> {
        let mut parent = self.steps[i].parent;
        while let Some(p) = parent {
            if self.steps[p].runs_command() {
                return Some(p);
            }
            parent = self.steps[p].parent;
        }
        None
    }

    /// The key of every step that runs a command (by step index): its own,
    /// else its label's slug when no other step's label gives that slug
    /// and no key took it, else a hash of its parent's key, its command
    /// and its position among the command steps.
    fn keys(&self, commands: &[usize]) -> Vec<Option<String>> {
        let slugs: Vec<Option<String>> = commands
            .iter()
            .map(|&i| {
                self.steps[i]
                    .label
                    .as_deref()
                    .map(slugify)
                    .filter(|slug| !slug.is_empty())
            })
            .collect();
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for slug in slugs.iter().flatten() {
            *uses.entry(slug).or_default() += 1;
        }
        let mut taken: HashSet<String> = commands.iter().filter_map(|&i| self.steps[i].key.clone()).collect();
        let mut keys: Vec<Option<String>> = vec![None; self.steps.len()];
        for (position, (&i, slug)) in commands.iter().zip(&slugs).enumerate() {
            let step = &self.steps[i];
            let key = match (&step.key, slug) {
                (Some(key), _) => key.clone(),
                (None, Some(slug)) if uses[slug.as_str()] == 1 && !taken.contains(slug) => {
                    taken.insert(slug.clone());
                    slug.clone()
                }
                _ => {
                    let parent_key = step.parent.and_then(|p| keys[p].as_deref()).unwrap_or_default();
                    hash_key(parent_key, step.cmd.as_deref().unwrap_or_default(), position)
                }
            };
            keys[i] = Some(key);
        }
        keys
    }

    /// The graph, with `env` under every step's own and `default_image` on
    /// imageless roots.
    fn graph(mut self, env: &BTreeMap<String, String>, default_image: &str) -> Graph {
        let commands: Vec<usize> = self
            .ordered
            .iter()
            .filter_map(|entry| match entry {
                Entry::Step(i) if self.steps[*i].runs_command() => Some(*i),
                _ => None,
            })
            .collect();
        let keys = self.keys(&commands);
        let key = |i: usize| keys[i].as_deref().unwrap_or_default();
        let mut node_of = vec![u32::MAX; self.steps.len()];
        // A parent is found by its key, as Harmont's SDK finds it: with two
        // steps of one key (which validation refuses) the edge goes to the
        // first of them.
        let mut first_of_key: HashMap<&str, u32> = HashMap::with_capacity(commands.len());
        for (n, &i) in commands.iter().enumerate() {
            node_of[i] = n as u32;
            first_of_key.entry(key(i)).or_insert(n as u32);
        }
        let mut shared = BTreeMap::new();
        for (name, value) in BASE_ENV {
            shared.insert(name.to_owned(), value.to_owned());
        }
        shared.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));

        let mut nodes = Vec::with_capacity(commands.len());
        let mut edges = Vec::new();
        let mut since_barrier: Vec<u32> = Vec::new();
        let mut waiting_on: Vec<u32> = Vec::new();
        let mut lenient = false;
        for entry in std::mem::take(&mut self.ordered) {
            let i = match entry {
                Entry::Wait(continue_on_failure) => {
                    waiting_on = std::mem::take(&mut since_barrier);
                    lenient = continue_on_failure;
                    continue;
                }
                Entry::Step(i) if self.steps[i].is_wait => {
                    waiting_on = std::mem::take(&mut since_barrier);
                    lenient = self.steps[i].continue_on_failure;
                    continue;
                }
                Entry::Step(i) if self.steps[i].cmd.is_none() => continue,
                Entry::Step(i) => i,
            };
            let n = node_of[i];
            let parent = self.command_parent(i).map(|p| first_of_key[key(p)]);
            if let Some(p) = parent {
                edges.push(Some((p, n, EdgeKind::BuildsIn)));
            }
            edges.extend(waiting_on.iter().map(|&before| Some((before, n, EdgeKind::DependsOn))));
            since_barrier.push(n);
            let read = &mut self.steps[i];
            let mut node_env = shared.clone();
            if let Some(own) = &read.env {
                node_env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let image = match (read.image.take(), parent) {
                (None, None) => Some(default_image.to_owned()),
                (image, _) => image,
            };
            nodes.push(Node {
                step: Step {
                    key: key(i).to_owned(),
                    cmd: read.cmd.clone().unwrap_or_default(),
                    label: read.label.take(),
                    cache: read.cache.take(),
                    timeout_seconds: read.timeout_seconds,
                    image,
                    runner: read.runner.take(),
                    runner_args: read.runner_args.take(),
                    env: None,
                    continue_on_failure: lenient && !waiting_on.is_empty(),
                    volumes: read.volumes.take(),
                },
                env: node_env,
            });
        }
        Graph {
            nodes,
            node_holes: Vec::new(),
            edge_property: "directed".to_owned(),
            edges,
        }
    }
}

/// 12 hex digits of the SHA-256 of the parent's key, the command and the
/// position, NUL-separated.
fn hash_key(parent_key: &str, cmd: &str, position: usize) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(parent_key.as_bytes());
    hash.update([0]);
    hash.update(cmd.as_bytes());
    hash.update([0]);
    hash.update(position.to_string().as_bytes());
    hex::encode(&hash.finalize()[..6])
}

/// The key a label gives: lowercase, `:shortcode:`s turned into
/// separators, runs of anything but ASCII letters and digits into one `-`,
/// none at either end.
pub(crate) fn slugify(label: &str) -> String {
    // Byte by byte: what matters is ASCII, and every byte of any other
    // character is a separator, as the character itself would be.
    let text = label.to_lowercase();
    let text = text.as_bytes();
    let slug_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let shortcode_byte = |b: u8| slug_byte(b) || matches!(b, b'_' | b'+' | b'-');
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b':' {
            let end = text[i + 1..]
                .iter()
                .position(|&c| !shortcode_byte(c))
                .map(|n| i + 1 + n);
            if let Some(end) = end.filter(|&end| end > i + 1 && text[end] == b':') {
                // `:name:` counts as a separator.
                dash = true;
                i = end + 1;
                continue;
            }
        }
        if slug_byte(b) {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(b as char);
        } else {
            dash = true;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_turn_shortcodes_and_runs_into_single_dashes() {
        assert_eq!(slugify("Build :rocket: the  App!"), "build-the-app");
        assert_eq!(slugify(":tada: release"), "release");
        assert_eq!(slugify("a:b:c"), "a-c");
        assert_eq!(slugify(":a:b:"), "b");
        assert_eq!(slugify("--hello--"), "hello");
        assert_eq!(slugify("Ünïcode step 2"), "n-code-step-2");
        assert_eq!(slugify("构建"), "");
        assert_eq!(slugify("::"), "");
    }

    #[test]
    fn hashed_keys_are_twelve_hex_digits_of_the_place() {
        // sha256("install\0build\01")
        let key = hash_key("install", "build", 1);
        assert_eq!(key.len(), 12);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, hash_key("install", "build", 2));
        assert_ne!(key, hash_key("", "build", 1));
    }
}
