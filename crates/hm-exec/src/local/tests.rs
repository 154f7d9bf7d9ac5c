//! The build, end to end, on the fake backend: no sandbox, no daemon.

use std::sync::Arc;

use hm_ir::{Pipeline, Plan};
use hm_vm::{Bounds, Registry};
use serde_json::{json, Value};

use super::*;
use crate::fake::{Call, FakeBackend};
use crate::outcome::exit_codes;
use crate::shell::{ShellPoint, ShellState};

/// A plan from steps `(key, cmd, extra fields)`, each building in the one
/// named by its `builds_in` field when it has one.
fn plan(steps: &[(&str, &str, Value)]) -> Plan {
    let keys: Vec<&str> = steps.iter().map(|(k, _, _)| *k).collect();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (i, (key, cmd, extra)) in steps.iter().enumerate() {
        let mut step = json!({"key": key, "cmd": cmd, "image": "img"});
        for (field, value) in extra.as_object().into_iter().flatten() {
            match field.as_str() {
                "builds_in" => {
                    let parent = keys.iter().position(|k| value == k).unwrap();
                    edges.push(json!([parent, i, "builds_in"]));
                }
                _ => step[field] = value.clone(),
            }
        }
        nodes.push(json!({ "step": step }));
    }
    let pipeline: Pipeline = serde_json::from_value(json!({
        "slug": "t",
        "definition": {"version": "0", "graph": {"nodes": nodes, "edge_property": "directed", "edges": edges}}
    }))
    .unwrap();
    Plan::new(&pipeline).unwrap()
}

fn cached() -> Value {
    json!({"cache": {"policy": "forever"}})
}

fn cached_in(parent: &str) -> Value {
    json!({"cache": {"policy": "forever"}, "builds_in": parent})
}

fn builds_in(parent: &str) -> Value {
    json!({ "builds_in": parent })
}

/// A project directory and a cache directory that outlive several builds.
struct Fixture {
    fake: FakeBackend,
    source: tempfile::TempDir,
    cache_dir: tempfile::TempDir,
    registry: Arc<Registry>,
}

impl Fixture {
    fn new() -> Self {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("file"), "contents").unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(cache_dir.path()).unwrap());
        Fixture {
            fake: FakeBackend::new(),
            source,
            cache_dir,
            registry,
        }
    }

    fn request(&self, plan: Plan, keep_going: bool) -> RunRequest {
        RunRequest {
            only: None,
            branch: None,
            message: None,
            limits: Default::default(),
            volumes: None,
            plan,
            source_root: self.source.path().to_owned(),
            source_exclude: Vec::new(),
            source_index: Some(self.cache_dir.path().join("index")),
            env: Vec::new(),
            keep_going,
            run_id: "run".to_owned(),
            cache: Some(CacheSettings {
                registry: self.registry.clone(),
                bounds: Bounds::default(),
                scope: "scope".to_owned(),
                refresh: false,
                host_env: Arc::default(),
                orphan_interval: std::time::Duration::ZERO,
                remote: None,
                build: None,
            }),
            logs: Some(StepLogs {
                dir: self.cache_dir.path().to_owned(),
                limit: 16,
            }),
            shell: None,
        }
    }

    /// A build with a shell at `at`, whose front end opens the session it
    /// gets on a pseudo-terminal, as `hm` would: after the events sent
    /// before it, and dropping it before reading on.
    async fn run_with_shell(&self, plan: Plan, at: ShellPoint, keep_going: bool) -> ShellRun {
        let (sessions, mut received) = mpsc::channel(1);
        let mut request = self.request(plan, keep_going);
        request.shell = Some(ShellHook { at, sessions });
        let mut handle = LocalBackend::new(4, Arc::new(self.fake.clone())).start(request);
        let mut run = ShellRun::default();
        loop {
            tokio::select! {
                biased;
                event = handle.events.recv() => match event {
                    Some(event) => run.events.push(event),
                    None => break,
                },
                Some(mut session) = received.recv() => {
                    let (terminal, _controller) = hm_vm::Terminal::pair(Some("xterm-test".into()), 24, 80).unwrap();
                    run.events_before_shell = run.events.len();
                    run.sessions.push((session.key.clone(), session.state));
                    run.exit = Some(session.open(terminal).await.unwrap());
                    run.calls_in_shell = self.fake.calls();
                }
            }
        }
        run.result = Some(handle.control.wait().await);
        run
    }

    fn start(&self, plan: Plan, keep_going: bool, parallelism: usize) -> BackendHandle {
        LocalBackend::new(parallelism, Arc::new(self.fake.clone())).start(self.request(plan, keep_going))
    }

    async fn run(&self, plan: Plan) -> Build {
        self.start(plan, false, 4).finish().await
    }
}

