//! Embeds the SDKs into the crate: `python_sdk.rs` lists every file of
//! `sdk/python/harmont`, `typescript_sdk.rs` every file of
//! `sdk/typescript/src`, each as `(path under the SDK root, bytes)`, with
//! `SDK_HASH`, a hash of their names and contents that names the SDK's
//! copies in the cache (computed here, not on every run).

use std::hash::Hasher;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let sdk = manifest.join("../../sdk");
    embed(
        &sdk.join("python"),
        "harmont",
        &[".py", "py.typed"],
        &out.join("python_sdk.rs"),
    );
    embed(&sdk.join("typescript"), "src", &[".ts"], &out.join("typescript_sdk.rs"));
}

/// Writes `SDK_FILES` for the files under `root/dir` whose names end with
/// one of `suffixes`.
fn embed(root: &Path, dir: &str, suffixes: &[&str], dest: &Path) {
    let package = root.join(dir);
    println!("cargo:rerun-if-changed={}", package.display());
    let mut files = Vec::new();
    collect(&package, suffixes, &mut files);
    files.sort();
    let mut out = String::from("/// Every file of the SDK: path under the SDK root, contents.\n");
    out.push_str("pub(crate) const SDK_FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .expect("under the SDK")
            .to_str()
            .expect("UTF-8 path");
        let abs = file.canonicalize().expect("SDK file exists");
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.to_str().expect("UTF-8 path")
        ));
    }
    out.push_str("];\n");
    // Two SipHash passes with different seeds: 128 bits, enough to tell
    // SDK versions apart (what is cached is checked by its own hash).
    let mut hash = String::new();
    for seed in [0u8, 1] {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(seed);
        for file in &files {
            let rel = file.strip_prefix(root).expect("under the SDK");
            let bytes = std::fs::read(file).expect("read an SDK file");
            hasher.write(rel.to_str().expect("UTF-8 path").as_bytes());
            hasher.write_u64(bytes.len() as u64);
            hasher.write(&bytes);
        }
        hash.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.push_str(&format!(
        "/// A hash of the SDK's file names and contents.\npub(crate) const SDK_HASH: &str = {hash:?};\n"
    ));
    std::fs::write(dest, out).expect("write the SDK list");
}

/// The SDK's source files, without caches.
fn collect(dir: &Path, suffixes: &[&str], files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("read the SDK directory").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "__pycache__" && name != "node_modules" {
                collect(&path, suffixes, files);
            }
        } else if suffixes.iter().any(|s| name.ends_with(s)) {
            files.push(path);
        }
    }
}
