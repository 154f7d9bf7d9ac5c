//! The scheduling decisions of a build, as a plain state machine (DESIGN.md
//! §3): fed what happened, it answers with what to do. No runtime, no VMs,
//! no clocks; the run loop in [`crate::local`] carries the actions out.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use hm_ir::{Plan, StepIdx};

use crate::events::StepStatus;

/// Why a build stops early; later variants override earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopReason {
    /// A step failed and `--keep-going` was not given.
    FailFast,
    /// The backend cannot run steps here (found when the first step was
    /// about to boot).
    Unavailable,
    /// The pipeline's timeout expired.
    PipelineTimeout,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// Why a step never started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// An ancestor it builds on or waits for did not succeed.
    Upstream { key: String, status: UpstreamStatus },
    /// The build stopped before the step could start.
    Stopped(StopReason),
    /// Nothing after it needs it: every step that builds on it or waits
    /// for it is a cache hit (or not needed either).
    NotNeeded,
}

/// What became of the ancestor a step was skipped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStatus {
    Failed(StepStatus),
    Skipped,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Upstream { key, status } => {
                let what = match status {
                    UpstreamStatus::Failed(StepStatus::TimedOut) => "timed out",
                    UpstreamStatus::Failed(StepStatus::Canceled) => "was canceled",
                    UpstreamStatus::Failed(_) => "failed",
                    UpstreamStatus::Skipped => "was skipped",
                };
                write!(f, "`{key}` {what}")
            }
            SkipReason::Stopped(StopReason::FailFast) => {
                f.write_str("the build failed (use -k/--keep-going to run independent steps)")
            }
            SkipReason::Stopped(StopReason::Unavailable) => f.write_str("the backend is unavailable"),
            SkipReason::Stopped(StopReason::PipelineTimeout) => f.write_str("the pipeline timed out"),
            SkipReason::Stopped(StopReason::Interrupted) => f.write_str("the build was interrupted"),
            SkipReason::NotNeeded => f.write_str("not needed: what comes after it is cached"),
        }
    }
}

/// What the run loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(StepIdx),
    Cancel(StepIdx),
    Skip(StepIdx, SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Done(StepStatus),
    Skipped,
    /// Skipped as nothing needs it: its successors go on as if it passed.
    NotNeeded,
}

impl State {
    fn is_terminal(self) -> bool {
        matches!(self, State::Done(_) | State::Skipped | State::NotNeeded)
    }
}

/// The scheduler of one build. Every decision costs what the steps it
/// concerns cost (their edges), never a pass over the whole plan, except
/// a stop (once per reason): a build of n steps is scheduled in O(n).
#[derive(Debug)]
pub struct Scheduler<'p> {
    plan: &'p Plan,
    states: Vec<State>,
    /// How many states are terminal (so that [`Scheduler::is_done`], asked
    /// after every event, need not look at them all).
    ended: usize,
    parallelism: usize,
    keep_going: bool,
    running: usize,
    ready: BinaryHeap<(usize, Reverse<StepIdx>)>,
    stop: Option<StopReason>,
}

impl<'p> Scheduler<'p> {
    pub fn new(plan: &'p Plan, parallelism: usize, keep_going: bool) -> Self {
        Scheduler {
            plan,
            states: vec![State::Waiting; plan.steps.len()],
            ended: 0,
            parallelism: parallelism.max(1),
            keep_going,
            running: 0,
            ready: BinaryHeap::new(),
            stop: None,
        }
    }

    /// The first steps to start; `not_needed` (see [`not_needed`]) are
    /// skipped, and what comes after them goes on as if they had passed.
    pub fn start(&mut self, not_needed: &BTreeSet<StepIdx>) -> Vec<Action> {
        let mut actions = Vec::new();
        for &idx in not_needed {
            self.set(idx, State::NotNeeded);
            actions.push(Action::Skip(idx, SkipReason::NotNeeded));
        }
        for idx in 0..self.states.len() {
            self.consider(idx, &mut actions);
        }
        self.fill(&mut actions);
        actions
    }

