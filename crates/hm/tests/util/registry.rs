//! A real OCI registry for the pull tests and the pull benchmark: Debian's
//! `docker-registry` on a free port ([`Registry`]), OCI image layouts
//! written here ([`OciLayout`]) and pushed over the distribution API
//! ([`push`]), Docker client configuration with a credential helper, and an
//! HTTP proxy in front of a registry that fails on purpose ([`FaultProxy`]).
//!
//! Nothing here refers to the rest of `util`, so a benchmark can include
//! this file with `#[path]`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Why the registry tools are missing here, if they are.
pub fn tools_missing() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let probes: [(&str, &[&str]); 2] = [("docker-registry", &["--version"]), ("htpasswd", &["-nbB", "a", "b"])];
            probes
                .iter()
                .find_map(|(program, args)| match Command::new(program).args(*args).output() {
                    Ok(o) if o.status.success() => None,
                    Ok(o) => Some(format!("{program}: {}", String::from_utf8_lossy(&o.stderr).trim())),
                    Err(e) => Some(format!("{program}: {e}")),
                })
        })
        .clone()
}

/// How to run a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Basic authentication with this one user and password.
    pub htpasswd: Option<(String, String)>,
    /// A pull-through mirror of the registry at this URL.
    pub proxy: Option<String>,
    /// Listen on every interface (`0.0.0.0`), not only on loopback.
    pub all_interfaces: bool,
}

impl RegistryOptions {
    pub fn auth(user: &str, pass: &str) -> Self {
        RegistryOptions {
            htpasswd: Some((user.to_owned(), pass.to_owned())),
            ..Self::default()
        }
    }

    pub fn mirror_of(url: &str) -> Self {
        RegistryOptions {
            proxy: Some(url.to_owned()),
            ..Self::default()
        }
    }

    pub fn all_interfaces() -> Self {
        RegistryOptions {
            all_interfaces: true,
            ..Self::default()
        }
    }
}

/// A running `docker-registry` with its storage in a temporary directory;
/// killed and waited for on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    creds: Option<(String, String)>,
}

