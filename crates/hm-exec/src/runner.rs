//! Runs one step: look it up in the cache, or boot its VM from the
//! parent's snapshot or its image, sync `/workspace`, run the command with
//! its output streamed as events, keep a snapshot when children will build
//! on it, and store it in the cache when its policy says so.
//!
//! A step gets what it needs in a [`StepInput`] and reports everything the
//! build must know in a [`StepOutcome`]; the build ([`crate::local`]) is
//! the only owner of the state steps share (snapshots, keys, holds).
//! [`RunnerRegistry`] maps a step's `runner` to a [`StepRunner`];
//! [`VmRunner`] is the default.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hm_ir::{CachePolicy, Plan, StepIdx};
use hm_vm::{
    BackendUnavailable, BootFrom, BootRequest, ExecOutcome, ExecRequest, Found, ImageRef, LogLine, SnapshotId,
    Successors, Vm, VmBackend, VmError,
};
use tokio::sync::{mpsc, watch, OnceCell};

use crate::cache::{KeyContext, KeyInputs};
use crate::events::{now_rfc3339, Event, StepStatus};
use crate::shell::{HeldShell, ShellPlan, ShellState};
use crate::source_layers::SourceLayers;
use crate::store::{CacheError, EntryName, Keyed, Lookup, SnapshotCache};
use crate::workspace::{sync_plan, Manifest, Source, SourceError, WORKSPACE};

/// The name of the default runner.
pub const DEFAULT_RUNNER: &str = "vm";

/// A snapshot a step kept, with the source it was synced to.
pub(crate) type Kept = (SnapshotId, Arc<Manifest>);

/// What every step of one build reads; nothing in it changes while the
/// build runs, but the backend's check, made once.
pub(crate) struct Shared {
    pub plan: Plan,
    pub vm: Arc<dyn VmBackend>,
    pub source: Source,
    /// The copies of the source root steps boot on.
    pub layers: SourceLayers,
    /// `-e KEY=VALUE` overrides, applied last.
    pub env_overrides: Vec<(String, String)>,
    pub events: mpsc::Sender<Event>,
    /// Base images, resolved before the build started.
    pub images: HashMap<String, ImageRef>,
    pub cache: Option<SnapshotCache>,
    /// Where steps' output is kept.
    pub logs: Option<crate::local::StepLogs>,
    /// The backend's check, made before the first boot (a build whose
    /// steps are all cache hits boots nothing and needs none).
    pub backend: OnceCell<Result<(), Arc<BackendUnavailable>>>,
    /// Where the build opens a shell, when it does.
    pub shell: Option<ShellPlan>,
    /// `hm run --step`: the one step that may run; every other is a cache
    /// hit or fails.
    pub only: Option<StepIdx>,
    /// What each step may use, before its own `runner_args`.
    pub limits: hm_vm::Limits,
    pub volumes: Option<crate::volumes::VolumeSettings>,
}

impl Shared {
    async fn emit(&self, event: Event) {
        // A renderer that stopped listening does not stop the build.
        let _ = self.events.send(event).await;
    }

    /// Step `idx`'s limits: the build's, with its own `runner_args` on top.
    fn step_limits(&self, idx: StepIdx) -> Result<hm_vm::Limits, hm_vm::limits::LimitError> {
        self.limits
            .with_runner_args(self.plan.steps[idx].node.step.runner_args.as_ref())
    }

    /// A shell's limits, at step `idx`: the step's, which were checked when
    /// the pipeline loaded (the build's, were they wrong).
    fn shell_limits(&self, idx: StepIdx) -> hm_vm::Limits {
        self.step_limits(idx).unwrap_or(self.limits)
    }
}

/// What one step is given when it starts.
pub(crate) struct StepInput {
    pub idx: StepIdx,
    /// The parent's snapshot, when the step builds on one.
    pub parent: Option<Kept>,
    /// The parent's cache key, when the parent is cached and passed or hit.
    pub parent_key: Option<String>,
    /// The entry found for this step before the build started, with the
    /// key it was found under.
    pub prefetched: Option<(String, Found)>,
    /// The parent did not run, as this step was a cache hit when the build
    /// started (see [`crate::scheduler::not_needed`]): the step can only
    /// be a hit.
    pub parent_not_run: bool,
    /// Becomes true when the step must stop.
    pub cancel: watch::Receiver<bool>,
}

