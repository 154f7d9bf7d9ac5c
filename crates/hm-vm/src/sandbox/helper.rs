//! The sandbox helper: `hm` re-executed as a single-threaded process that
//! enters new namespaces, assembles the root filesystem, syncs
//! `/workspace`, and runs the step's shell as the child of a tiny init.
//!
//! Process tree: `hm` → helper (in its own session, in the new user/mount
//! namespaces) → init (pid 1 of the new pid namespace: mounts, then reaps)
//! → `sh -c CMD`. When init exits the kernel kills everything else in the
//! namespace, and with it the mounts disappear; nothing is ever mounted in
//! the host's namespace. The helper dies with `hm` (parent-death signal),
//! init dies with the helper, and a SIGTERM to the helper kills init and
//! waits for it, so that when the helper has exited the step's processes
//! and mounts are gone.
//!
//! The helper's standard input is a socket: `hm` sends a [`Job`] and shuts
//! its side for writing; the helper answers with one [`Report`] on the same
//! socket. It never writes to the step's stdout or stderr, and the shell's
//! standard input is `/dev/null`, except for an interactive shell (a
//! [`Spec`] with `terminal`): its stdout and stderr are then the caller's
//! terminal, which the shell also reads and gets as its controlling
//! terminal, in the foreground, with the helper in a process group of its
//! own in `hm`'s session (see [`take_terminal`]). Besides running steps, the helper
//! flattens layers (a [`Job::Flatten`]) inside a user namespace when `hm`
//! is not root, where it may read and write whatever a step left, and
//! removes what a step left as subordinate ids (a [`Job::Remove`]).
//!
//! A step whose disk is limited (see [`super::disk`]) has its upper and
//! work directories on a filesystem of its own, which the helper mounts in
//! its mount namespace before init starts; init gets a mount and pid
//! namespace of its own (see [`fork_into`]), and once it is gone, if the
//! step passed, the helper copies the step's files out to the session.
//!
//! Unprivileged, root inside the user namespace is the caller; when the
//! caller has subordinate ids (see [`super::subids`]), ids 1 and up are
//! those, mapped by `newuidmap` and `newgidmap` from a child forked before
//! the namespace exists (see [`enter_user_namespace`]).

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use caps::CapSet;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use super::disk;
use super::mounts::{
    bind_console, bind_resolv_conf, bind_volume, ensure_dir, mask, mount_dev, mount_op, mount_proc, mount_sys,
    mount_tmpfs, open_volume,
};
use super::spec::{FlattenSpec, IdMap, Job, PackSpec, RemoveSpec, Report, Spec, UnpackSpec};
use super::subids::{IdRange, SubIds};
use super::sync::{self, SourceDir};
use crate::backend::Network;
use crate::capabilities::STEP_CAPABILITIES;

/// The argument that makes `hm` run as the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox";

/// A stage of the set-up, in the order they run; a failure names its stage.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Spec,
    Parent,
    Namespaces,
    IdMap,
    Network,
    Fork,
    PrivateMounts,
    Rootfs,
    Proc,
    Sys,
    Dev,
    Tmp,
    Run,
    ResolvConf,
    Mask,
    Workspace,
    PivotRoot,
    Harden,
    Exec,
    Flatten,
    Remove,
    Pack,
    Unpack,
    Disk,
    SaveLayer,
    Cgroup,
    Volumes,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Spec => "reading the spec",
            Stage::Parent => "parent check",
            Stage::Namespaces => "namespaces",
            Stage::IdMap => "user id map",
            Stage::Network => "private network",
            Stage::Fork => "fork",
            Stage::PrivateMounts => "private mounts",
            Stage::Rootfs => "root filesystem",
            Stage::Proc => "/proc",
            Stage::Sys => "/sys",
            Stage::Dev => "/dev",
            Stage::Tmp => "/tmp",
            Stage::Run => "/run",
            Stage::ResolvConf => "/etc/resolv.conf",
            Stage::Mask => "masking the cache",
            Stage::Workspace => "workspace sync",
            Stage::PivotRoot => "pivot_root",
            Stage::Harden => "dropping privileges",
            Stage::Exec => "exec /bin/sh",
            Stage::Flatten => "flattening layers",
            Stage::Remove => "removing files",
            Stage::Pack => "packing a layer",
            Stage::Unpack => "unpacking a layer",
            Stage::Disk => "the step's disk",
            Stage::SaveLayer => "saving the step's files",
            Stage::Cgroup => "control group",
            Stage::Volumes => "cache volumes",
        }
    }
}

