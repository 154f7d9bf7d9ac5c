//! The file a docker part travels in: an image archive in the older
//! `docker save` format (which every `docker load` takes) holding the
//! image's config and only the layers above its base image, and a
//! description of its own.
//!
//! Entries, each a plain ustar header (mode 0644, owner 0, time 0) and
//! its data padded with zeros, then two zero blocks:
//!
//! 1. `hm-part-<sha256 of it>.json`: [`Meta`], always first.
//! 2. `manifest.json`: `docker load`'s, listing the config and every
//!    layer, the base's included (their files are not here: the daemon
//!    skips a layer it has, and only reads the files of the others).
//! 3. `<diff id>.tar`: each layer above the base once, as `docker save`
//!    wrote it (uncompressed, so its sha256 is its diff id).
//! 4. `<image id>.json`: the config, whose sha256 is the image id.
//!
//! Every file is named by its content's digest but `manifest.json`, which
//! follows from the config, and headers, padding and the end must be
//! exactly as [`write`] makes them: [`check`] finds any byte changed
//! before anything reaches the daemon.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::PartError;

/// The version of the format [`write`] makes.
pub(crate) const VERSION: u32 = 1;
/// Tar's block.
const BLOCK: usize = 512;
/// The largest description, manifest or config read into memory.
const MAX_JSON: u64 = 16 << 20;
/// The description's name is this, its digest and `.json`.
const META_PREFIX: &str = "hm-part-";
const MANIFEST: &str = "manifest.json";
/// A layer of the older format whose digest is known once it is written.
const PENDING: &str = "pending.tar";
/// Bytes copied at a time.
const CHUNK: usize = 256 * 1024;

/// What a blob says about itself (its first entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    /// The format's version.
    pub version: u32,
    /// The image id: its config's digest.
    pub part: String,
    /// The image whose layers were left out, if any were.
    pub base: Option<String>,
    /// A name of `base` where the part was exported, for the user.
    pub base_name: Option<String>,
    /// How many of the config's layers, bottom first, are `base`'s.
    pub base_layers: usize,
    /// The part's size in bytes as the exporting daemon counted it (what
    /// the step added to the image it started from, as `persist` counts).
    pub size: u64,
}

/// What [`write`] makes a blob of.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub meta: Meta,
    /// The image's layers, bottom first, as diff ids (`sha256:...`).
    pub diff_ids: Vec<String>,
}

/// A blob [`check`] found whole.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub meta: Meta,
    /// The config's layers, bottom first.
    pub diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry<'a> {
    config: String,
    repo_tags: Option<&'a [String]>,
    layers: Vec<String>,
}

/// The part of an image config that lists its layers.
#[derive(Deserialize)]
struct ConfigLayers {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// The hex digits of a `sha256:` digest (the digest itself when it has no
/// prefix).
fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn meta_json(meta: &Meta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("a description is always JSON")
}

fn meta_name(json: &[u8]) -> String {
    format!("{META_PREFIX}{}.json", sha256_hex(json))
}

fn layer_name(hex: &str) -> String {
    format!("{hex}.tar")
}

fn config_name(hex: &str) -> String {
    format!("{hex}.json")
}

/// `docker load`'s manifest for the image whose config has digest `part`.
fn manifest_json(part: &str, diff_ids: &[String]) -> Vec<u8> {
    let entry = ManifestEntry {
        config: config_name(hex(part)),
        repo_tags: None,
        layers: diff_ids.iter().map(|d| layer_name(hex(d))).collect(),
    };
    serde_json::to_vec(&[entry]).expect("a manifest is always JSON")
}

/// The header [`write`] gives entry `name` of `size` bytes; `None` for a
/// name it could not hold.
fn header(name: &str, size: u64) -> Option<[u8; BLOCK]> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).ok()?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Some(*header.as_bytes())
}

/// Zeros after `size` bytes of data, up to the next block.
fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

// ---------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------

/// What a file in a `docker save` archive is, by its name.
enum Saved<'a> {
    /// Named by its digest: `blobs/sha256/<hex>` (the OCI layout inside
    /// archives of Docker 25 and later), `<hex>.json` (the config in the
    /// older format) or `<hex>.tar` (a layer in Podman's).
    Named(&'a str),
    /// `<id>/layer.tar` of the older format: a layer whose digest is
    /// known only once it is read.
    Layer,
    Other,
}