/// How a step that started ended, and what the build must keep of it.
#[derive(Debug)]
pub(crate) struct StepOutcome {
    pub status: StepStatus,
    pub exit_code: i32,
    pub duration: Duration,
    /// The snapshot the step made or restored (for `step_end`).
    pub snapshot: Option<SnapshotId>,
    /// The snapshot children boot from, kept until they are done.
    pub kept: Option<Kept>,
    /// Why it failed, when the command's exit status does not say it.
    pub message: Option<String>,
    /// The step's cache key, when it is cached and passed or hit.
    pub key: Option<String>,
    /// Whether it stored a cache entry.
    pub stored: bool,
    /// The backend turned out to be unavailable: the build must stop.
    pub unavailable: Option<Arc<BackendUnavailable>>,
    /// A VM kept for the build's shell.
    pub shell: Option<HeldShell>,
    /// The step did not run (its `step_skipped` reason); it holds the
    /// shell opened before it.
    pub skipped: Option<String>,
    /// What its command used, when it ran.
    pub usage: hm_vm::StepUsage,
}

impl StepOutcome {
    fn failed(started: Instant, err: StepError) -> Self {
        StepOutcome {
            status: StepStatus::Failed,
            exit_code: -1,
            duration: started.elapsed(),
            snapshot: None,
            kept: None,
            message: Some(error_chain(&err)),
            key: None,
            stored: false,
            unavailable: match err {
                StepError::Unavailable(why) => Some(why),
                _ => None,
            },
            shell: None,
            skipped: None,
            usage: Default::default(),
        }
    }
}

/// Runs steps of one kind.
#[async_trait::async_trait]
pub(crate) trait StepRunner: Send + Sync {
    async fn run(&self, shared: Arc<Shared>, input: StepInput) -> StepOutcome;
}

/// Maps runner names to runners.
pub(crate) struct RunnerRegistry {
    runners: HashMap<&'static str, Arc<dyn StepRunner>>,
}

impl RunnerRegistry {
    pub fn new() -> Self {
        let mut runners: HashMap<&'static str, Arc<dyn StepRunner>> = HashMap::new();
        runners.insert(DEFAULT_RUNNER, Arc::new(VmRunner));
        RunnerRegistry { runners }
    }

    /// The runner for a step's `runner` field (validation has rejected
    /// unknown names).
    pub fn get(&self, name: Option<&str>) -> Arc<dyn StepRunner> {
        self.runners
            .get(name.unwrap_or(DEFAULT_RUNNER))
            .or_else(|| self.runners.get(DEFAULT_RUNNER))
            .cloned()
            .expect("the default runner is registered")
    }
}

/// Runs a step in a VM of the build's backend.
pub(crate) struct VmRunner;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Unavailable(Arc<BackendUnavailable>),
    /// The snapshot a child boots from is not there (a bug, never a
    /// user's doing).
    #[error("the snapshot of `{0}` is gone")]
    ParentGone(String),
    /// A step that was a hit when the build started, so that its parent
    /// did not run, is not one any more.
    #[error(
        "`{0}` did not run, as this step was cached when the build started, but its cache entry no longer matches (its files changed or its ttl window passed during the build); run again"
    )]
    ParentNotRun(String),
    /// `hm run --step`: a step the one asked for builds in has no entry.
    #[error("{}", not_cached(step, build.as_deref()))]
    NotCached { step: String, build: Option<String> },
    #[error(transparent)]
    Limits(#[from] hm_vm::limits::LimitError),
    /// A step declares cache volumes in a build that has nowhere to keep
    /// them (a bug of the front end, never a user's doing).
    #[error("this build has no cache directory for the step's volumes")]
    NoVolumes,
}

/// `killed: out of memory, limit 8 GiB, peak 8.0 GiB`.
fn oom_message(usage: &hm_vm::StepUsage) -> String {
    let mut message = "killed: out of memory".to_owned();
    if let Some(limit) = usage.memory_limit {
        message += &format!(", limit {}", hm_vm::limits::human_bytes(limit));
    }
    if let Some(peak) = usage.peak_memory_bytes {
        message += &format!(", peak {}", hm_vm::limits::human_bytes_exact(peak));
    }
    message
}

fn not_cached(step: &str, build: Option<&str>) -> String {
    match build {
        Some(build) => format!(
            "`{step}` has no snapshot in the cache (local or remote) for build `{build}`: run `hm run PIPELINE --step {step}` first, with the same remote cache"
        ),
        None => format!(
            "`{step}` has no snapshot in the cache (local or remote), and a step without a cache policy is stored only for a CI build: run its job first, with HM_BUILD_ID (or the CI system's build id) and the same remote cache"
        ),
    }
}

impl StepError {
    /// Whether the cache directory's filesystem is full.
    pub fn is_full(&self) -> bool {
        match self {
            StepError::Vm(VmError::DiskFull { .. }) => true,
            StepError::Cache(err) => err.is_full(),
            _ => false,
        }
    }
}

/// What the cache said of a cached step that has to run.
struct Missed {
    keyed: Keyed,
    reason: Option<String>,
}

