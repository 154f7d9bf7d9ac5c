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
    Json {
        file: PathBuf,
        line: usize,
        column: usize,
        /// The JSON path of the offending value, when known.
        at: Option<String>,
        message: String,
    },
    #[error("`{}`: unsupported `schema_version` `{found}` (this hm reads `{}`)", file.display(), hm_ir::ENVELOPE_SCHEMA_VERSION)]
    SchemaVersion { file: PathBuf, found: String },
    #[error("`{}`: {language} pipeline files are not supported by this hm yet; use a `.json` envelope", file.display())]
    Unsupported { file: PathBuf, language: &'static str },
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
