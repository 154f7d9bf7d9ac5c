//! The IR of TypeScript pipelines, made here from the steps the SDK built.
//!
//! The SDK's `__prepare` checks each definition, calls its pipeline
//! function and flattens what it returns into a sequence of steps and waits
//! (a wait stands as its `continueOnFailure`). Each step is a `Step` whose
//! `_record` holds its fields and its parent; this module walks those
//! records, gives every step its key and environment and writes the edges,
//! exactly as the Python SDK renders the same pipeline. Doing it here rather
//! than in JavaScript makes a large pipeline's render several times faster.

use std::collections::{BTreeMap, HashMap};

use hm_ir::{CachePolicy, Definition, EdgeKind, Graph, Node, Pipeline, PolicyKind, Step, DEFAULT_IMAGE};
use rquickjs::{Array, Atom, Ctx, Object, Value};
use sha2::Digest;

use super::{to_json, Sourced};

/// The environment every step starts with, before the pipeline's and its own.
const BASE_ENV: [(&str, &str); 2] = [("DEBIAN_FRONTEND", "noninteractive"), ("TERM", "dumb")];

/// Why a pipeline could not be rendered: a message for the user, and the
/// file whose pipeline it was (`None` when the SDK handed over something
/// that is not a pipeline at all).
#[derive(Debug)]
pub(crate) struct Failure {
    pub file: Option<String>,
    pub message: String,
}

/// The property names read from the SDK's objects, made once.
struct Names<'js> {
    record: Atom<'js>,
    policy: Atom<'js>,
    env_keys: Atom<'js>,
    duration_seconds: Atom<'js>,
    paths: Atom<'js>,
    sub_policies: Atom<'js>,
    key: Atom<'js>,
}

impl<'js> Names<'js> {
    fn new(ctx: &Ctx<'js>) -> rquickjs::Result<Self> {
        let atom = |name: &str| Atom::from_str(ctx.clone(), name);
        Ok(Names {
            record: atom("_record")?,
            policy: atom("policy")?,
            env_keys: atom("envKeys")?,
            duration_seconds: atom("durationSeconds")?,
            paths: atom("paths")?,
            sub_policies: atom("subPolicies")?,
            key: atom("key")?,
        })
    }
}

