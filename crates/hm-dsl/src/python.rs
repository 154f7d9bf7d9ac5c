//! `.hm/*.py`: evaluated by the system `python3` with the `harmont` SDK
//! that this binary carries.
//!
//! The SDK is unpacked once per content into `<cache>/sdk/python-<hash>/`
//! (written to a temporary directory and renamed, so concurrent runs never
//! see half a package). One interpreter imports every Python file of the
//! project and prints one JSON object: the envelope and where each
//! pipeline was defined, or an error with the traceback already trimmed to
//! the user's frames.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hm_ir::Pipeline;
use serde::Deserialize;

use crate::{LoadError, Location};

include!(concat!(env!("OUT_DIR"), "/python_sdk.rs"));

/// The oldest Python the SDK runs on.
pub const MIN_PYTHON: (u32, u32) = (3, 10);

/// Checks the version, points the import system at the SDK and hands over
/// to the engine. It must parse on any Python 3, so the check comes first.
/// The interpreter starts without `site` (`-S`): site-packages are added
/// only when a pipeline file imports a module found nowhere else, since
/// `.pth` files can cost more than the whole evaluation.
const BOOTSTRAP: &str = r#"import _signal, sys
# Started with SIGINT ignored (see die_with_parent); from here a Ctrl-C
# ends the interpreter, and whatever the pipeline code starts, silently.
# (`_signal`: `signal` would import `enum` and `functools`.)
_signal.signal(_signal.SIGINT, _signal.SIG_DFL)
if sys.version_info < (3, 10):
    sys.stdout.write('{"error":{"kind":"python_version","version":"%d.%d.%d"}}\n' % tuple(sys.version_info[:3]))
    sys.exit(0)
sys.pycache_prefix = sys.argv[2]
sys.path.insert(0, sys.argv[1])
from harmont._engine import main
sys.exit(main(sys.argv[3:]))
"#;

/// The interpreter's flags: isolated from `PYTHON*` variables and the user's
/// site directory, and without `site` at start-up (see [`BOOTSTRAP`]).
const FLAGS: &[&str] = &["-I", "-S"];

/// How pipeline code is evaluated: the Python interpreter, and where the
/// SDKs are unpacked or kept compiled.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The interpreter (`hm` passes `HM_PYTHON`, else `python3`, found in
    /// `PATH`).
    pub interpreter: OsString,
    /// Where the SDKs and their bytecode go (`<cache>/sdk`); `None` when no
    /// cache directory is known (Python files then cannot be evaluated,
    /// TypeScript files are compiled afresh every time).
    pub sdk_root: Option<PathBuf>,
    /// The environment TypeScript pipelines see (`process.env`); Python
    /// pipelines see their process's, which `hm` passes on.
    pub env: Arc<BTreeMap<String, String>>,
}

impl EvalOptions {
    /// `interpreter`, with the SDK under `cache_dir/sdk`, and no environment.
    pub fn new(interpreter: impl Into<OsString>, cache_dir: Option<&Path>) -> Self {
        EvalOptions {
            interpreter: interpreter.into(),
            sdk_root: cache_dir.map(|d| d.join("sdk")),
            env: Arc::default(),
        }
    }

    /// The same, with `env` as the environment pipelines see.
    pub fn with_env(self, env: BTreeMap<String, String>) -> Self {
        EvalOptions {
            env: Arc::new(env),
            ..self
        }
    }
}

/// A pipeline and where it was defined (its file relative to the project
/// root, and the line and column where the SDK knows them).
pub(crate) type Sourced = (Pipeline, Location);

/// What an SDK's renderer returns: the envelope, and where each of
/// its pipelines was defined.
#[derive(Deserialize)]
pub(crate) struct Rendered {
    envelope: hm_ir::Envelope,
    sources: Vec<Location>,
}

