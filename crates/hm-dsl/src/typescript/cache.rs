//! The SDK compiled once: each module's shape (imports, exports) and its
//! QuickJS bytecode, kept in `<cache>/sdk/typescript-<hash>/` so that a
//! run neither strips the SDK's types nor compiles it again.
//!
//! The directory is named by the SDK's content and the engine's version,
//! written whole to a temporary name and renamed, and every bytecode file
//! is checked against its recorded hash before QuickJS reads it: a damaged
//! cache is compiled anew, never loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::transpile::Transpiled;
use super::SDK_FILES;

/// Bumped when the manifest's format or the compilation changes.
const FORMAT: &str = "1";
/// The QuickJS bytecode format follows the engine's version.
const ENGINE: &str = "rquickjs-0.14.0";

/// An SDK module as cached: its shape and bytecode.
pub(crate) struct Compiled {
    pub transpiled: Transpiled,
    pub bytecode: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    transpiled: Transpiled,
    /// BLAKE3 of the bytecode file.
    hash: String,
}

/// Where the compiled SDK is, or goes.
pub(crate) struct SdkCache {
    dir: Option<PathBuf>,
}

impl SdkCache {
    /// The cache for this SDK under `sdk_root`; none without a cache
    /// directory.
    pub(crate) fn new(sdk_root: Option<&Path>) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(FORMAT.as_bytes());
        hasher.update(ENGINE.as_bytes());
        for (path, bytes) in SDK_FILES {
            hasher.update(&(path.len() as u64).to_le_bytes());
            hasher.update(path.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let name = format!("typescript-{}", &hasher.finalize().to_hex()[..16]);
        SdkCache {
            dir: sdk_root.map(|root| root.join(name)),
        }
    }

    /// Every module of the compiled SDK; `None` when it is not cached. A
    /// copy that does not check out is removed, to be written anew.
    pub(crate) fn load(&self) -> Option<BTreeMap<String, Compiled>> {
        let dir = self.dir.as_ref()?;
        if !dir.is_dir() {
            return None;
        }
        let loaded = self.read(dir);
        if loaded.is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
        loaded
    }

    fn read(&self, dir: &Path) -> Option<BTreeMap<String, Compiled>> {
        let manifest = std::fs::read(dir.join("manifest.json")).ok()?;
        let entries: BTreeMap<String, Entry> = serde_json::from_slice(&manifest).ok()?;
        let mut modules = BTreeMap::new();
        for (i, (name, entry)) in entries.into_iter().enumerate() {
            let bytecode = std::fs::read(dir.join(format!("{i}.qjsbc"))).ok()?;
            if blake3::hash(&bytecode).to_hex().as_str() != entry.hash {
                return None;
            }
            modules.insert(
                name,
                Compiled {
                    transpiled: entry.transpiled,
                    bytecode,
                },
            );
        }
        (!modules.is_empty()).then_some(modules)
    }

    /// Keeps the compiled SDK; failing to only means compiling next time.
    pub(crate) fn store(&self, modules: BTreeMap<String, Compiled>) {
        let Some(dir) = &self.dir else { return };
        let Some(parent) = dir.parent() else { return };
        if dir.is_dir() || std::fs::create_dir_all(parent).is_err() {
            return;
        }
        crate::python::remove_stale_copies(parent, "typescript", dir);
        let Ok(tmp) = tempfile::Builder::new().prefix(".typescript-").tempdir_in(parent) else {
            return;
        };
        let mut entries = BTreeMap::new();
        for (i, (name, compiled)) in modules.into_iter().enumerate() {
            if std::fs::write(tmp.path().join(format!("{i}.qjsbc")), &compiled.bytecode).is_err() {
                return;
            }
            let hash = blake3::hash(&compiled.bytecode).to_hex().to_string();
            entries.insert(
                name,
                Entry {
                    transpiled: compiled.transpiled,
                    hash,
                },
            );
        }
        let Ok(manifest) = serde_json::to_vec(&entries) else {
            return;
        };
        if std::fs::write(tmp.path().join("manifest.json"), manifest).is_ok()
            && std::fs::rename(tmp.path(), dir).is_ok()
        {
            let _ = tmp.keep();
        }
    }
}
