//! The module graph of a project's TypeScript and JavaScript pipeline
//! files: every module transpiled, every import resolved and every
//! imported name found, before anything runs, so that a mistake is named
//! with its file and line.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use super::cache::Compiled;
use super::transpile::{transpile, Position, Transpiled};
use super::SDK_FILES;
use crate::LoadError;

/// The SDK's entry points, as pipeline files import them.
const SDK_ENTRIES: [(&str, &str); 2] = [
    ("@harmont/hm", "src/index.ts"),
    ("@harmont/hm/toolchains", "src/toolchains/index.ts"),
];

/// Where SDK module names start; the rest is the file under the SDK root.
pub(crate) const SDK_PREFIX: &str = "@harmont/hm/";

/// The SDK module the engine calls (not importable by pipeline files).
pub(crate) const SDK_ENGINE: &str = "src/engine.ts";

/// Extensions tried, in order, for a relative import written without one.
const EXTENSIONS: [&str; 4] = ["ts", "js", "mts", "mjs"];

/// A module: its name (what QuickJS and stack traces call it) and code.
pub(crate) struct Module {
    pub transpiled: Transpiled,
    /// QuickJS bytecode, for an SDK module compiled by an earlier run.
    pub bytecode: Option<Vec<u8>>,
    /// For a project file: its path relative to the project root (or
    /// absolute outside it). `None` for the SDK's own modules.
    pub file: Option<PathBuf>,
}

/// Every module a set of pipeline files needs, with the links between
/// them.
pub(crate) struct Graph {
    /// The project root, which project files' names are relative to.
    pub root: PathBuf,
    pub modules: BTreeMap<String, Module>,
    /// `(importer, specifier)` to the name of the module it means.
    pub links: BTreeMap<(String, String), String>,
}

/// The name of the SDK module for `path` (under the SDK root).
pub(crate) fn sdk_name(path: &str) -> String {
    format!("{SDK_PREFIX}{path}")
}

fn sdk_source(path: &str) -> Option<&'static str> {
    SDK_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, bytes)| std::str::from_utf8(bytes).ok())
}

/// Joins a relative specifier to a directory without touching the disk.
fn join_normalized(dir: &Path, specifier: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in dir.join(specifier).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why an import names no module.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error(
        "cannot import `{specifier}`: pipeline files import `@harmont/hm`, `@harmont/hm/toolchains` \
         and files of the project (npm packages and Node.js modules are not available)"
    )]
    NotAvailable { specifier: String },
    #[error("the SDK has no module `{path}`")]
    NoSdkModule { path: String },
    #[error("cannot import `{specifier}`: no such file (tried `{}`)", tried.display())]
    NoSuchFile { specifier: String, tried: PathBuf },
}

/// What `specifier`, imported by the module `importer`, means. With
/// `internals`, project files may import the SDK's own modules by their
/// names (`@harmont/hm/src/keys.ts`), as the SDK's tests do.
fn resolve(
    root: &Path,
    importer: &str,
    file: Option<&Path>,
    specifier: &str,
    internals: bool,
) -> Result<String, ImportError> {
    if let Some((_, path)) = SDK_ENTRIES.iter().find(|(name, _)| *name == specifier) {
        return Ok(sdk_name(path));
    }
    if let Some(path) = specifier.strip_prefix(SDK_PREFIX).filter(|_| internals) {
        if sdk_source(path).is_some() {
            return Ok(specifier.to_owned());
        }
    }
    let relative = specifier.starts_with("./") || specifier.starts_with("../");
    if !relative && !specifier.starts_with('/') {
        return Err(ImportError::NotAvailable {
            specifier: specifier.to_owned(),
        });
    }
    match file {
        // The SDK imports its own files.
        None => {
            let dir = Path::new(importer.strip_prefix(SDK_PREFIX).unwrap_or(importer))
                .parent()
                .unwrap_or(Path::new(""));
            let path = join_normalized(dir, specifier);
            let path = path.to_string_lossy();
            sdk_source(&path)
                .map(|_| sdk_name(&path))
                .ok_or_else(|| ImportError::NoSdkModule {
                    path: path.into_owned(),
                })
        }
        Some(file) => {
            let dir = root
                .join(file)
                .parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| root.to_owned());
            let base = join_normalized(&dir, specifier);
            let mut candidates = vec![base.clone()];
            for ext in EXTENSIONS {
                let mut with = base.clone().into_os_string();
                with.push(format!(".{ext}"));
                candidates.push(with.into());
            }
            candidates.extend(["index.ts", "index.js"].map(|index| base.join(index)));
            let found = candidates
                .into_iter()
                .find(|c| c.is_file())
                .ok_or_else(|| ImportError::NoSuchFile {
                    specifier: specifier.to_owned(),
                    tried: base.clone(),
                })?;
            Ok(project_name(root, &found))
        }
    }
}

/// A project file's module name: its path relative to the root.
fn project_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned()
}

