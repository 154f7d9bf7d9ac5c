//! One sandboxed step: the parent's side of the helper protocol.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::helper::HELPER_ARG;
use super::layers::Layer;
use super::rootfs::{self, Base, RootfsPlan};
use super::spec::{ExecSpec, Job, Report, Spec};
use super::{Inner, Snapshot, SnapshotBase, Workspace};
use crate::backend::{
    Drift, ExecOutcome, ExecRequest, KillSignal, LogSink, LogStream, SnapshotId, Successors, SyncPlan, Vm,
};
use crate::error::{SandboxError, VmError};
use crate::images::DEFAULT_PATH;
use crate::lines::LineSplitter;

/// How long a cancelled helper gets to take its namespace down before it is
/// killed outright.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// One sandboxed step.
pub(super) struct SandboxVm {
    inner: Arc<Inner>,
    workspace: Arc<Workspace>,
    n: u64,
    snapshot: Snapshot,
    sync: SyncPlan,
    /// The step's own directories, once `exec` made them.
    dirs: Option<RootfsPlan>,
    /// What the sync copied other than the plan expected.
    drift: Vec<Drift>,
}

impl SandboxVm {
    pub(super) fn new(inner: Arc<Inner>, workspace: Arc<Workspace>, n: u64, snapshot: Snapshot) -> Self {
        SandboxVm {
            inner,
            workspace,
            n,
            snapshot,
            sync: SyncPlan::default(),
            dirs: None,
            drift: Vec::new(),
        }
    }

    fn build_spec(&mut self, request: &ExecRequest) -> Result<Spec, VmError> {
        let host;
        let base = match &self.snapshot.base {
            SnapshotBase::Host => {
                host = self.inner.host_layout()?;
                Base::Host(&host)
            }
            SnapshotBase::Image { rootfs, .. } => Base::Rootfs(rootfs),
        };
        let ws = &self.workspace;
        let layers = self.snapshot.layer_paths();
        let plan = rootfs::plan(&ws.points, &ws.scratch, self.n, &layers, &base, &ws.store)
            .map_err(VmError::io("prepare a root filesystem in", &ws.scratch))?;
        let mounts = plan.mounts.clone();
        self.dirs = Some(plan);
        let is_host = self.snapshot.base == SnapshotBase::Host;
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        if let SnapshotBase::Image { rootfs, .. } = &self.snapshot.base {
            env.extend(image_env(rootfs));
        }
        env.extend(request.env.iter().cloned());
        Ok(Spec {
            root: ws.points.root.clone(),
            parent_pid: std::process::id(),
            id_map: self.inner.id_map(),
            network: self.inner.network,
            rootfs: mounts,
            fresh_run: is_host,
            resolv_conf: std::fs::canonicalize("/etc/resolv.conf").ok(),
            masked: if is_host { vec![ws.store.clone()] } else { Vec::new() },
            sync: std::mem::take(&mut self.sync),
            exec: ExecSpec {
                cmd: request.cmd.clone(),
                env: dedup_env(env),
                cwd: request.cwd.clone(),
            },
        })
    }

    /// Removes the step's work directories (and, unless it was committed,
    /// its upper directory) in the background: nothing waits for them, and
    /// the session collects whatever is left.
    fn discard(&mut self, keep_upper: bool) {
        let Some(dirs) = self.dirs.take() else { return };
        self.inner.trash.discard(dirs.work);
        if !keep_upper {
            self.inner.trash.discard(dirs.upper);
        }
    }
}

