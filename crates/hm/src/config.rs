//! Configuration, resolved once: `~/.config/hm/config.toml` (respecting
//! `XDG_CONFIG_HOME`), then the project's `.hm/config.toml`, then `HM_*`
//! environment variables, then flags (DESIGN.md §5).
//!
//! ```toml
//! backend = "sandbox"     # HM_BACKEND
//! parallelism = 4         # HM_PARALLELISM
//! network = "none"        # HM_NETWORK: "host" (default) or "none"
//!
//! [cache]                 # bounds, kept during a run as well as after it:
//! max_size = "20GiB"      # HM_CACHE_MAX_SIZE: the bound that matters (bytes
//!                         # of layers; the ends of chains go first)
//! max_entries = 10000     # HM_CACHE_MAX_ENTRIES: ten 1,000-step pipelines
//!                         # (entries a kept descendant makes unnecessary go first)
//! scope = "my-project"    # HM_CACHE_SCOPE: share entries across clones
//! remote = "ghcr.io/team/hm-cache"   # HM_CACHE_REMOTE: a snapshot cache shared
//!                         # through an OCI registry (DESIGN.md §5)
//! remote_mode = "read"    # HM_CACHE_REMOTE_MODE: "write" (default: pull and
//!                         # push), "read" (pull only) or "off"
//!
//! [resources]             # limits of each step ("none" or 0: no limit)
//! memory = "4GiB"         # HM_MEMORY (default 8GiB)
//! cpus = 2.5              # HM_CPUS (default: all)
//! pids = 1024             # HM_PIDS: processes and threads (default 4096)
//! disk = "20GB"           # HM_DISK: what a step writes (default 10GB)
//!
//! [images]                # pulls for the sandbox backend
//! pull = "missing"        # HM_PULL: "missing" (default), "always" or "never"
//! insecure = ["registry.lan:5000"]   # HM_INSECURE_REGISTRIES (comma-separated):
//!                         # plain HTTP (loopback registries always may)
//! [images.mirrors]        # tried in order, then the registry itself
//! "docker.io" = ["mirror.lan:5000"]
//!
//! [history]               # past runs, for `hm runs` and `hm logs`
//! runs = 50               # runs kept
//! max_size = "512MiB"     # bytes they may take
//!
//! [preferences]           # Harmont's keys
//! format = "json"         # the default of `hm run --format`
//! auto_watch = false      # accepted; hm has no watch mode
//!
//! [volumes]               # cache volumes mounted into every step, by
//!                         # mount path (relative: under /workspace); the
//!                         # project's file wins per path over the user's
//! "/root/.cargo/registry" = "cargo-registry"
//! "target" = { name = "cargo-target", sharing = "locked" }
//! ```
//!
//! Harmont's configuration files are read as they are: `backend = "cloud"`
//! and a `[cloud]` table (`org`, `api_url`, `pipeline`) concern Harmont's
//! hosted service, which is not part of `hm`; they are accepted with one
//! note, and the run goes on locally (see docs/decisions.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::{BackendName, Format, NetworkName, PullPolicy, RemoteMode};

/// One configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    backend: Option<BackendSetting>,
    parallelism: Option<usize>,
    network: Option<NetworkName>,
    #[serde(default)]
    cache: CacheFile,
    #[serde(default)]
    resources: ResourcesFile,
    #[serde(default)]
    preferences: PreferencesFile,
    #[serde(default)]
    images: ImagesFile,
    #[serde(default)]
    history: HistoryFile,
    /// `[volumes]`: each value read on its own, so that an error names
    /// its mount path.
    #[serde(default)]
    volumes: BTreeMap<String, toml::Value>,
    /// Harmont's hosted-service settings: read, and otherwise ignored.
    cloud: Option<CloudFile>,
}

