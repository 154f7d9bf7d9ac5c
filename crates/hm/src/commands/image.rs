use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hm_exec::exit_codes;
use hm_vm::{ImageStore, ImportObserver, ImportPhase, ImportProgress, ImportSummary};
use tokio::signal::unix::{signal, SignalKind};

use super::{cache_dir, print_json};
use crate::cli::{Format, ImageCommand};
use crate::error::CliError;

/// `hm image ...`.
pub async fn image(command: ImageCommand) -> Result<i32, CliError> {
    let cache = cache_dir()?;
    let store = ImageStore::new(&cache);
    match command {
        ImageCommand::Pull { reference, platform } => {
            let name = crate::pull::parse(&reference)?;
            let root = std::env::current_dir()
                .ok()
                .and_then(|dir| hm_dsl::Project::find(&dir).ok());
            let config = super::config(root.as_ref().map(|p| p.root.as_path()))?;
            let settings = crate::pull::settings(&config, platform.as_deref())?;
            let stop = Arc::new(AtomicBool::new(false));
            let stopper = stop.clone();
            let signals = tokio::spawn(async move {
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                stopper.store(true, Ordering::SeqCst);
                say!("hm: interrupted; removing what the pull stored so far...");
            });
            let pulled = crate::pull::pull(&cache, &name, &settings, crate::pull::View::Human, None, stop).await;
            signals.abort();
            let pulled = pulled?;
            crate::output::print(&format!("{} {}\n", pulled.info.name, pulled.info.id))?;
        }
        ImageCommand::Import { name, path } => {
            say!("importing `{name}` from `{}`...", path.display());
            let summary = import(store, name.clone(), path).await?;
            let info = &summary.info;
            say!(
                "imported `{name}`: {} entries, {}, id {}",
                info.files,
                format_size(info.size_bytes),
                short_id(&info.id)
            );
            if summary.skipped_special > 0 {
                say!(
                    "note: {} device nodes were left out (creating them needs root); the sandbox provides its own /dev",
                    summary.skipped_special
                );
            }
        }
        ImageCommand::Ls { format } => {
            let images = store.list()?;
            match format {
                Format::Json => print_json(&images)?,
                Format::Human => {
                    let width = images.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
                    let mut text = format!(
                        "{:<width$}  {:<19}  {:>9}  {:<8}  SOURCE\n",
                        "NAME", "DIGEST", "SIZE", "PULLED"
                    );
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    for image in images {
                        let (when, source) = match image.pulled {
                            Some(at) => (
                                format!("{} ago", format_age(now.saturating_sub(at))),
                                image.source.clone(),
                            ),
                            None => (
                                "-".to_owned(),
                                format!(
                                    "imported {} ago from {}",
                                    format_age(now.saturating_sub(image.created)),
                                    image.source
                                ),
                            ),
                        };
                        text.push_str(&format!(
                            "{:<width$}  {:<19}  {:>9}  {:<8}  {}\n",
                            image.name,
                            short_id(&image.id),
                            format_size(image.size_bytes),
                            when,
                            source,
                        ));
                    }
                    crate::output::print(&text)?;
                }
            }
        }
        ImageCommand::Rm { name } => {
            let freed = store.remove(&name)?;
            match freed {
                0 => say!("removed `{name}`"),
                bytes => say!(
                    "removed `{name}` and {} of blobs no other image uses",
                    format_size(bytes)
                ),
            }
        }
    }
    Ok(exit_codes::PASSED)
}

/// Runs an import on a blocking thread, showing its progress on stderr; a
/// SIGINT or SIGTERM stops it, and it removes its partial copy before
/// `hm` exits (130).
async fn import(store: ImageStore, name: String, path: PathBuf) -> Result<ImportSummary, CliError> {
    let observer = Arc::new(Progress::new(&name));
    let stop = observer.clone();
    let signals = tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            stop.interrupt();
        }
    });
    let watcher = observer.clone();
    let result = tokio::task::spawn_blocking(move || store.import_observed(&name, &path, &*watcher)).await;
    signals.abort();
    observer.done();
    match result {
        Ok(result) => Ok(result?),
        Err(join) => Err(CliError::Image(hm_vm::ImageError::Io {
            op: "import",
            path: PathBuf::new(),
            source: std::io::Error::other(join),
        })),
    }
}

/// How often progress is shown: in place on a terminal, as lines in a log.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shows an import's progress on stderr, and tells it to stop.
struct Progress {
    name: String,
    terminal: bool,
    started: Instant,
    /// When progress was last shown, and whether a line is open on a
    /// terminal.
    shown: Mutex<(Instant, bool)>,
    stopped: AtomicBool,
}

impl Progress {
    fn new(name: &str) -> Self {
        let now = Instant::now();
        Progress {
            name: name.to_owned(),
            terminal: std::io::stderr().is_terminal(),
            started: now,
            shown: Mutex::new((now, false)),
            stopped: AtomicBool::new(false),
        }
    }

    /// Tells the import to stop (at the first signal, says so).
    fn interrupt(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            self.done();
            say!("hm: interrupted; removing the partial copy...");
        }
    }

    /// Ends an open progress line.
    fn done(&self) {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.1 {
            use std::io::Write;
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            shown.1 = false;
        }
    }
}

impl ImportObserver for Progress {
    fn progress(&self, progress: ImportProgress) {
        if self.stopped() {
            return;
        }
        // Cheap most of the time: one comparison of instants.
        let every = if self.terminal { TERMINAL_EVERY } else { LOG_EVERY };
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(shown.0) < every || now.duration_since(self.started) < every {
            return;
        }
        shown.0 = now;
        let phase = match progress.phase {
            ImportPhase::Copying => "copied",
            ImportPhase::Hashing => "hashed",
        };
        let text = format!(
            "importing `{}`: {phase} {} entries, {}",
            self.name,
            progress.entries,
            format_size(progress.bytes)
        );
        use std::io::Write;
        if self.terminal {
            shown.1 = true;
            let _ = write!(std::io::stderr(), "\r\x1b[K{text}");
        } else {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(19)]
}

/// `512 B`, `3.4 MiB`.
pub fn format_size(bytes: u64) -> String {
    hm_vm::limits::human_bytes_exact(bytes)
}

/// `42s`, `5m`, `3h`, `2d`.
pub fn format_age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
