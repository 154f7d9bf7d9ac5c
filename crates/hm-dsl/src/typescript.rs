//! `.hm/*.ts` and `.hm/*.js`: evaluated by QuickJS, embedded in `hm`, with
//! types stripped by oxc and `@harmont/hm` resolved to the SDK this crate
//! embeds (a copy in `.hm/node_modules` is not used).
//!
//! Every module is transpiled and every import checked first (see
//! [`graph`]); then one runtime imports each pipeline file in order, and
//! the SDK's `__render` turns their `default` and `pipelines` exports into
//! the envelope. A thrown error comes back with the frames of the user's
//! own files, at their lines in the TypeScript source.

mod graph;
mod transpile;

use std::path::{Path, PathBuf};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{Array, Context, Ctx, Function, Module, Object, Runtime, Value};
use sha2::Digest;

use crate::python::{Rendered, Sourced};
use crate::LoadError;
use graph::{sdk_name, Graph};

include!(concat!(env!("OUT_DIR"), "/typescript_sdk.rs"));

/// The SDK module that renders definitions.
const SDK_INDEX: &str = "src/index.ts";

/// Memory one evaluation may use.
const MEMORY_LIMIT: usize = 1 << 30;

/// Evaluates the TypeScript and JavaScript pipeline files `files`
/// (absolute, in order) of the project at `root`.
pub(crate) fn evaluate(root: &Path, files: &[PathBuf], first: &Path) -> Result<Vec<Sourced>, LoadError> {
    let graph = Graph::build(root, files)?;
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap_or(f).to_string_lossy().into_owned())
        .collect();
    let failed = |message: String| LoadError::Evaluation {
        file: first.to_owned(),
        what: "the JavaScript engine failed",
        traceback: message,
    };
    let runtime = Runtime::new().map_err(|e| failed(e.to_string()))?;
    runtime.set_memory_limit(MEMORY_LIMIT);
    let codes = graph
        .modules
        .iter()
        .map(|(name, module)| (name.clone(), module.transpiled.code.clone()))
        .collect();
    let links = Links {
        links: graph.links.clone(),
        names: graph.modules.keys().cloned().collect(),
    };
    runtime.set_loader(links, Codes(codes));
    let context = Context::full(&runtime).map_err(|e| failed(e.to_string()))?;
    let rendered: Result<String, LoadError> = context.with(|ctx| {
        let sha256 = Function::new(ctx.clone(), |text: String| -> String {
            sha2::Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .map_err(|e| failed(e.to_string()))?;
        ctx.globals()
            .set("__hm_sha256", sha256)
            .map_err(|e| failed(e.to_string()))?;
        install_console(&ctx).map_err(|e| failed(e.to_string()))?;
        let list = Array::new(ctx.clone()).map_err(|e| failed(e.to_string()))?;
        for (i, name) in names.iter().enumerate() {
            let namespace = import(&ctx, name).map_err(|thrown| thrown.into_error(&graph, Path::new(name)))?;
            let entry = Object::new(ctx.clone()).map_err(|e| failed(e.to_string()))?;
            entry.set("file", name.as_str()).map_err(|e| failed(e.to_string()))?;
            entry.set("exports", namespace).map_err(|e| failed(e.to_string()))?;
            list.set(i, entry).map_err(|e| failed(e.to_string()))?;
        }
        let sdk = import(&ctx, &sdk_name(SDK_INDEX)).map_err(|thrown| thrown.into_error(&graph, first))?;
        let render: Function = sdk.get("__render").map_err(|e| failed(e.to_string()))?;
        render
            .call::<_, String>((list,))
            .map_err(|e| Thrown::caught(&ctx, e).into_error(&graph, first))
    });
    let rendered = rendered?;
    let rendered: Rendered =
        serde_json::from_str(&rendered).map_err(|e| failed(format!("the SDK rendered something else: {e}")))?;
    rendered
        .into_sourced()
        .ok_or_else(|| failed("the SDK named a file for some pipelines only".to_owned()))
}

/// `console.log` and friends, writing to stderr as Python's `print` does
/// (stdout carries `hm`'s own output).
fn install_console(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    for method in ["log", "info", "warn", "error", "debug"] {
        let print = Function::new(ctx.clone(), |args: rquickjs::function::Rest<Value>| {
            let text: Vec<String> = args.0.iter().map(display).collect();
            eprintln!("{}", text.join(" "));
        })?;
        console.set(method, print)?;
    }
    ctx.globals().set("console", console)
}

/// A value as `console.log` shows it: strings as they are, anything else
/// as JSON where it can be.
fn display(value: &Value<'_>) -> String {
    if let Some(text) = value.as_string().and_then(|s| s.to_string().ok()) {
        return text;
    }
    if value.is_undefined() {
        return "undefined".to_owned();
    }
    value
        .ctx()
        .json_stringify(value.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// Imports the module `name` and returns its namespace.
fn import<'js>(ctx: &Ctx<'js>, name: &str) -> Result<Object<'js>, Thrown> {
    Module::import(ctx, name)
        .and_then(|promise| promise.finish::<Object>())
        .map_err(|e| Thrown::caught(ctx, e))
}

/// `(importer, specifier)` to module name, as [`Graph`] resolved them;
/// a module's own name (what `hm` imports by) resolves to itself.
struct Links {
    links: std::collections::BTreeMap<(String, String), String>,
    names: std::collections::BTreeSet<String>,
}

impl Resolver for Links {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        if let Some(target) = self.links.get(&(base.to_owned(), name.to_owned())) {
            return Ok(target.clone());
        }
        if self.names.contains(name) {
            return Ok(name.to_owned());
        }
        Err(rquickjs::Error::new_resolving(base, name))
    }
}

