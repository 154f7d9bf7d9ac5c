use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hm_exec::{CacheSettings, ExecutionBackend, LocalBackend, RunRequest, StepLogs};
use hm_render::{JsonRenderer, LogsRenderer, Renderer, Style};
use hm_vm::Registry;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::pipelines::select;
use super::{cache_dir, load};
use crate::cli::{Format, RunArgs};
use crate::config::Config;
use crate::error::CliError;
use crate::history::{History, RunInfo};
use crate::settings::RunSettings;

/// What `hm run` says and returns when interrupted before the first step.
fn interrupted_while_loading() -> i32 {
    say!("hm: interrupted while loading the pipelines; nothing ran");
    hm_exec::exit_codes::INTERRUPTED
}

/// `hm run`.
pub async fn run(args: RunArgs) -> Result<i32, CliError> {
    // Handled from the start: an interrupt while the pipeline loads stops
    // the build before its first step (exit 130), never kills `hm` midway.
    let mut signals = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    if crate::early::interrupted() {
        return Ok(interrupted_while_loading());
    }
    if args.cloud {
        return Err(CliError::Cloud);
    }
    let env = args
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if hm_ir::is_env_name(k) => Ok((k.to_owned(), v.to_owned())),
            Some((k, _)) if !k.is_empty() => Err(CliError::BadEnvName {
                arg: kv.clone(),
                name: k.to_owned(),
            }),
            _ => Err(CliError::BadEnv(kv.clone())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Loading runs beside the signals: a pipeline file that hangs (or a
    // Ctrl-C that reached Python too) is still an interrupt, exit 130. The
    // evaluator dies with `hm` (its parent-death signal).
    let project_args = args.project.clone();
    let loading = tokio::task::spawn_blocking(move || load(&project_args));
    let loaded = match &mut signals {
        (Ok(int), Ok(term)) => {
            let loaded = tokio::select! {
                biased;
                _ = int.recv() => return Ok(interrupted_while_loading()),
                _ = term.recv() => return Ok(interrupted_while_loading()),
                loaded = loading => loaded,
            };
            // A Ctrl-C reaches `python3` too, which may end (and fail the
            // load) before `hm` has taken the signal in.
            if matches!(loaded, Ok(Err(_))) {
                let grace = std::time::Duration::from_millis(100);
                let signalled = async {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                };
                if tokio::time::timeout(grace, signalled).await.is_ok() {
                    return Ok(interrupted_while_loading());
                }
            }
            loaded
        }
        _ => loading.await,
    };
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
    let invalid = |source| {
        let at = loaded
            .pipeline(&pipeline.slug)
            .map(|(_, at)| at.clone())
            .unwrap_or_default();
        CliError::Load(hm_dsl::LoadError::Invalid {
            at,
            source: Box::new(source),
        })
    };
    let mut plan = hm_ir::Plan::new(pipeline).map_err(invalid)?;
    let selection = hm_ir::Selection {
        targets: steps,
        from: args.from.clone(),
        until: args.until.clone(),
    };
    if !selection.is_empty() {
        plan = hm_ir::Plan::new(&selection.apply(pipeline, &plan)?).map_err(invalid)?;
    }

    let config = super::config(Some(&project.root))?;
    let cache = cache_dir()?;
    let settings = RunSettings::resolve(&args, &config, &plan, &project.root);
    let vm = super::backend(super::BackendSpec {
        name: settings.backend,
        cache_dir: &cache,
        project: settings.scope.clone(),
        config: &config,
        network: settings.network,
    })?;
    if vm.name() == "sandbox" && (config.memory.is_some() || config.millicpus.is_some()) {
        say!("warning: memory and CPU limits are applied by the docker backend only; the sandbox runs without them");
    }
    for note in vm.notes() {
        say!("note: {note}");
    }
    let format = settings.format;
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut renderer: Box<dyn Renderer> = match format {
        _ if args.shell.is_some() => Box::new(super::shell::Status::new()),
        Format::Json => Box::new(JsonRenderer::new(out)),
        Format::Human => Box::new(LogsRenderer::new(out, Style::detect(terminal, crate::host::no_color()))),
    };
    if vm.name() == "sandbox" {
        let policy = settings.pull;
        let mut roots: Vec<String> = Vec::new();
        for step in plan.steps.iter().filter(|s| s.parent.is_none()) {
            if !roots.contains(&step.base_image) {
                roots.push(step.base_image.clone());
            }
        }
        let wanted = crate::pull::to_pull(&cache, &roots, policy)?;
        if !wanted.is_empty() {
            let settings = crate::pull::settings(&config, None)?;
            let view = match format {
                Format::Json => crate::pull::View::Events,
                Format::Human => crate::pull::View::Human,
            };
            for (_, name) in wanted {
                pull_before_build(&cache, &name, &settings, view, &mut signals, &mut *renderer).await?;
            }
        }
    }
    let backend = LocalBackend::new(settings.parallelism, vm.clone());
    let cache_settings = open_cache(&cache, &config, &settings);
    let run_id = hm_vm::fsutil::random_id(8);
    let info = RunInfo {
        id: run_id.clone(),
        pipeline: plan.slug.clone(),
        project: project.root.display().to_string(),
        started_ms: crate::history::now_ms(),
        status: None,
        exit_code: None,
        duration_ms: None,
    };
    let mut recorder = History::new(&cache).begin(info, config.history_runs, config.history_max_bytes);
    if let Some(recorder) = &recorder {
        recorder.save_plan(&plan);
    }
    let (shell, mut shells) = super::shell::Front::new(&args, &plan);
    let handle = backend.start(RunRequest {
        plan,
        source_root: project.root.clone(),
        source_exclude: std::fs::canonicalize(&cache).into_iter().collect(),
        env,
        keep_going: settings.keep_going,
        run_id,
        cache: cache_settings,
        logs: recorder.as_ref().map(|r| StepLogs {
            dir: r.steps_dir(),
            limit: crate::history::STEP_LOG_LIMIT,
        }),
        shell,
    });

    let interrupter = handle.control.interrupter();
    let shell_open = shells.open_flag();
    let signals = tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = signals else {
            return;
        };
        let mut count = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            // A shell has the terminal: its Ctrl-C is the shell's.
            if shell_open.load(Ordering::SeqCst) {
                continue;
            }
            count += 1;
            interrupter.interrupt();
            if count == 1 {
                say!("hm: interrupted; stopping every step and cleaning up...");
            } else {
                say!("hm: still cleaning up (mounts, processes, snapshots); this takes a moment");
            }
        }
    });

    let mut events = handle.events;
    let mut output_error = None;
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
    let outcome = handle.control.wait().await;
    signals.abort();
    let _ = vm.shutdown().await;
    let outcome = outcome?;
    // Nobody reading any more is not a failure: the build's own code stands.
    if let Some(err) = output_error.filter(|e| !crate::output::is_closed(e)) {
        return Err(CliError::Output(err));
    }
    Ok(shells.exit_code(outcome.exit_code))
}