impl Registry {
    pub fn start(options: &RegistryOptions) -> Registry {
        let dir = tempfile::Builder::new().prefix("hm-registry-").tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n",
            dir.path().join("storage").display()
        );
        if let Some((user, pass)) = &options.htpasswd {
            let out = Command::new("htpasswd").args(["-nbB", user, pass]).output().unwrap();
            assert!(
                out.status.success(),
                "htpasswd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout).unwrap();
            config += &format!("auth: {{htpasswd: {{realm: hm-test, path: {}}}}}\n", file.display());
        }
        if let Some(url) = &options.proxy {
            config += &format!("proxy: {{remoteurl: \"{url}\"}}\n");
        }
        let interface = if options.all_interfaces { "0.0.0.0" } else { "127.0.0.1" };
        // The free port is found by binding and letting go: another process
        // may take it in between, so a registry that does not come up is
        // tried again on another port.
        for _ in 0..5 {
            let port = free_port();
            let yml = dir.path().join("config.yml");
            fs::write(&yml, format!("{config}http: {{addr: \"{interface}:{port}\"}}\n")).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = File::create(&log_path).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&yml)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry");
            if wait_ready(&mut child, port) {
                return Registry {
                    child,
                    dir,
                    port,
                    creds: options.htpasswd.clone(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains("address already in use") {
                panic!("docker-registry did not start:\n{log}");
            }
        }
        panic!("docker-registry found no free port");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as a reference names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `127.0.0.1:PORT/NAME_TAG`.
    pub fn reference(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.host())
    }

    /// Where the registry keeps its blobs and manifests.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log (warnings and errors).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The digest the registry serves for `repo:reference`, read with
    /// `curl` (with the registry's credentials, if it has some).
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let mut curl = Command::new("curl");
        curl.args(["-sfI", "-H"])
            .arg(format!("Accept: {MANIFEST}, {INDEX}"))
            .arg(format!("{}/v2/{repo}/manifests/{reference}", self.url()));
        if let Some((user, pass)) = &self.creds {
            curl.arg("-u").arg(format!("{user}:{pass}"));
        }
        let out = curl.output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest")
                .then(|| value.trim().to_owned())
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the registry's `/v2/` answers (200, or 401 with
/// authentication); false when it exited or did not answer in time.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Ok(response) = http_request(SocketAddr::from(([127, 0, 0, 1], port)), "GET", "/v2/", &[]) {
            if response.status == 200 || response.status == 401 {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `127.0.0.1:PORT` of a registry that is down (nothing listens there).
pub fn dead_host() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// This machine's first address that is not loopback (for a registry that
/// needs `insecure` configured), if it has one.
pub fn non_loopback_ip() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------
// OCI image layouts.

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One entry of a layer's tar; paths are relative (`etc/os-release`).
#[derive(Debug, Clone)]
pub enum Entry {
    File { path: String, data: Vec<u8>, mode: u32 },
    Dir { path: String, mode: u32 },
    Symlink { path: String, target: String },
    HardLink { path: String, target: String },
}

pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
    file_mode(path, data, 0o644)
}

pub fn file_mode(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Entry {
    Entry::File {
        path: path.to_owned(),
        data: data.into(),
        mode,
    }
}

pub fn dir(path: &str) -> Entry {
    dir_mode(path, 0o755)
}

pub fn dir_mode(path: &str, mode: u32) -> Entry {
    Entry::Dir {
        path: path.to_owned(),
        mode,
    }
}

pub fn symlink(path: &str, target: &str) -> Entry {
    Entry::Symlink {
        path: path.to_owned(),
        target: target.to_owned(),
    }
}

/// A hard link to `target`, an earlier entry of the same layer.
pub fn hardlink(path: &str, target: &str) -> Entry {
    Entry::HardLink {
        path: path.to_owned(),
        target: target.to_owned(),
    }
}

/// Deletes `path` of the layers below: the file `.wh.NAME` beside it.
pub fn whiteout(path: &str) -> Entry {
    let (parent, name) = match path.rsplit_once('/') {
        Some((parent, name)) => (format!("{parent}/"), name),
        None => (String::new(), path),
    };
    file(&format!("{parent}.wh.{name}"), "")
}

/// Hides everything the layers below have in directory `dir`.
pub fn opaque(dir: &str) -> Entry {
    file(&format!("{dir}/.wh..wh..opq"), "")
}

/// How a layer's tar is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// What a layer holds.
#[derive(Debug, Clone)]
pub enum LayerSource {
    Entries(Vec<Entry>),
    /// A directory's tree: only the top-level names in `only` (all when
    /// empty), none of those in `except`; the contents of `dev`, `proc`
    /// and `sys` are left out, as images leave them out.
    Tree {
        root: PathBuf,
        only: Vec<String>,
        except: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub source: LayerSource,
    pub compression: Compression,
}

impl Layer {
    /// A gzip'd layer of `entries`.
    pub fn entries(entries: Vec<Entry>) -> Self {
        Layer {
            source: LayerSource::Entries(entries),
            compression: Compression::Gzip,
        }
    }

    /// A gzip'd layer of the whole tree at `root`.
    pub fn tree(root: &Path) -> Self {
        Self::tree_parts(root, &[], &[])
    }

    /// A gzip'd layer of the top-level names `only` of `root` (all when
    /// empty) except `except`.
    pub fn tree_parts(root: &Path, only: &[&str], except: &[&str]) -> Self {
        Layer {
            source: LayerSource::Tree {
                root: root.to_owned(),
                only: only.iter().map(|s| s.to_string()).collect(),
                except: except.iter().map(|s| s.to_string()).collect(),
            },
            compression: Compression::Gzip,
        }
    }

    pub fn compressed(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }
}

/// An image's `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform of this machine, as OCI names it.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (arch == "arm64").then_some("v8");
        Self::new("linux", arch, variant)
    }

    /// `os/arch[/variant]`, as `--platform` takes it.
    pub fn to_flag(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn json(&self) -> Value {
        let mut platform = json!({"os": self.os, "architecture": self.architecture});
        if let Some(v) = &self.variant {
            platform["variant"] = json!(v);
        }
        platform
    }
}

/// One image (one platform): layers bottom first, the config's `Env`.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub layers: Vec<Layer>,
    pub env: Vec<String>,
    pub platform: Platform,
}

impl ImageSpec {
    /// An image for the host's platform with a default `PATH`.
    pub fn new(layers: Vec<Layer>) -> Self {
        ImageSpec {
            layers,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()],
            platform: Platform::host(),
        }
    }

    pub fn env(mut self, key_value: &str) -> Self {
        self.env.push(key_value.to_owned());
        self
    }

    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }
}

/// A blob written into a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// One platform's image as written.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// `sha256:` of each layer's uncompressed tar.
    pub diff_ids: Vec<String>,
    pub platform: Platform,
}

