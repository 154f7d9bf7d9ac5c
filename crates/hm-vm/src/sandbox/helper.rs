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
//! The helper's standard input is a socket: `hm` sends the [`Spec`] and
//! shuts its side for writing; the helper answers with one [`Report`] on
//! the same socket. It never writes to the step's stdout or stderr, and the
//! shell's standard input is `/dev/null`.

use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use super::spec::{IdMap, MountOp, Report, Spec};
use crate::backend::SyncKind;

/// The argument that makes `hm` run as the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox";

/// A stage of the set-up, in the order they run; a failure names its stage.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Parent,
    Namespaces,
    IdMap,
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
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Parent => "parent check",
            Stage::Namespaces => "namespaces",
            Stage::IdMap => "user id map",
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

extern "C" fn kill_init(_: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Runs the helper on the spec read from standard input; never returns.
pub fn helper_main() -> ! {
    // SAFETY: fd 0 is the socket `hm` gave us; nothing else owns it.
    let mut socket = unsafe { File::from_raw_fd(0) };
    let mut bytes = Vec::new();
    let spec = socket
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice::<Spec>(&bytes).map_err(|e| e.to_string()));
    let mut reporter = Reporter(socket);
    let spec = match spec {
        Ok(spec) => spec,
        Err(message) => {
            reporter.send(&Report::SetupFailed {
                stage: "reading the spec".to_owned(),
                message,
            });
            std::process::exit(125);
        }
    };
    let code = match outer(&spec, &mut reporter) {
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

/// The helper proper: namespaces, then init as a child, then wait.
fn outer(spec: &Spec, reporter: &mut Reporter) -> Staged<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).at(Stage::Parent)?;
    if unistd::getppid().as_raw() as u32 != spec.parent_pid {
        return fail(Stage::Parent, "hm exited before the sandbox started");
    }
    // A session of its own: a Ctrl-C at the terminal reaches `hm` only,
    // which then cancels cleanly.
    unistd::setsid().at(Stage::Namespaces)?;
    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if spec.id_map.is_some() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    unshare(flags).at(Stage::Namespaces)?;
    if let Some(map) = spec.id_map {
        write_id_map(map).at(Stage::IdMap)?;
    }

    let (lifeline_read, lifeline_write) = unistd::pipe().at(Stage::Fork)?;
    // SAFETY: the helper is single-threaded, so the child may do anything.
    match unsafe { unistd::fork() }.at(Stage::Fork)? {
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
            drop(lifeline_write);
            Ok(code)
        }
    }
}

fn write_id_map(map: IdMap) -> io::Result<()> {
    fs::write("/proc/self/setgroups", "deny")?;
    fs::write("/proc/self/uid_map", format!("0 {} 1\n", map.uid))?;
    fs::write("/proc/self/gid_map", format!("0 {} 1\n", map.gid))
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
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .at(Stage::PrivateMounts)?;
    for op in &spec.rootfs {
        mount_op(root, op).at(Stage::Rootfs)?;
    }
    mount_proc(root).at(Stage::Proc)?;
    mount_sys(root).at(Stage::Sys)?;
    mount_dev(root, spec.id_map.is_some()).at(Stage::Dev)?;
    mount_tmpfs(
        &ensure_dir(root, "tmp").at(Stage::Tmp)?,
        0o1777,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
    .at(Stage::Tmp)?;
    if spec.fresh_run {
        mount_tmpfs(
            &ensure_dir(root, "run").at(Stage::Run)?,
            0o755,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        )
        .at(Stage::Run)?;
    }
    if let Some(source) = &spec.resolv_conf {
        bind_resolv_conf(root, source).at(Stage::ResolvConf)?;
    }
    for masked in &spec.masked {
        let target = root.join(masked.strip_prefix("/").unwrap_or(masked));
        if target.is_dir() {
            mount_tmpfs(
                &target,
                0o755,
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            )
            .at(Stage::Mask)?;
        }
    }
    sync_workspace(root, spec)?;

    unistd::chdir(root).at(Stage::PivotRoot)?;
    unistd::pivot_root(".", ".").at(Stage::PivotRoot)?;
    umount2(".", MntFlags::MNT_DETACH).at(Stage::PivotRoot)?;
    unistd::chdir("/").at(Stage::PivotRoot)?;
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
        Report::SetupFailed { .. } => 125,
    })
}