/// How a step's VM ended up.
struct Ran {
    outcome: ExecOutcome,
    /// What the command used.
    usage: hm_vm::StepUsage,
    /// The snapshot committed, with the source it was synced to.
    kept: Option<Kept>,
    /// The VM of a failed command, kept for the shell.
    failed: Option<Box<dyn Vm>>,
}

/// What the cache said of a step.
enum Cached {
    /// Not cached (no policy, or no cache): it runs.
    No,
    /// Boxed, as a miss is: an outcome is large.
    Hit(Box<StepOutcome>),
    /// Boxed: a key's inputs are large.
    Miss(Box<Missed>),
}

#[async_trait::async_trait]
impl StepRunner for VmRunner {
    async fn run(&self, shared: Arc<Shared>, mut input: StepInput) -> StepOutcome {
        let started = Instant::now();
        let idx = input.idx;
        let planned = &shared.plan.steps[idx];
        let env = step_env(&shared, idx);
        let shell_after = shared.shell.as_ref().is_some_and(|s| s.after(idx));
        if shared.shell.as_ref().is_some_and(|s| s.before(idx)) {
            return shell_before(&shared, input, env, started).await;
        }
        let mut source = None;
        let missed = match consult_cache(&shared, &mut input, &env, &mut source, started).await {
            Ok(Cached::Hit(outcome)) if shell_after => return shell_after_step(&shared, idx, *outcome, &env).await,
            Ok(Cached::Hit(outcome)) => return *outcome,
            Ok(Cached::Miss(missed)) => Some(*missed),
            Ok(Cached::No) => None,
            Err(err) => return StepOutcome::failed(started, err),
        };
        if shared.only.is_some_and(|only| only != idx) {
            let step = planned.key().to_owned();
            let build = shared.cache.as_ref().and_then(|c| c.settings().build.clone());
            return StepOutcome::failed(started, StepError::NotCached { step, build });
        }
        let (keyed, cache_miss) = match missed {
            Some(Missed { keyed, reason }) => (Some(keyed), reason),
            None => (None, None),
        };
        if let (true, Some(parent)) = (input.parent_not_run, planned.parent) {
            let parent = shared.plan.steps[parent].key().to_owned();
            return StepOutcome::failed(started, StepError::ParentNotRun(parent));
        }

        shared
            .emit(Event::StepStart {
                step_id: idx.to_string(),
                runner: planned
                    .node
                    .step
                    .runner
                    .clone()
                    .unwrap_or_else(|| DEFAULT_RUNNER.to_owned()),
                image: planned.parent.is_none().then(|| planned.base_image.clone()),
                cache_miss,
            })
            .await;
        let timed_out = Arc::new(AtomicBool::new(false));
        // A snapshot is kept for children, the cache and a shell after
        // the step; only an uncached step with one successor may hand its
        // VM over.
        let keep = match (keyed.is_some(), planned.children.len() + usize::from(shell_after)) {
            (false, 0) => None,
            (false, 1) => Some(Successors::One),
            _ => Some(Successors::Many),
        };
        let vm_input = VmInput {
            idx,
            parent: input.parent,
            cancel: input.cancel,
            timed_out: timed_out.clone(),
            source,
            env: env.clone(),
            keep,
        };
        let result = match run_in_vm(&shared, vm_input).await {
            Err(err) if !err.is_full() && !matches!(err, StepError::Unavailable(_)) => {
                Err(disk_full(&shared).unwrap_or(err))
            }
            other => other,
        };
        let unavailable = match &result {
            Err(StepError::Unavailable(why)) => Some(why.clone()),
            _ => None,
        };
        let mut shell = None;
        let usage = result.as_ref().map(|ran| ran.usage).unwrap_or_default();
        let (mut status, mut exit_code, mut snapshot, mut message) = match result {
            Ok(Ran {
                outcome: ExecOutcome::Exited(0),
                kept,
                ..
            }) => (StepStatus::Passed, 0, kept, None),
            Ok(Ran {
                outcome,
                failed: Some(vm),
                ..
            }) => {
                let exit_code = outcome.exit_code();
                shell = Some(HeldShell::new(
                    vm,
                    ShellState::Failed { exit_code },
                    &env,
                    shared.shell_limits(idx),
                ));
                (StepStatus::Failed, exit_code, None, None)
            }
            Ok(Ran {
                outcome: ExecOutcome::Killed,
                ..
            }) if timed_out.load(Ordering::SeqCst) => {
                let secs = planned.node.step.timeout_seconds.unwrap_or(0);
                (
                    StepStatus::TimedOut,
                    124,
                    None,
                    Some(format!("timed out after {secs}s")),
                )
            }
            Ok(Ran {
                outcome: ExecOutcome::Killed,
                ..
            }) => (
                StepStatus::Canceled,
                ExecOutcome::Killed.exit_code(),
                None,
                Some("canceled".to_owned()),
            ),
            Ok(Ran { outcome, .. }) => (StepStatus::Failed, outcome.exit_code(), None, None),
            Err(err) => (StepStatus::Failed, -1, None, Some(error_chain(&err))),
        };
        if status == StepStatus::Failed && usage.oom_killed {
            status = StepStatus::Oom;
            message = Some(oom_message(&usage));
        } else if status == StepStatus::Failed && usage.pids_refused && message.is_none() {
            let limit = usage.pids_limit.map(|n| format!(" of {n}")).unwrap_or_default();
            message = Some(format!(
                "reached its process limit{limit} (exit code {exit_code}): new processes were refused"
            ));
        }
        let mut key = None;
        let mut stored = false;
        if let (StepStatus::Passed, Some(mut keyed), Some((id, manifest)), Some(cache)) =
            (status, keyed, snapshot.clone(), &shared.cache)
        {
            // The key covers what was copied, which the snapshot's manifest
            // records (the source may have moved while the step started).
            keyed.inputs.refresh_files(&manifest);
            keyed.key = keyed.inputs.key();
            key = Some(keyed.key.clone());
            let name = EntryName {
                step: planned.key(),
                pipeline: &shared.plan.slug,
            };
            let hold = !planned.children.is_empty();
            let storing = Instant::now();
            let result = cache.store(name, keyed, &id, &manifest, hold).await;
            tracing::debug!(
                step = planned.key(),
                key = key.as_deref(),
                took = ?storing.elapsed(),
                error = result.as_ref().err().map(|e| error_chain(e)),
                "cache entry stored"
            );
            match result {
                Ok(()) => stored = true,
                // A full disk fails the step (its files may be cut short, and
                // nothing can be stored): its children are skipped.
                Err(err) if err.is_full() => {
                    status = StepStatus::Failed;
                    exit_code = -1;
                    message = Some(error_chain(&err));
                    let _ = shared.vm.release(&id).await;
                    snapshot = None;
                }
                // The step passed; only its cache entry is lost.
                Err(err) => message = Some(format!("passed, but could not be cached: {}", error_chain(&err))),
            }
            if planned.children.is_empty() && !shell_after && snapshot.is_some() {
                let _ = shared.vm.release(&id).await;
            }
        }
        let outcome = StepOutcome {
            status,
            exit_code,
            duration: started.elapsed(),
            snapshot: snapshot.as_ref().map(|(id, _)| id.clone()),
            kept: snapshot.filter(|_| !planned.children.is_empty() || shell_after),
            message,
            key,
            stored,
            unavailable,
            shell,
            skipped: None,
            usage,
        };
        match status {
            StepStatus::Passed if shell_after => shell_after_step(&shared, idx, outcome, &env).await,
            _ => outcome,
        }
    }
}

