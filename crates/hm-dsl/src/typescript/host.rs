//! `globalThis.__hm_host`: what the SDK's `host.ts` asks of the machine
//! (SHA-256, reading files and directories, the environment), the same
//! functions Node's modules give it under Node. Relative paths are taken
//! from the project root, the directory Harmont's runner is started in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rquickjs::{Array, Ctx, Exception, Function, Object, TypedArray, Value};
use sha2::Digest;

/// Installs `__hm_host` for a project at `root`, whose pipelines see `env`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, root: &Path, env: Arc<BTreeMap<String, String>>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    let at = {
        let root = root.to_owned();
        move |path: &str| -> PathBuf { root.join(path) }
    };

    host.set("sha256", Function::new(ctx.clone(), sha256)?)?;

    let full = at.clone();
    let read_bytes = move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<TypedArray<'js, u8>> {
        let bytes = std::fs::read(full(&path)).map_err(|e| unreadable(&ctx, &path, &e))?;
        TypedArray::new(ctx, bytes)
    };
    host.set("readBytes", Function::new(ctx.clone(), read_bytes)?)?;

    let full = at.clone();
    let read_text = move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<String> {
        let bytes = std::fs::read(full(&path)).map_err(|e| unreadable(&ctx, &path, &e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    host.set("readText", Function::new(ctx.clone(), read_text)?)?;

    let full = at.clone();
    let kind = move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Value<'js>> {
        match std::fs::metadata(full(&path)) {
            Ok(meta) => rquickjs::String::from_str(ctx, kind_name(meta.file_type())).map(|s| s.into_value()),
            Err(_) => Ok(Value::new_null(ctx)),
        }
    };
    host.set("kind", Function::new(ctx.clone(), kind)?)?;

    let full = at;
    let list = move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Array<'js>> {
        let unreadable_dir = |e: std::io::Error| unreadable(&ctx, &path, &e);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(full(&path)).map_err(unreadable_dir)? {
            let entry = entry.map_err(unreadable_dir)?;
            let kind = entry.file_type().map_or("other", kind_name);
            entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        // By bytes, as Node lists a directory.
        entries.sort();
        let out = Array::new(ctx.clone())?;
        for (i, (name, kind)) in entries.into_iter().enumerate() {
            let pair = Array::new(ctx.clone())?;
            pair.set(0, name)?;
            pair.set(1, kind)?;
            out.set(i, pair)?;
        }
        Ok(out)
    };
    host.set("list", Function::new(ctx.clone(), list)?)?;

    let env = move || -> BTreeMap<String, String> { (*env).clone() };
    host.set("env", Function::new(ctx.clone(), env)?)?;

    let root = root.to_string_lossy().into_owned();
    host.set("cwd", Function::new(ctx.clone(), move || root.clone())?)?;

    ctx.globals().set("__hm_host", host)
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_file() {
        "file"
    } else if kind.is_dir() {
        "dir"
    } else {
        "other"
    }
}

fn unreadable(ctx: &Ctx<'_>, path: &str, error: &std::io::Error) -> rquickjs::Error {
    Exception::throw_message(ctx, &format!("cannot read `{path}`: {error}"))
}

/// The hex SHA-256 of `parts` one after the other: strings as UTF-8,
/// `Uint8Array`s as their bytes.
fn sha256<'js>(ctx: Ctx<'js>, parts: Array<'js>) -> rquickjs::Result<String> {
    let mut hash = sha2::Sha256::new();
    for part in parts.iter::<Value>() {
        let part = part?;
        if let Some(text) = part.as_string() {
            hash.update(text.to_string()?.as_bytes());
        } else if let Some(bytes) = part
            .as_object()
            .and_then(|o| TypedArray::<u8>::from_object(o.clone()).ok())
        {
            // SAFETY: no JavaScript runs while the bytes are read.
            hash.update(unsafe { bytes.as_bytes() }.unwrap_or_default());
        } else {
            return Err(Exception::throw_type(&ctx, "sha256 hashes strings and Uint8Arrays"));
        }
    }
    Ok(hex::encode(hash.finalize()))
}
