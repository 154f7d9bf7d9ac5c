use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use hm_exec::{CacheSettings, ExecutionBackend, LocalBackend, RunRequest, StepLogs};
use hm_render::Renderer;
use hm_vm::{Registry, VmBackend};
use tokio::signal::unix::{signal, SignalKind};

use super::pipelines::select;
use super::{cache_dir, load};
use crate::cli::{BackendName, Format, PullPolicy, RunArgs};
use crate::config::Config;
use crate::error::CliError;
use crate::history::{History, RunInfo};
use crate::settings::RunSettings;
use crate::watch::{WatchError, Watcher};

/// What `hm run` says and returns when interrupted before the first step.
fn interrupted_while_loading() -> i32 {
    say!("hm: interrupted while loading the pipelines; nothing ran");
    hm_exec::exit_codes::INTERRUPTED
}

/// `hm run`.
pub async fn run(args: RunArgs) -> Result<i32, CliError> {
    // Handled from the start: an interrupt while the pipeline loads stops
    // the build before its first step (exit 130), never kills `hm` midway.
    let interrupts = Interrupts::listen();
    if crate::early::interrupted() {
        return Ok(interrupted_while_loading());
    }
    // Refused before anything is loaded or recorded. `--no-watch` needs
    // nothing: a local run is always followed to its end.
    if let Some(what) = args.hosted() {
        return Err(CliError::Cloud { what: what.to_owned() });
    }
    let env = env_overrides(&args.build.env)?;
    let mut backends = Backends::default();
    let result = match args.watch {
        false => run_once(&args, &env, &interrupts, &mut backends, true)
            .await
            .map(|ran| ran.exit_code),
        true => watch(&args, &env, &interrupts, &mut backends).await,
    };
    backends.shutdown().await;
    result
}

/// `-e KEY=VALUE` overrides, checked.
pub(super) fn env_overrides(args: &[String]) -> Result<Vec<(String, String)>, CliError> {
    args.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if hm_ir::is_env_name(k) => Ok((k.to_owned(), v.to_owned())),
            Some((k, _)) if !k.is_empty() => Err(CliError::BadEnvName {
                arg: kv.clone(),
                name: k.to_owned(),
            }),
            _ => Err(CliError::BadEnv(kv.clone())),
        })
        .collect()
}

/// `hm run --watch`: runs, then waits for a change to the source or the
/// pipeline and runs again, until an interrupt. An interrupt during a run
/// ends that run as without `--watch` (130) and the watch; one while
/// waiting ends with the last run's exit code: how the project stands,
/// since nothing was interrupted. A run that cannot start (a pipeline
/// file with an error) is reported, and watching goes on; only a closed
/// or failing stdout, or the watch itself failing, ends it otherwise.
async fn watch(
    args: &RunArgs,
    env: &[(String, String)],
    interrupts: &Interrupts,
    backends: &mut Backends,
) -> Result<i32, CliError> {
    let start = match &args.project.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let project = hm_dsl::Project::find(&start)?;
    // Made now, as the runs make it, so that the watch leaves out what
    // their source leaves out.
    let cache = cache_dir()?;
    let exclude = source_exclude(&cache);
    // Watched from before the first load: an edit made while it runs is
    // not missed.
    let watching = async {
        let mut watcher = Watcher::new(project.root.clone(), exclude, Some(source_index(&cache, &project.root)))?;
        let snapshot = watcher.snapshot().await?;
        Ok::<_, WatchError>((watcher, snapshot))
    };
    let watching = tokio::select! {
        biased;
        () = interrupts.any() => return Ok(interrupted_while_loading()),
        watching = watching => watching,
    };
    let (mut watcher, mut seen) = match watching {
        Ok(watching) => watching,
        Err(err) => return Ok(watch_failed(&err)),
    };
    let mut first = true;
    loop {
        let exit_code = match run_once(args, env, interrupts, backends, first).await {
            Ok(ran) if ran.stdout_closed => return Ok(ran.exit_code),
            Ok(ran) => {
                first = false;
                ran.exit_code
            }
            Err(err @ CliError::Output(_)) => return Err(err),
            Err(err) => {
                crate::error::report(&err);
                err.exit_code()
            }
        };
        // Interrupted, or an interrupt came as the run ended.
        if exit_code == hm_exec::exit_codes::INTERRUPTED || interrupts.arrived() {
            return Ok(exit_code);
        }
        say!("hm: watching for changes (Ctrl-C to stop)");
        tokio::select! {
            changed = watcher.changed(&seen) => match changed {
                Ok((now, paths)) => {
                    say!("hm: changed: {}; running again", crate::watch::describe(&paths));
                    seen = now;
                }
                Err(err) => return Ok(watch_failed(&err)),
            },
            () = interrupts.any() => return Ok(exit_code),
        }
    }
}

