//! `hm cache` for cache volumes (issue 19; see [`hm_vm::volumes`]): the
//! listing and totals of them, and their removal: by name in this
//! project's scope (`rm --volume`), all of them (`clean`), or the least
//! recently used while the cache is over its byte bound (`prune`). A
//! volume a running step holds is never removed.

use std::collections::BTreeSet;
use std::sync::Arc;

use hm_exec::volumes::VolumesRemoved;
use hm_vm::volumes::VolumeStore;
use hm_vm::{Registry, VmBackend, VolumeRecord};

use super::{cache_backend, now, WAIT_POLL};
use crate::cli::BackendName;
use crate::commands::image::{format_age, format_size};
use crate::error::CliError;

/// How many volumes there are and the bytes they hold.
pub(super) fn totals(registry: &Registry) -> Result<(u64, u64), CliError> {
    let volumes = registry.volumes()?;
    Ok((volumes.len() as u64, volumes.iter().map(|v| v.size).sum()))
}

/// The table of `volumes` that `hm cache ls` prints.
pub(super) fn table(volumes: &[VolumeRecord]) -> String {
    let now = now();
    let rows: Vec<[String; 7]> = volumes
        .iter()
        .map(|v| {
            [
                v.key.name.clone(),
                v.key.image.clone(),
                v.key.scope.clone(),
                v.backend.clone(),
                v.instance.to_string(),
                format_size(v.size),
                format!("{} ago", format_age(now.saturating_sub(v.last_used))),
            ]
        })
        .collect();
    let header = ["NAME", "IMAGE", "PROJECT", "BACKEND", "INSTANCE", "SIZE", "LAST USED"];
    crate::output::table(header, &rows, &[4, 5])
}

/// The volumes `names` name in `scope`, every instance on every image:
/// exit 2, before anything is removed, for a name the project has no
/// volume of (with the nearest one it has).
pub(super) fn named(registry: &Registry, scope: &str, names: &[String]) -> Result<BTreeSet<String>, CliError> {
    let known: BTreeSet<String> = registry
        .volumes()?
        .into_iter()
        .filter(|v| v.key.scope == scope)
        .map(|v| v.key.name)
        .collect();
    for name in names {
        if known.contains(name) {
            continue;
        }
        let hint = match hm_ir::closest(name, known.iter().map(String::as_str)) {
            Some(near) => format!("; did you mean `{near}`?"),
            None if known.is_empty() => " (it has none)".to_owned(),
            None => String::new(),
        };
        return Err(CliError::BadArgument {
            flag: "--volume",
            message: format!("this project has no volume `{name}`{hint} (see `hm cache ls --volumes`)"),
        });
    }
    Ok(names.iter().cloned().collect())
}

/// Removes the volumes `pick` chooses on each backend that has some, and
/// says what it removed and what it kept (a volume a running step uses;
/// with `wait`, removed once the step lets go). `command` is what to run
/// again to wait (`rm`, `clean`).
pub(super) async fn remove(
    dir: &std::path::Path,
    registry: &Registry,
    pick: impl Fn(&VolumeRecord) -> bool,
    wait: bool,
    command: &str,
) -> Result<(), CliError> {
    let mut total = VolumesRemoved::default();
    let mut said_waiting = false;
    loop {
        let mut in_use = 0;
        for backend in backends(dir, registry, &pick).await {
            let removed = hm_exec::volumes::remove_volumes(&*backend, registry, &VolumeStore::new(dir), |record, _| {
                Some(pick(record))
            })
            .await;
            let _ = backend.shutdown().await;
            let removed = removed?;
            total.count += removed.count;
            total.bytes += removed.bytes;
            in_use += removed.in_use;
        }
        total.in_use = in_use;
        if in_use == 0 || !wait {
            break;
        }
        if !said_waiting {
            say!("waiting for running steps to let go of {in_use} volumes they use...");
            said_waiting = true;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
    say!("removed {} volumes, freed {}", total.count, format_size(total.bytes));
    if total.in_use > 0 {
        say!(
            "kept {} volumes a running step uses (`hm cache {command} --wait` waits for it)",
            total.in_use
        );
    }
    Ok(())
}

/// Evicts the least recently used volumes no step uses while the cache's
/// stored parts and volumes exceed `max_bytes`.
pub(super) async fn evict(
    dir: &std::path::Path,
    registry: &Registry,
    max_bytes: u64,
) -> Result<VolumesRemoved, CliError> {
    let mut total = VolumesRemoved::default();
    for backend in backends(dir, registry, |_| true).await {
        let evicted = hm_exec::volumes::evict_volumes(&*backend, registry, &VolumeStore::new(dir), max_bytes).await;
        let _ = backend.shutdown().await;
        let evicted = evicted?;
        total.count += evicted.count;
        total.bytes += evicted.bytes;
        total.in_use += evicted.in_use;
    }
    Ok(total)
}

/// The backends holding volumes `pick` chooses: the sandbox whenever it
/// has some; docker when the registry has some of its volumes and the
/// daemon answers (else they stay, and this says so).
async fn backends(
    dir: &std::path::Path,
    registry: &Registry,
    pick: impl Fn(&VolumeRecord) -> bool,
) -> Vec<Arc<dyn VmBackend>> {
    let records = registry.volumes().unwrap_or_default();
    let mut backends = Vec::new();
    for name in [BackendName::Sandbox, BackendName::Docker] {
        let Ok(backend) = cache_backend(dir, name) else {
            continue;
        };
        let picked = records
            .iter()
            .filter(|r| r.backend == backend.name() && pick(r))
            .count();
        if picked == 0 {
            let _ = backend.shutdown().await;
            continue;
        }
        if name == BackendName::Docker {
            if let Err(err) = backend.check().await {
                say!(
                    "warning: {picked} docker volumes stay until the docker daemon answers: {}",
                    crate::error::chain(&CliError::Unavailable(err))
                );
                continue;
            }
        }
        backends.push(backend);
    }
    backends
}
