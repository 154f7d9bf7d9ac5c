//! The mounts of a sandbox: the root filesystem's overlays and binds, the
//! fresh `/proc`, `/sys`, `/dev` and tmpfs directories, and (after
//! `pivot_root`, where nothing can lead outside) the resolver
//! configuration and the masks.
//!
//! Every filesystem a step sees is mounted `nosuid` and `nodev` (the device
//! nodes of `/dev` are binds of the host's, mounts of their own): a setuid
//! file or a device node that a step, an image or a host directory holds
//! grants nothing (see docs/decisions.md).

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use super::spec::MountOp;

/// The flags of every filesystem of the root.
const SAFE: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// Carries out one [`MountOp`].
pub(super) fn mount_op(root: &Path, op: &MountOp) -> io::Result<()> {
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
            let shown = |e| io::Error::other(format!("view of `{}`: {e}", crate::os_path::escaped(lower)));
            let (empty_fd, lower_fd) = (by_fd(empty).map_err(shown)?, by_fd(lower).map_err(shown)?);
            let options = format!("lowerdir={}:{},userxattr", fd_path(&empty_fd), fd_path(&lower_fd));
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::MS_RDONLY | SAFE,
                Some(options.as_str()),
            )
            .map_err(shown)
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
                .map(|l| by_fd(l).map_err(|e| io::Error::other(format!("layer `{}`: {e}", crate::os_path::escaped(l)))))
                .collect::<io::Result<Vec<OwnedFd>>>()?;
            let lowerdir: Vec<String> = fds.iter().map(fd_path).collect();
            let [upper, work] = [upper, work].map(|d| {
                by_fd(d)
                    .map_err(|e| io::Error::other(format!("overlay directory `{}`: {e}", crate::os_path::escaped(d))))
            });
            let (upper, work) = (upper?, work?);
            let options = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                lowerdir.join(":"),
                fd_path(&upper),
                fd_path(&work)
            );
            // `volatile` skips syncing the upper directory on unmount (a
            // commit makes a layer durable when it must be); kernels
            // before 5.10 do not know it.
            let mount_with = |options: &str| mount(Some("overlay"), target, Some("overlay"), SAFE, Some(options));
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
        } => match bind_read_only(source, target, *recursive) {
            // A host mount gone since the host was listed (the root of a
            // container another tool just removed) is simply not there.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map_err(|e| io::Error::other(format!("bind `{}`: {e}", source.display()))),
        },
    }
}

/// Opens a directory an overlay is made of, to name it by descriptor
/// ([`fd_path`]) in the mount options: a path there is cut at `,` and `:`
/// and must be text, so a cache directory whose path holds a comma or a
/// byte that is not UTF-8 could not be mounted.
fn by_fd(dir: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// How the mount options name a directory opened by [`by_fd`].
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Bind-mounts `source` on `target` and makes the bind read-only, `nosuid`
/// and `nodev` (with the mounts below it when `recursive`), keeping the
/// flags a user namespace may not drop.
pub(super) fn bind_read_only(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
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
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | SAFE | locked,
        None::<&str>,
    )?;
    Ok(())
}

/// A detached copy of the bind of a cache volume's directory, made
/// before the pivot (`open_tree(2)` with `OPEN_TREE_CLONE`, Linux 5.2):
/// after it the host's tree is detached, and a plain bind from it fails.
/// [`bind_volume`] attaches it.
pub(super) fn open_volume(source: &Path) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let path = CString::new(source.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: the path is NUL-terminated and lives across the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("`{}`: {err}", crate::os_path::escaped(source)),
        ));
    }
    // SAFETY: the descriptor was just made and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Attaches a volume [`open_volume`] made on `target`, a path inside the
/// sandbox (after the pivot; made where missing), read-write, `nosuid`
/// and `nodev`, keeping the flags a user namespace may not drop.
pub(super) fn bind_volume(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let shown = |e: io::Error| io::Error::new(e.kind(), format!("`{}`: {e}", crate::os_path::escaped(target)));
    fs::create_dir_all(target).map_err(shown)?;
    let to = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both paths are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(shown(io::Error::last_os_error()));
    }
    let locked = locked_flags(target);
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | SAFE | locked,
        None::<&str>,
    )
    .map_err(|e| shown(e.into()))
}

/// `mount_setattr(2)` (Linux 5.12) with `MOUNT_ATTR_RDONLY`,
/// `MOUNT_ATTR_NOSUID` and `MOUNT_ATTR_NODEV` on a whole tree of mounts.
fn set_read_only_recursively(target: &Path) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    let path = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
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
pub(super) fn ensure_dir(root: &Path, name: &str) -> io::Result<PathBuf> {
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

pub(super) fn mount_tmpfs(target: &Path, mode: u32, flags: MsFlags) -> io::Result<()> {
    let options = format!("mode={mode:o}");
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options.as_str()))?;
    Ok(())
}

