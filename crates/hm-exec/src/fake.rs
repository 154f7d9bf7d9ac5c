//! A [`VmBackend`] that runs nothing and records everything, for the
//! runner's unit tests.
//!
//! A VM's command is a tiny script: `true`, `exit N`, `echo TEXT` (one
//! stdout line, then exit 0), `hang` (until killed) and `block` (until the
//! test calls [`FakeBackend::unblock`]). Snapshots are lists of parts, top
//! first: a commit adds one part (`p1`, `p2`, ...) on top of what the VM
//! booted from. What the test sets decides the failures: the check
//! ([`FakeBackend::unavailable`]), commits of given steps, restores of
//! given parts. A shell records its environment and exits with what the
//! test sets ([`FakeBackend::shell_exits`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use hm_vm::{
    BackendUnavailable, BootFrom, BootRequest, Drift, ExecOutcome, ExecRequest, ImageRef, KillSignal, LogLine, LogSink,
    LogStream, Persisted, ShellRequest, SnapshotId, StoredSnapshot, Successors, SyncPlan, Vm, VmBackend, VmError,
};
use tokio::sync::{watch, Notify};

/// What the backend was asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Check,
    /// A VM named after its step, from an image or a snapshot's parts.
    Boot {
        step: String,
        from: Vec<String>,
    },
    Sync {
        step: String,
        writes: usize,
    },
    Exec {
        step: String,
        cmd: String,
    },
    /// An interactive shell, with the environment it was given.
    Shell {
        step: String,
        env: Vec<(String, String)>,
    },
    Commit {
        step: String,
    },
    Destroy {
        step: String,
    },
    Release(Vec<String>),
    Persist(Vec<String>),
    Restore(Vec<String>),
    DeleteParts(Vec<String>),
    CollectOrphans,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    next_part: u64,
    /// Live snapshots: their parts, top first.
    snapshots: HashMap<SnapshotId, Vec<String>>,
    /// Parts made durable, and not deleted.
    stored: HashSet<String>,
    fail_commit: HashSet<String>,
    missing: HashSet<String>,
    unavailable: bool,
    /// What shells exit with.
    shell_exit: i32,
}

/// The fake backend; clones share their state.
#[derive(Clone)]
pub(crate) struct FakeBackend {
    state: Arc<Mutex<State>>,
    /// Wakes `block` commands; `started` is notified when any starts.
    unblocked: Arc<watch::Sender<bool>>,
    started: Arc<Notify>,
}

impl FakeBackend {
    pub fn new() -> Self {
        FakeBackend {
            state: Arc::default(),
            unblocked: Arc::new(watch::channel(false).0),
            started: Arc::new(Notify::new()),
        }
    }

