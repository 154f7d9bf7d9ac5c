//! Tests of applying layers: built in memory, applied to temporary roots.

#[path = "../../../../hm/tests/util/skip.rs"]
mod skip;

use super::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use tar::{EntryType, Header};

const MTIME: u64 = 1_500_000_000;

/// A layer built in memory, entry by entry.
struct LayerTar(tar::Builder<Vec<u8>>);

impl LayerTar {
    fn new() -> Self {
        LayerTar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn add(mut self, mut header: Header, path: &str, contents: &[u8]) -> Self {
        header.set_size(contents.len() as u64);
        self.0.append_data(&mut header, path, contents).unwrap();
        self
    }

    fn dir(self, path: &str, mode: u32) -> Self {
        self.add(Self::header(EntryType::Directory, mode), path, b"")
    }

    fn file(self, path: &str, mode: u32, contents: &[u8]) -> Self {
        self.add(Self::header(EntryType::Regular, mode), path, contents)
    }

    fn link(self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut header = Self::header(kind, 0o777);
        header.set_link_name_literal(target).unwrap();
        self.add(header, path, b"")
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Symlink, path, target)
    }

    fn hard_link(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Link, path, target)
    }

    fn whiteout(self, path: &str) -> Self {
        self.file(path, 0o644, b"")
    }

    fn device(self, kind: EntryType, path: &str, major: u32, minor: u32) -> Self {
        let mut header = Self::header(kind, 0o666);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.add(header, path, b"")
    }

    /// An entry whose name `tar::Builder` would refuse.
    fn raw(mut self, kind: EntryType, path: &str, link: &str) -> Self {
        let mut header = Self::header(kind, 0o644);
        header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_link_name_literal(link).unwrap();
        header.set_size(1);
        header.set_cksum();
        self.0.append(&header, &b"x"[..]).unwrap();
        self
    }

    fn xattr(mut self, name: &str, value: &[u8]) -> Self {
        self.0.append_pax_extensions([(name, value)]).unwrap();
        self
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    fn gzip(self) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.tar()).unwrap();
        gz.finish().unwrap()
    }

    fn zstd(self) -> Vec<u8> {
        zstd::encode_all(&self.tar()[..], 3).unwrap()
    }
}

fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What the caller may do here: everything as root, else nothing.
fn options() -> UnpackOptions {
    UnpackOptions {
        chown: privileged(),
        devices: privileged(),
        keep_whiteouts: false,
    }
}

fn apply_with(layer: &[u8], root: &Path, options: &UnpackOptions) -> Result<UnpackReport, UnpackError> {
    let mut report = UnpackReport::default();
    apply_layer(layer, root, options, &mut report, &mut |_| Ok(()))?;
    Ok(report)
}

fn apply(layer: &[u8], root: &Path) -> Result<UnpackReport, UnpackError> {
    apply_with(layer, root, &options())
}

/// A temporary directory holding `root/`, removed even where a layer
/// locked a directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        Scratch { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = crate::fsutil::remove_tree(self.dir.path());
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

const LONG: &str = "usr/share/a-directory-name-long-enough-that-the-whole-path-needs-more-than-one-hundred-bytes/file";

