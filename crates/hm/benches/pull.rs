//! Pull speed: `hm image pull` of a ~200 MB multi-layer image from a
//! loopback registry into an empty cache, against `skopeo copy` of the same
//! image to a directory, alternating. Prints a Markdown table (median
//! seconds of each, and their ratio; the target is hm at most 1.5x skopeo).
//!
//! Needs `docker-registry`, `skopeo` and a Debian root filesystem
//! (`HM_TEST_DEBIAN_ROOTFS`, as `.ci/run` makes it). `cargo bench -p hm
//! --bench pull`; `HM_BENCH_RUNS` (default 3), `HM_BENCH_PULL_MB` (default
//! 200).

mod common;
#[path = "../tests/util/registry.rs"]
mod registry;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{env_usize, median};
use registry::{debian_layers, push, tools_missing, ImageSpec, OciLayout, Registry, RegistryOptions};

fn main() {
    let runs = env_usize("HM_BENCH_RUNS", 3).max(1);
    let megabytes = env_usize("HM_BENCH_PULL_MB", 200) as u64;
    if let Some(reason) = tools_missing() {
        println!("\nimage pull: n/a ({reason})");
        return;
    }
    if Command::new("skopeo").arg("--version").output().is_err() {
        println!("\nimage pull: n/a (no skopeo to compare with)");
        return;
    }
    let rootfs =
        PathBuf::from(std::env::var("HM_TEST_DEBIAN_ROOTFS").unwrap_or_else(|_| "/var/tmp/hm-ci/bookworm".to_owned()));
    if !rootfs.join("usr/bin/apt-get").exists() {
        println!("\nimage pull: n/a (no Debian root filesystem; set HM_TEST_DEBIAN_ROOTFS)");
        return;
    }
    let help = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["image", "pull", "--help"])
        .output()
        .unwrap();
    if !help.status.success() {
        println!("\nimage pull: n/a (this hm has no `image pull`)");
        return;
    }

    let root = tempfile::Builder::new().prefix("hm-bench-pull-").tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let started = Instant::now();
    let spec = ImageSpec::new(debian_layers(&rootfs, megabytes * 1_000_000));
    let layout = OciLayout::write(&root.path().join("layout"), "bench", &[spec]);
    push(&layout, &registry, "bench/debian:1");
    let reference = registry.reference("bench/debian:1");
    let image = &layout.images[0];
    let compressed: u64 = image.layers.iter().map(|l| l.size).sum();
    eprintln!(
        "built and pushed {reference} ({} layers, {:.1} MB compressed) in {:.1} s",
        image.layers.len(),
        compressed as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut hm = Vec::new();
    let mut skopeo = Vec::new();
    let mut unpacked = Vec::new();
    let mut floor = Vec::new();
    let mut entries = 0;
    for i in 0..runs {
        let (elapsed, count) = hm_pull(root.path(), i, &reference);
        hm.push(elapsed);
        entries = count;
        skopeo.push(skopeo_copy(root.path(), i, &reference, false));
        unpacked.push(skopeo_copy(root.path(), i, &reference, true));
        floor.push(create_empty(root.path(), i, entries));
    }
    let (hm, skopeo, unpacked, floor) = (median(hm), median(skopeo), median(unpacked), median(floor));
    println!(
        "\nimage pull, {} layers, {:.1} MB compressed, loopback registry (median of {runs})\n",
        image.layers.len(),
        compressed as f64 / 1e6
    );
    println!("| measurement | median | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| `hm image pull` into an empty cache (download, verify, unpack) | {} | {:.2}x |",
        secs(hm),
        ratio(hm, skopeo)
    );
    println!(
        "| `skopeo copy docker://... dir:` (download, verify) | {} | 1.00x |",
        secs(skopeo)
    );
    println!(
        "| the same, then `tar -xf` of each layer (download, verify, unpack; no whiteouts) | {} | {:.2}x |",
        secs(unpacked),
        ratio(unpacked, skopeo)
    );
    println!(
        "| creating {entries} empty files and directories there, one thread (what any unpacking pull creates) | {} | {:.2}x |",
        secs(floor),
        ratio(floor, skopeo)
    );
    println!("\ntarget: hm at most 1.50x skopeo");
}

/// Creates `entries` empty files, 100 to a directory, in a new directory
/// under `root` (on the cache's filesystem), and removes them.
fn create_empty(root: &Path, i: usize, entries: usize) -> Duration {
    let dir = root.join(format!("empty-{i}"));
    let started = Instant::now();
    std::fs::create_dir(&dir).unwrap();
    let mut made = 0;
    for d in 0.. {
        if made >= entries {
            break;
        }
        let sub = dir.join(d.to_string());
        std::fs::create_dir(&sub).unwrap();
        made += 1;
        for f in 0..100.min(entries - made) {
            std::fs::File::create(sub.join(f.to_string())).unwrap();
            made += 1;
        }
    }
    let elapsed = started.elapsed();
    remove(&dir);
    elapsed
}

/// How many files, directories and links are under `dir`.
fn count_entries(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            count += 1;
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    count
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// One `hm image pull` into a new cache directory; how long it took and
/// how many entries the cache then held.
fn hm_pull(root: &Path, i: usize, reference: &str) -> (Duration, usize) {
    let cache = root.join(format!("cache-{i}"));
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hm"))
        .args(["image", "pull", reference])
        .env("HM_CACHE_DIR", &cache)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", &home)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "hm image pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = count_entries(&cache);
    remove(&cache);
    (elapsed, entries)
}

/// One `skopeo copy` of the image to a new directory, and with `unpack`
/// each layer extracted with `tar` on top of the one before.
fn skopeo_copy(root: &Path, i: usize, reference: &str, unpack: bool) -> Duration {
    let dest = root.join(format!("skopeo-{i}"));
    let started = Instant::now();
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if unpack {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
        let rootfs = dest.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let hex = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let status = Command::new("tar")
                .arg("-xf")
                .arg(dest.join(hex))
                .arg("-C")
                .arg(&rootfs)
                .status()
                .unwrap();
            assert!(status.success(), "tar -xf of layer {hex}");
        }
    }
    let elapsed = started.elapsed();
    remove(&dest);
    elapsed
}

/// Removes a tree that may hold read-only directories (an unpacked image).
fn remove(path: &Path) {
    let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(path).status();
    std::fs::remove_dir_all(path).unwrap();
}
