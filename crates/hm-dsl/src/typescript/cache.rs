//! The SDK compiled once: each module's shape (imports, exports) and its
//! QuickJS bytecode, kept in one file, `<cache>/sdk/typescript-<hash>.bin`,
//! so that a run neither strips the SDK's types nor compiles it again, and
//! reads one file to load it.
//!
//! The file is named by the SDK's content and the engine's version, written
//! whole to a temporary name and renamed, and carries a BLAKE3 hash of its
//! contents, checked before QuickJS reads any of it: a damaged file is
//! removed and the SDK compiled anew, never loaded.
//!
//! Layout: the 32-byte hash of the rest, the manifest's length (8 bytes,
//! little-endian), the manifest (JSON: name, shape, bytecode range), then
//! the bytecode of every module. A module's shape is what the module graph
//! needs of it (what it requests and exports); its code and source map
//! are not kept, as bytecode replaces the one and stack traces only map
//! project files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::transpile::Transpiled;
use super::SDK_HASH;

/// Bumped when the file's format or the compilation changes.
const FORMAT: &str = "4";
/// The QuickJS bytecode format follows the engine's version.
const ENGINE: &str = "rquickjs-0.14.0";

/// An SDK module as cached: its shape and bytecode.
pub(crate) struct Compiled {
    pub transpiled: Transpiled,
    pub bytecode: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    transpiled: Transpiled,
    /// Where its bytecode lies after the manifest.
    start: usize,
    len: usize,
}

/// Where the compiled SDK is, or goes.
pub(crate) struct SdkCache {
    file: Option<PathBuf>,
}

impl SdkCache {
    /// The cache for this SDK under `sdk_root`; none without a cache
    /// directory.
    pub(crate) fn new(sdk_root: Option<&Path>) -> Self {
        let name = format!("typescript-{SDK_HASH}-{FORMAT}-{ENGINE}.bin");
        SdkCache {
            file: sdk_root.map(|root| root.join(name)),
        }
    }

    /// Every module of the compiled SDK; `None` when it is not cached. A
    /// file that does not check out is removed, to be written anew.
    pub(crate) fn load(&self) -> Option<BTreeMap<String, Compiled>> {
        let file = self.file.as_ref()?;
        let bytes = std::fs::read(file).ok()?;
        let loaded = parse(&bytes);
        if loaded.is_none() {
            let _ = std::fs::remove_file(file);
        }
        loaded
    }

    /// Keeps the compiled SDK; failing to only means compiling next time.
    pub(crate) fn store(&self, modules: BTreeMap<String, Compiled>) {
        let Some(file) = &self.file else { return };
        let Some(parent) = file.parent() else { return };
        if file.exists() || std::fs::create_dir_all(parent).is_err() {
            return;
        }
        crate::python::remove_stale_copies(parent, "typescript", file);
        let mut blobs = Vec::new();
        let mut entries = Vec::new();
        for (name, compiled) in modules {
            let shape = Transpiled {
                code: String::new(),
                map: None,
                declared_imports: Vec::new(),
                imports: Vec::new(),
                ..compiled.transpiled
            };
            entries.push(Entry {
                name,
                transpiled: shape,
                start: blobs.len(),
                len: compiled.bytecode.len(),
            });
            blobs.extend_from_slice(&compiled.bytecode);
        }
        let Ok(manifest) = serde_json::to_vec(&entries) else {
            return;
        };
        let mut body = Vec::with_capacity(8 + manifest.len() + blobs.len());
        body.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
        body.extend_from_slice(&manifest);
        body.extend_from_slice(&blobs);
        let mut contents = blake3::hash(&body).as_bytes().to_vec();
        contents.extend_from_slice(&body);
        let Ok(mut tmp) = tempfile::Builder::new().prefix(".typescript-").tempfile_in(parent) else {
            return;
        };
        if std::io::Write::write_all(&mut tmp, &contents).is_ok() {
            let _ = tmp.persist(file);
        }
    }
}

/// The modules in a cache file's `bytes`, if its hash checks out.
fn parse(bytes: &[u8]) -> Option<BTreeMap<String, Compiled>> {
    let (hash, body) = bytes.split_at_checked(32)?;
    if blake3::hash(body).as_bytes().as_slice() != hash {
        return None;
    }
    let (len, rest) = body.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (manifest, blobs) = rest.split_at_checked(len)?;
    let entries: Vec<Entry> = serde_json::from_slice(manifest).ok()?;
    let mut modules = BTreeMap::new();
    for entry in entries {
        let bytecode = blobs.get(entry.start..entry.start.checked_add(entry.len)?)?.to_vec();
        modules.insert(
            entry.name,
            Compiled {
                transpiled: entry.transpiled,
                bytecode,
            },
        );
    }
    (!modules.is_empty()).then_some(modules)
}
