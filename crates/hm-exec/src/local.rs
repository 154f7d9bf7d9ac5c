//! [`LocalBackend`]: runs a build on this machine, each step in a VM of an
//! injected [`VmBackend`], with the [`Scheduler`] deciding and an async
//! loop carrying its decisions out and gathering step results, the
//! pipeline timeout and interrupts.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hm_ir::{Plan, StepIdx};
use hm_vm::{BackendUnavailable, VmBackend};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cache::CacheSettings;
use crate::events::{now_rfc3339, Event, PlanSummary, StepStatus};
use crate::outcome::{build_status, BuildOutcome};
use crate::runner::{delete_doomed, prefetch, RunContext, RunnerRegistry, StepReport, DEFAULT_RUNNER};
use crate::scheduler::{Action, Scheduler, StopReason};
use crate::workspace::Source;

/// What a build needs.
#[derive(Clone)]
pub struct RunRequest {
    pub plan: Plan,
    /// The project root: the workspace source.
    pub source_root: PathBuf,
    /// Directories under the project root that are not source (the cache).
    pub source_exclude: Vec<PathBuf>,
    /// `-e KEY=VALUE` overrides, applied over every step's environment.
    pub env: Vec<(String, String)>,
    pub keep_going: bool,
    pub run_id: String,
    /// The snapshot cache, when the build uses one.
    pub cache: Option<CacheSettings>,
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
    #[error(transparent)]
    Unavailable(#[from] BackendUnavailable),
    #[error("the build task failed")]
    Panicked(#[source] tokio::task::JoinError),
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
        let build = Build {
            vm: self.vm.clone(),
            parallelism: self.parallelism,
            events,
            interrupted,
        };
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

/// Lets go of the cache entries this build held, brings the cache within
/// its bounds (entries this build held could not go before), deletes what
/// nothing needs any more, and collects stored parts no entry knows (left
/// by a killed process). Failures only leave work for a later run.
async fn release_cache(vm: &dyn VmBackend, cache: &CacheSettings, stored: bool) {
    let registry = cache.registry.clone();
    let backend = vm.name().to_owned();
    let bounds = cache.bounds;
    let released = tokio::task::spawn_blocking(move || {
        let released = registry.release()?;
        let evicted = if stored {
            registry.evict(bounds)?
        } else {
            hm_vm::Doomed::default()
        };
        let known = registry.known_parts(&backend)?;
        Ok::<_, hm_vm::RegistryError>((released, evicted, known))
    })
    .await;
    if let Ok(Ok((released, evicted, known))) = released {
        delete_doomed(vm, &released).await;
        delete_doomed(vm, &evicted).await;
        let _ = vm.collect_orphans(&known).await;
    }
}

struct Build {
    vm: Arc<dyn VmBackend>,
    parallelism: usize,
    events: mpsc::Sender<Event>,
    interrupted: watch::Receiver<bool>,
}

impl Build {
    async fn emit(&self, event: Event) {
        // A renderer that stopped listening does not stop the build.
        let _ = self.events.send(event).await;
    }

    async fn run(mut self, request: RunRequest) -> Result<BuildOutcome, RunError> {
        let started = Instant::now();
        // Images that do not exist make the build impossible: say so before
        // any event. The backend itself is checked before the first boot.
        let mut images = HashMap::new();
        for step in request.plan.steps.iter().filter(|s| s.parent.is_none()) {
            if !images.contains_key(&step.base_image) {
                let image = self.vm.resolve_image(&step.base_image).await?;
                images.insert(step.base_image.clone(), image);
            }
        }

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

        let ctx = Arc::new(RunContext {
            plan: request.plan.clone(),
            vm: self.vm.clone(),
            source: Source::new(request.source_root.clone()).excluding(request.source_exclude.clone()),
            env_overrides: request.env.clone(),
            events: self.events.clone(),
            images,
            snapshots: Mutex::new(HashMap::new()),
            cache: request.cache.clone(),
            keys: Mutex::new(HashMap::new()),
            checked: tokio::sync::Mutex::new(None),
            unavailable: Mutex::new(None),
            prefetched: Mutex::new(HashMap::new()),
            stored: std::sync::atomic::AtomicBool::new(false),
        });
        // A registry that cannot be read now is read step by step instead.
        let _ = prefetch(&ctx).await;
        let plan = &ctx.plan;
        let runners = RunnerRegistry::new();
        let mut scheduler = Scheduler::new(plan, self.parallelism, request.keep_going);
        let mut tasks: JoinSet<(StepIdx, StepReport)> = JoinSet::new();
        let mut cancels: HashMap<StepIdx, watch::Sender<bool>> = HashMap::new();
        let mut held: BTreeSet<StepIdx> = BTreeSet::new();
        // A timeout too far away to represent is no timeout.
        let deadline = plan
            .timeout_seconds
            .and_then(|s| tokio::time::Instant::now().checked_add(Duration::from_secs(s)));
        let mut deadline_passed = deadline.is_none();

        let mut actions = if *self.interrupted.borrow() {
            scheduler.stop(StopReason::Interrupted)
        } else {
            scheduler.start()
        };
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Start(idx) => {
                        let step = &plan.steps[idx];
                        let (cancel, cancelled) = watch::channel(false);
                        cancels.insert(idx, cancel);
                        let runner = runners.get(step.node.step.runner.as_deref());
                        let ctx = ctx.clone();
                        tasks.spawn(async move { (idx, runner.run(ctx, idx, cancelled).await) });
                    }
                    Action::Cancel(idx) => {
                        if let Some(cancel) = cancels.get(&idx) {
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
            self.release_finished(&ctx, &scheduler, &mut held).await;
            if scheduler.is_done() {
                break;
            }
            let timeout = async {
                match deadline {
                    Some(at) if !deadline_passed => tokio::time::sleep_until(at).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    let (idx, report) = match joined {
                        Ok(done) => done,
                        Err(err) => return Err(RunError::Panicked(err)),
                    };
                    cancels.remove(&idx);
                    if report.snapshot.is_some() {
                        held.insert(idx);
                    }
                    self.step_ended(plan, idx, &report).await;
                    actions = scheduler.finished(idx, report.status);
                    if report.unavailable {
                        actions.extend(scheduler.stop(StopReason::Unavailable));
                    }
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
        for idx in std::mem::take(&mut held) {
            self.release(&ctx, idx).await;
        }
        if let Some(cache) = &ctx.cache {
            let stored = ctx.stored.load(std::sync::atomic::Ordering::SeqCst);
            release_cache(self.vm.as_ref(), cache, stored).await;
        }

        let (status, exit_code) = build_status(scheduler.stop_reason(), scheduler.any_failed());
        let duration_ms = started.elapsed().as_millis() as u64;
        self.emit(Event::BuildEnd {
            exit_code,
            duration_ms,
            status,
        })
        .await;
        if let Some(unavailable) = ctx.unavailable.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(RunError::Unavailable(unavailable));
        }
        Ok(BuildOutcome {
            status,
            exit_code,
            duration_ms,
        })
    }

    async fn step_ended(&self, plan: &Plan, idx: StepIdx, report: &StepReport) {
        let step_id = idx.to_string();
        self.emit(Event::StepEnd {
            step_id: step_id.clone(),
            exit_code: report.exit_code,
            duration_ms: report.duration.as_millis() as u64,
            snapshot: report.snapshot.as_ref().map(|s| s.to_string()),
            status: report.status,
            message: report.message.clone(),
        })
        .await;
        if report.status.is_success() {
            return;
        }
        let step = &plan.steps[idx];
        let message = match (report.status, &report.message) {
            (StepStatus::Failed, None) => format!("step `{}` failed with exit code {}", step.key(), report.exit_code),
            (_, Some(message)) => format!("step `{}`: {message}", step.key()),
            (status, None) => format!("step `{}` ended as {status:?}", step.key()),
        };
        self.emit(Event::ChainFailed {
            chain_idx: step.chain_idx,
            failed_step_id: step_id,
            failed_step_key: step.key().to_owned(),
            exit_code: report.exit_code,
            message,
            ts: now_rfc3339(),
        })
        .await;
    }

    /// Releases the snapshots no step of this build will boot from again.
    async fn release_finished(&self, ctx: &RunContext, scheduler: &Scheduler<'_>, held: &mut BTreeSet<StepIdx>) {
        let done: Vec<StepIdx> = held
            .iter()
            .copied()
            .filter(|&idx| ctx.plan.steps[idx].children.iter().all(|&c| scheduler.is_finished(c)))
            .collect();
        for idx in done {
            held.remove(&idx);
            self.release(ctx, idx).await;
        }
    }

    async fn release(&self, ctx: &RunContext, idx: StepIdx) {
        let taken = ctx.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(&idx);
        if let Some((snapshot, _)) = taken {
            // A snapshot that cannot be removed now is collected with the
            // session; the build's result does not depend on it.
            let _ = self.vm.release(&snapshot).await;
        }
    }
}