/// `backend`: one of ours, or Harmont's hosted service.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BackendSetting {
    Sandbox,
    Docker,
    Cloud,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesFile {
    format: Option<FormatSetting>,
    /// Asks for a watch mode, which `hm` does not have; read so that a
    /// wrong type is still an error.
    #[allow(dead_code)]
    auto_watch: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatSetting {
    Human,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read so that a misspelt key is still an error
struct CloudFile {
    org: Option<String>,
    api_url: Option<String>,
    pipeline: Option<String>,
}

/// `[resources]`: read as a step's `runner_args` are, by one parser.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcesFile {
    memory: Option<toml::Value>,
    cpus: Option<toml::Value>,
    pids: Option<toml::Value>,
    disk: Option<toml::Value>,
}

impl ResourcesFile {
    /// The table as `runner_args` (`{"memory": "4GiB", "cpus": 2.5}`).
    fn into_runner_args(self) -> serde_json::Value {
        let fields = [
            ("memory", self.memory),
            ("cpus", self.cpus),
            ("pids", self.pids),
            ("disk", self.disk),
        ];
        let args = fields
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), json_of(value?))))
            .collect();
        serde_json::Value::Object(args)
    }
}

/// A TOML value as JSON (a NaN or an infinity as its text, which no limit
/// takes).
fn json_of(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or_else(|| f.to_string().into(), Into::into),
        other => serde_json::to_value(other).unwrap_or_default(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesFile {
    pull: Option<PullPolicy>,
    insecure: Option<Vec<String>>,
    mirrors: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFile {
    runs: Option<usize>,
    max_size: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    max_entries: Option<u64>,
    max_size: Option<Size>,
    scope: Option<String>,
    remote: Option<String>,
    remote_mode: Option<RemoteMode>,
}

/// A size written as a number of bytes or a string such as `20GiB`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: BackendName,
    pub parallelism: Option<usize>,
    /// The steps' network, when a file sets it (it wins over the
    /// pipeline's own; `--network` and `HM_NETWORK` win over it).
    pub network: Option<NetworkName>,
    pub cache_max_entries: u64,
    pub cache_max_bytes: u64,
    pub cache_scope: Option<String>,
    /// The remote cache's repository (`[cache] remote`, `HM_CACHE_REMOTE`).
    pub cache_remote: Option<String>,
    /// How the remote cache is used (`[cache] remote_mode`).
    pub cache_remote_mode: Option<RemoteMode>,
    /// What each step may use: the defaults, with `[resources]` and the
    /// `HM_*` variables over them.
    pub limits: hm_vm::Limits,
    /// The output format of `hm run` when `--format` is not given.
    pub format: Option<Format>,
    /// When `hm run` pulls images (`--pull` and `HM_PULL` win over it).
    pub pull: Option<PullPolicy>,
    /// Registries that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mirrors per registry, tried in order before it.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Past runs kept (`[history] runs`).
    pub history_runs: usize,
    /// Bytes the run history may take (`[history] max_size`).
    pub history_max_bytes: u64,
    /// Cache volumes mounted into every step (`[volumes]`), by mount path
    /// as written (relative is under `/workspace`).
    pub volumes: hm_ir::Volumes,
    /// Things worth a line on stderr (settings read but not applied).
    pub notes: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        let bounds = hm_vm::Bounds::default();
        Config {
            backend: BackendName::Sandbox,
            parallelism: None,
            network: None,
            cache_max_entries: bounds.max_entries,
            cache_max_bytes: bounds.max_bytes,
            cache_scope: None,
            cache_remote: None,
            cache_remote_mode: None,
            limits: hm_vm::Limits::defaults(),
            format: None,
            pull: None,
            insecure_registries: Vec::new(),
            mirrors: BTreeMap::new(),
            history_runs: crate::history::DEFAULT_RUNS,
            history_max_bytes: crate::history::DEFAULT_MAX_BYTES,
            volumes: hm_ir::Volumes::new(),
            notes: Vec::new(),
        }
    }
}

pub use hm_vm::limits::parse_size;
use hm_vm::limits::{millicpus, ValueError};

/// A limit as written in a variable or a flag: a value, or none (`none`,
/// `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

impl Limit {
    /// A size in bytes (`memory`, `disk`): `4GiB`, `500MB`, `none`.
    pub fn size(text: &str) -> Result<Self, ValueError> {
        if is_none(text) {
            return Ok(Limit(None));
        }
        parse_size(text).map(|bytes| Limit((bytes > 0).then_some(bytes)))
    }

    /// CPUs, in thousandths of a CPU: `2`, `0.5`, `none`.
    pub fn cpus(text: &str) -> Result<Self, ValueError> {
        if is_none(text) {
            return Ok(Limit(None));
        }
        let cpus: f64 = text
            .trim()
            .parse()
            .map_err(|_| ValueError::NotCpus(text.trim().to_owned()))?;
        match cpus == 0.0 {
            true => Ok(Limit(None)),
            false => millicpus(cpus).map(|m| Limit(Some(m))),
        }
    }

    /// A count (`pids`): `256`, `none`.
    pub fn count(text: &str) -> Result<Self, ValueError> {
        if is_none(text) {
            return Ok(Limit(None));
        }
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| ValueError::NotACount(text.trim().to_owned()))?;
        Ok(Limit((n > 0).then_some(n)))
    }
}