struct Failure {
    stage: Stage,
    message: String,
}

type Staged<T> = Result<T, Failure>;

trait At<T> {
    fn at(self, stage: Stage) -> Staged<T>;
}

impl<T, E: std::fmt::Display> At<T> for Result<T, E> {
    fn at(self, stage: Stage) -> Staged<T> {
        self.map_err(|e| Failure {
            stage,
            message: e.to_string(),
        })
    }
}

fn fail<T>(stage: Stage, message: impl Into<String>) -> Staged<T> {
    Err(Failure {
        stage,
        message: message.into(),
    })
}

/// Writes the one report of this run to the socket on standard input.
struct Reporter(File);

impl Reporter {
    fn send(&mut self, report: &Report) {
        if let Ok(json) = serde_json::to_vec(report) {
            let _ = self.0.write_all(&json);
        }
    }
}

/// Init's pid as the helper sees it, for the SIGTERM handler.
static INIT_PID: AtomicI32 = AtomicI32::new(0);
/// Set by the SIGTERM handler: the step was cancelled, nothing of it is
/// saved.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn kill_init(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Runs the helper on the job read from standard input; never returns.
pub fn helper_main() -> ! {
    // SAFETY: fd 0 is the socket `hm` gave us; nothing else owns it.
    let mut socket = unsafe { File::from_raw_fd(0) };
    let job = super::spec::read_job(&mut socket);
    let mut reporter = Reporter(socket);
    let result = match job {
        Ok(Job::Step(spec)) => outer(&spec, &mut reporter),
        Ok(Job::Flatten(spec)) => flatten(&spec).map(|()| {
            reporter.send(&Report::Exited(0));
            0
        }),
        Ok(Job::Remove(spec)) => remove(&spec).map(|()| {
            reporter.send(&Report::Exited(0));
            0
        }),
        Ok(Job::Pack(spec)) => pack(&spec).map(|()| {
            reporter.send(&Report::Exited(0));
            0
        }),
        Ok(Job::Unpack(spec)) => unpack(&spec).map(|()| {
            reporter.send(&Report::Exited(0));
            0
        }),
        Err(message) => Err(Failure {
            stage: Stage::Spec,
            message,
        }),
    };
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            reporter.send(&Report::SetupFailed {
                stage: failure.stage.name().to_owned(),
                message: failure.message,
            });
            125
        }
    };
    std::process::exit(code)
}

/// Flattens layers, inside a user namespace when not root (see
/// [`crate::flatten`]).
fn flatten(spec: &FlattenSpec) -> Staged<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    if let Some(map) = &spec.id_map {
        enter_user_namespace(CloneFlags::empty(), map)?;
    }
    // Owners are kept where every owner a step can make is mapped.
    let keep_owners = spec.id_map.as_ref().is_none_or(|map| map.sub.is_some());
    crate::flatten::flatten(&spec.layers, &spec.dest, keep_owners).at(Stage::Flatten)
}

/// Packs a layer, as root of a user namespace when not root.
fn pack(spec: &PackSpec) -> Staged<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    if let Some(map) = &spec.id_map {
        enter_user_namespace(CloneFlags::empty(), map)?;
    }
    pack_here(spec)
}

