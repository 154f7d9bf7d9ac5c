//! [`LocalBackend`]: runs a build on this machine, each step in a VM of an
//! injected [`VmBackend`], with the [`Scheduler`] deciding and an async
//! loop carrying its decisions out and gathering step results, the
//! pipeline timeout and interrupts.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hm_ir::{Plan, StepIdx};
use hm_vm::{BackendUnavailable, Found, ImageRef, VmBackend};
use tokio::sync::{mpsc, watch, OnceCell};
use tokio::task::JoinSet;

use crate::cache::CacheSettings;
use crate::events::{now_rfc3339, Event, PlanSummary, StepStatus};
use crate::outcome::{build_status, BuildOutcome};
use crate::runner::{prefetch, Kept, Prefetched, RunnerRegistry, Shared, StepInput, StepOutcome, DEFAULT_RUNNER};
use crate::scheduler::{self, Action, Scheduler, StopReason};
use crate::shell::{HeldShell, ShellHook, ShellPlan, ShellSession};
use crate::source_layers::SourceLayers;
use crate::store::SnapshotCache;
use crate::workspace::Source;

/// What a build needs.
#[derive(Clone)]
pub struct RunRequest {
    pub plan: Plan,
    /// The project root: the workspace source.
    pub source_root: PathBuf,
    /// Directories under the project root that are not source (the cache).
    pub source_exclude: Vec<PathBuf>,
    /// The source index file of this project (see
    /// [`Source::with_index`]); `None` keeps it in memory for the build.
    pub source_index: Option<PathBuf>,
    /// `-e KEY=VALUE` overrides, applied over every step's environment.
    pub env: Vec<(String, String)>,
    pub keep_going: bool,
    pub run_id: String,
    /// The snapshot cache, when the build uses one.
    pub cache: Option<CacheSettings>,
    /// Where each step's output is kept, when it is.
    pub logs: Option<StepLogs>,
    /// Where to open a shell for the front end, when it wants one.
    pub shell: Option<ShellHook>,
    /// `hm run --step`: the one step that may run; the steps it builds in
    /// must be cache hits.
    pub only: Option<StepIdx>,
    /// The branch recorded on the build (`build_start`), if one was given.
    pub branch: Option<String>,
    /// The message recorded on the build (`build_start`), if one was given.
    pub message: Option<String>,
    /// What each step may use, before its own `runner_args`.
    pub limits: hm_vm::Limits,
    /// Where cache volumes are, and those configuration mounts into every
    /// step; without them a step that declares one fails.
    pub volumes: Option<crate::volumes::VolumeSettings>,
}

/// Each step's whole output, kept as the step wrote it (both streams, in
/// the order they arrived) in `dir/STEP_ID.log`, up to `limit` bytes per
/// step; a longer output is cut, and the file says so.
#[derive(Debug, Clone)]
pub struct StepLogs {
    pub dir: PathBuf,
    pub limit: u64,
}

/// What an execution backend offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Steps can build on each other's snapshots.
    pub snapshots: bool,
    pub parallelism: usize,
}