/// A step that passed or hit, with a VM booted from its snapshot for the
/// shell after it (the snapshot stays the build's until the shell is
/// done). A VM that cannot be booted is said in the step's message.
async fn shell_after_step(
    shared: &Arc<Shared>,
    idx: StepIdx,
    mut outcome: StepOutcome,
    env: &BTreeMap<String, String>,
) -> StepOutcome {
    let Some((snapshot, _)) = &outcome.kept else {
        return outcome;
    };
    let state = match outcome.status {
        StepStatus::CacheHit => ShellState::Cached,
        _ => ShellState::Passed,
    };
    let booted = async {
        ensure_backend(shared).await?;
        let request = BootRequest {
            from: BootFrom::Snapshot(snapshot.clone()),
            name: shared.plan.steps[idx].key().to_owned(),
            source_layer: None,
        };
        Ok::<_, StepError>(shared.vm.boot(request).await?)
    };
    match booted.await {
        Ok(vm) => outcome.shell = Some(HeldShell::new(vm, state, env, shared.shell_limits(idx))),
        Err(err) => {
            let passed = outcome.message.take().map(|m| format!("{m}; ")).unwrap_or_default();
            outcome.message = Some(format!("{passed}no shell: {}", error_chain(&err)));
        }
    }
    outcome
}

/// The step `hm shell --before` stops at: its VM is booted and synced as
/// if it were to run, and kept for the shell; the step is reported
/// skipped. A VM that cannot be made ready fails the step.
async fn shell_before(
    shared: &Arc<Shared>,
    input: StepInput,
    env: BTreeMap<String, String>,
    started: Instant,
) -> StepOutcome {
    match boot_synced(shared, input.idx, input.parent, None).await {
        Ok((vm, _)) => StepOutcome {
            status: StepStatus::Passed,
            exit_code: 0,
            duration: started.elapsed(),
            snapshot: None,
            kept: None,
            message: None,
            key: None,
            stored: false,
            unavailable: None,
            shell: Some(HeldShell::new(
                vm,
                ShellState::Before,
                &env,
                shared.shell_limits(input.idx),
            )),
            skipped: Some("a shell opens in the state before it".to_owned()),
            usage: Default::default(),
        },
        Err(err) => StepOutcome::failed(started, err),
    }
}