/// Packing and unpacking without an id map (as root) need no namespace:
/// the work of the job, to run in this process (a blocking thread) rather
/// than in a helper started for it. `None` for every other job.
pub(crate) fn in_process(job: &Job) -> Option<Box<dyn FnOnce() -> Result<(), crate::error::SandboxError> + Send>> {
    let staged = |result: Staged<()>| {
        result.map_err(|failure| crate::error::SandboxError::Setup {
            stage: failure.stage.name().to_owned(),
            message: failure.message,
        })
    };
    match job {
        Job::Pack(spec) if spec.id_map.is_none() => {
            let spec = spec.clone();
            Some(Box::new(move || staged(pack_here(&spec))))
        }
        Job::Unpack(spec) if spec.id_map.is_none() => {
            let spec = spec.clone();
            Some(Box::new(move || staged(unpack_here(&spec))))
        }
        _ => None,
    }
}

/// Packs a layer as this process is.
fn pack_here(spec: &PackSpec) -> Staged<()> {
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(&spec.dest)
        .map_err(|err| format!("`{}`: {err}", crate::os_path::escaped(&spec.dest)))
        .at(Stage::Pack)?;
    let out = crate::oci::pack::pack_layer(&spec.layer, io::BufWriter::new(out)).at(Stage::Pack)?;
    out.into_inner()
        .map_err(|err| err.into_error())
        .and_then(|file| file.sync_all())
        .at(Stage::Pack)
}

/// Unpacks a layer, as root of a user namespace when not root.
fn unpack(spec: &UnpackSpec) -> Staged<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    if let Some(map) = &spec.id_map {
        enter_user_namespace(CloneFlags::empty(), map)?;
    }
    unpack_here(spec)
}

/// Unpacks a layer as this process is.
fn unpack_here(spec: &UnpackSpec) -> Staged<()> {
    let options = crate::oci::unpack::UnpackOptions {
        // Owners are kept where every owner a step can make is mapped.
        chown: spec.id_map.as_ref().is_none_or(|map| map.sub.is_some()),
        devices: spec.id_map.is_none(),
        keep_whiteouts: true,
    };
    fs::create_dir(&spec.dest).at(Stage::Unpack)?;
    let blob = File::open(&spec.blob)
        .map_err(|err| format!("`{}`: {err}", crate::os_path::escaped(&spec.blob)))
        .at(Stage::Unpack)?;
    let mut report = crate::oci::unpack::UnpackReport::default();
    crate::oci::unpack::apply_layer(blob, &spec.dest, &options, &mut report, &mut |_| Ok(())).at(Stage::Unpack)
}

/// Removes trees as root of a user namespace with the step's map, where
/// every file a step can leave is someone's that root may remove.
fn remove(spec: &RemoveSpec) -> Staged<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    enter_user_namespace(CloneFlags::empty(), &spec.id_map)?;
    for path in &spec.paths {
        crate::fsutil::remove_tree(path)
            .map_err(|err| format!("`{}`: {err}", crate::os_path::escaped(path)))
            .at(Stage::Remove)?;
    }
    Ok(())
}

