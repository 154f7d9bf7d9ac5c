//! Images pulled from OCI registries: a real `docker-registry` on loopback,
//! images written here and pushed with `skopeo`, pulled by `hm image pull`
//! and by `hm run`, and used by steps (layers, whiteouts, platforms,
//! credentials, mirrors, insecure registries, faults, re-pushed tags,
//! concurrent pulls, a Debian image as an unprivileged user).

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use util::registry::{
    auths, credential_helper, dead_host, debian_layers, dir, dir_mode, docker_config, file, file_mode, hardlink,
    http_request, noise, non_loopback_ip, opaque, path_with, push, sha256_hex, symlink, whiteout, Compression, Fault,
    FaultProxy, ImageSpec, Layer, OciLayout, Platform, Registry, RegistryOptions,
};
use util::{envelope, registry_available, sandbox_available, skip, step, tiny_rootfs, Fixture, Run};

use util::NOBODY as UID;

/// What steps on the test images need.
const TOOLS: &[&str] = &[
    "/bin/sh",
    "/bin/cat",
    "/usr/bin/find",
    "/usr/bin/stat",
    "/usr/bin/readlink",
];

fn registry_and_sandbox() -> bool {
    registry_available() && sandbox_available()
}

/// The fixture's private home: `HOME`, `XDG_CONFIG_HOME` and
/// `DOCKER_CONFIG` point into it, so no configuration of the machine's
/// user reaches `hm`.
fn home(fx: &Fixture) -> PathBuf {
    let home = fx.dir.path().join("home");
    fs::create_dir_all(home.join(".docker")).unwrap();
    home
}

/// `hm ARGS` in the fixture with a private home and `env` on top.
fn hm(fx: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = home(fx);
    let mut command = fx.command(args);
    command
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("HM_INSECURE_REGISTRIES")
        .env_remove("HM_PULL");
    command.envs(env.iter().copied());
    command.output().unwrap()
}

/// `hm run --format json ARGS` in the fixture with a private home.
fn hm_run(fx: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec!["run", "--format", "json"];
    all.extend_from_slice(args);
    Run::from(hm(fx, &all, env))
}

/// `hm ARGS` as the unprivileged user (when root; as ourselves otherwise),
/// the fixture's directory handed to that user first.
fn hm_as_user(fx: &Fixture, args: &[&str]) -> Output {
    let home = home(fx);
    let mut command = util::hm_as_nobody(fx);
    command
        .args(args)
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("HM_INSECURE_REGISTRIES")
        .env_remove("HM_PULL")
        .env_remove("HM_BACKEND")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a pull succeeded and printed `REFERENCE DIGEST`.
fn assert_pulled(out: &Output, reference: &str, digest: &str) {
    assert_eq!(out.status.code(), Some(0), "pull of {reference}: {}", stderr(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim_end(),
        format!("{reference} {digest}"),
        "stderr: {}",
        stderr(out)
    );
}

/// Asserts a pull failed with exit 4, naming `reference` and each of
/// `names` (case-insensitively: any one of each group).
fn assert_pull_failed(out: &Output, reference: &str, names: &[&[&str]]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(4), "pull of {reference}: {err}");
    assert!(
        err.contains(reference),
        "the message names the image `{reference}`: {err}"
    );
    let lower = err.to_lowercase();
    for group in names {
        assert!(
            group.iter().any(|n| lower.contains(&n.to_lowercase())),
            "the message mentions one of {group:?}: {err}"
        );
    }
}

/// `hm image ls --format json` in the fixture.
fn images(fx: &Fixture) -> Vec<Value> {
    let out = hm(fx, &["image", "ls", "--format", "json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn image<'a>(listing: &'a [Value], name: &str) -> Option<&'a Value> {
    listing.iter().find(|i| i["name"] == name)
}

/// Whether `path` is a lock file (empty, named `*.lock`): a pull's lock
/// may stay behind; it holds no content.
fn is_lock(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".lock"))
        && fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

/// The blobs stored in the cache: every file under `blobs/` but locks must
/// be `blobs/sha256/<hex>` holding exactly what hashes to `<hex>` (nothing
/// half-written, nothing unverified). Returns their digests, sorted.
fn stored_blobs(cache: &Path) -> Vec<String> {
    let root = cache.join("blobs");
    let mut digests = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                assert_eq!(path, root.join("sha256"), "an unexpected directory in the blob store");
                stack.push(path);
                continue;
            }
            if is_lock(&path) {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let hex = rel
                .strip_prefix("sha256/")
                .unwrap_or_else(|| panic!("a stray file in the blob store: {rel}"));
            assert!(meta.is_file(), "not a regular file in the blob store: {rel}");
            let data = fs::read(&path).unwrap();
            assert_eq!(
                sha256_hex(&data),
                hex,
                "blob `{rel}` does not hold its digest's content"
            );
            digests.push(format!("sha256:{hex}"));
        }
    }
    digests.sort();
    digests
}

