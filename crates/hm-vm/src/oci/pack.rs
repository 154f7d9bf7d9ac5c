//! A sandbox layer (an overlayfs upper directory) as an OCI image layer: a
//! gzip-compressed tar, with overlayfs' whiteouts written as the image
//! spec's (`image-layer.md`), so that [`super::unpack::apply_layer`] with
//! [`super::unpack::UnpackOptions::keep_whiteouts`] gives the same layer
//! back on another machine.
//!
//! - A character device 0/0 (overlayfs' whiteout) becomes an empty
//!   `.wh.NAME`; a directory marked opaque (`user.overlay.opaque`) gets a
//!   `.wh..wh..opq` entry right after its own.
//! - Owners, modes, modification times and extended attributes are kept
//!   (PAX `SCHILY.xattr.` records), but for overlayfs' own (`user.overlay.`
//!   and `trusted.overlay.`), which describe this machine's mount.
//! - A file linked several times in the layer is stored once, then as hard
//!   links to its first path (flattened layers link every file).
//! - Entries come in name order and the gzip header carries no time, so the
//!   same layer always gives the same bytes, and so the same digest.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::sandbox::OPAQUE_XATTR;

/// The name of an opaque whiteout.
const OPAQUE: &str = ".wh..wh..opq";
/// The prefix of a whiteout.
const WHITEOUT: &str = ".wh.";
/// The PAX record prefix of an extended attribute.
const PAX_XATTR: &str = "SCHILY.xattr.";

/// Writes the layer directory `dir` to `out` as a gzip-compressed OCI
/// layer; returns `out`.
pub fn pack_layer<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let gzip = flate2::GzBuilder::new().write(out, flate2::Compression::fast());
    pack_tar(dir, gzip)?.finish()
}

/// Writes the layer directory `dir` to `out` as [`pack_layer`] does, as a
/// plain tar (to unpack at once: a limited step's files, copied out of its
/// own filesystem); returns `out`.
pub fn pack_tar<W: Write>(dir: &Path, out: W) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    let mut packer = Packer {
        tar,
        links: HashMap::new(),
    };
    packer.dir_contents(dir, Path::new(""))?;
    packer.tar.into_inner()
}

struct Packer<W: Write> {
    tar: tar::Builder<W>,
    /// The first path of each file with several links, by device and inode.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Packer<W> {
    /// Packs the entries of `dir` (at `rel` in the layer), in name order.
    fn dir_contents(&mut self, dir: &Path, rel: &Path) -> io::Result<()> {
        let mut names: Vec<OsString> = fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            self.entry(&dir.join(&name), &rel.join(&name))?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut name = OsString::from(WHITEOUT);
            name.push(rel.file_name().unwrap_or_default());
            let whiteout = rel.with_file_name(name);
            return self.append(&whiteout, tar::EntryType::Regular, &meta, 0, io::empty(), &[]);
        }
        let xattrs = xattrs(path)?;
        if ft.is_dir() {
            self.append(rel, tar::EntryType::Directory, &meta, 0, io::empty(), &xattrs)?;
            if crate::sandbox::is_opaque(path)? {
                self.append(&rel.join(OPAQUE), tar::EntryType::Regular, &meta, 0, io::empty(), &[])?;
            }
            return self.dir_contents(path, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(path)?;
            let mut header = header(tar::EntryType::Symlink, &meta, 0);
            self.pax(&xattrs)?;
            return self.tar.append_link(&mut header, rel, target);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                    let mut header = header(tar::EntryType::Link, &meta, 0);
                    let first = first.clone();
                    return self.tar.append_link(&mut header, rel, first);
                }
                self.links.insert((meta.dev(), meta.ino()), rel.to_owned());
            }
            let file = File::open(path)?;
            return self.append(rel, tar::EntryType::Regular, &meta, meta.len(), file, &xattrs);
        }
        let kind = if ft.is_fifo() {
            tar::EntryType::Fifo
        } else if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            // A socket is no file a step can hand on.
            return Ok(());
        };
        let mut header = header(kind, &meta, 0);
        header.set_device_major(libc::major(meta.rdev()))?;
        header.set_device_minor(libc::minor(meta.rdev()))?;
        self.pax(&xattrs)?;
        self.tar.append_data(&mut header, rel, io::empty())
    }

    /// Appends one entry of `kind` with `len` bytes of `data`.
    fn append(
        &mut self,
        rel: &Path,
        kind: tar::EntryType,
        meta: &fs::Metadata,
        len: u64,
        data: impl io::Read,
        xattrs: &[(OsString, Vec<u8>)],
    ) -> io::Result<()> {
        let mut header = header(kind, meta, len);
        self.pax(xattrs)?;
        self.tar.append_data(&mut header, rel, data.take(len))
    }

    /// The extended attributes of the next entry, as PAX records.
    fn pax(&mut self, xattrs: &[(OsString, Vec<u8>)]) -> io::Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(name, value)| (format!("{PAX_XATTR}{}", name.to_string_lossy()), value.as_slice()))
            .collect();
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }
}