fn parse_error(file: &Path, at: Position, message: String) -> LoadError {
    LoadError::Parse {
        at: crate::Location::at(file, at.line, at.column),
        field: None,
        message,
    }
}

impl Graph {
    /// Transpiles `entries` (project files, absolute) and everything they
    /// import, and checks every import; SDK modules in `compiled` are taken
    /// as they are. With `internals`, project files may import the SDK's
    /// own modules.
    pub(crate) fn build(
        root: &Path,
        entries: &[PathBuf],
        mut compiled: BTreeMap<String, Compiled>,
        internals: bool,
    ) -> Result<Self, LoadError> {
        let mut graph = Graph {
            root: root.to_owned(),
            modules: BTreeMap::new(),
            links: BTreeMap::new(),
        };
        let mut queue: VecDeque<String> = entries.iter().map(|e| project_name(root, e)).collect();
        // What the engine calls.
        queue.push_back(sdk_name(SDK_ENTRIES[0].1));
        queue.push_back(sdk_name(SDK_ENGINE));
        while let Some(name) = queue.pop_front() {
            if graph.modules.contains_key(&name) {
                continue;
            }
            let module = match compiled.remove(&name) {
                Some(Compiled { transpiled, bytecode }) => Module {
                    transpiled,
                    bytecode: Some(bytecode),
                    file: None,
                },
                None => load(root, &name)?,
            };
            let shown = module.file.clone().unwrap_or_else(|| PathBuf::from(&name));
            for (specifier, at) in &module.transpiled.requests {
                let target = resolve(root, &name, module.file.as_deref(), specifier, internals)
                    .map_err(|err| parse_error(&shown, *at, err.to_string()))?;
                queue.push_back(target.clone());
                graph.links.insert((name.clone(), specifier.clone()), target);
            }
            graph.modules.insert(name, module);
        }
        graph.check_names()?;
        Ok(graph)
    }

    /// Every name a project file imports from a module is one it exports,
    /// and every name used as a value is a value there (the SDK's own
    /// imports were checked when it was written).
    fn check_names(&self) -> Result<(), LoadError> {
        for (name, module) in &self.modules {
            if module.file.is_none() {
                continue;
            }
            let shown = || module.file.clone().unwrap_or_else(|| PathBuf::from(name));
            let target_of = |specifier: &String| self.links.get(&(name.clone(), specifier.clone()));
            for import in &module.transpiled.declared_imports {
                let (Some(imported), Some(target)) = (&import.name, target_of(&import.specifier)) else {
                    continue;
                };
                if !self.exports(target, true).contains(imported.as_str()) {
                    let what = if imported == "default" {
                        "has no default export".to_owned()
                    } else {
                        format!("does not export `{imported}`")
                    };
                    return Err(parse_error(
                        &shown(),
                        import.at,
                        format!("`{}` {what}", import.specifier),
                    ));
                }
            }
            for import in &module.transpiled.imports {
                let (Some(imported), Some(target)) = (&import.name, target_of(&import.specifier)) else {
                    continue;
                };
                if !self.exports(target, false).contains(imported.as_str()) {
                    let message = format!(
                        "`{imported}` is only a type in `{}`; import it with `import type`",
                        import.specifier
                    );
                    return Err(parse_error(&shown(), import.at, message));
                }
            }
        }
        Ok(())
    }

    /// The names `name` exports (with its types when `types`), through
    /// `export * from` too.
    fn exports(&self, name: &str, types: bool) -> HashSet<&str> {
        let mut names = HashSet::new();
        let mut seen = HashSet::new();
        let mut stack = vec![name.to_owned()];
        while let Some(current) = stack.pop() {
            if !seen.insert(current.clone()) {
                continue;
            }
            let Some(module) = self.modules.get(&current) else {
                continue;
            };
            names.extend(module.transpiled.exports.iter().map(String::as_str));
            if types {
                names.extend(module.transpiled.type_exports.iter().map(String::as_str));
            }
            for star in &module.transpiled.star_exports {
                if let Some(target) = self.links.get(&(current.clone(), star.clone())) {
                    stack.push(target.clone());
                }
            }
        }
        names
    }
}

/// Reads and transpiles the module `name`.
fn load(root: &Path, name: &str) -> Result<Module, LoadError> {
    if let Some(path) = name.strip_prefix(SDK_PREFIX) {
        let source = sdk_source(path).ok_or_else(|| LoadError::Io {
            path: PathBuf::from(name),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in the embedded SDK"),
        })?;
        let transpiled =
            transpile(source, Path::new(path)).map_err(|e| parse_error(Path::new(name), e.at, e.message))?;
        return Ok(Module {
            transpiled,
            bytecode: None,
            file: None,
        });
    }
    let file = PathBuf::from(name);
    let path = root.join(&file);
    let source = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
        path: path.clone(),
        source,
    })?;
    let transpiled = transpile(&source, &file).map_err(|e| parse_error(&file, e.at, e.message))?;
    Ok(Module {
        transpiled,
        bytecode: None,
        file: Some(file),
    })
}