/// What a build with a shell did.
#[derive(Default)]
struct ShellRun {
    events: Vec<Event>,
    /// How many events came before the session.
    events_before_shell: usize,
    /// Each session's step and state.
    sessions: Vec<(String, ShellState)>,
    /// The shell's exit status.
    exit: Option<i32>,
    /// The backend's calls while the shell was open.
    calls_in_shell: Vec<Call>,
    result: Option<Result<BuildOutcome, RunError>>,
}

impl ShellRun {
    fn exit_code(&self) -> i32 {
        match self.events.last() {
            Some(Event::BuildEnd { exit_code, .. }) => *exit_code,
            other => panic!("the last event is not build_end: {other:?}"),
        }
    }
}

/// A build that ended: its events and result.
struct Build {
    events: Vec<Event>,
    result: Result<BuildOutcome, RunError>,
}

impl BackendHandle {
    async fn finish(mut self) -> Build {
        let mut events = Vec::new();
        while let Some(event) = self.events.recv().await {
            events.push(event);
        }
        Build {
            events,
            result: self.control.wait().await,
        }
    }
}

impl Build {
    fn exit_code(&self) -> i32 {
        match self.events.last() {
            Some(Event::BuildEnd { exit_code, .. }) => *exit_code,
            other => panic!("the last event is not build_end: {other:?}"),
        }
    }

    /// Each step's `(status, exit code, message)` from its `step_end`.
    fn end(&self, step_id: usize) -> (StepStatus, i32, Option<String>) {
        let id = step_id.to_string();
        self.events
            .iter()
            .find_map(|e| match e {
                Event::StepEnd {
                    step_id,
                    status,
                    exit_code,
                    message,
                    ..
                } if *step_id == id => Some((*status, *exit_code, message.clone())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no step_end for step {step_id}"))
    }

    fn skip_reason(&self, step_id: usize) -> String {
        let id = step_id.to_string();
        self.events
            .iter()
            .find_map(|e| match e {
                Event::StepSkipped { step_id, reason, .. } if *step_id == id => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("step {step_id} was not skipped"))
    }

    fn cache_miss(&self, step_id: usize) -> Option<String> {
        let id = step_id.to_string();
        self.events.iter().find_map(|e| match e {
            Event::StepStart {
                step_id, cache_miss, ..
            } if *step_id == id => cache_miss.clone(),
            _ => None,
        })
    }

    fn hits(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::StepCacheHit { .. }))
            .count()
    }
}

#[tokio::test]
async fn a_chain_boots_each_step_from_its_parent_and_releases_everything() {
    let f = Fixture::new();
    let p = plan(&[
        ("a", "true", json!({})),
        ("b", "echo hi", builds_in("a")),
        ("c", "true", builds_in("b")),
    ]);
    let build = f.run(p).await;
    assert_eq!(build.exit_code(), 0);
    assert_eq!(f.fake.executed(), ["a", "b", "c"]);
    let boots: Vec<Call> = f
        .fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Boot { .. }))
        .collect();
    let boot = |step: &str, from: &[&str]| Call::Boot {
        step: step.to_owned(),
        from: from.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        boots,
        [
            boot("a", &["img"]),
            boot("b", &["p1", "img"]),
            boot("c", &["p2", "p1", "img"])
        ]
    );
    assert!(build
        .events
        .iter()
        .any(|e| matches!(e, Event::StepLog { line, .. } if line == "hi")));
    assert_eq!(f.fake.live_snapshots(), 0, "every snapshot is released");
    assert_eq!(
        f.fake.calls().iter().filter(|c| **c == Call::Check).count(),
        1,
        "the backend is checked once"
    );
}