impl<'a> Saved<'a> {
    fn of(path: &'a str) -> Self {
        let path = path.trim_start_matches("./");
        let top = |suffix| path.strip_suffix(suffix).filter(|p| !p.contains('/'));
        let named = path
            .strip_prefix("blobs/sha256/")
            .or_else(|| top(".json"))
            .or_else(|| top(".tar"));
        match named {
            Some(hex) if is_hex64(hex) => Saved::Named(hex),
            _ if path.ends_with("/layer.tar") => Saved::Layer,
            _ => Saved::Other,
        }
    }
}

/// Writes the blob of `plan` to the new file `dest`, taking the config and
/// layers from `save`, the `docker save` archive of `plan.meta.part` (of
/// either format), read once as it comes. A failure leaves no file.
pub(crate) fn write(save: impl Read, plan: &Plan, dest: &Path) -> Result<(), PartError> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(PartError::Write)?;
    let written = write_to(save, plan, file);
    if written.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    written
}

fn write_to(save: impl Read, plan: &Plan, file: File) -> Result<(), PartError> {
    let part = hex(&plan.meta.part);
    let upper: HashSet<&str> = plan.diff_ids[plan.meta.base_layers.min(plan.diff_ids.len())..]
        .iter()
        .map(|d| hex(d))
        .collect();
    let mut out = Out {
        file: BufWriter::with_capacity(CHUNK, file),
        pos: 0,
    };
    let meta = meta_json(&plan.meta);
    out.small(&meta_name(&meta), &meta)?;
    out.small(MANIFEST, &manifest_json(part, &plan.diff_ids))?;
    let mut config = None;
    let mut written: HashSet<String> = HashSet::new();
    let mut archive = tar::Archive::new(save);
    for entry in archive.entries().map_err(PartError::Save)? {
        let mut entry = entry.map_err(PartError::Save)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(PartError::Save)?.to_string_lossy().into_owned();
        let size = entry.size();
        match Saved::of(&path) {
            Saved::Named(hex) if hex == part => config = Some(read_config(&mut entry, size, plan)?),
            Saved::Named(hex) if upper.contains(hex) && !written.contains(hex) => {
                let got = out.entry(&layer_name(hex), size, &mut entry)?;
                if got != hex {
                    return Err(PartError::LayerNotSaved {
                        part: plan.meta.part.clone(),
                        layer: format!("sha256:{hex}"),
                    });
                }
                written.insert(got);
            }
            Saved::Layer => {
                let start = out.pos;
                let got = out.entry(PENDING, size, &mut entry)?;
                if upper.contains(got.as_str()) && !written.contains(&got) {
                    out.rename(start, &layer_name(&got), size)?;
                    written.insert(got);
                } else {
                    // A base layer (or one already written): it is not kept.
                    out.truncate(start)?;
                }
            }
            Saved::Named(_) | Saved::Other => {}
        }
    }
    let config = config.ok_or_else(|| PartError::ConfigNotSaved {
        part: plan.meta.part.clone(),
    })?;
    if let Some(missing) = upper.iter().find(|hex| !written.contains(**hex)) {
        return Err(PartError::LayerNotSaved {
            part: plan.meta.part.clone(),
            layer: format!("sha256:{missing}"),
        });
    }
    out.small(&config_name(part), &config)?;
    out.finish()
}

/// The config of the image being saved: its digest must be the image id,
/// and its layers those the daemon reported.
fn read_config(entry: &mut impl Read, size: u64, plan: &Plan) -> Result<Vec<u8>, PartError> {
    let not_config = || PartError::NotConfig {
        part: plan.meta.part.clone(),
    };
    if size > MAX_JSON {
        return Err(not_config());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut bytes).map_err(PartError::Save)?;
    if sha256_hex(&bytes) != hex(&plan.meta.part) {
        return Err(not_config());
    }
    match serde_json::from_slice::<ConfigLayers>(&bytes) {
        Ok(config) if config.rootfs.diff_ids == plan.diff_ids => Ok(bytes),
        _ => Err(not_config()),
    }
}

/// The blob being written, and where its end is.
struct Out {
    file: BufWriter<File>,
    pos: u64,
}

impl Out {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PartError> {
        self.file.write_all(bytes).map_err(PartError::Write)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn small(&mut self, name: &str, bytes: &[u8]) -> Result<(), PartError> {
        self.entry(name, bytes.len() as u64, &mut &bytes[..]).map(drop)
    }