fn base_layer() -> LayerTar {
    LayerTar::new()
        .dir("./", 0o755)
        .dir("etc", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .dir("bin", 0o755)
        .file("bin/su", 0o4755, b"#!/bin/su\n")
        .file("bin/wall", 0o2755, b"#!/bin/wall\n")
        .hard_link("bin/su-again", "bin/su")
        .dir("tmp", 0o1777)
        .dir("locked", 0o555)
        .file("locked/secret", 0o400, b"s")
        .file(LONG, 0o644, b"long")
        .file("var/lib/implicit", 0o600, b"parents not in the tar")
}

fn check_base(root: &Path) {
    assert_eq!(fs::read(root.join("etc/hosts")).unwrap(), b"127.0.0.1 localhost\n");
    assert_eq!(
        fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(mode(&root.join("bin/su")), 0o4755);
    assert_eq!(mode(&root.join("bin/wall")), 0o2755);
    assert_eq!(mode(&root.join("tmp")), 0o1777);
    assert_eq!(mode(&root.join("locked")), 0o555);
    assert_eq!(mode(&root.join("locked/secret")), 0o400);
    let (su, again) = (
        fs::metadata(root.join("bin/su")).unwrap(),
        fs::metadata(root.join("bin/su-again")).unwrap(),
    );
    assert_eq!((su.dev(), su.ino()), (again.dev(), again.ino()));
    assert_eq!(fs::read(root.join(LONG)).unwrap(), b"long");
    assert_eq!(
        fs::read(root.join("var/lib/implicit")).unwrap(),
        b"parents not in the tar"
    );
    for path in ["etc/hosts", "etc/localtime", "etc", "bin", "locked", "tmp"] {
        let meta = fs::symlink_metadata(root.join(path)).unwrap();
        assert_eq!(meta.mtime(), MTIME as i64, "mtime of {path}");
    }
}

#[test]
fn files_dirs_links_and_modes_unpack_from_tar_gzip_and_zstd() {
    for (format, layer) in [
        ("tar", base_layer().tar()),
        ("gzip", base_layer().gzip()),
        ("zstd", base_layer().zstd()),
    ] {
        let scratch = Scratch::new();
        let report = apply(&layer, &scratch.root()).unwrap_or_else(|e| panic!("{format}: {e}"));
        check_base(&scratch.root());
        assert_eq!(report.entries, 13, "{format}");
        assert_eq!(report.bytes, 20 + 10 + 12 + 1 + 4 + 22, "{format}");
        assert_eq!(report.skipped_devices, 0);
    }
}

#[test]
fn absolute_paths_land_inside_the_root() {
    let scratch = Scratch::new();
    let layer = LayerTar::new().raw(EntryType::Regular, "/etc/abs", "").tar();
    apply(&layer, &scratch.root()).unwrap();
    assert_eq!(fs::read(scratch.root().join("etc/abs")).unwrap(), b"x");
}

#[test]
fn whiteouts_remove_a_file_and_a_tree_of_lower_layers() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let lower = LayerTar::new()
        .file("a/keep", 0o644, b"k")
        .file("a/gone", 0o644, b"g")
        .file("tree/x/y/z", 0o644, b"z")
        .dir("tree/locked", 0o500)
        .file("tree/top", 0o644, b"t");
    apply(&lower.tar(), &root).unwrap();
    let upper = LayerTar::new()
        .whiteout("a/.wh.gone")
        .whiteout("a/.wh.never-was")
        .whiteout(".wh.tree")
        .whiteout("missing/.wh.x")
        .file("a/new", 0o644, b"n");
    let report = apply(&upper.gzip(), &root).unwrap();
    assert_eq!(report.entries, 5);
    assert_eq!(names(&root.join("a")), ["keep", "new"]);
    assert!(!exists(&root.join("tree")));
    assert!(!exists(&root.join("missing")), "a whiteout creates nothing");
}

#[test]
fn an_opaque_directory_keeps_only_this_layers_children() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let lower = LayerTar::new()
        .file("d/old", 0o644, b"o")
        .file("d/sub/old", 0o644, b"o")
        .file("d/keep/lower", 0o644, b"l")
        .file("other/stays", 0o644, b"s");
    apply(&lower.tar(), &root).unwrap();
    let upper = LayerTar::new()
        .dir("d", 0o750)
        .file("d/new", 0o644, b"n")
        .dir("d/keep", 0o755)
        .file("d/keep/upper", 0o644, b"u")
        .whiteout("d/.wh..wh..opq")
        .file("d/later", 0o644, b"l");
    apply(&upper.zstd(), &root).unwrap();
    assert_eq!(names(&root.join("d")), ["keep", "later", "new"]);
    assert_eq!(names(&root.join("d/keep")), ["upper"]);
    assert_eq!(names(&root.join("other")), ["stays"]);
    assert_eq!(mode(&root.join("d")), 0o750);
}

