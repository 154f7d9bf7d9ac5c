//! `.hm/*.ts` and `.hm/*.js`: evaluated by QuickJS, embedded in `hm`, with
//! types stripped by oxc and `@harmont/hm` resolved to the SDK this crate
//! embeds (a copy in `.hm/node_modules` is not used).
//!
//! Every module is transpiled and every import checked first (see
//! [`graph`]); then one runtime imports each pipeline file in order, the
//! SDK's `__prepare` checks their `default` and `pipelines` exports and
//! calls their pipeline functions, and [`render`] makes the IR from the
//! steps they built. A thrown error comes back with the frames of the user's
//! own files, at their lines in the TypeScript source.

mod cache;
mod graph;
mod render;
mod transpile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{Array, Context, Ctx, Function, Module, Object, Runtime, Value};
use sha2::Digest;

use crate::python::Sourced;
use crate::LoadError;
use cache::{Compiled, SdkCache};
use graph::{sdk_name, Graph, SDK_PREFIX};

include!(concat!(env!("OUT_DIR"), "/typescript_sdk.rs"));

/// The SDK module that renders definitions.
const SDK_INDEX: &str = "src/index.ts";

/// Memory one evaluation may use.
const MEMORY_LIMIT: usize = 1 << 30;

/// Bytes allocated between collections of cycles. An evaluation is short and
/// makes few cycles; QuickJS's default (256 KiB) collects again and again
/// over a heap that only grows.
const GC_THRESHOLD: usize = 64 << 20;

/// A runtime with a project's module graph loaded and the host functions
/// the SDK needs.
struct Engine {
    graph: Graph,
    _runtime: Runtime,
    context: Context,
    cache: SdkCache,
    /// Bytecode of the SDK modules compiled in this run (none when the SDK
    /// came from the cache).
    compiled: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

/// A failure of the engine itself (not of the user's code), for `file`.
fn engine_failed(file: &Path) -> impl Fn(String) -> LoadError + '_ {
    move |message| LoadError::Evaluation {
        at: crate::Location::file(file),
        what: "the JavaScript engine failed",
        traceback: message,
    }
}

impl Engine {
    /// Transpiles and checks `entries` (absolute) and all they import; the
    /// SDK comes compiled from `sdk_root` when an earlier run left it there.
    fn new(root: &Path, entries: &[PathBuf], first: &Path, sdk_root: Option<&Path>) -> Result<Self, LoadError> {
        let cache = SdkCache::new(sdk_root);
        let graph = Graph::build(root, entries, cache.load().unwrap_or_default())?;
        let failed = engine_failed(first);
        let runtime = Runtime::new().map_err(|e| failed(e.to_string()))?;
        runtime.set_memory_limit(MEMORY_LIMIT);
        runtime.set_gc_threshold(GC_THRESHOLD);
        let codes = graph
            .modules
            .iter()
            .map(|(name, module)| {
                let source = match &module.bytecode {
                    Some(bytecode) => Source::Bytecode(bytecode.clone()),
                    None => Source::Code(module.transpiled.code.clone()),
                };
                (name.clone(), source)
            })
            .collect();
        let compiled = Arc::new(Mutex::new(BTreeMap::new()));
        let links = Links {
            links: graph.links.clone(),
            names: graph.modules.keys().cloned().collect(),
        };
        runtime.set_loader(
            links,
            Codes {
                sources: codes,
                compiled: compiled.clone(),
            },
        );
        let context = Context::full(&runtime).map_err(|e| failed(e.to_string()))?;
        context
            .with(|ctx| {
                let render = Function::new(ctx.clone(), render_to_json)?;
                ctx.globals().set("__hm_render", render)?;
                install_console(&ctx)
            })
            .map_err(|e| failed(e.to_string()))?;
        Ok(Engine {
            graph,
            _runtime: runtime,
            context,
            cache,
            compiled,
        })
    }

    /// Keeps the SDK modules this run compiled, for the next run.
    fn keep_compiled(mut self) {
        let bytecode = std::mem::take(&mut *self.compiled.lock().unwrap_or_else(|p| p.into_inner()));
        if bytecode.is_empty() {
            return;
        }
        let modules = bytecode
            .into_iter()
            .filter_map(|(name, bytecode)| {
                let module = self.graph.modules.remove(&name)?;
                Some((
                    name,
                    Compiled {
                        transpiled: module.transpiled,
                        bytecode,
                    },
                ))
            })
            .collect();
        self.cache.store(modules);
    }
}

/// The module name of a project file.
fn module_name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).to_string_lossy().into_owned()
}