/// Renders the pipelines `__prepare` returned, in order, with their files.
pub(crate) fn render<'js>(ctx: &Ctx<'js>, prepared: &Array<'js>) -> Result<Vec<Sourced>, Failure> {
    let names = Names::new(ctx).map_err(|e| Failure {
        file: None,
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(prepared.len());
    for item in prepared.iter::<Object>() {
        let pipeline = item.map_err(|e| Failure {
            file: None,
            message: format!("the SDK prepared something else: {e}"),
        })?;
        let file: String = pipeline.get("file").unwrap_or_default();
        let rendered = Renderer::new(&names).pipeline(&pipeline).map_err(|message| Failure {
            file: Some(file.clone()),
            message,
        })?;
        out.push((rendered, crate::Location::file(file)));
    }
    Ok(out)
}

/// A step as read from its record.
struct Read {
    cmd: String,
    parent: Option<usize>,
    image: Option<String>,
    label: Option<String>,
    cache: Option<CachePolicy>,
    env: Option<BTreeMap<String, String>>,
    key: Option<String>,
    timeout_seconds: Option<u64>,
    runner: Option<String>,
    runner_args: Option<serde_json::Value>,
}

/// The state of one pipeline's render.
struct Renderer<'a, 'js> {
    names: &'a Names<'js>,
    nodes: Vec<Read>,
    /// Node index by the identity of its `Step` object.
    index: HashMap<usize, usize>,
    /// Policies read so far, by the identity of their object.
    policies: HashMap<usize, CachePolicy>,
}

/// The identity of an object while it is alive: its address in the engine.
fn identity(object: &Object<'_>) -> usize {
    // SAFETY: reading the pointer out of an object value; it is only
    // compared, never dereferenced.
    unsafe { rquickjs::qjs::JS_VALUE_GET_PTR(object.as_raw()) as usize }
}

fn text(value: Value<'_>, what: &str) -> Result<Option<String>, String> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value
        .as_string()
        .and_then(|s| s.to_string().ok())
        .map(Some)
        .ok_or_else(|| format!("{what} must be a string"))
}

fn seconds(value: Value<'_>, what: &str) -> Result<Option<u64>, String> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    let number = value.as_number().ok_or_else(|| format!("{what} must be a number"))?;
    if number < 0.0 || number.fract() != 0.0 || number > u64::MAX as f64 {
        return Err(format!("{what} must be a whole number of seconds, not {number}"));
    }
    Ok(Some(number as u64))
}

fn strings(value: Value<'_>, what: &str) -> Result<Vec<String>, String> {
    let Some(array) = value.as_array() else {
        return Ok(Vec::new());
    };
    array
        .iter::<Value>()
        .map(|item| {
            item.map_err(|e| e.to_string())
                .and_then(|item| text(item, what)?.ok_or_else(|| format!("{what} must be strings")))
        })
        .collect()
}

/// An object's own string properties, as an environment.
fn env_of(value: Value<'_>, what: &str) -> Result<Option<BTreeMap<String, String>>, String> {
    let Some(object) = value.as_object() else {
        return Ok(None);
    };
    let mut env = BTreeMap::new();
    for prop in object.props::<String, Value>() {
        let (name, value) = prop.map_err(|e| e.to_string())?;
        let value = text(value, what)?.ok_or_else(|| format!("{what} values must be strings"))?;
        env.insert(name, value);
    }
    Ok(Some(env))
}

impl<'a, 'js> Renderer<'a, 'js> {
    fn new(names: &'a Names<'js>) -> Self {
        Renderer {
            names,
            nodes: Vec::new(),
            index: HashMap::new(),
            policies: HashMap::new(),
        }
    }

    fn pipeline(mut self, prepared: &Object<'js>) -> Result<Pipeline, String> {
        let get = |name: &str| prepared.get::<_, Value>(name).map_err(|e| e.to_string());
        let slug = text(get("slug")?, "slug")?.unwrap_or_default();
        let name = text(get("name")?, "name")?.unwrap_or_else(|| slug.clone());
        let allow_manual = get("allowManual")?.as_bool().unwrap_or(true);
        let triggers = match to_json(&get("triggers")?)? {
            serde_json::Value::Array(triggers) => triggers,
            _ => Vec::new(),
        };
        let pipeline_env = env_of(get("env")?, "pipeline env")?.unwrap_or_default();
        let timeout_seconds = seconds(get("timeoutSeconds")?, "pipeline timeout")?;
        let sequence: Array = get("sequence")?
            .into_array()
            .ok_or("the SDK prepared no step sequence")?;

        // Steps in the order they first appear (each after its ancestors),
        // in groups split by waits.
        let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
        let mut lenient_groups = Vec::new();
        for item in sequence.iter::<Value>() {
            let item = item.map_err(|e| e.to_string())?;
            if let Some(continue_on_failure) = item.as_bool() {
                groups.push(Vec::new());
                lenient_groups.push(continue_on_failure);
                continue;
            }
            let step = item
                .into_object()
                .ok_or("the SDK prepared something other than a step")?;
            let first = self.nodes.len();
            self.emit(step)?;
            groups
                .last_mut()
                .expect("one group at least")
                .extend(first..self.nodes.len());
        }

        let keys = self.keys(&slug)?;
        let mut lenient = vec![false; self.nodes.len()];
        for (group, continue_on_failure) in groups.iter().skip(1).zip(lenient_groups) {
            if continue_on_failure {
                for &node in group {
                    lenient[node] = true;
                }
            }
        }

        let mut shared = BTreeMap::new();
        for (name, value) in BASE_ENV {
            shared.insert(name.to_owned(), value.to_owned());
        }
        shared.extend(pipeline_env);
        let mut edges = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(parent) = node.parent {
                edges.push(Some((parent as u32, i as u32, EdgeKind::BuildsIn)));
            }
        }
        // Each group waits for the last non-empty one before it, so
        // `wait(), wait()` joins like one wait.
        let mut before: &[usize] = &[];
        for after in &groups {
            for &dst in after {
                for &src in before {
                    edges.push(Some((src as u32, dst as u32, EdgeKind::DependsOn)));
                }
            }
            if !after.is_empty() {
                before = after;
            }
        }

        let nodes = self
            .nodes
            .into_iter()
            .zip(keys)
            .zip(lenient)
            .map(|((node, key), continue_on_failure)| {
                let mut env = shared.clone();
                if let Some(own) = &node.env {
                    env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                let image = match node.parent {
                    Some(_) => node.image,
                    None => node.image.or_else(|| Some(DEFAULT_IMAGE.to_owned())),
                };
                Node {
                    step: Step {
                        key,
                        cmd: node.cmd,
                        label: node.label.filter(|l| !l.is_empty()),
                        image,
                        env: node.env.filter(|e| !e.is_empty()),
                        cache: node.cache,
                        timeout_seconds: node.timeout_seconds,
                        runner: node.runner,
                        runner_args: node.runner_args,
                        continue_on_failure,
                    },
                    env,
                }
            })
            .collect();
        Ok(Pipeline {
            slug,
            name,
            allow_manual,
            triggers,
            definition: Definition {
                version: hm_ir::IR_VERSION.to_owned(),
                timeout_seconds,
                graph: Graph {
                    nodes,
                    node_holes: Vec::new(),
                    edge_property: "directed".to_owned(),
                    edges,
                },
            },
        })
    }

    /// Adds `step` and the ancestors not added yet, oldest first.
    fn emit(&mut self, step: Object<'js>) -> Result<(), String> {
        let mut chain = Vec::new();
        let mut walk = Some(step);
        while let Some(step) = walk {
            let id = identity(&step);
            if self.index.contains_key(&id) {
                break;
            }
            let record: Array = step
                .get::<_, Value>(self.names.record.clone())
                .map_err(|e| e.to_string())?
                .into_array()
                .ok_or("the pipeline holds something other than a step")?;
            let parent: Value = record.get(1).map_err(|e| e.to_string())?;
            walk = parent.into_object();
            chain.push((id, record, walk.as_ref().map(identity)));
        }
        for (id, record, parent) in chain.into_iter().rev() {
            let parent = parent.map(|p| self.index[&p]);
            let node = self.read(&record, parent)?;
            self.index.insert(id, self.nodes.len());
            self.nodes.push(node);
        }
        Ok(())
    }

    /// A step's fields from its record: cmd, parent, image, label, cache,
    /// env, key, timeout, runner, runner args.
    fn read(&mut self, record: &Array<'js>, parent: Option<usize>) -> Result<Read, String> {
        let field = |i: usize| record.get::<Value>(i).map_err(|e| e.to_string());
        let cache = match field(4)?.into_object() {
            Some(policy) => Some(self.policy(&policy)?),
            None => None,
        };
        let runner_args = field(9)?;
        Ok(Read {
            cmd: text(field(0)?, "a step's command")?
                .ok_or("a scratch root runs nothing by itself; call .sh(...) on it")?,
            parent,
            image: text(field(2)?, "image")?,
            label: text(field(3)?, "label")?,
            cache,
            env: env_of(field(5)?, "env")?,
            key: text(field(6)?, "key")?,
            timeout_seconds: seconds(field(7)?, "timeout")?,
            runner: text(field(8)?, "runner")?,
            runner_args: if runner_args.is_null() || runner_args.is_undefined() {
                None
            } else {
                Some(to_json(&runner_args)?)
            },
        })
    }

    /// A cache policy's IR, read once per policy object.
    fn policy(&mut self, policy: &Object<'js>) -> Result<CachePolicy, String> {
        let id = identity(policy);
        if let Some(known) = self.policies.get(&id) {
            return Ok(known.clone());
        }
        let n = self.names;
        let get = |atom: &Atom<'js>| policy.get::<_, Value>(atom.clone()).map_err(|e| e.to_string());
        let mut sub_policies = Vec::new();
        if let Some(subs) = get(&n.sub_policies)?.as_array() {
            for sub in subs.iter::<Object>() {
                sub_policies.push(self.policy(&sub.map_err(|e| e.to_string())?)?);
            }
        }
        let name = text(get(&n.policy)?, "policy")?.ok_or("a cache policy has no name")?;
        let env_keys = strings(get(&n.env_keys)?, "envKeys")?;
        let kind = match name.as_str() {
            "none" => PolicyKind::None,
            "forever" => PolicyKind::Forever { env_keys },
            "ttl" => PolicyKind::Ttl {
                duration_seconds: seconds(get(&n.duration_seconds)?, "ttl")?.unwrap_or_default(),
                env_keys,
            },
            "on_change" => PolicyKind::OnChange {
                paths: strings(get(&n.paths)?, "paths")?,
            },
            "compose" => PolicyKind::Compose { sub_policies },
            other => return Err(format!("unknown cache policy `{other}`")),
        };
        let ir = CachePolicy {
            kind,
            key: text(get(&n.key)?, "a policy's key")?,
        };
        self.policies.insert(id, ir.clone());
        Ok(ir)
    }

    /// Every node's key: its own, else its label's slug when no other step
    /// has that, else a hash of its parent's key, its command and how many
    /// steps with the same parent and command come before it.
    fn keys(&self, slug: &str) -> Result<Vec<String>, String> {
        let slugs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match (&n.key, &n.label) {
                (None, Some(label)) if !label.is_empty() => slugify(label),
                _ => String::new(),
            })
            .collect();
        let mut taken: HashMap<&str, usize> = HashMap::new();
        for key in self.nodes.iter().filter_map(|n| n.key.as_deref()) {
            *taken.entry(key).or_default() += 1;
        }
        for s in slugs.iter().filter(|s| !s.is_empty()) {
            *taken.entry(s).or_default() += 1;
        }
        let mut places: HashMap<(Option<usize>, &str), usize> = HashMap::new();
        let mut keys: Vec<String> = Vec::with_capacity(self.nodes.len());
        for (node, slug) in self.nodes.iter().zip(&slugs) {
            // Every step counts towards the positions, keyed or not.
            let count = places.entry((node.parent, node.cmd.as_str())).or_default();
            let position = *count;
            *count += 1;
            let key = match &node.key {
                Some(key) => key.clone(),
                None if !slug.is_empty() && taken[slug.as_str()] == 1 => slug.clone(),
                None => derived_key(node.parent.map_or("", |p| keys[p].as_str()), &node.cmd, position),
            };
            keys.push(key);
        }
        let mut seen = std::collections::HashSet::new();
        for key in &keys {
            if !seen.insert(key.as_str()) {
                return Err(format!(
                    "pipeline `{slug}`: two steps have the key `{key}`; give one of them another key"
                ));
            }
        }
        Ok(keys)
    }
}

/// A key from what places a step: 12 hex digits of the SHA-256 of its
/// parent's key, its command and its position among steps with the same
/// parent and command.
fn derived_key(parent_key: &str, cmd: &str, position: usize) -> String {
    let digest = sha2::Sha256::digest(format!("{parent_key}\x1f{cmd}\x1f{position}").as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a label gives: lowercase, `:emoji:` shortcodes dropped, runs of
/// other characters turned into `-`.
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
                i = end + 1; // `:name:` is dropped
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
    fn slugs_drop_shortcodes_and_join_runs_with_dashes() {
        assert_eq!(slugify("Build :rocket: the  App!"), "build-the-app");
        assert_eq!(slugify(":tada: release"), "release");
        assert_eq!(slugify("a:b:c"), "ac");
        assert_eq!(slugify("Ünïcode step 2"), "n-code-step-2");
        assert_eq!(slugify("::"), "");
    }

    #[test]
    fn derived_keys_are_twelve_hex_digits_of_the_place() {
        let key = derived_key("", "make", 0);
        assert_eq!(key.len(), 12);
        assert_ne!(key, derived_key("", "make", 1));
        assert_ne!(key, derived_key("p", "make", 0));
    }
}