/// The entries of the cache's `images/` directory (hidden ones too), but
/// locks.
fn image_dirs(cache: &Path) -> Vec<String> {
    fs::read_dir(cache.join("images"))
        .map(|d| {
            d.flatten()
                .filter(|e| !is_lock(&e.path()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A layer with the host programs steps need (`TOOLS`), under `dir/base`.
fn base_layer(dir: &Path) -> Layer {
    let root = dir.join("base");
    if !root.exists() {
        tiny_rootfs(&root, TOOLS);
    }
    Layer::tree(&root)
}

/// A small image: the base layer and a gzip'd layer with `/version`.
fn versioned(dir: &Path, version: &str) -> OciLayout {
    let spec = ImageSpec::new(vec![
        base_layer(dir),
        Layer::entries(vec![file("version", format!("{version}\n"))]),
    ]);
    OciLayout::write(&dir.join(format!("layout-{version}")), "t", &[spec])
}

/// A fixture whose pipeline is one step `key` running `cmd` on `image`.
fn one_step(key: &str, cmd: &str, image: &str) -> Fixture {
    let s = step(key, cmd).image(Some(image)).cache(json!({"policy": "forever"}));
    Fixture::with(&envelope("pull", &[s], &[], None))
}

#[test]
fn the_harness_serves_pushed_images_and_injects_faults() {
    if !registry_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let specs = [
        Platform::new("linux", "amd64", None),
        Platform::new("linux", "arm64", Some("v8")),
    ]
    .map(|p| {
        let arch = p.architecture.clone();
        ImageSpec::new(vec![
            Layer::entries(vec![dir("etc"), file("etc/arch", arch)]),
            Layer::entries(vec![file("big", noise(300_000, 7))]).compressed(Compression::Zstd),
        ])
        .platform(p)
    });
    let layout = OciLayout::write(&work.path().join("layout"), "t", &specs);
    let digest = push(&layout, &registry, "demo:1");
    assert_eq!(registry.manifest_digest("demo", "1").as_deref(), Some(digest.as_str()));

    let layer = layout.images[0].layers[1].digest.clone();
    let path = format!("/v2/demo/blobs/{layer}");
    let proxy = FaultProxy::start(&registry, Fault::None);
    let addr: std::net::SocketAddr = proxy.host().parse().unwrap();
    let whole = http_request(addr, "GET", &path, &[]).unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&whole.body)), layer);
    proxy.set_fault(Fault::CutBlob(layer.clone()));
    let cut = http_request(addr, "GET", &path, &[]).unwrap();
    assert_eq!(cut.body.len(), whole.body.len() / 2);
    proxy.set_fault(Fault::CorruptBlob(layer.clone()));
    let corrupt = http_request(addr, "GET", &path, &[]).unwrap();
    assert_eq!(corrupt.body.len(), whole.body.len());
    assert_ne!(corrupt.body, whole.body);
    proxy.set_fault(Fault::ServerError);
    assert_eq!(http_request(addr, "GET", "/v2/", &[]).unwrap().status, 500);
    assert_eq!(proxy.requests().len(), 4);

    let private = Registry::start(&RegistryOptions::auth("hm", "secret"));
    let refused = http_request(private.addr(), "GET", "/v2/", &[]).unwrap();
    assert_eq!(refused.status, 401);
    assert!(
        refused.head.to_lowercase().contains("www-authenticate: basic"),
        "{}",
        refused.head
    );
    push(&layout, &private, "demo:1");
    assert_eq!(private.manifest_digest("demo", "1").as_deref(), Some(digest.as_str()));

    let mirror = Registry::start(&RegistryOptions::mirror_of(&registry.url()));
    assert_eq!(mirror.manifest_digest("demo", "1").as_deref(), Some(digest.as_str()));
}

/// The step that shows what the layered image holds.
const INSPECT: &str = "find /data -mindepth 1; echo --; \
    stat -c '%n %F %a %h' /data/exec.sh /data/readonly /data/h1 /data/h2 /data/link /data/becomes-file; \
    stat -c '%n %F %a' /data/private /data/becomes-dir; echo --; \
    readlink /data/link /data/abs-link; \
    cat /data/keep.txt /data/link /data/abs-link /data/opq/new.txt /data/becomes-file /data/becomes-dir/y \
        /data/zstd.txt /data/added /data/private/secret; \
    /data/exec.sh; \
    [ \"$(stat -c %i /data/h1)\" = \"$(stat -c %i /data/h2)\" ] && echo same-inode; \
    echo \"greeting=$GREETING\"";

/// Four layers (gzip, gzip, plain, zstd) with changes, whiteouts and an
/// opaque directory.
fn layered_image(dir_: &Path) -> OciLayout {
    let first = Layer::entries(vec![
        dir("data"),
        file("data/keep.txt", "keep v1\n"),
        file("data/gone.txt", "gone\n"),
        dir("data/dir-gone"),
        file("data/dir-gone/inner", "inner\n"),
        dir("data/opq"),
        file("data/opq/old.txt", "old\n"),
        dir("data/opq/sub"),
        file("data/opq/sub/old2", "old2\n"),
        file_mode("data/exec.sh", "#!/bin/sh\necho ran\n", 0o755),
        file_mode("data/readonly", "ro\n", 0o444),
        dir_mode("data/private", 0o700),
        file("data/private/secret", "secret\n"),
        symlink("data/link", "keep.txt"),
        symlink("data/abs-link", "/data/keep.txt"),
        file("data/h1", "linked\n"),
        hardlink("data/h2", "data/h1"),
        file("data/becomes-dir", "a file\n"),
        dir("data/becomes-file"),
        file("data/becomes-file/x", "x\n"),
    ]);
    let second = Layer::entries(vec![
        dir("data"),
        whiteout("data/gone.txt"),
        whiteout("data/dir-gone"),
        dir("data/opq"),
        opaque("data/opq"),
        file("data/opq/new.txt", "new\n"),
        file("data/keep.txt", "keep v2\n"),
        dir("data/becomes-dir"),
        file("data/becomes-dir/y", "y\n"),
        file("data/becomes-file", "now a file\n"),
        file("data/added", "added\n"),
    ])
    .compressed(Compression::None);
    let third = Layer::entries(vec![dir("data"), file("data/zstd.txt", "zstd\n")]).compressed(Compression::Zstd);
    let spec = ImageSpec::new(vec![base_layer(dir_), first, second, third]).env("GREETING=from-config");
    OciLayout::write(&dir_.join("layout"), "t", &[spec])
}

/// The step's view of [`layered_image`].
fn assert_layered(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.dump());
    let out = run.stdout("inspect");
    let sections: Vec<&[String]> = out.split(|l| l == "--").collect();
    assert_eq!(sections.len(), 3, "{out:#?}");
    let mut listing = sections[0].to_vec();
    listing.sort();
    assert_eq!(
        listing,
        [
            "/data/abs-link",
            "/data/added",
            "/data/becomes-dir",
            "/data/becomes-dir/y",
            "/data/becomes-file",
            "/data/exec.sh",
            "/data/h1",
            "/data/h2",
            "/data/keep.txt",
            "/data/link",
            "/data/opq",
            "/data/opq/new.txt",
            "/data/private",
            "/data/private/secret",
            "/data/readonly",
            "/data/zstd.txt",
        ],
        "whiteouts and the opaque directory hide what they should, and only that"
    );
    assert_eq!(
        sections[1],
        [
            "/data/exec.sh regular file 755 1",
            "/data/readonly regular file 444 1",
            "/data/h1 regular file 644 2",
            "/data/h2 regular file 644 2",
            "/data/link symbolic link 777 1",
            "/data/becomes-file regular file 644 1",
            "/data/private directory 700",
            "/data/becomes-dir directory 755",
        ]
    );
    assert_eq!(
        sections[2],
        [
            "keep.txt",
            "/data/keep.txt",
            "keep v2",
            "keep v2",
            "keep v2",
            "new",
            "now a file",
            "y",
            "zstd",
            "added",
            "secret",
            "ran",
            "same-inode",
            "greeting=from-config",
        ]
    );
}

#[test]
fn layers_whiteouts_and_opaque_directories_apply_as_the_spec_says() {
    if !registry_and_sandbox() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let layout = layered_image(work.path());
    let digest = push(&layout, &registry, "layered:1");
    let reference = registry.reference("layered:1");
    let fx = one_step("inspect", INSPECT, &reference);

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);
    let listing = images(&fx);
    let pulled = image(&listing, &reference).unwrap_or_else(|| panic!("{reference} not listed: {listing:#?}"));
    assert_eq!(pulled["digest"], digest.as_str(), "{pulled}");
    assert!(pulled["size_bytes"].as_u64().is_some_and(|s| s > 0), "{pulled}");
    assert!(pulled["source"].is_string(), "{pulled}");
    assert!(pulled["pulled"].as_u64().is_some_and(|t| t + 5 >= before), "{pulled}");
    let ls = hm(&fx, &["image", "ls"], &[]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.lines().skip(1).any(|l| l.starts_with(&reference)), "{text}");
    let layers = &layout.images[0].layers;
    let stored = stored_blobs(&fx.cache());
    for layer in layers {
        assert!(
            stored.contains(&layer.digest),
            "layer {} not in the blob store: {stored:?}",
            layer.digest
        );
    }

    let run = hm_run(&fx, &[], &[]);
    assert_layered(&run);
    assert!(
        !run.events
            .iter()
            .any(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("image_pull"))),
        "an image that is here is not pulled again by `hm run`: {}",
        run.dump()
    );
    fx.assert_clean();

    assert!(hm(&fx, &["image", "rm", &reference], &[]).status.success());
    assert!(image(&images(&fx), &reference).is_none());
}