/// A build that could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Found before any step started (an image), or by the first step
    /// about to boot (the backend itself).
    #[error(transparent)]
    Unavailable(Arc<BackendUnavailable>),
    #[error("the build task failed")]
    Panicked(#[source] tokio::task::JoinError),
    /// [`LocalBackend::planned_keys`] could not scan the source or read
    /// the cache.
    #[error("cannot work out the steps' cache keys")]
    Keys(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Runs builds somewhere.
pub trait ExecutionBackend: Send + Sync {
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Starts a build; its events arrive on the handle's stream.
    fn start(&self, request: RunRequest) -> BackendHandle;
}

/// A running build: its events, and a way to interrupt and await it.
pub struct BackendHandle {
    pub events: mpsc::Receiver<Event>,
    pub control: RunControl,
}

/// Interrupts and awaits a running build.
pub struct RunControl {
    interrupt: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<Result<BuildOutcome, RunError>>,
}

/// Interrupts a build from anywhere (a signal handler task).
#[derive(Clone)]
pub struct Interrupter(Arc<watch::Sender<bool>>);

impl Interrupter {
    /// Cancels every step and ends the build as interrupted.
    pub fn interrupt(&self) {
        self.0.send_replace(true);
    }
}

impl RunControl {
    pub fn interrupter(&self) -> Interrupter {
        Interrupter(self.interrupt.clone())
    }

    /// Waits for the build, including its clean-up.
    pub async fn wait(self) -> Result<BuildOutcome, RunError> {
        self.task.await.map_err(RunError::Panicked)?
    }
}

/// Runs builds on this machine (DESIGN.md §1).
pub struct LocalBackend {
    parallelism: usize,
    vm: Arc<dyn VmBackend>,
}

/// Events buffered between the build and its renderer.
const EVENT_BUFFER: usize = 1024;

impl LocalBackend {
    pub fn new(parallelism: usize, vm: Arc<dyn VmBackend>) -> Self {
        LocalBackend {
            parallelism: parallelism.max(1),
            vm,
        }
    }
}

impl LocalBackend {
    fn build(&self, events: mpsc::Sender<Event>, interrupted: watch::Receiver<bool>) -> Build {
        Build {
            vm: self.vm.clone(),
            parallelism: self.parallelism,
            events,
            interrupted,
        }
    }

    /// The cache keys a build of `request` looks up before it starts: of
    /// every cached step whose ancestors are cached, by step key, in the
    /// order the steps run. Nothing runs; the source is scanned when keys
    /// depend on it. None without a cache.
    pub async fn planned_keys(&self, request: RunRequest) -> Result<Vec<(String, String)>, RunError> {
        let (events, _) = mpsc::channel(1);
        let (_, interrupted) = watch::channel(false);
        let build = self.build(events, interrupted);
        let images = build.resolve_images(&request.plan).await?;
        let shared = build.shared(request, images, None);
        let Some(cache) = &shared.cache else {
            return Ok(Vec::new());
        };
        let keys = crate::runner::planned_keys(&shared, cache)
            .await
            .map_err(|err| RunError::Keys(Box::new(err)))?;
        let plan = &shared.plan;
        let ordered = plan.topo_order.iter().filter_map(|idx| {
            let key = keys.get(idx)?;
            Some((plan.steps[*idx].key().to_owned(), key.clone()))
        });
        Ok(ordered.collect())
    }
}

impl ExecutionBackend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshots: true,
            parallelism: self.parallelism,
        }
    }

    fn start(&self, request: RunRequest) -> BackendHandle {
        let (events, rx) = mpsc::channel(EVENT_BUFFER);
        let (interrupt, interrupted) = watch::channel(false);
        let build = self.build(events, interrupted);
        let task = tokio::spawn(build.run(request));
        BackendHandle {
            events: rx,
            control: RunControl {
                interrupt: Arc::new(interrupt),
                task,
            },
        }
    }
}

struct Build {
    vm: Arc<dyn VmBackend>,
    parallelism: usize,
    events: mpsc::Sender<Event>,
    interrupted: watch::Receiver<bool>,
}

/// What the build keeps of its steps while it runs; only the build's loop
/// reads and writes it.
#[derive(Default)]
struct Ledger {
    /// Snapshots children will boot from, with the source they saw.
    snapshots: HashMap<StepIdx, Kept>,
    /// Cache keys of the cached steps that passed or hit.
    keys: HashMap<StepIdx, String>,
    /// Entries found before the build started, by step, with their key.
    prefetched: HashMap<StepIdx, (String, Found)>,
    /// Steps that hold a snapshot until their children are done.
    held: BTreeSet<StepIdx>,
    /// How to stop each running step.
    cancels: HashMap<StepIdx, watch::Sender<bool>>,
    /// Whether a step stored a cache entry (the cache may be over its
    /// bounds once the build lets go of what it held).
    stored: bool,
    /// Why the backend cannot run here, once a step found out.
    unavailable: Option<Arc<BackendUnavailable>>,
    /// The VM a step kept for the shell.
    shell: Option<(StepIdx, HeldShell)>,
    /// Steps that do not run, as nothing after them needs them.
    not_needed: BTreeSet<StepIdx>,
}

impl Build {
    async fn emit(&self, event: Event) {
        // A renderer that stopped listening does not stop the build.
        let _ = self.events.send(event).await;
    }

    /// What the build's steps share.
    fn shared(&self, request: RunRequest, images: HashMap<String, ImageRef>, shell: Option<ShellPlan>) -> Arc<Shared> {
        let layers = SourceLayers::new(&request.source_root, request.source_index.as_deref());
        Arc::new(Shared {
            plan: request.plan,
            vm: self.vm.clone(),
            layers,
            source: Source::new(request.source_root)
                .excluding(request.source_exclude)
                .with_index(request.source_index),
            env_overrides: request.env,
            events: self.events.clone(),
            images,
            cache: request
                .cache
                .map(|settings| SnapshotCache::new(settings, self.vm.clone(), Some(self.events.clone()))),
            logs: request.logs,
            backend: OnceCell::new(),
            shell,
            only: request.only,
            limits: request.limits,
            volumes: request.volumes,
        })
    }

