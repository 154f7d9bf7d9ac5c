//! Finds a project's `.hm/` folder and evaluates its pipeline files into one
//! [`hm_ir::Envelope`].
//!
//! The entry points are [`Project::find`] and [`Project::load`], which
//! returns a [`Loaded`] envelope that remembers which file every pipeline
//! came from. Every pipeline is validated here, so a caller never sees an
//! envelope that cannot be planned. Only JSON files are evaluated so far;
//! Python and TypeScript files are reported as not yet supported.

mod error;
mod json;

use std::path::{Path, PathBuf};

use hm_ir::{Envelope, Pipeline};

pub use error::LoadError;

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
    /// `sources[i]` is the file that defined `envelope.pipelines[i]`,
    /// relative to the project root.
    pub sources: Vec<PathBuf>,
}

impl Loaded {
    /// The pipeline with this slug and the file that defined it.
    pub fn pipeline(&self, slug: &str) -> Option<(&Pipeline, &Path)> {
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

    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Python => "Python",
            Self::TypeScript => "TypeScript",
            Self::JavaScript => "JavaScript",
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

    /// Evaluates every pipeline file, merges their pipelines and validates
    /// each one.
    pub fn load(&self) -> Result<Loaded, LoadError> {
        let mut loaded = Loaded {
            envelope: Envelope::new(),
            sources: Vec::new(),
        };
        for path in self.pipeline_files()? {
            let rel = path.strip_prefix(&self.root).unwrap_or(&path).to_owned();
            let envelope = match Language::of(&path) {
                Some(Language::Json) => json::evaluate(&path, &rel)?,
                Some(lang) => {
                    return Err(LoadError::Unsupported {
                        file: rel,
                        language: lang.name(),
                    })
                }
                None => continue,
            };
            for pipeline in envelope.pipelines {
                if let Some((_, first)) = loaded.pipeline(&pipeline.slug) {
                    return Err(LoadError::DuplicateSlug {
                        slug: pipeline.slug,
                        first: first.to_owned(),
                        second: rel,
                    });
                }
                hm_ir::validate_pipeline(&pipeline).map_err(|source| LoadError::Invalid {
                    file: rel.clone(),
                    source,
                })?;
                loaded.envelope.pipelines.push(pipeline);
                loaded.sources.push(rel.clone());
            }
        }
        Ok(loaded)
    }
}