/// The helper proper: namespaces, then init as a child, then wait.
fn outer(spec: &Spec, reporter: &mut Reporter) -> Staged<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    if unistd::getppid().as_raw() as u32 != spec.parent_pid {
        return fail(Stage::Parent, "hm exited before the sandbox started");
    }
    // In the step's control group (v1), or its directory open for init's
    // clone (v2), before anything of the step starts.
    let cgroup = match &spec.cgroup {
        Some(entry) => entry.join().at(Stage::Cgroup)?,
        None => None,
    };
    if spec.terminal {
        // Stays in the session whose controlling terminal the shell gets,
        // in a process group of its own: keys typed at the terminal reach
        // the shell (in the foreground) and never the helper.
        unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).at(Stage::Namespaces)?;
    } else {
        // A session of its own: a Ctrl-C at the terminal reaches `hm`
        // only, which then cancels cleanly.
        unistd::setsid().at(Stage::Namespaces)?;
    }
    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Some(disk) = &spec.disk {
        // Before the pid namespace, whose first process `mkfs` would be.
        disk::prepare(disk).map_err(|e| e.chain()).at(Stage::Disk)?;
        // Init's pid namespace comes with init (see `fork_into`).
        flags.remove(CloneFlags::CLONE_NEWPID);
    }
    match &spec.id_map {
        Some(map) => enter_user_namespace(flags, map)?,
        None => unshare(flags).at(Stage::Namespaces)?,
    }
    if spec.network == Network::None {
        // A new network namespace has a loopback interface that is down.
        loopback_up().at(Stage::Network)?;
    }
    if let Some(disk) = &spec.disk {
        // In this namespace, which init leaves for one of its own: the
        // step's files stay here, for the helper to save, after init and
        // every process of the step are gone.
        disk::mount_disk(disk).map_err(|e| e.chain()).at(Stage::Disk)?;
    }

    let (lifeline_read, lifeline_write) = unistd::pipe().at(Stage::Fork)?;
    match fork_init(spec, cgroup.as_ref())? {
        ForkResult::Child => {
            drop(lifeline_write);
            let code = match init(spec, reporter, lifeline_read) {
                Ok(code) => code,
                Err(failure) => {
                    reporter.send(&Report::SetupFailed {
                        stage: failure.stage.name().to_owned(),
                        message: failure.message,
                    });
                    125
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(lifeline_read);
            INIT_PID.store(child.as_raw(), Ordering::SeqCst);
            let handler = SigHandler::Handler(kill_init);
            for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                // SAFETY: the handler only calls kill(2).
                unsafe { signal::signal(sig, handler) }.at(Stage::Fork)?;
            }
            let code = loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(err) => return fail(Stage::Fork, err.to_string()),
                }
            };
            // Init's pid may be another process's now.
            INIT_PID.store(0, Ordering::SeqCst);
            drop(lifeline_write);
            if let (Some(disk), 0) = (&spec.disk, code) {
                // From here a SIGTERM ends the helper; one that came before
                // cancelled the step.
                for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                    // SAFETY: restoring the default disposition.
                    unsafe { signal::signal(sig, SigHandler::SigDfl) }.at(Stage::SaveLayer)?;
                }
                if !TERMINATED.load(Ordering::SeqCst) {
                    let options = crate::oci::unpack::UnpackOptions {
                        // Owners are kept where every owner a step can make is mapped.
                        chown: spec.id_map.as_ref().is_none_or(|map| map.sub.is_some()),
                        devices: spec.id_map.is_none(),
                        keep_whiteouts: true,
                    };
                    disk::save(disk, &options).map_err(|e| e.chain()).at(Stage::SaveLayer)?;
                }
            }
            Ok(code)
        }
    }
}

/// `clone3`'s flag for a child created in the control group whose
/// directory `clone_args.cgroup` is open on (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks init: into new pid and mount namespaces for a limited disk (see
/// `outer`), and created in the step's v2 control group where `cgroup` is
/// open on one, which costs no migration. A kernel without
/// `CLONE_INTO_CGROUP` gets the helper moved in first, then a plain fork.
fn fork_init(spec: &Spec, cgroup: Option<&File>) -> Staged<ForkResult> {
    let flags = match spec.disk {
        None => CloneFlags::empty(),
        Some(_) => CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS,
    };
    match (fork_into(flags, cgroup), &spec.cgroup) {
        (Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL), Some(entry)) if cgroup.is_some() => {
            entry.join_whole().at(Stage::Cgroup)?;
            fork_into(flags, None).at(Stage::Fork)
        }
        (forked, _) => forked.at(Stage::Fork),
    }
}

