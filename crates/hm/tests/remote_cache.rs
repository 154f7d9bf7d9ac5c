//! The remote cache's registry side (issue 16, part) against a real
//! `docker-registry` on loopback with basic authentication: an entry pushed
//! with its layers comes back from another client as it was (whiteouts and
//! opaque directories kept), a second entry shares its layer, an unknown
//! key is no entry, no credentials is an error, and a blob changed in the
//! registry's storage is refused by its digest.

mod util;

use std::fs;
use std::path::Path;

use hm_vm::oci::pack::pack_layer;
use hm_vm::oci::pull::PullSettings;
use hm_vm::oci::remote::{Part, RemoteCache, RemoteConfig, RemoteError};
use hm_vm::oci::unpack::{apply_layer, UnpackOptions, UnpackReport};
use util::registry::{auths, docker_config, Registry, RegistryOptions};
use util::registry_available;

fn settings(client_config: &Path) -> PullSettings {
    PullSettings {
        client_config: Some(client_config.to_owned()),
        ..PullSettings::default()
    }
}

fn config(key: &str, parts: &[&str]) -> RemoteConfig {
    RemoteConfig {
        key: key.to_owned(),
        parent: None,
        backend: "sandbox".to_owned(),
        base: r#"{"image":{"name":"debian","id":"sha256:00"}}"#.to_owned(),
        step: "build".to_owned(),
        pipeline: "ci".to_owned(),
        project: "shared-name".to_owned(),
        inputs: serde_json::json!({"cmd": "make"}),
        parts: parts.iter().map(|p| (*p).to_owned()).collect(),
        manifest: Some("feed".to_owned()),
    }
}

/// A layer with a file, a whiteout and an opaque directory, packed.
fn packed_layer(dir: &Path) -> std::path::PathBuf {
    let layer = dir.join("layer");
    fs::create_dir_all(layer.join("out/opaque")).unwrap();
    fs::write(layer.join("out/artifact"), "built\n").unwrap();
    hm_vm::fsutil::set_xattr(&layer.join("out/opaque"), "user.overlay.opaque", b"y").unwrap();
    nix::sys::stat::mknod(
        &layer.join("out/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    let packed = dir.join("layer.tar.gz");
    pack_layer(&layer, fs::File::create(&packed).unwrap()).unwrap();
    packed
}

#[tokio::test]
async fn an_entry_pushed_by_one_machine_is_read_back_by_another() {
    if !registry_available() {
        return;
    }
    let registry = Registry::start(&RegistryOptions::auth("hm", "s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let client_config = docker_config(&dir.path().join("docker"), &auths(&registry.host(), "hm", "s3cret"));
    let remote = format!("{}/team/hm-cache", registry.host());
    let packed = packed_layer(dir.path());
    let key = "a".repeat(64);

    // Machine A pushes.
    let a = RemoteCache::new(&remote, &settings(&client_config)).unwrap();
    let parts = [Part {
        name: "0123abcd".to_owned(),
        packed: packed.clone(),
    }];
    a.push(&config(&key, &["0123abcd"]), &parts, b"[source manifest]")
        .await
        .unwrap();
    // Another entry on the same layer.
    let other = "b".repeat(64);
    a.push(&config(&other, &["0123abcd"]), &parts, b"[source manifest]")
        .await
        .unwrap();

    // Machine B, its own client, reads it back.
    let b = RemoteCache::new(&remote, &settings(&client_config)).unwrap();
    let entry = b.fetch(&key).await.unwrap().expect("the entry is there");
    let second = b.fetch(&other).await.unwrap().expect("the second entry is there");
    assert_eq!(
        second.layers["0123abcd"].digest, entry.layers["0123abcd"].digest,
        "one layer, shared"
    );
    assert_eq!(entry.config, config(&key, &["0123abcd"]));
    assert_eq!(b.source(&entry).await.unwrap(), b"[source manifest]");
    let blob = dir.path().join("pulled.tar.gz");
    b.download(&entry.layers["0123abcd"], &blob).await.unwrap();
    assert_eq!(fs::read(&blob).unwrap(), fs::read(&packed).unwrap());
    let back = dir.path().join("back");
    fs::create_dir(&back).unwrap();
    let options = UnpackOptions {
        chown: false,
        devices: false,
        keep_whiteouts: true,
    };
    let file = fs::File::open(&blob).unwrap();
    apply_layer(file, &back, &options, &mut UnpackReport::default(), &mut |_| Ok(())).unwrap();
    assert_eq!(fs::read_to_string(back.join("out/artifact")).unwrap(), "built\n");
    assert_eq!(
        hm_vm::fsutil::get_xattr(&back.join("out/opaque"), "user.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    let gone = fs::symlink_metadata(back.join("out/gone")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "the whiteout is overlayfs' again"
    );

    assert!(
        b.fetch(&"c".repeat(64)).await.unwrap().is_none(),
        "an unknown key is no entry"
    );

    // Without credentials the registry says no, and that is an error, not
    // a miss.
    let anonymous = RemoteCache::new(&remote, &settings(&dir.path().join("none"))).unwrap();
    assert!(anonymous.fetch(&key).await.is_err());

    // A layer changed in the registry's storage is refused by its digest.
    let digest = entry.layers["0123abcd"].digest.trim_start_matches("sha256:").to_owned();
    let data = registry.storage().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{digest}/data",
        &digest[..2]
    ));
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&data, bytes).unwrap();
    let refused = b.download(&entry.layers["0123abcd"], &dir.path().join("bad")).await;
    assert!(matches!(refused, Err(RemoteError::Digest { .. })), "{refused:?}");
    assert!(!dir.path().join("bad").exists(), "nothing of a refused blob is kept");
}

#[test]
fn a_remote_naming_a_tag_is_refused() {
    let refused = RemoteCache::new("registry.example/team/cache:v1", &PullSettings::default());
    assert!(matches!(refused, Err(RemoteError::BadRemote { .. })));
}
