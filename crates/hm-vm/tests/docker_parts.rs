//! The docker backend's parts as files (what `hm cache save` and `hm cache
//! restore` carry between machines): a stored image exported, removed
//! from the daemon and imported is the same image, with the same id and
//! the same files; a damaged file, or a missing base image, is refused
//! and leaves nothing tagged. Needs a Docker daemon with the test image
//! (`.ci/run` starts one): skipped without one, a failure in CI.

#[path = "../../hm/tests/util/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hm_vm::{
    BootFrom, BootRequest, DockerBackend, DockerConfig, DockerDaemon, ExecOutcome, ExecRequest, StoredSnapshot,
    Successors, Vm, VmBackend,
};

/// The image docker tests run on (see `crates/hm/tests/util`).
fn test_image() -> String {
    std::env::var("HM_TEST_DOCKER_IMAGE").unwrap_or_else(|_| "hm-test/bookworm".to_owned())
}

/// `docker ARGS`: its output, or why it failed.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

fn available() -> bool {
    match docker(&["image", "inspect", &test_image()]) {
        Ok(_) => true,
        Err(reason) => {
            skip::skip(&format!("no Docker daemon with `{}` ({reason})", test_image()));
            false
        }
    }
}

/// Runs `script` in a container of the test image and commits it as
/// `tag`, as a user would, outside `hm`.
fn commit_outside_hm(script: &str, tag: &str) {
    let name = format!("hm-test-parts-{}", unique());
    let ran = [
        "run",
        "--name",
        &name,
        "--network",
        "none",
        &test_image(),
        "sh",
        "-c",
        script,
    ];
    docker(&ran).unwrap();
    let committed = docker(&["commit", &name, tag]);
    let _ = docker(&["rm", "-f", &name]);
    committed.unwrap();
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// An image of the test's own to build on (the test image and one file),
/// so that removing it touches no other test; with what the test made on
/// it, removed when dropped.
struct Fixture {
    base: String,
    base_id: String,
    cache: tempfile::TempDir,
    files: tempfile::TempDir,
    backend: DockerBackend,
}

impl Fixture {
    async fn new(orphan_grace: Duration) -> Self {
        let base = format!("hm-test-parts/base:{}", unique());
        commit_outside_hm("echo base > /base-marker", &base);
        let base_id = docker(&["image", "inspect", "--format", "{{.Id}}", &base]).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let backend = DockerBackend::new(config(cache.path(), orphan_grace));
        backend.check().await.unwrap();
        Fixture {
            base,
            base_id,
            cache,
            files: tempfile::tempdir().unwrap(),
            backend,
        }
    }

    fn blob(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn cache_repo(&self) -> String {
        DockerBackend::cache_repository(self.cache.path())
    }

    /// `repo:tag` of every image tagged as this cache's.
    fn cache_tags(&self) -> Vec<String> {
        let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &self.cache_repo()]).unwrap();
        listed.lines().map(str::to_owned).collect()
    }

    /// Two steps on the base image, each committed, the second stored:
    /// its entry and its size.
    async fn stored(&self) -> (StoredSnapshot, u64) {
        let image = self.backend.resolve_image(&self.base).await.unwrap();
        assert_eq!(image.id, self.base_id);
        let mut vm = self.boot(BootFrom::Image(image)).await;
        run(&mut vm, "echo one > /one; mkdir -p /opt/x; echo b > /opt/x/b").await;
        let first = vm.commit(Successors::Many).await.unwrap();
        let mut vm = self.boot(BootFrom::Snapshot(first.clone())).await;
        run(&mut vm, "echo two > /two; rm /base-marker").await;
        let second = vm.commit(Successors::Many).await.unwrap();
        let persisted = self.backend.persist(&second).await.unwrap();
        self.backend.release(&first).await.unwrap();
        self.backend.release(&second).await.unwrap();
        let size = persisted.new_parts[0].1;
        (persisted.stored, size)
    }

    async fn boot(&self, from: BootFrom) -> Box<dyn Vm> {
        let request = BootRequest {
            from,
            name: "step".to_owned(),
            source_layer: None,
        };
        self.backend.boot(request).await.unwrap()
    }

    /// Removes the part's image from the daemon (the cache's tag, and with
    /// it the image and the untagged ones under it).
    async fn forget(&self, part: &str) {
        self.backend.delete_parts(&[part.to_owned()]).await.unwrap();
        assert!(docker(&["image", "inspect", part]).is_err(), "{part} is still there");
    }
}

