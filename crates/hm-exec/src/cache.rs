//! Cache keys (DESIGN.md §5): computed by the runner from everything a
//! step's result depends on, hashed with BLAKE3 over a canonical, versioned
//! encoding, and kept with the entry so that a later miss can say what
//! changed.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;

use hm_ir::{CachePolicy, PlannedStep, PolicyKind};
use hm_vm::{Bounds, Network, Registry};
use serde::{Deserialize, Serialize};

use crate::workspace::{EntryKind, Manifest};

/// The version of the key encoding; changing it invalidates every entry.
const KEY_VERSION: &str = "hm-cache-key-v2";

/// Seconds since the epoch (0 before it), for `ttl` windows and entry times.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a build uses the cache.
#[derive(Clone)]
pub struct CacheSettings {
    pub registry: Arc<Registry>,
    pub bounds: Bounds,
    /// The project scope: the project root's canonical path, or a name
    /// from configuration to share entries across clones.
    pub scope: String,
    /// `--no-cache`: execute every step and refresh its entry.
    pub refresh: bool,
    /// The environment `hm` runs in: policies' `env_keys` are read here.
    pub host_env: Arc<BTreeMap<OsString, OsString>>,
    /// How often builds look for stored parts the registry does not know:
    /// the backend's grace before it collects one (an orphan found sooner
    /// could not go yet anyway).
    pub orphan_interval: std::time::Duration,
    /// The remote cache, when one is configured.
    pub remote: Option<crate::remote::RemoteSettings>,
    /// The identity of the CI build this run is one job of (`hm run
    /// --step`): steps without a cache policy are stored under it, so that
    /// the build's later jobs find their snapshots.
    pub build: Option<String>,
}

/// What a key depends on besides the step itself.
pub struct KeyContext<'a> {
    pub scope: &'a str,
    /// The `builds_in` parent's key.
    pub parent: Option<String>,
    /// The base image's content identity (roots only).
    pub base: Option<String>,
    /// The full environment the command runs with.
    pub env: BTreeMap<String, String>,
    /// The source now, for `on_change`.
    pub source: Option<&'a Manifest>,
    /// Seconds since the epoch, for `ttl`.
    pub now: u64,
    /// The network steps run with.
    pub network: Network,
    /// The environment `hm` runs in, for `env_keys`.
    pub host_env: &'a BTreeMap<OsString, OsString>,
    /// The CI build, for a step without a cache policy.
    pub build: Option<&'a str>,
}

/// Everything a step's cache key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub scope: String,
    /// The `builds_in` parent's key; a root has its base image instead.
    pub parent: Option<String>,
    /// The base image's content identity (roots only).
    pub base: Option<String>,
    pub image: Option<String>,
    pub cmd: String,
    /// The full environment the command runs with.
    pub env: BTreeMap<String, String>,
    /// `env_keys` read from the host: the hash of each value, or `unset`.
    pub env_keys: BTreeMap<String, String>,
    /// `ttl` windows: duration in seconds and `floor(now / duration)`.
    pub ttl: Vec<(u64, u64)>,
    /// `on_change` files: path (escaped as `hm_vm::os_path::escaped` shows
    /// it, so a name that is not UTF-8 keeps every byte) and content hash,
    /// or `missing` for a path or pattern that matches nothing.
    pub files: BTreeMap<String, String>,
    /// `cache.key` from the DSL: one more input, never trusted alone.
    pub dsl_key: Option<String>,
    /// The policy as written.
    pub policy: CachePolicy,
    /// The network the step ran with: a step that needs the network fails
    /// without it, so an entry made with one is not what a run without
    /// would make. Left out for `host`, which keeps earlier keys.
    #[serde(default, skip_serializing_if = "is_host")]
    pub network: Network,
    /// The CI build a step without a cache policy was stored for (`hm run
    /// --step`); left out otherwise, which keeps earlier keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

fn is_host(network: &Network) -> bool {
    *network == Network::Host
}

impl KeyInputs {
    /// The cache key: BLAKE3 of the versioned, canonical encoding.
    pub fn key(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(KEY_VERSION.as_bytes());
        hasher.update(&[0]);
        // Struct fields in declaration order, maps sorted: canonical.
        hasher.update(&serde_json::to_vec(self).unwrap_or_default());
        hasher.finalize().to_hex().to_string()
    }