/// Evaluates the TypeScript and JavaScript pipeline files `files`
/// (absolute, in order) of the project at `root`.
pub(crate) fn evaluate(
    root: &Path,
    files: &[PathBuf],
    first: &Path,
    sdk_root: Option<&Path>,
) -> Result<Vec<Sourced>, LoadError> {
    let engine = Engine::new(root, files, first, sdk_root)?;
    let failed = engine_failed(first);
    let graph = &engine.graph;
    let sourced = engine.context.with(|ctx| {
        let list = Array::new(ctx.clone()).map_err(|e| failed(e.to_string()))?;
        for (i, file) in files.iter().enumerate() {
            let name = module_name(root, file);
            let namespace = import(&ctx, &name).map_err(|thrown| thrown.into_error(graph, Path::new(&name)))?;
            let entry = Object::new(ctx.clone()).map_err(|e| failed(e.to_string()))?;
            entry.set("file", name.as_str()).map_err(|e| failed(e.to_string()))?;
            entry.set("exports", namespace).map_err(|e| failed(e.to_string()))?;
            list.set(i, entry).map_err(|e| failed(e.to_string()))?;
        }
        let sdk = import(&ctx, &sdk_name(SDK_INDEX)).map_err(|thrown| thrown.into_error(graph, first))?;
        let prepare: Function = sdk.get("__prepare").map_err(|e| failed(e.to_string()))?;
        let prepared: Array = prepare
            .call((list,))
            .map_err(|e| Thrown::caught(&ctx, e).into_error(graph, first))?;
        render::render(&ctx, &prepared).map_err(|failure| LoadError::Evaluation {
            at: crate::Location::file(failure.file.map_or_else(|| first.to_owned(), PathBuf::from)),
            what: "the pipeline file raised an error",
            traceback: format!("HarmontError: {}", failure.message),
        })
    })?;
    engine.keep_compiled();
    Ok(sourced)
}

/// `__hm_render(prepared, fail)`, for the SDK's `__render`: the envelope
/// of the prepared pipelines and their files as JSON, or what
/// `fail(message, file)` throws when one cannot be rendered.
fn render_to_json<'js>(ctx: Ctx<'js>, prepared: Array<'js>, fail: Function<'js>) -> rquickjs::Result<String> {
    #[derive(serde::Serialize)]
    struct Reply {
        envelope: hm_ir::Envelope,
        sources: Vec<crate::Location>,
    }
    match render::render(&ctx, &prepared) {
        Ok(sourced) => {
            let (pipelines, sources) = sourced.into_iter().unzip();
            let envelope = hm_ir::Envelope {
                pipelines,
                ..hm_ir::Envelope::new()
            };
            serde_json::to_string(&Reply { envelope, sources })
                .map_err(|e| rquickjs::Exception::throw_internal(&ctx, &e.to_string()))
        }
        Err(failure) => {
            fail.call::<_, ()>((failure.message.as_str(), failure.file.unwrap_or_default()))?;
            Err(rquickjs::Exception::throw_internal(&ctx, "`fail` returned"))
        }
    }
}

/// One test of a script test suite and how it ended: `Err` holds the
/// error, with the frames of the suite's own files.
#[derive(Debug)]
pub struct TestOutcome {
    pub file: PathBuf,
    pub name: String,
    pub result: Result<(), String>,
}

