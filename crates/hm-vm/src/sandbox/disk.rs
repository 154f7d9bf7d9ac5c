//! A step's disk limit: its writable layer on a filesystem of its own, of
//! the limit's size, so that going over is `ENOSPC` inside the step and
//! never a full host disk (docs/decisions.md, "Disk limits").
//!
//! As root that filesystem is ext4 made in a sparse file of the session
//! and attached to a loop device; rootless, where no loop device can be
//! attached, a tmpfs (in memory). The helper mounts it in a mount
//! namespace of its own, never the host's, so the kernel takes it down
//! with the helper on every path, a `kill -9` of `hm` included: the loop
//! device is attached with `LO_FLAGS_AUTOCLEAR`, so it detaches when its
//! filesystem goes, and its file is unlinked as soon as it is attached.
//! After a step that passed, the helper copies its upper directory out,
//! with the layer packer and unpacker (whiteouts, opaque directories,
//! owners, modes, hard links and extended attributes kept), into the
//! session, where `commit` renames it into a layer as any step's.
//!
//! Only steps whose limit was set get one: a `mkfs`, a mount and the copy
//! cost tens of milliseconds, too much for every step.
//! [`release_under`] detaches what a dead session could still hold; no
//! path above leaves anything, it is the collector's guard.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::rootfs::{Bound, OPAQUE_XATTR};
use super::spec::{DiskKind, DiskSpec};
use crate::oci::unpack::{apply_layer, UnpackOptions, UnpackReport};
use crate::os_path::escaped;

/// The smallest loop filesystem made: ext4 needs room for its own tables.
const MIN_LOOP_BYTES: u64 = 4 << 20;

/// How this machine applies a step's disk limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Method {
    /// ext4 on a loop device, made by this `mkfs.ext4` (root).
    Loop { mkfs: PathBuf },
    /// A tmpfs (rootless, or root without loop devices or `mkfs.ext4`).
    Tmpfs,
    /// Neither can hold an overlay's upper directory here, for this reason.
    Unavailable(&'static str),
}

impl Method {
    /// The method of this process (found once); `mkfs.ext4` is looked for
    /// in `search_path` (`PATH`) and the usual directories.
    pub(crate) fn here(rootless: bool, search_path: &std::ffi::OsStr) -> &'static Method {
        static METHOD: OnceLock<Method> = OnceLock::new();
        METHOD.get_or_init(|| {
            let mkfs = super::subids::tool("mkfs.ext4", search_path);
            let method = Self::find(rootless, mkfs, Path::new("/dev/loop-control").exists(), kernel());
            tracing::debug!(?method, "sandbox: how a step's disk limit is applied");
            method
        })
    }

    fn find(rootless: bool, mkfs: Option<PathBuf>, loop_control: bool, kernel: (u32, u32)) -> Method {
        match mkfs {
            Some(mkfs) if !rootless && loop_control => Method::Loop { mkfs },
            // tmpfs keeps `user.` extended attributes, which overlayfs
            // writes in the upper directory, from Linux 6.6.
            _ if kernel >= (6, 6) => Method::Tmpfs,
            _ if rootless => Method::Unavailable("rootless, it needs Linux 6.6 or newer (a tmpfs for the layer)"),
            _ => Method::Unavailable("it needs loop devices and `mkfs.ext4`, or Linux 6.6 or newer"),
        }
    }

    /// The bound of a step limited to `bytes`, whose loop filesystem would
    /// be the file `image` in `scratch` (the session's directory of steps);
    /// `None` where none can be applied.
    pub(crate) fn bound(&self, bytes: u64, scratch: &Path, image: PathBuf) -> Option<Bound> {
        let kind = match self {
            Method::Loop { mkfs } => DiskKind::Loop {
                image,
                template: scratch.join(format!("disk-{bytes}.ext4")),
                mkfs: mkfs.clone(),
            },
            Method::Tmpfs => DiskKind::Tmpfs,
            Method::Unavailable(why) => {
                tracing::warn!("a step's disk limit is not applied: {why}");
                return None;
            }
        };
        Some(Bound { bytes, kind })
    }
}