#[test]
fn layers_apply_for_an_unprivileged_user() {
    if !registry_and_sandbox() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let layout = layered_image(work.path());
    let digest = push(&layout, &registry, "layered:1");
    let reference = registry.reference("layered:1");
    let fx = one_step("inspect", INSPECT, &reference);
    assert_pulled(&hm_as_user(&fx, &["image", "pull", &reference]), &reference, &digest);
    let run = Run::from(hm_as_user(&fx, &["run", "--format", "json"]));
    assert_layered(&run);
    fx.assert_clean();
}

#[test]
fn the_host_platform_is_picked_from_an_index() {
    if !registry_and_sandbox() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let platforms = [
        Platform::new("linux", "amd64", None),
        Platform::new("linux", "arm64", Some("v8")),
    ];
    let host = Platform::host();
    assert!(
        platforms.contains(&host),
        "no image for this machine's platform {host:?} in the test"
    );
    let specs: Vec<ImageSpec> = platforms
        .iter()
        .map(|p| {
            ImageSpec::new(vec![
                base_layer(work.path()),
                Layer::entries(vec![file("platform", format!("{}\n", p.to_flag()))]),
            ])
            .platform(p.clone())
        })
        .collect();
    let layout = OciLayout::write(&work.path().join("layout"), "t", &specs);
    push(&layout, &registry, "multi:1");
    let reference = registry.reference("multi:1");

    let fx = one_step("show", "cat /platform", &reference);
    let out = hm(&fx, &["image", "pull", &reference], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
    let acceptable = [layout.digest(), layout.image(&host).manifest.digest.as_str()];
    assert!(
        acceptable.iter().any(|d| printed == format!("{reference} {d}")),
        "prints the index's or the platform manifest's digest: {printed}"
    );
    let run = hm_run(&fx, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.stdout("show"), [host.to_flag()]);

    let other = platforms.iter().find(|p| **p != host).unwrap();
    let fx = one_step("show", "cat /platform", &reference);
    let out = hm(&fx, &["image", "pull", &reference, "--platform", &other.to_flag()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The base layer is the host's programs, so this one runs here too.
    let run = hm_run(&fx, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.stdout("show"), [other.to_flag()]);
    let stored = stored_blobs(&fx.cache());
    let host_only = &layout.image(&host).layers[1].digest;
    assert!(
        !stored.contains(host_only),
        "the other platform's layer was not fetched"
    );
}

#[test]
fn credentials_come_from_the_docker_config() {
    if !registry_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::auth("hm", "s3cret"));
    let layout = OciLayout::write(
        &work.path().join("layout"),
        "t",
        &[ImageSpec::new(vec![Layer::entries(vec![file("secret", "x\n")])])],
    );
    let digest = push(&layout, &registry, "private:1");
    let reference = registry.reference("private:1");
    let host = registry.host();

    let fx = Fixture::new();
    let refused = hm(&fx, &["image", "pull", &reference], &[]);
    assert_pull_failed(&refused, &reference, &[&["authentication", "unauthorized"]]);
    assert!(images(&fx).is_empty());

    docker_config(&home(&fx).join(".docker"), &auths(&host, "hm", "wrong"));
    let wrong = hm(&fx, &["image", "pull", &reference], &[]);
    assert_pull_failed(&wrong, &reference, &[&["authentication", "unauthorized"]]);

    docker_config(&home(&fx).join(".docker"), &auths(&host, "hm", "s3cret"));
    assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);

    // A `credHelpers` entry for the registry, and a `credsStore`.
    for config in [
        json!({"credHelpers": {&host: "hmtest"}}),
        json!({"credsStore": "hmtest"}),
    ] {
        let fx = Fixture::new();
        let bin = credential_helper(&fx.dir.path().join("bin"), "hmtest", &host, "hm", "s3cret");
        docker_config(&home(&fx).join(".docker"), &config);
        let path = path_with(&bin);
        let out = hm(&fx, &["image", "pull", &reference], &[("PATH", &path)]);
        assert_pulled(&out, &reference, &digest);
        let calls = fs::read_to_string(bin.join("hmtest.log")).unwrap_or_default();
        assert!(
            calls.lines().any(|l| l == format!("get {host}")),
            "{config}: helper calls: {calls:?}"
        );
    }
}

#[test]
fn a_mirror_serves_a_registry_that_is_down() {
    if !registry_and_sandbox() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mirror = Registry::start(&RegistryOptions::default());
    let layout = versioned(work.path(), "mirrored");
    let digest = push(&layout, &mirror, "demo:1");
    let down = dead_host();
    let reference = format!("{down}/demo:1");

    let fx = one_step("show", "cat /version", &reference);
    let out = hm(&fx, &["image", "pull", &reference], &[]);
    assert_pull_failed(&out, &reference, &[]);

    // Tried in order: a dead mirror first, then the one that has it.
    fx.write(
        ".hm/config.toml",
        &format!(
            "[images.mirrors]\n\"{down}\" = [\"{}\", \"{}\"]\n",
            dead_host(),
            mirror.host()
        ),
    );
    assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);
    let run = hm_run(&fx, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.stdout("show"), ["mirrored"]);
    fx.assert_clean();
}