/// Looks a cached step up: a hit ends it; a miss gives its key and why it
/// missed. `source` gets the scanned source when the policy needed it.
async fn consult_cache(
    shared: &Arc<Shared>,
    input: &mut StepInput,
    env: &BTreeMap<String, String>,
    source: &mut Option<Manifest>,
    started: Instant,
) -> Result<Cached, StepError> {
    let idx = input.idx;
    let planned = &shared.plan.steps[idx];
    let policy = policy_of(shared, idx);
    let (Some(cache), Some(policy)) = (&shared.cache, policy) else {
        tracing::debug!(
            step = planned.key(),
            cache = shared.cache.is_some(),
            "not cached: runs every time"
        );
        return Ok(Cached::No);
    };
    let policy = policy.as_ref();
    if policy.uses_files() {
        *source = Some(scan(shared).await?);
    }
    let inputs = key_inputs(
        shared,
        cache,
        idx,
        policy,
        env,
        source.as_ref(),
        input.parent_key.clone(),
    );
    let key = inputs.key();
    let mut reason = None;
    if !cache.settings().refresh {
        let keep = !planned.children.is_empty() || shared.shell.as_ref().is_some_and(|s| s.after(idx));
        let looked_up = match input.prefetched.take() {
            // Still the same key (the source or the ttl window may have
            // moved since the build started).
            Some((prefetched_key, found)) if prefetched_key == key => cache.restore(Some(found), keep).await,
            _ => cache.lookup(&key, keep).await,
        };
        let looked_up = match looked_up {
            Ok(looked_up) => cache.or_remote(looked_up, &key, keep).await,
            Err(err) => Err(err),
        };
        match looked_up {
            Ok(Lookup::Hit { tag, snapshot, remote }) => {
                tracing::debug!(step = planned.key(), %key, remote, "cache hit");
                shared
                    .emit(Event::StepCacheHit {
                        step_id: idx.to_string(),
                        key: key.clone(),
                        tag,
                        remote,
                    })
                    .await;
                return Ok(Cached::Hit(Box::new(StepOutcome {
                    status: StepStatus::CacheHit,
                    exit_code: 0,
                    duration: started.elapsed(),
                    snapshot: snapshot.as_ref().map(|(id, _)| id.clone()),
                    kept: snapshot,
                    message: None,
                    key: Some(key),
                    stored: false,
                    unavailable: None,
                    shell: None,
                    skipped: None,
                    usage: Default::default(),
                })));
            }
            Ok(Lookup::Miss { reason: dropped }) => {
                let name = EntryName {
                    step: planned.key(),
                    pipeline: &shared.plan.slug,
                };
                reason = cache.explain_miss(name, &inputs).await.or(dropped);
                tracing::debug!(step = planned.key(), %key, reason = reason.as_deref(), "cache miss");
            }
            Err(err) => reason = Some(format!("the cache could not be read: {}", error_chain(&err))),
        }
    } else {
        tracing::debug!(step = planned.key(), %key, "not looked up (--no-cache): runs and refreshes its entry");
    }
    Ok(Cached::Miss(Box::new(Missed {
        keyed: Keyed { key, inputs },
        reason,
    })))
}

/// Checks the backend once, before the first step boots. A check that
/// failed because the backend's storage is full is the step's failure,
/// not the backend's, and the next step checks again.
async fn ensure_backend(shared: &Shared) -> Result<(), StepError> {
    let checked = shared
        .backend
        .get_or_try_init(|| async {
            match shared.vm.check().await {
                Ok(()) => Ok(Ok(())),
                Err(err) => match disk_full(shared) {
                    Some(full) => Err(full),
                    None => Ok(Err(Arc::new(err))),
                },
            }
        })
        .await?;
    checked.clone().map_err(StepError::Unavailable)
}

/// The error a step fails with when the filesystem the backend writes
/// steps' files to is full (whatever else went wrong follows from it).
fn disk_full(shared: &Shared) -> Option<StepError> {
    let dir = shared.vm.storage()?;
    hm_vm::fsutil::is_full(dir).then(|| VmError::DiskFull { dir: dir.to_owned() }.into())
}

