//! Every step in a control group of its own (DESIGN.md §6): its memory,
//! CPU and process limits, what it used, and whether the kernel killed it
//! for memory.
//!
//! Both versions are supported. With cgroup v2 the groups go under
//! `<mount>/hm` as root, or under the subtree systemd delegates to the
//! user (`user@UID.service`) rootless. With v1, as root, they go under
//! this process's own group in each of the `memory`, `cpu`, `cpuacct` and
//! `pids` hierarchies, wherever each is mounted.
//!
//! A process's groups are `BASE/SESSION/N`, one per step. The session's
//! directories are listed in its `cgroups` file as they are made, so that
//! what a killed process left is removed by the next: see
//! [`remove_recorded`].
//!
//! A step gets into its group without a migration's wait (see [`Entry`]):
//! moving another process, or a whole process, takes a lock whose every
//! write waits for an RCU grace period (5 to 15 ms measured here), where
//! a single thread moving itself on v1, or a child created in the group
//! on v2, takes none.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Limits, StepUsage};

/// The file in a session directory listing its groups, one per line.
pub(crate) const RECORD: &str = "cgroups";
/// CFS period for CPU quotas, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Where the groups of one session go, by cgroup version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tree {
    /// The unified hierarchy: steps' groups go under `base`.
    V2 { base: PathBuf },
    /// Separate hierarchies: a base per controller (`cpu` and `cpuacct`
    /// may share one).
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        cpuacct: PathBuf,
        pids: PathBuf,
    },
}

/// Why steps run without limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("this system mounts no cgroup hierarchy with the memory, cpu and pids controllers")]
    NoHierarchy,
    #[error("this system has cgroup v1, which only root can use (run hm as root, or on a system with cgroup v2)")]
    V1Rootless,
    #[error(
        "no cgroup is delegated to this user (systemd gives one under `user@UID.service`; start hm with `systemd-run --user --scope -p Delegate=yes hm ...`)"
    )]
    NotDelegated,
    #[error("the delegated cgroup {path} lacks the {controller} controller")]
    MissingController { path: PathBuf, controller: &'static str },
    #[error("cannot set up {path}: {message}")]
    Setup { path: PathBuf, message: String },
}