    async fn run(mut self, mut request: RunRequest) -> Result<BuildOutcome, RunError> {
        let started = Instant::now();
        // Images that do not exist make the build impossible: say so before
        // any event. The backend itself is checked before the first boot.
        let images = self.resolve_images(&request.plan).await?;
        self.announce(&request).await;
        let (shell, sessions) = match request.shell.take() {
            Some(hook) => (Some(ShellPlan::new(hook.at)), Some(hook.sessions)),
            None => (None, None),
        };
        let keep_going = request.keep_going;
        let shared = self.shared(request, images, shell);
        // A registry that cannot be read now is read step by step instead.
        let Prefetched { keys, found } = prefetch(&shared).await.unwrap_or_default();
        tracing::debug!(
            parallelism = self.parallelism,
            cached_steps = keys.len(),
            found = found.len(),
            "cache looked up before the build"
        );
        if let Some(cache) = &shared.cache {
            // In the order the steps will want them.
            let order = shared.plan.topo_order.iter();
            let missing = order
                .filter(|idx| !found.contains_key(idx))
                .filter_map(|idx| keys.get(idx));
            cache.prefetch_remote(missing.cloned().collect());
        }
        // A shell before a step needs its parent's state: it is no hit.
        let before = |idx| shared.shell.as_ref().is_some_and(|s| s.before(idx));
        let not_needed = scheduler::not_needed(
            &shared.plan,
            |idx| keys.contains_key(&idx),
            |idx| found.contains_key(&idx) && !before(idx),
        );
        let mut ledger = Ledger {
            // Children of steps that do not run build on their keys.
            keys: keys.into_iter().filter(|(idx, _)| not_needed.contains(idx)).collect(),
            prefetched: found,
            not_needed,
            ..Ledger::default()
        };
        let mut scheduler = Scheduler::new(&shared.plan, self.parallelism, keep_going);
        self.drive(&shared, &mut scheduler, &mut ledger).await?;

        if let Some((idx, held)) = ledger.shell.take() {
            self.serve_shell(&shared, idx, held, sessions).await;
        }
        for idx in std::mem::take(&mut ledger.held) {
            self.release(&mut ledger, idx).await;
        }
        if let Some(cache) = &shared.cache {
            cache.finish(ledger.stored).await;
            if let Some(volumes) = &shared.volumes {
                let settings = cache.settings();
                let evicted = crate::volumes::evict_volumes(
                    &*self.vm,
                    &settings.registry,
                    &volumes.store,
                    settings.bounds.max_bytes,
                )
                .await;
                if let Err(err) = evicted {
                    tracing::warn!(error = %err, "cannot evict cache volumes");
                }
            }
        }
        let (status, exit_code) = build_status(scheduler.stop_reason(), scheduler.any_failed());
        let duration_ms = started.elapsed().as_millis() as u64;
        self.emit(Event::BuildEnd {
            exit_code,
            duration_ms,
            status,
        })
        .await;
        if let Some(unavailable) = ledger.unavailable {
            return Err(RunError::Unavailable(unavailable));
        }
        Ok(BuildOutcome {
            status,
            exit_code,
            duration_ms,
        })
    }

    /// The base images of the plan's roots.
    async fn resolve_images(&self, plan: &Plan) -> Result<HashMap<String, ImageRef>, RunError> {
        let mut images = HashMap::new();
        for step in plan.steps.iter().filter(|s| s.parent.is_none()) {
            if !images.contains_key(&step.base_image) {
                let image = self.vm.resolve_image(&step.base_image).await;
                let image = image.map_err(|err| RunError::Unavailable(Arc::new(err)))?;
                images.insert(step.base_image.clone(), image);
            }
        }
        Ok(images)
    }