/// The error and its causes, joined.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The step's environment: the node's, its own, then `-e` overrides.
fn step_env(shared: &Shared, idx: StepIdx) -> BTreeMap<String, String> {
    let node = &shared.plan.steps[idx].node;
    let mut env = node.env.clone();
    if let Some(own) = &node.step.env {
        env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.extend(shared.env_overrides.iter().cloned());
    env
}

async fn scan(shared: &Arc<Shared>) -> Result<Manifest, SourceError> {
    let scanning = shared.clone();
    tokio::task::spawn_blocking(move || scanning.source.scan())
        .await
        .map_err(|e| SourceError {
            path: shared.source.root().to_owned(),
            source: std::io::Error::other(e),
        })?
}

/// The cache policy step `idx` is keyed by: its own when it is cached;
/// for one that is not, in a job of a CI build (`hm run --step`), none,
/// keyed by the build (see [`CacheSettings::build`]).
fn policy_of(shared: &Shared, idx: StepIdx) -> Option<std::borrow::Cow<'_, CachePolicy>> {
    let own = shared.plan.steps[idx]
        .node
        .step
        .cache
        .as_ref()
        .filter(|p| p.is_cached());
    match own {
        Some(policy) => Some(std::borrow::Cow::Borrowed(policy)),
        None => shared.cache.as_ref()?.settings().build.as_ref().map(|_| {
            std::borrow::Cow::Owned(CachePolicy {
                kind: hm_ir::PolicyKind::None,
                key: None,
            })
        }),
    }
}

/// What a cached step's key is made of, given its parent's key.
fn key_inputs(
    shared: &Shared,
    cache: &SnapshotCache,
    idx: StepIdx,
    policy: &CachePolicy,
    env: &BTreeMap<String, String>,
    source: Option<&Manifest>,
    parent: Option<String>,
) -> KeyInputs {
    let planned = &shared.plan.steps[idx];
    let base = match planned.parent {
        Some(_) => None,
        None => shared
            .images
            .get(&planned.base_image)
            .map(|i| format!("{}:{}", shared.vm.name(), i.id)),
    };
    let context = KeyContext {
        scope: &cache.settings().scope,
        parent,
        base,
        env: env.clone(),
        source,
        now: crate::cache::now(),
        network: shared.vm.network(),
        host_env: &cache.settings().host_env,
        build: cache.settings().build.as_deref(),
    };
    KeyInputs::new(planned, policy, context)
}

/// Computes the key of every cached step up front and looks them all up in
/// one transaction, so that a build of cache hits reads the registry once.
/// Each step still checks its key when it is its turn.
pub(crate) async fn prefetch(shared: &Arc<Shared>) -> Result<Prefetched, StepError> {
    let Some(cache) = shared.cache.as_ref().filter(|c| !c.settings().refresh) else {
        return Ok(Prefetched::default());
    };
    let keys = planned_keys(shared, cache).await?;
    // Every hit is held: a child that misses after all (its source moved
    // while the build ran) boots from its parent's entry, and another
    // process may not evict it meanwhile.
    let mut found = cache.lookup_many(keys.values().cloned().collect()).await?;
    let found = keys
        .iter()
        .filter_map(|(&idx, key)| found.remove(key).map(|entry| (idx, (key.clone(), entry))))
        .collect();
    Ok(Prefetched { keys, found })
}

/// The key of every cached step whose ancestors are cached too: what the
/// build looks up before it starts.
pub(crate) async fn planned_keys(
    shared: &Arc<Shared>,
    cache: &SnapshotCache,
) -> Result<HashMap<StepIdx, String>, StepError> {
    let plan = &shared.plan;
    let cached = |idx: StepIdx| policy_of(shared, idx);
    let needs_source = (0..plan.steps.len()).any(|idx| cached(idx).is_some_and(|p| p.uses_files()));
    let source = if needs_source { Some(scan(shared).await?) } else { None };
    let mut keys: HashMap<StepIdx, String> = HashMap::new();
    for &idx in &plan.topo_order {
        let Some(policy) = cached(idx) else { continue };
        let parent = match plan.steps[idx].parent {
            Some(p) => match keys.get(&p) {
                Some(key) => Some(key.clone()),
                None => continue,
            },
            None => None,
        };
        let env = step_env(shared, idx);
        let inputs = key_inputs(shared, cache, idx, &policy, &env, source.as_ref(), parent);
        keys.insert(idx, inputs.key());
    }
    Ok(keys)
}

/// What the cache said before the build started.
#[derive(Default)]
pub(crate) struct Prefetched {
    /// The key of every cached step whose ancestors are cached too.
    pub keys: HashMap<StepIdx, String>,
    /// The entries found, by step, with their key.
    pub found: HashMap<StepIdx, (String, Found)>,
}

/// One step's output as it is kept ([`crate::local::StepLogs`]): written
/// as it arrives, cut at the limit. A log that cannot be written is given
/// up; the step goes on.
struct KeptLog {
    path: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    written: u64,
    limit: u64,
    failed: bool,
}