fn is_none(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("none")
}

/// A configuration file or variable that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("`{name}`: {message}")]
    Env { name: &'static str, message: String },
}

impl Config {
    /// The configuration for a project (or none), before flags.
    pub fn load(project_root: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let user = crate::host::config_dir().map(|dir| dir.join("hm").join("config.toml"));
        let project = project_root.map(|root| root.join(hm_dsl::HM_DIR).join("config.toml"));
        if let Some(path) = user {
            match config.apply_file(&path) {
                // A home directory this user may not enter (`sudo -u`,
                // `setpriv` keep `HOME`) has no configuration for it.
                Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {}
                other => other?,
            }
        }
        if let Some(path) = project {
            config.apply_file(&path)?;
        }
        config.apply_env()?;
        Ok(config)
    }

    /// Applies one configuration file over this configuration (a missing
    /// file changes nothing).
    pub(crate) fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let file: File = toml::from_str(&text).map_err(|e| parse_err(toml_error(&text, &e)))?;
        match file.backend {
            Some(BackendSetting::Sandbox) => self.backend = BackendName::Sandbox,
            Some(BackendSetting::Docker) => self.backend = BackendName::Docker,
            Some(BackendSetting::Cloud) => self.notes.push(format!(
                "{}: `backend = \"cloud\"` selects Harmont's hosted service, which is not part of hm; running locally",
                path.display()
            )),
            None if file.cloud.is_some() => self.notes.push(format!(
                "{}: `[cloud]` settings are for Harmont's hosted service, which is not part of hm; they are ignored",
                path.display()
            )),
            None => {}
        }
        match file.preferences.format {
            Some(FormatSetting::Human) => self.format = Some(Format::Human),
            Some(FormatSetting::Json) => self.format = Some(Format::Json),
            None => {}
        }
        if let Some(n) = file.parallelism {
            self.parallelism = Some(n);
        }
        if let Some(network) = file.network {
            self.network = Some(network);
        }
        if let Some(n) = file.cache.max_entries {
            self.cache_max_entries = n;
        }
        // A size field in bytes, naming the field when it is no size.
        let bytes = |size: Option<Size>, field: &str| match size {
            Some(Size::Bytes(n)) => Ok(Some(n)),
            Some(Size::Text(text)) => parse_size(&text)
                .map(Some)
                .map_err(|m| parse_err(format!("{field}: {m}"))),
            None => Ok(None),
        };
        if let Some(n) = bytes(file.cache.max_size, "cache.max_size")? {
            self.cache_max_bytes = n;
        }
        if let Some(scope) = file.cache.scope {
            self.cache_scope = Some(scope);
        }
        if let Some(remote) = file.cache.remote {
            self.cache_remote = Some(remote);
        }
        if let Some(mode) = file.cache.remote_mode {
            self.cache_remote_mode = Some(mode);
        }
        self.limits = self
            .limits
            .with_runner_args(Some(&file.resources.into_runner_args()))
            .map_err(|err| parse_err(format!("resources.{}: {}", err.field, err.error)))?;
        if let Some(pull) = file.images.pull {
            self.pull = Some(pull);
        }
        if let Some(insecure) = file.images.insecure {
            self.insecure_registries = insecure;
        }
        for (registry, mirrors) in file.images.mirrors.unwrap_or_default() {
            self.mirrors.insert(registry, mirrors);
        }
        if let Some(runs) = file.history.runs {
            self.history_runs = runs;
        }
        if let Some(n) = bytes(file.history.max_size, "history.max_size")? {
            self.history_max_bytes = n;
        }
        self.volumes = layer_volumes(&self.volumes, file.volumes).map_err(parse_err)?;
        Ok(())
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(value) = var("HM_CACHE_MAX_ENTRIES") {
            self.cache_max_entries = value.parse().map_err(|_| ConfigError::Env {
                name: "HM_CACHE_MAX_ENTRIES",
                message: format!("`{value}` is not a number"),
            })?;
        }
        if let Some(value) = var("HM_CACHE_MAX_SIZE") {
            self.cache_max_bytes = parse_size(&value).map_err(|err| ConfigError::Env {
                name: "HM_CACHE_MAX_SIZE",
                message: err.to_string(),
            })?;
        }
        if let Some(value) = var("HM_CACHE_SCOPE") {
            self.cache_scope = Some(value);
        }
        if let Some(value) = var("HM_CACHE_REMOTE") {
            self.cache_remote = Some(value);
        }
        if let Some(value) = var("HM_INSECURE_REGISTRIES") {
            self.insecure_registries = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect();
        }
        let limit = |name: &'static str, parse: fn(&str) -> Result<Limit, ValueError>| {
            var(name)
                .map(|value| {
                    parse(&value).map(|Limit(limit)| limit).map_err(|err| ConfigError::Env {
                        name,
                        message: err.to_string(),
                    })
                })
                .transpose()
        };
        if let Some(memory) = limit("HM_MEMORY", Limit::size)? {
            self.limits.memory = memory;
        }
        if let Some(millicpus) = limit("HM_CPUS", Limit::cpus)? {
            self.limits.millicpus = millicpus;
        }
        if let Some(pids) = limit("HM_PIDS", Limit::count)? {
            self.limits.pids = pids;
        }
        if let Some(disk) = limit("HM_DISK", Limit::size)? {
            self.limits.disk = disk;
            self.limits.disk_explicit = true;
        }
        Ok(())
    }

    /// What each step may use, before flags and its own `runner_args`:
    /// the defaults, with these settings over them.
    pub fn limits(&self) -> hm_vm::Limits {
        self.limits
    }

    pub fn bounds(&self) -> hm_vm::Bounds {
        hm_vm::Bounds {
            max_entries: self.cache_max_entries,
            max_bytes: self.cache_max_bytes,
        }
    }
}

