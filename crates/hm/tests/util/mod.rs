//! Helpers for end-to-end tests through the real `hm` binary: fixture
//! projects, runs with a private cache, the event stream, and checks that
//! nothing was left behind.
#![allow(dead_code)]

pub mod disk;
pub mod pty;
pub mod registry;
pub mod rng;
mod rootfs;
pub mod skip;

#[allow(unused_imports)]
pub use rootfs::tiny_rootfs;
#[allow(unused_imports)]
pub use skip::skip;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub fn hm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hm")
}

/// One step of a fixture pipeline.
#[derive(Clone)]
pub struct Step {
    pub key: String,
    pub cmd: String,
    pub image: Option<String>,
    pub timeout: Option<u64>,
    pub continue_on_failure: bool,
    pub cache: Option<Value>,
    pub env: Vec<(String, String)>,
    pub runner_args: Option<Value>,
    pub volumes: Option<Value>,
}

pub fn step(key: &str, cmd: &str) -> Step {
    Step {
        key: key.to_owned(),
        cmd: cmd.to_owned(),
        image: Some("host".to_owned()),
        timeout: None,
        continue_on_failure: false,
        cache: None,
        env: Vec::new(),
        runner_args: None,
        volumes: None,
    }
}

impl Step {
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Some(secs);
        self
    }

    pub fn image(mut self, image: Option<&str>) -> Self {
        self.image = image.map(str::to_owned);
        self
    }

    pub fn continue_on_failure(mut self) -> Self {
        self.continue_on_failure = true;
        self
    }

    /// A cache policy, as the IR writes it.
    pub fn cache(mut self, policy: Value) -> Self {
        self.cache = Some(policy);
        self
    }

    /// `runner_args`, as the IR carries them (limits, say).
    pub fn runner_args(mut self, args: Value) -> Self {
        self.runner_args = Some(args);
        self
    }

    /// `volumes`, as the IR carries them (`{"/cache": "counter"}`).
    pub fn volumes(mut self, volumes: Value) -> Self {
        self.volumes = Some(volumes);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A pipeline envelope from steps and `(src, dst, kind)` edges by key.
pub fn envelope(slug: &str, steps: &[Step], edges: &[(&str, &str, &str)], timeout: Option<u64>) -> Value {
    let index = |key: &str| steps.iter().position(|s| s.key == key).expect("edge names a step");
    let nodes: Vec<Value> = steps
        .iter()
        .map(|s| {
            let mut step = json!({"key": s.key, "cmd": s.cmd});
            if let Some(image) = &s.image {
                step["image"] = json!(image);
            }
            if let Some(t) = s.timeout {
                step["timeout_seconds"] = json!(t);
            }
            if s.continue_on_failure {
                step["continue_on_failure"] = json!(true);
            }
            if let Some(cache) = &s.cache {
                step["cache"] = cache.clone();
            }
            if let Some(args) = &s.runner_args {
                step["runner_args"] = args.clone();
            }
            if let Some(volumes) = &s.volumes {
                step["volumes"] = volumes.clone();
            }
            let mut env = json!({"TERM": "dumb"});
            for (k, v) in &s.env {
                env[k] = json!(v);
            }
            json!({"step": step, "env": env})
        })
        .collect();
    let edges: Vec<Value> = edges.iter().map(|(s, d, k)| json!([index(s), index(d), k])).collect();
    let mut definition = json!({"version": "0", "graph": {"nodes": nodes, "node_holes": [], "edge_property": "directed", "edges": edges}});
    if let Some(t) = timeout {
        definition["timeout_seconds"] = json!(t);
    }
    json!({"schema_version": "1", "pipelines": [{"slug": slug, "name": slug, "allow_manual": true, "triggers": [], "definition": definition}]})
}

/// The backend a contract test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sandbox,
    Docker,
}

/// The image docker tests run on: a local import of a Debian root
/// filesystem (`.ci/run` makes it; no registry is reachable here).
pub fn docker_image() -> String {
    std::env::var("HM_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "hm-test/bookworm".to_owned())
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sandbox => "sandbox",
            Backend::Docker => "docker",
        }
    }

    /// The image fixture steps written for `host` run on.
    pub fn image(self) -> String {
        match self {
            Backend::Sandbox => "host".to_owned(),
            Backend::Docker => docker_image(),
        }
    }

    /// Whether this backend can run here; where it cannot, the test is
    /// [`skip`]ped (a failure in CI).
    pub fn available(self) -> bool {
        match self {
            Backend::Sandbox => sandbox_available(),
            Backend::Docker => docker_available(),
        }
    }
}

