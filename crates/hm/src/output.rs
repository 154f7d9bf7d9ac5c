//! Writing what a command prints, without ever panicking on it (as
//! `println!` does): a closed pipe ends the command quietly, as `ls | head`
//! does, and any other failure (a full device) is one error, exit 1.
//! Messages on stderr go through [`say!`](crate::say), which ignores a
//! stderr that cannot be written.

use std::io::{IsTerminal, Write};

use hm_render::{JsonRenderer, LiveRenderer, LogsRenderer, Renderer, Style};

use crate::cli::{ColorWhen, Format};
use crate::error::CliError;

/// `--color`, set once at the start.
static COLOR: std::sync::OnceLock<ColorWhen> = std::sync::OnceLock::new();

/// Sets what `--color` asks for.
pub fn set_color(when: ColorWhen) {
    let _ = COLOR.set(when);
}

/// The style of what goes to a stream that `is_terminal` or not.
pub fn style(is_terminal: bool) -> Style {
    match COLOR.get().copied().unwrap_or_default() {
        ColorWhen::Always => Style { color: true },
        ColorWhen::Never => Style { color: false },
        ColorWhen::Auto => Style::detect(is_terminal, crate::host::no_color()),
    }
}

/// How often a view is told that time passed.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// The view of a build on stdout: NDJSON; on a terminal the live view,
/// unless `logs` asks for every line; else the prefixed log lines.
pub fn renderer(format: Format, logs: bool) -> Box<dyn Renderer> {
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let style = style(terminal);
    let out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match format {
        Format::Json => Box::new(JsonRenderer::new(out)),
        // A terminal without a type, or `dumb`, cannot be redrawn.
        Format::Human if terminal && !logs && crate::host::term().is_some_and(|t| t != "dumb") => {
            match LiveRenderer::stdout(style) {
                Some(live) => Box::new(live),
                None => Box::new(LogsRenderer::new(out, style)),
            }
        }
        Format::Human => Box::new(LogsRenderer::new(out, style)),
    }
}

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), CliError> {
    print_bytes(text.as_bytes())
}

/// Writes `bytes` to stdout as they are, and flushes them.
pub fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// A table: columns two spaces apart, each as wide as its widest cell,
/// those in `right` aligned right, the header first.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| match right.contains(&i) {
                true => format!("{cell:>w$}"),
                false => format!("{cell:<w$}"),
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// The crates whose debug lines `-v` shows: hm's own, and the registry and
/// Docker clients'.
const DEBUG_TARGETS: [&str; 9] = [
    "hm",
    "hm_dsl",
    "hm_events",
    "hm_exec",
    "hm_ir",
    "hm_render",
    "hm_vm",
    "oci_client",
    "bollard",
];

/// `-v`: the debug lines of [`DEBUG_TARGETS`] go to stderr, one write
/// each, with the time since `hm` started. Without `-v` nothing listens,
/// and every `tracing` call costs a check of one global.
pub fn debug_to_stderr() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // A target is a module path: `hm` is not a prefix of `hmac`.
    let ours = |target: &str| {
        DEBUG_TARGETS.iter().any(|c| {
            target
                .strip_prefix(c)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
    };
    let filter = tracing_subscriber::filter::filter_fn(move |meta| {
        *meta.level() <= tracing::Level::DEBUG && ours(meta.target())
    })
    .with_max_level_hint(tracing::Level::DEBUG);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_filter(filter);
    // Also takes in `log` records (bollard's); fails only when something
    // listens already, which nothing does.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Whether an output error only means that nobody reads any more.
pub fn is_closed(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::BrokenPipe
}

/// `eprintln!` that never panics: a message nobody can read is dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // One write: a message is never cut by what another process (a
        // shell's prompt) writes on the same terminal meanwhile.
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}