    /// A started step ended with `status`.
    pub fn finished(&mut self, idx: StepIdx, status: StepStatus) -> Vec<Action> {
        debug_assert_eq!(self.states[idx], State::Running);
        self.set(idx, State::Done(status));
        self.running -= 1;
        let mut actions = Vec::new();
        // Descendants first, so that they are skipped for this step's sake.
        for next in self.plan.successors(idx).collect::<Vec<_>>() {
            self.consider(next, &mut actions);
        }
        if !status.is_success() && self.stop.is_none() && !self.keep_going {
            self.halt(StopReason::FailFast, &mut actions);
        }
        self.fill(&mut actions);
        actions
    }

    /// The build must stop (timeout, interrupt).
    pub fn stop(&mut self, reason: StopReason) -> Vec<Action> {
        let mut actions = Vec::new();
        self.halt(reason, &mut actions);
        self.fill(&mut actions);
        actions
    }

    /// Nothing runs and nothing more will start.
    pub fn is_done(&self) -> bool {
        self.running == 0 && self.ready.is_empty() && self.ended == self.states.len()
    }

    /// Whether the step has ended (or will never start).
    pub fn is_finished(&self, idx: StepIdx) -> bool {
        self.states[idx].is_terminal()
    }

    /// Why the build stopped early, if it did.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Whether any step ended without success.
    pub fn any_failed(&self) -> bool {
        self.states
            .iter()
            .any(|s| matches!(s, State::Done(st) if !st.is_success()))
    }

    /// Stops the build: in-flight steps are cancelled and waiting ones
    /// skipped, except (on fail-fast) the steps behind a
    /// `continue_on_failure` wait, which still run.
    fn halt(&mut self, reason: StopReason, actions: &mut Vec<Action>) {
        if self.stop.is_some_and(|s| s >= reason) {
            return;
        }
        self.stop = Some(reason);
        let continues = |idx: StepIdx| self.plan.steps[idx].node.step.continue_on_failure;
        let lenient = |idx: StepIdx| reason == StopReason::FailFast && continues(idx);
        // Whether a step descends (by `builds_in`) from a step that a
        // fail-fast stop spares: it belongs to the same group of steps.
        // Parents come first in the topological order, so this is one
        // pass, not a walk up from every step.
        let mut behind_spared = vec![false; self.states.len()];
        for &idx in &self.plan.topo_order {
            if let Some(parent) = self.plan.steps[idx].parent {
                behind_spared[idx] = continues(parent) || behind_spared[parent];
            }
        }
        let mut spared = BinaryHeap::new();
        for (remaining, Reverse(idx)) in std::mem::take(&mut self.ready) {
            if lenient(idx) {
                spared.push((remaining, Reverse(idx)));
            } else {
                self.set(idx, State::Skipped);
                actions.push(Action::Skip(idx, SkipReason::Stopped(reason)));
            }
        }
        self.ready = spared;
        for (idx, behind) in behind_spared.into_iter().enumerate() {
            match self.states[idx] {
                State::Running if !lenient(idx) => actions.push(Action::Cancel(idx)),
                State::Waiting if !lenient(idx) && !behind => {
                    self.set(idx, State::Skipped);
                    actions.push(Action::Skip(idx, SkipReason::Stopped(reason)));
                }
                _ => {}
            }
        }
        // Spared steps may have been waiting only for steps skipped just now.
        for idx in 0..self.states.len() {
            self.consider(idx, actions);
        }
    }

    /// Moves a step to `state`, counting the steps that have ended.
    fn set(&mut self, idx: StepIdx, state: State) {
        match (self.states[idx].is_terminal(), state.is_terminal()) {
            (false, true) => self.ended += 1,
            (true, false) => self.ended -= 1,
            _ => {}
        }
        self.states[idx] = state;
    }