/// Says why watching stopped; the exit code.
fn watch_failed(err: &WatchError) -> i32 {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    say!("error: {text}");
    hm_exec::exit_codes::FAILED
}

/// How one run ended.
struct Ran {
    exit_code: i32,
    /// Nobody reads stdout any more (the build still ran to its end).
    stdout_closed: bool,
}

impl Ran {
    fn interrupted_while_loading() -> Self {
        Ran {
            exit_code: interrupted_while_loading(),
            stdout_closed: false,
        }
    }
}

/// One run: loads the pipeline, resolves the settings, pulls the images,
/// runs the build and renders it. `first`: the first run of this `hm`
/// (later runs of `--watch` pull only missing images, even with `--pull
/// always`).
async fn run_once(
    args: &RunArgs,
    env: &[(String, String)],
    interrupts: &Interrupts,
    backends: &mut Backends,
    first: bool,
) -> Result<Ran, CliError> {
    // Loading runs beside the signals: a pipeline file that hangs (or a
    // Ctrl-C that reached Python too) is still an interrupt, exit 130. The
    // evaluator dies with `hm` (its parent-death signal).
    let project_args = args.project.clone();
    let loading = tokio::task::spawn_blocking(move || load(&project_args));
    let loaded = tokio::select! {
        biased;
        () = interrupts.any() => return Ok(Ran::interrupted_while_loading()),
        loaded = loading => loaded,
    };
    // A Ctrl-C reaches `python3` too, which may end (and fail the load)
    // before `hm` has taken the signal in.
    if matches!(loaded, Ok(Err(_))) && interrupts.listening() {
        let grace = std::time::Duration::from_millis(100);
        if tokio::time::timeout(grace, interrupts.any()).await.is_ok() {
            return Ok(Ran::interrupted_while_loading());
        }
    }
    let (project, loaded) = loaded.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    // `hm run STEP` with one pipeline: the word names a step, not a pipeline.
    let mut steps = args.steps.clone();
    let mut slug = args.pipeline.as_deref();
    if let ([only], Some(word)) = (loaded.envelope.pipelines.as_slice(), slug) {
        if only.slug != word {
            steps.insert(0, word.to_owned());
            slug = None;
        }
    }
    let pipeline = select(&loaded, slug)?;
    let mut plan = super::pipelines::plan_of(&loaded, pipeline)?;
    check_limits(&loaded, &plan)?;
    let selection = hm_ir::Selection {
        targets: steps,
        from: args.from.clone(),
        until: args.until.clone(),
    };
    if !selection.is_empty() {
        let selected = selection.apply(pipeline, &plan)?;
        plan = super::pipelines::plan_of(&loaded, &selected)?;
    }
    let mut only = None;
    if let Some(step) = &args.step {
        let (selected, key) = hm_ir::chain_to(pipeline, &plan, step)?;
        plan = super::pipelines::plan_of(&loaded, &selected)?;
        only = plan.steps.iter().position(|s| s.key() == key);
    }

    let config = super::config(Some(&project.root))?;
    let cache = cache_dir()?;
    let settings = RunSettings::resolve(args, &config, &plan, &project.root);
    tracing::debug!(
        pipeline = %plan.slug,
        steps = plan.steps.len(),
        backend = ?settings.backend,
        parallelism = settings.parallelism,
        network = ?settings.network,
        pull = ?settings.pull,
        cache = %cache.display(),
        scope = %settings.scope,
        remote = ?settings.remote,
        build = ?settings.build,
        refresh = settings.refresh,
        keep_going = settings.keep_going,
        limits = ?settings.limits,
        "run settings resolved"
    );
    let vm = backends.get(&cache, &settings).await?;
    let format = settings.format;
    let mut renderer: Box<dyn Renderer> = match format {
        _ if args.shell.is_some() => Box::new(super::shell::Status::new()),
        format => crate::output::renderer(format, args.logs),
    };
    if vm.name() == "sandbox" {
        let policy = match settings.pull {
            PullPolicy::Always if !first => PullPolicy::Missing,
            policy => policy,
        };
        let mut roots: Vec<String> = Vec::new();
        for step in plan.steps.iter().filter(|s| s.parent.is_none()) {
            if !roots.contains(&step.base_image) {
                roots.push(step.base_image.clone());
            }
        }
        let wanted = crate::pull::to_pull(&cache, &roots, policy)?;
        tracing::debug!(?policy, "base images {roots:?}; to pull: {}", wanted.len());
        if !wanted.is_empty() {
            let settings = crate::pull::settings(&config, None)?;
            let view = match format {
                Format::Json => crate::pull::View::Events,
                Format::Human => crate::pull::View::Human,
            };
            for (_, name) in wanted {
                pull_before_build(&cache, &name, &settings, view, interrupts, &mut *renderer).await?;
            }
        }
    }
    let backend = LocalBackend::new(settings.parallelism, vm.clone());
    let cache_settings = open_cache(&cache, &config, &settings)?;
    let run_id = hm_vm::fsutil::random_id(8);
    let info = RunInfo {
        id: run_id.clone(),
        pipeline: plan.slug.clone(),
        project: project.root.display().to_string(),
        started_ms: crate::history::now_ms(),
        status: None,
        exit_code: None,
        duration_ms: None,
        branch: args.branch.clone(),
        message: args.message.clone(),
    };
    let mut recorder = History::new(&cache).begin(info, config.history_runs, config.history_max_bytes);
    if let Some(recorder) = &recorder {
        recorder.save_plan(&plan);
    }
    tracing::debug!(run = %run_id, recorded = recorder.is_some(), "build starting");
    let (shell, mut shells) = super::shell::Front::new(args, &plan);
    let handle = backend.start(RunRequest {
        plan,
        source_root: project.root.clone(),
        source_exclude: source_exclude(&cache),
        source_index: Some(source_index(&cache, &project.root)),
        env: env.to_vec(),
        keep_going: settings.keep_going,
        run_id,
        cache: cache_settings,
        logs: recorder.as_ref().map(|r| StepLogs {
            dir: r.steps_dir(),
            limit: crate::history::STEP_LOG_LIMIT,
        }),
        shell,
        only,
        branch: args.branch.clone(),
        message: args.message.clone(),
        limits: settings.limits,
        volumes: Some(hm_exec::volumes::VolumeSettings {
            store: hm_vm::volumes::VolumeStore::new(&cache),
            scope: settings.scope.clone(),
            configured: settings.volumes.clone(),
        }),
    });

    let interrupter = handle.control.interrupter();
    let interrupted = interrupts.clone();
    let shell_open = shells.open_flag();
    // What `hm` says of an interrupt goes through the view (above the live
    // lines on a terminal) while it shows the build, else to stderr.
    let (notes, mut noted) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let signals = tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let count = interrupted.beyond(seen).await;
            // A shell has the terminal: its Ctrl-C is the shell's.
            if shell_open.load(Ordering::SeqCst) {
                interrupted.let_pass(count - seen);
                continue;
            }
            interrupter.interrupt();
            let note = if seen == 0 {
                "hm: interrupted; stopping every step and cleaning up..."
            } else {
                "hm: still cleaning up (mounts, processes, snapshots); this takes a moment"
            };
            if let Err(unsent) = notes.send(note) {
                say!("{}", unsent.0);
            }
            seen = count;
        }
    });

    let mut events = handle.events;
    let mut output_error = None;
    // The view's clock: what shows time passing is redrawn between events.
    let mut ticks = tokio::time::interval(crate::output::TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // Every event sent before a shell session is shown before it.
        let event = tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            Some(session) = shells.next() => {
                shells.serve(session, &mut *renderer).await;
                continue;
            }
            Some(note) = noted.recv() => {
                if !renderer.note(note).unwrap_or(false) {
                    say!("{note}");
                }
                continue;
            }
            _ = ticks.tick() => {
                if output_error.is_none() {
                    output_error = renderer.tick().err();
                }
                continue;
            }
        };
        if let Some(recorder) = &mut recorder {
            recorder.record(&event);
        }
        if output_error.is_none() {
            // Once stdout fails (a closed pipe, a full device), nothing more
            // is written, but the build goes on to its end and cleans up:
            // what it stores in the cache stays useful (docs/decisions.md).
            output_error = renderer.event(&event).err();
            if events.is_empty() && output_error.is_none() {
                output_error = renderer.flush().err();
            }
        }
    }
    if output_error.is_none() {
        output_error = renderer.flush().err();
    }
    // Dropping the renderer flushes again, and ignores what that finds.
    drop(renderer);
    // Notes from here on go to stderr.
    drop(noted);
    let outcome = handle.control.wait().await;
    signals.abort();
    let outcome = outcome?;
    tracing::debug!(
        status = ?outcome.status,
        exit_code = outcome.exit_code,
        duration_ms = outcome.duration_ms,
        "build ended"
    );
    match output_error {
        // Nobody reading any more is not a failure: the build's own code
        // stands.
        Some(err) if !crate::output::is_closed(&err) => Err(CliError::Output(err)),
        closed => Ok(Ran {
            exit_code: shells.exit_code(outcome.exit_code),
            stdout_closed: closed.is_some(),
        }),
    }
}

