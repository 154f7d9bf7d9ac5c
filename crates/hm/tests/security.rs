//! What a step can and cannot do (docs/security.md): every line of that
//! list is a test here that tries it from inside a step, on both backends
//! where it applies, as root and as an unprivileged user.

mod util;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;
use util::{envelope, step, Backend, Fixture, Run};

/// An unprivileged uid for the tests (nobody).
const NOBODY: u32 = 65534;

/// Prints `raw socket: opened` or `raw socket: <error>` for a packet socket
/// and for an IPv4 raw socket (perl is in every Debian image).
const RAW_SOCKETS: &str = r#"perl -e 'use Socket; for ([17, 3, 0x0300, "packet"], [2, 3, 1, "icmp"]) { my ($d, $t, $p, $n) = @$_; print socket(my $s, $d, $t, $p) ? "$n raw socket: opened\n" : "$n raw socket: $!\n" }'"#;

/// `cmd` as the only step of a pipeline on the backend's image.
fn one_step(backend: Backend, cmd: &str) -> Fixture {
    let steps = [step("s", cmd)];
    Fixture::with_on(backend, &envelope("sec", &steps, &[], None))
}

fn skip(backend: Backend) -> bool {
    !backend.available()
}

/// The step's stdout after a passing run.
fn passed_stdout(run: &Run, key: &str) -> Vec<String> {
    assert_eq!(run.code, 0, "{}", run.dump());
    run.stdout(key)
}

/// Runs `hm ARGS` in the fixture's project as `nobody` (the fixture is
/// handed to it first), or as ourselves when not root.
fn run_unprivileged(fx: &Fixture, args: &[&str]) -> Run {
    let mut command = Command::new(util::hm_bin());
    if util::is_root() {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(fx.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        command = Command::new("setpriv");
        command.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            util::hm_bin(),
        ]);
    }
    let output = command
        .args(args)
        .current_dir(fx.project())
        .env("HM_CACHE_DIR", fx.cache())
        .env("HOME", fx.dir.path())
        .env_remove("HM_NETWORK")
        .output()
        .unwrap();
    Run::from(output)
}