    /// `build_start`, then every step's `step_queued`.
    async fn announce(&self, request: &RunRequest) {
        let plan = &request.plan;
        self.emit(Event::BuildStart {
            run_id: request.run_id.clone(),
            pipeline: plan.slug.clone(),
            plan: PlanSummary {
                step_count: plan.steps.len(),
                chain_count: plan.chain_count,
                default_runner: DEFAULT_RUNNER.to_owned(),
            },
            started_at: now_rfc3339(),
            branch: request.branch.clone(),
            message: request.message.clone(),
        })
        .await;
        for &idx in &plan.topo_order {
            let step = &plan.steps[idx];
            self.emit(Event::StepQueued {
                step_id: idx.to_string(),
                key: step.key().to_owned(),
                chain_idx: step.chain_idx,
                parent_key: step.parent.map(|p| plan.steps[p].key().to_owned()),
                display_name: step.node.step.display_name(),
            })
            .await;
        }
    }

    /// Carries the scheduler's decisions out until every step is done,
    /// feeding it what ends: steps, the pipeline's timeout, an interrupt.
    async fn drive(
        &mut self,
        shared: &Arc<Shared>,
        scheduler: &mut Scheduler<'_>,
        ledger: &mut Ledger,
    ) -> Result<(), RunError> {
        let plan = &shared.plan;
        let runners = RunnerRegistry::new();
        let mut tasks: JoinSet<(StepIdx, StepOutcome)> = JoinSet::new();
        // A timeout too far away to represent is no timeout.
        let deadline = plan
            .timeout_seconds
            .and_then(|s| tokio::time::Instant::now().checked_add(Duration::from_secs(s)));
        let mut deadline_passed = deadline.is_none();

        let mut actions = if *self.interrupted.borrow() {
            scheduler.stop(StopReason::Interrupted)
        } else {
            scheduler.start(&ledger.not_needed)
        };
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Start(idx) => {
                        tracing::debug!(step = plan.steps[idx].key(), "step starts");
                        let input = ledger.input(plan, idx);
                        let runner = runners.get(plan.steps[idx].node.step.runner.as_deref());
                        let shared = shared.clone();
                        tasks.spawn(async move { (idx, runner.run(shared, input).await) });
                    }
                    Action::Cancel(idx) => {
                        if let Some(cancel) = ledger.cancels.get(&idx) {
                            cancel.send_replace(true);
                        }
                    }
                    Action::Skip(idx, reason) => {
                        self.emit(Event::StepSkipped {
                            step_id: idx.to_string(),
                            key: plan.steps[idx].key().to_owned(),
                            reason: reason.to_string(),
                        })
                        .await;
                    }
                }
            }
            self.release_finished(plan, scheduler, ledger).await;
            if scheduler.is_done() {
                return Ok(());
            }
            let timeout = async {
                match deadline {
                    Some(at) if !deadline_passed => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let (idx, outcome) = joined.map_err(RunError::Panicked)?;
                    self.step_ended(plan, idx, &outcome).await;
                    let status = outcome.status;
                    // Nothing more may start once the backend is known to
                    // be unavailable: stop first, then let the step end.
                    actions = match outcome.unavailable.is_some() {
                        true => scheduler.stop(StopReason::Unavailable),
                        false => Vec::new(),
                    };
                    ledger.record(idx, outcome);
                    actions.extend(scheduler.finished(idx, status));
                }
                Ok(()) = self.interrupted.changed() => {
                    actions = scheduler.stop(StopReason::Interrupted);
                }
                () = timeout => {
                    deadline_passed = true;
                    actions = scheduler.stop(StopReason::PipelineTimeout);
                }
            }
        }
    }

    async fn step_ended(&self, plan: &Plan, idx: StepIdx, outcome: &StepOutcome) {
        tracing::debug!(
            step = plan.steps[idx].key(),
            status = ?outcome.status,
            exit_code = outcome.exit_code,
            duration = ?outcome.duration,
            skipped = outcome.skipped.as_deref(),
            "step ended"
        );
        let step_id = idx.to_string();
        if let Some(reason) = &outcome.skipped {
            self.emit(Event::StepSkipped {
                step_id,
                key: plan.steps[idx].key().to_owned(),
                reason: reason.clone(),
            })
            .await;
            return;
        }
        self.emit(Event::StepEnd {
            step_id: step_id.clone(),
            exit_code: outcome.exit_code,
            duration_ms: outcome.duration.as_millis() as u64,
            snapshot: outcome.snapshot.as_ref().map(|s| s.to_string()),
            status: outcome.status,
            message: outcome.message.clone(),
            peak_memory_bytes: outcome.usage.peak_memory_bytes,
            cpu_ms: outcome.usage.cpu_ms,
        })
        .await;
        // A chain fails when a step of it fails or times out; a step that
        // was only cancelled (an interrupt, another chain's failure) does
        // not fail its chain.
        if outcome.status.is_success() || outcome.status == StepStatus::Canceled {
            return;
        }
        let step = &plan.steps[idx];
        let message = match (outcome.status, &outcome.message) {
            (StepStatus::Failed, None) => format!("step `{}` failed with exit code {}", step.key(), outcome.exit_code),
            (_, Some(message)) => format!("step `{}`: {message}", step.key()),
            (status, None) => format!("step `{}` ended as {status:?}", step.key()),
        };
        self.emit(Event::ChainFailed {
            chain_idx: step.chain_idx,
            failed_step_id: step_id,
            failed_step_key: step.key().to_owned(),
            exit_code: outcome.exit_code,
            message,
            ts: now_rfc3339(),
        })
        .await;
    }

    /// Hands the VM a step kept for the shell to the front end and, once
    /// it comes back, destroys it: nothing of the shell is kept. An
    /// interrupted build, or one whose front end is gone, opens no shell.
    async fn serve_shell(
        &self,
        shared: &Shared,
        idx: StepIdx,
        held: HeldShell,
        sessions: Option<mpsc::Sender<ShellSession>>,
    ) {
        let (session, returned) = crate::shell::session(held, &shared.plan.steps[idx], self.vm.name());
        match sessions {
            Some(sessions) if !*self.interrupted.borrow() => {
                // Unsent, the session is dropped and its VM comes back.
                let _ = sessions.send(session).await;
            }
            _ => drop(session),
        }
        if let Ok(vm) = returned.await {
            // A VM that cannot be destroyed now goes with the session.
            let _ = vm.destroy().await;
        }
    }

    /// Releases the snapshots no step of this build will boot from again.
    /// A VM kept for the shell keeps its step's snapshot and its parent's
    /// (which it was booted from: a backend may not free an image a VM
    /// still runs on) until the shell is done.
    async fn release_finished(&self, plan: &Plan, scheduler: &Scheduler<'_>, ledger: &mut Ledger) {
        let shell = ledger.shell.as_ref().map(|(idx, _)| *idx);
        let for_shell = |idx: StepIdx| shell.is_some_and(|s| s == idx || plan.steps[s].parent == Some(idx));
        let done: Vec<StepIdx> = ledger
            .held
            .iter()
            .copied()
            .filter(|&idx| !for_shell(idx))
            .filter(|&idx| plan.steps[idx].children.iter().all(|&c| scheduler.is_finished(c)))
            .collect();
        for idx in done {
            ledger.held.remove(&idx);
            self.release(ledger, idx).await;
        }
    }

    async fn release(&self, ledger: &mut Ledger, idx: StepIdx) {
        if let Some((snapshot, _)) = ledger.snapshots.remove(&idx) {
            // A snapshot that cannot be removed now is collected with the
            // session; the build's result does not depend on it.
            let _ = self.vm.release(&snapshot).await;
        }
    }
}

