//! Real pipelines through the `hm` binary: the backend contract, run on the
//! sandbox and on docker (`sandbox::NAME`, `docker::NAME`), and what only
//! the sandbox does.

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::{envelope, processes_with, sandbox_available, step, Backend, Fixture};

fn chain_sees_each_previous_step(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [
        step("one", "echo one > /workspace/log && echo 1 > /opt/one"),
        step("two", "cat /opt/one && echo two >> /workspace/log"),
        step(
            "three",
            "cat /workspace/log && test \"$(cat /workspace/log)\" = \"$(printf 'one\\ntwo')\"",
        ),
    ];
    let fx = Fixture::with_on(
        b,
        &envelope(
            "chain",
            &steps,
            &[("one", "two", "builds_in"), ("two", "three", "builds_in")],
            None,
        ),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("two"), ["1"]);
    assert_eq!(run.logs("three"), ["one", "two"]);
    fx.assert_clean();
}

fn fork_branches_do_not_see_each_other(b: Backend) {
    if !b.available() {
        return;
    }
    let branch = |name: &str| {
        step(name, &format!("echo {name} > /workspace/branch; echo {name} > /{name}; sleep 0.5; cat /workspace/branch; ls / | grep -c -x -e left -e right"))
    };
    let steps = [
        step("base", "echo base > /workspace/branch"),
        branch("left"),
        branch("right"),
    ];
    let edges = [("base", "left", "builds_in"), ("base", "right", "builds_in")];
    let fx = Fixture::with_on(b, &envelope("fork", &steps, &edges, None));
    let run = fx.run_json(&["-j", "2"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("left"), ["left", "1"]);
    assert_eq!(run.logs("right"), ["right", "1"]);
    // Both started before either ended: they really ran side by side.
    assert!(run.position("step_start", "right") < run.position("step_end", "left"));
    fx.assert_clean();
}

fn wait_joins_both_sides(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("a", "sleep 0.3"), step("b", "true"), step("after", "echo joined")];
    let edges = [("a", "after", "depends_on"), ("b", "after", "depends_on")];
    let fx = Fixture::with_on(b, &envelope("wait", &steps, &edges, None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let start = run.position("step_start", "after");
    assert!(start > run.position("step_end", "a") && start > run.position("step_end", "b"));
    assert_eq!(run.logs("after"), ["joined"]);
}

fn keep_going_finishes_the_independent_branch(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [
        step("bad", "echo broken >&2; exit 3"),
        step("bad-child", "true"),
        step("good", "sleep 0.5; echo fine"),
        step("good-child", "echo still fine"),
    ];
    let edges = [("bad", "bad-child", "builds_in"), ("good", "good-child", "builds_in")];
    let fx = Fixture::with_on(b, &envelope("kg", &steps, &edges, None));
    let run = fx.run_json(&["-k"]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("bad"), "failed");
    assert_eq!(run.end("bad")["exit_code"], 3);
    assert_eq!(run.status("bad-child"), "skipped");
    assert_eq!(run.status("good"), "passed");
    assert_eq!(run.status("good-child"), "passed");
    assert!(run
        .events
        .iter()
        .any(|e| e["kind"] == "chain_failed" && e["failed_step_key"] == "bad"));
    fx.assert_clean();
}

fn fail_fast_cancels_the_sibling(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [
        step("bad", "sleep 0.3; exit 2"),
        step("slow", "sleep 60"),
        step("slow-child", "true"),
        step("later", "true"),
    ];
    let edges = [("slow", "slow-child", "builds_in"), ("bad", "later", "depends_on")];
    let fx = Fixture::with_on(b, &envelope("ff", &steps, &edges, None));
    let started = Instant::now();
    let run = fx.run_json(&["-j", "2"]);
    assert_eq!(run.code, 1, "a plain step failure is exit 1: {}", run.dump());
    assert_eq!(run.status("bad"), "failed");
    assert_eq!(run.status("slow"), "canceled");
    assert_eq!(run.status("slow-child"), "skipped");
    assert_eq!(run.status("later"), "skipped");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the sibling was not killed"
    );
    assert_eq!(run.events.last().unwrap()["kind"], "build_end");
    fx.assert_clean();
}

fn step_timeout_is_exit_124_in_its_event(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("hang", "echo waiting; sleep 60").timeout(1), step("after", "true")];
    let fx = Fixture::with_on(b, &envelope("to", &steps, &[("hang", "after", "builds_in")], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.dump());
    assert_eq!(run.status("hang"), "timed_out");
    assert_eq!(run.end("hang")["exit_code"], 124);
    assert_eq!(run.logs("hang"), ["waiting"]);
    assert_eq!(run.status("after"), "skipped");
    fx.assert_clean();
}

fn pipeline_timeout_is_exit_124(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("hang", "sleep 60"), step("after", "true")];
    let fx = Fixture::with_on(b, &envelope("pto", &steps, &[("hang", "after", "depends_on")], Some(1)));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 124, "{}", run.dump());
    assert_eq!(run.status("hang"), "canceled");
    assert_eq!(run.status("after"), "skipped");
    assert_eq!(run.events.last().unwrap()["status"], "timed_out");
    fx.assert_clean();
}

