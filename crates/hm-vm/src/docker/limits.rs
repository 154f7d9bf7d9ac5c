//! A step's [`Limits`] as Docker applies them: set when the step's
//! container is created (at its first exec), and changed with `docker
//! update` when a later step of a chain, which runs in the same container,
//! has others.
//!
//! Memory bounds memory and swap together (`MemorySwap` equal to
//! `Memory`), so that a step over its limit is killed rather than slowed
//! down by swapping. CPUs are a CFS quota over a 100 ms period, as the
//! sandbox's, rather than `NanoCpus`, which Docker refuses above the
//! host's CPU count and cannot lift again. A disk limit that was asked for
//! (not the default, as on the sandbox) is the storage driver's `size`
//! option, which only some drivers take (overlay2 on xfs with project
//! quotas, btrfs, zfs): where the daemon refuses it, containers are
//! created without it and the backend says so once. It is set at creation
//! only: `docker update` cannot change it.

use std::collections::HashMap;

use bollard::models::{ContainerUpdateBody, HostConfig};

use crate::limits::Limits;

/// The CFS period a CPU limit is a quota of, in microseconds.
const CPU_PERIOD: i64 = 100_000;
/// Docker's smallest quota: 1 ms per period.
const MIN_CPU_QUOTA: i64 = 1_000;
/// Docker's smallest memory limit (6 MiB); a smaller one is raised to it.
const MIN_MEMORY: i64 = 6 << 20;
/// No memory limit, for `docker update` (which takes 0 as "unchanged"):
/// the largest page-aligned value the kernel takes.
const NO_MEMORY_LIMIT: i64 = i64::MAX & !4095;

/// `limits` on a container's host configuration, at its creation.
pub(super) fn apply(limits: &Limits, host: &mut HostConfig) {
    if let Some(memory) = limits.memory {
        let memory = memory_bytes(memory);
        host.memory = Some(memory);
        host.memory_swap = Some(memory);
    }
    if let Some(millicpus) = limits.millicpus {
        host.cpu_period = Some(CPU_PERIOD);
        host.cpu_quota = Some(cpu_quota(millicpus));
    }
    if let Some(pids) = limits.pids {
        host.pids_limit = Some(i64::try_from(pids).unwrap_or(i64::MAX));
    }
}

/// The storage driver's options for `limits.disk`, when one was asked for
/// (the default disk is left to the daemon, as the sandbox leaves it).
pub(super) fn storage_opt(limits: &Limits) -> Option<HashMap<String, String>> {
    limits
        .disk
        .filter(|_| limits.disk_explicit)
        .map(|bytes| HashMap::from([("size".to_owned(), bytes.to_string())]))
}

/// What `docker update` sets for a running container to run under
/// `limits`: every one of them, a lifted one as no limit.
pub(super) fn update(limits: &Limits) -> ContainerUpdateBody {
    let memory = limits.memory.map_or(NO_MEMORY_LIMIT, memory_bytes);
    ContainerUpdateBody {
        memory: Some(memory),
        memory_swap: Some(memory),
        cpu_period: Some(CPU_PERIOD),
        cpu_quota: Some(limits.millicpus.map_or(-1, cpu_quota)),
        pids_limit: Some(limits.pids.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))),
        ..Default::default()
    }
}

/// Whether the daemon's answer to a container's creation refuses its
/// storage options (the driver cannot bound a container's size): what it
/// said, if so.
pub(super) fn storage_opt_refused(err: &bollard::errors::Error) -> Option<&str> {
    let bollard::errors::Error::DockerResponseServerError { message, .. } = err else {
        return None;
    };
    let lower = message.to_ascii_lowercase();
    ["storage-opt", "storage opt", "storageopt", "quota"]
        .iter()
        .any(|word| lower.contains(word))
        .then_some(message.as_str())
}

fn memory_bytes(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(NO_MEMORY_LIMIT).max(MIN_MEMORY)
}

fn cpu_quota(millicpus: u64) -> i64 {
    i64::try_from(millicpus.saturating_mul(CPU_PERIOD as u64 / 1000))
        .unwrap_or(i64::MAX)
        .max(MIN_CPU_QUOTA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_at_creation_and_lifted_ones_are_left_out() {
        let mut host = HostConfig::default();
        apply(&Limits::defaults(), &mut host);
        assert_eq!((host.memory, host.memory_swap), (Some(8 << 30), Some(8 << 30)));
        assert_eq!((host.cpu_period, host.cpu_quota), (None, None));
        assert_eq!(host.pids_limit, Some(4096));
        let half = Limits {
            millicpus: Some(500),
            memory: Some(1),
            ..Limits::default()
        };
        let mut host = HostConfig::default();
        apply(&half, &mut host);
        assert_eq!((host.cpu_period, host.cpu_quota), (Some(100_000), Some(50_000)));
        assert_eq!(host.memory, Some(6 << 20), "raised to Docker's smallest");
        assert_eq!(host.pids_limit, None);
        assert_eq!(storage_opt(&half), None);
        assert_eq!(storage_opt(&Limits::defaults()), None, "the default is the daemon's");
        let asked = Limits {
            disk: Some(1 << 30),
            disk_explicit: true,
            ..Limits::defaults()
        };
        assert_eq!(storage_opt(&asked).unwrap()["size"], (1u64 << 30).to_string());
    }

    #[test]
    fn an_update_sets_every_limit_and_lifts_the_others() {
        let lifted = update(&Limits::default());
        assert_eq!(lifted.memory, Some(NO_MEMORY_LIMIT));
        assert_eq!(lifted.memory_swap, Some(NO_MEMORY_LIMIT));
        assert_eq!((lifted.cpu_quota, lifted.pids_limit), (Some(-1), Some(-1)));
        let set = update(&Limits {
            memory: Some(64 << 20),
            millicpus: Some(1),
            pids: Some(10),
            ..Limits::default()
        });
        assert_eq!((set.memory, set.memory_swap), (Some(64 << 20), Some(64 << 20)));
        assert_eq!((set.cpu_quota, set.pids_limit), (Some(MIN_CPU_QUOTA), Some(10)));
    }

    #[test]
    fn a_refused_storage_option_is_told_from_other_errors() {
        let refusal = |message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: message.to_owned(),
        };
        let overlay = refusal("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
        assert!(storage_opt_refused(&overlay).is_some());
        assert!(storage_opt_refused(&refusal("No such image: x")).is_none());
    }
}