#[test]
fn a_registry_off_loopback_is_plain_http_only_when_configured() {
    if !registry_available() {
        return;
    }
    let Some(ip) = non_loopback_ip() else {
        skip("this machine has no address other than loopback");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::all_interfaces());
    let layout = OciLayout::write(
        &work.path().join("layout"),
        "t",
        &[ImageSpec::new(vec![Layer::entries(vec![file("f", "x\n")])])],
    );
    let digest = push(&layout, &registry, "demo:1");
    let host = format!("{ip}:{}", registry.port());
    let reference = format!("{host}/demo:1");

    let fx = Fixture::new();
    let refused = hm(&fx, &["image", "pull", &reference], &[]);
    assert_pull_failed(&refused, &reference, &[]);
    assert!(images(&fx).is_empty());
    assert_pulled(
        &hm(
            &fx,
            &["image", "pull", &reference],
            &[("HM_INSECURE_REGISTRIES", &host)],
        ),
        &reference,
        &digest,
    );

    let fx = Fixture::new();
    fx.write(".hm/config.toml", &format!("[images]\ninsecure = [\"{host}\"]\n"));
    assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);

    let fx = Fixture::new();
    let user_config = home(&fx).join(".config/hm/config.toml");
    fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    fs::write(&user_config, format!("[images]\ninsecure = [\"{host}\"]\n")).unwrap();
    assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);
}

