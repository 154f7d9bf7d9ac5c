//! Finds a project's `.hm/` folder and evaluates its pipeline files into one
//! [`hm_ir::Envelope`].
//!
//! The entry points are [`Project::find`] and [`Project::load`], which
//! returns a [`Loaded`] envelope that remembers which file every pipeline
//! came from. Every pipeline is validated here, so a caller never sees an
//! envelope that cannot be planned. JSON files are read directly, Python
//! files are evaluated by the system `python3` with the SDK this crate
//! embeds ([`python`]), TypeScript and JavaScript files by an embedded
//! JavaScript engine with the TypeScript SDK ([`typescript`]).

mod error;
mod json;
pub mod python;
mod typescript;
#[doc(hidden)]
pub use typescript::{run_script_tests, TestFailure, TestOutcome};

use std::path::{Path, PathBuf};

use hm_ir::{Envelope, Pipeline};

pub use error::{LoadError, Location};
pub use python::{EvalOptions, MIN_PYTHON};

/// The folder, under a project root, that holds pipeline files.
pub const HM_DIR: &str = ".hm";

/// A project: a directory with a `.hm/` folder.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project root (the directory that contains `.hm/`), canonical.
    pub root: PathBuf,
}

/// Every pipeline of a project, with the file each came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub envelope: Envelope,
    /// `sources[i]` is where `envelope.pipelines[i]` was defined: its file,
    /// relative to the project root, and the line and column where the SDK knows them.
    pub sources: Vec<Location>,
    /// Pipeline files of another language that were not evaluated (see
    /// [`Project::load`]). Callers say so in one line: its `Display`.
    pub left_out: Option<LeftOut>,
}

/// Pipeline files left out because `.hm/` holds more than one language and
/// Harmont evaluates one per project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// The language that was evaluated: `TypeScript` or `Python`.
    pub evaluated: &'static str,
    /// The files left out, relative to the project root.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        write!(
            f,
            "`.hm/` holds pipeline files in more than one language; as Harmont does, hm evaluates the {} ones and leaves out {}",
            self.evaluated,
            files.join(", ")
        )
    }
}

impl Loaded {
    /// The pipeline with this slug and where it was defined.
    pub fn pipeline(&self, slug: &str) -> Option<(&Pipeline, &Location)> {
        let idx = self.envelope.pipelines.iter().position(|p| p.slug == slug)?;
        Some((&self.envelope.pipelines[idx], &self.sources[idx]))
    }
}

/// The kinds of pipeline file, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    Json,
    Python,
    TypeScript,
    JavaScript,
}

impl Language {
    fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "json" => Some(Self::Json),
            "py" => Some(Self::Python),
            "ts" => Some(Self::TypeScript),
            "js" => Some(Self::JavaScript),
            _ => None,
        }
    }
}

impl Project {
    /// The nearest directory, from `start` upwards, that has a `.hm/` folder.
    pub fn find(start: &Path) -> Result<Self, LoadError> {
        let start = start.canonicalize().map_err(|source| LoadError::Io {
            path: start.to_owned(),
            source,
        })?;
        start
            .ancestors()
            .find(|dir| dir.join(HM_DIR).is_dir())
            .map(|root| Project { root: root.to_owned() })
            .ok_or(LoadError::NoProject { start })
    }

    /// The `.hm/` folder.
    pub fn hm_dir(&self) -> PathBuf {
        self.root.join(HM_DIR)
    }

    /// The pipeline files directly in `.hm/`, sorted by name.
    pub fn pipeline_files(&self) -> Result<Vec<PathBuf>, LoadError> {
        let dir = self.hm_dir();
        let io = |source| LoadError::Io {
            path: dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if Language::of(&path).is_some() && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Evaluates the pipeline files, merges their pipelines and validates
    /// each one. Pipelines come in file-name order; the Python files are
    /// evaluated together, in one interpreter.
    ///
    /// One language per project, as Harmont's `hm run` decides it: with a
    /// `.ts` file in `.hm/`, the TypeScript and JavaScript files are
    /// evaluated and the Python ones left out; else, with a `.py` file, the
    /// Python ones are evaluated and any JavaScript ones left out (Harmont
    /// reads no `.js` files); else the JavaScript ones are. What was left
    /// out is in [`Loaded::left_out`]. JSON envelopes are always read.
    pub fn load(&self, options: &EvalOptions) -> Result<Loaded, LoadError> {
        let rel = |path: &Path| path.strip_prefix(&self.root).unwrap_or(path).to_owned();
        let mut files = self.pipeline_files()?;
        let is = |file: &PathBuf, wanted: &[Language]| Language::of(file).is_some_and(|l| wanted.contains(&l));
        let has = |files: &[PathBuf], language| files.iter().any(|f| is(f, &[language]));
        let (evaluated, dropped) = if has(&files, Language::TypeScript) {
            ("TypeScript", Language::Python)
        } else {
            ("Python", Language::JavaScript)
        };
        let mut left_out = None;
        if has(&files, Language::Python) && (has(&files, Language::TypeScript) || has(&files, Language::JavaScript)) {
            let (dropped, rest): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| is(f, &[dropped]));
            left_out = Some(LeftOut {
                evaluated,
                files: dropped.iter().map(|f| rel(f)).collect(),
            });
            files = rest;
        }
        let of = |wanted: &[Language]| -> Vec<PathBuf> { files.iter().filter(|f| is(f, wanted)).cloned().collect() };
        // Each evaluator takes all its files at once; their pipelines are
        // then placed in file order.
        let py_files = of(&[Language::Python]);
        let mut evaluated = match py_files.first() {
            Some(first) => python::evaluate(&self.root, &py_files, &rel(first), options)?,
            None => Vec::new(),
        };
        let script_files = of(&[Language::TypeScript, Language::JavaScript]);
        if let Some(first) = script_files.first() {
            evaluated.extend(typescript::evaluate(&self.root, &script_files, &rel(first), options)?);
        }
        let mut loaded = Loaded {
            envelope: Envelope::new(),
            sources: Vec::new(),
            left_out,
        };
        for path in &files {
            let rel = rel(path);
            if Language::of(path) == Some(Language::Json) {
                // Tooling files (`tsconfig.json`, `package.json`) are not
                // envelopes; Harmont reads no JSON at all.
                for pipeline in json::evaluate(path, &rel)?.map(|e| e.pipelines).unwrap_or_default() {
                    loaded.add(pipeline, Location::file(&rel))?;
                }
                continue;
            }
            let (mine, rest) = evaluated.into_iter().partition(|(_, source)| source.file == rel);
            evaluated = rest;
            for (pipeline, source) in mine {
                loaded.add(pipeline, source)?;
            }
        }
        // Pipelines defined in modules that the pipeline files import.
        for (pipeline, source) in evaluated {
            loaded.add(pipeline, source)?;
        }
        Ok(loaded)
    }
}

impl Loaded {
    /// Adds a pipeline defined at `at` after checking that its slug is new
    /// and that it is valid.
    fn add(&mut self, pipeline: Pipeline, at: Location) -> Result<(), LoadError> {
        if let Some((_, first)) = self.pipeline(&pipeline.slug) {
            return Err(LoadError::DuplicateSlug {
                slug: pipeline.slug,
                first: first.clone(),
                second: at,
            });
        }
        hm_ir::validate_pipeline(&pipeline).map_err(|source| LoadError::Invalid {
            at: at.clone(),
            source: Box::new(source),
        })?;
        self.envelope.pipelines.push(pipeline);
        self.sources.push(at);
        Ok(())
    }
}