/// Carries out one [`MountOp`].
fn mount_op(root: &Path, op: &MountOp) -> io::Result<()> {
    let shown = |target: &Path| match target.strip_prefix(root) {
        Ok(inside) => Path::new("/").join(inside),
        Err(_) => target.to_owned(),
    };
    match op {
        MountOp::EmptyTmpfs { target } => mount_tmpfs(
            target,
            0o755,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        ),
        MountOp::View { target, empty, lower } => {
            let options = format!("lowerdir={}:{},userxattr", empty.display(), lower.display());
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(options.as_str()),
            )
            .map_err(|e| io::Error::other(format!("view of `{}`: {e}", lower.display())))
        }
        MountOp::Overlay {
            target,
            lowers,
            upper,
            work,
        } => {
            // Named by descriptor, so the options stay short at any depth.
            let fds = lowers
                .iter()
                .map(|l| {
                    nix::fcntl::open(l, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(|e| io::Error::other(format!("layer `{}`: {e}", l.display())))
                })
                .collect::<io::Result<Vec<OwnedFd>>>()?;
            let lowerdir: Vec<String> = fds
                .iter()
                .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .collect();
            let options = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lowerdir.join(":"),
                upper.display(),
                work.display()
            );
            // `volatile` skips syncing the upper directory on unmount (a
            // commit makes a layer durable when it must be); kernels
            // before 5.10 do not know it.
            let mount_with = |options: &str| {
                mount(
                    Some("overlay"),
                    target,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(options),
                )
            };
            mount_with(&format!("{options},volatile"))
                .or_else(|e| {
                    if e == Errno::EINVAL {
                        mount_with(&options)
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| io::Error::other(format!("overlay on `{}`: {e}", shown(target).display())))
        }
        MountOp::BindReadOnly {
            source,
            target,
            recursive,
        } => bind_read_only(source, target, *recursive)
            .map_err(|e| io::Error::other(format!("bind `{}`: {e}", source.display()))),
    }
}

/// Bind-mounts `source` on `target` and makes the bind read-only (with the
/// mounts below it when `recursive`), keeping the flags a user namespace
/// may not drop.
fn bind_read_only(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let rec = if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | rec, None::<&str>)?;
    if recursive && set_read_only_recursively(target).is_ok() {
        return Ok(());
    }
    let locked = locked_flags(target);
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
        None::<&str>,
    )?;
    Ok(())
}

/// `mount_setattr(2)` (Linux 5.12) with `MOUNT_ATTR_RDONLY` on a whole
/// tree of mounts.
fn set_read_only_recursively(target: &Path) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let path = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is NUL-terminated and `attr` lives across the call,
    // whose size argument matches it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The mount flags of the mount at `path` that a remount must keep.
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let flags = stat.flags();
    let mut out = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(fs_flag) {
            out |= ms_flag;
        }
    }
    out
}

/// The directory `name` under the root, created when the image lacks it.
fn ensure_dir(root: &Path, name: &str) -> io::Result<PathBuf> {
    let path = root.join(name);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err(io::Error::other(format!("`/{name}` in the image is not a directory"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(&path)?;
            Ok(path)
        }
        Err(e) => Err(e),
    }
}

fn mount_tmpfs(target: &Path, mode: u32, flags: MsFlags) -> io::Result<()> {
    let options = format!("mode={mode:o}");
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options.as_str()))?;
    Ok(())
}

/// Files of /proc that reveal or change the host, hidden under /dev/null.
const PROC_MASKED: [&str; 5] = ["kcore", "keys", "timer_list", "sched_debug", "sysrq-trigger"];
/// Directories of /proc that must not be written, made read-only.
const PROC_READ_ONLY: [&str; 4] = ["sys", "irq", "bus", "fs"];

