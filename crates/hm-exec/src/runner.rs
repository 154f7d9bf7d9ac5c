//! Runs one step: look it up in the cache, or boot its VM from the
//! parent's snapshot or its image, sync `/workspace`, run the command with
//! its output streamed as events, keep a snapshot when children will build
//! on it, and store it in the cache when its policy says so.
//!
//! [`RunnerRegistry`] maps a step's `runner` to a [`StepRunner`];
//! [`VmRunner`] is the default.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hm_ir::{CachePolicy, Plan, StepIdx};
use hm_vm::{
    BootFrom, BootRequest, CacheEntry, ExecOutcome, ExecRequest, ImageRef, LogLine, NewEntry, SnapshotId,
    StoredSnapshot, Successors, VmBackend, VmError,
};
use tokio::sync::{mpsc, watch};

use crate::cache::{CacheSettings, KeyContext, KeyInputs};
use crate::events::{now_rfc3339, Event, StepStatus};
use crate::workspace::{sync_plan, Manifest, Source, SourceError, WORKSPACE};

/// The name of the default runner.
pub const DEFAULT_RUNNER: &str = "vm";

/// Everything the steps of one build share.
pub(crate) struct RunContext {
    pub plan: Plan,
    pub vm: Arc<dyn VmBackend>,
    pub source: Source,
    /// `-e KEY=VALUE` overrides, applied last.
    pub env_overrides: Vec<(String, String)>,
    pub events: mpsc::Sender<Event>,
    /// Base images, resolved before the build started.
    pub images: HashMap<String, ImageRef>,
    /// Snapshots of this build's steps, with the source they saw.
    pub snapshots: Mutex<HashMap<StepIdx, (SnapshotId, Arc<Manifest>)>>,
    pub cache: Option<CacheSettings>,
    /// Cache keys of the cached steps that passed or hit.
    pub keys: Mutex<HashMap<StepIdx, String>>,
    /// The backend's check, made before the first boot (a build whose
    /// steps are all cache hits boots nothing and needs none).
    pub checked: tokio::sync::Mutex<Option<Result<(), String>>>,
    /// Why the backend cannot run here, once the check failed.
    pub unavailable: Mutex<Option<hm_vm::BackendUnavailable>>,
    /// Cache entries looked up before the build started, by step, with the
    /// key they were found under.
    pub prefetched: Mutex<HashMap<StepIdx, (String, hm_vm::Found)>>,
    /// Whether this build stored an entry (and the cache may be over its
    /// bounds once the build lets go of what it held).
    pub stored: AtomicBool,
}

impl RunContext {
    pub fn snapshot_of(&self, idx: StepIdx) -> Option<(SnapshotId, Arc<Manifest>)> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&idx)
            .cloned()
    }

    async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }
}

/// How a step that started ended.
#[derive(Debug, Clone)]
pub(crate) struct StepReport {
    pub status: StepStatus,
    pub exit_code: i32,
    pub duration: Duration,
    pub snapshot: Option<SnapshotId>,
    /// Why it failed, when the command's exit status does not say it.
    pub message: Option<String>,
    /// The backend turned out to be unavailable: the build must stop.
    pub unavailable: bool,
}

