//! Runs one command in the sandbox on the host image: `smoke CMD`.
use hm_vm::*;

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    if args.len() > 1 && sandbox::is_helper_invocation(&args[1]) {
        sandbox::helper_main();
    }
    let cmd = args
        .get(1)
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or("echo hi".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let backend = SandboxBackend::new(SandboxConfig {
            cache_dir: hm_cache_dir().unwrap(),
            helper: std::env::current_exe().unwrap(),
            max_layers: DEFAULT_MAX_LAYERS,
        });
        let t = std::time::Instant::now();
        backend.check().await.unwrap();
        eprintln!("probe {:?}", t.elapsed());
        let image = backend.resolve_image("host").await.unwrap();
        let mut snap: Option<SnapshotId> = None;
        for i in 0..3 {
            let t = std::time::Instant::now();
            let from = match &snap {
                None => BootFrom::Image(image.clone()),
                Some(s) => BootFrom::Snapshot(s.clone()),
            };
            let mut vm = backend
                .boot(BootRequest {
                    from,
                    name: format!("s{i}"),
                })
                .await
                .unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<LogLine>(16);
            let printer = tokio::spawn(async move {
                while let Some(l) = rx.recv().await {
                    println!("[{i} {:?}] {}", l.stream, l.line);
                }
            });
            let out = vm
                .exec(
                    ExecRequest {
                        cmd: format!("{cmd}; echo step {i} >> /hm-log; cat /hm-log"),
                        env: vec![],
                        cwd: "/".into(),
                    },
                    tx,
                    Box::pin(std::future::pending()),
                )
                .await;
            printer.await.unwrap();
            eprintln!("outcome {out:?} in {:?}", t.elapsed());
            snap = Some(vm.commit().await.unwrap());
        }
        backend.shutdown().await.unwrap();
    });
}