fn mount_proc(root: &Path) -> io::Result<()> {
    let proc = ensure_dir(root, "proc")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), &proc, Some("proc"), flags, None::<&str>)?;
    for name in PROC_MASKED {
        let target = proc.join(name);
        if target.exists() {
            mount(Some("/dev/null"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
        }
    }
    for name in PROC_READ_ONLY {
        let target = proc.join(name);
        if target.is_dir() {
            bind_read_only(&target, &target, true)?;
        }
    }
    Ok(())
}

fn mount_sys(root: &Path) -> io::Result<()> {
    let sys = ensure_dir(root, "sys")?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match mount(Some("sysfs"), &sys, Some("sysfs"), flags, None::<&str>) {
        Ok(()) => Ok(()),
        // A user namespace that shares the host's network may not mount a
        // sysfs of its own; show the host's, read-only where allowed.
        Err(Errno::EPERM) => {
            mount(
                Some("/sys"),
                &sys,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            let locked = locked_flags(&sys);
            let _ = mount(
                None::<&str>,
                &sys,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
                None::<&str>,
            );
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Device nodes bound from the host into the fresh /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn mount_dev(root: &Path, rootless: bool) -> io::Result<()> {
    let dev = ensure_dir(root, "dev")?;
    mount_tmpfs(&dev, 0o755, MsFlags::MS_NOSUID)?;
    for name in DEVICES {
        let target = dev.join(name);
        File::create(&target)?;
        mount(
            Some(&Path::new("/dev").join(name)),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts)?;
    let options = if rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(options),
    )?;
    std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"))?;
    let shm = dev.join("shm");
    fs::create_dir(&shm)?;
    mount_tmpfs(&shm, 0o1777, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))?;
    }
    Ok(())
}

/// Binds the host's resolver configuration over the root's. Where the
/// root's `/etc/resolv.conf` is a link into a fresh tmpfs (`/run` on
/// systemd hosts) the link's target is created there first.
fn bind_resolv_conf(root: &Path, source: &Path) -> io::Result<()> {
    let mut rel = PathBuf::from("etc/resolv.conf");
    for _ in 0..8 {
        let path = root.join(&rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                rel = if target.is_absolute() {
                    target.strip_prefix("/").unwrap_or(&target).to_owned()
                } else {
                    rel.parent().unwrap_or(Path::new("")).join(target)
                };
            }
            Ok(meta) if meta.is_file() => return bind_read_only(source, &path, false),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let in_tmpfs = rel.starts_with("run") || rel.starts_with("tmp");
                if in_tmpfs {
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    File::create(&path)?;
                    return bind_read_only(source, &path, false);
                }
                // Nothing to bind onto; creating the file would change the
                // step's layer.
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Brings `/workspace` in line with the source (see [`crate::SyncPlan`]).
fn sync_workspace(root: &Path, spec: &Spec) -> Staged<()> {
    let plan = &spec.sync;
    let target = root.join(plan.target.strip_prefix("/").unwrap_or(&plan.target));
    let old_umask = umask(Mode::empty());
    let result = (|| -> io::Result<()> {
        fs::create_dir_all(&target)?;
        for rel in &plan.remove {
            remove_entry(&target.join(rel))?;
        }
        for entry in &plan.write {
            write_entry(
                &plan.source_root.join(&entry.path),
                &target.join(&entry.path),
                entry.kind,
            )
            .map_err(|e| io::Error::other(format!("`{}`: {e}", entry.path.display())))?;
        }
        Ok(())
    })();
    umask(old_umask);
    result.at(Stage::Workspace)
}

fn remove_entry(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let result = if meta.is_dir() {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        // A directory that still holds build outputs stays.
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn write_entry(source: &Path, dest: &Path, kind: SyncKind) -> io::Result<()> {
    let existing = fs::symlink_metadata(dest).ok();
    match kind {
        SyncKind::Dir { mode } => {
            match existing {
                Some(meta) if meta.is_dir() => {}
                Some(_) => {
                    fs::remove_file(dest)?;
                    fs::create_dir(dest)?;
                }
                None => fs::create_dir(dest)?,
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        }
        SyncKind::File { mode } => {
            let meta = match fs::symlink_metadata(source) {
                Ok(meta) => meta,
                // Deleted since the manifest was taken: the next sync sees it gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            clear(dest, existing.as_ref())?;
            fs::copy(source, dest)?;
            fs::set_permissions(dest, fs::Permissions::from_mode(mode))?;
            crate::fsutil::set_times(dest, &meta)?;
            Ok(())
        }
        SyncKind::Symlink => {
            let target = match fs::read_link(source) {
                Ok(target) => target,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            clear(dest, existing.as_ref())?;
            std::os::unix::fs::symlink(target, dest)
        }
    }
}

/// Removes whatever is at `dest` so a new entry can take its place.
fn clear(dest: &Path, existing: Option<&fs::Metadata>) -> io::Result<()> {
    match existing {
        None => Ok(()),
        Some(meta) if meta.is_dir() => fs::remove_dir_all(dest),
        Some(_) => fs::remove_file(dest),
    }
}

/// Capabilities a step keeps (the set container runtimes grant by default).
const KEPT_CAPS: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

fn harden() -> io::Result<()> {
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in (0..=last).filter(|c| !KEPT_CAPS.contains(c)) {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    nix::sys::prctl::set_no_new_privs()?;
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
            for sig in [Signal::SIGPIPE, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                // SAFETY: restoring the default disposition.
                let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
            }
            let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&signal::SigSet::empty()), None);
            // The socket to `hm` stays with init; the shell reads nothing.
            if let Ok(null) = nix::fcntl::open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
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