impl Tree {
    /// This process's tree, from `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`.
    pub(crate) fn detect(root: bool) -> Result<Tree, Unavailable> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let tree = Tree::from_proc(&mountinfo, &own, root)?;
        tree.prepare()?;
        Ok(tree)
    }

    /// [`Tree::detect`] from the two files' text. v1 hierarchies with the
    /// controllers win over a v2 mount without them (a hybrid system's
    /// `unified` mount holds none).
    fn from_proc(mountinfo: &str, own: &str, root: bool) -> Result<Tree, Unavailable> {
        let mounts = cgroup_mounts(mountinfo);
        let own_path = |hierarchy: &str| -> Option<String> {
            own.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                (controllers.split(',').any(|c| c == hierarchy) || (hierarchy.is_empty() && controllers.is_empty()))
                    .then(|| path.to_owned())
            })
        };
        let v1 = |controller: &str| -> Option<PathBuf> {
            let mount = mounts
                .iter()
                .find(|m| m.v1_controllers.iter().any(|c| c == controller))?;
            Some(mount.at(&own_path(controller)?))
        };
        if let (Some(memory), Some(cpu), Some(cpuacct), Some(pids)) =
            (v1("memory"), v1("cpu"), v1("cpuacct"), v1("pids"))
        {
            if !root {
                return Err(Unavailable::V1Rootless);
            }
            let base = |dir: PathBuf| dir.join("hm");
            return Ok(Tree::V1 {
                memory: base(memory),
                cpu: base(cpu),
                cpuacct: base(cpuacct),
                pids: base(pids),
            });
        }
        let Some(unified) = mounts.iter().find(|m| m.v2) else {
            return Err(Unavailable::NoHierarchy);
        };
        let own = own_path("").ok_or(Unavailable::NoHierarchy)?;
        let base = match root {
            // A root with processes cannot hand controllers down; the
            // mount's root can (and is exempt).
            true => unified.point.join("hm"),
            false => delegated(&unified.at(&own), &unified.point)?.join("hm"),
        };
        Ok(Tree::V2 { base })
    }

    /// Makes the bases and hands the controllers down to them.
    fn prepare(&self) -> Result<(), Unavailable> {
        let setup = |path: &Path| {
            let path = path.to_owned();
            move |err: io::Error| Unavailable::Setup {
                message: err.to_string(),
                path,
            }
        };
        match self {
            Tree::V1 { .. } => {
                for base in self.bases() {
                    fs::create_dir_all(&base).map_err(setup(&base))?;
                }
            }
            Tree::V2 { base } => {
                let parent = base.parent().unwrap_or(base);
                enable_controllers(parent).map_err(setup(parent))?;
                fs::create_dir_all(base).map_err(setup(base))?;
                enable_controllers(base).map_err(setup(base))?;
            }
        }
        Ok(())
    }

    /// The bases, one per hierarchy.
    fn bases(&self) -> Vec<PathBuf> {
        match self {
            Tree::V2 { base } => vec![base.clone()],
            Tree::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
            } => {
                let mut bases = vec![memory.clone(), cpu.clone(), cpuacct.clone(), pids.clone()];
                bases.dedup();
                bases
            }
        }
    }

    /// The session's groups, made and recorded in `record` (the session's
    /// [`RECORD`] file) before any step is in them.
    pub(crate) fn session(&self, id: &str, record: &Path) -> io::Result<SessionGroups> {
        let dirs: Vec<PathBuf> = self.bases().into_iter().map(|base| base.join(id)).collect();
        let mut file = OpenOptions::new().create(true).append(true).open(record)?;
        for dir in &dirs {
            writeln!(file, "{}", dir.display())?;
        }
        file.sync_all()?;
        for dir in &dirs {
            fs::create_dir_all(dir)?;
        }
        if let Tree::V2 { .. } = self {
            enable_controllers(&dirs[0])?;
        }
        Ok(SessionGroups {
            tree: self.clone(),
            id: id.to_owned(),
        })
    }
}

