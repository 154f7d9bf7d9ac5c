//! Embeds the Python SDK (`sdk/python/harmont`) into the crate: writes
//! `python_sdk.rs` with every file of the package as `(path, bytes)`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let sdk = manifest.join("../../sdk/python");
    let package = sdk.join("harmont");
    println!("cargo:rerun-if-changed={}", package.display());
    let mut files = Vec::new();
    collect(&package, &mut files);
    files.sort();
    let mut out = String::from("/// Every file of the `harmont` package: path under the SDK root, contents.\n");
    out.push_str("pub(crate) const SDK_FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&sdk)
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
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("python_sdk.rs");
    std::fs::write(dest, out).expect("write python_sdk.rs");
}

/// The package's source files: `.py` and `py.typed`, no caches.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the SDK directory") {
        let path = entry.expect("read the SDK directory").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "__pycache__" {
                collect(&path, files);
            }
        } else if name.ends_with(".py") || name == "py.typed" {
            files.push(path);
        }
    }
}