/// The `[volumes]` of one file, each checked, over `earlier` (an earlier
/// file's): an entry here replaces the one there at the same absolute
/// path. An error is a message naming the field (`volumes."PATH"`).
fn layer_volumes(earlier: &hm_ir::Volumes, table: BTreeMap<String, toml::Value>) -> Result<hm_ir::Volumes, String> {
    let field = |path: &str| format!("volumes.{}", toml_key(path));
    let mut here = hm_ir::Volumes::new();
    let mut resolved: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (path, value) in table {
        hm_ir::check_mount_path(&path).map_err(|err| format!("{}: {err}", field(&path)))?;
        let mount: hm_ir::VolumeMount = value
            .try_into()
            .map_err(|err: toml::de::Error| format!("{}: {}", field(&path), err.message().trim()))?;
        if !hm_ir::is_volume_name(&mount.name) {
            return Err(format!(
                "{}: `{}` is not a volume name: a name is a letter or digit, then up to 63 letters, digits, `_`, `.` or `-`",
                field(&path),
                mount.name.escape_debug()
            ));
        }
        if let Some(first) = resolved.insert(hm_ir::mount_path(&path), path.clone()) {
            return Err(format!("{}: the same mount path as {}", field(&path), field(&first)));
        }
        here.insert(path, mount);
    }
    let mut layered: hm_ir::Volumes = earlier
        .iter()
        .filter(|(path, _)| !resolved.contains_key(&hm_ir::mount_path(path)))
        .map(|(path, mount)| (path.clone(), mount.clone()))
        .collect();
    // One volume inside another would be hidden by it, or hide part of it.
    for (inner_path, inner) in &resolved {
        let outer = layered
            .keys()
            .map(|path| (hm_ir::mount_path(path), path.clone()))
            .chain(resolved.iter().map(|(abs, path)| (abs.clone(), path.clone())))
            .find(|(outer, _)| outer != inner_path && (inner_path.starts_with(outer) || outer.starts_with(inner_path)));
        if let Some((_, other)) = outer {
            return Err(format!(
                "{}: one volume cannot be inside another (`{}`)",
                field(inner),
                other.escape_debug()
            ));
        }
    }
    layered.extend(here);
    Ok(layered)
}