    /// Writes entry `name` of the `size` bytes `data` gives; their sha256,
    /// in hex.
    fn entry(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<String, PartError> {
        let header = header(name, size).expect("names hm writes fit a header");
        self.write(&header)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; CHUNK];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = data.read(&mut buf[..want]).map_err(PartError::Save)?;
            if n == 0 {
                return Err(PartError::Save(io::ErrorKind::UnexpectedEof.into()));
            }
            hasher.update(&buf[..n]);
            self.write(&buf[..n])?;
            left -= n as u64;
        }
        self.write(&[0; BLOCK][..padding(size)])?;
        Ok(format!("{:x}", hasher.finalize()))
    }

    /// Gives the entry whose header is at `at` the name `name`.
    fn rename(&mut self, at: u64, name: &str, size: u64) -> Result<(), PartError> {
        let header = header(name, size).expect("names hm writes fit a header");
        // Seeking writes out what is buffered first.
        self.file.seek(SeekFrom::Start(at)).map_err(PartError::Write)?;
        self.file.write_all(&header).map_err(PartError::Write)?;
        self.file.seek(SeekFrom::Start(self.pos)).map_err(PartError::Write)?;
        Ok(())
    }

    /// Drops everything from `at` on.
    fn truncate(&mut self, at: u64) -> Result<(), PartError> {
        self.file.flush().map_err(PartError::Write)?;
        self.file.get_ref().set_len(at).map_err(PartError::Write)?;
        self.file.seek(SeekFrom::Start(at)).map_err(PartError::Write)?;
        self.pos = at;
        Ok(())
    }

    fn finish(mut self) -> Result<(), PartError> {
        self.write(&[0; 2 * BLOCK])?;
        self.file.flush().map_err(PartError::Write)
    }
}

// ---------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------

/// What an entry of a blob is, by its name.
enum Entry<'a> {
    Meta(&'a str),
    Manifest,
    Config(&'a str),
    Layer(&'a str),
    Other,
}

impl<'a> Entry<'a> {
    fn of(name: &'a str) -> Self {
        let digest = |suffix: &str, prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(suffix))
                .filter(|h| is_hex64(h))
        };
        if let Some(hex) = digest(".json", META_PREFIX) {
            Entry::Meta(hex)
        } else if name == MANIFEST {
            Entry::Manifest
        } else if let Some(hex) = digest(".json", "") {
            Entry::Config(hex)
        } else if let Some(hex) = digest(".tar", "") {
            Entry::Layer(hex)
        } else {
            Entry::Other
        }
    }
}

fn damaged(why: &'static str) -> PartError {
    PartError::Damaged { why }
}

/// The next block; the file's end here is damage.
fn read_block(reader: &mut impl Read) -> Result<[u8; BLOCK], PartError> {
    let mut block = [0; BLOCK];
    match reader.read_exact(&mut block) {
        Ok(()) => Ok(block),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(damaged("it ends early")),
        Err(e) => Err(PartError::Read(e)),
    }
}

/// The name and size of the entry whose header is `block`, which must be
/// the header [`write`] gives them.
fn read_header(block: &[u8; BLOCK]) -> Result<(String, u64), PartError> {
    let parsed = tar::Header::from_byte_slice(block);
    let name = parsed.path().ok().and_then(|p| p.to_str().map(str::to_owned));
    let size = parsed.size().ok();
    match (name, size) {
        (Some(name), Some(size)) if header(&name, size).as_ref() == Some(block) => Ok((name, size)),
        _ => Err(damaged("an entry's header is not as hm writes it")),
    }
}

/// Reads `size` bytes of data (through `buf`) and hashes them; what they
/// are when `keep`.
fn read_data(reader: &mut impl Read, size: u64, keep: bool, buf: &mut [u8]) -> Result<(String, Vec<u8>), PartError> {
    let mut kept = Vec::new();
    if keep {
        if size > MAX_JSON {
            return Err(damaged("a description, manifest or config is too large"));
        }
        kept.reserve(size as usize);
    }
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match reader.read(&mut buf[..want]) {
            Ok(0) => return Err(damaged("it ends early")),
            Ok(n) => {
                hasher.update(&buf[..n]);
                if keep {
                    kept.extend_from_slice(&buf[..n]);
                }
                left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PartError::Read(e)),
        }
    }
    let mut pad = [0; BLOCK];
    let pad = &mut pad[..padding(size)];
    match reader.read_exact(pad) {
        Ok(()) if pad.iter().all(|&b| b == 0) => {}
        Ok(()) => return Err(damaged("the padding of an entry is not zeros")),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(damaged("it ends early")),
        Err(e) => return Err(PartError::Read(e)),
    }
    Ok((format!("{:x}", hasher.finalize()), kept))
}