#[tokio::test]
async fn a_log_longer_than_its_limit_is_cut_and_says_so() {
    let f = Fixture::new();
    f.run(plan(&[("a", "echo 0123456789abcdefghij", json!({}))])).await;
    let log = String::from_utf8(std::fs::read(f.cache_dir.path().join("0.log")).unwrap()).unwrap();
    assert_eq!(
        log,
        "0123456789abcdef\n[hm: the output goes on; the log keeps its first 16 bytes]\n"
    );
}

#[tokio::test]
async fn a_cached_chain_misses_then_hits_without_booting() {
    let f = Fixture::new();
    let p = || plan(&[("a", "true", cached()), ("b", "true", cached_in("a"))]);
    let first = f.run(p()).await;
    assert_eq!(first.exit_code(), 0);
    assert_eq!(first.hits(), 0);
    assert_eq!(f.registry.list().unwrap().len(), 2, "both steps are stored");

    let calls_before = f.fake.calls().len();
    let second = f.run(p()).await;
    assert_eq!(second.exit_code(), 0);
    assert_eq!(second.hits(), 2);
    assert_eq!(
        (second.end(0).0, second.end(1).0),
        (StepStatus::CacheHit, StepStatus::CacheHit)
    );
    let calls = &f.fake.calls()[calls_before..];
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Check | Call::Boot { .. })),
        "a build of hits checks and boots nothing: {calls:?}"
    );
    assert_eq!(f.fake.live_snapshots(), 0);
}

#[tokio::test]
async fn steps_before_a_cached_one_do_not_run() {
    let f = Fixture::new();
    let p = || {
        plan(&[
            ("a", "true", cached()),
            ("b", "true", cached_in("a")),
            ("c", "true", cached_in("b")),
            ("d", "true", cached_in("c")),
        ])
    };
    f.run(p()).await;
    // The entries of a, b and d are gone (evicted by bounds, say); c's
    // snapshot holds all a and b did, and d builds on it.
    let gone: Vec<String> = f
        .registry
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.step != "c")
        .map(|e| e.key)
        .collect();
    f.registry.remove(&gone).unwrap();
    let build = f.run(p()).await;
    assert_eq!(build.exit_code(), 0);
    for idx in [0, 1] {
        assert_eq!(build.skip_reason(idx), "not needed: what comes after it is cached");
    }
    assert_eq!(build.end(2).0, StepStatus::CacheHit);
    assert_eq!(build.end(3).0, StepStatus::Passed);
    assert_eq!(f.fake.executed(), ["a", "b", "c", "d", "d"], "only d runs again");
    assert_eq!(
        build.cache_miss(3),
        None,
        "d's parent key is c's: d's entry is simply gone"
    );
    assert_eq!(f.registry.list().unwrap().len(), 2, "c's entry, and d's again");
    assert_eq!(f.fake.live_snapshots(), 0);
}

#[tokio::test]
async fn a_changed_command_misses_and_says_why() {
    let f = Fixture::new();
    f.run(plan(&[("a", "true", cached())])).await;
    let build = f.run(plan(&[("a", "echo changed", cached())])).await;
    assert_eq!(build.hits(), 0);
    assert_eq!(build.cache_miss(0).as_deref(), Some("command changed"));
}