/// A listener on the host's loopback that counts what connects to it.
struct HostListener {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl HostListener {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut text = String::new();
                let _ = stream.take(100).read_to_string(&mut text);
                seen.lock().unwrap().push(text);
            }
        });
        HostListener { port, received }
    }

    /// A command that says `reached` or `unreachable`.
    fn probe(&self) -> String {
        format!(
            "bash -c 'echo hello-from-step >/dev/tcp/127.0.0.1/{}' 2>/dev/null && echo reached || echo unreachable",
            self.port
        )
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

// --- Raw sockets and capabilities ---------------------------------------

/// Issue 11, item 2: a root step opened `socket(AF_PACKET, SOCK_RAW)` in
/// the host's network and captured its loopback traffic.
fn a_root_step_cannot_open_a_raw_socket(backend: Backend) {
    if skip(backend) {
        return;
    }
    let fx = one_step(backend, RAW_SOCKETS);
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(
        out,
        [
            "packet raw socket: Operation not permitted",
            "icmp raw socket: Operation not permitted"
        ]
    );
    fx.assert_clean();
}

/// A step holds exactly the capabilities docs/decisions.md lists, in every
/// set that matters (bounding, permitted, effective), and none to inherit.
fn a_step_holds_only_the_listed_capabilities(backend: Backend) {
    if skip(backend) {
        return;
    }
    let fx = one_step(backend, "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status");
    let out = passed_stdout(&fx.run_json(&[]), "s");
    let mask: u64 = hm_vm::capabilities::STEP_CAPABILITIES
        .iter()
        .map(|(n, _)| 1u64 << n)
        .sum();
    let expected = [
        "CapInh:\t0000000000000000".to_owned(),
        format!("CapPrm:\t{mask:016x}"),
        format!("CapEff:\t{mask:016x}"),
        format!("CapBnd:\t{mask:016x}"),
        "CapAmb:\t0000000000000000".to_owned(),
    ];
    assert_eq!(out, expected);
    fx.assert_clean();
}

// --- Mounts, namespaces, /proc ------------------------------------------

/// `mount` needs CAP_SYS_ADMIN, which no step has.
fn a_step_cannot_mount(backend: Backend) {
    if skip(backend) {
        return;
    }
    let fx = one_step(
        backend,
        "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>/dev/null; echo tmpfs $?; \
         mount --bind /workspace /mnt/t 2>/dev/null; echo bind $?; \
         mount -o remount,rw / 2>/dev/null; echo remount $?",
    );
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(
        out,
        ["tmpfs 32", "bind 32", "remount 32"],
        "mount's exit 32 is a failure"
    );
    fx.assert_clean();
}

/// New namespaces need CAP_SYS_ADMIN; a nested user namespace (which any
/// user may make, where the kernel allows) gives capabilities only over
/// what it owns: no raw socket in the host's network, no mount that uncovers
/// anything. Docker's seccomp profile refuses the user namespace itself.
fn a_step_cannot_unshare_namespaces(backend: Backend) {
    if skip(backend) {
        return;
    }
    let cmd = format!(
        "for ns in -m -n -p -i -u; do unshare $ns -f true 2>/dev/null; echo \"unshare $ns $?\"; done; \
         unshare -Ur {RAW_SOCKETS} 2>/dev/null | grep packet || echo 'packet raw socket: no user namespace'"
    );
    let fx = one_step(backend, &cmd);
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(
        &out[..5],
        [
            "unshare -m 1",
            "unshare -n 1",
            "unshare -p 1",
            "unshare -i 1",
            "unshare -u 1"
        ]
    );
    assert!(
        out[5] == "packet raw socket: Operation not permitted" || out[5] == "packet raw socket: no user namespace",
        "{out:?}"
    );
    fx.assert_clean();
}

/// Pid 1 of a step is its own init (or the container's), never the host's:
/// nothing of the host is reachable through `/proc/1/root`, and the
/// sandbox's init cannot even be looked into.
fn proc_1_root_does_not_lead_to_the_host(backend: Backend) {
    if skip(backend) {
        return;
    }
    let marker = tempfile::Builder::new().prefix("hm-host-marker-").tempfile().unwrap();
    let path = marker.path().display().to_string();
    let fx = one_step(
        backend,
        &format!(
            "test -e /proc/1/root{path} && echo host-visible || echo host-hidden; \
             ls /proc | grep -c '^[0-9]'"
        ),
    );
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(out[0], "host-hidden");
    let processes: usize = out[1].parse().unwrap();
    assert!(processes < 10, "a step sees only its own processes: {out:?}");
    if backend == Backend::Sandbox {
        let fx = one_step(
            backend,
            "ls /proc/1/root/ >/dev/null 2>&1; echo $?; cat /proc/1/environ >/dev/null 2>&1; echo $?",
        );
        assert_eq!(
            passed_stdout(&fx.run_json(&[]), "s"),
            ["2", "1"],
            "init cannot be looked into"
        );
    }
    fx.assert_clean();
}

/// The cache directory (layers of other steps and projects, the registry,
/// the SDKs) is out of a step's sight: hidden under an empty read-only
/// tmpfs where the root shows the host, absent elsewhere.
fn a_step_cannot_see_or_change_the_cache_directory(backend: Backend) {
    if skip(backend) {
        return;
    }
    let steps = [step("seed", "true").cache(json!({"policy": "forever", "env_keys": []}))];
    let fx = Fixture::with_on(backend, &envelope("sec", &steps, &[], None));
    assert_eq!(fx.run_json(&[]).code, 0);
    let cache = fx.cache().canonicalize().unwrap();
    fx.write(
        ".hm/pipeline.json",
        &serde_json::to_string(&envelope(
            "sec",
            &[step(
                "s",
                &format!(
                    "ls -A {0} 2>/dev/null | wc -l; touch {0}/planted 2>/dev/null && echo wrote || echo read-only",
                    cache.display()
                ),
            )],
            &[],
            None,
        ))
        .unwrap(),
    );
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(out, ["0", "read-only"]);
    assert!(!cache.join("planted").exists());
    fx.assert_clean();
}

// --- Setuid files ----------------------------------------------------------

/// A setuid-root file a root step leaves makes nobody root in a later step:
/// the root is mounted `nosuid,nodev` and steps run with no new privileges.
fn a_setuid_file_gives_no_one_root_in_a_later_step(backend: Backend) {
    if skip(backend) {
        return;
    }
    let steps = [
        step(
            "plant",
            "cp \"$(command -v id)\" suidid && chmod 4755 suidid && ls -l suidid | cut -c1-10",
        )
        .cache(json!({"policy": "forever", "env_keys": []})),
        step(
            "use",
            "perl -e '$) = \"65534 65534\"; $( = 65534; $< = $> = 65534; exec \"./suidid\", \"-u\"'",
        ),
    ];
    let fx = Fixture::with_on(
        backend,
        &envelope("sec", &steps, &[("plant", "use", "builds_in")], None),
    );
    for round in 0..2 {
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 0, "round {round}: {}", run.dump());
        assert_eq!(
            run.stdout("use"),
            ["65534"],
            "round {round}: the setuid bit grants nothing"
        );
    }
    if backend == Backend::Sandbox {
        let fx = one_step(backend, "grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6");
        let options = passed_stdout(&fx.run_json(&[]), "s");
        assert!(
            options[0].split(',').any(|o| o == "nosuid") && options[0].split(',').any(|o| o == "nodev"),
            "{options:?}"
        );
    }
    fx.assert_clean();
}