    /// Another backend over the same storage (snapshots and stored parts)
    /// and the same record of calls, with its own `block` commands.
    pub fn sharing_storage(other: &FakeBackend) -> Self {
        FakeBackend {
            state: other.state.clone(),
            ..FakeBackend::new()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The check fails: no step can boot.
    pub fn unavailable(&self) {
        self.state().unavailable = true;
    }

    /// Committing the VM of `step` fails.
    pub fn fail_commit(&self, step: &str) {
        self.state().fail_commit.insert(step.to_owned());
    }

    /// Restoring a snapshot with `part` fails as if its storage were gone.
    pub fn lose_part(&self, part: &str) {
        self.state().missing.insert(part.to_owned());
    }

    /// Shells exit with `code`.
    pub fn shell_exits(&self, code: i32) {
        self.state().shell_exit = code;
    }

    /// Lets every `block` command (now and later) exit 0.
    pub fn unblock(&self) {
        self.unblocked.send_replace(true);
    }

    /// Waits until a `block` or `hang` command has started.
    pub async fn wait_started(&self) {
        self.started.notified().await;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The steps whose commands ran, in order.
    pub fn executed(&self) -> Vec<String> {
        let calls = self.calls();
        calls
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec { step, .. } => Some(step),
                _ => None,
            })
            .collect()
    }

    /// Every part deleted so far.
    pub fn deleted(&self) -> Vec<String> {
        let calls = self.calls();
        calls
            .into_iter()
            .flat_map(|c| match c {
                Call::DeleteParts(parts) => parts,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Snapshots not released yet.
    pub fn live_snapshots(&self) -> usize {
        self.state().snapshots.len()
    }

    fn record(&self, call: Call) {
        self.state().calls.push(call);
    }
}

#[async_trait::async_trait]
impl VmBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn check(&self) -> Result<(), BackendUnavailable> {
        self.record(Call::Check);
        match self.state().unavailable {
            true => Err(BackendUnavailable::Docker {
                detail: "the fake backend is off".to_owned(),
            }),
            false => Ok(()),
        }
    }

    async fn resolve_image(&self, name: &str) -> Result<ImageRef, BackendUnavailable> {
        match name {
            "missing" => Err(BackendUnavailable::ImageNotFound { name: name.to_owned() }),
            _ => Ok(ImageRef {
                name: name.to_owned(),
                id: format!("id-of-{name}"),
            }),
        }
    }

    async fn boot(&self, request: BootRequest) -> Result<Box<dyn Vm>, VmError> {
        let parts = match &request.from {
            BootFrom::Image(image) => vec![image.name.clone()],
            BootFrom::Snapshot(id) => self
                .state()
                .snapshots
                .get(id)
                .cloned()
                .ok_or_else(|| VmError::UnknownSnapshot(id.clone()))?,
        };
        self.record(Call::Boot {
            step: request.name.clone(),
            from: parts.clone(),
        });
        Ok(Box::new(FakeVm {
            backend: self.clone(),
            step: request.name,
            parts,
        }))
    }

    async fn release(&self, snapshot: &SnapshotId) -> Result<(), VmError> {
        let parts = self.state().snapshots.remove(snapshot);
        let parts = parts.ok_or_else(|| VmError::UnknownSnapshot(snapshot.clone()))?;
        self.record(Call::Release(parts));
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), VmError> {
        Ok(())
    }

    async fn persist(&self, snapshot: &SnapshotId) -> Result<Persisted, VmError> {
        let mut state = self.state();
        let parts = state.snapshots.get(snapshot).cloned();
        let parts = parts.ok_or_else(|| VmError::UnknownSnapshot(snapshot.clone()))?;
        let layers = parts[..parts.len() - 1].to_vec();
        let new_parts = layers
            .iter()
            .filter(|p| state.stored.insert((*p).clone()))
            .map(|p| (p.clone(), 100))
            .collect();
        state.calls.push(Call::Persist(parts.clone()));
        Ok(Persisted {
            stored: StoredSnapshot {
                parts: layers,
                base: parts[parts.len() - 1].clone(),
            },
            new_parts,
        })
    }

    async fn restore(&self, stored: &StoredSnapshot) -> Result<SnapshotId, VmError> {
        let mut state = self.state();
        state.calls.push(Call::Restore(stored.parts.clone()));
        if let Some(gone) = stored
            .parts
            .iter()
            .find(|p| state.missing.contains(*p) || !state.stored.contains(*p))
        {
            return Err(VmError::StoredMissing(format!("part `{gone}` is gone")));
        }
        state.next_part += 1;
        let id = SnapshotId(format!("restored-{}", state.next_part));
        let mut parts = stored.parts.clone();
        parts.push(stored.base.clone());
        state.snapshots.insert(id.clone(), parts);
        Ok(id)
    }

    async fn delete_parts(&self, parts: &[String]) -> Result<(), VmError> {
        let mut state = self.state();
        for part in parts {
            state.stored.remove(part);
        }
        state.calls.push(Call::DeleteParts(parts.to_vec()));
        Ok(())
    }

    async fn collect_orphans(&self, _known: &HashSet<String>) -> Result<(), VmError> {
        self.record(Call::CollectOrphans);
        Ok(())
    }

    async fn remove_volume(&self, _id: &str) -> Result<(), VmError> {
        Ok(())
    }
}

struct FakeVm {
    backend: FakeBackend,
    step: String,
    /// What it booted from, top first.
    parts: Vec<String>,
}

#[async_trait::async_trait]
impl Vm for FakeVm {
    async fn sync(&mut self, plan: SyncPlan) -> Result<(), VmError> {
        self.backend.record(Call::Sync {
            step: self.step.clone(),
            writes: plan.write.len(),
        });
        Ok(())
    }

    async fn exec(&mut self, request: ExecRequest, logs: LogSink, kill: KillSignal) -> Result<ExecOutcome, VmError> {
        self.backend.record(Call::Exec {
            step: self.step.clone(),
            cmd: request.cmd.clone(),
        });
        let cmd = request.cmd.as_str();
        if let Some(code) = cmd.strip_prefix("exit ") {
            return Ok(ExecOutcome::Exited(code.parse().unwrap_or(1)));
        }
        if let Some(text) = cmd.strip_prefix("echo ") {
            let line = LogLine {
                stream: LogStream::Stdout,
                bytes: text.as_bytes().to_vec(),
                partial: false,
                eol: true,
            };
            let _ = logs.send(line).await;
            return Ok(ExecOutcome::Exited(0));
        }
        match cmd {
            "hang" | "block" => {
                let mut unblocked = self.backend.unblocked.subscribe();
                self.backend.started.notify_one();
                let released = async {
                    match cmd {
                        "block" => drop(unblocked.wait_for(|u| *u).await),
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = kill => Ok(ExecOutcome::Killed),
                    () = released => Ok(ExecOutcome::Exited(0)),
                }
            }
            _ => Ok(ExecOutcome::Exited(0)),
        }
    }

    /// Records the shell and returns [`FakeBackend::shell_exits`]'s code;
    /// the terminal is not touched.
    async fn shell(&mut self, request: ShellRequest) -> Result<i32, VmError> {
        self.backend.record(Call::Shell {
            step: self.step.clone(),
            env: request.env_with_term(),
        });
        Ok(self.backend.state().shell_exit)
    }

    fn drift(&mut self) -> Vec<Drift> {
        Vec::new()
    }

    async fn commit(self: Box<Self>, _successors: Successors) -> Result<SnapshotId, VmError> {
        self.backend.record(Call::Commit {
            step: self.step.clone(),
        });
        let mut state = self.backend.state();
        if state.fail_commit.contains(&self.step) {
            return Err(VmError::Io {
                op: "commit",
                path: self.step.into(),
                source: std::io::Error::other("the fake commit failed"),
            });
        }
        state.next_part += 1;
        let part = format!("p{}", state.next_part);
        let mut parts = vec![part.clone()];
        parts.extend(self.parts);
        let id = SnapshotId(part);
        state.snapshots.insert(id.clone(), parts);
        Ok(id)
    }

    async fn destroy(self: Box<Self>) -> Result<(), VmError> {
        self.backend.record(Call::Destroy { step: self.step });
        Ok(())
    }
}
