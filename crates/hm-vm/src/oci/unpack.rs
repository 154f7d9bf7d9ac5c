//! Applying an image layer (a tar stream, gzip or zstd) to a root filesystem.
//!
//! [`apply_layer`] is called once per layer, lowest first, on the same
//! directory, and follows the OCI image spec (`image-layer.md`):
//!
//! - The compression is told by the first bytes (gzip, zstd, else plain
//!   tar), not by the media type.
//! - `dir/.wh.NAME` removes `dir/NAME` of lower layers and is not created
//!   itself; `dir/.wh..wh..opq` removes everything below `dir` that lower
//!   layers put there, and keeps what this layer adds, whatever the order of
//!   the entries. Whiteouts never remove what the same layer created.
//! - An entry replaces whatever is at its path, except that a directory
//!   keeps an existing directory (and its contents) and updates its
//!   metadata. A file is unlinked before it is written, so a hard link from
//!   a lower layer keeps the old contents.
//! - Owners (when [`UnpackOptions::chown`]), then extended attributes, then
//!   modes (setuid, setgid and sticky included: after the owner, which
//!   clears them), then modification times. Directory modes and times are
//!   set when the layer ends, deepest first, so that the contents can be
//!   written first; a caller who is not root gets directories it may write
//!   into until then.
//!
//! Nothing outside the root is ever touched. Entry paths are taken relative
//! to the root (a leading `/` is dropped) and refused with
//! [`UnpackError::Escapes`] when a `..` climbs above it; so are hard links
//! whose target does. Symlinks are stored verbatim and never followed by
//! the kernel: directories are opened one component at a time with
//! `O_NOFOLLOW` from a descriptor of the root, and a symlink met among the
//! parents of an entry is resolved by hand as if the root were `/` (as
//! containerd and Docker do), so `a -> /etc` then `a/passwd` writes the
//! root's own `etc/passwd`, never the host's. The last component of a path
//! is never followed.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, FileStat, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// What the caller may do that only root can.
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Set owners to the tar's uid/gid (true when root, or root in a user
    /// namespace with a range of ids mapped); false: files owned by the
    /// caller.
    pub chown: bool,
    /// Whether device nodes (char/block) can be created (root on the host);
    /// else they are skipped and counted. A node the kernel refuses
    /// (`EPERM`) is skipped and counted as well.
    pub devices: bool,
    /// Keep whiteouts as overlayfs' own instead of applying them: `.wh.NAME`
    /// becomes a character device 0/0 (which any user may make), and
    /// `.wh..wh..opq` marks its directory `user.overlay.opaque`. The result
    /// is then a layer to stack (a sandbox snapshot's, see
    /// [`super::pack::pack_layer`]), not a root filesystem.
    pub keep_whiteouts: bool,
}

/// What [`apply_layer`] did so far; it adds to the counts it is given, so
/// one report can cover every layer of an image.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackReport {
    /// Tar entries read, whiteouts and skipped entries included.
    pub entries: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Device nodes left out (no [`UnpackOptions::devices`], or refused).
    pub skipped_devices: u64,
    /// Extended attributes the kernel or filesystem refused (`EPERM`,
    /// `EACCES`, `ENOTSUP`, `EINVAL`, `E2BIG`, `ERANGE`), and those on
    /// symlinks and special files, which are not set.
    pub skipped_xattrs: u64,
}