/// Reads the description (the first entry), checked against its digest.
fn first_meta(reader: &mut impl Read, part: &str, buf: &mut [u8]) -> Result<(Meta, Vec<u8>), PartError> {
    let block = read_block(reader)?;
    let (name, size) = read_header(&block)?;
    let Entry::Meta(digest) = Entry::of(&name) else {
        return Err(damaged("its first entry is not its description `hm-part-DIGEST.json`"));
    };
    let (actual, bytes) = read_data(reader, size, true, buf)?;
    if actual != digest {
        return Err(PartError::Mismatch { entry: name });
    }
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|_| damaged("its description is not valid"))?;
    if meta.version != VERSION {
        return Err(PartError::Version { found: meta.version });
    }
    if meta.part != part {
        return Err(PartError::OtherPart {
            part: part.to_owned(),
            found: meta.part,
        });
    }
    Ok((meta, bytes))
}

/// The description of the blob `path` of part `part`, without reading the
/// rest.
pub(crate) fn read_meta(path: &Path, part: &str) -> Result<Meta, PartError> {
    let mut reader = BufReader::new(File::open(path).map_err(PartError::Read)?);
    first_meta(&mut reader, part, &mut [0; BLOCK]).map(|(meta, _)| meta)
}

/// Reads the blob `path` of part `part` through and checks every byte of
/// it (see the module's documentation).
pub(crate) fn check(path: &Path, part: &str) -> Result<Checked, PartError> {
    let mut reader = BufReader::with_capacity(CHUNK, File::open(path).map_err(PartError::Read)?);
    let mut buf = vec![0; CHUNK];
    let (meta, _) = first_meta(&mut reader, part, &mut buf)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut manifest = None;
    let mut config = None;
    let mut layers: HashSet<String> = HashSet::new();
    loop {
        let block = read_block(&mut reader)?;
        if block == [0; BLOCK] {
            if read_block(&mut reader)? != [0; BLOCK] {
                return Err(damaged("it does not end in two zero blocks"));
            }
            let mut more = [0; 1];
            match reader.read(&mut more) {
                Ok(0) => break,
                Ok(_) => return Err(damaged("there is more after its end")),
                Err(e) => return Err(PartError::Read(e)),
            }
        }
        let (name, size) = read_header(&block)?;
        if !seen.insert(name.clone()) {
            return Err(PartError::Unexpected { entry: name });
        }
        let entry = Entry::of(&name);
        let keep = matches!(entry, Entry::Manifest | Entry::Config(_));
        let (digest, bytes) = read_data(&mut reader, size, keep, &mut buf)?;
        match entry {
            Entry::Manifest => manifest = Some(bytes),
            Entry::Config(hex) if hex == digest => config = Some((hex.to_owned(), bytes)),
            Entry::Layer(hex) if hex == digest => {
                layers.insert(hex.to_owned());
            }
            Entry::Config(_) | Entry::Layer(_) => return Err(PartError::Mismatch { entry: name }),
            Entry::Meta(_) | Entry::Other => return Err(PartError::Unexpected { entry: name }),
        }
    }
    let (config_hex, config) = config.ok_or_else(|| damaged("it holds no image config"))?;
    if config_hex != hex(part) {
        return Err(PartError::Unexpected {
            entry: config_name(&config_hex),
        });
    }
    let diff_ids = serde_json::from_slice::<ConfigLayers>(&config)
        .map_err(|_| damaged("its image config lists no layers"))?
        .rootfs
        .diff_ids;
    if manifest.as_deref() != Some(&manifest_json(part, &diff_ids)[..]) {
        return Err(damaged("its manifest.json does not match its config"));
    }
    let base_ok = match &meta.base {
        Some(base) => {
            is_hex64(hex(base)) && base.starts_with("sha256:") && (1..=diff_ids.len()).contains(&meta.base_layers)
        }
        None => meta.base_layers == 0,
    };
    if !base_ok {
        return Err(damaged("its description does not match its config"));
    }
    let upper: HashSet<String> = diff_ids[meta.base_layers..].iter().map(|d| hex(d).to_owned()).collect();
    if layers != upper {
        return Err(damaged("its layers are not those above its base image"));
    }
    Ok(Checked { meta, diff_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer: a tar of one file.
    fn layer(name: &str, text: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, text.as_bytes()).unwrap();
        builder.into_inner().unwrap()
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", sha256_hex(bytes))
    }

    /// An image of three layers (the first the base's) and its config.
    struct Image {
        layers: Vec<Vec<u8>>,
        config: Vec<u8>,
    }

    impl Image {
        fn new() -> Self {
            let layers = vec![layer("base", "base\n"), layer("one", "1\n"), layer("two", "2\n")];
            let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"dev.hm.base": "sha256:base"}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }))
            .unwrap();
            Image { layers, config }
        }

        fn id(&self) -> String {
            digest(&self.config)
        }

        fn diff_ids(&self) -> Vec<String> {
            self.layers.iter().map(|l| digest(l)).collect()
        }

        fn plan(&self, base_layers: usize) -> Plan {
            Plan {
                meta: Meta {
                    version: VERSION,
                    part: self.id(),
                    base: (base_layers > 0).then(|| digest(b"base")),
                    base_name: (base_layers > 0).then(|| "base:1".to_owned()),
                    base_layers,
                    size: 42,
                },
                diff_ids: self.diff_ids(),
            }
        }

        /// `docker save` of Docker 20.10: `<v1 id>/layer.tar`, the
        /// config as `<id>.json`, then `manifest.json`, in name order.
        fn legacy_save(&self) -> Vec<u8> {
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            for (i, l) in self.layers.iter().enumerate() {
                // v1 ids in no particular order of the layers.
                let v1 = sha256_hex(format!("v1-{}", 7 - i).as_bytes());
                files.push((format!("{v1}/VERSION"), b"1.0".to_vec()));
                files.push((format!("{v1}/json"), b"{}".to_vec()));
                files.push((format!("{v1}/layer.tar"), l.clone()));
            }
            files.push((format!("{}.json", hex(&self.id())), self.config.clone()));
            files.push(("manifest.json".to_owned(), b"[]".to_vec()));
            files.sort();
            tar_of(&files)
        }

        /// `docker save` of Docker 25 and later: an OCI layout with
        /// every blob under `blobs/sha256/`.
        fn oci_save(&self) -> Vec<u8> {
            let mut files: Vec<(String, Vec<u8>)> = vec![
                ("oci-layout".to_owned(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
                ("index.json".to_owned(), b"{}".to_vec()),
                ("manifest.json".to_owned(), b"[]".to_vec()),
            ];
            for l in &self.layers {
                files.push((format!("blobs/sha256/{}", sha256_hex(l)), l.clone()));
            }
            files.push((format!("blobs/sha256/{}", hex(&self.id())), self.config.clone()));
            files.sort();
            tar_of(&files)
        }

        /// What Podman's Docker API sends: `<diff id>.tar`, `<id>.json`.
        fn podman_save(&self) -> Vec<u8> {
            let mut files: Vec<(String, Vec<u8>)> = vec![("manifest.json".to_owned(), b"[]".to_vec())];
            for l in &self.layers {
                files.push((format!("{}.tar", sha256_hex(l)), l.clone()));
            }
            files.push((format!("{}.json", hex(&self.id())), self.config.clone()));
            tar_of(&files)
        }
    }

    fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, &data[..]).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn entries(blob: &Path) -> Vec<String> {
        let mut archive = tar::Archive::new(File::open(blob).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn both_save_formats_give_the_layers_above_the_base() {
        let image = Image::new();
        let ids = image.diff_ids();
        let saves = [
            ("legacy", image.legacy_save()),
            ("oci", image.oci_save()),
            ("podman", image.podman_save()),
        ];
        for (format, save) in saves {
            let dir = tempfile::tempdir().unwrap();
            let blob = dir.path().join("part");
            write(&save[..], &image.plan(1), &blob).unwrap();
            let names = entries(&blob);
            assert!(names[0].starts_with(META_PREFIX), "{format}: {names:?}");
            assert_eq!(names[1], MANIFEST, "{format}");
            let mut layers: Vec<&String> = names.iter().filter(|n| n.ends_with(".tar")).collect();
            layers.sort();
            let mut want = [layer_name(hex(&ids[1])), layer_name(hex(&ids[2]))];
            want.sort();
            assert_eq!(layers, want.iter().collect::<Vec<_>>(), "{format}");
            assert_eq!(names.last().unwrap(), &config_name(hex(&image.id())), "{format}");
            let checked = check(&blob, &image.id()).unwrap();
            assert_eq!(checked.diff_ids, ids);
            assert_eq!(checked.meta.size, 42);
            assert_eq!(checked.meta.base_layers, 1);
            assert_eq!(read_meta(&blob, &image.id()).unwrap(), checked.meta);
        }
    }

    #[test]
    fn without_a_base_every_layer_goes() {
        let image = Image::new();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("part");
        write(&image.legacy_save()[..], &image.plan(0), &blob).unwrap();
        let layers = entries(&blob).into_iter().filter(|n| n.ends_with(".tar")).count();
        assert_eq!(layers, 3);
        let checked = check(&blob, &image.id()).unwrap();
        assert_eq!(checked.meta.base, None);
    }

    #[test]
    fn a_layer_twice_in_the_image_is_written_once() {
        let mut image = Image::new();
        image.layers.push(image.layers[1].clone());
        let diff_ids = image.diff_ids();
        image.config =
            serde_json::to_vec(&serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("part");
        write(&image.legacy_save()[..], &image.plan(1), &blob).unwrap();
        assert_eq!(entries(&blob).iter().filter(|n| n.ends_with(".tar")).count(), 2);
        check(&blob, &image.id()).unwrap();
    }

    #[test]
    fn a_save_without_the_config_or_a_layer_writes_nothing() {
        let image = Image::new();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("part");
        let no_config = tar_of(&[("x/layer.tar".to_owned(), image.layers[1].clone())]);
        let err = write(&no_config[..], &image.plan(1), &blob).unwrap_err();
        assert!(matches!(err, PartError::ConfigNotSaved { .. }), "{err}");
        assert!(!blob.exists());
        let no_layer = tar_of(&[(format!("{}.json", hex(&image.id())), image.config.clone())]);
        let err = write(&no_layer[..], &image.plan(1), &blob).unwrap_err();
        assert!(matches!(err, PartError::LayerNotSaved { .. }), "{err}");
        assert!(!blob.exists());
        // An id that is not the config's digest but a manifest's (the
        // containerd image store's ids).
        let manifest = br#"{"schemaVersion":2,"layers":[]}"#.to_vec();
        let mut plan = image.plan(1);
        plan.meta.part = digest(&manifest);
        let save = tar_of(&[(format!("blobs/sha256/{}", sha256_hex(&manifest)), manifest)]);
        let err = write(&save[..], &plan, &blob).unwrap_err();
        assert!(matches!(err, PartError::NotConfig { .. }), "{err}");
        assert!(!blob.exists());
    }

    #[test]
    fn a_byte_changed_anywhere_is_found() {
        let image = Image::new();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("part");
        write(&image.legacy_save()[..], &image.plan(1), &blob).unwrap();
        let good = std::fs::read(&blob).unwrap();
        let damaged = dir.path().join("damaged");
        // Every byte of the first header and of the end, every seventh
        // elsewhere (each check costs milliseconds in a debug build).
        let checked = (0..good.len()).filter(|&at| at % 7 == 0 || at < BLOCK || at >= good.len() - BLOCK);
        for at in checked {
            let mut bytes = good.clone();
            bytes[at] ^= 0x20;
            std::fs::write(&damaged, &bytes).unwrap();
            assert!(
                check(&damaged, &image.id()).is_err(),
                "byte {at} of {} changed",
                good.len()
            );
        }
        // Cut short, or with more at the end.
        for len in [0, 511, 512, good.len() - 1024, good.len() - 1] {
            std::fs::write(&damaged, &good[..len]).unwrap();
            assert!(check(&damaged, &image.id()).is_err(), "cut at {len}");
        }
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; BLOCK]);
        std::fs::write(&damaged, &longer).unwrap();
        assert!(check(&damaged, &image.id()).is_err());
    }

    #[test]
    fn another_part_is_refused() {
        let image = Image::new();
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("part");
        write(&image.oci_save()[..], &image.plan(1), &blob).unwrap();
        let other = digest(b"other");
        let err = check(&blob, &other).unwrap_err();
        assert!(matches!(err, PartError::OtherPart { .. }), "{err}");
        assert!(read_meta(&blob, &other).is_err());
    }
}