impl KeptLog {
    fn new(logs: &crate::local::StepLogs, step_id: &str) -> Self {
        KeptLog {
            path: logs.dir.join(format!("{step_id}.log")),
            file: None,
            written: 0,
            limit: logs.limit,
            failed: false,
        }
    }

    async fn write(&mut self, line: &LogLine) {
        use tokio::io::AsyncWriteExt;
        if self.failed || self.written > self.limit {
            return;
        }
        if self.file.is_none() {
            match tokio::fs::File::create(&self.path).await {
                Ok(file) => self.file = Some(tokio::io::BufWriter::new(file)),
                Err(_) => {
                    self.failed = true;
                    return;
                }
            }
        }
        let Some(file) = &mut self.file else { return };
        let eol: &[u8] = if line.eol { b"\n" } else { b"" };
        let size = (line.bytes.len() + eol.len()) as u64;
        let result = if self.written + size > self.limit {
            let room = (self.limit - self.written) as usize;
            let note = format!(
                "\n[hm: the output goes on; the log keeps its first {} bytes]\n",
                self.limit
            );
            self.written = self.limit + 1;
            let head = &[&line.bytes[..], eol].concat()[..room];
            match file.write_all(head).await {
                Ok(()) => file.write_all(note.as_bytes()).await,
                err => err,
            }
        } else {
            self.written += size;
            match file.write_all(&line.bytes).await {
                Ok(()) => file.write_all(eol).await,
                err => err,
            }
        };
        self.failed = result.is_err();
    }

    async fn finish(&mut self) {
        use tokio::io::AsyncWriteExt;
        if let Some(file) = &mut self.file {
            let _ = file.flush().await;
        }
    }
}

/// What [`run_in_vm`] needs.
struct VmInput {
    idx: StepIdx,
    parent: Option<Kept>,
    cancel: watch::Receiver<bool>,
    /// Set when the step's own timeout killed it.
    timed_out: Arc<AtomicBool>,
    /// The source, when the cache lookup scanned it already.
    source: Option<Manifest>,
    env: BTreeMap<String, String>,
    /// Whether (and for whom) to commit the VM's filesystem.
    keep: Option<Successors>,
}

/// Boots step `idx`'s VM from its parent's snapshot (or its image) and
/// syncs `/workspace` to the source (`source`, or scanned now); returns
/// the VM and the source it is synced to.
async fn boot_synced(
    shared: &Arc<Shared>,
    idx: StepIdx,
    parent: Option<Kept>,
    source: Option<Manifest>,
) -> Result<(Box<dyn Vm>, Manifest), StepError> {
    let planned = &shared.plan.steps[idx];
    let manifest = match source {
        Some(manifest) => manifest,
        None => scan(shared).await?,
    };
    ensure_backend(shared).await?;
    let (from, before, source_layer) = match (planned.parent, parent) {
        (Some(_), Some((snapshot, manifest))) => (BootFrom::Snapshot(snapshot), Some(manifest), None),
        (Some(parent), None) => return Err(StepError::ParentGone(shared.plan.steps[parent].key().to_owned())),
        (None, _) => {
            let image = &shared.images[&planned.base_image];
            let layer = shared.layers.choose(shared.vm.as_ref(), image, &manifest).await?;
            let (name, held) = layer.unzip();
            (BootFrom::Image(image.clone()), held, name)
        }
    };
    let sync = sync_plan(shared.source.root(), before.as_deref(), &manifest);
    let booting = Instant::now();
    tracing::debug!(
        step = planned.key(),
        backend = shared.vm.name(),
        from = ?from,
        source_layer = source_layer.as_deref(),
        "VM boots"
    );
    let mut vm = shared
        .vm
        .boot(BootRequest {
            from,
            name: planned.key().to_owned(),
            source_layer,
        })
        .await?;
    let booted = booting.elapsed();
    if let Err(err) = vm.sync(sync).await {
        let _ = vm.destroy().await;
        return Err(err.into());
    }
    tracing::debug!(
        step = planned.key(),
        boot = ?booted,
        sync = ?booting.elapsed().saturating_sub(booted),
        "VM booted and /workspace synced"
    );
    Ok((vm, manifest))
}

/// The cache volumes step `idx` mounts, taken for it (see
/// [`crate::volumes`]).
async fn take_volumes(shared: &Shared, idx: StepIdx) -> Result<crate::volumes::Held, StepError> {
    let declared = shared.plan.volumes(idx);
    let Some(settings) = &shared.volumes else {
        return match declared.is_empty() {
            true => Ok(Default::default()),
            false => Err(StepError::NoVolumes),
        };
    };
    let image = &shared.plan.steps[idx].base_image;
    crate::volumes::acquire(settings, image, settings.mounts(declared))
        .await
        .map_err(|source| {
            StepError::Vm(VmError::Io {
                op: "take the cache volumes in",
                path: settings.store.dir().to_owned(),
                source,
            })
        })
}