#[tokio::test]
async fn an_entry_whose_storage_is_gone_is_dropped_and_the_step_runs() {
    let f = Fixture::new();
    f.run(plan(&[("a", "true", cached())])).await;
    f.fake.lose_part("p1");
    let build = f.run(plan(&[("a", "true", cached())])).await;
    assert_eq!(build.exit_code(), 0);
    assert_eq!(build.hits(), 0);
    let why = build.cache_miss(0).unwrap();
    assert!(why.contains("incomplete") && why.contains("`p1`"), "{why}");
    assert_eq!(f.fake.executed(), ["a", "a"]);
    assert!(
        f.fake.deleted().contains(&"p1".to_owned()),
        "the dropped entry's storage is deleted"
    );
}

#[tokio::test]
async fn entries_a_build_uses_are_held_against_another_process_evicting_them() {
    let f = Fixture::new();
    let p = || {
        plan(&[
            ("a", "true", cached()),
            ("b", "true", cached_in("a")),
            ("c", "block", builds_in("b")),
        ])
    };
    f.fake.unblock();
    f.run(p()).await;
    let mut stored: Vec<String> = f
        .registry
        .list()
        .unwrap()
        .iter()
        .flat_map(|e| e.parts.clone())
        .collect();
    stored.sort();
    stored.dedup();
    assert!(!stored.is_empty());

    // A second fake whose `block` waits; same storage and registry.
    let g = Fixture {
        fake: FakeBackend::sharing_storage(&f.fake),
        source: tempfile::tempdir().unwrap(),
        cache_dir: tempfile::tempdir().unwrap(),
        registry: f.registry.clone(),
    };
    let zero = Bounds {
        max_entries: 0,
        max_bytes: 0,
    };
    let handle = g.start(p(), false, 4);
    g.fake.wait_started().await;
    // Another process, with its own registry connection, evicts everything.
    let other = Registry::open(f.cache_dir.path()).unwrap();
    let doomed = other.evict(zero).unwrap();
    assert_eq!(doomed, hm_vm::Doomed::default(), "held entries are not evicted");
    assert_eq!(other.list().unwrap().len(), 2);
    g.fake.unblock();
    let build = handle.finish().await;
    assert_eq!(build.exit_code(), 0);
    assert_eq!(build.hits(), 2);
    assert_eq!(g.fake.executed().last().map(String::as_str), Some("c"));
    // Once the build let go, they can go.
    let doomed = other.evict(zero).unwrap();
    let mut freed: Vec<String> = doomed.parts.into_iter().map(|(_, part)| part).collect();
    freed.sort();
    assert_eq!(freed, stored);
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_is_killed_and_its_chain_skipped() {
    let f = Fixture::new();
    let p = plan(&[
        ("slow", "hang", json!({"timeout_seconds": 5})),
        ("next", "true", builds_in("slow")),
    ]);
    let build = f.run(p).await;
    let (status, code, message) = build.end(0);
    assert_eq!((status, code), (StepStatus::TimedOut, 124));
    assert!(build
        .events
        .iter()
        .any(|e| matches!(e, Event::ChainFailed { failed_step_key, .. } if failed_step_key == "slow")));
    assert_eq!(message.as_deref(), Some("timed out after 5s"));
    assert!(build.skip_reason(1).contains("timed out"), "{}", build.skip_reason(1));
    assert_eq!(build.exit_code(), exit_codes::FAILED);
}

#[tokio::test]
async fn an_interrupt_cancels_running_steps_and_skips_the_rest() {
    let f = Fixture::new();
    let handle = f.start(
        plan(&[("a", "hang", json!({})), ("b", "true", builds_in("a"))]),
        false,
        4,
    );
    f.fake.wait_started().await;
    handle.control.interrupter().interrupt();
    let build = handle.finish().await;
    assert_eq!(build.end(0).0, StepStatus::Canceled);
    assert!(
        !build.events.iter().any(|e| matches!(e, Event::ChainFailed { .. })),
        "a cancelled chain did not fail"
    );
    assert_eq!(build.skip_reason(1), "the build was interrupted");
    assert_eq!(build.exit_code(), exit_codes::INTERRUPTED);
    assert_eq!(f.fake.live_snapshots(), 0);
}

#[tokio::test]
async fn an_unavailable_backend_stops_the_build_with_its_reason() {
    let f = Fixture::new();
    f.fake.unavailable();
    let p = plan(&[
        ("a", "true", json!({})),
        ("b", "true", json!({})),
        ("c", "true", builds_in("a")),
    ]);
    let build = f.start(p, true, 1).finish().await;
    assert!(
        matches!(&build.result, Err(RunError::Unavailable(why)) if why.to_string().contains("the fake backend is off")),
        "{:?}",
        build.result.as_ref().err()
    );
    assert_eq!(build.exit_code(), exit_codes::UNAVAILABLE);
    // Nothing starts once the first step found it out.
    assert_eq!(build.skip_reason(1), "the backend is unavailable");
    assert_eq!(build.skip_reason(2), "the backend is unavailable");
    assert!(f.fake.executed().is_empty());
    assert_eq!(f.fake.calls().iter().filter(|c| **c == Call::Check).count(), 1);
}

#[tokio::test]
async fn a_missing_image_fails_before_any_event() {
    let f = Fixture::new();
    let mut p = plan(&[("a", "true", json!({}))]);
    p.steps[0].base_image = "missing".to_owned();
    let build = f.run(p).await;
    assert!(build.events.is_empty(), "{:?}", build.events);
    assert!(matches!(build.result, Err(RunError::Unavailable(_))));
}

#[tokio::test]
async fn keep_going_runs_independent_chains_after_a_failure() {
    let p = || {
        plan(&[
            ("bad", "exit 3", json!({})),
            ("x", "true", builds_in("bad")),
            ("good", "true", json!({})),
        ])
    };
    let f = Fixture::new();
    let stopped = f.start(p(), false, 1).finish().await;
    assert_eq!(stopped.end(0).1, 3);
    assert!(
        stopped.skip_reason(2).contains("keep-going"),
        "{}",
        stopped.skip_reason(2)
    );
    assert_eq!(stopped.exit_code(), exit_codes::FAILED);

    let g = Fixture::new();
    let kept_going = g.start(p(), true, 1).finish().await;
    assert_eq!(kept_going.skip_reason(1), "`bad` failed");
    assert_eq!(kept_going.end(2).0, StepStatus::Passed);
    assert_eq!(kept_going.exit_code(), exit_codes::FAILED);
}

#[tokio::test]
async fn a_failed_commit_fails_the_step_and_skips_its_children() {
    let f = Fixture::new();
    f.fake.fail_commit("a");
    let build = f
        .run(plan(&[("a", "true", cached()), ("b", "true", cached_in("a"))]))
        .await;
    let (status, code, message) = build.end(0);
    assert_eq!((status, code), (StepStatus::Failed, -1));
    assert!(message.unwrap().contains("the fake commit failed"));
    assert_eq!(build.skip_reason(1), "`a` failed");
    assert!(f.registry.list().unwrap().is_empty(), "nothing is stored");
    assert_eq!(build.exit_code(), exit_codes::FAILED);
}

/// The calls about step `step`'s VMs, without the backend's own.
fn calls_of(calls: &[Call], step: &str) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| match c {
            Call::Boot { step: s, .. }
            | Call::Sync { step: s, .. }
            | Call::Exec { step: s, .. }
            | Call::Commit { step: s }
            | Call::Destroy { step: s } => s == step,
            Call::Shell { step: s, .. } => s == step,
            _ => false,
        })
        .map(|c| match c {
            // The environment is checked on its own.
            Call::Shell { step, .. } => Call::Shell {
                step: step.clone(),
                env: Vec::new(),
            },
            other => other.clone(),
        })
        .collect()
}