/// The backend's settings for the cache directory `cache`.
fn config(cache: &Path, orphan_grace: Duration) -> DockerConfig {
    DockerConfig {
        cache_dir: cache.to_owned(),
        project: "parts".to_owned(),
        daemon: DockerDaemon {
            host: std::env::var("DOCKER_HOST").ok(),
            ..DockerDaemon::default()
        },
        orphan_grace,
        client_config: None,
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let label = format!("label=dev.hm.cache={}", self.cache.path().display());
        if let Ok(containers) = docker(&["ps", "-aq", "--filter", &label]) {
            for id in containers.lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        for tag in self.cache_tags() {
            let _ = docker(&["rmi", &tag]);
        }
        let _ = docker(&["rmi", &self.base]);
    }
}

/// Runs `cmd` in `vm`; its output.
async fn run(vm: &mut Box<dyn Vm>, cmd: &str) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let output = tokio::spawn(async move {
        let mut text = String::new();
        while let Some(line) = rx.recv().await {
            let line: hm_vm::LogLine = line;
            text.push_str(&line.text());
            if line.eol {
                text.push('\n');
            }
        }
        text
    });
    let request = ExecRequest {
        cmd: cmd.to_owned(),
        env: Vec::new(),
        cwd: "/".into(),
        limits: Default::default(),
        volumes: Vec::new(),
    };
    let outcome = vm.exec(request, tx, Box::pin(std::future::pending())).await.unwrap();
    let text = output.await.unwrap();
    assert_eq!(outcome, ExecOutcome::Exited(0), "{cmd}: {text}");
    text
}