fn the_whole_process_tree_dies_with_the_step(b: Backend) {
    if !b.available() {
        return;
    }
    let marker = format!("hm-orphan-{}-{}", b.name(), std::process::id());
    let steps = [step(
        "spawner",
        &format!("{} & sleep 0.2; echo spawned", marked_sleep(&marker)),
    )];
    let fx = Fixture::with_on(b, &envelope("tree", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("spawner"), ["spawned"]);
    assert!(
        processes_with(&marker).is_empty(),
        "left: {:?}",
        processes_with(&marker)
    );
    fx.assert_clean();
}

fn sigint_stops_everything_and_exits_130(b: Backend) {
    interrupt_with(b, 2);
}

fn sigterm_stops_everything_and_exits_130(b: Backend) {
    interrupt_with(b, 15);
}

/// Starts a run whose steps hang, waits until they are up, sends `signal`
/// to `hm` and returns (the child, the events so far, the marker).
fn start_hanging_run(fx: &Fixture, marker: &str) -> (std::process::Child, Vec<String>, impl Iterator<Item = String>) {
    let steps = [
        step("long", &format!("{} & echo started; wait", marked_sleep(marker))),
        step("child", "true"),
        step("other", &marked_sleep(marker)),
    ];
    fx.write(
        ".hm/pipeline.json",
        &envelope("int", &steps, &[("long", "child", "builds_in")], None).to_string(),
    );
    let mut child = fx
        .command(&["run", "--format", "json", "-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(|l| l.unwrap());
    let mut events = Vec::new();
    for line in lines.by_ref() {
        let started = line.contains("\"line\":\"started\"");
        events.push(line);
        if started {
            break;
        }
    }
    // Both steps' processes are up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(marker).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_with(marker).len(), 2, "{events:#?}");
    (child, events, lines)
}

fn interrupt_with(b: Backend, signal: i32) {
    if !b.available() {
        return;
    }
    let marker = format!("hm-signal{signal}-{}-{}", b.name(), std::process::id());
    let fx = Fixture::on(b);
    let (mut child, mut events, lines) = start_hanging_run(&fx, &marker);
    nix_kill(child.id(), signal);
    events.extend(lines);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{events:#?}");
    let text = events.join("\n");
    assert!(text.contains("\"status\":\"canceled\""), "{text}");
    assert!(text.contains("\"kind\":\"step_skipped\""), "{text}");
    assert!(text.contains("\"status\":\"interrupted\""), "{text}");
    assert!(
        processes_with(&marker).is_empty(),
        "left: {:?}",
        processes_with(&marker)
    );
    fx.assert_clean();
}

fn a_killed_hm_leaves_nothing_the_next_run_does_not_remove(b: Backend) {
    if !b.available() {
        return;
    }
    let marker = format!("hm-sigkill-{}-{}", b.name(), std::process::id());
    let fx = Fixture::on(b);
    let (mut child, _, _) = start_hanging_run(&fx, &marker);
    nix_kill(child.id(), 9);
    child.wait().unwrap();
    if b == Backend::Sandbox {
        // The steps die with hm (parent-death signal), their mounts with them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_with(&marker).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            processes_with(&marker).is_empty(),
            "left: {:?}",
            processes_with(&marker)
        );
    } else {
        // The daemon keeps the containers running until someone removes them.
        assert_eq!(processes_with(&marker).len(), 2, "the steps of the killed run");
    }
    let runs = fx.cache().join("runs");
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        1,
        "the dead run's directory is still there"
    );
    // The next run collects it (and on docker its containers).
    fx.write(
        ".hm/pipeline.json",
        &envelope("next", &[step("ok", "true")], &[], None).to_string(),
    );
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert!(
        processes_with(&marker).is_empty(),
        "left: {:?}",
        processes_with(&marker)
    );
    fx.assert_clean();
}

/// A shell command running `sleep 300` under a name that contains `marker`,
/// so the test can find the process from the host.
fn marked_sleep(marker: &str) -> String {
    format!("(cp /bin/sleep /tmp/{marker} && exec /tmp/{marker} 300)")
}

fn nix_kill(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn isolation_from_the_host(b: Backend) {
    if !b.available() {
        return;
    }
    let cmd = "echo pid=$$; ls /proc | grep -c '^[0-9]'; \
               test -c /dev/null && test -w /tmp && test -r /etc/resolv.conf && echo ok; \
               touch /usr/hm-sandbox-probe && echo wrote-usr; \
               ls /dev";
    let steps = [step("probe", cmd)];
    let fx = Fixture::with_on(b, &envelope("iso", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let logs = run.logs("probe");
    if b == Backend::Sandbox {
        assert_eq!(logs[0], "pid=2", "the shell is the first process after init: {logs:?}");
    }
    let count: usize = logs[1].trim().parse().unwrap();
    assert!(count <= 8, "only the step's own processes are visible: {logs:?}");
    assert_eq!(logs[2], "ok");
    assert_eq!(logs[3], "wrote-usr");
    assert!(
        !std::path::Path::new("/usr/hm-sandbox-probe").exists(),
        "the host's /usr was written"
    );
    assert!(logs.contains(&"null".to_owned()) && logs.contains(&"pts".to_owned()));
    // The cache itself is hidden from steps.
    let cache = fx.cache().canonicalize().unwrap();
    let steps = [step("peek", &format!("test ! -e {} && echo hidden", cache.display()))];
    let fx2 = Fixture::with_on(b, &envelope("peek", &steps, &[], None));
    let run = fx2.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("peek"), ["hidden"]);
    fx.assert_clean();
}

fn workspace_follows_the_source(b: Backend) {
    if !b.available() {
        return;
    }
    let fx = Fixture::on(b);
    fx.write("keep.txt", "keep\n");
    fx.write("step-deletes.txt", "x\n");
    fx.write("step-edits.txt", "original\n");
    fx.write("host-deletes.txt", "doomed\n");
    fx.write("host-edits.txt", "v1\n");
    fx.write("dir/nested.txt", "nested\n");
    fx.write("run.sh", "#!/bin/sh\necho run\n");
    fx.write(".gitignore", "ignored.txt\n");
    fx.write("ignored.txt", "secret\n");
    std::fs::set_permissions(
        fx.project().join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("keep.txt", fx.project().join("link")).unwrap();
    let first = "ls -A; rm step-deletes.txt; echo edited > step-edits.txt; echo out > output.txt; \
                 test -L link && echo link=$(readlink link); ./run.sh; echo started; sleep 3";
    let second = "ls -A; cat host-edits.txt step-edits.txt output.txt; test -e dir || echo dir-gone";
    let steps = [step("first", first), step("second", second)];
    fx.write(
        ".hm/pipeline.json",
        &envelope("ws", &steps, &[("first", "second", "builds_in")], None).to_string(),
    );

    // The source changes while `first` runs.
    let run = fx.run_json_when(&[], "started", || {
        std::fs::remove_file(fx.project().join("host-deletes.txt")).unwrap();
        fx.write("host-edits.txt", "v2\n");
        fx.write("host-adds.txt", "new\n");
        std::fs::remove_dir_all(fx.project().join("dir")).unwrap();
    });
    assert_eq!(run.code, 0, "{}", run.dump());
    let first_logs = run.logs("first");
    assert_eq!(
        &first_logs[..9],
        [
            ".gitignore",
            "dir",
            "host-deletes.txt",
            "host-edits.txt",
            "keep.txt",
            "link",
            "run.sh",
            "step-deletes.txt",
            "step-edits.txt"
        ],
        "ignored files and .hm/ are not source"
    );
    assert!(
        first_logs.contains(&"link=keep.txt".to_owned()),
        "symlinks stay links: {first_logs:?}"
    );
    assert!(first_logs.contains(&"run".to_owned()), "modes are kept: {first_logs:?}");
    let second_logs = run.logs("second");
    assert_eq!(
        second_logs,
        [
            ".gitignore",
            "host-adds.txt",
            "host-edits.txt",
            "keep.txt",
            "link",
            "output.txt",
            "run.sh",
            "step-edits.txt",
            "v2",
            "edited",
            "out",
            "dir-gone",
        ],
        "new source appears, deleted source disappears, build outputs and the step's own edits stay"
    );
    fx.assert_clean();
}

#[test]
fn deep_chains_are_flattened() {
    if !sandbox_available() {
        return;
    }
    let mut steps = vec![step(
        "s0",
        "echo 0 > /workspace/seen; mkdir -p /srv/hm && echo gone > /srv/hm/doomed",
    )];
    let mut edges = Vec::new();
    for i in 1..8 {
        let cmd = if i == 3 {
            format!("rm /srv/hm/doomed; echo {i} >> /workspace/seen")
        } else {
            format!("echo {i} >> /workspace/seen")
        };
        steps.push(step(&format!("s{i}"), &cmd));
    }
    steps.push(step(
        "check",
        "cat /workspace/seen | tr '\\n' ' '; test ! -e /srv/hm/doomed && echo deleted-stays-deleted",
    ));
    let keys: Vec<String> = steps.iter().map(|s| s.key.clone()).collect();
    for pair in keys.windows(2) {
        edges.push((pair[0].as_str(), pair[1].as_str(), "builds_in"));
    }
    let fx = Fixture::with(&envelope("deep", &steps, &edges, None));
    let output = fx
        .command(&["run", "--format", "json"])
        .env("HM_SANDBOX_MAX_LAYERS", "3")
        .output()
        .unwrap();
    let run = util::Run::from(output);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("check"), ["0 1 2 3 4 5 6 7 deleted-stays-deleted"]);
    fx.assert_clean();
}

fn a_command_that_fails_reports_its_exit_code(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("fails", "echo out; echo err >&2; exit 42")];
    let fx = Fixture::with_on(b, &envelope("f", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.end("fails")["exit_code"], 42);
    // Each stream keeps its order; the two pipes race each other.
    let mut streams: Vec<_> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "step_log")
        .map(|e| format!("{} {}", e["stream"].as_str().unwrap(), e["line"].as_str().unwrap()))
        .collect();
    streams.sort();
    assert_eq!(streams, ["stderr err", "stdout out"]);
    let human = fx.hm(&["run"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("fails | err"), "{text}");
    assert!(text.contains("Last lines of `fails`"), "{text}");
    assert_eq!(human.status.code(), Some(1));
}

fn env_layers_and_overrides(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("env", "echo $TERM $HOME $FROM_CLI; pwd")];
    let fx = Fixture::with_on(b, &envelope("env", &steps, &[], None));
    let run = fx.run_json(&["-e", "FROM_CLI=yes"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("env"), ["dumb /root yes", "/workspace"]);
}

fn logs_are_lossless_ordered_and_line_exact(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [
        step("many", "seq 1 20000"),
        step(
            "split",
            "printf 'abc'; sleep 0.2; printf 'def\\nlast line without newline'",
        ),
    ];
    let fx = Fixture::with_on(b, &envelope("logs", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let lines = run.logs("many");
    assert_eq!(lines.len(), 20000);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == (i + 1).to_string()));
    assert_eq!(run.logs("split"), ["abcdef", "last line without newline"]);
    // Every log line of a step comes between its start and its end.
    let end = run.position("step_end", "many");
    let last_log = run
        .events
        .iter()
        .rposition(|e| e["kind"] == "step_log" && e["step_id"] == run.id("many").as_str());
    assert!(last_log.unwrap() < end);
}

fn parallelism_one_runs_one_step_at_a_time(b: Backend) {
    if !b.available() {
        return;
    }
    let steps = [step("a", "sleep 0.3"), step("b", "sleep 0.3")];
    let fx = Fixture::with_on(b, &envelope("serial", &steps, &[], None));
    let run = fx.run_json(&["-j", "1"]);
    assert_eq!(run.code, 0, "{}", run.dump());
    let (first, second) = if run.position("step_start", "a") < run.position("step_start", "b") {
        ("a", "b")
    } else {
        ("b", "a")
    };
    assert!(run.position("step_end", first) < run.position("step_start", second));
}

fn the_network_is_the_hosts(b: Backend) {
    if !b.available() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // /proc/net/tcp lists the sockets of the reader's network namespace.
    let steps = [step(
        "net",
        &format!("grep -qi ':{port:04X} ' /proc/net/tcp && echo shared"),
    )];
    let fx = Fixture::with_on(b, &envelope("net", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.code, 0, "{}", run.dump());
    assert_eq!(run.logs("net"), ["shared"]);
}

fn a_timed_out_step_leaves_no_process(b: Backend) {
    if !b.available() {
        return;
    }
    let marker = format!("hm-timeout-{}-{}", b.name(), std::process::id());
    let cmd = format!("cp /bin/sleep /tmp/{marker}; /tmp/{marker} 300 & /tmp/{marker} 300");
    let steps = [step("hang", &cmd).timeout(1)];
    let fx = Fixture::with_on(b, &envelope("to", &steps, &[], None));
    let run = fx.run_json(&[]);
    assert_eq!(run.status("hang"), "timed_out", "{}", run.dump());
    assert!(
        processes_with(&marker).is_empty(),
        "left: {:?}",
        processes_with(&marker)
    );
    fx.assert_clean();
}

contract!(
    chain_sees_each_previous_step,
    fork_branches_do_not_see_each_other,
    wait_joins_both_sides,
    keep_going_finishes_the_independent_branch,
    fail_fast_cancels_the_sibling,
    step_timeout_is_exit_124_in_its_event,
    pipeline_timeout_is_exit_124,
    the_whole_process_tree_dies_with_the_step,
    sigint_stops_everything_and_exits_130,
    sigterm_stops_everything_and_exits_130,
    a_killed_hm_leaves_nothing_the_next_run_does_not_remove,
    isolation_from_the_host,
    workspace_follows_the_source,
    a_command_that_fails_reports_its_exit_code,
    env_layers_and_overrides,
    logs_are_lossless_ordered_and_line_exact,
    parallelism_one_runs_one_step_at_a_time,
    the_network_is_the_hosts,
    a_timed_out_step_leaves_no_process,
);