/// An OCI image layout directory holding one tag: a manifest, or an index
/// of several platforms' manifests.
#[derive(Debug)]
pub struct OciLayout {
    pub dir: PathBuf,
    pub tag: String,
    /// The tag's top-level blob: the manifest, or the index.
    pub top: Blob,
    pub images: Vec<BuiltImage>,
}

impl OciLayout {
    /// Writes `specs` into `dir` (created): one spec is a manifest, more
    /// are an index of their manifests.
    pub fn write(dir: &Path, tag: &str, specs: &[ImageSpec]) -> OciLayout {
        assert!(!specs.is_empty());
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let images: Vec<BuiltImage> = specs.iter().map(|spec| write_image(&blobs, spec)).collect();
        let top = if let [image] = images.as_slice() {
            image.manifest.clone()
        } else {
            let manifests: Vec<Value> = images
                .iter()
                .map(|i| {
                    json!({"mediaType": MANIFEST, "digest": i.manifest.digest, "size": i.manifest.size,
                           "platform": i.platform.json()})
                })
                .collect();
            let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
            write_blob(&blobs, INDEX, &serde_json::to_vec(&index).unwrap())
        };
        let layout_index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": top.media_type, "digest": top.digest, "size": top.size,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]});
        fs::write(dir.join("index.json"), serde_json::to_vec(&layout_index).unwrap()).unwrap();
        OciLayout {
            dir: dir.to_owned(),
            tag: tag.to_owned(),
            top,
            images,
        }
    }

    /// The digest a registry serves for the tag.
    pub fn digest(&self) -> &str {
        &self.top.digest
    }

    /// The image of `platform`.
    pub fn image(&self, platform: &Platform) -> &BuiltImage {
        self.images
            .iter()
            .find(|i| &i.platform == platform)
            .unwrap_or_else(|| panic!("no {platform:?} image in the layout"))
    }

    /// Every blob digest of the layout: index, manifests, configs, layers.
    pub fn digests(&self) -> Vec<String> {
        let mut all = vec![self.top.digest.clone()];
        for image in &self.images {
            all.push(image.manifest.digest.clone());
            all.push(image.config.digest.clone());
            all.extend(image.layers.iter().map(|l| l.digest.clone()));
        }
        all.sort();
        all.dedup();
        all
    }
}

