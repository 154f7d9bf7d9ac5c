//! `hm cache save DIR` and `hm cache restore DIR`: cache entries moved
//! through a directory that a CI system's cache keeps between builds
//! (docs/ci-cache.md). The directory holds the same images as the remote
//! cache, in an OCI image layout ([`hm_vm::oci::remote::RemoteCache::directory`]).
//!
//! Both print a key on stdout: a hash of the cache keys this project's
//! pipelines look up when `hm run` starts, so that a CI configuration can
//! name the saved directory by what it holds for this commit.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use hm_exec::remote::{Moved, RemoteCache, RemoteSettings};
use hm_exec::{exit_codes, LocalBackend, RunRequest};
use hm_vm::{Registry, VmBackend};
use sha2::{Digest as _, Sha256};

use super::image::format_size;
use crate::cli::{BackendName, KeyArgs, PullPolicy, RestoreArgs, RunArgs, SaveArgs};
use crate::error::CliError;
use crate::settings::RunSettings;

/// `hm cache save`.
pub async fn save(dir: &Path, registry: Registry, args: SaveArgs) -> Result<i32, CliError> {
    // Outside a project only `--all` has anything to save.
    let here = match super::load(&args.keys.project) {
        Ok(here) => Some(here),
        Err(_) if args.all => None,
        Err(err) => return Err(err),
    };
    let root = here.as_ref().map(|(project, _)| project.root.as_path());
    let config = super::config(root)?;
    let backend = backend_of(&args.keys, &config)?;
    let planned = match &here {
        Some((project, loaded)) => Some(planned_keys(dir, &config, &args.keys, project, loaded).await?),
        None => None,
    };
    let vm = super::cache::cache_backend(dir, backend)?;
    let all = registry.list()?;
    let entries: Vec<_> = all.iter().filter(|e| e.backend == vm.name()).collect();
    let mut wanted: BTreeSet<&str> = match (&planned, args.all) {
        (Some(planned), false) => planned.iter().map(String::as_str).collect(),
        _ => entries.iter().map(|e| e.key.as_str()).collect(),
    };
    // With what they build on.
    let by_key: HashMap<&str, _> = entries.iter().map(|e| (e.key.as_str(), *e)).collect();
    let mut walk: Vec<&str> = wanted.iter().copied().collect();
    while let Some(key) = walk.pop() {
        if let Some(parent) = by_key.get(key).and_then(|e| e.parent.as_deref()) {
            if wanted.insert(parent) {
                walk.push(parent);
            }
        }
    }
    let mut saving: Vec<_> = entries
        .iter()
        .filter(|e| wanted.contains(e.key.as_str()))
        .map(|e| (*e).clone())
        .collect();
    // Chains bottom first.
    saving.sort_by_key(|e| (e.parts.len(), e.created));
    // Outside a project (`--all`), the key of what was saved.
    let key = match &planned {
        Some(planned) => cache_key(planned),
        None => cache_key(&saving.iter().map(|e| e.key.clone()).collect::<Vec<_>>()),
    };

    let cache = RemoteCache::directory(&args.target, true).map_err(bad_dir)?;
    let settings = RemoteSettings {
        cache: Arc::new(cache),
        read: true,
        write: true,
    };
    let moved = hm_exec::remote::push_entries(
        settings.clone(),
        vm.clone(),
        Arc::new(registry),
        config.bounds(),
        saving,
    )
    .await;
    let _ = vm.shutdown().await;
    if let Some(code) = failed(&moved) {
        say!("`{}` keeps what it held before this save", args.target.display());
        return Ok(code);
    }
    let totals = settings.cache.finish().await.map_err(bad_dir)?;
    say!(
        "saved {} entries to {} ({}; {} written)",
        totals.entries,
        args.target.display(),
        format_size(totals.bytes),
        format_size(totals.written)
    );
    crate::output::print(&format!("{key}\n"))?;
    Ok(exit_codes::PASSED)
}

/// `hm cache restore`.
pub async fn restore(dir: &Path, registry: Registry, args: RestoreArgs) -> Result<i32, CliError> {
    let (project, loaded) = super::load(&args.keys.project)?;
    let config = super::config(Some(&project.root))?;
    let backend = backend_of(&args.keys, &config)?;
    // The key this project's run would look up, which a later save prints
    // too. Worked out first: the images it needs are pulled, and a docker
    // entry loads only onto its base image.
    let planned = planned_keys(dir, &config, &args.keys, &project, &loaded).await?;
    // What a CI cache that missed leaves: nothing, or an empty directory.
    let empty = match std::fs::read_dir(&args.source) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    };
    if !empty {
        let cache = RemoteCache::directory(&args.source, false).map_err(bad_dir)?;
        let cache = Arc::new(cache);
        let settings = RemoteSettings {
            cache: cache.clone(),
            read: true,
            write: false,
        };
        let vm = super::cache::cache_backend(dir, backend)?;
        let registry = Arc::new(registry);
        let moved = hm_exec::remote::pull_entries(settings, vm.clone(), registry, config.bounds(), |_, _| true).await;
        let _ = vm.shutdown().await;
        if let Some(code) = failed(&moved) {
            return Ok(code);
        }
        say!(
            "restored {} entries from {} ({} read); this cache had {} already",
            moved.entries,
            args.source.display(),
            format_size(cache.totals().read),
            moved.there
        );
    } else {
        say!(
            "nothing to restore: `{}` is missing or empty (the CI cache had nothing for this key)",
            args.source.display()
        );
    }
    crate::output::print(&format!("{}\n", cache_key(&planned)))?;
    Ok(exit_codes::PASSED)
}