#[test]
fn a_failed_pull_stores_nothing_and_names_what_failed() {
    if !registry_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let spec = ImageSpec::new(vec![
        Layer::entries(vec![file("small", "small\n")]),
        Layer::entries(vec![file("big", noise(2_000_000, 11))]),
        Layer::entries(vec![file("last", "last\n")]),
    ]);
    let layout = OciLayout::write(&work.path().join("layout"), "t", &[spec]);
    let digest = push(&layout, &registry, "faulty:1");
    let big = layout.images[0].layers[1].digest.clone();
    let proxy = FaultProxy::start(&registry, Fault::None);
    let through_proxy = format!("{}/faulty:1", proxy.host());

    // What goes wrong (`None`: the registry is down), and whether the
    // message must name the layer.
    let cases = [
        ("cut", Some(Fault::CutBlob(big.clone())), true),
        ("corrupt", Some(Fault::CorruptBlob(big.clone())), true),
        ("500", Some(Fault::ServerError), false),
        ("down", None, false),
    ];
    for (name, fault, names_layer) in cases {
        let names: &[&[&str]] = if names_layer { &[&[&big]] } else { &[] };
        let fx = Fixture::new();
        let reference = match &fault {
            Some(fault) => {
                proxy.set_fault(fault.clone());
                through_proxy.clone()
            }
            None => format!("{}/faulty:1", dead_host()),
        };
        let out = hm(&fx, &["image", "pull", &reference], &[]);
        assert_pull_failed(&out, &reference, names);
        let stored = stored_blobs(&fx.cache());
        assert!(
            !stored.contains(&big),
            "{name}: the faulty layer was stored: {stored:?}"
        );
        assert!(image(&images(&fx), &reference).is_none(), "{name}: the image is listed");
        assert_eq!(image_dirs(&fx.cache()), Vec::<String>::new(), "{name}: left in images/");
        util::assert_nothing_left(&fx.cache());

        // The same cache, the fault gone: the pull completes.
        if fault.is_some() {
            proxy.set_fault(Fault::None);
            assert_pulled(&hm(&fx, &["image", "pull", &reference], &[]), &reference, &digest);
        }
        let direct = registry.reference("faulty:1");
        assert_pulled(&hm(&fx, &["image", "pull", &direct], &[]), &direct, &digest);
        let stored = stored_blobs(&fx.cache());
        assert!(stored.contains(&big), "{name}: {stored:?}");
    }
}