/// Refuses a step whose `runner_args` set a limit that cannot be used,
/// naming the pipeline's file and the step, before anything runs.
fn check_limits(loaded: &hm_dsl::Loaded, plan: &hm_ir::Plan) -> Result<(), CliError> {
    for step in &plan.steps {
        if let Err(source) = hm_vm::Limits::defaults().with_runner_args(step.node.step.runner_args.as_ref()) {
            let at = loaded
                .pipeline(&plan.slug)
                .map(|(_, at)| at.clone())
                .unwrap_or_default();
            return Err(CliError::StepLimits(Box::new(crate::error::StepLimitsError {
                at,
                slug: plan.slug.clone(),
                step: step.key().to_owned(),
                source,
            })));
        }
    }
    Ok(())
}

/// The directories under the project that are not source: the cache.
pub(super) fn source_exclude(cache: &Path) -> Vec<PathBuf> {
    std::fs::canonicalize(cache).into_iter().collect()
}

/// Where the cache keeps the source indexes, one file per project.
pub(super) const SOURCE_INDEXES: &str = "index";

/// The source index file of the project at `root`: what the last scan
/// learnt of each file, so that the next one reads only what changed.
pub(super) fn source_index(cache: &Path, root: &Path) -> PathBuf {
    cache.join(SOURCE_INDEXES).join(hm_exec::index::file_name(root))
}