/// `fork`, the child in new namespaces (`flags`) and, with `cgroup`, in
/// the control group it is open on: a raw `clone(2)` or `clone3(2)`, as
/// `fork(3)` makes it, without glibc's handlers for the child, which a
/// single-threaded process does not need. A limited step's init is made so
/// (in a new pid and mount namespace), not by `unshare(CLONE_NEWPID)` and
/// `fork`: that would put every later child and thread of the helper in
/// init's pid namespace, where none can be made once init is gone, and the
/// helper saves the step's files then (with a thread), in its own mount
/// namespace, which init's pivot leaves as it is.
fn fork_into(flags: CloneFlags, cgroup: Option<&File>) -> nix::Result<ForkResult> {
    // SAFETY: a clone without CLONE_VM and with no new stack is a fork;
    // the helper is single-threaded, so the child may do anything.
    let rc = match cgroup {
        None if flags.is_empty() => {
            // SAFETY: as above.
            return unsafe { unistd::fork() };
        }
        None => {
            let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
            unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) }
        }
        Some(dir) => {
            // SAFETY: every field of `clone_args` is an integer.
            let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
            args.flags = flags.bits() as u64 | CLONE_INTO_CGROUP;
            args.exit_signal = libc::SIGCHLD as u64;
            args.cgroup = dir.as_raw_fd() as u64;
            let size = std::mem::size_of::<libc::clone_args>();
            unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut libc::clone_args, size) }
        }
    };
    match rc {
        -1 => Err(Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}

/// Unshares a new user namespace (with the other namespaces in `flags`)
/// and maps root inside to the caller, and with subordinate ids, ids 1 and
/// up to those.
///
/// Only the setuid `newuidmap`/`newgidmap` may map subordinate ids, and
/// only from the parent user namespace: run from inside the new one, a
/// setuid program gains nothing there. So a child forked before the
/// `unshare` (still outside) waits on a pipe until the helper has
/// unshared, runs both on the helper's pid and exits with their verdict.
/// The helper does it rather than `hm` because the helper is the one that
/// unshares and is single-threaded (a plain fork is safe), and because the
/// jobs that need the same map (flattening, removing) have no protocol
/// step in which `hm` could act.
fn enter_user_namespace(flags: CloneFlags, map: &IdMap) -> Staged<()> {
    let flags = flags | CloneFlags::CLONE_NEWUSER;
    let Some(sub) = &map.sub else {
        unshare(flags).at(Stage::Namespaces)?;
        return write_single_id_map(map).at(Stage::IdMap);
    };
    let helper = unistd::getpid();
    let (go_read, go_write) = unistd::pipe2(OFlag::O_CLOEXEC).at(Stage::IdMap)?;
    let (verdict_read, verdict_write) = unistd::pipe2(OFlag::O_CLOEXEC).at(Stage::IdMap)?;
    // SAFETY: the helper is single-threaded, so the child may do anything.
    match unsafe { unistd::fork() }.at(Stage::IdMap)? {
        ForkResult::Child => {
            drop(go_write);
            drop(verdict_read);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            let mut go = [0u8; 1];
            // No byte: the helper failed to unshare (or died); nothing to map.
            let code = match unistd::read(&go_read, &mut go) {
                Ok(1) => match write_sub_id_maps(helper, map, sub) {
                    Ok(()) => 0,
                    Err(err) => {
                        // The parent reads the message: the verdict is text.
                        let _ = unistd::write(&verdict_write, err.to_string().as_bytes());
                        1
                    }
                },
                _ => 0,
            };
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_read);
            drop(verdict_write);
            let unshared = unshare(flags);
            if unshared.is_ok() {
                let _ = unistd::write(&go_write, &[1]);
            }
            drop(go_write);
            let mut verdict = String::new();
            let _ = File::from(verdict_read).read_to_string(&mut verdict);
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            unshared.at(Stage::Namespaces)?;
            match status {
                _ if !verdict.is_empty() => fail(Stage::IdMap, verdict),
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                other => fail(Stage::IdMap, format!("the process mapping ids ended: {other:?}")),
            }
        }
    }
}

/// The map an unprivileged process may write itself: root inside is the
/// caller, and no other id exists (so `setgroups` must be denied).
fn write_single_id_map(map: &IdMap) -> io::Result<()> {
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", format!("0 {} 1\n", map.uid))?;
    fs::write("/proc/self/gid_map", format!("0 {} 1\n", map.gid))
}