#[test]
fn a_whiteout_spares_its_own_layer() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let layer = LayerTar::new().file("e/made", 0o644, b"m").whiteout("e/.wh.made");
    apply(&layer.tar(), &root).unwrap();
    assert_eq!(fs::read(root.join("e/made")).unwrap(), b"m");
}

#[test]
fn a_file_replaces_a_directory_and_a_directory_a_file() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let lower = LayerTar::new()
        .file("x/inner", 0o644, b"i")
        .file("y", 0o644, b"y")
        .symlink("z", "/etc")
        .dir("w", 0o700)
        .file("w/kept", 0o644, b"k")
        .file("f", 0o644, b"f");
    apply(&lower.tar(), &root).unwrap();
    let upper = LayerTar::new()
        .file("x", 0o600, b"now a file")
        .dir("y", 0o750)
        .dir("z", 0o755)
        .dir("w", 0o711)
        .symlink("f", "x");
    apply(&upper.tar(), &root).unwrap();
    assert_eq!(fs::read(root.join("x")).unwrap(), b"now a file");
    assert!(fs::symlink_metadata(root.join("y")).unwrap().is_dir());
    assert_eq!(mode(&root.join("y")), 0o750);
    assert!(fs::symlink_metadata(root.join("z")).unwrap().is_dir());
    assert_eq!(names(&root.join("w")), ["kept"]);
    assert_eq!(mode(&root.join("w")), 0o711);
    assert_eq!(fs::read_link(root.join("f")).unwrap(), Path::new("x"));
}

#[test]
fn a_rewritten_file_leaves_its_lower_hard_link_alone() {
    let scratch = Scratch::new();
    let root = scratch.root();
    apply(
        &LayerTar::new().file("a", 0o644, b"old").hard_link("b", "a").tar(),
        &root,
    )
    .unwrap();
    apply(&LayerTar::new().file("a", 0o644, b"new").tar(), &root).unwrap();
    assert_eq!(fs::read(root.join("a")).unwrap(), b"new");
    assert_eq!(fs::read(root.join("b")).unwrap(), b"old");
}

#[test]
fn read_only_directories_of_a_lower_layer_take_new_files() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let lower = LayerTar::new()
        .dir("ro", 0o555)
        .dir("ro/deeper", 0o500)
        .file("ro/deeper/old", 0o444, b"o");
    apply(&lower.tar(), &root).unwrap();
    let upper = LayerTar::new()
        .file("ro/deeper/new", 0o444, b"n")
        .whiteout("ro/deeper/.wh.old");
    apply(&upper.tar(), &root).unwrap();
    assert_eq!(names(&root.join("ro/deeper")), ["new"]);
    assert_eq!(mode(&root.join("ro")), 0o555);
    assert_eq!(mode(&root.join("ro/deeper")), 0o500);
}

#[test]
fn paths_above_the_root_are_refused() {
    for path in ["../x", "/../../x", "a/../../x"] {
        let scratch = Scratch::new();
        let layer = LayerTar::new().raw(EntryType::Regular, path, "").tar();
        match apply(&layer, &scratch.root()) {
            Err(UnpackError::Escapes { path: named }) => assert_eq!(named, path),
            other => panic!("{path}: {other:?}"),
        }
        assert!(!exists(&scratch.dir.path().join("x")), "{path}");
        assert!(names(&scratch.root()).is_empty(), "{path}");
    }
}