/// Files of /proc that reveal or change the host, hidden under /dev/null.
const PROC_MASKED: [&str; 5] = ["kcore", "keys", "timer_list", "sched_debug", "sysrq-trigger"];
/// Directories of /proc that must not be written, made read-only.
const PROC_READ_ONLY: [&str; 4] = ["sys", "irq", "bus", "fs"];

pub(super) fn mount_proc(root: &Path) -> io::Result<()> {
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

pub(super) fn mount_sys(root: &Path) -> io::Result<()> {
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
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | SAFE | locked,
                None::<&str>,
            );
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Device nodes bound from the host into the fresh /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub(super) fn mount_dev(root: &Path, rootless: bool) -> io::Result<()> {
    let dev = ensure_dir(root, "dev")?;
    // The nodes below are binds of the host's, mounts of their own; nothing
    // made in this tmpfs is a usable device.
    mount_tmpfs(&dev, 0o755, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
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

/// Binds the terminal on standard output (an interactive shell's) onto
/// `/dev/console` under `root`, so that a program looking its terminal up
/// by name (`tty`, `ttyname(3)`) finds it: the terminal's own device is in
/// the host's `/dev/pts`, which the sandbox does not see.
///
/// The bind is made from the terminal's path, not its descriptor: the
/// descriptor's mount is the host namespace's, and a bind may only copy a
/// mount of the caller's own namespace (here, the copy of the host's).
pub(super) fn bind_console(root: &Path) -> io::Result<()> {
    let source = fs::read_link("/proc/self/fd/1")?;
    let target = root.join("dev/console");
    File::create(&target)?;
    mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    Ok(())
}

/// Binds the host's resolver configuration over the root's
/// `/etc/resolv.conf`, read-only. The path is resolved inside the root
/// (`openat2` with `RESOLVE_IN_ROOT`), so a link a step planted cannot lead
/// out of it; the bind goes onto the resolved file through its descriptor.
/// Where the path ends in the fresh `/run` (systemd hosts), the file is
/// created there first; nothing is ever created in the step's layer.
pub(super) fn bind_resolv_conf(root: &Path, source: &Path, fresh_run: bool) -> io::Result<()> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let in_root = |rel: &Path| {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        nix::fcntl::openat2(root_fd.as_fd(), rel, how)
    };
    let by_fd = |fd: &OwnedFd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let mut rel = PathBuf::from("/etc/resolv.conf");
    for _ in 0..8 {
        let fd = match in_root(&rel) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let inside = rel.strip_prefix("/run").ok().filter(|r| !r.as_os_str().is_empty());
                if let (true, Some(inside)) = (fresh_run, inside) {
                    // The fresh tmpfs holds no links: plain paths are safe.
                    let path = root.join("run").join(inside);
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    File::create(&path)?;
                    return bind_read_only_by_fd(source, &by_fd(&in_root(&rel)?), &|| in_root(&rel));
                }
                return Ok(());
            }
            // A kernel without openat2 (before 5.6): leave DNS as the image has it.
            Err(Errno::ENOSYS) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let stat = nix::sys::stat::fstat(fd.as_fd())?;
        match stat.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(fd.as_fd(), "")?;
                rel = normalize(&rel.parent().unwrap_or(Path::new("/")).join(target));
            }
            libc::S_IFREG => return bind_read_only_by_fd(source, &by_fd(&fd), &|| in_root(&rel)),
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Binds `source` onto the file `target` names (a `/proc/self/fd` path)
/// and remounts the new mount, found again with `reopen`, read-only.
fn bind_read_only_by_fd(source: &Path, target: &Path, reopen: &dyn Fn() -> nix::Result<OwnedFd>) -> io::Result<()> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    let mounted = reopen()?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", mounted.as_raw_fd()));
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | SAFE | locked_flags(&path);
    mount(None::<&str>, &path, None::<&str>, flags, None::<&str>)?;
    Ok(())
}

/// `path` with `.` and `..` resolved lexically (`/..` is `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Hides a directory of the sandbox under an empty read-only tmpfs.
pub(super) fn mask(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            mount_tmpfs(path, 0o755, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/etc/../run/x")), Path::new("/run/x"));
        assert_eq!(normalize(Path::new("/run/../../../../tmp/a")), Path::new("/tmp/a"));
        assert_eq!(
            normalize(Path::new("/etc/./resolv.conf")),
            Path::new("/etc/resolv.conf")
        );
    }
}