/// Runs steps of one kind.
#[async_trait::async_trait]
pub(crate) trait StepRunner: Send + Sync {
    async fn run(&self, ctx: Arc<RunContext>, idx: StepIdx, cancel: watch::Receiver<bool>) -> StepReport;
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
    Registry(#[from] hm_vm::RegistryError),
    #[error("the task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Unavailable(String),
}

impl StepError {
    /// Whether the cache directory's filesystem is full.
    pub fn is_full(&self) -> bool {
        match self {
            StepError::Vm(VmError::DiskFull { .. }) => true,
            StepError::Registry(err) => err.is_full(),
            _ => false,
        }
    }
}

/// A cached step's key and what it was made of.
struct Keyed {
    key: String,
    inputs: KeyInputs,
}

#[async_trait::async_trait]
impl StepRunner for VmRunner {
    async fn run(&self, ctx: Arc<RunContext>, idx: StepIdx, cancel: watch::Receiver<bool>) -> StepReport {
        let started = Instant::now();
        let planned = &ctx.plan.steps[idx];
        let env = step_env(&ctx, idx);
        let mut source = None;
        let mut keyed = None;
        let mut cache_miss = None;
        if let (Some(cache), Some(policy)) = (&ctx.cache, planned.node.step.cache.as_ref().filter(|p| p.is_cached())) {
            if policy.uses_files() {
                source = match scan(&ctx).await {
                    Ok(manifest) => Some(manifest),
                    Err(err) => return failed(started, err),
                };
            }
            let inputs = key_inputs(&ctx, idx, cache, policy, &env, source.as_ref());
            let key = inputs.key();
            if !cache.refresh {
                let prefetched = ctx.prefetched.lock().unwrap_or_else(|p| p.into_inner()).remove(&idx);
                let looked_up = match prefetched {
                    // Still the same key (the source or the ttl window may
                    // have moved since the build started).
                    Some((prefetched_key, found)) if prefetched_key == key => {
                        use_found(&ctx, idx, cache, Some(found)).await
                    }
                    _ => lookup(&ctx, idx, cache, &key).await,
                };
                match looked_up {
                    Ok(Lookup::Hit { tag }) => {
                        ctx.keys
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(idx, key.clone());
                        ctx.emit(Event::StepCacheHit {
                            step_id: idx.to_string(),
                            key,
                            tag,
                        })
                        .await;
                        return StepReport {
                            status: StepStatus::CacheHit,
                            exit_code: 0,
                            duration: started.elapsed(),
                            snapshot: ctx.snapshot_of(idx).map(|(s, _)| s),
                            message: None,
                            unavailable: false,
                        };
                    }
                    Ok(Lookup::Miss { reason }) => {
                        cache_miss = explain_miss(&ctx, idx, cache, &inputs).await.or(reason)
                    }
                    Err(err) => cache_miss = Some(format!("the cache could not be read: {}", error_chain(&err))),
                }
            }
            keyed = Some(Keyed { key, inputs });
        }

        ctx.emit(Event::StepStart {
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
        // A snapshot is kept for children and the cache; only an uncached
        // step with one child may hand its VM over.
        let keep = match (keyed.is_some(), planned.children.len()) {
            (false, 0) => None,
            (false, 1) => Some(Successors::One),
            _ => Some(Successors::Many),
        };
        let result = match run_in_vm(&ctx, idx, cancel, timed_out.clone(), source, env, keep).await {
            Err(err) if !err.is_full() && !matches!(err, StepError::Unavailable(_)) => {
                Err(disk_full(&ctx).unwrap_or(err))
            }
            other => other,
        };
        let unavailable = matches!(result, Err(StepError::Unavailable(_)));
        let (mut status, mut exit_code, mut snapshot, mut message) = match result {
            Ok((ExecOutcome::Exited(0), snapshot)) => (StepStatus::Passed, 0, snapshot, None),
            Ok((ExecOutcome::Killed, _)) if timed_out.load(Ordering::SeqCst) => {
                let secs = planned.node.step.timeout_seconds.unwrap_or(0);
                (
                    StepStatus::TimedOut,
                    124,
                    None,
                    Some(format!("timed out after {secs}s")),
                )
            }
            Ok((ExecOutcome::Killed, _)) => (
                StepStatus::Canceled,
                ExecOutcome::Killed.exit_code(),
                None,
                Some("canceled".to_owned()),
            ),
            Ok((outcome, _)) => (StepStatus::Failed, outcome.exit_code(), None, None),
            Err(err) => (StepStatus::Failed, -1, None, Some(error_chain(&err))),
        };
        if let (StepStatus::Passed, Some(mut keyed), Some((stored, manifest))) = (status, keyed, snapshot.clone()) {
            // The key covers what was copied, which the snapshot's manifest
            // records (the source may have moved while the step started).
            keyed.inputs.refresh_files(&manifest);
            keyed.key = keyed.inputs.key();
            ctx.keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(idx, keyed.key.clone());
            match store(&ctx, idx, keyed, &stored, &manifest).await {
                Ok(()) => {}
                // A full disk fails the step (its files may be cut short, and
                // nothing can be stored): its children are skipped.
                Err(err) if err.is_full() => {
                    status = StepStatus::Failed;
                    exit_code = -1;
                    message = Some(error_chain(&err));
                    ctx.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(&idx);
                    let _ = ctx.vm.release(&stored).await;
                    snapshot = None;
                }
                // The step passed; only its cache entry is lost.
                Err(err) => message = Some(format!("passed, but could not be cached: {}", error_chain(&err))),
            }
            if planned.children.is_empty() && snapshot.is_some() {
                ctx.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(&idx);
                let _ = ctx.vm.release(&stored).await;
            }
        }
        StepReport {
            status,
            exit_code,
            duration: started.elapsed(),
            snapshot: snapshot.map(|(s, _)| s),
            message,
            unavailable,
        }
    }
}

/// Checks the backend once, before the first step boots. A check that
/// failed because the backend's storage is full is the step's failure,
/// not the backend's, and the next step checks again.
async fn ensure_backend(ctx: &RunContext) -> Result<(), StepError> {
    let mut checked = ctx.checked.lock().await;
    if let Some(done) = &*checked {
        return done.clone().map_err(StepError::Unavailable);
    }
    match ctx.vm.check().await {
        Ok(()) => {
            *checked = Some(Ok(()));
            Ok(())
        }
        Err(err) => {
            if let Some(full) = disk_full(ctx) {
                return Err(full);
            }
            let message = error_chain(&err);
            *ctx.unavailable.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
            *checked = Some(Err(message.clone()));
            Err(StepError::Unavailable(message))
        }
    }
}

/// The error a step fails with when the filesystem the backend writes
/// steps' files to is full (whatever else went wrong follows from it).
fn disk_full(ctx: &RunContext) -> Option<StepError> {
    let dir = ctx.vm.storage()?;
    hm_vm::fsutil::is_full(dir).then(|| VmError::DiskFull { dir: dir.to_owned() }.into())
}

fn failed(started: Instant, err: impl Into<StepError>) -> StepReport {
    StepReport {
        status: StepStatus::Failed,
        exit_code: -1,
        duration: started.elapsed(),
        snapshot: None,
        message: Some(error_chain(&err.into())),
        unavailable: false,
    }
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
fn step_env(ctx: &RunContext, idx: StepIdx) -> BTreeMap<String, String> {
    let node = &ctx.plan.steps[idx].node;
    let mut env = node.env.clone();
    if let Some(own) = &node.step.env {
        env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.extend(ctx.env_overrides.iter().cloned());
    env
}

async fn scan(ctx: &Arc<RunContext>) -> Result<Manifest, SourceError> {
    let scan_ctx = ctx.clone();
    tokio::task::spawn_blocking(move || scan_ctx.source.scan())
        .await
        .map_err(|e| SourceError {
            path: ctx.source.root().to_owned(),
            source: std::io::Error::other(e),
        })?
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn key_inputs(
    ctx: &RunContext,
    idx: StepIdx,
    cache: &CacheSettings,
    policy: &CachePolicy,
    env: &BTreeMap<String, String>,
    source: Option<&Manifest>,
) -> KeyInputs {
    let planned = &ctx.plan.steps[idx];
    let parent = planned
        .parent
        .and_then(|p| ctx.keys.lock().unwrap_or_else(|e| e.into_inner()).get(&p).cloned());
    key_inputs_with_parent(ctx, idx, cache, policy, env, source, parent)
}

fn key_inputs_with_parent(
    ctx: &RunContext,
    idx: StepIdx,
    cache: &CacheSettings,
    policy: &CachePolicy,
    env: &BTreeMap<String, String>,
    source: Option<&Manifest>,
    parent: Option<String>,
) -> KeyInputs {
    let planned = &ctx.plan.steps[idx];
    let base = match planned.parent {
        Some(_) => None,
        None => ctx
            .images
            .get(&planned.base_image)
            .map(|i| format!("{}:{}", ctx.vm.name(), i.id)),
    };
    let context = KeyContext {
        scope: &cache.scope,
        parent,
        base,
        env: env.clone(),
        source,
        now: now(),
        network: ctx.vm.network(),
    };
    KeyInputs::new(planned, policy, context)
}

enum Lookup {
    Hit { tag: String },
    Miss { reason: Option<String> },
}

/// Computes the key of every cached step up front and looks them all up in
/// one transaction, so that a build of cache hits reads the registry once.
/// Each step still checks its key when it is its turn.
pub(crate) async fn prefetch(ctx: &Arc<RunContext>) -> Result<(), StepError> {
    let Some(cache) = ctx.cache.as_ref().filter(|c| !c.refresh) else {
        return Ok(());
    };
    let cached = |idx: StepIdx| ctx.plan.steps[idx].node.step.cache.as_ref().filter(|p| p.is_cached());
    let needs_source = (0..ctx.plan.steps.len()).any(|idx| cached(idx).is_some_and(CachePolicy::uses_files));
    let source = if needs_source { Some(scan(ctx).await?) } else { None };
    let mut keys: HashMap<StepIdx, String> = HashMap::new();
    for &idx in &ctx.plan.topo_order {
        let Some(policy) = cached(idx) else { continue };
        let parent = match ctx.plan.steps[idx].parent {
            Some(p) => match keys.get(&p) {
                Some(key) => Some(key.clone()),
                None => continue,
            },
            None => None,
        };
        let env = step_env(ctx, idx);
        let inputs = key_inputs_with_parent(ctx, idx, cache, policy, &env, source.as_ref(), parent);
        keys.insert(idx, inputs.key());
    }
    let registry = cache.registry.clone();
    // Every hit is held: a child that misses after all (its source moved
    // while the build ran) boots from its parent's entry, and another
    // process may not evict it meanwhile.
    let wanted: Vec<(String, bool)> = keys.values().map(|k| (k.clone(), true)).collect();
    let mut found = tokio::task::spawn_blocking(move || registry.lookup_many(&wanted)).await??;
    let mut prefetched = ctx.prefetched.lock().unwrap_or_else(|p| p.into_inner());
    for (idx, key) in keys {
        if let Some(entry) = found.remove(&key) {
            prefetched.insert(idx, (key, entry));
        }
    }
    Ok(())
}

/// Looks `key` up (see [`use_found`]).
async fn lookup(ctx: &RunContext, idx: StepIdx, cache: &CacheSettings, key: &str) -> Result<Lookup, StepError> {
    let registry = cache.registry.clone();
    let owned_key = key.to_owned();
    let found = tokio::task::spawn_blocking(move || registry.lookup(&owned_key)).await??;
    use_found(ctx, idx, cache, found).await
}

/// A found entry's snapshot is restored (when children will boot from it)
/// with the source it saw. An entry whose storage is gone or damaged is
/// dropped and the step runs.
async fn use_found(
    ctx: &RunContext,
    idx: StepIdx,
    cache: &CacheSettings,
    found: Option<hm_vm::Found>,
) -> Result<Lookup, StepError> {
    let Some(hm_vm::Found { entry, manifest }) = found.filter(|f| f.entry.backend == ctx.vm.name()) else {
        return Ok(Lookup::Miss { reason: None });
    };
    let stored = StoredSnapshot {
        parts: entry.parts.clone(),
        base: entry.base.clone(),
    };
    let restored = match manifest.as_deref().and_then(Manifest::from_bytes) {
        Some(manifest) => ctx.vm.restore(&stored).await.map(|snapshot| (snapshot, manifest)),
        None => Err(VmError::StoredMissing("its source manifest is gone".to_owned())),
    };
    match restored {
        Ok((snapshot, manifest)) => {
            if ctx.plan.steps[idx].children.is_empty() {
                let _ = ctx.vm.release(&snapshot).await;
            } else {
                ctx.snapshots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(idx, (snapshot, Arc::new(manifest)));
            }
            let tag = entry.parts.first().cloned().unwrap_or_default();
            Ok(Lookup::Hit { tag })
        }
        Err(VmError::StoredMissing(why)) => {
            forget(ctx, cache, vec![entry.key.clone()]).await?;
            Ok(Lookup::Miss {
                reason: Some(format!("the stored snapshot was incomplete ({why}); it was dropped")),
            })
        }
        Err(err) => Err(err.into()),
    }
}

/// Removes entries and deletes the storage nothing needs any more.
async fn forget(ctx: &RunContext, cache: &CacheSettings, keys: Vec<String>) -> Result<(), StepError> {
    let registry = cache.registry.clone();
    let doomed = tokio::task::spawn_blocking(move || registry.remove(&keys)).await??;
    delete_doomed(ctx.vm.as_ref(), &doomed).await;
    Ok(())
}

/// Deletes the parts of this backend in `doomed`; a part that cannot be
/// deleted now becomes an orphan that a later run collects.
pub async fn delete_doomed(vm: &dyn VmBackend, doomed: &hm_vm::Doomed) {
    let parts: Vec<String> = doomed
        .parts
        .iter()
        .filter(|(b, _)| b == vm.name())
        .map(|(_, p)| p.clone())
        .collect();
    if !parts.is_empty() {
        let _ = vm.delete_parts(&parts).await;
    }
}

/// Why a cached step missed, from the step's latest entry.
async fn explain_miss(ctx: &RunContext, idx: StepIdx, cache: &CacheSettings, now: &KeyInputs) -> Option<String> {
    let registry = cache.registry.clone();
    let (scope, pipeline, step) = (
        cache.scope.clone(),
        ctx.plan.slug.clone(),
        ctx.plan.steps[idx].key().to_owned(),
    );
    let latest = tokio::task::spawn_blocking(move || registry.latest_for_step(&scope, &pipeline, &step)).await;
    let previous: KeyInputs = serde_json::from_value(latest.ok()?.ok()??.inputs).ok()?;
    previous.explain_change(now)
}

/// Stores a passed step's snapshot under its key, keeping the cache within
/// its bounds. On a full disk the storage it made durable is deleted at
/// once: the step fails, and nothing boots from it.
async fn store(
    ctx: &RunContext,
    idx: StepIdx,
    keyed: Keyed,
    snapshot: &SnapshotId,
    manifest: &Manifest,
) -> Result<(), StepError> {
    let Some(cache) = &ctx.cache else { return Ok(()) };
    let persisted = ctx.vm.persist(snapshot).await?;
    let top = persisted.stored.parts.first().cloned().unwrap_or_default();
    let size = persisted
        .new_parts
        .iter()
        .find(|(p, _)| *p == top)
        .map(|(_, s)| *s)
        .unwrap_or(0);
    let new_parts: Vec<String> = persisted.new_parts.iter().map(|(p, _)| p.clone()).collect();
    let at = now();
    let new = NewEntry {
        entry: CacheEntry {
            key: keyed.key,
            parent: keyed.inputs.parent.clone(),
            backend: ctx.vm.name().to_owned(),
            parts: persisted.stored.parts,
            base: persisted.stored.base,
            manifest: Some(manifest.digest().to_hex().to_string()),
            size,
            step: ctx.plan.steps[idx].key().to_owned(),
            pipeline: ctx.plan.slug.clone(),
            project: cache.scope.clone(),
            created: at,
            last_used: at,
            inputs: serde_json::to_value(&keyed.inputs).unwrap_or_default(),
        },
        part_sizes: persisted.new_parts,
        manifest_bytes: Some(manifest.to_bytes()),
    };
    let registry = cache.registry.clone();
    let bounds = cache.bounds;
    // Children about to boot from it need its storage until they are done,
    // whether or not its entry stays.
    let hold = !ctx.plan.steps[idx].children.is_empty();
    let stored = tokio::task::spawn_blocking(move || registry.store(&new, hold, Some(bounds))).await?;
    match stored {
        Ok(stored) => {
            ctx.stored.store(true, Ordering::SeqCst);
            delete_doomed(ctx.vm.as_ref(), &stored.doomed).await;
            Ok(())
        }
        Err(err) => {
            if err.is_full() && !new_parts.is_empty() {
                let _ = ctx.vm.delete_parts(&new_parts).await;
            }
            Err(err.into())
        }
    }
}

/// Boots, syncs, runs and (when `keep`, for those successors) commits;
/// returns how the command
/// ended and, if committed, the snapshot with the source it was synced to.
async fn run_in_vm(
    ctx: &Arc<RunContext>,
    idx: StepIdx,
    mut cancel: watch::Receiver<bool>,
    timed_out: Arc<AtomicBool>,
    source: Option<Manifest>,
    env: BTreeMap<String, String>,
    keep: Option<Successors>,
) -> Result<(ExecOutcome, Option<(SnapshotId, Arc<Manifest>)>), StepError> {
    let planned = &ctx.plan.steps[idx];
    let step = &planned.node.step;
    let step_id = idx.to_string();

    let (from, before) = match planned.parent {
        Some(parent) => {
            let (snapshot, manifest) = ctx.snapshot_of(parent).ok_or_else(|| VmError::Setup {
                stage: "boot".to_owned(),
                message: format!("the snapshot of `{}` is gone", ctx.plan.steps[parent].key()),
            })?;
            (BootFrom::Snapshot(snapshot), Some(manifest))
        }
        None => (BootFrom::Image(ctx.images[&planned.base_image].clone()), None),
    };
    let manifest = match source {
        Some(manifest) => manifest,
        None => scan(ctx).await?,
    };
    let sync = sync_plan(ctx.source.root(), before.as_deref(), &manifest);
    ensure_backend(ctx).await?;

    let mut vm = ctx
        .vm
        .boot(BootRequest {
            from,
            name: step.key.clone(),
        })
        .await?;
    vm.sync(sync).await?;

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
    let events = ctx.events.clone();
    let forward = tokio::spawn(async move {
        while let Some(LogLine { stream, line, partial }) = lines.recv().await {
            let event = Event::StepLog {
                step_id: step_id.clone(),
                stream,
                line,
                partial,
                ts: now_rfc3339(),
            };
            // Nobody listening any more does not stop the step.
            let _ = events.send(event).await;
        }
    });
    let request = ExecRequest {
        cmd: step.cmd.clone(),
        env: env.into_iter().collect(),
        cwd: PathBuf::from(WORKSPACE),
    };
    let outcome = vm.exec(request, logs, kill).await;
    let _ = forward.await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let _ = vm.destroy().await;
            return Err(err.into());
        }
    };
    if outcome != ExecOutcome::Killed {
        // What the step wrote may be cut short: nothing of it is kept.
        if let Some(full) = disk_full(ctx) {
            let _ = vm.destroy().await;
            return Err(full);
        }
    }
    // What the sync copied, where the source moved after the scan.
    let manifest = manifest.with_drift(&vm.drift());

    if let (ExecOutcome::Exited(0), Some(successors)) = (outcome, keep) {
        let snapshot = vm.commit(successors).await?;
        let manifest = Arc::new(manifest);
        if !planned.children.is_empty() {
            ctx.snapshots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(idx, (snapshot.clone(), manifest.clone()));
        }
        Ok((outcome, Some((snapshot, manifest))))
    } else {
        vm.destroy().await?;
        Ok((outcome, None))
    }
}
