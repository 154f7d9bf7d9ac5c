//! Runs one step: boot its VM from the parent's snapshot or its image, sync
//! `/workspace`, run the command with its output streamed as events, keep a
//! snapshot when children will build on it.
//!
//! [`RunnerRegistry`] maps a step's `runner` to a [`StepRunner`];
//! [`VmRunner`] is the default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hm_ir::{Plan, StepIdx};
use hm_vm::{BootFrom, BootRequest, ExecOutcome, ExecRequest, ImageRef, LogLine, SnapshotId, VmBackend, VmError};
use tokio::sync::{mpsc, watch};

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
}

impl RunContext {
    pub fn snapshot_of(&self, idx: StepIdx) -> Option<(SnapshotId, Arc<Manifest>)> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&idx)
            .cloned()
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
enum StepError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

#[async_trait::async_trait]
impl StepRunner for VmRunner {
    async fn run(&self, ctx: Arc<RunContext>, idx: StepIdx, cancel: watch::Receiver<bool>) -> StepReport {
        let started = Instant::now();
        let timed_out = Arc::new(AtomicBool::new(false));
        let result = run_in_vm(&ctx, idx, cancel, timed_out.clone()).await;
        let (status, exit_code, snapshot, message) = match result {
            Ok((ExecOutcome::Exited(0), snapshot)) => (StepStatus::Passed, 0, snapshot, None),
            Ok((ExecOutcome::Killed, _)) if timed_out.load(Ordering::SeqCst) => {
                let secs = ctx.plan.steps[idx].node.step.timeout_seconds.unwrap_or(0);
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
        StepReport {
            status,
            exit_code,
            duration: started.elapsed(),
            snapshot,
            message,
        }
    }
}

/// The error and its causes, joined.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn run_in_vm(
    ctx: &Arc<RunContext>,
    idx: StepIdx,
    mut cancel: watch::Receiver<bool>,
    timed_out: Arc<AtomicBool>,
) -> Result<(ExecOutcome, Option<SnapshotId>), StepError> {
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
    let scan_ctx = ctx.clone();
    let manifest = tokio::task::spawn_blocking(move || scan_ctx.source.scan())
        .await
        .map_err(|e| SourceError {
            path: ctx.source.root().to_owned(),
            source: std::io::Error::other(e),
        })??;
    let sync = sync_plan(ctx.source.root(), before.as_deref(), &manifest);

    let mut vm = ctx
        .vm
        .boot(BootRequest {
            from,
            name: step.key.clone(),
        })
        .await?;
    vm.sync(sync).await?;

    let mut env: Vec<(String, String)> = planned.node.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(own) = &step.env {
        env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.extend(ctx.env_overrides.iter().cloned());

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

    let (logs, mut lines) = mpsc::channel::<LogLine>(256);
    let events = ctx.events.clone();
    let forward = tokio::spawn(async move {
        while let Some(LogLine { stream, line }) = lines.recv().await {
            let event = Event::StepLog {
                step_id: step_id.clone(),
                stream,
                line,
                ts: now_rfc3339(),
            };
            if events.send(event).await.is_err() {
                // Nobody listens any more; keep draining so the step never blocks.
                continue;
            }
        }
    });
    let request = ExecRequest {
        cmd: step.cmd.clone(),
        env,
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

    if outcome == ExecOutcome::Exited(0) && !planned.children.is_empty() {
        let snapshot = vm.commit().await?;
        ctx.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(idx, (snapshot.clone(), Arc::new(manifest)));
        Ok((outcome, Some(snapshot)))
    } else {
        vm.destroy().await?;
        Ok((outcome, None))
    }
}