#[test]
fn a_re_pushed_tag_is_seen_with_pull_always() {
    if !registry_and_sandbox() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let v1 = push(&versioned(work.path(), "v1"), &registry, "moving:latest");
    let reference = registry.reference("moving:latest");
    let fx = one_step("show", "cat /version", &reference);
    let digest_of = |fx: &Fixture| image(&images(fx), &reference).map(|i| i["digest"].clone());

    // Not here yet: `hm run` pulls it (default `--pull missing`).
    let first = hm_run(&fx, &[], &[]);
    assert_eq!(first.code, 0, "{}", first.dump());
    assert_eq!(first.stdout("show"), ["v1"]);
    assert!(
        first
            .events
            .iter()
            .any(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("image_pull"))),
        "the pull is in the event stream: {}",
        first.dump()
    );
    assert_eq!(digest_of(&fx), Some(json!(v1)));

    let v2 = push(&versioned(work.path(), "v2"), &registry, "moving:latest");
    let missing = hm_run(&fx, &[], &[]);
    assert_eq!(missing.code, 0, "{}", missing.dump());
    assert_eq!(missing.status("show"), "cache_hit", "{}", missing.dump());
    assert_eq!(
        digest_of(&fx),
        Some(json!(v1)),
        "`missing` keeps the image that is here"
    );

    let always = hm_run(&fx, &["--pull", "always"], &[]);
    assert_eq!(always.code, 0, "{}", always.dump());
    assert_eq!(always.executed(), ["show"], "{}", always.dump());
    let reason = always.miss_reason("show").unwrap_or_default();
    assert!(
        reason.starts_with("image") && reason.contains("changed") && reason.contains(&reference),
        "the miss reason names the image that changed: {reason:?}"
    );
    assert_eq!(always.stdout("show"), ["v2"]);
    assert_eq!(digest_of(&fx), Some(json!(v2)));

    // Pulled again, unchanged: the same key.
    let again = hm_run(&fx, &["--pull", "always"], &[]);
    assert_eq!(again.status("show"), "cache_hit", "{}", again.dump());

    // `HM_PULL` and `[images] pull` say the same.
    push(&versioned(work.path(), "v3"), &registry, "moving:latest");
    let by_env = hm_run(&fx, &[], &[("HM_PULL", "always")]);
    assert_eq!(by_env.stdout("show"), ["v3"], "{}", by_env.dump());
    push(&versioned(work.path(), "v4"), &registry, "moving:latest");
    fx.write(".hm/config.toml", "[images]\npull = \"always\"\n");
    let by_config = hm_run(&fx, &[], &[]);
    assert_eq!(by_config.stdout("show"), ["v4"], "{}", by_config.dump());
    fx.assert_clean();

    // `never` with the image missing.
    let fresh = one_step("show", "cat /version", &reference);
    let never = hm_run(&fresh, &["--pull", "never"], &[]);
    assert_eq!(never.code, 4, "{}", never.dump());
    assert!(never.stderr.contains(&reference), "{}", never.stderr);
    assert!(image(&images(&fresh), &reference).is_none());
}