fn write_image(blobs: &Path, spec: &ImageSpec) -> BuiltImage {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in &spec.layers {
        let (blob, diff_id) = write_layer(blobs, layer).unwrap();
        layers.push(blob);
        diff_ids.push(diff_id);
    }
    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": spec.platform.architecture,
        "os": spec.platform.os,
        "config": {"Env": spec.env},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(v) = &spec.platform.variant {
        config["variant"] = json!(v);
    }
    let config = write_blob(blobs, CONFIG, &serde_json::to_vec(&config).unwrap());
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
        "layers": descriptors,
    });
    let manifest = write_blob(blobs, MANIFEST, &serde_json::to_vec(&manifest).unwrap());
    BuiltImage {
        manifest,
        config,
        layers,
        diff_ids,
        platform: spec.platform.clone(),
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn write_blob(blobs: &Path, media_type: &str, data: &[u8]) -> Blob {
    let hex = sha256_hex(data);
    fs::write(blobs.join(&hex), data).unwrap();
    Blob {
        digest: format!("sha256:{hex}"),
        size: data.len() as u64,
        media_type: media_type.to_owned(),
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, format!("sha256:{:x}", self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A layer's compressor over the blob file.
enum Encoder {
    Plain(Hashing<File>),
    Gzip(flate2::write::GzEncoder<Hashing<File>>),
    Zstd(zstd::Encoder<'static, Hashing<File>>),
}

impl Encoder {
    fn finish(self) -> io::Result<Hashing<File>> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// Writes a layer's blob; returns it and the `diff_id`.
fn write_layer(blobs: &Path, layer: &Layer) -> io::Result<(Blob, String)> {
    let tmp = blobs.join(format!(".layer-{}", std::process::id()));
    let out = Hashing::new(File::create(&tmp)?);
    let encoder = match layer.compression {
        Compression::None => Encoder::Plain(out),
        Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::fast())),
        Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(out, 3)?),
    };
    let mut tar = tar::Builder::new(Hashing::new(encoder));
    match &layer.source {
        LayerSource::Entries(entries) => {
            for entry in entries {
                append_entry(&mut tar, entry)?;
            }
        }
        LayerSource::Tree { root, only, except } => append_tree(&mut tar, root, only, except)?,
    }
    let (encoder, diff_id, _) = tar.into_inner()?.finish();
    let (file, digest, size) = encoder.finish()?.finish();
    file.sync_all()?;
    fs::rename(&tmp, blobs.join(digest.trim_start_matches("sha256:")))?;
    let blob = Blob {
        digest,
        size,
        media_type: layer.compression.media_type().to_owned(),
    };
    Ok((blob, diff_id))
}

/// A fixed time for entries, so that the same entries make the same blob.
const MTIME: u64 = 1_700_000_000;

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_entry<W: Write>(tar: &mut tar::Builder<W>, entry: &Entry) -> io::Result<()> {
    match entry {
        Entry::File { path, data, mode } => {
            let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
            tar.append_data(&mut h, path, data.as_slice())
        }
        Entry::Dir { path, mode } => {
            let mut h = header(tar::EntryType::Directory, *mode, 0);
            tar.append_data(&mut h, path, io::empty())
        }
        Entry::Symlink { path, target } => {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut h, path, target)
        }
        Entry::HardLink { path, target } => {
            let mut h = header(tar::EntryType::Link, 0o644, 0);
            tar.append_link(&mut h, path, target)
        }
    }
}

/// Appends a directory tree, sorted, with owners, modes and times as they
/// are, hard links as links; sockets, fifos and devices are left out.
fn append_tree<W: Write>(tar: &mut tar::Builder<W>, root: &Path, only: &[String], except: &[String]) -> io::Result<()> {
    let mut top: Vec<String> = fs::read_dir(root)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    top.retain(|name| (only.is_empty() || only.contains(name)) && !except.contains(name));
    top.sort();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack: Vec<String> = top.into_iter().rev().collect();
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        if kind.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, &rel, io::empty())?;
            if !["dev", "proc", "sys"].contains(&rel.as_str()) {
                let mut children: Vec<String> = fs::read_dir(&path)?
                    .map(|e| e.map(|e| format!("{rel}/{}", e.file_name().to_string_lossy())))
                    .collect::<io::Result<_>>()?;
                children.sort();
                stack.extend(children.into_iter().rev());
            }
        } else if kind.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, &rel, fs::read_link(&path)?)?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    tar.append_link(&mut h, &rel, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), rel.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, &rel, File::open(&path)?)?;
        } else {
            debug_assert!(kind.is_socket() || kind.is_fifo() || kind.is_char_device() || kind.is_block_device());
        }
    }
    Ok(())
}

