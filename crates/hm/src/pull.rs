//! Image pulls as a person or a program sees them: `hm image pull`, and
//! the pulls `hm run` makes before a build on the sandbox backend.
//!
//! On a terminal a pull shows a bar per layer and a total on stderr, as
//! `docker pull` does; in a log, a line when it starts and when it ends;
//! with `--format json`, `image_pull_*` events on stdout and nothing else.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hm_exec::Event;
use hm_vm::oci::{ImageName, Platform, PullError, PullEvent, PullObserver, PullSettings, Pulled};
use hm_vm::{ImageStore, HOST_IMAGE};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::cli::PullPolicy;
use crate::commands::format_size;
use crate::config::Config;
use crate::error::CliError;

/// How a pull is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Bars on stderr (a terminal), else lines.
    Human,
    /// `image_pull_*` events, through the caller's renderer.
    Events,
}

/// The pull settings of a configuration, for `platform` (default: this
/// machine's).
pub fn settings(config: &Config, platform: Option<&str>) -> Result<PullSettings, CliError> {
    let platform = match platform {
        Some(text) => text.parse::<Platform>().map_err(|err| CliError::BadArgument {
            flag: "--platform",
            message: err.to_string(),
        })?,
        None => Platform::host(),
    };
    Ok(PullSettings {
        insecure: config.insecure_registries.clone(),
        mirrors: config.mirrors.clone(),
        platform,
        client_config: crate::host::docker_client_config(),
    })
}

/// Parses a reference, or says what is wrong with it (exit 2).
pub fn parse(reference: &str) -> Result<ImageName, CliError> {
    ImageName::parse(reference).map_err(|detail| {
        CliError::Pull(Box::new(PullError::BadReference {
            reference: reference.to_owned(),
            detail,
        }))
    })
}

