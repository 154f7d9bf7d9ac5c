//! `.hm/*.ts` and `.hm/*.js`: evaluated by QuickJS, embedded in `hm`, with
//! types stripped by oxc and `@harmont/hm` resolved to the SDK this crate
//! embeds (a copy in `.hm/node_modules` is not used).
//!
//! Every module is transpiled and every import checked first (see
//! [`graph`]); then one runtime imports each pipeline file in order, the
//! SDK's engine module (`src/engine.ts`) reads and checks their `default`
//! (else `pipelines`) exports, and [`render`] makes the IR of every
//! pipeline whose graph nobody read from the leaves the SDK kept. A thrown
//! error comes back with the frames of the user's own files, at their lines
//! in the TypeScript source, and says what a failed call was.

mod cache;
mod explain;
mod graph;
mod host;
mod render;
mod transpile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::{Array, Context, Ctx, Function, Module, Object, Runtime, Value};

use crate::python::Sourced;
use crate::{LoadError, Location};
use cache::{Compiled, SdkCache};
use graph::{sdk_name, Graph, SDK_ENGINE, SDK_PREFIX};

include!(concat!(env!("OUT_DIR"), "/typescript_sdk.rs"));

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
        at: Location::file(file),
        what: "the JavaScript engine failed",
        traceback: message,
    }
}

impl Engine {
    /// Transpiles and checks `entries` (absolute) and all they import; the
    /// SDK comes compiled from `sdk_root` when an earlier run left it there.
    /// With `internals`, project files may import the SDK's own modules.
    fn new(
        root: &Path,
        entries: &[PathBuf],
        first: &Path,
        sdk_root: Option<&Path>,
        internals: bool,
        env: Arc<BTreeMap<String, String>>,
    ) -> Result<Self, LoadError> {
        let cache = SdkCache::new(sdk_root);
        let graph = Graph::build(root, entries, cache.load().unwrap_or_default(), internals)?;
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
                host::install(&ctx, root, env)?;
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

/// Imports every file of `files` (absolute, under `root`), in order:
/// `[{file, exports}, ...]` for the SDK's `prepare`.
fn import_files<'js>(ctx: &Ctx<'js>, graph: &Graph, root: &Path, files: &[PathBuf]) -> Result<Array<'js>, LoadError> {
    let failed = |file: &str, e: rquickjs::Error| engine_failed(Path::new(file))(e.to_string());
    let list = Array::new(ctx.clone()).map_err(|e| failed("", e))?;
    for (i, file) in files.iter().enumerate() {
        let name = module_name(root, file);
        let namespace = import(ctx, &name).map_err(|thrown| thrown.into_error(graph, Path::new(&name)))?;
        let entry = Object::new(ctx.clone()).map_err(|e| failed(&name, e))?;
        entry
            .set("file", name.as_str())
            .and_then(|()| entry.set("exports", namespace))
            .and_then(|()| list.set(i, entry))
            .map_err(|e| failed(&name, e))?;
    }
    Ok(list)
}

/// Where the project file `file` exports `name`.
fn export_location(graph: &Graph, file: &str, name: &str) -> Option<Location> {
    let module = graph.modules.get(file)?;
    let (_, at) = module.transpiled.export_at.iter().find(|(export, _)| export == name)?;
    Some(Location::at(module.file.clone()?, at.line, at.column))
}

/// Where the stack `stack` (captured in `pipeline()`) was in a project
/// file: where that `pipeline(` call starts.
fn stack_location(graph: &Graph, stack: &str) -> Option<Location> {
    let at = stack
        .lines()
        .find_map(|line| user_frame(graph, line.trim()))
        .map(|(at, _)| at)?;
    let start = match (at.line, at.column) {
        (Some(line), Some(column)) => std::fs::read_to_string(graph.root.join(&at.file))
            .ok()
            .and_then(|source| explain::call_start(&source, &at.file, "pipeline", line, column)),
        _ => None,
    };
    Some(match start {
        Some((line, column)) => Location::at(at.file, line, column),
        None => at,
    })
}