/// Why `newuidmap` or `newgidmap` did not map a step's ids.
#[derive(Debug, thiserror::Error)]
enum IdMapError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `newuidmap PID 0 UID 1 1 START COUNT` and the same `newgidmap`
/// (from the parent user namespace); the error names the command and
/// says what it printed.
fn write_sub_id_maps(pid: Pid, map: &IdMap, sub: &SubIds) -> Result<(), IdMapError> {
    let run = |tool: &std::path::Path, own: u32, range: IdRange| {
        let args = [
            pid.as_raw().to_string(),
            "0".to_owned(),
            own.to_string(),
            "1".to_owned(),
        ]
        .into_iter()
        .chain(["1".to_owned(), range.start.to_string(), range.count.to_string()]);
        let args: Vec<String> = args.collect();
        let command = format!("{} {}", tool.display(), args.join(" "));
        match std::process::Command::new(tool).args(&args).output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(IdMapError::Failed {
                command,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            }),
            Err(source) => Err(IdMapError::Spawn { command, source }),
        }
    };
    run(&sub.newuidmap, map.uid, sub.uids)?;
    run(&sub.newgidmap, map.gid, sub.gids)
}

/// Pid 1 of the new pid namespace.
fn init(spec: &Spec, reporter: &mut Reporter, lifeline: OwnedFd) -> Staged<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Fork)?;
    // If the helper died before the line above, its end of the pipe is
    // closed already.
    let mut fds = [nix::poll::PollFd::new(lifeline.as_fd(), nix::poll::PollFlags::POLLIN)];
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).at(Stage::Fork)? > 0 {
        return fail(Stage::Fork, "the helper exited before the sandbox started");
    }
    drop(lifeline);

    let root = spec.root.as_path();
    disk::mount_private().at(Stage::PrivateMounts)?;
    for op in &spec.rootfs {
        mount_op(root, op).at(Stage::Rootfs)?;
    }
    mount_proc(root).at(Stage::Proc)?;
    mount_sys(root).at(Stage::Sys)?;
    mount_dev(root, spec.id_map.is_some()).at(Stage::Dev)?;
    if spec.terminal {
        // A nicety: without it the shell works, `tty` says `not a tty`.
        let _ = bind_console(root);
    }
    let tmpfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount_tmpfs(&ensure_dir(root, "tmp").at(Stage::Tmp)?, 0o1777, tmpfs_flags).at(Stage::Tmp)?;
    if spec.fresh_run {
        mount_tmpfs(&ensure_dir(root, "run").at(Stage::Run)?, 0o755, tmpfs_flags).at(Stage::Run)?;
    }
    if let Some(source) = &spec.resolv_conf {
        bind_resolv_conf(root, source, spec.fresh_run).at(Stage::ResolvConf)?;
    }
    // The source and the volumes, needed after the pivot, opened while
    // they are reachable.
    let source = match spec.sync.is_empty() {
        true => None,
        false => Some(SourceDir::open(&spec.sync.source_root).at(Stage::Workspace)?),
    };
    let volumes = spec
        .volumes
        .iter()
        .map(|v| open_volume(&v.source).map(|fd| (fd, &v.target)))
        .collect::<io::Result<Vec<_>>>()
        .at(Stage::Volumes)?;

    unistd::chdir(root).at(Stage::PivotRoot)?;
    unistd::pivot_root(".", ".").at(Stage::PivotRoot)?;
    umount2(".", MntFlags::MNT_DETACH).at(Stage::PivotRoot)?;
    unistd::chdir("/").at(Stage::PivotRoot)?;

    // From here on every path resolves inside the sandbox.
    for masked in &spec.masked {
        mask(masked).at(Stage::Mask)?;
    }
    let old_umask = umask(Mode::empty());
    let synced = match &source {
        Some(source) => sync::sync(source, &spec.sync),
        None => fs::create_dir_all(&spec.sync.target).map(|()| Vec::new()),
    };
    umask(old_umask);
    let drift = synced.at(Stage::Workspace)?;
    if !drift.is_empty() {
        reporter.send(&Report::Drifted(drift));
    }
    // Over the synced workspace: a volume under it hides what is there.
    for (fd, target) in &volumes {
        bind_volume(fd, target).at(Stage::Volumes)?;
    }
    // Nothing of the host stays reachable from the step.
    drop(source);
    drop(volumes);
    harden().at(Stage::Harden)?;
    if let Err(err) = unistd::chdir(&spec.exec.cwd) {
        return fail(
            Stage::Exec,
            format!("cannot enter `{}`: {err}", spec.exec.cwd.display()),
        );
    }

    let shell = spawn_shell(spec)?;
    let report = reap_until(shell);
    reporter.send(&report);
    Ok(match report {
        Report::Exited(code) => code,
        Report::Signaled(sig) => 128 + sig,
        Report::SetupFailed { .. } | Report::Drifted(_) => 125,
    })
}

