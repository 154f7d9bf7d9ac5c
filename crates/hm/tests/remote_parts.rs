//! A sandbox snapshot moved between two cache directories as OCI layers
//! (issue 16, part): `VmBackend::export_part` on one machine,
//! `import_part` on another, and the snapshot boots there with what the
//! step wrote and what it deleted. Through the sandbox helper, as a real
//! run does.

mod util;

use std::path::Path;
use std::sync::Arc;

use hm_vm::{
    BootFrom, BootRequest, ExecOutcome, ExecRequest, SandboxBackend, SandboxConfig, StoredSnapshot, Successors,
    SyncPlan, VmBackend,
};
use util::sandbox_available;

fn backend(cache: &Path) -> Arc<dyn VmBackend> {
    std::fs::create_dir_all(cache).unwrap();
    Arc::new(SandboxBackend::new(SandboxConfig {
        cache_dir: cache.to_owned(),
        helper: env!("CARGO_BIN_EXE_hm").into(),
        max_layers: hm_vm::DEFAULT_MAX_LAYERS,
        orphan_grace: hm_vm::DEFAULT_ORPHAN_GRACE,
        search_path: std::env::var_os("PATH").unwrap_or_default(),
    }))
}

/// Runs `cmd` in a VM booted from `from`; its output and the VM.
async fn run(vm: &Arc<dyn VmBackend>, from: BootFrom, cmd: &str) -> (Vec<String>, Box<dyn hm_vm::Vm>) {
    let mut machine = vm
        .boot(BootRequest {
            from,
            name: "step".to_owned(),
            source_layer: None,
        })
        .await
        .unwrap();
    machine.sync(SyncPlan::default()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let request = ExecRequest {
        cmd: cmd.to_owned(),
        env: Vec::new(),
        cwd: "/".into(),
        limits: Default::default(),
        volumes: Vec::new(),
    };
    let outcome = machine
        .exec(request, tx, Box::pin(std::future::pending()))
        .await
        .unwrap();
    assert_eq!(outcome, ExecOutcome::Exited(0));
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line.text().into_owned());
    }
    (lines, machine)
}

#[tokio::test]
async fn a_snapshot_moves_to_another_cache_as_oci_layers() {
    if !sandbox_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = backend(&dir.path().join("a"));
    a.check().await.unwrap();
    let host = a.resolve_image("host").await.unwrap();
    // Two layers: one writes and deletes, the next builds on it.
    let (_, first) = run(
        &a,
        BootFrom::Image(host.clone()),
        "mkdir -p /opt/app/cache && echo built > /opt/app/out && echo tmp > /opt/app/cache/x && rm /etc/hostname",
    )
    .await;
    let first = first.commit(Successors::Many).await.unwrap();
    let (_, second) = run(
        &a,
        BootFrom::Snapshot(first),
        "rm -r /opt/app/cache && ln -s out /opt/app/link",
    )
    .await;
    let second = second.commit(Successors::Many).await.unwrap();
    let persisted = a.persist(&second).await.unwrap();
    assert_eq!(persisted.stored.parts.len(), 2);

    let b = backend(&dir.path().join("b"));
    b.check().await.unwrap();
    for part in &persisted.stored.parts {
        let packed = dir.path().join(format!("{part}.tar.gz"));
        assert!(a.export_part(part, &packed).await.unwrap());
        let size = b.import_part(part, &packed).await.unwrap();
        assert!(size > 0);
        // Importing it again changes nothing.
        b.import_part(part, &packed).await.unwrap();
    }
    let stored = StoredSnapshot {
        parts: persisted.stored.parts.clone(),
        base: persisted.stored.base.clone(),
    };
    let restored = b.restore(&stored).await.unwrap();
    let (lines, machine) = run(
        &b,
        BootFrom::Snapshot(restored),
        "cat /opt/app/out; readlink /opt/app/link; ls /opt/app; test -e /etc/hostname || echo hostname-gone",
    )
    .await;
    machine.destroy().await.unwrap();
    assert_eq!(lines, ["built", "out", "link", "out", "hostname-gone"]);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert!(!b
        .export_part("nonexistent", &dir.path().join("x"))
        .await
        .is_ok_and(|made| made));
}