/// Issue 11, item 3: a cached step's setuid-root file was at
/// `layers/*/workspace/suidid` in a cache of mode 0755, and another local
/// user running it got euid 0. The cache is its owner's alone now: another
/// user can neither list it nor run anything in it.
#[test]
fn another_user_cannot_reach_a_setuid_file_in_the_cache() {
    if !util::sandbox_available() || !util::root_available("acting as another user") {
        return;
    }
    let steps =
        [step("plant", "cp /usr/bin/id suidid && chmod 4755 suidid")
            .cache(json!({"policy": "forever", "env_keys": []}))];
    let fx = Fixture::with(&envelope("sec", &steps, &[], None));
    // What an earlier hm, or a user's mkdir, left: a cache others may read.
    std::fs::set_permissions(fx.cache(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let layers: Vec<_> = std::fs::read_dir(fx.cache().join("layers"))
        .unwrap()
        .flatten()
        .collect();
    let planted = layers[0].path().join("workspace/suidid");
    assert!(planted.exists(), "the layer holds the file");
    // The tempdir the fixture lives in is open to all, as /tmp is.
    let as_nobody = |cmd: &str| {
        let out = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "sh",
                "-c",
                cmd,
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = as_nobody(&format!("{} -u", planted.display()));
    assert_ne!(code, Some(0), "another user ran the planted file: {out}");
    assert!(out.contains("Permission denied"), "{out}");
    let (code, out) = as_nobody(&format!("ls {}", fx.cache().display()));
    assert_ne!(code, Some(0), "another user listed the cache: {out}");
    assert!(
        run.stderr.contains("other users could read the cache directory") && run.stderr.contains("(mode 0755)"),
        "{}",
        run.stderr
    );
    fx.assert_clean();
}

/// The cache directory hm creates is `0700`, as root and unprivileged.
#[test]
fn a_new_cache_directory_is_private() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [step("s", "true")];
    let fx = Fixture::with(&envelope("sec", &steps, &[], None));
    std::fs::remove_dir(fx.cache()).unwrap();
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let mode = std::fs::metadata(fx.cache()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    std::fs::remove_dir_all(fx.cache()).unwrap();
    let run = run_unprivileged(&fx, &["run", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let mode = std::fs::metadata(fx.cache()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "rootless too");
}

/// A cache other users may write to, or one of another user, is refused
/// (exit 2, with what to do); nothing runs.
#[test]
fn a_cache_others_can_write_or_own_is_refused() {
    if !util::sandbox_available() {
        return;
    }
    let steps = [step("s", "echo ran")];
    let fx = Fixture::with(&envelope("sec", &steps, &[], None));
    std::fs::set_permissions(fx.cache(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(run.events.is_empty(), "{}", run.dump());
    assert!(
        run.stderr.contains("is writable by other users (mode 0777)") && run.stderr.contains("chmod 700"),
        "{}",
        run.stderr
    );
    if util::is_root() {
        std::fs::set_permissions(fx.cache(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let status = Command::new("chown")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(fx.cache())
            .status()
            .unwrap();
        assert!(status.success());
        let run = fx.run_json(&[]);
        assert_eq!(run.code, 2, "{}", run.dump());
        assert!(
            run.stderr.contains(&format!("belongs to uid {NOBODY}, not to you")) && run.stderr.contains("HM_CACHE_DIR"),
            "{}",
            run.stderr
        );
    }
}

// --- The network ------------------------------------------------------------

/// `--network none`: the host's loopback services are out of reach; the
/// step has a loopback of its own.
fn network_none_cannot_reach_the_hosts_loopback(backend: Backend) {
    if skip(backend) {
        return;
    }
    let listener = HostListener::start();
    let own_loopback = r#"perl -MIO::Socket::INET -e '$l = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1:7777", ReuseAddr => 1) or die "listen: $!\n"; IO::Socket::INET->new("127.0.0.1:7777") or die "connect: $!\n"; print "own loopback: ok\n"'"#;
    let fx = one_step(backend, &format!("{}; {own_loopback}; {RAW_SOCKETS}", listener.probe()));
    let out = passed_stdout(&fx.run_json(&["--network", "none"]), "s");
    assert_eq!(
        out,
        [
            "unreachable",
            "own loopback: ok",
            "packet raw socket: Operation not permitted",
            "icmp raw socket: Operation not permitted"
        ]
    );
    assert!(listener.received().is_empty(), "{:?}", listener.received());
    fx.assert_clean();
}

/// `host` (the default): steps reach services on the host's loopback, as
/// the guide promises (database containers, local registries).
fn network_host_reaches_the_hosts_loopback(backend: Backend) {
    if skip(backend) {
        return;
    }
    let listener = HostListener::start();
    let fx = one_step(backend, &listener.probe());
    let out = passed_stdout(&fx.run_json(&[]), "s");
    assert_eq!(out, ["reached"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while listener.received().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(listener.received(), ["hello-from-step\n"]);
    fx.assert_clean();
}

/// The mode is chosen by `--network` over `HM_NETWORK` over config.toml's
/// `network` over the pipeline's `definition.network`, else `host`.
fn the_network_mode_is_chosen_by_flag_env_config_then_pipeline(backend: Backend) {
    if skip(backend) {
        return;
    }
    let listener = HostListener::start();
    let steps = [step("s", &listener.probe())];
    let mut pipeline = envelope("sec", &steps, &[], None);
    let fx = Fixture::with_on(backend, &pipeline);
    let reach = |args: &[&str], env: Option<&str>| {
        let mut all = vec!["run", "--format", "json"];
        all.extend_from_slice(args);
        let mut command = fx.command(&all);
        match env {
            Some(value) => command.env("HM_NETWORK", value),
            None => command.env_remove("HM_NETWORK"),
        };
        let run = Run::from(command.output().unwrap());
        assert_eq!(run.code, 0, "{args:?} {env:?}: {}", run.dump());
        run.stdout("s")[0].clone()
    };
    assert_eq!(reach(&[], None), "reached", "host by default");
    pipeline["pipelines"][0]["definition"]["network"] = json!("none");
    fx.write(".hm/pipeline.json", &serde_json::to_string(&pipeline).unwrap());
    assert_eq!(reach(&[], None), "unreachable", "the pipeline's own");
    fx.write(".hm/config.toml", "network = \"host\"\n");
    assert_eq!(reach(&[], None), "reached", "config over the pipeline");
    assert_eq!(reach(&[], Some("none")), "unreachable", "HM_NETWORK over config");
    assert_eq!(
        reach(&["--network", "host"], Some("none")),
        "reached",
        "the flag over HM_NETWORK"
    );
    fx.write(".hm/config.toml", "network = \"bridge\"\n");
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 2, "{}", run.dump());
    assert!(
        run.stderr.contains("config.toml") && run.stderr.contains("bridge"),
        "{}",
        run.stderr
    );
    fx.assert_clean();
}

/// A cached step made with the network is not a hit without it (it could
/// have downloaded what a run without the network cannot), and the miss
/// says why.
fn a_cached_step_is_keyed_by_its_network(backend: Backend) {
    if skip(backend) {
        return;
    }
    let steps = [step("s", "echo built").cache(json!({"policy": "forever", "env_keys": []}))];
    let fx = Fixture::with_on(backend, &envelope("sec", &steps, &[], None));
    assert_eq!(fx.run_json(&[]).executed(), ["s"]);
    assert_eq!(fx.run_json(&[]).executed(), Vec::<String>::new(), "a hit");
    let run = fx.run_json(&["--network", "none"]);
    assert_eq!(run.executed(), ["s"], "{}", run.dump());
    assert_eq!(run.miss_reason("s").as_deref(), Some("network changed: host -> none"));
    assert_eq!(fx.run_json(&["--network", "none"]).executed(), Vec::<String>::new());
    assert_eq!(
        fx.run_json(&[]).executed(),
        Vec::<String>::new(),
        "the host entry is still there"
    );
    fx.assert_clean();
}

/// A pipeline written with the SDKs asks for `none` itself: Python's
/// `@hm.pipeline(..., network="none")` and TypeScript's `pipeline(leaves,
/// {network: "none"})` write `definition.network`, and its steps run so.
#[test]
fn the_sdks_set_a_pipelines_network() {
    if !util::sandbox_available() {
        return;
    }
    let listener = HostListener::start();
    let probe = listener.probe().replace('\\', "\\\\").replace('"', "\\\"");
    let python = format!(
        "import harmont as hm\n\n\n@hm.pipeline(\"ci\", network=\"none\")\ndef ci():\n    return hm.sh(\"{probe}\", key=\"s\", image=\"host\")\n"
    );
    let typescript = format!(
        "import {{ pipeline, sh }} from \"@harmont/hm\";\n\nexport default {{\n  slug: \"ci\",\n  pipeline: pipeline([sh(\"{probe}\", {{ key: \"s\", image: \"host\" }})], {{ network: \"none\" }}),\n}};\n"
    );
    for (file, text) in [(".hm/pipeline.py", python), (".hm/pipeline.ts", typescript)] {
        if file.ends_with(".py") && !util::python_available() {
            continue;
        }
        let fx = Fixture::new();
        fx.write(file, &text);
        let render = fx.hm(&["render", "ci"]);
        assert!(
            render.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&render.stderr)
        );
        let ir: serde_json::Value = serde_json::from_slice(&render.stdout).unwrap();
        assert_eq!(ir["network"], "none", "{file}: {ir}");
        let out = passed_stdout(&fx.run_json(&[]), "s");
        assert_eq!(out, ["unreachable"], "{file}");
        fx.assert_clean();
    }
    assert!(listener.received().is_empty());
}

contract!(
    a_root_step_cannot_open_a_raw_socket,
    a_step_holds_only_the_listed_capabilities,
    a_step_cannot_mount,
    a_step_cannot_unshare_namespaces,
    proc_1_root_does_not_lead_to_the_host,
    a_step_cannot_see_or_change_the_cache_directory,
    a_setuid_file_gives_no_one_root_in_a_later_step,
    network_none_cannot_reach_the_hosts_loopback,
    network_host_reaches_the_hosts_loopback,
    the_network_mode_is_chosen_by_flag_env_config_then_pipeline,
    a_cached_step_is_keyed_by_its_network,
);

// --- Rootless -----------------------------------------------------------------

/// Unprivileged, the same list holds: no raw socket (the user namespace
/// owns no network but, with `none`, its own), no mount, no new mount,
/// network, pid, ipc or uts namespace, the listed capabilities, the cache
/// directory out of sight, and `--network none` keeps the host's loopback
/// out of reach.
#[test]
fn an_unprivileged_step_is_held_to_the_same_list() {
    if !util::sandbox_available() {
        return;
    }
    let listener = HostListener::start();
    let mask: u64 = hm_vm::capabilities::STEP_CAPABILITIES
        .iter()
        .map(|(n, _)| 1u64 << n)
        .sum();
    for network in ["host", "none"] {
        let fx = one_step(Backend::Sandbox, "true");
        let cmd = format!(
            "{RAW_SOCKETS}; grep -E '^CapBnd' /proc/self/status; \
             mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null; echo mount $?; \
             for ns in -m -n -p -i -u; do unshare $ns -f true 2>/dev/null; echo \"unshare $ns $?\"; done; \
             ls /proc/1/root/ >/dev/null 2>&1; echo proc1 $?; \
             echo cache $(ls -A {cache} 2>/dev/null | wc -l); \
             touch {cache}/planted 2>/dev/null && echo cache wrote || echo cache read-only; {probe}",
            cache = fx.cache().display(),
            probe = listener.probe()
        );
        fx.write(
            ".hm/pipeline.json",
            &serde_json::to_string(&envelope("sec", &[step("s", &cmd)], &[], None)).unwrap(),
        );
        let run = run_unprivileged(&fx, &["run", "--format", "json", "--network", network]);
        let reached = if network == "host" { "reached" } else { "unreachable" };
        assert_eq!(
            passed_stdout(&run, "s"),
            [
                "packet raw socket: Operation not permitted".to_owned(),
                "icmp raw socket: Operation not permitted".to_owned(),
                format!("CapBnd:\t{mask:016x}"),
                "mount 32".to_owned(),
                "unshare -m 1".to_owned(),
                "unshare -n 1".to_owned(),
                "unshare -p 1".to_owned(),
                "unshare -i 1".to_owned(),
                "unshare -u 1".to_owned(),
                "proc1 2".to_owned(),
                "cache 0".to_owned(),
                "cache read-only".to_owned(),
                reached.to_owned(),
            ],
            "--network {network}"
        );
        assert!(!fx.cache().join("planted").exists());
        fx.assert_clean();
    }
    assert_eq!(
        listener.received().len(),
        1,
        "only the host-network run reached the host"
    );
}