    /// Moves a waiting step on if everything before it has ended: to ready,
    /// or to skipped (and then its successors too).
    fn consider(&mut self, idx: StepIdx, actions: &mut Vec<Action>) {
        // A worklist, not recursion: a chain of skips is as long as the plan
        // and would overflow the stack. Successors go on in reverse so that
        // they are taken depth first, in order, as recursion took them.
        let mut pending = vec![idx];
        'pending: while let Some(idx) = pending.pop() {
            if self.states[idx] != State::Waiting {
                continue;
            }
            let step = &self.plan.steps[idx];
            let lenient = step.node.step.continue_on_failure;
            let mut blocker = None;
            for (pred, ordering_only) in step
                .parent
                .map(|p| (p, false))
                .into_iter()
                .chain(step.depends_on.iter().map(|&p| (p, lenient)))
            {
                match self.states[pred] {
                    State::Done(status) if status.is_success() || ordering_only => {}
                    State::NotNeeded => {}
                    State::Skipped if ordering_only => {}
                    State::Done(status) => blocker = blocker.or(Some((pred, UpstreamStatus::Failed(status)))),
                    State::Skipped => blocker = blocker.or(Some((pred, UpstreamStatus::Skipped))),
                    _ => continue 'pending,
                }
            }
            match blocker {
                Some((pred, status)) => {
                    self.set(idx, State::Skipped);
                    let key = self.plan.steps[pred].key().to_owned();
                    actions.push(Action::Skip(idx, SkipReason::Upstream { key, status }));
                    let first = pending.len();
                    pending.extend(self.plan.successors(idx));
                    pending[first..].reverse();
                }
                None => {
                    self.set(idx, State::Ready);
                    self.ready.push((step.remaining, Reverse(idx)));
                }
            }
        }
    }

    /// Starts ready steps, longest remaining path first, up to the
    /// parallelism.
    fn fill(&mut self, actions: &mut Vec<Action>) {
        while self.running < self.parallelism {
            let Some((_, Reverse(idx))) = self.ready.pop() else {
                break;
            };
            self.set(idx, State::Running);
            self.running += 1;
            actions.push(Action::Start(idx));
        }
    }
}