/// SIGINT and SIGTERM, counted from the moment `hm run` listens. Every
/// phase of a run (loading, pulling, the build, waiting for changes) waits
/// on the count, so none of them has to own the signal streams. Any
/// interrupt ends `hm run`, but those a run lets pass to a shell it opened.
#[derive(Clone)]
struct Interrupts {
    count: tokio::sync::watch::Receiver<u32>,
    /// How many were let pass: they were a shell's, not `hm`'s.
    passed: Arc<AtomicU32>,
}

impl Interrupts {
    /// Listens from now on (where the signals cannot be listened to, no
    /// interrupt ever arrives).
    fn listen() -> Self {
        let (sender, count) = tokio::sync::watch::channel(0);
        if let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    sender.send_modify(|n| *n += 1);
                }
            });
        }
        Interrupts {
            count,
            passed: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Whether interrupts are listened to.
    fn listening(&self) -> bool {
        self.count.has_changed().is_ok()
    }

    /// Whether one arrived (and was not let pass).
    fn arrived(&self) -> bool {
        *self.count.borrow() > self.passed.load(Ordering::SeqCst)
    }

    /// Waits until more than `seen` interrupts arrived (not counting those
    /// let pass); how many did.
    async fn beyond(&self, seen: u32) -> u32 {
        let mut count = self.count.clone();
        let passed = &self.passed;
        let ours = |n: u32| n.saturating_sub(passed.load(Ordering::SeqCst));
        let arrived = count.wait_for(|n| ours(*n) > seen).await.map(|n| ours(*n));
        match arrived {
            Ok(n) => n,
            // Nobody listens: no interrupt will come.
            Err(_) => std::future::pending().await,
        }
    }

    /// Waits for the first interrupt (at once if one arrived already).
    async fn any(&self) {
        self.beyond(0).await;
    }

    /// Lets `n` interrupts pass: they were meant for a shell.
    fn let_pass(&self, n: u32) {
        self.passed.fetch_add(n, Ordering::SeqCst);
    }
}

/// The VM backend of this `hm`'s runs: built for the first, kept while
/// what it is built from stays the same (a run of `--watch` may reload a
/// changed configuration), shut down once, at the end.
#[derive(Default)]
struct Backends {
    current: Option<(BackendKey, Arc<dyn VmBackend>)>,
}