/// The environment an imported image brings (`image.json`'s `env`).
fn image_env(rootfs: &Path) -> Vec<(String, String)> {
    let Some(dir) = rootfs.parent() else { return Vec::new() };
    let Ok(bytes) = std::fs::read(dir.join("image.json")) else {
        return Vec::new();
    };
    let Ok(info) = serde_json::from_slice::<crate::images::ImageInfo>(&bytes) else {
        return Vec::new();
    };
    info.env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// Keeps the last value of every name, in the order names first appeared.
fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (key, value) in env {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

#[async_trait::async_trait]
impl Vm for SandboxVm {
    async fn sync(&mut self, plan: SyncPlan) -> Result<(), VmError> {
        self.sync = plan;
        Ok(())
    }

    async fn exec(
        &mut self,
        request: ExecRequest,
        logs: LogSink,
        mut kill: KillSignal,
    ) -> Result<ExecOutcome, VmError> {
        if self.dirs.is_some() {
            return Err(SandboxError::Misuse {
                stage: "exec",
                why: "a sandbox runs one command",
            }
            .into());
        }
        let spec = self.build_spec(&request)?;
        let helper = &self.inner.config.helper;
        let (mut child, replies) = spawn_helper_replies(helper, &Job::Step(Box::new(spec)), true)?;
        let stdout = forward_lines(child.stdout.take(), LogStream::Stdout, logs.clone());
        let stderr = forward_lines(child.stderr.take(), LogStream::Stderr, logs);
        let mut killed = false;
        let status = tokio::select! {
            biased;
            status = child.wait() => status,
            () = &mut kill => {
                killed = true;
                if let Some(pid) = child.id() {
                    // The helper kills init and waits for the namespace to go.
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
                }
                match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                }
            }
        };
        let status = status.map_err(VmError::io("wait for the sandbox helper", helper))?;
        let _ = tokio::join!(stdout, stderr);
        let Replies { report, drift } = replies.await.unwrap_or_default();
        self.drift = drift;
        match report {
            _ if killed => Ok(ExecOutcome::Killed),
            Some(Report::Exited(code)) => Ok(ExecOutcome::Exited(code)),
            Some(Report::Signaled(sig)) => Ok(ExecOutcome::Signaled(sig)),
            Some(Report::SetupFailed { stage, message }) => Err(SandboxError::Setup { stage, message }.into()),
            Some(Report::Drifted(_)) | None => Err(SandboxError::NoResult {
                status: status.to_string(),
            }
            .into()),
        }
    }

    fn drift(&mut self) -> Vec<Drift> {
        std::mem::take(&mut self.drift)
    }

    /// Layers are shared by every child, so `successors` changes nothing.
    async fn commit(mut self: Box<Self>, _successors: Successors) -> Result<SnapshotId, VmError> {
        let Some(dirs) = &self.dirs else {
            return Err(SandboxError::Misuse {
                stage: "commit",
                why: "nothing ran in this sandbox",
            }
            .into());
        };
        let layer = self.workspace.layers.join(crate::fsutil::random_id(8));
        std::fs::rename(&dirs.upper, &layer).map_err(VmError::io("commit", &dirs.upper))?;
        let mut layers = vec![Layer::new(layer, &self.inner.trash)];
        layers.extend(self.snapshot.layers.iter().cloned());
        let id = self.inner.add_snapshot(Snapshot {
            layers,
            base: self.snapshot.base.clone(),
        });
        self.discard(true);
        Ok(id)
    }

    async fn destroy(mut self: Box<Self>) -> Result<(), VmError> {
        self.discard(false);
        Ok(())
    }
}

/// What the helper answered: its final report, and the drift it found
/// syncing (reported first, when there was any).
#[derive(Debug, Default)]
pub(super) struct Replies {
    pub report: Option<Report>,
    pub drift: Vec<Drift>,
}

/// Starts the helper on `job`: the job goes out on its standard input (a
/// socket) and the returned task reads the report coming back on it. With
/// `logs`, its stdout and stderr are pipes to read; otherwise they are
/// discarded.
pub(super) fn spawn_helper(
    helper: &Path,
    job: &Job,
    logs: bool,
) -> Result<(tokio::process::Child, tokio::task::JoinHandle<Option<Report>>), VmError> {
    let (child, replies) = spawn_helper_replies(helper, job, logs)?;
    Ok((
        child,
        tokio::spawn(async move { replies.await.ok().and_then(|r| r.report) }),
    ))
}

/// [`spawn_helper`], with every reply.
fn spawn_helper_replies(
    helper: &Path,
    job: &Job,
    logs: bool,
) -> Result<(tokio::process::Child, tokio::task::JoinHandle<Replies>), VmError> {
    let spawn_err = |source| -> VmError {
        SandboxError::Spawn {
            helper: helper.to_owned(),
            source,
        }
        .into()
    };
    let json = serde_json::to_vec(job).map_err(|e| spawn_err(std::io::Error::other(e)))?;
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_err)?;
    let output = || if logs { Stdio::piped() } else { Stdio::null() };
    // Spawned from a runtime worker thread, which lives as long as the
    // process: the helper's parent-death signal follows the spawning
    // thread, not the process.
    let mut command = tokio::process::Command::new(helper);
    crate::child::die_with_parent(command.as_std_mut());
    let child = command
        .arg(HELPER_ARG)
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    // The helper reads its job before anything else.
    ours.write_all(&json)
        .and_then(|()| ours.shutdown(std::net::Shutdown::Write))
        .map_err(spawn_err)?;
    ours.set_nonblocking(true).map_err(spawn_err)?;
    let mut socket = tokio::net::UnixStream::from_std(ours).map_err(spawn_err)?;
    let replies = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = socket.read_to_end(&mut bytes).await;
        let mut replies = Replies::default();
        for report in serde_json::Deserializer::from_slice(&bytes).into_iter::<Report>() {
            match report {
                Ok(Report::Drifted(drift)) => replies.drift.extend(drift),
                Ok(report) => replies.report = Some(report),
                Err(_) => break,
            }
        }
        replies
    });
    Ok((child, replies))
}

/// Reads `pipe` line by line into `logs`, long lines in pieces (see
/// [`crate::lines`]); runs until the pipe closes.
fn forward_lines(
    pipe: Option<impl AsyncRead + Unpin + Send + 'static>,
    stream: LogStream,
    logs: LogSink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut lines = LineSplitter::new(stream);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for line in lines.push(&chunk[..read]) {
                // A closed sink still drains the pipe, so the step never blocks.
                let _ = logs.send(line).await;
            }
        }
        if let Some(line) = lines.finish() {
            let _ = logs.send(line).await;
        }
    })
}