#[test]
fn concurrent_pulls_of_one_image_store_each_blob_once() {
    if !registry_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let shared = vec![
        Layer::entries(vec![file("base", noise(4_000_000, 3))]),
        Layer::entries(vec![file("middle", noise(1_000_000, 5))]),
    ];
    let with = |top: &str| {
        let mut layers = shared.clone();
        layers.push(Layer::entries(vec![file("top", format!("{top}\n"))]));
        OciLayout::write(&work.path().join(top), "t", &[ImageSpec::new(layers)])
    };
    let (one, two) = (with("one"), with("two"));
    let digest = push(&one, &registry, "app:one");
    let second = push(&two, &registry, "app:two");
    let reference = registry.reference("app:one");

    let fx = Fixture::new();
    home(&fx);
    let spawn = || {
        let mut command = fx.command(&["image", "pull", &reference]);
        command
            .env("HOME", fx.dir.path().join("home"))
            .env("DOCKER_CONFIG", fx.dir.path().join("home/.docker"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
        assert_pulled(&out, &reference, &digest);
    }
    let listing = images(&fx);
    assert_eq!(listing.len(), 1, "{listing:#?}");
    assert_eq!(image_dirs(&fx.cache()).len(), 1, "{:?}", image_dirs(&fx.cache()));
    let stored = stored_blobs(&fx.cache());
    for layer in &one.images[0].layers {
        assert!(stored.contains(&layer.digest), "{} missing: {stored:?}", layer.digest);
    }
    assert!(stored.iter().all(|d| one.digests().contains(d)), "{stored:?}");

    // A second image sharing two layers adds only what it does not share.
    let reference_two = registry.reference("app:two");
    assert_pulled(
        &hm(&fx, &["image", "pull", &reference_two], &[]),
        &reference_two,
        &second,
    );
    let after = stored_blobs(&fx.cache());
    let new: Vec<&String> = after.iter().filter(|d| !stored.contains(d)).collect();
    let top_two = &two.images[0].layers[2].digest;
    assert!(new.contains(&top_two), "{new:?}");
    assert!(
        new.iter().all(|d| two.digests().contains(d)),
        "only the second image's own blobs: {new:?}"
    );
    assert!(
        !new.iter().any(|d| shared_layers(&one).contains(d)),
        "shared layers stored again: {new:?}"
    );
    assert_eq!(images(&fx).len(), 2);
}

fn shared_layers(layout: &OciLayout) -> Vec<String> {
    layout.images[0].layers[..2].iter().map(|l| l.digest.clone()).collect()
}

/// Why the user the unprivileged tests run as (nobody when root, else
/// ourselves) cannot have subordinate ids mapped, if it cannot: a range in
/// `/etc/subuid` and `/etc/subgid`, and `newuidmap` and `newgidmap`.
fn no_subordinate_ids() -> Option<&'static str> {
    let (name, uid) = if util::is_root() {
        ("nobody".to_owned(), UID.to_string())
    } else {
        let uid = Command::new("id").arg("-u").output().unwrap();
        let name = Command::new("id").arg("-un").output().unwrap();
        (
            String::from_utf8_lossy(&name.stdout).trim().to_owned(),
            String::from_utf8_lossy(&uid.stdout).trim().to_owned(),
        )
    };
    let has_range = |file: &str| {
        fs::read_to_string(file).unwrap_or_default().lines().any(|l| {
            let mut fields = l.split(':');
            let owner = fields.next().unwrap_or("");
            (owner == name || owner == uid)
                && fields
                    .nth(1)
                    .is_some_and(|n| n.trim().parse::<u32>().is_ok_and(|n| n > 0))
        })
    };
    let tool = |name: &str| {
        ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(name).exists())
    };
    if !has_range("/etc/subuid") || !has_range("/etc/subgid") {
        Some("the test user has no range in /etc/subuid and /etc/subgid (`.ci/run` adds `nobody:200000:65536`)")
    } else if !tool("newuidmap") || !tool("newgidmap") {
        Some("newuidmap and newgidmap are missing (install uidmap)")
    } else {
        None
    }
}