impl Ledger {
    /// What step `idx` starts with; it becomes cancellable.
    fn input(&mut self, plan: &Plan, idx: StepIdx) -> StepInput {
        let (cancel, cancelled) = watch::channel(false);
        self.cancels.insert(idx, cancel);
        let parent = plan.steps[idx].parent;
        StepInput {
            idx,
            parent: parent.and_then(|p| self.snapshots.get(&p).cloned()),
            parent_key: parent.and_then(|p| self.keys.get(&p).cloned()),
            prefetched: self.prefetched.remove(&idx),
            parent_not_run: parent.is_some_and(|p| self.not_needed.contains(&p)),
            cancel: cancelled,
        }
    }

    /// Keeps what the build needs of a step that ended.
    fn record(&mut self, idx: StepIdx, outcome: StepOutcome) {
        self.cancels.remove(&idx);
        if let Some(held) = outcome.shell {
            self.shell = Some((idx, held));
        }
        if outcome.snapshot.is_some() {
            self.held.insert(idx);
        }
        if let Some(kept) = outcome.kept {
            self.snapshots.insert(idx, kept);
        }
        if let Some(key) = outcome.key {
            self.keys.insert(idx, key);
        }
        self.stored |= outcome.stored;
        if self.unavailable.is_none() {
            self.unavailable = outcome.unavailable;
        }
    }
}

#[cfg(test)]
mod tests;