impl Rendered {
    /// The pipelines with their places; `None` when the two lists differ.
    pub(crate) fn into_sourced(self) -> Option<Vec<Sourced>> {
        (self.sources.len() == self.envelope.pipelines.len())
            .then(|| self.envelope.pipelines.into_iter().zip(self.sources).collect())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Reply {
    Ok(Rendered),
    Err { error: Failure },
}

#[derive(Deserialize)]
struct Failure {
    kind: String,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    column: Option<u32>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    traceback: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Imports `files` (absolute, in order) in one interpreter and returns their
/// pipelines. `first` names the file errors fall back to.
pub(crate) fn evaluate(
    root: &Path,
    files: &[PathBuf],
    first: &Path,
    options: &EvalOptions,
) -> Result<Vec<Sourced>, LoadError> {
    let python = PathBuf::from(&options.interpreter);
    let sdk_root = options
        .sdk_root
        .as_deref()
        .ok_or_else(|| LoadError::NoSdkDir { file: first.to_owned() })?;
    let sdk = unpack(sdk_root)?;
    let mut command = Command::new(&options.interpreter);
    die_with_parent(&mut command);
    let output = command
        .args(FLAGS)
        .arg("-c")
        .arg(BOOTSTRAP)
        .arg(&sdk)
        .arg(sdk_root.join("pycache"))
        .arg(root)
        .args(files)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => LoadError::NoPython {
                file: first.to_owned(),
                python: python.clone(),
            },
            _ => LoadError::PythonFailed {
                file: first.to_owned(),
                python: python.clone(),
                detail: source.to_string(),
            },
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    if !output.status.success() {
        return Err(LoadError::PythonFailed {
            file: first.to_owned(),
            python,
            detail: format!("it exited with {}", output.status),
        });
    }
    let reply: Reply = serde_json::from_str(last).map_err(|err| LoadError::PythonFailed {
        file: first.to_owned(),
        python: python.clone(),
        detail: format!("its reply is not an envelope: {err}"),
    })?;
    match reply {
        Reply::Ok(rendered) => rendered.into_sourced().ok_or_else(|| LoadError::PythonFailed {
            file: first.to_owned(),
            python,
            detail: "its reply names a file for some pipelines only".into(),
        }),
        Reply::Err { error } => Err(failure(error, first, python)),
    }
}

/// Makes the child die with `hm`, however `hm` ends (a signal, SIGKILL
/// included, which leaves no chance to kill it): the kernel sends it
/// SIGKILL when the thread that spawned it exits, and a parent that died
/// before the signal was armed is caught by comparing the parent pid.
///
/// The child starts with SIGINT ignored: a Ctrl-C reaches the whole
/// process group, and `hm` answers it (exit 130, and the child goes with
/// it). Python started so installs no `KeyboardInterrupt` handler, so it
/// never prints a traceback, even when the signal comes while it
/// initialises; [`BOOTSTRAP`] then restores the default (the interpreter
/// and what pipeline code starts end on SIGINT, silently).
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, kill, signal)
    // run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
}

fn failure(error: Failure, first: &Path, python: PathBuf) -> LoadError {
    let file = error.file.unwrap_or_else(|| first.to_owned());
    let at = Location {
        file: file.clone(),
        line: error.line,
        column: error.line.and(error.column),
    };
    match error.kind.as_str() {
        "python_version" => LoadError::PythonTooOld {
            file,
            python,
            version: error.version.unwrap_or_else(|| "unknown".into()),
        },
        kind => LoadError::Evaluation {
            at,
            what: if kind == "syntax" {
                "the pipeline file has a syntax error"
            } else {
                "the pipeline file raised an error"
            },
            traceback: error
                .traceback
                .or(error.message)
                .unwrap_or_else(|| format!("{} error", error.kind)),
        },
    }
}

/// The unpacked SDK for this binary, written if it is not there yet.
pub fn unpack(sdk_root: &Path) -> Result<PathBuf, LoadError> {
    let dir = sdk_root.join(format!("python-{SDK_HASH}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    std::fs::create_dir_all(sdk_root).map_err(io(sdk_root))?;
    remove_stale_copies(sdk_root, "python", &dir);
    let tmp = tempfile::Builder::new()
        .prefix(".python-")
        .tempdir_in(sdk_root)
        .map_err(io(sdk_root))?;
    for (rel, bytes) in SDK_FILES {
        let path = tmp.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            // The directory is now `dir`; nothing is left to remove.
            let _ = tmp.keep();
            Ok(dir)
        }
        // Another process renamed its copy first: the same content.
        Err(_) if dir.is_dir() => Ok(dir),
        Err(source) => Err(LoadError::Io { path: dir, source }),
    }
}

/// A temporary copy of an SDK older than this was left by a process killed
/// while writing it: writing one takes milliseconds, so a younger one may
/// be another process's at work.
const INTERRUPTED_AGE: Duration = Duration::from_secs(60);

/// The kinds of SDK copies kept under the SDK root.
const KINDS: [&str; 2] = ["python", "typescript"];

/// Removes, under `sdk_root`, the temporary copies (`.python-*`,
/// `.typescript-*`) of processes killed while writing one; every command
/// that uses the cache calls it, so what a SIGKILL left goes with the next
/// `hm` a minute later at most.
pub fn remove_interrupted_copies(sdk_root: &Path) {
    let Ok(entries) = std::fs::read_dir(sdk_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let temporary = KINDS.iter().any(|kind| {
            name.strip_prefix('.')
                .is_some_and(|n| n.starts_with(&format!("{kind}-")))
        });
        if temporary && age(&entry) > INTERRUPTED_AGE {
            remove_entry(&entry.path());
        }
    }
}

/// How long ago `entry` was last modified.
fn age(entry: &std::fs::DirEntry) -> Duration {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

fn remove_entry(path: &Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

/// Removes, under `sdk_root`, the temporary copies (`.KIND-*`, files or
/// directories) of processes killed while writing one, and the SDKs of
/// other `hm` versions (`KIND-*` other than `keep`, with their Python
/// bytecode) unused for a day; an older `hm` still in use writes its own
/// again.
pub(crate) fn remove_stale_copies(sdk_root: &Path, kind: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(sdk_root) else {
        return;
    };
    let (tmp, done) = (format!(".{kind}-"), format!("{kind}-"));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(&tmp) && age(&entry) > INTERRUPTED_AGE {
            remove_entry(&path);
        } else if name.starts_with(&done) && path != keep && age(&entry) > Duration::from_secs(86400) {
            remove_entry(&path);
            // `sys.pycache_prefix` mirrors the source's absolute path.
            if let Ok(rel) = path.strip_prefix("/") {
                let _ = std::fs::remove_dir_all(sdk_root.join("pycache").join(rel));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of `sdk/python/harmont` is embedded, byte for byte.
    #[test]
    fn embeds_the_whole_package() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python");
        let mut on_disk = Vec::new();
        let mut stack = vec![sdk.join("harmont")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_owned();
                if path.is_dir() && name != "__pycache__" {
                    stack.push(path);
                } else if name.ends_with(".py") || name == "py.typed" {
                    let rel = path.strip_prefix(&sdk).unwrap().to_str().unwrap().to_owned();
                    on_disk.push((rel, std::fs::read(&path).unwrap()));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<_> = SDK_FILES.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        assert!(SDK_FILES.iter().any(|(p, _)| *p == "harmont/_engine.py"));
    }

    /// Unpacking a new SDK removes old SDKs and their bytecode after a day,
    /// and interrupted copies after a minute; recent ones stay.
    #[test]
    fn unpacking_removes_stale_copies() {
        let root = tempfile::tempdir().unwrap();
        let make = |name: &str, age_secs: u64| {
            let dir = root.path().join(name);
            std::fs::create_dir_all(dir.join("harmont")).unwrap();
            let when = std::time::SystemTime::now() - Duration::from_secs(age_secs);
            std::fs::File::open(&dir).unwrap().set_modified(when).unwrap();
            dir
        };
        let old = make("python-0123456789abcdef", 2 * 86400);
        let bytecode = root.path().join("pycache").join(old.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&bytecode).unwrap();
        let recent = make("python-fedcba9876543210", 60);
        let interrupted = make(".python-abc", 3600);
        let running = make(".python-def", 5);
        unpack(root.path()).unwrap();
        assert!(!old.exists() && !bytecode.exists() && !interrupted.exists());
        assert!(recent.exists() && running.exists());
    }

    /// Copies left by killed processes go with the next command, once a
    /// minute old; everything else stays.
    #[test]
    fn interrupted_copies_are_removed_by_any_command() {
        let root = tempfile::tempdir().unwrap();
        let make = |name: &str, age_secs: u64, dir: bool| {
            let path = root.path().join(name);
            if dir {
                std::fs::create_dir_all(path.join("harmont")).unwrap();
            } else {
                std::fs::write(&path, "x").unwrap();
            }
            let when = std::time::SystemTime::now() - Duration::from_secs(age_secs);
            std::fs::File::open(&path).unwrap().set_modified(when).unwrap();
            path
        };
        let killed = make(".python-abc", 120, true);
        let killed_ts = make(".typescript-abc", 120, false);
        let writing = make(".python-def", 5, true);
        let installed = make("python-0123", 2 * 86400, true);
        remove_interrupted_copies(root.path());
        assert!(!killed.exists() && !killed_ts.exists());
        assert!(writing.exists() && installed.exists());
    }

    /// Unpacking twice, or into a root where another copy already landed,
    /// gives the same complete directory.
    #[test]
    fn unpacks_once_by_content() {
        let root = tempfile::tempdir().unwrap();
        let first = unpack(root.path()).unwrap();
        let second = unpack(root.path()).unwrap();
        assert_eq!(first, second);
        for (rel, bytes) in SDK_FILES {
            assert_eq!(&std::fs::read(first.join(rel)).unwrap(), bytes);
        }
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary directories left: {leftovers:?}");
    }
}