/// Evaluates the TypeScript and JavaScript pipeline files `files`
/// (absolute, in order) of the project at `root`.
pub(crate) fn evaluate(
    root: &Path,
    files: &[PathBuf],
    first: &Path,
    options: &crate::EvalOptions,
) -> Result<Vec<Sourced>, LoadError> {
    let sdk_root = options.sdk_root.as_deref();
    let engine = Engine::new(root, files, first, sdk_root, false, options.env.clone())?;
    let failed = engine_failed(first);
    let graph = &engine.graph;
    let sourced = engine.context.with(|ctx| {
        let list = import_files(&ctx, graph, root, files)?;
        let sdk = import(&ctx, &sdk_name(SDK_ENGINE)).map_err(|thrown| thrown.into_error(graph, first))?;
        let prepare: Function = sdk.get("prepare").map_err(|e| failed(e.to_string()))?;
        let prepared: Array = prepare
            .call((list,))
            .map_err(|e| Thrown::caught(&ctx, e).into_error(graph, first))?;
        let names = render::Names::new(&ctx).map_err(|e| failed(e.to_string()))?;
        let mut sourced = Vec::with_capacity(prepared.len());
        for item in prepared.iter::<Object>() {
            let item = item.map_err(|e| failed(e.to_string()))?;
            let file: String = item.get("file").map_err(|e| failed(e.to_string()))?;
            let exported: String = item.get("exported").map_err(|e| failed(e.to_string()))?;
            let stack: Option<String> = item.get("where").map_err(|e| failed(e.to_string()))?;
            // Where `pipeline()` made the IR, else where the file exports it.
            let at = stack
                .and_then(|stack| stack_location(graph, &stack))
                .or_else(|| export_location(graph, &file, &exported))
                .unwrap_or_else(|| Location::file(&file));
            let pipeline = render::pipeline(&names, &item).map_err(|err| LoadError::Evaluation {
                at: at.clone(),
                what: "the pipeline cannot be rendered",
                traceback: err.to_string(),
            })?;
            sourced.push((pipeline, at));
        }
        Ok(sourced)
    })?;
    engine.keep_compiled();
    Ok(sourced)
}

/// One test of a script test suite and how it ended.
#[derive(Debug)]
pub struct TestOutcome {
    pub file: PathBuf,
    pub name: String,
    pub result: Result<(), TestFailure>,
}

/// Why a script test failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestFailure {
    /// It threw: the error, with the frames of the suite's own files.
    #[error("{0}")]
    Threw(String),
    /// The pipelines it made came out differently from Rust and from the
    /// SDK's own JavaScript lowering: one line per pipeline.
    #[error("{}", .0.join("\n"))]
    LoweringsDiffer(Vec<String>),
}