/// Whether a Docker daemon with the test image answers; where one does not,
/// the test is [`skip`]ped (a failure in CI).
pub fn docker_available() -> bool {
    match docker_probe() {
        Ok(()) => true,
        Err(reason) => {
            skip(&format!("no Docker daemon with `{}` ({reason})", docker_image()));
            false
        }
    }
}

/// Why no Docker daemon with the test image answers, if none does (asked
/// once).
fn docker_probe() -> &'static Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| {
        let out = Command::new("docker")
            .args(["image", "inspect", &docker_image()])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Err(format!("docker: {e}")),
        }
    })
}

/// Packs the contents of `dir` into the tar archive `tarball` (as
/// `tar -C DIR -cf TARBALL .`).
pub fn tar_dir(dir: &Path, tarball: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of {}", dir.display());
}

/// Runs `docker ARGS` and returns its stdout lines.
pub fn docker(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Generates `#[test]`s running each named `fn(Backend)` on both backends:
/// `sandbox::NAME` and `docker::NAME`.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sandbox {
            $(#[test] fn $name() { super::$name($crate::util::Backend::Sandbox) })*
        }
        mod docker {
            $(#[test] fn $name() { super::$name($crate::util::Backend::Docker) })*
        }
    };
}

/// A temporary project and cache.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

impl Fixture {
    pub fn new() -> Self {
        Self::on(Backend::Sandbox)
    }

