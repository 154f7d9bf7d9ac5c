//! One step in a container: sync, one `docker exec` with its output split
//! into lines and what it used read off its end, then a commit or a
//! hand-over to the single child.
//!
//! A container booted from an image is created at the step's exec, under
//! the step's limits and with its cache volumes mounted, and the sync
//! asked for before is done then: the limits are known only then, and
//! setting them at creation costs nothing where `docker update` costs a
//! `runc update` (20 ms or more). A later step of a chain changes them
//! only when its own differ. Its volumes cannot be changed at all: a step
//! whose volumes are not the container's goes on in a new container made
//! from a commit of the old one (see [`super::volumes`]).

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use std::io::Write;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::archive::{removals, tar_stream};
use super::usage::{UsageLine, STEP_WRAPPER};
use super::volumes::{normalized, reaches, size_command, sizes};
use super::{docker_error, unexpected, Inner, Snap};
use crate::error::DockerError;
use crate::limits::{Limits, StepUsage};

/// The attached output of an exec, frame by frame.
type ExecOutput = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
use crate::backend::{
    Drift, ExecOutcome, ExecRequest, KillSignal, LogSink, LogStream, ShellRequest, SnapshotId, Successors, SyncPlan,
    Vm, VolumeBind,
};
use crate::error::VmError;
use crate::lines::LineSplitter;
use crate::terminal::Keys;

/// A container holding one step.
pub(super) struct DockerVm {
    inner: Arc<Inner>,
    /// The step's name, for the labels of what is made for it.
    name: String,
    /// Empty until the container is created.
    container: String,
    /// What creates the container, until it is.
    pending: Option<Pending>,
    /// What the container runs under.
    limits: Limits,
    /// No step ran in the container yet.
    fresh: bool,
    /// What the last exec used.
    usage: StepUsage,
    /// What the container carries from step to step.
    chain: Chain,
    /// Set once `destroy`, `commit` or a hand-over took the container.
    done: bool,
    /// What the sync copied other than the plan expected.
    drift: Vec<Drift>,
}

/// What a chain's container carries from step to step.
#[derive(Debug, Clone, Default)]
pub(super) struct Chain {
    /// The image the chain started from (for the size of a committed
    /// snapshot) and the base image of the whole snapshot.
    pub(super) origin: String,
    pub(super) base: String,
    /// The cache volumes the container mounts ([`normalized`]).
    pub(super) volumes: Vec<VolumeBind>,
    /// The tags of the images the chain was moved through to change its
    /// volumes, untagged once the container is gone.
    pub(super) intermediates: Vec<String>,
}

/// A container still to be created: the sync asked for before.
struct Pending {
    sync: Option<SyncPlan>,
}

impl DockerVm {
    /// A VM whose container is created from `origin` when the step `name`
    /// first needs it.
    pub(super) fn pending(inner: Arc<Inner>, name: String, origin: String, base: String) -> Self {
        let chain = Chain {
            origin,
            base,
            ..Chain::default()
        };
        let mut vm = Self::running(inner, name, String::new(), chain, Limits::default());
        vm.pending = Some(Pending { sync: None });
        vm
    }

    /// A VM in the running `container`, made under `limits`, in which no
    /// step ran yet.
    pub(super) fn running(inner: Arc<Inner>, name: String, container: String, chain: Chain, limits: Limits) -> Self {
        DockerVm {
            inner,
            name,
            container,
            pending: None,
            limits,
            fresh: true,
            usage: StepUsage::default(),
            chain,
            done: false,
            drift: Vec::new(),
        }
    }

    /// A VM for the step `name` in the container a step handed over,
    /// which runs under `limits`.
    pub(super) fn handed_over(
        inner: Arc<Inner>,
        name: String,
        container: String,
        chain: Chain,
        limits: Limits,
    ) -> Self {
        let mut vm = Self::running(inner, name, container, chain, limits);
        vm.fresh = false;
        vm
    }