/// The names in the tar archive `path`.
fn entries(path: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// An error and its causes, as the CLI prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_leaves_as_one_file_and_comes_back_as_the_same_image() {
    if !available() {
        return;
    }
    let grace = Duration::from_secs(3);
    let fx = Fixture::new(grace).await;
    let (stored, size) = fx.stored().await;
    let part = stored.parts[0].clone();
    let blob = fx.blob("part");
    let started = Instant::now();
    assert!(fx.backend.export_part(&part, &blob).await.unwrap());
    let exported = started.elapsed();
    // The two steps' layers travel; the base image's two do not.
    let names = entries(&blob);
    assert_eq!(names.iter().filter(|n| n.ends_with(".tar")).count(), 2, "{names:?}");
    let bytes = std::fs::metadata(&blob).unwrap().len();
    assert!(bytes < 1 << 20, "{bytes} bytes");

    fx.forget(&part).await;
    // Committed longer ago than the grace: an orphan by its creation time.
    tokio::time::sleep(grace + Duration::from_secs(1)).await;
    let started = Instant::now();
    assert_eq!(fx.backend.import_part(&part, &blob).await.unwrap(), size);
    let imported = started.elapsed();
    // Not collected while it was just imported (its entry is registered
    // next).
    fx.backend.collect_orphans(&Default::default()).await.unwrap();
    assert_eq!(fx.cache_tags().len(), 1, "an imported part was collected at once");
    eprintln!(
        "a part of 2 small layers on a Debian base: {bytes} bytes, exported in {exported:?}, imported in {imported:?}"
    );
    assert_eq!(
        fx.cache_tags(),
        [format!("{}:{}", fx.cache_repo(), &part["sha256:".len()..])]
    );
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &fx.cache_tags()[0]]).unwrap();
    assert_eq!(id, part);
    let labels = docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"dev.hm.base\"}}",
        &part,
    ])
    .unwrap();
    assert_eq!(labels, fx.base_id);

    // A container booted from it sees the steps' files, and not the one
    // the second step deleted.
    let snapshot = fx.backend.restore(&stored).await.unwrap();
    let mut vm = fx.boot(BootFrom::Snapshot(snapshot)).await;
    let seen = run(
        &mut vm,
        "cat /one /two /opt/x/b; test -e /base-marker || echo no marker",
    )
    .await;
    assert_eq!(seen, "one\ntwo\nb\nno marker\n");
    vm.destroy().await.unwrap();

    // Again: it is there already.
    assert_eq!(fx.backend.import_part(&part, &blob).await.unwrap(), size);
    assert_eq!(fx.cache_tags().len(), 1);

    // A backend nothing checked first (as the cache commands use it)
    // reaches the daemon itself; the same image gives the same bytes.
    let unchecked = DockerBackend::new(config(fx.cache.path(), grace));
    assert_eq!(unchecked.import_part(&part, &blob).await.unwrap(), size);
    let again = fx.blob("again");
    assert!(unchecked.export_part(&part, &again).await.unwrap());
    assert!(std::fs::read(&again).unwrap() == std::fs::read(&blob).unwrap());

    // Collected as orphans are once the grace is over (`hm cache clean`).
    tokio::time::sleep(grace + Duration::from_secs(1)).await;
    fx.backend.collect_orphans(&Default::default()).await.unwrap();
    assert_eq!(fx.cache_tags(), Vec::<String>::new());
    fx.backend.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_is_refused_and_leaves_nothing_tagged() {
    if !available() {
        return;
    }
    let fx = Fixture::new(hm_vm::DEFAULT_ORPHAN_GRACE).await;
    let (stored, size) = fx.stored().await;
    let part = stored.parts[0].clone();
    let blob = fx.blob("part");
    assert!(fx.backend.export_part(&part, &blob).await.unwrap());
    fx.forget(&part).await;

    let good = std::fs::read(&blob).unwrap();
    let mut archive = tar::Archive::new(&good[..]);
    let mut places = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let (header, data) = (entry.raw_header_position() as usize, entry.raw_file_position() as usize);
        places.push((format!("the header of {name}"), header + 124));
        places.push((format!("the data of {name}"), data + entry.size() as usize / 2));
    }
    places.push(("the end".to_owned(), good.len() - 1));
    let damaged = fx.blob("damaged");
    for (what, at) in places {
        let mut bytes = good.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&damaged, &bytes).unwrap();
        let err = fx.backend.import_part(&part, &damaged).await.unwrap_err();
        let text = chain(&err);
        assert!(text.contains("damaged"), "{what}: {text}");
        assert!(text.contains(&damaged.display().to_string()), "{what}: {text}");
        assert_eq!(fx.cache_tags(), Vec::<String>::new(), "{what}");
        assert!(
            docker(&["image", "inspect", &part]).is_err(),
            "{what}: the image was loaded"
        );
    }
    // The file of another part.
    let other = format!("sha256:{}", "0".repeat(64));
    let err = fx.backend.import_part(&other, &blob).await.unwrap_err();
    assert!(chain(&err).contains(&format!("not `{other}`")), "{}", chain(&err));
    assert_eq!(fx.cache_tags(), Vec::<String>::new());

    assert_eq!(fx.backend.import_part(&part, &blob).await.unwrap(), size);
    fx.backend.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_base_image_is_named() {
    if !available() {
        return;
    }
    let fx = Fixture::new(hm_vm::DEFAULT_ORPHAN_GRACE).await;
    let (stored, _) = fx.stored().await;
    let part = stored.parts[0].clone();
    let blob = fx.blob("part");
    assert!(fx.backend.export_part(&part, &blob).await.unwrap());
    fx.forget(&part).await;
    docker(&["rmi", &fx.base]).unwrap();

    let err = fx.backend.import_part(&part, &blob).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains(&format!(
            "the base image `{}` (`{}`) is not in the Docker daemon; pull it first",
            fx.base_id, fx.base
        )),
        "{text}"
    );
    assert_eq!(fx.cache_tags(), Vec::<String>::new());
    assert!(docker(&["image", "inspect", &part]).is_err());
    fx.backend.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_of_no_known_base_travels_whole() {
    if !available() {
        return;
    }
    // Committed outside `hm`: no label names its base, so every layer
    // goes (the test image's too) and it loads whatever the daemon has.
    let fx = Fixture::new(hm_vm::DEFAULT_ORPHAN_GRACE).await;
    let tag = format!("hm-test-parts/whole:{}", unique());
    commit_outside_hm("echo whole > /whole", &tag);
    let part = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]).unwrap();
    let layers = docker(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", &tag]).unwrap();
    let blob = fx.blob("part");
    let started = Instant::now();
    assert!(fx.backend.export_part(&part, &blob).await.unwrap());
    let exported = started.elapsed();
    let names = entries(&blob);
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".tar")).count().to_string(),
        layers,
        "{names:?}"
    );
    docker(&["rmi", &tag]).unwrap();
    let started = Instant::now();
    let size = fx.backend.import_part(&part, &blob).await.unwrap();
    let bytes = std::fs::metadata(&blob).unwrap().len();
    eprintln!(
        "a whole image: {bytes} bytes, exported in {exported:?}, imported in {:?}",
        started.elapsed()
    );
    assert!(size > 0);
    assert_eq!(fx.cache_tags().len(), 1);
    let seen = docker(&["run", "--rm", "--network", "none", &part, "cat", "/whole"]).unwrap();
    assert_eq!(seen, "whole");
    fx.backend.shutdown().await.unwrap();
}