#[test]
fn apt_installs_a_package_on_a_pulled_debian_image_as_an_unprivileged_user() {
    if !registry_and_sandbox() {
        return;
    }
    let Some(rootfs) = util::debian_rootfs() else { return };
    if let Some(reason) = no_subordinate_ids() {
        skip(&format!(
            "apt (which drops to `_apt`) cannot run unprivileged here: {reason}"
        ));
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&RegistryOptions::default());
    let layout = OciLayout::write(
        &work.path().join("layout"),
        "bookworm",
        &[ImageSpec::new(debian_layers(&rootfs, 0))],
    );
    let digest = push(&layout, &registry, "debian:bookworm");
    let reference = registry.reference("debian:bookworm");
    let s = step(
        "hello",
        "apt-get update -q && apt-get install -y -q --no-install-recommends hello && hello",
    )
    .image(Some(&reference))
    .timeout(900);
    let fx = Fixture::with(&envelope("apt", &[s], &[], None));
    assert_pulled(&hm_as_user(&fx, &["image", "pull", &reference]), &reference, &digest);
    let run = Run::from(hm_as_user(&fx, &["run", "--format", "json"]));
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(
        run.stdout("hello").last().map(String::as_str),
        Some("Hello, world!"),
        "{}",
        run.dump()
    );
    fx.assert_clean();
}

/// `hm image import` of images on disk: an OCI layout directory, the same
/// as a tarball, and the older `docker save` format (`manifest.json` naming
/// layer files), each giving the layers as a pull does.
#[test]
fn image_layouts_and_docker_save_archives_import_as_pulls_do() {
    if !sandbox_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = layered_image(work.path());
    let image = &layout.images[0];

    // docker save's older format: layer files by path, a config by path.
    let save = work.path().join("save");
    fs::create_dir_all(&save).unwrap();
    let blob = |digest: &str| {
        layout
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    fs::copy(blob(&image.config.digest), save.join("config.json")).unwrap();
    let mut layers = Vec::new();
    for (i, layer) in image.layers.iter().enumerate() {
        let name = format!("{i}/layer.tar");
        fs::create_dir_all(save.join(i.to_string())).unwrap();
        fs::copy(blob(&layer.digest), save.join(&name)).unwrap();
        layers.push(name);
    }
    let manifest = json!([{"Config": "config.json", "RepoTags": ["layered:save"], "Layers": layers}]);
    fs::write(save.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();

    let tarball = work.path().join("layout.tar");
    util::tar_dir(&layout.dir, &tarball);

    for (name, source) in [
        ("local/layout:1", layout.dir.clone()),
        ("local/layout:tar", tarball.clone()),
        ("local/save:1", save.clone()),
    ] {
        let fx = one_step("inspect", INSPECT, name);
        let out = hm(&fx, &["image", "import", name, source.to_str().unwrap()], &[]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let listing = images(&fx);
        let imported = image_entry(&listing, name);
        if name != "local/save:1" {
            assert_eq!(
                imported["id"],
                layout.digest(),
                "{name}: the manifest's digest is its identity"
            );
        }
        assert!(imported["pulled"].is_null(), "{imported}");
        // Imported images are not pulled, even with --pull always.
        let run = hm_run(&fx, &["--pull", "always"], &[]);
        assert_layered(&run);
        fx.assert_clean();
    }

    // A layer that is not what its digest says is refused, naming it.
    let bad = work.path().join("bad");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&layout.dir)
        .arg(&bad)
        .status()
        .unwrap()
        .success());
    let victim = &image.layers[1].digest;
    let path = bad.join("blobs/sha256").join(victim.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let fx = Fixture::new();
    let out = hm(&fx, &["image", "import", "local/bad:1", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(victim.as_str()), "{}", stderr(&out));
    assert!(images(&fx).is_empty(), "nothing stored");
}

fn image_entry<'a>(listing: &'a [Value], name: &str) -> &'a Value {
    image(listing, name).unwrap_or_else(|| panic!("{name} not listed: {listing:#?}"))
}