    /// The inputs of `step` with `policy` in `context`.
    pub fn new(step: &PlannedStep, policy: &CachePolicy, context: KeyContext<'_>) -> Self {
        let (source, now, host_env) = (context.source, context.now, context.host_env);
        let mut inputs = KeyInputs {
            scope: context.scope.to_owned(),
            parent: context.parent,
            base: context.base,
            image: step.node.step.image.clone(),
            cmd: step.node.step.cmd.clone(),
            env: context.env,
            env_keys: BTreeMap::new(),
            ttl: Vec::new(),
            files: BTreeMap::new(),
            dsl_key: None,
            policy: policy.clone(),
            network: context.network,
            build: context.build.filter(|_| !policy.is_cached()).map(str::to_owned),
        };
        inputs.add_policy(policy, source, now, host_env);
        inputs
    }

    /// Makes the `on_change` files those of `source` (what was actually
    /// copied, when the source moved while the step started).
    pub fn refresh_files(&mut self, source: &Manifest) {
        self.files.clear();
        let policy = self.policy.clone();
        self.add_files(&policy, source);
    }

    fn add_files(&mut self, policy: &CachePolicy, source: &Manifest) {
        match &policy.kind {
            PolicyKind::OnChange { paths } => self.files.extend(matching_files(paths, source)),
            PolicyKind::Compose { sub_policies } => {
                for sub in sub_policies {
                    self.add_files(sub, source);
                }
            }
            PolicyKind::None | PolicyKind::Forever { .. } | PolicyKind::Ttl { .. } => {}
        }
    }

    fn add_policy(
        &mut self,
        policy: &CachePolicy,
        source: Option<&Manifest>,
        now: u64,
        host_env: &BTreeMap<OsString, OsString>,
    ) {
        for name in policy.env_keys() {
            let value = match host_env.get(OsStr::new(name)) {
                Some(v) => blake3::hash(v.as_encoded_bytes()).to_hex().to_string(),
                None => "unset".to_owned(),
            };
            self.env_keys.insert(name.clone(), value);
        }
        if let Some(key) = &policy.key {
            self.dsl_key = Some(match self.dsl_key.take() {
                Some(previous) => format!("{previous}\n{key}"),
                None => key.clone(),
            });
        }
        match &policy.kind {
            PolicyKind::Ttl { duration_seconds, .. } => {
                let duration = (*duration_seconds).max(1);
                self.ttl.push((duration, now / duration));
            }
            PolicyKind::OnChange { paths } => {
                let empty = Manifest::default();
                self.files.extend(matching_files(paths, source.unwrap_or(&empty)));
            }
            PolicyKind::Compose { sub_policies } => {
                for sub in sub_policies {
                    self.add_policy(sub, source, now, host_env);
                }
            }
            PolicyKind::None | PolicyKind::Forever { .. } => {}
        }
    }