/// Module name to transpiled code.
struct Codes(std::collections::BTreeMap<String, String>);

impl Loader for Codes {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
        let code = self.0.get(name).ok_or_else(|| rquickjs::Error::new_loading(name))?;
        Module::declare(ctx.clone(), name, code.as_str())
    }
}

/// A JavaScript exception, as text.
struct Thrown {
    /// `Name: message`.
    summary: String,
    /// QuickJS's stack, one frame per line.
    stack: String,
}

impl Thrown {
    /// The exception behind `error` (QuickJS keeps it aside).
    fn caught(ctx: &Ctx<'_>, error: rquickjs::Error) -> Self {
        if !matches!(error, rquickjs::Error::Exception) {
            return Thrown {
                summary: error.to_string(),
                stack: String::new(),
            };
        }
        let value: Value = ctx.catch();
        if let Some(object) = value.as_object() {
            let name: Option<String> = object.get("name").ok();
            let message: Option<String> = object.get("message").ok();
            let stack: Option<String> = object.get("stack").ok();
            let summary = match (name, message) {
                (Some(name), Some(message)) if !message.is_empty() => format!("{name}: {message}"),
                (Some(name), _) => name,
                (None, Some(message)) => message,
                (None, None) => "an object was thrown".to_owned(),
            };
            return Thrown {
                summary,
                stack: stack.unwrap_or_default(),
            };
        }
        let text = value
            .as_string()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| format!("{value:?}"));
        Thrown {
            summary: format!("Uncaught {text}"),
            stack: String::new(),
        }
    }

    /// The error `hm` reports: the message and the frames of project files,
    /// at their places in the original source.
    fn into_error(self, graph: &Graph, fallback: &Path) -> LoadError {
        let mut frames = Vec::new();
        for line in self.stack.lines() {
            if let Some(frame) = user_frame(graph, line.trim()) {
                frames.push(frame);
            }
        }
        let file = frames
            .first()
            .map(|(file, _)| PathBuf::from(file))
            .unwrap_or_else(|| fallback.to_owned());
        let mut traceback = self.summary;
        for (_, frame) in &frames {
            traceback.push_str("\n    at ");
            traceback.push_str(frame);
        }
        LoadError::Evaluation {
            file,
            what: "the pipeline file raised an error",
            traceback,
        }
    }
}

/// A stack frame of a project file (`at f (name:line:col)` or
/// `at name:line:col`), mapped to the original source: `(file, frame)`.
fn user_frame(graph: &Graph, line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("at ")?;
    let (function, location) = match rest.rsplit_once(" (") {
        Some((function, location)) => (Some(function), location.strip_suffix(')')?),
        None => (None, rest),
    };
    let (location, column) = location.rsplit_once(':')?;
    let (name, line) = location.rsplit_once(':')?;
    let (line, column): (u32, u32) = (line.parse().ok()?, column.parse().ok()?);
    let module = graph.modules.get(name)?;
    let file = module.file.as_ref()?.to_string_lossy().into_owned();
    let original = module.transpiled.map.as_ref().and_then(|map| {
        let table = map.generate_lookup_table();
        map.lookup_token(&table, line.saturating_sub(1), column.saturating_sub(1))
            .map(|t| (t.get_src_line() + 1, t.get_src_col() + 1))
    });
    let (line, column) = original.unwrap_or((line, column));
    let place = format!("{file}:{line}:{column}");
    Some((
        file,
        match function {
            Some(function) if !function.is_empty() && function != "<anonymous>" => format!("{function} ({place})"),
            _ => place,
        },
    ))
}