/// Says what was refused (each entry left out, the rest moved) and what
/// failed; the exit code when the directory itself failed.
fn failed(moved: &Moved) -> Option<i32> {
    for refused in &moved.refused {
        say!("warning: refused entry {refused}");
    }
    let failure = moved.failure.as_ref()?;
    say!("error: {failure}");
    Some(exit_codes::FAILED)
}

fn bad_dir(err: hm_vm::oci::remote::RemoteError) -> CliError {
    CliError::BadArgument {
        flag: "DIR",
        message: err.to_string(),
    }
}

/// The CI cache key of `keys` (those a run looks up): the first 16 hex
/// digits of a sha256 over them, sorted.
fn cache_key(keys: &[String]) -> String {
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())[..16].to_owned()
}

/// The cache keys `hm run` of each of the project's pipelines looks up
/// before it starts, given the same options; missing images are pulled
/// first, as the run would.
async fn planned_keys(
    dir: &Path,
    config: &crate::config::Config,
    args: &KeyArgs,
    project: &hm_dsl::Project,
    loaded: &hm_dsl::Loaded,
) -> Result<Vec<String>, CliError> {
    let env = super::run::env_overrides(&args.build.env)?;
    let run_args = RunArgs {
        project: args.project.clone(),
        build: args.build.clone(),
        ..RunArgs::default()
    };
    let mut keys = Vec::new();
    let mut vms: Vec<Arc<dyn VmBackend>> = Vec::new();
    for pipeline in &loaded.envelope.pipelines {
        let plan = super::pipelines::plan_of(loaded, pipeline)?;
        let mut settings = RunSettings::resolve(&run_args, config, &plan, &project.root);
        // Keys do not depend on it; the scope it gives is in `settings`.
        settings.remote = None;
        if settings.backend == BackendName::Sandbox {
            pull_missing(dir, config, &plan, settings.pull).await?;
        }
        let vm = super::backend(super::BackendSpec {
            name: settings.backend,
            cache_dir: dir,
            project: settings.scope.clone(),
            network: settings.network,
        })?;
        let request = RunRequest {
            plan,
            source_root: project.root.clone(),
            source_exclude: super::run::source_exclude(dir),
            source_index: Some(super::run::source_index(dir, &project.root)),
            env: env.clone(),
            keep_going: false,
            run_id: hm_vm::fsutil::random_id(8),
            cache: super::run::open_cache(dir, config, &settings)?,
            logs: None,
            shell: None,
            only: None,
            branch: None,
            message: None,
            limits: Default::default(),
            volumes: None,
        };
        let planned = LocalBackend::new(1, vm.clone()).planned_keys(request).await;
        vms.push(vm);
        keys.extend(planned?.into_iter().map(|(_, key)| key));
    }
    for vm in vms {
        let _ = vm.shutdown().await;
    }
    Ok(keys)
}

/// Pulls the images of `plan`'s roots that are not stored, as `hm run`
/// does before its build.
async fn pull_missing(
    dir: &Path,
    config: &crate::config::Config,
    plan: &hm_ir::Plan,
    policy: PullPolicy,
) -> Result<(), CliError> {
    let roots: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.parent.is_none())
        .map(|s| s.base_image.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let policy = match policy {
        PullPolicy::Always => PullPolicy::Missing,
        policy => policy,
    };
    let wanted = crate::pull::to_pull(dir, &roots, policy)?;
    if wanted.is_empty() {
        return Ok(());
    }
    let settings = crate::pull::settings(config, None)?;
    for (_, name) in wanted {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        crate::pull::pull(dir, &name, &settings, crate::pull::View::Human, None, stop).await?;
    }
    Ok(())
}

/// The VM backend `--backend` (or the configuration) names.
fn backend_of(args: &KeyArgs, config: &crate::config::Config) -> Result<BackendName, CliError> {
    match args.build.backend {
        Some(flag) => flag.vm().ok_or_else(|| CliError::Cloud {
            what: "--backend cloud".to_owned(),
        }),
        None => Ok(config.backend),
    }
}