/// What a VM backend is built from.
#[derive(Debug, Clone, PartialEq)]
struct BackendKey {
    name: BackendName,
    cache: PathBuf,
    scope: String,
    network: hm_vm::Network,
}

impl Backends {
    /// The backend for a run with `settings`; a new one says its notes.
    async fn get(&mut self, cache: &Path, settings: &RunSettings) -> Result<Arc<dyn VmBackend>, CliError> {
        let key = BackendKey {
            name: settings.backend,
            cache: cache.to_owned(),
            scope: settings.scope.clone(),
            network: settings.network,
        };
        if let Some((current, vm)) = &self.current {
            if *current == key {
                return Ok(vm.clone());
            }
        }
        let vm = super::backend(super::BackendSpec {
            name: settings.backend,
            cache_dir: cache,
            project: settings.scope.clone(),
            network: settings.network,
        })?;
        for note in vm.notes() {
            say!("note: {note}");
        }
        // The one it replaces holds nothing between runs but its session.
        if let Some((_, old)) = self.current.replace((key, vm.clone())) {
            let _ = old.shutdown().await;
        }
        Ok(vm)
    }

    /// Shuts the backend down (what any run left is torn down).
    async fn shutdown(&mut self) {
        if let Some((_, vm)) = self.current.take() {
            let _ = vm.shutdown().await;
        }
    }
}

/// Pulls one image before the build, its events through `renderer`; an
/// interrupt stops it (exit 130, nothing of it stored).
async fn pull_before_build(
    cache: &std::path::Path,
    name: &hm_vm::oci::ImageName,
    settings: &hm_vm::oci::PullSettings,
    view: crate::pull::View,
    interrupts: &Interrupts,
    renderer: &mut dyn Renderer,
) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let pull = crate::pull::pull(cache, name, settings, view, Some(events_tx), stop.clone());
    tokio::pin!(pull);
    let interrupted = interrupts.any();
    tokio::pin!(interrupted);
    let mut said = false;
    let result = loop {
        tokio::select! {
            result = &mut pull => break result,
            Some(event) = events_rx.recv() => {
                let _ = renderer.event(&event).and_then(|()| renderer.flush());
            }
            () = &mut interrupted, if !said => {
                said = true;
                stop.store(true, Ordering::SeqCst);
                say!("hm: interrupted; removing what the pull stored so far...");
            }
        }
    };
    while let Ok(event) = events_rx.try_recv() {
        let _ = renderer.event(&event);
    }
    let _ = renderer.flush();
    result.map(|_| ())
}

/// The snapshot cache of this run; without a usable registry the build
/// runs uncached and says so. A remote cache that cannot be named or
/// authenticated for is bad configuration (exit 2).
pub(super) fn open_cache(
    dir: &std::path::Path,
    config: &Config,
    settings: &RunSettings,
) -> Result<Option<CacheSettings>, CliError> {
    let remote = match &settings.remote {
        Some(_) if settings.backend == BackendName::Docker => {
            say!("note: the remote cache is used on the sandbox backend only; this docker run uses the local cache");
            None
        }
        Some((url, mode)) => {
            let pull = crate::pull::settings(config, None)?;
            let cache = hm_vm::oci::remote::RemoteCache::new(url, &pull).map_err(|err| CliError::BadArgument {
                flag: "--cache-remote-url",
                message: err.to_string(),
            })?;
            Some(hm_exec::remote::RemoteSettings {
                cache: Arc::new(cache),
                read: true,
                write: *mode == crate::cli::RemoteMode::Write,
            })
        }
        None => None,
    };
    let registry = match Registry::open(dir) {
        Ok(registry) => registry,
        Err(err) => {
            say!(
                "warning: running without the cache: {}",
                crate::error::chain(&CliError::from(err))
            );
            return Ok(None);
        }
    };
    if registry.rebuilt() {
        say!(
            "warning: the cache registry was damaged (or written by another version of hm) and has been reset; every step runs again"
        );
    }
    Ok(Some(CacheSettings {
        registry: Arc::new(registry),
        bounds: config.bounds(),
        scope: settings.scope.clone(),
        refresh: settings.refresh,
        host_env: Arc::new(crate::host::environment()),
        orphan_interval: crate::host::orphan_grace(),
        remote,
        build: settings.build.clone(),
    }))
}