/// Bytes of regular files under `root` (as [`Layer::tree`] would store).
pub fn tree_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// `len` bytes that do not compress (xorshift), from `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A Debian root filesystem as an image's layers: `usr`; `var` and `etc`;
/// the rest; and, when the tree is smaller than `at_least` bytes, a layer
/// with one incompressible file `opt/hm-padding` making up the difference.
pub fn debian_layers(rootfs: &Path, at_least: u64) -> Vec<Layer> {
    let mut layers = vec![
        Layer::tree_parts(rootfs, &["usr"], &[]),
        Layer::tree_parts(rootfs, &["var", "etc"], &[]),
        Layer::tree_parts(rootfs, &[], &["usr", "var", "etc"]),
    ];
    let size = tree_size(rootfs);
    if size < at_least {
        let padding = noise((at_least - size) as usize, 0x9e37_79b9_7f4a_7c15);
        layers.push(Layer::entries(vec![file_mode("opt/hm-padding", padding, 0o600)]));
    }
    layers
}

/// Pushes the layout's tag to `registry` as `name_tag` (blobs, then each
/// manifest, then the tag), with the registry's own credentials if it has
/// some; returns the digest the registry now serves, which is the layout's.
///
/// Not `skopeo copy`: it compresses plain tar layers on the way, and
/// swaps layers for variants recorded in the machine's blob-info cache
/// (`/var/lib/containers/cache` for root, shared by every test), so what it
/// pushes is not always what the layout holds.
pub fn push(layout: &OciLayout, registry: &Registry, name_tag: &str) -> String {
    let (repo, tag) = name_tag.rsplit_once(':').expect("NAME:TAG");
    let blobs = layout.dir.join("blobs/sha256");
    let read = |digest: &str| fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap();
    for image in &layout.images {
        let mut uploaded: Vec<&str> = Vec::new();
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            if !uploaded.contains(&blob.digest.as_str()) {
                registry.upload_blob(repo, &blob.digest, &read(&blob.digest));
                uploaded.push(&blob.digest);
            }
        }
        if layout.images.len() > 1 {
            let digest = &image.manifest.digest;
            registry.put_manifest(repo, digest, MANIFEST, &read(digest));
        }
    }
    let digest = registry.put_manifest(repo, tag, &layout.top.media_type, &read(&layout.top.digest));
    assert_eq!(digest, layout.digest(), "the registry serves another digest");
    digest
}

impl Registry {
    /// The `Authorization` header of the registry's own credentials.
    fn authorization(&self) -> Vec<(&'static str, String)> {
        match &self.creds {
            Some((user, pass)) => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                vec![("Authorization", format!("Basic {token}"))]
            }
            None => Vec::new(),
        }
    }

    /// A monolithic upload of one blob, unless the repository has it.
    fn upload_blob(&self, repo: &str, digest: &str, data: &[u8]) {
        let auth = self.authorization();
        let head = |extra: &[(&'static str, &'static str)]| {
            let mut headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
            headers.extend_from_slice(extra);
            headers
        };
        let exists = http_send(
            self.addr(),
            "HEAD",
            &format!("/v2/{repo}/blobs/{digest}"),
            &head(&[]),
            &[],
        )
        .unwrap();
        if exists.status == 200 {
            return;
        }
        let start = http_send(
            self.addr(),
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &head(&[]),
            &[],
        )
        .unwrap();
        assert_eq!(start.status, 202, "upload of {digest}: {}", start.head);
        let location = start.header("location").expect("an upload location");
        // The registry answers with an absolute URL; the path is what we send.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
            None => location,
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let put = http_send(
            self.addr(),
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &head(&[("Content-Type", "application/octet-stream")]),
            data,
        )
        .unwrap();
        assert_eq!(
            put.status,
            201,
            "upload of {digest}: {}\n{}",
            put.head,
            String::from_utf8_lossy(&put.body)
        );
    }

    /// Puts a manifest or index under `reference`; returns its digest.
    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, data: &[u8]) -> String {
        let auth = self.authorization();
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(("Content-Type", media_type));
        let path = format!("/v2/{repo}/manifests/{reference}");
        let put = http_send(self.addr(), "PUT", &path, &headers, data).unwrap();
        assert_eq!(
            put.status,
            201,
            "manifest {repo}:{reference}: {}\n{}",
            put.head,
            String::from_utf8_lossy(&put.body)
        );
        put.header("docker-content-digest").expect("Docker-Content-Digest")
    }
}

// ---------------------------------------------------------------------------
// Docker client configuration.