/// Boots, syncs, runs and (when `keep`, for those successors) commits;
/// returns how the command ended and, if committed, the snapshot with the
/// source it was synced to. The VM of a command that failed is kept for
/// the build's shell when it claims it.
async fn run_in_vm(shared: &Arc<Shared>, input: VmInput) -> Result<Ran, StepError> {
    let VmInput {
        idx,
        parent,
        mut cancel,
        timed_out,
        source,
        env,
        keep,
    } = input;
    let planned = &shared.plan.steps[idx];
    let step = &planned.node.step;
    let step_id = idx.to_string();
    let limits = shared.step_limits(idx)?;
    let (mut vm, manifest) = boot_synced(shared, idx, parent, source).await?;

    let timeout = step.timeout_seconds.map(Duration::from_secs);
    let kill = Box::pin(async move {
        let cancelled = async {
            let _ = cancel.wait_for(|c| *c).await;
        };
        match timeout {
            Some(limit) => {
                tokio::select! {
                    () = cancelled => {}
                    () = tokio::time::sleep(limit) => timed_out.store(true, Ordering::SeqCst),
                }
            }
            None => cancelled.await,
        }
    });

    // Few pieces in flight: each may be 64 KiB (see `hm_vm::lines`).
    let (logs, mut lines) = mpsc::channel::<LogLine>(32);
    let events = shared.events.clone();
    let mut kept = shared.logs.as_ref().map(|logs| KeptLog::new(logs, &step_id));
    let forward = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            if let Some(kept) = &mut kept {
                kept.write(&line).await;
            }
            let event = Event::StepLog {
                step_id: step_id.clone(),
                stream: line.stream,
                line: line.text().into_owned(),
                partial: line.partial,
                ts: now_rfc3339(),
            };
            // Nobody listening any more does not stop the step.
            let _ = events.send(event).await;
        }
        if let Some(kept) = &mut kept {
            kept.finish().await;
        }
    });
    let volumes = take_volumes(shared, idx).await?;
    let registry = shared.cache.as_ref().map(|cache| &*cache.settings().registry);
    volumes.record(&*shared.vm, registry);
    let request = ExecRequest {
        cmd: step.cmd.clone(),
        env: env.into_iter().collect(),
        cwd: PathBuf::from(WORKSPACE),
        limits,
        volumes: volumes.binds(),
    };
    tracing::debug!(step = planned.key(), cmd = %step.cmd, "command starts");
    let executing = Instant::now();
    let outcome = vm.exec(request, logs, kill).await;
    volumes.release(&*shared.vm, registry).await;
    let _ = forward.await;
    tracing::debug!(step = planned.key(), took = ?executing.elapsed(), outcome = ?outcome.as_ref().map_err(|e| e.to_string()), "command ended");
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let _ = vm.destroy().await;
            return Err(err.into());
        }
    };
    if outcome != ExecOutcome::Killed {
        // What the step wrote may be cut short: nothing of it is kept.
        if let Some(full) = disk_full(shared) {
            let _ = vm.destroy().await;
            return Err(full);
        }
    }
    // What the sync copied, where the source moved after the scan.
    let manifest = manifest.with_drift(&vm.drift());
    let usage = vm.usage();
    // A step a limit stopped work of fails, whatever its command returned
    // (a test runner may shrug off a killed worker or a refused fork); a
    // process killed for memory is as if by SIGKILL (9).
    let outcome = match outcome {
        ExecOutcome::Exited(0) if usage.oom_killed => ExecOutcome::Signaled(9),
        ExecOutcome::Exited(0) if usage.pids_refused => ExecOutcome::Exited(1),
        outcome => outcome,
    };

    let failed =
        matches!(outcome, ExecOutcome::Exited(code) if code != 0) || matches!(outcome, ExecOutcome::Signaled(_));
    if let (ExecOutcome::Exited(0), Some(successors)) = (outcome, keep) {
        let committing = Instant::now();
        let snapshot = vm.commit(successors).await?;
        tracing::debug!(step = planned.key(), %snapshot, ?successors, took = ?committing.elapsed(), "VM snapshotted");
        Ok(Ran {
            outcome,
            usage,
            kept: Some((snapshot, Arc::new(manifest))),
            failed: None,
        })
    } else if failed && shared.shell.as_ref().is_some_and(|s| s.claim_failure(idx)) {
        Ok(Ran {
            outcome,
            usage,
            kept: None,
            failed: Some(vm),
        })
    } else {
        vm.destroy().await?;
        Ok(Ran {
            outcome,
            usage,
            kept: None,
            failed: None,
        })
    }
}