    /// Why `self` (an earlier entry's inputs) differs from `now`, as one
    /// line naming the inputs that changed, or `None` if they are the same.
    pub fn explain_change(&self, now: &KeyInputs) -> Option<String> {
        let mut reasons = Vec::new();
        if self.scope != now.scope {
            reasons.push("project scope changed".to_owned());
        }
        if self.cmd != now.cmd {
            reasons.push("command changed".to_owned());
        }
        let env = changed_names(&self.env, &now.env);
        if !env.is_empty() {
            reasons.push(format!("env changed: {}", first_few(&env)));
        }
        let env_keys = changed_names(&self.env_keys, &now.env_keys);
        if !env_keys.is_empty() {
            reasons.push(format!("env_keys changed: {}", first_few(&env_keys)));
        }
        if self.image != now.image || self.base != now.base {
            let show = |i: &Option<String>| i.clone().unwrap_or_else(|| "none".to_owned());
            if self.image != now.image {
                reasons.push(format!("image changed: {} -> {}", show(&self.image), show(&now.image)));
            } else {
                reasons.push(format!("image `{}` changed", show(&now.image)));
            }
        }
        if self.network != now.network {
            reasons.push(format!("network changed: {} -> {}", self.network, now.network));
        }
        if self.parent != now.parent {
            reasons.push("parent changed".to_owned());
        }
        let files = changed_names(&self.files, &now.files);
        if !files.is_empty() {
            reasons.push(format!("files changed: {}", first_few(&files)));
        }
        if self.ttl != now.ttl {
            reasons.push("ttl window passed".to_owned());
        }
        if self.dsl_key != now.dsl_key {
            reasons.push("cache key changed".to_owned());
        }
        if self.policy != now.policy && reasons.is_empty() {
            reasons.push("cache policy changed".to_owned());
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Names whose values differ between two maps (added, removed or changed).
fn changed_names(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `a, b, c and 4 more`.
fn first_few(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    match names.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// Whether a pattern is a glob rather than a plain path.
fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// The source files `patterns` select (paths relative to the project root:
/// a file, a directory and everything below it, or a glob), each with the
/// hash of its kind, mode and content; a pattern that selects nothing is
/// recorded as `missing`.
fn matching_files(patterns: &[String], source: &Manifest) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for pattern in patterns {
        let trimmed = pattern.trim_start_matches("./").trim_end_matches('/');
        let matcher = is_glob(trimmed).then(|| {
            globset::GlobBuilder::new(trimmed)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
        });
        let mut matched = false;
        for (path, entry) in &source.entries {
            if entry.kind == EntryKind::Dir {
                continue;
            }
            let selected = match &matcher {
                Some(Ok(glob)) => glob.is_match(path),
                // An invalid glob selects what its literal text names.
                Some(Err(_)) | None => path == Path::new(trimmed) || path.starts_with(trimmed),
            };
            if selected {
                matched = true;
                let mut hasher = blake3::Hasher::new();
                hasher.update(&[entry.kind as u8]);
                hasher.update(&entry.mode.to_le_bytes());
                hasher.update(&entry.hash);
                files.insert(
                    hm_vm::os_path::escaped(path),
                    hasher.finalize().to_hex()[..32].to_owned(),
                );
            }
        }
        if !matched {
            files.insert(pattern.clone(), "missing".to_owned());
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::ManifestEntry;
    use serde_json::json;

    fn manifest(files: &[(&str, u8)]) -> Manifest {
        let mut m = Manifest::default();
        for (path, content) in files {
            m.entries.insert(
                path.into(),
                ManifestEntry {
                    kind: EntryKind::File,
                    mode: 0o644,
                    hash: [*content; 32],
                },
            );
        }
        m
    }

    fn step(policy: serde_json::Value) -> (PlannedStep, CachePolicy) {
        let pipeline: hm_ir::Pipeline = serde_json::from_value(json!({
            "slug": "p", "definition": {"version": "0", "graph": {"edge_property": "directed", "edges": [],
            "nodes": [{"step": {"key": "s", "cmd": "make", "cache": policy}}]}}
        }))
        .unwrap();
        let plan = hm_ir::Plan::new(&pipeline).unwrap();
        let step = plan.steps[0].clone();
        let policy = step.node.step.cache.clone().unwrap();
        (step, policy)
    }

    fn inputs(policy: serde_json::Value, source: &Manifest, now: u64) -> KeyInputs {
        inputs_in(policy, source, now, &BTreeMap::new())
    }

    fn inputs_in(
        policy: serde_json::Value,
        source: &Manifest,
        now: u64,
        host_env: &BTreeMap<OsString, OsString>,
    ) -> KeyInputs {
        let (step, policy) = step(policy);
        let context = KeyContext {
            scope: "/p",
            parent: None,
            base: Some("host:x".into()),
            env: BTreeMap::new(),
            source: Some(source),
            now,
            network: Network::Host,
            host_env,
            build: None,
        };
        KeyInputs::new(&step, &policy, context)
    }

    #[test]
    fn on_change_selects_files_dirs_and_globs() {
        let src = manifest(&[("src/a.rs", 1), ("src/sub/b.rs", 2), ("Cargo.lock", 3), ("README", 4)]);
        let files = matching_files(&["Cargo.lock".into(), "src".into(), "*.md".into()], &src);
        let keys: Vec<_> = files.keys().cloned().collect();
        assert_eq!(keys, ["*.md", "Cargo.lock", "src/a.rs", "src/sub/b.rs"]);
        assert_eq!(files["*.md"], "missing");
        let globbed = matching_files(&["src/*.rs".into()], &src);
        assert_eq!(
            globbed.keys().collect::<Vec<_>>(),
            ["src/a.rs"],
            "`*` does not cross directories"
        );
        let deep = matching_files(&["src/**/*.rs".into()], &src);
        assert_eq!(deep.len(), 2);
    }

    #[test]
    fn names_that_are_not_utf8_are_selected_and_told_apart() {
        use std::os::unix::ffi::OsStrExt;
        let mut src = Manifest::default();
        for (name, content) in [(&b"src/f\xff"[..], 1), (b"src/f\xfe", 2)] {
            let entry = ManifestEntry {
                kind: EntryKind::File,
                mode: 0o644,
                hash: [content; 32],
            };
            src.entries.insert(std::ffi::OsStr::from_bytes(name).into(), entry);
        }
        for pattern in ["src", "src/f*"] {
            let files = matching_files(&[pattern.into()], &src);
            assert_eq!(
                files.keys().collect::<Vec<_>>(),
                ["src/f\\xfe", "src/f\\xff"],
                "{pattern}"
            );
        }
    }

    #[test]
    fn keys_change_with_what_they_cover_and_nothing_else() {
        let src = manifest(&[("lock", 1), ("other", 2)]);
        let policy = json!({"policy": "on_change", "paths": ["lock"]});
        let base = inputs(policy.clone(), &src, 0);
        let edited_other = manifest(&[("lock", 1), ("other", 9)]);
        assert_eq!(base.key(), inputs(policy.clone(), &edited_other, 0).key());
        let edited_lock = manifest(&[("lock", 7), ("other", 2)]);
        let changed = inputs(policy.clone(), &edited_lock, 0);
        assert_ne!(base.key(), changed.key());
        assert_eq!(base.explain_change(&changed).unwrap(), "files changed: lock");

        let ttl = json!({"policy": "ttl", "duration_seconds": 60});
        assert_eq!(
            inputs(ttl.clone(), &src, 60).key(),
            inputs(ttl.clone(), &src, 119).key()
        );
        let later = inputs(ttl.clone(), &src, 120);
        assert_ne!(inputs(ttl.clone(), &src, 60).key(), later.key());
        assert_eq!(
            inputs(ttl, &src, 60).explain_change(&later).unwrap(),
            "ttl window passed"
        );
    }

    /// Issue 11, item 1: a key is made again from what was copied.
    #[test]
    fn refreshed_files_key_what_was_copied() {
        let scanned = manifest(&[("lock", 1), ("other", 2)]);
        let policy = json!({"policy": "compose", "sub_policies": [{"policy": "forever"}, {"policy": "on_change", "paths": ["lock"]}]});
        let mut keyed = inputs(policy.clone(), &scanned, 0);
        let copied = manifest(&[("lock", 7), ("other", 2)]);
        keyed.refresh_files(&copied);
        assert_eq!(keyed.key(), inputs(policy.clone(), &copied, 0).key());
        keyed.refresh_files(&scanned);
        assert_eq!(keyed.key(), inputs(policy, &scanned, 0).key());
    }

    #[test]
    fn env_keys_are_read_from_the_host_and_never_stored_in_clear() {
        let src = Manifest::default();
        let policy = json!({"policy": "forever", "env_keys": ["HM_TEST_SECRET_FOR_KEYS"]});
        let host = |value: &str| BTreeMap::from([("HM_TEST_SECRET_FOR_KEYS".into(), value.into())]);
        let a = inputs_in(policy.clone(), &src, 0, &host("s3cret"));
        assert!(!serde_json::to_string(&a).unwrap().contains("s3cret"));
        let b = inputs_in(policy.clone(), &src, 0, &host("other"));
        assert_ne!(a.key(), b.key());
        let unset = inputs(policy, &src, 0);
        assert_eq!(unset.env_keys["HM_TEST_SECRET_FOR_KEYS"], "unset");
        assert_eq!(
            a.explain_change(&b).unwrap(),
            "env_keys changed: HM_TEST_SECRET_FOR_KEYS"
        );
    }

    #[test]
    fn explanations_name_what_changed() {
        let src = Manifest::default();
        let a = inputs(json!({"policy": "forever"}), &src, 0);
        let mut b = a.clone();
        b.cmd = "make all".into();
        b.env.insert("CC".into(), "clang".into());
        b.parent = Some("p".into());
        assert_eq!(
            a.explain_change(&b).unwrap(),
            "command changed; env changed: CC; parent changed"
        );
        assert_eq!(a.explain_change(&a), None);
        assert_eq!(
            first_few(&["a".into(), "b".into(), "c".into(), "d".into(), "e".into()]),
            "a, b, c and 2 more"
        );
    }

    /// A step run without the network is keyed apart from one run with it
    /// (which could download what the other cannot); `host` adds nothing
    /// to the encoding, so entries made before the network mode existed
    /// still hit.
    #[test]
    fn the_network_mode_is_a_key_input_and_host_keeps_earlier_keys() {
        let src = Manifest::default();
        let host = inputs(json!({"policy": "forever"}), &src, 0);
        assert!(!serde_json::to_string(&host).unwrap().contains("network"));
        let mut none = host.clone();
        none.network = Network::None;
        assert_ne!(host.key(), none.key());
        assert_eq!(host.explain_change(&none).unwrap(), "network changed: host -> none");
        let stored: KeyInputs = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(stored.network, Network::None);
    }
}