#[test]
fn a_symlinked_parent_resolves_inside_the_root() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let outside = scratch.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let outside_text = outside.to_str().unwrap();
    let lower = LayerTar::new()
        .symlink("a", outside_text)
        .file("a/f", 0o644, b"f")
        .symlink("up", "../../..")
        .file("up/g", 0o644, b"g");
    apply(&lower.tar(), &root).unwrap();
    apply(&LayerTar::new().file("a/f2", 0o644, b"f2").tar(), &root).unwrap();
    assert!(names(&outside).is_empty(), "nothing written outside the root");
    assert_eq!(fs::read_link(root.join("a")).unwrap(), outside);
    let inside = root.join(outside.strip_prefix("/").unwrap());
    assert_eq!(names(&inside), ["f", "f2"]);
    assert_eq!(fs::read(root.join("g")).unwrap(), b"g");
    assert!(!exists(&scratch.dir.path().join("g")));
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let layer = LayerTar::new().raw(EntryType::Link, "h", "../../etc/passwd").tar();
    match apply(&layer, &root) {
        Err(UnpackError::Escapes { path }) => assert_eq!(path, "h"),
        other => panic!("{other:?}"),
    }
    let before = fs::metadata("/etc/passwd").unwrap().nlink();
    for target in ["l/passwd", "/etc/passwd"] {
        let layer = LayerTar::new().symlink("l", "/etc").hard_link("p", target).tar();
        match apply(&layer, &root) {
            Err(UnpackError::Entry { path, source, .. }) => {
                assert_eq!(path, "p");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{target}: {other:?}"),
        }
        assert!(!exists(&root.join("p")));
    }
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), before);
}

#[test]
fn device_nodes_are_skipped_without_devices() {
    let layer = || {
        LayerTar::new()
            .device(EntryType::Char, "dev/null", 1, 3)
            .device(EntryType::Block, "dev/loop0", 7, 0)
            .device(EntryType::Fifo, "run/fifo", 0, 0)
            .tar()
    };
    let scratch = Scratch::new();
    let root = scratch.root();
    let unprivileged = UnpackOptions {
        chown: false,
        devices: false,
        keep_whiteouts: false,
    };
    let report = apply_with(&layer(), &root, &unprivileged).unwrap();
    assert_eq!((report.entries, report.skipped_devices), (3, 2));
    assert!(!exists(&root.join("dev/null")));
    assert!(fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(mode(&root.join("run/fifo")), 0o666);
    if privileged() {
        let report = apply(&layer(), &root).unwrap();
        assert_eq!(report.skipped_devices, 0);
        let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
    } else {
        skip::skip("making device nodes needs root");
    }
}

#[test]
fn owners_follow_the_tar_when_chown() {
    let mut header = LayerTar::header(EntryType::Regular, 0o4750);
    header.set_uid(1234);
    header.set_gid(5678);
    let mut link = LayerTar::header(EntryType::Symlink, 0o777);
    link.set_uid(1234);
    link.set_link_name_literal("tool").unwrap();
    let mut dir = LayerTar::header(EntryType::Directory, 0o2770);
    dir.set_uid(1234);
    dir.set_gid(5678);
    let layer = LayerTar::new()
        .add(dir, "shared", b"")
        .add(header, "tool", b"t")
        .add(link, "tool-link", b"")
        .tar();
    let scratch = Scratch::new();
    let root = scratch.root();
    apply_with(
        &layer,
        &root,
        &UnpackOptions {
            chown: false,
            devices: false,
            keep_whiteouts: false,
        },
    )
    .unwrap();
    let me = nix::unistd::geteuid().as_raw();
    assert_eq!(fs::symlink_metadata(root.join("tool")).unwrap().uid(), me);
    if !privileged() {
        skip::skip("chowning to the tar's owners needs root");
        return;
    }
    let scratch = Scratch::new();
    let root = scratch.root();
    apply_with(
        &layer,
        &root,
        &UnpackOptions {
            chown: true,
            devices: true,
            keep_whiteouts: false,
        },
    )
    .unwrap();
    let owner = |path: &str| {
        let meta = fs::symlink_metadata(root.join(path)).unwrap();
        (meta.uid(), meta.gid())
    };
    assert_eq!(owner("tool"), (1234, 5678));
    assert_eq!(owner("tool-link"), (1234, 0));
    assert_eq!(owner("shared"), (1234, 5678));
    assert_eq!(mode(&root.join("tool")), 0o4750, "setuid survives the chown");
    assert_eq!(mode(&root.join("shared")), 0o2770);
}

#[test]
fn xattrs_are_set_or_counted() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let layer = LayerTar::new()
        .xattr("SCHILY.xattr.user.hm", b"value")
        .file("with-xattr", 0o644, b"x")
        .xattr("SCHILY.xattr.user.hm", b"value")
        .symlink("link-with-xattr", "with-xattr")
        .xattr("mtime", b"1500000000.25")
        .file("precise", 0o644, b"p")
        .tar();
    let report = apply(&layer, &root).unwrap();
    let set = crate::fsutil::get_xattr(&root.join("with-xattr"), "user.hm").unwrap();
    match set {
        Some(value) => {
            assert_eq!(value, b"value");
            assert_eq!(report.skipped_xattrs, 1, "the symlink's");
        }
        None => assert_eq!(report.skipped_xattrs, 2),
    }
    let precise = fs::metadata(root.join("precise")).unwrap();
    assert_eq!((precise.mtime(), precise.mtime_nsec()), (MTIME as i64, 250_000_000));
}