/// A key as TOML writes it in a dotted path: quoted.
fn toml_key(key: &str) -> String {
    format!("\"{}\"", key.escape_debug())
}

/// A TOML error as one line: where (line and column, from 1) and what,
/// without the source excerpt `toml` draws over several lines.
fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    let Some(span) = err.span() else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_layer_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "parallelism = 3\n[cache]\nmax_size = \"1GiB\"\nscope = \"shared\"\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.apply_file(&path).unwrap();
        assert_eq!(config.parallelism, Some(3));
        assert_eq!(config.cache_max_bytes, 1 << 30);
        assert_eq!(config.cache_scope.as_deref(), Some("shared"));
        std::fs::write(&path, "[cache]\nmax_entrees = 3\n").unwrap();
        let err = config.apply_file(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml") && err.contains("max_entrees"), "{err}");
        // Where, and what, on one line: not toml's excerpt folded into it.
        assert!(err.contains(": line 2, column 1: unknown field `max_entrees`"), "{err}");
        assert!(!err.contains('|') && !err.contains('\n'), "{err}");
        std::fs::write(&path, "parallelism = \n").unwrap();
        let err = config.apply_file(&path).unwrap_err().to_string();
        assert!(err.contains(": line 1, column 15: "), "{err}");
    }

    #[test]
    fn resources_are_sizes_and_positive_cpu_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[resources]\nmemory = \"512MiB\"\ncpus = 1.5\npids = 256\ndisk = \"20GB\"\n",
        )
        .unwrap();
        let mut config = Config::default();
        assert_eq!(config.limits(), hm_vm::Limits::defaults());
        config.apply_file(&path).unwrap();
        let limits = config.limits();
        assert_eq!(limits.memory, Some(512 << 20));
        assert_eq!(limits.millicpus, Some(1500));
        assert_eq!(limits.pids, Some(256));
        assert_eq!(limits.disk, Some(20_000_000_000));
        assert!(limits.disk_explicit);
        // A later file sets only what it names.
        std::fs::write(&path, "[resources]\ncpus = 2\nmemory = 1073741824\n").unwrap();
        config.apply_file(&path).unwrap();
        let limits = config.limits();
        assert_eq!(
            (limits.memory, limits.millicpus, limits.pids),
            (Some(1 << 30), Some(2000), Some(256))
        );
        for bad in ["cpus = -1", "cpus = \"lots\"", "cpus = nan"] {
            std::fs::write(&path, format!("[resources]\n{bad}\n")).unwrap();
            let err = Config::default().apply_file(&path).unwrap_err().to_string();
            assert!(
                err.contains("config.toml") && err.contains("resources.cpus"),
                "{bad}: {err}"
            );
        }
        for (bad, field) in [
            ("memory = \"lots\"", "resources.memory: `lots` is not a size"),
            ("memory = -1", "resources.memory: `-1` is not a size"),
            ("pids = 1.5", "resources.pids: `1.5` is not a whole number"),
            ("disk = [1]", "resources.disk: `[1]` is not a size"),
            (
                "disk = \"5 parsecs\"",
                "resources.disk: `5 parsecs` has an unknown unit",
            ),
        ] {
            std::fs::write(&path, format!("[resources]\n{bad}\n")).unwrap();
            let err = Config::default().apply_file(&path).unwrap_err().to_string();
            assert!(err.contains("config.toml") && err.contains(field), "{bad}: {err}");
        }
    }

    /// `none` or 0 lifts a limit, in a file, a variable or a flag alike.
    #[test]
    fn none_or_zero_lifts_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[resources]\nmemory = \"none\"\ncpus = 0\npids = 0\ndisk = \"none\"\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.apply_file(&path).unwrap();
        let limits = config.limits();
        assert_eq!(
            (limits.memory, limits.millicpus, limits.pids, limits.disk),
            (None, None, None, None)
        );
        for text in ["none", "None", "0", " 0 "] {
            assert_eq!(Limit::size(text), Ok(Limit(None)), "{text}");
            assert_eq!(Limit::cpus(text), Ok(Limit(None)), "{text}");
            assert_eq!(Limit::count(text), Ok(Limit(None)), "{text}");
        }
        assert_eq!(Limit::size("0B"), Ok(Limit(None)));
        assert_eq!(Limit::size("4GiB"), Ok(Limit(Some(4 << 30))));
        assert_eq!(Limit::cpus("0.5"), Ok(Limit(Some(500))));
        assert_eq!(Limit::count("64"), Ok(Limit(Some(64))));
        assert_eq!(
            Limit::cpus("-1").unwrap_err().to_string(),
            "`-1` is not a positive number of CPUs"
        );
        assert_eq!(
            Limit::cpus("two").unwrap_err().to_string(),
            "`two` is not a positive number of CPUs"
        );
        assert_eq!(
            Limit::count("-3").unwrap_err().to_string(),
            "`-3` is not a whole number"
        );
        assert_eq!(
            Limit::size("lots").unwrap_err().to_string(),
            "`lots` is not a size such as `20GiB`"
        );
    }

    /// `HM_MEMORY`, `HM_CPUS`, `HM_PIDS` and `HM_DISK` win over files; a
    /// bad one is an error naming it.
    #[test]
    fn limit_variables_win_over_files_and_name_themselves_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[resources]\nmemory = \"1GiB\"\npids = 100\n").unwrap();
        let vars = ["HM_MEMORY", "HM_CPUS", "HM_PIDS", "HM_DISK"];
        // The only test that sets these variables; the process's other
        // tests read none of them.
        let load = |values: [&str; 4]| {
            for (name, value) in vars.iter().zip(values) {
                std::env::set_var(name, value);
            }
            let mut config = Config::default();
            config.apply_file(&path).unwrap();
            let applied = config.apply_env().map(|()| config);
            for name in vars {
                std::env::remove_var(name);
            }
            applied
        };
        let limits = load(["256MiB", "0.5", "", "none"]).unwrap().limits();
        assert_eq!(limits.memory, Some(256 << 20));
        assert_eq!(limits.millicpus, Some(500));
        assert_eq!(limits.pids, Some(100), "an empty variable is unset");
        assert_eq!(limits.disk, None);
        for (values, name, value) in [
            (["lots", "", "", ""], "HM_MEMORY", "lots"),
            (["", "fast", "", ""], "HM_CPUS", "fast"),
            (["", "", "-1", ""], "HM_PIDS", "-1"),
            (["", "", "", "1 parsec"], "HM_DISK", "1 parsec"),
        ] {
            let err = load(values).unwrap_err().to_string();
            assert!(err.starts_with(&format!("`{name}`: `{value}`")), "{err}");
        }
    }

    /// Harmont's keys: `backend = "docker"` selects ours, `"cloud"` and
    /// `[cloud]` are read with a note, `[preferences] format` is the
    /// default output format; a misspelt key is still an error.
    #[test]
    fn harmont_config_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "backend = \"cloud\"\n[cloud]\norg = \"acme\"\napi_url = \"https://api.harmont.dev\"\npipeline = \"ci\"\n\
             [preferences]\nformat = \"json\"\nauto_watch = true\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.apply_file(&path).unwrap();
        assert_eq!(config.backend, BackendName::Sandbox);
        assert_eq!(config.format, Some(Format::Json));
        assert_eq!(config.notes.len(), 1, "{:?}", config.notes);
        assert!(config.notes[0].contains("`backend = \"cloud\"`") && config.notes[0].contains("not part of hm"));

        std::fs::write(&path, "backend = \"docker\"\n").unwrap();
        let mut config = Config::default();
        config.apply_file(&path).unwrap();
        assert_eq!(config.backend, BackendName::Docker);
        assert!(config.notes.is_empty());

        std::fs::write(&path, "[cloud]\norg = \"acme\"\n").unwrap();
        let mut config = Config::default();
        config.apply_file(&path).unwrap();
        assert!(config.notes[0].contains("`[cloud]` settings"), "{:?}", config.notes);

        for bad in [
            "[preferences]\nformt = \"json\"\n",
            "[preferences]\nformat = \"yaml\"\n",
            "[cloud]\norgs = 1\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = Config::default().apply_file(&path).unwrap_err().to_string();
            assert!(err.contains("config.toml"), "{bad}: {err}");
        }
    }

    /// `network = "none"` in a file; any other value is an error naming
    /// the file and the values it takes.
    #[test]
    fn network_is_host_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "network = \"none\"\n").unwrap();
        let mut config = Config::default();
        assert_eq!(config.network, None);
        config.apply_file(&path).unwrap();
        assert_eq!(config.network, Some(NetworkName::None));
        std::fs::write(&path, "network = \"bridge\"\n").unwrap();
        let err = Config::default().apply_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("bridge") && err.contains("none"),
            "{err}"
        );
    }

    /// `[volumes]`: a name or `{ name, sharing }` by mount path; the
    /// project's file wins per path (as resolved) over the user's; a bad
    /// name, path, sharing or key names the file and `volumes."PATH"`.
    #[test]
    fn volumes_layer_per_path_and_errors_name_the_path() {
        use hm_ir::{Sharing, VolumeMount};
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.toml");
        let project = dir.path().join("config.toml");
        std::fs::write(
            &user,
            "[volumes]\n\"/root/.cargo/registry\" = \"cargo-registry\"\n\"/workspace/target\" = \"mine\"\n",
        )
        .unwrap();
        std::fs::write(
            &project,
            "[volumes]\n\"target\" = { name = \"cargo-target\", sharing = \"locked\" }\n\"/root/.cache/pip\" = { name = \"pip\" }\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.apply_file(&user).unwrap();
        config.apply_file(&project).unwrap();
        let expected: hm_ir::Volumes = [
            ("/root/.cargo/registry", VolumeMount::shared("cargo-registry")),
            ("/root/.cache/pip", VolumeMount::shared("pip")),
            (
                "target",
                VolumeMount {
                    name: "cargo-target".into(),
                    sharing: Sharing::Locked,
                },
            ),
        ]
        .into_iter()
        .map(|(path, mount)| (path.to_owned(), mount))
        .collect();
        assert_eq!(config.volumes, expected);
        // A file without `[volumes]` keeps what came before.
        std::fs::write(&project, "parallelism = 2\n").unwrap();
        config.apply_file(&project).unwrap();
        assert_eq!(config.volumes, expected);

        for (bad, field, says) in [
            (
                "\"target\" = \"a/b\"",
                "volumes.\"target\"",
                "`a/b` is not a volume name",
            ),
            ("\"..\" = \"v\"", "volumes.\"..\"", "`..` is not allowed"),
            ("\"/proc/x\" = \"v\"", "volumes.\"/proc/x\"", "belong to the kernel"),
            ("\".\" = \"v\"", "volumes.\".\"", "hide the sources"),
            (
                "\"t\" = { name = \"v\", sharing = \"exclusive\" }",
                "volumes.\"t\"",
                "unknown variant `exclusive`",
            ),
            (
                "\"t\" = { name = \"v\", shring = \"locked\" }",
                "volumes.\"t\"",
                "unknown field `shring`",
            ),
            (
                "\"t\" = { sharing = \"locked\" }",
                "volumes.\"t\"",
                "missing field `name`",
            ),
            ("\"t\" = 3", "volumes.\"t\"", "invalid type"),
            (
                "\"t\" = \"a\"\n\"/workspace/t/\" = \"b\"",
                "volumes.\"t\"",
                "the same mount path as volumes.\"/workspace/t/\"",
            ),
            ("\"/a\" = \"a\"\n\"/a/b\" = \"b\"", "volumes.\"/a", "inside another"),
        ] {
            std::fs::write(&project, format!("[volumes]\n{bad}\n")).unwrap();
            let err = Config::default().apply_file(&project).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("`{}`: {field}", project.display())) && err.contains(says),
                "{bad}: {err}"
            );
        }
        // Inside one the user's file mounts.
        std::fs::write(&project, "[volumes]\n\"/root/.cargo/registry/cache\" = \"c\"\n").unwrap();
        let err = config.apply_file(&project).unwrap_err().to_string();
        assert!(
            err.contains("volumes.\"/root/.cargo/registry/cache\": one volume cannot be inside another (`/root/.cargo/registry`)"),
            "{err}"
        );
    }

    /// Any text, and a full configuration file mutated, never panics the
    /// reader: it is read, or the error names the file (exit 2 through the
    /// binary, like every `ConfigError`).
    #[test]
    fn any_config_file_is_read_or_refused_naming_the_file() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config as Cases, TestRunner};

        const FULL: &str = "backend = \"docker\"\nparallelism = 4\nnetwork = \"none\"\n\
            [cache]\nmax_entries = 256\nmax_size = \"20GiB\"\nscope = \"p\"\n\
            [resources]\nmemory = \"4GiB\"\ncpus = 2.5\npids = 512\ndisk = \"none\"\n\
            [preferences]\nformat = \"json\"\nauto_watch = false\n\
            [volumes]\n\"target\" = \"cargo-target\"\n\"/root/.npm\" = { name = \"npm\", sharing = \"locked\" }\n\
            [cloud]\norg = \"a\"\napi_url = \"u\"\npipeline = \"p\"\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let check = |text: &[u8]| -> Result<(), TestCaseError> {
            std::fs::write(&path, text).unwrap();
            if let Err(err) = Config::default().apply_file(&path) {
                prop_assert!(err.to_string().contains("config.toml"), "{}", err);
            }
            Ok(())
        };
        let cases = Cases {
            cases: 256,
            failure_persistence: None,
            ..Cases::default()
        };
        let mut runner = TestRunner::new(cases.clone());
        runner.run(&"\\PC{0,80}", |text| check(text.as_bytes())).unwrap();
        let values = prop_oneof![
            Just("\"\"".to_owned()),
            Just("-1".to_owned()),
            Just("0".to_owned()),
            Just("1e400".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("\"nan\"".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("\"99999999999TiB\"".to_owned()),
            Just("inf".to_owned()),
            Just("nan".to_owned()),
            "\\PC{0,8}",
        ];
        let edits = prop::collection::vec((any::<usize>(), values, any::<bool>()), 1..4);
        let mut runner = TestRunner::new(cases);
        runner
            .run(&edits, |edits| {
                // Replace the values of some lines, or cut the file short.
                let mut lines: Vec<String> = FULL.lines().map(str::to_owned).collect();
                for (at, value, cut) in edits {
                    let at = at % lines.len();
                    if cut {
                        lines.truncate(at.max(1));
                    } else if let Some((key, _)) = lines[at].split_once(" = ") {
                        lines[at] = format!("{key} = {value}");
                    }
                }
                check(lines.join("\n").as_bytes())
            })
            .unwrap();
    }
}