/// Brings the loopback interface of a new network namespace up.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes no pointers; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero `ifreq` is a valid value (a C struct of integers).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    let ioctl = |op, request: &mut libc::ifreq| {
        // SAFETY: `request` is a valid `ifreq` for SIOCGIFFLAGS/SIOCSIFFLAGS,
        // alive across the call.
        match unsafe { libc::ioctl(socket.as_raw_fd(), op, request as *mut libc::ifreq) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    ioctl(libc::SIOCGIFFLAGS, &mut request)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(libc::SIOCSIFFLAGS, &mut request)
}

/// Limits what the step's shell (and everything it runs) may ever hold to
/// [`STEP_CAPABILITIES`]: the bounding set is cut, the inheritable and ambient sets
/// emptied (root gets its bounding set, plus its inheritable set, at every
/// `exec`), no new privileges (setuid bits and file capabilities grant
/// nothing), and init itself made non-dumpable, so the step can neither
/// trace it nor open its `/proc` entries.
fn harden() -> io::Result<()> {
    // The bounding set by number, up to the kernel's last capability, not
    // with the `caps` crate: it names only the capabilities it knows, and
    // one that a newer kernel adds would stay in the step's bounding set.
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    for cap in (0..=last).filter(|c| !STEP_CAPABILITIES.iter().any(|(kept, _)| kept == c)) {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    caps::clear(None, CapSet::Inheritable).map_err(io::Error::other)?;
    // Kernels before 4.3 have no ambient set to clear.
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(io::Error::other)?;
    }
    nix::sys::prctl::set_no_new_privs()?;
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}

fn cstring(bytes: &[u8]) -> Staged<CString> {
    CString::new(bytes).at(Stage::Exec)
}

/// Forks and execs `/bin/sh -c CMD`; an exec failure comes back through a
/// close-on-exec pipe and is a set-up failure, not an exit status.
fn spawn_shell(spec: &Spec) -> Staged<Pid> {
    let argv = [cstring(b"sh")?, cstring(b"-c")?, cstring(spec.exec.cmd.as_bytes())?];
    let env: Vec<CString> = spec
        .exec
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<Staged<_>>()?;
    let sh = cstring(b"/bin/sh")?;
    let (err_read, err_write) = unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).at(Stage::Exec)?;
    // SAFETY: init is single-threaded.
    match unsafe { unistd::fork() }.at(Stage::Exec)? {
        ForkResult::Child => {
            drop(err_read);
            // Start the shell in the state a fresh process expects.
            for sig in [
                Signal::SIGPIPE,
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGHUP,
                Signal::SIGQUIT,
                Signal::SIGTSTP,
                Signal::SIGTTIN,
                Signal::SIGTTOU,
            ] {
                // SAFETY: restoring the default disposition.
                let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
            }
            let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&signal::SigSet::empty()), None);
            // The socket to `hm` stays with init.
            if spec.terminal {
                // SAFETY: fd 1 is the terminal, open for the process's life.
                let _ = unistd::dup2_stdin(unsafe { std::os::fd::BorrowedFd::borrow_raw(1) });
                take_terminal();
            } else if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
                // A step reads nothing.
                let _ = unistd::dup2_stdin(&null);
            }
            umask(Mode::from_bits_truncate(0o022));
            let err = unistd::execve(&sh, &argv, &env).unwrap_err();
            let _ = unistd::write(&err_write, &(err as i32).to_ne_bytes());
            // SAFETY: leave without running the parent's atexit handlers.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(err_write);
            let mut buf = [0u8; 4];
            match unistd::read(&err_read, &mut buf) {
                Ok(4) => {
                    let _ = waitpid(child, None);
                    let errno = Errno::from_raw(i32::from_ne_bytes(buf));
                    fail(Stage::Exec, format!("cannot run /bin/sh in the image: {errno}"))
                }
                _ => Ok(child),
            }
        }
    }
}