#[test]
fn a_progress_error_stops_the_layer() {
    let scratch = Scratch::new();
    let root = scratch.root();
    let layer = LayerTar::new()
        .file("one", 0o644, b"1")
        .file("two", 0o644, b"2")
        .file("three", 0o644, b"3")
        .tar();
    let mut report = UnpackReport::default();
    let mut stop = |report: &UnpackReport| match report.entries {
        2 => Err(io::Error::new(io::ErrorKind::Interrupted, "stop")),
        _ => Ok(()),
    };
    let err = apply_layer(&layer[..], &root, &options(), &mut report, &mut stop).unwrap_err();
    assert!(matches!(err, UnpackError::Stopped { .. }), "{err:?}");
    assert_eq!(report.entries, 2);
    assert!(!exists(&root.join("three")));
}

#[test]
fn corrupt_streams_are_reported_as_corrupt() {
    let tar = LayerTar::new().file("f", 0o644, &[7; 5000]).tar();
    let mut gzip = LayerTar::new().file("f", 0o644, &[7; 5000]).gzip();
    let len = gzip.len();
    gzip[len / 2] ^= 0xff;
    gzip[len - 6] ^= 0xff;
    let zstd = LayerTar::new().file("f", 0o644, &[7; 5000]).zstd();
    let mut bad_header = tar.clone();
    bad_header[0] ^= 1;
    for (want, layer) in [
        ("gzip", gzip),
        ("zstd", zstd[..zstd.len() - 8].to_vec()),
        ("tar", bad_header),
        ("tar", tar[..700].to_vec()),
    ] {
        let scratch = Scratch::new();
        match apply(&layer, &scratch.root()) {
            Err(UnpackError::Corrupt { format, .. }) => assert_eq!(format, want),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn a_failing_input_is_a_read_error() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"))
        }
    }
    let scratch = Scratch::new();
    let mut report = UnpackReport::default();
    let layer = LayerTar::new().file("f", 0o644, &[7; 5000]).gzip();
    let input = (&layer[..100]).chain(Failing);
    let err = apply_layer(input, &scratch.root(), &options(), &mut report, &mut |_| Ok(())).unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{err:?}");
}

#[test]
fn pax_times_keep_their_fraction() {
    assert_eq!(
        pax_time(b"1500000000.5"),
        Some(TimeSpec::new(1_500_000_000, 500_000_000))
    );
    assert_eq!(pax_time(b"12"), Some(TimeSpec::new(12, 0)));
    assert_eq!(pax_time(b"-1.5"), None);
    assert_eq!(pax_time(b"x"), None);
}