/// Why a layer could not be applied. Callers name the image and the layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open the root directory `{}`", crate::os_path::escaped(root))]
    Root {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {op} `{path}`")]
    Entry {
        /// The entry's name as the tar holds it.
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("entry `{path}` reaches outside the root filesystem")]
    Escapes { path: String },
    #[error("entry `{path}` is invalid: {reason}")]
    Invalid { path: String, reason: &'static str },
    #[error("entry `{path}` has tar type `{kind}`, which a layer cannot hold")]
    Unsupported { path: String, kind: char },
    #[error("the layer is not a valid {format} stream")]
    Corrupt {
        /// `tar`, `gzip` or `zstd`.
        format: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the layer")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("unpacking was stopped")]
    Stopped {
        #[source]
        source: io::Error,
    },
}

/// The name prefix of a whiteout.
const WHITEOUT: &[u8] = b".wh.";
/// The name of an opaque whiteout.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The PAX record prefix of an extended attribute.
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";
/// Symlinks followed while resolving one path, as the kernel allows.
const MAX_SYMLINKS: u32 = 40;
/// Size of the compressed-input buffer and of the file copy buffer.
const BUF_SIZE: usize = 256 * 1024;

/// Applies one layer read from `reader` to the root filesystem at `root`,
/// adding what it did to `report`. `progress` is called after each entry;
/// its error stops the unpacking ([`UnpackError::Stopped`]). The stream is
/// read to its end, so a digest computed while reading covers all of it.
/// After an error the root is left half-applied, for the caller to remove.
pub fn apply_layer(
    reader: impl Read,
    root: &Path,
    options: &UnpackOptions,
    report: &mut UnpackReport,
    progress: &mut dyn FnMut(&UnpackReport) -> io::Result<()>,
) -> Result<(), UnpackError> {
    let source_failed = Rc::new(Cell::new(false));
    let source = Source {
        inner: reader,
        failed: Rc::clone(&source_failed),
    };
    let (decoder, format) = Decoder::detect(source).map_err(|source| UnpackError::Read { source })?;
    // An error of the input itself is the caller's (network, disk); any
    // other is in the data.
    let stream = |source: io::Error| match source_failed.get() {
        true => UnpackError::Read { source },
        false => UnpackError::Corrupt { format, source },
    };
    let dirs = Resolver::open(root, nix::unistd::geteuid().is_root()).map_err(|source| UnpackError::Root {
        root: root.to_owned(),
        source,
    })?;
    let mut layer = Layer {
        options,
        dirs,
        created: HashSet::new(),
        dir_meta: HashMap::new(),
        xattrs: Vec::new(),
        buf: vec![0; BUF_SIZE],
    };
    let mut archive = tar::Archive::new(decoder);
    let (mut raw, mut rel) = (Vec::new(), Vec::new());
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        report.entries += 1;
        raw.clear();
        raw.extend_from_slice(&entry.path_bytes());
        let result = match normalize(&raw, &mut rel) {
            Ok(()) => layer.entry(&mut entry, &rel, raw.ends_with(b"/"), report),
            Err(()) => Err(Fault::Escapes),
        };
        result.map_err(|fault| fault.at(&raw, stream))?;
        progress(report).map_err(|source| UnpackError::Stopped { source })?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(stream)?;
    layer.finish()
}

/// What went wrong with one entry; [`Fault::at`] names the entry.
#[derive(Debug)]
enum Fault {
    Io {
        op: &'static str,
        source: io::Error,
    },
    Escapes,
    Invalid(&'static str),
    Unsupported(u8),
    /// Reading the stream failed (corrupt data, or the input).
    Read(io::Error),
}

impl Fault {
    fn at(self, raw: &[u8], stream: impl FnOnce(io::Error) -> UnpackError) -> UnpackError {
        let path = || crate::os_path::escaped(Path::new(OsStr::from_bytes(raw)));
        match self {
            Fault::Io { op, source } => UnpackError::Entry {
                path: path(),
                op,
                source,
            },
            Fault::Escapes => UnpackError::Escapes { path: path() },
            Fault::Invalid(reason) => UnpackError::Invalid { path: path(), reason },
            Fault::Unsupported(kind) => UnpackError::Unsupported {
                path: path(),
                kind: char::from(kind),
            },
            Fault::Read(source) => stream(source),
        }
    }
}

/// Maps an error of a step on an entry to a [`Fault`] naming the step.
fn op<E: Into<io::Error>>(op: &'static str) -> impl FnOnce(E) -> Fault {
    move |source| Fault::Io {
        op,
        source: source.into(),
    }
}

/// The input, remembering whether it failed (as opposed to the data in it).
struct Source<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// The tar stream inside the layer blob.
enum Decoder<R: BufRead> {
    Tar(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

type Input<R> = BufReader<io::Chain<io::Take<io::Cursor<[u8; 4]>>, R>>;

impl<R: Read> Decoder<Input<R>> {
    /// Reads the first bytes of `reader` to tell its compression; returns
    /// the decoder and the format's name for messages.
    fn detect(mut reader: R) -> io::Result<(Self, &'static str)> {
        let mut magic = [0u8; 4];
        let mut len = 0;
        while len < magic.len() {
            match reader.read(&mut magic[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let input = BufReader::with_capacity(BUF_SIZE, io::Cursor::new(magic).take(len as u64).chain(reader));
        Ok(match magic[..len] {
            [0x1f, 0x8b, ..] => (
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input))),
                "gzip",
            ),
            [0x28, 0xb5, 0x2f, 0xfd] => (Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input)?), "zstd"),
            _ => (Decoder::Tar(input), "tar"),
        })
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Tar(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Writes the entry path `raw` into `out` relative to the root, without
/// empty, `.` or `..` components; `Err` when a `..` climbs above the root.
fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if out.is_empty() => return Err(()),
            b".." => {
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    Ok(())
}

/// A normalized path's parent (empty for the root) and last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// `parent/name` (or `name` at the root) appended to `out`.
fn join_into(out: &mut Vec<u8>, parent: &[u8], name: &[u8]) {
    out.extend_from_slice(parent);
    if !parent.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
}

fn is_dir(stat: &FileStat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Mode and times a directory gets when the layer ends.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    /// `None`: leave the times as the layer left them.
    mtime: Option<TimeSpec>,
}

/// Opens the root's directories without letting the kernel follow a
/// symlink, resolving symlinks among them inside the root.
struct Resolver {
    root: OwnedFd,
    /// Whether the kernel ignores directory modes for us (root): else a
    /// directory we must write into is opened up until the layer ends.
    dac_override: bool,
    /// The directory resolved last, by the path it was asked for. Any
    /// removal forgets it: it may have been a component.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directories opened up (owner `rwx`), by their resolved path, with
    /// the mode to restore.
    opened: Vec<(Vec<u8>, DirMeta)>,
}

impl Resolver {
    fn open(root: &Path, dac_override: bool) -> io::Result<Self> {
        let root = File::open(root)?;
        if !root.metadata()?.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        Ok(Resolver {
            root: root.into(),
            dac_override,
            cached: None,
            opened: Vec::new(),
        })
    }

    /// The directory at `path` (normalized, relative to the root), as an
    /// `O_PATH` descriptor. Missing directories are created (mode 0755)
    /// when `create`; else a path that is missing or not a directory is
    /// `None`.
    fn dir(&mut self, path: &[u8], create: bool) -> io::Result<Option<Rc<OwnedFd>>> {
        if let Some((key, fd)) = &self.cached {
            if key.as_slice() == path {
                return Ok(Some(Rc::clone(fd)));
            }
        }
        let Some(fd) = self.walk(path, create)? else {
            return Ok(None);
        };
        let fd = Rc::new(fd);
        let mut key = self.cached.take().map(|(key, _)| key).unwrap_or_default();
        key.clear();
        key.extend_from_slice(path);
        self.cached = Some((key, Rc::clone(&fd)));
        Ok(Some(fd))
    }

    fn forget(&mut self) {
        self.cached = None;
    }

    fn walk(&mut self, path: &[u8], create: bool) -> io::Result<Option<OwnedFd>> {
        // Directories descended into, each with the length `resolved` had
        // before it, so that `..` in a symlink's target goes back up.
        let mut stack: Vec<(OwnedFd, usize)> = Vec::new();
        let mut resolved = Vec::new();
        // Components still to open, the next one last.
        let mut pending: Vec<Vec<u8>> = path.split(|&b| b == b'/').rev().map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(name) = pending.pop() {
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    // Never above the root, like `..` at `/`.
                    if let Some((_, len)) = stack.pop() {
                        resolved.truncate(len);
                    }
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map_or(self.root.as_fd(), |(fd, _)| fd.as_fd());
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            match openat(cur, name.as_slice(), flags, Mode::empty()) {
                Ok(fd) => {
                    let len = resolved.len();
                    if len > 0 {
                        resolved.push(b'/');
                    }
                    resolved.extend_from_slice(&name);
                    if !self.dac_override {
                        if let Some(meta) = open_up(cur, &name, &fd)? {
                            self.opened.push((resolved.clone(), meta));
                        }
                    }
                    stack.push((fd, len));
                }
                Err(Errno::ENOENT) if create => match mkdirat(cur, name.as_slice(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => pending.push(name),
                    Err(e) => return Err(e.into()),
                },
                Err(Errno::ENOENT) => return Ok(None),
                // A symlink (`O_PATH` opens it and `O_DIRECTORY` refuses it),
                // or something else that is not a directory.
                Err(Errno::ENOTDIR | Errno::ELOOP) => match readlinkat(cur, name.as_slice()) {
                    Ok(target) => {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(Errno::ELOOP.into());
                        }
                        let target = target.into_vec();
                        if target.starts_with(b"/") {
                            stack.clear();
                            resolved.clear();
                        }
                        pending.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                    }
                    Err(Errno::EINVAL) if !create => return Ok(None),
                    Err(Errno::EINVAL) => return Err(Errno::ENOTDIR.into()),
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        match stack.pop() {
            Some((fd, _)) => Ok(Some(fd)),
            None => self.root.try_clone().map(Some),
        }
    }
}

/// Gives the owner `rwx` on the directory `name` in `parent` (open as
/// `fd`) if it lacks any; returns the mode to restore. A directory of
/// someone else is left alone: what needs it fails with its own error.
fn open_up(parent: BorrowedFd<'_>, name: &[u8], fd: &OwnedFd) -> io::Result<Option<DirMeta>> {
    let stat = fstat(fd)?;
    if stat.st_mode & 0o700 == 0o700 {
        return Ok(None);
    }
    // `name` was just opened with `O_NOFOLLOW` as a directory, so following
    // it here follows nothing.
    let mode = Mode::from_bits_truncate((stat.st_mode | 0o700) & 0o7777);
    match fchmodat(parent, name, mode, FchmodatFlags::FollowSymlink) {
        Ok(()) => Ok(Some(DirMeta {
            mode: stat.st_mode & 0o7777,
            mtime: None,
        })),
        Err(Errno::EPERM) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in the directory `dir` (an `O_PATH` descriptor will do).
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    /// A directory stream, closed (with its descriptor) when dropped.
    struct Stream(std::ptr::NonNull<libc::DIR>);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: the stream came from `fdopendir` and is closed once.
            unsafe { libc::closedir(self.0.as_ptr()) };
        }
    }
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `fd` is an open directory; on success the stream owns it.
    let stream =
        std::ptr::NonNull::new(unsafe { libc::fdopendir(fd.as_raw_fd()) }).ok_or_else(io::Error::last_os_error)?;
    let stream = Stream(stream);
    std::mem::forget(fd);
    let mut names = Vec::new();
    loop {
        Errno::clear();
        // SAFETY: the stream is open; the entry is read before the next call.
        let entry = unsafe { libc::readdir(stream.0.as_ptr()) };
        if entry.is_null() {
            return match Errno::last_raw() {
                0 => Ok(names),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        // SAFETY: `d_name` of an entry `readdir` returned is NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
}

/// Removes `name` in `dir`, the whole tree when it is a directory; nothing
/// there is fine.
fn remove_at(dir: BorrowedFd<'_>, name: &[u8], dac_override: bool) -> io::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            if !dac_override {
                // A directory (unlink said so): following it follows nothing.
                let _ = fchmodat(dir, name, Mode::S_IRWXU, FchmodatFlags::FollowSymlink);
            }
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = openat(dir, name, flags, Mode::empty())?;
            for child in list(fd.as_fd())? {
                remove_at(fd.as_fd(), &child, dac_override)?;
            }
            unlinkat(dir, name, UnlinkatFlags::RemoveDir)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes what lies in `dir` (at the layer path `path`) and was not
/// created by this layer, descending into what was.
fn clear_lower(dir: BorrowedFd<'_>, path: &mut Vec<u8>, created: &HashSet<Vec<u8>>, dac: bool) -> io::Result<()> {
    for name in list(dir)? {
        let len = path.len();
        if len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        if !created.contains(path.as_slice()) {
            remove_at(dir, &name, dac)?;
        } else {
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            if let Ok(child) = openat(dir, name.as_slice(), flags, Mode::empty()) {
                clear_lower(child.as_fd(), path, created, dac)?;
            }
        }
        path.truncate(len);
    }
    Ok(())
}

/// Owner, mode and time of an entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
}

impl Meta {
    /// Reads the entry's metadata, and its extended attributes into
    /// `xattrs`.
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, xattrs: &mut Vec<(CString, Vec<u8>)>) -> Result<Self, Fault> {
        let header = entry.header();
        let id = |id: io::Result<u64>| match id {
            Ok(id) => u32::try_from(id).map_err(|_| Fault::Invalid("its owner id does not fit in 32 bits")),
            Err(e) => Err(Fault::Read(e)),
        };
        let (uid, gid) = (id(header.uid())?, id(header.gid())?);
        let mode = header.mode().map_err(Fault::Read)? & 0o7777;
        let seconds = header.mtime().map_err(Fault::Read)?;
        let mut mtime = TimeSpec::new(i64::try_from(seconds).unwrap_or(i64::MAX), 0);
        xattrs.clear();
        if let Some(records) = entry.pax_extensions().map_err(Fault::Read)? {
            for record in records {
                let record = record.map_err(Fault::Read)?;
                let key = record.key_bytes();
                if let Some(name) = key.strip_prefix(PAX_XATTR) {
                    // A name with a NUL byte cannot be set: it is counted.
                    let name = CString::new(name).unwrap_or_default();
                    xattrs.push((name, record.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    mtime = pax_time(record.value_bytes()).unwrap_or(mtime);
                }
            }
        }
        Ok(Meta { mode, uid, gid, mtime })
    }
}

/// A PAX time, `SECONDS[.FRACTION]`, to the nanosecond.
fn pax_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (seconds, fraction) = value.split_once('.').unwrap_or((value, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if seconds < 0 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = &fraction[..fraction.len().min(9)];
    let nanos = format!("{digits:0<9}").parse().ok()?;
    Some(TimeSpec::new(seconds, nanos))
}

/// The state of one layer being applied.
struct Layer<'a> {
    options: &'a UnpackOptions,
    dirs: Resolver,
    /// Paths this layer created, and their ancestors: whiteouts spare them.
    created: HashSet<Vec<u8>>,
    /// Directories whose mode and times are set when the layer ends.
    dir_meta: HashMap<Vec<u8>, DirMeta>,
    /// The current entry's extended attributes.
    xattrs: Vec<(CString, Vec<u8>)>,
    /// File contents pass through here.
    buf: Vec<u8>,
}

impl Layer<'_> {
    /// Applies one entry at the normalized path `rel`; `dir_like`: its name
    /// ends in `/` (old tars mark directories only so).
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &[u8],
        dir_like: bool,
        report: &mut UnpackReport,
    ) -> Result<(), Fault> {
        use tar::EntryType;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let (parent, name) = split(rel);
        if name.starts_with(WHITEOUT) {
            return self.whiteout(parent, name);
        }
        let meta = Meta::read(entry, &mut self.xattrs)?;
        self.mark_created(rel);
        let directory = kind == EntryType::Directory || (dir_like && kind == EntryType::Regular);
        if rel.is_empty() {
            return match directory {
                true => self.root_dir(&meta, report),
                false => Err(Fault::Invalid("only a directory can be the root")),
            };
        }
        if directory {
            return self.directory(rel, parent, name, &meta, report);
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, parent, name, &meta, report)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(Fault::Invalid("a symlink without a target"))?;
                self.symlink(&target, parent, name, &meta, report)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or(Fault::Invalid("a hard link without a target"))?;
                self.hard_link(&target, rel, parent, name)
            }
            EntryType::Fifo => self.special(parent, name, SFlag::S_IFIFO, 0, &meta, report),
            EntryType::Char | EntryType::Block => {
                if !self.options.devices {
                    report.skipped_devices += 1;
                    return Ok(());
                }
                let dev = |n: io::Result<Option<u32>>| n.map(Option::unwrap_or_default).map_err(Fault::Read);
                let (major, minor) = (dev(entry.header().device_major())?, dev(entry.header().device_minor())?);
                let sflag = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                self.special(parent, name, sflag, libc::makedev(major, minor), &meta, report)
            }
            other => Err(Fault::Unsupported(other.as_byte())),
        }
    }

    /// Records `rel` and its ancestors as this layer's.
    fn mark_created(&mut self, rel: &[u8]) {
        let ends = rel.iter().enumerate().filter(|&(_, &b)| b == b'/').map(|(i, _)| i);
        for end in ends.chain([rel.len()]) {
            if !self.created.contains(&rel[..end]) {
                self.created.insert(rel[..end].to_vec());
            }
        }
    }

    /// The parent directory of an entry, created if missing.
    fn parent(&mut self, parent: &[u8]) -> Result<Rc<OwnedFd>, Fault> {
        let dir = self
            .dirs
            .dir(parent, true)
            .map_err(op("create the parent directory of"))?;
        dir.ok_or_else(|| op("create the parent directory of")(Errno::ENOENT))
    }

    /// Removes what is at `name` in `dir`.
    fn remove(&mut self, dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Fault> {
        self.dirs.forget();
        remove_at(dir, name, self.dirs.dac_override).map_err(op("replace"))
    }

    /// Runs `make`, and again after removing what is in the way.
    fn replace<T>(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        mut make: impl FnMut() -> nix::Result<T>,
    ) -> Result<T, Fault> {
        match make() {
            Err(Errno::EEXIST) => {
                self.remove(dir, name)?;
                make().map_err(op("create"))
            }
            other => other.map_err(op("create")),
        }
    }

    fn whiteout(&mut self, parent: &[u8], name: &[u8]) -> Result<(), Fault> {
        if self.options.keep_whiteouts {
            return self.keep_whiteout(parent, name);
        }
        if name == OPAQUE {
            let Some(dir) = self
                .dirs
                .dir(parent, false)
                .map_err(op("find the opaque directory of"))?
            else {
                return Ok(());
            };
            self.dirs.forget();
            let mut path = parent.to_vec();
            let dac = self.dirs.dac_override;
            return clear_lower(dir.as_fd(), &mut path, &self.created, dac)
                .map_err(op("empty the opaque directory of"));
        }
        let hidden = &name[WHITEOUT.len()..];
        if hidden.starts_with(WHITEOUT) {
            // Other `.wh..wh.` names are reserved for the tools that write
            // layers and mean nothing here.
            return Ok(());
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(Fault::Invalid("its whiteout names no file"));
        }
        let mut target = Vec::with_capacity(parent.len() + 1 + hidden.len());
        join_into(&mut target, parent, hidden);
        if self.created.contains(&target) {
            return Ok(());
        }
        match self.dirs.dir(parent, false).map_err(op("find the directory of"))? {
            Some(dir) => {
                self.dirs.forget();
                remove_at(dir.as_fd(), hidden, self.dirs.dac_override).map_err(op("apply the whiteout"))
            }
            None => Ok(()),
        }
    }

    /// A whiteout kept as overlayfs' (see [`UnpackOptions::keep_whiteouts`]).
    fn keep_whiteout(&mut self, parent: &[u8], name: &[u8]) -> Result<(), Fault> {
        let dir = self.parent(parent)?;
        if name == OPAQUE {
            let opaque = CString::new(crate::sandbox::OPAQUE_XATTR).map_err(|_| Fault::Invalid("xattr name"))?;
            let path =
                CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd())).map_err(|_| Fault::Invalid("path"))?;
            // SAFETY: both are NUL-terminated C strings that outlive the call.
            let set = unsafe { libc::setxattr(path.as_ptr(), opaque.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
            return match set {
                0 => Ok(()),
                _ => Err(op("mark opaque")(Errno::last())),
            };
        }
        let hidden = &name[WHITEOUT.len()..];
        if hidden.starts_with(WHITEOUT) {
            return Ok(());
        }
        if matches!(hidden, b"" | b"." | b"..") || hidden.contains(&b'/') {
            return Err(Fault::Invalid("its whiteout names no file"));
        }
        let mut target = Vec::with_capacity(parent.len() + 1 + hidden.len());
        join_into(&mut target, parent, hidden);
        self.mark_created(&target);
        let hidden = OsStr::from_bytes(hidden);
        self.replace(dir.as_fd(), hidden.as_bytes(), || {
            mknodat(dir.as_fd(), hidden, SFlag::S_IFCHR, Mode::empty(), 0)
        })
    }

    fn root_dir(&mut self, meta: &Meta, report: &mut UnpackReport) -> Result<(), Fault> {
        let root = self.dirs.root.try_clone().map_err(op("open"))?;
        if self.options.chown {
            fchown(&root, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
                .map_err(op("set the owner of"))?;
        }
        set_xattrs(root.as_fd(), &self.xattrs, report)?;
        self.defer(Vec::new(), meta);
        Ok(())
    }

    fn defer(&mut self, rel: Vec<u8>, meta: &Meta) {
        let mtime = Some(meta.mtime);
        self.dir_meta.insert(rel, DirMeta { mode: meta.mode, mtime });
    }

    fn directory(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        report: &mut UnpackReport,
    ) -> Result<(), Fault> {
        let dir = self.parent(parent)?;
        let dir = dir.as_fd();
        // Writable until the layer ends; its own mode comes then.
        let mkdir = || mkdirat(dir, name, Mode::S_IRWXU);
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let stat = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(op("create"))?;
                if !is_dir(&stat) {
                    self.remove(dir, name)?;
                    mkdir().map_err(op("create"))?;
                }
            }
            Err(e) => return Err(op("create")(e)),
        }
        if self.options.chown {
            let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
            fchownat(dir, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(op("set the owner of"))?;
        }
        if !self.xattrs.is_empty() {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            match openat(dir, name, flags, Mode::empty()) {
                Ok(fd) => set_xattrs(fd.as_fd(), &self.xattrs, report)?,
                Err(Errno::EACCES) => report.skipped_xattrs += self.xattrs.len() as u64,
                Err(e) => return Err(op("open")(e)),
            }
        }
        self.defer(rel.to_vec(), meta);
        Ok(())
    }

    fn file(
        &mut self,
        contents: &mut impl Read,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        report: &mut UnpackReport,
    ) -> Result<(), Fault> {
        let dir = self.parent(parent)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = self.replace(dir.as_fd(), name, || {
            openat(dir.as_fd(), name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
        })?;
        let mut file = File::from(fd);
        loop {
            let n = match contents.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fault::Read(e)),
            };
            file.write_all(&self.buf[..n]).map_err(op("write"))?;
            report.bytes += n as u64;
        }
        if self.options.chown {
            fchown(&file, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
                .map_err(op("set the owner of"))?;
        }
        set_xattrs(file.as_fd(), &self.xattrs, report)?;
        fchmod(&file, Mode::from_bits_retain(meta.mode)).map_err(op("set the mode of"))?;
        futimens(&file, &meta.mtime, &meta.mtime).map_err(op("set the times of"))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        target: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        report: &mut UnpackReport,
    ) -> Result<(), Fault> {
        let dir = self.parent(parent)?;
        let dir = dir.as_fd();
        self.replace(dir, name, || symlinkat(target, dir, name))?;
        self.set_meta_at(dir, name, None, meta)?;
        report.skipped_xattrs += self.xattrs.len() as u64;
        Ok(())
    }

    fn hard_link(&mut self, target: &[u8], rel: &[u8], parent: &[u8], name: &[u8]) -> Result<(), Fault> {
        let mut target_rel = Vec::new();
        normalize(target, &mut target_rel).map_err(|()| Fault::Escapes)?;
        if target_rel.is_empty() {
            return Err(Fault::Invalid("a hard link to the root directory"));
        }
        if target_rel == rel {
            return Ok(());
        }
        let (target_parent, target_name) = split(&target_rel);
        let target_dir = self.dirs.dir(target_parent, false).map_err(op("find the target of"))?;
        let target_dir = target_dir.ok_or_else(|| op("find the target of")(Errno::ENOENT))?;
        let target_dir = target_dir.as_fd();
        let dir = self.parent(parent)?;
        let dir = dir.as_fd();
        let link = || linkat(target_dir, target_name, dir, name, AtFlags::empty());
        match link() {
            Err(Errno::EEXIST) => {
                let same = |a: FileStat, b: FileStat| a.st_dev == b.st_dev && a.st_ino == b.st_ino;
                let existing = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW);
                let wanted = fstatat(target_dir, target_name, AtFlags::AT_SYMLINK_NOFOLLOW);
                if let (Ok(a), Ok(b)) = (existing, wanted) {
                    if same(a, b) {
                        return Ok(());
                    }
                }
                self.remove(dir, name)?;
                link().map_err(op("hard-link"))
            }
            other => other.map_err(op("hard-link")),
        }
    }

    /// A fifo or a device node.
    fn special(
        &mut self,
        parent: &[u8],
        name: &[u8],
        kind: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
        report: &mut UnpackReport,
    ) -> Result<(), Fault> {
        let dir = self.parent(parent)?;
        let dir = dir.as_fd();
        let made = self.replace(dir, name, || {
            mknodat(dir, name, kind, Mode::S_IRUSR | Mode::S_IWUSR, dev)
        });
        match made {
            Err(Fault::Io { source, .. }) if kind != SFlag::S_IFIFO && source.raw_os_error() == Some(libc::EPERM) => {
                report.skipped_devices += 1;
                return Ok(());
            }
            made => made?,
        }
        self.set_meta_at(dir, name, Some(meta.mode), meta)?;
        report.skipped_xattrs += self.xattrs.len() as u64;
        Ok(())
    }

    /// Owner, mode (not for symlinks) and times of `name` in `dir`, which
    /// this layer just created.
    fn set_meta_at(&self, dir: BorrowedFd<'_>, name: &[u8], mode: Option<u32>, meta: &Meta) -> Result<(), Fault> {
        if self.options.chown {
            let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
            fchownat(dir, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(op("set the owner of"))?;
        }
        if let Some(mode) = mode {
            // Not a symlink (the caller made a node): nothing is followed.
            let mode = Mode::from_bits_retain(mode);
            fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink).map_err(op("set the mode of"))?;
        }
        utimensat(dir, name, &meta.mtime, &meta.mtime, UtimensatFlags::NoFollowSymlink).map_err(op("set the times of"))
    }

    /// Sets the modes and times of the layer's directories, children before
    /// their parents (a parent's mode may forbid reaching them).
    fn finish(mut self) -> Result<(), UnpackError> {
        loop {
            for (path, meta) in self.dirs.opened.drain(..) {
                self.dir_meta.entry(path).or_insert(meta);
            }
            if self.dir_meta.is_empty() {
                return Ok(());
            }
            let mut dirs: Vec<_> = self.dir_meta.drain().collect();
            dirs.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            for (path, meta) in dirs {
                self.set_dir_meta(&path, meta)
                    .map_err(|fault| fault.at(&path, |source| UnpackError::Read { source }))?;
            }
        }
    }

    fn set_dir_meta(&mut self, path: &[u8], meta: DirMeta) -> Result<(), Fault> {
        let mode = Mode::from_bits_retain(meta.mode);
        if path.is_empty() {
            let root = self.dirs.root.as_fd();
            fchmod(root, mode).map_err(op("set the mode of"))?;
            if let Some(mtime) = meta.mtime {
                futimens(root, &mtime, &mtime).map_err(op("set the times of"))?;
            }
            return Ok(());
        }
        let (parent, name) = split(path);
        // A directory removed or replaced later in the layer is skipped.
        let Some(dir) = self.dirs.dir(parent, false).map_err(op("find"))? else {
            return Ok(());
        };
        let dir = dir.as_fd();
        match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) if is_dir(&stat) => {}
            Ok(_) | Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(op("find")(e)),
        }
        fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink).map_err(op("set the mode of"))?;
        if let Some(mtime) = meta.mtime {
            utimensat(dir, name, &mtime, &mtime, UtimensatFlags::NoFollowSymlink).map_err(op("set the times of"))?;
        }
        Ok(())
    }
}

/// Sets extended attributes on the open file `fd`; those the kernel or the
/// filesystem refuses are counted.
fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(CString, Vec<u8>)], report: &mut UnpackReport) -> Result<(), Fault> {
    use xattr::FileExt;
    for (name, value) in xattrs {
        if name.is_empty() {
            report.skipped_xattrs += 1;
            continue;
        }
        if let Err(err) = OpenFile(fd).set_xattr(OsStr::from_bytes(name.as_bytes()), value) {
            match err.raw_os_error() {
                Some(libc::EPERM | libc::EACCES | libc::ENOTSUP | libc::EINVAL | libc::E2BIG | libc::ERANGE) => {
                    report.skipped_xattrs += 1;
                }
                _ => return Err(op("set an extended attribute of")(err)),
            }
        }
    }
    Ok(())
}

/// A descriptor as the open file [`xattr::FileExt`] sets attributes on
/// (the crate implements it for `File` alone).
struct OpenFile<'fd>(BorrowedFd<'fd>);

impl AsRawFd for OpenFile<'_> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl xattr::FileExt for OpenFile<'_> {}

#[cfg(test)]
mod tests;