    /// Makes the container run under `limits` with `volumes` mounted
    /// (`None`: those it has): creates it so (and does the sync asked for
    /// before), moves the chain to a new container where its volumes are
    /// others ([`DockerVm::remount`]), or changes the running one's limits
    /// where they differ. Its disk stays what it was created with.
    async fn ready(&mut self, limits: Limits, volumes: Option<&[VolumeBind]>) -> Result<(), VmError> {
        let volumes = volumes.map(normalized);
        match self.pending.take() {
            Some(Pending { sync }) => {
                let volumes = volumes.unwrap_or_default();
                // A sync that reaches into the volumes goes under them.
                let first = match &sync {
                    Some(plan) if reaches(plan, &volumes) => Vec::new(),
                    _ => volumes.clone(),
                };
                self.container = self
                    .inner
                    .create_container(&self.chain.origin, &self.name, &limits, &first)
                    .await?;
                self.chain.volumes = first;
                self.limits = limits;
                if let Some(plan) = sync {
                    self.sync_now(plan).await?;
                }
                if self.chain.volumes != volumes {
                    self.remount(limits, volumes).await?;
                }
            }
            None if volumes.as_ref().is_some_and(|v| *v != self.chain.volumes) => {
                self.remount(limits, volumes.unwrap_or_default()).await?;
            }
            None => {
                let changing = |l: &Limits| (l.memory, l.millicpus, l.pids);
                if changing(&limits) != changing(&self.limits) {
                    self.inner.update_limits(&self.container, &limits).await?;
                    self.limits = Limits {
                        memory: limits.memory,
                        millicpus: limits.millicpus,
                        pids: limits.pids,
                        ..self.limits
                    };
                }
            }
        }
        Ok(())
    }

    /// Moves the chain into a new container with `volumes` mounted, under
    /// `limits`: the running one is committed (its volumes' contents stay
    /// out of the image, their mount points at most empty directories in
    /// it) and removed. The image keeps its tag until the chain's last
    /// container is gone.
    async fn remount(&mut self, limits: Limits, volumes: Vec<VolumeBind>) -> Result<(), VmError> {
        let old = std::mem::take(&mut self.container);
        let committed = self.inner.commit_image(&old, &self.chain.base).await;
        self.inner.remove_container(&old).await;
        let (image, tag) = committed?;
        self.chain.intermediates.push(tag);
        self.container = self
            .inner
            .create_container(&image, &self.name, &limits, &volumes)
            .await?;
        self.chain.volumes = volumes;
        self.limits = limits;
        self.fresh = true;
        Ok(())
    }

    /// Reads what each of `volumes` holds after a step, for
    /// `volume_size`; nothing where `du` cannot run.
    async fn measure(&self, volumes: &[VolumeBind]) {
        if volumes.is_empty() {
            return;
        }
        if let Ok((_, output)) = self.run_quiet(size_command(volumes), "/").await {
            self.inner.volumes_measured(sizes(volumes, &output));
        }
    }