/// Runs the test suites `files` (absolute, under `root`) in the embedded
/// engine: each exports `tests`, an object of functions; every function
/// is called, and a throw fails it. Used by the SDK's own test suite, whose
/// files may import the SDK's own modules (`@harmont/hm/src/keys.ts`).
///
/// Every pipeline a suite makes (when its module is evaluated, and in each
/// test) has its graph made both ways, by the SDK's JavaScript and by the
/// engine's Rust, and the two must be equal: a difference fails the test
/// (or the module, as a test named `(module)`).
#[doc(hidden)]
pub fn run_script_tests(
    root: &Path,
    files: &[PathBuf],
    env: BTreeMap<String, String>,
) -> Result<Vec<TestOutcome>, LoadError> {
    let first = files.first().map(|f| module_name(root, f)).unwrap_or_default();
    let engine = Engine::new(root, files, Path::new(&first), None, true, Arc::new(env))?;
    let graph = &engine.graph;
    let failed = |file: &str, message: String| engine_failed(Path::new(file))(message);
    engine.context.with(|ctx| {
        let created = || -> rquickjs::Result<()> { ctx.globals().set("__hm_created", Array::new(ctx.clone())?) };
        created().map_err(|e| failed(&first, e.to_string()))?;
        let sdk = import(&ctx, &sdk_name(SDK_ENGINE)).map_err(|thrown| thrown.into_error(graph, Path::new(&first)))?;
        let names = render::Names::new(&ctx).map_err(|e| failed(&first, e.to_string()))?;
        let mut outcomes = Vec::new();
        for file in files {
            let name = module_name(root, file);
            let namespace = import(&ctx, &name).map_err(|thrown| thrown.into_error(graph, Path::new(&name)))?;
            let differ = lowerings_differ(&ctx, &sdk, &names).map_err(|e| failed(&name, e.summary))?;
            if !differ.is_empty() {
                outcomes.push(TestOutcome {
                    file: PathBuf::from(&name),
                    name: "(module)".to_owned(),
                    result: Err(TestFailure::LoweringsDiffer(differ)),
                });
            }
            let tests: Object = namespace
                .get("tests")
                .map_err(|_| failed(&name, "it exports no `tests` object".to_owned()))?;
            for key in tests.keys::<String>() {
                let Ok(test) = key else { continue };
                let function: Function = tests.get(test.as_str()).map_err(|e| failed(&name, e.to_string()))?;
                let mut result = function.call::<_, Value>(()).map(drop).map_err(|e| {
                    TestFailure::Threw(match Thrown::caught(&ctx, e).into_error(graph, Path::new(&name)) {
                        LoadError::Evaluation { traceback, .. } => traceback,
                        other => other.to_string(),
                    })
                });
                let differ = lowerings_differ(&ctx, &sdk, &names).map_err(|e| failed(&name, e.summary))?;
                if result.is_ok() && !differ.is_empty() {
                    result = Err(TestFailure::LoweringsDiffer(differ));
                }
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

/// Takes the pipelines made since the last call (`__hm_created`) and
/// makes each one's graph in JavaScript and in Rust: how they differ, one
/// line each.
fn lowerings_differ<'js>(ctx: &Ctx<'js>, sdk: &Object<'js>, names: &render::Names<'js>) -> Result<Vec<String>, Thrown> {
    let js = |e: rquickjs::Error| Thrown::caught(ctx, e);
    let made: Array = ctx.globals().get("__hm_created").map_err(js)?;
    ctx.globals()
        .set("__hm_created", Array::new(ctx.clone()).map_err(js)?)
        .map_err(js)?;
    let lowering_of: Function = sdk.get("loweringOf").map_err(js)?;
    let lower_in_js: Function = sdk.get("lowerInJs").map_err(js)?;
    let mut differ = Vec::new();
    for (i, ir) in made.iter::<Object>().enumerate() {
        let ir = ir.map_err(js)?;
        let lowering: Object = lowering_of.call((ir.clone(),)).map_err(js)?;
        let in_rust = render::definition(names, &ir, &lowering)
            .map(|definition| serde_json::to_value(definition).unwrap_or_default());
        let in_js = lower_in_js
            .call::<_, String>((ir,))
            .map_err(|e| JsLoweringError::Threw(js(e).summary))
            .and_then(|json| Ok(serde_json::from_str::<serde_json::Value>(&json)?));
        match (in_rust, in_js) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => differ.push(format!(
                "pipeline {i}: made in Rust and in JavaScript, the graphs differ: {}",
                first_difference(&a, &b, "$")
            )),
            (Err(e), _) => differ.push(format!("pipeline {i}: made in Rust: {e}")),
            (_, Err(e)) => differ.push(format!("pipeline {i}: made in JavaScript: {e}")),
        }
    }
    Ok(differ)
}

/// Where two JSON values first differ, as `path: rust ... js ...`.
/// Why the SDK's JavaScript lowering gave no graph.
#[derive(Debug, thiserror::Error)]
enum JsLoweringError {
    /// It threw (`Name: message`).
    #[error("{0}")]
    Threw(String),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> String {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) if p == q => {}
                    (Some(p), Some(q)) => return first_difference(p, q, &format!("{path}.{key}")),
                    (p, q) => return format!("{path}.{key}: rust {p:?}, js {q:?}"),
                }
            }
        }
        (J::Array(x), J::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if p != q {
                    return first_difference(p, q, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
    format!("{path}: rust {a}, js {b}")
}

/// `console.log` and friends, writing to stderr as Python's `print` does
/// (stdout carries `hm`'s own output). A line stderr cannot take is
/// dropped: a pipeline's chatter never stops its evaluation.
fn install_console(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let console = Object::new(ctx.clone())?;
    for method in ["log", "info", "warn", "error", "debug"] {
        let print = Function::new(ctx.clone(), |args: rquickjs::function::Rest<Value>| {
            use std::io::Write;
            let text: Vec<String> = args.0.iter().map(display).collect();
            let _ = writeln!(std::io::stderr().lock(), "{}", text.join(" "));
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

/// Why a JavaScript value has no JSON form.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToJsonError {
    #[error("a string that is not Unicode")]
    NotUnicode,
    #[error("not an array")]
    NotAnArray,
    #[error("not an object")]
    NotAnObject,
    #[error(transparent)]
    Engine(#[from] rquickjs::Error),
    #[error("the SDK rendered a {0} value")]
    Unrenderable(rquickjs::Type),
}

/// A JavaScript value as JSON: what `JSON.stringify` would give, read
/// straight from the engine's objects.
fn to_json(value: &Value<'_>) -> Result<serde_json::Value, ToJsonError> {
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
                .ok_or(ToJsonError::NotUnicode)?,
        ),
        Type::Array => {
            let array = value.as_array().ok_or(ToJsonError::NotAnArray)?;
            let mut items = Vec::with_capacity(array.len());
            for item in array.iter::<Value>() {
                items.push(to_json(&item?)?);
            }
            serde_json::Value::Array(items)
        }
        Type::Object => {
            let object = value.as_object().ok_or(ToJsonError::NotAnObject)?;
            let mut map = serde_json::Map::new();
            for prop in object.props::<String, Value>() {
                let (key, item) = prop?;
                if !item.is_undefined() {
                    map.insert(key, to_json(&item)?);
                }
            }
            serde_json::Value::Object(map)
        }
        other => return Err(ToJsonError::Unrenderable(other)),
    })
}

/// A JavaScript exception, as text.
struct Thrown {
    /// `Name: message`.
    summary: String,
    /// QuickJS's stack, one frame per line.
    stack: String,
    /// For an error in a file's exported definitions: the file and the
    /// export (`hmFile`, `hmExport`).
    export: Option<(String, String)>,
}

impl Thrown {
    /// The exception behind `error` (QuickJS keeps it aside).
    fn caught(ctx: &Ctx<'_>, error: rquickjs::Error) -> Self {
        if !matches!(error, rquickjs::Error::Exception) {
            return Thrown {
                summary: error.to_string(),
                stack: String::new(),
                export: None,
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
            let file: Option<String> = object.get("hmFile").ok();
            let export: Option<String> = object.get("hmExport").ok();
            return Thrown {
                summary,
                stack: stack.unwrap_or_default(),
                export: file.zip(export),
            };
        }
        let text = value
            .as_string()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| format!("{value:?}"));
        Thrown {
            summary: format!("Uncaught {text}"),
            stack: String::new(),
            export: None,
        }
    }

    /// The error `hm` reports: the message (naming what a failed call was)
    /// and the frames of project files, at their places in the original
    /// source. An error in a file's definitions is shown at its export.
    fn into_error(self, graph: &Graph, fallback: &Path) -> LoadError {
        let mut frames = Vec::new();
        for line in self.stack.lines() {
            if let Some(frame) = user_frame(graph, line.trim()) {
                frames.push(frame);
            }
        }
        let exported = self
            .export
            .as_ref()
            .and_then(|(file, export)| export_location(graph, file, export));
        let at = exported
            .or_else(|| frames.first().map(|(at, _)| at.clone()))
            .unwrap_or_else(|| Location::file(fallback));
        let summary = match (frames.first(), at.line, at.column) {
            (Some(_), Some(line), Some(column)) => std::fs::read_to_string(graph.root.join(&at.file))
                .ok()
                .and_then(|source| explain::explain(&self.summary, &source, &at.file, line, column))
                .unwrap_or(self.summary),
            _ => self.summary,
        };
        let mut traceback = summary;
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
fn user_frame(graph: &Graph, line: &str) -> Option<(Location, String)> {
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
        Location::at(file, line, column),
        match function {
            Some(function) if !function.is_empty() && function != "<anonymous>" => format!("{function} ({place})"),
            _ => place,
        },
    ))
}