/// The steps that need not run: those whose key is known (`keyed`) but
/// that are no cache hit, when every step that builds on them or waits for
/// them is a hit (`hit`) or not needed either, as the hit's snapshot holds
/// all they would have done. A step nothing comes after is always needed:
/// it is what the build is for. Found from the last steps up, so a chain
/// whose last step is a hit runs nothing.
pub fn not_needed(plan: &Plan, keyed: impl Fn(StepIdx) -> bool, hit: impl Fn(StepIdx) -> bool) -> BTreeSet<StepIdx> {
    let mut skipped = BTreeSet::new();
    for &idx in plan.topo_order.iter().rev() {
        let mut after = plan.successors(idx).peekable();
        if hit(idx) || !keyed(idx) || after.peek().is_none() {
            continue;
        }
        if after.all(|next| hit(next) || skipped.contains(&next)) {
            skipped.insert(idx);
        }
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use hm_ir::Pipeline;
    use serde_json::json;

    /// A plan from `(key, cof)` nodes and `(src, dst, kind)` edges.
    fn plan(nodes: &[(&str, bool)], edges: &[(u32, u32, &str)]) -> Plan {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(k, cof)| json!({"step": {"key": k, "cmd": "true", "continue_on_failure": cof}}))
            .collect();
        let edges: Vec<_> = edges.iter().map(|(s, d, k)| json!([s, d, k])).collect();
        let pipeline: Pipeline = serde_json::from_value(json!({
            "slug": "t", "definition": {"version": "0", "graph": {"nodes": nodes, "edge_property": "directed", "edges": edges}}
        }))
        .unwrap();
        Plan::new(&pipeline).unwrap()
    }

    fn starts(actions: &[Action]) -> Vec<StepIdx> {
        actions
            .iter()
            .filter_map(|a| if let Action::Start(i) = a { Some(*i) } else { None })
            .collect()
    }

    fn skips(actions: &[Action]) -> Vec<StepIdx> {
        actions
            .iter()
            .filter_map(|a| if let Action::Skip(i, _) = a { Some(*i) } else { None })
            .collect()
    }

    fn set(steps: &[StepIdx]) -> BTreeSet<StepIdx> {
        steps.iter().copied().collect()
    }

    #[test]
    fn steps_before_a_hit_are_not_needed() {
        let chain = plan(
            &[("a", false), ("b", false), ("c", false)],
            &[(0, 1, "builds_in"), (1, 2, "builds_in")],
        );
        let all = |_| true;
        assert_eq!(not_needed(&chain, all, |i| i == 2), set(&[0, 1]));
        assert_eq!(not_needed(&chain, all, |i| i == 1), set(&[0]), "c runs on b's entry");
        assert_eq!(not_needed(&chain, all, |_| false), set(&[]), "the last step is needed");
        assert_eq!(
            not_needed(&chain, |i| i != 0, |i| i == 2),
            set(&[1]),
            "a step without a key runs"
        );

        let mut s = Scheduler::new(&chain, 4, false);
        let actions = s.start(&set(&[0, 1]));
        assert_eq!(skips(&actions), [0, 1]);
        assert!(actions.contains(&Action::Skip(0, SkipReason::NotNeeded)));
        assert_eq!(starts(&actions), [2], "what comes after goes on");
        assert!(s.finished(2, StepStatus::CacheHit).is_empty());
        assert!(s.is_done() && !s.any_failed() && s.stop_reason().is_none());
    }

    #[test]
    fn a_step_anything_still_running_needs_is_needed() {
        // a -> b (a hit), a -> x; a -> c (a hit) with w waiting for c.
        let p = plan(
            &[("a", false), ("b", false), ("x", false), ("c", false), ("w", false)],
            &[
                (0, 1, "builds_in"),
                (0, 2, "builds_in"),
                (0, 3, "builds_in"),
                (3, 4, "depends_on"),
            ],
        );
        let all = |_| true;
        assert_eq!(not_needed(&p, all, |i| i == 1 || i == 3), set(&[]), "x builds on a");
        assert_eq!(not_needed(&p, all, |i| [1, 2, 3].contains(&i)), set(&[0]));
        // A waiting step needs what it waits for to have passed: not
        // needed counts as passed.
        let mut s = Scheduler::new(&p, 4, false);
        let actions = s.start(&set(&[0]));
        assert_eq!(starts(&actions), [3, 1, 2], "c first: w comes after it");
        s.finished(1, StepStatus::CacheHit);
        s.finished(2, StepStatus::CacheHit);
        assert_eq!(starts(&s.finished(3, StepStatus::CacheHit)), [4]);
    }

    #[test]
    fn chain_runs_in_order() {
        let p = plan(
            &[("a", false), ("b", false), ("c", false)],
            &[(0, 1, "builds_in"), (1, 2, "builds_in")],
        );
        let mut s = Scheduler::new(&p, 4, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [0]);
        assert_eq!(starts(&s.finished(0, StepStatus::Passed)), [1]);
        assert_eq!(starts(&s.finished(1, StepStatus::CacheHit)), [2]);
        assert!(s.finished(2, StepStatus::Passed).is_empty());
        assert!(s.is_done());
        assert!(!s.any_failed());
    }

    #[test]
    fn longest_remaining_path_first_within_parallelism() {
        // x alone; a -> b -> c
        let p = plan(
            &[("x", false), ("a", false), ("b", false), ("c", false)],
            &[(1, 2, "builds_in"), (2, 3, "builds_in")],
        );
        let mut s = Scheduler::new(&p, 1, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [1]);
        assert_eq!(starts(&s.finished(1, StepStatus::Passed)), [2]);
    }

    #[test]
    fn fail_fast_cancels_siblings_and_skips_the_rest() {
        // a and b independent; c after a
        let p = plan(
            &[("a", false), ("b", false), ("c", false), ("d", false)],
            &[(0, 2, "builds_in")],
        );
        let mut s = Scheduler::new(&p, 2, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [0, 1]);
        let actions = s.finished(0, StepStatus::Failed);
        assert!(actions.contains(&Action::Cancel(1)));
        let mut skipped = skips(&actions);
        skipped.sort();
        assert_eq!(skipped, [2, 3]);
        assert!(!s.is_done());
        assert!(s.finished(1, StepStatus::Canceled).is_empty());
        assert!(s.is_done());
        assert_eq!(s.stop_reason(), Some(StopReason::FailFast));
    }

    #[test]
    fn keep_going_runs_independent_steps() {
        let p = plan(
            &[("a", false), ("b", false), ("c", false), ("d", false)],
            &[(0, 1, "builds_in"), (1, 2, "builds_in")],
        );
        let mut s = Scheduler::new(&p, 1, true);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [0]);
        let actions = s.finished(0, StepStatus::TimedOut);
        assert_eq!(skips(&actions), [1, 2], "every descendant is skipped");
        assert_eq!(starts(&actions), [3]);
        match &actions[1] {
            Action::Skip(
                2,
                SkipReason::Upstream {
                    key,
                    status: UpstreamStatus::Skipped,
                },
            ) => assert_eq!(key, "b"),
            other => panic!("{other:?}"),
        }
        s.finished(3, StepStatus::Passed);
        assert!(s.is_done());
        assert!(s.any_failed());
    }

    #[test]
    fn wait_joins_and_continue_on_failure_orders_only() {
        // a, b -> wait -> c (strict); a, b -> wait(cof) -> d
        let p = plan(
            &[("a", false), ("b", false), ("c", false), ("d", true)],
            &[
                (0, 2, "depends_on"),
                (1, 2, "depends_on"),
                (0, 3, "depends_on"),
                (1, 3, "depends_on"),
            ],
        );
        let mut s = Scheduler::new(&p, 4, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [0, 1]);
        let actions = s.finished(0, StepStatus::Failed);
        assert!(actions.contains(&Action::Cancel(1)));
        assert_eq!(skips(&actions), [2]);
        let actions = s.finished(1, StepStatus::Canceled);
        assert_eq!(
            starts(&actions),
            [3],
            "the step behind a continue_on_failure wait still runs"
        );
        s.finished(3, StepStatus::Passed);
        assert!(s.is_done());
    }

    #[test]
    fn fail_fast_spares_steps_waiting_on_skipped_ones() {
        // a fails; x (waiting on r) is skipped by the stop; d waits (cof) on x.
        let p = plan(
            &[("a", false), ("r", false), ("x", false), ("d", true)],
            &[(1, 2, "builds_in"), (2, 3, "depends_on")],
        );
        let mut s = Scheduler::new(&p, 1, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [1]);
        let actions = s.finished(1, StepStatus::Failed);
        assert!(skips(&actions).contains(&2));
        assert!(skips(&actions).contains(&0));
        assert_eq!(starts(&actions), [3]);
        s.finished(3, StepStatus::Passed);
        assert!(s.is_done());
    }

    /// Regression: skipping the descendants of a failed step recursed once
    /// per step, so a long enough chain overflowed the stack (10,000 steps
    /// did on a test thread's default 2 MiB).
    #[test]
    fn a_failed_root_skips_a_very_long_chain_without_overflowing_the_stack() {
        const LEN: usize = 100_000;
        let mut pipeline: Pipeline = serde_json::from_value(json!({
            "slug": "t", "definition": {"version": "0", "graph": {"nodes": [], "edge_property": "directed", "edges": []}}
        }))
        .unwrap();
        let node: hm_ir::Node = serde_json::from_value(json!({"step": {"key": "", "cmd": "true"}})).unwrap();
        let graph = &mut pipeline.definition.graph;
        graph.nodes = (0..LEN)
            .map(|i| {
                let mut node = node.clone();
                node.step.key = format!("s{i}");
                node
            })
            .collect();
        graph.edges = (1..LEN as u32)
            .map(|i| Some((i - 1, i, hm_ir::EdgeKind::BuildsIn)))
            .collect();
        let p = Plan::new(&pipeline).unwrap();
        // A stack of a set size, whatever RUST_MIN_STACK and the
        // optimisation level: the chain must not depend on it.
        let actions = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let mut s = Scheduler::new(&p, 4, false);
                assert_eq!(starts(&s.start(&BTreeSet::new())), [0]);
                let actions = s.finished(0, StepStatus::Failed);
                assert!(s.is_done());
                actions
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(skips(&actions), (1..LEN).collect::<Vec<_>>());
        let Action::Skip(_, SkipReason::Upstream { key, status }) = &actions[LEN - 2] else {
            panic!("{:?}", actions[LEN - 2]);
        };
        assert_eq!((key.as_str(), *status), ("s99998", UpstreamStatus::Skipped));
    }

    /// `count` chains of `len` steps each (chain `c`'s steps are
    /// `c * len ..`), built without JSON: plans of 100,000 steps.
    fn chains(count: usize, len: usize) -> Plan {
        let mut pipeline: Pipeline = serde_json::from_value(json!({
            "slug": "t", "definition": {"version": "0", "graph": {"nodes": [], "edge_property": "directed", "edges": []}}
        }))
        .unwrap();
        let node: hm_ir::Node = serde_json::from_value(json!({"step": {"key": "", "cmd": "true"}})).unwrap();
        let graph = &mut pipeline.definition.graph;
        graph.nodes = (0..count * len)
            .map(|i| {
                let mut node = node.clone();
                node.step.key = format!("s{i}");
                node
            })
            .collect();
        graph.edges = (0..count * len)
            .filter(|i| i % len != 0)
            .map(|i| Some((i as u32 - 1, i as u32, hm_ir::EdgeKind::BuildsIn)))
            .collect();
        Plan::new(&pipeline).unwrap()
    }

    /// Issue 15: a build of n steps is scheduled in O(n). `is_done`, asked
    /// after every event, looked at every step, and a stop walked from
    /// every waiting step up to its chain's root: this took a minute
    /// (debug build), and takes a few seconds, mostly making the plans.
    #[test]
    fn a_build_of_100_000_steps_is_scheduled_in_linear_time() {
        let started = std::time::Instant::now();
        // Wide and deep: 1,000 chains of 100 steps, every step passing.
        let p = chains(1_000, 100);
        let mut s = Scheduler::new(&p, 8, false);
        let mut running = starts(&s.start(&BTreeSet::new()));
        let mut ended = 0;
        while let Some(idx) = running.pop() {
            running.extend(starts(&s.finished(idx, StepStatus::Passed)));
            ended += 1;
            assert_eq!(s.is_done(), running.is_empty());
        }
        assert_eq!(ended, 100_000);
        // Every chain's last step a hit: the rest is not needed.
        let last = |idx: StepIdx| p.steps[idx].children.is_empty();
        assert_eq!(not_needed(&p, |_| true, last).len(), 99_000);
        let mut s = Scheduler::new(&p, 8, false);
        let actions = s.start(&not_needed(&p, |_| true, last));
        assert_eq!(starts(&actions).len(), 8);
        // A failure while a 100,000-step chain waits stops it in one pass.
        let p = chains(2, 100_000);
        let mut s = Scheduler::new(&p, 2, false);
        assert_eq!(starts(&s.start(&BTreeSet::new())), [0, 100_000]);
        let actions = s.finished(100_000, StepStatus::Failed);
        assert!(actions.contains(&Action::Cancel(0)));
        assert_eq!(skips(&actions).len(), 2 * 100_000 - 2);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn interrupt_stops_everything() {
        let p = plan(&[("a", false), ("b", true)], &[(0, 1, "depends_on")]);
        let mut s = Scheduler::new(&p, 4, false);
        s.start(&BTreeSet::new());
        let actions = s.stop(StopReason::Interrupted);
        assert_eq!(
            actions,
            [
                Action::Cancel(0),
                Action::Skip(1, SkipReason::Stopped(StopReason::Interrupted))
            ]
        );
        s.finished(0, StepStatus::Canceled);
        assert!(s.is_done());
        assert_eq!(s.stop_reason(), Some(StopReason::Interrupted));
    }
}