/// Pulls one image before the build, its events through `renderer`; an
/// interrupt stops it (exit 130, nothing of it stored).
async fn pull_before_build(
    cache: &std::path::Path,
    name: &hm_vm::oci::ImageName,
    settings: &hm_vm::oci::PullSettings,
    view: crate::pull::View,
    signals: &mut (std::io::Result<Signal>, std::io::Result<Signal>),
    renderer: &mut dyn Renderer,
) -> Result<(), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let pull = crate::pull::pull(cache, name, settings, view, Some(events_tx), stop.clone());
    tokio::pin!(pull);
    let interrupted = async {
        match signals {
            (Ok(int), Ok(term)) => tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            },
            _ => std::future::pending().await,
        }
    };
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
/// runs uncached and says so.
fn open_cache(dir: &std::path::Path, config: &Config, settings: &RunSettings) -> Option<CacheSettings> {
    let registry = match Registry::open(dir) {
        Ok(registry) => registry,
        Err(err) => {
            say!(
                "warning: running without the cache: {}",
                crate::error::chain(&CliError::from(err))
            );
            return None;
        }
    };
    if registry.rebuilt() {
        say!(
            "warning: the cache registry was damaged (or written by another version of hm) and has been reset; every step runs again"
        );
    }
    Some(CacheSettings {
        registry: Arc::new(registry),
        bounds: config.bounds(),
        scope: settings.scope.clone(),
        refresh: settings.refresh,
        host_env: Arc::new(crate::host::environment()),
    })
}