/// `{"auths": {HOST: {"auth": base64(USER:PASS)}}}`.
pub fn auths(host: &str, user: &str, pass: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    json!({"auths": {host: {"auth": auth}}})
}

/// Writes `config` as `DIR/config.json` (DIR created); returns DIR, for
/// `DOCKER_CONFIG`.
pub fn docker_config(dir: &Path, config: &Value) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    dir.to_owned()
}

/// Writes `docker-credential-NAME` into `bin` (created): for `get` it
/// answers `user`/`pass` for `server` and "not found" for any other; each
/// call appends `ACTION SERVER` to `bin/NAME.log`. Returns `bin`, to put
/// first on `PATH`.
pub fn credential_helper(bin: &Path, name: &str, server: &str, user: &str, pass: &str) -> PathBuf {
    fs::create_dir_all(bin).unwrap();
    let log = bin.join(format!("{name}.log"));
    let script = format!(
        "#!/bin/sh\nread -r server\necho \"$1 $server\" >> '{log}'\n\
         if [ \"$1\" = get ] && [ \"$server\" = '{server}' ]; then\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{pass}\"}}\\n' \"$server\"\n\
         exit 0\nfi\necho 'credentials not found in native keychain'\nexit 1\n",
        log = log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    bin.to_owned()
}

/// `PATH` with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

// ---------------------------------------------------------------------------
// A tiny HTTP client and a proxy that fails on purpose.

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request with `Connection: close`, the response read to EOF.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    http_send(addr, method, path, headers, &[])
}

/// [`http_request`] with a body (`Content-Length` set when it is not empty
/// or the method is `PUT` or `POST`).
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        request += &format!("Content-Length: {}\r\n", body.len());
    }
    request += "\r\n";
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Response {
        status,
        head,
        body: raw[end + 4..].to_vec(),
    })
}

/// What a [`FaultProxy`] does to the requests it forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// Send the headers and half the body of blob `DIGEST`, then close.
    CutBlob(String),
    /// Send blob `DIGEST` with one byte changed (same length).
    CorruptBlob(String),
    /// Answer every request `500 Internal Server Error`.
    ServerError,
}

/// An HTTP proxy on a loopback port in front of a registry, one request per
/// connection (`Connection: close`), with a [`Fault`] that can be changed
/// while it runs. Stopped on drop.
pub struct FaultProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: &Registry, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(fault));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.addr();
        let thread = {
            let (fault, requests, stop) = (fault.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (fault, requests) = (fault.clone(), requests.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, upstream, &fault, &requests);
                    });
                }
            })
        };
        FaultProxy {
            port,
            fault,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, as a reference names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// `METHOD PATH` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one request of a [`FaultProxy`] connection.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    fault: &Mutex<Fault>,
    requests: &Mutex<Vec<String>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let request_line = head.first().cloned().unwrap_or_default();
    let mut words = request_line.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or("").to_owned(),
        words.next().unwrap_or("").to_owned(),
    );
    requests.lock().unwrap().push(format!("{method} {path}"));
    let mut client = client;
    let fault = fault.lock().unwrap().clone();
    if fault == Fault::ServerError {
        let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#;
        write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }

    let mut forward = head.concat();
    forward += "Connection: close\r\n\r\n";
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(forward.as_bytes())?;
    up.write_all(&body)?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw)?;

    let targeted = |digest: &str| method == "GET" && path.contains("/blobs/") && path.ends_with(digest);
    let Some(response) = parse_response(&raw) else {
        return client.write_all(&raw);
    };
    let head_len = raw.len() - response.body.len();
    match &fault {
        Fault::CutBlob(digest) if targeted(digest) && response.status == 200 => {
            client.write_all(&raw[..head_len + response.body.len() / 2])?;
            client.flush()?;
            client.shutdown(std::net::Shutdown::Both)
        }
        Fault::CorruptBlob(digest) if targeted(digest) && response.status == 200 => {
            let mut raw = raw;
            let middle = head_len + response.body.len() / 2;
            raw[middle] ^= 0xff;
            client.write_all(&raw)
        }
        _ => client.write_all(&raw),
    }
}
