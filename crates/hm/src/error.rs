//! Errors of the CLI, each mapped to its exit code in one place.

use hm_exec::exit_codes;

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] hm_dsl::LoadError),
    #[error("unknown pipeline `{slug}`; the project has: {}", list(available))]
    UnknownPipeline { slug: String, available: Vec<String> },
    #[error(transparent)]
    UnknownStep(#[from] hm_ir::UnknownStep),
    #[error("the project has several pipelines; name one: {}", list(.0))]
    AmbiguousPipeline(Vec<String>),
    #[error("the project has no pipelines; add a file to `.hm/`")]
    NoPipelines,
    #[error("invalid `-e {0}`: expected KEY=VALUE")]
    BadEnv(String),
    #[error(
        "invalid `-e {arg}`: `{name}` is not a variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadEnvName { arg: String, name: String },
    #[error("the cache directory is unknown: set HM_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error(transparent)]
    CacheDir(#[from] hm_vm::CacheDirError),
    #[error("cannot find the hm executable for the sandbox helper")]
    NoExe(#[source] std::io::Error),
    /// `what`: the flag or command that asked for it (`--org`, `hm cloud`).
    #[error("`{what}` is for Harmont's hosted service, which is not part of this hm: it runs everything locally")]
    Cloud { what: String },
    #[error(transparent)]
    Unavailable(#[from] hm_vm::BackendUnavailable),
    #[error(transparent)]
    Image(#[from] hm_vm::ImageError),
    /// Boxed: a pull's error carries its causes.
    #[error(transparent)]
    Pull(Box<hm_vm::oci::PullError>),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid `{flag}`: {message}")]
    BadArgument { flag: &'static str, message: String },
    /// Boxed: it names the file, the pipeline and the step.
    #[error(transparent)]
    StepLimits(Box<StepLimitsError>),
    #[error(transparent)]
    Registry(#[from] hm_vm::RegistryError),
    #[error("the build failed to run")]
    Run(#[source] hm_exec::RunError),
    #[error("`{}` exists; pass --force to overwrite it", .0.display())]
    Exists(std::path::PathBuf),
    #[error("cannot write `{}`", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Output(#[source] std::io::Error),
    #[error("hm shell needs a terminal: its standard input is not one; run it in an interactive terminal")]
    NoTerminal,
    #[error("the shell in `{step}` failed")]
    Shell {
        step: String,
        #[source]
        source: hm_vm::VmError,
    },
}

/// A step's `runner_args` set a limit that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{at}: pipeline `{slug}`, step `{}`: {source}", hm_ir::printable(step))]
pub struct StepLimitsError {
    pub at: hm_dsl::Location,
    pub slug: String,
    pub step: String,
    #[source]
    pub source: hm_vm::limits::LimitError,
}

fn list(items: &[String]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

impl CliError {
    /// The exit code this error ends `hm` with.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Load(_)
            | CliError::UnknownPipeline { .. }
            | CliError::UnknownStep(_)
            | CliError::AmbiguousPipeline(_)
            | CliError::NoPipelines
            | CliError::BadEnv(_)
            | CliError::BadEnvName { .. }
            | CliError::NoCacheDir
            | CliError::CacheDir(_)
            | CliError::Config(_)
            | CliError::BadArgument { .. }
            | CliError::StepLimits(_)
            | CliError::Exists(_)
            | CliError::NoTerminal
            | CliError::Cloud { .. } => exit_codes::USAGE,
            CliError::Image(
                hm_vm::ImageError::InvalidName(_)
                | hm_vm::ImageError::NotFound(_)
                | hm_vm::ImageError::NotARootfs(_)
                | hm_vm::ImageError::BadImage { .. }
                | hm_vm::ImageError::Missing(_),
            ) => exit_codes::USAGE,
            CliError::Image(hm_vm::ImageError::Interrupted) => exit_codes::INTERRUPTED,
            CliError::Pull(err) => match **err {
                hm_vm::oci::PullError::BadReference { .. } => exit_codes::USAGE,
                hm_vm::oci::PullError::Interrupted { .. } => exit_codes::INTERRUPTED,
                _ => exit_codes::UNAVAILABLE,
            },
            CliError::Unavailable(_) => exit_codes::UNAVAILABLE,
            CliError::Run(hm_exec::RunError::Unavailable(_)) => exit_codes::UNAVAILABLE,
            CliError::NoExe(_)
            | CliError::Image(_)
            | CliError::Run(_)
            | CliError::Output(_)
            | CliError::Io { .. }
            | CliError::Shell { .. }
            | CliError::Registry(_) => exit_codes::FAILED,
        }
    }
}

impl From<hm_exec::RunError> for CliError {
    fn from(err: hm_exec::RunError) -> Self {
        match err {
            // The build is over: nothing else holds the reason any more.
            hm_exec::RunError::Unavailable(e) => match std::sync::Arc::try_unwrap(e) {
                Ok(e) => CliError::Unavailable(e),
                Err(e) => CliError::Run(hm_exec::RunError::Unavailable(e)),
            },
            other => CliError::Run(other),
        }
    }
}

/// Prints `error: ...` and each cause on its own line.
pub fn report(err: &CliError) {
    say!("error: {}", chain(err));
}

/// The message and each cause on its own line, leaving out causes the
/// message already quotes.
pub fn chain(err: &CliError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!("\n  caused by: {cause_text}"));
        }
        source = cause.source();
    }
    text
}