fn boot(step: &str, from: &[&str]) -> Call {
    Call::Boot {
        step: step.to_owned(),
        from: from.iter().map(|s| s.to_string()).collect(),
    }
}

fn shell(step: &str) -> Call {
    Call::Shell {
        step: step.to_owned(),
        env: Vec::new(),
    }
}

fn destroy(step: &str) -> Call {
    Call::Destroy { step: step.to_owned() }
}

#[tokio::test]
async fn a_shell_after_a_step_runs_in_a_vm_of_its_snapshot_which_is_then_destroyed() {
    let f = Fixture::new();
    f.fake.shell_exits(7);
    let p = plan(&[
        ("a", "true", json!({})),
        ("b", "true", json!({"builds_in": "a", "env": {"GREETING": "hi"}})),
    ]);
    let run = f.run_with_shell(p, ShellPoint::After(1), false).await;
    assert_eq!(run.sessions, [("b".to_owned(), ShellState::Passed)]);
    assert_eq!(run.exit, Some(7));
    assert_eq!(run.exit_code(), 0, "the build's own result");
    // Every step's events, then the shell, then `build_end`.
    assert_eq!(run.events_before_shell, run.events.len() - 1);
    assert_eq!(
        calls_of(&f.fake.calls(), "b"),
        [
            boot("b", &["p1", "img"]),
            Call::Sync {
                step: "b".to_owned(),
                writes: 0
            },
            Call::Exec {
                step: "b".to_owned(),
                cmd: "true".to_owned()
            },
            Call::Commit { step: "b".to_owned() },
            boot("b", &["p2", "p1", "img"]),
            shell("b"),
            destroy("b"),
        ]
    );
    // The shell's VM lived until the session was dropped.
    assert!(!run.calls_in_shell.contains(&destroy("b")));
    let env = f
        .fake
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Shell { env, .. } => Some(env),
            _ => None,
        })
        .unwrap();
    for wanted in [("GREETING", "hi"), ("TERM", "xterm-test"), ("PS1", "(hm b) # ")] {
        assert!(
            env.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "{wanted:?} in {env:?}"
        );
    }
    assert_eq!(f.fake.live_snapshots(), 0, "every snapshot is released");
    assert!(f.registry.list().unwrap().is_empty(), "nothing is stored");
}