    /// A fixture whose runs use `backend`.
    pub fn on(backend: Backend) -> Self {
        let dir = tempfile::Builder::new().prefix("hm-test-").tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("project/.hm")).unwrap();
        // As hm makes it: private to its owner (hm repairs a readable one,
        // with a warning on stderr).
        fs::create_dir_all(dir.path().join("cache")).unwrap();
        fs::set_permissions(dir.path().join("cache"), fs::Permissions::from_mode(0o700)).unwrap();
        Fixture { dir, backend }
    }

    /// A fixture whose pipeline is `envelope`.
    pub fn with(envelope: &Value) -> Self {
        Self::with_on(Backend::Sandbox, envelope)
    }

    /// A fixture on `backend` whose pipeline is `envelope`.
    pub fn with_on(backend: Backend, envelope: &Value) -> Self {
        let fixture = Self::on(backend);
        fixture.write(".hm/pipeline.json", &serde_json::to_string_pretty(envelope).unwrap());
        fixture
    }

    pub fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Writes a file of the project; in a pipeline file, steps on the
    /// `host` image get the backend's test image.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.project().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = if rel.starts_with(".hm/") && self.backend != Backend::Sandbox {
            let image = format!("\"{}\"", self.backend.image());
            text.replace("\"image\":\"host\"", &format!("\"image\":{image}"))
                .replace("\"image\": \"host\"", &format!("\"image\": {image}"))
                .replace("image=\"host\"", &format!("image={image}"))
        } else {
            text.to_owned()
        };
        fs::write(path, text).unwrap();
    }

    /// `hm ARGS` in the project, with the fixture's cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(hm_bin());
        cmd.args(args)
            .current_dir(self.project())
            .env("HM_CACHE_DIR", self.cache())
            .env("HM_BACKEND", self.backend.name())
            .env_remove("HM_PARALLELISM")
            .env_remove("HM_NETWORK")
            .stdin(Stdio::null());
        cmd
    }

    pub fn hm(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `hm run --format json ARGS`, parsed.
    pub fn run_json(&self, args: &[&str]) -> Run {
        let mut all = vec!["run", "--format", "json"];
        all.extend_from_slice(args);
        Run::from(self.hm(&all))
    }

    /// `hm run --format json ARGS` in the project as an unprivileged user
    /// (see [`hm_as_nobody`]), parsed.
    pub fn run_json_as_nobody(&self, args: &[&str]) -> Run {
        let output = hm_as_nobody(self)
            .args(["run", "--format", "json"])
            .args(args)
            .current_dir(self.project())
            .env("HM_CACHE_DIR", self.cache())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(output)
    }

    /// `hm run --format json ARGS`; once a step prints the line `trigger`,
    /// runs `at_trigger`, then sends `signal` (`KILL`, `INT`, ...) to `hm`.
    /// What `at_trigger` returned, and `hm`'s exit code (`None` when the
    /// signal ended it).
    pub fn run_and_signal<T>(
        &self,
        args: &[&str],
        trigger: &str,
        signal: &str,
        at_trigger: impl FnOnce() -> T,
    ) -> (T, Option<i32>) {
        use std::io::{BufRead, BufReader};
        let mut all = vec!["run", "--format", "json"];
        all.extend_from_slice(args);
        let mut hm = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let needle = format!("\"line\":{}", serde_json::to_string(trigger).unwrap());
        let mut at_trigger = Some(at_trigger);
        let mut found = None;
        for line in BufReader::new(hm.stdout.take().unwrap()).lines() {
            if !line.unwrap().contains(&needle) {
                continue;
            }
            if let Some(action) = at_trigger.take() {
                found = Some(action());
                let sent = Command::new("kill")
                    .args([format!("-{signal}"), hm.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
            }
        }
        let code = hm.wait().unwrap().code();
        let found = found.unwrap_or_else(|| panic!("no step printed `{trigger}`"));
        (found, code)
    }

    /// `hm run --format json ARGS`; when a step prints the line `trigger`,
    /// runs `action` while the build goes on.
    pub fn run_json_when(&self, args: &[&str], trigger: &str, action: impl FnOnce()) -> Run {
        use std::io::{BufRead, BufReader};
        let mut all = vec!["run", "--format", "json"];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let needle = format!("\"line\":{}", serde_json::to_string(trigger).unwrap());
        let mut lines = Vec::new();
        let mut action = Some(action);
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let hit = line.contains(&needle);
            lines.push(line);
            if hit {
                if let Some(action) = action.take() {
                    action();
                }
            }
        }
        let output = child.wait_with_output().unwrap();
        assert!(action.is_none(), "no step printed `{trigger}`: {lines:#?}");
        Run {
            code: output.status.code().unwrap_or(-1),
            events: lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts that no process, mount or session of `hm` is left, and on
    /// docker no container and no snapshot image of this cache (where no
    /// daemon answers, none can be).
    pub fn assert_clean(&self) {
        assert_nothing_left(&self.cache());
        if self.backend == Backend::Docker && docker_probe().is_ok() {
            let label = format!("label=dev.hm.cache={}", self.cache().canonicalize().unwrap().display());
            let containers = docker(&["ps", "-a", "--format", "{{.ID}} {{.Labels}}", "--filter", &label]);
            assert!(containers.is_empty(), "containers left behind: {containers:?}");
            let snapshots: Vec<String> = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
                .into_iter()
                .filter(|r| r.starts_with(&format!("{}:", self.snapshot_repository())))
                .collect();
            assert!(snapshots.is_empty(), "snapshot images left behind: {snapshots:?}");
        }
    }

    /// `hm cache ls --format json`.
    pub fn cache_entries(&self) -> Vec<Value> {
        json_list(&self.hm(&["cache", "ls", "--format", "json"]))
    }

    /// Asserts that the cache entries' parts are exactly the stored ones
    /// (the sandbox's layers, docker's images), and that the sandbox's
    /// source layers they name are there: those stay while no entry needs
    /// them (each project's latest), and entries share them.
    pub fn assert_parts_stored(&self, context: &str) {
        let (sources, referenced): (BTreeSet<String>, BTreeSet<String>) = self
            .cache_entries()
            .iter()
            .flat_map(|e| {
                e["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_owned())
            })
            .partition(|p| p.starts_with("src-"));
        let listed = |dir: &str| -> BTreeSet<String> {
            fs::read_dir(self.cache().join(dir))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let stored: BTreeSet<String> = match self.backend {
            Backend::Sandbox => listed("layers"),
            Backend::Docker => self.cache_images().into_iter().map(|(_, id)| id).collect(),
        };
        assert_eq!(
            referenced, stored,
            "{context}: the registry and the stored parts disagree"
        );
        let source_layers: BTreeSet<String> = listed("sources").iter().map(|n| format!("src-{n}")).collect();
        assert!(
            sources.is_subset(&source_layers),
            "{context}: entries name source layers that are gone: {sources:?}, there: {source_layers:?}"
        );
    }

    /// The docker repositories of this fixture's cache.
    pub fn cache_repository(&self) -> String {
        hm_vm::DockerBackend::cache_repository(&self.cache())
    }

    pub fn snapshot_repository(&self) -> String {
        self.cache_repository().replacen("hm-cache-", "hm-snapshot-", 1)
    }

    /// The docker cache images of this fixture: `repo:tag` and image id.
    pub fn cache_images(&self) -> Vec<(String, String)> {
        images_in(&self.cache_repository())
    }

    /// The docker source images of this fixture: `repo:tag` and image id.
    pub fn source_images(&self) -> Vec<(String, String)> {
        images_in(&self.cache_repository().replacen("hm-cache-", "hm-source-", 1))
    }
}

/// The JSON list a command that succeeded printed (`hm cache ls`).
pub fn json_list(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The docker images in repository `repo`: `repo:tag` and image id.
pub fn images_in(repo: &str) -> Vec<(String, String)> {
    docker(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .into_iter()
        .filter(|l| l.starts_with(&format!("{repo}:")))
        .map(|l| {
            let (tag, id) = l.split_once(' ').unwrap();
            (tag.to_owned(), id.to_owned())
        })
        .collect()
}

impl Drop for Fixture {
    /// A docker fixture's cache entries are images in the daemon, which
    /// outlives the temporary directory: remove them (where no daemon
    /// answers, as for the tests of a stopped one, there are none).
    fn drop(&mut self) {
        if self.backend == Backend::Docker && !std::thread::panicking() {
            remove_docker_images(&self.cache());
        }
    }
}

/// Removes the docker images that the cache directory `cache` keeps (its
/// entries and its source images), where a daemon answers.
pub fn remove_docker_images(cache: &Path) {
    if docker_probe().is_err() {
        return;
    }
    let entries = hm_vm::DockerBackend::cache_repository(cache);
    let sources = entries.replacen("hm-cache-", "hm-source-", 1);
    let tags: Vec<String> = [entries, sources]
        .iter()
        .flat_map(|repo| images_in(repo))
        .map(|(tag, _)| tag)
        .collect();
    if !tags.is_empty() {
        let mut args = vec!["rmi"];
        args.extend(tags.iter().map(String::as_str));
        let _ = Command::new("docker").args(&args).output();
    }
}

/// The result of `hm run --format json`.
pub struct Run {
    pub code: i32,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let events = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        Run {
            code: output.status.code().unwrap_or(-1),
            events,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The keys of the steps that executed (not cache hits, not skipped).
    pub fn executed(&self) -> Vec<String> {
        self.keys_where(|e| e["kind"] == "step_start")
    }

    /// The keys of the steps that were hits in the remote cache.
    pub fn remote_hits(&self) -> Vec<String> {
        self.keys_where(|e| e["kind"] == "step_cache_hit" && e["remote"] == true)
    }

    /// The keys of the steps of the events `wanted` picks, sorted.
    fn keys_where(&self, wanted: impl Fn(&Value) -> bool) -> Vec<String> {
        let mut keys: Vec<String> = self
            .events
            .iter()
            .filter(|e| wanted(e))
            .map(|e| {
                let id = e["step_id"].as_str().unwrap();
                let queued = self
                    .events
                    .iter()
                    .find(|q| q["kind"] == "step_queued" && q["step_id"] == id)
                    .unwrap();
                queued["key"].as_str().unwrap().to_owned()
            })
            .collect();
        keys.sort();
        keys
    }

    /// The `cache_miss` reason a step started with.
    pub fn miss_reason(&self, key: &str) -> Option<String> {
        let start = &self.events[self.position("step_start", key)];
        start["cache_miss"].as_str().map(str::to_owned)
    }

    /// The `step_id` of a key.
    pub fn id(&self, key: &str) -> String {
        self.events
            .iter()
            .find(|e| e["kind"] == "step_queued" && e["key"] == key)
            .unwrap_or_else(|| panic!("no step `{key}` in {:#?}", self.events))["step_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The `step_end` or `step_skipped` of a key.
    pub fn end(&self, key: &str) -> &Value {
        let id = self.id(key);
        self.events
            .iter()
            .find(|e| (e["kind"] == "step_end" || e["kind"] == "step_skipped") && e["step_id"] == id.as_str())
            .unwrap_or_else(|| panic!("`{key}` never ended: {}", self.dump()))
    }

    /// `passed`, `failed`, ..., or `skipped`.
    pub fn status(&self, key: &str) -> String {
        let end = self.end(key);
        if end["kind"] == "step_skipped" {
            "skipped".to_owned()
        } else {
            end["status"].as_str().unwrap().to_owned()
        }
    }

    /// A step's stdout and stderr lines.
    pub fn logs(&self, key: &str) -> Vec<String> {
        let id = self.id(key);
        self.events
            .iter()
            .filter(|e| e["kind"] == "step_log" && e["step_id"] == id.as_str())
            .map(|e| e["line"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A step's stdout lines: unlike [`Run::logs`], their order does not
    /// depend on how the two streams' lines interleave.
    pub fn stdout(&self, key: &str) -> Vec<String> {
        let id = self.id(key);
        self.events
            .iter()
            .filter(|e| e["kind"] == "step_log" && e["step_id"] == id.as_str() && e["stream"] == "stdout")
            .map(|e| e["line"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Position of the first event of `kind` for a key.
    pub fn position(&self, kind: &str, key: &str) -> usize {
        let id = self.id(key);
        self.events
            .iter()
            .position(|e| e["kind"] == kind && e["step_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no `{kind}` for `{key}`"))
    }

    pub fn dump(&self) -> String {
        format!(
            "exit {}\nstderr: {}\nevents:\n{}",
            self.code,
            self.stderr,
            self.events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
        )
    }
}

/// Fails the test when `hm` left a live session, a mount or a process
/// behind for this cache.
pub fn assert_nothing_left(cache: &Path) {
    let runs = cache.join("runs");
    let left: Vec<_> = fs::read_dir(&runs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "session directories left behind: {left:?}");
    let cache_str = cache.to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&cache_str), "mounts left behind:\n{mounts}");
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&cache_str), "process left behind: {cmdline}");
    }
}

/// Processes whose program name (`argv[0]`) contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if String::from_utf8_lossy(argv0).contains(marker) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Whether these tests can create namespaces here; where they cannot, the
/// test is [`skip`]ped (a failure in CI).
pub fn sandbox_available() -> bool {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        let out = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "true"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
            Err(e) => Err(format!("unshare: {e}")),
        }
    });
    match probe {
        Ok(()) => true,
        Err(reason) => {
            skip(&format!("user and mount namespaces are unavailable here ({reason})"));
            false
        }
    }
}

/// Whether `python3` 3.10 or newer is here for Python pipeline files;
/// where it is not, the test is [`skip`]ped (a failure in CI).
pub fn python_available() -> bool {
    let out = Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 10))"])
        .output();
    let reason = match out {
        Ok(o) if o.status.success() => return true,
        Ok(_) => "python3 is older than 3.10".to_owned(),
        Err(e) => format!("python3: {e}"),
    };
    skip(&format!("Python pipeline files cannot be evaluated here: {reason}"));
    false
}

/// Whether a registry can be run and pushed to here; where
/// `docker-registry` or `htpasswd` is missing, the test is [`skip`]ped (a
/// failure in CI).
pub fn registry_available() -> bool {
    match registry::tools_missing() {
        None => true,
        Some(reason) => {
            skip(&format!(
                "no registry tools ({reason}); install docker-registry and apache2-utils"
            ));
            false
        }
    }
}

/// The Debian root filesystem in `HM_TEST_DEBIAN_ROOTFS`; without one, the
/// test is [`skip`]ped (a failure in CI).
pub fn debian_rootfs() -> Option<PathBuf> {
    match std::env::var_os("HM_TEST_DEBIAN_ROOTFS").map(PathBuf::from) {
        Some(dir) if dir.join("usr/bin/apt-get").exists() => Some(dir),
        _ => {
            skip("HM_TEST_DEBIAN_ROOTFS does not name a Debian root filesystem (`.ci/debian-rootfs.sh DIR` makes one)");
            None
        }
    }
}

/// Whether the tests run as root (needed to act as another user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether the tests run as root, for a test (or the part of one) that
/// needs it for `purpose`; otherwise it is [`skip`]ped (a failure in CI,
/// which runs as root).
pub fn root_available(purpose: &str) -> bool {
    let root = is_root();
    if !root {
        skip(&format!("{purpose} needs root"));
    }
    root
}

/// An unprivileged uid for tests that act as another user (nobody).
pub const NOBODY: u32 = 65534;

/// A command running `hm` as [`NOBODY`] (when root; as ourselves when
/// already unprivileged), the fixture's directory handed to that user
/// first.
#[allow(dead_code)] // not every test file acts as another user
pub fn hm_as_nobody(fx: &Fixture) -> Command {
    if !is_root() {
        return Command::new(hm_bin());
    }
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(fx.dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let mut command = Command::new("setpriv");
    command.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        hm_bin(),
    ]);
    command
}