/// Makes the terminal on standard input the calling process's controlling
/// terminal, with its own process group in the foreground: Ctrl-C, Ctrl-Z
/// and job control then work as in any terminal. The terminal is normally
/// the controlling terminal of `hm`'s session, which the process is in;
/// otherwise it becomes the terminal of a new session. Where neither works
/// the shell runs without job control.
fn take_terminal() {
    // SAFETY: fd 0 is the terminal, open for the process's life.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    // A process outside the foreground group must ignore SIGTTOU to take
    // the terminal over; the caller restores the default afterwards.
    // SAFETY: setting a disposition, in a single-threaded process.
    let _ = unsafe { signal::signal(Signal::SIGTTOU, SigHandler::SigIgn) };
    // SAFETY: tcgetsid(3) takes a descriptor and no pointers.
    let controlling = unsafe { libc::tcgetsid(0) } >= 0;
    if controlling {
        if unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).is_ok() {
            let _ = unistd::tcsetpgrp(stdin, unistd::getpgrp());
        }
    } else if unistd::setsid().is_ok() {
        // SAFETY: TIOCSCTTY takes an integer argument and no pointers.
        let _ = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    // SAFETY: restoring the default disposition.
    let _ = unsafe { signal::signal(Signal::SIGTTOU, SigHandler::SigDfl) };
}

/// Reaps every process until the shell has exited.
fn reap_until(shell: Pid) -> Report {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == shell => return Report::Exited(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == shell => return Report::Signaled(sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(err) => {
                return Report::SetupFailed {
                    stage: Stage::Exec.name().to_owned(),
                    message: format!("lost track of the shell: {err}"),
                }
            }
        }
    }
}

/// Whether `name` is the helper argument (checked by `hm`'s `main` before
/// anything else runs, while the process is still single-threaded).
pub fn is_helper_invocation(arg: &OsStr) -> bool {
    arg.as_bytes() == HELPER_ARG.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Entry;

    /// On cgroup v2, init is created in the step's group (`clone3`), and
    /// the helper, which clones it, stays where it was: no migration.
    #[test]
    fn init_is_created_in_a_v2_group_and_the_helper_stays_out() {
        use super::super::disk::skip::skip;
        if !crate::fsutil::is_root() {
            return skip("making a control group needs root");
        }
        let Some(own) = crate::cgroup::own_unified_dir() else {
            return skip("no cgroup v2 hierarchy is mounted");
        };
        let dir = own.join(format!("hm-test-{}", crate::fsutil::random_id(6)));
        fs::create_dir(&dir).unwrap();
        let group = Entry::Into(dir.clone()).join().unwrap().expect("a v2 group is opened");
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let in_group = |pid: &str| {
            let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let line = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_owned();
            line.ends_with(&format!("/{name}"))
        };
        match fork_into(CloneFlags::empty(), Some(&group)).unwrap() {
            ForkResult::Child => {
                // SAFETY: only async-signal-safe calls in the child of a
                // multi-threaded process.
                unsafe {
                    libc::pause();
                    libc::_exit(0)
                }
            }
            ForkResult::Parent { child } => {
                let child_in = in_group(&child.to_string());
                let self_in = in_group("self");
                signal::kill(child, Signal::SIGKILL).unwrap();
                waitpid(child, None).unwrap();
                fs::remove_dir(&dir).unwrap();
                assert!(child_in, "the child is in {}", dir.display());
                assert!(!self_in, "the caller stayed out");
            }
        }
    }
}