/// How a step's helper puts the step in its group, before it starts
/// anything of the step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Entry {
    /// v1: the helper, a single thread, writes `0` (itself) into the
    /// `tasks` file of each of these directories (one per hierarchy); what
    /// it forks after is in the group.
    Tasks(#[serde(with = "crate::os_path::vec")] Vec<PathBuf>),
    /// v2: the helper creates init in the group (`clone3` with
    /// `CLONE_INTO_CGROUP`, an open descriptor of it from [`Entry::join`]),
    /// or, on a kernel older than 5.7, moves itself in first.
    Into(#[serde(with = "crate::os_path")] PathBuf),
}

impl Entry {
    /// The helper's part before it forks: for v1, in; for v2, the group's
    /// directory, open.
    pub(crate) fn join(&self) -> io::Result<Option<File>> {
        match self {
            Entry::Tasks(dirs) => {
                for dir in dirs {
                    write(dir, "tasks", "0").map_err(|e| annotate(dir, e))?;
                }
                Ok(None)
            }
            Entry::Into(dir) => File::open(dir).map(Some).map_err(|e| annotate(dir, e)),
        }
    }

    /// Where `clone3` cannot create a process in a group: moves the caller
    /// in as a whole (with the wait).
    pub(crate) fn join_whole(&self) -> io::Result<()> {
        match self {
            Entry::Tasks(_) => Ok(()),
            Entry::Into(dir) => write(dir, "cgroup.procs", "0").map_err(|e| annotate(dir, e)),
        }
    }
}

fn annotate(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// A session's parent groups; dropping it removes them.
#[derive(Debug)]
pub(crate) struct SessionGroups {
    tree: Tree,
    id: String,
}

impl SessionGroups {
    /// Makes step `n`'s group, with `limits`.
    pub(crate) fn step(&self, n: u64, limits: &Limits) -> io::Result<StepGroup> {
        let name = format!("{}/{n}", self.id);
        let group = match &self.tree {
            Tree::V2 { base } => StepGroup::V2 { dir: base.join(name) },
            Tree::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
            } => StepGroup::V1 {
                memory: memory.join(&name),
                cpu: cpu.join(&name),
                cpuacct: cpuacct.join(&name),
                pids: pids.join(&name),
            },
        };
        for dir in group.dirs() {
            match fs::create_dir(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let limited = group.limit(limits);
        if limited.is_err() {
            group.remove();
        }
        limited.map(|()| group)
    }
}

impl Drop for SessionGroups {
    fn drop(&mut self) {
        for base in self.tree.bases() {
            remove_group(&base.join(&self.id));
        }
    }
}

/// One step's group (its directory in each hierarchy).
#[derive(Debug)]
pub(crate) enum StepGroup {
    V2 {
        dir: PathBuf,
    },
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        cpuacct: PathBuf,
        pids: PathBuf,
    },
}

impl StepGroup {
    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            StepGroup::V2 { dir } => vec![dir.clone()],
            StepGroup::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
            } => {
                let mut dirs = vec![memory.clone(), cpu.clone(), cpuacct.clone(), pids.clone()];
                dirs.dedup();
                dirs
            }
        }
    }

    fn limit(&self, limits: &Limits) -> io::Result<()> {
        match self {
            StepGroup::V2 { dir } => {
                if let Some(memory) = limits.memory {
                    write(dir, "memory.max", &memory.to_string())?;
                    // Over the limit is out of memory, not into swap.
                    let _ = write(dir, "memory.swap.max", "0");
                }
                if let Some(m) = limits.millicpus {
                    write(dir, "cpu.max", &format!("{} {CPU_PERIOD_US}", m * CPU_PERIOD_US / 1000))?;
                }
                if let Some(pids) = limits.pids {
                    write(dir, "pids.max", &pids.to_string())?;
                }
            }
            StepGroup::V1 { memory, cpu, pids, .. } => {
                if let Some(bytes) = limits.memory {
                    write(memory, "memory.limit_in_bytes", &bytes.to_string())?;
                    // Where swap is accounted, none beyond the limit.
                    let _ = write(memory, "memory.memsw.limit_in_bytes", &bytes.to_string());
                }
                if let Some(m) = limits.millicpus {
                    write(cpu, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(cpu, "cpu.cfs_quota_us", &(m * CPU_PERIOD_US / 1000).to_string())?;
                }
                if let Some(n) = limits.pids {
                    write(pids, "pids.max", &n.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// How the step's helper gets the step in.
    pub(crate) fn entry(&self) -> Entry {
        match self {
            StepGroup::V2 { dir } => Entry::Into(dir.clone()),
            StepGroup::V1 { .. } => Entry::Tasks(self.dirs()),
        }
    }

    /// What the step used, once its processes are gone.
    pub(crate) fn usage(&self, limits: &Limits) -> StepUsage {
        let (peak, cpu_ms, oom_kills, pids) = match self {
            StepGroup::V2 { dir } => (
                read_u64(dir, "memory.peak"),
                read_key(dir, "cpu.stat", "usage_usec").map(|us| us / 1000),
                read_key(dir, "memory.events", "oom_kill"),
                dir,
            ),
            StepGroup::V1 {
                memory, cpuacct, pids, ..
            } => (
                read_u64(memory, "memory.max_usage_in_bytes"),
                read_u64(cpuacct, "cpuacct.usage").map(|ns| ns / 1_000_000),
                read_key(memory, "memory.oom_control", "oom_kill"),
                pids,
            ),
        };
        StepUsage {
            peak_memory_bytes: peak,
            cpu_ms,
            oom_killed: oom_kills.is_some_and(|n| n > 0),
            memory_limit: limits.memory,
            pids_refused: read_key(pids, "pids.events", "max").is_some_and(|n| n > 0),
            pids_limit: limits.pids,
        }
    }

    /// Removes the group, killing what is left in it.
    pub(crate) fn remove(&self) {
        for dir in self.dirs() {
            remove_group(&dir);
        }
    }
}

/// A step's group, removed (what is left in it killed) when dropped.
#[derive(Debug)]
pub(crate) struct Removed(pub StepGroup);

impl Drop for Removed {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Removes the groups a dead session listed in `session/cgroups`, with
/// whatever its steps left in them.
pub(crate) fn remove_recorded(session: &Path) {
    let Ok(text) = fs::read_to_string(session.join(RECORD)) else {
        return;
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        remove_group(Path::new(line));
    }
}

/// Removes group `dir` and the groups below it, deepest first; processes
/// still in one are killed first. Gone already is fine; one that will not
/// go is left for a later attempt.
fn remove_group(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_group(&entry.path());
            }
        }
    }
    for attempt in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if attempt == 0 || attempt % 10 == 9 {
                    kill_all(dir);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return,
        }
    }
}

/// Kills every process in group `dir`.
fn kill_all(dir: &Path) {
    if write(dir, "cgroup.kill", "1").is_ok() {
        return;
    }
    let mut text = String::new();
    if File::open(dir.join("cgroup.procs"))
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return;
    }
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// The highest group from `own` up to (not including) `mount` this user
/// may write, where systemd delegated a subtree.
fn delegated(own: &Path, mount: &Path) -> Result<PathBuf, Unavailable> {
    let writable = |dir: &Path| nix::unistd::access(&dir.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_ok();
    let mut found = None;
    let mut dir = own;
    while dir != mount && dir.starts_with(mount) {
        if writable(dir) {
            found = Some(dir.to_owned());
        }
        let Some(parent) = dir.parent() else { break };
        dir = parent;
    }
    let found = found.ok_or(Unavailable::NotDelegated)?;
    // The delegated group itself holds processes (systemd's own, or
    // ours): steps' groups go beside them, which needs the controllers
    // handed down by its parent (systemd does) and no processes in it.
    let controllers = fs::read_to_string(found.join("cgroup.controllers")).unwrap_or_default();
    for controller in ["memory", "cpu", "pids"] {
        if !controllers.split_whitespace().any(|c| c == controller) {
            return Err(Unavailable::MissingController {
                path: found,
                controller,
            });
        }
    }
    Ok(found)
}

/// Hands memory, cpu and pids down to `dir`'s children (those it has; a
/// test's plain directory has none).
fn enable_controllers(dir: &Path) -> io::Result<()> {
    let available = match fs::read_to_string(dir.join("cgroup.controllers")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let wanted: Vec<String> = ["memory", "cpu", "pids"]
        .into_iter()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    if wanted.iter().all(|w| enabled.split_whitespace().any(|e| e == &w[1..])) {
        return Ok(());
    }
    write(dir, "cgroup.subtree_control", &wanted.join(" "))
}

/// A cgroup filesystem mounted, from `/proc/self/mountinfo`.
#[derive(Debug)]
struct Mount {
    /// Where it is mounted.
    point: PathBuf,
    /// The group mounted there (a container's own, say).
    root: String,
    v2: bool,
    v1_controllers: Vec<String>,
}

impl Mount {
    /// The directory of group `path` (as `/proc/self/cgroup` names it).
    fn at(&self, path: &str) -> PathBuf {
        let relative = path.strip_prefix(self.root.as_str()).unwrap_or(path);
        self.point.join(relative.trim_start_matches('/'))
    }
}

fn cgroup_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let (fstype, _source, options) = (after.next()?, after.next()?, after.next().unwrap_or(""));
            let (root, point) = (fields.get(3)?, fields.get(4)?);
            let v1_controllers = match fstype {
                "cgroup" => options
                    .split(',')
                    .filter(|o| matches!(*o, "memory" | "cpu" | "cpuacct" | "pids"))
                    .map(str::to_owned)
                    .collect(),
                "cgroup2" => Vec::new(),
                _ => return None,
            };
            Some(Mount {
                point: crate::fsutil::unescape_mountinfo(point),
                root: crate::fsutil::unescape_mountinfo(root).to_string_lossy().into_owned(),
                v2: fstype == "cgroup2",
                v1_controllers,
            })
        })
        .collect()
}

/// This process's own directory in the unified hierarchy, where one is
/// mounted.
#[cfg(test)]
pub(crate) fn own_unified_dir() -> Option<PathBuf> {
    let mounts = cgroup_mounts(&fs::read_to_string("/proc/self/mountinfo").ok()?);
    let unified = mounts.iter().find(|m| m.v2)?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(unified.at(path))
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    // Created where missing only in a test's plain directory: cgroupfs
    // refuses to create files.
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(file))?;
    f.write_all(value.as_bytes())
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`cpu.stat`, `memory.events`).
fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MOUNTS: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_OWN: &str = "8:pids:/\n4:memory:/process_api/b40e\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_hierarchies_are_found_each_under_this_process_group() {
        let tree = Tree::from_proc(V1_MOUNTS, V1_OWN, true).unwrap();
        assert_eq!(
            tree,
            Tree::V1 {
                memory: "/sys/fs/cgroup/memory/process_api/b40e/hm".into(),
                cpu: "/sys/fs/cgroup/cpu/hm".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct/hm".into(),
                pids: "/sys/fs/cgroup/pids/hm".into(),
            }
        );
        // cpu and cpuacct mounted together are one hierarchy.
        let joint = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                     36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                     39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let tree = Tree::from_proc(joint, "4:memory:/\n3:cpu,cpuacct:/a\n2:pids:/\n", true).unwrap();
        assert_eq!(tree.bases().len(), 3);
        assert_eq!(Tree::from_proc(V1_MOUNTS, V1_OWN, false), Err(Unavailable::V1Rootless));
        assert_eq!(
            Tree::from_proc("1 0 0:1 / / rw - ext4 x rw\n", "0::/\n", true),
            Err(Unavailable::NoHierarchy)
        );
    }

    #[test]
    fn v2_as_root_goes_under_the_mount_and_within_a_container_under_its_root() {
        let mounts = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let tree = Tree::from_proc(mounts, "0::/user.slice/user-0.slice/session-3.scope\n", true).unwrap();
        assert_eq!(
            tree,
            Tree::V2 {
                base: "/sys/fs/cgroup/hm".into()
            }
        );
        let escaped = "30 25 0:26 /a\\040b /sys/fs/cg\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_mounts(escaped)[0].at("/a b/c"), PathBuf::from("/sys/fs/cg x/c"));
    }

    /// A fake v2 tree in a plain directory: a user's delegated subtree is
    /// found, groups are made with limits, usage is read, and a dead
    /// session's groups are removed from its record.
    #[test]
    fn v2_delegation_limits_usage_and_removal_on_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        let mount = root.path().join("cgroup");
        let user = mount.join("user.slice/user-1000.slice/user@1000.service");
        let own = user.join("app.slice/term.scope");
        fs::create_dir_all(&own).unwrap();
        for dir in [&mount, &user, &own] {
            fs::write(dir.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
            fs::write(dir.join("cgroup.procs"), "").unwrap();
        }
        for dir in [
            mount.clone(),
            mount.join("user.slice"),
            mount.join("user.slice/user-1000.slice"),
        ] {
            fs::write(dir.join("cgroup.procs"), "").unwrap();
            fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        }
        // As root the test can write everywhere: only the user's subtree
        // is made writable to the probe by permissions; check the walk by
        // what it picks when the whole path is writable (the highest).
        let found = delegated(&own, &mount).unwrap();
        assert!(found.starts_with(&mount) && own.starts_with(&found));
        fs::write(user.join("cgroup.controllers"), "cpu pids\n").unwrap();
        assert!(matches!(
            delegated(&user, &mount.join("user.slice/user-1000.slice")),
            Err(Unavailable::MissingController {
                controller: "memory",
                ..
            })
        ));
        fs::write(user.join("cgroup.controllers"), "cpu memory pids\n").unwrap();

        let tree = Tree::V2 { base: user.join("hm") };
        tree.prepare().unwrap();
        assert_eq!(
            fs::read_to_string(user.join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );
        let sessions = root.path().join("session");
        fs::create_dir(&sessions).unwrap();
        let record = sessions.join(RECORD);
        let groups = tree.session("s1", &record).unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            millicpus: Some(500),
            pids: Some(100),
            disk: None,
            disk_explicit: false,
        };
        let step = groups.step(3, &limits).unwrap();
        let dir = user.join("hm/s1/3");
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "100");
        // Init is made in the group; only an old kernel's helper moves in.
        assert_eq!(step.entry(), Entry::Into(dir.clone()));
        step.entry().join_whole().unwrap();
        assert_eq!(read("cgroup.procs"), "0");

        fs::write(dir.join("memory.peak"), "1048576\n").unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 1500000\nuser_usec 1000000\n").unwrap();
        fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n").unwrap();
        fs::write(dir.join("pids.events"), "max 0\n").unwrap();
        assert_eq!(
            step.usage(&limits),
            StepUsage {
                peak_memory_bytes: Some(1 << 20),
                cpu_ms: Some(1500),
                oom_killed: true,
                memory_limit: Some(64 << 20),
                pids_refused: false,
                pids_limit: Some(100),
            }
        );
        // A plain directory keeps its files; cgroupfs's vanish with it.
        for f in fs::read_dir(&dir).unwrap() {
            fs::remove_file(f.unwrap().path()).unwrap();
        }
        assert_eq!(
            fs::read_to_string(&record).unwrap(),
            format!("{}\n", user.join("hm/s1").display())
        );
        // The process died without dropping `groups`: its record removes them.
        std::mem::forget(groups);
        remove_recorded(&sessions);
        assert!(!user.join("hm/s1").exists());
        assert!(user.join("hm").exists());
    }

    #[test]
    fn v1_groups_get_limits_in_each_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        let base = |c: &str| root.path().join(c).join("hm");
        let tree = Tree::V1 {
            memory: base("memory"),
            cpu: base("cpu"),
            cpuacct: base("cpuacct"),
            pids: base("pids"),
        };
        tree.prepare().unwrap();
        let groups = tree.session("s", &root.path().join(RECORD)).unwrap();
        let limits = Limits {
            memory: Some(1 << 30),
            millicpus: Some(250),
            pids: Some(64),
            disk: None,
            disk_explicit: false,
        };
        let step = groups.step(0, &limits).unwrap();
        let read = |c: &str, f: &str| fs::read_to_string(base(c).join("s/0").join(f)).unwrap();
        assert_eq!(read("memory", "memory.limit_in_bytes"), (1u64 << 30).to_string());
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "25000");
        assert_eq!(read("pids", "pids.max"), "64");
        // The helper moves itself, one thread, into each hierarchy.
        assert!(step.entry().join().unwrap().is_none());
        for c in ["memory", "cpu", "cpuacct", "pids"] {
            assert_eq!(read(c, "tasks"), "0");
        }
        fs::write(base("memory").join("s/0/memory.max_usage_in_bytes"), "4096").unwrap();
        fs::write(base("cpuacct").join("s/0/cpuacct.usage"), "2500000000").unwrap();
        fs::write(
            base("memory").join("s/0/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        fs::write(base("pids").join("s/0/pids.events"), "max 12\n").unwrap();
        let usage = step.usage(&limits);
        assert_eq!(
            (usage.peak_memory_bytes, usage.cpu_ms, usage.oom_killed),
            (Some(4096), Some(2500), false)
        );
        assert!(usage.pids_refused && usage.limit_hit());
        assert_eq!(fs::read_to_string(root.path().join(RECORD)).unwrap().lines().count(), 4);
    }
}