/// Pulls `name`; `stop` interrupts it. Events go to `events` (with
/// [`View::Events`]).
pub async fn pull(
    cache: &Path,
    name: &ImageName,
    settings: &PullSettings,
    view: View,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: Arc<AtomicBool>,
) -> Result<Pulled, CliError> {
    let image = name.canonical();
    let started = Instant::now();
    let display = Arc::new(Display::new(&image, view, events, stop));
    display.send(Event::ImagePullStart { image: image.clone() });
    let result = hm_vm::oci::pull(cache, name, settings, display.clone()).await;
    display.finish();
    let pulled = result.map_err(|err| CliError::Pull(Box::new(err)))?;
    display.send(Event::ImagePullEnd {
        image: image.clone(),
        digest: pulled.info.id.clone(),
        fetched: pulled.fetched,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    if view == View::Human {
        let seconds = started.elapsed().as_secs_f64();
        match pulled.fetched {
            true => say!(
                "pulled `{image}` ({}, {}) in {seconds:.1}s",
                pulled.info.id,
                format_size(pulled.info.size_bytes)
            ),
            false => say!("`{image}` is up to date ({})", pulled.info.id),
        }
        if pulled.skipped_devices > 0 {
            say!(
                "note: {} device nodes of `{image}` were left out (creating them needs root); the sandbox provides its own /dev",
                pulled.skipped_devices
            );
        }
    }
    Ok(pulled)
}

/// The images of `names` (a plan's root images) that `hm run` pulls under
/// `policy`: with `missing`, those not stored; with `always`, also those
/// pulled before (never one imported by hand, nor `host`).
pub fn to_pull(cache: &Path, names: &[String], policy: PullPolicy) -> Result<Vec<(String, ImageName)>, CliError> {
    let store = ImageStore::new(cache);
    let mut wanted = Vec::new();
    for name in names {
        if name == HOST_IMAGE || policy == PullPolicy::Never {
            continue;
        }
        let local = store.lookup(name).map_err(|source| {
            CliError::Unavailable(hm_vm::BackendUnavailable::ImageDamaged {
                name: name.clone(),
                source,
            })
        })?;
        let pull = match (&local, policy) {
            (None, _) => true,
            (Some(info), PullPolicy::Always) => info.pulled.is_some(),
            (Some(_), _) => false,
        };
        if pull {
            wanted.push((name.clone(), parse(name)?));
        }
    }
    Ok(wanted)
}

/// Shows one pull, and tells it to stop.
struct Display {
    image: String,
    view: View,
    events: Option<mpsc::UnboundedSender<Event>>,
    stop: Arc<AtomicBool>,
    bars: Mutex<Bars>,
}

#[derive(Default)]
struct Bars {
    multi: Option<MultiProgress>,
    layers: HashMap<String, ProgressBar>,
    done: HashMap<String, u64>,
    total: Option<ProgressBar>,
}

impl Display {
    fn new(image: &str, view: View, events: Option<mpsc::UnboundedSender<Event>>, stop: Arc<AtomicBool>) -> Self {
        let terminal = view == View::Human && std::io::stderr().is_terminal();
        Display {
            image: image.to_owned(),
            view,
            events,
            stop,
            bars: Mutex::new(Bars {
                multi: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
                ..Bars::default()
            }),
        }
    }

    fn send(&self, event: Event) {
        if let (View::Events, Some(events)) = (self.view, &self.events) {
            let _ = events.send(event);
        }
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, Bars> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the bars off the terminal.
    fn finish(&self) {
        let mut bars = self.bars();
        if let Some(multi) = bars.multi.take() {
            let _ = multi.clear();
        }
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

impl PullObserver for Display {
    fn event(&self, event: PullEvent) {
        let mut bars = self.bars();
        match event {
            PullEvent::Resolved {
                digest, source, layers, ..
            } => {
                let missing: u64 = layers.iter().filter(|l| !l.2).map(|l| l.1).sum();
                let Some(multi) = bars.multi.clone() else {
                    if self.view == View::Human {
                        say!(
                            "pulling `{}` ({digest}) from {source}: {} layers, {} to download",
                            self.image,
                            layers.len(),
                            format_size(missing)
                        );
                    }
                    return;
                };
                let _ = multi.println(format!("pulling `{}` from {source}", self.image));
                let style = ProgressStyle::with_template("{prefix} {wide_bar} {bytes:>10}/{total_bytes:<10} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                for (layer, size, stored) in layers {
                    let bar = multi.add(
                        ProgressBar::new(size)
                            .with_style(style.clone())
                            .with_prefix(short(&layer).to_owned()),
                    );
                    if stored {
                        bar.finish_with_message("already stored");
                    }
                    bars.layers.insert(layer, bar);
                }
                let total = multi.add(
                    ProgressBar::new(missing)
                        .with_style(
                            ProgressStyle::with_template(
                                "{prefix:12} {wide_bar} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        )
                        .with_prefix("total"),
                );
                bars.total = Some(total);
            }
            PullEvent::Downloading { layer, done, .. } => {
                if let Some(bar) = bars.layers.get(&layer) {
                    bar.set_position(done);
                }
                bars.done.insert(layer, done);
                let sum = bars.done.values().sum();
                if let Some(total) = &bars.total {
                    total.set_position(sum);
                }
            }
            PullEvent::Downloaded { layer } => {
                if let Some(bar) = bars.layers.get(&layer) {
                    let size = bar.length().unwrap_or(0);
                    bar.set_position(size);
                    bar.set_message("downloaded");
                    bars.done.insert(layer.clone(), size);
                }
                let sum = bars.done.values().sum();
                if let Some(total) = &bars.total {
                    total.set_position(sum);
                }
                let bytes = bars.done.get(&layer).copied().unwrap_or(0);
                drop(bars);
                self.send(Event::ImagePullLayer {
                    image: self.image.clone(),
                    layer,
                    bytes,
                });
            }
            PullEvent::Unpacked { layer } => {
                if let Some(bar) = bars.layers.get(&layer) {
                    bar.finish_with_message("unpacked");
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