/// A header of `kind` with `meta`'s owner, mode and time, and size `len`.
fn header(kind: tar::EntryType, meta: &fs::Metadata, len: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mode(meta.mode() & 0o7777);
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(len);
    header
}

/// The extended attributes of `path` worth carrying: not overlayfs' own.
fn xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b"user.overlay.") || bytes.starts_with(b"trusted.overlay.") || name == OPAQUE_XATTR {
            continue;
        }
        if let Some(value) = xattr::get(path, &name)? {
            found.push((name, value));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::unpack::{apply_layer, UnpackOptions, UnpackReport};
    use std::collections::BTreeMap;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// Everything a layer says of each path: kind, mode, owner, time,
    /// contents or target, device, xattrs, and which paths share a file.
    fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
        let mut found = BTreeMap::new();
        let mut inodes: HashMap<u64, PathBuf> = HashMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(root).unwrap().to_owned();
                let ft = meta.file_type();
                let what = if ft.is_dir() {
                    stack.push(path.clone());
                    format!("dir opaque={}", crate::sandbox::is_opaque(&path).unwrap())
                } else if ft.is_symlink() {
                    format!("link {}", fs::read_link(&path).unwrap().display())
                } else if ft.is_file() {
                    let first = inodes.entry(meta.ino()).or_insert_with(|| rel.clone()).clone();
                    format!("file {:?} same-as {}", fs::read(&path).unwrap(), first.display())
                } else {
                    format!("special rdev={}", meta.rdev())
                };
                let mtime = if ft.is_symlink() { 0 } else { meta.mtime() };
                let attrs = xattrs(&path).unwrap_or_default();
                found.insert(
                    rel,
                    format!(
                        "{what} mode={:o} owner={}:{} mtime={mtime} xattrs={attrs:?}",
                        meta.mode() & 0o7777,
                        meta.uid(),
                        meta.gid()
                    ),
                );
            }
        }
        found
    }

    #[test]
    fn a_layer_comes_back_as_it_was_whiteouts_and_links_included() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        fs::create_dir_all(layer.join("etc/app")).unwrap();
        fs::create_dir_all(layer.join("opaque/inner")).unwrap();
        crate::fsutil::set_xattr(&layer.join("opaque"), OPAQUE_XATTR, b"y").unwrap();
        fs::write(layer.join("etc/app/conf"), "x = 1\n").unwrap();
        fs::set_permissions(layer.join("etc/app/conf"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(layer.join("opaque/inner/kept"), "kept").unwrap();
        fs::hard_link(layer.join("etc/app/conf"), layer.join("etc/linked")).unwrap();
        symlink("../etc/app/conf", layer.join("opaque/to-conf")).unwrap();
        nix::sys::stat::mknod(
            &layer.join("etc/deleted"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let _ = crate::fsutil::set_xattr(&layer.join("etc/app/conf"), "user.hm-test", b"kept");
        let long = "n".repeat(150);
        fs::write(layer.join("etc").join(&long), "a long name").unwrap();

        let packed = pack_layer(&layer, Vec::new()).unwrap();
        assert_eq!(
            pack_layer(&layer, Vec::new()).unwrap(),
            packed,
            "the same layer, other bytes"
        );
        let back = dir.path().join("back");
        fs::create_dir(&back).unwrap();
        let root = nix::unistd::geteuid().is_root();
        let options = UnpackOptions {
            chown: root,
            devices: root,
            keep_whiteouts: true,
        };
        let mut report = UnpackReport::default();
        apply_layer(packed.as_slice(), &back, &options, &mut report, &mut |_| Ok(())).unwrap();
        assert_eq!(describe(&back), describe(&layer));
    }
}