/// The running kernel's major and minor version.
fn kernel() -> (u32, u32) {
    let Ok(uname) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let release = uname.release().to_string_lossy().into_owned();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Why a step's own filesystem could not be made, mounted or saved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("cannot make the file `{}` for the step's disk", escaped(path))]
    Image {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` failed ({status}): {stderr}", escaped(mkfs))]
    Mkfs {
        mkfs: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot run `{}`", escaped(mkfs))]
    MkfsSpawn {
        mkfs: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot attach a loop device to `{}`", escaped(image))]
    Loop {
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount the step's disk ({kind} of {}) on `{}`", crate::limits::human_bytes(*bytes), escaped(target))]
    Mount {
        kind: &'static str,
        bytes: u64,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot save the step's files to `{}`", escaped(dest))]
    Save {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DiskError {
    /// The error and its causes on one line (for the helper's report, which
    /// carries text).
    pub(crate) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            text.push_str(": ");
            text.push_str(&err.to_string());
            cause = err.source();
        }
        text
    }
}

/// Makes the loop filesystem's file (before the helper's namespaces: `mkfs`
/// must not become the first process of its pid namespace): a copy of the
/// session's empty filesystem of that size, made first if no step made it
/// yet. Copying its few allocated blocks costs a fraction of a `mkfs`.
/// Nothing for a tmpfs.
pub(crate) fn prepare(spec: &DiskSpec) -> Result<(), DiskError> {
    let DiskKind::Loop { image, template, mkfs } = &spec.kind else {
        return Ok(());
    };
    if !template.exists() {
        make_template(template, spec.bytes.max(MIN_LOOP_BYTES), mkfs)?;
    }
    copy_sparse(template, image).map_err(|source| DiskError::Image {
        path: image.clone(),
        source,
    })
}

/// Makes an empty ext4 filesystem of `bytes` in the new file `template`
/// (beside it first, then renamed: steps starting together may each make
/// one, and the last wins).
fn make_template(template: &Path, bytes: u64, mkfs: &Path) -> Result<(), DiskError> {
    let mut name = template.as_os_str().to_owned();
    name.push(format!(".{}", crate::fsutil::random_id(4)));
    let made = PathBuf::from(name);
    let image_err = |source| DiskError::Image {
        path: made.clone(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&made)
        .map_err(image_err)?;
    file.set_len(bytes).map_err(image_err)?;
    drop(file);
    // No journal (nothing of it outlives the step), no blocks kept back
    // for root (the step is root), inode tables left for the kernel.
    let out = std::process::Command::new(mkfs)
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1,nodiscard",
        ])
        .arg(&made)
        .stdin(std::process::Stdio::null())
        .output();
    let made_ok = match out {
        Err(source) => Err(DiskError::MkfsSpawn {
            mkfs: mkfs.to_owned(),
            source,
        }),
        Ok(out) if !out.status.success() => Err(DiskError::Mkfs {
            mkfs: mkfs.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
        Ok(_) => fs::rename(&made, template).map_err(image_err),
    };
    if made_ok.is_err() {
        let _ = fs::remove_file(&made);
    }
    made_ok
}

/// Copies the sparse file `from` to the new file `to`, its holes left
/// holes: only the blocks `from` holds are read and written.
fn copy_sparse(from: &Path, to: &Path) -> io::Result<()> {
    use nix::unistd::{lseek, Whence};
    let source = File::open(from)?;
    let dest = OpenOptions::new().write(true).create_new(true).open(to)?;
    let len = source.metadata()?.len() as i64;
    dest.set_len(len as u64)?;
    let mut at = 0;
    while at < len {
        let start = match lseek(&source, at, Whence::SeekData) {
            Ok(start) => start,
            // No data after `at`.
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = lseek(&source, start, Whence::SeekHole)?;
        let (mut off_in, mut off_out) = (start, start);
        while off_in < end {
            let want = (end - off_in) as usize;
            // SAFETY: two open descriptors and two offsets that outlive the
            // call.
            let copied = unsafe {
                libc::copy_file_range(source.as_raw_fd(), &mut off_in, dest.as_raw_fd(), &mut off_out, want, 0)
            };
            if copied < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    // A filesystem that cannot copy in the kernel.
                    Some(libc::EXDEV | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
                        copy_range(&source, &dest, off_in as u64, (end - off_in) as u64)?;
                        break;
                    }
                    _ => return Err(err),
                }
            }
            if copied == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        at = end;
    }
    Ok(())
}

/// Copies `len` bytes at `at` of `source` to the same place in `dest`.
fn copy_range(source: &File, dest: &File, at: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let read = source.read_at(&mut buf[..want], at + done)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        dest.write_all_at(&buf[..read], at + done)?;
        done += read as u64;
    }
    Ok(())
}

/// Mounts the step's filesystem on `spec.mount` and makes the upper
/// directory (with its opaque directories) and the work directory in it.
/// Called in the helper's own mount namespace, made private here first,
/// so nothing reaches the host's.
pub(crate) fn mount_disk(spec: &DiskSpec) -> Result<(), DiskError> {
    let target = &spec.mount;
    let mount_err = |kind, source| DiskError::Mount {
        kind,
        bytes: spec.bytes,
        target: target.clone(),
        source,
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let kind = match &spec.kind {
        DiskKind::Loop { image, .. } => {
            mount_private().map_err(|e| mount_err("ext4", e))?;
            let (device, path) = attach(image).map_err(|source| DiskError::Loop {
                image: image.clone(),
                source,
            })?;
            let _ = fs::remove_file(image);
            // No barriers: a flush would make the loop device write its
            // file out to the host's disk, for a filesystem thrown away.
            mount(
                Some(&path),
                target,
                Some("ext4"),
                flags,
                Some("nobarrier,noinit_itable"),
            )
            .map_err(|e| mount_err("ext4", e.into()))?;
            // The mount holds the device now; closing ours lets it detach
            // with the mount.
            drop(device);
            "ext4"
        }
        DiskKind::Tmpfs => {
            mount_private().map_err(|e| mount_err("tmpfs", e))?;
            let options = format!("size={},mode=0755", spec.bytes);
            mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options.as_str()))
                .map_err(|e| mount_err("tmpfs", e.into()))?;
            "tmpfs"
        }
    };
    let upper = target.join("upper");
    let made = fs::create_dir(&upper)
        .and_then(|()| fs::create_dir(target.join("work")))
        .and_then(|()| {
            spec.opaque.iter().try_for_each(|rel| {
                let dir = upper.join(rel);
                fs::create_dir(&dir)?;
                crate::fsutil::set_xattr(&dir, OPAQUE_XATTR, b"y")
            })
        });
    made.map_err(|e| mount_err(kind, e))
}

/// Makes every mount of this (new) namespace private: a mount made here
/// then never propagates to the host's.
pub(super) fn mount_private() -> io::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    Ok(())
}

/// Copies the step's upper directory to `spec.save_to` (which must not
/// exist): packed as a layer would be for export, unpacked at once, through
/// a pipe. The copy is made beside it and renamed into place whole, so
/// `save_to` exists only if every file was saved.
pub(crate) fn save(spec: &DiskSpec, options: &UnpackOptions) -> Result<(), DiskError> {
    let dest = &spec.save_to;
    let save_err = |source| DiskError::Save {
        dest: dest.clone(),
        source,
    };
    if dest.exists() {
        return Err(save_err(io::ErrorKind::AlreadyExists.into()));
    }
    let mut partial = dest.clone().into_os_string();
    partial.push(".saving");
    let partial = PathBuf::from(partial);
    fs::create_dir(&partial).map_err(save_err)?;
    let upper = spec.mount.join("upper");
    let copied = io::pipe().and_then(|(reader, writer)| {
        let packer = std::thread::spawn(move || crate::oci::pack::pack_tar(&upper, writer).map(drop));
        let mut report = UnpackReport::default();
        let unpacked = apply_layer(
            io::BufReader::with_capacity(256 << 10, reader),
            &partial,
            options,
            &mut report,
            &mut |_| Ok(()),
        );
        let packed = packer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the packer panicked")));
        // The packer's error first: the unpacker only saw the stream end.
        packed?;
        unpacked.map_err(io::Error::other)
    });
    match copied.and_then(|()| fs::rename(&partial, dest)) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = crate::fsutil::remove_tree(&partial);
            Err(save_err(err))
        }
    }
}

/// `LOOP_CTL_GET_FREE` of `/dev/loop-control`.
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` (Linux 5.8).
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// `LOOP_CLR_FD`.
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
/// Detach when the last user closes the device (its filesystem included).
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches a free loop device to `image` (detached when its last user
/// closes it); returns the open device and its path.
fn attach(image: &Path) -> io::Result<(File, PathBuf)> {
    let backing = OpenOptions::new().read(true).write(true).open(image)?;
    let control = OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    let mut last = io::Error::other("no free loop device");
    // Another process may take the free device first: ask again.
    for _ in 0..16 {
        let number = ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE, 0)?;
        let path = PathBuf::from(format!("/dev/loop{number}"));
        let device = OpenOptions::new().read(true).write(true).open(&path)?;
        // SAFETY: an all-zero `loop_config` is valid (integers and arrays).
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        match ioctl(
            device.as_raw_fd(),
            LOOP_CONFIGURE,
            &config as *const LoopConfig as usize,
        ) {
            Ok(_) => return Ok((device, path)),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn ioctl(fd: RawFd, request: libc::c_ulong, arg: usize) -> io::Result<i32> {
    // SAFETY: each request above takes an integer or a pointer to a
    // struct of its size that outlives the call.
    let rc = unsafe { libc::ioctl(fd, request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Unmounts what is mounted below `dir` in this namespace and detaches the
/// loop devices whose files are below it: what a dead session's steps may
/// still hold. Root only (nothing else can hold either).
pub(crate) fn release_under(dir: &Path) {
    if !crate::fsutil::is_root() {
        return;
    }
    let Ok(dir) = fs::canonicalize(dir) else { return };
    let mut mounted: Vec<PathBuf> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(crate::fsutil::unescape_mountinfo)
        .filter(|point| point.starts_with(&dir))
        .collect();
    // Deepest first.
    mounted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in mounted {
        let _ = umount2(&point, MntFlags::MNT_DETACH);
    }
    for (device, file) in loop_devices() {
        if file.starts_with(&dir) {
            if let Ok(device) = OpenOptions::new().read(true).open(&device) {
                let _ = ioctl(device.as_raw_fd(), LOOP_CLR_FD, 0);
            }
        }
    }
}

/// The attached loop devices and their files (without the ` (deleted)`
/// the kernel adds to an unlinked one).
fn loop_devices() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("loop") {
                return None;
            }
            let file = fs::read(entry.path().join("loop/backing_file")).ok()?;
            let file = file.strip_suffix(b"\n").unwrap_or(&file);
            let file = file.strip_suffix(b" (deleted)").unwrap_or(file);
            use std::os::unix::ffi::OsStrExt;
            Some((
                Path::new("/dev").join(name),
                PathBuf::from(std::ffi::OsStr::from_bytes(file)),
            ))
        })
        .collect()
}

// The unpacker's tests include it too; each test module its own copy.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "../../../hm/tests/util/skip.rs"]
pub(super) mod skip;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A saved layer is the layer: contents, hard links, symlinks, modes,
    /// whiteouts and opaque directories.
    #[test]
    fn a_saved_layer_keeps_what_overlayfs_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("mnt/upper");
        fs::create_dir_all(upper.join("etc/opaque")).unwrap();
        fs::write(upper.join("etc/a"), "a").unwrap();
        fs::hard_link(upper.join("etc/a"), upper.join("etc/b")).unwrap();
        std::os::unix::fs::symlink("a", upper.join("etc/link")).unwrap();
        fs::set_permissions(upper.join("etc/a"), std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
        let whiteouts = nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .is_ok();
        let opaque = crate::fsutil::set_xattr(&upper.join("etc/opaque"), OPAQUE_XATTR, b"y").is_ok();
        let spec = DiskSpec {
            bytes: MIN_LOOP_BYTES,
            kind: DiskKind::Tmpfs,
            mount: dir.path().join("mnt"),
            save_to: dir.path().join("saved"),
            opaque: Vec::new(),
        };
        let options = UnpackOptions {
            chown: crate::fsutil::is_root(),
            devices: crate::fsutil::is_root(),
            keep_whiteouts: true,
        };
        save(&spec, &options).unwrap();
        let saved = dir.path().join("saved/etc");
        assert_eq!(fs::read_to_string(saved.join("b")).unwrap(), "a");
        let a = fs::symlink_metadata(saved.join("a")).unwrap();
        assert_eq!((a.nlink(), a.mode() & 0o7777), (2, 0o750));
        assert_eq!(fs::read_link(saved.join("link")).unwrap(), Path::new("a"));
        if whiteouts {
            let gone = fs::symlink_metadata(saved.join("gone")).unwrap();
            assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        }
        if opaque {
            assert!(super::super::rootfs::is_opaque(&saved.join("opaque")).unwrap());
        }
        // The destination must be new: a second save is refused.
        assert!(save(&spec, &options).is_err());
    }

    /// What a dead session could still hold: a mount below its directory
    /// and a loop device on one of its files (attached without autoclear,
    /// as a step's never is).
    #[test]
    fn a_dead_sessions_mounts_and_loop_devices_are_released() {
        if !crate::fsutil::is_root() {
            super::skip::skip("attaching loop devices and mounting need root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("session");
        let mnt = session.join("steps/w1");
        fs::create_dir_all(&mnt).unwrap();
        let image = session.join("steps/i1");
        File::create(&image).unwrap().set_len(MIN_LOOP_BYTES).unwrap();
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        mount(Some("tmpfs"), &mnt, Some("tmpfs"), MsFlags::empty(), Some("size=1m")).unwrap();
        let image_canonical = image.canonicalize().unwrap();
        assert!(loop_devices()
            .iter()
            .any(|(d, f)| *d == device && *f == image_canonical));

        release_under(&session);
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*mnt.to_string_lossy()), "{mounts}");
        assert!(!loop_devices().iter().any(|(_, f)| *f == image_canonical));
        crate::fsutil::remove_tree(&session).unwrap();
    }

    #[test]
    fn the_method_follows_privilege_tools_and_kernel() {
        let mkfs = Some(PathBuf::from("/sbin/mkfs.ext4"));
        assert_eq!(
            Method::find(false, mkfs.clone(), true, (6, 1)),
            Method::Loop {
                mkfs: PathBuf::from("/sbin/mkfs.ext4")
            }
        );
        assert_eq!(Method::find(true, mkfs.clone(), true, (6, 6)), Method::Tmpfs);
        assert_eq!(Method::find(false, mkfs, false, (6, 18)), Method::Tmpfs);
        assert_eq!(Method::find(false, None, true, (7, 0)), Method::Tmpfs);
        assert!(matches!(Method::find(true, None, true, (6, 5)), Method::Unavailable(_)));
        assert!(matches!(
            Method::find(false, None, true, (5, 15)),
            Method::Unavailable(_)
        ));
    }

    #[test]
    fn a_sparse_copy_keeps_data_and_holes() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        let mut file = File::create(&from).unwrap();
        file.set_len(64 << 20).unwrap();
        file.write_all(b"start").unwrap();
        file.seek(SeekFrom::Start(32 << 20)).unwrap();
        file.write_all(&[7u8; 8192]).unwrap();
        drop(file);
        copy_sparse(&from, &to).unwrap();
        assert_eq!(fs::read(&from).unwrap(), fs::read(&to).unwrap());
        let blocks = fs::metadata(&to).unwrap().blocks() * 512;
        assert!(blocks < 1 << 20, "{blocks} bytes allocated of 64 MiB");
        assert!(copy_sparse(&from, &to).is_err(), "the copy is a new file");
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(
            crate::fsutil::unescape_mountinfo(r"/tmp/a\040b\011c\134d"),
            PathBuf::from("/tmp/a b\tc\\d")
        );
        assert_eq!(crate::fsutil::unescape_mountinfo(r"/x\04"), PathBuf::from(r"/x\04"));
    }
}
