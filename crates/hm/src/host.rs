//! What `hm` takes from its environment besides its own `HM_*` settings
//! (which `config` reads): where its cache is, where the Docker daemon is,
//! whether to colour, the Python to run. Read here and nowhere else: the
//! library crates are given these values.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// A variable, when set and not empty.
fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable as a path, when set and not empty.
fn path(name: &str) -> Option<PathBuf> {
    var(name).map(PathBuf::from)
}

/// The cache root: `$HM_CACHE_DIR`, else `$XDG_CACHE_HOME/hm`, else
/// `~/.cache/hm`; `None` when none of those is set.
pub fn cache_dir() -> Option<PathBuf> {
    path("HM_CACHE_DIR")
        .or_else(|| path("XDG_CACHE_HOME").map(|d| d.join("hm")))
        .or_else(|| path("HOME").map(|d| d.join(".cache").join("hm")))
}

/// The user's configuration directory: `$XDG_CONFIG_HOME`, else
/// `~/.config`.
pub fn config_dir() -> Option<PathBuf> {
    path("XDG_CONFIG_HOME").or_else(|| path("HOME").map(|h| h.join(".config")))
}

/// Where to look for a Docker daemon: `DOCKER_HOST`, `XDG_RUNTIME_DIR`,
/// `HOME`.
pub fn docker_daemon() -> hm_vm::DockerDaemon {
    hm_vm::DockerDaemon {
        host: var("DOCKER_HOST").map(|h| h.to_string_lossy().into_owned()),
        runtime_dir: path("XDG_RUNTIME_DIR"),
        home: path("HOME"),
    }
}

/// The Docker client's configuration directory (its `config.json` has
/// registry credentials): `DOCKER_CONFIG`, else `~/.docker`.
pub fn docker_client_config() -> Option<PathBuf> {
    path("DOCKER_CONFIG").or_else(|| path("HOME").map(|h| h.join(".docker")))
}

/// `PATH`, where the sandbox looks for `newuidmap` and `newgidmap`.
pub fn search_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_default()
}

/// `TERM`: the terminal's type, given to `hm shell`'s shell.
pub fn term() -> Option<String> {
    var("TERM").map(|t| t.to_string_lossy().into_owned())
}

/// `NO_COLOR`, set and not empty.
pub fn no_color() -> bool {
    var("NO_COLOR").is_some()
}

/// The Python interpreter for `.hm/*.py`: `HM_PYTHON`, else `python3`.
pub fn python() -> OsString {
    var("HM_PYTHON").unwrap_or_else(|| "python3".into())
}

/// How old a stored part no cache entry knows must be before it is
/// collected: `HM_CACHE_ORPHAN_GRACE` seconds (for tests), else the
/// default.
pub fn orphan_grace() -> Duration {
    number("HM_CACHE_ORPHAN_GRACE").map_or(hm_vm::DEFAULT_ORPHAN_GRACE, Duration::from_secs)
}

/// How deep a sandbox snapshot may get before it is flattened:
/// `HM_SANDBOX_MAX_LAYERS` (for tests of the flattening), else the default.
pub fn max_layers() -> usize {
    number("HM_SANDBOX_MAX_LAYERS")
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(hm_vm::DEFAULT_MAX_LAYERS)
}

fn number(name: &str) -> Option<u64> {
    var(name)?.to_str()?.parse().ok()
}

/// The environment TypeScript pipelines see as `process.env` (names and
/// values that are not UTF-8 are shown lossily, as Node does).
pub fn pipeline_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect()
}

/// The whole environment, for the `env_keys` of cache policies.
pub fn environment() -> std::collections::BTreeMap<OsString, OsString> {
    std::env::vars_os().collect()
}
