mod volumes;

use std::io::{BufRead, IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use hm_exec::exit_codes;
use hm_vm::{Registry, VmBackend};

use super::image::{format_age, format_size};
use super::{cache_dir, print_json};
use hm_exec::remote::{RemoteCache, RemoteSettings};

use crate::cli::{BackendName, CacheCommand, Format, RemoteArgs};
use crate::config::parse_size;
use crate::error::CliError;

/// How often `--wait` looks again whether running builds let go.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// `hm cache ...`.
pub async fn cache(command: CacheCommand) -> Result<i32, CliError> {
    let dir = cache_dir()?;
    let registry = Registry::open(&dir)?;
    match command {
        CacheCommand::Ls { format, volumes } => ls(&registry, format, volumes),
        CacheCommand::Du { format } => du(&registry, format),
        CacheCommand::Prune {
            max_entries,
            max_size,
            older_than,
            wait,
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
                bounds.max_bytes = parse_size(&size).map_err(|err| CliError::BadArgument {
                    flag: "--max-size",
                    message: err.to_string(),
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
            let mut said_waiting = false;
            loop {
                let doomed =
                    freeing_space(&dir, &registry, |apply| registry.evict_where(bounds, older_than, apply)).await?;
                if !said_waiting || !doomed.parts.is_empty() {
                    delete(&dir, &registry, &doomed).await;
                }
                let (entries, bytes) = registry.totals()?;
                let over = entries > bounds.max_entries || bytes > bounds.max_bytes;
                if !(over && wait && registry.any_in_use()?) {
                    break;
                }
                if !said_waiting {
                    say!("waiting for running builds to let go of the entries they use...");
                    said_waiting = true;
                }
                tokio::time::sleep(WAIT_POLL).await;
            }
            // Volumes give way to entries: they go while both together
            // are over the byte bound.
            let evicted = volumes::evict(&dir, &registry, bounds.max_bytes).await?;
            let (entries, bytes) = registry.totals()?;
            let (volume_count, volume_bytes) = volumes::totals(&registry)?;
            say!(
                "pruned {} entries, freed {}; {entries} entries, {} left{}",
                before_entries.saturating_sub(entries),
                format_size(before_bytes.saturating_sub(bytes)),
                format_size(bytes),
                match volume_count {
                    0 => String::new(),
                    n => format!("; {n} volumes, {}", format_size(volume_bytes)),
                }
            );
            if evicted.count > 0 {
                say!(
                    "evicted {} volumes, freed {}: the cache was over its byte bound",
                    evicted.count,
                    format_size(evicted.bytes)
                );
            }
            if entries > bounds.max_entries || bytes > bounds.max_bytes {
                say!("the cache is still over its bounds: running builds use the rest (`hm cache prune --wait` waits for them)");
            }
            Ok(exit_codes::PASSED)
        }
        CacheCommand::Clean { yes, wait } => {
            let (count, bytes) = registry.totals()?;
            let (volume_count, volume_bytes) = volumes::totals(&registry)?;
            if count == 0 && volume_count == 0 {
                remove_sources(&dir, &registry).await;
                say!("the cache is empty");
                return Ok(exit_codes::PASSED);
            }
            if !yes && std::io::stdin().is_terminal() && !confirm(count, bytes, volume_count, volume_bytes) {
                say!("nothing removed");
                return Ok(exit_codes::PASSED);
            }
            let removed = match count {
                0 => Ok(exit_codes::PASSED),
                _ => remove(&dir, &registry, None, wait).await,
            };
            if volume_count > 0 {
                volumes::remove(&dir, &registry, |_| true, wait, "clean").await?;
            }
            remove_sources(&dir, &registry).await;
            removed
        }
        CacheCommand::Push(args) => move_entries(&dir, registry, args, true).await,
        CacheCommand::Pull(args) => move_entries(&dir, registry, args, false).await,
        CacheCommand::Save(args) => super::save::save(&dir, registry, args).await,
        CacheCommand::Restore(args) => super::save::restore(&dir, registry, args).await,
        CacheCommand::Rm {
            keys,
            pipeline,
            volumes: names,
            wait,
        } => {
            let scope = project_scope()?;
            // Every name is checked before anything is removed.
            let names = match (names.is_empty(), scope.as_deref()) {
                (true, _) => None,
                (false, Some(scope)) => Some(volumes::named(&registry, scope, &names)?),
                (false, None) => {
                    return Err(CliError::BadArgument {
                        flag: "--volume",
                        message: "not in a project: a volume is removed from the project it belongs to".to_owned(),
                    })
                }
            };
            let entries = registry.list()?;
            let mut full = Vec::new();
            for wanted in &keys {
                full.extend(entries_named(
                    &registry,
                    &entries,
                    scope.as_deref(),
                    pipeline.as_deref(),
                    wanted,
                )?);
            }
            full.sort();
            full.dedup();
            let removed = match keys.is_empty() {
                true => Ok(exit_codes::PASSED),
                false => remove(&dir, &registry, Some(&full), wait).await,
            };
            if let (Some(names), Some(scope)) = (names, scope) {
                let pick = |v: &hm_vm::VolumeRecord| v.key.scope == scope && names.contains(&v.key.name);
                volumes::remove(&dir, &registry, pick, wait, "rm").await?;
            }
            removed
        }
    }
}

/// The cache scope of the project around the current directory (its
/// configured scope, else its path), if there is one.
fn project_scope() -> Result<Option<String>, CliError> {
    let project = std::env::current_dir()
        .ok()
        .and_then(|d| hm_dsl::Project::find(&d).ok());
    let Some(project) = project else { return Ok(None) };
    let config = super::config(Some(&project.root))?;
    let remote = config.cache_remote.as_deref();
    Ok(Some(crate::settings::scope(&config, remote, &project.root)))
}

/// `hm cache push` (`push`) or `hm cache pull`: this project's entries (of
/// `args.pipeline`) to or from the remote cache. Exit 1 when the registry
/// failed part of the way.
async fn move_entries(
    dir: &std::path::Path,
    registry: Registry,
    args: RemoteArgs,
    push: bool,
) -> Result<i32, CliError> {
    let here = std::env::current_dir().map_err(|e| CliError::BadArgument {
        flag: "--dir",
        message: e.to_string(),
    })?;
    let project = hm_dsl::Project::find(&here)?;
    let config = super::config(Some(&project.root))?;
    let Some(url) = args.cache_remote_url.or(config.cache_remote.clone()) else {
        return Err(CliError::BadArgument {
            flag: "--cache-remote-url",
            message: "no remote cache: set `[cache] remote` in .hm/config.toml, HM_CACHE_REMOTE or --cache-remote-url"
                .to_owned(),
        });
    };
    let scope = crate::settings::scope(&config, Some(&url), &project.root);
    let pull = crate::pull::settings(&config, None)?;
    let cache = RemoteCache::new(&url, &pull).map_err(|err| CliError::BadArgument {
        flag: "--cache-remote-url",
        message: err.to_string(),
    })?;
    let settings = RemoteSettings {
        cache: std::sync::Arc::new(cache),
        read: true,
        write: true,
    };
    let vm = cache_backend(dir, config.backend)?;
    let registry = std::sync::Arc::new(registry);
    let pipeline = args.pipeline;
    let ours = |project: &str, of: &str| project == scope && pipeline.as_deref().is_none_or(|p| p == of);
    let moved = if push {
        let mut entries: Vec<_> = registry
            .list()?
            .into_iter()
            .filter(|e| ours(&e.project, &e.pipeline) && e.backend == vm.name())
            .collect();
        // Chains bottom first.
        entries.sort_by_key(|e| (e.parts.len(), e.created));
        hm_exec::remote::push_entries(settings, vm.clone(), registry, config.bounds(), entries).await
    } else {
        hm_exec::remote::pull_entries(settings, vm.clone(), registry, config.bounds(), ours).await
    };
    let _ = vm.shutdown().await;
    let (done, there) = match push {
        true => ("pushed", "the remote cache had"),
        false => ("took in", "this cache had"),
    };
    say!(
        "{done} {} entries {} {url}; {there} {} already",
        moved.entries,
        if push { "to" } else { "from" },
        moved.there
    );
    match moved.failure {
        Some(failure) => {
            say!("error: the remote cache failed: {failure}");
            Ok(exit_codes::FAILED)
        }
        None => Ok(exit_codes::PASSED),
    }
}

/// The keys `wanted` names: every entry of that step in this project
/// (and `pipeline`), else the one key it starts.
fn entries_named(
    registry: &Registry,
    entries: &[hm_vm::CacheEntry],
    scope: Option<&str>,
    pipeline: Option<&str>,
    wanted: &str,
) -> Result<Vec<String>, CliError> {
    let of_step: Vec<String> = entries
        .iter()
        .filter(|e| Some(e.project.as_str()) == scope && e.step == wanted)
        .filter(|e| pipeline.is_none_or(|p| e.pipeline == p))
        .map(|e| e.key.clone())
        .collect();
    if !of_step.is_empty() {
        return Ok(of_step);
    }
    match registry.keys_starting_with(wanted)?.as_slice() {
        [key] => Ok(vec![key.clone()]),
        [] => Err(CliError::BadArgument {
            flag: "STEP|KEY",
            message: format!(
                "no cache entry of a step `{wanted}` in this project{}, and no key starts with it (see `hm cache ls`)",
                pipeline.map(|p| format!(" (pipeline `{p}`)")).unwrap_or_default()
            ),
        }),
        _ => Err(CliError::BadArgument {
            flag: "STEP|KEY",
            message: format!("several cache entries' keys start with `{wanted}`; give more of it"),
        }),
    }
}

/// Removes entries (every one when `keys` is `None`) and what is built on
/// them, except what running builds use, which stays and is named (or,
/// with `wait`, is removed once they let go).
async fn remove(
    dir: &std::path::Path,
    registry: &Registry,
    keys: Option<&[String]>,
    wait: bool,
) -> Result<i32, CliError> {
    let (count, bytes) = registry.totals()?;
    let mut said_waiting = false;
    let in_use = loop {
        let removed = freeing_space(dir, registry, |apply| registry.remove_unused(keys, apply)).await?;
        if !said_waiting || !removed.doomed.parts.is_empty() {
            delete(dir, registry, &removed.doomed).await;
        }
        if removed.in_use.is_empty() || !wait {
            break removed.in_use;
        }
        if !said_waiting {
            say!(
                "waiting for running builds to let go of {} entries they use...",
                removed.in_use.len()
            );
            said_waiting = true;
        }
        tokio::time::sleep(WAIT_POLL).await;
    };
    let (left, left_bytes) = registry.totals()?;
    say!(
        "removed {} entries, freed {}",
        count.saturating_sub(left),
        format_size(bytes.saturating_sub(left_bytes))
    );
    if !in_use.is_empty() {
        let what = if keys.is_some() { "rm" } else { "clean" };
        say!(
            "kept {} entries a running build uses; they go once it is done (`hm cache {what} --wait` waits for it)",
            in_use.len()
        );
    }
    Ok(exit_codes::PASSED)
}

/// Runs a registry change; when the disk is too full for the registry to
/// record it, first deletes the storage the change would free (found
/// without writing anything), then records it. A cache on a full disk can
/// always be cleaned.
async fn freeing_space<T: Freeing>(
    dir: &std::path::Path,
    registry: &Registry,
    change: impl Fn(bool) -> Result<T, hm_vm::RegistryError>,
) -> Result<T, CliError> {
    match change(true) {
        Err(err) if err.is_full() => {
            let planned = change(false)?;
            let doomed = planned.doomed();
            if doomed.parts.is_empty() && doomed.entries.is_empty() {
                // Nothing to free: only bookkeeping (the holds of dead
                // processes) could not be written, and it can wait.
                return Ok(planned);
            }
            delete(dir, registry, doomed).await;
            Ok(change(true)?)
        }
        other => Ok(other?),
    }
}

/// What a registry change leaves to delete.
trait Freeing {
    fn doomed(&self) -> &hm_vm::Doomed;
}

impl Freeing for hm_vm::Doomed {
    fn doomed(&self) -> &hm_vm::Doomed {
        self
    }
}

impl Freeing for hm_vm::Removed {
    fn doomed(&self) -> &hm_vm::Doomed {
        &self.doomed
    }
}

/// Removes every project's source index (the next run of each reads all
/// its files again) and, on each backend here, the copies of sources that
/// no entry left needs and no running build uses.
async fn remove_sources(dir: &std::path::Path, registry: &Registry) {
    match std::fs::remove_dir_all(dir.join(super::run::SOURCE_INDEXES)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            say!("warning: cannot remove the source indexes: {err}")
        }
        _ => {}
    }
    for name in [BackendName::Sandbox, BackendName::Docker] {
        let Ok(backend) = cache_backend(dir, name) else {
            continue;
        };
        // A daemon that does not answer has nothing to remove now.
        if name == BackendName::Docker && backend.check().await.is_err() {
            continue;
        }
        // Without the registry's word, no copy is known to be unneeded.
        let Ok(known) = registry.known_parts(backend.name()) else {
            continue;
        };
        if let Err(err) = backend.remove_source_layers(&known).await {
            say!("warning: cannot remove the copies of sources: {err}");
        }
        let _ = backend.shutdown().await;
    }
}

/// A backend over the cache directory `dir`, for removing or moving what
/// it stores.
pub(super) fn cache_backend(
    dir: &std::path::Path,
    name: BackendName,
) -> Result<std::sync::Arc<dyn VmBackend>, CliError> {
    super::backend(super::BackendSpec {
        name,
        cache_dir: dir,
        project: String::new(),
        network: hm_vm::Network::Host,
    })
}

fn confirm(count: u64, bytes: u64, volume_count: u64, volume_bytes: u64) -> bool {
    let mut stderr = std::io::stderr();
    let volumes = match volume_count {
        0 => String::new(),
        n => format!(" and {n} volumes ({})", format_size(volume_bytes)),
    };
    let _ = write!(
        stderr,
        "remove all {count} cache entries ({}){volumes}? [y/N] ",
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
    // Without its own executable `hm` cannot remove what its sandbox left;
    // a later command collects it.
    if let Ok(sandbox) = cache_backend(dir, BackendName::Sandbox) {
        delete_with(&*sandbox, registry, doomed).await;
    }
    let docker_parts = doomed.parts.iter().any(|(b, _)| b == "docker");
    let docker_known = registry.known_parts("docker").is_ok_and(|k| !k.is_empty());
    if docker_parts || docker_known {
        let Ok(docker) = cache_backend(dir, BackendName::Docker) else {
            return;
        };
        match docker.check().await {
            Ok(()) => delete_with(&*docker, registry, doomed).await,
            Err(err) if docker_parts => say!(
                "warning: the docker images of removed entries stay until the next docker run: {}",
                crate::error::chain(&CliError::Unavailable(err))
            ),
            Err(_) => {}
        }
    }
}

async fn delete_with(backend: &dyn VmBackend, registry: &Registry, doomed: &hm_vm::Doomed) {
    hm_exec::delete_and_collect(backend, registry, doomed).await;
    let _ = backend.shutdown().await;
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `hm cache ls`: the entries, then (on a terminal's format) the volumes,
/// or with `volumes` only the volumes. The JSON of entries stays a bare
/// array, as before volumes were there.
fn ls(registry: &Registry, format: Format, only_volumes: bool) -> Result<i32, CliError> {
    let volumes = registry.volumes()?;
    if only_volumes {
        match format {
            Format::Json => print_json(&volumes)?,
            Format::Human => crate::output::print(&volumes::table(&volumes))?,
        }
        return Ok(exit_codes::PASSED);
    }
    let entries = registry.list()?;
    if format == Format::Json {
        print_json(&entries)?;
        return Ok(exit_codes::PASSED);
    }
    let now = now();
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|e| {
            [
                e.step.clone(),
                e.pipeline.clone(),
                e.project.clone(),
                e.backend.clone(),
                e.key[..12.min(e.key.len())].to_owned(),
                format_size(e.size),
                format!("{} ago", format_age(now.saturating_sub(e.created))),
                format!("{} ago", format_age(now.saturating_sub(e.last_used))),
            ]
        })
        .collect();
    let header = [
        "STEP",
        "PIPELINE",
        "PROJECT",
        "BACKEND",
        "KEY",
        "SIZE",
        "AGE",
        "LAST USED",
    ];
    let mut text = crate::output::table(header, &rows, &[5]);
    if !volumes.is_empty() {
        text.push('\n');
        text.push_str(&volumes::table(&volumes));
    }
    crate::output::print(&text)?;
    Ok(exit_codes::PASSED)
}

/// `hm cache du --format json`: the entries' usage, and the volumes'.
#[derive(serde::Serialize)]
struct DuJson<'a> {
    #[serde(flatten)]
    usage: &'a hm_vm::Usage,
    /// How many volume instances there are, and the bytes they hold.
    volumes: u64,
    volume_bytes: u64,
}

fn du(registry: &Registry, format: Format) -> Result<i32, CliError> {
    let usage = registry.usage()?;
    let (volume_count, volume_bytes) = volumes::totals(registry)?;
    if format == Format::Json {
        print_json(&DuJson {
            usage: &usage,
            volumes: volume_count,
            volume_bytes,
        })?;
        return Ok(exit_codes::PASSED);
    }
    let mut text = format!("total: {} entries, {}", usage.entries, format_size(usage.bytes));
    if volume_count > 0 {
        text.push_str(&format!("; {volume_count} volumes, {}", format_size(volume_bytes)));
    }
    text.push('\n');
    let mut project = None;
    for pipeline in &usage.pipelines {
        if project != Some(&pipeline.project) {
            text.push_str(&format!("  {}\n", pipeline.project));
            project = Some(&pipeline.project);
        }
        text.push_str(&format!(
            "    {} ({}): {} entries, {}\n",
            pipeline.pipeline,
            pipeline.backend,
            pipeline.entries,
            format_size(pipeline.bytes)
        ));
    }
    crate::output::print(&text)?;
    Ok(exit_codes::PASSED)
}
