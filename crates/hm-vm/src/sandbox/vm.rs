//! One sandboxed step: the parent's side of the helper protocol.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::disk::Method;
use super::helper::HELPER_ARG;
use super::layers::Layer;
use super::rootfs::{self, Base, RootfsPlan};
use super::spec::{DiskSpec, ExecSpec, Job, MountOp, Report, Spec, VolumeSpec};
use super::{Inner, Snapshot, SnapshotBase, Workspace};
use crate::backend::{
    Drift, ExecOutcome, ExecRequest, KillSignal, LogSink, LogStream, ShellRequest, SnapshotId, Successors, SyncPlan, Vm,
};
use crate::error::{SandboxError, VmError};
use crate::images::DEFAULT_PATH;
use crate::lines::LineSplitter;
use crate::terminal::Terminal;

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
    /// What the last command used.
    usage: crate::StepUsage,
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
            usage: crate::StepUsage::default(),
        }
    }

    /// The spec of a command: `cmd` with `env` on top of the image's, in
    /// `cwd`. The first command's creates the step's directories, on a
    /// filesystem of their own when `limits` set its disk (see
    /// [`super::disk`]); a later one (a shell after the step) mounts the
    /// same upper directory again, and finds what the first wrote (a
    /// limited step's, if it passed: its filesystem went with it), with no
    /// limit.
    fn build_spec(
        &mut self,
        cmd: &str,
        env: &[(String, String)],
        cwd: &Path,
        terminal: bool,
        limits: Option<&crate::Limits>,
    ) -> Result<Spec, VmError> {
        let ws = &self.workspace;
        let (mounts, disk) = match &mut self.dirs {
            Some(plan) => {
                // With a work directory of its own: overlayfs refuses one
                // that a `volatile` mount used (nothing crashed here, so
                // the upper directory is whole).
                let work = ws.scratch.join(format!("w{}-{}", self.n, crate::fsutil::random_id(4)));
                std::fs::create_dir(&work).map_err(VmError::io("create", &work))?;
                let used = std::mem::replace(&mut plan.work, work.clone());
                if let Some(disk) = plan.disk.take() {
                    // The step's own filesystem is gone; its files, where
                    // it passed, were saved to `plan.upper`.
                    if !plan.upper.exists() {
                        std::fs::create_dir(&plan.upper).map_err(VmError::io("create", &plan.upper))?;
                    }
                    for op in &mut plan.mounts {
                        if let MountOp::Overlay { upper, work: at, .. } = op {
                            if upper.starts_with(&disk.mount) {
                                *upper = plan.upper.clone();
                                *at = work.clone();
                            }
                        }
                    }
                    if let Some(image) = disk.image() {
                        self.inner.trash.discard(image.to_owned());
                    }
                }
                for op in &mut plan.mounts {
                    if let MountOp::Overlay { work: at, .. } = op {
                        if *at == used {
                            *at = work.clone();
                        }
                    }
                }
                self.inner.trash.discard(used);
                (plan.mounts.clone(), None)
            }
            None => {
                let host;
                let base = match &self.snapshot.base {
                    SnapshotBase::Host => {
                        host = self.inner.host_layout()?;
                        Base::Host(&host)
                    }
                    SnapshotBase::Image { rootfs, .. } => Base::Rootfs(rootfs),
                };
                let layers = self.snapshot.layer_paths();
                let bound = limits
                    .filter(|limits| limits.disk_explicit)
                    .and_then(|limits| limits.disk)
                    .and_then(|bytes| {
                        let image = ws.scratch.join(format!("i{}", self.n));
                        Method::here(self.inner.rootless, &self.inner.config.search_path).bound(
                            bytes,
                            &ws.scratch,
                            image,
                        )
                    });
                let plan = rootfs::plan(&ws.points, &ws.scratch, self.n, &layers, &base, &ws.store, bound)
                    .map_err(VmError::io("prepare a root filesystem in", &ws.scratch))?;
                let mounts = (plan.mounts.clone(), plan.disk.clone());
                self.dirs = Some(plan);
                mounts
            }
        };
        let ws = &self.workspace;
        let is_host = self.snapshot.base == SnapshotBase::Host;
        let env_on_top = env;
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ];
        if let SnapshotBase::Image { rootfs, .. } = &self.snapshot.base {
            env.extend(image_env(rootfs));
        }
        env.extend(env_on_top.iter().cloned());
        Ok(Spec {
            root: ws.points.root.clone(),
            parent_pid: std::process::id(),
            id_map: self.inner.id_map(),
            network: self.inner.network,
            rootfs: mounts,
            disk,
            cgroup: None,
            volumes: Vec::new(),
            fresh_run: is_host,
            resolv_conf: std::fs::canonicalize("/etc/resolv.conf").ok(),
            masked: if is_host { vec![ws.store.clone()] } else { Vec::new() },
            sync: std::mem::take(&mut self.sync),
            exec: ExecSpec {
                cmd: cmd.to_owned(),
                env: dedup_env(env),
                cwd: cwd.to_owned(),
            },
            terminal,
        })
    }

    /// The directories of the cache volumes `binds` names, made where
    /// missing.
    fn volumes(&self, binds: &[crate::VolumeBind]) -> Result<Vec<VolumeSpec>, VmError> {
        let store = crate::volumes::VolumeStore::new(&self.inner.config.cache_dir);
        binds
            .iter()
            .map(|bind| {
                let source = store.data_dir(&bind.id);
                std::fs::create_dir_all(&source).map_err(VmError::io("create the volume", &source))?;
                Ok(VolumeSpec {
                    source,
                    target: bind.target.clone(),
                })
            })
            .collect()
    }

    /// A control group for the step's processes, with `limits`, where the
    /// session has groups.
    fn group(&self, limits: &crate::Limits) -> Result<Option<crate::cgroup::StepGroup>, VmError> {
        let Some(groups) = &self.workspace.groups else {
            return Ok(None);
        };
        let step = format!("step {}", self.n);
        groups
            .step(self.n, limits)
            .map(Some)
            .map_err(|e| VmError::io("create the control group of", Path::new(&step))(e))
    }

    /// Removes the step's work directories (and, unless it was committed,
    /// its upper directory) in the background: nothing waits for them, and
    /// the session collects whatever is left. A limited step's filesystem
    /// is gone already (with its helper); its work directory is the empty
    /// mount point, and its loop file was unlinked, or never made if the
    /// helper failed first.
    fn discard(&mut self, keep_upper: bool) {
        let Some(dirs) = self.dirs.take() else { return };
        self.inner.trash.discard(dirs.work);
        if let Some(image) = dirs.disk.as_ref().and_then(DiskSpec::image) {
            self.inner.trash.discard(image.to_owned());
        }
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
        let mut spec = self.build_spec(&request.cmd, &request.env, &request.cwd, false, Some(&request.limits))?;
        let helper = &self.inner.config.helper;
        spec.volumes = self.volumes(&request.volumes)?;
        let group = self.group(&request.limits)?;
        spec.cgroup = group.as_ref().map(|g| g.entry());
        let spawned = spawn_helper_replies(helper, &Job::Step(Box::new(spec)), Output::Pipes);
        let (mut child, replies) = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                group.iter().for_each(|g| g.remove());
                return Err(err);
            }
        };
        let output = forward_output(child.stdout.take(), child.stderr.take(), logs);
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
        if let Some(group) = group {
            self.usage = group.usage(&request.limits);
            group.remove();
        }
        let status = status.map_err(VmError::io("wait for the sandbox helper", helper))?;
        let _ = output.await;
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

    /// The shell runs as a step does, on the same directories when the
    /// step ran already; the terminal is its standard input, output and
    /// error. Nothing can stop it but its own end (or `hm`'s).
    async fn shell(&mut self, request: ShellRequest) -> Result<i32, VmError> {
        let env = request.env_with_term();
        let mut spec = self.build_spec(&request.cmd, &env, &request.cwd, true, None)?;
        let helper = &self.inner.config.helper;
        let group = self.group(&request.limits)?;
        spec.cgroup = group.as_ref().map(|g| g.entry());
        let hold = request.terminal.hold();
        // Declared after `hold`, so dropped before it, on a SIGTERM too
        // (which drops this future): the shell's processes are killed
        // before the terminal is given back, so that none of them (an
        // interactive shell ignores SIGTTOU) can change its modes after.
        let group = group.map(crate::cgroup::Removed);
        let spawned = spawn_helper_replies(helper, &Job::Step(Box::new(spec)), Output::Terminal(&request.terminal));
        let status = match spawned {
            Ok((mut child, replies)) => Ok((child.wait().await, replies)),
            Err(err) => Err(err),
        };
        drop(group);
        // The terminal's foreground and modes, before anything else.
        drop(hold);
        let (status, replies) = status?;
        let status = status.map_err(VmError::io("wait for the sandbox helper", helper))?;
        let Replies { report, drift } = replies.await.unwrap_or_default();
        self.drift.extend(drift);
        match report {
            Some(Report::Exited(code)) => Ok(code),
            Some(Report::Signaled(sig)) => Ok(128 + sig),
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

    fn usage(&mut self) -> crate::StepUsage {
        self.usage
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
        if dirs.disk.is_some() && !dirs.upper.exists() {
            // Its helper ended before it saved the step's files.
            let gone = std::io::Error::new(std::io::ErrorKind::NotFound, "the step's files were not saved");
            return Err(VmError::io("commit", &dirs.upper)(gone));
        }
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
    let output = if logs { Output::Pipes } else { Output::Discard };
    let (child, replies) = spawn_helper_replies(helper, job, output)?;
    Ok((
        child,
        tokio::spawn(async move { replies.await.ok().and_then(|r| r.report) }),
    ))
}

/// Where the helper's standard output and error go.
enum Output<'t> {
    Discard,
    /// Pipes, to read.
    Pipes,
    /// The caller's terminal.
    Terminal(&'t Terminal),
}

impl Output<'_> {
    fn stdio(&self) -> std::io::Result<Stdio> {
        Ok(match self {
            Output::Discard => Stdio::null(),
            Output::Pipes => Stdio::piped(),
            Output::Terminal(terminal) => Stdio::from(terminal.try_clone()?),
        })
    }
}

/// [`spawn_helper`], with every reply.
fn spawn_helper_replies(
    helper: &Path,
    job: &Job,
    output: Output<'_>,
) -> Result<(tokio::process::Child, tokio::task::JoinHandle<Replies>), VmError> {
    let spawn_err = |source| -> VmError {
        SandboxError::Spawn {
            helper: helper.to_owned(),
            source,
        }
        .into()
    };
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_err)?;
    // Spawned from a runtime worker thread, which lives as long as the
    // process: the helper's parent-death signal follows the spawning
    // thread, not the process.
    let mut command = tokio::process::Command::new(helper);
    crate::child::die_with_parent(command.as_std_mut());
    let child = command
        .arg(HELPER_ARG)
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(output.stdio().map_err(spawn_err)?)
        .stderr(output.stdio().map_err(spawn_err)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    super::spec::send_job(&mut ours, job).map_err(spawn_err)?;
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

/// Reads the step's stdout and stderr into `logs` line by line, long lines
/// in pieces (see [`crate::lines`]), until both close. One task reads both,
/// stdout first whenever both have output waiting, so that a step that
/// writes to stdout and then to stderr (`echo checking; echo failed >&2`) is
/// shown in that order (two readers racing each other could swap them).
fn forward_output(
    stdout: Option<impl AsyncRead + Unpin + Send + 'static>,
    stderr: Option<impl AsyncRead + Unpin + Send + 'static>,
    logs: LogSink,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut stdout, mut stderr) = (stdout, stderr);
        let mut out_lines = LineSplitter::new(LogStream::Stdout);
        let mut err_lines = LineSplitter::new(LogStream::Stderr);
        let mut out_chunk = vec![0u8; 64 * 1024];
        let mut err_chunk = vec![0u8; 64 * 1024];
        loop {
            let lines = tokio::select! {
                biased;
                read = async { stdout.as_mut()?.read(&mut out_chunk).await.ok() }, if stdout.is_some() => match read {
                    Some(n) if n > 0 => out_lines.push(&out_chunk[..n]),
                    _ => {
                        stdout = None;
                        out_lines.finish().into_iter().collect()
                    }
                },
                read = async { stderr.as_mut()?.read(&mut err_chunk).await.ok() }, if stderr.is_some() => match read {
                    Some(n) if n > 0 => err_lines.push(&err_chunk[..n]),
                    _ => {
                        stderr = None;
                        err_lines.finish().into_iter().collect()
                    }
                },
                else => break,
            };
            for line in lines {
                // A closed sink still drains the pipes, so the step never
                // blocks.
                let _ = logs.send(line).await;
            }
        }
    })
}
