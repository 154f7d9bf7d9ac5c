use std::path::PathBuf;

/// Why a project's pipelines could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no `.hm/` folder in `{}` or any parent directory; create one with `hm init`", start.display())]
    NoProject { start: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`:{line}:{column}: {message}{}", file.display(), at.as_ref().map(|a| format!(" (at `{a}`)")).unwrap_or_default())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        /// The JSON path of the offending value, when known.
        at: Option<String>,
        message: String,
    },
    #[error("`{}`: unsupported `schema_version` `{found}` (this hm reads `{}`)", file.display(), hm_ir::ENVELOPE_SCHEMA_VERSION)]
    SchemaVersion { file: PathBuf, found: String },
    #[error("`{}`: evaluating Python pipelines needs `python3` {}.{} or newer, and `{}` was not found; install Python or set HM_PYTHON to an interpreter", file.display(), crate::MIN_PYTHON.0, crate::MIN_PYTHON.1, python.display())]
    NoPython { file: PathBuf, python: PathBuf },
    #[error("`{}`: evaluating Python pipelines needs Python {}.{} or newer, and `{}` is Python {version}; install a newer one or set HM_PYTHON to it", file.display(), crate::MIN_PYTHON.0, crate::MIN_PYTHON.1, python.display())]
    PythonTooOld {
        file: PathBuf,
        python: PathBuf,
        version: String,
    },
    #[error("`{}`: {what}\n{traceback}", file.display())]
    Evaluation {
        file: PathBuf,
        /// "the pipeline file has a syntax error", "... raised an error".
        what: &'static str,
        traceback: String,
    },
    #[error("`{}`: `{}` could not evaluate the pipeline files: {detail}", file.display(), python.display())]
    PythonFailed {
        file: PathBuf,
        python: PathBuf,
        detail: String,
    },
    #[error("`{}`: evaluating Python pipelines needs a cache directory for the SDK: set HM_CACHE_DIR, XDG_CACHE_HOME or HOME", file.display())]
    NoSdkDir { file: PathBuf },
    #[error("pipeline `{slug}` is defined twice: in `{}` and in `{}`", first.display(), second.display())]
    DuplicateSlug {
        slug: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("`{}`: {source}", file.display())]
    Invalid {
        file: PathBuf,
        #[source]
        source: hm_ir::ValidationError,
    },
}