#[tokio::test]
async fn a_shell_after_a_cache_hit_boots_from_the_entry_and_stores_nothing() {
    let f = Fixture::new();
    let p = || plan(&[("a", "true", cached())]);
    f.run(p()).await;
    let entries = f.registry.list().unwrap();
    let calls_before = f.fake.calls().len();
    let run = f.run_with_shell(p(), ShellPoint::After(0), false).await;
    assert_eq!(run.sessions, [("a".to_owned(), ShellState::Cached)]);
    assert_eq!(run.exit, Some(0));
    let calls = &f.fake.calls()[calls_before..];
    assert!(
        calls.contains(&Call::Check),
        "a shell's VM needs the backend: {calls:?}"
    );
    assert_eq!(
        calls_of(calls, "a"),
        [boot("a", &["p1", "img"]), shell("a"), destroy("a")]
    );
    assert_eq!(
        f.registry.list().unwrap().len(),
        entries.len(),
        "nothing more is stored"
    );
    assert_eq!(f.fake.live_snapshots(), 0);
}

#[tokio::test]
async fn a_shell_before_a_step_syncs_its_workspace_and_the_step_does_not_run() {
    let f = Fixture::new();
    let p = plan(&[("a", "true", json!({})), ("b", "exit 9", builds_in("a"))]);
    let run = f.run_with_shell(p, ShellPoint::Before(1), false).await;
    assert_eq!(run.sessions, [("b".to_owned(), ShellState::Before)]);
    assert_eq!(f.fake.executed(), ["a"], "`b` does not run");
    assert_eq!(
        calls_of(&f.fake.calls(), "b"),
        [
            boot("b", &["p1", "img"]),
            Call::Sync {
                step: "b".to_owned(),
                writes: 0
            },
            shell("b"),
            destroy("b"),
        ]
    );
    let skipped = run.events.iter().find_map(|e| match e {
        Event::StepSkipped { step_id, reason, .. } if step_id == "1" => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(skipped.as_deref(), Some("a shell opens in the state before it"));
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, Event::StepEnd { step_id, .. } if step_id == "1")),
        "one end per step: skipped"
    );
    assert_eq!(run.exit_code(), 0);
    assert_eq!(f.fake.live_snapshots(), 0);
}

