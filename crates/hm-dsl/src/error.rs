use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a project something was defined or went wrong: a file relative
/// to the project root, and the line and column (1-based) where known.
/// Shown as `path:line:col`, the form editors and terminals follow.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "LocationWire")]
pub struct Location {
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Location {
    /// The whole of `file`, no line.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
            column: None,
        }
    }

    /// `file` at `line` and `column` (1-based).
    pub fn at(file: impl Into<PathBuf>, line: u32, column: u32) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: Some(column),
        }
    }

    /// The file, relative to the project root.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// A location as the SDKs' renderers write it: a file name alone, or
/// `{"file", "line", "column"}`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LocationWire {
    File(PathBuf),
    At {
        file: PathBuf,
        #[serde(default)]
        line: Option<u32>,
        #[serde(default)]
        column: Option<u32>,
    },
}

impl From<LocationWire> for Location {
    fn from(wire: LocationWire) -> Self {
        match wire {
            LocationWire::File(file) => Location::file(file),
            LocationWire::At { file, line, column } => Location { file, line, column },
        }
    }
}

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
    #[error("{at}: {message}{}", field.as_ref().map(|a| format!(" (at `{a}`)")).unwrap_or_default())]
    Parse {
        at: Location,
        /// The JSON path of the offending value, when known.
        field: Option<String>,
        message: String,
    },
    #[error("{}: unsupported `schema_version` `{found}` (this hm reads `{}`)", file.display(), hm_ir::ENVELOPE_SCHEMA_VERSION)]
    SchemaVersion { file: PathBuf, found: String },
    #[error("{}: evaluating Python pipelines needs `python3` {}.{} or newer, and `{}` was not found; install Python or set HM_PYTHON to an interpreter", file.display(), crate::MIN_PYTHON.0, crate::MIN_PYTHON.1, python.display())]
    NoPython { file: PathBuf, python: PathBuf },
    #[error("{}: evaluating Python pipelines needs Python {}.{} or newer, and `{}` is Python {version}; install a newer one or set HM_PYTHON to it", file.display(), crate::MIN_PYTHON.0, crate::MIN_PYTHON.1, python.display())]
    PythonTooOld {
        file: PathBuf,
        python: PathBuf,
        version: String,
    },
    #[error("{at}: {what}\n{traceback}")]
    Evaluation {
        at: Location,
        /// "the pipeline file has a syntax error", "... raised an error".
        what: &'static str,
        traceback: String,
    },
    #[error("{}: `{}` could not evaluate the pipeline files: {detail}", file.display(), python.display())]
    PythonFailed {
        file: PathBuf,
        python: PathBuf,
        detail: String,
    },
    #[error("{}: evaluating Python pipelines needs a cache directory for the SDK: set HM_CACHE_DIR, XDG_CACHE_HOME or HOME", file.display())]
    NoSdkDir { file: PathBuf },
    #[error("{second}: pipeline `{slug}` is defined twice (first at {first})")]
    DuplicateSlug {
        slug: String,
        first: Location,
        second: Location,
    },
    #[error("{at}: {source}")]
    Invalid {
        at: Location,
        #[source]
        source: Box<hm_ir::ValidationError>,
    },
}