/// Runs the test suites `files` (absolute, under `root`) in the embedded
/// engine: each exports `tests`, an object of functions; every function
/// is called, and a throw fails it. Used by the SDK's own test suite.
#[doc(hidden)]
pub fn run_script_tests(root: &Path, files: &[PathBuf]) -> Result<Vec<TestOutcome>, LoadError> {
    let first = files.first().map(|f| module_name(root, f)).unwrap_or_default();
    let engine = Engine::new(root, files, Path::new(&first), None)?;
    let graph = &engine.graph;
    engine.context.with(|ctx| {
        // The suites check derived keys and preset digests against SHA-256s
        // of their own: `__hm_sha256(text)`, the hex digest of its UTF-8.
        Function::new(ctx.clone(), |text: String| -> String {
            sha2::Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .and_then(|sha256| ctx.globals().set("__hm_sha256", sha256))
        .map_err(|e| engine_failed(Path::new(&first))(e.to_string()))?;
        let mut outcomes = Vec::new();
        for file in files {
            let name = module_name(root, file);
            let namespace = import(&ctx, &name).map_err(|thrown| thrown.into_error(graph, Path::new(&name)))?;
            let tests: Object = namespace
                .get("tests")
                .map_err(|_| engine_failed(Path::new(&name))("it exports no `tests` object".to_owned()))?;
            for key in tests.keys::<String>() {
                let Ok(test) = key else { continue };
                let function: Function = tests
                    .get(test.as_str())
                    .map_err(|e| engine_failed(Path::new(&name))(e.to_string()))?;
                let result = function.call::<_, Value>(()).map(drop).map_err(|e| {
                    match Thrown::caught(&ctx, e).into_error(graph, Path::new(&name)) {
                        LoadError::Evaluation { traceback, .. } => traceback,
                        other => other.to_string(),
                    }
                });
                outcomes.push(TestOutcome {
                    file: PathBuf::from(&name),
                    name: test,
                    result,
                });
            }
        }
        Ok(outcomes)
    })
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

/// What a module is loaded from.
enum Source {
    Code(String),
    /// Bytecode this program wrote, checked against its hash on reading.
    Bytecode(Vec<u8>),
}

/// Module name to its source; SDK modules compiled from code leave their
/// bytecode in `compiled`.
struct Codes {
    sources: BTreeMap<String, Source>,
    compiled: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl Loader for Codes {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, rquickjs::module::Declared>> {
        match self
            .sources
            .get(name)
            .ok_or_else(|| rquickjs::Error::new_loading(name))?
        {
            // SAFETY: the bytes are bytecode QuickJS wrote for this engine
            // version (the cache is keyed by it), and their BLAKE3 hash
            // matched the one recorded when they were written.
            Source::Bytecode(bytes) => unsafe { Module::load(ctx.clone(), bytes) },
            Source::Code(code) => {
                let module = Module::declare(ctx.clone(), name, code.as_str())?;
                if name.starts_with(SDK_PREFIX) {
                    // Without source text and positions: stack traces show
                    // only the user's frames, and the smaller bytecode
                    // loads faster.
                    let options = rquickjs::module::WriteOptions {
                        strip_source: true,
                        strip_debug: true,
                        ..Default::default()
                    };
                    if let Ok(bytes) = module.write(options) {
                        self.compiled
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name.to_owned(), bytes);
                    }
                }
                Ok(module)
            }
        }
    }
}

/// A JavaScript value as JSON: what `JSON.stringify` would give, read
/// straight from the engine's objects.
fn to_json(value: &Value<'_>) -> Result<serde_json::Value, String> {
    use rquickjs::Type;
    Ok(match value.type_of() {
        Type::Null | Type::Undefined => serde_json::Value::Null,
        Type::Bool => serde_json::Value::Bool(value.as_bool().unwrap_or_default()),
        Type::Int => serde_json::Value::from(value.as_int().unwrap_or_default()),
        Type::Float => {
            let float = value.as_float().unwrap_or_default();
            if float.fract() == 0.0 && float.abs() < 9.0e15 {
                serde_json::Value::from(float as i64)
            } else {
                serde_json::Number::from_f64(float).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Type::String => serde_json::Value::String(
            value
                .as_string()
                .and_then(|s| s.to_string().ok())
                .ok_or("a string that is not Unicode")?,
        ),
        Type::Array => {
            let array = value.as_array().ok_or("not an array")?;
            let mut items = Vec::with_capacity(array.len());
            for item in array.iter::<Value>() {
                items.push(to_json(&item.map_err(|e| e.to_string())?)?);
            }
            serde_json::Value::Array(items)
        }
        Type::Object => {
            let object = value.as_object().ok_or("not an object")?;
            let mut map = serde_json::Map::new();
            for prop in object.props::<String, Value>() {
                let (key, item) = prop.map_err(|e| e.to_string())?;
                if !item.is_undefined() {
                    map.insert(key, to_json(&item)?);
                }
            }
            serde_json::Value::Object(map)
        }
        other => return Err(format!("the SDK rendered a {other} value")),
    })
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
        let at = frames
            .first()
            .map(|(at, _)| at.clone())
            .unwrap_or_else(|| crate::Location::file(fallback));
        let mut traceback = self.summary;
        for (_, frame) in &frames {
            traceback.push_str("\n    at ");
            traceback.push_str(frame);
        }
        LoadError::Evaluation {
            at,
            what: "the pipeline file raised an error",
            traceback,
        }
    }
}

/// A stack frame of a project file (`at f (name:line:col)` or
/// `at name:line:col`), mapped to the original source: where, and the frame
/// as shown.
fn user_frame(graph: &Graph, line: &str) -> Option<(crate::Location, String)> {
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
        crate::Location::at(file, line, column),
        match function {
            Some(function) if !function.is_empty() && function != "<anonymous>" => format!("{function} ({place})"),
            _ => place,
        },
    ))
}
