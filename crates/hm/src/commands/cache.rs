use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use hm_exec::exit_codes;
use hm_vm::{DockerBackend, DockerConfig, Registry, SandboxBackend, SandboxConfig, VmBackend, DEFAULT_MAX_LAYERS};

use super::image::{format_age, format_size};
use super::{cache_dir, print_json};
use crate::cli::{CacheCommand, Format};
use crate::config::parse_size;
use crate::error::CliError;

/// `hm cache ...`.
pub async fn cache(command: CacheCommand) -> Result<i32, CliError> {
    let dir = cache_dir()?;
    let registry = Registry::open(&dir)?;
    match command {
        CacheCommand::Ls { format } => ls(&registry, format),
        CacheCommand::Du { format } => du(&registry, format),
        CacheCommand::Prune {
            max_entries,
            max_size,
            older_than,
        } => {
            let project = std::env::current_dir()
                .ok()
                .and_then(|d| hm_dsl::Project::find(&d).ok());
            let config = super::config(project.as_ref().map(|p| p.root.as_path()))?;
            let mut bounds = config.bounds();
            if let Some(n) = max_entries {
                bounds.max_entries = n;
            }
            if let Some(size) = max_size {
                bounds.max_bytes = parse_size(&size).map_err(|message| CliError::BadArgument {
                    flag: "--max-size",
                    message,
                })?;
            }
            let older_than = older_than
                .map(|text| {
                    humantime::parse_duration(&text)
                        .map(|d| d.as_secs())
                        .map_err(|e| CliError::BadArgument {
                            flag: "--older-than",
                            message: format!("`{text}`: {e} (try `7d` or `12h`)"),
                        })
                })
                .transpose()?;
            let (before_entries, before_bytes) = registry.totals()?;
            let doomed = registry.evict_where(bounds, older_than)?;
            delete(&dir, &registry, &doomed).await;
            let (entries, bytes) = registry.totals()?;
            say!(
                "pruned {} entries, freed {}; {entries} entries, {} left",
                before_entries - entries,
                format_size(before_bytes.saturating_sub(bytes)),
                format_size(bytes)
            );
            Ok(exit_codes::PASSED)
        }
        CacheCommand::Clean { yes } => {
            let entries = registry.list()?;
            let (count, bytes) = registry.totals()?;
            if count == 0 {
                say!("the cache is empty");
                return Ok(exit_codes::PASSED);
            }
            if !yes && std::io::stdin().is_terminal() && !confirm(count, bytes) {
                say!("nothing removed");
                return Ok(exit_codes::PASSED);
            }
            let keys: Vec<String> = entries.into_iter().map(|e| e.key).collect();
            let doomed = registry.remove(&keys)?;
            delete(&dir, &registry, &doomed).await;
            say!("removed {count} entries, freed {}", format_size(bytes));
            Ok(exit_codes::PASSED)
        }
    }
}

fn confirm(count: u64, bytes: u64) -> bool {
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "remove all {count} cache entries ({})? [y/N] ",
        format_size(bytes)
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Deletes the storage evicted entries leave, and stored parts no entry
/// knows, for each backend that has some. Docker images stay when the
/// daemon is down; the docker backend collects them on its next run.
async fn delete(dir: &std::path::Path, registry: &Registry, doomed: &hm_vm::Doomed) {
    let sandbox = SandboxBackend::new(SandboxConfig {
        cache_dir: dir.to_owned(),
        helper: std::env::current_exe().unwrap_or_default(),
        max_layers: DEFAULT_MAX_LAYERS,
    });
    delete_with(&sandbox, registry, doomed).await;
    let docker_parts = doomed.parts.iter().any(|(b, _)| b == "docker");
    let docker_known = registry.known_parts("docker").is_ok_and(|k| !k.is_empty());
    if docker_parts || docker_known {
        let docker = DockerBackend::new(DockerConfig {
            cache_dir: dir.to_owned(),
            project: String::new(),
            memory: None,
            cpus: None,
        });
        match docker.check().await {
            Ok(()) => delete_with(&docker, registry, doomed).await,
            Err(err) if docker_parts => say!(
                "warning: the docker images of removed entries stay until the next docker run: {}",
                crate::error::chain(&CliError::Unavailable(err))
            ),
            Err(_) => {}
        }
    }
}

async fn delete_with(backend: &dyn VmBackend, registry: &Registry, doomed: &hm_vm::Doomed) {
    hm_exec::delete_doomed(backend, doomed).await;
    if let Ok(known) = registry.known_parts(backend.name()) {
        let _ = backend.collect_orphans(&known).await;
    }
    let _ = backend.shutdown().await;
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ls(registry: &Registry, format: Format) -> Result<i32, CliError> {
    let entries = registry.list()?;
    if format == Format::Json {
        print_json(&entries)?;
        return Ok(exit_codes::PASSED);
    }
    let now = now();
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.step.clone(),
                e.pipeline.clone(),
                e.key[..12.min(e.key.len())].to_owned(),
                format_size(e.size),
                format!("{} ago", format_age(now.saturating_sub(e.created))),
                format!("{} ago", format_age(now.saturating_sub(e.last_used))),
            ]
        })
        .collect();
    let header = ["STEP", "PIPELINE", "KEY", "SIZE", "AGE", "LAST USED"].map(str::to_owned);
    let mut text = String::new();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 3 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    crate::output::print(&text)?;
    Ok(exit_codes::PASSED)
}

fn du(registry: &Registry, format: Format) -> Result<i32, CliError> {
    let (entries, bytes) = registry.totals()?;
    let mut by_pipeline: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for entry in registry.list()? {
        let slot = by_pipeline.entry(entry.pipeline).or_default();
        slot.0 += 1;
        slot.1 += entry.size;
    }
    if format == Format::Json {
        let pipelines: Vec<_> = by_pipeline
            .iter()
            .map(|(p, (n, b))| serde_json::json!({"pipeline": p, "entries": n, "bytes": b}))
            .collect();
        print_json(&serde_json::json!({"entries": entries, "bytes": bytes, "pipelines": pipelines}))?;
        return Ok(exit_codes::PASSED);
    }
    let mut text = format!("total: {entries} entries, {}\n", format_size(bytes));
    for (pipeline, (n, b)) in by_pipeline {
        text.push_str(&format!("  {pipeline}: {n} entries, {}\n", format_size(b)));
    }
    crate::output::print(&text)?;
    Ok(exit_codes::PASSED)
}