    /// Removes the paths `plan` deletes from `target` in the container.
    async fn remove_paths(&self, plan: &SyncPlan, target: &str) -> Result<(), VmError> {
        for argv in removals(plan) {
            let (code, output) = self.run_quiet(argv, target).await?;
            if code != 0 {
                return Err(DockerError::Command {
                    op: "remove deleted files from /workspace",
                    code,
                    output: output.trim().to_owned(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Brings `/workspace` in the running container in line with `plan`.
    async fn sync_now(&mut self, plan: SyncPlan) -> Result<(), VmError> {
        let target = plan.target.to_string_lossy().into_owned();
        self.remove_paths(&plan, &target).await?;
        if plan.write.is_empty() {
            return Ok(());
        }
        let (chunks, drift) = tar_stream(&plan);
        let body = futures_util::stream::unfold(chunks, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
            .path(&target)
            .build();
        self.inner
            .docker()?
            .upload_to_container(&self.container, Some(options), bollard::body_try_stream(body))
            .await
            .map_err(docker_error("copy the workspace into the container"))?;
        self.drift = drift.await.unwrap_or_default();
        // A source entry gone since the plan was made is gone here too.
        let gone = SyncPlan {
            remove: self
                .drift
                .iter()
                .filter(|d| d.copied.is_none())
                .map(|d| d.path.clone())
                .collect(),
            ..SyncPlan::default()
        };
        self.remove_paths(&gone, &target).await?;
        Ok(())
    }

    /// Starts `argv` as root in `cwd` with `env` on top of the image's, its
    /// output attached: the exec's id and its output.
    async fn start(&self, argv: Vec<String>, env: Vec<String>, cwd: &str) -> Result<(String, ExecOutput), VmError> {
        let docker = self.inner.docker()?;
        let exec = docker
            .create_exec(
                &self.container,
                CreateExecOptions {
                    cmd: Some(argv),
                    env: Some(env),
                    working_dir: Some(cwd.to_owned()),
                    user: Some("0".to_owned()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker_error("create an exec"))?;
        match docker
            .start_exec(&exec.id, None)
            .await
            .map_err(docker_error("start an exec"))?
        {
            StartExecResults::Attached { output, .. } => Ok((exec.id, output)),
            StartExecResults::Detached => Err(unexpected("attach to an exec", "it started detached")),
        }
    }

    /// Runs `argv` to its end and returns its exit code; its output is
    /// only kept for an error message.
    async fn run_quiet(&self, argv: Vec<String>, cwd: &str) -> Result<(i64, String), VmError> {
        let (exec, mut output) = self.start(argv, Vec::new(), cwd).await?;
        let mut text = String::new();
        while let Some(chunk) = output.next().await {
            if let Ok(chunk) = chunk {
                if text.len() < 4096 {
                    text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                }
            }
        }
        Ok((self.exit_code(&exec).await?, text))
    }

    /// The exit code of a finished exec; Docker may report it a moment
    /// after the output ends, and it is never guessed.
    async fn exit_code(&self, exec: &str) -> Result<i64, VmError> {
        let docker = self.inner.docker()?;
        for _ in 0..500 {
            let inspect = docker
                .inspect_exec(exec)
                .await
                .map_err(docker_error("inspect an exec"))?;
            if inspect.running != Some(true) {
                return inspect
                    .exit_code
                    .ok_or_else(|| unexpected("report an exit code", "the exec ended without one"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(unexpected("finish an exec", "its output ended but it still runs"))
    }
}

#[async_trait::async_trait]
impl Vm for DockerVm {
    async fn sync(&mut self, plan: SyncPlan) -> Result<(), VmError> {
        match &mut self.pending {
            Some(pending) if pending.sync.is_none() => {
                pending.sync = Some(plan);
                Ok(())
            }
            Some(_) => {
                self.ready(self.limits, None).await?;
                self.sync_now(plan).await
            }
            None => {
                // What a sync writes or removes goes under the volumes of
                // the step before, not into them.
                if reaches(&plan, &self.chain.volumes) {
                    self.remount(self.limits, Vec::new()).await?;
                }
                self.sync_now(plan).await
            }
        }
    }

    async fn exec(
        &mut self,
        request: ExecRequest,
        logs: LogSink,
        mut kill: KillSignal,
    ) -> Result<ExecOutcome, VmError> {
        self.usage = StepUsage {
            memory_limit: request.limits.memory,
            pids_limit: request.limits.pids,
            ..StepUsage::default()
        };
        self.ready(request.limits, Some(&request.volumes)).await?;
        let first = std::mem::replace(&mut self.fresh, false);
        let docker = self.inner.docker()?;
        let env = request.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let nonce = crate::fsutil::random_id(8);
        let argv = ["sh", "-c", STEP_WRAPPER, "sh", &request.cmd, &nonce]
            .map(str::to_owned)
            .to_vec();
        let (exec, mut output) = self.start(argv, env, &request.cwd.to_string_lossy()).await?;
        let mut stdout = LineSplitter::new(LogStream::Stdout);
        let mut stderr = LineSplitter::new(LogStream::Stderr);
        let mut figures = UsageLine::new(&nonce);
        let mut killed = false;
        loop {
            let chunk = tokio::select! {
                chunk = output.next() => chunk,
                () = &mut kill, if !killed => {
                    killed = true;
                    // The container goes with the step: nothing of it is kept.
                    let options = bollard::query_parameters::KillContainerOptionsBuilder::new().signal("KILL").build();
                    let _ = docker.kill_container(&self.container, Some(options)).await;
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            let lines = match chunk.map_err(docker_error("read the step's output"))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.push(&message),
                LogOutput::StdErr { message } => stderr
                    .push(&message)
                    .into_iter()
                    .filter_map(|line| figures.filter(line))
                    .collect(),
                LogOutput::StdIn { .. } => continue,
            };
            for line in lines {
                // A closed sink still drains the output, so the step never blocks.
                let _ = logs.send(line).await;
            }
        }
        for line in [stdout.finish(), stderr.finish()].into_iter().flatten() {
            let _ = logs.send(line).await;
        }
        if killed {
            return Ok(ExecOutcome::Killed);
        }
        let code = self.exit_code(&exec).await?;
        self.usage = figures.usage(first, &request.limits);
        self.measure(&request.volumes).await;
        Ok(ExecOutcome::Exited(i32::try_from(code).unwrap_or(i32::MAX)))
    }

    /// A `docker exec` with a terminal of its own, joined to the caller's:
    /// the caller's is raw (every key goes to the container's), what is
    /// typed is sent, what comes back is written, and a resize is passed
    /// on.
    async fn shell(&mut self, request: ShellRequest) -> Result<i32, VmError> {
        // A shell holds no volume (a failed step let go of its own): it
        // sees none, as on the sandbox.
        self.ready(self.limits, Some(&[])).await?;
        let docker = self.inner.docker()?;
        let terminal = &request.terminal;
        let env = request
            .env_with_term()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let exec = docker
            .create_exec(
                &self.container,
                CreateExecOptions {
                    cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), request.cmd.clone()]),
                    env: Some(env),
                    working_dir: Some(request.cwd.to_string_lossy().into_owned()),
                    user: Some("0".to_owned()),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(docker_error("create an exec"))?;
        let mut screen = std::fs::File::from(terminal.try_clone().map_err(VmError::terminal("open"))?);
        let hold = terminal.hold();
        hold.raw().map_err(VmError::terminal("put in raw mode"))?;
        let options = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: None,
        };
        let (mut output, mut input) = match docker
            .start_exec(&exec.id, Some(options))
            .await
            .map_err(docker_error("start an exec"))?
        {
            StartExecResults::Attached { output, input } => (output, input),
            StartExecResults::Detached => return Err(unexpected("attach to an exec", "it started detached")),
        };
        let resize = |(rows, cols): (u16, u16)| {
            let options = bollard::query_parameters::ResizeExecOptionsBuilder::new()
                .h(i32::from(rows))
                .w(i32::from(cols))
                .build();
            docker.resize_exec(&exec.id, options)
        };
        if let Some(size) = terminal.size() {
            let _ = resize(size).await;
        }
        let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        let (keys, mut typed) = Keys::read(terminal).map_err(VmError::terminal("read"))?;
        let ended = loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(chunk)) => {
                        // The terminal is ours: a write that fails has nowhere to be said.
                        let _ = screen.write_all(&chunk.into_bytes()).and_then(|()| screen.flush());
                    }
                    Some(Err(err)) => break Err(docker_error("read the shell's output")(err)),
                    None => break Ok(()),
                },
                Some(bytes) = typed.recv() => {
                    // An exec that ended takes no more input; its output ends next.
                    let _ = input.write_all(&bytes).await;
                    let _ = input.flush().await;
                }
                Some(()) = async { resized.as_mut()?.recv().await } => {
                    if let Some(size) = terminal.size() {
                        let _ = resize(size).await;
                    }
                }
            }
        };
        drop(keys);
        drop(hold);
        ended?;
        let code = self.exit_code(&exec.id).await?;
        Ok(i32::try_from(code).unwrap_or(i32::MAX))
    }

    fn drift(&mut self) -> Vec<Drift> {
        std::mem::take(&mut self.drift)
    }

    fn usage(&mut self) -> StepUsage {
        self.usage
    }

    async fn commit(mut self: Box<Self>, successors: Successors) -> Result<SnapshotId, VmError> {
        self.ready(self.limits, None).await?;
        self.done = true;
        let container = std::mem::take(&mut self.container);
        let chain = std::mem::take(&mut self.chain);
        let snap = match successors {
            Successors::One => Snap::Container {
                id: container,
                limits: self.limits,
                chain,
            },
            Successors::Many => {
                let committed = self.inner.commit(&container, &chain.origin, &chain.base).await;
                self.inner.remove_chain(&container, &chain.intermediates).await;
                committed?
            }
        };
        Ok(self.inner.add_snapshot(snap))
    }

    async fn destroy(mut self: Box<Self>) -> Result<(), VmError> {
        self.done = true;
        self.inner
            .remove_chain(&self.container, &self.chain.intermediates)
            .await;
        Ok(())
    }
}

impl Drop for DockerVm {
    /// A VM dropped without `commit` or `destroy` (a panic, a cancelled
    /// task) still goes; `shutdown` removes whatever this misses.
    fn drop(&mut self) {
        if !self.done && (!self.container.is_empty() || !self.chain.intermediates.is_empty()) {
            let inner = self.inner.clone();
            let container = std::mem::take(&mut self.container);
            let intermediates = std::mem::take(&mut self.chain.intermediates);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { inner.remove_chain(&container, &intermediates).await });
            }
        }
    }
}