#[tokio::test]
async fn a_shell_on_failure_opens_in_the_first_failed_steps_own_vm() {
    let f = Fixture::new();
    let p = plan(&[
        ("bad", "exit 3", json!({})),
        ("worse", "exit 4", json!({})),
        ("good", "true", json!({})),
    ]);
    let run = f.run_with_shell(p, ShellPoint::OnFailure, true).await;
    assert_eq!(run.sessions.len(), 1, "one shell: {:?}", run.sessions);
    let (key, state) = &run.sessions[0];
    let failed = calls_of(&f.fake.calls(), key);
    assert_eq!(
        failed[2..],
        [
            Call::Exec {
                step: key.clone(),
                cmd: if key == "bad" { "exit 3" } else { "exit 4" }.to_owned()
            },
            shell(key),
            destroy(key)
        ],
        "no commit: the VM the command failed in"
    );
    let code = if key == "bad" { 3 } else { 4 };
    assert_eq!(*state, ShellState::Failed { exit_code: code });
    // The other failed step's VM went at once.
    let other = if key == "bad" { "worse" } else { "bad" };
    assert!(run.calls_in_shell.contains(&destroy(other)));
    assert_eq!(run.exit_code(), exit_codes::FAILED);
    assert_eq!(run.events_before_shell, run.events.len() - 1);
}

#[tokio::test]
async fn no_failure_opens_no_shell() {
    let f = Fixture::new();
    let run = f
        .run_with_shell(plan(&[("a", "true", json!({}))]), ShellPoint::OnFailure, false)
        .await;
    assert!(run.sessions.is_empty());
    assert_eq!(run.exit_code(), 0);
}

#[tokio::test]
async fn a_shell_nobody_takes_is_destroyed_and_the_build_ends() {
    let f = Fixture::new();
    let (sessions, received) = mpsc::channel(1);
    drop(received);
    let mut request = f.request(plan(&[("bad", "exit 3", json!({}))]), false);
    request.shell = Some(ShellHook {
        at: ShellPoint::OnFailure,
        sessions,
    });
    let build = LocalBackend::new(1, Arc::new(f.fake.clone()))
        .start(request)
        .finish()
        .await;
    assert_eq!(build.exit_code(), exit_codes::FAILED);
    assert_eq!(calls_of(&f.fake.calls(), "bad").last(), Some(&destroy("bad")));
    assert!(!f.fake.calls().iter().any(|c| matches!(c, Call::Shell { .. })));
}

/// The snapshot a kept VM was booted from is released after the shell,
/// not when the steps built on it are done: the docker backend cannot
/// remove an image a container still runs on.
#[tokio::test]
async fn the_snapshot_under_a_shell_is_released_after_it() {
    for at in [ShellPoint::OnFailure, ShellPoint::Before(2)] {
        let f = Fixture::new();
        // `a` has two children: it commits a snapshot of its own.
        let p = plan(&[
            ("a", "true", json!({})),
            ("b", "true", builds_in("a")),
            ("c", "exit 3", builds_in("a")),
        ]);
        let run = f.run_with_shell(p, at, true).await;
        assert_eq!(run.sessions.len(), 1, "{at:?}");
        let calls = f.fake.calls();
        let destroyed = calls.iter().position(|c| *c == destroy("c")).unwrap();
        let released = calls
            .iter()
            .position(|c| *c == Call::Release(vec!["p1".to_owned(), "img".to_owned()]))
            .unwrap();
        assert!(released > destroyed, "{at:?}: {calls:?}");
        assert!(
            !run.calls_in_shell.iter().any(|c| matches!(c, Call::Release(_))),
            "{at:?}: nothing released while the shell was open"
        );
        assert_eq!(f.fake.live_snapshots(), 0);
    }
}
