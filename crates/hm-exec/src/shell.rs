//! Shells into a build's steps (`hm shell`, `hm run --shell-on-failure`).
//!
//! A build given a [`ShellHook`] keeps one VM in the state its
//! [`ShellPoint`] names: after a step (booted from its snapshot, a cache
//! hit's too), before it (booted from its parent's snapshot or its image,
//! with `/workspace` synced as the step would have it; the step does not
//! run), or the first failed step's own VM. Once every step is done, the
//! build sends a [`ShellSession`] holding that VM to the front end, which
//! owns the terminal: the build never touches it. When the session is
//! dropped its VM goes back to the build, which destroys it: nothing done
//! in the shell is committed, cached or kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use hm_ir::StepIdx;
use hm_vm::{ShellRequest, Terminal, Vm, VmError};
use tokio::sync::{mpsc, oneshot};

use crate::workspace::WORKSPACE;

/// Where a build opens a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellPoint {
    /// In the state the step left: its snapshot, whether it ran or was a
    /// cache hit. A step that fails leaves its failed state.
    After(StepIdx),
    /// In the state the step starts in: its parent's snapshot (or its
    /// image) with `/workspace` synced. The step does not run: it is
    /// reported skipped.
    Before(StepIdx),
    /// In the state of the first step whose command fails (exits non-zero
    /// or is ended by a signal), if one does.
    OnFailure,
}

/// What a build needs to open a shell: where, and where to send it.
#[derive(Debug, Clone)]
pub struct ShellHook {
    pub at: ShellPoint,
    /// The front end's end: it receives at most one session per build,
    /// after every step is done and before `build_end`.
    pub sessions: mpsc::Sender<ShellSession>,
}

/// The state a shell is opened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellState {
    /// After the step passed.
    Passed,
    /// After the step, restored from the cache.
    Cached,
    /// After the step's command failed with this exit code.
    Failed { exit_code: i32 },
    /// Before the step, which did not run.
    Before,
}

impl std::fmt::Display for ShellState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShellState::Passed => f.write_str("after it passed"),
            ShellState::Cached => f.write_str("after it (a cache hit)"),
            ShellState::Failed { exit_code } => write!(f, "after it failed (exit code {exit_code})"),
            ShellState::Before => f.write_str("before it (it did not run)"),
        }
    }
}

/// A VM held for a shell, and what the front end shows of it. Dropping
/// the session gives the VM back to the build, which destroys it.
pub struct ShellSession {
    /// The step's id in the build's events.
    pub step_id: String,
    pub key: String,
    /// The step as the events name it (its label or its key).
    pub display_name: String,
    /// The image its chain boots from.
    pub image: String,
    /// The VM backend (`sandbox`, `docker`).
    pub backend: &'static str,
    pub state: ShellState,
    /// The step's environment and limits, for the shell.
    env: Vec<(String, String)>,
    limits: hm_vm::Limits,
    vm: Option<Box<dyn Vm>>,
    back: Option<oneshot::Sender<Box<dyn Vm>>>,
}

impl std::fmt::Debug for ShellSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellSession")
            .field("key", &self.key)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ShellSession {
    /// Runs an interactive shell (`bash`, else `sh`) on `terminal`, in
    /// `/workspace` with the step's environment, until it exits; returns
    /// its exit status. It may be opened again: the VM keeps what the
    /// last shell did until the session is dropped.
    pub async fn open(&mut self, terminal: Terminal) -> Result<i32, VmError> {
        // Plain text: `sh` (dash) expands no `\w`.
        let prompt = format!("(hm {}) # ", self.key);
        let mut env = self.env.clone();
        env.push(("PS1".to_owned(), prompt));
        let request = ShellRequest::interactive(env, PathBuf::from(WORKSPACE), terminal, self.limits);
        let vm = self.vm.as_mut().expect("a session holds its VM until dropped");
        vm.shell(request).await
    }
}

impl Drop for ShellSession {
    fn drop(&mut self) {
        if let (Some(vm), Some(back)) = (self.vm.take(), self.back.take()) {
            // A build that is gone took its backend down with it.
            let _ = back.send(vm);
        }
    }
}

/// The build's side of a [`ShellHook`], shared by its steps.
pub(crate) struct ShellPlan {
    pub at: ShellPoint,
    /// Set once a failed step kept its VM: only the first does.
    claimed: AtomicBool,
}

impl ShellPlan {
    pub fn new(at: ShellPoint) -> Self {
        ShellPlan {
            at,
            claimed: AtomicBool::new(false),
        }
    }

    /// Whether the shell opens after step `idx`.
    pub fn after(&self, idx: StepIdx) -> bool {
        self.at == ShellPoint::After(idx)
    }

    /// Whether the shell opens before step `idx`.
    pub fn before(&self, idx: StepIdx) -> bool {
        self.at == ShellPoint::Before(idx)
    }

    /// Whether step `idx`, whose command failed, keeps its VM for the
    /// shell (the first to ask, of the steps that may).
    pub fn claim_failure(&self, idx: StepIdx) -> bool {
        (self.at == ShellPoint::OnFailure || self.after(idx)) && !self.claimed.swap(true, Ordering::SeqCst)
    }
}

/// A VM a step kept for the shell.
pub(crate) struct HeldShell {
    /// In a mutex only to be `Sync` (a step's outcome is read across
    /// awaits); nothing locks it but the move out.
    pub vm: std::sync::Mutex<Box<dyn Vm>>,
    pub state: ShellState,
    pub env: Vec<(String, String)>,
    pub limits: hm_vm::Limits,
}

impl HeldShell {
    pub fn new(vm: Box<dyn Vm>, state: ShellState, env: &BTreeMap<String, String>, limits: hm_vm::Limits) -> Self {
        HeldShell {
            vm: vm.into(),
            state,
            env: env.clone().into_iter().collect(),
            limits,
        }
    }
}

impl std::fmt::Debug for HeldShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldShell")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The session for `held`, and the channel its VM comes back on.
pub(crate) fn session(
    held: HeldShell,
    step: &hm_ir::PlannedStep,
    backend: &'static str,
) -> (ShellSession, oneshot::Receiver<Box<dyn Vm>>) {
    let (back, returned) = oneshot::channel();
    let session = ShellSession {
        step_id: step.idx.to_string(),
        key: step.key().to_owned(),
        display_name: step.node.step.display_name(),
        image: step.base_image.clone(),
        backend,
        state: held.state,
        env: held.env,
        limits: held.limits,
        vm: Some(held.vm.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())),
        back: Some(back),
    };
    (session, returned)
}
