//! One function per subcommand.

mod cache;
mod export;
mod image;
mod init;
mod pipelines;
mod plugin;
mod report;
mod run;
mod runs;
mod save;
mod shell;

pub use image::format_size;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hm_exec::exit_codes;
use hm_vm::{DockerBackend, DockerConfig, SandboxBackend, SandboxConfig, VmBackend};

use crate::cli::{BackendName, Command, ProjectArgs};
use crate::error::CliError;

/// Runs a subcommand; returns the exit code of a command that did its job.
pub async fn dispatch(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Run(args) => run::run(*args).await,
        Command::Shell(args) => shell::shell(args).await,
        Command::Pipelines(project) => pipelines::pipelines(&project),
        Command::Render { slug, project } => pipelines::render(slug.as_deref(), &project),
        Command::Export(args) => export::export(args),
        Command::Image(command) => image::image(command).await,
        Command::Cache(command) => cache::cache(command).await,
        Command::Init(args) => init::init(args),
        Command::Version => {
            crate::output::print(&format!("hm {}\n", env!("CARGO_PKG_VERSION")))?;
            Ok(exit_codes::PASSED)
        }
        Command::Runs { format } => runs::runs(format),
        Command::Logs { run, step, format } => runs::logs(run.as_deref(), step.as_deref(), format),
        Command::Report { run } => report::report(run.as_deref()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <crate::cli::Cli as clap::CommandFactory>::command(),
                "hm",
                &mut script,
            );
            crate::output::print(&String::from_utf8_lossy(&script))?;
            Ok(exit_codes::PASSED)
        }
        Command::Plugin(command) => plugin::plugin(command),
        Command::Cloud { rest } => {
            let what = match rest.first() {
                Some(verb) if !verb.starts_with('-') => format!("hm cloud {verb}"),
                _ => "hm cloud".to_owned(),
            };
            Err(CliError::Cloud { what })
        }
    }
}

/// Finds and loads the project.
fn load(project: &ProjectArgs) -> Result<(hm_dsl::Project, hm_dsl::Loaded), CliError> {
    let start = match &project.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let project = hm_dsl::Project::find(&start)?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        let files = project.pipeline_files().unwrap_or_default();
        let files: Vec<_> = files.iter().filter_map(|f| f.file_name()).collect();
        tracing::debug!(root = %project.root.display(), "project found; pipeline files: {files:?}");
    }
    let cache = crate::host::cache_dir();
    if let Some(cache) = &cache {
        // The SDKs run from here: it must be ours alone before they do.
        private(cache)?;
        sweep(cache);
    }
    let python =
        hm_dsl::EvalOptions::new(crate::host::python(), cache.as_deref()).with_env(crate::host::pipeline_env());
    let started = std::time::Instant::now();
    let loaded = project.load(&python)?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        let pipelines: Vec<String> = (loaded.envelope.pipelines.iter().zip(&loaded.sources))
            .map(|(pipeline, at)| format!("{} ({})", pipeline.slug, at.file.display()))
            .collect();
        let took = started.elapsed();
        tracing::debug!("pipeline files evaluated in {took:?}: {}", pipelines.join(", "));
    }
    if let Some(left_out) = &loaded.left_out {
        say!("note: {left_out}");
    }
    Ok((project, loaded))
}

/// The configuration for a project (or none), its notes said on stderr.
fn config(project_root: Option<&std::path::Path>) -> Result<crate::config::Config, CliError> {
    let config = crate::config::Config::load(project_root)?;
    tracing::debug!("configuration (files, then HM_* variables): {config:?}");
    for note in &config.notes {
        say!("note: {note}");
    }
    Ok(config)
}

/// The cache root, or an error saying how to set one; it is made private
/// (or refused), and what killed `hm`s left in it is removed first.
fn cache_dir() -> Result<PathBuf, CliError> {
    let dir = crate::host::cache_dir().ok_or(CliError::NoCacheDir)?;
    tracing::debug!(dir = %dir.display(), "cache directory");
    private(&dir)?;
    sweep(&dir);
    Ok(dir)
}

/// Creates the cache `0700`, or checks that it is its owner's alone
/// (repairing a readable one with a warning), once per command.
fn private(cache: &std::path::Path) -> Result<(), CliError> {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if CHECKED.get().is_some() {
        return Ok(());
    }
    if let hm_vm::CacheDirState::Repaired { was } = hm_vm::ensure_private(cache)? {
        say!(
            "warning: other users could read the cache directory `{}` (mode {was:04o}); it is private now (0700)",
            cache.display()
        );
    }
    let _ = CHECKED.set(());
    Ok(())
}

/// Removes the temporary directories and files of `hm`s that are gone
/// (docs/decisions.md lists them), once per command.
fn sweep(cache: &std::path::Path) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        hm_vm::collect_leftovers(cache);
        hm_dsl::python::remove_interrupted_copies(&cache.join("sdk"));
    });
}

/// How to build a VM backend.
struct BackendSpec<'a> {
    name: BackendName,
    cache_dir: &'a Path,
    /// The project, for the docker backend's labels.
    project: String,
    network: hm_vm::Network,
}

/// The VM backend `spec` names, with every setting it takes.
fn backend(spec: BackendSpec<'_>) -> Result<Arc<dyn VmBackend>, CliError> {
    tracing::debug!(
        backend = ?spec.name,
        network = ?spec.network,
        cache = %spec.cache_dir.display(),
        "VM backend"
    );
    Ok(match spec.name {
        BackendName::Sandbox => Arc::new(SandboxBackend::with_network(
            SandboxConfig {
                cache_dir: spec.cache_dir.to_owned(),
                helper: std::env::current_exe().map_err(CliError::NoExe)?,
                max_layers: crate::host::max_layers(),
                orphan_grace: crate::host::orphan_grace(),
                search_path: crate::host::search_path(),
            },
            spec.network,
        )),
        BackendName::Docker => Arc::new(
            DockerBackend::with_network(
                DockerConfig {
                    cache_dir: spec.cache_dir.to_owned(),
                    project: spec.project,
                    daemon: crate::host::docker_daemon(),
                    orphan_grace: crate::host::orphan_grace(),
                    client_config: crate::host::docker_client_config(),
                },
                spec.network,
            )
            .on_pull(Arc::new(|name| say!("pulling image `{name}`...")))
            .on_note(Arc::new(|note| say!("note: {note}"))),
        ),
    })
}

/// Prints JSON, pretty, with a final newline.
fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| CliError::Output(e.into()))?;
    text.push('\n');
    crate::output::print(&text)
}
